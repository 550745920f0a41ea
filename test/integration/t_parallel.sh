#!/usr/bin/env bash
# t_parallel.sh: 16 processes at once create, write, read back, rename and
# unlink files in their own directories and in one shared directory, and
# write disjoint regions of one shared file; every byte is verified, then
# again after a remount.
. "$(dirname "$0")/lib.sh"
it_init parallel

VOL=$T_TMP/vol.img
MNT=$T_TMP/mnt
NPROC=16
ITERS=${PARALLEL_ITERS:-200}
SEED=$RANDOM
log "seed $SEED"
if ! mount_cxfs "$VOL" "$MNT" --size $((4 << 30)); then
	fail "mount"
	it_finish
fi
mkdir -p "$MNT/par/shared"
declare -a PIDS=()
t0=$SECONDS
for ((w = 0; w < NPROC; w++)); do
	$FSOPS parallel-worker "$MNT/par" "$w" "$ITERS" "$SEED" 2>"$T_TMP/worker$w.log" &
	PIDS[$w]=$!
done
defer 'for p in "${PIDS[@]}"; do kill_pid "$p" 1; done'
for ((w = 0; w < NPROC; w++)); do
	if wait "${PIDS[$w]}"; then
		pass "worker $w: all bytes verified"
	else
		fail "worker $w"
		tail -n 5 "$T_TMP/worker$w.log"
	fi
done
log "$NPROC workers took $((SECONDS - t0)) s"

# verify_live LABEL: each worker's surviving files, and the shared file.
verify_live() {
	local label=$1
	check "$label: shared file regions" python3 - "$MNT/par" "$NPROC" "$SEED" <<'PY'
import os, sys
sys.path.insert(0, os.environ["IT_DIR"])
from fsops import pattern
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(os.path.join(root, "shared", "common"), "rb").read()
bad = [w for w in range(n) if data[w * 262144:(w + 1) * 262144] != pattern(seed + w, 262144)]
if bad or len(data) != n * 262144:
    print(f"bad regions {bad}, size {len(data)}", file=sys.stderr)
    sys.exit(1)
PY
	check "$label: every live file of every worker" python3 - "$MNT/par" "$NPROC" <<'PY'
import os, sys
sys.path.insert(0, os.environ["IT_DIR"])
from fsops import pattern
root, n = sys.argv[1], int(sys.argv[2])
bad = total = 0
want = set()
for w in range(n):
    for line in open(os.path.join(root, f"live{w:02d}")):
        p, s, size = line.split()
        want.add(p)
        total += 1
        try:
            ok = open(p, "rb").read() == pattern(int(s), int(size))
        except OSError as e:
            print(e, file=sys.stderr); ok = False
        bad += not ok
have = set()
for d in os.listdir(root):
    if os.path.isdir(os.path.join(root, d)):
        for e in os.listdir(os.path.join(root, d)):
            if e.startswith("w"):
                have.add(os.path.join(root, d, e))
extra, missing = have - want, want - have
print(f"  {total} files, {bad} bad, {len(extra)} unexpected, {len(missing)} missing", file=sys.stderr)
sys.exit(1 if bad or extra or missing else 0)
PY
}
export IT_DIR
verify_live "before remount"
if umount_cxfs "$MNT"; then pass "unmount"; else fail "unmount"; fi
check_volume "$VOL" "cxfs-check passes after the parallel run"
if ! mount_cxfs "$VOL" "$MNT"; then
	fail "remount"
	it_finish
fi
verify_live "after remount"
check "remove everything" rm -rf "$MNT/par"
if umount_cxfs "$MNT"; then pass "unmount"; else fail "unmount"; fi
check_volume "$VOL" "cxfs-check passes after removing everything"
it_finish
