#!/usr/bin/env bash
# t_posix_file.sh: the POSIX behaviour checker through cxfs on a file volume
# formatted by mkfs.cxfs; the daemon exits 0 on unmount and the volume then
# passes cxfs-check.
. "$(dirname "$0")/lib.sh"
it_init posix_file

VOL=$T_TMP/vol.img
MNT=$T_TMP/mnt
truncate -s 2G "$VOL"
check "mkfs.cxfs formats a 2 GiB file volume" "$MKFS" --name posix "$VOL"
if ! mount_cxfs "$VOL" "$MNT"; then
	fail "cxfsd mounts the file volume"
	it_finish
fi
pass "cxfsd mounts the file volume"
run_posix_check "$MNT"
if umount_cxfs "$MNT"; then
	check_eq "cxfsd exits 0 after fusermount3 -u" 0 "$CXFSD_STATUS"
else
	fail "clean unmount"
fi
check_volume "$VOL" "cxfs-check passes after the POSIX run"
it_finish
