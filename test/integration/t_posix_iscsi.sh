#!/usr/bin/env bash
# t_posix_iscsi.sh: the POSIX behaviour checker through cxfs on an iSCSI LUN
# served by a tgtd this test starts (and kills) on ports unique to the run.
. "$(dirname "$0")/lib.sh"
it_init posix_iscsi --need-tgtd

MNT=$T_TMP/mnt
if ! start_tgtd "$T_TMP/lun.img" 2G; then
	fail "tgtd serves a 2 GiB LUN"
	it_finish
fi
pass "tgtd serves a 2 GiB LUN ($TGT_URI)"
check "mkfs.cxfs formats the LUN" "$MKFS" --name posix "$TGT_URI"
if ! mount_cxfs "$TGT_URI" "$MNT"; then
	fail "cxfsd mounts the LUN"
	it_finish
fi
pass "cxfsd mounts the LUN"
run_posix_check "$MNT"
if umount_cxfs "$MNT"; then
	check_eq "cxfsd exits 0 after fusermount3 -u" 0 "$CXFSD_STATUS"
else
	fail "clean unmount"
fi
check_volume "$TGT_URI" "cxfs-check passes on the LUN"
it_finish
