#!/usr/bin/env bash
# t_admin.sh: the admin socket and cxfsctl.  `cxfsctl status` names the
# filesystem, its volume and mount point; `--json` is one valid JSON object
# whose counters move with the I/O done through the mount; the socket is
# root-only; a second daemon on the same socket is refused before it touches
# its volume; nonsense requests get an error, not a crash.
. "$(dirname "$0")/lib.sh"
it_init admin

VOL=$T_TMP/vol.img
MNT=$T_TMP/mnt
CTL=$CXFS_BIN_DIR/cxfsctl

if ! mount_cxfs "$VOL" "$MNT" --size $((256 << 20)) --name admintest; then
	fail "mount"
	it_finish
fi
SOCK=${CXFSD_SOCK[$MNT]}
check_eq "the admin socket is root-only (0600)" 600 "$(stat -c %a "$SOCK")"

out=$("$CTL" --socket "$SOCK" status) || fail "cxfsctl status exits 0"
check "status names the filesystem" grep -q "admintest" <<<"$out"
check "status names the volume" grep -qF "$VOL" <<<"$out"
check "status names the mount point" grep -qF "$MNT" <<<"$out"

j1=$("$CTL" --socket "$SOCK" status --json)
rand_file "$MNT/data" $((4 << 20))
cat "$MNT/data" >/dev/null
sync
j2=$("$CTL" --socket "$SOCK" status --json)
check "status --json is one JSON object" python3 -c 'import json,sys; json.loads(sys.argv[1])' "$j2"
moved=$(python3 -c '
import json, sys
a = json.loads(sys.argv[1])["filesystems"][0]
b = json.loads(sys.argv[2])["filesystems"][0]
print(int(b["data"]["bytes_written"] - a["data"]["bytes_written"] >= 4 << 20 and
          b["device"]["writes"] > a["device"]["writes"] and
          b["store"]["ops"] > a["store"]["ops"]))' "$j1" "$j2")
check_eq "counters move with the I/O done through the mount" 1 "$moved"

if command -v setpriv >/dev/null; then
	check_fails "an unprivileged user cannot use the socket" \
		setpriv --reuid=65534 --regid=65534 --clear-groups "$CTL" --socket "$SOCK" status
fi

reply=$(python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"launch missiles\n")
print(s.recv(200).decode())' "$SOCK")
check "a nonsense request gets an error" grep -q "^error:" <<<"$reply"
check "the daemon still answers after it" "$CTL" --socket "$SOCK" status

timeout -s KILL 20 "$CXFSD" --admin-socket "$SOCK" --volume "$T_TMP/other.img" "$T_TMP/other" \
	>"$T_TMP/other.log" 2>&1 && rc=0 || rc=$?
check_eq "a second daemon on the same admin socket is refused (exit 1)" 1 "$rc"
check "... before creating its volume" test ! -e "$T_TMP/other.img"

umount_cxfs "$MNT"

# --daemon: the command returns once mounted, and the daemon it leaves
# still has its threads (the admin socket answers, I/O works).
DSOCK=$T_TMP/daemon.sock DMNT=$T_TMP/dmnt
mkdir -p "$DMNT"
timeout -s KILL 60 "$CXFSD" --daemon --admin-socket "$DSOCK" --volume "$T_TMP/d.img" \
	--size $((64 << 20)) "$DMNT" >"$T_TMP/daemon.log" 2>&1 && rc=0 || rc=$?
check_eq "--daemon returns 0 once mounted" 0 "$rc"
dpid=$(pgrep -f -- "--admin-socket $DSOCK" || true)
check "... one daemon runs, detached ($dpid)" test -n "$dpid" -a "${dpid//[0-9]/}" = ""
[[ -n "$dpid" && -z "${dpid//[0-9]/}" ]] && defer "_cleanup_mount '$DMNT' $dpid"
check "... and the mount is there" mountpoint -q "$DMNT"
check "... the detached daemon's admin socket answers" timeout 20 "$CTL" --socket "$DSOCK" status
check "... and I/O through it works" sh -c "echo hi >'$DMNT/f' && test \"\$(cat '$DMNT/f')\" = hi"
fusermount3 -u "$DMNT" || umount -l "$DMNT"
check "... and it exits at the unmount" wait_until 20 sh -c "! kill -0 ${dpid:-x} 2>/dev/null"
timeout -s KILL 60 "$CXFSD" --daemon --admin-socket "$DSOCK" --volume "$T_TMP/nodir/x.img" \
	"$T_TMP/nodir/mnt" >"$T_TMP/daemon2.log" 2>&1 && rc=0 || rc=$?
check_eq "--daemon that cannot mount returns 1" 1 "$rc"
check "... with its error on the terminal" grep -q "cxfsd:" "$T_TMP/daemon2.log"
check "the socket is removed at unmount" test ! -e "$SOCK"
check_fails "cxfsctl without a daemon exits non-zero" "$CTL" --socket "$SOCK" status
it_finish
