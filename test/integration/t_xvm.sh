#!/usr/bin/env bash
# t_xvm.sh: XVM volumes (src/xvm) under real mounts, LUNs served by one tgtd.
#
#  1. A 3-node cluster (scripts/local-cluster --luns 3) on a 3-LUN stripe:
#     files of known content written on each node are read back, byte for
#     byte, on every node; every LUN holds a share of the data; after every
#     node unmounted, cxfs-check of the volume (all its LUNs) is clean.
#     While the nodes run, cxfs-volume revive is refused (their reservation
#     keys are on the LUNs); once every node left in order, it runs.
#  2. The same on figure 9's volume, 8 LUNs:
#     mirror(concat(0,1),mirror(stripe:64k(2,3,4),stripe:64k(5,6,7))); the
#     inner mirror's two stripes hold the same bytes, LUN by LUN.
#  3. Single machine, a 2-leg mirror of two LUNs: a writer that checks what
#     it wrote runs while LUN 2 is taken offline (tgtadm ... removable=1,
#     online=0: tgt then fails its I/O with NOT READY): no application
#     error, the leg is marked out (the daemon says so, and so does
#     `cxfsctl volume`); the LUN comes back and `cxfsctl volume revive`
#     copies the leg, with progress, while the writer goes on; a third LUN
#     is attached (`cxfsctl volume attach`) and revived under the writer
#     too; afterwards the legs are active and their data areas
#     byte-identical; unmounted, cxfs-volume detach takes the third away.
#  4. The same mirror, unmounted: LUN 2 offline again under a short
#     writer; the labels say the leg is out (cxfs-volume show, assembling
#     without the offline LUN); once it is back, cxfs-volume revive (no
#     daemon) makes the legs identical again; every file reads back right
#     and cxfs-check is clean.
#  5. The dirty-region log: cxfsd killed (kill -9) while a writer writes
#     the mirror.  Its slot on the LUNs names some of the mirror's regions,
#     not all; the test then makes the legs differ in each of them (it
#     changes 4 KiB of every 256 KiB piece on the leg that reads do not
#     use there, as a write that reached one leg only would); at the next
#     mount cxfsd resyncs exactly those regions before it serves, and
#     afterwards the legs are byte-identical, every file the writer
#     finished reads back right and cxfs-check is clean.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init t_xvm --need-tgtd

VOLUME_TOOL=$CXFS_BIN_DIR/cxfs-volume
LABEL_AREA=1048576     # XVM_RESERVED: the label area at the start of each LUN

# write_and_cross_check TAG: each node writes three files of known content;
# every node reads every file back and compares its checksum.
write_and_cross_check() {
	local tag=$1 i j k size sum got bad=()
	mkdir -p "$T_TMP/src"
	for ((i = 1; i <= CL_N; i++)); do
		k=0
		for size in 70000 1200000 5000000; do
			k=$((k + 1))
			rand_file "$T_TMP/src/$tag.$i.$k" "$size"
			cp "$T_TMP/src/$tag.$i.$k" "$(node_mnt "$i")/$tag.$i.$k" ||
				bad+=("cp on node$i failed")
		done
	done
	for ((i = 1; i <= CL_N; i++)); do
		for ((k = 1; k <= 3; k++)); do
			sum=$(sum_of "$T_TMP/src/$tag.$i.$k")
			for ((j = 1; j <= CL_N; j++)); do
				got=$(sum_of "$(node_mnt "$j")/$tag.$i.$k" 2>/dev/null) || got=error
				[[ "$got" == "$sum" ]] || bad+=("node$j reads $tag.$i.$k of node$i wrong")
			done
		done
	done
	if ((${#bad[@]} == 0)); then
		pass "$tag: $((3 * CL_N)) files written on $CL_N nodes read back byte for byte on every node"
	else
		fail "$tag: ${bad[*]}"
	fi
}

# lun_file K: the backing file of the cluster's LUN K.
lun_file() { if (($1 == 1)); then echo "$CL_DIR/lun.img"; else echo "$CL_DIR/lun$1.img"; fi; }

# data_used FILE: bytes allocated to FILE beyond its label area (a sparse file).
data_used() { echo $(($(stat -c '%b * %B' "$1") - LABEL_AREA)); }

# same_data A B LEN: the data areas (after the label area) of two LUN files match over LEN bytes.
same_data() {
	cmp -s -n "$3" <(tail -c +$((LABEL_AREA + 1)) "$1") <(tail -c +$((LABEL_AREA + 1)) "$2")
}

log "1: a 3-node cluster on a 3-LUN stripe"
cluster_up 3 --size 48M --luns 3 --volume 'stripe:64k(0,1,2)' ||
	{ fail "a 3-node cluster on a 3-LUN stripe starts"; it_finish; }
check "the cluster configuration lists the 3 LUNs" \
	test "$(grep -c '^ *volume ' "$CL_CONF")" = 3
write_and_cross_check stripe
cross_node_rw stripe
for k in 1 2 3; do
	check "LUN $k holds a share of the data (over 3 MiB)" test "$(data_used "$(lun_file "$k")")" -gt 3000000
done
# A layout change or revive under running nodes: refused, naming their keys.
vol_uris=$(sed -n 's/^uri=//p' "$CL_DIR/ports")
out=$("$VOLUME_TOOL" revive "$vol_uris" 2>&1) && rc=0 || rc=$?
check "cxfs-volume revive refuses a volume the cluster uses (exit $rc: ${out:0:160})" \
	eval '((rc == 1)) && grep -q "registered key" <<<"$out"'
# Every node left in order, so its key is gone: the revive may run.
revive_after_leave() {
	check "cxfs-volume revive runs once every node left (their keys went with them)" \
		"$VOLUME_TOOL" revive "$vol_uris"
}
cluster_stop_and_check revive_after_leave

log "2: a 3-node cluster on figure 9's volume (8 LUNs)"
cluster_up 3 --size 48M --luns 8 --fs fig9 \
	--layout 'mirror(concat(0,1),mirror(stripe:64k(2,3,4),stripe:64k(5,6,7)))' ||
	{ fail "a 3-node cluster on figure 9's volume starts"; it_finish; }
out=$("$VOLUME_TOOL" show --json "$(sed -n 's/^uri=//p' "$CL_DIR/ports")" 2>&1) || true
check "cxfs-volume show --json: figure 9's layout, every leg active" python3 -c '
import json, sys
v = json.loads(sys.argv[1])
def legs(n):
    return ([n["state"]] if "state" in n else []) + [s for c in n["children"] for s in legs(c)]
assert v["layout"] == "mirror(concat(0,1),mirror(stripe:64k(2,3,4),stripe:64k(5,6,7)))", v["layout"]
assert legs(v["tree"]) == ["active"] * 4, legs(v["tree"])
' "$out"
write_and_cross_check fig9
cross_node_rw fig9
# The copies agree: the concat's bytes against each stripe's, read through
# the volume's own mapping is the unit tests' business; here the two stripes
# (same geometry) must hold identical bytes LUN by LUN.
size=$(( $(stat -c %s "$(lun_file 1)") - LABEL_AREA ))
for k in 3 4 5; do
	check "stripe copies agree: LUN $k and LUN $((k + 3)) hold the same bytes" \
		same_data "$(lun_file "$k")" "$(lun_file $((k + 3)))" "$size"
done
cluster_stop_and_check

log "3: single machine, a 2-leg mirror; LUN 2 goes offline under a writer, revived under it"
start_tgtd "$T_TMP/m1.img" 100M >/dev/null || { fail "tgtd starts"; it_finish; }
truncate -s 100M "$T_TMP/m2.img"
tgtadm -C "$TGT_CTL" --lld iscsi --op new --mode logicalunit --tid 1 --lun 2 -b "$T_TMP/m2.img" ||
	{ fail "tgtd serves a second LUN"; it_finish; }
U1=$TGT_URI
U2=${TGT_URI%/1}/2
check "cxfs-volume create a 2-leg mirror" "$VOLUME_TOOL" create --layout 'mirror(0,1)' --name m "$U1" "$U2"
check "mkfs.cxfs on the mirror's two LUNs" "$MKFS" --name mirror "$U1" "$U2"
MNT=$T_TMP/mnt
mount_cxfs "$U1,$U2" "$MNT" || { fail "cxfsd mounts the mirror"; it_finish; }
SOCK=${CXFSD_SOCK[$MNT]}
mkdir "$MNT/w"
msize=$(( $(stat -c %s "$T_TMP/m1.img") - LABEL_AREA ))
# The writer (checking_writer): 32 files; any failure is an application error.
rand_file "$T_TMP/pool" 4194304
# lun2 online|offline (tgt fails I/O with NOT READY only on an offline LU marked removable).
lun2() {
	tgtadm -C "$TGT_CTL" --lld iscsi --op update --mode logicalunit --tid 1 --lun 2 \
		--params "removable=1,online=$([[ $1 == online ]] && echo 1 || echo 0)"
}
# start_writer / stop_writer: the writer in the background.
start_writer() {
	rm -f "$T_TMP/stop"
	checking_writer "$MNT/w" 32 w &
	WPID=$!
	defer "kill $WPID 2>/dev/null || true"
}
stop_writer() { touch "$T_TMP/stop"; wait "$WPID"; }

: >"$T_TMP/errors.w"
start_writer
sleep 2
lun2 offline || fail "tgtadm takes LUN 2 offline"
nbefore=$(wc -l <"$T_TMP/written.w")
log "LUN 2 is offline ($nbefore files written before)"
wait_until 20 grep -q "leg 1 of mirror 0 failed I/O: marked out" "${CXFSD_LOG[$MNT]}" || true
check "cxfsd marked the mirror's leg 1 out" grep -q "leg 1 of mirror 0 failed I/O: marked out" \
	"${CXFSD_LOG[$MNT]}"
sleep 2
out=$("$CXFSCTL" --socket "$SOCK" volume 2>&1) || true
check "cxfsctl volume: leg 1 is out" grep -q "leg 1 out" <<<"$out"
lun2 online || fail "tgtadm takes LUN 2 online again"
nrevive=$(wc -l <"$T_TMP/written.w")
out=$("$CXFSCTL" --socket "$SOCK" volume revive 2>&1) || true
check "cxfsctl volume revive revives one leg while the writer goes on" grep -q "^ok: 1 leg revived" <<<"$out"
check "the revive showed its progress" grep -q "mirror 0 leg 1: *[0-9.]*% (" <<<"$out"
echo "$out" | grep "mirror 0" | tail -n 1 | sed 's/^/    /'
nafter=$(wc -l <"$T_TMP/written.w")
check "the writer wrote during the revive ($((nafter - nrevive)) files)" test "$nafter" -gt "$nrevive"
# A third leg attached online (the daemon's cxfsctl volume attach), revived under the writer.
truncate -s 100M "$T_TMP/m3.img"
tgtadm -C "$TGT_CTL" --lld iscsi --op new --mode logicalunit --tid 1 --lun 3 -b "$T_TMP/m3.img" ||
	fail "tgtd serves a third LUN"
U3=${TGT_URI%/1}/3
out=$("$CXFSCTL" --socket "$SOCK" volume grow "$U3" 2>&1) || true
check "cxfsctl volume grow refuses a mirror (${out:0:70})" grep -q "not a concat" <<<"$out"
out=$("$CXFSCTL" --socket "$SOCK" volume attach 0 "$U3" 2>&1) || true
check "cxfsctl volume attach adds LUN 3 as a reviving leg while the writer goes on (${out:0:60})" \
	grep -q "^ok: attached as a reviving leg" <<<"$out"
out=$("$CXFSCTL" --socket "$SOCK" volume revive 2>&1) || true
check "cxfsctl volume revive copies the mirror onto it" grep -q "^ok: 1 leg revived" <<<"$out"
sleep 1
stop_writer
nfiles=$(wc -l <"$T_TMP/written.w")
check_eq "the writer saw no error through the failure and the revive ($nfiles writes, each read back)" \
	"" "$(cat "$T_TMP/errors.w")"
check "the writer wrote files while LUN 2 was offline ($((nrevive - nbefore)))" \
	test "$nrevive" -gt $((nbefore + 5))
out=$("$CXFSCTL" --socket "$SOCK" --json volume 2>&1) || true
check "cxfsctl volume --json: the three legs active" python3 -c '
import json, sys
t = json.loads(sys.argv[1])["tree"]
assert [c["state"] for c in t["children"]] == ["active", "active", "active"]' "$out"
umount_cxfs "$MNT" || fail "unmount the mirror"
check "after the revive under the writer both legs hold the same bytes" \
	same_data "$T_TMP/m1.img" "$T_TMP/m2.img" "$msize"
check "the leg attached online holds the same bytes" \
	same_data "$T_TMP/m1.img" "$T_TMP/m3.img" "$msize"
check "cxfs-volume detach takes the third leg away again (unmounted)" \
	"$VOLUME_TOOL" detach --mirror 0 --leg 2 "$U1" "$U2" "$U3"

log "4: the mirror unmounted: LUN 2 offline under a short writer, then cxfs-volume revive"
mount_cxfs "$U1,$U2" "$MNT" || { fail "cxfsd mounts the mirror again"; it_finish; }
start_writer
sleep 1
lun2 offline || fail "tgtadm takes LUN 2 offline"
sleep 2
stop_writer
check_eq "the writer saw no error" "" "$(cat "$T_TMP/errors.w")"
umount_cxfs "$MNT" || fail "unmount the mirror"
out=$("$VOLUME_TOOL" show "$U1" "$U2" 2>&1) || true
check "the labels say leg 1 is out (cxfs-volume show with LUN 2 still offline)" \
	grep -q "leg 1 out" <<<"$out"
lun2 online || fail "tgtadm takes LUN 2 online again"
check_fails "the legs differ before the revive" same_data "$T_TMP/m1.img" "$T_TMP/m2.img" "$msize"
out=$("$VOLUME_TOOL" revive "$U1" "$U2" 2>&1) || true
check "cxfs-volume revive revives one leg" grep -q "^1 leg revived" <<<"$out"
check "the revive showed its progress" grep -q "100.0% (" <<<"$out"
grep -m1 "100.0%" <<<"$out" | sed 's/^/    /'   # from a here-string: no writer for grep -m1 to cut off (SIGPIPE under pipefail)
check "after the revive both legs hold the same bytes" \
	same_data "$T_TMP/m1.img" "$T_TMP/m2.img" "$msize"
out=$("$VOLUME_TOOL" show --json "$U1,$U2" 2>&1) || true
check "cxfs-volume show: both legs active" python3 -c '
import json, sys
t = json.loads(sys.argv[1])["tree"]
assert [c["state"] for c in t["children"]] == ["active", "active"]' "$out"
check_volume "$U1,$U2" "cxfs-check finds the mirror clean"
mount_cxfs "$U1,$U2" "$MNT" || { fail "cxfsd mounts the revived mirror"; it_finish; }
bad=0
while read -r k skip len; do
	cmp -s "$MNT/w/f$k" <(dd if="$T_TMP/pool" bs=65536 skip="$skip" count=$((len / 65536)) \
		status=none) || bad=$((bad + 1))
done < <(tac "$T_TMP/written.w" | awk '!seen[$1]++')
check_eq "the writer's 32 files read back right after the revives" 0 "$bad"
umount_cxfs "$MNT" || fail "unmount the mirror"

log "5: the dirty-region log: cxfsd killed (kill -9) while it writes the mirror"
mount_cxfs "$U1,$U2" "$MNT" || { fail "cxfsd mounts the mirror for the kill"; it_finish; }
: >"$T_TMP/errors.d"
: >"$T_TMP/written.d"
rm -f "$T_TMP/stop"
checking_writer "$MNT/d" 16 d &
WPID=$!
defer "kill $WPID 2>/dev/null || true"
sleep 3
nkill=$(wc -l <"$T_TMP/written.d")
kill_cxfs "$MNT"
touch "$T_TMP/stop"
wait "$WPID" 2>/dev/null || true
# The slot of the single machine (0) on both LUNs: its regions; then each
# 256 KiB piece of them differs on the leg reads do not use (the piece's
# number modulo 2 picks the read leg of a 2-leg mirror, xvm_io.c).
out=$(python3 - "$T_TMP/m1.img" "$T_TMP/m2.img" "$msize" <<'PY'
import struct, sys
luns, msize = sys.argv[1:3], int(sys.argv[3])
slot_off, slot_len, hdr = 64 << 10, 12288, 128
bits, shift, nbits = 0, None, 0
for lun in luns:
    with open(lun, "rb") as f:
        f.seek(slot_off)
        img = f.read(slot_len)
    if img[:8] != b"CXFSDRL\0":
        continue
    shift, nbits = struct.unpack_from("<II", img, 32)
    bits |= int.from_bytes(img[hdr:hdr + (nbits + 7) // 8], "little")
dirty = [b for b in range(nbits) if bits >> b & 1]
for b in dirty:
    lo, hi = b << shift, min((b + 1) << shift, msize)
    for piece in range(lo >> 18, (hi + (1 << 18) - 1) >> 18):
        with open(luns[(piece + 1) % 2], "r+b") as f:
            f.seek((1 << 20) + (piece << 18))
            blk = f.read(4096)
            f.seek((1 << 20) + (piece << 18))
            f.write(bytes(x ^ 0x5A for x in blk))
print(len(dirty), nbits)
PY
) || out="0 0"
read -r ndirty nregions <<<"$out"
check "the killed daemon's log names some of the mirror's regions, not all ($ndirty of $nregions)" \
	test "${ndirty:-0}" -gt 0 -a "${ndirty:-0}" -lt "${nregions:-0}"
check_fails "the legs differ where the log says before the next mount" \
	same_data "$T_TMP/m1.img" "$T_TMP/m2.img" "$msize"
mount_cxfs "$U1,$U2" "$MNT" || { fail "cxfsd mounts the mirror after the kill"; it_finish; }
check "cxfsd resynced exactly those regions before it served ($ndirty of $nregions)" \
	grep -q "dirty-region log: resynced the $ndirty of $nregions regions the last run left" \
	"${CXFSD_LOG[$MNT]}"
grep -h "dirty-region log: resynced" "${CXFSD_LOG[$MNT]}" | tail -n 1 | sed 's/^/    /'
out=$("$CXFSCTL" --socket "${CXFSD_SOCK[$MNT]}" --json volume 2>&1) || true
check "cxfsctl volume --json: the log holds nothing of the last run now" python3 -c '
import json, sys
d = json.loads(sys.argv[1])["drl"]
assert d["slot"] == 0 and d["inherited"] == 0, d' "$out"
# Every file the writer finished before the kill reads back right; those
# it wrote after (it failed) or while the daemon died are left out.
bad=0
while read -r k skip len; do
	cmp -s "$MNT/d/f$k" <(dd if="$T_TMP/pool" bs=65536 skip="$skip" count=$((len / 65536)) \
		status=none) || bad=$((bad + 1))
done < <(awk -v n="$nkill" 'NR <= n { last[$1] = $0 } NR > n { delete last[$1] }
	END { for (k in last) print last[k] }' "$T_TMP/written.d")
check_eq "the writer's files finished before the kill read back right after the resync ($nkill writes)" \
	0 "$bad"
umount_cxfs "$MNT" || fail "unmount the mirror"
check "after the resync both legs hold the same bytes" \
	same_data "$T_TMP/m1.img" "$T_TMP/m2.img" "$msize"
check_volume "$U1,$U2" "cxfs-check finds the mirror clean after the resync"

it_finish
