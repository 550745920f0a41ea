/*
 * test_cx_hist.c - unit tests of the lock-free histograms
 * (src/common/cx_hist.c): an observation lands in the first bucket whose
 * bound it does not exceed (a bound itself included), larger ones in +Inf;
 * count and sum follow; bounds rise; threads counting at once lose nothing.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/cx_hist.h"

/* Bounds compared in whole microseconds (cmocka 1.1 has no float assertion). */
static long us(double s)
{
	return (long)(s * 1e6 + 0.5);
}

static void test_buckets(void **state)
{
	struct cx_hist h = { 0 };
	struct cx_hist_snap s;

	(void)state;
	cx_hist_observe_ns(&h, 0);               /* first bucket */
	cx_hist_observe_ns(&h, 50000);           /* on the first bound: still the first */
	cx_hist_observe_ns(&h, 50001);           /* the second */
	cx_hist_observe_ns(&h, 3000000);         /* 3 ms: the 5 ms bucket */
	cx_hist_observe_ns(&h, 60ull * 1000000000); /* a minute: +Inf */
	cx_hist_snap(&h, &s);
	assert_int_equal(s.count, 5);
	assert_int_equal(s.bucket[0], 2);
	assert_int_equal(s.bucket[1], 1);
	assert_int_equal(s.bucket[6], 1);
	assert_int_equal(us(cx_hist_bound(6)), 5000);
	assert_int_equal(s.bucket[CX_HIST_NBOUNDS], 1);
	assert_int_equal(s.sum_ns, 0 + 50000 + 50001 + 3000000 + 60ull * 1000000000);
}

static void test_bounds_rise(void **state)
{
	(void)state;
	assert_int_equal(us(cx_hist_bound(0)), 50);
	assert_int_equal(us(cx_hist_bound(CX_HIST_NBOUNDS - 1)), 10000000);
	for (unsigned i = 1; i < CX_HIST_NBOUNDS; i++)
		assert_true(cx_hist_bound(i) > cx_hist_bound(i - 1));
}

static struct cx_hist shared;

static void *feeder(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100000; i++)
		cx_hist_observe_ns(&shared, (uint64_t)i * 1000);
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t t[4];
	struct cx_hist_snap s;
	uint64_t n = 0;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, feeder, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cx_hist_snap(&shared, &s);
	for (unsigned i = 0; i <= CX_HIST_NBOUNDS; i++)
		n += s.bucket[i];
	assert_int_equal(n, 400000);
	assert_int_equal(s.count, 400000);
	assert_int_equal(s.sum_ns, 4ull * 1000 * (99999ull * 100000 / 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_bounds_rise),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
