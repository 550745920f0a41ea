# lib_cluster.sh: helpers for the multi-node integration tests (sourced, not
# run).  It sources lib.sh (unless the test already did) and adds a whole
# cluster on this machine, started with scripts/local-cluster (see
# docs/local-cluster.md).
#
# A multi-node test does:
#
#   . "$(dirname "$0")/lib_cluster.sh"
#   it_init t_name --need-tgtd
#   cluster_up 3 || { fail "cluster up"; it_finish; }
#   echo x >"$(node_mnt 1)/f"; check_eq "seen on node 2" x "$(cat "$(node_mnt 2)/f")"
#   it_finish
#
# cluster_up registers `scripts/local-cluster down` on lib.sh's cleanup
# stack before it starts anything, so the cluster is stopped (by PID) on
# every exit path, and registers a dump of every node's log that runs at
# exit when the test failed or aborted.  Nodes are numbered from 1; node 1
# starts first and serves the metadata.
#
# Functions: cluster_up, cluster_down; node_mnt, node_sock, node_log,
# node_pid, node_port, node_epoch, node_mnts, node_alive; cxfsctl_json;
# kill_node; dump_logs; run_cluster_model (cluster_model.py over the
# mounts) and run_badframe (badframe.py at a node's port), which add checks.
#
# The node_* functions only print paths and numbers, so they may be called
# inside $(...); cluster_up and kill_node must be called directly.

if ! declare -F it_init >/dev/null; then
	. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

LOCAL_CLUSTER=$CXFS_SOURCE_DIR/scripts/local-cluster
CXFSCTL=$CXFS_BIN_DIR/cxfsctl
CLUSTER_MODEL=$IT_DIR/cluster_model.py
BADFRAME=$IT_DIR/badframe.py

CL_DIR=    # the cluster's directory (under $T_TMP)
CL_N=0     # its number of nodes
CL_CONF=   # its cluster.conf
CL_KEY=    # its secret file
CL_NAME=local   # the cluster's name (as scripts/local-cluster writes it)

# cluster_up N [scripts/local-cluster up options, e.g. --size 2G --fs NAME]:
# start tgtd and N nodes in $T_TMP/cluster and wait until all are mounted
# (CXFS_MOUNT_TIMEOUT seconds each, default 30).  On failure prints
# local-cluster's output (which holds the end of the failing log) and
# returns 1; what was started is stopped by then.
cluster_up() {
	local n=$1 out rc=0
	shift
	if [[ $BASHPID != "$$" ]]; then
		echo "cluster_up must not run in a subshell" >&2
		return 1
	fi
	[[ -n "$T_TMP" ]] || { echo "cluster_up: call it_init first" >&2; return 1; }
	CL_DIR=$T_TMP/cluster
	CL_N=$n
	CL_CONF=$CL_DIR/cluster.conf
	CL_KEY=$CL_DIR/cluster.key
	mkdir -p "$CL_DIR"
	# Registered first, so they run even if up fails half-way; the log
	# dump runs before the cluster goes down (the stack is last-in first-out).
	defer "cluster_down"
	defer "_cluster_dump_if_failed"
	log "starting a $n-node cluster in $CL_DIR"
	out=$(CXFS_BIN_DIR=$CXFS_BIN_DIR CXFS_MOUNT_TIMEOUT=${CXFS_MOUNT_TIMEOUT:-30} \
		"$LOCAL_CLUSTER" up -n "$n" --dir "$CL_DIR" "$@" 2>&1) || rc=$?
	echo "$out" >"$T_TMP/cluster-up.log"
	if ((rc != 0)); then
		echo "scripts/local-cluster up -n $n failed (exit $rc):" >&2
		echo "$out" >&2
		return 1
	fi
	log "cluster up: $(grep -m1 'metadata server' <<<"$out" | sed 's/^ *//')"
	return 0
}

# cluster_down: stop every node and tgtd (idempotent; the logs stay in
# $CL_DIR until the temp dir goes).
cluster_down() {
	[[ -n "$CL_DIR" ]] || return 0
	"$LOCAL_CLUSTER" down --dir "$CL_DIR" >>"$T_TMP/cluster-down.log" 2>&1 ||
		echo "scripts/local-cluster down --dir $CL_DIR failed; see $T_TMP/cluster-down.log" >&2
}

# Paths and numbers of node I.
node_mnt() { echo "$CL_DIR/node$1/mnt"; }
node_sock() { echo "$CL_DIR/node$1/admin.sock"; }
node_log() { echo "$CL_DIR/node$1/log"; }
node_pid() { cat "$CL_DIR/node$1/pid" 2>/dev/null || true; }
node_port() { sed -n "s/^node$1=//p" "$CL_DIR/ports" 2>/dev/null; }

# The mount points of every node, one per line (for "${array[@]}" use:
# mapfile -t MNTS < <(node_mnts)).
node_mnts() {
	local i
	for ((i = 1; i <= CL_N; i++)); do node_mnt "$i"; done
}

# cxfsctl_json I: node I's `cxfsctl status --json` (its exit status too).
cxfsctl_json() { "$CXFSCTL" --socket "$(node_sock "$1")" status --json; }

# node_alive I: node I's cxfsd runs (not a zombie).
node_alive() {
	local pid st
	pid=$(node_pid "$1")
	[[ -n "$pid" ]] || return 1
	st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ -n "$st" && "$st" != Z ]]
}

# kill_node I: SIGKILL node I's cxfsd (by its PID), wait until it is gone,
# and lazily detach its dead mount (as lib.sh's kill_cxfs does).
kill_node() {
	local i=$1 pid
	pid=$(node_pid "$i")
	[[ -n "$pid" ]] || { echo "kill_node: node $i has no pid" >&2; return 1; }
	log "kill -9 node$i (pid $pid)"
	kill -KILL "$pid" 2>/dev/null || true
	wait_until 10 eval '! node_alive '"$i" || echo "kill_node: node$i (pid $pid) still there" >&2
	fusermount3 -uz "$(node_mnt "$i")" 2>/dev/null || true
}

# dump_logs [LINES]: the last LINES (default 40) lines of every node's log,
# of tgtd's log and of local-cluster's output.
dump_logs() {
	local lines=${1:-40} f
	[[ -n "$CL_DIR" && -d "$CL_DIR" ]] || return 0
	for f in "$CL_DIR"/node*/log "$CL_DIR/tgtd.log" "$T_TMP/cluster-up.log"; do
		[[ -s "$f" ]] || continue
		echo "--- last lines of $f:"
		tail -n "$lines" "$f"
	done
	echo "---"
}

# A report of the address, leak, undefined-behaviour or thread sanitizer in any
# node's log fails the test (scripts/test --asan / --tsan builds keep going
# after most reports, so only the log shows them).
_it_finish_checks() {
	local f n pat='ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:'
	[[ -n "$CL_DIR" && -d "$CL_DIR" ]] || return 0
	for f in "$CL_DIR"/node*/log; do
		[[ -s "$f" ]] || continue
		n=$(grep -c -E "$pat" "$f" || true)
		if ((n > 0)); then
			fail "$f holds $n sanitizer report(s)"
			grep -m 2 -A 14 -E "$pat" "$f"
		fi
	done
}

_cluster_dump_if_failed() {
	if ((T_FAIL > 0 || T_DONE == 0)); then
		dump_logs 40
	fi
}

# run_cluster_model SEED OPS [MNT...]: the randomized multi-node model test
# (with --strict: O_DIRECT, shared mmap and user.* attributes must work) on
# the given mount points (default: every node's); passes or fails one check,
# showing its last lines on failure.
run_cluster_model() {
	local seed=$1 ops=$2 out rc=0 mnts=()
	shift 2
	if (($#)); then mnts=("$@"); else mapfile -t mnts < <(node_mnts); fi
	out=$(timeout -k 10 "${CLUSTER_MODEL_TIMEOUT:-900}" \
		python3 "$CLUSTER_MODEL" --strict --seed "$seed" --ops "$ops" "${mnts[@]}" 2>&1) || rc=$?
	if ((rc == 0)); then
		pass "cluster_model seed $seed, $ops operations over ${#mnts[@]} mounts"
	else
		fail "cluster_model seed $seed, $ops operations (exit $rc)"
		tail -n 20 <<<"$out"
	fi
}

# node_epoch I [KEY]: node I's membership epoch (KEY floor: the floor below
# which it refuses messages), cluster.membership.KEY of `cxfsctl status
# --json`, or an "epoch" in "cluster" or at its top; else 1.
node_epoch() {
	cxfsctl_json "$1" 2>/dev/null | python3 -c '
import json, sys
key = sys.argv[1]
try:
    j = json.load(sys.stdin)
except ValueError:
    j = {}
c = j.get("cluster") if isinstance(j.get("cluster"), dict) else {}
m = c.get("membership") if isinstance(c.get("membership"), dict) else {}
print(int(m.get(key, c.get("epoch", j.get("epoch", 1)))))' "${2:-epoch}" 2>/dev/null || echo 1
}

# run_badframe I [badframe.py options]: hostile frames at node I's port
# (with node I's epoch, so that only the intended check refuses them); one
# check per case.
run_badframe() {
	local i=$1 out rc=0 line
	shift
	out=$(timeout -k 5 120 python3 "$BADFRAME" --host 127.0.0.1 --port "$(node_port "$i")" \
		--secret "$CL_KEY" --cluster "$CL_NAME" --epoch "$(node_epoch "$i")" \
		--floor "$(node_epoch "$i" floor)" "$@" 2>&1) || rc=$?
	while IFS= read -r line; do
		if [[ "$line" =~ ^ok\ +(.*)$ ]]; then
			pass "node$i badframe ${BASH_REMATCH[1]}"
		elif [[ "$line" =~ ^FAIL\ +(.*)$ ]]; then
			fail "node$i badframe ${BASH_REMATCH[1]}"
		fi
	done <<<"$out"
	((rc == 0)) || fail "node$i: badframe.py exit $rc"
}
