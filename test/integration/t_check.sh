#!/usr/bin/env bash
# t_check.sh: cxfs-check finds damage below the superblock.  A healthy volume
# with files, directories, links and data is clean; then, on copies of it,
# garbage over pages of the metadata database, and zeros over the free-space
# map's region of the database, must each be reported (exit 1, a message),
# never crash the checker, and never be mounted silently as if all were well.
. "$(dirname "$0")/lib.sh"
it_init check

VOL=$T_TMP/vol.img
MNT=$T_TMP/mnt

if ! mount_cxfs "$VOL" "$MNT" --size $((512 << 20)); then
	fail "mount a new volume"
	it_finish
fi
mkdir -p "$MNT/a/b" "$MNT/c"
for i in $(seq 1 300); do echo "file $i" >"$MNT/a/f$i"; done
for i in $(seq 1 50); do ln "$MNT/a/f$i" "$MNT/c/l$i"; done
rand_file "$MNT/a/b/data" $((8 << 20))
ln -s ../a/f1 "$MNT/c/sym"
umount_cxfs "$MNT"
check "a healthy volume is clean" "$CHECK" "$VOL"

# The database region starts at the superblock's meta_db offset (1 MiB in a
# new layout) behind a 4 KiB region header; SQLite pages are 4 KiB.
DB=$((1 << 20))
damaged() {   # damaged NAME: a copy of the volume to damage
	cp --sparse=always "$VOL" "$T_TMP/$1.img"
	echo "$T_TMP/$1.img"
}

v=$(damaged pages)
# Pages 2..9 of the database: B-tree pages of the schema's tables.
head -c $((8 * 4096)) /dev/urandom | dd of="$v" bs=4096 seek=$(((DB + 4096) / 4096 + 1)) conv=notrunc status=none
out=$("$CHECK" "$v" 2>&1) && rc=0 || rc=$?
check_eq "garbage over database pages: cxfs-check exits 1" 1 "$rc"
check "garbage over database pages: a message names the damage" \
	grep -qiE "integrity|malformed|corrupt|damaged|cannot" <<<"$out"

v=$(damaged header)
# The database region's header (its durable size) zeroed.
dd if=/dev/zero of="$v" bs=4096 seek=$((DB / 4096)) count=1 conv=notrunc status=none
out=$("$CHECK" "$v" 2>&1) && rc=0 || rc=$?
check "a zeroed region header is reported, not ignored (exit $rc)" test "$rc" -ne 0
mkdir -p "$T_TMP/nomnt"
# A refusal exits at once; a daemon that mounted would still be running.
timeout -s KILL 20 "$CXFSD" --admin-socket "$T_TMP/refuse.sock" --volume "$v" "$T_TMP/nomnt" >"$T_TMP/refuse.log" 2>&1 && rc=0 || rc=$?
mountpoint -q "$T_TMP/nomnt" && fusermount3 -uz "$T_TMP/nomnt"
check_eq "cxfsd refuses a volume whose metadata region header is zeroed (exit 1)" 1 "$rc"
check "the refusal says what is wrong" grep -qiE "metadata|region|superblock" "$T_TMP/refuse.log"
sed 's/^/  cxfsd: /' "$T_TMP/refuse.log"

check "the original volume is still clean" "$CHECK" "$VOL"
it_finish
