#!/usr/bin/env bash
# t_untrusted.sh: untrusted peers on a 3-node cluster (scripts/local-cluster:
# node1 serves the metadata); docs/ARCHITECTURE.md, "Messages and their
# security".
#
#  - badframe.py at node1's and node2's ports: every hostile case is refused
#    (among them a replayed handshake, a request of an older epoch, a frame
#    replayed within its connection, payloads announced before the
#    handshake, too many connections in their handshake from one address, an
#    older protocol version), the node's cluster.messages.dropped counters
#    "replay", "stale epoch", "too many connections", "oversize", "protocol
#    version" and "handshake" grow, and its log names the replay, both
#    protocol versions and the refused connection;
#  - values clamped at the metadata server: node3 is stopped (kill -9) and
#    badframe.py speaks as node3: a FALLOCATE of a file with an internal mode
#    flag (VN_IO_INVISIBLE) and WRITE_DONEs of blocks never handed to it are
#    each answered with an error and logged by node1, and the file reads the
#    same (O_DIRECT) on node1 and node2 and keeps its blocks;
#  - node1 and node2 still work together, and at the end they unmount and
#    cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init untrusted --need-tgtd

cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }

log "1: hostile frames"
for n in 1 2; do
	badframe_counted "$n" '("replay", "stale epoch", "too many connections", "oversize", "protocol version", "handshake")'
	check "node$n logs the replayed handshake" grep -q "replayed HELLO" "$(node_log "$n")"
	check "node$n logs an older peer's protocol version beside the ones it speaks and accepts" \
		grep -q "the peer speaks protocol version 1, this node 1 to 2 and accepts 2 now" \
		"$(node_log "$n")"
	check "node$n logs the connection over the limit of its address" \
		grep -q "connection refused: more than 8 connections in their handshake from this address" \
		"$(node_log "$n")"
done
check_nodes_alive
cross_node_rw after-badframe

log "2: values from a node clamped at the metadata server"
kill_node 3
CL_N=2      # from here on the cluster is node1 and node2
f1=$(node_mnt 1)/clamped
f2=$(node_mnt 2)/clamped
rand_file "$f2" $((256 * 1024))          # written by a client: allocated and published
direct_sum() { dd if="$1" iflag=direct bs=64k status=none | sha256sum | cut -d' ' -f1; }
sum=$(direct_sum "$f2")
check_eq "node1 reads node2's file" "$sum" "$(direct_sum "$f1")"
ino=$(stat -c %i "$f1")
blocks=$(stat -c %b "$f1")
run_badframe 1 --node node3 --ino "$ino" --only F,W
check "node1 logs the refused fallocate" \
	grep -q "refused a fallocate of inode $ino from node node3" "$(node_log 1)"
check "node1 logs the refused WRITE_DONEs" \
	grep -q "refused a WRITE_DONE of node node3: blocks .* of inode $ino" "$(node_log 1)"
for n in 1 2; do
	check_eq "node$n reads the file unchanged (O_DIRECT)" "$sum" "$(direct_sum "$(node_mnt "$n")/clamped")"
done
check_eq "the file keeps its blocks" "$blocks" "$(stat -c %b "$f1")"
check_nodes_alive
cross_node_rw after-clamps

log "3: unmount and check the volume"
cluster_stop_and_check
it_finish
