#!/usr/bin/env bash
# t_cluster_kill.sh: no unkillable waits.  A process on a node whose metadata
# server is unreachable is killed by SIGKILL within a second, SIGINT ends its
# blocking call with EINTR, and a request waits for a server that shows no
# sign of life only as long as --server-wait says, then fails with EIO
# (docs/ARCHITECTURE.md, "Interrupts").  3 nodes (scripts/local-cluster,
# node1 serves the metadata), every cxfsd with --server-wait $WAIT_S.
#
# In (a) to (e) the membership's dead_after is 30 s: a node stopped for a
# few seconds is unreachable but stays a member, and the cluster goes on
# once it is resumed.  (b) runs with the default (900 ms): its dead server
# leaves the membership and a survivor recovers it.
#
#  (a) node1's cxfsd stopped (SIGSTOP): on node2 a stat, a cat, a touch and
#      an ls in directories whose tokens node2 never held block (they must
#      ask the MDS); SIGKILL ends each of them (the time is shown; only a
#      process still there after $KILL_BOUND_S s fails);
#  (c) still stopped: a stat whose process gets SIGINT (a handler without
#      SA_RESTART) returns EINTR;
#  (d) still stopped: a stat left alone fails with EIO after about
#      $WAIT_S s;
#      then node1 goes on (SIGCONT);
#  (e) node3's cxfsd stopped: a touch on node1 (the MDS) of a file node3
#      caches waits for node3's answer to a recall; SIGKILL ends it;
#      then node3 goes on: files written on node2 and node3 are read right
#      everywhere, every node unmounts, cxfs-check is clean;
#  (b) on a new cluster, node1's cxfsd killed (kill -9): the same four
#      processes on node2 wait for the recovery (a survivor becomes the
#      server) and then end without an error; node3 sees node2's creates.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init cluster_kill --need-tgtd

WAIT_S=5             # every node's --server-wait
KILL_BOUND_S=5       # a killed process still there after this fails the test
BLOCK_S=2            # how long the processes are left to block before the kill
export CXFSD_ARGS_NODE1="--server-wait $WAIT_S" CXFSD_ARGS_NODE2="--server-wait $WAIT_S" \
	CXFSD_ARGS_NODE3="--server-wait $WAIT_S"

# proc_state PID: the state letter of PID (Z: dead, not reaped), or "gone".
proc_state() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || true
	echo "${st:-gone}"
}
proc_dead() { local st; st=$(proc_state "$1"); [[ $st == Z || $st == gone ]]; }

# A process of this test that is still there at exit is killed.
OURS=()
kill_ours() {
	local p
	for p in "${OURS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
defer kill_ours

# Nodes stopped with SIGSTOP are resumed at exit, whatever happened.
resume_nodes() {
	local i pid
	for i in 1 2 3; do
		pid=$(node_pid "$i")
		[[ -n "$pid" ]] && kill -CONT "$pid" 2>/dev/null || true
	done
}

# make_dirs TAG: on node3, directories TAG.stat TAG.cat TAG.touch TAG.ls
# with a file in each.  node2 only looks them up (its kernel keeps their
# entries), so each process below asks the server for its own directory.
# And TAG.held, in which node2 creates a file: it caches the directory (its
# next create there lends the directory's tokens to the server).
make_dirs() {
	local m d
	m=$(node_mnt 3)
	for d in stat cat touch ls held; do
		mkdir "$m/$1.$d" && echo "$1 $d" >"$m/$1.$d/f"
		stat "$(node_mnt 2)/$1.$d" >/dev/null
	done
	echo x >"$(node_mnt 2)/$1.held/x"
}

# warm_held TAG: once NAME of TAG.held rested (1 s), a miss on node2 reads
# the directory whole: node2 then knows "new" is absent, and its create
# goes straight to the server, lending the directory's tokens.
warm_held() {
	sleep 1.2
	stat "$(node_mnt 2)/$1.held" "$(node_mnt 2)/$1.held/x" >/dev/null
	stat "$(node_mnt 2)/$1.held/absent" >/dev/null 2>&1 || true
}

# block_and_kill TAG WHAT: on node2 start a stat, a cat, a touch and an ls in
# TAG's directories, and a touch in TAG.held (a change that lends the
# directory's tokens), then kill_blocked.
block_and_kill() {
	local tag=$1 what=$2 m
	local -a pids=() names=()
	m=$(node_mnt 2)
	stat "$m/$tag.stat/f" >/dev/null 2>&1 &
	pids+=($!) names+=(stat)
	cat "$m/$tag.cat/f" >/dev/null 2>&1 &
	pids+=($!) names+=(cat)
	touch "$m/$tag.touch/new" 2>/dev/null &
	pids+=($!) names+=(touch)
	ls "$m/$tag.ls" >/dev/null 2>&1 &
	pids+=($!) names+=(ls)
	mk0=$(cl_stat 2 'c["messages"]["sent_by_type"].get("MKNOD_REQ", 0)')
	touch "$m/$tag.held/new" 2>/dev/null &
	pids+=($!) names+=("touch (lending)")
	kill_blocked "$what" 2
	log "$what: node2 sent $(($(cl_stat 2 'c["messages"]["sent_by_type"].get("MKNOD_REQ", 0)') - mk0)) create(s) to the server"
}

# kill_blocked WHAT NODE: the processes pids[] (named names[], on node
# NODE, from the caller) must still be there (blocked) after $BLOCK_S s;
# SIGKILL them and check each is gone, showing how long it took.
kill_blocked() {
	local what=$1 node=$2 i pid t0 t1 ms st wchan
	OURS+=("${pids[@]}")
	# Reaped by bash without a "Killed" line; /proc tells when they are gone.
	disown "${pids[@]}"
	sleep "$BLOCK_S"
	for i in "${!pids[@]}"; do
		pid=${pids[$i]}
		st=$(proc_state "$pid")
		wchan=$(cat "/proc/$pid/wchan" 2>/dev/null || true)
		if proc_dead "$pid"; then
			fail "$what: node$node's ${names[$i]} ended by itself within $BLOCK_S s (it should wait)"
		else
			pass "$what: node$node's ${names[$i]} waits (state $st, wchan ${wchan:-?})"
		fi
	done
	t0=$(date +%s%N)
	kill -KILL "${pids[@]}" 2>/dev/null || true
	for i in "${!pids[@]}"; do
		pid=${pids[$i]}
		while ! proc_dead "$pid"; do
			t1=$(date +%s%N)
			(((t1 - t0) / 1000000000 >= KILL_BOUND_S)) && break
			sleep 0.01
		done
		t1=$(date +%s%N)
		ms=$(((t1 - t0) / 1000000))
		if proc_dead "$pid"; then
			pass "$what: node$node's ${names[$i]} is gone ${ms} ms after SIGKILL"
		else
			fail "$what: node$node's ${names[$i]} (pid $pid, state $(proc_state "$pid")," \
				"wchan $(cat "/proc/$pid/wchan" 2>/dev/null)) still there ${ms} ms after SIGKILL"
		fi
	done
}

# recovered_after TAG WHAT: with the server dead, the same processes as
# block_and_kill on node2 wait for the recovery (docs/ARCHITECTURE.md,
# "Recovery (CORPSE)"), then each ends by itself without an error (a 30 s
# timeout is the watchdog).
recovered_after() {
	local tag=$1 what=$2 m i t0 t1 rc
	local -a pids=() names=()
	m=$(node_mnt 2)
	t0=$(date +%s%N)
	timeout -k 5 30 stat "$m/$tag.stat/f" >/dev/null &
	pids+=($!) names+=(stat)
	timeout -k 5 30 cat "$m/$tag.cat/f" >/dev/null &
	pids+=($!) names+=(cat)
	timeout -k 5 30 touch "$m/$tag.touch/new" &
	pids+=($!) names+=(touch)
	timeout -k 5 30 ls "$m/$tag.ls" >/dev/null &
	pids+=($!) names+=(ls)
	timeout -k 5 30 touch "$m/$tag.held/new" &
	pids+=($!) names+=("touch (lending)")
	for i in "${!pids[@]}"; do
		rc=0
		wait "${pids[$i]}" || rc=$?
		t1=$(date +%s%N)
		check_eq "$what: node2's ${names[$i]} ends without an error after the recovery" \
			"0" "$rc"
		log "$what: node2's ${names[$i]} ended $(((t1 - t0) / 1000000)) ms after it started"
	done
}

# stat_sigint PATH: stat(2) PATH; SIGINT (handler without SA_RESTART) comes
# after 1.5 s.  Prints the errno name of the call (or "ok") and its time.
stat_sigint() {
	timeout -k 5 60 python3 - "$1" <<'EOF'
import ctypes, errno, os, signal, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
# Python installs its handlers without SA_RESTART; ctypes does not retry.
signal.signal(signal.SIGINT, lambda s, f: None)
main = threading.get_ident()
def poke():
    time.sleep(1.5)
    signal.pthread_kill(main, signal.SIGINT)
threading.Thread(target=poke, daemon=True).start()
buf = ctypes.create_string_buffer(512)
t0 = time.monotonic()
rc = libc.stat(sys.argv[1].encode(), buf)
e = ctypes.get_errno()
print("%s %.2f" % ("ok" if rc == 0 else errno.errorcode.get(e, str(e)), time.monotonic() - t0))
EOF
}

# stat_errno PATH: stat(2) PATH; prints its errno name (or "ok") and its time.
stat_errno() {
	timeout -k 5 120 python3 - "$1" <<'EOF'
import errno, os, sys, time
t0 = time.monotonic()
try:
    os.stat(sys.argv[1])
    r = "ok"
except OSError as e:
    r = errno.errorcode.get(e.errno, str(e.errno))
print("%s %.2f" % (r, time.monotonic() - t0))
EOF
}

export CXFS_CONF_GLOBALS="dead_after 30s"
cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }
defer resume_nodes
make_dirs a
mkdir "$(node_mnt 3)/c" "$(node_mnt 3)/d"
echo c >"$(node_mnt 3)/c/f"
echo d >"$(node_mnt 3)/d/f"
stat "$(node_mnt 2)/c" "$(node_mnt 2)/d" >/dev/null
warm_held a

log "(a) node1's cxfsd stopped (SIGSTOP): node2's processes die to SIGKILL"
kill -STOP "$(node_pid 1)"
block_and_kill a "stopped server"

log "(c) SIGINT ends a blocked stat with EINTR"
out=$(stat_sigint "$(node_mnt 2)/c/f")
log "stat with SIGINT after 1.5 s: $out"
check_eq "stopped server: a stat on node2 interrupted by SIGINT fails with EINTR" EINTR "${out%% *}"

log "(d) a request waits at most --server-wait $WAIT_S s, then fails with EIO"
out=$(stat_errno "$(node_mnt 2)/d/f")
log "stat on node2 with the server stopped: $out"
check_eq "stopped server: a stat on node2 fails with EIO" EIO "${out%% *}"
secs=${out##* }
check "stopped server: the stat waited about --server-wait ($secs s, $WAIT_S s asked)" \
	python3 -c "import sys; sys.exit(not ($WAIT_S - 1 <= float('$secs') <= 3 * $WAIT_S + 5))"

check_eq "node2's status: the server wait is $WAIT_S s" $((WAIT_S * 1000)) \
	"$(cl_stat 2 'c["server_reach"]["wait_ms"]')"
heard=$(cl_stat 2 'c["server_reach"]["heard_ms_ago"]')
check "node2's status: the stopped server was last heard long ago ($heard ms)" \
	test "$heard" -ge $((WAIT_S * 1000))

log "node1 goes on (SIGCONT): the cluster works again"
kill -CONT "$(node_pid 1)"
check_eq "after SIGCONT node2 reads the file its killed cat wanted" "a cat" \
	"$(cat "$(node_mnt 2)/a.cat/f" 2>&1)"
check "after SIGCONT node2 creates a file" eval 'echo again >"$(node_mnt 2)/a.touch/new2"'
check_eq "after SIGCONT node3 reads a file node2 created" again \
	"$(cat "$(node_mnt 3)/a.touch/new2" 2>&1)"
check_eq "after SIGCONT node2 lists the directory its killed ls wanted" f \
	"$(ls "$(node_mnt 2)/a.ls" 2>&1)"
# The killed lending touch may be done by the server after all: node2 must
# see the directory as node3 does, before and after.
log "a.held on node3: $(ls "$(node_mnt 3)/a.held" 2>&1 | tr '\n' ' ')"
for round in 1 2; do
	check_eq "after SIGCONT node2 lists the directory of its killed lending touch as node3 ($round)" \
		"$(ls "$(node_mnt 3)/a.held" 2>&1 | tr '\n' ' ')" "$(ls "$(node_mnt 2)/a.held" 2>&1 | tr '\n' ' ')"
	stat "$(node_mnt 2)/a.held/new" >/dev/null 2>&1 || true
	sleep 1
done
check "after SIGCONT node2 creates in that directory" touch "$(node_mnt 2)/a.held/new3"
check_eq "node3 lists it with node2's file" "$(ls "$(node_mnt 2)/a.held" 2>&1 | tr '\n' ' ')" \
	"$(ls "$(node_mnt 3)/a.held" 2>&1 | tr '\n' ' ')"

log "(e) node3's cxfsd stopped: a process on node1 (the MDS) waiting for node3 dies to SIGKILL"
echo e >"$(node_mnt 1)/e"
# The first read moves atime (relatime), which recalls node3's attribute
# tokens once; after the second node3 keeps them.
cat "$(node_mnt 3)/e" >/dev/null
stat "$(node_mnt 3)/e" >/dev/null
check_eq "node3 reads (and caches) a file" e "$(cat "$(node_mnt 3)/e" 2>&1)"
stat "$(node_mnt 3)/e" >/dev/null
kill -STOP "$(node_pid 3)"
pids=() names=()
touch "$(node_mnt 1)/e" 2>/dev/null &
pids+=($!) names+=(touch)
kill_blocked "stopped client" 1
kill -CONT "$(node_pid 3)"
check_eq "after SIGCONT node3 reads the file again" e "$(cat "$(node_mnt 3)/e" 2>&1)"
check "after SIGCONT a touch on node1 of the file node3 cached works" touch "$(node_mnt 1)/e"
check_nodes_alive
cross_node_rw after-stop
cluster_stop_and_check

log "(b) node1's cxfsd killed (kill -9): node2's waiting processes go on after recovery"
unset CXFS_CONF_GLOBALS
cluster_up 3 || { fail "a 3-node cluster starts again"; it_finish; }
make_dirs b
warm_held b
kill_node 1
recovered_after b "dead server"
check "node2's and node3's cxfsd still run after their server died" \
	eval 'node_alive 2 && node_alive 3'
check_eq "node3 sees node2's files created across the recovery" "new new" \
	"$(ls "$(node_mnt 3)/b.touch" | grep -x new) $(ls "$(node_mnt 3)/b.held" | grep -x new)"
cluster_down
it_finish
