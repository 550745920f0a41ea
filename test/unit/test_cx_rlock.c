/*
 * test_cx_rlock.c - the byte-range reader-writer lock (cx_rlock.h), with
 * real threads: overlapping reads share, a write excludes what overlaps
 * it, disjoint ranges never wait, and a reader that comes after a waiting
 * writer waits behind it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "common/cx_rlock.h"

struct locker {
	struct cx_rlock *l;
	uint64_t from, to;
	bool write;
	atomic_int state;               /* 0 waiting, 1 holding, 2 done */
	atomic_bool release;            /* main says: unlock now */
	pthread_t tid;
};

static void *locker_run(void *arg)
{
	struct locker *k = arg;
	struct cx_rlock_hold h;

	cx_rlock_lock(k->l, &h, k->from, k->to, k->write);
	atomic_store(&k->state, 1);
	while (!atomic_load(&k->release))
		usleep(1000);
	cx_rlock_unlock(k->l, &h);
	atomic_store(&k->state, 2);
	return NULL;
}

static void start(struct locker *k, struct cx_rlock *l, uint64_t from, uint64_t to, bool write)
{
	*k = (struct locker){ .l = l, .from = from, .to = to, .write = write };
	assert_int_equal(pthread_create(&k->tid, NULL, locker_run, k), 0);
}

/* Wait (up to 5 s) until @k holds. */
static void holding(struct locker *k)
{
	for (int i = 0; i < 5000 && atomic_load(&k->state) != 1; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&k->state), 1);
}

static void finish(struct locker *k)
{
	atomic_store(&k->release, true);
	pthread_join(k->tid, NULL);
}

static void test_shares_and_excludes(void **state)
{
	struct cx_rlock *l = cx_rlock_new();
	struct locker r1, r2, w, d;

	(void)state;
	assert_non_null(l);
	start(&r1, l, 0, 100, false);
	holding(&r1);
	start(&r2, l, 50, 150, false);
	holding(&r2);                   /* reads share */
	start(&w, l, 90, 95, true);
	start(&d, l, 200, 300, true);
	holding(&d);                    /* disjoint: at once */
	usleep(50000);
	assert_int_equal(atomic_load(&w.state), 0);   /* overlaps both reads */
	finish(&r1);
	usleep(50000);
	assert_int_equal(atomic_load(&w.state), 0);   /* r2 still there */
	finish(&r2);
	holding(&w);
	finish(&w);
	finish(&d);
	cx_rlock_free(l);
}

static void test_writer_not_starved(void **state)
{
	struct cx_rlock *l = cx_rlock_new();
	struct locker r1, w, r2;

	(void)state;
	assert_non_null(l);
	start(&r1, l, 0, 10, false);
	holding(&r1);
	start(&w, l, 5, 15, true);
	usleep(50000);
	start(&r2, l, 0, 10, false);    /* came after the waiting writer */
	usleep(50000);
	assert_int_equal(atomic_load(&w.state), 0);
	assert_int_equal(atomic_load(&r2.state), 0);
	finish(&r1);
	holding(&w);
	usleep(50000);
	assert_int_equal(atomic_load(&r2.state), 0);
	finish(&w);
	holding(&r2);
	finish(&r2);
	cx_rlock_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shares_and_excludes),
		cmocka_unit_test(test_writer_not_starved),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
