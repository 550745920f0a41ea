/*
 * test_block.c - unit tests of the block device layer (src/block).
 *
 * Two groups:
 *   - the file backend on a temporary file: aligned and unaligned I/O
 *     checked against an in-memory model, bounds, concurrent writers to
 *     distinct and to shared sectors (the read-modify-write must not lose
 *     updates), faults injected through blk__file_sys, flush and statistics,
 *     and the fenced state (writes refused, reads allowed, the callback run
 *     once); with it, the persistent-reservation helpers that need no target
 *     (the bytes of each PERSISTENT RESERVE OUT we send, decoding READ KEYS /
 *     READ RESERVATION data, the re-registration verdict after a reconnect);
 *   - the iSCSI backend against a real tgtd that the group setup starts on
 *     ports derived from our pid: capacity, aligned and unaligned I/O, 8
 *     threads of concurrent 256 KiB I/O, flush, a tgtd killed with SIGKILL
 *     and restarted under a running writer (no acknowledged write may be
 *     lost), and persistent-reservation fencing (a preempted node's writes
 *     fail, a restarted target's lost state fences a registered node).
 *     Skipped if tgtd is not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "block/blk.h"
#include "block/blk_i.h"

#define FILE_SIZE (8u << 20)
#define LUN_SIZE (64u << 20)
#define KiB 1024u
#define MiB (1024u * 1024u)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* xorshift64*: a deterministic generator for offsets and patterns. */
static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* Fill @buf with bytes derived from @seed and the absolute offset @off. */
static void fill_pattern(void *buf, size_t len, uint64_t seed, uint64_t off)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		uint64_t x = (off + i) * 0x9E3779B97F4A7C15ULL ^ seed;
		p[i] = (unsigned char)(x >> 29);
	}
}

static int check_pattern(const void *buf, size_t len, uint64_t seed, uint64_t off)
{
	const unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		uint64_t x = (off + i) * 0x9E3779B97F4A7C15ULL ^ seed;
		if (p[i] != (unsigned char)(x >> 29))
			return -1;
	}
	return 0;
}

static void rm_rf(const char *dir)
{
	char cmd[PATH_MAX + 16];

	if (!dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* pread the whole of [off, off + len) from @path. */
static int pread_file(const char *path, void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, (off_t)off);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

/* ------------------------------------------------------------------ */
/* File backend                                                        */
/* ------------------------------------------------------------------ */

struct file_fixture {
	char dir[64];                     /* mkdtemp directory */
	char path[96];                    /* the device file in it */
	struct blk_dev *dev;
	struct blk__file_syscalls saved;  /* the real syscalls, restored in teardown */
};

static int file_setup(void **state)
{
	struct blk_open_opts opts = { .create_size = FILE_SIZE };
	struct file_fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/cxfs-blk-XXXXXX");
	if (!mkdtemp(f->dir))
		goto out_free;
	snprintf(f->path, sizeof(f->path), "%s/dev.img", f->dir);
	f->saved = blk__file_sys;
	if (blk_open(f->path, &opts, &f->dev) != 0)
		goto out_rm;
	*state = f;
	return 0;

out_rm:
	rm_rf(f->dir);
out_free:
	free(f);
	return -1;
}

static int file_teardown(void **state)
{
	struct file_fixture *f = *state;

	blk__file_sys = f->saved;
	blk_close(f->dev);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static void test_file_open(void **state)
{
	struct file_fixture *f = *state;
	struct blk_open_opts ro = { .read_only = 1 };
	struct blk_dev *d2;
	char missing[128];
	struct stat st;
	char buf[16] = { 0 };

	assert_int_equal(blk_size(f->dev), FILE_SIZE);
	assert_int_equal(blk_sector_size(f->dev), 512);
	assert_false(blk_is_iscsi(f->dev));
	assert_string_equal(blk_uri(f->dev), f->path);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, FILE_SIZE);

	snprintf(missing, sizeof(missing), "%s/missing.img", f->dir);
	assert_int_equal(blk_open(missing, NULL, &d2), -ENOENT);
	assert_null(d2);
	assert_int_equal(blk_open("", NULL, &d2), -EINVAL);

	assert_int_equal(blk_open(f->path, &ro, &d2), 0);
	assert_int_equal(blk_write(d2, buf, sizeof(buf), 0), -EROFS);
	assert_int_equal(blk_read(d2, buf, sizeof(buf), 0), 0);
	blk_close(d2);

	/* Malformed iSCSI URIs fail before any connection is attempted. */
	assert_int_equal(blk_open("iscsi://", NULL, &d2), -EINVAL);
	assert_int_equal(blk_open("iscsi://host", NULL, &d2), -EINVAL);
	assert_int_equal(blk_open("iscsi://host/iqn.x", NULL, &d2), -EINVAL);
	assert_int_equal(blk_open("iscsi://host/iqn.x/", NULL, &d2), -EINVAL);
	assert_int_equal(blk_open("iscsi://host//1", NULL, &d2), -EINVAL);
	assert_int_equal(blk_open("iscsi://host:99999/iqn.x/1", NULL, &d2), -EINVAL);
	assert_int_equal(blk_open("iscsi://host:12a/iqn.x/1", NULL, &d2), -EINVAL);
	assert_int_equal(blk_open("iscsi://host/iqn.x/lun", NULL, &d2), -EINVAL);
	assert_int_equal(blk_open("iscsi://[::1/iqn.x/1", NULL, &d2), -EINVAL);
	assert_int_equal(blk_open("iscsi:///iqn.x/1", NULL, &d2), -EINVAL);

	assert_int_equal(blk_pr_register(f->dev, 1), -EOPNOTSUPP);
	assert_int_equal(blk_pr_reserve(f->dev), -EOPNOTSUPP);
	assert_int_equal(blk_pr_preempt(f->dev, 2), -EOPNOTSUPP);
	assert_int_equal(blk_pr_unregister(f->dev), -EOPNOTSUPP);
	assert_int_equal(blk_pr_rejoin(f->dev, 1), -EOPNOTSUPP);
	assert_false(blk_fenced(f->dev));
}

/*
 * Random reads and writes, aligned and not, checked against a model of the
 * whole device and, at the end, against the file itself.
 */
static void model_rw(struct blk_dev *dev, const char *backing, uint64_t size, int ops, uint64_t seed)
{
	unsigned char *model = calloc(1, size), *buf = malloc(1 * MiB + 4096);
	uint64_t s = seed, off;
	size_t len;
	int i;

	assert_non_null(model);
	assert_non_null(buf);
	assert_int_equal(blk_write(dev, model, size, 0), 0);
	for (i = 0; i < ops; i++) {
		uint64_t r = rnd_next(&s);

		switch (r % 4) {
		case 0: /* aligned */
			len = (size_t)(rnd_next(&s) % 64 + 1) * 512;
			off = (rnd_next(&s) % (size / 512)) * 512;
			break;
		case 1: /* tiny, inside or across one sector boundary */
			len = (size_t)(rnd_next(&s) % 16 + 1);
			off = (rnd_next(&s) % (size / 512)) * 512 + 512 - rnd_next(&s) % 24;
			break;
		case 2: /* large, crossing 256 KiB boundaries */
			len = (size_t)(rnd_next(&s) % (1 * MiB)) + 1;
			off = rnd_next(&s) % size;
			break;
		default:
			len = (size_t)(rnd_next(&s) % (16 * KiB)) + 1;
			off = rnd_next(&s) % size;
			break;
		}
		if (off >= size)
			off = size - 1;
		if (len > size - off)
			len = (size_t)(size - off);
		if (r & 0x100) {
			fill_pattern(buf, len, r, off);
			assert_int_equal(blk_write(dev, buf, len, off), 0);
			memcpy(model + off, buf, len);
		} else {
			assert_int_equal(blk_read(dev, buf, len, off), 0);
			assert_memory_equal(buf, model + off, len);
		}
	}
	assert_int_equal(blk_flush(dev), 0);
	if (backing) {
		unsigned char *whole = malloc(size);

		assert_non_null(whole);
		assert_int_equal(pread_file(backing, whole, size, 0), 0);
		assert_memory_equal(whole, model, size);
		free(whole);
	}
	for (off = 0; off < size; off += 1 * MiB) {
		len = size - off < 1 * MiB ? (size_t)(size - off) : 1 * MiB;
		assert_int_equal(blk_read(dev, buf, len, off), 0);
		assert_memory_equal(buf, model + off, len);
	}
	free(buf);
	free(model);
}

static void test_file_rw(void **state)
{
	struct file_fixture *f = *state;
	char buf[4096], out[4096];

	/* A few fixed cases first, so a failure is easy to read. */
	fill_pattern(buf, sizeof(buf), 1, 0);
	assert_int_equal(blk_write(f->dev, buf, 4096, 8192), 0);
	assert_int_equal(blk_read(f->dev, out, 4096, 8192), 0);
	assert_memory_equal(buf, out, 4096);
	assert_int_equal(blk_write(f->dev, "hello", 5, 8192 + 510), 0);
	assert_int_equal(blk_read(f->dev, out, 4096, 8192), 0);
	assert_memory_equal(out, buf, 510);
	assert_memory_equal(out + 510, "hello", 5);
	assert_memory_equal(out + 515, buf + 515, 4096 - 515);
	assert_int_equal(blk_read(f->dev, out, 3, 8192 + 511), 0);
	assert_memory_equal(out, "ell", 3);

	model_rw(f->dev, f->path, FILE_SIZE, 3000, 42);
}

static void test_file_bounds(void **state)
{
	struct file_fixture *f = *state;
	char buf[1024] = { 0 };

	assert_int_equal(blk_read(f->dev, buf, 512, FILE_SIZE), -EINVAL);
	assert_int_equal(blk_read(f->dev, buf, 1024, FILE_SIZE - 512), -EINVAL);
	assert_int_equal(blk_read(f->dev, buf, 2, FILE_SIZE - 1), -EINVAL);
	assert_int_equal(blk_read(f->dev, buf, 1, UINT64_MAX), -EINVAL);
	assert_int_equal(blk_write(f->dev, buf, 512, FILE_SIZE), -ENOSPC);
	assert_int_equal(blk_write(f->dev, buf, 1024, FILE_SIZE - 512), -ENOSPC);
	assert_int_equal(blk_write(f->dev, buf, 2, FILE_SIZE - 1), -ENOSPC);
	assert_int_equal(blk_write(f->dev, buf, 2, UINT64_MAX - 1), -ENOSPC);
	assert_int_equal(blk_read(f->dev, buf, 0, FILE_SIZE), 0);
	assert_int_equal(blk_read(f->dev, buf, 1, FILE_SIZE - 1), 0);
	assert_int_equal(blk_write(f->dev, buf, 1, FILE_SIZE - 1), 0);
	assert_int_equal(blk_write(f->dev, buf, 512, FILE_SIZE - 512), 0);
}

/*
 * Concurrent writers.  The window at 1 MiB + 100 is cut into slots of
 * @stride bytes, dealt round-robin to the threads (slot s * NTHREADS + t
 * belongs to thread t), and each thread writes the first @width bytes of its
 * slots.  With stride 512 the threads' bytes never share a sector; with
 * stride 50 up to eleven slots share one, and every write is a
 * read-modify-write that must not undo a neighbour's.  Each thread also
 * writes an aligned 8 KiB region of its own.
 */
#define NTHREADS 8

struct cw_arg {
	struct blk_dev *dev;
	int t;                            /* thread number */
	uint64_t base;                    /* window start */
	unsigned stride, width, sectors;  /* layout, see above */
	int iters;
	int aligned_region;               /* also write a private aligned region */
	int fails;                        /* number of failed calls */
};

static void *cw_thread(void *p)
{
	struct cw_arg *a = p;
	unsigned char buf[512], big[8192];
	int i;
	unsigned s;

	for (i = 1; i <= a->iters; i++) {
		for (s = 0; s < a->sectors; s++) {
			uint64_t off = a->base + ((uint64_t)s * NTHREADS + (uint64_t)a->t) * a->stride;

			memset(buf, (a->t * 31 + i) & 0xff, a->width);
			if (blk_write(a->dev, buf, a->width, off) != 0)
				a->fails++;
		}
		if (a->aligned_region) {
			uint64_t off = 4 * MiB + (uint64_t)a->t * sizeof(big);

			fill_pattern(big, sizeof(big), (uint64_t)i, off);
			if (blk_write(a->dev, big, sizeof(big), off) != 0)
				a->fails++;
		}
	}
	return NULL;
}

static void run_concurrent_writers(struct blk_dev *dev, unsigned stride, unsigned width, int iters)
{
	struct cw_arg args[NTHREADS];
	pthread_t th[NTHREADS];
	unsigned char sec[512], big[8192];
	unsigned sectors = 16, s;
	int t;

	for (t = 0; t < NTHREADS; t++) {
		args[t] = (struct cw_arg){ .dev = dev, .t = t, .base = 1 * MiB + 100, .stride = stride,
					   .width = width, .sectors = sectors, .iters = iters,
					   .aligned_region = 1 };
		assert_int_equal(pthread_create(&th[t], NULL, cw_thread, &args[t]), 0);
	}
	for (t = 0; t < NTHREADS; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(args[t].fails, 0);
	}
	for (s = 0; s < sectors; s++) {
		for (t = 0; t < NTHREADS; t++) {
			uint64_t off = 1 * MiB + 100 + ((uint64_t)s * NTHREADS + (uint64_t)t) * stride;
			unsigned char want = (unsigned char)((t * 31 + iters) & 0xff);
			unsigned b;

			assert_int_equal(blk_read(dev, sec, width, off), 0);
			for (b = 0; b < width; b++)
				assert_int_equal(sec[b], want);
		}
	}
	for (t = 0; t < NTHREADS; t++) {
		uint64_t off = 4 * MiB + (uint64_t)t * sizeof(big);

		assert_int_equal(blk_read(dev, big, sizeof(big), off), 0);
		assert_int_equal(check_pattern(big, sizeof(big), (uint64_t)iters, off), 0);
	}
}

static void test_file_concurrent_distinct(void **state)
{
	struct file_fixture *f = *state;

	/* stride 512: every thread has its own sectors (still unaligned). */
	run_concurrent_writers(f->dev, 512, 200, 300);
}

static void test_file_concurrent_same_sector(void **state)
{
	struct file_fixture *f = *state;

	/* stride 50: all eight threads write bytes of the same sectors. */
	run_concurrent_writers(f->dev, 50, 50, 1000);
}

/* Fault injection through blk__file_sys. */
static atomic_int fi_calls;

static ssize_t fi_pwrite_eio(int fd, const void *buf, size_t count, off_t offset)
{
	atomic_fetch_add(&fi_calls, 1);
	errno = EIO;
	return -1;
}

static ssize_t fi_pread_eio(int fd, void *buf, size_t count, off_t offset)
{
	atomic_fetch_add(&fi_calls, 1);
	errno = EIO;
	return -1;
}

/* Writes at most 100 bytes per call, after an EINTR on the first call. */
static ssize_t fi_pwrite_short(int fd, const void *buf, size_t count, off_t offset)
{
	if (atomic_fetch_add(&fi_calls, 1) == 0) {
		errno = EINTR;
		return -1;
	}
	return pwrite(fd, buf, count < 100 ? count : 100, offset);
}

static ssize_t fi_pread_short(int fd, void *buf, size_t count, off_t offset)
{
	atomic_fetch_add(&fi_calls, 1);
	return pread(fd, buf, count < 100 ? count : 100, offset);
}

static int fi_fdatasync_count(int fd)
{
	atomic_fetch_add(&fi_calls, 1);
	return fdatasync(fd);
}

static int fi_fdatasync_eio(int fd)
{
	errno = EIO;
	return -1;
}

static void test_file_faults(void **state)
{
	struct file_fixture *f = *state;
	unsigned char buf[4096], out[4096];
	struct blk_stats st0, st1;

	fill_pattern(buf, sizeof(buf), 7, 0);
	assert_int_equal(blk_write(f->dev, buf, sizeof(buf), 0), 0);
	blk_get_stats(f->dev, &st0);

	/* A failing pwrite: -EIO, aligned and unaligned, data unchanged. */
	atomic_store(&fi_calls, 0);
	blk__file_sys.pwrite = fi_pwrite_eio;
	assert_int_equal(blk_write(f->dev, out, 4096, 0), -EIO);
	assert_int_equal(blk_write(f->dev, out, 10, 3), -EIO);
	assert_true(atomic_load(&fi_calls) >= 2);
	blk__file_sys.pwrite = f->saved.pwrite;
	assert_int_equal(blk_read(f->dev, out, sizeof(out), 0), 0);
	assert_memory_equal(out, buf, sizeof(out));

	/* Failed calls are not counted. */
	blk_get_stats(f->dev, &st1);
	assert_int_equal(st1.writes, st0.writes);
	st0 = st1;

	/* A failing pread fails reads and read-modify-writes. */
	blk__file_sys.pread = fi_pread_eio;
	assert_int_equal(blk_read(f->dev, out, 4096, 0), -EIO);
	assert_int_equal(blk_read(f->dev, out, 10, 3), -EIO);
	assert_int_equal(blk_write(f->dev, out, 10, 3), -EIO);
	blk__file_sys.pread = f->saved.pread;
	blk_get_stats(f->dev, &st1);
	assert_int_equal(st1.writes, st0.writes);
	assert_int_equal(st1.reads, st0.reads);

	/* Short writes and reads (and an EINTR) are completed. */
	atomic_store(&fi_calls, 0);
	blk__file_sys.pwrite = fi_pwrite_short;
	blk__file_sys.pread = fi_pread_short;
	fill_pattern(buf, sizeof(buf), 8, 0);
	assert_int_equal(blk_write(f->dev, buf, sizeof(buf), 0), 0);
	assert_true(atomic_load(&fi_calls) > 40);
	assert_int_equal(blk_write(f->dev, "xyz", 3, 1000), 0);
	memcpy(buf + 1000, "xyz", 3);
	assert_int_equal(blk_read(f->dev, out, sizeof(out), 0), 0);
	assert_memory_equal(out, buf, sizeof(out));
	blk__file_sys = f->saved;
	assert_int_equal(pread_file(f->path, out, sizeof(out), 0), 0);
	assert_memory_equal(out, buf, sizeof(out));

	/* A failing fdatasync fails the flush and is not counted. */
	blk__file_sys.fdatasync = fi_fdatasync_eio;
	assert_int_equal(blk_flush(f->dev), -EIO);
	blk__file_sys = f->saved;
	blk_get_stats(f->dev, &st1);
	assert_int_equal(st1.flushes, st0.flushes);
}

static void test_file_flush_stats(void **state)
{
	struct file_fixture *f = *state;
	struct blk_stats st;
	char buf[1000] = { 1 };
	int i;

	atomic_store(&fi_calls, 0);
	blk__file_sys.fdatasync = fi_fdatasync_count;
	for (i = 0; i < 5; i++)
		assert_int_equal(blk_flush(f->dev), 0);
	assert_int_equal(atomic_load(&fi_calls), 5);
	assert_int_equal(blk_write(f->dev, buf, 1000, 0), 0);
	assert_int_equal(blk_write(f->dev, buf, 512, 512), 0);
	assert_int_equal(blk_read(f->dev, buf, 1000, 3), 0);
	blk_get_stats(f->dev, &st);
	assert_int_equal(st.flushes, 5);
	assert_int_equal(st.writes, 2);
	assert_int_equal(st.bytes_written, 1512);
	assert_int_equal(st.reads, 1);
	assert_int_equal(st.bytes_read, 1000);
	assert_int_equal(st.reconnects, 0);
}

static void count_fence(struct blk_dev *dev, void *arg)
{
	(void)dev;
	(*(int *)arg)++;
}

/*
 * The fenced state is backend-independent: once set (here directly, as the
 * iSCSI I/O thread does on a reservation conflict) writes and flushes fail
 * with BLK_EFENCED without reaching the backend, reads go on, and the
 * callback runs once per fence.
 */
static void test_file_fenced_state(void **state)
{
	struct file_fixture *f = *state;
	struct blk_stats st;
	char buf[4096] = { 7 };
	int calls = 0;

	blk_set_fence_cb(f->dev, count_fence, &calls);
	assert_int_equal(blk_write(f->dev, buf, sizeof(buf), 0), 0);
	blk__fence(f->dev, "unit test");
	blk__fence(f->dev, "unit test, again");
	assert_int_equal(calls, 1);
	assert_true(blk_fenced(f->dev));
	assert_int_equal(blk_write(f->dev, buf, sizeof(buf), 0), BLK_EFENCED);
	assert_int_equal(blk_write(f->dev, buf, 10, 3), BLK_EFENCED);
	assert_int_equal(blk_write_padded(f->dev, 0, 4096, buf, 0, 100), BLK_EFENCED);
	assert_int_equal(blk_flush(f->dev), BLK_EFENCED);
	assert_int_equal(blk_read(f->dev, buf, sizeof(buf), 0), 0);
	assert_int_equal(buf[0], 7);
	blk_get_stats(f->dev, &st);
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.reservation_conflicts, 0); /* none came from a target */
	assert_int_equal(BLK_EFENCED, -EACCES);
}

/* Big-endian helpers to build PERSISTENT RESERVE IN data by hand. */
static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

/* READ KEYS data: generation, additional length, then the keys. */
static size_t build_keys(unsigned char *d, uint32_t gen, const uint64_t *keys, unsigned n)
{
	unsigned i;

	put_be32(d, gen);
	put_be32(d + 4, 8 * n);
	for (i = 0; i < n; i++)
		put_be64(d + 8 + 8 * i, keys[i]);
	return 8 + 8 * (size_t)n;
}

static void test_pr_decode(void **state)
{
	static const uint64_t keys[] = { 0x1122334455667788ULL, 0xaa, 0xaa };
	unsigned char d[64];
	struct blk_pr_state st;
	size_t len;

	(void)state;
	memset(&st, 0, sizeof(st));
	len = build_keys(d, 0x01020304, keys, 3);
	assert_int_equal(blk__pr_parse_keys(d, len, &st), 0);
	assert_int_equal(st.generation, 0x01020304);
	assert_int_equal(st.n_keys, 3);
	assert_true(st.keys[0] == 0x1122334455667788ULL);
	assert_int_equal(blk__pr_count(&st, 0xaa), 2);
	assert_int_equal(blk__pr_count(&st, 0xbb), 0);
	/* Data cut short (allocation length): the count stays the target's,
	 * the keys not received are not counted. */
	assert_int_equal(blk__pr_parse_keys(d, 8 + 8 + 4, &st), 0);
	assert_int_equal(st.n_keys, 3);
	assert_int_equal(blk__pr_count(&st, 0x1122334455667788ULL), 1);
	assert_int_equal(blk__pr_count(&st, 0xaa), 0);
	assert_int_equal(blk__pr_parse_keys(d, 7, &st), -EIO);

	/* READ RESERVATION: none, then WE-RO held by key 0xaa. */
	memset(d, 0, sizeof(d));
	put_be32(d, 9);
	assert_int_equal(blk__pr_parse_reservation(d, 8, &st), 0);
	assert_false(st.reserved);
	put_be32(d + 4, 16);
	put_be64(d + 8, 0xaa);
	d[21] = 0x00 << 4 | BLK_PR_TYPE_WE_RO; /* scope LU, type 5 */
	assert_int_equal(blk__pr_parse_reservation(d, 24, &st), 0);
	assert_true(st.reserved);
	assert_int_equal(st.type, 5);
	assert_true(st.holder == 0xaa);
	assert_int_equal(blk__pr_parse_reservation(d, 12, &st), -EIO);
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Check the PERSISTENT RESERVE OUT task for @req: CDB and parameter list. */
static void check_pr_out(const struct blk__pr_out *req, unsigned char sa, unsigned char scope_type)
{
	struct scsi_task *t = blk__iscsi_pr_out_task(req);
	const unsigned char *p;

	assert_non_null(t);
	assert_int_equal(t->cdb_size, 10);
	assert_int_equal(t->cdb[0], 0x5f);             /* PERSISTENT RESERVE OUT */
	assert_int_equal(t->cdb[1] & 0x1f, sa);        /* service action */
	assert_int_equal(t->cdb[2], scope_type);       /* scope (LU_SCOPE 0) | type */
	assert_int_equal(t->cdb[5] << 24 | t->cdb[6] << 16 | t->cdb[7] << 8 | t->cdb[8], 24);
	assert_int_equal(t->xfer_dir, SCSI_XFER_WRITE);
	assert_int_equal(t->expxferlen, 24);
	assert_int_equal(t->iovector_out.niov, 1);
	assert_int_equal(t->iovector_out.iov[0].iov_len, 24);
	p = t->iovector_out.iov[0].iov_base;
	assert_true(get_be64(p) == req->key);          /* RESERVATION KEY */
	assert_true(get_be64(p + 8) == req->sa_key);   /* SERVICE ACTION RESERVATION KEY */
	assert_int_equal(p[20], 0);                    /* no SPEC_I_PT, ALL_TG_PT, APTPL */
	scsi_free_scsi_task(t);
}

/* What goes on the wire for each PERSISTENT RESERVE OUT we send (SPC-3 6.12). */
static void test_pr_out_encoding(void **state)
{
	const uint64_t k = 0xc0f5000100000001ULL, v = 0xc0f5000100000002ULL;
	struct blk__pr_out reg = { .sa = BLK__PR_REGISTER_IGNORE, .sa_key = k };
	struct blk__pr_out unreg = { .sa = BLK__PR_REGISTER_IGNORE };
	struct blk__pr_out res = { .sa = BLK__PR_RESERVE, .type = BLK_PR_TYPE_WE_RO, .key = k };
	struct blk__pr_out pre = { .sa = BLK__PR_PREEMPT, .type = BLK_PR_TYPE_WE_RO, .key = k, .sa_key = v };

	(void)state;
	check_pr_out(&reg, 0x06, 0x00);
	check_pr_out(&unreg, 0x06, 0x00);
	check_pr_out(&res, 0x01, 0x05);
	check_pr_out(&pre, 0x04, 0x05);
}

/* The verdict on a key registered again after a reconnect. */
static void test_pr_reregistered(void **state)
{
	struct blk_pr_state before, after;
	const uint64_t k = 0xaa, other = 0xbb;

	(void)state;
	memset(&before, 0, sizeof(before));
	memset(&after, 0, sizeof(after));
	/* tgtd: the old session's registration stays listed. */
	before.generation = 10;
	before.n_keys = 2;
	before.keys[0] = k;
	before.keys[1] = other;
	after = before;
	after.generation = 11;
	after.n_keys = 3;
	after.keys[2] = k;
	assert_true(blk__pr_reregistered(k, &before, &after));
	/* Someone else registered meanwhile: the count still proves it. */
	after.generation = 12;
	after.n_keys = 4;
	after.keys[3] = 0xcc;
	assert_true(blk__pr_reregistered(k, &before, &after));
	/* A preempt of k came between the two reads: only ours is left. */
	after.generation = 12;
	after.n_keys = 2;
	after.keys[0] = other;
	after.keys[1] = k;
	assert_false(blk__pr_reregistered(k, &before, &after));
	/* A target that replaced the registration in place: one step is
	 * proof, more steps with the same count are taken for a preempt. */
	before.n_keys = 1;
	before.keys[0] = k;
	after = before;
	after.generation = 11;
	assert_true(blk__pr_reregistered(k, &before, &after));
	after.generation = 13;
	assert_false(blk__pr_reregistered(k, &before, &after));
	/* Our key is missing afterwards. */
	after.generation = 11;
	after.keys[0] = other;
	assert_false(blk__pr_reregistered(k, &before, &after));
}

/* ------------------------------------------------------------------ */
/* iSCSI backend against a real tgtd                                   */
/* ------------------------------------------------------------------ */

#define TGT_IQN "iqn.2026-11.org.cxfs.test:blk"

struct tgt {
	int available;                    /* tgtd and tgtadm were found */
	char tgtd[PATH_MAX], tgtadm[PATH_MAX];
	char dir[64];                     /* mkdtemp directory */
	char lun_path[96];                /* the 64 MiB backing file */
	char log_path[96];                /* tgtd's output */
	int ctl_port, iscsi_port;
	pid_t pid;                        /* the running tgtd, or 0 */
	char uri[128];
	struct blk_dev *dev;              /* opened per test */
};

static struct tgt tgt;

static int find_prog(const char *name, char *out, size_t outlen)
{
	const char *path = getenv("PATH");
	char buf[4096];
	char *dir, *save = NULL;

	snprintf(buf, sizeof(buf), "%s:/usr/sbin:/sbin:/usr/local/sbin", path ? path : "/usr/bin:/bin");
	for (dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(out, outlen, "%s/%s", dir, name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

/* Run @argv with output to tgtd's log; returns its exit status or -1. */
static int run(char *const argv[])
{
	pid_t pid = fork();
	int status, fd;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		fd = open(tgt.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int tgtadm(const char *fmt, ...)
{
	char line[512], ctl[16], *argv[32], *save = NULL, *tok;
	va_list ap;
	int argc = 0;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	snprintf(ctl, sizeof(ctl), "%d", tgt.ctl_port);
	argv[argc++] = tgt.tgtadm;
	argv[argc++] = "-C";
	argv[argc++] = ctl;
	for (tok = strtok_r(line, " ", &save); tok && argc < 31; tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;
	return run(argv);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Start tgtd and configure the target and its LUN; 0 on success. */
static int tgt_start(void)
{
	char ctl[16], portal[64];
	int i, fd;
	pid_t pid;

	snprintf(ctl, sizeof(ctl), "%d", tgt.ctl_port);
	snprintf(portal, sizeof(portal), "portal=127.0.0.1:%d", tgt.iscsi_port);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* Die with the test, even if it crashes before its teardown. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(tgt.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(tgt.tgtd, tgt.tgtd, "-f", "-C", ctl, "--iscsi", portal, (char *)NULL);
		_exit(127);
	}
	tgt.pid = pid;
	/* tgtadm fails until tgtd listens on its control socket. */
	for (i = 0; i < 100; i++) {
		if (tgtadm("--lld iscsi --op new --mode target --tid 1 -T %s", TGT_IQN) == 0)
			break;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			tgt.pid = 0;
			return -1;
		}
		sleep_ms(50);
	}
	if (i == 100)
		return -1;
	if (tgtadm("--lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b %s", tgt.lun_path) != 0 ||
	    tgtadm("--lld iscsi --op bind --mode target --tid 1 -I ALL") != 0)
		return -1;
	return 0;
}

static void tgt_kill(void)
{
	if (tgt.pid > 0) {
		kill(tgt.pid, SIGKILL);
		waitpid(tgt.pid, NULL, 0);
		tgt.pid = 0;
	}
}

static int iscsi_group_setup(void **state)
{
	int fd;

	if (find_prog("tgtd", tgt.tgtd, sizeof(tgt.tgtd)) < 0 ||
	    find_prog("tgtadm", tgt.tgtadm, sizeof(tgt.tgtadm)) < 0)
		return 0; /* tests skip */
	tgt.ctl_port = 1000 + getpid() % 20000;
	tgt.iscsi_port = 20000 + getpid() % 20000;
	strcpy(tgt.dir, "/tmp/cxfs-blk-tgt-XXXXXX");
	if (!mkdtemp(tgt.dir))
		return -1;
	snprintf(tgt.lun_path, sizeof(tgt.lun_path), "%s/lun.img", tgt.dir);
	snprintf(tgt.log_path, sizeof(tgt.log_path), "%s/tgtd.log", tgt.dir);
	fd = open(tgt.lun_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, LUN_SIZE) < 0) {
		if (fd >= 0)
			close(fd);
		goto out_rm;
	}
	close(fd);
	snprintf(tgt.uri, sizeof(tgt.uri), "iscsi://127.0.0.1:%d/%s/1", tgt.iscsi_port, TGT_IQN);
	if (tgt_start() < 0) {
		char cmd[160];

		fprintf(stderr, "could not start tgtd; its log:\n");
		snprintf(cmd, sizeof(cmd), "cat %s >&2", tgt.log_path);
		if (system(cmd) != 0)
			fprintf(stderr, "(no log)\n");
		goto out_kill;
	}
	tgt.available = 1;
	return 0;

out_kill:
	tgt_kill();
out_rm:
	rm_rf(tgt.dir);
	return -1;
}

static int iscsi_group_teardown(void **state)
{
	tgt_kill();
	if (tgt.dir[0])
		rm_rf(tgt.dir);
	return 0;
}

static int iscsi_setup(void **state)
{
	if (!tgt.available)
		return 0;
	return blk_open(tgt.uri, NULL, &tgt.dev) == 0 ? 0 : -1;
}

static int iscsi_teardown(void **state)
{
	blk_close(tgt.dev);
	tgt.dev = NULL;
	return 0;
}

#define REQUIRE_TGTD()                                                  \
	do {                                                            \
		if (!tgt.available) {                                   \
			fprintf(stderr, "tgtd not installed: skipping\n"); \
			skip();                                         \
		}                                                       \
	} while (0)

static void test_iscsi_capacity(void **state)
{
	struct blk_dev *d;
	char uri[160];

	REQUIRE_TGTD();
	assert_int_equal(blk_size(tgt.dev), LUN_SIZE);
	assert_int_equal(blk_sector_size(tgt.dev), 512);
	assert_true(blk_is_iscsi(tgt.dev));
	assert_string_equal(blk_uri(tgt.dev), tgt.uri);

	/* A target that does not exist, and a port nobody listens on. */
	snprintf(uri, sizeof(uri), "iscsi://127.0.0.1:%d/iqn.2026-11.org.cxfs.test:none/1", tgt.iscsi_port);
	assert_true(blk_open(uri, NULL, &d) < 0);
	assert_null(d);
	snprintf(uri, sizeof(uri), "iscsi://127.0.0.1:%d/%s/1", tgt.iscsi_port == 65535 ? 1 : tgt.iscsi_port + 1,
		 TGT_IQN);
	assert_int_equal(blk_open(uri, NULL, &d), -ECONNREFUSED);
}

static void test_iscsi_rw(void **state)
{
	char buf[512] = { 0 };

	REQUIRE_TGTD();
	assert_int_equal(blk_read(tgt.dev, buf, 512, LUN_SIZE), -EINVAL);
	assert_int_equal(blk_write(tgt.dev, buf, 2, LUN_SIZE - 1), -ENOSPC);
	/* The whole LUN through the model: 64 MiB, aligned and unaligned. */
	model_rw(tgt.dev, tgt.lun_path, LUN_SIZE, 600, 4242);
}

#define IO_CHUNK (256 * KiB)
#define IO_SLOTS 24                       /* 256 KiB blocks per thread: 6 MiB */

struct io_arg {
	struct blk_dev *dev;
	int t, iters;
	int fails, mismatches;
	unsigned gen[IO_SLOTS];           /* generation last written to each slot */
};

static void *io_thread(void *p)
{
	struct io_arg *a = p;
	unsigned char *buf = malloc(4 * IO_CHUNK), *rd = malloc(4 * IO_CHUNK);
	uint64_t s = (uint64_t)a->t + 1;
	int i, k, n;

	for (i = 1; i <= a->iters && buf && rd; i++) {
		/* Mostly single 256 KiB commands; every eighth a 1 MiB request
		 * that the backend splits into four commands in flight. */
		n = i % 8 == 0 ? 4 : 1;
		k = (int)(rnd_next(&s) % (IO_SLOTS - n + 1));
		uint64_t off = ((uint64_t)a->t * IO_SLOTS + (uint64_t)k) * IO_CHUNK;
		int j;

		for (j = 0; j < n; j++)
			fill_pattern(buf + (size_t)j * IO_CHUNK, IO_CHUNK, (uint64_t)i << 8 | (uint64_t)a->t,
				     off + (uint64_t)j * IO_CHUNK);
		if (blk_write(a->dev, buf, (size_t)n * IO_CHUNK, off) != 0) {
			a->fails++;
			continue;
		}
		for (j = 0; j < n; j++)
			a->gen[k + j] = (unsigned)i;
		if (blk_read(a->dev, rd, (size_t)n * IO_CHUNK, off) != 0)
			a->fails++;
		else if (memcmp(rd, buf, (size_t)n * IO_CHUNK) != 0)
			a->mismatches++;
	}
	free(buf);
	free(rd);
	return NULL;
}

static void test_iscsi_concurrent(void **state)
{
	struct io_arg *args = calloc(NTHREADS, sizeof(*args));
	pthread_t th[NTHREADS];
	unsigned char *buf = malloc(IO_CHUNK), *fbuf = malloc(IO_CHUNK);
	struct blk_stats st;
	int t, k;

	REQUIRE_TGTD();
	assert_non_null(args);
	assert_non_null(buf);
	assert_non_null(fbuf);
	for (t = 0; t < NTHREADS; t++) {
		args[t].dev = tgt.dev;
		args[t].t = t;
		args[t].iters = 100;
		assert_int_equal(pthread_create(&th[t], NULL, io_thread, &args[t]), 0);
	}
	for (t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	assert_int_equal(blk_flush(tgt.dev), 0);
	for (t = 0; t < NTHREADS; t++) {
		assert_int_equal(args[t].fails, 0);
		assert_int_equal(args[t].mismatches, 0);
		for (k = 0; k < IO_SLOTS; k++) {
			uint64_t off = ((uint64_t)t * IO_SLOTS + (uint64_t)k) * IO_CHUNK;
			uint64_t seed = (uint64_t)args[t].gen[k] << 8 | (uint64_t)t;

			if (!args[t].gen[k])
				continue;
			assert_int_equal(blk_read(tgt.dev, buf, IO_CHUNK, off), 0);
			assert_int_equal(check_pattern(buf, IO_CHUNK, seed, off), 0);
			assert_int_equal(pread_file(tgt.lun_path, fbuf, IO_CHUNK, off), 0);
			assert_memory_equal(fbuf, buf, IO_CHUNK);
		}
	}
	blk_get_stats(tgt.dev, &st);
	assert_true(st.writes >= NTHREADS * 100);
	assert_int_equal(st.reconnects, 0);
	free(fbuf);
	free(buf);
	free(args);
}

static void test_iscsi_flush(void **state)
{
	struct blk_stats st;
	char buf[4096];
	int i;

	REQUIRE_TGTD();
	fill_pattern(buf, sizeof(buf), 99, 0);
	for (i = 0; i < 10; i++) {
		assert_int_equal(blk_write(tgt.dev, buf, sizeof(buf), (uint64_t)i * 8192 + 7), 0);
		assert_int_equal(blk_flush(tgt.dev), 0);
	}
	blk_get_stats(tgt.dev, &st);
	assert_int_equal(st.flushes, 10);
	assert_int_equal(st.writes, 10);
}

/*
 * Kill tgtd with SIGKILL under a writer, start a new one with the same
 * configuration, and check that every write that returned 0 is on the LUN.
 */
#define RC_BLOCK (64 * KiB)
#define RC_BLOCKS 400

struct rc_arg {
	struct blk_dev *dev;
	atomic_int acked;                 /* blocks [0, acked) were written and read back */
	int fails, mismatches;
};

static void *rc_writer(void *p)
{
	struct rc_arg *a = p;
	unsigned char *buf = malloc(RC_BLOCK), *rd = malloc(RC_BLOCK);
	int i;

	for (i = 0; i < RC_BLOCKS && buf && rd; i++) {
		uint64_t off = (uint64_t)i * RC_BLOCK;

		fill_pattern(buf, RC_BLOCK, 0xabcdef, off);
		if (blk_write(a->dev, buf, RC_BLOCK, off) != 0) {
			a->fails++;
			break;
		}
		if (blk_read(a->dev, rd, RC_BLOCK, off) != 0) {
			a->fails++;
			break;
		}
		if (memcmp(rd, buf, RC_BLOCK) != 0)
			a->mismatches++;
		atomic_store(&a->acked, i + 1);
		/* Pace the writer so that the restart lands mid-sequence. */
		if (i % 8 == 0)
			sleep_ms(2);
	}
	free(buf);
	free(rd);
	return NULL;
}

static void test_iscsi_reconnect(void **state)
{
	struct rc_arg a = { .dev = tgt.dev };
	unsigned char *buf = malloc(RC_BLOCK);
	struct blk_stats st;
	pthread_t th;
	int i, acked_at_kill;

	REQUIRE_TGTD();
	assert_non_null(buf);
	/* Clear the area so that stale data from earlier tests cannot pass. */
	memset(buf, 0, RC_BLOCK);
	for (i = 0; i < RC_BLOCKS; i++)
		assert_int_equal(blk_write(tgt.dev, buf, RC_BLOCK, (uint64_t)i * RC_BLOCK), 0);

	assert_int_equal(pthread_create(&th, NULL, rc_writer, &a), 0);
	while (atomic_load(&a.acked) < 60)
		sleep_ms(1);
	acked_at_kill = atomic_load(&a.acked);
	tgt_kill();
	sleep_ms(300); /* the writer is now stuck reconnecting */
	assert_int_equal(tgt_start(), 0);
	pthread_join(th, NULL);

	assert_int_equal(a.fails, 0);
	assert_int_equal(a.mismatches, 0);
	assert_int_equal(atomic_load(&a.acked), RC_BLOCKS);
	assert_true(acked_at_kill < RC_BLOCKS);
	blk_get_stats(tgt.dev, &st);
	assert_true(st.reconnects >= 1);
	assert_int_equal(blk_flush(tgt.dev), 0);
	for (i = 0; i < RC_BLOCKS; i++) {
		uint64_t off = (uint64_t)i * RC_BLOCK;

		assert_int_equal(blk_read(tgt.dev, buf, RC_BLOCK, off), 0);
		assert_int_equal(check_pattern(buf, RC_BLOCK, 0xabcdef, off), 0);
		assert_int_equal(pread_file(tgt.lun_path, buf, RC_BLOCK, off), 0);
		assert_int_equal(check_pattern(buf, RC_BLOCK, 0xabcdef, off), 0);
	}
	free(buf);
}

/*
 * Fencing: two initiators register, one takes the WE-RO reservation (the
 * other shares it), an unregistered initiator may read but not write; one
 * preempts the other, whose writes then fail with BLK_EFENCED while its own
 * still succeed.  Runs last: it leaves a reservation on the LUN.  The full
 * scenario, with reconnects, is test/integration/t_fence_blk.sh.
 */
static void test_iscsi_pr(void **state)
{
	struct blk_open_opts oa = { .initiator = "iqn.2026-11.org.cxfs.test:node-a" };
	struct blk_open_opts ob = { .initiator = "iqn.2026-11.org.cxfs.test:node-b" };
	struct blk_pr_state st;
	struct blk_stats bs;
	struct blk_dev *a, *b;
	char buf[4096] = { 5 };

	REQUIRE_TGTD();
	assert_int_equal(blk_open(tgt.uri, &oa, &a), 0);
	assert_int_equal(blk_open(tgt.uri, &ob, &b), 0);
	assert_int_equal(blk_pr_register(a, 0xaaaa), 0);
	assert_int_equal(blk_pr_register(b, 0xbbbb), 0);
	assert_int_equal(blk_pr_reserve(a), 0);
	assert_int_equal(blk_pr_reserve(b), 0); /* held by a: shared */
	assert_int_equal(blk_pr_read(b, &st), 0);
	assert_true(st.reserved);
	assert_int_equal(st.type, BLK_PR_TYPE_WE_RO);
	assert_true(st.holder == 0xaaaa);
	assert_int_equal(st.n_keys, 2);
	assert_int_equal(blk_write(a, buf, sizeof(buf), 0), 0);
	assert_int_equal(blk_write(b, buf, sizeof(buf), 4096), 0);
	/* An unregistered initiator may read, not write. */
	assert_int_equal(blk_read(tgt.dev, buf, sizeof(buf), 0), 0);
	assert_int_equal(blk_write(tgt.dev, buf, sizeof(buf), 8192), BLK_EFENCED);
	assert_true(blk_fenced(tgt.dev));
	assert_int_equal(blk_pr_preempt(a, 0xaaaa), -EINVAL);
	assert_int_equal(blk_pr_preempt(a, 0xbbbb), 0);
	assert_int_equal(blk_pr_preempt(a, 0xbbbb), 0); /* already gone */
	assert_int_equal(blk_write(b, buf, sizeof(buf), 4096), BLK_EFENCED);
	assert_true(blk_fenced(b));
	blk_get_stats(b, &bs);
	assert_int_equal(bs.reservation_conflicts, 1);
	assert_int_equal(blk_write(a, buf, sizeof(buf), 0), 0);
	assert_int_equal(blk_read(b, buf, sizeof(buf), 0), 0);
	assert_int_equal(blk_pr_register(b, 0xbbbb), BLK_EFENCED);
	assert_int_equal(blk_pr_preempt(b, 0xaaaa), BLK_EFENCED);
	assert_int_equal(blk_pr_rejoin(b, 0xbbbb), 0);
	assert_false(blk_fenced(b));
	assert_int_equal(blk_write(b, buf, sizeof(buf), 4096), 0);
	blk_close(b);
	blk_close(a);
}

/*
 * tgtd keeps no reservation state across a restart: after the reconnect a
 * registered device finds its key gone, which cannot be told from a
 * preempt, so it is fenced (without any refused write) and stays so until
 * it rejoins.  Runs after test_iscsi_pr: the restart clears what that left.
 */
static void test_iscsi_pr_target_restart(void **state)
{
	struct blk_open_opts oa = { .initiator = "iqn.2026-11.org.cxfs.test:node-a" };
	struct blk_pr_state st;
	struct blk_stats bs;
	struct blk_dev *a;
	char buf[4096] = { 9 };

	REQUIRE_TGTD();
	assert_int_equal(blk_open(tgt.uri, &oa, &a), 0);
	assert_int_equal(blk_pr_register(a, 0xaaaa), 0);
	assert_int_equal(blk_pr_reserve(a), 0);
	assert_int_equal(blk_write(a, buf, sizeof(buf), 0), 0);
	tgt_kill();
	assert_int_equal(tgt_start(), 0);
	assert_int_equal(blk_write(a, buf, sizeof(buf), 0), BLK_EFENCED);
	assert_true(blk_fenced(a));
	blk_get_stats(a, &bs);
	assert_true(bs.reconnects >= 1);
	assert_int_equal(bs.reservation_conflicts, 0);
	assert_int_equal(blk_pr_read(a, &st), 0);
	assert_int_equal(st.n_keys, 0);
	assert_false(st.reserved);
	assert_int_equal(blk_pr_rejoin(a, 0xaaaa), 0);
	assert_int_equal(blk_pr_reserve(a), 0);
	assert_int_equal(blk_write(a, buf, sizeof(buf), 0), 0);
	blk_close(a);
}

int main(void)
{
	const struct CMUnitTest file_tests[] = {
		cmocka_unit_test_setup_teardown(test_file_open, file_setup, file_teardown),
		cmocka_unit_test_setup_teardown(test_file_rw, file_setup, file_teardown),
		cmocka_unit_test_setup_teardown(test_file_bounds, file_setup, file_teardown),
		cmocka_unit_test_setup_teardown(test_file_concurrent_distinct, file_setup, file_teardown),
		cmocka_unit_test_setup_teardown(test_file_concurrent_same_sector, file_setup, file_teardown),
		cmocka_unit_test_setup_teardown(test_file_faults, file_setup, file_teardown),
		cmocka_unit_test_setup_teardown(test_file_flush_stats, file_setup, file_teardown),
		cmocka_unit_test_setup_teardown(test_file_fenced_state, file_setup, file_teardown),
		cmocka_unit_test(test_pr_decode),
		cmocka_unit_test(test_pr_out_encoding),
		cmocka_unit_test(test_pr_reregistered),
	};
	const struct CMUnitTest iscsi_tests[] = {
		cmocka_unit_test_setup_teardown(test_iscsi_capacity, iscsi_setup, iscsi_teardown),
		cmocka_unit_test_setup_teardown(test_iscsi_rw, iscsi_setup, iscsi_teardown),
		cmocka_unit_test_setup_teardown(test_iscsi_concurrent, iscsi_setup, iscsi_teardown),
		cmocka_unit_test_setup_teardown(test_iscsi_flush, iscsi_setup, iscsi_teardown),
		cmocka_unit_test_setup_teardown(test_iscsi_reconnect, iscsi_setup, iscsi_teardown),
		cmocka_unit_test_setup_teardown(test_iscsi_pr, iscsi_setup, iscsi_teardown),
		cmocka_unit_test_setup_teardown(test_iscsi_pr_target_restart, iscsi_setup, iscsi_teardown),
	};
	int failed;

	failed = cmocka_run_group_tests_name("blk_file", file_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("blk_iscsi", iscsi_tests, iscsi_group_setup, iscsi_group_teardown);
	return failed;
}
