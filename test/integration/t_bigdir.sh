#!/usr/bin/env bash
# t_bigdir.sh: 100,000 entries in one directory: create, list and count,
# stat a sample, remount, list again, unlink all.
. "$(dirname "$0")/lib.sh"
it_init bigdir

VOL=$T_TMP/vol.img
MNT=$T_TMP/mnt
N=${BIGDIR_N:-100000}
if ! mount_cxfs "$VOL" "$MNT" --size $((2 << 30)); then
	fail "mount"
	it_finish
fi
D=$MNT/big
check "create $N files in one directory" $FSOPS bigdir-create "$D" "$N"
check_eq "ls -f counts $N entries plus . and .." $((N + 2)) "$(ls -f "$D" | wc -l)"
check "the listing holds exactly the $N names" $FSOPS bigdir-count "$D" "$N"
check "stat a sample of 2000 names" $FSOPS bigdir-stat "$D" "$N" 2000
check_eq "directory nlink is 2" 2 "$(stat -c %h "$D")"
if umount_cxfs "$MNT"; then pass "unmount"; else fail "unmount"; fi
check_volume "$VOL" "cxfs-check passes with $N entries"
if ! mount_cxfs "$VOL" "$MNT"; then
	fail "remount"
	it_finish
fi
check "after remount the listing holds exactly the $N names" $FSOPS bigdir-count "$D" "$N"
check "after remount a sample stats" $FSOPS bigdir-stat "$D" "$N" 2000
check "unlink all $N" $FSOPS bigdir-unlink "$D" "$N"
check "rmdir the emptied directory" rmdir "$D"
if umount_cxfs "$MNT"; then pass "unmount"; else fail "unmount"; fi
check_volume "$VOL" "cxfs-check passes after unlinking all"
it_finish
