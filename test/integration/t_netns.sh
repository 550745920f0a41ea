#!/usr/bin/env bash
# t_netns.sh: scripts/local-cluster up --netns makes each node a host of its
# own, and its kill, restart, partition and heal do what they say.
#
#  - a 3-node cluster in network namespaces: a file written through node2's
#    mount is read through node3's and node1's;
#  - each cxfsd runs in the network namespace named for its node (not the
#    test's), and the nodes talk over their namespace addresses: the
#    status names them, and node2's and node3's connections to node1 and to
#    tgtd go from and to those addresses;
#  - partition 3: node3 reaches neither node1 nor node2 (and they do not
#    reach it) but still reaches the LUN; node1 and node2 still reach each
#    other; heal: all reachable again;
#  - partition --lun 3: node3 does not reach tgtd either, node1 does; heal;
#    then every node still reads and writes;
#  - kill 3: its cxfsd is gone; restart 3: it runs again, in its namespace,
#    and its mount reads what the others wrote and writes what they read;
#  - every node unmounts and cxfs-check finds the LUN clean;
#  - down: every node and tgtd have stopped, every namespace, link and
#    route is gone, and the host's links, routes, nftables ruleset and
#    forwarding setting are as before (the cluster adds nothing to the
#    host's own network namespace);
#  - without --netns, kill and restart work too, and partition is refused.
. "$(dirname "$0")/lib_netns.sh"
it_init netns --need-tgtd

# What the host's own network namespace has (the same after down: the
# cluster adds nothing to it).  Namespaces are compared by name (other
# tests on this machine may make theirs meanwhile).
host_state() {
	echo "--- links"
	ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort
	echo "--- routes"
	ip route show table all | sed 's/ expires [0-9]*sec//' | sort
	echo "--- nft"
	nft list ruleset 2>/dev/null
	echo "--- forwarding"
	sysctl -n net.ipv4.ip_forward
}
command -v nft >/dev/null || skip_all "needs nft (scripts/setup)"
BEFORE=$(host_state)

cluster_up_netns 3 --size 1G || { fail "up --netns -n 3"; it_finish; }
pass "up --netns -n 3"
check_eq "up: the cluster's namespaces are the hub's and one per node" \
	"$(hub_netns) $(node_netns 1) $(node_netns 2) $(node_netns 3)" \
	"$(ip netns list | awk '{print $1}' | grep "^$(_cl_net tag)-" | sort -V | tr '\n' ' ' | sed 's/ $//')"
if [[ "$BEFORE" == "$(host_state)" ]]; then
	pass "up: nothing added to the host's links, routes, nftables ruleset or forwarding"
else
	fail "up: the host's network state changed"
	diff <(echo "$BEFORE") <(host_state) || true
fi

# ---------------------------------------------------------------------------
# Data through the namespaced nodes.
# ---------------------------------------------------------------------------
msg="written through node2 ($$)"
check "write through node2" bounded 30 bash -c 'echo "$1" >"$2"' _ "$msg" "$(node_mnt 2)/hello"
check_eq "node3 reads node2's file" "$msg" "$(bounded 30 cat "$(node_mnt 3)/hello")"
check_eq "node1 reads node2's file" "$msg" "$(bounded 30 cat "$(node_mnt 1)/hello")"

# ---------------------------------------------------------------------------
# Each cxfsd in its own namespace, talking over its namespace's address.
# ---------------------------------------------------------------------------
self_ns=$(readlink /proc/$$/ns/net)
seen=()
for i in 1 2 3; do
	pid=$(node_pid "$i")
	got=$(readlink "/proc/$pid/ns/net" 2>/dev/null || echo "?")
	want="net:[$(stat -L -c %i "/run/netns/$(node_netns "$i")" 2>/dev/null)]"
	check_eq "node$i's cxfsd (pid $pid) runs in the namespace $(node_netns "$i")" "$want" "$got"
	[[ "$got" != "$self_ns" ]] && pass "node$i's namespace is not the test's" ||
		fail "node$i's cxfsd runs in the test's own namespace"
	seen+=("$got")
done
check_eq "three namespaces, one per node" 3 "$(printf '%s\n' "${seen[@]}" | sort -u | wc -l)"

addr1=$(node_addr 1) addr2=$(node_addr 2) addr3=$(node_addr 3)
port1=$(node_port 1) port2=$(node_port 2) port3=$(node_port 3)
laddr=$(lun_addr) lport=$(lun_port)
log "node1 $addr1:$port1, node2 $addr2:$port2, node3 $addr3:$port3, LUN $laddr:$lport"
check_eq "the nodes' addresses are three, none on loopback" "3 0" \
	"$(printf '%s\n' "$addr1" "$addr2" "$addr3" | sort -u | wc -l) $(printf '%s\n' "$addr1" "$addr2" "$addr3" | grep -c '^127\.' || true)"

# The status of node1 names every node by its namespace address.
got=$(cxfsctl_json 1 | python3 -c '
import json, sys
print(" ".join(n["name"] + "=" + n["address"] for n in json.load(sys.stdin)["cluster"]["nodes"]))')
check_eq "node1's status names the nodes by their namespace addresses" \
	"node1=$addr1 node2=$addr2 node3=$addr3" "$got"

# Connections seen inside the namespaces: each client's to node1 and to tgtd
# go from the client's address.
for i in 2 3; do
	a=$(node_addr "$i")
	got=$(in_node "$i" ss -tnH state established "dst $addr1:$port1" | awk '{print $3}' | sed 's/:[0-9]*$//' | sort -u)
	check_eq "node$i is connected to node1 ($addr1:$port1) from its own address" "$a" "$got"
	got=$(in_node "$i" ss -tnH state established "dst $laddr:$lport" | awk '{print $3}' | sed 's/:[0-9]*$//' | sort -u)
	check_eq "node$i is connected to tgtd ($laddr:$lport) from its own address" "$a" "$got"
done
got=$(in_node 1 ss -tnH state established "src $addr1:$port1" | awk '{print $4}' | sed 's/:[0-9]*$//' | sort -u | tr '\n' ' ')
check_eq "node1 has connections from node2's and node3's addresses" "$addr2 $addr3 " "$got"

# ---------------------------------------------------------------------------
# Partitions.  Packets are dropped silently, so "unreachable" is "no TCP
# connection within 2 s"; "reachable" allows 10 s.
# ---------------------------------------------------------------------------
reach() { node_reaches "$1" "$2" "$3" 10; }
noreach() { ! node_reaches "$1" "$2" "$3" 2; }

check "before any partition: node3 reaches node1" reach 3 "$addr1" "$port1"
check "partition 3" cluster_partition 3
check "partition 3: node3 does not reach node1" noreach 3 "$addr1" "$port1"
check "partition 3: node3 does not reach node2" noreach 3 "$addr2" "$port2"
check "partition 3: node1 does not reach node3" noreach 1 "$addr3" "$port3"
check "partition 3: node2 does not reach node3" noreach 2 "$addr3" "$port3"
check "partition 3: node3 still reaches the LUN" reach 3 "$laddr" "$lport"
check "partition 3: node1 still reaches node2" reach 1 "$addr2" "$port2"
check "partition 3: status shows it" bash -c "'$LOCAL_CLUSTER' status --dir '$CL_DIR' | grep -q 'partition: node3 cut off from the other nodes\$'"
check "heal" cluster_heal
check "healed: node3 reaches node1" reach 3 "$addr1" "$port1"
check "healed: node3 reaches node2" reach 3 "$addr2" "$port2"
check "healed: node1 reaches node3" reach 1 "$addr3" "$port3"

check "partition --lun 3" cluster_partition --lun 3
check "partition --lun 3: node3 does not reach the LUN" noreach 3 "$laddr" "$lport"
check "partition --lun 3: node3 does not reach node1" noreach 3 "$addr1" "$port1"
check "partition --lun 3: node1 still reaches the LUN" reach 1 "$laddr" "$lport"
check "heal" cluster_heal
check "healed: node3 reaches the LUN" reach 3 "$laddr" "$lport"
check "healed: node3 reaches node1" reach 3 "$addr1" "$port1"
check_eq "heal leaves no partition table in the hub" "" \
	"$(in_hub nft list tables 2>/dev/null)"

# The partitions above were short and no I/O ran during them: the cluster
# works on every node after heal.
check "after heal: write through node3" bounded 30 bash -c 'echo after-heal >"$1"' _ "$(node_mnt 3)/healed"
check_eq "after heal: node1 reads it" after-heal "$(bounded 30 cat "$(node_mnt 1)/healed")"
check_eq "after heal: node2 reads it" after-heal "$(bounded 30 cat "$(node_mnt 2)/healed")"

# ---------------------------------------------------------------------------
# kill and restart of a client node (node3; the cluster has no recovery of
# its metadata server yet).  No I/O on node3's mount while it is dead.
# ---------------------------------------------------------------------------
old=$(node_pid 3)
check "kill 3" cluster_kill 3
check_fails "kill 3: its cxfsd (pid $old) is gone" node_alive 3
check "survivors: write through node1" bounded 30 bash -c 'echo while-node3-was-dead >"$1"' _ "$(node_mnt 1)/during"
check_eq "survivors: node2 reads it" while-node3-was-dead "$(bounded 30 cat "$(node_mnt 2)/during")"

check "restart 3" cluster_restart 3
new=$(node_pid 3)
check "restart 3: node3 runs again (pid $new)" node_alive 3
check_eq "restart 3: in its namespace" "net:[$(stat -L -c %i "/run/netns/$(node_netns 3)")]" \
	"$(readlink "/proc/$new/ns/net" 2>/dev/null || echo '?')"
check_eq "restart 3: node3 reads what node1 wrote while it was dead" while-node3-was-dead \
	"$(bounded 30 cat "$(node_mnt 3)/during")"
check "restart 3: write through node3" bounded 30 bash -c 'echo from-restarted-node3 >"$1"' _ "$(node_mnt 3)/restarted"
check_eq "restart 3: node1 reads it" from-restarted-node3 "$(bounded 30 cat "$(node_mnt 1)/restarted")"
check_eq "restart 3: node2 reads it" from-restarted-node3 "$(bounded 30 cat "$(node_mnt 2)/restarted")"

# ---------------------------------------------------------------------------
# Every node unmounts, cxfs-check (run in the hub) finds the LUN clean, and
# down removes everything it made.
# ---------------------------------------------------------------------------
pids=("$(cat "$CL_DIR/tgtd.pid")" "$(node_pid 1)" "$(node_pid 2)" "$(node_pid 3)")
slot=$(_cl_net slot)
tag=$(_cl_net tag)
nss=("$(hub_netns)" "$(node_netns 1)" "$(node_netns 2)" "$(node_netns 3)")
cluster_stop_and_check
left=()
for p in "${pids[@]}"; do
	# A zombie has exited (init reaps it in its own time).
	st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1) || st=
	[[ -n "$st" && "$st" != Z ]] && left+=("$p")
done
check_eq "down: tgtd and every cxfsd have exited" "" "${left[*]}"
left=()
for ns in "${nss[@]}"; do
	[[ -e /run/netns/$ns ]] && left+=("$ns")
done
check_eq "down: every namespace of the cluster is gone" "" "${left[*]}"
check "down: its /24 is free again ($slot)" test ! -e "$slot"
check_eq "down: no namespace named $tag-*" "" "$(ip netns list | awk '{print $1}' | grep "^$tag-" || true)"
check_eq "down: no mount left under the cluster's directory" 0 \
	"$(awk -v d="$CL_DIR/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l)"
AFTER=$(host_state)
if [[ "$BEFORE" == "$AFTER" ]]; then
	pass "down: the host's links, routes, nftables ruleset and forwarding are as before"
else
	fail "down: the host's network state changed"
	diff <(echo "$BEFORE") <(echo "$AFTER") || true
fi

# ---------------------------------------------------------------------------
# kill and restart without --netns (every node on 127.0.0.1), in the same
# directory (up cleans up what the first cluster left there).
# ---------------------------------------------------------------------------
CHECK=$CXFS_BIN_DIR/cxfs-check
cluster_up 2 --size 1G || { fail "up -n 2 (without --netns)"; it_finish; }
check_eq "without --netns: node2 runs in the test's namespace" "$self_ns" \
	"$(readlink "/proc/$(node_pid 2)/ns/net" 2>/dev/null || echo '?')"
check "without --netns: write through node1" bounded 30 bash -c 'echo plain >"$1"' _ "$(node_mnt 1)/plain"
old=$(node_pid 2)
check "without --netns: kill node2" cluster_kill node2
check_fails "without --netns: node2's cxfsd (pid $old) is gone" node_alive 2
check "without --netns: restart node2" cluster_restart node2
check "without --netns: node2 runs again" node_alive 2
check_eq "without --netns: node2 reads node1's file" plain "$(bounded 30 cat "$(node_mnt 2)/plain")"
check_fails "without --netns: partition is refused" cluster_partition 2
cluster_stop_and_check

it_finish
