#!/usr/bin/env bash
# t_unsafe.sh: unsafe requests and applied-once (docs/ARCHITECTURE.md,
# "Unsafe requests and applied-once") through the mounts of a 3-node
# cluster whose nodes are hosts of their own (network namespaces; node1
# serves the metadata).
#
#  - applied-once across a lost reply: node2 drops every packet from the
#    MDS (nft in node2's namespace) while an application makes a directory
#    there; the MDS applies the mkdir (cluster.unsafe.applied rises) and
#    its reply is lost.  Then node2's connection is killed (ss -K) and the
#    rule removed: node2 sends the request again, with the same id, on a
#    new connection, and the MDS answers it from its table of applied
#    requests (cluster.unsafe.answered_again rises) instead of applying it
#    again: mkdir succeeds (not EEXIST) and the directory is there once.
#    The same for a create the server makes (a FIFO: node2 creates regular
#    files itself and sends them in batches, "Asynchronous creates");
#  - keep until durable: during a burst of creates on node2 (2 s, 300 at least),
#    cluster.unsafe.kept (the answered requests node2 keeps until the MDS
#    says their transaction is durable) rises above 0; it is 0 again
#    within 3 s of the burst (the commit interval is 1 s);
#  - every node unmounts and cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_netns.sh"
it_init unsafe --need-tgtd

cluster_up_netns 3 || { fail "a 3-node cluster starts in namespaces"; it_finish; }
mnt2=$(node_mnt 2)
mkdir "$(node_mnt 1)/u"
addr1=$(node_addr 1) port1=$(node_port 1)

# Requests with an id the MDS applied to its store.
applied() { cl_stat 1 'c["unsafe"]["applied"]'; }

# lost_reply WHAT CMD...: run CMD (a change through node2's mount) while
# node2 hears nothing from the MDS, once the MDS applied it kill node2's
# connection and let packets through again; CMD must succeed.
lost_reply() {
	local what=$1 ops0 again0 pid i rc
	shift
	# Warm the directory's names on node2 (the lookups before the change
	# too): the change is then the one request.
	ls "$mnt2/u" >/dev/null
	stat "$mnt2/u/dir" "$mnt2/u/file" >/dev/null 2>&1 || true
	stat "$mnt2/u/dir" "$mnt2/u/file" >/dev/null 2>&1 || true
	again0=$(cl_stat 1 'c["unsafe"]["answered_again"]')
	ops0=$(applied)
	in_node 2 nft add table inet cxfs_unsafe
	in_node 2 nft add chain inet cxfs_unsafe in '{ type filter hook input priority 0; }'
	in_node 2 nft add rule inet cxfs_unsafe in ip saddr "$addr1" tcp sport "$port1" drop
	"$@" &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		(($(applied) > ops0)) && break
		sleep 0.1
	done
	(($(applied) > ops0)) || fail "$what: the MDS applied the change while node2 was deaf"
	sleep 0.3
	kill -0 "$pid" 2>/dev/null || fail "$what: the change returned while its reply was dropped"
	in_node 2 ss -K -t -4 dst "$addr1" dport = ":$port1" >/dev/null
	in_node 2 nft delete table inet cxfs_unsafe
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" && rc=0 || rc=$?
			break
		fi
		sleep 0.1
	done
	check_eq "$what: succeeds after its reply was lost (sent again, not applied again)" 0 "${rc:-hung}"
	check_eq "$what: the MDS answered the resent request from its table" $((again0 + 1)) \
		"$(cl_stat 1 'c["unsafe"]["answered_again"]')"
}

log "1: applied-once across a lost reply"
lost_reply "mkdir on node2" mkdir "$mnt2/u/dir"
check_eq "the directory exists once (listed from node3)" "dir" "$(bounded 30 ls "$(node_mnt 3)/u")"
lost_reply "FIFO create on node2" python3 -c 'import os, sys; os.mkfifo(sys.argv[1], 0o644)' \
	"$mnt2/u/file"
check_eq "the file and the directory exist once (listed from node3)" "dir file" \
	"$(bounded 30 ls "$(node_mnt 3)/u" | tr '\n' ' ' | sed 's/ $//')"

log "2: requests are kept until durable"
wait_kept_durable 2 || fail "node2 keeps nothing before the burst"
# At least 300 creates and for at least 2 s, so that the samples (a
# cxfsctl each) see the burst whatever the machine's speed.
python3 -c '
import os, sys, time
end, i = time.monotonic() + 2, 0
while i < 300 or time.monotonic() < end:
    os.close(os.open("%s/f%d" % (sys.argv[1], i), os.O_CREAT | os.O_WRONLY, 0o644))
    i += 1
print(i)' "$mnt2/u" >"$T_TMP/burst" &
burst=$!
max=0 samples=0
while kill -0 "$burst" 2>/dev/null; do
	k=$(cl_stat 2 'c["unsafe"]["kept"]')
	((k > max)) && max=$k
	samples=$((samples + 1))
	sleep 0.05
done
wait "$burst" && rc=0 || rc=$?
check_eq "the burst of creates succeeds" 0 "$rc"
log "node2 made $(cat "$T_TMP/burst") files and kept at most $max requests ($samples samples)"
((max > 0)) && pass "node2 keeps answered requests during the burst (at most $max)" ||
	fail "node2 kept no request during the burst"
t0=$(date +%s.%N)
if wait_kept_durable 2 3; then
	pass "node2 keeps none $(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" \
		"$t0" "$(date +%s.%N)") s after the burst (within 3 s)"
else
	fail "node2 still keeps $(cl_stat 2 'c["unsafe"]["kept"]') requests 3 s after the burst"
fi

cluster_stop_and_check
it_finish
