#!/usr/bin/env bash
# bench/shareddir.sh: metadata rates of several nodes working at once in one
# shared directory, against each in a directory of its own (issue 11).
#
#   bench/shareddir.sh [--files N] [--repeat R] [--sets "2 2,3 1,2,3"]
#                      [--limit S] [--dir DIR]
#
# A 3-node scripts/local-cluster (node1 the metadata server) on a private
# copy of the binaries of CXFS_BIN_DIR (default build/bin), so a rebuild
# during the run cannot mix versions.  In every repeat (R, default 3), for
# every set of nodes (--sets, default: node2 alone; node2 and node3, two
# clients; all three, the metadata server's node too), in both layouts (the
# order alternating between repeats):
#   shared     every node's files in one directory
#   separate   each node's files in a directory of its own
# one process per node does create (O_EXCL, empty), stat, rename (within the
# directory) and unlink of N files of its own (--files, default 10,000),
# the nodes in step: each step starts on all nodes at once
# (bench/shareddirbench.py).  Measured per step: aggregate ops/s (all
# nodes' operations over the time from the first start to the last end)
# and messages per operation (cluster.messages.sent of `cxfsctl status
# --json`, summed over the three nodes, around the step, over the
# operations).  An operation that takes longer than S seconds (--limit,
# default 30) is a hang (test/integration/hangwatch.py): the cluster's
# state is dumped to DIR/dumps.log, the FUSE connections are aborted, the
# phase is reported as hung, and the cluster is started afresh for the
# next phase.
#
# Prints a markdown table (medians) and writes it, with the per-phase
# lines, to bench/results/shareddir-<date>.txt.  Takes about 15 minutes
# with the defaults on a 2-CPU machine (--files 1000 --repeat 1: 2).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CXFS_BIN_DIR:-$top/build/bin}
FILES=10000
REPEAT=3
SETS="2 2,3 1,2,3"
LIMIT=30
DIR=
while (($#)); do
	case $1 in
	--files) FILES=$2; shift ;;
	--repeat) REPEAT=$2; shift ;;
	--sets) SETS=$2; shift ;;
	--limit) LIMIT=$2; shift ;;
	--dir) DIR=$2; shift ;;
	-h | --help) sed -n '2,30p' "$0"; exit 0 ;;
	*) echo "shareddir.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[[ $(id -u) == 0 ]] || { echo "shareddir.sh: needs root" >&2; exit 1; }
[[ -x $BIN/cxfsd ]] || "$top/scripts/build" >/dev/null
DIR=${DIR:-$(mktemp -d /tmp/shareddir.XXXXXX)}
mkdir -p "$DIR/bin"
for b in cxfsd mkfs.cxfs cxfsctl; do
	cp -p "$BIN/$b" "$DIR/bin/$b"
done
PBIN=$DIR/bin
BUILT=$(date -u -r "$PBIN/cxfsd" '+%F %T UTC')
if [[ -n "${BENCH_COMMIT:-}" ]]; then
	COMMIT=$BENCH_COMMIT
else
	COMMIT=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [[ -n "$(git -C "$top" status --porcelain -- src proto CMakeLists.txt 2>/dev/null)" ]]; then
		COMMIT+=" (sources modified)"
	fi
fi
PY=$top/bench/shareddirbench.py
LC=$top/scripts/local-cluster
CL=$DIR/c
RES=$DIR/results.jsonl
: >"$RES"
out=$top/bench/results/shareddir-$(date -u +%Y%m%d-%H%M%S).txt
mkdir -p "$(dirname "$out")"

say() { echo "[$(date +%H:%M:%S)] $*" >&2; }
cluster_down() { CXFS_BIN_DIR=$PBIN "$LC" down --dir "$CL" >>"$DIR/cluster.log" 2>&1 || true; }
cluster_up() {
	CXFS_BIN_DIR=$PBIN "$LC" up -n 3 --dir "$CL" >>"$DIR/cluster.log" 2>&1 || {
		say "local-cluster up failed; see $DIR/cluster.log"
		tail -n 20 "$DIR/cluster.log" >&2
		exit 1
	}
}
trap cluster_down EXIT

say "commit $COMMIT, cxfsd built $BUILT; $FILES files per node, $REPEAT repeat(s), node sets $SETS; in $DIR"
cluster_up
phases=0
for ((r = 1; r <= REPEAT; r++)); do
	layouts=(separate shared)
	((r % 2 == 0)) && layouts=(shared separate)
	say "repeat $r of $REPEAT"
	for set in $SETS; do
		for layout in "${layouts[@]}"; do
			phases=$((phases + 1))
			{
				rc=0
				python3 "$PY" phase --cluster "$CL" --nodes "$set" --layout "$layout" \
					--files "$FILES" --name "p$phases.$layout" --repeat "$r" --out "$RES" \
					--limit "$LIMIT" --dump "$DIR/dumps.log" 2>&1 || rc=$?
				echo "$rc" >"$DIR/rc"
			} | tee -a "$DIR/phases.log"
			rc=$(cat "$DIR/rc")
			if ((rc == 3)); then
				say "a hang: the cluster's state is in $DIR/dumps.log; starting the cluster afresh"
				cluster_down
				cluster_up
			elif ((rc != 0)); then
				say "the phase failed (exit $rc); starting the cluster afresh"
				cluster_down
				cluster_up
			fi
		done
	done
done
cluster_down
{
	python3 "$PY" report "$RES" --files "$FILES" --repeat "$REPEAT" --commit "$COMMIT" \
		--built "$BUILT"
	echo
	echo "The phases:"
	cat "$DIR/phases.log"
} | tee "$out"
say "written to $out"
