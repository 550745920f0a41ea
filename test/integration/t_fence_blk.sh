#!/usr/bin/env bash
# t_fence_blk.sh: the block layer's fencing (SCSI-3 persistent reservations)
# against a tgtd this test starts on ports unique to the run, with one LUN.
# cxfs-pr-check plays two nodes and an unregistered reader on the LUN (see
# test/integration/pr_check.c for the scenario); to cut a node's iSCSI
# connection it runs tgt_drop_conn.sh, which prints the target's sessions and
# deletes that initiator's connection with tgtadm.
. "$(dirname "$0")/lib.sh"
it_init fence_blk --need-tgtd

PR_CHECK=$CXFS_BIN_DIR/cxfs-pr-check
[[ -x "$PR_CHECK" ]] || { fail "binary $PR_CHECK is missing (build first)"; it_finish; }
if ! start_tgtd "$T_TMP/lun.img" 64M; then
	fail "tgtd serves a 64 MiB LUN"
	it_finish
fi
pass "tgtd serves a 64 MiB LUN ($TGT_URI)"

out=$T_TMP/pr_check.out
rc=0
timeout -k 10 600 "$PR_CHECK" --drop "bash $IT_DIR/tgt_drop_conn.sh $TGT_CTL" "$TGT_URI" >"$out" 2>&1 || rc=$?
cat "$out"
line=$(tail -n 1 "$out")
if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
	T_PASS=$((T_PASS + BASH_REMATCH[1]))
	T_FAIL=$((T_FAIL + BASH_REMATCH[2]))
	log "cxfs-pr-check: ${BASH_REMATCH[1]} passed, ${BASH_REMATCH[2]} failed (exit $rc)"
else
	fail "cxfs-pr-check did not finish (exit $rc)"
fi
it_finish
