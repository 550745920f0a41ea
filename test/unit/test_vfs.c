/*
 * test_vfs.c - unit tests of the SQLite VFS over volume regions
 * (src/meta/meta_vfs.c) on a file-backed volume: a WAL database that survives
 * close and remount, a process that dies without closing, full regions,
 * xAccess/xDelete semantics, the write-gather buffer and short reads, and
 * temporary files on the default VFS.  test_bulk_insert prints the insert
 * rate of 1000-row transactions with synchronous=FULL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xvm/xvm.h"
#include "meta/meta_sb.h"
#include "meta/meta_vfs.h"

#define MIB (UINT64_C(1) << 20)
#define VOLUME_SIZE (256 * MIB)

/* Per-test state: a formatted file-backed volume with a registered VFS. */
struct vfs_fixture {
	char dir[256];                     /* mkdtemp directory */
	char path[300];                    /* volume file inside dir */
	struct xvm_vol *dev;               /* the open volume */
	struct meta_sb sb;                 /* its superblock */
	struct meta_vfs *vfs;              /* VFS registered over dev */
};

static int fixture_make(void **state, int tiny)
{
	struct vfs_fixture *f = calloc(1, sizeof(*f));
	struct xvm_open_opts o = { .create_size = VOLUME_SIZE };

	if (!f)
		return -1;
	/* TMPDIR picks the file system the volume (and the measured sync rate) lives on. */
	snprintf(f->dir, sizeof(f->dir), "%s/cxfs-test-vfs-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vol", f->dir);
	if (xvm_open((const char *const[]){ f->path }, 1, &o, &f->dev, NULL, 0) != 0)
		return -1;
	if (meta_sb_layout(VOLUME_SIZE, "vfs-test", 0, &f->sb) != 0)
		return -1;
	if (tiny) {
		/* Regions small enough to fill: 4 MiB database, 1 MiB WAL, 2 MiB journal. */
		f->sb.meta_db = (struct meta_region){ 1 * MIB, 4 * MIB };
		f->sb.meta_wal = (struct meta_region){ 5 * MIB, 1 * MIB };
		f->sb.meta_jrnl = (struct meta_region){ 6 * MIB, 2 * MIB };
		f->sb.data = (struct meta_region){ 8 * MIB, VOLUME_SIZE - 8 * MIB };
	}
	if (meta_sb_write(f->dev, &f->sb) != 0 || meta_vfs_format(f->dev, &f->sb) != 0)
		return -1;
	if (meta_vfs_register(f->dev, &f->sb, &f->vfs) != 0)
		return -1;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return fixture_make(state, 0);
}

static int setup_tiny(void **state)
{
	return fixture_make(state, 1);
}

static int teardown(void **state)
{
	struct vfs_fixture *f = *state;

	meta_vfs_unregister(f->vfs);
	xvm_close(f->dev);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Drop every in-memory state and come back from the volume, as a new MDS would. */
static void remount(struct vfs_fixture *f)
{
	struct xvm_open_opts o = { 0 };
	char err[256];

	meta_vfs_unregister(f->vfs);
	xvm_close(f->dev);
	assert_int_equal(xvm_open((const char *const[]){ f->path }, 1, &o, &f->dev, NULL, 0), 0);
	assert_int_equal(meta_sb_read(f->dev, &f->sb, err, sizeof(err)), 0);
	assert_int_equal(meta_vfs_register(f->dev, &f->sb, &f->vfs), 0);
}

static int exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		print_message("sqlite: %s: %s\n", sql, msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return rc;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void assert_integrity_ok(sqlite3 *db)
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
}

/* Open the store as the MDS does: exclusive locking, WAL, full sync. 0 or an SQLite code. */
static int store_open(struct meta_vfs *vfs, const char *journal_mode, sqlite3 **out)
{
	char sql[128];
	int rc;

	rc = sqlite3_open_v2("meta.db", out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, meta_vfs_name(vfs));
	if (rc != SQLITE_OK)
		return rc;
	snprintf(sql, sizeof(sql),
		 "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=%s; PRAGMA synchronous=FULL;"
		 "PRAGMA temp_store=MEMORY;", journal_mode);
	return exec(*out, sql);
}

static sqlite3 *open_wal_db(struct vfs_fixture *f)
{
	sqlite3 *db = NULL;

	assert_int_equal(store_open(f->vfs, "WAL", &db), SQLITE_OK);
	return db;
}

static void insert_rows(sqlite3 *db, int64_t first, int n, int per_txn)
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(id, a, b) VALUES (?, ?, ?)", -1, &st, NULL),
			 SQLITE_OK);
	for (int i = 0; i < n; i++) {
		char b[48];

		if (i % per_txn == 0)
			assert_int_equal(exec(db, "BEGIN"), SQLITE_OK);
		snprintf(b, sizeof(b), "name-%08lld-padding", (long long)(first + i));
		sqlite3_bind_int64(st, 1, first + i);
		sqlite3_bind_int64(st, 2, (first + i) * 7);
		sqlite3_bind_text(st, 3, b, -1, SQLITE_TRANSIENT);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
		if (i % per_txn == per_txn - 1 || i == n - 1)
			assert_int_equal(exec(db, "COMMIT"), SQLITE_OK);
	}
	sqlite3_finalize(st);
}

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_bulk_insert(void **state)
{
	struct vfs_fixture *f = *state;
	const int n = 100000, per_txn = 1000;
	struct blk_stats s0, s1;
	sqlite3 *db = open_wal_db(f);
	sqlite3_stmt *st;
	double t0, dt;

	assert_int_equal(exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)"), SQLITE_OK);
	xvm_get_stats(f->dev, &s0);
	t0 = now_sec();
	insert_rows(db, 0, n, per_txn);
	dt = now_sec() - t0;
	xvm_get_stats(f->dev, &s1);
	print_message("bulk insert: %d rows in %d-row transactions, synchronous=FULL: %.3f s, %.0f inserts/s; "
		      "blk writes %llu (%.1f MiB), flushes %llu\n",
		      n, per_txn, dt, n / dt, (unsigned long long)(s1.writes - s0.writes),
		      (double)(s1.bytes_written - s0.bytes_written) / MIB,
		      (unsigned long long)(s1.flushes - s0.flushes));
	assert_int_equal(sqlite3_close(db), SQLITE_OK);

	remount(f);
	db = open_wal_db(f);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t"), n);
	assert_int_equal(query_int(db, "SELECT sum(a) FROM t"), (int64_t)7 * n * (n - 1) / 2);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT b FROM t WHERE id = 77777", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "name-00077777-padding");
	sqlite3_finalize(st);
	assert_integrity_ok(db);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* The child of test_crash: commit, start one more transaction, die.  Exit code says how far it got. */
static void crash_child(const char *path, int txns, int rows)
{
	struct xvm_open_opts o = { 0 };
	struct xvm_vol *dev;
	struct meta_sb sb;
	struct meta_vfs *vfs;
	sqlite3 *db;
	sqlite3_stmt *st;
	char err[256];

	if (xvm_open((const char *const[]){ path }, 1, &o, &dev, NULL, 0) != 0 ||
	    meta_sb_read(dev, &sb, err, sizeof(err)) != 0 ||
	    meta_vfs_register(dev, &sb, &vfs) != 0)
		_exit(10);
	if (store_open(vfs, "WAL", &db) != SQLITE_OK ||
	    exec(db, "PRAGMA wal_autocheckpoint=0; CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)"))
		_exit(11);
	if (sqlite3_prepare_v2(db, "INSERT INTO t(id, a, b) VALUES (?, ?, randomblob(300))", -1, &st, NULL))
		_exit(12);
	for (int i = 0; i < txns * rows; i++) {
		if (i % rows == 0 && exec(db, "BEGIN"))
			_exit(13);
		sqlite3_bind_int64(st, 1, i);
		sqlite3_bind_int64(st, 2, i * 7);
		if (sqlite3_step(st) != SQLITE_DONE)
			_exit(14);
		sqlite3_reset(st);
		if (i % rows == rows - 1 && exec(db, "COMMIT"))
			_exit(15);
	}
	/* An uncommitted transaction big enough to spill frames into the WAL. */
	if (exec(db, "PRAGMA cache_size=20; BEGIN"))
		_exit(16);
	for (int i = 0; i < 5000; i++) {
		sqlite3_bind_int64(st, 1, 1000000 + i);
		sqlite3_bind_int64(st, 2, 0);
		if (sqlite3_step(st) != SQLITE_DONE)
			_exit(17);
		sqlite3_reset(st);
	}
	_exit(0);
}

static void test_crash(void **state)
{
	struct vfs_fixture *f = *state;
	const int txns = 40, rows = 250;
	int status;
	pid_t pid;
	sqlite3 *db;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		crash_child(f->path, txns, rows);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	remount(f);
	db = open_wal_db(f);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t"), txns * rows);
	assert_int_equal(query_int(db, "SELECT max(id) FROM t"), txns * rows - 1);
	assert_integrity_ok(db);
	/* The store goes on: write, close cleanly (checkpoint), remount, check. */
	assert_int_equal(exec(db, "INSERT INTO t(id, a, b) VALUES (-1, 0, 'after')"), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	remount(f);
	db = open_wal_db(f);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t"), txns * rows + 1);
	assert_integrity_ok(db);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* Insert @n blobs of @size bytes in one transaction; returns the COMMIT (or step) result. */
static int insert_blobs(sqlite3 *db, int n, int size)
{
	sqlite3_stmt *st;
	int rc;

	rc = exec(db, "BEGIN");
	if (rc != SQLITE_OK)
		return rc;
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO big(b) VALUES (zeroblob(?))", -1, &st, NULL),
			 SQLITE_OK);
	for (int i = 0; i < n && rc == SQLITE_OK; i++) {
		sqlite3_bind_int(st, 1, size);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = exec(db, "COMMIT");
	if (!sqlite3_get_autocommit(db))
		exec(db, "ROLLBACK");
	return rc;
}

/* Check that a store that just hit SQLITE_FULL is still fine, now and after a remount. */
static void check_usable_after_full(struct vfs_fixture *f, sqlite3 *db, const char *journal_mode)
{
	assert_int_equal(query_int(db, "SELECT count(*) FROM big"), 1);
	assert_int_equal(insert_blobs(db, 2, 1000), SQLITE_OK);
	assert_int_equal(query_int(db, "SELECT count(*) FROM big"), 3);
	assert_integrity_ok(db);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	remount(f);
	assert_int_equal(store_open(f->vfs, journal_mode, &db), SQLITE_OK);
	assert_int_equal(query_int(db, "SELECT count(*) FROM big"), 3);
	assert_integrity_ok(db);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_wal_full(void **state)
{
	struct vfs_fixture *f = *state;
	sqlite3 *db = open_wal_db(f);

	assert_int_equal(exec(db, "CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)"), SQLITE_OK);
	assert_int_equal(insert_blobs(db, 1, 1000), SQLITE_OK);
	/* 2 MiB of new pages in one transaction cannot fit the 1 MiB WAL. */
	assert_int_equal(insert_blobs(db, 32, 64 * 1024), SQLITE_FULL);
	check_usable_after_full(f, db, "WAL");
}

static void test_db_full_rollback_journal(void **state)
{
	struct vfs_fixture *f = *state;
	sqlite3 *db = NULL;

	/* mkfs's mode: a rollback journal in its own region. */
	assert_int_equal(store_open(f->vfs, "DELETE", &db), SQLITE_OK);
	assert_int_equal(exec(db, "CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)"), SQLITE_OK);
	assert_int_equal(insert_blobs(db, 1, 1000), SQLITE_OK);
	/* 6 MiB does not fit the 4 MiB database region. */
	assert_int_equal(insert_blobs(db, 96, 64 * 1024), SQLITE_FULL);
	check_usable_after_full(f, db, "DELETE");
}

/* Direct VFS calls on the WAL region. */
struct raw_file {
	sqlite3_vfs *v;                    /* the registered VFS */
	sqlite3_file *fp;                  /* szOsFile bytes */
};

static void raw_open(struct vfs_fixture *f, struct raw_file *r, int expect)
{
	int oflags = 0;

	r->v = sqlite3_vfs_find(meta_vfs_name(f->vfs));
	assert_non_null(r->v);
	r->fp = calloc(1, (size_t)r->v->szOsFile);
	assert_non_null(r->fp);
	assert_int_equal(r->v->xOpen(r->v, "meta.db-wal", r->fp,
				     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL, &oflags),
			 expect);
	if (expect != SQLITE_OK) {
		assert_null(r->fp->pMethods);
		free(r->fp);
		r->fp = NULL;
	}
}

static void raw_close(struct raw_file *r)
{
	assert_int_equal(r->fp->pMethods->xClose(r->fp), SQLITE_OK);
	free(r->fp);
}

static int wal_exists(struct vfs_fixture *f)
{
	sqlite3_vfs *v = sqlite3_vfs_find(meta_vfs_name(f->vfs));
	int out = -1;

	assert_int_equal(v->xAccess(v, "meta.db-wal", SQLITE_ACCESS_EXISTS, &out), SQLITE_OK);
	return out;
}

static void test_wal_access_delete(void **state)
{
	struct vfs_fixture *f = *state;
	struct raw_file r, r2;
	sqlite3_int64 size;
	uint8_t buf[100];

	assert_int_equal(wal_exists(f), 0);
	raw_open(f, &r, SQLITE_OK);
	raw_open(f, &r2, SQLITE_CANTOPEN);            /* one handle per region */
	assert_int_equal(wal_exists(f), 0);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(r.fp->pMethods->xWrite(r.fp, buf, sizeof(buf), 0), SQLITE_OK);
	assert_int_equal(wal_exists(f), 1);
	assert_int_equal(r.fp->pMethods->xSync(r.fp, SQLITE_SYNC_FULL), SQLITE_OK);
	raw_close(&r);

	/* The synced size survives a remount. */
	remount(f);
	assert_int_equal(wal_exists(f), 1);
	raw_open(f, &r, SQLITE_OK);
	assert_int_equal(r.fp->pMethods->xFileSize(r.fp, &size), SQLITE_OK);
	assert_int_equal(size, sizeof(buf));
	raw_close(&r);

	/* Delete makes it absent, durably. */
	assert_int_equal(r.v->xDelete(r.v, "meta.db-wal", 1), SQLITE_OK);
	assert_int_equal(wal_exists(f), 0);
	remount(f);
	assert_int_equal(wal_exists(f), 0);
	raw_open(f, &r, SQLITE_OK);
	assert_int_equal(r.fp->pMethods->xFileSize(r.fp, &size), SQLITE_OK);
	assert_int_equal(size, 0);
	raw_close(&r);

	/* A WAL database closed cleanly leaves no WAL behind. */
	{
		sqlite3 *db = open_wal_db(f);

		assert_int_equal(exec(db, "CREATE TABLE x(a); INSERT INTO x VALUES (1)"), SQLITE_OK);
		assert_int_equal(wal_exists(f), 1);
		assert_int_equal(sqlite3_close(db), SQLITE_OK);
		assert_int_equal(wal_exists(f), 0);
	}
}

/* Unaligned sequential writes are gathered; reads, overwrites and truncation stay exact. */
static void test_gather_and_short_read(void **state)
{
	struct vfs_fixture *f = *state;
	const size_t frame = 24 + 4096, nframes = 200, total = 32 + nframes * frame;
	const sqlite3_io_methods *m;
	struct blk_stats s0, s1;
	struct raw_file r;
	uint8_t *ref = malloc(total), *got = malloc(total + 100);
	sqlite3_int64 size;
	uint64_t cap = f->sb.meta_wal.len - META_REGION_HDR;

	assert_non_null(ref);
	assert_non_null(got);
	for (size_t i = 0; i < total; i++)
		ref[i] = (uint8_t)(i * 131 + (i >> 12));
	raw_open(f, &r, SQLITE_OK);
	m = r.fp->pMethods;

	xvm_get_stats(f->dev, &s0);
	assert_int_equal(m->xWrite(r.fp, ref, 32, 0), SQLITE_OK);
	for (size_t i = 0; i < nframes; i++)
		assert_int_equal(m->xWrite(r.fp, ref + 32 + i * frame, (int)frame, (sqlite3_int64)(32 + i * frame)),
				 SQLITE_OK);
	assert_int_equal(m->xSync(r.fp, SQLITE_SYNC_FULL), SQLITE_OK);
	xvm_get_stats(f->dev, &s1);
	/* 800 KiB of 4120-byte writes: one data write, one header write, one flush. */
	assert_true(s1.writes - s0.writes <= 3);
	assert_int_equal(s1.flushes - s0.flushes, 1);

	assert_int_equal(m->xFileSize(r.fp, &size), SQLITE_OK);
	assert_int_equal(size, total);
	assert_int_equal(m->xRead(r.fp, got, (int)total, 0), SQLITE_OK);
	assert_memory_equal(got, ref, total);

	/* Past the end: short read, zero-filled. */
	memset(got, 0xee, 200);
	assert_int_equal(m->xRead(r.fp, got, 200, (sqlite3_int64)total - 100), SQLITE_IOERR_SHORT_READ);
	assert_memory_equal(got, ref + total - 100, 100);
	for (int i = 100; i < 200; i++)
		assert_int_equal(got[i], 0);

	/* Overwrite inside, then append, then read across the gathered data without a sync. */
	memset(ref + 5000, 0x11, 100);
	assert_int_equal(m->xWrite(r.fp, ref + 5000, 100, 5000), SQLITE_OK);
	assert_int_equal(m->xRead(r.fp, got, (int)total, 0), SQLITE_OK);
	assert_memory_equal(got, ref, total);

	/* Beyond the region: SQLITE_FULL, and nothing changes. */
	assert_int_equal(m->xWrite(r.fp, ref, 100, (sqlite3_int64)cap - 50), SQLITE_FULL);
	assert_int_equal(m->xTruncate(r.fp, (sqlite3_int64)cap + 1), SQLITE_FULL);
	assert_int_equal(m->xFileSize(r.fp, &size), SQLITE_OK);
	assert_int_equal(size, total);
	/* The very end of the region is usable. */
	assert_int_equal(m->xWrite(r.fp, ref, 100, (sqlite3_int64)cap - 100), SQLITE_OK);

	/* Truncate, then write past a gap: the gap reads as zeros, like a file hole. */
	assert_int_equal(m->xTruncate(r.fp, 1000), SQLITE_OK);
	assert_int_equal(m->xWrite(r.fp, ref, 10, 20000), SQLITE_OK);
	assert_int_equal(m->xRead(r.fp, got, 20010, 0), SQLITE_OK);
	assert_memory_equal(got, ref, 1000);
	for (int i = 1000; i < 20000; i++)
		if (got[i] != 0)
			fail_msg("byte %d of the gap is 0x%02x", i, got[i]);
	assert_memory_equal(got + 20000, ref, 10);
	assert_int_equal(m->xSync(r.fp, SQLITE_SYNC_NORMAL), SQLITE_OK);
	raw_close(&r);

	remount(f);
	raw_open(f, &r, SQLITE_OK);
	assert_int_equal(r.fp->pMethods->xFileSize(r.fp, &size), SQLITE_OK);
	assert_int_equal(size, 20010);
	assert_int_equal(r.fp->pMethods->xRead(r.fp, got, 10, 20000), SQLITE_OK);
	assert_memory_equal(got, ref, 10);
	raw_close(&r);
	free(ref);
	free(got);
}

/* Temporary files are not regions: they go to the default VFS. */
static void test_temp_files_delegated(void **state)
{
	struct vfs_fixture *f = *state;
	sqlite3 *db = open_wal_db(f);

	assert_int_equal(exec(db, "PRAGMA temp_store=FILE; PRAGMA cache_size=10;"
			      "CREATE TEMP TABLE tt(a, b);"
			      "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)"
			      " INSERT INTO tt SELECT i, randomblob(100) FROM c;"), SQLITE_OK);
	assert_int_equal(query_int(db, "SELECT count(*) FROM tt"), 20000);
	assert_int_equal(query_int(db, "SELECT count(*) FROM (SELECT a FROM tt ORDER BY b)"), 20000);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* Regions without headers (meta_vfs_format never ran) are refused, not trusted. */
static void test_unformatted_regions(void **state)
{
	struct vfs_fixture *f = *state;
	uint8_t *zero = calloc(1, META_REGION_HDR);
	sqlite3 *db = NULL;
	int rc;

	assert_non_null(zero);
	assert_int_equal(xvm_write(f->dev, zero, META_REGION_HDR, f->sb.meta_db.off), 0);
	free(zero);
	remount(f);
	rc = store_open(f->vfs, "WAL", &db);
	if (rc == SQLITE_OK)
		rc = exec(db, "CREATE TABLE t(a)");
	assert_int_equal(rc, SQLITE_CANTOPEN);
	sqlite3_close(db);
	assert_int_equal(meta_vfs_register(f->dev, &(struct meta_sb){ 0 }, &(struct meta_vfs *){ NULL }),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bulk_insert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_full, setup_tiny, teardown),
		cmocka_unit_test_setup_teardown(test_db_full_rollback_journal, setup_tiny, teardown),
		cmocka_unit_test_setup_teardown(test_wal_access_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gather_and_short_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_temp_files_delegated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unformatted_regions, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
