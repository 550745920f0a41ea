/*
 * test_cx_intr.c - unit tests of interruptible waits (src/common/cx_intr.c):
 * a thread that is not armed waits as pthread does (to its time-out, never
 * cut short); an armed thread's condition wait and sleep end with -EINTR
 * soon after another thread raises its interrupt, and with its bound's
 * error once the bound says so; disarming makes waits plain again.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "common/cx_intr.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static struct timespec in_ms(int64_t ms)
{
	int64_t t = cx_intr_now_ns() + ms * 1000000;

	return (struct timespec){ (time_t)(t / 1000000000), (long)(t % 1000000000) };
}

static int64_t ms_since(int64_t t0)
{
	return (cx_intr_now_ns() - t0) / 1000000;
}

static void test_unarmed_is_plain(void **state)
{
	struct timespec until = in_ms(60);
	int64_t t0 = cx_intr_now_ns();
	int rc;

	(void)state;
	assert_false(cx_intr_armed());
	assert_int_equal(cx_intr_check(), 0);
	pthread_mutex_lock(&mu);
	do
		rc = cx_intr_wait(&cv, &mu, &until);
	while (rc == 0);
	pthread_mutex_unlock(&mu);
	assert_int_equal(rc, ETIMEDOUT);
	assert_true(ms_since(t0) >= 55);
	assert_int_equal(cx_intr_sleep_ms(10), 0);
}

struct waiter {
	atomic_uintptr_t intr;       /* its struct cx_intr, once armed */
	int (*bound)(void *, int64_t);
	int rc;
	int64_t ms;                  /* how long its wait lasted */
	int sleep;                   /* wait with cx_intr_sleep_ms rather than on cv */
};

static void *waiter_main(void *p)
{
	struct waiter *w = p;
	int64_t t0;
	int rc;

	atomic_store(&w->intr, (uintptr_t)cx_intr_arm(w->bound, w));
	t0 = cx_intr_now_ns();
	if (w->sleep) {
		rc = cx_intr_sleep_ms(10000);
	} else {
		pthread_mutex_lock(&mu);
		do
			rc = cx_intr_wait(&cv, &mu, NULL);   /* nobody signals cv */
		while (rc == 0);
		pthread_mutex_unlock(&mu);
	}
	w->ms = ms_since(t0);
	w->rc = rc;
	cx_intr_disarm();
	assert_false(cx_intr_armed());
	assert_int_equal(cx_intr_check(), 0);
	return NULL;
}

static void raise_after(int sleep_instead)
{
	struct waiter w = { .sleep = sleep_instead };
	struct timespec pause = { 0, 100 * 1000000L };
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
	while (!atomic_load(&w.intr))
		nanosleep(&(struct timespec){ 0, 1000000L }, NULL);
	nanosleep(&pause, NULL);
	cx_intr_raise((struct cx_intr *)atomic_load(&w.intr));
	pthread_join(th, NULL);
	assert_int_equal(w.rc, -EINTR);
	/* Raised after 100 ms; ended within a few slices of it (generous for a loaded box). */
	assert_true(w.ms >= 90);
	assert_true(w.ms < 2000);
}

static void test_raise_ends_wait(void **state)
{
	(void)state;
	raise_after(0);
}

static void test_raise_ends_sleep(void **state)
{
	(void)state;
	raise_after(1);
}

/* A bound that gives up 150 ms after the request started. */
static int bound_150(void *arg, int64_t since_ns)
{
	(void)arg;
	return cx_intr_now_ns() - since_ns > 150 * 1000000LL ? -EIO : 0;
}

static void test_bound_ends_wait(void **state)
{
	struct waiter w = { .bound = bound_150 };
	pthread_t th;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, -EIO);
	assert_true(w.ms >= 140);
	assert_true(w.ms < 2000);
}

/* A raise that came before the wait ends it at once; arming again clears it. */
static void test_raised_before(void **state)
{
	struct cx_intr *in = cx_intr_arm(NULL, NULL);

	(void)state;
	cx_intr_raise(in);
	assert_int_equal(cx_intr_check(), -EINTR);
	pthread_mutex_lock(&mu);
	assert_int_equal(cx_intr_wait(&cv, &mu, NULL), -EINTR);
	pthread_mutex_unlock(&mu);
	assert_int_equal(cx_intr_sleep_ms(1000), -EINTR);
	cx_intr_arm(NULL, NULL);
	assert_int_equal(cx_intr_check(), 0);
	cx_intr_disarm();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unarmed_is_plain),
		cmocka_unit_test(test_raise_ends_wait),
		cmocka_unit_test(test_raise_ends_sleep),
		cmocka_unit_test(test_bound_ends_wait),
		cmocka_unit_test(test_raised_before),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
