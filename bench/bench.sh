#!/usr/bin/env bash
# bench.sh: one benchmark run of cxfs against its references, side by side.
#
#   bench/bench.sh [--quick] [--repeat N] [--no-direct] [--meta-files N]
#   bench/bench.sh --cluster [--quick] [--repeat N] [--meta-files N]
#   bench/bench.sh --hsm [--quick] [--repeat N]
#
# What it measures on one node (each figure is the median of --repeat runs,
# default 3):
#   raw LUN     iscsi-perf on the LUN of a tgtd this script starts: sequential
#               reads of 256 KiB (-b 512, 512-byte blocks) with 16 in flight,
#               and random 4 KiB reads (-b 8 -r) with 16 in flight; and, since
#               iscsi-perf only reads, cxfs-blkperf (the same libiscsi path
#               cxfs uses) for sequential 256 KiB and random 4 KiB writes
#               with 16 in flight
#   fio         1 MiB sequential write and read, 4 KiB random read and write,
#               libaio, iodepth 16, buffered (direct=0) and direct (direct=1),
#               on cxfs mounted from that LUN and on a local directory
#   metadata    create, stat, rename, unlink of N empty files in one directory
#               and spread over 100 directories (bench/metabench.py), on cxfs
#               and on the local directory
# and prints each cxfs figure with its reference and the ratio: sequential
# and random I/O against the raw LUN (the local directory is shown too),
# metadata against the local directory.  The last section is a markdown table
# for docs/PERFORMANCE.md.
#
# With --cluster (bench/cluster.sh, which says more): the same raw LUN
# figures on a scratch tgtd, then a 3-node scripts/local-cluster (node1 is
# the MDS) and the O_DIRECT fio jobs from one client (node2), from two
# clients at once on two files (node2 and node3) and on one shared file, and
# metabench on a client (node2) and on the MDS node (node1); prints medians,
# the ratios two-writer aggregate / raw LUN and client / MDS-node metadata,
# and the cluster counters (cxfsctl status) of each phase.  --no-direct does
# not apply (the cluster jobs are O_DIRECT only); --quick also means one
# repeat unless --repeat is given.  BENCH_COMMIT (environment) names the
# commit the binaries of CXFS_BIN_DIR were built from, if not this tree's.
#
# With --hsm: bench/hsm.sh (which says more): on a 3-node DMAPI cluster,
# the recall throughput of an offline 1 GiB file (256 MiB with --quick)
# read through a mount against a plain copy of its tier file, and the time
# to the first 4 KiB read in the middle of the offline file.
#
# Needs root, /dev/fuse, tgtd/tgtadm, iscsi-perf, fio, python3, and the
# binaries in CXFS_BIN_DIR (default: build/bin).  Everything it starts (tgtd,
# cxfsd, the mount; with --cluster, the cluster, through local-cluster down)
# is stopped by PID on exit; its files live in one temp dir under /tmp (the
# local reference directory is there too).
#
# Progress goes to stderr, results to stdout.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../test/integration/lib.sh
. "$BENCH_DIR/../test/integration/lib.sh"

QUICK=0
REPEAT=3
META_FILES=
DIRECT=1
CLUSTER=0
HSM_MODE=0
REPEAT_SET=0
while (($#)); do
	case $1 in
	--quick) QUICK=1 ;;
	--repeat) REPEAT=$2; REPEAT_SET=1; shift ;;
	--no-direct) DIRECT=0 ;;
	--meta-files) META_FILES=$2; shift ;;
	--cluster) CLUSTER=1 ;;
	--hsm) HSM_MODE=1 ;;
	-h | --help) sed -n "2,49p" "$0"; exit 0 ;;
	*) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

# The HSM benchmark needs none of fio, iscsi-perf or the raw LUN: its own script.
if ((HSM_MODE)); then
	hsm_args=()
	((QUICK)) && hsm_args+=(--quick)
	((REPEAT_SET)) && hsm_args+=(--repeat "$REPEAT")
	exec bash "$BENCH_DIR/hsm.sh" "${hsm_args[@]}"
fi

if ((QUICK)); then
	FIO_SIZE_MB=256     # file size for every fio job
	FIO_RUNTIME=4       # seconds per fio job
	PERF_SECS=4         # seconds per iscsi-perf run
	META_N=10000        # files per metadata run
else
	FIO_SIZE_MB=1024
	FIO_RUNTIME=15
	PERF_SECS=10
	META_N=100000
fi
if ((CLUSTER)); then
	# Cluster metadata runs at a few thousand ops/s: fewer files keep a run short.
	# The cluster's LUN holds three fio files (two writers' own, one shared).
	# --quick is a smoke run there: one repeat unless --repeat says otherwise.
	((QUICK)) && META_N=1000 || META_N=10000
	((QUICK && !REPEAT_SET)) && REPEAT=1
	LUN_MB=$((3 * FIO_SIZE_MB + 1024))
	META_N=${META_FILES:-$META_N}
else
	META_N=${META_FILES:-$META_N}
	LUN_MB=$((FIO_SIZE_MB + 768))
fi

# The cleanup stack of lib.sh, without the test counters.
T_NAME=bench
T_DONE=1
trap _run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[[ $(id -u) == 0 ]] || { echo "bench.sh: needs root" >&2; exit 2; }
for c in tgtd tgtadm iscsi-perf fio python3 fusermount3; do
	command -v "$c" >/dev/null || { echo "bench.sh: needs $c" >&2; exit 2; }
done
NEED_BIN=("$CXFSD" "$MKFS" "$CXFS_BIN_DIR/cxfs-blkperf")
((CLUSTER)) && NEED_BIN+=("$CXFS_BIN_DIR/cxfsctl")
for b in "${NEED_BIN[@]}"; do
	[[ -x "$b" ]] || { echo "bench.sh: $b is missing (build first)" >&2; exit 2; }
done
T_TMP=$(mktemp -d /tmp/cxfs-bench.XXXXXX)
chmod 755 "$T_TMP"
defer "rm -rf '$T_TMP'"
RES=$T_TMP/results
: >"$RES"
MNT=$T_TMP/mnt
LOCAL=$T_TMP/local
mkdir -p "$LOCAL"

say() { echo "[$(ts)] $*" >&2; }
record() { echo "$1 $2" >>"$RES"; }

# ---------------------------------------------------------------------------
# The raw LUN.
# ---------------------------------------------------------------------------

# iscsi_perf KEY BLOCKS [-r]: run for PERF_SECS, record IOPS and MB/s.
iscsi_perf() {
	local key=$1 blocks=$2 out iops
	shift 2
	out=$(timeout -s INT "$PERF_SECS" iscsi-perf -m 16 -b "$blocks" "$@" "$TGT_URI" 2>&1 |
		tr '\r' '\n' || true)
	iops=$(grep -o 'iops average [0-9]*' <<<"$out" | tail -n 1 | awk '{print $3}')
	if [[ -z "$iops" ]]; then
		say "iscsi-perf gave no figure: $(tail -n 3 <<<"$out")"
		return 0
	fi
	record "raw.$key.iops" "$iops"
	record "raw.$key.mbs" "$(python3 -c "print(round($iops * $blocks * 512 / 1e6, 1))")"
	say "raw LUN $key: $iops IOPS"
}
# blk_perf KEY ARGS...: cxfs-blkperf for PERF_SECS, record IOPS and MB/s.
blk_perf() {
	local key=$1 out
	shift
	out=$("$CXFS_BIN_DIR/cxfs-blkperf" -m 16 -t "$PERF_SECS" "$@" "$TGT_URI" 2>&1) || {
		say "cxfs-blkperf failed: $out"
		return 0
	}
	record "raw.$key.mbs" "$(awk '{print $(NF-3)}' <<<"$out")"
	record "raw.$key.iops" "$(awk '{print $(NF-1)}' <<<"$out")"
	say "raw LUN $key: $out"
}

if ((CLUSTER)); then
	# shellcheck source=cluster.sh
	. "$BENCH_DIR/cluster.sh"
	exit 0
fi

say "preparing a ${LUN_MB} MiB LUN filled with random data"
head -c $((LUN_MB << 20)) /dev/urandom >"$T_TMP/lun.img"
start_tgtd "$T_TMP/lun.img" "${LUN_MB}M" >/dev/null || exit 1
say "tgtd on $TGT_URI"

for ((r = 1; r <= REPEAT; r++)); do
	iscsi_perf seq 512
	iscsi_perf rand 8 -r
	blk_perf seqw --write -b 256K
	blk_perf randw --write --random -b 4K
done

# ---------------------------------------------------------------------------
# fio on cxfs and on the local directory.
# ---------------------------------------------------------------------------

"$MKFS" --force --name bench "$TGT_URI" >&2
mount_cxfs "$TGT_URI" "$MNT" || exit 1
say "cxfs mounted on $MNT (cxfsd pid ${CXFSD_PID[$MNT]})"

JOBS=("seqwrite write 1M" "seqread read 1M" "randread randread 4k" "randwrite randwrite 4k")
MODES=(buf)
((DIRECT)) && MODES+=(dio)

# Reads fio's JSON on stdin; prints "KEY.mbs N" and "KEY.iops N".
FIO_PARSE='
import json, sys
text = sys.stdin.read()
job = json.loads(text[text.index("{"):])["jobs"][0]
side = job["write"] if "write" in sys.argv[2] else job["read"]
bw, iops = side["bw_bytes"] / 1e6, side["iops"]
print(f"{sys.argv[1]}.mbs {bw:.1f}")
print(f"{sys.argv[1]}.iops {iops:.0f}")
'

# fio_job TARGET DIR NAME RW BS MODE
fio_job() {
	local target=$1 dir=$2 name=$3 rw=$4 bs=$5 mode=$6 direct=0 extra=() out
	[[ $mode == dio ]] && direct=1
	[[ $rw == *write ]] && extra+=(--end_fsync=1)
	out=$(fio --name="$name" --filename="$dir/fio.dat" --size="${FIO_SIZE_MB}M" \
		--rw="$rw" --bs="$bs" --ioengine=libaio --iodepth=16 --direct="$direct" \
		--runtime="$FIO_RUNTIME" --time_based --randrepeat=0 "${extra[@]}" \
		--output-format=json 2>"$T_TMP/fio.err") || {
		say "fio $name on $target failed: $(tail -n 3 "$T_TMP/fio.err")"
		return 0
	}
	python3 -c "$FIO_PARSE" "$target.fio.$name.$mode" "$rw" <<<"$out" >>"$RES"
	say "fio $target $name $mode: $(tail -n 2 "$RES" | awk '{printf "%s ", $2}')(MB/s IOPS)"
}

for target in cxfs local; do
	dir=$MNT
	[[ $target == local ]] && dir=$LOCAL
	say "laying out the ${FIO_SIZE_MB} MiB fio file on $target"
	fio --name=layout --filename="$dir/fio.dat" --size="${FIO_SIZE_MB}M" --rw=write \
		--bs=1M --end_fsync=1 --output=/dev/null
	for ((r = 1; r <= REPEAT; r++)); do
		for mode in "${MODES[@]}"; do
			for j in "${JOBS[@]}"; do
				# shellcheck disable=SC2086
				fio_job "$target" "$dir" $j "$mode"
			done
		done
	done
	rm -f "$dir/fio.dat"
done

# ---------------------------------------------------------------------------
# Metadata.
# ---------------------------------------------------------------------------

for target in cxfs local; do
	dir=$MNT
	[[ $target == local ]] && dir=$LOCAL
	for ((r = 1; r <= REPEAT; r++)); do
		for shape in "one 1" "many 100"; do
			set -- $shape
			mkdir -p "$dir/meta"
			out=$(python3 "$BENCH_DIR/metabench.py" "$dir/meta" "$META_N" "$2") || {
				say "metabench on $target failed"
				continue
			}
			rmdir "$dir/meta"
			python3 -c '
import json, sys
for k, v in json.loads(sys.argv[2]).items():
    print(f"{sys.argv[1]}.{k} {v}")' "$target.meta.$1" "$out" >>"$RES"
			say "metadata $target $1 dir(s): $out"
		done
	done
done

umount_cxfs "$MNT" || say "unmount of cxfs failed"

# ---------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------

python3 - "$RES" "$REPEAT" "$FIO_SIZE_MB" "$FIO_RUNTIME" "$META_N" "$QUICK" <<'PY'
import statistics, sys
from collections import defaultdict
res, repeat, size, runtime, meta_n, quick = sys.argv[1], *sys.argv[2:]
vals = defaultdict(list)
for line in open(res):
    k, v = line.split()
    vals[k].append(float(v))
med = {k: statistics.median(v) for k, v in vals.items()}

def g(k):
    return med.get(k)

def fmt(v, unit):
    if v is None:
        return "n/a"
    return f"{v:,.0f} {unit}" if unit == "IOPS" or v >= 100 or unit == "ops/s" else f"{v:.1f} {unit}"

def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "n/a"

rows = []   # (what, cxfs, reference label, reference, local, ratio)
rows.append(("raw LUN seq read 256 KiB x16 (iscsi-perf)", None, "", g("raw.seq.mbs"), None, "MB/s"))
rows.append(("raw LUN rand read 4 KiB x16 (iscsi-perf)", None, "", g("raw.rand.iops"), None, "IOPS"))
rows.append(("raw LUN seq write 256 KiB x16 (cxfs-blkperf)", None, "", g("raw.seqw.mbs"), None, "MB/s"))
rows.append(("raw LUN rand write 4 KiB x16 (cxfs-blkperf)", None, "", g("raw.randw.iops"), None, "IOPS"))
jobs = [("seqwrite", "seq write 1 MiB", "mbs", "MB/s", "raw.seqw.mbs"),
        ("seqread", "seq read 1 MiB", "mbs", "MB/s", "raw.seq.mbs"),
        ("randread", "rand read 4 KiB", "iops", "IOPS", "raw.rand.iops"),
        ("randwrite", "rand write 4 KiB", "iops", "IOPS", "raw.randw.iops")]
for mode, mlabel in (("buf", "buffered"), ("dio", "O_DIRECT")):
    for job, label, metric, unit, ref in jobs:
        c = g(f"cxfs.fio.{job}.{mode}.{metric}")
        if c is None and g(f"local.fio.{job}.{mode}.{metric}") is None:
            continue
        rows.append((f"fio {label}, {mlabel}, qd16", c, "raw LUN", g(ref),
                     g(f"local.fio.{job}.{mode}.{metric}"), unit))
for shape, slabel in (("one", "1 dir"), ("many", "100 dirs")):
    for op in ("create", "stat", "rename", "unlink"):
        rows.append((f"metadata {op}, {slabel}", g(f"cxfs.meta.{shape}.{op}"), "local dir",
                     g(f"local.meta.{shape}.{op}"), None, "ops/s"))

print()
print(f"cxfs benchmark: median of {repeat} run(s); fio {size} MiB file, {runtime} s per job; "
      f"metadata {meta_n} files{' (quick)' if quick == '1' else ''}")
print()
hdr = f"{'measurement':46} {'cxfs':>14} {'reference':>24} {'ratio':>7} {'local dir':>14}"
print(hdr)
print("-" * len(hdr))
for what, c, rlabel, r, loc, unit in rows:
    if c is None and rlabel == "":
        print(f"{what:46} {'':>14} {fmt(r, unit):>24} {'':>7} {'':>14}")
        continue
    reftxt = f"{fmt(r, unit)} ({rlabel})"
    loctxt = fmt(loc, unit) if loc is not None else ""
    print(f"{what:46} {fmt(c, unit):>14} {reftxt:>24} {ratio(c, r):>7} {loctxt:>14}")

print()
print("## Markdown (for docs/PERFORMANCE.md)")
print()
print(f"Median of {repeat} run(s); 2 cores, tgtd on loopback; fio libaio iodepth 16, "
      f"{size} MiB file, {runtime} s per job; metadata on {meta_n} empty files.")
print()
print("| measurement | cxfs | reference | ratio | local dir |")
print("|---|---:|---:|---:|---:|")
for what, c, rlabel, r, loc, unit in rows:
    if c is None and rlabel == "":
        print(f"| {what} | | {fmt(r, unit)} | | |")
        continue
    print(f"| {what} | {fmt(c, unit)} | {fmt(r, unit)} ({rlabel}) | {ratio(c, r)} | "
          f"{fmt(loc, unit) if loc is not None else ''} |")
PY
