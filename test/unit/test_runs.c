/*
 * test_runs.c - unit tests of src/cluster/cl_runs.c: the check of an
 * extent map a node receives (order, gaps, blocks outside the data region
 * refused with -EIO), and the server's ledger of unwritten runs handed to
 * nodes: who may publish what (own runs, runs seen in a map, runs of no
 * known owner; never another node's allocation or the right blocks at the
 * wrong place), merging, clearing on publish (a run split in two), and
 * dropping a node (its own allocations handed back).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/cl_runs.h"

#define DATA_BLOCKS 1000

static void test_map_check(void **state)
{
	struct meta_map good[] = {
		{ .fblk = 10, .nblk = 5, .pblk = 100, .state = META_MAP_DATA },
		{ .fblk = 15, .nblk = 3, .pblk = 0xdeadbeefull, .state = META_MAP_HOLE },
		{ .fblk = 18, .nblk = 2, .pblk = DATA_BLOCKS - 2, .state = META_MAP_UNWRITTEN },
	};
	struct meta_map bad[3];

	(void)state;
	assert_int_equal(cl_runs_check(good, 3, 10, DATA_BLOCKS), 0);
	assert_int_equal(cl_runs_check(good, 3, 9, DATA_BLOCKS), -EPROTO);       /* not from 9 */
	memcpy(bad, good, sizeof(bad));
	bad[1].fblk = 16;                                                         /* a gap */
	assert_int_equal(cl_runs_check(bad, 3, 10, DATA_BLOCKS), -EPROTO);
	memcpy(bad, good, sizeof(bad));
	bad[1].nblk = 0;
	assert_int_equal(cl_runs_check(bad, 3, 10, DATA_BLOCKS), -EPROTO);
	memcpy(bad, good, sizeof(bad));
	bad[2].nblk = 3;                                                          /* past the end */
	assert_int_equal(cl_runs_check(bad, 3, 10, DATA_BLOCKS), -EIO);
	memcpy(bad, good, sizeof(bad));
	bad[0].pblk = DATA_BLOCKS;                                                /* at the end */
	assert_int_equal(cl_runs_check(bad, 3, 10, DATA_BLOCKS), -EIO);
	memcpy(bad, good, sizeof(bad));
	bad[0].pblk = UINT64_MAX - 1;                                             /* wraps */
	assert_int_equal(cl_runs_check(bad, 3, 10, DATA_BLOCKS), -EIO);
	memcpy(bad, good, sizeof(bad));
	bad[0].fblk = UINT64_MAX - 2;                                             /* file blocks wrap */
	assert_int_equal(cl_runs_check(bad, 1, UINT64_MAX - 2, DATA_BLOCKS), -EPROTO);
	assert_int_equal(cl_runs_check(good, 0, 10, DATA_BLOCKS), 0);
}

static int setup(void **state)
{
	struct cl_ledger *l;

	if (cl_ledger_create(4, 64, &l))
		return -1;
	*state = l;
	return 0;
}

static int teardown(void **state)
{
	cl_ledger_destroy(*state);
	return 0;
}

static int add(struct cl_ledger *l, uint32_t node, uint64_t ino, uint64_t fblk, uint64_t nblk,
	       uint64_t pblk, bool fresh)
{
	struct cl_ledger_run r = { .ino = ino, .fblk = fblk, .nblk = nblk, .pblk = pblk,
				   .fresh = fresh };

	return cl_ledger_add(l, node, &r);
}

/* Who may publish what. */
static void test_ledger_check(void **state)
{
	struct cl_ledger *l = *state;

	assert_int_equal(add(l, 1, 7, 0, 16, 100, true), 0);          /* node 1 allocated 0..15 */
	assert_int_equal(cl_ledger_check(l, 1, 7, 0, 16, 100), 0);
	assert_int_equal(cl_ledger_check(l, 1, 7, 4, 4, 104), 0);     /* a part */
	assert_int_equal(cl_ledger_check(l, 1, 7, 4, 4, 105), -EPERM); /* elsewhere */
	assert_int_equal(cl_ledger_check(l, 1, 8, 4, 4, 104), 0);     /* another file: no owner known */
	assert_int_equal(cl_ledger_check(l, 2, 7, 4, 4, 104), -EPERM); /* node 1's allocation */
	assert_int_equal(cl_ledger_check(l, 2, 7, 16, 4, 116), 0);    /* beyond it: no owner */
	assert_int_equal(cl_ledger_check(l, 2, 7, 14, 4, 114), -EPERM); /* across its end */
	/* Node 2 sees node 1's blocks in a map (node 1 gave its EXTENT token back). */
	assert_int_equal(add(l, 2, 7, 8, 8, 108, false), 0);
	assert_int_equal(cl_ledger_check(l, 2, 7, 8, 8, 108), 0);
	assert_int_equal(cl_ledger_check(l, 2, 7, 4, 8, 104), -EPERM); /* 4..7 still node 1's only */
	/* Bad arguments. */
	assert_int_equal(add(l, 0, 7, 0, 1, 1, true), -EINVAL);
	assert_int_equal(add(l, 5, 7, 0, 1, 1, true), -EINVAL);
	assert_int_equal(add(l, 1, 7, 0, 0, 1, true), -EINVAL);
	assert_int_equal(add(l, 1, 7, UINT64_MAX, 2, 1, true), -EINVAL);
	assert_int_equal(cl_ledger_check(l, 9, 7, 0, 1, 100), -EPERM);
	assert_int_equal(cl_ledger_check(l, 1, 7, 0, 0, 100), -EPERM);
	assert_int_equal(cl_ledger_check(l, 1, 7, 0, 2, UINT64_MAX), -EPERM);
}

/* Contiguous runs merge; a run handed again replaces the old one. */
static void test_ledger_merge(void **state)
{
	struct cl_ledger *l = *state;

	assert_int_equal(add(l, 1, 7, 0, 4, 100, true), 0);
	assert_int_equal(add(l, 1, 7, 8, 4, 108, true), 0);
	assert_int_equal(cl_ledger_count(l, 1), 2);
	assert_int_equal(add(l, 1, 7, 4, 4, 104, true), 0);           /* fills the gap */
	assert_int_equal(cl_ledger_count(l, 1), 1);
	assert_int_equal(cl_ledger_check(l, 1, 7, 0, 12, 100), 0);
	assert_int_equal(add(l, 1, 7, 0, 12, 100, false), 0);         /* seen again in a map */
	assert_int_equal(cl_ledger_count(l, 1), 2);                   /* the fresh run stays */
	assert_int_equal(add(l, 1, 7, 0, 12, 100, false), 0);
	assert_int_equal(cl_ledger_count(l, 1), 2);
	assert_int_equal(add(l, 1, 7, 4, 2, 500, false), 0);          /* remapped there since */
	assert_int_equal(cl_ledger_check(l, 1, 7, 4, 2, 500), 0);
	assert_int_equal(cl_ledger_check(l, 1, 7, 4, 2, 104), 0);     /* its fresh run says so too */
}

/* Publishing clears the blocks for every node, splitting runs across them. */
static void test_ledger_clear_and_drop(void **state)
{
	struct cl_ledger *l = *state;
	struct cl_ledger_run *v;
	long n;

	assert_int_equal(add(l, 1, 7, 0, 16, 100, true), 0);
	assert_int_equal(add(l, 1, 9, 0, 4, 300, false), 0);
	assert_int_equal(add(l, 2, 7, 0, 16, 100, false), 0);
	cl_ledger_clear(l, 7, 4, 4);
	assert_int_equal(cl_ledger_count(l, 1), 3);                   /* 0..3, 8..15, and inode 9 */
	assert_int_equal(cl_ledger_count(l, 2), 2);
	assert_int_equal(cl_ledger_check(l, 3, 7, 4, 4, 104), 0);     /* published: nobody's */
	assert_int_equal(cl_ledger_check(l, 3, 7, 8, 1, 108), -EPERM);
	cl_ledger_clear(l, 7, 0, UINT64_MAX);
	assert_int_equal(cl_ledger_count(l, 1), 1);
	assert_int_equal(cl_ledger_count(l, 2), 0);
	assert_int_equal(add(l, 1, 7, 20, 4, 120, true), 0);
	assert_int_equal(add(l, 1, 7, 30, 2, 130, true), 0);
	n = cl_ledger_drop_node(l, 1, &v);
	assert_int_equal(n, 2);                                        /* its own, not the seen run */
	for (long i = 0; i < n; i++) {
		assert_true(v[i].fresh);
		assert_int_equal(v[i].ino, 7);
		assert_int_equal(v[i].pblk, 100 + v[i].fblk);
	}
	free(v);
	assert_int_equal(cl_ledger_count(l, 1), 0);
	assert_int_equal(cl_ledger_drop_node(l, 1, &v), 0);
	assert_null(v);
	assert_int_equal(cl_ledger_drop_node(l, 0, &v), -EINVAL);
	assert_int_equal(cl_ledger_check(l, 2, 7, 20, 4, 120), 0);    /* dropped: no owner now */
}

/* A node that gives back a file's EXTENT token holds none of its blocks. */
static void test_ledger_forget(void **state)
{
	struct cl_ledger *l = *state;

	assert_int_equal(add(l, 1, 7, 0, 16, 100, true), 0);
	assert_int_equal(add(l, 1, 7, 32, 4, 200, false), 0);
	assert_int_equal(add(l, 1, 8, 0, 4, 300, true), 0);
	assert_int_equal(cl_ledger_check(l, 2, 7, 0, 4, 100), -EPERM);
	cl_ledger_forget(l, 1, 7);
	assert_int_equal(cl_ledger_count(l, 1), 1);                   /* inode 8's stays */
	assert_int_equal(cl_ledger_check(l, 2, 7, 0, 4, 100), 0);     /* no owner now */
	assert_int_equal(cl_ledger_check(l, 2, 8, 0, 4, 300), -EPERM);
}

/* A node holds at most its maximum of runs (64 here). */
static void test_ledger_cap(void **state)
{
	struct cl_ledger *l = *state;

	for (uint64_t i = 0; i < 64; i++)
		assert_int_equal(add(l, 1, 7, 2 * i, 1, 2 * i, true), 0);
	assert_int_equal(cl_ledger_count(l, 1), 64);
	assert_int_equal(add(l, 1, 7, 200, 1, 0, true), -ENOSPC);
	assert_int_equal(add(l, 1, 7, 1, 1, 1, true), 0);               /* merges: no new run */
	assert_int_equal(add(l, 2, 7, 200, 1, 0, true), 0);             /* others still may */
	cl_ledger_reset(l);
	assert_int_equal(cl_ledger_count(l, 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_check),
		cmocka_unit_test_setup_teardown(test_ledger_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ledger_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ledger_clear_and_drop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ledger_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ledger_cap, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
