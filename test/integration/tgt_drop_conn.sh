#!/usr/bin/env bash
# tgt_drop_conn.sh CTL IQN: cut the iSCSI connections of initiator IQN at the
# tgtd whose control port is CTL (target 1), as a network failure would.
# Prints the target's sessions first: tgtd lists each as "I_T nexus: N" (its
# TSIH; a new login gets a new one) followed by "Initiator: IQN".
set -euo pipefail
ctl=$1
iqn=$2
show=$(tgtadm -C "$ctl" --lld iscsi --op show --mode target)
awk '/I_T nexus:/ { n = $3 } /Initiator:/ { print "     tgtadm: session " n ": " $2 }' <<<"$show"
sids=$(awk -v iqn="$iqn" '/I_T nexus:/ { n = $3 } /Initiator:/ && $2 == iqn { print n }' <<<"$show")
[[ -n "$sids" ]] || { echo "tgt_drop_conn.sh: no session of $iqn" >&2; exit 1; }
for sid in $sids; do
	echo "     tgtadm: delete connection 0 of session $sid ($iqn)"
	tgtadm -C "$ctl" --lld iscsi --op delete --mode conn --tid 1 --sid "$sid" --cid 0
done
