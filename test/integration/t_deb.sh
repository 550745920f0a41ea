#!/usr/bin/env bash
# t_deb.sh: the Debian package (scripts/deb/cpack.cmake): cpack builds it
# from the build tree; it holds only /usr and /etc, depends on fuse3
# and the libraries dpkg-shlibdeps found; `dpkg -i` installs it on this
# machine, where /usr/bin/cxfsd --help, `man cxfsd`, /sbin/mount.cxfs and
# the units work; `dpkg --purge` removes it and leaves nothing (a trap
# purges it whatever happens).  Skips when a cxfs package is already
# installed here: the test never touches one it did not install.
. "$(dirname "$0")/lib.sh"
it_init t_deb

for c in cpack dpkg dpkg-deb dpkg-shlibdeps man; do
	command -v "$c" >/dev/null || { fail "$c is missing (scripts/setup)"; it_finish; }
done
if dpkg-query -W -f='${Status}' cxfs 2>/dev/null | grep -q installed; then
	skip_all "a cxfs package is installed on this machine; not touching it"
fi
BUILD=$(cd "$CXFS_BIN_DIR/.." && pwd)

cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$T_TMP/pkg" >"$T_TMP/cpack.log" 2>&1 ||
	{ cat "$T_TMP/cpack.log"; fail "cpack -G DEB"; it_finish; }
deb=$(ls "$T_TMP"/pkg/cxfs_*.deb)
pass "cpack built $(basename "$deb")"

dpkg-deb -c "$deb" | awk '{ print $6 }' >"$T_TMP/contents"
check_eq "the package holds only /usr, /etc/cxfs and its logrotate file" "" \
	"$(grep -v -e '^\./$' -e '^\./usr/' -e '^\./etc/$' -e '^\./etc/cxfs/' \
		-e '^\./etc/logrotate\.d/$' -e '^\./etc/logrotate\.d/cxfs$' "$T_TMP/contents")"
for f in usr/bin/cxfsd usr/bin/cxfsctl usr/bin/mkfs.cxfs usr/bin/cxfs-check usr/bin/cxfs-volume \
	usr/bin/cxfs-hsmd usr/share/man/man8/cxfs-volume.8 \
	usr/bin/cxfs-hsm usr/sbin/mount.cxfs usr/lib/systemd/system/cxfsd@.service \
	usr/share/man/man8/cxfsd.8 usr/share/man/man5/cluster.conf.5 etc/cxfs/cluster.conf.example; do
	check "the package holds /$f" grep -qx "\./$f" "$T_TMP/contents"
done
depends=$(dpkg-deb -f "$deb" Depends)
check "it depends on fuse3" grep -q '\bfuse3\b' <<<"$depends"
check "it depends on the shared libraries (dpkg-shlibdeps)" grep -q 'libfuse3-3 .*libuv1' <<<"$depends"
check_eq "the files in /etc are conffiles" "/etc/cxfs/cluster.conf.example /etc/logrotate.d/cxfs" \
	"$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | xargs)"

# dpkg fails at once while another dpkg or apt runs: try for a while.
dpkg_retry() {
	local i
	for ((i = 0; i < 60; i++)); do
		dpkg "$@" >>"$T_TMP/dpkg.log" 2>&1 && return 0
		grep -q 'lock' "$T_TMP/dpkg.log" || return 1
		sleep 1
	done
	return 1
}
defer "dpkg_retry --purge cxfs"
check "dpkg -i installs it" dpkg_retry -i "$deb"
check "/usr/bin/cxfsd --help" grep -q "^Usage: cxfsd" <(/usr/bin/cxfsd --help)
check "man cxfsd finds the installed page" \
	grep -q "cxfsd - the cxfs daemon" <(MANWIDTH=80 MANPAGER=cat man cxfsd 2>/dev/null)
check "mount(8) finds /sbin/mount.cxfs, which runs /usr/bin/cxfsd" \
	grep -q "/usr/bin/cxfsd --volume" <(/sbin/mount.cxfs /nonexistent.vol / -fv 2>&1)
check "the units run /usr/bin" grep -q '^ExecStart=/usr/bin/cxfsd ' /lib/systemd/system/cxfsd@.service

check "dpkg --purge removes it" dpkg_retry --purge cxfs
installed() { dpkg-query -W cxfs >/dev/null 2>&1; }
check_fails "the package is gone" installed
left=
while read -r f; do
	f=${f#.}
	[[ -n "$f" && "$f" != */ && -e "$f" ]] && left+=" $f"
done <"$T_TMP/contents"
check_eq "none of its files is left" "" "$left"
check_fails "/etc/cxfs went with it" test -e /etc/cxfs/cluster.conf.example

it_finish
