/*
 * test_dm.c - unit tests of the DMAPI layer (src/dmapi): event lists and
 * managed-region matching (edges, overflow, to-EOF regions), the per-file
 * store, session create/assume/destroy rules, the queue delivering each
 * event once, joining of overlapping events (with real threads), separate
 * events for separate ranges, abort responses, interruption (-DM_EEARLY,
 * -DM_EMIGRATING) leaving the event answerable, timeouts, slices of a wait
 * that keep the join, asynchronous events and dispositions, and tokens
 * of one context unknown to the next (an MDS that moved or died).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dmapi/dm.h"

#define RD DM_EV_BIT(DM_EV_READ)
#define WR DM_EV_BIT(DM_EV_WRITE)

static int setup(void **state)
{
	struct dm_ctx *ctx;

	if (dm_ctx_create(&ctx))
		return -1;
	*state = ctx;
	return 0;
}

static int teardown(void **state)
{
	dm_ctx_destroy(*state);
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Wait until @n joins are outstanding. */
static void wait_joins(struct dm_ctx *ctx, uint64_t n)
{
	struct dm_stats st;

	for (;;) {
		dm_get_stats(ctx, &st);
		if (st.waiting == n)
			return;
		sleep_ms(1);
	}
}

/* ---- matching ------------------------------------------------------------ */

static void test_match(void **state)
{
	struct dm_region r[2] = {
		{ .off = 100, .len = 100, .events = RD },     /* [100, 200) */
		{ .off = 1000, .len = 0, .events = RD | WR }, /* [1000, EOF) */
	};

	(void)state;
	assert_int_equal(dm_regions_validate(r, 2), 0);
	/* Edges of [100, 200). */
	assert_false(dm_match(r, 2, 0, DM_EV_READ, 0, 100));
	assert_true(dm_match(r, 2, 0, DM_EV_READ, 0, 101));
	assert_true(dm_match(r, 2, 0, DM_EV_READ, 199, 1));
	assert_false(dm_match(r, 2, 0, DM_EV_READ, 200, 800));
	assert_false(dm_match(r, 2, 0, DM_EV_WRITE, 150, 10));
	/* To-EOF region and to-EOF access. */
	assert_false(dm_match(r, 2, 0, DM_EV_WRITE, 200, 800));
	assert_true(dm_match(r, 2, 0, DM_EV_WRITE, 200, 801));
	assert_true(dm_match(r, 2, 0, DM_EV_WRITE, UINT64_MAX - 1, 1));
	assert_true(dm_match(r, 2, 0, DM_EV_WRITE, 500, 0));
	assert_true(dm_match(r, 2, 0, DM_EV_READ, 0, 0));
	/* An access past 2^64 counts as to EOF. */
	assert_true(dm_match(r, 1, 0, DM_EV_READ, 150, UINT64_MAX));
	/* The file-wide list covers everything, any event. */
	assert_true(dm_match(NULL, 0, DM_EV_BIT(DM_EV_DESTROY), DM_EV_DESTROY, 0, 0));
	assert_true(dm_match(r, 2, WR, DM_EV_WRITE, 0, 1));
	assert_false(dm_match(r, 2, WR, DM_EV_TRUNCATE, 0, 1));
	assert_false(dm_match(r, 2, DM_EV_ALL, DM_EV_NEVENTS, 0, 1));
	assert_string_equal(dm_event_name(DM_EV_TRUNCATE), "truncate");
}

static void test_validate(void **state)
{
	struct dm_region r[DM_MAX_REGIONS + 1];
	size_t i;

	(void)state;
	for (i = 0; i <= DM_MAX_REGIONS; i++)
		r[i] = (struct dm_region){ .off = i * 10, .len = 10, .events = RD };
	assert_int_equal(dm_regions_validate(r, DM_MAX_REGIONS), 0);
	assert_int_equal(dm_regions_validate(r, DM_MAX_REGIONS + 1), -E2BIG);
	/* Overflow refused; a range ending exactly at 2^64 - 1 accepted. */
	r[0] = (struct dm_region){ .off = UINT64_MAX - 9, .len = 10, .events = RD };
	assert_int_equal(dm_regions_validate(r, 1), -EINVAL);
	r[0].off = UINT64_MAX - 10;
	assert_int_equal(dm_regions_validate(r, 1), 0);
	/* Non-data events refused. */
	r[0] = (struct dm_region){ .off = 0, .len = 10, .events = DM_EV_BIT(DM_EV_DESTROY) };
	assert_int_equal(dm_regions_validate(r, 1), -EINVAL);
	/* Overlaps refused, adjacency accepted; to-EOF overlaps everything after it. */
	r[0] = (struct dm_region){ .off = 0, .len = 10, .events = RD };
	r[1] = (struct dm_region){ .off = 10, .len = 10, .events = WR };
	assert_int_equal(dm_regions_validate(r, 2), 0);
	r[1].off = 9;
	assert_int_equal(dm_regions_validate(r, 2), -EINVAL);
	r[0] = (struct dm_region){ .off = 5, .len = 0, .events = RD };
	r[1] = (struct dm_region){ .off = 1u << 30, .len = 1, .events = RD };
	assert_int_equal(dm_regions_validate(r, 2), -EINVAL);
}

static void test_file_store(void **state)
{
	struct dm_ctx *ctx = *state;
	struct dm_region r[3] = {
		{ .off = 0, .len = 10, .events = RD },
		{ .off = 20, .len = 10, .events = WR },
		{ .off = 40, .len = 0, .events = RD },
	}, out[3];

	assert_int_equal(dm_set_eventlist(ctx, 7, DM_EV_ALL + 1), -EINVAL);
	assert_int_equal(dm_set_eventlist(ctx, 7, DM_EV_BIT(DM_EV_DESTROY)), 0);
	assert_int_equal(dm_get_eventlist(ctx, 7), DM_EV_BIT(DM_EV_DESTROY));
	assert_int_equal(dm_get_eventlist(ctx, 8), 0);
	assert_int_equal(dm_set_regions(ctx, 7, r, 3), 0);
	assert_int_equal(dm_get_regions(ctx, 7, out, 1), 3);  /* tells the real count */
	assert_int_equal(dm_get_regions(ctx, 7, out, 3), 3);
	assert_memory_equal(out, r, sizeof(r));
	assert_true(dm_check(ctx, 7, DM_EV_READ, 45, 1));
	assert_false(dm_check(ctx, 7, DM_EV_READ, 10, 10));
	assert_true(dm_check(ctx, 7, DM_EV_DESTROY, 0, 0));
	assert_false(dm_check(ctx, 8, DM_EV_READ, 0, 0));
	/* Set replaces the whole array; an invalid one leaves it alone. */
	assert_int_equal(dm_set_regions(ctx, 7, &r[1], 1), 0);
	assert_int_equal(dm_get_regions(ctx, 7, out, 3), 1);
	assert_false(dm_check(ctx, 7, DM_EV_READ, 45, 1));
	r[0].len = UINT64_MAX;
	r[0].off = 1;
	assert_int_equal(dm_set_regions(ctx, 7, r, 1), -EINVAL);
	assert_int_equal(dm_get_regions(ctx, 7, out, 3), 1);
	assert_int_equal(dm_set_regions(ctx, 7, NULL, 0), 0);
	assert_int_equal(dm_set_eventlist(ctx, 7, 0), 0);
	assert_int_equal(dm_get_regions(ctx, 7, out, 3), 0);
	assert_false(dm_check(ctx, 7, DM_EV_DESTROY, 0, 0));
}

/* ---- sessions ------------------------------------------------------------ */

struct waiter {
	struct dm_ctx *ctx;
	uint64_t session, ino, off, len;
	uint64_t token;        /* from dm_event_post */
	unsigned timeout_ms;
	atomic_int stop;       /* the interrupted() flag */
	atomic_bool done;
	int rc;                /* dm_event_wait's result */
	pthread_t th;
};

static int waiter_interrupted(void *arg)
{
	return atomic_load(&((struct waiter *)arg)->stop);
}

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->rc = dm_event_post(w->ctx, w->session, w->ino, DM_EV_READ, w->off, w->len, &w->token);
	if (w->rc == 0)
		w->rc = dm_event_wait(w->ctx, w->token, w->timeout_ms, waiter_interrupted, w);
	atomic_store(&w->done, true);
	return NULL;
}

static void waiter_start(struct waiter *w, struct dm_ctx *ctx, uint64_t session, uint64_t ino,
			 uint64_t off, uint64_t len)
{
	memset(w, 0, sizeof(*w));
	w->ctx = ctx;
	w->session = session;
	w->ino = ino;
	w->off = off;
	w->len = len;
	assert_int_equal(pthread_create(&w->th, NULL, waiter_main, w), 0);
}

static void test_sessions(void **state)
{
	struct dm_ctx *ctx = *state;
	struct dm_session_info info[3];
	struct dm_event_msg m[4];
	char longname[DM_NAME_MAX + 1];
	uint64_t a, b, again, tok;
	struct waiter w;

	memset(longname, 'x', DM_NAME_MAX);
	longname[DM_NAME_MAX] = '\0';
	assert_int_equal(dm_session_create(ctx, "", &a), -EINVAL);
	assert_int_equal(dm_session_create(ctx, longname, &a), -ENAMETOOLONG);
	assert_int_equal(dm_session_create(ctx, "hsm", &a), 0);
	assert_int_equal(dm_session_create(ctx, "hsm", &b), -EEXIST);
	assert_int_equal(dm_session_create(ctx, "other", &b), 0);
	assert_int_not_equal(a, b);
	assert_int_equal(dm_session_assume(ctx, "nobody", &again), -ENOENT);

	/* Two events; one delivered to the first owner, who dies. */
	assert_int_equal(dm_event_post(ctx, a, 1, DM_EV_READ, 0, 10, &tok), 0);
	assert_int_equal(dm_get_events(ctx, a, 1, m, 1), 1);
	assert_int_equal(m[0].token, tok);
	waiter_start(&w, ctx, a, 2, 0, 10);
	wait_joins(ctx, 2);
	assert_int_equal(dm_session_list(ctx, info, 3), 2);
	assert_int_equal(info[0].id, a);
	assert_string_equal(info[0].name, "hsm");
	assert_int_equal(info[0].queued, 1);
	assert_int_equal(info[0].delivered, 1);
	assert_int_equal(info[1].queued + info[1].delivered, 0);

	/* Busy while events are outstanding. */
	assert_int_equal(dm_session_destroy(ctx, a, false, 0), -EBUSY);
	/* The restarted HSM assumes the session and gets both events, each once. */
	assert_int_equal(dm_session_assume(ctx, "hsm", &again), 0);
	assert_int_equal(again, a);
	assert_int_equal(dm_get_events(ctx, a, 4, m, 1), 2);
	assert_int_equal(m[0].token, tok);
	assert_int_equal(m[1].ino, 2);
	assert_int_equal(dm_get_events(ctx, a, 4, m, 20), -ETIMEDOUT);
	assert_int_equal(dm_respond(ctx, a, tok, 0), 0);
	assert_int_equal(dm_event_wait(ctx, tok, 0, NULL, NULL), 0);

	/* A forced destroy answers the rest with the given error. */
	assert_int_equal(dm_session_destroy(ctx, a, true, 1), -EINVAL);
	assert_int_equal(dm_session_destroy(ctx, a, true, -EIO), 0);
	pthread_join(w.th, NULL);
	assert_int_equal(w.rc, -EIO);
	assert_int_equal(dm_session_destroy(ctx, a, false, 0), -ESRCH);
	assert_int_equal(dm_event_post(ctx, a, 1, DM_EV_READ, 0, 1, &tok), -ESRCH);
	assert_int_equal(dm_session_list(ctx, info, 3), 1);
	assert_int_equal(info[0].id, b);
	/* The name is free again. */
	assert_int_equal(dm_session_create(ctx, "hsm", &a), 0);
	assert_int_not_equal(a, again);
}

struct getter {
	struct dm_ctx *ctx;
	uint64_t session;
	int rc;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	struct dm_event_msg m;

	g->rc = dm_get_events(g->ctx, g->session, 1, &m, 0);
	return NULL;
}

static void test_destroy_wakes_getter(void **state)
{
	struct dm_ctx *ctx = *state;
	struct getter g = { .ctx = ctx };
	pthread_t th;

	assert_int_equal(dm_session_create(ctx, "hsm", &g.session), 0);
	assert_int_equal(pthread_create(&th, NULL, getter_main, &g), 0);
	sleep_ms(20);
	assert_int_equal(dm_session_destroy(ctx, g.session, false, 0), 0);
	pthread_join(th, NULL);
	assert_int_equal(g.rc, -ESRCH);
}

/* ---- the queue and joining ----------------------------------------------- */

static void test_queue_once(void **state)
{
	struct dm_ctx *ctx = *state;
	struct dm_event_msg m[4];
	struct dm_stats st;
	uint64_t s, t[3];
	int i;

	assert_int_equal(dm_session_create(ctx, "hsm", &s), 0);
	assert_int_equal(dm_get_events(ctx, s, 0, m, 1), -EINVAL);
	for (i = 0; i < 3; i++)
		assert_int_equal(dm_event_post(ctx, s, 10 + (uint64_t)i, DM_EV_WRITE, 0, 0, &t[i]), 0);
	assert_int_equal(dm_respond(ctx, s, t[0], 0), -EINVAL);  /* not delivered yet */
	assert_int_equal(dm_get_events(ctx, s, 2, m, 1), 2);
	assert_int_equal(m[0].token, t[0]);
	assert_int_equal(m[1].token, t[1]);
	assert_int_equal(m[0].ev, DM_EV_WRITE);
	assert_int_equal(m[0].len, 0);
	assert_int_equal(dm_get_events(ctx, s, 4, m, 1), 1);
	assert_int_equal(m[0].token, t[2]);
	assert_int_equal(dm_get_events(ctx, s, 4, m, 20), -ETIMEDOUT);
	for (i = 0; i < 3; i++) {
		assert_int_equal(dm_respond(ctx, s, t[i], 0), 0);
		assert_int_equal(dm_respond(ctx, s, t[i], 0), -ENOENT);  /* answered already */
		assert_int_equal(dm_event_wait(ctx, t[i], 0, NULL, NULL), 0);
		assert_int_equal(dm_respond(ctx, s, t[i], 0), -ENOENT);
		assert_int_equal(dm_event_wait(ctx, t[i], 0, NULL, NULL), -ENOENT);
	}
	dm_get_stats(ctx, &st);
	assert_int_equal(st.posted, 3);
	assert_int_equal(st.delivered, 3);
	assert_int_equal(st.responded, 3);
	assert_int_equal(st.waiting, 0);
}

static void test_join_threads(void **state)
{
	struct dm_ctx *ctx = *state;
	struct waiter w[3];
	struct dm_event_msg m[4];
	struct dm_stats st;
	uint64_t s;
	int i;

	assert_int_equal(dm_session_create(ctx, "hsm", &s), 0);
	waiter_start(&w[0], ctx, s, 42, 0, 4096);
	wait_joins(ctx, 1);  /* the first one creates the event, the others join it */
	waiter_start(&w[1], ctx, s, 42, 1000, 8192);
	waiter_start(&w[2], ctx, s, 42, 4095, 1);
	wait_joins(ctx, 3);
	assert_int_equal(dm_get_events(ctx, s, 4, m, 1000), 1);
	assert_int_equal(m[0].ino, 42);
	assert_int_equal(m[0].waiters, 3);
	assert_int_equal(m[0].off, 0);
	assert_int_equal(m[0].len, 9192);  /* grew to cover the joiners while queued */
	assert_int_equal(dm_get_events(ctx, s, 4, m + 1, 20), -ETIMEDOUT);
	for (i = 0; i < 3; i++)
		assert_false(atomic_load(&w[i].done));
	assert_int_equal(dm_respond(ctx, s, m[0].token, 0), 0);
	for (i = 0; i < 3; i++) {
		pthread_join(w[i].th, NULL);
		assert_int_equal(w[i].rc, 0);
		assert_int_equal(w[i].token, m[0].token);
	}
	dm_get_stats(ctx, &st);
	assert_int_equal(st.posted, 1);
	assert_int_equal(st.joined, 2);
	assert_int_equal(st.delivered, 1);
	assert_int_equal(st.responded, 1);
	assert_int_equal(st.waiting, 0);
}

static void test_separate(void **state)
{
	struct dm_ctx *ctx = *state;
	struct dm_event_msg m[8];
	uint64_t s, t1, t2, t3, t4, t5, t6;
	int n, i;

	assert_int_equal(dm_session_create(ctx, "hsm", &s), 0);
	assert_int_equal(dm_event_post(ctx, s, 5, DM_EV_READ, 0, 100, &t1), 0);
	assert_int_equal(dm_event_post(ctx, s, 5, DM_EV_READ, 100, 100, &t2), 0);  /* adjacent */
	assert_int_equal(dm_event_post(ctx, s, 5, DM_EV_WRITE, 0, 100, &t3), 0);  /* other type */
	assert_int_equal(dm_event_post(ctx, s, 6, DM_EV_READ, 0, 100, &t4), 0);   /* other file */
	assert_int_not_equal(t1, t2);
	assert_int_not_equal(t1, t3);
	assert_int_not_equal(t1, t4);
	assert_int_equal(dm_event_post(ctx, s, 5, DM_EV_READ, 1, UINT64_MAX, &t5), -EINVAL);
	n = dm_get_events(ctx, s, 8, m, 1);
	assert_int_equal(n, 4);
	/* Once delivered, a join keeps the range the HSM saw. */
	assert_int_equal(dm_event_post(ctx, s, 5, DM_EV_READ, 50, 0, &t5), 0);
	assert_true(t5 == t1 || t5 == t2);
	/* After the answer, a post makes a new event. */
	for (i = 0; i < n; i++)
		assert_int_equal(dm_respond(ctx, s, m[i].token, 0), 0);
	assert_int_equal(dm_event_post(ctx, s, 5, DM_EV_READ, 0, 100, &t6), 0);
	assert_int_not_equal(t6, t1);
	assert_int_equal(dm_get_events(ctx, s, 8, m, 1), 1);
	assert_int_equal(m[0].len, 100);
	assert_int_equal(dm_respond(ctx, s, t6, 0), 0);
	assert_int_equal(dm_event_wait(ctx, t1, 0, NULL, NULL), 0);
	assert_int_equal(dm_event_wait(ctx, t2, 0, NULL, NULL), 0);
	assert_int_equal(dm_event_wait(ctx, t3, 0, NULL, NULL), 0);
	assert_int_equal(dm_event_wait(ctx, t4, 0, NULL, NULL), 0);
	assert_int_equal(dm_event_wait(ctx, t5, 0, NULL, NULL), 0);
	assert_int_equal(dm_event_wait(ctx, t6, 0, NULL, NULL), 0);
}

static void test_abort(void **state)
{
	struct dm_ctx *ctx = *state;
	struct dm_event_msg m;
	struct waiter w[2];
	uint64_t s, other;

	assert_int_equal(dm_session_create(ctx, "hsm", &s), 0);
	assert_int_equal(dm_session_create(ctx, "other", &other), 0);
	waiter_start(&w[0], ctx, s, 9, 0, 10);
	waiter_start(&w[1], ctx, s, 9, 5, 10);
	wait_joins(ctx, 2);
	assert_int_equal(dm_get_events(ctx, s, 1, &m, 1000), 1);
	assert_int_equal(dm_respond(ctx, s, m.token, 1), -EINVAL);
	assert_int_equal(dm_respond(ctx, s, m.token, -DM_EEARLY), -EINVAL);
	assert_int_equal(dm_respond(ctx, other, m.token, 0), -ENOENT);
	assert_int_equal(dm_respond(ctx, 999, m.token, 0), -ESRCH);
	assert_int_equal(dm_respond(ctx, s, m.token, -ENOSPC), 0);
	pthread_join(w[0].th, NULL);
	pthread_join(w[1].th, NULL);
	assert_int_equal(w[0].rc, -ENOSPC);
	assert_int_equal(w[1].rc, -ENOSPC);
}

/* ---- interruption and timeouts ------------------------------------------- */

static void test_interrupt(void **state)
{
	struct dm_ctx *ctx = *state;
	struct dm_event_msg m;
	struct dm_stats st;
	struct waiter w[3];
	uint64_t s, tok;

	assert_int_equal(dm_session_create(ctx, "hsm", &s), 0);
	assert_int_equal(dm_interrupt_all(ctx, 5), -EINVAL);

	/* The caller's interrupted() poll gives -DM_EEARLY. */
	waiter_start(&w[0], ctx, s, 3, 0, 10);
	wait_joins(ctx, 1);
	atomic_store(&w[0].stop, 1);
	pthread_join(w[0].th, NULL);
	assert_int_equal(w[0].rc, -DM_EEARLY);

	/* dm_interrupt_all() gives its code to waiters inside a wait. */
	waiter_start(&w[1], ctx, s, 3, 0, 10);
	while (!atomic_load(&w[1].done)) {
		assert_int_equal(dm_interrupt_all(ctx, DM_EMIGRATING), 0);
		sleep_ms(2);
	}
	pthread_join(w[1].th, NULL);
	assert_int_equal(w[1].rc, -DM_EMIGRATING);
	assert_int_equal(w[1].token, w[0].token);  /* the event stayed: the retry joined it */
	waiter_start(&w[2], ctx, s, 3, 0, 10);
	while (!atomic_load(&w[2].done)) {
		assert_int_equal(dm_interrupt_all(ctx, DM_EEARLY), 0);
		sleep_ms(2);
	}
	pthread_join(w[2].th, NULL);
	assert_int_equal(w[2].rc, -DM_EEARLY);

	/* Still answerable, delivered once; a later post joins and gets the answer. */
	assert_int_equal(dm_get_events(ctx, s, 1, &m, 1000), 1);
	assert_int_equal(m.token, w[0].token);
	assert_int_equal(dm_event_post(ctx, s, 3, DM_EV_READ, 0, 1, &tok), 0);
	assert_int_equal(tok, m.token);
	assert_int_equal(dm_respond(ctx, s, m.token, 0), 0);
	assert_int_equal(dm_event_wait(ctx, tok, 0, NULL, NULL), 0);
	dm_get_stats(ctx, &st);
	assert_int_equal(st.early, 3);
	assert_int_equal(st.posted, 1);
	assert_int_equal(st.joined, 3);
	assert_int_equal(st.waiting, 0);
}

static void test_timeout(void **state)
{
	struct dm_ctx *ctx = *state;
	struct dm_event_msg m;
	struct dm_stats st;
	uint64_t s, tok;

	assert_int_equal(dm_session_create(ctx, "hsm", &s), 0);
	assert_int_equal(dm_event_post(ctx, s, 4, DM_EV_TRUNCATE, 100, 0, &tok), 0);
	assert_int_equal(dm_event_wait(ctx, tok, 30, NULL, NULL), -ETIMEDOUT);
	dm_get_stats(ctx, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.waiting, 0);
	/* The event stays for the HSM; answering it with no waiters frees it. */
	assert_int_equal(dm_get_events(ctx, s, 1, &m, 1000), 1);
	assert_int_equal(m.token, tok);
	assert_int_equal(m.waiters, 0);
	assert_int_equal(dm_respond(ctx, s, tok, 0), 0);
	assert_int_equal(dm_respond(ctx, s, tok, 0), -ENOENT);
	assert_int_equal(dm_session_destroy(ctx, s, false, 0), 0);
}

/* A slice that times out keeps the join: the asker waits again and gets the answer. */
static void test_wait_slice(void **state)
{
	struct dm_ctx *ctx = *state;
	struct dm_event_msg m;
	struct dm_stats st;
	uint64_t s, tok, tok2;

	assert_int_equal(dm_session_create(ctx, "hsm", &s), 0);
	assert_int_equal(dm_event_post(ctx, s, 9, DM_EV_READ, 0, 4096, &tok), 0);
	assert_int_equal(dm_event_wait_slice(ctx, tok, 20), -ETIMEDOUT);
	dm_get_stats(ctx, &st);
	assert_int_equal(st.waiting, 1);
	/* A second reader of the same range still joins the same event. */
	assert_int_equal(dm_event_post(ctx, s, 9, DM_EV_READ, 100, 10, &tok2), 0);
	assert_int_equal(tok2, tok);
	assert_int_equal(dm_get_events(ctx, s, 1, &m, 1000), 1);
	assert_int_equal(m.waiters, 2);
	assert_int_equal(dm_respond(ctx, s, tok, -EIO), 0);
	assert_int_equal(dm_event_wait_slice(ctx, tok, 20), -EIO);
	assert_int_equal(dm_event_wait(ctx, tok2, 20, NULL, NULL), -EIO);
	/* Both joins ended: the event is gone. */
	assert_int_equal(dm_event_wait_slice(ctx, tok, 20), -ENOENT);
	dm_get_stats(ctx, &st);
	assert_int_equal(st.waiting, 0);
	assert_int_equal(dm_session_destroy(ctx, s, false, 0), 0);
}

/*
 * A node asks the next MDS with the token the previous one gave it: with
 * the next one's tokens above the previous one's, it finds no event (and
 * posts its own) rather than waiting on another file's event.
 */
static void test_token_floor(void **state)
{
	struct dm_ctx *old = *state, *next;
	uint64_t so, sn, stale, tok, tok2;

	assert_int_equal(dm_session_create(old, "hsm", &so), 0);
	assert_int_equal(dm_event_post(old, so, 9, DM_EV_READ, 0, 4096, &stale), 0);
	assert_int_equal(dm_ctx_create(&next), 0);
	dm_set_token_floor(next, stale);
	assert_int_equal(dm_session_create(next, "hsm", &sn), 0);
	assert_int_equal(dm_event_post(next, sn, 10, DM_EV_READ, 0, 4096, &tok), 0);
	assert_true(tok > stale);
	assert_int_equal(dm_event_wait_slice(next, stale, 20), -ENOENT);
	/* A lower floor later changes nothing: tokens never go back. */
	dm_set_token_floor(next, 1);
	assert_int_equal(dm_event_post(next, sn, 11, DM_EV_READ, 0, 4096, &tok2), 0);
	assert_true(tok2 > tok);
	assert_int_equal(dm_session_destroy(next, sn, true, -EIO), 0);
	assert_int_equal(dm_event_wait(next, tok, 1000, NULL, NULL), -EIO);
	assert_int_equal(dm_event_wait(next, tok2, 1000, NULL, NULL), -EIO);
	dm_ctx_destroy(next);
	assert_int_equal(dm_session_destroy(old, so, true, -EIO), 0);
	assert_int_equal(dm_event_wait(old, stale, 1000, NULL, NULL), -EIO);
}

/* Asynchronous events are never joined, and gone once delivered. */
static void test_async(void **state)
{
	struct dm_ctx *ctx = *state;
	struct dm_event_msg m[4];
	struct dm_session_info info;
	uint64_t s;

	assert_int_equal(dm_session_create(ctx, "hsm", &s), 0);
	assert_int_equal(dm_event_post_async(ctx, s, 12, DM_EV_DESTROY, 77, 1), 0);
	assert_int_equal(dm_event_post_async(ctx, s, 12, DM_EV_DESTROY, 77, 1), 0);
	assert_int_equal(dm_event_post_async(ctx, 999, 12, DM_EV_DESTROY, 77, 1), -ESRCH);
	assert_int_equal(dm_get_events(ctx, s, 4, m, 1000), 2);
	assert_int_equal(m[0].ev, DM_EV_DESTROY);
	assert_int_equal(m[0].off, 77);
	assert_int_equal(m[0].waiters, 0);
	assert_int_equal(dm_respond(ctx, s, m[0].token, 0), -ENOENT);
	assert_int_equal(dm_session_list(ctx, &info, 1), 1);
	assert_int_equal(info.queued + info.delivered, 0);
	/* Nothing outstanding: the session goes without force. */
	assert_int_equal(dm_session_destroy(ctx, s, false, 0), 0);
}

/* One receiver per event type; a destroyed session receives nothing. */
static void test_disposition(void **state)
{
	struct dm_ctx *ctx = *state;
	uint64_t a, b;

	assert_int_equal(dm_session_create(ctx, "a", &a), 0);
	assert_int_equal(dm_session_create(ctx, "b", &b), 0);
	assert_int_equal(dm_disposition(ctx, DM_EV_READ), 0);
	assert_int_equal(dm_set_disposition(ctx, a, RD | WR), 0);
	assert_int_equal(dm_disposition(ctx, DM_EV_READ), a);
	assert_int_equal(dm_set_disposition(ctx, b, RD), 0);
	assert_int_equal(dm_disposition(ctx, DM_EV_READ), b);
	assert_int_equal(dm_disposition(ctx, DM_EV_WRITE), a);
	assert_int_equal(dm_set_disposition(ctx, b, DM_EV_ALL + 1), -EINVAL);
	assert_int_equal(dm_set_disposition(ctx, 999, RD), -ESRCH);
	assert_int_equal(dm_session_destroy(ctx, b, false, 0), 0);
	assert_int_equal(dm_disposition(ctx, DM_EV_READ), 0);
	/* A session assumed after a restart keeps what it received. */
	assert_int_equal(dm_session_assume(ctx, "a", &b), 0);
	assert_int_equal(b, a);
	assert_int_equal(dm_disposition(ctx, DM_EV_WRITE), a);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_validate),
		T(test_file_store),
		T(test_sessions),
		T(test_destroy_wakes_getter),
		T(test_queue_once),
		T(test_join_threads),
		T(test_separate),
		T(test_abort),
		T(test_interrupt),
		T(test_timeout),
		T(test_wait_slice),
		T(test_token_floor),
		T(test_async),
		T(test_disposition),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
