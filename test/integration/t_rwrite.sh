#!/usr/bin/env bash
# t_rwrite.sh: several nodes write one file with buffered writes at once,
# under byte-range tokens (docs/ARCHITECTURE.md, "Byte-range tokens"), on a
# 3-node cluster (node1 serves the metadata):
#
#  (a) node1 lays out a 24 MiB file; node1, node2 and node3 then overwrite
#      interleaved chunks of 1 MiB - 4113 bytes of it (a FUSE request each; some straddle the
#      4 MiB ranges' edges somewhere), 3 passes each in a shuffled order,
#      all at once, while node1 and node2 read whole chunks (by ranges
#      too, as they share the file): no read mixes two writes; every node
#      reads the bytes of the last pass of every chunk
#      (a model), buffered and with O_DIRECT;
#  (f) node1 (the server) and node2 (a client) each rewrite a chunk of a file
#      of their own with a new byte value, over and over, while a reader on
#      the same node reads it: every read holds one value (a node's own
#      reads see its buffered writes whole; before, the server node's read
#      could mix two);
#  (b) node2 and node3 overwrite disjoint halves of it with 4 KiB writes,
#      2 passes: they share the file by ranges instead of taking turns (the
#      token server's recalls grow by far less than the writes), and every
#      node reads the model;
#  (e) the I/O-exclusive state: once node2 and node3 have been idle for a
#      few seconds, one of them gives its I/O tokens back and the MDS tells
#      the other that it is alone; node2 then rewrites the whole file with
#      4 KiB writes (the other node, idle, gives its I/O tokens back and
#      node2 hears it is alone), and again, now as a lone writer (IO held at
#      WRITE, io_alone, asked once), and every node reads the model;
#  (c) (a) again, 4 passes, while the metadata server moves from node1 to
#      node2 (cxfsctl relocate): the range tokens go with it, and every
#      node reads the model;
#  (d) node1 and node3 overwrite the halves again while node2, the server
#      now, is killed (kill -9): the writers see a pause, no error, their
#      cached writes under the range tokens survive the recovery, and the
#      survivors (then node2, started again) read the model;
#  then node1 unmounts and cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init rwrite --need-tgtd

SW=$IT_DIR/swrite.py
MB=1048576 CHUNK=$((1048576 - 4113))
SIZE=$((24 * MB)) NCH=24
HI=$((NCH * CHUNK)) HALF=$((12 * MB))

cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }
F=rw/file
mkdir "$(node_mnt 1)/rw"

# interleaved LABEL PASSES SEED LAYOUT_SEED [RELOCATE]: nodes 1-3 write
# their chunks while node1 and node2 read chunks whole.
interleaved() {
	local i pids=() rpids=()
	for i in 1 2 3; do
		timeout 300 python3 "$SW" bwriter "$(node_mnt $i)/$F" $((i - 1)) 3 $CHUNK 0 $HI "$2" "$3" \
			>"$T_TMP/writes.$i" &
		pids+=($!)
	done
	for i in 1 2; do
		timeout 300 python3 "$SW" areader "$(node_mnt $i)/$F" $CHUNK 0 $HI "$2" "$3" "$4" 4 \
			>"$T_TMP/reads.$i" 2>"$T_TMP/reads.err.$i" &
		rpids+=($!)
	done
	if [ -n "${5:-}" ]; then
		sleep 1
		check "$1 cxfsctl relocate shared node2 (during the writes)" \
			"$CXFSCTL" --socket "$(node_sock 1)" relocate shared node2
	fi
	writers_wait "${pids[@]}" || fail "$1 every writer finishes"
	readers_wait "$1" "chunk reads are each one write's bytes" "${rpids[@]}"
	log "$1 $WRITES writes"
}

# readers_wait LABEL WHAT PID1 PID2: node1's and node2's readers end well.
readers_wait() {
	local i
	for i in 1 2; do
		if wait "${@:$((i + 2)):1}"; then
			pass "$1 node$i's $(cat "$T_TMP/reads.$i") $2"
		else
			fail "$1 node$i's $2: $(cat "$T_TMP/reads.err.$i")"
		fi
	done
}

log "(a) three nodes overwrite interleaved chunks at once, node1 reads"
python3 "$SW" layout "$(node_mnt 1)/$F" $SIZE 1
interleaved "(a)" 3 11 1
check_all "$SW" "$F" "(a)" "$(python3 "$SW" model $SIZE $CHUNK 0 $HI 3 11 1)" $SIZE bsha

log "(f) a node's reads against its own writes: node1 (the server) and node2 (a client)"
pids=() rpids=()
for i in 1 2; do
	head -c $((4113 + CHUNK)) /dev/zero >"$(node_mnt $i)/rw/own.$i"
	timeout 60 python3 "$SW" flip "$(node_mnt $i)/rw/own.$i" 4113 $CHUNK 4 >"$T_TMP/writes.$i" &
	pids+=($!)
	timeout 60 python3 "$SW" flipread "$(node_mnt $i)/rw/own.$i" 4113 $CHUNK 4 \
		>"$T_TMP/reads.$i" 2>"$T_TMP/reads.err.$i" &
	rpids+=($!)
done
writers_wait "${pids[@]}" || fail "(f) every writer finishes"
readers_wait "(f)" "reads each see one of its own writes whole" "${rpids[@]}"
log "(f) $WRITES writes"

log "(b) node2 and node3 overwrite disjoint halves with 4 KiB writes"
rec0=$(cl_stat 1 'c["token_server"]["recalls"]')
pids=()
timeout 300 python3 "$SW" bwriter "$(node_mnt 2)/$F" 0 1 4096 0 $HALF 2 12 >"$T_TMP/writes.2" &
pids+=($!)
timeout 300 python3 "$SW" bwriter "$(node_mnt 3)/$F" 0 1 4096 $HALF $SIZE 2 12 >"$T_TMP/writes.3" &
pids+=($!)
writers_wait "${pids[@]}" || fail "(b) every writer finishes"
rec1=$(cl_stat 1 'c["token_server"]["recalls"]')
log "(b) $WRITES writes, the token server's recalls went $rec0 -> $rec1"
check "(b) the writers shared the file (recalls $((rec1 - rec0)) < writes/16 = $((WRITES / 16)))" \
	test $((rec1 - rec0)) -lt $((WRITES / 16))
check_all "$SW" "$F" "(b)" "$(python3 "$SW" model $SIZE 4096 0 $SIZE 2 12)" $SIZE bsha

log "(e) node2 and node3 idle: one gives its I/O tokens back, the other is alone"
io_of() { # io_of NODE: "IO-level alone|shared|reader" as node NODE's token client has them
	"$CXFSCTL" --socket "$(node_sock "$1")" tokens --json "$(node_mnt "$1")/$F" | python3 -c '
import json, sys
j = json.load(sys.stdin)
j = j[0] if isinstance(j, list) else j
c = j["cached"]
# the IO level; alone: the only writer; shared: a writer among others; reader: no IOEXCL
how = "alone" if j["io_alone"] else "shared" if "ioexcl" in c else "reader"
print(c["io"] + " " + how if "io" in c else "none")'
}
log "(e) before: node2 $(io_of 2), node3 $(io_of 3)"
sleep 4
gave1=$(($(cl_stat 2 'c["cache"]["io_given"]') + $(cl_stat 3 'c["cache"]["io_given"]')))
log "(e) after 4 s: node1 $(io_of 1), node2 $(io_of 2), node3 $(io_of 3); I/O tokens given back by node2 and node3 so far: $gave1"
check "(e) an idle sharer gave its I/O tokens back" test "$gave1" -gt 0
check "(e) at most one of them is still a writer, and it is alone" \
	bash -c "[[ \"\$1 \$2\" != *shared* ]]" _ "$(io_of 2)" "$(io_of 3)"
timeout 300 python3 "$SW" bwriter "$(node_mnt 2)/$F" 0 1 4096 0 $SIZE 1 15 >"$T_TMP/writes.2" ||
	fail "(e) node2 rewrites the file"
for ((i = 0; i < 50; i++)); do
	[[ $(io_of 2) == *alone ]] && break
	sleep 0.1
done
log "(e) node2 rewrote the file: node1 $(io_of 1), node2 $(io_of 2), node3 $(io_of 3)"
check "(e) the others gave their I/O tokens back: node2 hears it is alone" \
	bash -c "[[ \"\$1\" == *alone ]]" _ "$(io_of 2)"
rec0=$(cl_stat 1 'c["token_server"]["recalls"]')
timeout 300 python3 "$SW" bwriter "$(node_mnt 2)/$F" 0 1 4096 0 $SIZE 1 16 >"$T_TMP/writes.2" ||
	fail "(e) node2 rewrites the file again"
rec1=$(cl_stat 1 'c["token_server"]["recalls"]')
log "(e) $(cat "$T_TMP/writes.2") writes by node2 again, recalls $rec0 -> $rec1; node2 $(io_of 2)"
check_eq "(e) node2 writes alone: IO at WRITE, io_alone" "write alone" "$(io_of 2)"
check "(e) a lone writer asks once (recalls $((rec1 - rec0)) < 4)" test $((rec1 - rec0)) -lt 4
check_all "$SW" "$F" "(e)" "$(python3 "$SW" model $SIZE 4096 0 $SIZE 1 16)" $SIZE bsha

log "(c) (a) again while the metadata server moves to node2"
python3 "$SW" layout "$(node_mnt 1)/$F" $SIZE 2
interleaved "(c)" 4 13 2 relocate
check_eq "(c) node2 serves" node2 "$(cl_stat 1 'c["server"]')"
check_all "$SW" "$F" "(c)" "$(python3 "$SW" model $SIZE $CHUNK 0 $HI 4 13 2)" $SIZE bsha

log "(d) node1 and node3 overwrite the halves while node2, the server, is killed"
pids=()
timeout 300 python3 "$SW" bwriter "$(node_mnt 1)/$F" 0 1 4096 0 $HALF 3 14 >"$T_TMP/writes.1" &
pids+=($!)
timeout 300 python3 "$SW" bwriter "$(node_mnt 3)/$F" 0 1 4096 $HALF $SIZE 3 14 >"$T_TMP/writes.3" &
pids+=($!)
sleep 1
kill_node 2
writers_wait "${pids[@]}" || fail "(d) every writer finishes (a pause, never an error)"
log "(d) $WRITES writes; node1 names $(cl_stat 1 'c["server"]') the server"
model=$(python3 "$SW" model $SIZE 4096 0 $SIZE 3 14)
for i in 1 3; do
	for how in bsha sha; do
		check_eq "(d): node$i reads the model ($how)" "$model" \
			"$(timeout 120 python3 "$SW" "$how" "$(node_mnt $i)/$F" 2>&1)"
	done
done
check "(d) node2 starts again" "$LOCAL_CLUSTER" restart --dir "$CL_DIR" 2
check_all "$SW" "$F" "(d) after node2's restart" "$model" $SIZE bsha

log "unmount and check the volume"
cluster_stop_and_check
it_finish
