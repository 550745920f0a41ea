#!/usr/bin/env bash
# t_xvm_cluster.sh: a mirror under a 3-node cluster loses a LUN (src/xvm,
# src/cluster/cl_mirror.c).
#
# A 3-node cluster (scripts/local-cluster --luns 2 --volume 'mirror(0,1)')
# runs checking writers: each rewrites files of its own with 64 KiB .. 1 MiB
# from a random pool, synced, and reads each back with O_DIRECT.  LUN 2 is
# taken offline (tgtadm ... removable=1, online=0: tgt then fails its I/O
# with NOT READY) while node2, a client, writes; once the leg is out, every
# node writes.  Then:
#  - no writer saw an error (the failed write went on once the mirror master
#    had the leg out on every node);
#  - the leg is out on every node (cxfsctl volume --json); node2 asked the
#    metadata server (or the server met the failure first), which decided
#    as mirror master, and the others were told;
#  - every node reads every node's files right (the last content written);
#  - the labels say the leg is out (cxfs-volume show, LUN 2 back online).
# LUN 2 back, `cxfsctl volume revive` on the metadata server (the mirror
# master; a client refuses) copies the leg while every node writes (each
# chunk's range held busy on every node, MIRROR_STATE):
#  - no writer saw an error, both legs are active on every node, every node
#    reads every node's last writes right (half the regions from the
#    revived leg);
# The leg goes out once more and node1, the metadata server, is killed
# (kill -9) while its revive copies under writers on node2 and node3:
#  - the node that takes over serving goes on with the revive by itself,
#    both legs end active on every node, no writer saw an error;
# A client is killed (kill -9) while it writes:
#  - the metadata server resyncs the regions its dirty-region log names,
#    some of the mirror's, not all (the log line gives the count); no
#    writer elsewhere saw an error; restarted, the node has the master
#    resync what its last run left before it drops it from its log;
# LUN 3 (a new LU of the target) attached to the mirror with `cxfsctl volume
# attach` on the metadata server (the config server; a client refuses, a LUN
# that cannot be opened is refused) while every node writes:
#  - every node has the new leg, reviving; the revive copies it (paced)
#    while a client reads a 52 MiB file: the master copies chunks ahead
#    for its reads (read-repair, counted); no writer saw an error; every
#    node reads every node's last writes right;
#  - LUN 3 added to cluster.conf, a restarted node assembles three legs.
# Leg 1 (LUN 2) detached with `cxfsctl volume detach` on the metadata server
# while every node writes (a client refuses):
#  - every node has it detached, no writer saw an error, no node took itself
#    for fenced (a write on its way to the leg is refused by its LUN), every
#    node reads every node's last writes right; LUN 2's label is wiped;
#  - LUN 2 taken out of cluster.conf, a restarted node assembles without it.
# And finally:
#  - after an orderly stop, cxfs-check of the volume is clean and the two
#    legs left hold the same bytes.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init t_xvm_cluster --need-tgtd

VOLUME_TOOL=$CXFS_BIN_DIR/cxfs-volume

cluster_up 3 --size 256M --luns 2 --volume 'mirror(0,1)' ||
	{ fail "a 3-node cluster on a 2-leg mirror starts"; it_finish; }
CTL=$(cat "$CL_DIR/tgtd.ctl")
VOL_URIS=$(sed -n 's/^uri=//p' "$CL_DIR/ports")

# lun2 online|offline (tgt fails I/O with NOT READY only on an offline LU marked removable).
lun2() {
	tgtadm -C "$CTL" --lld iscsi --op update --mode logicalunit --tid 1 --lun 2 \
		--params "removable=1,online=$([[ $1 == online ]] && echo 1 || echo 0)"
}

# leg_states I: node I's view of the mirror's legs, e.g. "active out".
leg_states() {
	"$CXFSCTL" --socket "$(node_sock "$1")" volume --json 2>/dev/null | python3 -c '
import json, sys
t = json.load(sys.stdin)["tree"]
print(" ".join(c["state"] for c in t["children"]))'
}

for ((i = 1; i <= CL_N; i++)); do
	check_eq "node$i sees both legs active" "active active" "$(leg_states "$i")"
done

rand_file "$T_TMP/pool" 4194304
# writer I: node I's checking_writer, 8 files in wI.
writer() { checking_writer "$(node_mnt "$1")/w$1" 8 "$1"; }
# check_last_writes WHAT: one check, every node reads every writer's files
# as last written.
check_last_writes() {
	local i j name skip len bad=()
	for ((i = 1; i <= CL_N; i++)); do
		while read -r name skip len; do
			for ((j = 1; j <= CL_N; j++)); do
				cmp -s "$(node_mnt "$j")/w$i/f$name" \
					<(dd if="$T_TMP/pool" bs=65536 skip="$skip" count=$((len / 65536)) \
						status=none) ||
					bad+=("node$j reads w$i/f$name wrong")
			done
		done < <(tac "$T_TMP/written.$i" | awk '!seen[$1]++')
	done
	check_eq "$1" "" "${bad[*]}"
}
WPIDS=()
# start_writers: a writer on every node.
start_writers() {
	local i
	rm -f "$T_TMP/stop"
	for ((i = 1; i <= CL_N; i++)); do
		writer "$i" &
		WPIDS+=($!)
	done
}
stop_writers() {
	touch "$T_TMP/stop"
	((${#WPIDS[@]})) && wait "${WPIDS[@]}" 2>/dev/null
	WPIDS=()
}
defer stop_writers
defer "lun2 online >/dev/null 2>&1"
for ((i = 1; i <= CL_N; i++)); do
	touch "$T_TMP/errors.$i" "$T_TMP/written.$i"
done
# node2 alone writes when the LUN goes; it meets the failure first and asks
# the master, unless the metadata server's own I/O does (its store's writes
# for node2's changes, the flush of its dirty-region log's cleaner).
writer 2 &
WPIDS+=($!)
sleep 2
lun2 offline || fail "tgtadm takes LUN 2 offline"
nbefore=$(cat "$T_TMP"/written.* | wc -l)
log "LUN 2 is offline ($nbefore writes before)"
wait_until 60 eval '[[ "$(leg_states 1) $(leg_states 2) $(leg_states 3)" == "active out active out active out" ]]' ||
	fail "the leg goes out on every node within 60 s"
# Then every node writes without the leg.
for i in 1 3; do
	writer "$i" &
	WPIDS+=($!)
done
sleep 3
stop_writers
nafter=$(cat "$T_TMP"/written.* | wc -l)
check "the writers wrote on after LUN 2 went offline ($((nafter - nbefore)) writes)" \
	test "$nafter" -gt "$((nbefore + 6))"
check_eq "no writer saw an error" "" "$(cat "$T_TMP"/errors.*)"
for ((i = 1; i <= CL_N; i++)); do
	check_eq "node$i has leg 1 out" "active out" "$(leg_states "$i")"
done
check "the metadata server marked the leg out as mirror master and wrote the labels (its log)" \
	grep -q "leg 1 of mirror 0 failed I/O: marked out" "$(node_log 1)"
# Each client that met the failure asked the master, and the master took its request.
asked=()
for i in 2 3; do
	grep -q "leg 1 of mirror 0 failed I/O here: asking the mirror master" "$(node_log "$i")" &&
		asked+=("$i")
done
for i in "${asked[@]}"; do
	check "node$i asked the mirror master and the master took its request (logs)" \
		grep -q "mirror master: node node$i failed I/O to leg 1 of mirror 0" "$(node_log 1)"
done
((${#asked[@]})) || log "no client asked: the metadata server met the failure itself"
for i in 2 3; do
	check "node$i was told by the master" \
		grep -q "leg 1 of mirror 0 marked out (mirror master)" "$(node_log "$i")"
done
grep -h "mirror master\|failed I/O" "$(node_log 1)" "$(node_log 2)" "$(node_log 3)" | head -6 | sed 's/^/    /'

check_last_writes "every node reads every node's last writes right"
cross_node_rw mirror

lun2 online || fail "tgtadm takes LUN 2 online again"
out=$("$VOLUME_TOOL" show --json "$VOL_URIS" 2>&1) || true
check "the labels say leg 1 is out (cxfs-volume show --json)" python3 -c '
import json, sys
t = json.loads(sys.argv[1])["tree"]
assert [c["state"] for c in t["children"]] == ["active", "out"], t' "$out"

log "the revive, run by the mirror master while every node writes"
out=$("$CXFSCTL" --socket "$(node_sock 2)" volume revive 2>&1) || true
check "a client refuses to revive: the metadata server does (${out:0:80})" \
	grep -q "the metadata server (mirror master and config server)" <<<"$out"
start_writers
sleep 1
nrevive=$(cat "$T_TMP"/written.* | wc -l)
out=$("$CXFSCTL" --socket "$(node_sock 1)" volume revive 2>&1) || true
check "cxfsctl volume revive on the metadata server revives the leg (${out:0:60})" \
	grep -q "^ok: 1 leg revived" <<<"$out"
check "the revive showed its progress" grep -q "mirror 0 leg 1: .*% (" <<<"$out"
sleep 1
stop_writers
nafter=$(cat "$T_TMP"/written.* | wc -l)
check "the writers wrote during the revive ($((nafter - nrevive)) writes)" test "$nafter" -gt "$nrevive"
check_eq "no writer saw an error through the revive" "" "$(cat "$T_TMP"/errors.*)"
for ((i = 1; i <= CL_N; i++)); do
	check_eq "node$i has both legs active again" "active active" "$(leg_states "$i")"
done
# Reads are spread over the legs by region: half of them come from the revived leg now.
check_last_writes "after the revive every node reads every node's last writes right"

log "the mirror master killed during a revive: the next metadata server finishes it"
# The leg out again: LUN 2 offline under node2's writer, then back.
rm -f "$T_TMP/stop"
writer 2 &
WPIDS+=($!)
sleep 1
lun2 offline || fail "tgtadm takes LUN 2 offline (again)"
wait_until 60 eval '[[ "$(leg_states 1) $(leg_states 2) $(leg_states 3)" == "active out active out active out" ]]' ||
	fail "the leg goes out on every node again"
lun2 online || fail "tgtadm takes LUN 2 online (again)"
writer 3 &
WPIDS+=($!)
# At 16 MB/s (--max-rate) the copy of 255 MiB takes 16 s: node1 dies in it.
"$CXFSCTL" --socket "$(node_sock 1)" volume revive --max-rate 16 >"$T_TMP/revive1.out" 2>&1 &
# revive_point I: node I's revive point of mirror 0 (0 when none).
revive_point() {
	"$CXFSCTL" --socket "$(node_sock "$1")" volume --json 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["tree"].get("revive_point", 0))'
}
wait_until 30 eval '(( $(revive_point 1) >= 16 << 20 ))' || fail "node1's revive copies"
point=$(revive_point 1)
kill_node 1
log "node1 killed with its revive at $((${point:-0} >> 20)) MiB of 255"
wait_until 120 eval '[[ "$(leg_states 2) $(leg_states 3)" == "active active active active" ]]' ||
	fail "the legs are active again on node2 and node3 within 120 s"
sleep 1
stop_writers
new_mds=$(grep -l "volume revive started (this node took over as mirror master)" \
	"$(node_log 2)" "$(node_log 3)" 2>/dev/null | head -1)
check "the node that took over serving went on with the revive (${new_mds:-none})" test -n "$new_mds"
check_eq "no writer on node2 or node3 saw an error" "" "$(cat "$T_TMP/errors.2" "$T_TMP/errors.3")"
check "node1 comes back (restart) and sees both legs active" \
	eval '"$LOCAL_CLUSTER" restart --dir "$CL_DIR" 1 >>"$T_TMP/restart.log" 2>&1 &&
		[[ "$(leg_states 1)" == "active active" ]]'
check_last_writes "after the takeover every node reads every node's last writes right"

log "a client killed (kill -9) while it writes: the master resyncs only the regions of its log"
server=${new_mds#"$CL_DIR"/node}
server=${server%%/*}
clients=()
for ((i = 1; i <= CL_N; i++)); do
	((i == server)) || clients+=("$i")
done
victim=${clients[0]}
other=${clients[1]}
rm -f "$T_TMP/stop"
: >"$T_TMP/errors.k"
: >"$T_TMP/written.k"
checking_writer "$(node_mnt "$victim")/k" 8 k &
WPIDS+=($!)
writer "$other" &
WPIDS+=($!)
sleep 3
# The server's log from the kill on (a takeover may have swept node$victim's slot before).
nlog=$(wc -l <"$(node_log "$server")")
since_kill() { tail -n +$((nlog + 1)) "$(node_log "$server")"; }
kill_node "$victim"
resynced="dirty-region log of node node$victim (not a member): resynced"
wait_until 60 eval 'since_kill | grep -q "$resynced"' ||
	fail "the master (node$server) resyncs node$victim's log within 60 s"
read -r nres ntot < <(since_kill | grep "$resynced" | head -n 1 |
	sed 's/.*resynced \([0-9]*\) of \([0-9]*\) regions.*/\1 \2/')
check "node$server resynced only the regions node$victim's log names (${nres:-?} of ${ntot:-?})" \
	test "${nres:-0}" -gt 0 -a "${nres:-0}" -lt "${ntot:-0}"
grep -h "dirty-region log" "$(node_log "$server")" | tail -n 2 | sed 's/^/    /'
sleep 1
stop_writers
check_eq "no writer on node$other saw an error" "" "$(cat "$T_TMP/errors.$other")"
check "node$victim comes back (restart) and the master resyncs what its last run left" \
	eval '"$LOCAL_CLUSTER" restart --dir "$CL_DIR" "$victim" >>"$T_TMP/restart.log" 2>&1 &&
		wait_until 30 grep -q "the mirror master resynced what this node.s last run left" \
			"$(node_log "$victim")"'
check_last_writes "after the client's death every node reads every node's last writes right"

log "a third leg attached while every node writes (the config server), then revived"
# LUN 3: a new file-backed LU of the same target, as large as the others.
truncate -s "$(stat -c %s "$CL_DIR/lun.img")" "$CL_DIR/lun3.img"
tgtadm -C "$CTL" --lld iscsi --op new --mode logicalunit --tid 1 --lun 3 -b "$CL_DIR/lun3.img" ||
	fail "tgtadm adds LUN 3"
LUN3=${VOL_URIS##*,}
LUN3=${LUN3%/*}/3
client=${clients[0]}
out=$("$CXFSCTL" --socket "$(node_sock "$client")" volume attach 0 "$LUN3" 2>&1) || true
check "a client refuses a layout change: the metadata server makes it (${out:0:60})" \
	grep -q "config server" <<<"$out"
out=$("$CXFSCTL" --socket "$(node_sock "$server")" volume attach 0 "${LUN3%/*}/9" 2>&1) || true
check "a LUN nobody can open is refused, naming it (${out:0:90})" grep -q "/9" <<<"$out"
for ((i = 1; i <= CL_N; i++)); do
	: >"$T_TMP/errors.$i"
done
dd if="$T_TMP/pool" of="$(node_mnt "$server")/big" bs=1M count=4 status=none &&
	for ((k = 0; k < 12; k++)); do cat "$T_TMP/pool"; done |
		dd of="$(node_mnt "$server")/big" bs=1M oflag=append conv=notrunc,fsync status=none ||
	fail "node$server writes a 52 MiB file"
start_writers
sleep 1
nattach=$(cat "$T_TMP"/written.* | wc -l)
out=$("$CXFSCTL" --socket "$(node_sock "$server")" volume attach 0 "$LUN3" 2>&1) || true
check "cxfsctl volume attach on the metadata server attaches LUN 3 (${out:0:70})" \
	grep -q "^ok: attached" <<<"$out"
for ((i = 1; i <= CL_N; i++)); do
	check_eq "node$i has the new leg, reviving" "active active reviving" "$(leg_states "$i")"
done
# A client reads a file while the revive (paced to ~6 s) copies: its reads of
# chunks above the revive point are hinted to the master, which copies them
# ahead and skips them later (read-repair).
"$CXFSCTL" --socket "$(node_sock "$server")" volume revive --max-rate 40 >"$T_TMP/revive3.out" 2>&1 &
rpid=$!
sleep 0.5
dd if="$(node_mnt "$client")/big" of=/dev/null bs=1M iflag=direct status=none ||
	fail "node$client reads big during the revive"
wait "$rpid"
out=$(cat "$T_TMP/revive3.out")
check "the revive copies the mirror onto the new leg ($(tail -n 1 <<<"$out"))" \
	grep -q "^ok: 1 leg revived" <<<"$out"
repairs=$("$CXFSCTL" --socket "$(node_sock "$server")" volume --json |
	python3 -c 'import json, sys; print(json.load(sys.stdin).get("read_repairs", 0))')
check "the master copied chunks ahead for node$client's reads (${repairs:-?} read-repairs)" \
	test "${repairs:-0}" -gt 0
sleep 1
stop_writers
nafter=$(cat "$T_TMP"/written.* | wc -l)
check "the writers wrote through the attach and the revive ($((nafter - nattach)) writes)" \
	test "$nafter" -gt "$nattach"
check_eq "no writer saw an error through the attach and the revive" "" \
	"$(cat "$T_TMP/errors.1" "$T_TMP/errors.2" "$T_TMP/errors.3")"
for ((i = 1; i <= CL_N; i++)); do
	check_eq "node$i has three active legs" "active active active" "$(leg_states "$i")"
done
check_last_writes "after the attach every node reads every node's last writes right"
# The operator adds the LUN to cluster.conf: a node restarted assembles the three legs.
sed -i "s|^\(    volume  ${VOL_URIS##*,}\)\$|\1\n    volume  $LUN3|" "$CL_DIR/cluster.conf"
sed -i "s|^uri=.*|&,$LUN3|" "$CL_DIR/ports"    # the LUNs cxfs-check is given
check "node$client restarted with LUN 3 in cluster.conf sees three active legs" \
	eval '"$LOCAL_CLUSTER" restart --dir "$CL_DIR" "$client" >>"$T_TMP/restart.log" 2>&1 &&
		[[ "$(leg_states "$client")" == "active active active" ]]'

log "leg 1 (LUN 2) detached while every node writes, then taken out of cluster.conf"
LUN2=${VOL_URIS##*,}
out=$("$CXFSCTL" --socket "$(node_sock "$client")" volume detach 0 1 2>&1) || true
check "a client refuses a detach (${out:0:60})" grep -q "config server" <<<"$out"
for ((i = 1; i <= CL_N; i++)); do
	: >"$T_TMP/errors.$i"
done
start_writers
sleep 1
ndetach=$(cat "$T_TMP"/written.* | wc -l)
loglines=()
for ((i = 1; i <= CL_N; i++)); do
	loglines[i]=$(wc -l <"$(node_log "$i")")
done
out=$("$CXFSCTL" --socket "$(node_sock "$server")" volume detach 0 1 2>&1) || true
check "cxfsctl volume detach on the metadata server detaches leg 1 (${out:0:50})" \
	grep -q "^ok: leg 1 of mirror 0 detached" <<<"$out"
for ((i = 1; i <= CL_N; i++)); do
	check_eq "node$i has leg 1 detached" "active detached active" "$(leg_states "$i")"
done
out=$("$CXFSCTL" --socket "$(node_sock "$server")" volume detach 0 5 2>&1) || true
check "a leg the mirror does not have is refused (${out:0:40})" grep -q "has no leg 5" <<<"$out"
sleep 2
stop_writers
nafter=$(cat "$T_TMP"/written.* | wc -l)
check "the writers wrote through the detach ($((nafter - ndetach)) writes)" test "$nafter" -gt "$ndetach"
check_eq "no writer saw an error through the detach" "" \
	"$(cat "$T_TMP/errors.1" "$T_TMP/errors.2" "$T_TMP/errors.3")"
# A write on its way to the detached leg is refused by its LUN: no fence.
for ((i = 1; i <= CL_N; i++)); do
	check_eq "node$i did not take itself for fenced through the detach" "" \
		"$(tail -n +"$((loglines[i] + 1))" "$(node_log "$i")" | grep "this node is fenced")"
done
check_last_writes "after the detach every node reads every node's last writes right"
out=$("$VOLUME_TOOL" show "$LUN2" 2>&1) || true
check "the detached LUN carries no volume label any more (${out:0:60})" grep -q "legacy" <<<"$out"
# The operator takes LUN 2 out of cluster.conf: a node restarted assembles without it.
sed -i "\|^    volume  $LUN2\$|d" "$CL_DIR/cluster.conf"
sed -i "s|^uri=.*|uri=${VOL_URIS%%,*},$LUN3|" "$CL_DIR/ports"
check "node$client restarted without LUN 2 in cluster.conf sees the leg detached" \
	eval '"$LOCAL_CLUSTER" restart --dir "$CL_DIR" "$client" >>"$T_TMP/restart.log" 2>&1 &&
		[[ "$(leg_states "$client")" == "active detached active" ]]'

# same_legs: once every node stopped, the two legs left hold the same bytes.
same_legs() {
	local area=1048576 size
	size=$(( $(stat -c %s "$CL_DIR/lun.img") - area ))
	check "after the revives and the detach under the writers the two legs left hold the same bytes" \
		cmp -s -n "$size" <(tail -c +$((area + 1)) "$CL_DIR/lun.img") \
			<(tail -c +$((area + 1)) "$CL_DIR/lun3.img")
}
cluster_stop_and_check same_legs

it_finish
