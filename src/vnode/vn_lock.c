/*
 * vn_lock.c - the lock manager of one filesystem: POSIX record locks and
 * flock(2) locks per inode, blocking waits, and deadlock detection over the
 * POSIX wait-for graph (see vn_lock.h).
 *
 * Sections:
 *   1. Records: per-inode lock lists, waiters, the manager.
 *   2. Conflicts and the deadlock walk.
 *   3. Granting: POSIX merge/split, flock conversion.
 *   4. The public calls.
 *
 * Mutex rules: one mutex per manager (m->mu) protects every field of the
 * manager, of its inode records, locks and waiters.  It is a leaf: nothing
 * else is locked under it, except that the @interrupted callback of
 * vn_lock_set runs under it (so that callback must not call this manager).
 * Each inode record has a condition variable, broadcast whenever a lock on
 * it is released, narrowed, downgraded or replaced, on which its waiters
 * sleep with a 50 ms timeout to poll @interrupted.
 *
 * Semantics follow Linux (fs/locks.c):
 *   - POSIX locks of one owner never overlap or touch if of the same type: a
 *     new lock absorbs the owner's same-type locks that overlap or adjoin it
 *     and cuts the owner's other-type locks out of its range (upgrade,
 *     downgrade and unlock in place, splitting a lock in two if needed).
 *   - flock locks are whole-file, one per owner; converting between shared
 *     and exclusive first drops the old lock (flock(2): "not guaranteed to be
 *     atomic"), so a failed or waiting upgrade no longer holds the shared
 *     lock.
 *   - The two kinds never conflict with each other.
 */
#include "vnode/vn_lock.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

/* ---------------------------------------------------------------------- */
/* 1. Records                                                              */
/* ---------------------------------------------------------------------- */

#define VN__LK_BUCKETS 256u
#define VN__LK_POLL_NS 50000000L   /* poll @interrupted every 50 ms */

/* One granted lock. */
struct vn__lk {
	struct vn__lk *next;         /* the inode's list, sorted by start */
	short type;                  /* F_RDLCK or F_WRLCK */
	bool is_flock;               /* flock(2) lock: range is the whole file */
	uint64_t start, end;         /* inclusive */
	uint64_t owner;
	pid_t pid;
	uint32_t node;               /* cluster node holding it (vn_lock_release_node) */
};

/* The locks of one inode; exists while it has locks or waiters. */
struct vn__ilock {
	struct vn__ilock *hnext;     /* hash chain */
	uint64_t ino;
	struct vn__lk *locks;        /* granted locks, sorted by start */
	unsigned nwaiters;           /* threads sleeping on cv */
	pthread_cond_t cv;           /* broadcast on every release or change */
};

/* A thread waiting for a lock; lives on that thread's stack. */
struct vn__waiter {
	struct vn__waiter *next;     /* m->waiters */
	struct vn__ilock *il;        /* the inode waited on */
	struct vn_flock req;         /* the request, to find its current blocker */
};

struct vn_lockmgr {
	pthread_mutex_t mu;          /* protects everything below and all records */
	pthread_condattr_t cvattr;   /* CLOCK_MONOTONIC, for the inode conditions */
	struct vn__waiter *waiters;  /* every waiting thread, for the deadlock walk */
	size_t nwaiters;             /* length of waiters */
	struct vn__ilock *buckets[VN__LK_BUCKETS];
};

static size_t vn__lk_bucket(uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 56) & (VN__LK_BUCKETS - 1);
}

int vn_lockmgr_create(struct vn_lockmgr **out)
{
	struct vn_lockmgr *m;
	int rc;

	m = calloc(1, sizeof(*m));
	if (!m) {
		rc = -ENOMEM;
		goto out;
	}
	rc = -pthread_mutex_init(&m->mu, NULL);
	if (rc)
		goto out_free;
	rc = -pthread_condattr_init(&m->cvattr);
	if (rc)
		goto out_destroy_mu;
	rc = -pthread_condattr_setclock(&m->cvattr, CLOCK_MONOTONIC);
	if (rc)
		goto out_destroy_attr;
	*out = m;
	return 0;

out_destroy_attr:
	pthread_condattr_destroy(&m->cvattr);
out_destroy_mu:
	pthread_mutex_destroy(&m->mu);
out_free:
	free(m);
out:
	return rc;
}

static void vn__lk_free_list(struct vn__lk *l)
{
	struct vn__lk *next;

	for (; l; l = next) {
		next = l->next;
		free(l);
	}
}

void vn_lockmgr_destroy(struct vn_lockmgr *m)
{
	struct vn__ilock *il, *next;

	if (!m)
		return;
	assert(m->nwaiters == 0);
	for (size_t b = 0; b < VN__LK_BUCKETS; b++) {
		for (il = m->buckets[b]; il; il = next) {
			next = il->hnext;
			vn__lk_free_list(il->locks);
			pthread_cond_destroy(&il->cv);
			free(il);
		}
	}
	pthread_condattr_destroy(&m->cvattr);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* The record of @ino; with @create, made if missing (NULL if out of memory).  Caller holds m->mu. */
static struct vn__ilock *vn__ilock_get(struct vn_lockmgr *m, uint64_t ino, bool create)
{
	struct vn__ilock *il;
	size_t b = vn__lk_bucket(ino);

	for (il = m->buckets[b]; il; il = il->hnext)
		if (il->ino == ino)
			return il;
	if (!create)
		return NULL;
	il = calloc(1, sizeof(*il));
	if (!il)
		return NULL;
	if (pthread_cond_init(&il->cv, &m->cvattr)) {
		free(il);
		return NULL;
	}
	il->ino = ino;
	il->hnext = m->buckets[b];
	m->buckets[b] = il;
	return il;
}

/* Free @il if nothing holds it any more.  Caller holds m->mu. */
static void vn__ilock_put(struct vn_lockmgr *m, struct vn__ilock *il)
{
	struct vn__ilock **pp;

	if (il->locks || il->nwaiters)
		return;
	for (pp = &m->buckets[vn__lk_bucket(il->ino)]; *pp != il; pp = &(*pp)->hnext)
		;
	*pp = il->hnext;
	pthread_cond_destroy(&il->cv);
	free(il);
}

/* Insert @l into @il's list, keeping it sorted by start. */
static void vn__lk_insert(struct vn__ilock *il, struct vn__lk *l)
{
	struct vn__lk **pp;

	for (pp = &il->locks; *pp && (*pp)->start <= l->start; pp = &(*pp)->next)
		;
	l->next = *pp;
	*pp = l;
}

/* ---------------------------------------------------------------------- */
/* 2. Conflicts and the deadlock walk                                      */
/* ---------------------------------------------------------------------- */

static bool vn__conflicts(const struct vn__lk *l, const struct vn_flock *req)
{
	if (l->is_flock != (req->is_flock != 0) || l->owner == req->owner)
		return false;
	if (l->type != F_WRLCK && req->type != F_WRLCK)
		return false;
	return l->start <= req->end && req->start <= l->end;
}

/* The first lock (lowest start) that conflicts with @req, or NULL. */
static struct vn__lk *vn__first_conflict(struct vn__ilock *il, const struct vn_flock *req)
{
	struct vn__lk *l;

	for (l = il->locks; l; l = l->next)
		if (vn__conflicts(l, req))
			return l;
	return NULL;
}

/*
 * Would POSIX owner @me deadlock by waiting for @holder?  Follow the chain
 * holder -> what holder waits for -> ... like Linux's posix_locks_deadlock;
 * each edge is computed from the waiter's request now, so a wait that is
 * about to be granted is no edge.  The walk is bounded by the number of
 * waiters, so a cycle that does not pass through @me ends it.  Caller holds
 * m->mu.
 */
static bool vn__would_deadlock(struct vn_lockmgr *m, uint64_t me, uint64_t holder)
{
	struct vn__waiter *w;
	struct vn__lk *l;

	for (size_t steps = 0; steps <= m->nwaiters; steps++) {
		if (holder == me)
			return true;
		for (w = m->waiters; w; w = w->next)
			if (!w->req.is_flock && w->req.owner == holder)
				break;
		if (!w)
			return false;
		l = vn__first_conflict(w->il, &w->req);
		if (!l)
			return false;
		holder = l->owner;
	}
	return false;
}

/* ---------------------------------------------------------------------- */
/* 3. Granting                                                             */
/* ---------------------------------------------------------------------- */

static bool vn__overlaps(const struct vn__lk *l, uint64_t start, uint64_t end)
{
	return l->start <= end && start <= l->end;
}

static bool vn__touches(const struct vn__lk *l, uint64_t start, uint64_t end)
{
	return (end == UINT64_MAX || l->start <= end + 1) &&
	       (l->end == UINT64_MAX || start <= l->end + 1);
}

/*
 * Apply POSIX request @req of its owner to @il (no conflict left).  @spare
 * holds two preallocated records, enough for the one lock of the owner that
 * may be split in two plus the new lock; used ones are set to NULL.  Records
 * the request frees are added to *@dead for the caller to free.  Caller holds
 * m->mu.
 */
static void vn__posix_apply(struct vn__ilock *il, const struct vn_flock *req,
			    struct vn__lk *spare[2], struct vn__lk **dead)
{
	uint64_t start = req->start, end = req->end;
	struct vn__lk **pp = &il->locks, *l, *right = NULL, *n;

	while ((l = *pp)) {
		if (l->is_flock || l->owner != req->owner || !vn__touches(l, req->start, req->end)) {
			pp = &l->next;
			continue;
		}
		if (req->type != F_UNLCK && l->type == req->type) {
			/* Same type, overlapping or adjacent: absorb it. */
			if (l->start < start)
				start = l->start;
			if (l->end > end)
				end = l->end;
		} else if (!vn__overlaps(l, req->start, req->end)) {
			pp = &l->next;
			continue;
		} else if (l->start < req->start && l->end > req->end) {
			/* Strictly inside: keep both ends. */
			right = spare[0];
			spare[0] = NULL;
			*right = *l;
			right->start = req->end + 1;
			l->end = req->start - 1;
			pp = &l->next;
			continue;
		} else if (l->start < req->start) {
			l->end = req->start - 1;
			pp = &l->next;
			continue;
		} else if (l->end > req->end) {
			/* Only its tail survives: it may move past others, re-sort. */
			*pp = l->next;
			l->start = req->end + 1;
			vn__lk_insert(il, l);
			continue;
		}
		*pp = l->next;
		l->next = *dead;
		*dead = l;
	}
	if (right)
		vn__lk_insert(il, right);
	if (req->type == F_UNLCK)
		return;
	n = spare[1];
	spare[1] = NULL;
	n->type = req->type;
	n->is_flock = false;
	n->start = start;
	n->end = end;
	n->owner = req->owner;
	n->pid = req->pid;
	n->node = req->node;
	vn__lk_insert(il, n);
}

/*
 * Drop @owner's flock lock on @il unless it already has type @keep; returns
 * 1 if it had the lock of type @keep, else 0.  Caller holds m->mu.
 */
static int vn__flock_drop(struct vn__ilock *il, uint64_t owner, short keep, struct vn__lk **dead)
{
	struct vn__lk **pp, *l;

	for (pp = &il->locks; (l = *pp); pp = &l->next) {
		if (!l->is_flock || l->owner != owner)
			continue;
		if (l->type == keep)
			return 1;
		*pp = l->next;
		l->next = *dead;
		*dead = l;
		return 0;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* 4. Public calls                                                         */
/* ---------------------------------------------------------------------- */

static int vn__check(const struct vn_flock *lk)
{
	if (lk->type != F_RDLCK && lk->type != F_WRLCK && lk->type != F_UNLCK)
		return -EINVAL;
	if (!lk->is_flock && lk->start > lk->end)
		return -EINVAL;
	return 0;
}

int vn_lock_test(struct vn_lockmgr *m, uint64_t ino, struct vn_flock *lk)
{
	struct vn_flock req = *lk;
	struct vn__ilock *il;
	struct vn__lk *l = NULL;
	int rc;

	rc = vn__check(lk);
	if (rc)
		return rc;
	if (lk->type == F_UNLCK)
		return -EINVAL;
	if (req.is_flock) {
		req.start = 0;
		req.end = UINT64_MAX;
	}
	pthread_mutex_lock(&m->mu);
	il = vn__ilock_get(m, ino, false);
	if (il)
		l = vn__first_conflict(il, &req);
	if (l) {
		lk->type = l->type;
		lk->start = l->start;
		lk->end = l->end;
		lk->pid = l->pid;
	} else {
		lk->type = F_UNLCK;
	}
	pthread_mutex_unlock(&m->mu);
	return 0;
}

/* Deadline for one poll interval on the manager's monotonic clock. */
static void vn__poll_deadline(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += VN__LK_POLL_NS;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int vn_lock_set(struct vn_lockmgr *m, uint64_t ino, const struct vn_flock *lk, int sleep,
		int (*interrupted)(void *arg), void *arg)
{
	struct vn__waiter w = { .req = *lk };
	struct vn__waiter **wp;
	struct vn__lk *spare[2] = { NULL, NULL }, *dead = NULL, *l;
	struct vn__ilock *il;
	struct timespec deadline;
	bool waiting = false;
	int rc;

	rc = vn__check(lk);
	if (rc)
		return rc;
	w.req.is_flock = lk->is_flock != 0;
	if (w.req.is_flock) {
		w.req.start = 0;
		w.req.end = UINT64_MAX;
	}
	/* Allocate before locking: a POSIX change needs at most two records. */
	if (lk->type != F_UNLCK || !w.req.is_flock) {
		spare[0] = malloc(sizeof(*spare[0]));
		spare[1] = malloc(sizeof(*spare[1]));
		if (!spare[0] || !spare[1]) {
			rc = -ENOLCK;
			goto out_free;
		}
	}

	pthread_mutex_lock(&m->mu);
	il = vn__ilock_get(m, ino, lk->type != F_UNLCK);
	if (!il) {
		rc = lk->type == F_UNLCK ? 0 : -ENOLCK;
		goto out_unlock;
	}
	w.il = il;

	if (w.req.is_flock) {
		if (vn__flock_drop(il, w.req.owner, w.req.type, &dead))
			goto out_put;   /* already held with this type */
		if (dead)
			pthread_cond_broadcast(&il->cv);
		if (w.req.type == F_UNLCK)
			goto out_put;
	}

	for (;;) {
		l = w.req.type == F_UNLCK ? NULL : vn__first_conflict(il, &w.req);
		if (!l) {
			if (w.req.is_flock) {
				l = spare[0];
				spare[0] = NULL;
				l->type = w.req.type;
				l->is_flock = true;
				l->start = 0;
				l->end = UINT64_MAX;
				l->owner = w.req.owner;
				l->pid = w.req.pid;
				l->node = w.req.node;
				vn__lk_insert(il, l);
			} else {
				vn__posix_apply(il, &w.req, spare, &dead);
			}
			/* Waiters recheck: something may have been released or narrowed. */
			pthread_cond_broadcast(&il->cv);
			rc = 0;
			break;
		}
		if (!sleep) {
			rc = -EAGAIN;
			break;
		}
		if (!w.req.is_flock && vn__would_deadlock(m, w.req.owner, l->owner)) {
			rc = -EDEADLK;
			break;
		}
		if (!waiting) {
			w.next = m->waiters;
			m->waiters = &w;
			m->nwaiters++;
			il->nwaiters++;
			waiting = true;
		}
		if (interrupted && interrupted(arg)) {
			rc = -EINTR;
			break;
		}
		vn__poll_deadline(&deadline);
		pthread_cond_timedwait(&il->cv, &m->mu, &deadline);
	}

	if (waiting) {
		for (wp = &m->waiters; *wp != &w; wp = &(*wp)->next)
			;
		*wp = w.next;
		m->nwaiters--;
		il->nwaiters--;
	}
out_put:
	vn__ilock_put(m, il);
out_unlock:
	pthread_mutex_unlock(&m->mu);
out_free:
	vn__lk_free_list(dead);
	free(spare[0]);
	free(spare[1]);
	return rc;
}

void vn_lock_release(struct vn_lockmgr *m, uint64_t ino, uint64_t owner, int is_flock)
{
	struct vn__ilock *il;
	struct vn__lk **pp, *l, *dead = NULL;

	pthread_mutex_lock(&m->mu);
	il = vn__ilock_get(m, ino, false);
	if (!il)
		goto out_unlock;
	for (pp = &il->locks; (l = *pp);) {
		if (l->owner == owner && l->is_flock == (is_flock != 0)) {
			*pp = l->next;
			l->next = dead;
			dead = l;
		} else {
			pp = &l->next;
		}
	}
	if (dead)
		pthread_cond_broadcast(&il->cv);
	vn__ilock_put(m, il);
out_unlock:
	pthread_mutex_unlock(&m->mu);
	vn__lk_free_list(dead);
}

size_t vn_lock_release_node(struct vn_lockmgr *m, uint32_t node)
{
	struct vn__lk **pp, *l, *dead = NULL;
	struct vn__ilock *il, *next;
	size_t n = 0;

	pthread_mutex_lock(&m->mu);
	for (size_t b = 0; b < VN__LK_BUCKETS; b++) {
		for (il = m->buckets[b]; il; il = next) {
			bool changed = false;

			next = il->hnext;   /* vn__ilock_put may free il */
			for (pp = &il->locks; (l = *pp);) {
				if (l->node != node) {
					pp = &l->next;
					continue;
				}
				*pp = l->next;
				l->next = dead;
				dead = l;
				changed = true;
				n++;
			}
			if (changed)
				pthread_cond_broadcast(&il->cv);
			vn__ilock_put(m, il);
		}
	}
	pthread_mutex_unlock(&m->mu);
	vn__lk_free_list(dead);
	return n;
}

size_t vn_lock_count(struct vn_lockmgr *m, uint64_t ino)
{
	struct vn__ilock *il;
	struct vn__lk *l;
	size_t n = 0;

	pthread_mutex_lock(&m->mu);
	il = vn__ilock_get(m, ino, false);
	for (l = il ? il->locks : NULL; l; l = l->next)
		n++;
	pthread_mutex_unlock(&m->mu);
	return n;
}

int vn_lock_export(struct vn_lockmgr *m,
		   int (*fn)(void *arg, uint64_t ino, const struct vn_flock *lk), void *arg)
{
	int rc = 0;

	pthread_mutex_lock(&m->mu);
	for (size_t b = 0; b < VN__LK_BUCKETS && !rc; b++)
		for (struct vn__ilock *il = m->buckets[b]; il && !rc; il = il->hnext)
			for (struct vn__lk *l = il->locks; l && !rc; l = l->next) {
				struct vn_flock lk = { .type = l->type, .start = l->start,
						       .end = l->end, .owner = l->owner,
						       .pid = l->pid, .is_flock = l->is_flock,
						       .node = l->node };

				rc = fn(arg, il->ino, &lk);
			}
	pthread_mutex_unlock(&m->mu);
	return rc;
}
