#!/usr/bin/env bash
# t_locks.sh: record locks against a model (lockmodel.py: random F_SETLK
# and F_GETLK of byte ranges by several owners, and closes that drop an
# owner's locks, one at a time, each result checked: refused exactly when
# another owner holds a conflicting lock, F_GETLK naming one of them),
# POSIX locks (F_SETLK) and open file description locks (F_OFD_SETLK,
# dropped at the description's last close):
#
#  (s) on a single-node mount of a file volume, 4 owners;
#  (c) on a 3-node cluster (node1 serves the metadata), 2 owners on each
#      node, all on one file.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init locks --need-tgtd

OPS=${CXFS_LOCK_OPS:-4000}

file_volume locks
if mount_cxfs "$VOL" "$MNT"; then
	run_model lockmodel.py "$OPS" "(s) POSIX locks, single node:" 1 "$MNT/p" "$MNT/p"
	run_model lockmodel.py "$OPS" "(s) OFD locks, single node:" 2 --ofd "$MNT/o" "$MNT/o"
	umount_cxfs "$MNT" || fail "(s) the single-node mount unmounts"
else
	fail "(s) cxfsd mounts the file volume"
fi

cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }
for seed in 3 4; do
	mapfile -t P < <(for i in 1 2 3; do echo "$(node_mnt $i)/p$seed"; done)
	run_model lockmodel.py "$OPS" "(c) POSIX locks, 3 nodes:" $seed "${P[@]}"
done
for seed in 5 6; do
	mapfile -t P < <(for i in 1 2 3; do echo "$(node_mnt $i)/o$seed"; done)
	run_model lockmodel.py "$OPS" "(c) OFD locks, 3 nodes:" $seed --ofd "${P[@]}"
done

log "unmount and check the volume"
cluster_stop_and_check
it_finish
