/*
 * test_xvm_map.c - unit tests of the volume layer's mapping and mirrors
 * (src/xvm) over real file LUNs in a temporary directory:
 *   - concat (LUNs of different sizes), stripe, mirror (2 and 3 legs),
 *     nested layouts and the seed's figure 9 under random reads, writes and
 *     padded writes checked against an in-memory model of the volume; then
 *     every LUN file checked sector by sector against a reference mapping
 *     (written here per sector, independently of xvm_io.c's range walk);
 *   - leg failure through the file backend's fault-injection table
 *     (blk__file_sys, failing only the chosen LUN's file): no error to the
 *     caller, the leg marked out in memory and in the labels, the volume
 *     assembles again with the failed LUN stale under its out leg, and a
 *     revive makes the legs byte-identical; in figure 9 a LUN inside a
 *     stripe takes out its stripe leg; a mirror with no leg left, and a
 *     concat, return the error;
 *   - the cluster ops seam: leg_failed is asked with the mirror and leg, and
 *     its refusal is the caller's error (the leg stays active);
 *   - a revive while another thread writes (the overlap check);
 *   - attach, detach and grow; a leg detached while a write is on its way
 *     to it (its LUN refuses this node: no error to the caller); a legacy
 *     (unlabelled) LUN passes through.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "block/blk_i.h"
#include "xvm/xvm_i.h"

#define FIG9 "mirror(concat(0,1),mirror(stripe:64k(2,3,4),stripe:64k(5,6,7)))"
#define SECTOR 512u
#define MAXLUN 8

struct fx {
	char dir[64];                     /* mkdtemp directory */
	char path[MAXLUN][96];            /* LUN files */
	const char *uris[MAXLUN];         /* pointers into path */
	struct blk__file_syscalls saved;  /* the real syscalls, restored in teardown */
	struct xvm_vol *vol;              /* open volume, or NULL */
	unsigned char *model;             /* what the volume must read */
	uint64_t size;                    /* its size */
	unsigned seed;                    /* rand_r state */
};

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/cxfs-xvmm-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	for (int i = 0; i < MAXLUN; i++) {
		snprintf(f->path[i], sizeof(f->path[i]), "%s/lun%d.img", f->dir, i);
		f->uris[i] = f->path[i];
	}
	f->saved = blk__file_sys;
	f->seed = 12345;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	blk__file_sys = f->saved;
	xvm_close(f->vol);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f->model);
	free(f);
	return 0;
}

/* A blank LUN file @i of XVM_RESERVED + @mib MiB. */
static void mkfile(struct fx *f, size_t i, unsigned mib)
{
	int fd = open(f->path[i], O_CREAT | O_RDWR | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, XVM_RESERVED + ((off_t)mib << 20)), 0);
	close(fd);
}

/* Make @n LUN files of XVM_RESERVED + mib[i] MiB and a volume of @layout over them. */
static void make(struct fx *f, const char *layout, size_t n, const unsigned *mib)
{
	struct xvm_create_opts co = { .layout = layout, .name = "t" };
	char err[512];

	for (size_t i = 0; i < n; i++)
		mkfile(f, i, mib[i]);
	if (xvm_create(f->uris, n, &co, err, sizeof(err)))
		fail_msg("create %s: %s", layout, err);
	if (xvm_open(f->uris, n, NULL, &f->vol, err, sizeof(err)))
		fail_msg("open %s: %s", layout, err);
	f->size = xvm_size(f->vol);
	free(f->model);
	f->model = calloc(1, f->size);
	assert_non_null(f->model);
}

static void reopen(struct fx *f, size_t n)
{
	char err[512];

	xvm_close(f->vol);
	f->vol = NULL;
	if (xvm_open(f->uris, n, NULL, &f->vol, err, sizeof(err)))
		fail_msg("reopen: %s", err);
	assert_int_equal(xvm_size(f->vol), f->size);
}

/* One random operation on the volume, checked against the model. */
static void random_op(struct fx *f, unsigned *seed)
{
	uint64_t off = (uint64_t)rand_r(seed) * 4096 % f->size;
	size_t len = 1 + (size_t)rand_r(seed) % (256 << 10), k;
	int op = rand_r(seed) % 3;
	unsigned char *buf;

	if (rand_r(seed) % 2)
		off += (uint64_t)(rand_r(seed) % 4096);   /* unaligned */
	if (off >= f->size)
		off = f->size - 1;
	if (len > f->size - off)
		len = (size_t)(f->size - off);
	buf = malloc(len);
	assert_non_null(buf);
	if (op == 0) {
		assert_int_equal(xvm_read(f->vol, buf, len, off), 0);
		if (memcmp(buf, f->model + off, len) != 0)
			fail_msg("read of %zu bytes at %llu differs from the model", len,
				 (unsigned long long)off);
	} else if (op == 1) {
		for (k = 0; k < len; k++)
			buf[k] = (unsigned char)rand_r(seed);
		assert_int_equal(xvm_write(f->vol, buf, len, off), 0);
		memcpy(f->model + off, buf, len);
	} else {
		size_t at = len > 1 ? (size_t)rand_r(seed) % (len / 2) : 0, dl = (len - at) / 2;

		for (k = 0; k < dl; k++)
			buf[k] = (unsigned char)rand_r(seed);
		assert_int_equal(xvm_write_padded(f->vol, off, len, buf, at, dl), 0);
		memset(f->model + off, 0, len);
		memcpy(f->model + off + at, buf, dl);
	}
	free(buf);
}

/* Reference mapping of one volume sector of node @i: call @fn for every (LUN, LUN offset). */
typedef void sector_fn(struct fx *f, uint32_t lun, uint64_t lunoff, uint64_t voff);

static void ref_sector(struct fx *f, const struct xvm__tree *t, unsigned i, uint64_t off,
		       uint64_t voff, sector_fn *fn)
{
	const struct xvm__node *nd = &t->node[i];
	uint64_t start = 0;
	unsigned c;

	switch (nd->kind) {
	case XVM__LEAF:
		fn(f, nd->leaf, XVM_RESERVED + off, voff);
		return;
	case XVM__CONCAT:
		for (c = 0; c < nd->nchild; c++) {
			if (off < start + t->node[nd->child[c]].size) {
				ref_sector(f, t, nd->child[c], off - start, voff, fn);
				return;
			}
			start += t->node[nd->child[c]].size;
		}
		fail_msg("sector beyond the concat");
		return;
	case XVM__STRIPE: {
		uint64_t unit = off / nd->stripe_unit;

		ref_sector(f, t, nd->child[unit % nd->nchild],
			   (unit / nd->nchild) * nd->stripe_unit + off % nd->stripe_unit, voff, fn);
		return;
	}
	default:
		for (c = 0; c < nd->nchild; c++)
			if (t->node[nd->child[c]].leg_state == XVM_LEG_ACTIVE)
				ref_sector(f, t, nd->child[c], off, voff, fn);
	}
}

static void check_sector(struct fx *f, uint32_t lun, uint64_t lunoff, uint64_t voff)
{
	unsigned char buf[SECTOR];
	int fd = open(f->path[lun], O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, SECTOR, (off_t)lunoff), SECTOR);
	close(fd);
	if (memcmp(buf, f->model + voff, SECTOR) != 0)
		fail_msg("volume sector at %llu: LUN %u at %llu does not hold it",
			 (unsigned long long)voff, lun, (unsigned long long)lunoff);
}

/* Every LUN file against the model through the reference mapping. */
static void check_luns(struct fx *f)
{
	assert_int_equal(xvm_flush(f->vol), 0);
	for (uint64_t s = 0; s < f->size; s += SECTOR)
		ref_sector(f, &f->vol->label.tree, 0, s, s, check_sector);
}

static void run_layout(struct fx *f, const char *layout, size_t n, const unsigned *mib)
{
	unsigned seed = 7;

	make(f, layout, n, mib);
	for (int i = 0; i < 300; i++)
		random_op(f, &seed);
	check_luns(f);
	reopen(f, n);
	for (int i = 0; i < 100; i++)
		random_op(f, &seed);
	check_luns(f);
	xvm_close(f->vol);
	f->vol = NULL;
}

static void test_layouts(void **state)
{
	static const unsigned mib[MAXLUN] = { 2, 3, 4, 2, 2, 2, 2, 2 };
	static const unsigned same[MAXLUN] = { 2, 2, 2, 2, 2, 2, 2, 2 };
	struct fx *f = *state;

	run_layout(f, "concat(0,1,2)", 3, mib);
	run_layout(f, "stripe:4k(0,1,2)", 3, same);
	run_layout(f, "stripe(0,1)", 2, mib);              /* unequal LUNs: the smallest counts */
	run_layout(f, "mirror(0,1)", 2, same);
	run_layout(f, "mirror(0,1,2)", 3, mib);
	run_layout(f, "concat(stripe:8k(0,1),mirror(2,3))", 4, same);
	run_layout(f, FIG9, 8, same);
	run_layout(f, "0", 1, mib);                         /* one labelled LUN */
}

/* Fault injection: I/O on the file whose inode is fail_ino[k] fails with EIO. */
static ino_t fail_ino[2];
static atomic_int fail_calls;

static int failing(int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return 0;
	return (fail_ino[0] && st.st_ino == fail_ino[0]) || (fail_ino[1] && st.st_ino == fail_ino[1]);
}

static ssize_t fi_pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	if (failing(fd)) {
		atomic_fetch_add(&fail_calls, 1);
		errno = EIO;
		return -1;
	}
	return pwrite(fd, buf, count, offset);
}

static ssize_t fi_pread(int fd, void *buf, size_t count, off_t offset)
{
	if (failing(fd)) {
		atomic_fetch_add(&fail_calls, 1);
		errno = EIO;
		return -1;
	}
	return pread(fd, buf, count, offset);
}

static void fail_luns(struct fx *f, int a, int b)
{
	struct stat st;

	fail_ino[0] = fail_ino[1] = 0;
	if (a >= 0 && stat(f->path[a], &st) == 0)
		fail_ino[0] = st.st_ino;
	if (b >= 0 && stat(f->path[b], &st) == 0)
		fail_ino[1] = st.st_ino;
	atomic_store(&fail_calls, 0);
	blk__file_sys.pwrite = fi_pwrite;
	blk__file_sys.pread = fi_pread;
}

static void heal(struct fx *f)
{
	blk__file_sys = f->saved;
	fail_ino[0] = fail_ino[1] = 0;
}

/* The bytes of two LUN files' data areas are identical over @len bytes. */
static void same_data(struct fx *f, int a, int b, uint64_t len)
{
	unsigned char *x = malloc(1 << 20), *y = malloc(1 << 20);
	int fa = open(f->path[a], O_RDONLY), fb = open(f->path[b], O_RDONLY);

	assert_true(x && y && fa >= 0 && fb >= 0);
	for (uint64_t o = 0; o < len; o += 1 << 20) {
		size_t n = len - o < (1 << 20) ? (size_t)(len - o) : 1 << 20;

		assert_int_equal(pread(fa, x, n, (off_t)(XVM_RESERVED + o)), (ssize_t)n);
		assert_int_equal(pread(fb, y, n, (off_t)(XVM_RESERVED + o)), (ssize_t)n);
		if (memcmp(x, y, n) != 0)
			fail_msg("LUNs %d and %d differ in the MiB at %llu", a, b, (unsigned long long)o);
	}
	close(fa);
	close(fb);
	free(x);
	free(y);
}

static void test_leg_failure(void **state)
{
	static const unsigned mib[2] = { 4, 4 };
	struct fx *f = *state;
	unsigned seed = 3;
	char err[512], *show;

	make(f, "mirror(0,1)", 2, mib);
	for (int i = 0; i < 50; i++)
		random_op(f, &seed);
	fail_luns(f, 1, -1);
	for (int i = 0; i < 200; i++)
		random_op(f, &seed);                       /* no error reaches the caller */
	assert_true(atomic_load(&fail_calls) > 0);
	assert_int_equal(f->vol->label.tree.node[2].leg_state, XVM_LEG_OUT);
	heal(f);
	for (int i = 0; i < 50; i++)
		random_op(f, &seed);
	/* The out leg's LUN is stale but assembles (under its out leg). */
	reopen(f, 2);
	show = xvm_show(f->vol, 0);
	assert_non_null(strstr(show, "leg 1 out"));
	free(show);
	show = xvm_show(f->vol, 1);
	assert_non_null(strstr(show, "\"state\":\"out\""));
	free(show);
	check_luns(f);                                     /* LUN 0 holds everything */
	assert_int_equal(xvm_revive(f->vol, NULL, NULL, err, sizeof(err)), 1);
	assert_int_equal(f->vol->label.tree.node[2].leg_state, XVM_LEG_ACTIVE);
	check_luns(f);
	same_data(f, 0, 1, f->size);
	reopen(f, 2);
	for (int i = 0; i < 50; i++)
		random_op(f, &seed);
	check_luns(f);
}

static void test_fig9_failure(void **state)
{
	static const unsigned mib[8] = { 2, 2, 2, 2, 2, 2, 2, 2 };
	struct fx *f = *state;
	struct xvm__tree *t;
	unsigned seed = 5;
	char err[512];
	int n3, leg;

	make(f, FIG9, 8, mib);
	for (int i = 0; i < 50; i++)
		random_op(f, &seed);
	fail_luns(f, 3, 0);            /* LUN 3 (in the first stripe) and LUN 0 (in the concat) */
	for (int i = 0; i < 100; i++)
		random_op(f, &seed);
	t = &f->vol->label.tree;
	n3 = xvm__tree_leaf(t, 3);
	leg = t->node[n3].parent;      /* the stripe (2,3,4): a leg of the inner mirror */
	assert_int_equal(t->node[leg].kind, XVM__STRIPE);
	assert_int_equal(t->node[leg].leg_state, XVM_LEG_OUT);
	assert_int_equal(t->node[t->node[xvm__tree_leaf(t, 0)].parent].leg_state, XVM_LEG_OUT);
	heal(f);
	reopen(f, 8);
	check_luns(f);
	assert_int_equal(xvm_revive(f->vol, NULL, NULL, err, sizeof(err)), 2);
	check_luns(f);                 /* every leg active again: every copy checked */
	for (int i = 0; i < 50; i++)
		random_op(f, &seed);
	check_luns(f);
}

static void test_no_leg_left(void **state)
{
	static const unsigned mib[3] = { 2, 2, 2 };
	struct fx *f = *state;
	char buf[4096] = { 1 };

	make(f, "mirror(0,1)", 2, mib);
	fail_luns(f, 0, 1);
	assert_int_equal(xvm_write(f->vol, buf, sizeof(buf), 8192), -EIO);
	assert_int_equal(xvm_read(f->vol, buf, sizeof(buf), 8192), -EIO);
	heal(f);
	xvm_close(f->vol);
	f->vol = NULL;
	make(f, "concat(0,1)", 2, mib);
	fail_luns(f, 1, -1);
	assert_int_equal(xvm_write(f->vol, buf, sizeof(buf), f->size - 4096), -EIO);
	assert_int_equal(xvm_write(f->vol, buf, sizeof(buf), 0), 0);
	heal(f);
}

/* The cluster ops: record what was asked, refuse. */
static unsigned asked_mirror, asked_leg, asked;

static int refuse_leg(void *arg, struct xvm_vol *vol, unsigned mirror, unsigned leg)
{
	asked_mirror = mirror;
	asked_leg = leg;
	asked++;
	return -EIO;
}

static void test_cluster_ops(void **state)
{
	static const struct xvm_cluster_ops ops = { .leg_failed = refuse_leg };
	static const unsigned mib[8] = { 2, 2, 2, 2, 2, 2, 2, 2 };
	struct xvm_open_opts oo = { .cluster_ops = &ops };
	struct fx *f = *state;
	char buf[256 << 10], err[512];
	int stripe;

	memset(buf, 7, sizeof(buf));
	make(f, FIG9, 8, mib);
	xvm_close(f->vol);
	assert_int_equal(xvm_open(f->uris, 8, &oo, &f->vol, err, sizeof(err)), 0);
	fail_luns(f, 3, -1);
	asked = 0;
	assert_int_equal(xvm_write(f->vol, buf, sizeof(buf), 0), -EIO);
	heal(f);
	stripe = f->vol->label.tree.node[xvm__tree_leaf(&f->vol->label.tree, 3)].parent;
	assert_true(asked >= 1);
	assert_int_equal(asked_mirror, f->vol->label.tree.node[stripe].parent);
	assert_int_equal(asked_leg, 0);
	assert_int_equal(f->vol->label.tree.node[stripe].leg_state, XVM_LEG_ACTIVE);
	assert_int_equal(xvm_write(f->vol, buf, sizeof(buf), 0), 0);
}

/* A writer thread while the main thread revives. */
struct writer {
	struct fx *f;
	atomic_int stop;                  /* set by the main thread */
	int ops;                          /* writes done */
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	unsigned seed = 99;

	while (!atomic_load(&w->stop) || w->ops < 200) {
		random_op(w->f, &seed);
		w->ops++;
	}
	return NULL;
}

static int slow_progress(void *arg, unsigned mirror, unsigned leg, uint64_t done, uint64_t total)
{
	uint64_t *calls = arg;

	(*calls)++;
	usleep(2000);
	return 0;
}

static void test_revive_under_io(void **state)
{
	static const unsigned mib[3] = { 16, 16, 16 };
	struct fx *f = *state;
	struct writer w = { .f = f };
	uint64_t calls = 0;
	unsigned seed = 11;
	pthread_t tid;
	char err[512];

	make(f, "mirror(0,1,2)", 3, mib);
	for (int i = 0; i < 50; i++)
		random_op(f, &seed);
	fail_luns(f, 2, -1);
	for (int i = 0; i < 100; i++)
		random_op(f, &seed);
	heal(f);
	assert_int_equal(pthread_create(&tid, NULL, writer_main, &w), 0);
	assert_int_equal(xvm_revive(f->vol, slow_progress, &calls, err, sizeof(err)), 1);
	atomic_store(&w.stop, 1);
	pthread_join(tid, NULL);
	assert_int_equal(calls, 16);                       /* one per MiB chunk */
	assert_true(w.ops >= 200);
	check_luns(f);
	same_data(f, 0, 2, f->size);
	same_data(f, 1, 2, f->size);
}

/* The read-repair test's progress: reads (and a write) above the revive point. */
struct repair_probe {
	struct fx *f;
	unsigned calls;
};

static void probe_write(struct fx *f, uint64_t off, unsigned char v)
{
	unsigned char buf[8192];

	memset(buf, v, sizeof(buf));
	assert_int_equal(xvm_write(f->vol, buf, sizeof(buf), off), 0);
	memcpy(f->model + off, buf, sizeof(buf));
}

static int repair_progress(void *arg, unsigned mirror, unsigned leg, uint64_t done, uint64_t total)
{
	struct repair_probe *p = arg;
	unsigned char buf[4096];

	(void)mirror;
	(void)leg;
	(void)total;
	if (++p->calls == 1) {
		/* Chunk 0 copied: reads of chunks 5 and 6 hint them; a write of 5 before its copy. */
		assert_int_equal(done, 1u << 20);
		assert_int_equal(xvm_read(p->f->vol, buf, sizeof(buf), (5u << 20) + 4096), 0);
		assert_int_equal(xvm_read(p->f->vol, buf, sizeof(buf), (6u << 20) + 8192), 0);
		probe_write(p->f, (5u << 20) + 65536, 0x5a);
	} else if (p->calls == 2) {
		/* Both were copied ahead: a write there reaches the reviving leg now. */
		probe_write(p->f, (6u << 20) + 4096, 0xa5);
		probe_write(p->f, (5u << 20) + 65536 + 4096, 0x3c);
	}
	return 0;
}

/*
 * Read-repair: a read above the revive point hints its chunk, the revive
 * copies it next (ahead of order) and skips it in order; writes to it after
 * the copy reach the reviving leg; the legs end identical to the model.
 */
static void test_read_repair(void **state)
{
	static const unsigned mib[2] = { 8, 8 };
	struct fx *f = *state;
	struct repair_probe p = { .f = f };
	unsigned seed = 17;
	char err[512], *show;

	make(f, "mirror(0,1)", 2, mib);
	for (int i = 0; i < 50; i++)
		random_op(f, &seed);
	fail_luns(f, 1, -1);
	for (int i = 0; i < 100; i++)
		random_op(f, &seed);
	heal(f);
	assert_int_equal(xvm_revive(f->vol, repair_progress, &p, err, sizeof(err)), 1);
	assert_int_equal(p.calls, 8);                   /* one per chunk, skipped ones too */
	show = xvm_show(f->vol, 1);
	assert_non_null(strstr(show, "\"read_repairs\":2"));
	assert_non_null(strstr(show, "\"ahead\":0"));
	free(show);
	check_luns(f);
	same_data(f, 0, 1, f->size);
}

static void test_attach_detach_grow(void **state)
{
	static const unsigned mib[4] = { 2, 2, 3, 2 };
	struct fx *f = *state;
	unsigned seed = 13;
	char err[512];
	uint64_t before;

	make(f, "mirror(0,1)", 2, mib);       /* LUNs 2 and 3 exist too */
	for (int i = 0; i < 100; i++)
		random_op(f, &seed);
	assert_int_equal(xvm_detach(f->vol, 0, 1, err, sizeof(err)), 0);
	assert_int_not_equal(xvm_detach(f->vol, 0, 0, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "last active leg"));
	reopen(f, 1);
	for (int i = 0; i < 50; i++)
		random_op(f, &seed);
	/* LUN 1's label was wiped: it can be attached again, as a reviving leg. */
	assert_int_equal(xvm_attach(f->vol, 0, f->uris[1], err, sizeof(err)), 0);
	assert_int_equal(xvm_revive(f->vol, NULL, NULL, err, sizeof(err)), 1);
	check_luns(f);
	same_data(f, 0, 1, f->size);
	xvm_close(f->vol);
	f->vol = NULL;

	make(f, "concat(0,1)", 2, mib);
	mkfile(f, 2, mib[2]);
	for (int i = 0; i < 100; i++)
		random_op(f, &seed);
	before = f->size;
	assert_int_equal(xvm_grow(f->vol, f->uris[2], 0, err, sizeof(err)), 0);
	assert_int_equal(xvm_size(f->vol), before + (3u << 20));
	f->size = xvm_size(f->vol);
	f->model = realloc(f->model, f->size);
	memset(f->model + before, 0, f->size - before);
	reopen(f, 3);
	for (int i = 0; i < 100; i++)
		random_op(f, &seed);
	check_luns(f);
	assert_int_not_equal(xvm_grow(f->vol, f->uris[0], 0, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "already belongs"));
}

/*
 * Online changes between two nodes (two handles on the same LUNs): the
 * config server's handle opens a LUN and attaches it (or appends it), the
 * other opens it at the same number and adopts the label image; both then
 * map alike, I/O through either checked against one model.  Refused: an
 * image of another volume, one whose change renumbers nodes (a detach), a
 * new LUN not open on the adopting node, an online grow of a one-LUN root.
 */
static void test_online_change(void **state)
{
	struct fx *f = *state;
	unsigned mib[4] = { 3, 3, 3, 3 }, leaf, leaf2, seed = 7;
	unsigned char img[XVM_LABEL_SIZE], other[XVM_LABEL_SIZE];
	struct xvm_vol *b = NULL, *cfg, *x = NULL;
	char err[512], *sa, *sb;

	make(f, "mirror(0,1)", 2, mib);
	mkfile(f, 2, mib[2]);
	assert_int_equal(xvm_open(f->uris, 2, NULL, &b, err, sizeof(err)), 0);
	for (int i = 0; i < 50; i++)
		random_op(f, &seed);
	cfg = f->vol;
	/* Not yet opened on b: refused, nothing changes there. */
	assert_int_equal(xvm_lun_open(cfg, f->uris[2], -1, 0, &leaf, err, sizeof(err)), 0);
	assert_int_equal(xvm_attach_lun(cfg, 0, leaf, err, sizeof(err)), 0);
	assert_int_equal(xvm_label_image(cfg, img), 0);
	assert_int_equal(xvm_adopt(b, img, sizeof(img), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not open here"));
	assert_int_equal(xvm_lun_open(b, f->uris[2], (int)leaf + 1, 0, &leaf2, err, sizeof(err)), 0);
	xvm_lun_close(b, leaf2);
	assert_int_equal(xvm_lun_open(b, f->uris[2], (int)leaf, 0, &leaf2, err, sizeof(err)), 0);
	assert_int_equal(leaf2, leaf);
	assert_int_equal(xvm_adopt(b, img, sizeof(img) - 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(xvm_adopt(b, img, sizeof(img), err, sizeof(err)), 0);
	sa = xvm_show(cfg, 1);
	sb = xvm_show(b, 1);
	assert_string_equal(sa, sb);
	assert_non_null(strstr(sa, "reviving"));
	free(sa);
	free(sb);
	/* The revive on the config server's handle; b writes in between, as a node would. */
	f->vol = b;
	for (int i = 0; i < 50; i++)
		random_op(f, &seed);
	assert_int_equal(xvm_revive(cfg, NULL, NULL, err, sizeof(err)), 1);
	assert_int_equal(xvm_flush(b), 0);
	xvm_close(b);
	f->vol = cfg;
	reopen(f, 3);
	check_luns(f);
	same_data(f, 0, 2, f->size);
	/* A detach renumbers: another node must not adopt it. */
	mkfile(f, 3, mib[3]);
	assert_int_equal(xvm_open(f->uris, 3, NULL, &b, err, sizeof(err)), 0);
	assert_int_equal(xvm_detach(f->vol, 0, 0, err, sizeof(err)), 0);
	assert_int_equal(xvm_label_image(f->vol, img), 0);
	assert_int_equal(xvm_adopt(b, img, sizeof(img), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "restart this node"));
	xvm_close(b);
	b = NULL;
	/* Another volume's label. */
	mkfile(f, 0, mib[0]);
	assert_int_equal(xvm_create((const char *const[]){ f->uris[0], f->uris[3] }, 2,
				    &(struct xvm_create_opts){ .layout = "concat(0,1)" }, err,
				    sizeof(err)), 0);
	assert_int_equal(xvm_open((const char *const[]){ f->uris[0], f->uris[3] }, 2, NULL, &x, err,
				  sizeof(err)), 0);
	assert_int_equal(xvm_label_image(x, other), 0);
	assert_int_equal(xvm_adopt(f->vol, other, sizeof(other), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "another volume"));
	/* An online grow of a concat: appended on both handles, the size grows alike. */
	mkfile(f, 4, 3);
	assert_int_equal(xvm_open((const char *const[]){ f->uris[0], f->uris[3] }, 2, NULL, &b, err,
				  sizeof(err)), 0);
	assert_int_equal(xvm_lun_open(x, f->uris[4], -1, 0, &leaf, err, sizeof(err)), 0);
	assert_int_equal(xvm_grow_lun(x, leaf, 1, err, sizeof(err)), 0);
	assert_int_equal(xvm_label_image(x, img), 0);
	assert_int_equal(xvm_lun_open(b, f->uris[4], (int)leaf, 0, &leaf2, err, sizeof(err)), 0);
	assert_int_equal(xvm_adopt(b, img, sizeof(img), err, sizeof(err)), 0);
	assert_int_equal(xvm_size(b), xvm_size(x));
	assert_int_equal(xvm_size(x), 3 * (3u << 20));
	xvm_close(b);
	xvm_close(x);
	/* A one-LUN root grows only offline. */
	mkfile(f, 5, 3);
	mkfile(f, 6, 3);
	assert_int_equal(xvm_create(&f->uris[5], 1, &(struct xvm_create_opts){ .layout = "0" }, err,
				    sizeof(err)), 0);
	assert_int_equal(xvm_open(&f->uris[5], 1, NULL, &x, err, sizeof(err)), 0);
	assert_int_equal(xvm_grow(x, f->uris[6], 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "only while unmounted"));
	xvm_close(x);
}

/* Cluster ops of the config server's handle: the other handle takes each mirror state. */
static int forward_state(void *arg, struct xvm_vol *vol, const struct xvm_mirror_state *st)
{
	(void)vol;
	return xvm_mirror_state_apply(arg, st);
}

/*
 * Online detach between two nodes (two handles): begin makes the leg
 * write-only on both (the other one through the ops), commit detaches it in
 * the labels, the other is told, finish wipes its LUN's label.  I/O through
 * both goes on against one model; the volume then assembles without the
 * LUN (with it, refused: it has no label), the leg shown detached; the last
 * active leg is refused.
 */
static void test_online_detach(void **state)
{
	static const unsigned mib[3] = { 3, 3, 3 };
	struct fx *f = *state;
	struct xvm_cluster_ops ops = { .mirror_state = forward_state };
	struct xvm_open_opts o = { .cluster_ops = &ops };
	struct xvm_vol *b = NULL, *cfg;
	unsigned seed = 23;
	uint64_t gen;
	char err[512], *show;

	make(f, "mirror(0,1,2)", 3, mib);
	for (int i = 0; i < 50; i++)
		random_op(f, &seed);
	assert_int_equal(xvm_open(f->uris, 3, NULL, &b, err, sizeof(err)), 0);
	xvm_close(f->vol);
	o.cluster_arg = b;
	assert_int_equal(xvm_open(f->uris, 3, &o, &f->vol, err, sizeof(err)), 0);
	cfg = f->vol;
	assert_int_equal(xvm_detach_begin(cfg, 0, 0, err, sizeof(err)), 0);
	show = xvm_show(b, 1);
	assert_non_null(strstr(show, "\"leg\":0,\"state\":\"reviving\""));
	free(show);
	f->vol = b;
	for (int i = 0; i < 30; i++)
		random_op(f, &seed);
	f->vol = cfg;
	assert_int_equal(xvm_detach_commit(cfg, 0, 0, &gen, err, sizeof(err)), 0);
	assert_int_equal(xvm_detach_told(b, 0, 0, gen), 0);
	xvm_detach_finish(cfg, 0, 0);
	for (int i = 0; i < 30; i++) {
		f->vol = i % 2 ? b : cfg;
		random_op(f, &seed);
	}
	f->vol = cfg;
	assert_int_equal(xvm_flush(b), 0);
	xvm_close(b);
	xvm_close(cfg);
	f->vol = NULL;
	same_data(f, 1, 2, f->size);
	assert_int_equal(xvm_open(f->uris, 3, NULL, &b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no volume label"));
	assert_int_equal(xvm_open(&f->uris[1], 2, NULL, &f->vol, err, sizeof(err)), 0);
	show = xvm_show(f->vol, 1);
	assert_non_null(strstr(show, "\"leg\":0,\"state\":\"detached\""));
	free(show);
	for (int i = 0; i < 30; i++)
		random_op(f, &seed);
	assert_int_equal(xvm_detach_begin(f->vol, 0, 1, err, sizeof(err)), 0);
	assert_int_equal(xvm_detach_commit(f->vol, 0, 1, &gen, err, sizeof(err)), 0);
	xvm_detach_finish(f->vol, 0, 1);
	assert_int_equal(xvm_detach_begin(f->vol, 0, 2, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "last active leg"));
	assert_int_equal(xvm_detach_begin(f->vol, 0, 1, err, sizeof(err)), -EALREADY);
	for (int i = 0; i < 30; i++)
		random_op(f, &seed);
}

/* test_detach_in_flight: the volume, and the writes to LUN 1 refused so far. */
static struct xvm_vol *inflight_vol;
static atomic_int inflight_refused;

/*
 * The first data write to LUN 1 is where this node is told the leg
 * detached (the config server's message, on another thread), and LUN 1
 * refuses it: this node's key went from it (xvm__leave_luns), as an iSCSI
 * LUN answers with a reservation conflict (BLK_EFENCED).
 */
static ssize_t fi_pwrite_detached(int fd, const void *buf, size_t count, off_t offset)
{
	if (failing(fd) && offset >= XVM_RESERVED) {
		if (atomic_fetch_add(&inflight_refused, 1) == 0)
			assert_int_equal(xvm_detach_told(inflight_vol, 0, 1, 0), 0);
		errno = -BLK_EFENCED;
		return -1;
	}
	return pwrite(fd, buf, count, offset);
}

/*
 * A leg detached while a write is on its way to it: the LUN's refusal
 * reaches no caller (the legs left have the data); a refusal by a LUN of
 * an active leg still does.
 */
static void test_detach_in_flight(void **state)
{
	static const unsigned mib[2] = { 3, 3 };
	struct fx *f = *state;
	unsigned seed = 31;

	make(f, "mirror(0,1)", 2, mib);
	for (int i = 0; i < 30; i++)
		random_op(f, &seed);
	inflight_vol = f->vol;
	atomic_store(&inflight_refused, 0);
	fail_luns(f, 1, -1);
	blk__file_sys.pwrite = fi_pwrite_detached;
	blk__file_sys.pread = f->saved.pread;
	for (int i = 0; i < 60; i++)
		random_op(f, &seed);                       /* no error reaches the caller */
	assert_true(atomic_load(&inflight_refused) >= 1);
	assert_int_equal(f->vol->label.tree.node[2].leg_state, XVM_LEG_DETACHED);
	heal(f);
	for (int i = 0; i < 30; i++)
		random_op(f, &seed);
	/* A fenced node's writes fail: the refusal of an active leg is the caller's error. */
	fail_luns(f, 0, -1);
	blk__file_sys.pwrite = fi_pwrite_detached;
	blk__file_sys.pread = f->saved.pread;
	atomic_store(&inflight_refused, 1);
	assert_int_equal(xvm_write(f->vol, "x", 1, 0), BLK_EFENCED);
	heal(f);
}

static void test_legacy(void **state)
{
	struct fx *f = *state;
	struct xvm_open_opts o = { .create_size = 1 << 20 };
	unsigned char buf[1000], back[1000];
	char err[512];
	int fd;

	memset(buf, 0x42, sizeof(buf));
	assert_int_equal(xvm_open(f->uris, 1, &o, &f->vol, err, sizeof(err)), 0);
	assert_true(xvm_is_legacy(f->vol));
	assert_int_equal(xvm_size(f->vol), 1 << 20);
	assert_string_equal(xvm_uri(f->vol), f->path[0]);
	assert_int_equal(xvm_write(f->vol, buf, sizeof(buf), 3), 0);
	assert_int_equal(xvm_flush(f->vol), 0);
	fd = open(f->path[0], O_RDONLY);
	assert_int_equal(pread(fd, back, sizeof(back), 3), sizeof(back));
	close(fd);
	assert_memory_equal(buf, back, sizeof(buf));
	/* Its layout cannot change. */
	assert_int_not_equal(xvm_grow(f->vol, f->uris[1], 0, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "legacy volume"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_layouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leg_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fig9_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_leg_left, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cluster_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revive_under_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_repair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_detach_grow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_online_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_online_detach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_detach_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
