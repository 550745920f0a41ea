#!/usr/bin/env bash
# t_fstab.sh: /etc/fstab-style mounts through mount(8) and the helper
# mount.cxfs (docs/mount.cxfs.md), with a real `mount -a -T FSTAB`,
# `mount -T FSTAB DIR` and `umount DIR`: a single-machine file volume and a
# one-node cluster on an iSCSI LUN.  Each is mounted, written, unmounted
# (its cxfsd must be gone), mounted again (the file is still there); a
# second `mount -a` changes nothing; a bad option and a volume cxfsd refuses
# fail the mount with a message and leave no daemon behind.
#
# mount(8) looks for helpers in /sbin only.  The test runs in a mount
# namespace of its own, where an overlay adds mount.cxfs to /sbin: nothing
# is installed on the machine, and its mounts are seen only by the test.
if [[ -z "${CXFS_FSTAB_NS:-}" ]]; then
	exec unshare --mount --propagation private env CXFS_FSTAB_NS=1 bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
it_init t_fstab --need-tgtd

sbin=$(readlink -f /sbin)
mkdir "$T_TMP/sbin"
ln -s "$CXFS_BIN_DIR/mount.cxfs" "$T_TMP/sbin/mount.cxfs"
mount -t overlay overlay -o "lowerdir=$T_TMP/sbin:$sbin" "$sbin" ||
	{ fail "cannot lay mount.cxfs over $sbin"; it_finish; }
defer "umount -l '$sbin'"

# The cxfsd serving admin socket $1 (the test gives each mount its own).
daemon_of() { pgrep -f -- "--admin-socket $1( |$)" || true; }
gone() { ! kill -0 "$1" 2>/dev/null; }
cxfs_mounts_on() { awk -v m="$1" '$5 == m && / - fuse\.cxfs /' /proc/self/mountinfo | wc -l; }

# fstab_round NAME FSTAB MNT SOCK: mount -a, write, umount, mount DIR, read.
fstab_round() {
	local name=$1 fstab=$2 mnt=$3 sock=$4 pid sum
	mkdir -p "$mnt"
	defer "force_umount '$mnt'"
	check "$name: mount -a -T fstab" mount -a -T "$fstab"
	check_eq "$name: mounted once" 1 "$(cxfs_mounts_on "$mnt")"
	pid=$(daemon_of "$sock")
	[[ -n "$pid" ]] && defer "kill_pid $pid"
	check "$name: a second mount -a changes nothing" mount -a -T "$fstab"
	check_eq "$name: still mounted once" 1 "$(cxfs_mounts_on "$mnt")"
	check_eq "$name: the same daemon" "$pid" "$(daemon_of "$sock")"
	rand_file "$T_TMP/data" 300000
	cp "$T_TMP/data" "$mnt/data" && sync "$mnt/data"
	sum=$(sum_of "$T_TMP/data")
	check "$name: umount" umount "$mnt"
	check "$name: the daemon exits after umount" wait_until 60 gone "$pid"
	check "$name: mount -T fstab DIR" mount -T "$fstab" "$mnt"
	check_eq "$name: the file is still there" "$sum" "$(sum_of "$mnt/data" 2>/dev/null)"
	pid=$(daemon_of "$sock")
	[[ -n "$pid" ]] && defer "kill_pid $pid"
	check "$name: umount again" umount "$mnt"
	check "$name: the daemon exits again" wait_until 60 gone "$pid"
}

# Single machine: SPEC is the volume, created by cxfsd on first mount.
cat >"$T_TMP/fstab.single" <<EOT
# a comment line, as fstab has
$T_TMP/vol  $T_TMP/mnt  cxfs  size=256M,admin-socket=$T_TMP/single.sock,log=$T_TMP/single.log,_netdev,nofail  0 0
EOT
fstab_round single "$T_TMP/fstab.single" "$T_TMP/mnt" "$T_TMP/single.sock"
check_volume "$T_TMP/vol"

# Errors: an option cxfs does not know, and a volume cxfsd refuses (not
# formatted); neither leaves a mount nor a daemon.
echo "$T_TMP/vol $T_TMP/mnt cxfs bogus=1 0 0" >"$T_TMP/fstab.bad"
out=$(mount -T "$T_TMP/fstab.bad" "$T_TMP/mnt" 2>&1) && fail "bogus=1 accepted" ||
	check "an unknown option is named" grep -q "unknown option 'bogus=1'" <<<"$out"
truncate -s 64M "$T_TMP/blank"
echo "$T_TMP/blank $T_TMP/mnt cxfs admin-socket=$T_TMP/blank.sock,log=$T_TMP/blank.log 0 0" \
	>"$T_TMP/fstab.blank"
out=$(mount -T "$T_TMP/fstab.blank" "$T_TMP/mnt" 2>&1) && fail "a blank volume mounted" ||
	check "a refused volume fails the mount, quoting cxfsd" grep -q "mkfs.cxfs" <<<"$out"
check_eq "no mount left" 0 "$(cxfs_mounts_on "$T_TMP/mnt")"
check_eq "no daemon left" "" "$(daemon_of "$T_TMP/blank.sock")"

# A one-node cluster: SPEC is the filesystem of cluster.conf.
start_tgtd "$T_TMP/lun.img" 512M >/dev/null
"$MKFS" --name shared "$TGT_URI" >/dev/null
head -c 64 /dev/urandom >"$T_TMP/cluster.key"
chmod 600 "$T_TMP/cluster.key"
for ((port = 17000 + $$ % 9000; port < 27000; port++)); do
	_tcp_port_free "$port" && break
done
cat >"$T_TMP/cluster.conf" <<EOT
cluster fstab
secret  cluster.key
node alpha
    address 127.0.0.1
    port    $port
    serve   yes
filesystem shared
    volume  $TGT_URI
    servers alpha
EOT
cat >"$T_TMP/fstab.cluster" <<EOT
shared  $T_TMP/shared  cxfs  config=$T_TMP/cluster.conf,node=alpha,admin-socket=$T_TMP/cl.sock,log=$T_TMP/cl.log,_netdev  0 0
EOT
fstab_round cluster "$T_TMP/fstab.cluster" "$T_TMP/shared" "$T_TMP/cl.sock"
((T_FAIL == 0)) || tail -n 20 "$T_TMP"/*.log

it_finish
