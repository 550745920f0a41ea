#!/usr/bin/env bash
# t_bigfile.sh: a sparse 6 GiB file on an 8 GiB volume.  64 MiB of random
# data at several offsets (unaligned ones, one across 4 GiB, one beyond it,
# one at the end); after a remount every region matches its checksum, the
# holes read zeros, the whole file equals a local copy, and little space is
# used.
. "$(dirname "$0")/lib.sh"
it_init bigfile

VOL=$T_TMP/vol.img
MNT=$T_TMP/mnt
REF=$T_TMP/ref.img      # the same sparse file on the local file system
CH=$((64 << 20))
SIZE=$((6 << 30))
OFFSETS=(0 $(((1 << 30) + 12345)) $(((4 << 30) - (32 << 20))) $(((4 << 30) + (100 << 20) + 4096))
	$(((5 << 30) + 777)) $((SIZE - CH)))
HOLES=($((512 << 20)) $((3 << 30)) $(((4 << 30) + (64 << 20))) $(((5 << 30) + (512 << 20))))

if ! mount_cxfs "$VOL" "$MNT" --size $((8 << 30)); then
	fail "cxfsd creates and mounts an 8 GiB file volume"
	it_finish
fi
pass "cxfsd creates and mounts an 8 GiB file volume"
check "the new volume file is sparse-sized 8 GiB" test "$(stat -c %s "$VOL")" -eq $((8 << 30))

F=$MNT/big
check "create the 6 GiB sparse file" truncate -s "$SIZE" "$F"
truncate -s "$SIZE" "$REF"
declare -A SUM=()
t0=$SECONDS
for off in "${OFFSETS[@]}"; do
	rand_file "$T_TMP/chunk" "$CH"
	SUM[$off]=$(sum_of "$T_TMP/chunk")
	dd if="$T_TMP/chunk" of="$REF" bs=4M seek="$off" oflag=seek_bytes conv=notrunc status=none
	if dd if="$T_TMP/chunk" of="$F" bs=4M seek="$off" oflag=seek_bytes conv=notrunc,fsync \
		status=none; then
		pass "write 64 MiB at offset $off"
	else
		fail "write 64 MiB at offset $off"
	fi
done
rm -f "$T_TMP/chunk"
log "wrote $((${#OFFSETS[@]} * 64)) MiB in $((SECONDS - t0)) s"
check_eq "size is 6 GiB" "$SIZE" "$(stat -c %s "$F")"

# verify_all LABEL: checksums of the regions, zeros in the holes.
verify_all() {
	local label=$1 off got
	for off in "${OFFSETS[@]}"; do
		got=$(dd if="$F" bs=4M skip="$off" count="$CH" iflag=skip_bytes,count_bytes \
			status=none | sha256sum | cut -d' ' -f1)
		check_eq "$label: region at $off matches" "${SUM[$off]}" "$got"
	done
	for off in "${HOLES[@]}"; do
		check "$label: hole at $off reads zeros" cmp -s -n $((4 << 20)) \
			<(dd if="$F" bs=4M skip="$off" count=$((4 << 20)) iflag=skip_bytes,count_bytes \
				status=none) /dev/zero
	done
}
verify_all "before remount"
used=$(($(stat -c %b "$F") * 512))
check "space used is about the data written ($((used >> 20)) MiB)" \
	test "$used" -lt $((1 << 30))
check "space used covers the data written" test "$used" -ge $((6 * CH))

if umount_cxfs "$MNT"; then pass "unmount"; else fail "unmount"; fi
check_volume "$VOL" "cxfs-check passes after the writes"
if ! mount_cxfs "$VOL" "$MNT"; then
	fail "remount"
	it_finish
fi
pass "remount"
check_eq "size after remount" "$SIZE" "$(stat -c %s "$F")"
verify_all "after remount"
t0=$SECONDS
check "the whole 6 GiB file equals the local reference" cmp "$REF" "$F"
log "full compare took $((SECONDS - t0)) s"
check "unlink the big file" rm "$F"
if umount_cxfs "$MNT"; then pass "unmount"; else fail "unmount"; fi
check_volume "$VOL" "cxfs-check passes after unlinking the big file"
it_finish
