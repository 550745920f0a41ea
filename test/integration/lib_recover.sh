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
#                        output in $T_TMP/load.NAME
#   load_stop NAME [MIN_OPS]
#                        stop it, wait (bounded), and judge it: one check
#                        (no error, every check of its verifier passed, at
#                        least MIN_OPS operations, default 20); sets
#                        LOAD_PAUSE_MS (its longest call)
#   sampler_start NAME / sampler_stop NAME WHAT
#                        sample every live node's status (10 times a second)
#                        and one check at the stop: never two servers at once
#   watchdog_dump WHY    hangwatch.py's dump of every node (status JSON,
#                        threads, logs), with WHY, into the test's output

. "$(dirname "${BASH_SOURCE[0]}")/lib_netns.sh"

RLOAD=$IT_DIR/recover_load.py
HANGWATCH=$IT_DIR/hangwatch.py
RECOVER_MODE=${CXFS_RECOVER_MODE:-kill}

serving_nodes() { python3 "$RLOAD" servers --cluster "$CL_DIR"; }
server_seen_by() { cl_stat "$1" 'c["server"]' 2>/dev/null; }

wait_new_server() {
	local old=$1 secs=$2 s
	shift 2
	s=$(python3 "$RLOAD" wait-server --cluster "$CL_DIR" --old "$old" --secs "$secs" \
		--nodes "$@") || return 1
	echo "$s"
}

declare -A _LOAD_PID
load_start() {
	local name=$1 dir=$2 i args=()
	shift 2
	for i in "$@"; do args+=(--mnt "$i=$(node_mnt "$i")"); done
	rm -f "$T_TMP/stop.$name"
	python3 "$RLOAD" "${args[@]}" --dir "$dir" --state "$T_TMP/state" --stop "$T_TMP/stop.$name" \
		--seed "${RECOVER_SEED:-7}${#name}" --cluster "$CL_DIR" --tag "$name" \
		--procs "${RECOVER_PROCS:-2}" >"$T_TMP/load.$name" 2>&1 &
	_LOAD_PID[$name]=$!
	defer "touch '$T_TMP/stop.$name'; kill_pid ${_LOAD_PID[$name]} 60"
}

load_stop() {
	local name=$1 min=${2:-20} pid rc=0
	pid=${_LOAD_PID[$name]}
	touch "$T_TMP/stop.$name"
	# Its own watchdog ends a hung call in 30 s and the verifier's in 30 s each.
	if ! wait_until 240 eval '! kill -0 '"$pid"' 2>/dev/null'; then
		fail "$name: the workload did not end 240 s after it was told to stop"
		watchdog_dump "workload $name did not end"
		kill_pid "$pid" 1
		return 1
	fi
	wait "$pid" || rc=$?
	LOAD_PAUSE_MS=$(python3 - "$T_TMP/load.$name" "$min" "$rc" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
try:
    r = json.loads(text.strip().splitlines()[-1])
except (ValueError, IndexError):
    print("?")
    sys.exit(0)
print(r["max_pause_ms"])
EOF
)
	local summary
	summary=$(tail -n 1 "$T_TMP/load.$name")
	if ((rc == 0)) && python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(r["ops"] < int(sys.argv[2]))' \
		"$summary" "$min" 2>/dev/null; then
		pass "$name: $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%d operations, %d appends, %d locked increments, %d fsynced files, %d unlinked-open files; 0 errors; longest call %.0f ms" % (r["ops"], r["appends"], r["increments"], r["synced"], r["unlinked_open"], r["max_pause_ms"]))' "$summary")"
	else
		fail "$name: the workload failed (exit $rc):"
		grep -v '^{' "$T_TMP/load.$name" | grep -v '^ok ' | head -n 40
		tail -n 1 "$T_TMP/load.$name"
		return 1
	fi
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
	wait "$pid" 2>/dev/null
	if grep -q '^ok ' "$T_TMP/sampler.$name"; then
		pass "$what: $(sed -n 's/^ok *//p' "$T_TMP/sampler.$name")"
	else
		fail "$what: $(cat "$T_TMP/sampler.$name")"
	fi
}

watchdog_dump() {
	echo "=== watchdog: $1: every node's state"
	timeout -k 5 120 python3 "$HANGWATCH" dump --cluster "$CL_DIR" 2>&1 | head -n 400
}
