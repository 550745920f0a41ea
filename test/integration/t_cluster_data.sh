#!/usr/bin/env bash
# t_cluster_data.sh: file data is coherent across the nodes of a 3-node
# cluster (scripts/local-cluster: node1 serves the metadata).
#
#  - bytes written on one node are read right on the others, after the
#    writer closed and while the file stays open on every node, for buffered,
#    O_DIRECT and shared-mmap I/O (the writer rotates over the nodes, 200
#    rounds with the file open; the other two nodes read the whole file at
#    once, in the same mode and with read());
#  - a 64 KiB buffered pread is never torn (nor stale) while another node
#    rewrites the region, all bytes = k with k increasing (the writer on
#    each node in turn, two reader processes on each of the two others,
#    5 s each);
#  - sizes and timestamps merge: a write at 1 MiB on one node, then a small
#    one at 0 on another: every node sees size 1 MiB + len and the later
#    writer's mtime (the same on every node), while open and after close;
#  - O_APPEND writers on two and on three nodes (2000 records each) lose,
#    duplicate or tear no record;
#  - the MDS ran handlers in each of its RPC worker lanes (requests, flush,
#    answers), no request waited for a free worker, and `cxfsctl status`
#    shows the lanes;
#  - at the end every node unmounts and cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init cluster_data --need-tgtd

cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }
mkdir "$(node_mnt 1)/data"

log "1a: read on the other nodes after the writer closed"
for mode in buffered direct mmap; do
	mapfile -t P < <(node_paths "data/closed.$mode")
	run_io after-close --mode "$mode" --rounds 100 --seed 11 "${P[@]}"
done

log "1b: read on the other nodes while every node keeps the file open"
for mode in buffered direct mmap; do
	mapfile -t P < <(node_paths "data/open.$mode")
	run_io open-rw --mode "$mode" --rounds 200 --seed 12 "${P[@]}"
done

log "2: 64 KiB preads against a writer on another node"
run_io torn --seconds 5 --procs 2 "$(node_mnt 2)/data/torn.a" "$(node_mnt 1)/data/torn.a" "$(node_mnt 3)/data/torn.a"
run_io torn --seconds 5 --procs 2 "$(node_mnt 1)/data/torn.b" "$(node_mnt 2)/data/torn.b" "$(node_mnt 3)/data/torn.b"
run_io torn --seconds 5 --procs 2 "$(node_mnt 3)/data/torn.c" "$(node_mnt 1)/data/torn.c" "$(node_mnt 2)/data/torn.c"

log "4: sizes and timestamps merge"
mapfile -t P < <(node_paths data/times)
run_io times "${P[@]}"

log "5: O_APPEND writers on several nodes"
run_io append --records 2000 "$(node_mnt 1)/data/append2" "$(node_mnt 2)/data/append2"
mapfile -t P < <(node_paths data/append3)
run_io append --records 2000 "${P[@]}"

check_nodes_alive
cross_node_rw after-data-checks

log "9: the metadata server's RPC workers, by lane"
check_eq "the MDS ran handlers in each of its lanes (requests, flush, answers)" True \
	"$(cl_stat 1 'all(c["lanes"][l]["handled"] > 0 for l in ("requests", "flush", "answers"))')"
check_eq "no request on the MDS waited for a free worker" 0 \
	"$(cl_stat 1 'c["lanes"]["requests"]["waited"]')"
check "cxfsctl status shows the worker lanes" \
	grep -q "^  workers     requests " <<<"$("$CXFSCTL" --socket "$(node_sock 1)" status)"

log "10: unmount and check the volume"
cluster_stop_and_check
it_finish
