/*
 * test_cms_view.c - unit tests of the membership's pure decisions
 * (src/membership/cms_view.c): the largest fully connected set, quorum with
 * and without the tie-breaker, and the choice of leader.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "membership/cms_view.h"

#define B CMS_BIT

/* Everyone reaches everyone among @n nodes. */
static void full(uint64_t *reach, size_t n)
{
	for (size_t i = 0; i < n; i++)
		reach[i] = (B(n) - 1);
}

/* Cut the link between @a and @b, both ways. */
static void cut(uint64_t *reach, int a, int b)
{
	reach[a] &= ~B(b);
	reach[b] &= ~B(a);
}

static void test_clique_full(void **state)
{
	uint64_t reach[5];

	(void)state;
	full(reach, 5);
	assert_int_equal(cms_view_clique(reach, 5, 0x1f, 0, 0), 0x1f);
	/* Only candidates count; @must outside the candidates gives nothing. */
	assert_int_equal(cms_view_clique(reach, 5, 0x0b, 0, 0), 0x0b);
	assert_int_equal(cms_view_clique(reach, 5, 0x0b, 2, 0), 0);
}

static void test_clique_partition(void **state)
{
	uint64_t reach[5];

	(void)state;
	full(reach, 5);
	/* Node 4 is cut off from everyone. */
	for (int i = 0; i < 4; i++)
		cut(reach, 4, i);
	assert_int_equal(cms_view_clique(reach, 5, 0x1f, 0, 0), 0x0f);
	assert_int_equal(cms_view_clique(reach, 5, 0x1f, 4, 0), 0x10);
	/* Asymmetric: 3 hears 1, 1 does not hear 3: they are not together. */
	full(reach, 5);
	reach[1] &= ~B(3);
	assert_false((cms_view_clique(reach, 5, 0x1f, 0, 0) & (B(1) | B(3))) == (B(1) | B(3)));
	assert_int_equal(cms_set_count(cms_view_clique(reach, 5, 0x1f, 0, 0)), 4);
}

static void test_clique_prefers_members(void **state)
{
	uint64_t reach[4];

	(void)state;
	full(reach, 4);
	/* 1 and 2 do not reach each other: {0,1,3} or {0,2,3}; the members win. */
	cut(reach, 1, 2);
	assert_int_equal(cms_view_clique(reach, 4, 0xf, 0, B(0) | B(2) | B(3)), B(0) | B(2) | B(3));
	/* Without a preference the lower node wins. */
	assert_int_equal(cms_view_clique(reach, 4, 0xf, 0, 0), B(0) | B(1) | B(3));
}

static void test_clique_large_greedy(void **state)
{
	uint64_t reach[CMS_MAX_NODES];

	(void)state;
	full(reach, 40);
	cut(reach, 0, 39);
	uint64_t s = cms_view_clique(reach, 40, (B(40) - 1), 0, 0);
	assert_true(s & B(0));
	assert_false(s & B(39));
	assert_int_equal(cms_set_count(s), 39);
}

static void test_quorum(void **state)
{
	uint64_t ms3 = 0x7, ms2 = 0x3;

	(void)state;
	assert_true(cms_view_quorum(0x3, ms3, false));
	assert_false(cms_view_quorum(0x1, ms3, false));
	assert_false(cms_view_quorum(0x1, ms3, true));   /* a minority never wins a tie */
	assert_false(cms_view_is_tie(0x1, ms3));
	/* Two nodes: one alone is a tie. */
	assert_true(cms_view_is_tie(0x1, ms2));
	assert_false(cms_view_quorum(0x1, ms2, false));
	assert_true(cms_view_quorum(0x1, ms2, true));
	assert_true(cms_view_quorum(0x3, ms2, false));
	/* Nodes that may not serve do not count. */
	assert_true(cms_view_quorum(0x3 | 0x8, 0x7, false));
	assert_false(cms_view_quorum(0x8 | 0x10 | 0x1, 0x7, false));
	assert_false(cms_view_quorum(0xff, 0, true));
}

static void test_leader(void **state)
{
	uint64_t joined[4] = { 0, 0, 0, 0 };

	(void)state;
	/* No membership yet: the lowest node that may serve. */
	assert_int_equal(cms_view_leader(0xf, 0xe, joined, 4), 1);
	assert_int_equal(cms_view_leader(0x1, 0xe, joined, 4), -1);
	/* The longest member leads, even over a lower number. */
	joined[1] = 5;
	joined[3] = 2;
	assert_int_equal(cms_view_leader(0xf, 0xe, joined, 4), 3);
	/* Tie on age: the lowest number. */
	joined[1] = 2;
	assert_int_equal(cms_view_leader(0xf, 0xe, joined, 4), 1);
	/* A member before a non-member. */
	joined[1] = 0;
	assert_int_equal(cms_view_leader(0xf, 0xe, joined, 4), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clique_full),
		cmocka_unit_test(test_clique_partition),
		cmocka_unit_test(test_clique_prefers_members),
		cmocka_unit_test(test_clique_large_greedy),
		cmocka_unit_test(test_quorum),
		cmocka_unit_test(test_leader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
