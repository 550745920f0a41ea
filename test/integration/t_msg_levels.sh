#!/usr/bin/env bash
# t_msg_levels.sh: a node that speaks older messages beside current ones
# (a rolling upgrade of the messaging protocol), on a 3-node cluster
# (scripts/local-cluster: node1 serves the metadata); docs/ARCHITECTURE.md,
# "Messages and their security".
#
#  - node3 runs as an older build would (cxfsd --protocol-levels
#    messages=1-1): every node's membership says the cluster's messages
#    level is 1, node3 works beside the others (its connections speak
#    protocol version 1: no nonces, the cluster secret's MAC), and node1 and
#    node2 serve a version 1 handshake (badframe.py case V) and a version 2
#    one;
#  - node3 stops (kill -9): once the membership has dropped it, the level
#    is 2 again on node1 and node2, and a version 1 HELLO and a replayed
#    handshake are refused there (badframe.py cases f and m), while the
#    positive control is served;
#  - at the end node2 and node1 unmount and cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init msg_levels --need-tgtd

LEVEL='c["membership"]["levels"]["messages"]'
export CXFSD_ARGS_NODE3="--protocol-levels messages=1-1"
cluster_up 3 || { fail "a 3-node cluster starts (node3 at messages level 1)"; it_finish; }
unset CXFSD_ARGS_NODE3

log "1: an older node among current ones"
for n in 1 2 3; do
	check_eq "node$n: the cluster's messages level is 1" 1 "$(cl_stat "$n" "$LEVEL")"
done
check_nodes_alive
cross_node_rw level1
for n in 1 2; do
	run_badframe "$n" --only a,V      # both versions served at level 1
done

log "2: the older node goes; the level rises"
kill_node 3
CL_N=2      # from here on the cluster is node1 and node2
# Version 1 is refused once every member speaks 2 (the membership settled).
refuses_v1() {
	python3 "$BADFRAME" --host 127.0.0.1 --port "$(node_port "$1")" --secret "$CL_KEY" \
		--cluster "$CL_NAME" --epoch "$(node_epoch "$1")" --only f >/dev/null 2>&1
}
for n in 1 2; do
	wait_until 30 eval '[[ "$(cl_stat '"$n"' '"'$LEVEL'"' 2>/dev/null)" == 2 ]]' || true
	check_eq "node$n: the cluster's messages level is 2 again" 2 "$(cl_stat "$n" "$LEVEL")"
	wait_until 30 refuses_v1 "$n" || true
	badframe_counted "$n" '("protocol version", "replay")' --only a,f,m
done
check_nodes_alive
cross_node_rw level2

log "3: unmount and check the volume"
cluster_stop_and_check
it_finish
