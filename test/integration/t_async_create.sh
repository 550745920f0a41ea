#!/usr/bin/env bash
# t_async_create.sh: asynchronous creates (docs/ARCHITECTURE.md,
# "Asynchronous creates") through the mounts of a 3-node cluster whose nodes
# are hosts of their own (network namespaces; node1 serves the metadata).
#
#  1. made on the client: node2 alone creates 600 files in a directory
#     (O_CREAT|O_EXCL, a line of its own name, close); each was made by
#     node2 itself (cluster.async_creates.made rises by 600, nothing
#     failed), and right after the last one node3 and node1 list the 600
#     and read each one right (the recall of the directory's NAME sends
#     node2's queue first);
#  2. the server dies: node2 creates 400 more in another directory, the
#     server is killed (-9) at once, with creates still queued or not yet
#     durable; once a survivor serves, every one of the 400 is there, read
#     right from node3 and node2;
#  2 kills the server at a random point (0-150 ms) of the creates, which
#     go on without an error;
#  3. the client dies after an fsync of the directory: node2 (a client
#     again) creates 300 files and fsyncs the directory, then is killed;
#     node3 lists the 300 (once the membership let node2 go); then again at
#     a random point (0-1.2 s after the first acknowledgement) of a stream
#     of creates (each file fsynced, the directory every 25): every file
#     the last fsync of the directory acknowledged is there with its
#     content;
#  4. an exclusive create of a name that exists fails (EEXIST) on the client
#     that made it and on another node;
#  every node unmounts and cxfs-check finds the LUN clean.
. "$(dirname "$0")/lib_recover.sh"
it_init async_create --need-tgtd

cluster_up_netns 3 || { fail "a 3-node cluster in network namespaces starts"; it_finish; }
for d in a b c; do mkdir "$(node_mnt 1)/$d"; done

made() { cl_stat "$1" 'c["async_creates"]["made"]'; }
failed() { cl_stat "$1" 'c["async_creates"]["failed"]'; }

# create MNT DIR N [fsync]: N files DIR/fNNNNN holding their own name.
create() {
	timeout -k 5 120 python3 - "$@" <<'EOF'
import os, sys
mnt, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    p = os.path.join(mnt, d, "f%05d" % i)
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, (p[len(mnt):] + "\n").encode())
    os.close(fd)
if len(sys.argv) > 4:
    fd = os.open(os.path.join(mnt, d), os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
EOF
}

# verify MNT DIR N: "ok" if DIR holds exactly f00000.. of N, each its own name.
verify() {
	timeout -k 5 120 python3 - "$@" <<'EOF'
import os, sys
mnt, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
want = {"f%05d" % i for i in range(n)}
got = set(os.listdir(os.path.join(mnt, d)))
bad = []
for name in sorted(want & got):
    with open(os.path.join(mnt, d, name)) as f:
        if f.read() != "/%s/%s\n" % (d, name):
            bad.append(name)
if want == got and not bad:
    print("ok")
else:
    print("missing %d %s, unexpected %d %s, wrong %d %s" % (
        len(want - got), sorted(want - got)[:5], len(got - want), sorted(got - want)[:5],
        len(bad), bad[:5]))
EOF
}

log "1: node2 creates 600 files itself; node3 and node1 see them at once"
m0=$(made 2)
create "$(node_mnt 2)" a 600 || fail "node2 creates 600 files in a"
check_eq "node2 made the 600 itself (async_creates.made)" 600 "$(($(made 2) - m0))"
check_eq "node3 lists and reads the 600 right after" ok "$(verify "$(node_mnt 3)" a 600)"
check_eq "node1 (the server) lists and reads the 600" ok "$(verify "$(node_mnt 1)" a 600)"
check_eq "no create failed at the server" 0 "$(failed 2)"

log "2: the server dies while node2 creates 400 files (at a random point)"
create "$(node_mnt 2)" b 400 &
cpid=$!
delay=$((RANDOM % 150))
sleep "0.$(printf %03d $delay)"
cluster_kill 1 || fail "kill node1"
log "node1 killed ${delay} ms into the creates"
wait "$cpid" || fail "node2's 400 creates all succeed (a pause, no error)"
if n=$(wait_new_server 1 30 2 3); then
	log "node$n serves"
	check_eq "node3 lists and reads the 400 after the server's death" ok \
		"$(verify "$(node_mnt 3)" b 400)"
	check_eq "node2 lists and reads the 400 after the server's death" ok \
		"$(verify "$(node_mnt 2)" b 400)"
else
	bail "no single survivor serves 30 s after the kill of node1"
fi
cluster_restart 1 || bail "node1 does not come back"

log "3: a client dies after an fsync of the directory"
s=$(serving_nodes)
c=2
[[ $s == 2 ]] && c=3
o=1
m0=$(made "$c")
create "$(node_mnt "$c")" c 300 fsync || fail "node$c creates 300 files in c and fsyncs c"
(($(made "$c") > m0)) || fail "node$c made creates itself"
cluster_kill "$c" || fail "kill node$c"
check_eq "node$o lists and reads the 300 after node$c's death" ok "$(verify "$(node_mnt "$o")" c 300)"
cluster_restart "$c" || bail "node$c does not come back"

log "3b: a client dies at a random point of creates, the directory fsynced every 25"
mkdir "$(node_mnt 1)/c2"
ack=$T_TMP/acked
: >"$ack"
timeout -k 5 120 python3 - "$(node_mnt "$c")" c2 1000 "$ack" 2>/dev/null <<'EOF' &
import os, sys
mnt, d, n, ack = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dfd = os.open(os.path.join(mnt, d), os.O_RDONLY | os.O_DIRECTORY)
for i in range(n):
    p = os.path.join(mnt, d, "f%05d" % i)
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, (p[len(mnt):] + "\n").encode())
    os.fsync(fd)
    os.close(fd)
    if i % 25 == 24:
        os.fsync(dfd)
        with open(ack, "w") as f:
            f.write("%d\n" % (i + 1))
EOF
cpid=$!
# The kill comes after the first acknowledgement, so the check below has files to find.
for ((i = 0; i < 300; i++)); do
	[[ -s $ack ]] && break
	sleep 0.1
done
delay=$((RANDOM % 1200))
sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
cluster_kill "$c" || fail "kill node$c"
wait "$cpid" 2>/dev/null || true
acked=$(cat "$ack")
acked=${acked:-0}
log "node$c killed ${delay} ms after the first acknowledgement, $acked acknowledged by an fsync of the directory"
check "node$c acknowledged creates before it was killed ($acked)" test "$acked" -ge 25
check_eq "node$o has every file acknowledged before node$c's death, each read right" ok \
	"$(timeout -k 5 120 python3 - "$(node_mnt "$o")" c2 "$acked" <<'EOF'
import os, sys
mnt, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = set(os.listdir(os.path.join(mnt, d)))
missing = ["f%05d" % i for i in range(n) if "f%05d" % i not in names]
wrong = []
for name in sorted(names):
    with open(os.path.join(mnt, d, name)) as f:
        got = f.read()
    # after the last acknowledgement a file may be there, its content too
    if got != "/%s/%s\n" % (d, name) and (name < "f%05d" % n or got != ""):
        wrong.append(name)
print("ok" if not missing and not wrong else "missing %s wrong %s" % (missing[:5], wrong[:5]))
EOF
)"
cluster_restart "$c" || bail "node$c does not come back"

log "5: creates race with removals of their directory from other nodes"
# A client (the one killed in 3, back) makes directories x0..x3 and creates
# a file in one after the other (its own creates), node1 (a client) removes
# them (rmdir) and the server's node renames another directory over them,
# for 5 s: a removal that wins finds the directory empty everywhere, one
# that loses fails with ENOTEMPTY, and no create the client answered fails
# at the server.
mkdir "$(node_mnt 1)/r"
race() {
	timeout -k 5 60 python3 - "$@" <<'EOF'
import errno, os, sys, time
role, mnt = sys.argv[1], sys.argv[2]
end, n = time.time() + 5, 0
while time.time() < end:
    for i in range(4):
        d = os.path.join(mnt, "r", "x%d" % i)
        try:
            if role == "create":
                try:
                    os.mkdir(d)
                except FileExistsError:
                    pass
                os.close(os.open(os.path.join(d, "f%d" % n), os.O_CREAT | os.O_WRONLY, 0o644))
            elif role == "rmdir":
                os.rmdir(d)
            elif os.path.isdir(os.path.join(mnt, "r", "y")):
                os.rename(os.path.join(mnt, "r", "y"), d)
            else:
                os.mkdir(os.path.join(mnt, "r", "y"))
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY):
                print("%s: unexpected %s" % (role, e))
        n += 1
EOF
}
f0=$(failed "$c")
out=$( (race create "$(node_mnt "$c")" & race rmdir "$(node_mnt 1)" &
	race rename "$(node_mnt "$s")" & wait) 2>&1)
check_eq "no call of the race failed otherwise than ENOENT, EEXIST or ENOTEMPTY" "" "$out"
check_eq "no create node$c answered failed at the server during the race" "$f0" "$(failed "$c")"

log "4: an exclusive create of an existing name fails everywhere"
for i in 2 3; do
	rc=0
	python3 -c 'import os, sys; os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY)' \
		"$(node_mnt "$i")/a/f00007" 2>/dev/null || rc=$?
	check_eq "O_EXCL over a/f00007 on node$i fails" 1 "$rc"
done

cluster_stop_and_check
it_finish
