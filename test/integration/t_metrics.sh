#!/usr/bin/env bash
# t_metrics.sh: every cxfsd's Prometheus metrics, and the online backup of
# the metadata store, on a 2-node cluster (scripts/local-cluster: node1
# serves the metadata at first):
#
#  - node1 serves them on the address of its --metrics flag, node2 on the
#    address cluster.conf's global "metrics" names (node1's flag wins over
#    it); each endpoint's text passes `promtool check metrics`, and
#    `cxfsctl metrics` gives the same metric names;
#  - after a workload (files created and written on node2, read on node1, a
#    relocation of the metadata server to node2) the counters moved: FUSE
#    requests by operation and their latency histograms, cluster messages by
#    type, token acquisitions asked of the server, device bytes written,
#    cached writes written back, the relocation and its pause; the node
#    states and roles say who serves;
#  - `cxfsctl backup FILE` on the new metadata server while node1 writes
#    gives a copy that `cxfs-check --store` finds clean and that lists the
#    files; on node1 (a client now) it is refused, naming node2;
#  - a daemon started without --metrics listens on no TCP port.
. "$(dirname "$0")/lib_cluster.sh"
it_init metrics --need-tgtd

command -v curl >/dev/null || { fail "curl is installed (scripts/setup)"; it_finish; }
command -v promtool >/dev/null || { fail "promtool is installed (scripts/setup: prometheus)"; it_finish; }

# A free TCP port on loopback from a random start.
free_port() {
	local p=$((20000 + RANDOM % 20000)) i
	for ((i = 0; i < 200; i++, p++)); do
		_tcp_port_free "$p" && [[ $p != "${1:-}" ]] && { echo "$p"; return 0; }
	done
	return 1
}
P1=$(free_port) && P2=$(free_port "$P1") || { fail "two free TCP ports"; it_finish; }

# val FILE NAME [LABEL=\"V\"]: the sum of NAME's samples (with that label).
val() {
	awk -v n="$2{" -v l="${3:-}" 'index($0, n) == 1 && (l == "" || index($0, l)) { s += $NF }
		END { printf "%d\n", s }' "$1"
}
# names FILE: the metric families, sorted.
names() { sed -n 's/^# TYPE \([^ ]*\) .*/\1/p' "$1" | sort; }
scrape() { curl -sf --max-time 10 "http://127.0.0.1:$1/metrics" >"$2"; }

export CXFSD_ARGS_NODE1="--metrics 127.0.0.1:$P1"
export CXFS_CONF_GLOBALS="metrics 127.0.0.1:$P2"
cluster_up 2 || { fail "a 2-node cluster starts"; it_finish; }
unset CXFSD_ARGS_NODE1 CXFS_CONF_GLOBALS
M=$T_TMP/m
mkdir -p "$M"

log "1: both endpoints answer, and promtool accepts their text"
for n in 1 2; do
	p=$P1; ((n == 2)) && p=$P2
	check "node$n serves /metrics on 127.0.0.1:$p" scrape "$p" "$M/n$n.0"
	check "node$n: promtool check metrics passes" promtool check metrics <"$M/n$n.0"
	"$CXFSCTL" --socket "$(node_sock "$n")" metrics >"$M/n$n.ctl" ||
		fail "node$n: cxfsctl metrics answers"
	check_eq "node$n: cxfsctl metrics has the endpoint's metric names" \
		"$(names "$M/n$n.0")" "$(names "$M/n$n.ctl")"
done
check_eq "node1 is the metadata server (cxfs_is_mds)" 1 "$(val "$M/n1.0" cxfs_is_mds)"
check_eq "node2 is not (cxfs_is_mds)" 0 "$(val "$M/n2.0" cxfs_is_mds)"
check_eq "node2 sees both nodes up (cxfs_node_up)" 2 "$(val "$M/n2.0" cxfs_node_up)"
check "the membership has an epoch" test "$(val "$M/n2.0" cxfs_membership_epoch)" -ge 1

log "2: a workload moves the counters"
mkdir "$(node_mnt 2)/w"
for i in $(seq 1 20); do head -c 65536 /dev/urandom >"$(node_mnt 2)/w/f$i"; done
cat "$(node_mnt 1)"/w/* >/dev/null
cat "$(node_mnt 2)"/w/* >/dev/null
check "relocate the metadata server to node2" \
	"$CXFSCTL" --socket "$(node_sock 1)" relocate shared node2
scrape "$P1" "$M/n1.1" && scrape "$P2" "$M/n2.1" || fail "scrape after the workload"
check "promtool check metrics passes after the workload" promtool check metrics <"$M/n2.1"
for op in create write read mkdir; do
	a=$(val "$M/n2.0" cxfs_fuse_requests_total "op=\"$op\"")
	b=$(val "$M/n2.1" cxfs_fuse_requests_total "op=\"$op\"")
	check "node2: FUSE $op requests counted ($a -> $b)" test "$b" -gt "$a"
done
check "node2: write latencies observed (histogram _count)" \
	test "$(val "$M/n2.1" cxfs_fuse_request_duration_seconds_count 'op="write"')" -ge 20
check_eq "node2: write histogram's +Inf bucket equals its count" \
	"$(val "$M/n2.1" cxfs_fuse_request_duration_seconds_count 'op="write"')" \
	"$(val "$M/n2.1" cxfs_fuse_request_duration_seconds_bucket 'op="write",le="+Inf"')"
a=$(val "$M/n2.0" cxfs_rpc_messages_sent_total); b=$(val "$M/n2.1" cxfs_rpc_messages_sent_total)
check "node2: cluster messages sent ($a -> $b)" test "$b" -gt "$a"
a=$(val "$M/n1.0" cxfs_rpc_messages_received_total); b=$(val "$M/n1.1" cxfs_rpc_messages_received_total)
check "node1: cluster messages received ($a -> $b)" test "$b" -gt "$a"
check "node2: call latencies by type observed" \
	test "$(val "$M/n2.1" cxfs_rpc_call_duration_seconds_count)" -gt 0
a=$(val "$M/n2.0" cxfs_token_acquires_total 'source="server"')
b=$(val "$M/n2.1" cxfs_token_acquires_total 'source="server"')
check "node2: token acquisitions asked of the server ($a -> $b)" test "$b" -gt "$a"
check "node2: token acquisitions answered from the cache" \
	test "$(val "$M/n2.1" cxfs_token_acquires_total 'source="cache"')" -gt 0
a=$(val "$M/n2.0" cxfs_device_written_bytes_total); b=$(val "$M/n2.1" cxfs_device_written_bytes_total)
check "node2: device bytes written ($a -> $b)" test "$b" -gt "$a"
check_eq "node1: one relocation counted" 1 "$(val "$M/n1.1" cxfs_relocations_total)"
check_eq "node1: its pause observed" 1 "$(val "$M/n1.1" cxfs_relocation_pause_seconds_count)"
check_eq "node2 is the metadata server now" 1 "$(val "$M/n2.1" cxfs_is_mds)"
check_eq "node1 is not" 0 "$(val "$M/n1.1" cxfs_is_mds)"
check_eq "node1 knows node2 serves (cxfs_node_serves_metadata)" 1 \
	"$(val "$M/n1.1" cxfs_node_serves_metadata 'peer="node2"')"
a=$(val "$M/n2.0" cxfs_data_cache_flushed_bytes_total); b=$(val "$M/n2.1" cxfs_data_cache_flushed_bytes_total)
check "node2: cached writes written back ($a -> $b)" test "$b" -gt "$a"
check "node2 (the MDS now) reports the token server" \
	grep -q '^cxfs_token_grants_total{' "$M/n2.1"

log "3: an online backup of the metadata store while node1 writes"
(for i in $(seq 1 200); do echo "$i" >"$(node_mnt 1)/w/busy$((i % 10))"; done) &
writer=$!
check "cxfsctl backup on node2 (the MDS)" \
	"$CXFSCTL" --socket "$(node_sock 2)" backup "$T_TMP/store.copy"
wait "$writer" || fail "the writer on node1 ran without error"
out=$("$CXFSCTL" --socket "$(node_sock 1)" backup "$T_TMP/other.copy" 2>&1) &&
	fail "backup on node1 (a client) is refused" ||
	check "backup on node1 (a client) is refused, naming node2: $out" grep -q node2 <<<"$out"
check "cxfs-check --store finds the copy clean" "$CHECK" --store "$T_TMP/store.copy"
files=$(python3 - "$T_TMP/store.copy" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
rows = db.execute("SELECT d.name FROM dirent d JOIN dirent p ON p.ino = d.parent"
                  " WHERE CAST(p.name AS TEXT) = 'w'").fetchall()
print(sum(1 for (n,) in rows if bytes(n).decode().startswith("f")))
PY
)
check_eq "the copy lists the 20 files node2 wrote" 20 "$files"

log "4: metrics are off by default"
mount_cxfs "$T_TMP/single.vol" "$T_TMP/single" --size 256M || { fail "a single-machine mount"; it_finish; }
pid=${CXFSD_PID[$T_TMP/single]}
check_eq "a daemon without --metrics listens on no TCP port" "" \
	"$(ss -ltnpH 2>/dev/null | grep "pid=$pid," || true)"
umount_cxfs "$T_TMP/single" || fail "unmount the single-machine mount"

it_finish
