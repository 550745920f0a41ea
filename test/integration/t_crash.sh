#!/usr/bin/env bash
# t_crash.sh: crash consistency on an iSCSI LUN.  Each round mounts, runs a
# writer that fsyncs random files (recording name, size and sha256 only once
# file and directory are fsync'ed), kills cxfsd with SIGKILL in the middle,
# detaches the dead mount, remounts and verifies every fsync'ed file byte for
# byte; the unmounted volume then passes cxfs-check.  In some rounds tgtd is
# killed (-9) and restarted too: after the daemon died, or while it runs.
. "$(dirname "$0")/lib.sh"
it_init crash --need-tgtd

ROUNDS=${CRASH_ROUNDS:-14}
MNT=$T_TMP/mnt
MANIFEST=$T_TMP/manifest
: >"$MANIFEST"
# Sparse: 20 rounds of a fast writer fill a few GiB.
if ! start_tgtd "$T_TMP/lun.img" 8G; then
	fail "tgtd serves a LUN"
	it_finish
fi
check "mkfs.cxfs formats the LUN" "$MKFS" --name crash "$TGT_URI"
WP=
defer 'kill_pid "$WP" 1'

for ((r = 1; r <= ROUNDS; r++)); do
	log "round $r"
	if ! mount_cxfs "$TGT_URI" "$MNT"; then
		fail "round $r: mount"
		break
	fi
	before=$(wc -l <"$MANIFEST")
	$FSOPS crash-writer "$MNT" "round$r" "$MANIFEST" "$r" 2>>"$T_TMP/writer.log" &
	WP=$!
	sleep "$(python3 -c "import random; print(round(random.uniform(1.0, 3.0), 2))")"
	if ((r % 5 == 4)); then
		# tgtd dies under a live mount; the daemon must ride it out.
		restart_tgtd
		sleep 1.5
		if kill -0 "${CXFSD_PID[$MNT]}" 2>/dev/null && mountpoint -q "$MNT"; then
			pass "round $r: cxfsd survives a tgtd kill -9 and restart"
		else
			fail "round $r: cxfsd died when tgtd restarted"
			show_log "$MNT"
		fi
	fi
	kill_cxfs "$MNT"
	kill_pid "$WP" 2
	WP=
	after=$(wc -l <"$MANIFEST")
	if ((after > before)); then
		pass "round $r: writer fsync'ed $((after - before)) files before the kill"
	else
		fail "round $r: writer made no progress"
		tail -n 3 "$T_TMP/writer.log"
	fi
	if ((r % 5 == 2)); then
		restart_tgtd
	fi
	if ! mount_cxfs "$TGT_URI" "$MNT"; then
		fail "round $r: remount after the crash"
		break
	fi
	grep "^round$r/" "$MANIFEST" >"$T_TMP/manifest.round" || true
	if ((r % 5 == 0 || r == ROUNDS)); then
		check "round $r: every fsync'ed file so far is intact" \
			$FSOPS crash-verify "$MNT" "$MANIFEST"
	else
		check "round $r: this round's fsync'ed files are intact" \
			$FSOPS crash-verify "$MNT" "$T_TMP/manifest.round"
	fi
	if umount_cxfs "$MNT"; then
		check_eq "round $r: cxfsd exits 0 on unmount" 0 "$CXFSD_STATUS"
	else
		fail "round $r: clean unmount after recovery"
	fi
	check_volume "$TGT_URI" "round $r: cxfs-check passes"
done
it_finish
