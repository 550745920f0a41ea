#!/usr/bin/env bash
# t_man.sh: the man pages built from docs/*.md (docs/CMakeLists.txt,
# scripts/md2man): one for each installed command and for cluster.conf(5),
# each renders through man(1) without a warning from groff or tbl, with a
# NAME line whatis can read, and the build's pages are those of the current
# markdown.
. "$(dirname "$0")/lib.sh"
it_init t_man

MAN_DIR=$(cd "$CXFS_BIN_DIR/.." && pwd)/man
command -v man >/dev/null || { fail "man is missing (scripts/setup installs man-db)"; it_finish; }

# lexgrog (man-db) parses the NAME section as mandb does for whatis.
whatis_line() { lexgrog "$1" >/dev/null; }

pages=(man8/cxfsd.8 man8/cxfsctl.8 man8/mkfs.cxfs.8 man8/cxfs-check.8 man8/cxfs-blkperf.8 man8/cxfs-volume.8
       man8/cxfs-hsmd.8 man1/cxfs-hsm.1 man8/mount.cxfs.8 man5/cluster.conf.5)
for p in "${pages[@]}"; do
	f=$MAN_DIR/$p
	name=$(basename "$p" | sed 's/\.[0-9]$//')
	if [[ ! -s "$f" ]]; then
		fail "$p was not built"
		continue
	fi
	# man-db runs preconv, tbl and groff; --warnings turns on groff's.
	warn=$(MANWIDTH=80 MANPAGER=cat man --warnings -l "$f" 2>&1 >/dev/null)
	check_eq "$p renders without warnings" "" "$warn"
	text=$(MANWIDTH=80 MANPAGER=cat man -l "$f" 2>/dev/null)
	check "$p has a NAME line" grep -q "^       $name - " <<<"$text"
	check "$p has a SYNOPSIS" grep -q "^SYNOPSIS" <<<"$text"
	check "$p gives whatis/apropos its line" whatis_line "$f"
	# The page is made from the markdown as it is now.
	sh "$CXFS_SOURCE_DIR/scripts/md2man" x "$CXFS_SOURCE_DIR/docs/$name.md" "$T_TMP/page"
	check "$p is up to date with docs/$name.md" \
		cmp -s <(grep -v '^\.TH' "$f") <(grep -v '^\.TH' "$T_TMP/page")
done

# A first line that does not name the page is refused, not rendered badly.
printf '# Some title\n\ntext\n' >"$T_TMP/bad.md"
check_fails "md2man refuses a page without 'PAGE(SECTION) — what'" \
	sh "$CXFS_SOURCE_DIR/scripts/md2man" x "$T_TMP/bad.md" "$T_TMP/bad.8" 2>/dev/null

it_finish
