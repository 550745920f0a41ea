#!/usr/bin/env bash
# t_enospc.sh: a 96 MiB volume filled by one big write must report ENOSPC,
# keep earlier files intact, still allow unlinking, give the space back
# (three fill/free cycles, no leak), and pass cxfs-check.
. "$(dirname "$0")/lib.sh"
it_init enospc

VOL=$T_TMP/vol.img
MNT=$T_TMP/mnt
if ! mount_cxfs "$VOL" "$MNT" --size $((96 << 20)); then
	fail "cxfsd creates and mounts a 96 MiB volume"
	it_finish
fi
pass "cxfsd creates and mounts a 96 MiB volume"

avail() { python3 -c "import os,sys; s=os.statvfs(sys.argv[1]); print(s.f_bavail*s.f_frsize)" "$MNT"; }

declare -A SUM=()
for i in 1 2 3 4 5 6 7 8; do
	rand_file "$MNT/small$i" $((100 * 1024 + i * 777))
	SUM[$i]=$(sum_of "$MNT/small$i")
done
sync
verify_small() {
	local i bad=0
	for i in "${!SUM[@]}"; do
		[[ -f "$MNT/small$i" ]] || continue
		[[ "$(sum_of "$MNT/small$i")" == "${SUM[$i]}" ]] || { echo "small$i differs"; bad=1; }
	done
	return $bad
}
free0=$(avail)
# The space is back (within 2 MiB of the start), re-read at every call.
space_back() { test "$(avail)" -ge $((free0 - (2 << 20))); }
log "available at start: $((free0 >> 20)) MiB"
# The metadata regions take a fixed share of a small volume; what is left
# for data must still be a useful part of it.
check "statvfs shows at least 32 MiB of 96 MiB available for data" test "$free0" -gt $((32 << 20))
REUSE=$((free0 * 3 / 4 / 1048576 * 1048576))

for cycle in 1 2 3; do
	err=$T_TMP/dd.err
	if dd if=/dev/urandom of="$MNT/big" bs=1M count=200 conv=fsync status=none 2>"$err"; then
		fail "cycle $cycle: a 200 MiB write on a 96 MiB volume succeeded"
	elif grep -q "No space left on device" "$err"; then
		pass "cycle $cycle: the big write fails with ENOSPC"
	else
		fail "cycle $cycle: the big write failed, but not with ENOSPC: $(cat "$err")"
	fi
	big=$(stat -c %s "$MNT/big" 2>/dev/null || echo 0)
	check "cycle $cycle: the big file took the free space ($((big >> 20)) MiB)" \
		test "$big" -gt $((free0 / 2))
	left=$(avail)
	check "cycle $cycle: statvfs shows the volume nearly full ($((left >> 10)) KiB left)" \
		test "$left" -lt $((8 << 20))
	if dd if=/dev/urandom of="$MNT/more" bs=1M count=16 conv=fsync status=none 2>"$err"; then
		fail "cycle $cycle: another 16 MiB fit on a full volume"
	else
		check "cycle $cycle: a second write at full fails with ENOSPC" \
			grep -q "No space left on device" "$err"
	fi
	rm -f "$MNT/more"
	if touch "$MNT/empty$cycle" 2>"$err"; then
		pass "cycle $cycle: an empty file can still be created at full"
	else
		check "cycle $cycle: creating an empty file at full fails only with ENOSPC" \
			grep -q "No space left on device" "$err"
	fi
	check "cycle $cycle: unlink works on a full volume" rm "$MNT/small$cycle"
	unset "SUM[$cycle]"
	check "cycle $cycle: earlier files intact at full" verify_small
	check "cycle $cycle: unlink the big file" rm "$MNT/big"
	sync
	if wait_until 15 space_back; then
		pass "cycle $cycle: the space comes back"
	else
		fail "cycle $cycle: space leaked: $(( (free0 - $(avail)) >> 10)) KiB not returned"
	fi
	rand_file "$T_TMP/reuse" "$REUSE"
	if cp "$T_TMP/reuse" "$MNT/reuse" && sync; then
		check_eq "cycle $cycle: $((REUSE >> 20)) MiB written into the freed space reads back" \
			"$(sum_of "$T_TMP/reuse")" "$(sum_of "$MNT/reuse")"
	else
		fail "cycle $cycle: $((REUSE >> 20)) MiB do not fit after freeing"
	fi
	rm -f "$MNT/reuse"
	sync
done
rand_file "$MNT/final" $((free0 / 4))
fsum=$(sum_of "$MNT/final")
if umount_cxfs "$MNT"; then pass "unmount"; else fail "unmount"; fi
check_volume "$VOL" "cxfs-check passes after the ENOSPC cycles"
if mount_cxfs "$VOL" "$MNT"; then
	check "after remount the small files are intact" verify_small
	check_eq "after remount the last file is intact" "$fsum" "$(sum_of "$MNT/final")"
	if umount_cxfs "$MNT"; then pass "unmount"; else fail "unmount"; fi
else
	fail "remount"
fi
it_finish
