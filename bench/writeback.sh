#!/usr/bin/env bash
# bench/writeback.sh: a node's data path with its data cache (write-behind,
# read cache; docs/ARCHITECTURE.md, "Data cache") side by side, in one run,
# with the metadata server's node, the raw LUN and a local directory.
#
#   bench/writeback.sh [--repeat N] [--size MB] [--runtime S] [--dir DIR] [--label TEXT]
#
# A 2-node scripts/local-cluster (node1 serves the metadata, node2 is a
# client) with the binaries of CXFS_BIN_DIR (default build/bin: point it at
# a build of main for the "before" figures), a directory under DIR on the
# local disk, and a scratch LUN of its own tgtd for the raw figures.  In
# every repeat, on node2 ("client"), node1 ("server") and the local
# directory, fio, each job on a file of its own:
#   seqwrite   1 MiB sequential writes of a SIZE MiB file, psync, end_fsync=1
#              (the figure includes writing the cache back)
#   seqread    1 MiB sequential reads of it, cold: the other node wrote a
#              block of it last (which recalled this node's cache) / fio's
#              invalidate on the local file
#   randwrite  4 KiB random writes over SIZE/2 MiB for RUNTIME s, end_fsync=1
#   randread   4 KiB random reads over it, cold as seqread, RUNTIME s
#   reread     1 MiB sequential reads of a 64 MiB file read just before
#              (fits in the cache), RUNTIME s, invalidate=0
#   seqwrite16, randwrite16, randread16: O_DIRECT with libaio and 16
#              requests in flight, RUNTIME s each
# and on the raw LUN (cxfs-blkperf, the same request sizes, 1 and 16
# requests in flight, RUNTIME s each).  Prints the medians over the
# repeats, the ratios to the raw LUN, the server's node and the local
# directory, and the re-read against the cold sequential read; writes the
# table to bench/results/writeback-<date>.txt.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CXFS_BIN_DIR:-$top/build/bin}
REPEAT=3
SIZE=512
RUNTIME=10
DIR=
LABEL=
while (($#)); do
	case $1 in
	--repeat) REPEAT=$2; shift ;;
	--size) SIZE=$2; shift ;;
	--runtime) RUNTIME=$2; shift ;;
	--dir) DIR=$2; shift ;;
	--label) LABEL=$2; shift ;;
	-h | --help) sed -n '2,28p' "$0"; exit 0 ;;
	*) echo "writeback.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[[ $(id -u) == 0 ]] || { echo "writeback.sh: needs root (tgtd, FUSE)" >&2; exit 1; }
command -v fio >/dev/null || { echo "writeback.sh: needs fio" >&2; exit 1; }
# shellcheck source=../test/integration/lib.sh
. "$top/test/integration/lib.sh"
# The cleanup stack of lib.sh, without the test counters.
T_NAME=writeback
T_DONE=1
trap _run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ -z "$DIR" ]]; then
	DIR=$(mktemp -d /tmp/writeback.XXXXXX)
	defer "rm -rf '$DIR'"
fi
T_TMP=$DIR
CL=$DIR/cluster
LOCAL=$DIR/local
RAW=$DIR/raw.jsonl
mkdir -p "$top/bench/results" "$LOCAL"
out=$top/bench/results/writeback-$(date -u +%Y%m%d-%H%M%S).txt
say() { echo "[$(date -u +%T)] $*" >&2; }

say "a scratch LUN of $SIZE MiB for the raw figures"
start_tgtd "$DIR/raw.img" "${SIZE}M" >/dev/null || exit 1
say "a 2-node cluster with $BIN"
defer "'$top/scripts/local-cluster' down --dir '$CL' >/dev/null 2>&1"
CXFS_BIN_DIR=$BIN "$top/scripts/local-cluster" up -n 2 --dir "$CL" --size 4G >"$DIR/up.log" 2>&1 ||
	{ cat "$DIR/up.log" >&2; exit 1; }
M1=$CL/node1/mnt
M2=$CL/node2/mnt
mkdir -p "$M1/wb"

# record WHERE NAME MIB_S IOPS: one figure into $RAW.
record() {
	printf '{"where": "%s", "job": "%s", "rep": %d, "mib_s": %s, "iops": %s}\n' \
		"$1" "$2" "$REP" "$3" "$4" >>"$RAW"
	say "$1 $2: $3 MiB/s, $4 IOPS"
}

# job WHERE NAME FILE fio-options...: run one fio job (psync unless the
# options say otherwise), record its figure.
job() {
	local where=$1 name=$2 file=$3 json
	shift 3
	json=$(fio --output-format=json --name="$name" --filename="$file" --ioengine=psync \
		--numjobs=1 --group_reporting "$@")
	# shellcheck disable=SC2046
	record "$where" "$name" $(python3 -c '
import json, sys
t = sys.argv[1]
j = json.loads(t[t.index("{"):])["jobs"][0]
side = j["write"] if j["write"]["io_bytes"] > j["read"]["io_bytes"] else j["read"]
print(side["bw"] / 1024.0, side["iops"])' "$json")
}

# raw NAME ARGS...: cxfs-blkperf on the scratch LUN, recorded as job NAME of "raw".
raw() {
	local name=$1 o
	shift
	o=$("$BIN/cxfs-blkperf" -t "$RUNTIME" -s "$((SIZE << 20))" "$@" "$TGT_URI" 2>&1) || {
		say "cxfs-blkperf failed: $o"
		return 0
	}
	# "... MB/s N IOPS": MB/s (10^6) to MiB/s
	# shellcheck disable=SC2046
	record raw "$name" $(awk '{printf "%f %s\n", $(NF-3) * 1e6 / 1048576, $(NF-1)}' <<<"$o")
}

# cold WHERE FILE: the other node rewrites the first block of FILE, which
# recalls this node's tokens of it: its cached pages go.
cold() {
	local other=$M1
	[[ $1 == server ]] && other=$M2
	dd if=/dev/zero of="$other/wb/$2" bs=4096 count=1 conv=notrunc status=none
}

: >"$RAW"
for ((REP = 1; REP <= REPEAT; REP++)); do
	for where in client server local; do
		case $where in
		client) d=$M2/wb ;;
		server) d=$M1/wb ;;
		*) d=$LOCAL ;;
		esac
		rm -f "$d"/seq "$d"/rand "$d"/re "$d"/aio
		job "$where" seqwrite "$d/seq" --rw=write --bs=1M --size="${SIZE}M" --end_fsync=1
		[[ $where != local ]] && cold "$where" seq
		job "$where" seqread "$d/seq" --rw=read --bs=1M --size="${SIZE}M"
		job "$where" randwrite "$d/rand" --rw=randwrite --bs=4k --size="$((SIZE / 2))M" \
			--time_based --runtime="$RUNTIME" --end_fsync=1
		[[ $where != local ]] && cold "$where" rand
		job "$where" randread "$d/rand" --rw=randread --bs=4k --size="$((SIZE / 2))M" \
			--time_based --runtime="$RUNTIME"
		head -c $((64 << 20)) /dev/urandom >"$d/re"
		cat "$d/re" >/dev/null
		job "$where" reread "$d/re" --rw=read --bs=1M --size=64M --invalidate=0 \
			--time_based --runtime="$RUNTIME"
		rm -f "$d/seq" "$d/rand" "$d/re"
		job "$where" seqwrite16 "$d/aio" --ioengine=libaio --iodepth=16 --direct=1 \
			--rw=write --bs=1M --size="${SIZE}M" --time_based --runtime="$RUNTIME"
		job "$where" randwrite16 "$d/aio" --ioengine=libaio --iodepth=16 --direct=1 \
			--rw=randwrite --bs=4k --size="${SIZE}M" --time_based --runtime="$RUNTIME"
		job "$where" randread16 "$d/aio" --ioengine=libaio --iodepth=16 --direct=1 \
			--rw=randread --bs=4k --size="${SIZE}M" --time_based --runtime="$RUNTIME"
		rm -f "$d/aio"
	done
	raw seqwrite --write -b 1048576 -m 1
	raw seqread -b 1048576 -m 1
	raw randwrite --write --random -b 4096 -m 1
	raw randread --random -b 4096 -m 1
	raw seqwrite16 --write -b 1048576 -m 16
	raw randwrite16 --write --random -b 4096 -m 16
	raw randread16 --random -b 4096 -m 16
done

python3 - "$RAW" "$REPEAT" "$SIZE" "$RUNTIME" "$BIN" "$LABEL" >"$out" <<'EOF'
import json, statistics, sys
raw, repeat, size, runtime, binp, label = sys.argv[1:7]
rows = [json.loads(l) for l in open(raw) if l.strip()]
def med(where, job, key):
    v = [r[key] for r in rows if r["where"] == where and r["job"] == job]
    return statistics.median(v) if v else float("nan")
def ratio(a, b):
    return a / b if b and b == b and a == a else float("nan")
print("writeback bench %s: %s repeats, seq file %s MiB, %s s timed jobs, binaries %s"
      % (label, repeat, size, runtime, binp))
print("fio, one thread: psync (buffered), or libaio O_DIRECT with 16 in flight (*16);")
print("client = node2, server = node1 of a 2-node local cluster; raw = cxfs-blkperf on a")
print("scratch LUN (1 or 16 requests in flight); medians of the repeats")
print("%-11s %-5s %9s %9s %9s %9s %10s %10s %10s" % (
    "job", "unit", "client", "server", "raw LUN", "local", "client/raw", "client/srv",
    "client/loc"))
for job, key, unit in (("seqwrite", "mib_s", "MiB/s"), ("seqread", "mib_s", "MiB/s"),
                       ("randwrite", "iops", "IOPS"), ("randread", "iops", "IOPS"),
                       ("reread", "mib_s", "MiB/s"), ("seqwrite16", "mib_s", "MiB/s"),
                       ("randwrite16", "iops", "IOPS"), ("randread16", "iops", "IOPS")):
    c, s, r, l = (med(w, job, key) for w in ("client", "server", "raw", "local"))
    print("%-11s %-5s %9.0f %9.0f %9.0f %9.0f %10.2f %10.2f %10.2f" % (
        job, unit, c, s, r, l, ratio(c, r), ratio(c, s), ratio(c, l)))
c_re, c_seq = med("client", "reread", "mib_s"), med("client", "seqread", "mib_s")
print("client re-read / its cold sequential read: %.2f; / the raw LUN's sequential read: %.2f"
      % (ratio(c_re, c_seq), ratio(c_re, med("raw", "seqread", "mib_s"))))
EOF
cat "$out"
say "written to $out"
