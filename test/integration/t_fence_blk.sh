#!/usr/bin/env bash
# t_fence_blk.sh: the block layer's fencing (SCSI-3 persistent reservations)
# against a tgtd this test starts on ports unique to the run, with one LUN.
# cxfs-pr-check plays two nodes and an unregistered reader on the LUN (see
# test/integration/pr_check.c for the scenario); to cut a node's iSCSI
# connection it runs drop.sh, which deletes that initiator's connection at
# the target with tgtadm.  The target's own view of the sessions is shown
# before and after.
. "$(dirname "$0")/lib.sh"
it_init fence_blk --need-tgtd

PR_CHECK=$CXFS_BIN_DIR/cxfs-pr-check
[[ -x "$PR_CHECK" ]] || { fail "binary $PR_CHECK is missing (build first)"; it_finish; }
if ! start_tgtd "$T_TMP/lun.img" 64M; then
	fail "tgtd serves a 64 MiB LUN"
	it_finish
fi
pass "tgtd serves a 64 MiB LUN ($TGT_URI)"

# drop.sh IQN: delete every connection of initiator IQN on target 1 (tgtd
# lists each session as "I_T nexus: N" followed by its "Initiator: IQN").
cat >"$T_TMP/drop.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
sids=\$(tgtadm -C $TGT_CTL --lld iscsi --op show --mode target |
	awk -v iqn="\$1" '/I_T nexus:/ { n = \$3 } /Initiator:/ && \$2 == iqn { print n }')
[[ -n "\$sids" ]] || { echo "drop.sh: no session of \$1" >&2; exit 1; }
for sid in \$sids; do
	echo "     tgtadm: delete connection 0 of session \$sid (\$1)"
	tgtadm -C $TGT_CTL --lld iscsi --op delete --mode conn --tid 1 --sid "\$sid" --cid 0
done
EOF
chmod +x "$T_TMP/drop.sh"

show_sessions() {
	echo "--- tgtadm: sessions of target 1 ($1)"
	tgtadm -C "$TGT_CTL" --lld iscsi --op show --mode target |
		sed -n '/I_T nexus information/,/LUN information/p' | grep -E 'I_T nexus:|Initiator:' || true
}

out=$T_TMP/pr_check.out
rc=0
timeout -k 10 600 "$PR_CHECK" --drop "$T_TMP/drop.sh" "$TGT_URI" >"$out" 2>&1 || rc=$?
cat "$out"
line=$(tail -n 1 "$out")
if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
	T_PASS=$((T_PASS + BASH_REMATCH[1]))
	T_FAIL=$((T_FAIL + BASH_REMATCH[2]))
	log "cxfs-pr-check: ${BASH_REMATCH[1]} passed, ${BASH_REMATCH[2]} failed (exit $rc)"
else
	fail "cxfs-pr-check did not finish (exit $rc)"
fi
show_sessions "after the run: every session logged out"
it_finish
