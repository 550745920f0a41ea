#!/usr/bin/env bash
# t_recover_dmapi.sh: DMAPI across a failure of the metadata server
# (docs/ARCHITECTURE.md, "Recovery (CORPSE)", "DMAPI across a failure").
# Three nodes, each in a network namespace of its own, with DMAPI and a
# cxfs-hsmd beside every node (each may serve); the tier is limited to
# 4 MB/s, so a recall takes seconds.  Three offline files (migrated to the
# tier, blocks punched; "a" small, "b" and "c" larger) are read on every
# node at once.  Just after node1's HSM has finished the recall of "a", while
# the readers of "b" and "c" wait, node1 (the metadata server) dies: its
# cxfsd and its cxfs-hsmd are killed with SIGKILL, by PID.  The survivors
# recover (node2 is elected):
#
#  - every reader on node2 and node3 ends with exactly the file's bytes and
#    no error: no event was lost (each was raised again at node2 and
#    answered); node1's readers die with their mount, which is fine;
#  - node2's cxfs-hsmd serves after the recovery (it made the session: the
#    dead server's sessions died with it);
#  - nothing was recalled twice: each file has exactly one completed recall
#    in the HSM logs (the tier's record of recalls, "recall of inode N
#    done"), node1's or node2's; "a", whose recall node1's HSM completed
#    just before it died, is not recalled again.  The recalls node1's HSM
#    had started and not finished ("b", "c") are finished by node2's HSM,
#    which fetches only what the regions still say is offline ("N of SIZE
#    bytes to bring back (partial)") and brings back no more than that.
#    What node1's HSM had read from the tier and not yet marked back in the
#    regions (the batch in flight, at most 4 MiB a file) is fetched again:
#    that is the only refetch, and it is within what "to bring back" says.
#    node1 comes back, as a client (node2 still serves: a restarted server
#    never takes its filesystem back by itself, and nobody is fenced), and
#    reads "a": that raises no event (its regions say it is back: node1's
#    HSM changed them durably before it logged "done"), so it is not
#    recalled a second time;
#  - every node unmounts and cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_netns.sh"
. "$(dirname "$0")/lib_hsm.sh"
it_init recover_dmapi --need-tgtd

FILES=(a b c)
declare -A SIZE=([a]=$((2 << 20)) [b]=$((8 << 20)) [c]=$((8 << 20)))
READER_WAIT=60

cluster_up_netns 3 --dmapi --tier-rate 4M || {
	fail "a 3-node DMAPI cluster in network namespaces starts"
	it_finish
}
M1=$(node_mnt 1)
SRC=$T_TMP/src
mkdir -p "$SRC" "$M1/hsm"
for f in "${FILES[@]}"; do
	head -c "${SIZE[$f]}" /dev/urandom >"$SRC/$f"
	cp "$SRC/$f" "$M1/hsm/$f"
done
check "the files are migrated and released (through node3)" \
	hsm 3 release "${FILES[@]/#/$(node_mnt 3)/hsm/}"
declare -A INO
for f in "${FILES[@]}"; do
	check_eq "$f is offline" offline "$(hsm_state "$M1/hsm/$f")"
	INO[$f]=$(stat -c %i "$M1/hsm/$f")
done

# Readers of every file on every node, in the background: PID in R_PID[f.i],
# output in $T_TMP/f.i.
declare -A R_PID
for f in "${FILES[@]}"; do
	for i in 1 2 3; do
		sha256sum "$(node_mnt "$i")/hsm/$f" >"$T_TMP/$f.$i" 2>&1 &
		R_PID[$f.$i]=$!
	done
done
# Whatever happens, no reader outlives the test (a reader of a dead mount
# has its error by then).
kill_readers() {
	local p
	for p in "${R_PID[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
defer kill_readers

log "1: readers on every node wait for slow recalls; node1 (the metadata server) dies"
npid=$(node_pid 1)
hpid=$(hsmd_pid 1)
# Kill as soon as node1's HSM logs that a is back (polled every 20 ms, at
# most 30 s): its last change of a's regions is then a fraction of a
# second old.
for ((k = 0; k < 1500; k++)); do
	grep -q "recall of inode ${INO[a]} done" "$(hsmd_log 1)" && break
	sleep 0.02
done
waiting=0
for f in b c; do
	for i in 2 3; do kill -0 "${R_PID[$f.$i]}" 2>/dev/null && waiting=$((waiting + 1)); done
done
if [[ -n "$npid" && -n "$hpid" ]] && kill -KILL "$npid" "$hpid"; then
	pass "node1's cxfsd (pid $npid) and cxfs-hsmd (pid $hpid) are killed (SIGKILL)"
else
	fail "node1's cxfsd (pid '$npid') and cxfs-hsmd (pid '$hpid') could not be killed"
fi
check "node1's cxfsd is gone" wait_until 10 eval "! kill -0 $npid 2>/dev/null"
check "node1's HSM had finished the recall of a when it died" \
	grep -q "recall of inode ${INO[a]} done" "$(hsmd_log 1)"
rm -f "$CL_DIR/node1/hsmd.pid"
t_kill=$SECONDS
check_eq "node2's and node3's readers of b and c were waiting when node1 died" 4 "$waiting"

log "2: the survivors recover; every reader on node2 and node3 gets its bytes"
for f in "${FILES[@]}"; do
	for i in 2 3; do
		p=${R_PID[$f.$i]}
		rc=0
		if wait_until "$READER_WAIT" eval "! kill -0 $p 2>/dev/null"; then
			wait "$p" || rc=$?
		else
			rc=timeout
		fi
		check_eq "node$i's reader of $f ends with the right bytes, no error" \
			"0 $(sum_of "$SRC/$f")" "$rc $(cut -d' ' -f1 "$T_TMP/$f.$i")"
	done
done
echo "  every surviving reader ended $((SECONDS - t_kill)) s after the kill"
check_eq "node2 serves now" node2 "$(cl_stat 3 'c["server"]')"
check "node2's HSM serves after the recovery" grep -q ': serving ' "$(hsmd_log 2)"
check "node2's HSM opened the session" grep -Eq '(created|assumed) the session' "$(hsmd_log 2)"

log "3: node1 comes back (as a client) and reads a, recalled by its HSM before it died"
check "node1 restarts" cluster_restart 1
check_eq "node1 came back as a client: node2 still serves (as node1, node2, node3 say)" \
	"node2 node2 node2" "$(cl_stat 1 'c["server"]') $(cl_stat 2 'c["server"]') $(cl_stat 3 'c["server"]')"
check "node1 says it joined as a client" grep -q "node node1 joins filesystem shared as a client" "$(node_log 1)"
# A fresh mount: nothing of a is in node1's page cache.
out=$(bounded "$READER_WAIT" sha256sum "$(node_mnt 1)/hsm/a" 2>&1) || true
check_eq "node1 reads a, right" "$(sum_of "$SRC/a")" "${out%% *}"

log "4: each file was recalled once"
for f in "${FILES[@]}"; do
	ino=${INO[$f]}
	d1=$(grep -c "recall of inode $ino done" "$(hsmd_log 1)" || true)
	d2=$(grep -c "recall of inode $ino done" "$(hsmd_log 2)" || true)
	d3=$(grep -c "recall of inode $ino starts" "$(hsmd_log 3)" || true)
	check_eq "$f: one completed recall in all (node1's HSM $d1, node2's $d2), none by node3's" \
		"1 0" "$((d1 + d2)) $d3"
	if [[ $f == a ]]; then
		check_eq "a: node1's HSM completed its recall, node2's did not recall it again" \
			"1 0" "$d1 $d2"
	fi
	s2=$(grep -c "recall of inode $ino starts" "$(hsmd_log 2)" || true)
	check "$f: node2's HSM started at most one recall ($s2)" test "$s2" -le 1
	if ((d2 == 1)); then
		line=$(grep "recall of inode $ino starts" "$(hsmd_log 2)")
		want=$(sed -n 's/.*starts: \([0-9]*\) of .*/\1/p' <<<"$line")
		got=$(grep "recall of inode $ino done" "$(hsmd_log 2)" | sed -n 's/.*done: \([0-9]*\) bytes.*/\1/p')
		echo "  $f: node2's HSM: ${line#*: }; brought back $got"
		check "$f: node2's HSM fetched only what was offline ($got <= $want bytes)" \
			test "$got" -le "$want"
	fi
	check_eq "$f is dual-state at the end" dual-state \
		"$(hsm 2 ls "$(node_mnt 2)/hsm/$f" 2>/dev/null | awk '{print $1}')"
done

log "5: every node unmounts; cxfs-check"
check_nodes_alive
check_eq "no node was fenced by a second server (logs naming a fence of their own node)" "" \
	"$(grep -l "fenced: the target answered RESERVATION CONFLICT" "$CL_DIR"/node*/log || true)"
cluster_stop_and_check
it_finish
