#!/usr/bin/env bash
# t_writeback.sh: a client node's data cache (write-behind under page-dirty,
# a read cache under page-clean; docs/ARCHITECTURE.md, "Data cache") on a
# 3-node cluster (scripts/local-cluster, node1 serves the metadata):
#
#  (a) a recall: node2 writes 3 MiB + 1 B in chunks of random sizes and
#      keeps the file open without fsync; node3 reads it at once and gets
#      every byte; node2 writes it again (its own cache), node1 and node3
#      read the new bytes;
#  (a2) node3 writes a file, node1 reads it with O_DIRECT (node3 keeps
#      page-clean at WRITE, page-dirty goes to READ), node3 reads it (its
#      cache), node2 rewrites it: node3 reads node2's bytes (the recall of
#      page-clean at WRITE drops node3's pages);
#  (b) a model: 3000 mixed random reads and writes (with appends,
#      truncates, fsyncs) on node2 match the same operations on a local
#      file, read by read; a re-read of a 16 MiB file on node2 is served by
#      the cache (cluster.data_cache hits grew, flushes happened, nothing
#      stays dirty after close);
#  (c) durability at fsync: node2 writes 24 MiB, fsync returns, node2's
#      cxfsd is killed (kill -9) while the file is still open: node1 reads
#      every byte;
#  (d) durability at close (node2 started again, for the quorum): node3
#      writes 24 MiB and closes, node3's cxfsd is killed at once: node1 and
#      node2 read every byte;
#  then node1 unmounts and cxfs-check finds the LUN clean.
#
# Not covered: a write-back failing on the volume (the block layer retries
# a lost target, and a fenced node drops its cache; the unit test
# test_pcache covers how a failed run is dropped and reported).
. "$(dirname "$0")/lib_cluster_io.sh"
it_init writeback --need-tgtd

WB=$IT_DIR/writeback.py
TALLY_OK=0 TALLY_FAIL=0

cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }
mkdir "$(node_mnt 1)/wb"

# sha_on I FILE: the sha256 of FILE (relative to the mounts) read on node I.
sha_on() { timeout 120 python3 "$WB" sha "$(node_mnt "$1")/$2" 2>&1 || echo "(read failed)"; }

log "(a) node3 reads what node2 wrote and did not fsync"
flag=$T_TMP/flag.a
python3 "$WB" write "$(node_mnt 2)/wb/recall" $((3 * 1048576 + 1)) 1 --end open "$flag" \
	>"$T_TMP/want.a" 2>&1 &
wpid=$!
wait_until 60 test -e "$flag" || fail "(a) the writer on node2 is done"
sleep 0.2
want=$(python3 -c 'import hashlib, random, sys; print(hashlib.sha256(random.Random(1).randbytes(int(sys.argv[1]))).hexdigest())' $((3 * 1048576 + 1)))
check_eq "(a) node3 reads node2's bytes at once (the recall wrote them back)" "$want" "$(sha_on 3 wb/recall)"
rm -f "$flag"
wait "$wpid" || fail "(a) the writer on node2 closes the file"
want=$(python3 "$WB" write "$(node_mnt 2)/wb/recall" $((1048576 + 4095)) 2 --end close "$flag")
check_eq "(a) node2 writes it again: node1 reads the new bytes" "$want" "$(sha_on 1 wb/recall)"
check_eq "(a) node3 reads the new bytes" "$want" "$(sha_on 3 wb/recall)"
rm -f "$flag"

log "(a2) a node that wrote, then read, a file loses its pages to another node's write"
want=$(python3 "$WB" write "$(node_mnt 3)/wb/wr" $((2 * 1048576 + 7)) 5 --end close "$flag")
check_eq "(a2) node1 reads node3's bytes with O_DIRECT" "$want" \
	"$(dd if="$(node_mnt 1)/wb/wr" iflag=direct bs=1M status=none | sha256sum | cut -d' ' -f1)"
check_eq "(a2) node3 reads them (its cache)" "$want" "$(sha_on 3 wb/wr)"
want=$(python3 "$WB" write "$(node_mnt 2)/wb/wr" $((2 * 1048576 + 7)) 6 --end close "$flag")
check_eq "(a2) node3 reads node2's new bytes, not its old pages" "$want" "$(sha_on 3 wb/wr)"
rm -f "$flag"

log "(b) mixed random reads and writes on node2 against a local file"
while IFS= read -r line; do tally_line "$line"; done < <(python3 "$WB" model \
	"$(node_mnt 2)/wb/model" "$T_TMP/model.local" 3000 7 2>&1)
head -c $((16 << 20)) /dev/urandom >"$T_TMP/big"
cp "$T_TMP/big" "$(node_mnt 2)/wb/big"
want=$(sum_of "$T_TMP/big")
hits0=$(cl_stat 2 'c["data_cache"]["hits"]')
check_eq "(b) node2 reads its 16 MiB file back" "$want" "$(sha_on 2 wb/big)"
check_eq "(b) node2 re-reads it" "$want" "$(sha_on 2 wb/big)"
hits1=$(cl_stat 2 'c["data_cache"]["hits"]')
check "(b) the re-read hit node2's cache ($hits0 -> $hits1 blocks)" test "$hits1" -ge $((hits0 + 4096))
check "(b) node2 wrote back in runs (flushes > 0)" \
	test "$(cl_stat 2 'c["data_cache"]["flushes"]')" -gt 0
check_eq "(b) nothing stays dirty on node2 after close" 0 \
	"$(cl_stat 2 'c["data_cache"]["dirty_bytes"]')"
check_eq "(b) node1 reads node2's file" "$want" "$(sha_on 1 wb/big)"

log "(c) fsync, then kill -9 the writer's cxfsd"
flag=$T_TMP/flag.c
python3 "$WB" write "$(node_mnt 2)/wb/fsynced" $((24 << 20)) 3 --end fsync "$flag" \
	>"$T_TMP/want.c" 2>&1 &
wait_until 120 test -e "$flag" || fail "(c) fsync returned on node2"
kill_node 2
want=$(python3 -c 'import hashlib, random, sys; print(hashlib.sha256(random.Random(3).randbytes(int(sys.argv[1]))).hexdigest())' $((24 << 20)))
check_eq "(c) node1 reads every byte node2 fsynced" "$want" "$(sha_on 1 wb/fsynced)"
check_eq "(c) node3 reads them too" "$want" "$(sha_on 3 wb/fsynced)"
rm -f "$flag"
# Two of three nodes down would be no quorum: node2 comes back first.
check "(c) node2 starts again" env CXFS_BIN_DIR="$CXFS_BIN_DIR" "$LOCAL_CLUSTER" restart \
	--dir "$CL_DIR" node2

log "(d) close, then kill -9 the writer's cxfsd"
flag=$T_TMP/flag.d
want=$(python3 "$WB" write "$(node_mnt 3)/wb/closed" $((24 << 20)) 4 --end close "$flag")
kill_node 3
check_eq "(d) node1 reads every byte node3 wrote before close" "$want" "$(sha_on 1 wb/closed)"
check_eq "(d) node2 reads them too" "$want" "$(sha_on 2 wb/closed)"

log "unmount node1 and node2 and check the volume"
CL_N=2 cluster_stop_and_check
it_finish
