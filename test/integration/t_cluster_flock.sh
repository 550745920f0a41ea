#!/usr/bin/env bash
# t_cluster_flock.sh: flock(2) locks exclude across the nodes of a 5-node
# cluster (scripts/local-cluster: node1 serves the metadata; five nodes so
# that the three left after two nodes are killed still have quorum; node4
# and node5 only take part in the membership).
#
#  - flock(1): LOCK_EX held on node2 makes `flock -n` fail on node3 and on
#    node1, shared locks share, a blocking `flock` waits for the holder and
#    a blocked `flock` killed by SIGTERM is gone at once;
#  - flock_check.py: exclusion and sharing, conversion between shared and
#    exclusive (not atomic, as Linux), blocking waits ended by unlock,
#    close, the last close of dup'ed descriptors, the exit of a forked
#    child and the death of the holder; a blocked flock interrupted by a
#    signal returns EINTR promptly on a client and on the MDS node, and a
#    killed waiter leaves nothing behind; on one node a lock released by
#    close() is free for the next flock right away;
#  - cxfs-posix-check's flock section on a client and on the MDS node;
#  - the MDS moves to node3 while node2 holds a flock lock: the lock still
#    excludes, and when node2's cxfsd is killed (-9) the new MDS drops it
#    (a blocking flock on node1 gets it);
#  - node1's cxfsd is killed while its processes hold flock and POSIX locks:
#    blocking flock and F_SETLKW on node3 (the MDS node) get them once the
#    membership loses node1 and the MDS recovers it (the dead threshold,
#    under 1.5 s).
. "$(dirname "$0")/lib_cluster.sh"
it_init cluster_flock --need-tgtd
command -v flock >/dev/null || skip_all "needs flock(1)"

FLOCK_CHECK=$IT_DIR/flock_check.py

cluster_up 5 || { fail "a 5-node cluster starts"; it_finish; }
M1=$(node_mnt 1)
M2=$(node_mnt 2)
M3=$(node_mnt 3)
mkdir "$M1/fl"
: >"$M1/fl/f"
: >"$M1/fl/g"

# hold I MODE FILE: a background process on node I's mount that takes MODE
# (-x or -s) on FILE and keeps it until killed; sets HOLDER to its PID.  The
# subshell becomes `sleep` (exec), so killing HOLDER closes the descriptor.
HOLDER=
hold() {
	local ready=$T_TMP/held.$RANDOM
	(exec 9<"$(node_mnt "$1")/$3" && flock "$2" 9 && : >"$ready" && exec sleep 600) &
	HOLDER=$!
	defer "kill_pid $HOLDER 1"
	wait_until 10 test -e "$ready" || fail "node$1: flock $2 on $3 within 10 s"
}

# ms_since T0: milliseconds since T0 (from `date +%s%N`).
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# check_granted WHAT PID T0: the background PID, waiting for a lock, ends
# with success within 20 s; the check says how long after T0.
check_granted() {
	local what=$1 pid=$2 t0=$3
	if wait_until 20 eval '! kill -0 '"$pid"' 2>/dev/null' && wait "$pid"; then
		pass "$what ($(ms_since "$t0") ms)"
	else
		fail "$what (not granted within 20 s)"
		kill_pid "$pid" 1
	fi
}

# kill_node_frees I PID:WHAT...: kill node I's cxfsd (-9) after half a
# second; each background PID, waiting for a lock node I holds, must then
# get it (check_granted WHAT).
kill_node_frees() {
	local i=$1 t0 w
	shift
	sleep 0.5
	t0=$(date +%s%N)
	kill_node "$i"
	for w in "$@"; do
		check_granted "${w#*:}" "${w%%:*}" "$t0"
	done
}

log "1: flock(1) across nodes"
hold 2 -x fl/f
check_fails "node2 holds LOCK_EX: flock -n -x on node3 fails" flock -n -x "$M3/fl/f" true
check_fails "node2 holds LOCK_EX: flock -n -s on node3 fails" flock -n -s "$M3/fl/f" true
check_fails "node2 holds LOCK_EX: flock -n -x on node1 (the MDS) fails" flock -n -x "$M1/fl/f" true
check "node2 holds LOCK_EX on fl/f: flock -n on fl/g (another file) from node3 works" \
	flock -n -x "$M3/fl/g" true
flock -x "$M3/fl/f" true &
waiter=$!
sleep 1
if kill -0 "$waiter" 2>/dev/null; then
	pass "a blocking flock -x on node3 waits while node2 holds LOCK_EX"
else
	fail "a blocking flock -x on node3 waits while node2 holds LOCK_EX (it ended)"
fi
t0=$(date +%s%N)
kill_pid "$HOLDER" 1
check_granted "node3's blocking flock -x succeeds once node2's holder is gone" "$waiter" "$t0"
hold 2 -s fl/f
check "node2 holds LOCK_SH: flock -n -s on node3 works" flock -n -s "$M3/fl/f" true
check_fails "node2 holds LOCK_SH: flock -n -x on node1 fails" flock -n -x "$M1/fl/f" true
sh_holder=$HOLDER
hold 3 -s fl/f
kill_pid "$sh_holder" 1
check_fails "node3 still holds LOCK_SH after node2's went: flock -n -x on node1 fails" \
	flock -n -x "$M1/fl/f" true
flock -x "$M1/fl/f" true &
waiter=$!
sleep 0.3
t0=$(date +%s%N)
kill -TERM "$waiter"
if wait_until 2 eval '! kill -0 '"$waiter"' 2>/dev/null'; then
	pass "node1: a blocked flock -x killed by SIGTERM is gone at once ($(ms_since "$t0") ms)"
else
	fail "node1: a blocked flock -x killed by SIGTERM is gone within 2 s"
fi
wait "$waiter" 2>/dev/null || true
kill_pid "$HOLDER" 1
# Another node: its release may still be on its way (docs/ARCHITECTURE.md, "Locks").
check "every holder gone: flock -w 5 -x on node1 gets the lock" flock -w 5 -x "$M1/fl/f" true

log "2: flock_check.py"
rc=0
out=$(timeout -k 5 120 python3 "$FLOCK_CHECK" "$M1/fl/f" "$M2/fl/f" "$M3/fl/f" 2>&1) || rc=$?
while IFS= read -r line; do
	if [[ "$line" =~ ^ok\ +(.*)$ ]]; then
		pass "${BASH_REMATCH[1]}"
	elif [[ "$line" =~ ^FAIL\ +(.*)$ ]]; then
		fail "${BASH_REMATCH[1]}"
	elif [[ -n "$line" ]]; then
		echo "$line"
	fi
done <<<"$out"
((rc == 0)) || fail "flock_check.py exited $rc"

log "3: cxfs-posix-check's flock section on node2 and node1"
for i in 2 1; do
	mkdir "$(node_mnt "$i")/pc$i"
	if "$POSIX_CHECK" --only flock "$(node_mnt "$i")/pc$i" >"$T_TMP/pc$i.out" 2>&1; then
		pass "node$i: cxfs-posix-check --only flock ($(tail -n 1 "$T_TMP/pc$i.out"))"
	else
		fail "node$i: cxfs-posix-check --only flock"
		cat "$T_TMP/pc$i.out"
	fi
done

log "4: locks move with the MDS and go with their node"
# mds I: which node serves, as node I sees it.
mds() {
	cxfsctl_json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["cluster"]["server"])'
}
hold 2 -x fl/f
if "$CXFSCTL" --socket "$(node_sock 1)" relocate shared node3 >"$T_TMP/relocate.out" 2>&1 &&
	wait_until 30 eval '[[ "$(mds 1)" == node3 && "$(mds 3)" == node3 ]]'; then
	pass "the MDS moves from node1 to node3 while node2 holds LOCK_EX"
else
	fail "the MDS moves from node1 to node3 (cxfsctl relocate: $(cat "$T_TMP/relocate.out"))"
fi
check_fails "after the move node2's LOCK_EX still holds: flock -n -x on node3 (the new MDS) fails" \
	flock -n -x "$M3/fl/f" true
check_fails "after the move node2's LOCK_EX still holds: flock -n -s on node1 fails" \
	flock -n -s "$M1/fl/f" true
flock -w 20 -x "$M1/fl/f" true &
kill_node_frees 2 "$!:node1's blocking flock -x gets the lock of node2, killed after the move"
check "node3 (the new MDS) logged that node2's locks were dropped" \
	grep -q "node node2 .*lock(s) are dropped" "$(node_log 3)"

# node1, a client now, holds a flock and a POSIX lock; the waiters are on node3, the MDS node.
hold 1 -x fl/f
node1_holder=$HOLDER
python3 - "$M1/fl/g" "$T_TMP/posix.ready" <<'EOF' &
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
open(sys.argv[2], "w").close()
time.sleep(600)
EOF
node1_posix=$!
defer "kill_pid $node1_posix 1"
wait_until 10 test -e "$T_TMP/posix.ready" || fail "node1: a POSIX write lock on fl/g within 10 s"
check_fails "node1 holds LOCK_EX: flock -n -x on node3 fails" flock -n -x "$M3/fl/f" true
flock -w 20 -x "$M3/fl/f" true &
waiter=$!
python3 - "$M3/fl/g" <<'EOF' &
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, fcntl.F_SETLKW, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
EOF
kill_node_frees 1 "$waiter:node3's blocking flock -x gets node1's lock after node1's cxfsd is killed" \
	"$!:node3's F_SETLKW gets node1's POSIX lock after node1's cxfsd is killed"
kill_pid "$node1_holder" 1
kill_pid "$node1_posix" 1
check "node3 still serves: flock -n -x on node3 works" flock -n -x "$M3/fl/f" true

it_finish
