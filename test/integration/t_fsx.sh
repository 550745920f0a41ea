#!/usr/bin/env bash
# t_fsx.sh: the data exerciser (fsx.py: random writes, reads, O_DIRECT
# reads, truncates, fallocate of every mode, copy_file_range, shared maps,
# fsync, each checked against a model of the file's bytes and size) on a
# single node, then on a 3-node cluster (node1 serves the metadata):
#
#  (s) a single-node mount of a file volume, as it comes and with the
#      kernel's writeback cache (--writeback); cxfs-check after each;
#  (a) on node1 alone: the metadata server's own data path;
#  (b) on node2 alone: a client's, with its data cache;
#  (c) on all three at once on one file, each operation through a node
#      picked at random: what one node did, the next node reads;
#  then every node unmounts and cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init fsx --need-tgtd

OPS=${CXFS_FSX_OPS:-3000}

file_volume fsx
for how in "" --writeback; do
	log "(s) a single-node mount ${how:-as it comes}"
	if mount_cxfs "$VOL" "$MNT" $how; then
		run_model fsx.py "$OPS" "(s) single node ${how:-as it comes}: fsx" 11 "$MNT/f11$how"
		umount_cxfs "$MNT" || fail "(s) the single-node mount ${how:-as it comes} unmounts"
		check_volume "$VOL" "(s) cxfs-check passes after the single-node run ${how:-as it comes}"
	else
		fail "(s) cxfsd mounts the file volume ${how:-as it comes}"
	fi
done

cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }
mkdir "$(node_mnt 1)/fsx"

# run LABEL SEED NODE...: fsx on file fsx/SEED through the mounts of NODE...
run() {
	local label=$1 seed=$2 i files=()
	shift 2
	for i in "$@"; do files+=("$(node_mnt "$i")/fsx/f$seed"); done
	run_model fsx.py "$OPS" "$label fsx" "$seed" "${files[@]}"
}

log "(a) node1 alone"
run "(a) node1:" 1 1
run "(a) node1:" 2 1
log "(b) node2 alone"
run "(b) node2:" 3 2
run "(b) node2:" 4 2
log "(c) node1, node2 and node3 on one file"
for seed in 5 6 7; do
	run "(c) nodes 1-3:" $seed 1 2 3
done

log "unmount and check the volume"
cluster_stop_and_check
it_finish
