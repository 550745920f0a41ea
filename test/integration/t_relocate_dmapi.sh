#!/usr/bin/env bash
# t_relocate_dmapi.sh: the source patent's case.  The HSM is slow (its tier
# is limited to 4 MB/s, so a recall takes seconds); readers of offline files
# wait on all three nodes (the old MDS node and the target included) when
# the metadata server is relocated:
#
#  - every reader completes with the right bytes and none sees an error;
#  - the recall the old MDS's HSM had started is finished by the new MDS's
#    HSM, once: it recalls the part that was not back yet, and the two
#    HSMs together brought back no more than the file (plus one chunk that
#    was in flight at the move);
#  - a second offline file read only after the move is recalled once, by the
#    new MDS's HSM;
#  - at the end cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_cluster_io.sh"
. "$(dirname "$0")/lib_hsm.sh"
it_init relocate_dmapi --need-tgtd

cluster_up 3 --dmapi --tier-rate 4M || { fail "a 3-node DMAPI cluster starts"; it_finish; }
M1=$(node_mnt 1)
SRC=$T_TMP/src
READER_WAIT=120
mkdir -p "$SRC" "$M1/hsm"
head -c $((24 << 20)) /dev/urandom >"$SRC/big"
head -c $((6 << 20)) /dev/urandom >"$SRC/later"
cp "$SRC/big" "$M1/hsm/big"
cp "$SRC/later" "$M1/hsm/later"
check "big and later are migrated and released (through node3)" \
	hsm 3 release "$(node_mnt 3)/hsm/big" "$(node_mnt 3)/hsm/later"
check_eq "big is offline" offline "$(hsm_state "$M1/hsm/big")"
ino=$(stat -c %i "$M1/hsm/big")

# Bytes the HSM of node I logged as recalled for inode INO.
recalled() {
	{ grep "recall of inode $2 done" "$(hsmd_log "$1")" 2>/dev/null || true; } |
		sed -n 's/.*done: \([0-9]*\) bytes.*/\1/p' | awk '{s += $1} END {print s + 0}'
}

log "1: readers on every node wait for a slow recall; the MDS moves meanwhile"
start_readers big
wait_until 20 grep -q "recall of inode $ino starts" "$(hsmd_log 1)" ||
	fail "node1's HSM did not start the recall"
sleep 1.5
waiting=0
for p in "${READERS[@]}"; do kill -0 "$p" 2>/dev/null && waiting=$((waiting + 1)); done
check_eq "all three readers wait for the recall" 3 "$waiting"
check_eq "big is partial: node1's HSM brought part of it back" partial "$(hsm_state "$M1/hsm/big")"
# What node1's HSM had brought back when the move began (cxfs-hsm ls, from
# the regions): node2's HSM must not bring it back again.
r0=$(hsm_resident "$M1/hsm/big")
out=$("$CXFSCTL" --socket "$(node_sock 3)" relocate shared node2 2>&1)
check "the relocation to node2 succeeds while the readers wait: $out" grep -q '^ok' <<<"$out"
check_readers big "ends with the right bytes, no error"
check_eq "node2 serves now" node2 "$(cl_stat 1 'c["server"]')"
check "node2's HSM took over the recall (partial: node1's part was kept)" \
	grep -q "recall of inode $ino starts: .*(partial)" "$(hsmd_log 2)"
check_eq "node2's HSM recalled big once" 1 "$(grep -c "recall of inode $ino starts" "$(hsmd_log 2)")"
b1=$(recalled 1 "$ino")
b2=$(recalled 2 "$ino")
size=$((24 << 20))
echo "  bytes brought back: node1's HSM $b1 (logged only if its recall ended), node2's HSM $b2, file $size"
check "node2's HSM recalled part of the file, not all of it (node1's part stayed)" \
	test "$b2" -gt 0 -a "$b2" -lt "$size"
check "nothing was recalled twice beyond one 4 MiB chunk in flight" test $((b1 + b2)) -le $((size + (4 << 20)))
echo "  resident when the move began: $r0 bytes"
check "node2's HSM left alone what node1's had brought back before the move (at most one 4 MiB chunk again)" \
	test "$r0" -gt 0 -a "$b2" -le $((size - r0 + (4 << 20)))
check_eq "big is dual-state at the end" dual-state "$(hsm_state "$M1/hsm/big")"

log "2: an offline file read after the move is recalled by the new MDS's HSM"
ino2=$(stat -c %i "$M1/hsm/later")
start_readers later
check_readers later "ends with the right bytes"
check_eq "node2's HSM recalled later once" 1 "$(grep -c "recall of inode $ino2 starts" "$(hsmd_log 2)")"
check_eq "node1's HSM did not recall later" 0 "$(grep -c "recall of inode $ino2 starts" "$(hsmd_log 1)")"
check_nodes_alive
cluster_stop_and_check
it_finish
