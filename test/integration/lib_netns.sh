# shellcheck shell=bash
# lib_netns.sh: helpers for tests whose nodes are hosts of their own, each
# in a network namespace (scripts/local-cluster up --netns; sourced, not
# run).  It sources lib_cluster_io.sh (and so lib_cluster.sh) and adds:
#
#   cluster_up_netns N [up options]   cluster_up N --netns ... (skips the
#                        test if this machine lacks ip, nsenter or nft);
#                        then CHECK (lib.sh's cxfs-check) runs cxfs-check in
#                        the hub namespace, where the LUN's address is, so
#                        check_volume and cluster_stop_and_check work as is
#   node_addr I          node I's address (127.0.0.1 without --netns)
#   node_netns I         the name of node I's network namespace
#   hub_netns            the namespace of the bridge and tgtd
#   lun_addr, lun_port   where tgtd serves the LUN
#   in_node I CMD...     run CMD in node I's network namespace only (its
#                        mounts are the test's); plainly without --netns
#   in_hub CMD...        run CMD in the hub namespace, which reaches every
#                        node's address and tgtd (e.g. hostile frames)
#   node_reaches I ADDR PORT [SECS]
#                        a TCP connection from node I to ADDR:PORT succeeds
#                        within SECS (default 3): a partition drops packets
#                        silently, so "unreachable" means "no answer in time"
#   cluster_kill I       kill -9 node I's cxfsd (its dead mount stays)
#   cluster_restart I    start node I's cxfsd again, wait for its mount
#   cluster_partition [--lun] I...   cut nodes I... off from the others
#   cluster_heal         undo every partition
#   bounded SECS CMD...  run CMD (I/O on a mount) in the background and wait
#                        at most SECS for it; 124 if it has not ended (it is
#                        left behind: a process in a FUSE wait may be
#                        unkillable until its daemon goes, at cluster_down)
#
# The cluster_* commands append scripts/local-cluster's output to
# $T_TMP/cluster-ops.log and return its exit status; call them directly.

. "$(dirname "${BASH_SOURCE[0]}")/lib_cluster_io.sh"

# _cl_net KEY: a value of the cluster's record of its namespaces.
_cl_net() { sed -n "s/^$1=//p" "$CL_DIR/netns" 2>/dev/null | tail -n 1; }
_cl_netns_mode() { [[ -f "$CL_DIR/netns" ]]; }

cluster_up_netns() {
	local n=$1
	shift
	local k
	for k in ip nsenter nft; do
		command -v "$k" >/dev/null || skip_all "needs $k (scripts/setup)"
	done
	cluster_up "$n" --netns "$@" || return 1
	# cxfs-check reaches the LUN from the hub only.
	printf '#!/bin/sh\nexec nsenter --net=/run/netns/%s %q "$@"\n' "$(hub_netns)" "$CHECK" \
		>"$T_TMP/cxfs-check-in-hub"
	chmod +x "$T_TMP/cxfs-check-in-hub"
	CHECK=$T_TMP/cxfs-check-in-hub
}

node_addr() {
	if _cl_netns_mode; then _cl_net "node$1_addr"; else echo 127.0.0.1; fi
}
node_netns() { _cl_net "node$1_ns"; }
hub_netns() { _cl_net hub; }
lun_addr() {
	if _cl_netns_mode; then _cl_net lun_addr; else echo 127.0.0.1; fi
}
lun_port() { sed -n 's/^iscsi=//p' "$CL_DIR/ports" 2>/dev/null; }

in_node() {
	local i=$1
	shift
	if _cl_netns_mode; then
		nsenter --net="/run/netns/$(node_netns "$i")" "$@"
	else
		"$@"
	fi
}

in_hub() {
	if _cl_netns_mode; then
		nsenter --net="/run/netns/$(hub_netns)" "$@"
	else
		"$@"
	fi
}

node_reaches() {
	local i=$1 addr=$2 port=$3 secs=${4:-3}
	in_node "$i" timeout -k 1 "$secs" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$addr" "$port" 2>/dev/null
}

# _cl_op WORDS...: scripts/local-cluster WORDS --dir CL_DIR, logged.
_cl_op() {
	local rc=0
	log "local-cluster $*"
	echo "=== $(ts) local-cluster $*" >>"$T_TMP/cluster-ops.log"
	CXFS_BIN_DIR=$CXFS_BIN_DIR CXFS_MOUNT_TIMEOUT=${CXFS_MOUNT_TIMEOUT:-30} \
		"$LOCAL_CLUSTER" "$1" --dir "$CL_DIR" "${@:2}" >>"$T_TMP/cluster-ops.log" 2>&1 || rc=$?
	((rc == 0)) || { echo "local-cluster $* failed (exit $rc):" >&2; tail -n 20 "$T_TMP/cluster-ops.log" >&2; }
	return "$rc"
}

cluster_kill() { _cl_op kill "$1"; }
cluster_restart() { _cl_op restart "$1"; }
cluster_partition() { _cl_op partition "$@"; }
cluster_heal() { _cl_op heal; }

bounded() {
	local secs=$1 pid i
	shift
	"$@" &
	pid=$!
	for ((i = 0; i < secs * 10; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			return
		fi
		sleep 0.1
	done
	echo "bounded: '$*' did not end in $secs s (left behind, pid $pid)" >&2
	return 124
}
