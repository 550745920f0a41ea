#!/usr/bin/env bash
# t_stress.sh: concurrent POSIX operations from every node of a 3-node
# cluster on one small shared tree (stress.py), under a watchdog.
#
#  - first stress.py for a few seconds on a local directory (given three
#    times): Linux's own answers must pass its checks, which checks the
#    checker;
#  - then, for each seed (STRESS_SEEDS, default "101 202 303"), 4 worker
#    processes per node (STRESS_WORKERS) for STRESS_SECONDS (30) seconds
#    each do a random mix of create (O_EXCL), mkdir, unlink, rmdir, rename
#    (plain, NOREPLACE, EXCHANGE; within and across directories, over
#    existing names), link, chmod, utime, setxattr, removexattr, getxattr,
#    truncate, writes and reads on 3 directories of 8 names (and 2 names
#    below each that is a directory); every result is checked against
#    POSIX, then every node's view of the tree is compared with the others
#    and checked against what the workers did (stress.py says how), and the
#    tree is removed;
#  - every node unmounts and cxfs-check finds the LUN clean.
#
# STRESS_ACTIVE=2 (or 1,3, ...) puts the workers on those nodes only (every
# node still takes part in the final comparison): to tell a cross-node
# problem from a single-node one.
#
# The watchdog (hangwatch.py): an operation that does not return in
# STRESS_LIMIT (30) seconds fails the test after a dump of every node's
# state (status json, waits, tokens of the shared directories, FUSE
# requests waiting, the daemons' threads, the logs' ends); the FUSE
# connections are then aborted, so the test ends and cleans up.
. "$(dirname "$0")/lib_stress.sh"
it_init stress --need-tgtd
STRESS=$IT_DIR/stress.py
STRESS_SEEDS=${STRESS_SEEDS:-101 202 303}
STRESS_SECONDS=${STRESS_SECONDS:-30}
STRESS_WORKERS=${STRESS_WORKERS:-4}
STRESS_LIMIT=${STRESS_LIMIT:-30}
ACTIVE=()
[[ -z "${STRESS_ACTIVE:-}" ]] || ACTIVE=(--active "$STRESS_ACTIVE")

log "1: the checker on a local directory"
mkdir -p "$T_TMP/local"
run_driver "local directory" 120 python3 "$STRESS" --seed 1 --seconds 5 --workers 3 \
	--work "$T_TMP/work.local" "$T_TMP/local" "$T_TMP/local" "$T_TMP/local"

log "2: a 3-node cluster"
cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }
stress_safety_net
mapfile -t MNTS < <(node_mnts)

for seed in $STRESS_SEEDS; do
	log "3: seed $seed, $STRESS_WORKERS workers per node for $STRESS_SECONDS s"
	run_driver "seed $seed" $((STRESS_SECONDS + 600)) python3 "$STRESS" --seed "$seed" \
		--seconds "$STRESS_SECONDS" --workers "$STRESS_WORKERS" --limit "$STRESS_LIMIT" \
		--cluster "$CL_DIR" --work "$T_TMP/work.$seed" "${ACTIVE[@]}" "${MNTS[@]}"
	((DRIVER_HUNG == 0)) || break
done

if ((DRIVER_HUNG)); then
	log "4: skipped (the FUSE connections were aborted): unmount and cxfs-check"
else
	log "4: unmount and check the volume"
	check_nodes_alive
	cluster_stop_and_check
fi
it_finish
