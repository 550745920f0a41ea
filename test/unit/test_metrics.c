/*
 * test_metrics.c - unit tests of the Prometheus text writer
 * (src/daemon/metrics.c): HELP and TYPE lines, the common labels first on
 * every sample, label values and HELP text escaped, histograms with
 * cumulative buckets ending in +Inf, _sum in seconds and _count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cx_hist.h"
#include "daemon/metrics.h"

static const struct metrics_label common[] = { { "fs", "shared" }, { "node", "alpha" } };

static char *take(struct metrics_out *m)
{
	size_t len = 0;
	char *t = metrics_take(m, &len);

	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	return t;
}

static void test_family_and_samples(void **state)
{
	struct metrics_out *m = metrics_new(common, 2);
	struct metrics_label op = { "op", "lookup" };
	char *t;

	(void)state;
	assert_non_null(m);
	metrics_family(m, "cxfs_x_total", "counter", "Things.");
	metrics_u64(m, "cxfs_x_total", &op, 1, 42);
	metrics_u64(m, "cxfs_x_total", NULL, 0, 18446744073709551615ull);
	metrics_family(m, "cxfs_y_seconds_total", "counter", "Time.");
	metrics_f64(m, "cxfs_y_seconds_total", NULL, 0, 2.5);
	t = take(m);
	assert_string_equal(t,
			    "# HELP cxfs_x_total Things.\n"
			    "# TYPE cxfs_x_total counter\n"
			    "cxfs_x_total{fs=\"shared\",node=\"alpha\",op=\"lookup\"} 42\n"
			    "cxfs_x_total{fs=\"shared\",node=\"alpha\"} 18446744073709551615\n"
			    "# HELP cxfs_y_seconds_total Time.\n"
			    "# TYPE cxfs_y_seconds_total counter\n"
			    "cxfs_y_seconds_total{fs=\"shared\",node=\"alpha\"} 2.5\n");
	free(t);
}

static void test_no_labels(void **state)
{
	struct metrics_out *m = metrics_new(NULL, 0);
	char *t;

	(void)state;
	metrics_family(m, "cxfs_up", "gauge", "One.");
	metrics_u64(m, "cxfs_up", NULL, 0, 1);
	t = take(m);
	assert_string_equal(t, "# HELP cxfs_up One.\n# TYPE cxfs_up gauge\ncxfs_up 1\n");
	free(t);
}

static void test_escaping(void **state)
{
	struct metrics_label odd[] = { { "fs", "a\"b\\c\nd" } };
	struct metrics_out *m = metrics_new(odd, 1);
	char *t;

	(void)state;
	metrics_family(m, "cxfs_z", "gauge", "Back\\slash and\nnewline, \"quotes\" kept.");
	metrics_u64(m, "cxfs_z", NULL, 0, 7);
	t = take(m);
	assert_string_equal(t,
			    "# HELP cxfs_z Back\\\\slash and\\nnewline, \"quotes\" kept.\n"
			    "# TYPE cxfs_z gauge\n"
			    "cxfs_z{fs=\"a\\\"b\\\\c\\nd\"} 7\n");
	free(t);
}

/* The sample line of @t that begins with @prefix, its value; -1 if none. */
static long long value_of(const char *t, const char *prefix)
{
	for (const char *p = t; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			return atoll(p + strlen(prefix));
	return -1;
}

static void test_histogram(void **state)
{
	struct metrics_out *m = metrics_new(common, 2);
	struct metrics_label op = { "op", "read" };
	struct cx_hist h = { 0 };
	struct cx_hist_snap s;
	size_t lines = 0;
	char *t, *sum;

	(void)state;
	cx_hist_observe_ns(&h, 10000);            /* 10 us: le 0.00005 */
	cx_hist_observe_ns(&h, 2000000);          /* 2 ms: le 0.0025 */
	cx_hist_observe_ns(&h, 2000000);
	cx_hist_observe_ns(&h, 30000000000ull);   /* 30 s: only +Inf */
	cx_hist_snap(&h, &s);
	metrics_family(m, "cxfs_lat_seconds", "histogram", "Latency.");
	metrics_hist(m, "cxfs_lat_seconds", &op, 1, &s);
	t = take(m);
	for (const char *p = t; *p; p++)
		lines += *p == '\n';
	/* HELP, TYPE, every bound and +Inf, _sum, _count. */
	assert_int_equal(lines, 2 + CX_HIST_NBOUNDS + 1 + 2);
	assert_int_equal(value_of(t, "cxfs_lat_seconds_bucket{fs=\"shared\",node=\"alpha\",op=\"read\","
				     "le=\"0.00005\"} "), 1);
	assert_int_equal(value_of(t, "cxfs_lat_seconds_bucket{fs=\"shared\",node=\"alpha\",op=\"read\","
				     "le=\"0.001\"} "), 1);
	assert_int_equal(value_of(t, "cxfs_lat_seconds_bucket{fs=\"shared\",node=\"alpha\",op=\"read\","
				     "le=\"0.0025\"} "), 3);
	assert_int_equal(value_of(t, "cxfs_lat_seconds_bucket{fs=\"shared\",node=\"alpha\",op=\"read\","
				     "le=\"10\"} "), 3);
	assert_int_equal(value_of(t, "cxfs_lat_seconds_bucket{fs=\"shared\",node=\"alpha\",op=\"read\","
				     "le=\"+Inf\"} "), 4);
	assert_int_equal(value_of(t, "cxfs_lat_seconds_count{fs=\"shared\",node=\"alpha\",op=\"read\"} "),
			 4);
	sum = strstr(t, "cxfs_lat_seconds_sum{fs=\"shared\",node=\"alpha\",op=\"read\"} ");
	assert_non_null(sum);
	assert_memory_equal(strchr(sum, '}') + 2, "30.00401\n", 9);
	/* Buckets, in order, never fall. */
	{
		long long prev = 0;

		for (const char *p = strstr(t, "_bucket{"); p; p = strstr(p + 1, "_bucket{")) {
			long long v = atoll(strchr(p, '}') + 2);

			assert_true(v >= prev);
			prev = v;
		}
		assert_int_equal(prev, 4);
	}
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_family_and_samples),
		cmocka_unit_test(test_no_labels),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_histogram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
