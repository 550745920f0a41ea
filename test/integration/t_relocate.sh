#!/usr/bin/env bash
# t_relocate.sh: the metadata server moves around a 3-node cluster while
# every node runs a mixed workload, and no application notices.
#
#  - refusals: relocating to an unknown node, to the node that already
#    serves, and to another filesystem's name are refused with a message and
#    the MDS stays where it was;
#  - a mixed workload on every node (reloc_load.py: creates written in
#    pieces and read back, renames (also over a file), O_APPEND records to a
#    shared log, a shared counter incremented under a POSIX lock, listings,
#    unlinks) runs while the MDS is relocated 21 times around the nodes,
#    asked from every node in turn; the workloads see no error and every
#    byte is right; the shared log holds every node's records, each once and
#    in order; the counter equals the increments made;
#  - a relocation whose target is stopped and then killed before it could
#    instantiate aborts: the old MDS keeps serving and the workload on the
#    other two nodes sees no error;
#  - an orderly stop (SIGTERM, as systemd does) of the MDS node's cxfsd
#    hands the filesystem to the next node of the server order;
#  - at the end every node unmounts and cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init relocate --need-tgtd

LOAD=$IT_DIR/reloc_load.py

# mds: which node serves now, as node 1 sees it.
mds() { cl_stat "$1" 'c["server"]'; }

# relocate FROM TO: ask node FROM's daemon to move the MDS to node TO.
relocate() { "$CXFSCTL" --socket "$(node_sock "$1")" relocate shared "node$2"; }

# start_loads PHASE NODE...: a workload on each of these nodes, in a
# directory of its own per phase; sets LOAD_PIDS.
start_loads() {
	local i phase=$1
	shift
	LOAD_PIDS=()
	rm -f "$T_TMP/stop"
	for i in "$@"; do
		python3 "$LOAD" --mnt "$(node_mnt "$i")" --tag "$phase-node$i" --stop "$T_TMP/stop" \
			--seed "$i$RANDOM" >"$T_TMP/load.node$i" 2>&1 &
		LOAD_PIDS+=($!)
		defer "kill ${LOAD_PIDS[-1]} 2>/dev/null || true"
	done
}

# stop_loads NODE...: stop the workloads and judge each node's result.
stop_loads() {
	local i p
	touch "$T_TMP/stop"
	for p in "${LOAD_PIDS[@]}"; do
		timeout 120 tail --pid="$p" -f /dev/null || true
	done
	for i in "$@"; do
		python3 - "$T_TMP/load.node$i" "node$i" <<'EOF' && pass "node$i: its workload saw no error and read every byte right" || fail "node$i: workload errors (see above)"
import json, sys
text = open(sys.argv[1]).read()
try:
    r = json.loads(text.strip().splitlines()[-1])
except Exception:
    print("  %s: no result: %s" % (sys.argv[2], text[-2000:]))
    sys.exit(1)
print("  %s: %d operations, %d appends, %d locked increments, %d errors"
      % (r["tag"], r["ops"], r["appends"], r["increments"], r["errors"]))
for e in r["first_errors"]:
    print("    " + e)
sys.exit(1 if r["errors"] or r["ops"] < 50 else 0)
EOF
	done
}

cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }
mkdir -p "$(node_mnt 1)/load"

log "1: refusals"
out=$(relocate 2 9 2>&1) && fail "relocation to an unknown node accepted" ||
	check_eq "relocation to an unknown node is refused by name" 1 "$(grep -c 'no node named' <<<"$out")"
out=$(relocate 2 1 2>&1) && fail "relocation to the serving node accepted" ||
	check_eq "relocation to the node that serves is refused" 1 "$(grep -c 'already serves' <<<"$out")"
out=$("$CXFSCTL" --socket "$(node_sock 3)" relocate nosuchfs node2 2>&1) &&
	fail "relocation of an unknown filesystem accepted" ||
	check_eq "relocation of an unknown filesystem is refused" 1 "$(grep -c 'no filesystem' <<<"$out")"
check_eq "node1 still serves after the refusals" node1 "$(mds 2)"

log "2: 21 relocations around the nodes under a workload on every node"
start_loads a 1 2 3
sleep 2
order=(2 3 1 3 2 1 2 3 1 3 2 1 2 3 1 3 2 1 2 3 1)
ok=0
times=()
for ((k = 0; k < ${#order[@]}; k++)); do
	to=${order[k]}
	from=$(((k % 3) + 1))
	if out=$(relocate "$from" "$to" 2>&1); then
		ok=$((ok + 1))
		times+=("$(sed -n 's/.*(\([0-9.]*\) ms).*/\1/p' <<<"$out")")
	else
		echo "  relocation $k to node$to (asked on node$from): $out"
	fi
	sleep 0.4
done
check_eq "all 21 relocations succeed" 21 "$ok"
echo "  relocation times (ms, as the old MDS measured them): ${times[*]}"
check_eq "node${order[-1]} serves at the end, as every node sees" \
	"node${order[-1]} node${order[-1]} node${order[-1]}" "$(mds 1) $(mds 2) $(mds 3)"
sleep 1
stop_loads 1 2 3
python3 - "$(node_mnt 2)/load/append.log" "$T_TMP"/load.node{1,2,3} <<'EOF' &&
import json, sys
recs = {}
for line in open(sys.argv[1]):
    tag, seq = line.split()
    recs.setdefault(tag, []).append(int(seq))
for f in sys.argv[2:]:
    r = json.loads(open(f).read().strip().splitlines()[-1])
    got = recs.get(r["tag"], [])
    if got != list(range(r["appends"])):
        print("  %s: %d records, expected %d in order" % (r["tag"], len(got), r["appends"]))
        sys.exit(1)
EOF
	pass "the shared O_APPEND log holds every record of every node once, in order" ||
	fail "the shared O_APPEND log lost, doubled or reordered records"
want=$(cat "$T_TMP"/load.node{1,2,3} | python3 -c '
import json, sys
print(sum(json.loads(l)["increments"] for l in sys.stdin if l.startswith("{")))')
got=$(python3 -c 'import struct,sys; print(struct.unpack("<Q", open(sys.argv[1],"rb").read(8))[0])' \
	"$(node_mnt 3)/load/counter")
check_eq "the lock-protected counter equals the increments made" "$want" "$got"
cross_node_rw after-relocations

log "3: a target that dies before it instantiates: the source keeps serving"
src=$(mds 1)
src=${src#node}
tgt=$(((src % 3) + 1))
other=$(((tgt % 3) + 1))
start_loads b "$src" "$other"
sleep 1
kill -STOP "$(node_pid "$tgt")"
relocate "$src" "$tgt" >"$T_TMP/reloc-abort.out" 2>&1 &
rpid=$!
sleep 1
kill_node "$tgt"
wait "$rpid" && fail "the relocation to a killed node reported success" ||
	pass "the relocation to a node killed before it instantiated fails: $(head -c 200 "$T_TMP/reloc-abort.out")"
check_eq "node$src still serves" "node$src" "$(mds "$src")"
sleep 2
stop_loads "$src" "$other"
check_nodes_alive_but() {
	local i bad=()
	for i in 1 2 3; do
		[[ $i == "$1" ]] && continue
		node_alive "$i" || bad+=("node$i")
	done
	((${#bad[@]} == 0)) && pass "the surviving nodes still run" || fail "cxfsd gone on: ${bad[*]}"
}
check_nodes_alive_but "$tgt"

log "4: an orderly stop of the MDS node hands the filesystem over"
echo "before the handover" >"$(node_mnt "$other")/handover"
pid=$(node_pid "$src")
kill -TERM "$pid"
if wait_until 30 eval '! kill -0 '"$pid"' 2>/dev/null'; then
	pass "node$src's cxfsd stops on SIGTERM"
else
	fail "node$src's cxfsd still runs 30 s after SIGTERM"
fi
check_eq "node$other serves after node$src stopped" "node$other" "$(mds "$other")"
check_eq "its files are there" "before the handover" "$(cat "$(node_mnt "$other")/handover" 2>&1)"
grep -q "served by node$other now" "$(node_log "$src")" &&
	pass "node$src's log says it handed the filesystem to node$other" ||
	fail "node$src's log does not show the handover"
fusermount3 -uz "$(node_mnt "$src")" 2>/dev/null || true
pid=$(node_pid "$other")
fusermount3 -u "$(node_mnt "$other")" && wait_until 30 eval '! kill -0 '"$pid"' 2>/dev/null' ||
	fail "node$other does not unmount"
uri=$(sed -n 's/^uri=//p' "$CL_DIR/ports")
check_volume "$uri" "cxfs-check finds no problem on the LUN at the end"
it_finish
