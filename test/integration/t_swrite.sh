#!/usr/bin/env bash
# t_swrite.sh: several nodes write one file with O_DIRECT at once
# (docs/ARCHITECTURE.md, "Shared direct writers"), on a 3-node cluster
# (node1 serves the metadata):
#
#  (a) node1 lays out an 8 MiB file; node1, node2 and node3 then overwrite
#      interleaved 64 KiB chunks of it with O_DIRECT, 4 passes each in a
#      shuffled order, all at once: every node reads the bytes of the last
#      pass of every chunk (a model), and the writers did not take the
#      file's write tokens from each other (the token server's recalls grew
#      by far less than the writes: at SHARED_WRITE they share them);
#  (b) node1 and node2 overwrite the file again while node3 extends it by
#      4 MiB with O_DIRECT (its blocks have no data yet: it writes alone,
#      with the exclusive tokens, and takes turns with the others): every
#      node reads the model and the size node3 made (a shared writer's
#      size, returned smaller, does not shrink it);
#  (c) the same again, 4 MiB further, while the metadata server moves from
#      node1 to node2 (cxfsctl relocate): the shared tokens and sizes go
#      with it, and every node reads the model and the size;
#  then node1 unmounts and cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init swrite --need-tgtd

SW=$IT_DIR/swrite.py
MB=1048576 CHUNK=65536 PASSES=4
SIZE=$((8 * MB)) HI=$((12 * MB)) HI2=$((16 * MB))

cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }
F=sw/file
mkdir "$(node_mnt 1)/sw"

log "(a) three nodes overwrite interleaved chunks of one file at once"
python3 "$SW" layout "$(node_mnt 1)/$F" $SIZE 1
rec0=$(cl_stat 1 'c["token_server"]["recalls"]')
pids=()
for i in 1 2 3; do
	timeout 300 python3 "$SW" writer "$(node_mnt $i)/$F" $((i - 1)) 3 $CHUNK 0 $SIZE $PASSES 11 \
		>"$T_TMP/writes.$i" &
	pids+=($!)
done
writers_wait "${pids[@]}" || fail "(a) every writer finishes"
writes=$WRITES
rec1=$(cl_stat 1 'c["token_server"]["recalls"]')
log "(a) $writes writes, the token server's recalls went $rec0 -> $rec1"
check "(a) the writers shared the file (recalls $((rec1 - rec0)) < writes/8 = $((writes / 8)))" \
	test $((rec1 - rec0)) -lt $((writes / 8))
check_all "$SW" "$F" "(a)" "$(python3 "$SW" model $SIZE $CHUNK 0 $SIZE $PASSES 11)" $SIZE

log "(b) node1 and node2 overwrite it while node3 extends it"
pids=()
for i in 1 2; do
	timeout 300 python3 "$SW" writer "$(node_mnt $i)/$F" $((i - 1)) 2 $CHUNK 0 $SIZE $PASSES 12 \
		>"$T_TMP/writes.$i" &
	pids+=($!)
done
timeout 300 python3 "$SW" writer "$(node_mnt 3)/$F" 0 1 $CHUNK $SIZE $HI $PASSES 12 \
	>"$T_TMP/writes.3" &
pids+=($!)
writers_wait "${pids[@]}" || fail "(b) every writer finishes"
writes=$WRITES
log "(b) $writes writes"
check_all "$SW" "$F" "(b)" "$(python3 "$SW" model $HI $CHUNK 0 $HI $PASSES 12)" $HI

log "(c) the same, 4 MiB further, while the metadata server moves to node2"
pids=()
for i in 1 2; do
	timeout 300 python3 "$SW" writer "$(node_mnt $i)/$F" $((i - 1)) 2 $CHUNK 0 $HI 6 13 \
		>"$T_TMP/writes.$i" &
	pids+=($!)
done
timeout 300 python3 "$SW" writer "$(node_mnt 3)/$F" 0 1 $CHUNK $HI $HI2 6 13 \
	>"$T_TMP/writes.3" &
pids+=($!)
sleep 1
check "(c) cxfsctl relocate shared node2 (during the writes)" \
	"$CXFSCTL" --socket "$(node_sock 1)" relocate shared node2
writers_wait "${pids[@]}" || fail "(c) every writer finishes"
log "(c) $WRITES writes"
check_eq "(c) node2 serves" node2 "$(cl_stat 1 'c["server"]')"
check_all "$SW" "$F" "(c)" "$(python3 "$SW" model $HI2 $CHUNK 0 $HI2 6 13)" $HI2

log "unmount and check the volume"
cluster_stop_and_check
it_finish
