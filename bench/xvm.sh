#!/usr/bin/env bash
# bench/xvm.sh: XVM volumes side by side in one run (docs/PERFORMANCE.md,
# "Volumes (XVM)"): one LUN, a 2-LUN stripe, a 2-LUN concat and a 2-leg
# mirror, each raw (cxfs-blkperf through the volume layer) and through a
# single-machine cxfs mount (fio), and a mirror's revive against a plain
# copy of a LUN.
#
#   bench/xvm.sh [--repeat N] [--lun-mb MB] [--runtime S] [--dir DIR] [--label TEXT]
#
# One tgtd (on ports of its own) serves two LUNs of LUN_MB MiB (default
# 768), file-backed in DIR, filled with random bytes so that reads and copies
# move real data.  In every repeat, for each layout:
#   one     LUN 1 alone, unlabelled (the filesystem at its byte 0)
#   stripe  stripe(0,1), 64 KiB stripe unit
#   concat  concat(0,1) (a file of the mount lies on the first LUN)
#   mirror  mirror(0,1)
# the raw volume: cxfs-blkperf 1 MiB sequential and 4 KiB random reads and
# writes with 16 in flight for RUNTIME s each, over the first LUN_MB - 1 MiB
# of the volume (--span: one LUN's worth, the same working set for every
# layout; a concat's job then stays on its first LUN) (the mirror's writes once more
# with --log: logged in the dirty-region log as cxfsd logs them); then mkfs.cxfs on it, cxfsd
# mounts it and fio runs the same four jobs (libaio, iodepth 16, O_DIRECT,
# RUNTIME s each) on a 256 MiB file (LUN_MB/3 if that is less).  Then the revive: before the mirror
# is made, cxfs-blkperf --copy-to copies LUN 1 onto LUN 2 whole (the plain
# copy); after the mirror's jobs, leg 1 is detached and attached again
# (reviving) and `cxfs-volume revive` copies it back; its rate is the leg's
# bytes over its wall time.
#
# Prints, per job, the medians over the repeats with each layout's ratio to
# one LUN, and the revive rate against the plain copy; writes the table to
# bench/results/xvm-<date>.txt.  Needs root, tgtd/tgtadm, fio, FUSE, and the
# binaries of CXFS_BIN_DIR (default build/bin).  Everything it starts is
# stopped by PID on exit.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CXFS_BIN_DIR:-$top/build/bin}
REPEAT=3
LUN_MB=768
RUNTIME=6
DIR=
LABEL=
while (($#)); do
	case $1 in
	--repeat) REPEAT=$2; shift ;;
	--lun-mb) LUN_MB=$2; shift ;;
	--runtime) RUNTIME=$2; shift ;;
	--dir) DIR=$2; shift ;;
	--label) LABEL=$2; shift ;;
	-h | --help) sed -n '2,30p' "$0"; exit 0 ;;
	*) echo "xvm.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[[ $(id -u) == 0 ]] || { echo "xvm.sh: needs root (tgtd, FUSE)" >&2; exit 1; }
command -v fio >/dev/null || { echo "xvm.sh: needs fio" >&2; exit 1; }
own_dir=0
if [[ -z "$DIR" ]]; then
	DIR=$(mktemp -d /tmp/xvmbench.XXXXXX)
	own_dir=1
fi
RAW=$DIR/raw.jsonl
FILE_MB=$((LUN_MB / 3 < 256 ? LUN_MB / 3 : 256))   # fio's file: fits every layout
SPAN="$((LUN_MB - 1))M"                               # the raw jobs' working set
MNT=$DIR/mnt
SOCK=$DIR/cxfsd.sock
TGT_PID=
CXFSD_PID=
say() { echo "[$(date -u +%T)] $*" >&2; }

# The control port and the portal: the first free ones from a spread.
for ((k = 0; k < 200; k++)); do
	CTL=$((2000 + ($$ * 7 + k * 13) % 20000))
	[[ ! -e /var/run/tgtd/socket.$CTL ]] && break
done
for ((k = 0; k < 200; k++)); do
	PORT=$((33000 + ($$ * 11 + k * 17) % 20000))
	[[ -z "$(ss -ltnH "sport = :$PORT" 2>/dev/null)" ]] && break
done
IQN=iqn.2026-12.org.cxfs.bench:xvm.$$
U1=iscsi://127.0.0.1:$PORT/$IQN/1
U2=iscsi://127.0.0.1:$PORT/$IQN/2

unmount() {
	[[ -n "$CXFSD_PID" ]] || return 0
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	for ((k = 0; k < 100; k++)); do kill -0 "$CXFSD_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$CXFSD_PID" 2>/dev/null || true
	wait "$CXFSD_PID" 2>/dev/null || true
	CXFSD_PID=
}
cleanup() {
	unmount
	if [[ -n "$TGT_PID" ]]; then
		tgtadm -C "$CTL" --op delete --mode system >/dev/null 2>&1 || true
		kill -KILL "$TGT_PID" 2>/dev/null || true
		wait "$TGT_PID" 2>/dev/null || true
		rm -f "/var/run/tgtd/socket.$CTL" "/var/run/tgtd/socket.$CTL.lock"
	fi
	((own_dir)) && rm -rf "$DIR"
	return 0
}
trap cleanup EXIT
mkdir -p "$top/bench/results" "$MNT"
out=$top/bench/results/xvm-$(date -u +%Y%m%d-%H%M%S).txt

say "tgtd on 127.0.0.1:$PORT (control $CTL), two LUNs of $LUN_MB MiB in $DIR"
tgtd -f -C "$CTL" --iscsi "portal=127.0.0.1:$PORT" >"$DIR/tgtd.log" 2>&1 &
TGT_PID=$!
for ((k = 0; k < 100; k++)); do
	tgtadm -C "$CTL" --op show --mode sys >/dev/null 2>&1 && break
	sleep 0.1
done
tgtadm -C "$CTL" --lld iscsi --op new --mode target --tid 1 -T "$IQN"
tgtadm -C "$CTL" --lld iscsi --op bind --mode target --tid 1 -I ALL

# fresh_luns: both LUNs anew, full of random bytes (no label).
fresh_luns() {
	local k
	for k in 1 2; do
		tgtadm -C "$CTL" --lld iscsi --op delete --mode logicalunit --tid 1 --lun "$k" \
			>/dev/null 2>&1 || true
	done
	[[ -e "$DIR/fill" ]] || head -c $((LUN_MB << 20)) /dev/urandom >"$DIR/fill"
	for k in 1 2; do
		cp "$DIR/fill" "$DIR/lun$k.img"
		tgtadm -C "$CTL" --lld iscsi --op new --mode logicalunit --tid 1 --lun "$k" \
			-b "$DIR/lun$k.img"
	done
}

# record LAYOUT SIDE JOB VALUE UNIT
record() {
	printf '{"layout":"%s","side":"%s","job":"%s","value":%s,"unit":"%s"}\n' \
		"$1" "$2" "$3" "$4" "$5" >>"$RAW"
}

# raw LAYOUT VOLUME: cxfs-blkperf's four jobs on the volume.
raw() {
	local layout=$1 vol=$2 job args line v
	for job in seqwrite seqread randwrite randread; do
		case $job in
		seqwrite) args=(--write -b 1M) ;;
		seqread) args=(-b 1M) ;;
		randwrite) args=(--write --random -b 4k) ;;
		randread) args=(--random -b 4k) ;;
		esac
		line=$("$BIN/cxfs-blkperf" -m 16 -t "$RUNTIME" -s "$SPAN" "${args[@]}" "$vol")
		case $job in
		seq*) v=$(sed -n 's/.*: \([0-9.]*\) MB\/s.*/\1/p' <<<"$line"); record "$layout" raw "$job" "$v" MB/s ;;
		*) v=$(sed -n 's/.* \([0-9]*\) IOPS$/\1/p' <<<"$line"); record "$layout" raw "$job" "$v" IOPS ;;
		esac
		say "  raw $job: $line"
		[[ $layout == mirror && $job == *write ]] || continue
		line=$("$BIN/cxfs-blkperf" -m 16 -t "$RUNTIME" -s "$SPAN" "${args[@]}" --log "$vol")
		case $job in
		seq*) v=$(sed -n 's/.*: \([0-9.]*\) MB\/s.*/\1/p' <<<"$line"); record "$layout" logged "$job" "$v" MB/s ;;
		*) v=$(sed -n 's/.* \([0-9]*\) IOPS$/\1/p' <<<"$line"); record "$layout" logged "$job" "$v" IOPS ;;
		esac
		say "  raw $job, logged: $line"
	done
}

# fs LAYOUT VOLUME: mkfs, mount, fio's four jobs, unmount.
fs() {
	local layout=$1 vol=$2 job rw bs v
	"$BIN/mkfs.cxfs" --force --name xb "$vol" >/dev/null
	"$BIN/cxfsd" --admin-socket "$SOCK" --volume "$vol" "$MNT" >>"$DIR/cxfsd.log" 2>&1 &
	CXFSD_PID=$!
	for ((k = 0; k < 300; k++)); do mountpoint -q "$MNT" && break; sleep 0.1; done
	mountpoint -q "$MNT" || { tail -20 "$DIR/cxfsd.log" >&2; exit 1; }
	for job in seqwrite seqread randwrite randread; do
		case $job in
		seqwrite) rw=write; bs=1m ;;
		seqread) rw=read; bs=1m ;;
		randwrite) rw=randwrite; bs=4k ;;
		randread) rw=randread; bs=4k ;;
		esac
		fio --name="$job" --filename="$MNT/f" --size="${FILE_MB}m" --rw="$rw" --bs="$bs" \
			--ioengine=libaio --iodepth=16 --direct=1 --time_based --runtime="$RUNTIME" \
			--output-format=json >"$DIR/fio.json" 2>>"$DIR/fio.err"
		v=$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
d = j["write"] if j["write"]["io_bytes"] else j["read"]
print(round(d["bw_bytes"] / 1e6, 1) if sys.argv[2] == "seq" else round(d["iops"]))' \
			"$DIR/fio.json" "${job:0:3}")
		case $job in
		seq*) record "$layout" cxfs "$job" "$v" MB/s ;;
		*) record "$layout" cxfs "$job" "$v" IOPS ;;
		esac
		say "  cxfs $job: $v"
	done
	unmount
}

for ((r = 1; r <= REPEAT; r++)); do
	for layout in one stripe concat mirror; do
		say "repeat $r: $layout"
		fresh_luns
		if [[ $layout == one ]]; then
			vol=$U1
		else
			if [[ $layout == mirror ]]; then
				line=$("$BIN/cxfs-blkperf" -m 16 -b 1M --copy-to "$U2" "$U1")
				v=$(sed -n 's/.*: \([0-9.]*\) MB\/s.*/\1/p' <<<"$line")
				record mirror copy plain "$v" MB/s
				say "  plain copy of LUN 1 onto LUN 2: $line"
			fi
			case $layout in
			stripe) spec='stripe:64k(0,1)' ;;
			concat) spec='concat(0,1)' ;;
			mirror) spec='mirror(0,1)' ;;
			esac
			"$BIN/cxfs-volume" create --layout "$spec" --name xb "$U1" "$U2" >/dev/null
			vol=$U1,$U2
		fi
		raw "$layout" "$vol"
		fs "$layout" "$vol"
		if [[ $layout == mirror ]]; then
			"$BIN/cxfs-volume" detach --mirror 0 --leg 1 "$U1" "$U2" >/dev/null
			"$BIN/cxfs-volume" attach --mirror 0 --lun "$U2" "$U1" >/dev/null
			t0=$(date +%s.%N)
			"$BIN/cxfs-volume" revive "$U1" "$U2" >"$DIR/revive.out" 2>&1
			t1=$(date +%s.%N)
			v=$(python3 -c 'import sys; print(round((int(sys.argv[1]) - (1 << 20)) / (float(sys.argv[3]) - float(sys.argv[2])) / 1e6, 1))' \
				"$(stat -c %s "$DIR/lun2.img")" "$t0" "$t1")
			record mirror copy revive "$v" MB/s
			say "  revive of leg 1: $v MB/s ($(tail -n 1 "$DIR/revive.out"))"
		fi
	done
done

python3 - "$RAW" "$REPEAT" "$LUN_MB" "$RUNTIME" "$FILE_MB" "${LABEL:-$(git -C "$top" rev-parse --short HEAD)}" <<'EOF' | tee "$out"
import collections, json, statistics, sys
raw, repeat, lun_mb, runtime, file_mb, label = sys.argv[1:]
vals = collections.defaultdict(list)
for line in open(raw):
    r = json.loads(line)
    vals[(r["layout"], r["side"], r["job"])].append((r["value"], r["unit"]))
med = {k: (statistics.median(v for v, _ in l), l[0][1]) for k, l in vals.items()}
print(f"XVM volumes ({label}): median of {repeat} run(s); 2 LUNs of {lun_mb} MiB on one tgtd; "
      f"{runtime} s per job, 16 in flight (raw: cxfs-blkperf over the first {int(lun_mb) - 1} MiB of each "
      f"volume; cxfs: fio libaio O_DIRECT, {file_mb} MiB file)")
print()
print("| job | side | one LUN | stripe | concat | mirror |")
print("|---|---|---:|---:|---:|---:|")
for side in ("raw", "cxfs"):
    for job, name in (("seqwrite", "sequential write 1 MiB"), ("seqread", "sequential read 1 MiB"),
                      ("randwrite", "random write 4 KiB"), ("randread", "random read 4 KiB")):
        one = med.get(("one", side, job))
        cells = []
        for lay in ("one", "stripe", "concat", "mirror"):
            m = med.get((lay, side, job))
            if not m:
                cells.append("-")
            elif lay == "one" or not one or not one[0]:
                cells.append(f"{m[0]:,.0f} {m[1]}")
            else:
                cells.append(f"{m[0]:,.0f} {m[1]} ({m[0] / one[0]:.2f}x)")
        print(f"| {name} | {side} | " + " | ".join(cells) + " |")
cells = []
for job, name in (("seqwrite", "sequential write 1 MiB"), ("randwrite", "random write 4 KiB")):
    un, lg = med.get(("mirror", "raw", job)), med.get(("mirror", "logged", job))
    if un and lg and un[0]:
        cells.append(f"{name} {lg[0]:,.0f} {lg[1]} ({lg[0] / un[0]:.2f}x of unlogged)")
if cells:
    print()
    print("mirror writes logged in the dirty-region log (raw, cxfs-blkperf --log): " + "; ".join(cells))
rev, plain = med.get(("mirror", "copy", "revive")), med.get(("mirror", "copy", "plain"))
if rev and plain:
    print()
    print(f"revive of a 2-leg mirror's leg: {rev[0]:,.1f} MB/s; plain copy of a LUN "
          f"(cxfs-blkperf --copy-to, 1 MiB x16): {plain[0]:,.1f} MB/s; revive / copy "
          f"{rev[0] / plain[0]:.2f}x")
EOF
say "results in $out"
