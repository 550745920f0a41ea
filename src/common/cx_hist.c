/*
 * cx_hist.c - lock-free latency histograms (see cx_hist.h).  Counters are
 * relaxed atomics: a histogram orders nothing, it only counts.
 */
#include "common/cx_hist.h"
#include "common/cx_intr.h"

/* Upper bounds in nanoseconds: 1-2.5-5 steps from 50 us to 10 s. */
static const uint64_t bounds_ns[CX_HIST_NBOUNDS] = {
	50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
	100000000, 250000000, 500000000,
	1000000000, 2500000000, 5000000000, 10000000000,
};

double cx_hist_bound(unsigned i)
{
	return i < CX_HIST_NBOUNDS ? (double)bounds_ns[i] / 1e9 : 0;
}

void cx_hist_observe_ns(struct cx_hist *h, uint64_t ns)
{
	unsigned i = 0;

	while (i < CX_HIST_NBOUNDS && ns > bounds_ns[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void cx_hist_observe_since(struct cx_hist *h, int64_t t0_ns)
{
	int64_t d = cx_intr_now_ns() - t0_ns;

	cx_hist_observe_ns(h, d > 0 ? (uint64_t)d : 0);
}

void cx_hist_snap(const struct cx_hist *h, struct cx_hist_snap *out)
{
	uint64_t n = 0;

	for (unsigned i = 0; i <= CX_HIST_NBOUNDS; i++) {
		out->bucket[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		n += out->bucket[i];
	}
	out->sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
	/* The buckets are the truth: the count agrees with them even mid-update. */
	out->count = n;
}
