/*
 * dm.c - the in-memory DMAPI of one filesystem (see dm.h): range and region
 * rules, per-file event lists and regions, sessions, the event queue with
 * joining, waits, answers and interruption.
 *
 * Sections:
 *   1. Ranges, regions and matching (pure).
 *   2. The context, its records and lookups.
 *   3. Per-file event lists and regions.
 *   4. Sessions.
 *   5. Events: post, wait, get, respond, interrupt, counters.
 *
 * Lock order: dm_ctx.mu is a leaf (nothing else is locked under it):
 *   caller's locks (vnode head, DMAPI token) -> dm_ctx.mu
 * One mutex protects every field of the context and of its files,
 * sessions, events and waiters; one condition variable (cv) is broadcast
 * whenever an event is queued, answered, a session goes away or waiters are
 * interrupted.  Waits are rare (an event means a recall from a slow tier),
 * so one condition variable is cheaper than bookkeeping for many.  The
 * caller's interrupted() poll runs without the mutex; an event is pinned by
 * the waiter's join across the unlock, a session by its users count.
 * Events, sessions and files are few, so lookups are linear scans.
 */
#include "dmapi/dm.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------- */
/* 1. Ranges, regions and matching                                         */
/* ---------------------------------------------------------------------- */

/* Poll period of a wait with an interrupted() callback. */
#define DM__POLL_MS 10u

static const char *const dm__names[DM_EV_NEVENTS] = {
	[DM_EV_READ] = "read",           [DM_EV_WRITE] = "write",
	[DM_EV_TRUNCATE] = "truncate",   [DM_EV_DESTROY] = "destroy",
	[DM_EV_ATTRIBUTE] = "attribute", [DM_EV_CREATE] = "create",
	[DM_EV_REMOVE] = "remove",       [DM_EV_RENAME] = "rename",
	[DM_EV_USER] = "user",
};

const char *dm_event_name(enum dm_event ev)
{
	return (unsigned)ev < DM_EV_NEVENTS ? dm__names[ev] : "?";
}

/* Does [off, off + len) fit in 64 bits?  (len 0, to EOF, always does.) */
static bool dm__range_ok(uint64_t off, uint64_t len)
{
	return len == 0 || off <= UINT64_MAX - len;
}

/* Last byte of a range; to EOF and ranges past 2^64 end at UINT64_MAX. */
static uint64_t dm__last(uint64_t off, uint64_t len)
{
	if (len == 0 || !dm__range_ok(off, len))
		return UINT64_MAX;
	return off + len - 1;
}

static bool dm__overlap(uint64_t aoff, uint64_t alen, uint64_t boff, uint64_t blen)
{
	return aoff <= dm__last(boff, blen) && boff <= dm__last(aoff, alen);
}

int dm_regions_validate(const struct dm_region *regions, size_t n)
{
	size_t i, j;

	if (n > DM_MAX_REGIONS)
		return -E2BIG;
	for (i = 0; i < n; i++) {
		if (!dm__range_ok(regions[i].off, regions[i].len) ||
		    (regions[i].events & ~DM_EV_DATA))
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (dm__overlap(regions[i].off, regions[i].len, regions[j].off,
					regions[j].len))
				return -EINVAL;
	}
	return 0;
}

bool dm_match(const struct dm_region *regions, size_t n, dm_eventset_t file_events,
	      enum dm_event ev, uint64_t off, uint64_t len)
{
	size_t i;

	if ((unsigned)ev >= DM_EV_NEVENTS)
		return false;
	if (file_events & DM_EV_BIT(ev))
		return true;
	for (i = 0; i < n; i++)
		if ((regions[i].events & DM_EV_BIT(ev)) &&
		    dm__overlap(regions[i].off, regions[i].len, off, len))
			return true;
	return false;
}

/* ---------------------------------------------------------------------- */
/* 2. The context, its records and lookups                                 */
/* ---------------------------------------------------------------------- */

enum dm__state {
	DM__QUEUED,     /* waiting for dm_get_events() */
	DM__DELIVERED,  /* handed to the HSM, not answered */
	DM__ANSWERED,   /* answered; freed when its last join ends */
};

/* A thread inside dm_event_wait(); lives on its stack. */
struct dm__waiter {
	struct dm__waiter *next;  /* the event's other waiters */
	int intr;                 /* 0, or DM_EEARLY / DM_EMIGRATING from dm_interrupt_all() */
};

struct dm__session;

/* A synchronous event. */
struct dm__event {
	struct dm__event *prev, *next;  /* ctx->events, oldest first (the queue order) */
	struct dm__session *sess;       /* its session; NULL once answered */
	uint64_t token;                 /* unique, never 0 */
	uint64_t ino;
	enum dm_event ev;
	uint64_t off, len;              /* the range; grows with joins while queued */
	enum dm__state state;
	int response;                   /* with DM__ANSWERED */
	uint32_t joins;                 /* posts whose dm_event_wait() has not ended */
	bool async;                     /* nobody waits: freed once delivered */
	struct dm__waiter *waiters;     /* threads in dm_event_wait() on it */
};

/* An HSM session. */
struct dm__session {
	struct dm__session *next;  /* ctx->sessions, oldest first */
	uint64_t id;               /* never 0 */
	char name[DM_NAME_MAX];
	dm_eventset_t disp;        /* event types it receives */
	unsigned users;            /* threads in dm_get_events() on it */
	bool dead;                 /* destroyed; freed by the last user */
};

#define DM__FILE_BUCKETS 4096u

/* Event list and regions of one file. */
struct dm__file {
	struct dm__file *next;     /* same bucket of ctx->files */
	uint64_t ino;
	dm_eventset_t events;      /* file-wide event list */
	size_t nregions;
	struct dm_region regions[DM_MAX_REGIONS];
};

/* Every field is protected by mu (see the top). */
struct dm_ctx {
	pthread_mutex_t mu;
	pthread_cond_t cv;                     /* on CLOCK_MONOTONIC */
	struct dm__file *files[DM__FILE_BUCKETS];  /* files with an event list or regions */
	struct dm__session *sessions;          /* live sessions, oldest first */
	struct dm__event *ev_head, *ev_tail;   /* every event, oldest first */
	uint64_t next_session;                 /* last session id given out */
	uint64_t next_token;                   /* last token given out */
	uint64_t kicks;                        /* dm_interrupt_all() calls */
	struct dm_stats stats;
};

/* Debug check that the caller holds ctx->mu: a trylock must fail. */
static void dm__assert_locked(struct dm_ctx *ctx)
{
#ifndef NDEBUG
	assert(pthread_mutex_trylock(&ctx->mu) != 0);
#else
	(void)ctx;
#endif
}

static struct dm__file *dm__file_find(struct dm_ctx *ctx, uint64_t ino)
{
	struct dm__file *f;

	dm__assert_locked(ctx);
	for (f = ctx->files[ino % DM__FILE_BUCKETS]; f; f = f->next)
		if (f->ino == ino)
			return f;
	return NULL;
}

static struct dm__session *dm__session_find(struct dm_ctx *ctx, uint64_t id)
{
	struct dm__session *s;

	dm__assert_locked(ctx);
	for (s = ctx->sessions; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static struct dm__session *dm__session_named(struct dm_ctx *ctx, const char *name)
{
	struct dm__session *s;

	dm__assert_locked(ctx);
	for (s = ctx->sessions; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static struct dm__event *dm__event_find(struct dm_ctx *ctx, uint64_t token)
{
	struct dm__event *e;

	dm__assert_locked(ctx);
	for (e = ctx->ev_head; e; e = e->next)
		if (e->token == token)
			return e;
	return NULL;
}

static void dm__event_unlink(struct dm_ctx *ctx, struct dm__event *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		ctx->ev_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		ctx->ev_tail = e->prev;
}

/* Free @e if it is answered and nobody waits on it any more. */
static void dm__event_put(struct dm_ctx *ctx, struct dm__event *e)
{
	dm__assert_locked(ctx);
	if (e->state != DM__ANSWERED || e->joins > 0)
		return;
	assert(e->waiters == NULL);
	dm__event_unlink(ctx, e);
	free(e);
}

/* Answer outstanding event @e with @response and wake its waiters. */
static void dm__event_answer(struct dm_ctx *ctx, struct dm__event *e, int response)
{
	dm__assert_locked(ctx);
	e->state = DM__ANSWERED;
	e->response = response;
	e->sess = NULL;
	pthread_cond_broadcast(&ctx->cv);
	dm__event_put(ctx, e);
}

/* A response is 0 or a real negative errno (never an internal code). */
static bool dm__response_ok(int response)
{
	return response <= 0 && response >= -4095;
}

static uint64_t dm__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait on ctx->cv until @until_ms (CLOCK_MONOTONIC), or forever if 0. */
static void dm__cv_wait(struct dm_ctx *ctx, uint64_t until_ms)
{
	struct timespec ts;

	if (until_ms == 0) {
		pthread_cond_wait(&ctx->cv, &ctx->mu);
		return;
	}
	ts.tv_sec = (time_t)(until_ms / 1000u);
	ts.tv_nsec = (long)(until_ms % 1000u) * 1000000L;
	pthread_cond_timedwait(&ctx->cv, &ctx->mu, &ts);
}

void dm_set_token_floor(struct dm_ctx *ctx, uint64_t floor)
{
	pthread_mutex_lock(&ctx->mu);
	if (ctx->next_token < floor)
		ctx->next_token = floor;
	pthread_mutex_unlock(&ctx->mu);
}

int dm_ctx_create(struct dm_ctx **out)
{
	struct dm_ctx *ctx = calloc(1, sizeof(*ctx));
	pthread_condattr_t attr;
	int rc;

	if (ctx == NULL)
		return -ENOMEM;
	rc = -pthread_mutex_init(&ctx->mu, NULL);
	if (rc)
		goto out_free;
	rc = -pthread_condattr_init(&attr);
	if (rc)
		goto out_mutex;
	rc = -pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = -pthread_cond_init(&ctx->cv, &attr);
	pthread_condattr_destroy(&attr);
	if (rc)
		goto out_mutex;
	*out = ctx;
	return 0;
out_mutex:
	pthread_mutex_destroy(&ctx->mu);
out_free:
	free(ctx);
	return rc;
}

void dm_ctx_destroy(struct dm_ctx *ctx)
{
	struct dm__file *f;
	struct dm__session *s;
	struct dm__event *e;

	if (ctx == NULL)
		return;
	for (size_t b = 0; b < DM__FILE_BUCKETS; b++)
		while ((f = ctx->files[b]) != NULL) {
			ctx->files[b] = f->next;
			free(f);
		}
	while ((s = ctx->sessions) != NULL) {
		ctx->sessions = s->next;
		free(s);
	}
	while ((e = ctx->ev_head) != NULL) {
		ctx->ev_head = e->next;
		free(e);
	}
	pthread_cond_destroy(&ctx->cv);
	pthread_mutex_destroy(&ctx->mu);
	free(ctx);
}

/* ---------------------------------------------------------------------- */
/* 3. Per-file event lists and regions                                     */
/* ---------------------------------------------------------------------- */

/* @ino's record, created if @create; NULL if absent or out of memory. */
static struct dm__file *dm__file_get(struct dm_ctx *ctx, uint64_t ino, bool create)
{
	struct dm__file *f = dm__file_find(ctx, ino);

	if (f || !create)
		return f;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->ino = ino;
	f->next = ctx->files[ino % DM__FILE_BUCKETS];
	ctx->files[ino % DM__FILE_BUCKETS] = f;
	return f;
}

/* Drop @f's record if it has nothing left. */
static void dm__file_trim(struct dm_ctx *ctx, struct dm__file *f)
{
	struct dm__file **pp;

	if (f->events || f->nregions)
		return;
	for (pp = &ctx->files[f->ino % DM__FILE_BUCKETS]; *pp != f; pp = &(*pp)->next)
		;
	*pp = f->next;
	free(f);
}

int dm_set_eventlist(struct dm_ctx *ctx, uint64_t ino, dm_eventset_t events)
{
	struct dm__file *f;
	int rc = 0;

	if (events & ~DM_EV_ALL)
		return -EINVAL;
	pthread_mutex_lock(&ctx->mu);
	f = dm__file_get(ctx, ino, events != 0);
	if (f == NULL) {
		rc = events ? -ENOMEM : 0;
		goto out_unlock;
	}
	f->events = events;
	dm__file_trim(ctx, f);
out_unlock:
	pthread_mutex_unlock(&ctx->mu);
	return rc;
}

dm_eventset_t dm_get_eventlist(struct dm_ctx *ctx, uint64_t ino)
{
	struct dm__file *f;
	dm_eventset_t events;

	pthread_mutex_lock(&ctx->mu);
	f = dm__file_find(ctx, ino);
	events = f ? f->events : 0;
	pthread_mutex_unlock(&ctx->mu);
	return events;
}

int dm_set_regions(struct dm_ctx *ctx, uint64_t ino, const struct dm_region *regions, size_t n)
{
	struct dm__file *f;
	int rc;

	rc = dm_regions_validate(regions, n);
	if (rc)
		return rc;
	pthread_mutex_lock(&ctx->mu);
	f = dm__file_get(ctx, ino, n != 0);
	if (f == NULL) {
		rc = n ? -ENOMEM : 0;
		goto out_unlock;
	}
	if (n)
		memcpy(f->regions, regions, n * sizeof(*regions));
	f->nregions = n;
	dm__file_trim(ctx, f);
out_unlock:
	pthread_mutex_unlock(&ctx->mu);
	return rc;
}

size_t dm_get_regions(struct dm_ctx *ctx, uint64_t ino, struct dm_region *out, size_t max)
{
	struct dm__file *f;
	size_t n = 0;

	pthread_mutex_lock(&ctx->mu);
	f = dm__file_find(ctx, ino);
	if (f) {
		n = f->nregions;
		memcpy(out, f->regions, (n < max ? n : max) * sizeof(*out));
	}
	pthread_mutex_unlock(&ctx->mu);
	return n;
}

bool dm_check(struct dm_ctx *ctx, uint64_t ino, enum dm_event ev, uint64_t off, uint64_t len)
{
	struct dm__file *f;
	bool need = false;

	pthread_mutex_lock(&ctx->mu);
	f = dm__file_find(ctx, ino);
	if (f)
		need = dm_match(f->regions, f->nregions, f->events, ev, off, len);
	pthread_mutex_unlock(&ctx->mu);
	return need;
}

/* ---------------------------------------------------------------------- */
/* 4. Sessions                                                             */
/* ---------------------------------------------------------------------- */

static int dm__name_check(const char *name)
{
	size_t len = strnlen(name, DM_NAME_MAX);

	if (len == 0)
		return -EINVAL;
	return len < DM_NAME_MAX ? 0 : -ENAMETOOLONG;
}

int dm_session_create(struct dm_ctx *ctx, const char *name, uint64_t *id)
{
	struct dm__session *s, **pp;
	int rc;

	rc = dm__name_check(name);
	if (rc)
		return rc;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	strcpy(s->name, name);
	pthread_mutex_lock(&ctx->mu);
	if (dm__session_named(ctx, name)) {
		rc = -EEXIST;
		goto out_unlock;
	}
	s->id = ++ctx->next_session;
	for (pp = &ctx->sessions; *pp; pp = &(*pp)->next)
		;
	*pp = s;
	*id = s->id;
	s = NULL;
out_unlock:
	pthread_mutex_unlock(&ctx->mu);
	free(s);
	return rc;
}

int dm_session_assume(struct dm_ctx *ctx, const char *name, uint64_t *id)
{
	struct dm__session *s;
	struct dm__event *e;
	int rc = 0;

	pthread_mutex_lock(&ctx->mu);
	s = dm__session_named(ctx, name);
	if (s == NULL) {
		rc = -ENOENT;
		goto out_unlock;
	}
	for (e = ctx->ev_head; e; e = e->next)
		if (e->sess == s && e->state == DM__DELIVERED)
			e->state = DM__QUEUED;
	*id = s->id;
	pthread_cond_broadcast(&ctx->cv);
out_unlock:
	pthread_mutex_unlock(&ctx->mu);
	return rc;
}

int dm_session_destroy(struct dm_ctx *ctx, uint64_t id, bool force, int error)
{
	struct dm__session *s, **pp;
	struct dm__event *e, *next;
	int rc = 0;

	if (!dm__response_ok(error))
		return -EINVAL;
	pthread_mutex_lock(&ctx->mu);
	s = dm__session_find(ctx, id);
	if (s == NULL) {
		rc = -ESRCH;
		goto out_unlock;
	}
	for (e = ctx->ev_head; e && !force; e = e->next)
		if (e->sess == s) {
			rc = -EBUSY;
			goto out_unlock;
		}
	for (e = ctx->ev_head; e; e = next) {
		next = e->next;
		if (e->sess == s) {
			ctx->stats.forced++;
			dm__event_answer(ctx, e, error);
		}
	}
	for (pp = &ctx->sessions; *pp != s; pp = &(*pp)->next)
		;
	*pp = s->next;
	s->dead = true;
	pthread_cond_broadcast(&ctx->cv);
	if (s->users == 0)
		free(s);
out_unlock:
	pthread_mutex_unlock(&ctx->mu);
	return rc;
}

size_t dm_session_list(struct dm_ctx *ctx, struct dm_session_info *out, size_t max)
{
	struct dm__session *s;
	struct dm__event *e;
	size_t n = 0;

	pthread_mutex_lock(&ctx->mu);
	for (s = ctx->sessions; s; s = s->next, n++) {
		if (n >= max)
			continue;
		memset(&out[n], 0, sizeof(out[n]));
		out[n].id = s->id;
		out[n].disp = s->disp;
		strcpy(out[n].name, s->name);
		for (e = ctx->ev_head; e; e = e->next) {
			if (e->sess != s)
				continue;
			if (e->state == DM__QUEUED)
				out[n].queued++;
			else
				out[n].delivered++;
		}
	}
	pthread_mutex_unlock(&ctx->mu);
	return n;
}

/* ---------------------------------------------------------------------- */
/* 5. Events                                                               */
/* ---------------------------------------------------------------------- */

/* Grow @e's range to cover [off, off + len) as well. */
static void dm__event_widen(struct dm__event *e, uint64_t off, uint64_t len)
{
	uint64_t end;

	if (e->len == 0 || len == 0) {
		e->len = 0;
	} else {
		end = e->off + e->len > off + len ? e->off + e->len : off + len;
		e->len = end - (off < e->off ? off : e->off);
	}
	if (off < e->off)
		e->off = off;
}

static int dm__post(struct dm_ctx *ctx, uint64_t session, uint64_t ino, enum dm_event ev,
		    uint64_t off, uint64_t len, bool async, uint64_t *token)
{
	struct dm__session *s;
	struct dm__event *e, *fresh;
	int rc = 0;

	if ((unsigned)ev >= DM_EV_NEVENTS || !dm__range_ok(off, len))
		return -EINVAL;
	fresh = calloc(1, sizeof(*fresh));  /* allocated outside the mutex; freed if we join */
	if (fresh == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&ctx->mu);
	s = dm__session_find(ctx, session);
	if (s == NULL) {
		rc = -ESRCH;
		goto out_unlock;
	}
	for (e = async ? NULL : ctx->ev_head; e; e = e->next)
		if (e->sess == s && e->ino == ino && e->ev == ev && !e->async &&
		    dm__overlap(e->off, e->len, off, len))
			break;
	if (e) {
		if (e->state == DM__QUEUED)
			dm__event_widen(e, off, len);
		ctx->stats.joined++;
	} else {
		e = fresh;
		fresh = NULL;
		e->sess = s;
		e->token = ++ctx->next_token;
		e->ino = ino;
		e->ev = ev;
		e->off = off;
		e->len = len;
		e->state = DM__QUEUED;
		e->async = async;
		e->prev = ctx->ev_tail;
		if (ctx->ev_tail)
			ctx->ev_tail->next = e;
		else
			ctx->ev_head = e;
		ctx->ev_tail = e;
		ctx->stats.posted++;
		pthread_cond_broadcast(&ctx->cv);
	}
	if (!async) {
		e->joins++;
		ctx->stats.waiting++;
	}
	if (token)
		*token = e->token;
out_unlock:
	pthread_mutex_unlock(&ctx->mu);
	free(fresh);
	return rc;
}

int dm_event_post(struct dm_ctx *ctx, uint64_t session, uint64_t ino, enum dm_event ev,
		  uint64_t off, uint64_t len, uint64_t *token)
{
	return dm__post(ctx, session, ino, ev, off, len, false, token);
}

int dm_event_post_async(struct dm_ctx *ctx, uint64_t session, uint64_t ino, enum dm_event ev,
			uint64_t off, uint64_t len)
{
	return dm__post(ctx, session, ino, ev, off, len, true, NULL);
}

static int dm__wait(struct dm_ctx *ctx, uint64_t token, unsigned timeout_ms,
		    int (*interrupted)(void *arg), void *arg, bool keep)
{
	struct dm__waiter w = { 0 }, **pp;
	struct dm__event *e;
	uint64_t deadline = 0, until, now;
	int rc;

	if (timeout_ms)
		deadline = dm__now_ms() + timeout_ms;
	pthread_mutex_lock(&ctx->mu);
	e = dm__event_find(ctx, token);
	if (e == NULL || e->joins == 0) {
		pthread_mutex_unlock(&ctx->mu);
		return -ENOENT;
	}
	w.next = e->waiters;
	e->waiters = &w;
	for (;;) {
		if (e->state == DM__ANSWERED) {
			rc = e->response;
			break;
		}
		if (w.intr) {
			rc = -w.intr;
			ctx->stats.early++;
			break;
		}
		if (interrupted) {
			int stop;

			pthread_mutex_unlock(&ctx->mu);  /* e stays: our join pins it */
			stop = interrupted(arg);
			pthread_mutex_lock(&ctx->mu);
			if (stop && e->state != DM__ANSWERED) {
				rc = -DM_EEARLY;
				ctx->stats.early++;
				break;
			}
			if (stop)
				continue;
		}
		now = dm__now_ms();
		if (deadline && now >= deadline) {
			rc = -ETIMEDOUT;
			ctx->stats.timeouts++;
			break;
		}
		until = deadline;
		if (interrupted && (until == 0 || until > now + DM__POLL_MS))
			until = now + DM__POLL_MS;
		dm__cv_wait(ctx, until);
	}
	for (pp = &e->waiters; *pp != &w; pp = &(*pp)->next)
		;
	*pp = w.next;
	if (!(keep && rc == -ETIMEDOUT)) {
		e->joins--;
		ctx->stats.waiting--;
		dm__event_put(ctx, e);
	}
	pthread_mutex_unlock(&ctx->mu);
	return rc;
}

int dm_event_wait(struct dm_ctx *ctx, uint64_t token, unsigned timeout_ms,
		  int (*interrupted)(void *arg), void *arg)
{
	return dm__wait(ctx, token, timeout_ms, interrupted, arg, false);
}

int dm_event_wait_slice(struct dm_ctx *ctx, uint64_t token, unsigned timeout_ms)
{
	return dm__wait(ctx, token, timeout_ms, NULL, NULL, true);
}

int dm_get_events(struct dm_ctx *ctx, uint64_t session, size_t max, struct dm_event_msg *out,
		  unsigned timeout_ms)
{
	struct dm__session *s;
	struct dm__event *e;
	uint64_t deadline = 0, kicks;
	size_t n = 0;
	int rc;

	if (max == 0)
		return -EINVAL;
	if (timeout_ms)
		deadline = dm__now_ms() + timeout_ms;
	pthread_mutex_lock(&ctx->mu);
	kicks = ctx->kicks;
	s = dm__session_find(ctx, session);
	if (s == NULL) {
		pthread_mutex_unlock(&ctx->mu);
		return -ESRCH;
	}
	s->users++;
	for (;;) {
		struct dm__event *enext;

		if (s->dead) {
			rc = -ESRCH;
			break;
		}
		for (e = ctx->ev_head; e && n < max; e = enext) {
			enext = e->next;
			if (e->sess != s || e->state != DM__QUEUED)
				continue;
			e->state = DM__DELIVERED;
			out[n].token = e->token;
			out[n].ino = e->ino;
			out[n].ev = e->ev;
			out[n].off = e->off;
			out[n].len = e->len;
			out[n].waiters = e->joins;
			n++;
			if (e->async) {
				dm__event_unlink(ctx, e);
				free(e);
			}
		}
		if (n) {
			ctx->stats.delivered += n;
			rc = (int)n;
			break;
		}
		if ((deadline && dm__now_ms() >= deadline) || ctx->kicks != kicks) {
			rc = -ETIMEDOUT;
			break;
		}
		dm__cv_wait(ctx, deadline);
	}
	if (--s->users == 0 && s->dead)
		free(s);
	pthread_mutex_unlock(&ctx->mu);
	return rc;
}

int dm_respond(struct dm_ctx *ctx, uint64_t session, uint64_t token, int response)
{
	struct dm__session *s;
	struct dm__event *e;
	int rc = 0;

	if (!dm__response_ok(response))
		return -EINVAL;
	pthread_mutex_lock(&ctx->mu);
	s = dm__session_find(ctx, session);
	if (s == NULL) {
		rc = -ESRCH;
		goto out_unlock;
	}
	e = dm__event_find(ctx, token);
	if (e == NULL || e->sess != s) {
		rc = -ENOENT;
		goto out_unlock;
	}
	if (e->state != DM__DELIVERED) {
		rc = -EINVAL;
		goto out_unlock;
	}
	ctx->stats.responded++;
	dm__event_answer(ctx, e, response);
out_unlock:
	pthread_mutex_unlock(&ctx->mu);
	return rc;
}

int dm_interrupt_all(struct dm_ctx *ctx, int code)
{
	struct dm__event *e;
	struct dm__waiter *w;

	if (code != DM_EEARLY && code != DM_EMIGRATING)
		return -EINVAL;
	pthread_mutex_lock(&ctx->mu);
	ctx->kicks++;
	for (e = ctx->ev_head; e; e = e->next)
		for (w = e->waiters; w; w = w->next)
			if (w->intr == 0)
				w->intr = code;
	pthread_cond_broadcast(&ctx->cv);
	pthread_mutex_unlock(&ctx->mu);
	return 0;
}

int dm_set_disposition(struct dm_ctx *ctx, uint64_t session, dm_eventset_t events)
{
	struct dm__session *s;
	int rc = 0;

	if (events & ~DM_EV_ALL)
		return -EINVAL;
	pthread_mutex_lock(&ctx->mu);
	s = dm__session_find(ctx, session);
	if (s == NULL) {
		rc = -ESRCH;
		goto out_unlock;
	}
	/* One receiver per event type: the newest setting wins. */
	for (struct dm__session *o = ctx->sessions; o; o = o->next)
		if (o != s)
			o->disp &= ~events;
	s->disp = events;
out_unlock:
	pthread_mutex_unlock(&ctx->mu);
	return rc;
}

uint64_t dm_disposition(struct dm_ctx *ctx, enum dm_event ev)
{
	struct dm__session *s;
	uint64_t id = 0;

	pthread_mutex_lock(&ctx->mu);
	for (s = ctx->sessions; s; s = s->next)
		if (s->disp & DM_EV_BIT(ev)) {
			id = s->id;
			break;
		}
	pthread_mutex_unlock(&ctx->mu);
	return id;
}

void dm_get_stats(struct dm_ctx *ctx, struct dm_stats *st)
{
	pthread_mutex_lock(&ctx->mu);
	*st = ctx->stats;
	pthread_mutex_unlock(&ctx->mu);
}
