/*
 * cx_intr.c - interruptible waits (cx_intr.h): one interrupt per thread,
 * armed while the thread serves an application's request.
 */
#include "common/cx_intr.h"

#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

struct cx_intr {
	atomic_bool raised;        /* the request was interrupted (any thread sets it) */
	bool armed;                /* the owning thread serves a request; owner only */
	int64_t since_ns;          /* when the request started; owner only */
	cx_intr_bound_fn bound;    /* owner only */
	void *bound_arg;
};

static _Thread_local struct cx_intr cx__self;

int64_t cx_intr_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct cx_intr *cx_intr_arm(cx_intr_bound_fn bound, void *arg)
{
	struct cx_intr *in = &cx__self;

	atomic_store(&in->raised, false);
	in->since_ns = cx_intr_now_ns();
	in->bound = bound;
	in->bound_arg = arg;
	in->armed = true;
	return in;
}

void cx_intr_disarm(void)
{
	cx__self.armed = false;
	cx__self.bound = NULL;
}

void cx_intr_raise(struct cx_intr *in)
{
	atomic_store(&in->raised, true);
}

bool cx_intr_hold(void)
{
	bool armed = cx__self.armed;

	cx__self.armed = false;
	return armed;
}

void cx_intr_resume(bool armed)
{
	cx__self.armed = armed;
}

bool cx_intr_armed(void)
{
	return cx__self.armed;
}

int cx_intr_check(void)
{
	struct cx_intr *in = &cx__self;

	if (!in->armed)
		return 0;
	if (atomic_load(&in->raised))
		return -EINTR;
	return in->bound ? in->bound(in->bound_arg, in->since_ns) : 0;
}

int cx_intr_wait(pthread_cond_t *cv, pthread_mutex_t *mu, const struct timespec *abs)
{
	struct timespec until;
	int64_t slice, limit;
	int rc = cx_intr_check();

	if (rc)
		return rc;
	if (!cx__self.armed) {
		if (!abs) {
			pthread_cond_wait(cv, mu);
			return 0;
		}
		return pthread_cond_clockwait(cv, mu, CLOCK_MONOTONIC, abs) == ETIMEDOUT ? ETIMEDOUT : 0;
	}
	slice = cx_intr_now_ns() + CX_INTR_SLICE_MS * 1000000LL;
	limit = abs ? (int64_t)abs->tv_sec * 1000000000 + abs->tv_nsec : INT64_MAX;
	if (slice < limit) {
		until.tv_sec = (time_t)(slice / 1000000000);
		until.tv_nsec = (long)(slice % 1000000000);
		abs = &until;
	}
	if (pthread_cond_clockwait(cv, mu, CLOCK_MONOTONIC, abs) == ETIMEDOUT && slice >= limit)
		return ETIMEDOUT;
	return cx_intr_check();
}

int cx_intr_sleep_ms(unsigned ms)
{
	int64_t end = cx_intr_now_ns() + (int64_t)ms * 1000000;
	int rc;

	if (!cx__self.armed) {
		usleep(ms * 1000u);
		return 0;
	}
	for (;;) {
		int64_t left = end - cx_intr_now_ns();

		rc = cx_intr_check();
		if (rc || left <= 0)
			return rc;
		usleep((useconds_t)((left < CX_INTR_SLICE_MS * 1000000LL ? left
								 : CX_INTR_SLICE_MS * 1000000LL) / 1000));
	}
}
