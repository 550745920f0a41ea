# shellcheck shell=bash
# lib_recover.sh: helpers for the MDS recovery tests (t_recover_kill.sh,
# t_recover_more.sh; sourced, not run).  It sources lib_netns.sh and adds:
#
#   RECOVER_MODE         kill (default) or relocate ($CXFS_RECOVER_MODE): with
#                        relocate, the tests that can move the metadata
#                        server on purpose (`cxfsctl relocate`) do that in
#                        place of a kill -9, to check the workload and the
#                        verifier against a failover that already works
#   serving_nodes        the numbers of the live nodes whose status says they
#                        serve (cluster.is_server), space-separated
#   server_seen_by I     the server node I names (cluster.server), e.g. node2
#   wait_new_server OLD SECS NODE...
#                        until exactly one of NODE... serves, it is not OLD,
#                        and every NODE names it; prints its number (1 if
#                        not within SECS)
#   load_start NAME DIR NODE...
#                        recover_load.py on the mounts of NODE... in DIR
#                        (relative to the mounts) until load_stop NAME;
#                        output in $T_TMP/load.NAME (CXFS_RECOVER_SAME_NODE=1:
#                        its read-backs through the writer's own mount)
#   load_stop NAME [MIN_OPS]
#                        stop it, wait (bounded), and judge it: one check
#                        (no error, every check of its verifier passed, at
#                        least MIN_OPS operations, default 1: it ran; how
#                        many is the machine's speed, not a check); sets
#                        LOAD_PAUSE_MS (its longest call); if a call hung
#                        (its watchdog fired), bail
#   sampler_start NAME / sampler_stop NAME WHAT
#                        sample every live node's status (10 times a second)
#                        and one check at the stop: never two servers at once
#   catch_start, catch_wait, next_in_order, first_in_order, but: see below
#   bail WHY             fail, dump, abort every mount, end the test
#   watchdog_dump WHY    hangwatch.py's dump of every node (status JSON,
#                        threads, logs), with WHY, into the test's output

. "$(dirname "${BASH_SOURCE[0]}")/lib_netns.sh"

RLOAD=$IT_DIR/recover_load.py
HANGWATCH=$IT_DIR/hangwatch.py
# shellcheck disable=SC2034 # used by the tests
RECOVER_MODE=${CXFS_RECOVER_MODE:-kill}

serving_nodes() { python3 "$RLOAD" servers --cluster "$CL_DIR" || true; }
server_seen_by() { cl_stat "$1" 'c["server"]' 2>/dev/null || echo "(no answer)"; }

wait_new_server() {
	local old=$1 secs=$2 s
	shift 2
	s=$(python3 "$RLOAD" wait-server --cluster "$CL_DIR" --old "$old" --secs "$secs" \
		--nodes "$@") || return 1
	echo "$s"
}

declare -A _LOAD_PID
_DUMPS=0
load_start() {
	local name=$1 dir=$2 i args=()
	shift 2
	for i in "$@"; do args+=(--mnt "$i=$(node_mnt "$i")"); done
	rm -f "$T_TMP/stop.$name"
	python3 "$RLOAD" "${args[@]}" --dir "$dir" --state "$T_TMP/state" --stop "$T_TMP/stop.$name" \
		--seed "${RECOVER_SEED:-7}${#name}" --cluster "$CL_DIR" --tag "$name" \
		--procs "${RECOVER_PROCS:-2}" ${CXFS_RECOVER_SAME_NODE:+--same-node} >"$T_TMP/load.$name" 2>&1 &
	_LOAD_PID[$name]=$!
	defer "touch '$T_TMP/stop.$name'; kill_pid ${_LOAD_PID[$name]} 60"
}

load_stop() {
	local name=$1 min=${2:-1} pid rc=0
	pid=${_LOAD_PID[$name]}
	touch "$T_TMP/stop.$name"
	# Its own watchdog ends a hung call in 30 s and the verifier's in 30 s each.
	if ! wait_until 240 eval '! kill -0 '"$pid"' 2>/dev/null'; then
		kill_pid "$pid" 1
		bail "$name: the workload did not end 240 s after it was told to stop"
	fi
	wait "$pid" || rc=$?
	# "PAUSE_MS OK|BAD summary" from its JSON line.
	local verdict
	verdict=$(python3 - "$T_TMP/load.$name" "$min" "$rc" <<'EOF'
import json, sys
try:
    r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
except (OSError, ValueError, IndexError):
    print("? BAD no summary")
    sys.exit(0)
good = sys.argv[3] == "0" and r["ops"] >= int(sys.argv[2])
print("%s %s %d operations, %d appends, %d locked increments, %d fsynced files, "
      "%d unlinked-open files; %d errors; longest call %.0f ms"
      % (r["max_pause_ms"], "OK" if good else "BAD", r["ops"], r["appends"], r["increments"],
         r["synced"], r["unlinked_open"], r["errors"], r["max_pause_ms"]))
EOF
)
	# shellcheck disable=SC2034 # for the tests
	LOAD_PAUSE_MS=${verdict%% *}
	verdict=${verdict#* }
	if [[ $verdict == OK* ]]; then
		pass "$name: ${verdict#OK }"
		return 0
	fi
	fail "$name: the workload failed (exit $rc): ${verdict#BAD }"
	grep -v -e '^{' -e '^ok ' -e DUMP "$T_TMP/load.$name" | head -n 40 || true
	tail -n 1 "$T_TMP/load.$name"
	# Its watchdog dumped every node (in $T_TMP/load.$name) and aborted
	# the mounts of the workload's nodes: their daemons go, nothing more
	# can be learnt from this cluster.
	((rc != 3)) || bail "$name: a call of the workload hung (its watchdog's dump: $T_TMP/load.$name)"
	return 1
}

sampler_start() {
	local name=$1
	rm -f "$T_TMP/stop.sampler.$name"
	python3 "$RLOAD" sample --cluster "$CL_DIR" --stop "$T_TMP/stop.sampler.$name" \
		>"$T_TMP/sampler.$name" 2>&1 &
	_LOAD_PID[sampler.$name]=$!
	defer "touch '$T_TMP/stop.sampler.$name'; kill_pid ${_LOAD_PID[sampler.$name]} 5"
}

sampler_stop() {
	local name=$1 what=$2 pid
	pid=${_LOAD_PID[sampler.$name]}
	touch "$T_TMP/stop.sampler.$name"
	wait_until 20 eval '! kill -0 '"$pid"' 2>/dev/null' || kill_pid "$pid" 1
	wait "$pid" 2>/dev/null || true
	if grep -q '^ok ' "$T_TMP/sampler.$name"; then
		pass "$what: $(sed -n 's/^ok *//p' "$T_TMP/sampler.$name")"
	else
		fail "$what: $(cat "$T_TMP/sampler.$name")"
	fi
}

watchdog_dump() {
	local out=$T_TMP/dump.$((++_DUMPS))
	echo "=== watchdog: $1: every node's state (all of it in $out)"
	timeout -k 5 120 python3 "$HANGWATCH" dump --cluster "$CL_DIR" >"$out" 2>&1 || true
	head -n 300 "$out"
}

# catch_start NAME SECS "WORDS" [--stop-node K] NODE...: watch the logs of
# NODE... (from now on) for a line holding every word of WORDS and SIGSTOP
# that node's cxfsd (or node K's) the moment it appears; catch_wait NAME
# then sets CAUGHT to "N line" (N the node whose log it is), or returns 1
# (call it directly, not in $(...): it waits for the watcher).
catch_start() {
	local name=$1 secs=$2 words=$3 stop=()
	shift 3
	if [[ $1 == --stop-node ]]; then stop=(--stop-node "$2"); shift 2; fi
	rm -f "$T_TMP/catch.$name.ready"
	# shellcheck disable=SC2086
	python3 "$RLOAD" catch --cluster "$CL_DIR" --nodes "$@" --words $words --sigstop "${stop[@]}" \
		--secs "$secs" --ready "$T_TMP/catch.$name.ready" >"$T_TMP/catch.$name" 2>&1 &
	_LOAD_PID[catch.$name]=$!
	defer "kill_pid ${_LOAD_PID[catch.$name]} 1"
	wait_until 10 test -e "$T_TMP/catch.$name.ready"
}

catch_wait() {
	local rc=0
	wait "${_LOAD_PID[catch.$1]}" || rc=$?
	# shellcheck disable=SC2034 # for the tests
	CAUGHT=$(cat "$T_TMP/catch.$1")
	return "$rc"
}

# next_in_order DEAD ALIVE...: the first of ALIVE after DEAD in the server
# order node1..nodeN (wrapping).
next_in_order() {
	local dead=$1 i k
	shift
	for ((k = 1; k < CL_N; k++)); do
		i=$(((dead - 1 + k) % CL_N + 1))
		[[ " $* " == *" $i "* ]] && { echo "$i"; return 0; }
	done
	return 1
}

# first_in_order ALIVE...: the first of ALIVE in the server order
# node1..nodeN: the node a recovery elects (corpse.c's elect).
first_in_order() {
	local i
	for ((i = 1; i <= CL_N; i++)); do
		[[ " $* " == *" $i "* ]] && { echo "$i"; return 0; }
	done
	return 1
}

# but WHO... : the nodes 1..CL_N other than WHO..., space-separated.
but() {
	local i out=()
	for ((i = 1; i <= CL_N; i++)); do
		[[ " $* " == *" $i "* ]] || out+=("$i")
	done
	echo "${out[*]}"
}

# bail WHY: the cluster is in no state to go on (no server, a hang): one
# failed check, the verdict of any sampler, every node's state, then the
# FUSE connections of every node
# are aborted (so nothing of the test stays blocked in a mount, the cleanup
# can unmount) and the test ends.
bail() {
	local k
	fail "$1: the test stops here"
	# A sampler's verdict until now is still worth a check.
	for k in "${!_LOAD_PID[@]}"; do
		[[ $k == sampler.* ]] && sampler_stop "${k#sampler.}" "never two servers at once until then"
	done
	watchdog_dump "$1"
	timeout -k 5 60 python3 "$HANGWATCH" abort --cluster "$CL_DIR" || true
	it_finish
}
