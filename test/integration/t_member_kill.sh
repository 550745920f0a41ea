#!/usr/bin/env bash
# t_member_kill.sh: a client node dies (kill -9 of its cxfsd) while it holds
# a POSIX lock, a flock, WRITE tokens with written data not yet published,
# and an unlinked file open; the other two nodes run a verified workload
# throughout.  Nodes are separate hosts: each in a network namespace of its
# own (scripts/local-cluster up --netns).
#
#  - the membership forms with every node, one epoch, quorum everywhere;
#  - after the kill the survivors' membership loses node3 (its epoch grows
#    by one), the metadata server fences node3 (its key goes from the LUN)
#    and then drops its tokens and locks: the lock and the flock are free
#    on node2 within the detection time (printed);
#  - the workload on node1 and node2 sees no error, and every file it was
#    told was written (fsync) reads back right, as does the file node3
#    fsync'ed before it died;
#  - node3 comes back (scripts/local-cluster restart), joins the
#    membership again, and reads the current data;
#  - every node unmounts and cxfs-check finds the volume clean (the file
#    node3 held open after its unlink is freed).
. "$(dirname "$0")/lib_netns.sh"
it_init member_kill --need-tgtd

LOAD=$IT_DIR/member_load.py
VICTIM=$IT_DIR/member_victim.py

# member_field I EXPR: a value of node I's membership (m = its JSON object).
member_field() {
	cxfsctl_json "$1" | python3 -c 'import json,sys; m=json.load(sys.stdin)["cluster"]["membership"]; print('"$2"')'
}

cluster_up_netns 3 || { fail "a 3-node cluster in network namespaces starts"; it_finish; }
M1=$(node_mnt 1)
M2=$(node_mnt 2)
M3=$(node_mnt 3)

log "1: the membership"
e0=$(member_field 1 'm["epoch"]')
for i in 1 2 3; do
	check_eq "node$i: a member with quorum, 3 members, epoch $e0, leader node1" "True 3 $e0 node1" \
		"$(member_field "$i" 'm["quorum"], sum(n["member"] for n in m["nodes"]), m["epoch"], m["leader"]')"
done

log "2: node3 dies holding locks, tokens, unpublished data and an open unlinked file"
mkdir -p "$M1/w1" "$M1/w2" "$M1/v"
python3 "$VICTIM" "$M3/v" "$T_TMP/victim.ready" >"$T_TMP/victim.out" 2>&1 &
victim=$!
defer "kill_pid $victim 1"
wait_until 20 test -e "$T_TMP/victim.ready" || fail "node3's holder is ready within 20 s"
python3 "$LOAD" run --dir "$M1/w1" --tag node1 --seconds 10 --out "$T_TMP/ack1" >"$T_TMP/load1" 2>&1 &
l1=$!
python3 "$LOAD" run --dir "$M2/w2" --tag node2 --seconds 10 --out "$T_TMP/ack2" >"$T_TMP/load2" 2>&1 &
l2=$!
defer "kill_pid $l1 1; kill_pid $l2 1"
sleep 2
t0=$(date +%s%N)
kill_node 3
kill_pid "$victim" 1
python3 - "$M2/v/lk" "$t0" >"$T_TMP/lock.out" 2>&1 <<'PY' &
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("%.0f" % ((time.time_ns() - int(sys.argv[2])) / 1e6))
PY
lockp=$!
if timeout 20 flock -x "$M2/v/fl" true; then
	pass "node2 gets node3's flock after node3 died ($((($(date +%s%N) - t0) / 1000000)) ms after the kill)"
else
	fail "node2 does not get node3's flock within 20 s"
fi
if wait "$lockp"; then
	pass "node2 gets node3's POSIX lock after node3 died ($(cat "$T_TMP/lock.out") ms after the kill)"
else
	fail "node2 does not get node3's POSIX lock: $(cat "$T_TMP/lock.out")"
fi
wait "$l1" || true
wait "$l2" || true
# tally_line counts into these (lib_cluster_io.sh).
# shellcheck disable=SC2034
TALLY_OK=0 TALLY_FAIL=0
for f in "$T_TMP/load1" "$T_TMP/load2"; do
	while IFS= read -r line; do tally_line "$line"; done <"$f"
done
check_eq "the file node3 fsync'ed before it died is there, byte for byte" \
	"$(cat "$T_TMP/victim.ready.sha")" "$(sha256sum <"$M1/v/synced" | cut -d' ' -f1)"
for i in 1 2; do
	check_eq "node$i: node3 left the membership, whose epoch grew by one" "False $((e0 + 1)) True" \
		"$(member_field "$i" '[n for n in m["nodes"] if n["name"]=="node3"][0]["member"], m["epoch"], m["quorum"]')"
done
grep -q "lost node3" "$(node_log 1)" && pass "node1 logged the membership change" ||
	fail "node1 did not log the loss of node3"
grep -q "fence node node3: its key is preempted" "$(node_log 1)" &&
	pass "the metadata server fenced node3 before recovering it" ||
	fail "the metadata server did not fence node3: $(grep -m1 'fence node' "$(node_log 1)")"
check "node3's tokens and locks were dropped at the metadata server" \
	grep -q "node node3 left the membership and is fenced: its tokens and its [1-9][0-9]* lock" "$(node_log 1)"

# node3 wrote DIR/unsynced (128 KiB, 32 blocks) and never fsync'ed or
# closed it: those blocks were allocated to it and never published.
if wait_until 10 grep -q "node node3: [1-9][0-9]* block(s) it allocated and never published are freed" "$(node_log 1)"; then
	pass "the metadata server freed node3's unpublished allocations: $(grep -m1 'never published are freed' "$(node_log 1)" | sed 's/^cxfsd: //')"
else
	fail "node3's unpublished allocations were not freed: $(grep -m1 'never published' "$(node_log 1)")"
fi

log "3: node3 comes back"
cluster_restart 3 || fail "scripts/local-cluster restart 3: $(tail -n 3 "$T_TMP/cluster-ops.log")"
check_eq "node3 is a member again with quorum" "True True" \
	"$(member_field 3 '[n for n in m["nodes"] if n["name"]=="node3"][0]["member"], m["quorum"]')"
run_io_line() { while IFS= read -r line; do tally_line "$line"; done < <("$@" 2>&1 || true); }
run_io_line python3 "$LOAD" verify --dir "$M3/w1" --ack "$T_TMP/ack1"
run_io_line python3 "$LOAD" verify --dir "$M1/w2" --ack "$T_TMP/ack2"
echo "written after node3 came back" >"$M2/after"
check_eq "node3 reads what node2 wrote after it came back" "written after node3 came back" "$(cat "$M3/after" 2>&1)"

cluster_stop_and_check
it_finish
