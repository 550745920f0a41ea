/*
 * cx_hist.h - a latency histogram that any thread may feed without a lock:
 * one atomic counter per bucket, an atomic count and an atomic sum.  Every
 * histogram has the same bucket bounds (cx_hist_bound), from 50 us to 10 s,
 * which cover a metadata call on one machine as well as a token wait
 * behind a recall.  Readers take a snapshot (cx_hist_snap); a snapshot
 * taken while observations arrive may be off by those few, never torn
 * within one counter.
 *
 * The struct is public so that tables of histograms (one per operation,
 * one per message type) can be embedded; touch it only through the
 * functions below.  A zeroed struct is an empty histogram.
 */
#ifndef CXFS_CX_HIST_H
#define CXFS_CX_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define CX_HIST_NBOUNDS 17    /* finite upper bounds; one more bucket holds the rest (+Inf) */

struct cx_hist {
	atomic_uint_fast64_t bucket[CX_HIST_NBOUNDS + 1];   /* observations per bucket (not cumulative) */
	atomic_uint_fast64_t count;                         /* observations */
	atomic_uint_fast64_t sum_ns;                        /* their sum, nanoseconds */
};

/* A copy of a histogram, for rendering. */
struct cx_hist_snap {
	uint64_t bucket[CX_HIST_NBOUNDS + 1];   /* per bucket, not cumulative; the last is +Inf */
	uint64_t count;
	uint64_t sum_ns;
};

/* The upper bound of bucket @i (i < CX_HIST_NBOUNDS), in seconds. */
double cx_hist_bound(unsigned i);
/* Count one observation of @ns nanoseconds. */
void cx_hist_observe_ns(struct cx_hist *h, uint64_t ns);
/* Count one observation that began at @t0_ns of the monotonic clock (cx_intr_now_ns). */
void cx_hist_observe_since(struct cx_hist *h, int64_t t0_ns);
void cx_hist_snap(const struct cx_hist *h, struct cx_hist_snap *out);

#endif
