#!/usr/bin/env bash
# bench/sharedfile.sh: two nodes writing disjoint halves of ONE file against
# the same two nodes writing a file EACH, in one run (docs/PERFORMANCE.md,
# "Two nodes, one file").
#
#   bench/sharedfile.sh [--repeat N] [--size MB] [--runtime S] [--dir DIR] [--label TEXT]
#
# A 2-node scripts/local-cluster (node1 serves the metadata, node2 is a
# client) with the binaries of CXFS_BIN_DIR (default build/bin).  In every
# repeat, for each job, fio runs on node1 and node2 at once for RUNTIME s:
#   one   both write one SIZE MiB file, node1 its first half, node2 its second
#   two   each writes a SIZE/2 MiB file of its own
# on files laid out (written whole and fsynced) before, so writes overwrite
# data as a database's or fio's laid-out files do.  Jobs:
#   seq-buf    256 KiB sequential buffered writes (psync), end_fsync
#   rand-buf   4 KiB random buffered writes (psync), end_fsync
#   seq-dio    256 KiB sequential O_DIRECT writes (psync)
#   rand-dio   4 KiB random O_DIRECT writes (psync)
#   rand-dio16 4 KiB random O_DIRECT writes, libaio iodepth 16
# Prints, per job, the medians of the two nodes' summed rate, and the ratio
# one/two (1.0: sharing a file costs nothing); writes the table to
# bench/results/sharedfile-<date>.txt.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CXFS_BIN_DIR:-$top/build/bin}
REPEAT=3
SIZE=256
RUNTIME=8
DIR=
LABEL=
while (($#)); do
	case $1 in
	--repeat) REPEAT=$2; shift ;;
	--size) SIZE=$2; shift ;;
	--runtime) RUNTIME=$2; shift ;;
	--dir) DIR=$2; shift ;;
	--label) LABEL=$2; shift ;;
	-h | --help) sed -n '2,23p' "$0"; exit 0 ;;
	*) echo "sharedfile.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[[ $(id -u) == 0 ]] || { echo "sharedfile.sh: needs root (tgtd, FUSE)" >&2; exit 1; }
command -v fio >/dev/null || { echo "sharedfile.sh: needs fio" >&2; exit 1; }
own_dir=0
if [[ -z "$DIR" ]]; then
	DIR=$(mktemp -d /tmp/sharedfile.XXXXXX)
	own_dir=1
fi
CL=$DIR/cluster
RAW=$DIR/raw.jsonl
cleanup() {
	"$top/scripts/local-cluster" down --dir "$CL" >/dev/null 2>&1 || true
	((own_dir)) && rm -rf "$DIR"
	return 0
}
trap cleanup EXIT
mkdir -p "$top/bench/results"
out=$top/bench/results/sharedfile-$(date -u +%Y%m%d-%H%M%S).txt
say() { echo "[$(date -u +%T)] $*" >&2; }

say "a 2-node cluster with $BIN"
CXFS_BIN_DIR=$BIN "$top/scripts/local-cluster" up -n 2 --dir "$CL" --size 4G >"$DIR/up.log" 2>&1 ||
	{ cat "$DIR/up.log" >&2; exit 1; }
M=("" "$CL/node1/mnt" "$CL/node2/mnt")
mkdir -p "${M[1]}/sf"
HALF=$((SIZE / 2))

# layout PATH MB: write PATH whole and fsync it.
layout() { dd if=/dev/urandom of="$1" bs=1M count="$2" conv=fsync status=none; }

# fio_on I FILE OFFSET_MB JOB: fio on node I over [OFFSET, OFFSET+HALF) MiB of FILE.
fio_on() {
	local i=$1 file=$2 off=$3 job=$4 opts=()
	case $job in
	seq-buf) opts=(--rw=write --bs=256k --ioengine=psync --end_fsync=1) ;;
	rand-buf) opts=(--rw=randwrite --bs=4k --ioengine=psync --end_fsync=1) ;;
	seq-dio) opts=(--rw=write --bs=256k --ioengine=psync --direct=1) ;;
	rand-dio) opts=(--rw=randwrite --bs=4k --ioengine=psync --direct=1) ;;
	rand-dio16) opts=(--rw=randwrite --bs=4k --ioengine=libaio --iodepth=16 --direct=1) ;;
	esac
	fio --output-format=json --name="$job" --filename="${M[$i]}/sf/$file" \
		--offset="${off}M" --size="${HALF}M" --time_based --runtime="$RUNTIME" \
		--numjobs=1 "${opts[@]}" >"$DIR/fio.$i.json"
}

# run JOB MODE: both nodes at once; records the summed MiB/s and IOPS.
run() {
	local job=$1 mode=$2 p1 p2
	if [[ $mode == one ]]; then
		fio_on 1 one 0 "$job" & p1=$!
		fio_on 2 one "$HALF" "$job" & p2=$!
	else
		fio_on 1 two.1 0 "$job" & p1=$!
		fio_on 2 two.2 0 "$job" & p2=$!
	fi
	wait "$p1" && wait "$p2"
	python3 - "$job" "$mode" "$REP" "$DIR/fio.1.json" "$DIR/fio.2.json" >>"$RAW" <<'PY'
import json, sys
job, mode, rep = sys.argv[1], sys.argv[2], int(sys.argv[3])
mib = iops = 0.0
for p in sys.argv[4:6]:
    t = open(p).read()
    w = json.loads(t[t.index("{"):])["jobs"][0]["write"]
    mib += w["bw"] / 1024.0
    iops += w["iops"]
print(json.dumps({"job": job, "mode": mode, "rep": rep, "mib_s": mib, "iops": iops}))
PY
	say "$job $mode: $(tail -n1 "$RAW")"
}

say "laying out the files"
layout "${M[1]}/sf/one" "$SIZE"
layout "${M[1]}/sf/two.1" "$HALF"
layout "${M[2]}/sf/two.2" "$HALF"
: >"$RAW"
JOBS=(seq-buf rand-buf seq-dio rand-dio rand-dio16)
for ((REP = 1; REP <= REPEAT; REP++)); do
	for job in "${JOBS[@]}"; do
		run "$job" one
		run "$job" two
	done
done

python3 - "$RAW" "$REPEAT" "$SIZE" "$RUNTIME" "$BIN" "$LABEL" >"$out" <<'PY'
import json, statistics, sys
raw, repeat, size, runtime, binp, label = sys.argv[1:7]
rows = [json.loads(l) for l in open(raw) if l.strip()]
def med(job, mode, key):
    v = [r[key] for r in rows if r["job"] == job and r["mode"] == mode]
    return statistics.median(v) if v else float("nan")
print("sharedfile bench %s: %s repeats, %s MiB (halves of one file / two files), %s s jobs, binaries %s"
      % (label, repeat, size, runtime, binp))
print("fio on node1 (metadata server) and node2 at once, summed; medians")
print("%-11s %10s %10s %10s %10s %7s" % ("job", "one MiB/s", "one IOPS", "two MiB/s", "two IOPS", "one/two"))
for job in ("seq-buf", "rand-buf", "seq-dio", "rand-dio", "rand-dio16"):
    o, t = med(job, "one", "mib_s"), med(job, "two", "mib_s")
    print("%-11s %10.1f %10.0f %10.1f %10.0f %7.2f" % (job, o, med(job, "one", "iops"), t,
          med(job, "two", "iops"), o / t if t else 0))
PY
cat "$out"
say "written to $out"
