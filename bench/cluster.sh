# shellcheck shell=bash
# cluster.sh: the cluster mode of bench.sh (`bench/bench.sh --cluster`);
# sourced by bench.sh after its setup, never run by itself.
#
# Sections: binaries; the raw LUN; the cluster; fio; metadata; report.
#
# What it measures, each figure the median of REPEAT runs:
#   raw LUN     a scratch tgtd (lib.sh start_tgtd) whose LUN is a file of the
#               cluster LUN's size, filled with random data: iscsi-perf reads
#               and cxfs-blkperf writes exactly as in the single-node mode,
#               plus two cxfs-blkperf writers at once (two iSCSI sessions).
#               A LUN of its own, because writing raw under a mounted cxfs
#               would wreck it; measured at the start of every repeat, while
#               the cluster is idle, so that the raw and the cxfs figures of
#               a repeat see the same load on the (shared, noisy) box.
#   cluster     scripts/local-cluster up -n 3 (its own tgtd on loopback, one
#               sparse file-backed LUN, node1 first so node1 is the MDS).
#   fio         1 MiB sequential write and read, 4 KiB random read and write,
#               libaio iodepth 16, O_DIRECT, FIO_RUNTIME seconds each, in
#               three configurations:
#                 one     node2 alone on file A
#                 two     node2 on file A and node3 on file B at once (one fio
#                         process, two jobs that start together); aggregate
#                 shared  node2 and node3 at once on file S: the sequential
#                         jobs on halves of S (node2 the first, node3 the
#                         second), the random jobs both over all of S
#               A and S are laid out by node2, B by node3, before the jobs.
#   metadata    metabench.py (create, stat, rename, unlink of META_N empty
#               files, in one directory and over 100) on node2 (a client)
#               and on node1 (the MDS node), one at a time.
# Around every phase each node's `cxfsctl status --json` is read and the
# difference of its counters recorded (messages, token acquisitions served
# by the token server vs from the client's cache, recalls, allocations,
# write-dones, extent-map fetches, forwarded operations, page invalidations),
# so the report can say where a phase's messages went.
#
# Uses from bench.sh: QUICK REPEAT FIO_SIZE_MB FIO_RUNTIME PERF_SECS META_N
# LUN_MB T_TMP RES BENCH_DIR CXFS_BIN_DIR, say, record, iscsi_perf, blk_perf,
# and lib.sh's start_tgtd, stop_tgtd, defer.

TOP=$(cd "$BENCH_DIR/.." && pwd)
CB_PY=$BENCH_DIR/clusterbench.py

# ---------------------------------------------------------------------------
# Binaries: a private copy, so a build in the tree during the run cannot mix
# versions between the nodes (other people rebuild build/bin while we run).
# ---------------------------------------------------------------------------

BIN=$T_TMP/bin
mkdir -p "$BIN"
for b in cxfsd mkfs.cxfs cxfsctl cxfs-blkperf; do
	cp -p "$CXFS_BIN_DIR/$b" "$BIN/$b"
done
BUILT=$(date -u -r "$BIN/cxfsd" '+%F %T UTC')
CXFS_BIN_DIR=$BIN
CXFSCTL=$BIN/cxfsctl
# The commit the binaries come from: BENCH_COMMIT if the caller knows it
# (binaries built elsewhere), else this tree's HEAD, flagged if the tree's
# sources differ from it (then the binaries may hold more than the commit).
if [[ -n "${BENCH_COMMIT:-}" ]]; then
	COMMIT=$BENCH_COMMIT
else
	COMMIT=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [[ -n "$(git -C "$TOP" status --porcelain -- src proto CMakeLists.txt 2>/dev/null)" ]]; then
		COMMIT+=" (sources modified)"
	fi
fi
say "cluster mode: commit $COMMIT, cxfsd built $BUILT; fio ${FIO_SIZE_MB} MiB files," \
	"${FIO_RUNTIME} s per job; metadata ${META_N} files; ${REPEAT} repeat(s)"

# ---------------------------------------------------------------------------
# The raw LUN, on a scratch tgtd.
# ---------------------------------------------------------------------------

# blk_perf2 KEY ARGS...: two cxfs-blkperf at once (two sessions on the one
# LUN); records the sum of their MB/s and IOPS.
blk_perf2() {
	local key=$1 i pids=() sum_mbs=0 sum_iops=0 out ok=1
	shift
	for i in 1 2; do
		"$CXFS_BIN_DIR/cxfs-blkperf" -m 16 -t "$PERF_SECS" "$@" "$TGT_URI" \
			>"$T_TMP/blkperf.$i" 2>&1 &
		pids+=($!)
	done
	for i in 0 1; do
		wait "${pids[$i]}" || ok=0
	done
	if ((!ok)); then
		say "cxfs-blkperf (two at once) failed: $(cat "$T_TMP/blkperf.1" "$T_TMP/blkperf.2")"
		return 0
	fi
	for i in 1 2; do
		out=$(cat "$T_TMP/blkperf.$i")
		sum_mbs=$(awk -v a="$sum_mbs" '{print a + $(NF-3)}' <<<"$out")
		sum_iops=$(awk -v a="$sum_iops" '{print a + $(NF-1)}' <<<"$out")
	done
	record "raw.$key.mbs" "$sum_mbs"
	record "raw.$key.iops" "$sum_iops"
	say "raw LUN $key (two writers): $sum_mbs MB/s, $sum_iops IOPS"
}

# raw_lun: one round of the raw LUN figures, on the scratch tgtd.
raw_lun() {
	iscsi_perf seq 512
	iscsi_perf rand 8 -r
	blk_perf seqw --write -b 256K
	blk_perf randw --write --random -b 4K
	blk_perf2 seqw2 --write -b 256K
}

say "raw LUN: a scratch tgtd with a ${LUN_MB} MiB LUN filled with random data"
head -c $((LUN_MB << 20)) /dev/urandom >"$T_TMP/raw.img"
start_tgtd "$T_TMP/raw.img" "${LUN_MB}M" >/dev/null || exit 1
say "scratch tgtd on $TGT_URI"

# ---------------------------------------------------------------------------
# The cluster.
# ---------------------------------------------------------------------------

CL=$T_TMP/cluster
LC=("$TOP/scripts/local-cluster")
# Stopped by the cleanup stack whatever happens (down stops only the PIDs
# recorded in CL, and succeeds on a half-up or stopped cluster).
defer "CXFS_BIN_DIR='$BIN' '$TOP/scripts/local-cluster' down --dir '$CL' >&2"
say "starting a 3-node local cluster in $CL (LUN ${LUN_MB} MiB, sparse)"
CXFS_BIN_DIR=$BIN "${LC[@]}" up -n 3 --dir "$CL" --size "${LUN_MB}M" >&2 || {
	say "local-cluster up failed"
	exit 1
}
M1=$CL/node1/mnt
M2=$CL/node2/mnt
M3=$CL/node3/mnt
MDS=$("$CXFSCTL" --socket "$CL/node1/admin.sock" status --json |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["cluster"]["server"])')
if [[ $MDS != node1 ]]; then
	say "the MDS is $MDS, not node1: the client/MDS comparison would be wrong"
	exit 1
fi

# The node logs matter when a phase fails: show their ends.
show_node_logs() {
	local i
	for i in 1 2 3; do
		say "--- last lines of node$i's log:"
		tail -n 15 "$CL/node$i/log" >&2 || true
	done
}

# Counter snapshots: snap TAG saves each node's status as CTR/TAG.nodeI.json;
# ctr_delta PHASE records the difference between the snapshots "before" and
# "after" as ctr.PHASE.nodeI.KEY lines.
CTR=$T_TMP/counters
mkdir -p "$CTR"
snap() {
	local i
	for i in 1 2 3; do
		"$CXFSCTL" --socket "$CL/node$i/admin.sock" status --json \
			>"$CTR/$1.node$i.json" 2>/dev/null || echo '{}' >"$CTR/$1.node$i.json"
	done
}
ctr_delta() {
	python3 "$CB_PY" counters "$1" "$CTR" >>"$RES"
}
# record_load: the 1-minute load average after a phase, as a sign of what
# else ran on the box (the run itself accounts for part of it).
record_load() {
	record load.1min "$(cut -d' ' -f1 /proc/loadavg)"
}

# ---------------------------------------------------------------------------
# fio.
# ---------------------------------------------------------------------------

JOBS=("seqwrite write 1M" "seqread read 1M" "randread randread 4k" "randwrite randwrite 4k")
HALF=$((FIO_SIZE_MB / 2))

# cluster_fio KEY RW BS SPEC...: one fio process with one job per SPEC
# ("NAME FILE [OFFSET_MB SIZE_MB]"), all started together; records the sum
# over the jobs as KEY.mbs, KEY.iops, KEY.ios and each job as KEY.NAME.*, and
# the counters of the phase.
cluster_fio() {
	local key=$1 rw=$2 bs=$3 spec name file off size args=() extra=() out
	shift 3
	[[ $rw == *write ]] && extra+=(--end_fsync=1)
	for spec in "$@"; do
		read -r name file off size <<<"$spec"
		args+=(--name="$name" --filename="$file" --offset="${off:-0}M"
			--size="${size:-$FIO_SIZE_MB}M")
	done
	snap before
	out=$(fio --rw="$rw" --bs="$bs" --ioengine=libaio --iodepth=16 --direct=1 \
		--runtime="$FIO_RUNTIME" --time_based --randrepeat=0 "${extra[@]}" \
		--output-format=json "${args[@]}" 2>"$T_TMP/fio.err") || {
		say "fio $key failed: $(tail -n 3 "$T_TMP/fio.err")"
		show_node_logs
		return 0
	}
	snap after
	python3 "$CB_PY" fio "$key" "$rw" <<<"$out" >>"$RES"
	ctr_delta "$key"
	record_load
}

say "laying out the ${FIO_SIZE_MB} MiB fio files A, S (node2) and B (node3)"
for spec in "$M2/A.dat" "$M3/B.dat" "$M2/S.dat"; do
	fio --name=layout --filename="$spec" --size="${FIO_SIZE_MB}M" --rw=write \
		--bs=1M --end_fsync=1 --output=/dev/null
done

# ---------------------------------------------------------------------------
# Metadata.
# ---------------------------------------------------------------------------

# cluster_meta TARGET DIR SHAPE NDIRS: metabench in DIR/meta; records
# TARGET.meta.SHAPE.OP and the counters of the phase meta.TARGET.SHAPE.
cluster_meta() {
	local target=$1 dir=$2 shape=$3 ndirs=$4 out
	mkdir -p "$dir/meta"
	snap before
	out=$(python3 "$BENCH_DIR/metabench.py" "$dir/meta" "$META_N" "$ndirs") || {
		say "metabench on $target failed"
		show_node_logs
		return 0
	}
	snap after
	rmdir "$dir/meta"
	python3 -c '
import json, sys
for k, v in json.loads(sys.argv[2]).items():
    print(f"{sys.argv[1]}.{k} {v}")' "$target.meta.$shape" "$out" >>"$RES"
	ctr_delta "meta.$target.$shape"
	record_load
	say "metadata $target $shape: $out"
}

# ---------------------------------------------------------------------------
# The runs: every repeat does the raw LUN, all of fio, then the metadata
# (client and MDS node in alternating order, so neither always runs on a
# warmer system).
# ---------------------------------------------------------------------------

for ((r = 1; r <= REPEAT; r++)); do
	say "repeat $r of $REPEAT"
	raw_lun
	for j in "${JOBS[@]}"; do
		read -r job rw bs <<<"$j"
		cluster_fio "one.$job" "$rw" "$bs" "n2 $M2/A.dat"
	done
	for j in "${JOBS[@]}"; do
		read -r job rw bs <<<"$j"
		cluster_fio "two.$job" "$rw" "$bs" "n2 $M2/A.dat" "n3 $M3/B.dat"
	done
	for j in "${JOBS[@]}"; do
		read -r job rw bs <<<"$j"
		if [[ $job == seq* ]]; then
			cluster_fio "shared.$job" "$rw" "$bs" "n2 $M2/S.dat 0 $HALF" \
				"n3 $M3/S.dat $HALF $HALF"
		else
			cluster_fio "shared.$job" "$rw" "$bs" "n2 $M2/S.dat" "n3 $M3/S.dat"
		fi
	done
	order=("client $M2" "mds $M1")
	((r % 2 == 0)) && order=("mds $M1" "client $M2")
	for t in "${order[@]}"; do
		read -r target dir <<<"$t"
		cluster_meta "$target" "$dir" one 1
		cluster_meta "$target" "$dir" many 100
	done
done

# Stop the cluster and the scratch tgtd now (the cleanup stack would, too),
# before the report.
rm -f "$M2/A.dat" "$M3/B.dat" "$M2/S.dat"
CXFS_BIN_DIR=$BIN "${LC[@]}" down --dir "$CL" >&2 || say "local-cluster down failed"
stop_tgtd
rm -f "$T_TMP/raw.img"

# ---------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------

python3 "$CB_PY" report "$RES" --repeat "$REPEAT" --size "$FIO_SIZE_MB" \
	--runtime "$FIO_RUNTIME" --meta-files "$META_N" --quick "$QUICK" \
	--commit "$COMMIT" --built "$BUILT"
