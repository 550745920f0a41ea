#!/usr/bin/env bash
# t_metafull.sh: a full METADATA region is a clean ENOSPC too.  On a 64 MiB
# volume (32 MiB of SQLite database) create files with long names until the
# database region fills: creation must stop with ENOSPC (never EIO, never a
# dead store), every file created stays listed, writes to existing files
# still work, deleting gives the room back, and cxfs-check passes.
. "$(dirname "$0")/lib.sh"
it_init metafull

VOL=$T_TMP/vol.img
MNT=$T_TMP/mnt
if ! mount_cxfs "$VOL" "$MNT" --size $((64 << 20)); then
	fail "mount a 64 MiB volume"
	it_finish
fi
mkdir "$MNT/d"
echo "before" >"$MNT/keep"
out=$(python3 - "$MNT/d" <<'PY'
import errno, os, sys
d = sys.argv[1]
n = 0
while n < 2_000_000:
    try:
        os.close(os.open(os.path.join(d, "a-long-name-to-fill-the-metadata-region-%08d" % n),
                         os.O_CREAT | os.O_WRONLY, 0o644))
    except OSError as e:
        print(n, errno.errorcode.get(e.errno, e.errno))
        break
    n += 1
PY
)
read -r created err <<<"$out"
log "created $created files, then $err"
check_eq "creation stops with ENOSPC" ENOSPC "$err"
check "many files fit first (got $created)" test "${created:-0}" -gt 50000
check_eq "every created file is listed" "$created" "$(ls "$MNT/d" | wc -l)"
check "an existing file can still be written" sh -c "echo after >>'$MNT/keep'"
check_eq "and read back" "before after" "$(tr '\n' ' ' <"$MNT/keep" | sed 's/ $//')"
check "deleting the files works" rm -rf "$MNT/d"
check "after deleting, creating works again" sh -c "echo again >'$MNT/new'"
umount_cxfs "$MNT"
check_eq "cxfsd exits 0" 0 "$CXFSD_STATUS"
check "cxfs-check passes" "$CHECK" "$VOL"
it_finish
