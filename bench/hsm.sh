#!/usr/bin/env bash
# hsm.sh: the HSM benchmark of cxfs (cxfs-hsmd, cxfs-hsm); also run by
# `bench/bench.sh --hsm`.
#
#   bench/hsm.sh [--quick] [--repeat N] [--size MIB]
#
# On a 3-node scripts/local-cluster with --dmapi (node1 is the MDS and runs
# the working cxfs-hsmd; its tier is a directory under /tmp, no rate
# limit), one file of --size MiB (default 1024; 256 with --quick) of random
# bytes is written and migrated once; then, --repeat times (default 3; 1
# with --quick unless given):
#
#   recall        release it, then time `cat` of the whole file on node2 (a
#                 client): every byte comes back from the tier through
#                 cxfs-hsmd (tier read, checksum, invisible write on the
#                 volume) before node2 reads it;
#   plain copy    time a copy of its tier file onto the mount (1 MiB reads
#                 and writes, fsync at the end): the same bytes moved by a
#                 program, the reference for the recall;
#   tier read     time `cat` of the tier file alone;
#   first byte    release it, then time the read of 4 KiB in the middle of
#                 the file on node2: the daemon recalls the chunk asked for
#                 first and answers the reader before the rest of the file
#                 (which it then recalls in order; the next round waits
#                 for that).
#
# Before each timed read the page cache of the file read is dropped
# (posix_fadvise DONTNEED on that file only; nothing machine-wide).
# Prints the median of each figure and the ratios recall / plain copy and
# first byte / whole recall.  Progress goes to stderr, results to stdout.
# Everything it starts is stopped by PID on exit (lib.sh's cleanup stack,
# scripts/local-cluster down).

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../test/integration/lib.sh
. "$BENCH_DIR/../test/integration/lib.sh"
# shellcheck source=../test/integration/lib_cluster.sh
. "$BENCH_DIR/../test/integration/lib_cluster.sh"
# shellcheck source=../test/integration/lib_hsm.sh
. "$BENCH_DIR/../test/integration/lib_hsm.sh"

QUICK=0
REPEAT=3
REPEAT_SET=0
SIZE_MB=
while (($#)); do
	case $1 in
	--quick) QUICK=1 ;;
	--repeat) REPEAT=$2; REPEAT_SET=1; shift ;;
	--size) SIZE_MB=$2; shift ;;
	-h | --help) sed -n "2,33p" "$0"; exit 0 ;;
	*) echo "hsm.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
((QUICK && !REPEAT_SET)) && REPEAT=1
[[ -n "$SIZE_MB" ]] || { ((QUICK)) && SIZE_MB=256 || SIZE_MB=1024; }
[[ "$SIZE_MB" =~ ^[0-9]+$ && "$SIZE_MB" -ge 16 ]] || { echo "hsm.sh: --size wants MiB, 16 or more" >&2; exit 2; }

# The cleanup stack of lib.sh, without the test counters.
T_NAME=bench-hsm
T_DONE=1
trap _run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[[ $(id -u) == 0 ]] || { echo "hsm.sh: needs root" >&2; exit 2; }
for c in tgtd tgtadm python3 fusermount3; do
	command -v "$c" >/dev/null || { echo "hsm.sh: needs $c" >&2; exit 2; }
done
for b in "$CXFSD" "$MKFS" "$CXFSCTL" "$HSM" "$HSMD"; do
	[[ -x "$b" ]] || { echo "hsm.sh: $b is missing (build first)" >&2; exit 2; }
done
# A fresh directory of mktemp's own naming, under /tmp.
T_TMP=$(mktemp -d -p /tmp)
chmod 755 "$T_TMP"
defer "rm -rf '$T_TMP'"
RES=$T_TMP/results
: >"$RES"

say() { echo "[$(ts)] $*" >&2; }
record() { echo "$1 $2" >>"$RES"; }

# timed.py MODE ARGS: drop the page cache of the file read, then time.
#   read PATH                 read all of it; prints seconds
#   first PATH OFFSET LEN     read LEN bytes at OFFSET; prints seconds
#   copy SRC DST              copy with 1 MiB reads/writes, fsync; prints seconds
TIMED=$T_TMP/timed.py
cat >"$TIMED" <<'PY'
import os, sys, time

def drop(fd):
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)

mode = sys.argv[1]
if mode == "read":
    fd = os.open(sys.argv[2], os.O_RDONLY)
    drop(fd)
    t0 = time.perf_counter()
    while os.read(fd, 1 << 20):
        pass
    t1 = time.perf_counter()
elif mode == "first":
    fd = os.open(sys.argv[2], os.O_RDONLY)
    drop(fd)
    t0 = time.perf_counter()
    got = os.pread(fd, int(sys.argv[4]), int(sys.argv[3]))
    t1 = time.perf_counter()
    if len(got) != int(sys.argv[4]):
        sys.exit("short read")
elif mode == "copy":
    src = os.open(sys.argv[2], os.O_RDONLY)
    drop(src)
    dst = os.open(sys.argv[3], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    t0 = time.perf_counter()
    while True:
        b = os.read(src, 1 << 20)
        if not b:
            break
        os.write(dst, b)
    os.fsync(dst)
    os.close(dst)
    t1 = time.perf_counter()
print(f"{t1 - t0:.6f}")
PY

# The LUN holds the file, its plain copy and room to spare.
LUN_MB=$((SIZE_MB * 3 + 1024))
say "HSM benchmark: ${SIZE_MB} MiB file, ${REPEAT} repeat(s); a 3-node DMAPI cluster on a ${LUN_MB} MiB LUN"
cluster_up 3 --size "${LUN_MB}M" --dmapi --hsmd-args "--no-policy" >&2 || exit 1
M1=$(node_mnt 1)
M2=$(node_mnt 2)
F=$M1/big
SIZE=$((SIZE_MB << 20))

say "writing ${SIZE_MB} MiB of random bytes on node1"
head -c "$SIZE" /dev/urandom >"$F"
sync
WANT=$(sum_of "$F")
t0=$(date +%s.%N)
hsm 1 migrate "$F" || { say "migrate failed"; exit 1; }
t1=$(date +%s.%N)
record migrate.s "$(python3 -c "print($t1 - $t0)")"
TIER=$(tier_copy "$F")
[[ -n "$TIER" ]] || { say "no tier copy of $F"; exit 1; }
say "migrated in $(python3 -c "print(round($t1 - $t0, 2))") s; tier copy $TIER"

# wait_resident: the sweep of the last recall is over (the file is dual-state).
wait_resident() {
	wait_until 600 eval '[[ "$(hsm_state "$F")" == dual-state ]]' || say "the file did not come back"
}

for ((r = 1; r <= REPEAT; r++)); do
	hsm 1 release "$F" || { say "release failed"; exit 1; }
	s=$(python3 "$TIMED" read "$M2/big") || { say "recall read failed"; exit 1; }
	record recall.s "$s"
	say "round $r: recall of ${SIZE_MB} MiB read on node2 in $s s"
	sum=$(sum_of "$M2/big")
	[[ "$sum" == "$WANT" ]] || say "round $r: WRONG BYTES after the recall ($sum)"

	s=$(python3 "$TIMED" copy "$TIER" "$M2/plain.copy") || { say "plain copy failed"; exit 1; }
	record plain.s "$s"
	say "round $r: plain copy of the tier file onto the mount in $s s"
	rm -f "$M2/plain.copy"

	s=$(python3 "$TIMED" read "$TIER")
	record tier.s "$s"
	say "round $r: cat of the tier file in $s s"

	hsm 1 release "$F" || { say "release failed"; exit 1; }
	s=$(python3 "$TIMED" first "$M2/big" $((SIZE / 2)) 4096) || { say "first-byte read failed"; exit 1; }
	record first.s "$s"
	say "round $r: 4 KiB in the middle of the offline file in $s s"
	wait_resident
done

# The daemon's own figures for its recalls ("recall of inode N done: B bytes in T s").
grep -o 'done: [0-9]* bytes in [0-9.]* s' "$(hsmd_log 1)" | awk '{print "daemon.mbs", $2 / $5 / 1e6}' >>"$RES"

python3 - "$RES" "$REPEAT" "$SIZE_MB" <<'PY'
import statistics, sys
from collections import defaultdict
res, repeat, size_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
vals = defaultdict(list)
for line in open(res):
    k, v = line.split()
    vals[k].append(float(v))
med = {k: statistics.median(v) for k, v in vals.items()}
mb = size_mb * 1048576 / 1e6

def rate(k):
    return mb / med[k] if k in med and med[k] > 0 else None

rows = [
    ("recall: cat of the offline file on node2", rate("recall.s"), med.get("recall.s")),
    ("plain copy of the tier file onto the mount", rate("plain.s"), med.get("plain.s")),
    ("cat of the tier file", rate("tier.s"), med.get("tier.s")),
    ("migrate (cxfs-hsm migrate, once)", rate("migrate.s"), med.get("migrate.s")),
]
print()
print(f"cxfs HSM benchmark: {size_mb} MiB file, median of {repeat} run(s); 3 nodes on one box "
      "(node1 MDS + cxfs-hsmd), tgtd on loopback, tier directory on local disk, no rate limit")
print()
print(f"{'measurement':46} {'MB/s':>9} {'seconds':>9}")
print("-" * 66)
for what, r, s in rows:
    print(f"{what:46} {r if r is None else round(r, 1):>9} {s if s is None else round(s, 3):>9}")
if "daemon.mbs" in vals:
    d = statistics.median(vals["daemon.mbs"])
    print(f"{'recall rate inside cxfs-hsmd (its log)':46} {round(d, 1):>9}")
print()
if rate("recall.s") and rate("plain.s"):
    print(f"recall / plain copy:            {rate('recall.s') / rate('plain.s'):.2f}x")
if rate("recall.s") and rate("tier.s"):
    print(f"recall / tier read:             {rate('recall.s') / rate('tier.s'):.2f}x")
if "first.s" in med:
    print(f"time to first byte, 4 KiB in the middle of the offline file: {med['first.s'] * 1000:.1f} ms"
          f" (min {min(vals['first.s']) * 1000:.1f}, max {max(vals['first.s']) * 1000:.1f})")
    if "recall.s" in med:
        print(f"first byte / whole recall:      {med['first.s'] / med['recall.s']:.4f}")
print()
print("| measurement | MB/s | s |")
print("|---|---:|---:|")
for what, r, s in rows:
    print(f"| {what} | {'' if r is None else f'{r:.1f}'} | {'' if s is None else f'{s:.3f}'} |")
if "first.s" in med:
    print(f"| time to first byte, 4 KiB mid-file, offline | | {med['first.s']:.4f} |")
PY
