#!/usr/bin/env bash
# bench/writeback.sh: a client node's data path with its data cache
# (write-behind, read cache; docs/ARCHITECTURE.md, "Data cache") against a
# local directory, in one run.
#
#   bench/writeback.sh [--repeat N] [--size MB] [--runtime S] [--dir DIR] [--label TEXT]
#
# A 2-node scripts/local-cluster (node1 serves the metadata; the jobs run
# on node2, a client) with the binaries of CXFS_BIN_DIR (default build/bin:
# point it at a build of main for the "before" figures), and a directory
# under DIR on the local disk.  In every repeat, on both, fio with
# ioengine=psync (one thread, buffered: what an application's read(2) and
# write(2) see), each job on a file of its own:
#   seqwrite   1 MiB sequential writes of a SIZE MiB file, end_fsync=1 (the
#              figure includes writing the cache back)
#   seqread    1 MiB sequential reads of it, cold: the file was written on
#              node1 last (which recalled node2's cache) / fio's invalidate
#              on the local file
#   randwrite  4 KiB random writes over SIZE/2 MiB for RUNTIME s, end_fsync=1
#   randread   4 KiB random reads over it, cold as seqread, RUNTIME s
#   reread     1 MiB sequential reads of a 64 MiB file read just before
#              (fits in the cache), RUNTIME s, invalidate=0
# Prints the medians over the repeats, the ratios cxfs/local, and the
# re-read against the cold sequential read (the LUN's rate); writes the
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
own_dir=0
if [[ -z "$DIR" ]]; then
	DIR=$(mktemp -d /tmp/writeback.XXXXXX)
	own_dir=1
fi
CL=$DIR/cluster
LOCAL=$DIR/local
RAW=$DIR/raw.jsonl
cleanup() {
	"$top/scripts/local-cluster" down --dir "$CL" >/dev/null 2>&1 || true
	((own_dir)) && rm -rf "$DIR"
	return 0
}
trap cleanup EXIT
mkdir -p "$top/bench/results" "$LOCAL"
out=$top/bench/results/writeback-$(date -u +%Y%m%d-%H%M%S).txt
say() { echo "[$(date -u +%T)] $*" >&2; }

say "a 2-node cluster with $BIN"
CXFS_BIN_DIR=$BIN "$top/scripts/local-cluster" up -n 2 --dir "$CL" --size 4G >"$DIR/up.log" 2>&1 ||
	{ cat "$DIR/up.log" >&2; exit 1; }
M1=$CL/node1/mnt
M2=$CL/node2/mnt
mkdir -p "$M1/wb"

# job WHERE NAME FILE fio-options...: run one fio job, record its figure.
job() {
	local where=$1 name=$2 file=$3 json
	shift 3
	json=$(fio --output-format=json --name="$name" --filename="$file" --ioengine=psync \
		--numjobs=1 --group_reporting "$@")
	python3 - "$where" "$name" "$REP" "$json" >>"$RAW" <<'EOF'
import json, sys
where, name, rep, text = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
j = json.loads(text[text.index("{"):])["jobs"][0]
side = j["write"] if j["write"]["io_bytes"] > j["read"]["io_bytes"] else j["read"]
print(json.dumps({"where": where, "job": name, "rep": rep,
                  "mib_s": side["bw"] / 1024.0, "iops": side["iops"]}))
EOF
	say "$where $name: $(tail -n1 "$RAW")"
}

# cold FILE: node1 rewrites the first block of FILE (on the cluster), which
# recalls node2's tokens of it: its cached pages go.
cold() { dd if=/dev/zero of="$M1/wb/$1" bs=4096 count=1 conv=notrunc status=none; }

: >"$RAW"
for ((REP = 1; REP <= REPEAT; REP++)); do
	for where in cxfs local; do
		if [[ $where == cxfs ]]; then d=$M2/wb; else d=$LOCAL; fi
		rm -f "$d"/seq "$d"/rand "$d"/re
		job "$where" seqwrite "$d/seq" --rw=write --bs=1M --size="${SIZE}M" --end_fsync=1
		[[ $where == cxfs ]] && cold seq
		job "$where" seqread "$d/seq" --rw=read --bs=1M --size="${SIZE}M"
		job "$where" randwrite "$d/rand" --rw=randwrite --bs=4k --size="$((SIZE / 2))M" \
			--time_based --runtime="$RUNTIME" --end_fsync=1
		[[ $where == cxfs ]] && cold rand
		job "$where" randread "$d/rand" --rw=randread --bs=4k --size="$((SIZE / 2))M" \
			--time_based --runtime="$RUNTIME"
		head -c $((64 << 20)) /dev/urandom >"$d/re"
		cat "$d/re" >/dev/null
		job "$where" reread "$d/re" --rw=read --bs=1M --size=64M --invalidate=0 \
			--time_based --runtime="$RUNTIME"
	done
done

python3 - "$RAW" "$REPEAT" "$SIZE" "$RUNTIME" "$BIN" "$LABEL" >"$out" <<'EOF'
import json, statistics, sys
raw, repeat, size, runtime, binp, label = sys.argv[1:7]
rows = [json.loads(l) for l in open(raw) if l.strip()]
def med(where, job, key):
    v = [r[key] for r in rows if r["where"] == where and r["job"] == job]
    return statistics.median(v) if v else float("nan")
print("writeback bench %s: %s repeats, seq file %s MiB, %s s random/re-read jobs, binaries %s"
      % (label, repeat, size, runtime, binp))
print("fio psync, one thread; cxfs = node2 (client) of a 2-node local cluster; medians")
print("%-10s %14s %14s %8s" % ("job", "cxfs", "local", "ratio"))
for job, key, unit in (("seqwrite", "mib_s", "MiB/s"), ("seqread", "mib_s", "MiB/s"),
                       ("randwrite", "iops", "IOPS"), ("randread", "iops", "IOPS"),
                       ("reread", "mib_s", "MiB/s")):
    c, l = med("cxfs", job, key), med("local", job, key)
    print("%-10s %8.0f %-5s %8.0f %-5s %7.2f" % (job, c, unit, l, unit, c / l if l else 0))
c_re, c_seq = med("cxfs", "reread", "mib_s"), med("cxfs", "seqread", "mib_s")
print("cxfs re-read / cold sequential read (the LUN's rate): %.2f" % (c_re / c_seq if c_seq else 0))
EOF
cat "$out"
say "written to $out"
