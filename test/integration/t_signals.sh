#!/usr/bin/env bash
# t_signals.sh: lifecycle and refusal paths.  cxfsd creates a missing file
# volume; SIGTERM unmounts cleanly (SIGINT is not tested: a script's
# background jobs start with SIGINT ignored); fusermount3 -u makes the
# daemon exit 0; mkfs.cxfs refuses a formatted volume without --force;
# cxfs-check's exit codes; a corrupted superblock is reported by cxfs-check
# and refused by cxfsd with a clear message.
. "$(dirname "$0")/lib.sh"
it_init signals

VOL=$T_TMP/new.img
MNT=$T_TMP/mnt

# wait_exit PID SECS: wait for a daemon to exit by itself; status in CXFSD_STATUS.
wait_exit() {
	local pid=$1 secs=$2
	CXFSD_STATUS=
	if wait_until "$secs" eval "! kill -0 $pid 2>/dev/null"; then
		wait "$pid" 2>/dev/null && CXFSD_STATUS=0 || CXFSD_STATUS=$?
		return 0
	fi
	return 1
}

# An unmounted, healthy mount point: not a mount, and stat works (no ENOTCONN).
clean_mnt() { ! mountpoint -q "$MNT" && stat "$MNT" >/dev/null; }

if ! mount_cxfs "$VOL" "$MNT" --size $((256 << 20)); then
	fail "cxfsd creates and mounts a missing file volume"
	it_finish
fi
pass "cxfsd creates and mounts a missing file volume"
check_eq "the volume file has the requested size" $((256 << 20)) "$(stat -c %s "$VOL")"
check "cxfsd says it created and formatted the volume" \
	grep -qiE "creat|format" "${CXFSD_LOG[$MNT]}"
echo hello >"$MNT/keep"
sync

for sig in TERM; do
	pid=${CXFSD_PID[$MNT]}
	kill -"$sig" "$pid"
	if wait_exit "$pid" 30; then
		check_eq "SIG$sig: cxfsd exits 0" 0 "$CXFSD_STATUS"
		[[ "$CXFSD_STATUS" == 0 ]] || show_log "$MNT" 8
		check "SIG$sig: the mount is gone cleanly" clean_mnt
		check_volume "$VOL" "SIG$sig: the volume is consistent afterwards"
	else
		fail "SIG$sig: cxfsd still running 30 s after the signal"
	fi
	if mount_cxfs "$VOL" "$MNT"; then
		check_eq "after SIG$sig: data written before is there" hello "$(cat "$MNT/keep")"
	else
		fail "after SIG$sig: remount"
		it_finish
	fi
done
if umount_cxfs "$MNT"; then
	check_eq "fusermount3 -u: cxfsd exits 0" 0 "$CXFSD_STATUS"
	check "fusermount3 -u: the mount is gone cleanly" clean_mnt
else
	fail "fusermount3 -u unmounts and the daemon exits"
fi

check_fails "mkfs.cxfs refuses a formatted volume without --force" "$MKFS" "$VOL"
out=$("$MKFS" "$VOL" 2>&1 || true)
check "mkfs.cxfs's refusal mentions --force" grep -q -- "--force" <<<"$out"
if mount_cxfs "$VOL" "$MNT"; then
	check_eq "the refused mkfs left the data alone" hello "$(cat "$MNT/keep" 2>&1)"
	umount_cxfs "$MNT" || fail "unmount"
fi
check "mkfs.cxfs --force reformats" "$MKFS" --force --name again "$VOL"
if mount_cxfs "$VOL" "$MNT"; then
	check "the reformatted volume is empty" test -z "$(ls -A "$MNT" | grep -v '^lost+found$' || true)"
	umount_cxfs "$MNT" || fail "unmount"
fi

check "cxfs-check passes on a clean volume" "$CHECK" "$VOL"
rc=0; "$CHECK" >/dev/null 2>&1 || rc=$?
check_eq "cxfs-check without arguments exits 2" 2 "$rc"
rc=0; "$CHECK" "$T_TMP/does-not-exist" >/dev/null 2>&1 || rc=$?
check_eq "cxfs-check on a missing volume exits 2" 2 "$rc"

# Damage the primary superblock after its magic (the checksum breaks).
cp --sparse=always "$VOL" "$T_TMP/good.img"
printf '\xde\xad\xbe\xef%.0s' {1..8} | dd of="$VOL" bs=1 seek=64 conv=notrunc status=none
rc=0; out=$("$CHECK" "$VOL" 2>&1) || rc=$?
check "cxfs-check reports a damaged primary superblock (exit $rc)" test "$rc" -ne 0
check "cxfs-check's message names the superblock" grep -qi "superblock" <<<"$out"
echo "$out" | head -n 3 | sed 's/^/    cxfs-check: /'

# Damage the backup copy too: nothing to mount from.
printf '\xde\xad\xbe\xef%.0s' {1..8} | dd of="$VOL" bs=1 seek=$((4096 + 64)) conv=notrunc status=none
rc=0; out=$("$CHECK" "$VOL" 2>&1) || rc=$?
check_eq "cxfs-check exits 1 with both superblocks damaged" 1 "$rc"
check "its message names the superblock" grep -qi "superblock" <<<"$out"
if CXFS_MOUNT_TIMEOUT=20 mount_cxfs "$VOL" "$MNT" 2>/dev/null; then
	fail "cxfsd mounted a volume with both superblocks damaged"
	umount_cxfs "$MNT" || true
else
	check "cxfsd refuses it and exits non-zero (status ${CXFSD_STATUS:-none})" \
		test -n "$CXFSD_STATUS" -a "${CXFSD_STATUS:-0}" != 0
	check "cxfsd's message names the superblock" grep -qi "superblock" "${CXFSD_LOG[$MNT]}"
	grep -i "superblock" "${CXFSD_LOG[$MNT]}" | tail -n 2 | sed 's/^/    cxfsd: /'
	check "nothing is left mounted" clean_mnt
fi
it_finish
