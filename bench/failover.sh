#!/usr/bin/env bash
# bench/failover.sh: how long the survivors of a node's death wait: a client
# node's (the default), or the metadata server's (--mode mds).
#
#   bench/failover.sh [--repeat N] [--settings "HB/DEAD ..."] [--dir DIR]
#
# For each membership setting HB/DEAD (heartbeat and dead_after in ms;
# default "200/900 100/450 500/2500", the first being cluster.conf's
# defaults): a 3-node scripts/local-cluster up --netns (each node a host of
# its own); node3 holds a POSIX lock on the first byte of a file and writes
# the file every 20 ms; node1 and node2 run a probe on the same file
# (failbench.py probe, every 5 ms: lock that byte (waiting), a 512-byte
# pwrite, an fstat, unlock; each round timed), so the survivors' I/O waits
# for the dead node's lock and tokens to be recovered.  Then kill -9 of node3's cxfsd, REPEAT times (node3 is
# restarted in between).  Reported per setting, medians over the kills:
#   detection   from the kill until every survivor's membership has left
#               node3 out (status json read from the admin sockets every 10 ms)
#   resume      from the kill until the survivors' probes complete an
#               operation again (the end of the longest probe operation
#               that spans the kill)
# Prints a table and writes it to bench/results/failover-<date>.txt.
#
#   bench/failover.sh --mode mds [--repeat N] [--vnodes "1 10000 100000"] [--dir DIR]
#
# The loss of the metadata server (MDS recovery), with the default
# membership settings: for each number V of VNODES, REPEAT times: a fresh
# 3-node cluster, V files created, both survivors stat them (so each caches
# about V vnodes; the counts their status shows are printed), a probe on
# each survivor creates, writes and closes a new file every 5 ms, and the
# serving node's cxfsd is killed (kill -9).
# Reported per V, medians over the kills, all from the kill:
#   detection   every survivor's membership has left the server out
#   serving     one survivor says it serves and the other names it
#   passes      the recovery's passes as the leader's status records them
#               (cluster.recovery.history: celldown, gather, reconstruct,
#               retarget, total) and, from the elected node's log line,
#               the fencing and the opening and rebuilding of the store
#   first op    the first probe operation started after the kill completes
#               on a survivor (and on both survivors)
# Written to bench/results/failover-mds-<date>.txt.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CXFS_BIN_DIR:-$top/build/bin}
REPEAT=5
SETTINGS="200/900 100/450 500/2500"
MODE=client
VNODES="1 10000 100000"
DIR=
while (($#)); do
	case $1 in
	--mode) MODE=$2; shift ;;
	--vnodes) VNODES=$2; shift ;;
	--repeat) REPEAT=$2; shift ;;
	--settings) SETTINGS=$2; shift ;;
	--dir) DIR=$2; shift ;;
	-h | --help) sed -n '2,41p' "$0"; exit 0 ;;
	*) echo "failover.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[[ $(id -u) == 0 ]] || { echo "failover.sh: needs root (tgtd, FUSE, namespaces)" >&2; exit 1; }
own_dir=0
if [[ -z "$DIR" ]]; then
	DIR=$(mktemp -d /tmp/failover.XXXXXX)
	own_dir=1
fi
CL=$DIR/cluster
cleanup() {
	"$top/scripts/local-cluster" down --dir "$CL" >/dev/null 2>&1 || true
	((own_dir)) && rm -rf "$DIR"
	return 0
}
trap cleanup EXIT
mkdir -p "$top/bench/results"
if [[ $MODE == mds ]]; then
	# A fresh cluster for every kill: a killed server started again does
	# not yet rejoin as a client (it comes back serving: two servers), so
	# the kills are not chained on one cluster.
	out=$top/bench/results/failover-mds-$(date -u +%Y%m%d-%H%M%S).txt
	rec=$DIR/kills.jsonl
	: >"$rec"
	failed=0
	for v in $VNODES; do
		echo "[$(date +%T)] $v vnodes cached on the survivors: $REPEAT kills of the metadata server" >&2
		for ((k = 1; k <= REPEAT; k++)); do
			"$top/scripts/local-cluster" down --dir "$CL" >/dev/null 2>&1 || true
			CXFS_BIN_DIR=$BIN "$top/scripts/local-cluster" up --netns -n 3 --dir "$CL" >"$DIR/up.log" 2>&1 ||
				{ cat "$DIR/up.log" >&2; exit 1; }
			python3 "$top/bench/failbench.py" mds --cluster "$CL" --local-cluster "$top/scripts/local-cluster" \
				--repeat 1 --no-restart --vnodes "$v" --record "$rec" >/dev/null ||
				{ echo "  kill $k with $v vnodes failed (above)" >&2; failed=$((failed + 1)); }
		done
	done
	"$top/scripts/local-cluster" down --dir "$CL" >/dev/null 2>&1 || true
	{
		echo "cxfs failover: kill -9 of the metadata server (3 nodes in network namespaces, a fresh cluster per kill), median of $REPEAT"
		echo "$(date -u '+%F %H:%M UTC'); commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo ?); $(nproc) CPUs; load $(cut -d' ' -f1 /proc/loadavg); $failed kill(s) failed"
		echo
		echo "| vnodes cached per survivor | detection | a survivor serves | recovery passes (leader's history; fence and store+rebuild from the elected node's log) | first op on a survivor | on both | probe errors | kills |"
		echo "|---:|---:|---:|---|---:|---:|---:|---:|"
		python3 "$top/bench/failbench.py" table --record "$rec" | sed 's/^/| /; s/$/ |/'
	} | tee "$out"
	echo "written to $out" >&2
	exit 0
fi
[[ $MODE == client ]] || { echo "failover.sh: --mode client or mds" >&2; exit 2; }
out=$top/bench/results/failover-$(date -u +%Y%m%d-%H%M%S).txt
rows=()
for s in $SETTINGS; do
	hb=${s%/*}
	dead=${s#*/}
	echo "[$(date +%T)] heartbeat ${hb} ms, dead_after ${dead} ms: $REPEAT kills" >&2
	"$top/scripts/local-cluster" down --dir "$CL" >/dev/null 2>&1 || true
	CXFS_BIN_DIR=$BIN CXFS_CONF_GLOBALS=$'heartbeat '"$hb"$'\ndead_after '"$dead" \
		"$top/scripts/local-cluster" up --netns -n 3 --dir "$CL" >"$DIR/up.log" 2>&1 ||
		{ cat "$DIR/up.log" >&2; exit 1; }
	line=$(python3 "$top/bench/failbench.py" run --cluster "$CL" \
		--local-cluster "$top/scripts/local-cluster" --repeat "$REPEAT")
	echo "  $line" >&2
	rows+=("| $hb ms | $dead ms | $line |")
	"$top/scripts/local-cluster" down --dir "$CL" >/dev/null 2>&1 || true
done
{
	echo "cxfs failover: kill -9 of a client node (node3 of 3, in network namespaces), median of $REPEAT"
	echo "$(date -u '+%F %H:%M UTC'); commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo ?); $(nproc) CPUs; load $(cut -d' ' -f1 /proc/loadavg)"
	echo
	echo "| heartbeat | dead_after | detection (every survivor) | survivors' I/O resumes |"
	echo "|---:|---:|---:|---:|"
	printf '%s\n' "${rows[@]}"
} | tee "$out"
echo "written to $out" >&2
