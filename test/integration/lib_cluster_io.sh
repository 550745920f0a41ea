# shellcheck shell=bash
# lib_cluster_io.sh: helpers shared by the t_cluster_*.sh tests (sourced, not
# run).  It sources lib_cluster.sh and adds:
#
#   run_io CHECK [cluster_io.py options] PATH...   run one check of
#       cluster_io.py (with a time limit) and turn its "ok"/"FAIL" lines into
#       this test's pass/fail; its indented lines (figures) are shown
#   node_paths REL           the same relative path through every node's mount
#   cl_stat I EXPR           a value from node I's `cxfsctl status --json`:
#                            EXPR is a Python expression over c (the "cluster"
#                            object), e.g. 'c["messages"]["sent"]'
#   check_nodes_alive        one check: every node's cxfsd still runs
#   badframe_counted I KINDS [badframe.py options]
#                            run_badframe at node I, and one check that each
#                            of node I's cluster.messages.dropped counters
#                            named in KINDS (a Python tuple of strings) grew
#   cross_node_rw TAG        one check: bytes written on each node are read
#                            right on the others
#   checking_writer DIR N TAG
#                            until $T_TMP/stop exists, rewrite DIR/f0..f(N-1)
#                            in turn from $T_TMP/pool, each synced and read
#                            back with O_DIRECT (see below)
#   cluster_stop_and_check [FN]
#                            unmount every node (clients first, the MDS
#                            last), wait for each cxfsd to exit, run
#                            cxfs-check on the LUN while tgtd still serves it
#                            (`scripts/local-cluster down` removes lun.img),
#                            then FN if given and every node stopped, then
#                            stop the rest of the cluster
#
# These belong in lib_cluster.sh; they live here because the tests were
# written while lib_cluster.sh was being edited by others.

. "$(dirname "${BASH_SOURCE[0]}")/lib_cluster.sh"

CLUSTER_IO=$IT_DIR/cluster_io.py

# tally_line LINE: a driver's "ok ..." line passes a check and a "FAIL ..."
# line fails one (counted in TALLY_OK and TALLY_FAIL); its closing "N passed,
# N failed" is already counted; any other line is shown.
tally_line() {
	if [[ "$1" =~ ^ok\ +(.*)$ ]]; then
		pass "${BASH_REMATCH[1]}"
		TALLY_OK=$((TALLY_OK + 1))
	elif [[ "$1" =~ ^FAIL\ +(.*)$ ]]; then
		fail "${BASH_REMATCH[1]}"
		TALLY_FAIL=$((TALLY_FAIL + 1))
	elif [[ -n "$1" && ! "$1" =~ ^[0-9]+\ passed,\ [0-9]+\ failed$ ]]; then
		echo "$1"
	fi
}

run_io() {
	local out rc=0 line nok nfail
	out=$(timeout -k 10 "${CLUSTER_IO_TIMEOUT:-120}" python3 "$CLUSTER_IO" "$@" 2>&1) || rc=$?
	TALLY_OK=0 TALLY_FAIL=0
	while IFS= read -r line; do
		tally_line "$line"
	done <<<"$out"
	nok=$TALLY_OK nfail=$TALLY_FAIL
	if ((rc == 124 || rc == 137)); then
		fail "cluster_io.py $1 did not finish in ${CLUSTER_IO_TIMEOUT:-120} s (hung?)"
	elif ((rc != 0 && nfail == 0)); then
		fail "cluster_io.py $1 exited $rc without saying why"
	elif ((nok + nfail == 0)); then
		fail "cluster_io.py $1 reported nothing"
	fi
	return 0
}

node_paths() {
	local i
	for ((i = 1; i <= CL_N; i++)); do echo "$(node_mnt "$i")/$1"; done
}

cl_stat() {
	cxfsctl_json "$1" | python3 -c '
import json, sys
c = json.load(sys.stdin)["cluster"]
print(eval(sys.argv[1]))' "$2"
}

# wait_kept_durable N [SECONDS]: wait until node N keeps no request it has
# not heard is durable (cluster.unsafe.kept is 0; until then it asks the MDS
# four times a second, messages the caching checks must not count).
wait_kept_durable() {
	local n=$1 i
	for ((i = 0; i < ${2:-5} * 10; i++)); do
		[[ $(cl_stat "$n" 'c["unsafe"]["kept"]') == 0 ]] && return 0
		sleep 0.1
	done
	return 1
}

badframe_counted() {
	local n=$1 kinds=$2 expr before after grew
	shift 2
	expr="[c['messages']['dropped'][k] for k in $kinds]"
	before=$(cl_stat "$n" "$expr")
	run_badframe "$n" "$@"
	after=$(cl_stat "$n" "$expr")
	log "node$n dropped $kinds: $before -> $after"
	grew=$(python3 -c 'import sys; b = eval(sys.argv[1]); a = eval(sys.argv[2]); print(int(all(y > x for x, y in zip(b, a))))' \
		"$before" "$after")
	check_eq "node$n counts the refused frames (dropped: $kinds all grew)" 1 "$grew"
}

check_nodes_alive() {
	local i dead=()
	for ((i = 1; i <= CL_N; i++)); do
		node_alive "$i" || dead+=("node$i")
	done
	if ((${#dead[@]} == 0)); then
		pass "every node's cxfsd still runs"
	else
		fail "cxfsd gone on: ${dead[*]}"
	fi
}

cross_node_rw() {
	local tag=$1 i j bad=() want got
	for ((i = 1; i <= CL_N; i++)); do
		want="$tag written on node$i $RANDOM$RANDOM"
		if ! echo "$want" >"$(node_mnt "$i")/xnode.$tag" 2>/dev/null; then
			bad+=("write on node$i failed")
			continue
		fi
		for ((j = 1; j <= CL_N; j++)); do
			got=$(cat "$(node_mnt "$j")/xnode.$tag" 2>&1) || true
			[[ "$got" == "$want" ]] || bad+=("node$j read '$got' after node$i wrote '$want'")
		done
	done
	if ((${#bad[@]} == 0)); then
		pass "$tag: a file written on each node is read right on every node"
	else
		fail "$tag: ${bad[*]}"
	fi
}

# checking_writer DIR N TAG: rewrite N files of DIR in turn with 64 KiB ..
# 1 MiB from the random pool $T_TMP/pool (4 MiB at least), each synced and
# read back with O_DIRECT, until $T_TMP/stop exists.  "$T_TMP/written.TAG"
# gets "K SKIP LEN" per write (the last line of a file fK is its content),
# "$T_TMP/errors.TAG" every failed write or wrong read-back: an application
# error.
checking_writer() {
	local dir=$1 nf=$2 tag=$3 n=0 k len skip
	mkdir -p "$dir"
	while [[ ! -e "$T_TMP/stop" ]]; do
		k=$((n % nf))
		n=$((n + 1))
		len=$(( (RANDOM % 16 + 1) * 65536 ))
		skip=$(( RANDOM % 48 ))
		if ! dd if="$T_TMP/pool" of="$dir/f$k" bs=65536 skip="$skip" count=$((len / 65536)) \
			conv=fsync status=none 2>>"$T_TMP/writer.$tag.err"; then
			echo "$tag: write f$k" >>"$T_TMP/errors.$tag"
		elif ! cmp -s <(dd if="$dir/f$k" bs=65536 iflag=direct status=none) \
			<(dd if="$T_TMP/pool" bs=65536 skip="$skip" count=$((len / 65536)) status=none); then
			echo "$tag: read back f$k" >>"$T_TMP/errors.$tag"
		fi
		echo "$k $skip $len" >>"$T_TMP/written.$tag"
	done
}

# writers_wait PID...: the swrite.py writers, each printing its count to
# $T_TMP/writes.*, exit 0 (fails if not); WRITES: the writes they made.
writers_wait() {
	local p rc=0 w
	for p in "$@"; do wait "$p" || rc=1; done
	WRITES=0
	for w in "$T_TMP"/writes.*; do WRITES=$((WRITES + $(cat "$w"))); done
	rm -f "$T_TMP"/writes.*
	return $rc
}

# check_all SWRITE_PY FILE WHAT SHA SIZE [bsha]: every node of three reads
# SHA from FILE (under the mounts) with O_DIRECT (and buffered, with bsha)
# and sees SIZE.
check_all() {
	local i how
	for i in 1 2 3; do
		for how in sha ${6:-}; do
			check_eq "$3: node$i reads the model ($how)" "$4" \
				"$(timeout 120 python3 "$1" "$how" "$(node_mnt $i)/$2" 2>&1)"
		done
		check_eq "$3: node$i sees size $5" "$5" "$(stat -c %s "$(node_mnt $i)/$2")"
	done
}

cluster_stop_and_check() {
	local i pid uri bad=()
	for ((i = CL_N; i >= 1; i--)); do
		pid=$(node_pid "$i")
		if ! node_alive "$i"; then
			bad+=("node$i was not running")
			continue
		fi
		if ! fusermount3 -u "$(node_mnt "$i")" 2>/dev/null; then
			sleep 1
			fusermount3 -u "$(node_mnt "$i")" 2>/dev/null || {
				bad+=("fusermount3 -u failed on node$i")
				continue
			}
		fi
		if ! wait_until 30 eval '! node_alive '"$i"; then
			bad+=("node$i (pid $pid) still runs 30 s after its unmount")
		fi
	done
	if ((${#bad[@]} == 0)); then
		pass "every node unmounts and its cxfsd exits (clients first, the MDS last)"
	else
		fail "unmount: ${bad[*]}"
	fi
	uri=$(sed -n 's/^uri=//p' "$CL_DIR/ports")
	if ((${#bad[@]} == 0)) && [[ -n "$uri" ]]; then
		check_volume "$uri" "cxfs-check finds no problem on the LUN after every node unmounted"
	else
		fail "cxfs-check not run: the volume is still in use or its URL is unknown"
	fi
	((${#bad[@]} == 0)) && [[ -n "${1:-}" ]] && "$1"
	cluster_down
}
