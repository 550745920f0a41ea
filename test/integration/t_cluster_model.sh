#!/usr/bin/env bash
# t_cluster_model.sh: the randomized multi-node model test and hostile frames
# on a 3-node cluster (scripts/local-cluster: node1 serves the metadata).
#
#  - cluster_model.py --strict, 3 seeds x 1500 operations over the three
#    mounts (every change checked at once through another node);
#  - badframe.py at node2's and node1's ports: wrong MAC, oversized and
#    garbage frames (and the other hostile cases) are refused, the node's
#    cluster.messages.dropped counters for "bad MAC", "oversize" and
#    "bad magic" grow, and the cluster still works (cross-node write/read,
#    and one more model run);
#  - at the end every node unmounts and cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init cluster_model --need-tgtd
CLUSTER_MODEL_TIMEOUT=${CLUSTER_MODEL_TIMEOUT:-300}

cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }

log "7: the randomized model"
for seed in 101 202 303; do
	run_cluster_model "$seed" 1500
done

log "8: hostile frames"
for n in 2 1; do
	badframe_counted "$n" '("bad MAC", "oversize", "bad magic")'
done
check_nodes_alive
cross_node_rw after-badframe
run_cluster_model 404 500

log "10: unmount and check the volume"
cluster_stop_and_check
it_finish
