#!/usr/bin/env bash
# bench/relocate.sh: how long a relocation of the metadata server takes, and
# how long applications pause, with many vnodes cached across the cluster.
#
#   bench/relocate.sh [--vnodes "1 10000 1000000"] [--repeat N] [--dir DIR]
#
# For each total V of cached vnodes: a 3-node scripts/local-cluster; V/3
# files created in directories of 1,000 (on node1, the MDS); every node
# stats every file, so each node caches V/3 vnodes (V in all).  Then a probe
# on every node (relocbench.py probe: stat + 1-byte pwrite + read of a file
# of its own, in a loop) runs while the MDS is relocated REPEAT times
# around the nodes.  Reported per V, medians over the relocations:
#   relocation   from the request until every node was retargeted (the old
#                MDS's own measure, cxfsctl relocate's answer)
#   pause        the longest time one probe operation took during the
#                relocations (the worst any application waited)
# Prints a table and writes it to bench/results/relocate-<date>.txt.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CXFS_BIN_DIR:-$top/build/bin}
VNODES="1 10000 1000000"
REPEAT=5
DIR=
while (($#)); do
	case $1 in
	--vnodes) VNODES=$2; shift ;;
	--repeat) REPEAT=$2; shift ;;
	--dir) DIR=$2; shift ;;
	-h | --help) sed -n '2,17p' "$0"; exit 0 ;;
	*) echo "relocate.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[[ -x $BIN/cxfsd ]] || "$top/scripts/build" >/dev/null
DIR=${DIR:-$(mktemp -d)}
PY=$top/bench/relocbench.py
LC=$top/scripts/local-cluster
out=$top/bench/results/relocate-$(date -u +%Y%m%d-%H%M%S).txt
mkdir -p "$(dirname "$out")"
trap 'CXFS_BIN_DIR=$BIN "$LC" down --dir "$DIR/c" >/dev/null 2>&1 || true' EXIT

rows=()
for v in $VNODES; do
	CXFS_BIN_DIR=$BIN "$LC" down --dir "$DIR/c" >/dev/null 2>&1 || true
	rm -rf "$DIR/c"
	size=4G
	((v > 200000)) && size=16G
	CXFS_BIN_DIR=$BIN "$LC" up -n 3 --dir "$DIR/c" --size $size >/dev/null
	files=$(((v + 2) / 3))
	echo "== $v cached vnodes: creating $files files" >&2
	python3 "$PY" populate "$DIR/c/node1/mnt/pop" "$files"
	for i in 1 2 3; do
		python3 "$PY" warm "$DIR/c/node$i/mnt/pop" &
	done
	wait
	cached=0
	for i in 1 2 3; do
		n=$("$BIN/cxfsctl" --socket "$DIR/c/node$i/admin.sock" status --json |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["vnodes"])')
		cached=$((cached + n))
	done
	rm -f "$DIR/stop"
	pids=()
	for i in 1 2 3; do
		python3 "$PY" probe "$DIR/c/node$i/mnt" "node$i" "$DIR/stop" >"$DIR/probe.$i" &
		pids+=($!)
	done
	sleep 1
	times=()
	order=(2 3 1)
	for ((k = 0; k < REPEAT; k++)); do
		to=${order[k % 3]}
		r=$("$BIN/cxfsctl" --socket "$DIR/c/node1/admin.sock" relocate shared "node$to")
		times+=("$(sed -n 's/.*(\([0-9.]*\) ms).*/\1/p' <<<"$r")")
		sleep 1
	done
	touch "$DIR/stop"
	wait "${pids[@]}"
	pause=$(cat "$DIR"/probe.? | python3 -c '
import json, sys
print("%.1f" % max(json.loads(l)["max_ms"] for l in sys.stdin))')
	errs=$(cat "$DIR"/probe.? | python3 -c '
import json, sys
print(sum(json.loads(l)["errors"] for l in sys.stdin))')
	med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	rows+=("$(printf '%10s %10s %16s %16s %8s' "$v" "$cached" "$med" "$pause" "$errs")")
	echo "   relocation ms: ${times[*]}; longest pause $pause ms; probe errors $errs" >&2
done
{
	echo "cxfs relocation of the metadata server ($(date -u '+%F %T UTC'), $(nproc) CPUs, $REPEAT relocations each)"
	printf '%10s %10s %16s %16s %8s\n' vnodes cached "relocation ms" "longest pause ms" errors
	printf '%s\n' "${rows[@]}"
} | tee "$out"
