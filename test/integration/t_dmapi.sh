#!/usr/bin/env bash
# t_dmapi.sh: the HSM (cxfs-hsmd, cxfs-hsm) on a 3-node cluster with DMAPI
# (scripts/local-cluster up --dmapi: node1 serves the metadata, a cxfs-hsmd
# beside each node, the one on node1 works), everything through the mounts
# and the bytes checked with sha256:
#
#  1. a migrated and released file read on each node in turn returns the
#     right bytes, its blocks come back to the volume on release, and the
#     recall changes no time stamp; the idle daemons say they are idle;
#  2. a write into an offline file (from another node) recalls it first,
#     then the file is resident and its tier copy gone;
#  3. a truncate of an offline file keeps the right prefix; a truncate to 0
#     recalls nothing;
#  4. a destroyed file's tier copy is removed;
#  5. a damaged tier copy fails the read with EIO (and a loud log line),
#     and reads right once repaired;
#  6. with the tier slowed down (--rate): reads of one offline file from all
#     three nodes at once make exactly one recall (the daemon's counters and
#     its log), and the file is seen partial while it comes back;
#  7. cxfs-hsmd killed with kill -9 while readers on all three nodes wait:
#     they keep waiting without an error (and cxfsd logs why), a restarted
#     daemon assumes the session and every reader ends with the right bytes;
#  8. the high-water policy: with --high 60 --low 40, writing 3/4 of the
#     volume never fails, the daemon releases least recently used files,
#     and the volume ends below the high-water mark; a released file still
#     reads right;
#  9. every daemon stops, every node unmounts and cxfs-check finds the LUN
#     clean.
. "$(dirname "$0")/lib_cluster_io.sh"
. "$(dirname "$0")/lib_hsm.sh"
it_init dmapi --need-tgtd

for b in "$HSM" "$HSMD" "$CXFSCTL"; do
	[[ -x "$b" ]] || { fail "binary $b is missing (build first)"; it_finish; }
done
cluster_up 3 --size 1G --dmapi || { fail "a 3-node DMAPI cluster with cxfs-hsmd starts"; it_finish; }
M1=$(node_mnt 1)
M2=$(node_mnt 2)
M3=$(node_mnt 3)
SRC=$T_TMP/src
mkdir -p "$SRC" "$M1/hsm"
rand_file "$SRC/f16" $((16 << 20))
rand_file "$SRC/small" 5000
rand_file "$SRC/t3" $((3 << 20))
rand_file "$SRC/c2" $((2 << 20))
rand_file "$SRC/r16" $((16 << 20))
rand_file "$SRC/k40" $((40 << 20))
rand_file "$SRC/p32" $((32 << 20))

# ---------------------------------------------------------------------------
log "1: migrate, release, read on each node"
for i in 2 3; do
	check "node$i's cxfs-hsmd is idle (node1 is the metadata server)" grep -q ': idle$' "$(hsmd_log "$i")"
done
cp "$SRC/f16" "$M1/hsm/f16"
cp "$SRC/small" "$M2/hsm/small"
check "cxfs-hsm migrate from node2" hsm 2 migrate "$M2/hsm/f16" "$M2/hsm/small"
check_eq "f16 is dual-state after migrate" dual-state "$(hsm_state "$M1/hsm/f16")"
check "f16 has a tier copy" test -n "$(tier_copy "$M1/hsm/f16")"
check_eq "the tier copy holds f16's bytes" "$(sum_of "$SRC/f16")" "$(sum_of "$(tier_copy "$M1/hsm/f16")")"
mtime0=$(stat -c %y "$M1/hsm/f16")
for i in 1 2 3; do
	mnt=$(node_mnt "$i")
	other=$((i % 3 + 1))
	sync
	free0=$(vol_free "$M1")
	check "cxfs-hsm release from node$other (round $i)" hsm "$other" release "$(node_mnt "$other")/hsm/f16"
	check_eq "f16 is offline after release (round $i)" offline "$(hsm_state "$M1/hsm/f16")"
	check_eq "f16 has 0 resident bytes when offline (round $i)" 0 "$(hsm_resident "$M1/hsm/f16")"
	check_eq "f16 keeps its size when offline (round $i)" $((16 << 20)) "$(stat -c %s "$mnt/hsm/f16")"
	if wait_until 10 eval '(( $(vol_free "$M1") >= free0 + (15 << 20) ))'; then
		pass "the volume got f16's 16 MiB back (round $i)"
	else
		fail "the volume's free space went from $free0 to $(vol_free "$M1") after release (round $i)"
	fi
	check_eq "f16 read on node$i after release has the right bytes" "$(sum_of "$SRC/f16")" "$(sum_of "$mnt/hsm/f16")"
	check_eq "f16 is dual-state after the recall (round $i)" dual-state "$(hsm_state "$M1/hsm/f16")"
done
check_eq "f16's mtime did not change through migrate, release and recall" "$mtime0" "$(stat -c %y "$M3/hsm/f16")"
check "cxfs-hsm release of a small file" hsm 3 release "$M3/hsm/small"
check_eq "the small file reads right on node3" "$(sum_of "$SRC/small")" "$(sum_of "$M3/hsm/small")"
out=$(hsm 2 ls "$M2/hsm" 2>&1) || true
check "cxfs-hsm ls of the directory lists both files" grep -q 'dual-state *16777216 *16777216 .*/f16$' <<<"$out"

# ---------------------------------------------------------------------------
log "2: a write into an offline file"
check "release f16 again" hsm 1 release "$M1/hsm/f16"
python3 - "$SRC/f16" "$T_TMP/f16.written" <<'EOF'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[(1 << 20) + 3:(1 << 20) + 8] = b'HELLO'
open(sys.argv[2], 'wb').write(d)
EOF
if printf HELLO | dd of="$M2/hsm/f16" bs=1 seek=$(((1 << 20) + 3)) conv=notrunc status=none; then
	pass "a write into the offline file on node2 succeeds"
else
	fail "a write into the offline file on node2 failed"
fi
for i in 1 2 3; do
	check_eq "node$i reads the written file right" "$(sum_of "$T_TMP/f16.written")" "$(sum_of "$(node_mnt "$i")/hsm/f16")"
done
check_eq "the written file is resident" resident "$(hsm_state "$M1/hsm/f16")"
check_eq "the written file's stale tier copy is gone" "" "$(tier_copy "$M1/hsm/f16")"

# ---------------------------------------------------------------------------
log "3: truncates of offline files"
cp "$SRC/t3" "$M1/hsm/t3"
cp "$SRC/t3" "$M1/hsm/t0"
check "release t3 and t0" hsm 1 release "$M1/hsm/t3" "$M1/hsm/t0"
check "truncate -s 1000 of the offline t3 on node3" truncate -s 1000 "$M3/hsm/t3"
check_eq "t3 keeps its first 1000 bytes" "$(head -c 1000 "$SRC/t3" | sha256sum | cut -d' ' -f1)" "$(sum_of "$M2/hsm/t3")"
check_eq "t3 is resident after the truncate" resident "$(hsm_state "$M1/hsm/t3")"
sleep 1   # the daemon publishes its counters within a few hundred ms
recalls0=$(hsm_stat 's["recalls"]')
check "truncate -s 0 of the offline t0 on node2" truncate -s 0 "$M2/hsm/t0"
check_eq "t0 is empty" 0 "$(stat -c %s "$M1/hsm/t0")"
check_eq "t0 is resident" resident "$(hsm_state "$M1/hsm/t0")"
sleep 0.5
check_eq "a truncate to 0 recalled nothing" "$recalls0" "$(hsm_stat 's["recalls"]')"
check_eq "t0's tier copy is gone" "" "$(tier_copy "$M1/hsm/t0")"

# ---------------------------------------------------------------------------
log "4: a destroyed file's tier copy is removed"
cp "$SRC/small" "$M3/hsm/d1"
check "migrate d1" hsm 3 migrate "$M3/hsm/d1"
copy=$(tier_copy "$M1/hsm/d1")
check "d1 has a tier copy" test -n "$copy"
destroys0=$(hsm_stat 's["destroys"]')
rm "$M2/hsm/d1"
if wait_until 10 test ! -e "$copy"; then
	pass "d1's tier copy $copy is removed after rm on node2"
else
	fail "d1's tier copy $copy is still there 10 s after rm"
fi
check "the daemon counted the destroy" \
	wait_until 5 eval '(( $(hsm_stat '"'"'s["destroys"]'"'"') > destroys0 ))'
check "d1's checksum file is removed too" test ! -e "$copy.sum"

# ---------------------------------------------------------------------------
log "5: a damaged tier copy"
cp "$SRC/c2" "$M1/hsm/c2"
check "release c2" hsm 1 release "$M1/hsm/c2"
copy=$(tier_copy "$M1/hsm/c2")
off=$((3 << 19))
orig=$(od -An -tx1 -j "$off" -N1 "$copy" | tr -d ' ')
printf "\\x$(printf %02x $((0x$orig ^ 0xff)))" | dd of="$copy" bs=1 seek="$off" conv=notrunc status=none
if err=$(cat "$M2/hsm/c2" 2>&1 >/dev/null); then
	fail "reading c2 with a damaged tier copy succeeded"
else
	check "reading c2 with a damaged tier copy fails with EIO" grep -qi 'input/output error' <<<"$err"
fi
check "the daemon logs the checksum mismatch" grep -q 'CHECKSUM MISMATCH' "$(hsmd_log 1)"
printf "\\x$orig" | dd of="$copy" bs=1 seek="$off" conv=notrunc status=none
check_eq "c2 reads right once its copy is repaired" "$(sum_of "$SRC/c2")" "$(sum_of "$M3/hsm/c2")"

# ---------------------------------------------------------------------------
log "6: three nodes read one offline file at once: one recall"
cp "$SRC/r16" "$M1/hsm/r16"
cp "$SRC/k40" "$M1/hsm/k40"
check "release r16 and k40" hsm 1 release "$M1/hsm/r16" "$M1/hsm/k40"
check "cxfs-hsmd restarts on node1 with --rate 8M" hsmd_restart 1 --tier-rate 8M
wait_until 10 grep -q 'rate 8388608 bytes/s' "$(hsmd_log 1)" || true
sleep 0.5
recalls0=$(hsm_stat 's["recalls"]')
ino=$(stat -c %i "$M1/hsm/r16")
start_readers r16
sleep 0.7
check_eq "r16 is partial while it comes back" partial "$(hsm_state "$M1/hsm/r16")"
check_readers r16 "(all three at once) ends with the right bytes"
sleep 0.5
check_eq "three concurrent readers made exactly one recall (counters)" \
	$((recalls0 + 1)) "$(hsm_stat 's["recalls"]')"
check_eq "three concurrent readers made exactly one recall (log)" 1 \
	"$(grep -c "recall of inode $ino starts" "$(hsmd_log 1)")"

# ---------------------------------------------------------------------------
log "7: cxfs-hsmd killed with kill -9 while readers wait"
start_readers k40
sleep 1.5
check_eq "k40 is partial while it comes back" partial "$(hsm_state "$M1/hsm/k40")"
nlog=$(cat "$CL_DIR"/node*/log | grep -c 'cxfs-hsmd' || true)
pid=$(hsmd_pid 1)
log "kill -9 cxfs-hsmd of node1 (pid $pid)"
kill -KILL "$pid"
sleep 3
waiting=0
for p in "${READERS[@]}"; do kill -0 "$p" 2>/dev/null && waiting=$((waiting + 1)); done
check_eq "every reader still waits 3 s after the kill" 3 "$waiting"
check_eq "no reader printed anything (no error)" "" "$(cat "$T_TMP"/k40.?)"
check "cxfsd logs why the readers wait" test "$(cat "$CL_DIR"/node*/log | grep -c 'cxfs-hsmd' || true)" -gt "$nlog"
out=$(hsm 3 status 2>&1) || true
check "cxfs-hsm status shows the session detached" grep -q 'DETACHED' <<<"$out"
check "cxfs-hsmd restarts on node1" hsmd_restart 1 --tier-rate 0
check_readers k40 "ends with the right bytes after the restart"
check "the restarted daemon assumed the old session" \
	grep -q "cxfs-hsmd\[$(hsmd_pid 1)\]: assumed the session" "$(hsmd_log 1)"
check "the restarted daemon finished the partial recall" \
	grep -q "cxfs-hsmd\[$(hsmd_pid 1)\]: recall of inode $(stat -c %i "$M1/hsm/k40") starts: .*(partial)" "$(hsmd_log 1)"
check_eq "k40 is dual-state" dual-state "$(hsm_state "$M1/hsm/k40")"

# ---------------------------------------------------------------------------
log "8: the high-water policy under a filling workload"
check "cxfs-hsmd restarts with --high 60 --low 40" \
	hsmd_restart 1 --tier-rate 0 --hsmd-args "--high 60 --low 40 --interval 250"
mkdir -p "$M2/fill"
peak=0 werr=0
for ((k = 1; k <= 24; k++)); do
	mnt=$([[ $((k % 2)) == 0 ]] && echo "$M2" || echo "$M3")
	if ! cp "$SRC/p32" "$mnt/fill/p$k" 2>"$T_TMP/fill.err"; then
		werr=$((werr + 1))
		cat "$T_TMP/fill.err"
	fi
	u=$(vol_used_pct "$M1")
	((u > peak)) && peak=$u
done
log "filled 24 x 32 MiB; peak use ${peak}%"
check_eq "every write of the filling workload succeeded" 0 "$werr"
if wait_until 30 eval '(( $(vol_used_pct "$M1") < 60 ))'; then
	pass "the volume is below the high-water mark (now $(vol_used_pct "$M1")%, peak ${peak}%)"
else
	fail "the volume stays at $(vol_used_pct "$M1")% (high-water mark 60%)"
fi
check "the policy released files" test "$(hsm_stat 's["policy_released"]')" -gt 0
check "the daemon logs the policy's work" wait_until 30 grep -q 'policy: released' "$(hsmd_log 1)"
check_eq "the first filler (least recently used) was released" offline "$(hsm_state "$M2/fill/p1")"
check_eq "a released filler reads right on node3" "$(sum_of "$SRC/p32")" "$(sum_of "$M3/fill/p1")"
out=$(hsm 2 status 2>&1) || true
check "cxfs-hsm status from node2 shows the counters" grep -q 'policy .* file(s) released' <<<"$out"
check_eq "the restarted daemon counted no errors" 0 "$(hsm_stat 's["errors"]')"

# ---------------------------------------------------------------------------
log "9: stop the HSM daemons, unmount, check the volume"
check_nodes_alive
for i in 1 2 3; do hsmd_stop "$i" || true; done
cluster_stop_and_check
it_finish
