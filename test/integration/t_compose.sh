#!/usr/bin/env bash
# t_compose.sh: the docker-compose test cluster (scripts/compose-cluster,
# deploy/compose, docs/compose.md), end to end:
#
#  - build: the base image cxfs-base:bookworm (debootstrap + docker import;
#    reused when it exists: the test says which, and how long it took) and
#    the image cxfs:compose with this tree's binaries;
#  - up --dmapi: tgtd and three cxfsd nodes in containers, all mounted,
#    each with a cxfs-hsmd beside it;
#  - a file written on node2 reads the same on node1 and node3 (docker exec);
#    released to the HSM tier by node2, it reads whole on node3 (recalled);
#  - docker kill of the node that serves the metadata: a survivor serves,
#    the dead node is fenced on the LUN (SCSI-3 persistent reservations,
#    through tgtd), a write on one survivor reads on the other, and the
#    HSM daemon of the new server releases and recalls;
#  - docker start of the killed node: it mounts again, sees every file, and
#    cxfsctl status shows it up on every node;
#  - down: no container, network or volume of the project is left, the
#    images are kept, the Docker daemon is stopped if the test started it,
#    and the host's firewall rules (iptables-save, nft list ruleset),
#    forwarding (ip_forward), links and routes are as they were.
#
# Each phase prints how long it took.  Exits 77 (a ctest SKIP,
# test/CMakeLists.txt) and says why on stdout when Docker cannot run here:
# not root, Debian's docker.io, docker-compose or debootstrap missing (run
# scripts/setup), a daemon that does not start, or a base image that cannot
# be built (no Debian mirror reachable); when the binaries are a sanitizer
# build; and when a compose cluster is already up, which it leaves alone.
#
# Takes 20 to 40 s when the base image exists; building the base adds 1.5
# to 2.5 minutes (debootstrap from Debian's archive, on 2 busy CPUs: 89 s
# and 139 s measured).
. "$(dirname "$0")/lib.sh"

CC=$CXFS_SOURCE_DIR/scripts/compose-cluster
DOCKER=/usr/bin/docker
NODES=(1 2 3)
PH=()   # "phase seconds" lines of the summary

# skip_77 REASON: ctest's SKIP (SKIP_RETURN_CODE 77), the reason on stdout.
skip_77() {
	echo "SKIP t_compose: $*"
	T_DONE=1
	exit 77
}

phase() { PH+=("$(printf '%-26s %5s s' "$1" "$2")"); log "phase $1: $2 s"; }

# Preconditions, before it_init (which would skip with exit 0).
[[ $(id -u) == 0 ]] || skip_77 "needs root (the Docker daemon)"
for b in /usr/bin/docker /usr/bin/docker-compose /usr/sbin/dockerd /usr/sbin/debootstrap; do
	[[ -x "$b" ]] || skip_77 "$b is missing (Debian's docker.io, docker-compose, debootstrap: run scripts/setup)"
done
[[ -c /dev/fuse ]] || skip_77 "needs /dev/fuse to pass to the containers"
# The image has no sanitizer runtimes (scripts/test --asan or --tsan).
if ldd "$CXFS_BIN_DIR/cxfsd" 2>/dev/null | grep -q 'lib[atu]san'; then
	skip_77 "$CXFS_BIN_DIR holds a sanitizer build; the cluster's image has no sanitizer runtime"
fi

it_init compose

# The host as it is before: firewall, forwarding, links, routes (iptables-save
# without its dated comments and packet counters).
host_state() {
	echo "== iptables-save"
	iptables-save 2>/dev/null | { grep -v '^#' || true; } | sed 's/\[[0-9]*:[0-9]*\]//'
	echo "== nft list ruleset"
	nft list ruleset 2>/dev/null || true
	echo "== ip_forward $(cat /proc/sys/net/ipv4/ip_forward)"
	echo "== forwarding $(cat /proc/sys/net/ipv4/conf/all/forwarding 2>/dev/null)"
	echo "== bridge-nf $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)"
	# Only Docker's kind of links and routes: other tests on this machine
	# may add their own meanwhile.
	echo "== links"
	ip -o link show | awk -F': ' '{ print $2 }' | sed 's/@.*//' | { grep -E '^(docker|br-|veth)' || true; } | sort
	echo "== routes"
	ip route show | { grep -E 'docker|br-|172\.30\.15\.' || true; } | sort
}
host_state >"$T_TMP/host.before"
DOCKERD_BEFORE=0
"$DOCKER" info >/dev/null 2>&1 && DOCKERD_BEFORE=1
# Someone's compose cluster (scripts/compose-cluster up) is left alone.
if ((DOCKERD_BEFORE)) &&
	[[ -n "$("$DOCKER" ps -aq --filter label=com.docker.compose.project=cxfs 2>/dev/null)" ]]; then
	skip_77 "a compose cluster (project cxfs) is up on this machine: not touching it (scripts/compose-cluster down first)"
fi
log "a Docker daemon runs before the test: $((DOCKERD_BEFORE)) (if not, the test starts one and stops it)"
# Whatever happens, the cluster goes down (and the daemon the test started).
defer "'$CC' down >>'$T_TMP/down.log' 2>&1 || cat '$T_TMP/down.log'"

# ---- build -------------------------------------------------------------------
base_existed=0
"$DOCKER" image inspect cxfs-base:bookworm >/dev/null 2>&1 && base_existed=1
t0=$SECONDS
if ! out=$("$CC" build 2>&1); then
	echo "$out" | tail -n 25
	if grep -q 'dockerd did not start\|needs Debian' <<<"$out"; then
		skip_77 "Docker cannot run here: $(grep -m1 'dockerd did not start\|needs Debian' <<<"$out")"
	fi
	if grep -q 'debootstrap failed' <<<"$out"; then
		skip_77 "cannot build the base image (debootstrap from Debian's archive failed; no mirror reachable?)"
	fi
	fail "scripts/compose-cluster build"
	it_finish
fi
echo "$out"
if grep -q 'base image cxfs-base:bookworm built in' <<<"$out"; then
	phase "build (base built)" "$((SECONDS - t0))"
	log "the base image was built: $(grep -o 'built in [0-9]* s' <<<"$out" | head -1)"
else
	phase "build (base reused)" "$((SECONDS - t0))"
	((base_existed)) && log "the base image cxfs-base:bookworm existed and was reused"
fi
pass "images built"

# dq DOCKER-ARGS...: docker, its output dropped (for check).
dq() { "$DOCKER" "$@" >/dev/null 2>&1; }
dx() { timeout -k 5 60 "$DOCKER" exec "cxfs-node$1" "${@:2}"; }
# The field "server" (or known_up of node J, with ARG j) of node I's status.
status_of() {
	dx "$1" cxfsctl status --json 2>/dev/null | python3 -c '
import json, sys
c = json.load(sys.stdin)["cluster"]
if len(sys.argv) > 1:
    print(["down", "up"][any(n["name"] == sys.argv[1] and n["known_up"] for n in c["nodes"])])
else:
    print(c["server"])' ${2:+"$2"} 2>/dev/null || true
}
mounted() { dx "$1" awk '$2 == "/mnt/shared" && $3 ~ /^fuse/ { f = 1 } END { exit !f }' /proc/mounts 2>/dev/null; }
hsmd_runs() { dx "$1" pgrep -x cxfs-hsmd >/dev/null; }

# ---- up --------------------------------------------------------------------------
t0=$SECONDS
if ! "$CC" up --dmapi >"$T_TMP/up.log" 2>&1; then
	cat "$T_TMP/up.log"
	fail "scripts/compose-cluster up"
	it_finish
fi
phase up "$((SECONDS - t0))"
pass "up: three nodes mounted"
# Each node's cxfs-hsmd starts once its cxfsd is mounted.
for i in "${NODES[@]}"; do
	check "node$i: a cxfs-hsmd runs beside cxfsd" wait_until 20 hsmd_runs "$i"
done

# ---- a file across the nodes --------------------------------------------------
t0=$SECONDS
rand_file "$T_TMP/a" 300000
want=$(sum_of "$T_TMP/a")
"$DOCKER" cp "$T_TMP/a" cxfs-node2:/tmp/a
check "node2 writes a file into /mnt/shared" dx 2 cp /tmp/a /mnt/shared/a
for i in 1 3; do
	check_eq "node$i reads node2's file" "$want" "$(dx "$i" sha256sum /mnt/shared/a | cut -d' ' -f1)"
done
phase "write and read" "$((SECONDS - t0))"

# hsm_cycle I J: node I migrates and releases /mnt/shared/a, node J sees it
# offline and reads it back whole (recalled by the working cxfs-hsmd).
hsm_cycle() {
	local i=$1 j=$2
	check "node$i: cxfs-hsm migrate, release" dx "$i" sh -c 'cxfs-hsm migrate /mnt/shared/a && cxfs-hsm release /mnt/shared/a'
	check_eq "node$j: cxfs-hsm ls says offline" offline "$(dx "$j" cxfs-hsm ls /mnt/shared/a | awk '{ print $1 }')"
	check_eq "node$j reads the released file (recalled)" "$want" "$(dx "$j" sha256sum /mnt/shared/a | cut -d' ' -f1)"
}
t0=$SECONDS
hsm_cycle 2 3
phase "HSM release and recall" "$((SECONDS - t0))"

# ---- kill the metadata server -----------------------------------------------
mds=$(status_of 1)
[[ "$mds" =~ ^node[1-3]$ ]] || { fail "node1 names the metadata server (got '$mds')"; it_finish; }
m=${mds#node}
surv=()
for i in "${NODES[@]}"; do [[ $i == "$m" ]] || surv+=("$i"); done
log "$mds serves the metadata: docker kill cxfs-$mds"
t0=$SECONDS
check "docker kill cxfs-$mds" dq kill "cxfs-$mds"
new=
new_server() {
	local a b
	a=$(status_of "${surv[0]}")
	b=$(status_of "${surv[1]}")
	[[ -n "$a" && "$a" == "$b" && "$a" != "$mds" ]] && new=$a
}
if wait_until 60 new_server; then
	pass "${#surv[@]} survivors name the same new server: $new"
else
	fail "no survivor serves 60 s after the kill of $mds"
	for i in "${surv[@]}"; do "$DOCKER" logs --tail 20 "cxfs-node$i" 2>&1; done
	it_finish
fi
phase "recovery (kill to new server)" "$((SECONDS - t0))"
t0=$SECONDS
# The log, not a pipe into grep -q (pipefail: docker logs would die of SIGPIPE).
fenced() {
	local l
	l=$("$DOCKER" logs "cxfs-$new" 2>&1)
	grep -q "fence node $mds" <<<"$l"
}
if wait_until 10 fenced; then
	pass "$new fenced $mds on the LUN (persistent reservations through tgtd)"
else
	fail "$new's log does not say it fenced $mds"
fi
check "node${surv[0]} writes after the recovery" dx "${surv[0]}" sh -c 'echo after-the-kill > /mnt/shared/b'
check_eq "node${surv[1]} reads it" "after-the-kill" "$(dx "${surv[1]}" cat /mnt/shared/b)"
check_eq "node${surv[1]} still reads node2's file" "$want" "$(dx "${surv[1]}" sha256sum /mnt/shared/a | cut -d' ' -f1)"
phase "survivors write and read" "$((SECONDS - t0))"
t0=$SECONDS
hsm_cycle "${surv[1]}" "${surv[0]}"
phase "HSM on the new server" "$((SECONDS - t0))"

# ---- the killed node rejoins ----------------------------------------------------
t0=$SECONDS
check "docker start cxfs-$mds" dq start "cxfs-$mds"
if wait_until 60 mounted "$m"; then
	pass "$mds mounts again"
else
	fail "$mds is not mounted 60 s after docker start"
	"$DOCKER" logs --tail 30 "cxfs-$mds" 2>&1
	it_finish
fi
phase "rejoin (start to mounted)" "$((SECONDS - t0))"
check_eq "$mds reads the file written before the kill" "$want" "$(dx "$m" sha256sum /mnt/shared/a | cut -d' ' -f1)"
check_eq "$mds reads the file written while it was down" "after-the-kill" "$(dx "$m" cat /mnt/shared/b)"
check_eq "$mds names the new server" "$new" "$(status_of "$m")"
check "$mds: its cxfs-hsmd runs again" wait_until 20 hsmd_runs "$m"
for i in "${NODES[@]}"; do
	check_eq "node$i's cxfsctl status shows $mds up" up "$(status_of "$i" "$mds")"
done
dx "$m" cxfsctl status | sed -n '1,3p;/membership/,/fencing/p'

# ---- down: nothing left behind -------------------------------------------------
t0=$SECONDS
if "$CC" down >"$T_TMP/down.log" 2>&1; then
	pass "scripts/compose-cluster down"
else
	fail "scripts/compose-cluster down"
	cat "$T_TMP/down.log"
fi
phase down "$((SECONDS - t0))"
grep -E 'removed \(|stopped \(' "$T_TMP/down.log" || true
if dq info; then
	check_eq "a daemon that ran before the test still runs" 1 "$DOCKERD_BEFORE"
	left=$("$DOCKER" ps -aq --filter label=com.docker.compose.project=cxfs)
	check_eq "no container of the project left" "" "$left"
	left=$("$DOCKER" network ls -q --filter label=com.docker.compose.project=cxfs)
	check_eq "no network of the project left" "" "$left"
	left=$("$DOCKER" volume ls -q --filter label=com.docker.compose.project=cxfs)
	check_eq "no volume of the project left" "" "$left"
	check "the images are kept" dq image inspect cxfs-base:bookworm cxfs:compose
else
	pass "the Docker daemon scripts/compose-cluster started is stopped"
	check_fails "its runtime directory is gone" test -e /var/run/docker
	check_fails "nothing of it is mounted" grep -q ' /var/lib/docker\| /var/run/docker\| /run/docker' /proc/self/mountinfo
	# Its containers, networks and volumes would be in its state directory.
	check_eq "no container left" "" "$(ls /var/lib/docker/containers 2>/dev/null)"
	check_eq "no volume left" "" "$(ls /var/lib/docker/volumes 2>/dev/null | grep -v '^metadata.db$\|^backingFsBlockDev$' || true)"
fi
check_fails "no veth or bridge of the cluster left" grep -q 'veth\|^br-' <(ip -o link show | awk -F': ' '{ print $2 }')
host_state >"$T_TMP/host.after"
if diff -u "$T_TMP/host.before" "$T_TMP/host.after"; then
	pass "the host's firewall rules, forwarding, links and routes are as they were"
else
	fail "the host's network settings changed (diff above)"
fi

echo "phases:"
printf '  %s\n' "${PH[@]}"
it_finish
