#!/usr/bin/env bash
# t_cluster_waits.sh: a stuck cluster explains itself.  On a 3-node cluster
# (node1 serves the metadata) node2 caches the attributes of file f and holds
# the size of file g it appended to (f and g in directories of their own: a
# lookup waiting in one directory holds the kernel's lock of that directory,
# FUSE's own, not a token); then node2's cxfsd is stopped (SIGSTOP),
# so it answers no recall.  From node3, `chmod f` (a server operation for
# node3 that recalls node2's attributes) and `stat g` (node3's own request,
# which recalls node2's size) wait.  After about 7 s:
#
#  - node1's log has one token-wait line for each (not one a second), naming
#    the inode, the levels wanted, who wants them and node2 as the holder of
#    a recall sent and unanswered;
#  - node3's log has a line for its own request, waiting for the metadata
#    server's answer;
#  - `cxfsctl status --json` lists the waits with an age of at least 5 s
#    and node2's grant as the obstacle (node1's server waits, node3's client
#    wait); `cxfsctl status` shows them in its "waits" section;
#  - `cxfsctl tokens --inode INO` on node1 shows the wait on f (by number:
#    stat() of f itself would wait too), text and --json.
#
# The cluster runs with dead_after 60 s, so the membership does not drop
# the stopped node2 meanwhile.
#
# Then node2 is continued (SIGCONT): the chmod and the stat complete, the
# mode is seen on node2, and no wait is left.  node2 is continued on every
# exit path (the cleanup stack), before the cluster goes down.
. "$(dirname "$0")/lib_cluster.sh"
it_init cluster_waits --need-tgtd

# A stopped node stays a member here (dead_after 60 s): the point is a
# holder that does not answer, not its death (t_member_* test that).
export CXFS_CONF_GLOBALS=$'heartbeat 1s\ndead_after 60s'
cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }
unset CXFS_CONF_GLOBALS
m1=$(node_mnt 1) m2=$(node_mnt 2) m3=$(node_mnt 3)
mkdir "$m1/wf" "$m1/wg"
echo data >"$m1/wf/f"
echo data >"$m1/wg/g"
ino_f=$(stat -c %i "$m1/wf/f")
ino_g=$(stat -c %i "$m1/wg/g")

# node2 takes f's attributes (stat) and g's size at WRITE (an append).
stat "$m2/wf/f" >/dev/null
echo more >>"$m2/wg/g"
held=$("$CXFSCTL" --socket "$(node_sock 1)" tokens --json --inode "$ino_f" "$ino_g" | python3 -c '
import json, sys
f, g = (json.loads(l) for l in sys.stdin)
print(f["granted"].get("node2", {}).get("attr"), g["granted"].get("node2", {}).get("size"))')
check_eq "node2 holds f's attr and g's size" "read write" "$held"

pid2=$(node_pid 2)
log "SIGSTOP node2 (pid $pid2)"
defer "kill -CONT $pid2 2>/dev/null || true"
kill -STOP "$pid2"
chmod 600 "$m3/wf/f" &
chmod_pid=$!
defer "kill $chmod_pid 2>/dev/null || true"
stat "$m3/wg/g" >/dev/null &
stat_pid=$!
defer "kill $stat_pid 2>/dev/null || true"
t0=$SECONDS

# The first line comes once a wait is 5 s old; look again at about 7 s.
line_f="token wait [0-9.]+ s: inode $ino_f wants attr:write times:write \(server operation for node3\); held by node2 attr:read times:read \(recall sent [0-9.]+ s ago, unanswered\)"
line_g="token wait [0-9.]+ s: inode $ino_g wants [a-z: ]*size:read[a-z: ]* \(node3\); held by node2 [a-z: ]*size:write[a-z: ]* \(recall sent"
wait_until 15 grep -Eq "$line_f" "$(node_log 1)" || true
sleep $((t0 + 7 - SECONDS > 0 ? t0 + 7 - SECONDS : 0))
check "the chmod and the stat wait (node2 answers no recall)" kill -0 "$chmod_pid" "$stat_pid"
check_eq "node1 logs one line for the chmod's wait on f" 1 "$(grep -Ec "$line_f" "$(node_log 1)")"
check_eq "node1 logs one line for node3's request on g" 1 "$(grep -Ec "$line_g" "$(node_log 1)")"
check "node1's line says node2 waits for nothing at the server" \
	grep -Eq "$line_f.*node2 waits for nothing at this server" "$(node_log 1)"
check_eq "node3 logs one line for its request on g, at the metadata server" 1 \
	"$(grep -Ec "token wait [0-9.]+ s: inode $ino_g wants .*: waiting for the metadata server's answer \(node1" "$(node_log 3)")"

status1=$(cxfsctl_json 1)
check "node1: status --json lists both waits, older than 5 s, held up by node2's recalled grant" \
	python3 -c '
import json, sys
w = json.loads(sys.argv[1])["cluster"]["waits"]
fi, gi = int(sys.argv[2]), int(sys.argv[3])
def ok(x, ino, by, tok):
    o = x["obstacles"]
    return (x["ino"] == ino and x["by"] == by and x["age_s"] >= 5 and
            any(b["kind"] == "held" and b["by"] == "node2" and b["as"] == "node" and
                tok in b["recalled"] and b["recall_age_s"] >= 5 for b in o))
f = [x for x in w["server"] if ok(x, fi, "node3", "attr") and x["as"] == "operation"]
g = [x for x in w["server"] if ok(x, gi, "node3", "size") and x["as"] == "node"]
sys.exit(0 if f and g and w["left_out"] == 0 else 1)' "$status1" "$ino_f" "$ino_g"
check "node3: status --json lists its client wait on g, at the server, older than 5 s" \
	python3 -c '
import json, sys
w = json.loads(sys.argv[1])["cluster"]["waits"]
sys.exit(0 if "server" not in w and any(x["ino"] == int(sys.argv[2]) and x["call"] == "acquire"
         and x["for"] == "server" and x["age_s"] >= 5 for x in w["client"]) else 1)' \
	"$(cxfsctl_json 3)" "$ino_g"
text1=$("$CXFSCTL" --socket "$(node_sock 1)" status)
check "node1: status shows the waits" grep -Eq "^  (waits)? +server +[0-9.]+ s: inode $ino_f wants" <<<"$text1"
tok=$("$CXFSCTL" --socket "$(node_sock 1)" tokens --inode "$ino_f")
check "node1: tokens --inode shows the wait on f" \
	grep -Eq "^  waits +server +[0-9.]+ s: inode $ino_f wants attr:write.*held by node2" <<<"$tok"
tokj=$("$CXFSCTL" --socket "$(node_sock 1)" tokens --json --inode "$ino_f")
check "node1: tokens --json has the wait on f only" python3 -c '
import json, sys
w = json.loads(sys.argv[1])["waits"]["server"]
sys.exit(0 if w and all(x["ino"] == int(sys.argv[2]) for x in w) else 1)' "$tokj" "$ino_f"

log "SIGCONT node2"
kill -CONT "$pid2"
for what in chmod stat; do
	pid_var=${what}_pid
	rc=0
	if wait_until 20 eval "! kill -0 ${!pid_var} 2>/dev/null"; then
		wait "${!pid_var}" || rc=$?
	else
		rc=timeout
	fi
	check_eq "the $what completes" 0 "$rc"
done
check_eq "node2 sees the new mode" 600 "$(stat -c %a "$m2/wf/f")"
check "no token wait is left on node1" wait_until 10 eval \
	'"$CXFSCTL" --socket "$(node_sock 1)" status | grep -q "^  waits       none"'
log "waits took $((SECONDS - t0)) s"
it_finish
