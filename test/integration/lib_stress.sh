# shellcheck shell=bash
# lib_stress.sh: helpers of the watched multi-node tests, t_stress.sh and
# t_shared_dir.sh (sourced, not run).  It sources lib_cluster_io.sh and adds:
#
#   run_driver WHAT SECS CMD...   run a python driver (stress.py,
#       shared_dir.py) with an outer time limit of SECS; its "ok ..." and
#       "FAIL ..." lines become this test's pass/fail as they come, other
#       lines are shown.  The driver's own watchdog (hangwatch.py: 30 s per
#       operation) dumps the cluster's state, aborts the FUSE connections
#       and exits 3 on a hang: then DRIVER_HUNG=1 and the test should stop
#       using the mounts.  If the outer limit is hit instead (the watchdog
#       itself failed), the dump and the abort are done from here.
#   stress_safety_net   register, after cluster_up, a cleanup step that runs
#       before the cluster goes down: if a node's FUSE connection still has
#       requests waiting once the test is over, dump and abort (so that
#       `local-cluster down` never waits on a hung mount).

. "$(dirname "${BASH_SOURCE[0]}")/lib_cluster_io.sh"

HANGWATCH=$IT_DIR/hangwatch.py
DRIVER_HUNG=0

run_driver() {
	local what=$1 secs=$2 rcf out line rc nok nfail
	shift 2
	rcf=$T_TMP/driver.rc
	out=$T_TMP/driver.out
	: >"$out"
	TALLY_OK=0 TALLY_FAIL=0
	while IFS= read -r line; do
		echo "$line" >>"$out"
		tally_line "$line"
	done < <(
		rc=0
		timeout -k 10 "$secs" "$@" 2>&1 || rc=$?
		echo "$rc" >"$rcf"
	)
	rc=$(cat "$rcf" 2>/dev/null || echo 255)
	nok=$TALLY_OK nfail=$TALLY_FAIL
	if ((rc == 3)); then
		DRIVER_HUNG=1
		log "$what: the watchdog fired; the FUSE connections were aborted"
		((nfail > 0)) || fail "$what: the watchdog fired"
	elif ((rc == 124 || rc == 137)); then
		DRIVER_HUNG=1
		fail "$what: did not end in $secs s (the driver's watchdog did not fire): dump and abort"
		[[ -n "$CL_DIR" ]] && python3 "$HANGWATCH" dump --cluster "$CL_DIR"
		[[ -n "$CL_DIR" ]] && python3 "$HANGWATCH" abort --cluster "$CL_DIR"
	elif ((rc != 0 && nfail == 0)); then
		fail "$what: the driver exited $rc without saying why"
	elif ((nok + nfail == 0)); then
		fail "$what: the driver reported nothing"
	fi
	return 0
}

_stress_abort_stuck() {
	[[ -n "$CL_DIR" && -d "$CL_DIR" ]] || return 0
	python3 "$HANGWATCH" abort-stuck --cluster "$CL_DIR" --secs 3 || {
		T_FAIL=$((T_FAIL + 1))
		echo "FAIL requests were still waiting on a FUSE connection after the test; aborted"
	}
}

stress_safety_net() { defer "_stress_abort_stuck"; }
