#!/usr/bin/env bash
# t_systemd.sh: the systemd units (scripts/systemd) as `cmake --install`
# writes them pass `systemd-analyze verify` (their binaries and man pages
# from a scratch prefix; systemd need not be running), say what an
# administrator expects of them (network order, restart, orderly leave), and
# the check is a real one: a broken copy of a unit fails it.
. "$(dirname "$0")/lib.sh"
it_init t_systemd

command -v systemd-analyze >/dev/null ||
	{ fail "systemd-analyze is missing (scripts/setup installs systemd)"; it_finish; }
BUILD=$(cd "$CXFS_BIN_DIR/.." && pwd)
PREFIX=$T_TMP/usr
cmake --install "$BUILD" --prefix "$PREFIX" >"$T_TMP/install.log"
UNITS=$PREFIX/lib/systemd/system

# verify UNIT...: systemd-analyze verify, which must succeed and say nothing
# (an unknown key is only a message).
verify() {
	local out
	out=$(MANPATH=$PREFIX/share/man systemd-analyze verify "$@" 2>&1) || { echo "$out"; return 1; }
	[[ -z "$out" ]] || { echo "$out"; return 1; }
}

for u in cxfsd.service cxfsd@.service cxfs-hsmd@.service; do
	check "$u is installed" test -s "$UNITS/$u"
	check "$u runs the installed binaries" grep -q "^ExecStart=$PREFIX/bin/" "$UNITS/$u"
	check "$u passes systemd-analyze verify" verify "$UNITS/$u"
done
u=$UNITS/cxfsd@.service
check "cxfsd@ starts after the network" grep -q '^After=network-online.target' "$u"
check "cxfsd@ restarts on failure" grep -q '^Restart=on-failure' "$u"
check "cxfsd@ stops with cxfsctl leave" grep -q "^ExecStop=-$PREFIX/bin/cxfsctl .* leave$" "$u"
check "cxfsd@ has a bounded stop" grep -q '^TimeoutStopSec=[0-9]' "$u"
check "cxfs-hsmd@ is bound to cxfsd@ of its filesystem" \
	grep -q '^BindsTo=cxfsd@%i.service' "$UNITS/cxfs-hsmd@.service"

mkdir "$T_TMP/bad"
sed 's/^Restart=/Restrt=/' "$u" >"$T_TMP/bad/cxfsd@.service"
check_fails "a unit with a misspelt key fails the check" verify "$T_TMP/bad/cxfsd@.service"
sed "s|^ExecStart=$PREFIX/bin/cxfsd|ExecStart=$PREFIX/bin/nosuch|" "$u" >"$T_TMP/bad/cxfsd@.service"
check_fails "a unit whose binary is missing fails the check" verify "$T_TMP/bad/cxfsd@.service"

it_finish
