#!/usr/bin/env bash
# t_recover_more.sh: the harder losses of the metadata server, each under
# the verified workload of recover_load.py on nodes that survive (no error,
# nothing acknowledged lost; hangwatch.py's watchdog dumps every node if a
# call hangs).  A 5-node cluster, every node a host of its own (network
# namespaces) and in the server order, so three live nodes keep quorum after
# two deaths.  Throughout, every live node's status is sampled ten times a
# second: never two nodes that say they serve.
#
#  a. a partition cuts the server off alone (it still reaches the LUN): it
#     loses quorum and stops serving, the majority elects a new server and
#     the workload goes on; after heal the old server rejoins as a client
#     (its status: it does not serve, it names the new server) and reads
#     what changed meanwhile;
#  b. the dead server's cxfsd is started again while the survivors are
#     mounted and working: no stale cache (a file it had read, rewritten on
#     a survivor after the kill, reads the new bytes there; a chmod and a
#     rename done meanwhile show), nothing lost;
#  c. a second failure during recovery: the server is killed, and the node
#     elected in its place (the first survivor of the server order) is
#     stopped (SIGSTOP) the moment it logs that it starts reconstructing
#     ("recovery N: reconstruct: ...") and killed; recovery starts again,
#     elects the next node and completes;
#  d. kill -9 in the middle of a relocation (`cxfsctl relocate` in the
#     background), stopped at the moment the target logs that it serves
#     (before the relocation has opened on every node): of the source, then
#     of the target; exactly one server afterwards.
#  e. the new server's own unwritten runs: a survivor appends to a log,
#     the node that will serve next appends a record reaching into a
#     preallocated block and keeps the file open (its run not yet
#     published), the server is killed (e1) or relocated to that node (e2),
#     and the first survivor appends again with the map it cached before:
#     every record reads back whole on every node (a map cached before
#     the change may show the block unwritten: an append there would zero
#     the other record's tail); files that node wrote and keeps open after
#     their unlink read whole.
#  f. a token return on its way when the server dies: the node that will
#     serve next holds a log open with a record only it knows the end of;
#     its packets to the server are dropped (nftables in its namespace),
#     another node appends (the server recalls the first node's tokens:
#     that return never arrives), and the server is killed: the record is
#     not overwritten (the elected node's return kept its size for the
#     store, and the survivors' returns still on their way count as held):
#     f1 with the node elected next holding the log, f2 with a survivor
#     that is not elected.
#
# The killed nodes are started again after each part and rejoin as clients.
# At the end every node unmounts and cxfs-check finds the LUN clean.
# CXFS_RECOVER_PARTS="b c" runs only those parts.
#
# Passes with main 5e1e4fa (about 40 s).  What it caught on the way: a
# server cut off that kept saying it served and was kept after heal in
# place of the new one (two servers, its store read-only), a store damaged
# after a partition ("database disk image is malformed": no node could
# serve the next failure), and the lost acknowledged metadata of
# t_recover_kill.sh in parts a and c; part f, a record overwritten by the
# next append (the size a token return carried was lost when its server
# died: given back to the node's own new token server, or not reported by
# a survivor whose return was still on its way), which t_recover_kill.sh
# showed about once in 25 rounds as a torn or missing O_APPEND record and
# an unlinked open file reading 0 bytes.
. "$(dirname "$0")/lib_recover.sh"
it_init recover_more --need-tgtd

N=5
cluster_up_netns $N || { fail "a $N-node cluster in network namespaces starts"; it_finish; }
mkdir -p "$(node_mnt 1)/more"
check_eq "node1 serves at the start" "1" "$(serving_nodes)"
sampler_start all

# serves_not I SERVER: node I is a member with quorum, does not serve, and
# names node SERVER as the server.
serves_not() {
	[[ "$(cl_stat "$1" '"%s %s %s" % (c["membership"]["quorum"], c["is_server"], c["server"])' 2>/dev/null)" == \
		"True False node$2" ]]
}

# stopped_serving I: node I has no quorum and does not serve.
stopped_serving() {
	[[ "$(cl_stat "$1" '"%s %s" % (c["membership"]["quorum"], c["is_server"])' 2>/dev/null)" == "False False" ]]
}

# rejoin I SERVER: start node I again; one check that it rejoined as a client.
rejoin() {
	if cluster_restart "$1" && wait_until 15 serves_not "$1" "$2"; then
		pass "node$1 rejoined as a client of node$2"
	else
		fail "node$1 did not rejoin as a client of node$2: $(cl_stat "$1" 'c["membership"]["quorum"], c["is_server"], c["server"]' 2>&1)"
	fi
}

# new_server PART OLD NODE...: wait (30 s) until one of NODE... serves in
# place of OLD, and set n to it; on failure one failed check and the dump.
new_server() {
	local part=$1 old=$2
	shift 2
	if n=$(wait_new_server "$old" 30 "$@" 2>"$T_TMP/wait.err"); then
		return 0
	fi
	fail "$part: no single new server among nodes $* 30 s after node$old went: $(cat "$T_TMP/wait.err")"
	watchdog_dump "$part: no new server"
	return 1
}

# go_on PART: the next part needs exactly one server; without one the test
# ends here (what follows would only fail for the same reason).
go_on() {
	local s
	s=$(serving_nodes)
	[[ "$s" =~ ^[0-9]+$ ]] && return 0
	bail "after part $1 the cluster has not exactly one server ('$s')"
}

part_a() {
	log "a: a partition cuts the server off alone"
	s=$(serving_nodes)
	read -ra rest <<<"$(but "$s")"
	load_start a more/a "${rest[0]}" "${rest[1]}"
	sleep 1
	cluster_partition "$s" || fail "a: local-cluster partition $s"
	if new_server a "$s" "${rest[@]}"; then
		pass "a: node$n serves in place of node$s, which is cut off"
		if wait_until 10 stopped_serving "$s"; then
			pass "a: node$s has no quorum and does not serve"
		else
			fail "a: node$s, cut off: $(cl_stat "$s" 'c["membership"]["quorum"], c["is_server"]' 2>&1) (quorum, serves)"
		fi
		want="written on node${rest[2]} during the partition $RANDOM"
		bounded 30 bash -c 'echo "$1" >"$2"' _ "$want" "$(node_mnt "${rest[2]}")/more/a.part" ||
			fail "a: a write on node${rest[2]} during the partition"
		sleep 1
		load_stop a || true
		cluster_heal || fail "a: local-cluster heal"
		if wait_until 20 serves_not "$s" "$n"; then
			pass "a: after heal node$s is a member again, does not serve, names node$n"
		else
			fail "a: after heal node$s: $(cl_stat "$s" 'c["membership"]["quorum"], c["is_server"], c["server"]' 2>&1)"
		fi
		check_eq "a: node$s reads what was written during the partition" "$want" \
			"$(timeout 30 cat "$(node_mnt "$s")/more/a.part" 2>&1)"
		check_eq "a: one server: node$n" "$n" "$(serving_nodes)"
	else
		load_stop a || true
		cluster_heal || true
	fi

}

part_b() {
	log "b: the dead server comes back while the survivors work"
	s=$(serving_nodes)
	read -ra rest <<<"$(but "$s")"
	M=$(node_mnt "${rest[0]}")
	head -c 65536 /dev/urandom >"$T_TMP/old"
	head -c 65536 /dev/urandom >"$T_TMP/new"
	cp "$T_TMP/old" "$M/more/b.f"
	echo "g" >"$M/more/b.g"
	check_eq "b: node$s (the server) reads b.f before it dies" "$(sum_of "$T_TMP/old")" \
		"$(sha256sum <"$(node_mnt "$s")/more/b.f" | cut -d' ' -f1)"
	cat "$(node_mnt "$s")/more/b.g" >/dev/null
	load_start b more/b "${rest[0]}" "${rest[1]}"
	sleep 1
	cluster_kill "$s" || fail "b: kill node$s"
	if new_server b "$s" "${rest[@]}"; then
		pass "b: node$n serves after node$s was killed"
		bounded 30 cp "$T_TMP/new" "$(node_mnt "${rest[2]}")/more/b.f" || fail "b: rewrite b.f on node${rest[2]}"
		bounded 30 chmod 600 "$(node_mnt "${rest[2]}")/more/b.f" || fail "b: chmod b.f on node${rest[2]}"
		bounded 30 mv "$(node_mnt "${rest[3]}")/more/b.g" "$(node_mnt "${rest[3]}")/more/b.h" ||
			fail "b: rename b.g on node${rest[3]}"
		rejoin "$s" "$n"
		Ms=$(node_mnt "$s")
		check_eq "b: node$s, restarted, reads the new bytes of b.f" "$(sum_of "$T_TMP/new")" \
			"$(timeout 30 sha256sum <"$Ms/more/b.f" | cut -d' ' -f1)"
		check_eq "b: and its new mode" 600 "$(timeout 30 stat -c %a "$Ms/more/b.f" 2>&1)"
		check_eq "b: and the rename" "absent g" \
			"$(timeout 30 bash -c '[[ -e $1/more/b.g ]] && echo -n "present " || echo -n "absent "; cat $1/more/b.h' _ "$Ms" 2>&1)"
		sleep 1
		load_stop b || true
		check_eq "b: one server: node$n" "$n" "$(serving_nodes)"
	else
		load_stop b || true
	fi

}

part_c() {
	log "c: a second failure while the new server reconstructs"
	s=$(serving_nodes)
	read -ra rest <<<"$(but "$s")"
	e=$(first_in_order "${rest[@]}")
	# shellcheck disable=SC2046
	f=$(first_in_order $(but "$s" "$e"))
	read -ra loadn <<<"$(but "$s" "$e" "$f")"
	log "c: node$s serves; node$e should take over, then node$f; the workload runs on ${loadn[*]}"
	catch_start c 30 "recovery reconstruct" "${rest[@]}"
	load_start c more/c "${loadn[@]}"
	sleep 1
	cluster_kill "$s" || fail "c: kill node$s"
	if catch_wait c; then
		x=${CAUGHT%% *}
		log "c: node$x stopped at: ${CAUGHT#* }"
		check_eq "c: the node that reconstructs first is the first survivor of the server order" "$e" "$x"
		cluster_kill "$x" || fail "c: kill node$x"
		read -ra live <<<"$(but "$s" "$x")"
		if new_server c "$x" "${live[@]}"; then
			pass "c: node$n serves after node$s and then node$x died"
			check "c: node$n reconstructed too (its log)" grep -qi 'recovery.*reconstruct\|reconstruct.*recovery' \
				"$(node_log "$n")"
			sleep 1
			load_stop c || true
			rejoin "$s" "$n"
			rejoin "$x" "$n"
			check_eq "c: one server: node$n" "$n" "$(serving_nodes)"
		else
			load_stop c || true
		fi
	else
		fail "c: no survivor logged a line with 'recovery' and 'reconstruct' within 30 s of the kill: $(cat "$T_TMP/catch.c")"
		watchdog_dump "c: no reconstruction"
		load_stop c || true
	fi

}

# relocate_kill PART WHO: kill -9 of WHO (source or target) in the middle of
# a relocation to the next node of the order.
relocate_kill() {
	local part=$1 who=$2 s t v live
	s=$(serving_nodes)
	# shellcheck disable=SC2046
	t=$(next_in_order "$s" $(but "$s"))
	if [[ $who == source ]]; then v=$s; else v=$t; fi
	read -ra live <<<"$(but "$v")"
	log "$part: node$s relocates to node$t; node$v ($who) dies once node$t serves"
	catch_start "$part" 30 "relocation this node serves" --stop-node "$v" "$t"
	# shellcheck disable=SC2046
	load_start "$part" "more/$part" $(but "$s" "$t" | cut -d' ' -f1,2)
	sleep 1
	"$CXFSCTL" --socket "$(node_sock "$s")" relocate shared "node$t" >"$T_TMP/reloc.$part" 2>&1 &
	local rpid=$!
	defer "kill_pid $rpid 1"
	if catch_wait "$part"; then
		cluster_kill "$v" || fail "$part: kill node$v"
		pass "$part: node$v ($who) stopped and killed as node$t logged: ${CAUGHT#* }"
	else
		fail "$part: node$t did not log that it serves: $(cat "$T_TMP/catch.$part")"
		cluster_kill "$v" || true
	fi
	wait_until 60 eval '! kill -0 '"$rpid"' 2>/dev/null' || echo "cxfsctl relocate still runs after 60 s"
	log "$part: cxfsctl relocate said: $(head -c 300 "$T_TMP/reloc.$part")"
	if new_server "$part" "$v" "${live[@]}"; then
		pass "$part: exactly one server afterwards: node$n"
		sleep 1
		load_stop "$part" || true
		rejoin "$v" "$n"
	else
		load_stop "$part" || true
	fi
}
part_d() {
	log "d: kill -9 in the middle of a relocation"
	relocate_kill d1 source
	go_on d1
	relocate_kill d2 target
}

# records_begin PART NODE: the three records of part PART's log
# more/PART.log (R1, R2 of 4200 bytes, R3), and R1 appended on NODE.
records_begin() {
	R1="o1 $(printf 'a%.0s' {1..96})"
	R2="e2 $(head -c 4196 /dev/zero | tr '\0' b)"
	R3="o3 $(printf 'c%.0s' {1..96})"
	bounded 30 bash -c 'echo "$1" >>"$2"' _ "$R1" "$(node_mnt "$2")/more/$1.log" || fail "$1: node$2 appends"
}

# records_whole PART NODE...: each NODE reads the three records whole.
records_whole() {
	local part=$1 want i
	shift
	want=$(printf '%s\n%s\n%s\n' "$R1" "$R2" "$R3" | sha256sum | cut -d' ' -f1)
	for i in "$@"; do
		check_eq "$part: node$i reads the three records whole" "$want" \
			"$(timeout 30 sha256sum <"$(node_mnt "$i")/more/$part.log" | cut -d' ' -f1)"
	done
}

# own_runs PART HOW: part e, the server goes by HOW (kill or relocate).
own_runs() {
	local part=$1 how=$2 s e o f hpid
	s=$(serving_nodes)
	# shellcheck disable=SC2046
	e=$(first_in_order $(but "$s"))
	# shellcheck disable=SC2046
	o=$(first_in_order $(but "$s" "$e"))
	f=more/$part.log
	log "$part: node$o appends, node$e appends into a preallocated block and keeps $f open, node$s goes ($how)"
	records_begin "$part" "$o"
	# The holder also keeps two files it wrote open after their unlink
	# (one through itself, one through node$o): they read whole after.
	python3 -c '
import os, sys, time
log, rec, ready, go, u1, u2, u2o = sys.argv[1:8]
fd = os.open(log, os.O_WRONLY | os.O_APPEND)
os.write(fd, (rec + "\n").encode())
data = {u1: os.urandom(4096), u2: os.urandom(70000)}
fds = {}
for p, gone in ((u1, u1), (u2, u2o)):
    fds[p] = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fds[p], data[p])
    os.unlink(gone)
open(ready, "w").close()
for _ in range(1200):
    if os.path.exists(go):
        break
    time.sleep(0.05)
os.close(fd)
bad = [f"{p}: {len(got)} bytes read, {os.fstat(fds[p]).st_size} by fstat" for p in fds
       for got in [os.pread(fds[p], len(data[p]) + 1, 0)] if got != data[p]]
sys.exit("unlinked open files read wrong: " + "; ".join(bad) if bad else 0)' \
		"$(node_mnt "$e")/$f" "$R2" "$T_TMP/$part.ready" "$T_TMP/$part.go" \
		"$(node_mnt "$e")/$f.u1" "$(node_mnt "$e")/$f.u2" "$(node_mnt "$o")/$f.u2" &
	hpid=$!
	defer "kill_pid $hpid 1"
	wait_until 30 test -e "$T_TMP/$part.ready" || fail "$part: node$e appends and holds the file open"
	if [[ $how == kill ]]; then
		cluster_kill "$s" || fail "$part: kill node$s"
	else
		timeout 60 "$CXFSCTL" --socket "$(node_sock "$s")" relocate shared "node$e" >"$T_TMP/reloc.$part" 2>&1 ||
			fail "$part: relocate node$s -> node$e: $(head -c 300 "$T_TMP/reloc.$part")"
	fi
	if new_server "$part" "$s" $(but "$s"); then
		check_eq "$part: node$e serves" "$e" "$n"
		bounded 30 bash -c 'echo "$1" >>"$2"' _ "$R3" "$(node_mnt "$o")/$f" || fail "$part: node$o appends again"
		touch "$T_TMP/$part.go"
		wait "$hpid" || fail "$part: node$e's writer reads its unlinked open files whole (above)"
		# shellcheck disable=SC2046
		records_whole "$part" $(but $([[ $how == kill ]] && echo "$s"))
	fi
	touch "$T_TMP/$part.go"
	if [[ $how == kill ]]; then rejoin "$s" "$n"; fi
}
part_e() {
	log "e: the new server's own unwritten runs and a map cached before"
	own_runs e1 kill
	go_on e1
	own_runs e2 relocate
}

# return_lost PART WHO: part f; WHO (elected or survivor) is the node whose
# return is on its way: the node elected next, or a survivor that is not.
return_lost() {
	local part=$1 who=$2 s el h o f hpid apid
	s=$(serving_nodes)
	# shellcheck disable=SC2046
	el=$(first_in_order $(but "$s"))
	if [[ $who == elected ]]; then
		h=$el
	else
		# shellcheck disable=SC2046
		h=$(first_in_order $(but "$s" "$el"))
	fi
	# shellcheck disable=SC2046
	o=$(first_in_order $(but "$s" "$el" "$h"))
	f=more/$part.log
	log "$part: node$h ($who) holds $f open with its own end; its packets to node$s drop; node$o appends; node$s dies"
	records_begin "$part" "$o"
	python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
os.write(fd, (sys.argv[2] + "\n").encode())
open(sys.argv[3], "w").close()
for _ in range(1200):
    if os.path.exists(sys.argv[4]):
        break
    time.sleep(0.05)
os.close(fd)' "$(node_mnt "$h")/$f" "$R2" "$T_TMP/$part.ready" "$T_TMP/$part.go" &
	hpid=$!
	defer "kill_pid $hpid 1"
	wait_until 30 test -e "$T_TMP/$part.ready" || fail "$part: node$h appends and holds the file open"
	in_node "$h" nft -f - <<-EOF || fail "$part: drop node$h's packets to node$s"
		table inet cxfs_f {
			chain out {
				type filter hook output priority 0;
				ip daddr $(node_addr "$s") tcp dport $(node_port "$s") drop
			}
		}
	EOF
	defer "in_node $h nft delete table inet cxfs_f 2>/dev/null || true"
	bash -c 'echo "$1" >>"$2"' _ "$R3" "$(node_mnt "$o")/$f" &
	apid=$!
	defer "kill_pid $apid 1"
	sleep 1
	cluster_kill "$s" || fail "$part: kill node$s"
	# shellcheck disable=SC2046
	if new_server "$part" "$s" $(but "$s"); then
		check_eq "$part: node$el serves" "$el" "$n"
		wait_until 30 eval '! kill -0 '"$apid"' 2>/dev/null' || fail "$part: node$o's append ends"
		wait "$apid" || fail "$part: node$o's append succeeds"
		in_node "$h" nft delete table inet cxfs_f || fail "$part: the drop rule goes"
		touch "$T_TMP/$part.go"
		wait "$hpid" || fail "$part: node$h's writer ends well"
		# shellcheck disable=SC2046
		records_whole "$part" $(but "$s")
		rejoin "$s" "$n"
	fi
	touch "$T_TMP/$part.go"
}
part_f() {
	return_lost f1 elected
	go_on f1
	return_lost f2 survivor
}

# CXFS_RECOVER_PARTS: the parts to run, in order (default all).
for part in ${CXFS_RECOVER_PARTS:-a b c d e f}; do
	"part_$part"
	go_on "$part"
done

sampler_stop all "never two servers at once through the whole test"
cross_node_rw after-recoveries
cluster_stop_and_check
it_finish
