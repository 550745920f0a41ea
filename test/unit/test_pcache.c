/*
 * test_pcache.c - unit tests of src/cluster/cl_pcache.c, a client node's
 * data cache: reading what was written (whole and partial blocks, a
 * partial block needing its base), runs to write back (merged only where
 * file and volume blocks are consecutive and unwritten-ness agrees, in
 * file order), pages written again during a write-back stay dirty, a
 * failed write-back drops its pages, the clean bound evicts the least
 * recently used page, dropping a range, the fill generation, the dirty
 * bound (a writer waits until a write-back makes room), and the list of
 * files with dirty pages.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster/cl_pcache.h"

#define BS 512u

struct fx {
	struct cl_pc *pc;
	struct cl_pcf *f;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	x->pc = cl_pc_create(BS, 8 * BS, 4 * BS);
	x->f = cl_pcf_create(x->pc, 42);
	*state = x;
	return x->pc && x->f ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	cl_pcf_destroy(x->pc, x->f);
	cl_pc_destroy(x->pc);
	free(x);
	return 0;
}

static void block(char *b, char c)
{
	memset(b, c, BS);
}

static void test_put_get(void **state)
{
	struct fx *x = *state;
	char b[BS], out[BS], base[BS];
	struct cl_pc_counts n;
	uint64_t *blks;

	block(b, 'a');
	assert_false(cl_pc_get(x->pc, x->f, 3, 0, BS, out));
	assert_int_equal(cl_pc_put(x->pc, x->f, 3, 0, b, BS, 103, false, NULL), 0);
	assert_true(cl_pc_get(x->pc, x->f, 3, 0, BS, out));
	assert_memory_equal(out, b, BS);
	/* A partial write of a block not cached needs its base. */
	assert_int_equal(cl_pc_put(x->pc, x->f, 4, 10, "xy", 2, 104, true, NULL), -ENOENT);
	block(base, 0);
	assert_int_equal(cl_pc_put(x->pc, x->f, 4, 10, "xy", 2, 104, true, base), 0);
	assert_true(cl_pc_get(x->pc, x->f, 4, 9, 4, out));
	assert_memory_equal(out, "\0xy\0", 4);
	/* A partial write of a cached block keeps the rest. */
	assert_int_equal(cl_pc_put(x->pc, x->f, 3, 1, "Z", 1, 103, false, NULL), 0);
	assert_true(cl_pc_get(x->pc, x->f, 3, 0, 3, out));
	assert_memory_equal(out, "aZa", 3);
	assert_int_equal(cl_pc_dirty_list(x->pc, x->f, &blks), 2);
	free(blks);
	cl_pc_counts(x->pc, &n);
	assert_int_equal(n.dirty_bytes, 2 * BS);
	assert_int_equal(n.hits, 3);
	assert_int_equal(n.misses, 1);
}

static void test_runs(void **state)
{
	struct fx *x = *state;
	char b[BS], buf[8 * BS];
	uint64_t *blks, *dl, blk0, pblk, ticket;
	size_t n, used, got, i = 0;
	bool unw;

	/* File blocks 1,2,3 at 11,12,13 (data); 4 at 14 but unwritten; 6 at 30; 7 at 32. */
	for (uint64_t f = 1; f <= 3; f++) {
		block(b, (char)('0' + f));
		assert_int_equal(cl_pc_put(x->pc, x->f, f, 0, b, BS, 10 + f, false, NULL), 0);
	}
	block(b, '4');
	assert_int_equal(cl_pc_put(x->pc, x->f, 4, 0, b, BS, 14, true, NULL), 0);
	block(b, '6');
	assert_int_equal(cl_pc_put(x->pc, x->f, 6, 0, b, BS, 30, false, NULL), 0);
	block(b, '7');
	assert_int_equal(cl_pc_put(x->pc, x->f, 7, 0, b, BS, 32, false, NULL), 0);
	n = cl_pc_dirty_list(x->pc, x->f, &blks);
	assert_int_equal(n, 6);
	for (size_t k = 1; k < n; k++)
		assert_true(blks[k - 1] < blks[k]);

	got = cl_pc_run(x->pc, x->f, blks, n, 8, buf, &used, &blk0, &pblk, &unw, &ticket);
	assert_int_equal(got, 3);
	assert_int_equal(blk0, 1);
	assert_int_equal(pblk, 11);
	assert_false(unw);
	assert_int_equal(buf[0], '1');
	assert_int_equal(buf[2 * BS], '3');
	i += used;
	/* Block 2 is written again while the run is on its way: it stays dirty. */
	assert_int_equal(cl_pc_put(x->pc, x->f, 2, 0, "n", 1, 12, false, NULL), 0);
	cl_pc_written(x->pc, x->f, blk0, got, ticket, 0);
	assert_int_equal(cl_pc_dirty_list(x->pc, x->f, &dl), 4);
	free(dl);

	got = cl_pc_run(x->pc, x->f, blks + i, n - i, 8, buf, &used, &blk0, &pblk, &unw, &ticket);
	assert_int_equal(got, 1);
	assert_int_equal(blk0, 4);
	assert_true(unw);
	i += used;
	cl_pc_written(x->pc, x->f, blk0, got, ticket, 0);

	/* 6 and 7 are not consecutive on the volume. */
	got = cl_pc_run(x->pc, x->f, blks + i, n - i, 8, buf, &used, &blk0, &pblk, &unw, &ticket);
	assert_int_equal(got, 1);
	assert_int_equal(blk0, 6);
	i += used;
	/* A failed write-back: the page goes. */
	cl_pc_written(x->pc, x->f, blk0, got, ticket, -EIO);
	assert_false(cl_pc_get(x->pc, x->f, 6, 0, 1, buf));
	got = cl_pc_run(x->pc, x->f, blks + i, n - i, 8, buf, &used, &blk0, &pblk, &unw, &ticket);
	assert_int_equal(got, 1);
	assert_int_equal(blk0, 7);
	cl_pc_written(x->pc, x->f, blk0, got, ticket, 0);
	free(blks);

	/* Only block 2 (written again) is left, and it is no longer unwritten elsewhere. */
	n = cl_pc_dirty_list(x->pc, x->f, &blks);
	assert_int_equal(n, 1);
	assert_int_equal(blks[0], 2);
	free(blks);
}

static void test_evict_and_gen(void **state)
{
	struct fx *x = *state;
	char src[6 * BS], out[BS];
	uint64_t gen = cl_pc_gen(x->pc, x->f);
	struct cl_pc_counts n;

	for (int k = 0; k < 6; k++)
		block(src + k * BS, (char)('A' + k));
	/* Four clean pages fit: filling 3 then touching 0 makes 1 the oldest. */
	cl_pc_fill(x->pc, x->f, 0, 4, src, gen);
	assert_true(cl_pc_get(x->pc, x->f, 0, 0, 1, out));
	gen = cl_pc_gen(x->pc, x->f);
	cl_pc_fill(x->pc, x->f, 4, 1, src + 4 * BS, gen);
	assert_false(cl_pc_get(x->pc, x->f, 1, 0, 1, out));
	assert_true(cl_pc_get(x->pc, x->f, 0, 0, 1, out));
	assert_int_equal(out[0], 'A');
	assert_true(cl_pc_get(x->pc, x->f, 4, 0, 1, out));
	assert_int_equal(out[0], 'E');
	cl_pc_counts(x->pc, &n);
	assert_int_equal(n.clean_bytes, 4 * BS);
	/* A fill whose generation passed keeps nothing. */
	gen = cl_pc_gen(x->pc, x->f);
	cl_pc_drop(x->pc, x->f, 0, 1);
	cl_pc_fill(x->pc, x->f, 5, 1, src + 5 * BS, gen);
	assert_false(cl_pc_get(x->pc, x->f, 5, 0, 1, out));
	assert_int_equal(cl_pc_absent(x->pc, x->f, 0, 10), 2);   /* 0 and 1 */
	/* Fill does not overwrite a dirty page. */
	assert_int_equal(cl_pc_put(x->pc, x->f, 7, 0, src, BS, 70, false, NULL), 0);
	gen = cl_pc_gen(x->pc, x->f);
	cl_pc_fill(x->pc, x->f, 7, 1, src + 5 * BS, gen);
	assert_true(cl_pc_get(x->pc, x->f, 7, 0, 1, out));
	assert_int_equal(out[0], 'A');
	/* Dropping the clean pages of a range keeps its dirty ones (a range's return). */
	cl_pc_drop_clean(x->pc, x->f, 0, UINT64_MAX);
	assert_true(cl_pc_get(x->pc, x->f, 7, 0, 1, out));
	assert_false(cl_pc_get(x->pc, x->f, 4, 0, 1, out));
	cl_pc_counts(x->pc, &n);
	assert_int_equal(n.clean_bytes, 0);
	assert_int_equal(n.dirty_bytes, BS);
	cl_pc_drop(x->pc, x->f, 0, UINT64_MAX);
	cl_pc_counts(x->pc, &n);
	assert_int_equal(n.clean_bytes + n.dirty_bytes, 0);
}

struct writer {
	struct fx *x;
	int rc;
	bool done;
};

static void *write_more(void *arg)
{
	struct writer *w = arg;

	w->rc = cl_pc_reserve(w->x->pc, 2 * BS);
	__atomic_store_n(&w->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_reserve_and_files(void **state)
{
	struct fx *x = *state;
	struct cl_pcf *g = cl_pcf_create(x->pc, 43);
	char b[BS], buf[8 * BS];
	uint64_t inos[4], *blks, blk0, pblk, ticket;
	size_t n, used, got;
	struct writer w = { x, -1, false };
	pthread_t t;
	bool unw;

	block(b, 'q');
	assert_int_equal(cl_pc_reserve(x->pc, BS), 0);
	for (uint64_t k = 0; k < 7; k++)
		assert_int_equal(cl_pc_put(x->pc, k < 4 ? x->f : g, k, 0, b, BS, 100 + k, false,
					   NULL), 0);
	assert_int_equal(cl_pc_dirty_files(x->pc, inos, 4), 2);
	assert_true((inos[0] == 42 && inos[1] == 43) || (inos[0] == 43 && inos[1] == 42));
	/* 7 of 8 blocks dirty: a 2-block writer waits until a write-back makes room. */
	assert_int_equal(pthread_create(&t, NULL, write_more, &w), 0);
	usleep(100 * 1000);
	assert_false(__atomic_load_n(&w.done, __ATOMIC_SEQ_CST));
	assert_true(cl_pc_flusher_wait(x->pc, 10));   /* a writer waits: wake at once */
	n = cl_pc_dirty_list(x->pc, x->f, &blks);
	got = cl_pc_run(x->pc, x->f, blks, n, 8, buf, &used, &blk0, &pblk, &unw, &ticket);
	assert_int_equal(got, 4);
	cl_pc_written(x->pc, x->f, blk0, got, ticket, 0);
	free(blks);
	pthread_join(t, NULL);
	assert_int_equal(w.rc, 0);
	assert_int_equal(cl_pc_dirty_files(x->pc, inos, 4), 1);
	assert_int_equal(inos[0], 43);
	cl_pcf_destroy(x->pc, g);
	assert_int_equal(cl_pc_dirty_files(x->pc, inos, 4), 0);
	cl_pc_stop(x->pc);
	assert_false(cl_pc_flusher_wait(x->pc, 10));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_and_gen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_and_files, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
