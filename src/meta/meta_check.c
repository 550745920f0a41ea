/*
 * meta_check.c - the consistency checker behind cxfs-check: the superblock,
 * SQLite's own integrity check, and the filesystem's invariants (extents
 * inside the data region, owned exactly once and marked used in the free
 * map, no used block without an owner, link counts, block counts and sizes,
 * directory entries naming live inodes).  It reads only; SQLite replays its
 * log on open, as a mount would.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "xvm/xvm.h"
#include "meta/meta_alloc.h"
#include "meta/meta_store.h"
#include "meta/meta_vfs.h"

struct chk {
	void (*report)(void *arg, const char *msg);
	void *arg;
	int problems;             /* problems reported so far */
};

static void problem(struct chk *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->report(c->arg, msg);
	c->problems++;
}

/*
 * Run @sql; every row is a problem, described by @fmt over its first three
 * integer columns.  Stops reporting after 100 rows of one kind.
 */
static void each_row(struct chk *c, sqlite3 *db, const char *sql, const char *fmt)
{
	sqlite3_stmt *q = NULL;
	int n = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
		problem(c, "metadata query failed (%s): %s", sqlite3_errmsg(db), sql);
		return;
	}
	while (sqlite3_step(q) == SQLITE_ROW) {
		if (++n > 100)
			continue;
		problem(c, fmt, (long long)sqlite3_column_int64(q, 0),
			(long long)sqlite3_column_int64(q, 1), (long long)sqlite3_column_int64(q, 2));
	}
	if (n > 100)
		problem(c, "... and %d more of the kind above", n - 100);
	sqlite3_finalize(q);
}

static void check_integrity(struct chk *c, sqlite3 *db)
{
	sqlite3_stmt *q = NULL;

	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) != SQLITE_OK) {
		problem(c, "SQLite integrity check cannot run: %s", sqlite3_errmsg(db));
		return;
	}
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(q, 0);

		if (r && strcmp(r, "ok") != 0)
			problem(c, "SQLite integrity: %s", r);
	}
	sqlite3_finalize(q);
}

/* Extents against the data region and the free map; used blocks against extents. */
static void check_space(struct chk *c, sqlite3 *db, const struct meta_sb *sb)
{
	uint64_t nblocks = sb->data.len / sb->block_size, owned = 0, prev_end = 0, prev_ino = 0;
	struct meta_alloc *a = NULL;
	sqlite3_stmt *q = NULL;
	uint64_t used = 0;

	if (meta_alloc_create(nblocks, &a)) {
		problem(c, "out of memory for the free map");
		return;
	}
	if (sqlite3_prepare_v2(db, "SELECT ag, bits FROM freemap", -1, &q, NULL) != SQLITE_OK)
		goto out_query;
	while (sqlite3_step(q) == SQLITE_ROW) {
		int64_t ag = sqlite3_column_int64(q, 0);

		if (ag < 0 || ag >= meta_alloc_ag_count(a) ||
		    meta_alloc_load(a, (uint32_t)ag, sqlite3_column_blob(q, 1),
				    (size_t)sqlite3_column_bytes(q, 1)))
			problem(c, "free map row of AG %lld is damaged", (long long)ag);
	}
	sqlite3_finalize(q);
	q = NULL;
	used = meta_alloc_total(a) - meta_alloc_available(a);
	if (sqlite3_prepare_v2(db, "SELECT ino, fblk, nblk, pblk FROM extent ORDER BY pblk", -1, &q,
			       NULL) != SQLITE_OK)
		goto out_query;
	while (sqlite3_step(q) == SQLITE_ROW) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(q, 0);
		uint64_t fblk = (uint64_t)sqlite3_column_int64(q, 1);
		int64_t nblk = sqlite3_column_int64(q, 2), pblk = sqlite3_column_int64(q, 3);

		if (nblk <= 0 || pblk < 0 || (uint64_t)(pblk + nblk) > nblocks) {
			problem(c, "inode %llu: extent at file block %llu ([%lld,+%lld)) lies outside"
				" the data region", (unsigned long long)ino,
				(unsigned long long)fblk, (long long)pblk, (long long)nblk);
			continue;
		}
		if ((uint64_t)pblk < prev_end)
			problem(c, "block %lld is owned twice: by inode %llu and inode %llu",
				(long long)pblk, (unsigned long long)prev_ino, (unsigned long long)ino);
		if (!meta_alloc_is_used(a, (uint64_t)pblk, (uint64_t)nblk))
			problem(c, "inode %llu: extent [%lld,+%lld) is marked free in the free map",
				(unsigned long long)ino, (long long)pblk, (long long)nblk);
		if ((uint64_t)(pblk + nblk) > prev_end) {
			owned += (uint64_t)(pblk + nblk) - ((uint64_t)pblk > prev_end ? (uint64_t)pblk
											: prev_end);
			prev_end = (uint64_t)(pblk + nblk);
		}
		prev_ino = ino;
	}
	sqlite3_finalize(q);
	if (owned != used)
		problem(c, "free map marks %llu blocks used but extents own %llu",
			(unsigned long long)used, (unsigned long long)owned);
	meta_alloc_destroy(a);
	return;
out_query:
	problem(c, "cannot read space metadata: %s", sqlite3_errmsg(db));
	sqlite3_finalize(q);
	meta_alloc_destroy(a);
}

static void check_tree(struct chk *c, sqlite3 *db)
{
	each_row(c, db,
		 "SELECT d.parent, d.ino, d.cookie FROM dirent d LEFT JOIN inode i ON i.ino=d.ino"
		 " WHERE i.ino IS NULL",
		 "directory %lld has an entry for missing inode %lld (cookie %lld)");
	each_row(c, db,
		 "SELECT d.parent, d.ino, 0 FROM dirent d JOIN inode p ON p.ino=d.parent"
		 " WHERE (p.mode & 61440) != 16384",
		 "inode %lld holds an entry (for inode %lld) but is not a directory%.0lld");
	/* Names per inode and subdirectories per directory, counted in one pass each. */
	if (sqlite3_exec(db, "CREATE TEMP TABLE names AS SELECT ino, count(*) AS n FROM dirent"
			 " GROUP BY ino; CREATE INDEX temp.names_ino ON names(ino);"
			 "CREATE TEMP TABLE subdirs AS SELECT parent AS ino, count(*) AS n FROM dirent"
			 " WHERE type=4 GROUP BY parent; CREATE INDEX temp.subdirs_ino ON subdirs(ino);",
			 NULL, NULL, NULL) != SQLITE_OK) {
		problem(c, "cannot count names: %s", sqlite3_errmsg(db));
		return;
	}
	each_row(c, db,
		 "SELECT i.ino, i.nlink, coalesce(n.n, 0) FROM inode i LEFT JOIN names n ON n.ino=i.ino"
		 " WHERE (i.mode & 61440) != 16384 AND i.nlink != coalesce(n.n, 0)",
		 "inode %lld has link count %lld but %lld names");
	each_row(c, db,
		 "SELECT i.ino, i.nlink, 2 + coalesce(s.n, 0) FROM inode i LEFT JOIN subdirs s"
		 " ON s.ino=i.ino WHERE (i.mode & 61440) = 16384 AND i.nlink != 2 + coalesce(s.n, 0)"
		 " AND i.ino NOT IN (SELECT ino FROM orphan)",
		 "directory %lld has link count %lld but should have %lld");
	each_row(c, db,
		 "SELECT i.ino, coalesce(n.n, 0), 0 FROM inode i LEFT JOIN names n ON n.ino=i.ino"
		 " WHERE (i.mode & 61440) = 16384 AND i.ino != 1 AND coalesce(n.n, 0) != 1"
		 " AND i.ino NOT IN (SELECT ino FROM orphan)",
		 "directory %lld has %lld names (should be one)%.0lld");
	each_row(c, db,
		 "SELECT d.ino, i.parent, d.parent FROM dirent d JOIN inode i ON i.ino=d.ino"
		 " WHERE d.type=4 AND i.parent != d.parent",
		 "directory %lld records parent %lld but is named in directory %lld");
	each_row(c, db,
		 "SELECT d.ino, d.type, i.mode >> 12 FROM dirent d JOIN inode i ON i.ino=d.ino"
		 " WHERE d.type != (i.mode >> 12)",
		 "entry for inode %lld says type %lld but the inode is of type %lld");
	each_row(c, db,
		 "SELECT i.ino, i.nblocks, (SELECT coalesce(sum(nblk),0) FROM extent e"
		 " WHERE e.ino=i.ino) AS n FROM inode i WHERE i.nblocks != n",
		 "inode %lld counts %lld blocks but its extents hold %lld");
	each_row(c, db,
		 "SELECT e.ino, e.fblk, 0 FROM extent e LEFT JOIN inode i ON i.ino=e.ino"
		 " WHERE i.ino IS NULL",
		 "extent of missing inode %lld at file block %lld%.0lld");
	each_row(c, db,
		 "SELECT a.ino, a.fblk, b.fblk FROM extent a JOIN extent b ON a.ino=b.ino"
		 " AND b.fblk > a.fblk AND b.fblk < a.fblk + a.nblk",
		 "inode %lld: extents at file blocks %lld and %lld overlap");
	each_row(c, db,
		 "SELECT i.ino, i.size, length(i.target) FROM inode i WHERE (i.mode & 61440) = 40960"
		 " AND (i.target IS NULL OR i.size != length(i.target))",
		 "symlink %lld has size %lld but a target of %lld bytes");
	each_row(c, db,
		 "SELECT i.ino, i.nlink, 0 FROM inode i WHERE i.nlink = 0 AND i.ino NOT IN"
		 " (SELECT ino FROM orphan)",
		 "inode %lld has no links and is not on the orphan list%.0lld%.0lld");
	each_row(c, db,
		 "SELECT x.ino, 0, 0 FROM xattr x LEFT JOIN inode i ON i.ino=x.ino WHERE i.ino IS NULL",
		 "extended attribute of missing inode %lld%.0lld%.0lld");
	each_row(c, db,
		 "SELECT 1, 0, 0 WHERE NOT EXISTS (SELECT 1 FROM inode WHERE ino=1 AND"
		 " (mode & 61440) = 16384)",
		 "the root directory (inode %lld) is missing or not a directory%.0lld%.0lld");
}

int meta_check(struct xvm_vol *dev, void (*report)(void *arg, const char *msg), void *arg)
{
	struct chk c = { report, arg, 0 };
	struct meta_vfs *vfs = NULL;
	struct meta_sb sb;
	sqlite3 *db = NULL;
	char err[256];
	int rc;

	err[0] = '\0';
	rc = meta_sb_read(dev, &sb, err, sizeof(err));
	if (rc) {
		problem(&c, "superblock: %s", err);
		return c.problems;
	}
	if (err[0])
		problem(&c, "primary superblock damaged, the backup is good: %s", err);
	rc = meta_vfs_register(dev, &sb, &vfs);
	if (rc) {
		problem(&c, "cannot set up the metadata VFS: %s", strerror(-rc));
		return c.problems;
	}
	if (sqlite3_open_v2("cxfs.db", &db, SQLITE_OPEN_READWRITE, meta_vfs_name(vfs)) !=
	    SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;"
			 " PRAGMA temp_store=MEMORY", NULL, NULL, NULL) != SQLITE_OK) {
		problem(&c, "cannot open the metadata store: %s", db ? sqlite3_errmsg(db) : "?");
		goto out;
	}
	check_integrity(&c, db);
	if (c.problems)
		goto out;
	check_space(&c, db, &sb);
	check_tree(&c, db);
out:
	sqlite3_close(db);
	meta_vfs_unregister(vfs);
	return c.problems;
}

/* The volume a backup came from (its table cxfs_backup): what check_space needs. */
static int backup_sb(sqlite3 *db, struct meta_sb *sb)
{
	sqlite3_stmt *q = NULL;
	int found = 0;

	memset(sb, 0, sizeof(*sb));
	if (sqlite3_prepare_v2(db, "SELECT key, value FROM cxfs_backup", -1, &q, NULL) != SQLITE_OK)
		return -ENOENT;
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(q, 0);

		if (k && strcmp(k, "block_size") == 0) {
			sb->block_size = (uint32_t)sqlite3_column_int64(q, 1);
			found |= 1;
		} else if (k && strcmp(k, "data_bytes") == 0) {
			sb->data.len = (uint64_t)sqlite3_column_int64(q, 1);
			found |= 2;
		}
	}
	sqlite3_finalize(q);
	return found == 3 && sb->block_size ? 0 : -ENOENT;
}

int meta_check_store(const char *path, void (*report)(void *arg, const char *msg), void *arg)
{
	struct chk c = { report, arg, 0 };
	struct meta_sb sb;
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA temp_store=MEMORY", NULL, NULL, NULL) != SQLITE_OK) {
		problem(&c, "cannot open the store copy: %s", db ? sqlite3_errmsg(db) : "?");
		goto out;
	}
	check_integrity(&c, db);
	if (c.problems)
		goto out;
	if (backup_sb(db, &sb)) {
		problem(&c, "not a cxfs store copy (no table cxfs_backup: make it with cxfsctl backup)");
		goto out;
	}
	check_space(&c, db, &sb);
	check_tree(&c, db);
out:
	sqlite3_close(db);
	return c.problems;
}
