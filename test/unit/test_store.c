/*
 * test_store.c - the metadata store's part of unsafe requests (meta_req in
 * src/meta/meta_store.h): the applied row commits with its change and
 * never without it (a child process applies and dies without a commit, as
 * kill -9 would), a duplicate is found, a replayed create takes the
 * recorded inode number, a replayed allocation the recorded blocks, rows
 * are pruned, and transaction and durable numbers move as commits do (a
 * lost transaction's number is above what the next open says committed).
 * What counts as the server node's own change, to be made durable before
 * another node is answered (meta_store_local_pending): not a reclaim.
 * And the online backup (meta_store_backup): the copy holds what was done,
 * committed or not yet, meta_check_store finds it clean and finds a damage
 * made to it, and a path it cannot write leaves nothing behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xvm/xvm.h"
#include "meta/meta_store.h"

#include <sqlite3.h>

#define MIB (1024ull * 1024)
#define VOLUME_SIZE (256 * MIB)

struct fx {
	char dir[256];               /* temporary directory */
	char path[300];              /* the volume file in it */
	struct xvm_vol *dev;
	struct meta_store *st;
	struct vn_cred cred;
};

/* Commit only on meta_store_sync and close. */
static const struct meta_store_opts slow_commit = { .commit_ms = 600000, .commit_ops = 100000000 };

static void fx_open(struct fx *f)
{
	struct xvm_open_opts o = { 0 };
	char err[256] = "";
	int rc;

	assert_int_equal(xvm_open((const char *const[]){ f->path }, 1, &o, &f->dev, NULL, 0), 0);
	rc = meta_store_open(f->dev, &slow_commit, &f->st, err, sizeof(err));
	if (rc)
		fail_msg("meta_store_open: %d: %s", rc, err);
}

static void fx_close(struct fx *f)
{
	meta_store_close(f->st);
	f->st = NULL;
	xvm_close(f->dev);
	f->dev = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct xvm_open_opts o = { .create_size = VOLUME_SIZE };
	char err[256] = "";

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/cxfs-test-store-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vol", f->dir);
	if (xvm_open((const char *const[]){ f->path }, 1, &o, &f->dev, NULL, 0) != 0 ||
	    meta_store_format(f->dev, "store-test", 0, 1000, 1000, err, sizeof(err)) != 0) {
		fprintf(stderr, "format: %s\n", err);
		return -1;
	}
	xvm_close(f->dev);
	f->cred = (struct vn_cred){ .uid = 1000, .gid = 1000, .pid = 1, .ngroups = 0 };
	fx_open(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	meta_req_set(NULL);
	if (f->st)
		fx_close(f);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Create @name in the root as request (@node, @reqid); the store's result. */
static int create_as(struct fx *f, struct meta_req *r, uint32_t node, uint64_t reqid,
		     const char *name, struct vn_attr *a)
{
	int rc;

	r->node = node;
	r->reqid = reqid;
	r->record = 1;
	meta_req_set(r);
	rc = meta_mknod(f->st, META_ROOT_INO, name, S_IFREG | 0644, 0, NULL, &f->cred, a);
	meta_req_set(NULL);
	return rc;
}

static int find(struct fx *f, uint32_t node, uint64_t reqid, uint64_t *ino)
{
	struct meta_req r = { 0 };
	int rc = meta_req_find(f->st, node, reqid, &r);

	*ino = r.ino;
	return rc;
}

static void test_row_with_change(void **state)
{
	struct fx *f = *state;
	struct meta_req r = { 0 }, bad = { 0 };
	struct vn_attr a;
	uint64_t ino = 0, open_txn;

	meta_store_txns(f->st, &open_txn, NULL);
	assert_int_equal(create_as(f, &r, 2, 7, "a", &a), 0);
	assert_int_equal(r.ino, a.ino);
	assert_int_equal(r.gen, a.gen);
	assert_int_equal(r.txn, open_txn);
	assert_true(r.seq > 0);
	assert_int_equal(find(f, 2, 7, &ino), 1);
	assert_int_equal(ino, a.ino);
	{
		struct meta_req row = { 0 };

		assert_int_equal(meta_req_find(f->st, 2, 7, &row), 1);
		assert_int_equal(row.gen, a.gen);
		assert_int_equal(row.txn, r.txn);
		assert_int_equal(row.seq, r.seq);
	}
	assert_int_equal(find(f, 3, 7, &ino), 0);
	/* A failed request changed nothing and leaves no row. */
	assert_int_equal(create_as(f, &bad, 2, 8, "a", &a), -EEXIST);
	assert_int_equal(bad.txn, 0);
	assert_int_equal(find(f, 2, 8, &ino), 0);
	/* A later change gets a larger seq. */
	assert_int_equal(create_as(f, &bad, 2, 9, "b", &a), 0);
	assert_true(bad.seq > r.seq);
}

/*
 * In a child: apply request (2, @reqid) creating @name, sync if @sync, and
 * die without closing (kill -9).  The parent then opens the store again.
 * Returns the transaction number the child's store reported for the change.
 */
static uint64_t crash_after(struct fx *f, uint64_t reqid, const char *name, int sync)
{
	unsigned long long txn = 0;
	char path[320];
	FILE *fp;
	pid_t pid;
	int status;

	snprintf(path, sizeof(path), "%s/txn", f->dir);

	fx_close(f);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct meta_req r = { 0 };
		struct vn_attr a;

		fx_open(f);
		if (create_as(f, &r, 2, reqid, name, &a) != 0)
			_exit(1);
		if (sync && meta_store_sync(f->st) != 0)
			_exit(2);
		fp = fopen(path, "w");
		if (!fp || fprintf(fp, "%llu\n", (unsigned long long)r.txn) < 0 || fclose(fp))
			_exit(3);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "%llu", &txn), 1);
	fclose(fp);
	unlink(path);
	fx_open(f);
	return txn;
}

static void test_crash_row_and_change_together(void **state)
{
	struct fx *f = *state;
	struct vn_attr a;
	uint64_t ino, txn;

	/* Not committed: neither the file nor the row survives, and the number is above the mark. */
	txn = crash_after(f, 11, "lost", 0);
	assert_true(txn > meta_store_txn_at_open(f->st));
	assert_int_equal(meta_lookup(f->st, META_ROOT_INO, "lost", &a), -ENOENT);
	assert_int_equal(find(f, 2, 11, &ino), 0);
	/* Committed: both, and the number is at most the mark. */
	txn = crash_after(f, 12, "kept", 1);
	assert_true(txn <= meta_store_txn_at_open(f->st));
	assert_int_equal(meta_lookup(f->st, META_ROOT_INO, "kept", &a), 0);
	assert_int_equal(find(f, 2, 12, &ino), 1);
	assert_int_equal(ino, a.ino);
}

static void test_forced_ino(void **state)
{
	struct fx *f = *state;
	struct meta_req r = { .force_ino = 5000, .force_gen = 77 };
	struct meta_req n = { 0 };
	struct vn_attr a;

	assert_int_equal(create_as(f, &r, 4, 1, "forced", &a), 0);
	assert_int_equal(a.ino, 5000);
	assert_int_equal(a.gen, 77);
	/* The next create goes past the forced number. */
	assert_int_equal(create_as(f, &n, 4, 2, "next", &a), 0);
	assert_true(a.ino > 5000);
	/* A number in use cannot be forced. */
	r.txn = 0;
	assert_int_equal(create_as(f, &r, 4, 3, "again", &a), -EEXIST);
	assert_int_equal(meta_lookup(f->st, META_ROOT_INO, "again", &a), -ENOENT);
}

static void test_forced_alloc(void **state)
{
	struct fx *f = *state;
	struct meta_map run = { .fblk = 0, .nblk = 4, .pblk = 12345, .state = META_MAP_UNWRITTEN };
	struct meta_req r = { .node = 2, .reqid = 1, .force_runs = &run, .nforce = 1 };
	uint32_t bs = meta_store_sb(f->st)->block_size;
	struct meta_map maps[4];
	struct vn_attr a;
	struct meta_req c = { 0 };

	assert_int_equal(create_as(f, &c, 2, 100, "data", &a), 0);
	meta_req_set(&r);
	assert_int_equal(meta_fallocate(f->st, a.ino, FALLOC_FL_KEEP_SIZE, 0, 4ull * bs), 0);
	meta_req_set(NULL);
	assert_int_equal(meta_map_read(f->st, a.ino, 0, 4, maps, 4), 1);
	assert_int_equal(maps[0].pblk, 12345);
	assert_int_equal(maps[0].nblk, 4);
	assert_int_equal(maps[0].state, META_MAP_UNWRITTEN);
	/* Blocks in use cannot be claimed again. */
	assert_int_equal(create_as(f, &c, 2, 101, "data2", &a), 0);
	meta_req_set(&r);
	assert_int_equal(meta_fallocate(f->st, a.ino, FALLOC_FL_KEEP_SIZE, 0, 4ull * bs), -EEXIST);
	meta_req_set(NULL);
	/* Refused before the allocator changed: the store still serves. */
	assert_int_equal(create_as(f, &c, 2, 102, "data3", &a), 0);
}

static void test_prune_and_node_gone(void **state)
{
	struct fx *f = *state;
	struct vn_attr a;
	uint64_t ino;
	char name[32];

	for (uint64_t id = 1; id <= 64; id++) {
		struct meta_req r = { .oldest = 60 };

		snprintf(name, sizeof(name), "p%llu", (unsigned long long)id);
		assert_int_equal(create_as(f, &r, 5, id, name, &a), 0);
	}
	assert_int_equal(find(f, 5, 1, &ino), 0);
	assert_int_equal(find(f, 5, 59, &ino), 0);
	assert_int_equal(find(f, 5, 60, &ino), 1);
	assert_int_equal(find(f, 5, 64, &ino), 1);
	assert_int_equal(meta_req_drop_node(f->st, 5), 0);
	assert_int_equal(find(f, 5, 64, &ino), 0);
}

static void test_txn_numbers(void **state)
{
	struct fx *f = *state;
	struct meta_req r = { 0 };
	struct vn_attr a;
	uint64_t open0, dur0, open1, dur1, txn;

	meta_store_txns(f->st, &open0, &dur0);
	assert_int_equal(dur0 + 1, open0);
	assert_int_equal(create_as(f, &r, 2, 1, "t", &a), 0);
	assert_int_equal(r.txn, open0);
	meta_store_txns(f->st, NULL, &dur1);
	assert_int_equal(dur1, dur0);     /* not yet durable */
	assert_int_equal(meta_store_sync(f->st), 0);
	meta_store_txns(f->st, &open1, &dur1);
	assert_int_equal(dur1, r.txn);
	assert_int_equal(open1, r.txn + 1);
	/* A new server continues above. */
	fx_close(f);
	fx_open(f);
	meta_store_txns(f->st, &open1, &dur1);
	assert_true(dur1 > r.txn);
	assert_int_equal(open1, dur1 + 1);
	/* What was committed before the open, whatever the open itself commits. */
	assert_int_equal(meta_store_txn_at_open(f->st), r.txn);
	/* A transaction lost in a crash: the number reported is above the mark. */
	txn = crash_after(f, 40, "gone", 0);
	assert_true(txn > meta_store_txn_at_open(f->st));
}

/*
 * The server node's own change is pending (must be durable before another
 * node's request is answered); a node's request is not, and neither is
 * freeing a file whose last name a node's request removed (the reclaim:
 * nothing can depend on it), with or without blocks.
 */
static void test_local_pending(void **state)
{
	struct fx *f = *state;
	uint32_t bs = meta_store_sb(f->st)->block_size;
	struct meta_req r = { 0 };
	struct meta_map maps[1];
	struct vn_attr a, b;
	uint64_t victim = 0;

	assert_false(meta_store_local_pending(f->st));
	assert_int_equal(meta_mknod(f->st, META_ROOT_INO, "mine", S_IFREG | 0644, 0, NULL,
				    &f->cred, &a), 0);
	assert_true(meta_store_local_pending(f->st));
	assert_int_equal(meta_store_sync(f->st), 0);
	assert_false(meta_store_local_pending(f->st));

	assert_int_equal(create_as(f, &r, 3, 1, "theirs", &a), 0);
	r = (struct meta_req){ .node = 3, .reqid = 2, .record = 1 };
	meta_req_set(&r);
	assert_int_equal(meta_fallocate(f->st, a.ino, 0, 0, 4ull * bs), 0);
	meta_req_set(NULL);
	assert_int_equal(meta_map_read(f->st, a.ino, 0, 4, maps, 1), 1);
	assert_false(meta_store_local_pending(f->st));
	assert_int_equal(meta_store_sync(f->st), 0);
	r = (struct meta_req){ .node = 3, .reqid = 3, .record = 1 };
	meta_req_set(&r);
	assert_int_equal(meta_unlink(f->st, META_ROOT_INO, "theirs", 0, &victim), 0);
	meta_req_set(NULL);
	assert_int_equal(victim, a.ino);
	assert_false(meta_store_local_pending(f->st));
	assert_int_equal(meta_reclaim(f->st, a.ino), 0);
	assert_int_equal(meta_getattr(f->st, a.ino, &b), -ENOENT);
	assert_false(meta_store_local_pending(f->st));
}

/*
 * FALLOC_FL_ZERO_RANGE: the whole blocks of the range are allocated again,
 * unwritten (they read as zeros), the partial ones stay for the caller to
 * zero; without KEEP_SIZE the size grows to the range's end.
 */
static void test_zero_range(void **state)
{
	struct fx *f = *state;
	uint32_t bs = meta_store_sb(f->st)->block_size;
	struct meta_map maps[4];
	struct vn_attr a, b;

	assert_int_equal(meta_mknod(f->st, META_ROOT_INO, "z", S_IFREG | 0644, 0, NULL, &f->cred,
				    &a), 0);
	assert_int_equal(meta_fallocate(f->st, a.ino, 0, 0, 4ull * bs), 0);
	assert_int_equal(meta_map_read(f->st, a.ino, 0, 4, maps, 4), 1);
	assert_int_equal(meta_map_write(f->st, a.ino, 0, 4, maps[0].pblk, 0), 0);
	assert_int_equal(meta_map_read(f->st, a.ino, 0, 4, maps, 4), 1);
	assert_int_equal(maps[0].state, META_MAP_DATA);

	assert_int_equal(meta_fallocate(f->st, a.ino, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					bs / 2, 3ull * bs), 0);
	assert_int_equal(meta_map_read(f->st, a.ino, 0, 4, maps, 4), 3);
	assert_int_equal(maps[0].state, META_MAP_DATA);
	assert_int_equal(maps[0].nblk, 1);
	assert_int_equal(maps[1].state, META_MAP_UNWRITTEN);
	assert_int_equal(maps[1].nblk, 2);
	assert_int_equal(maps[2].state, META_MAP_DATA);
	assert_int_equal(meta_getattr(f->st, a.ino, &b), 0);
	assert_int_equal(b.size, 4ull * bs);

	assert_int_equal(meta_fallocate(f->st, a.ino, FALLOC_FL_ZERO_RANGE, 3ull * bs, 3ull * bs), 0);
	assert_int_equal(meta_getattr(f->st, a.ino, &b), 0);
	assert_int_equal(b.size, 6ull * bs);
	assert_int_equal(meta_map_read(f->st, a.ino, 3, 3, maps, 4), 1);
	assert_int_equal(maps[0].state, META_MAP_UNWRITTEN);
	assert_int_equal(meta_fallocate(f->st, a.ino,
					FALLOC_FL_ZERO_RANGE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					0, bs), -EINVAL);
}

static void count_problem(void *arg, const char *msg)
{
	(void)msg;
	(*(int *)arg)++;
}

static void test_backup(void **state)
{
	struct fx *f = *state;
	char copy[400], bad[400], err[256] = "";
	struct vn_attr a;
	sqlite3 *db = NULL;
	int reported = 0;

	snprintf(copy, sizeof(copy), "%s/copy.db", f->dir);
	snprintf(bad, sizeof(bad), "%s/missing/copy.db", f->dir);
	/* Not committed yet (slow_commit): the backup commits first. */
	assert_int_equal(meta_mknod(f->st, META_ROOT_INO, "one", S_IFREG | 0644, 0, NULL, &f->cred, &a), 0);
	assert_int_equal(meta_mknod(f->st, META_ROOT_INO, "two", S_IFDIR | 0755, 0, NULL, &f->cred, &a), 0);
	assert_int_equal(meta_store_backup(f->st, copy, err, sizeof(err)), 0);
	assert_int_equal(meta_check_store(copy, count_problem, &reported), 0);
	assert_int_equal(reported, 0);
	assert_int_equal(sqlite3_open_v2(copy, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	{
		sqlite3_stmt *q = NULL;

		assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM dirent WHERE parent=1 AND"
						    " CAST(name AS TEXT) IN ('one','two')", -1, &q, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(q), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(q, 0), 2);
		sqlite3_finalize(q);
	}
	/* A damaged copy: a name gone, its file's link count now wrong. */
	assert_int_equal(sqlite3_exec(db, "DELETE FROM dirent WHERE CAST(name AS TEXT)='one'", NULL,
				      NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_true(meta_check_store(copy, count_problem, &reported) > 0);
	assert_true(reported > 0);
	/* A directory that does not exist: an error, and no file left. */
	assert_int_not_equal(meta_store_backup(f->st, bad, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "cannot create"));
	unlink(copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_row_with_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_row_and_change_together, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forced_ino, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forced_alloc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_and_node_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_txn_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_range, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
