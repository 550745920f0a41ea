#!/usr/bin/env bash
# t_cluster_meta.sh: names, attributes, locks and caching across the nodes of
# a 3-node cluster (scripts/local-cluster: node1 serves the metadata).
#
#  - create, rename (also over an existing file), unlink, chmod, user.*
#    setxattr/replace/removexattr, mkdir and rmdir on one node are seen right
#    after the call returns by stat/listdir/getxattr on the other two (whose
#    caches were warmed first), each node acting in turn; the nodes that
#    had the unlinked file open go on writing new blocks of it and reading
#    them back; a directory renamed across directories on one node is used
#    (stat, .., listdir, read, create) on the others and renamed again from
#    another node;
#  - POSIX record locks exclude across nodes: F_SETLK refused with
#    EAGAIN/EACCES and F_GETLK reporting the holder while another node holds
#    the lock, granted after unlock or close; byte ranges and shared read
#    locks; F_SETLKW waits until the holder unlocks, closes or exits;
#  - a lock counter: 3 processes on each node, 200 locked increments each,
#    ends at the total with no value written twice; again with every
#    increment opening and closing the file (the RELEASE of a closed
#    descriptor must not drop the lock taken through the next one);
#  - caching: after a warm-up, 10,000 stat() and 100 whole-file re-reads on
#    node2 (a client) send no message (cluster.messages.sent unchanged, once
#    the requests it keeps until durable are: cluster.unsafe.kept 0) and
#    on node1 (the MDS node) take no token from the server
#    (token_client.acquires_server unchanged); a control shows the counter
#    moves when another node changes the file;
#  - at the end every node unmounts and cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_cluster_io.sh"
it_init cluster_meta --need-tgtd

cluster_up 3 || { fail "a 3-node cluster starts"; it_finish; }
mkdir "$(node_mnt 1)/meta" "$(node_mnt 1)/locks" "$(node_mnt 1)/cache"

log "9: repeated stat and reads are served from the node's cache"
rand_file "$(node_mnt 3)/cache/file" $((1 << 20))
for n in 2 1; do
	f=$(node_mnt "$n")/cache/file
	# Warm up: the first read after the write moves atime (relatime), which
	# recalls this node's attribute tokens once; the second read takes them.
	stat "$f" >/dev/null && cat "$f" >/dev/null && cat "$f" >/dev/null && stat "$f" >/dev/null
	wait_kept_durable "$n" || fail "node$n: its kept requests become durable"
	sent0=$(cl_stat "$n" 'c["messages"]["sent"]')
	acq0=$(cl_stat "$n" 'c["token_client"]["acquires_server"]')
	run_io statloop --stats 10000 --reads 100 "$f"
	sent1=$(cl_stat "$n" 'c["messages"]["sent"]')
	acq1=$(cl_stat "$n" 'c["token_client"]["acquires_server"]')
	log "node$n: messages.sent $sent0 -> $sent1, token_client.acquires_server $acq0 -> $acq1"
	if ((n == 2)); then
		check_eq "node2 (client): 10,000 stats and 100 re-reads send no message (messages.sent)" \
			"$sent0" "$sent1"
	fi
	check_eq "node$n: 10,000 stats and 100 re-reads take no token from the server (acquires_server)" \
		"$acq0" "$acq1"
done
# Control: the counters are live. node3 rewrites the file; node2's next read
# must get the new bytes, and that needs messages.
sent0=$(cl_stat 2 'c["messages"]["sent"]')
rand_file "$T_TMP/new" $((1 << 20))
cp "$T_TMP/new" "$(node_mnt 3)/cache/file"
check_eq "control: node2 reads node3's new contents" "$(sum_of "$T_TMP/new")" \
	"$(sum_of "$(node_mnt 2)/cache/file")"
sent1=$(cl_stat 2 'c["messages"]["sent"]')
check "control: node2 sends messages to read a file another node changed ($sent0 -> $sent1)" \
	test "$sent1" -gt "$sent0"

log "3: namespace and attribute changes"
mapfile -t P < <(node_paths meta)
run_io meta "${P[@]}"

log "6: POSIX locks"
mapfile -t P < <(node_paths locks/l1)
run_io locks "${P[@]}"
mapfile -t P < <(node_paths locks/counter)
run_io lockcount --rounds 200 --procs 3 "${P[@]}"
run_io lockcount --rounds 200 --procs 3 --reopen "${P[@]}"

check_nodes_alive
cross_node_rw after-meta-checks

log "10: unmount and check the volume"
cluster_stop_and_check
it_finish
