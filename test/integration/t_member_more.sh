#!/usr/bin/env bash
# t_member_more.sh: protocol levels and the two-node tie-breaker; nodes are
# hosts of their own (network namespaces, scripts/local-cluster up --netns).
#
#  1. node3 runs as an older build would (cxfsd --protocol-levels
#     messages=1-1): the membership carries level 1 for messages, and the
#     three nodes share files as usual; then node3 restarts speaking only a
#     tokens level the others do not (tokens=2-2): the leader refuses it,
#     with a log line naming the subsystem and the levels;
#  2. a two-node cluster (tie_breaker disk, the default): kill -9 the
#     client, the metadata server wins the disk and goes on; the client
#     comes back; kill -9 the metadata server, the other node wins the disk
#     and keeps quorum (recovering the metadata server itself is the next
#     issue: its requests wait, killable).
. "$(dirname "$0")/lib_netns.sh"
it_init member_more --need-tgtd

member_field() {
	cxfsctl_json "$1" | python3 -c 'import json,sys; c=json.load(sys.stdin)["cluster"]; m=c["membership"]; print('"$2"')'
}

log "1: protocol levels"
export CXFSD_ARGS_NODE3="--protocol-levels messages=1-1"
cluster_up_netns 3 || { fail "a 3-node cluster (node3 at messages level 1) starts"; it_finish; }
for i in 1 2 3; do
	check_eq "node$i: the membership speaks messages level 1, tokens level 1" "1 1" \
		"$(member_field "$i" 'm["levels"]["messages"], m["levels"]["tokens"]')"
done
check_eq "node1 sees node3's range" "1..1" \
	"$(member_field 1 '[n for n in m["nodes"] if n["name"]=="node3"][0]["levels"]["messages"]')"
echo "from the old node" >"$(node_mnt 3)/old"
check_eq "node1 reads what the older node3 wrote" "from the old node" "$(cat "$(node_mnt 1)/old")"
echo "to the old node" >"$(node_mnt 2)/new"
check_eq "node3 reads what node2 wrote" "to the old node" "$(cat "$(node_mnt 3)/new")"
export CXFSD_ARGS_NODE3="--protocol-levels tokens=2-2"
CXFS_MOUNT_TIMEOUT=6 cluster_restart 3 &&
	fail "node3 speaking only tokens level 2 was admitted" ||
	pass "node3 speaking only tokens level 2 does not get in"
if wait_until 10 grep -q "node node3 refused: its tokens levels 2..2" "$(node_log 1)"; then
	pass "the leader refused node3, naming the subsystem and levels: $(grep -m1 'node node3 refused' "$(node_log 1)" | sed 's/^cxfsd: //')"
else
	fail "the leader did not log node3's refusal"
fi
check "node1 counts the refusal" test "$(member_field 1 'm["refused"]["levels"]')" -ge 1
unset CXFSD_ARGS_NODE3
cluster_restart 3 || fail "node3 with this build's levels comes back"
check_eq "node3 is a member again" "True" "$(member_field 3 'm["quorum"]')"
cluster_stop_and_check

log "2: two nodes and the tie-breaker"
cluster_up_netns 2 || { fail "a 2-node cluster starts"; it_finish; }
M1=$(node_mnt 1)
M2=$(node_mnt 2)
echo "two" >"$M2/two"
e0=$(member_field 1 'm["epoch"]')
cluster_kill 2
if wait_until 10 eval '[[ $(member_field 1 "m[\"epoch\"]") -gt '"$e0"' ]]'; then
	pass "node1 alone keeps quorum after node2 died: $(member_field 1 'm["quorum"], m["leader"]')"
else
	fail "node1 did not form a membership alone"
fi
grep -q "tie-breaker.*won the disk" "$(node_log 1)" && pass "node1 won the disk" || fail "node1 did not win the tie"
check_eq "node1 goes on: it reads node2's file" "two" "$(bounded 20 cat "$M1/two")"
echo "one" >"$M1/one" && pass "node1 goes on: it writes" || fail "node1 cannot write after node2 died"
cluster_restart 2 || fail "node2 comes back"
check_eq "node2 reads what node1 wrote meanwhile" "one" "$(bounded 20 cat "$M2/one")"
e1=$(member_field 2 'm["epoch"]')
cluster_kill 1
if wait_until 10 eval '[[ $(member_field 2 "m[\"epoch\"]") -gt '"$e1"' ]] && [[ $(member_field 2 "m[\"quorum\"]") == True ]]'; then
	pass "node2 alone keeps quorum after the metadata server died"
else
	fail "node2 has no quorum after node1 died"
fi
grep -q "tie-breaker.*won the disk" "$(node_log 2)" && pass "node2 won the disk" || fail "node2 did not win the tie"
cluster_down
it_finish
