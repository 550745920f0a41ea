/*
 * vn.c - the vnode core: the vnode table, the head lock, the behavior chain
 * and its dispatch (vn_call / vn_next), chain edits and the rewrite state.
 *
 * Sections:
 *   1. The head lock: a writer-preferring reader-writer lock.
 *   2. Vnodes and the table: lookup, construction, references, teardown.
 *   3. Rewrite state (vn_rewrite_begin / end / pending).
 *   4. Dispatch: vn_call and vn_next, and the -VN_EMIGRATING protocol.
 *   5. Chain edits.
 *
 * Lock order (outermost first):
 *
 *   table mutex  -- never held while taking a head lock or calling out of
 *                   this file (shape, ops, destroy), because an operation
 *                   may block for a long time under its head lock;
 *   head lock    -> rewrite mutex -- a behavior asks vn_rewrite_pending()
 *                   from inside an operation; the rewrite mutex is a leaf,
 *                   and a thread waits on the rewrite condition only after
 *                   dropping the head lock.
 *
 * The head lock is not recursive, and since it prefers writers a thread that
 * already holds it for reading must not take it again on the same vnode
 * (no vn_call, vn_bhv_find or chain edit on its own vnode from inside an
 * operation): a waiting writer would stall the inner request forever.
 */
#include "vnode/vn.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

/* ---------------------------------------------------------------------- */
/* 1. The head lock                                                        */
/* ---------------------------------------------------------------------- */

/*
 * A reader-writer lock that prefers writers: once a writer waits, new
 * readers queue behind it, so a stream of operations cannot starve a chain
 * rewrite.  pthread_rwlock_t does not promise this on every platform (glibc
 * prefers readers by default), hence our own.  All fields are protected by
 * @mu.
 */
struct vn__rwlock {
	pthread_mutex_t mu;
	pthread_cond_t readers_cv;   /* readers wait here for writers to leave */
	pthread_cond_t writers_cv;   /* writers wait here for the lock to be free */
	unsigned readers;            /* threads holding the lock for reading */
	unsigned writers_waiting;    /* writers queued; blocks new readers */
	bool writer;                 /* a writer holds the lock */
	pthread_t writer_tid;        /* that writer, for assertions */
};

#ifndef NDEBUG
/*
 * Head read locks held by this thread, over all vnodes: enough for a cheap
 * assertion that vn_next() runs inside an operation.
 */
static _Thread_local unsigned vn__reads_held;
#define VN__READS_ADD(d) (vn__reads_held += (d))
#else
#define VN__READS_ADD(d) ((void)0)
#endif

static int vn__rwlock_init(struct vn__rwlock *l)
{
	int rc;

	l->readers = 0;
	l->writers_waiting = 0;
	l->writer = false;
	rc = pthread_mutex_init(&l->mu, NULL);
	if (rc)
		goto out;
	rc = pthread_cond_init(&l->readers_cv, NULL);
	if (rc)
		goto out_destroy_mu;
	rc = pthread_cond_init(&l->writers_cv, NULL);
	if (rc)
		goto out_destroy_readers_cv;
	return 0;

out_destroy_readers_cv:
	pthread_cond_destroy(&l->readers_cv);
out_destroy_mu:
	pthread_mutex_destroy(&l->mu);
out:
	return -rc;
}

static void vn__rwlock_fini(struct vn__rwlock *l)
{
	assert(l->readers == 0 && !l->writer && l->writers_waiting == 0);
	pthread_cond_destroy(&l->writers_cv);
	pthread_cond_destroy(&l->readers_cv);
	pthread_mutex_destroy(&l->mu);
}

static void vn__rdlock(struct vn__rwlock *l)
{
	pthread_mutex_lock(&l->mu);
	while (l->writer || l->writers_waiting > 0)
		pthread_cond_wait(&l->readers_cv, &l->mu);
	l->readers++;
	pthread_mutex_unlock(&l->mu);
	VN__READS_ADD(1);
}

static void vn__rdunlock(struct vn__rwlock *l)
{
	VN__READS_ADD(-1);
	pthread_mutex_lock(&l->mu);
	assert(l->readers > 0 && !l->writer);
	l->readers--;
	if (l->readers == 0 && l->writers_waiting > 0)
		pthread_cond_signal(&l->writers_cv);
	pthread_mutex_unlock(&l->mu);
}

static void vn__wrlock(struct vn__rwlock *l)
{
	pthread_mutex_lock(&l->mu);
	l->writers_waiting++;
	while (l->writer || l->readers > 0)
		pthread_cond_wait(&l->writers_cv, &l->mu);
	l->writers_waiting--;
	l->writer = true;
	l->writer_tid = pthread_self();
	pthread_mutex_unlock(&l->mu);
}

static void vn__wrunlock(struct vn__rwlock *l)
{
	pthread_mutex_lock(&l->mu);
	assert(l->writer && pthread_equal(l->writer_tid, pthread_self()));
	l->writer = false;
	/* Hand over to the next writer first: that is the preference. */
	if (l->writers_waiting > 0)
		pthread_cond_signal(&l->writers_cv);
	else
		pthread_cond_broadcast(&l->readers_cv);
	pthread_mutex_unlock(&l->mu);
}

/*
 * True if this thread holds @l for writing.  Only the holder writes
 * writer/writer_tid between its lock and unlock, so the unlocked read is
 * ordered by the holder's own acquisition; used in assertions only.
 */
static inline bool vn__wrheld(const struct vn__rwlock *l)
{
	return l->writer && pthread_equal(l->writer_tid, pthread_self());
}

/* ---------------------------------------------------------------------- */
/* 2. Vnodes and the table                                                 */
/* ---------------------------------------------------------------------- */

enum vn__state {
	VN__CONSTRUCTING,   /* in the table, shape callback running: wait */
	VN__LIVE,           /* usable; vn_get takes a reference */
	VN__DYING,          /* last reference gone, teardown running: wait */
};

/*
 * Mutex rules: the fields marked "table" are protected by the table mutex;
 * "head" by the head lock; "rewrite" by rw_mu.  ino and table never change.
 * A vnode stays in the hash from vn_get's creation until its teardown has
 * finished, so there is never more than one vnode for an inode number: a
 * vn_get that finds it CONSTRUCTING or DYING waits on the table's condition
 * and looks again.
 */
struct vnode {
	uint64_t ino;                /* inode number; constant */
	struct vn_table *table;      /* owning table; constant */
	struct vnode *hnext;         /* hash bucket chain; table */
	uint64_t refs;               /* references; table */
	enum vn__state state;        /* table */
	struct vn__rwlock head;      /* the head lock */
	struct vn_bhv *first;        /* first behavior of the chain; head */
	pthread_mutex_t rw_mu;       /* protects rewrites; leaf lock */
	pthread_cond_t rw_cv;        /* broadcast when rewrites drops to 0 */
	unsigned rewrites;           /* announced, unfinished rewrites; rewrite */
};

/*
 * The table never resizes, so vn_table_walk can keep its place in a bucket
 * across unlocked callbacks.  4096 buckets keep chains short for the vnode
 * counts one daemon caches.
 */
#define VN__BUCKETS 4096u

struct vn_table {
	pthread_mutex_t mu;          /* the table mutex */
	pthread_cond_t cv;           /* broadcast when a vnode leaves CONSTRUCTING or the table */
	vn_shape_fn shape;           /* builds a new vnode's chain; constant */
	void *shape_arg;             /* its argument; constant */
	size_t count;                /* vnodes in the hash, in any state; mu */
	struct vnode *buckets[VN__BUCKETS];   /* mu */
};

static size_t vn__bucket(uint64_t ino)
{
	/* Fibonacci hashing: inode numbers are often sequential. */
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 52) & (VN__BUCKETS - 1);
}

int vn_table_create(vn_shape_fn shape, void *arg, struct vn_table **out)
{
	struct vn_table *t;
	int rc;

	t = calloc(1, sizeof(*t));
	if (!t) {
		rc = -ENOMEM;
		goto out;
	}
	t->shape = shape;
	t->shape_arg = arg;
	rc = -pthread_mutex_init(&t->mu, NULL);
	if (rc)
		goto out_free;
	rc = -pthread_cond_init(&t->cv, NULL);
	if (rc)
		goto out_destroy_mu;
	*out = t;
	return 0;

out_destroy_mu:
	pthread_mutex_destroy(&t->mu);
out_free:
	free(t);
out:
	return rc;
}

void vn_table_destroy(struct vn_table *t)
{
	if (!t)
		return;
	assert(t->count == 0);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* Caller holds t->mu. */
static struct vnode *vn__lookup(struct vn_table *t, uint64_t ino)
{
	struct vnode *vn;

	for (vn = t->buckets[vn__bucket(ino)]; vn; vn = vn->hnext)
		if (vn->ino == ino)
			return vn;
	return NULL;
}

/* Caller holds t->mu; @vn is in the table. */
static void vn__unhash(struct vn_table *t, struct vnode *vn)
{
	struct vnode **pp = &t->buckets[vn__bucket(vn->ino)];

	while (*pp != vn)
		pp = &(*pp)->hnext;
	*pp = vn->hnext;
	t->count--;
}

static struct vnode *vn__alloc(struct vn_table *t, uint64_t ino)
{
	struct vnode *vn;

	vn = calloc(1, sizeof(*vn));
	if (!vn)
		goto out;
	vn->ino = ino;
	vn->table = t;
	vn->refs = 1;
	vn->state = VN__CONSTRUCTING;
	if (vn__rwlock_init(&vn->head))
		goto out_free;
	if (pthread_mutex_init(&vn->rw_mu, NULL))
		goto out_fini_head;
	if (pthread_cond_init(&vn->rw_cv, NULL))
		goto out_destroy_rw_mu;
	return vn;

out_destroy_rw_mu:
	pthread_mutex_destroy(&vn->rw_mu);
out_fini_head:
	vn__rwlock_fini(&vn->head);
out_free:
	free(vn);
	vn = NULL;
out:
	return vn;
}

/*
 * Call destroy() of every behavior still on the chain.  The vnode is out of
 * reach of every other thread (no reference left, and a vn_get that finds
 * it waits), so the chain is walked without the head lock.  destroy() may
 * free its behavior: read next first.
 */
static void vn__destroy_chain(struct vnode *vn)
{
	struct vn_bhv *b, *next;

	for (b = vn->first; b; b = next) {
		next = b->next;
		if (b->ops->destroy)
			b->ops->destroy(b, vn);
	}
	vn->first = NULL;
}

/* Free a vnode that has left the hash. */
static void vn__free(struct vnode *vn)
{
	assert(vn->rewrites == 0);
	pthread_cond_destroy(&vn->rw_cv);
	pthread_mutex_destroy(&vn->rw_mu);
	vn__rwlock_fini(&vn->head);
	free(vn);
}

/*
 * Take a vnode that is CONSTRUCTING or DYING out of the table and free it.
 * Its chain has been destroyed, so only now may a waiter in vn_get build
 * the inode's next vnode.
 */
static void vn__retire(struct vn_table *t, struct vnode *vn)
{
	pthread_mutex_lock(&t->mu);
	vn__unhash(t, vn);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	vn__free(vn);
}

int vn_get(struct vn_table *t, uint64_t ino, struct vnode **out)
{
	struct vnode *vn;
	int rc;

	pthread_mutex_lock(&t->mu);
	for (;;) {
		vn = vn__lookup(t, ino);
		if (!vn)
			break;
		if (vn->state == VN__LIVE) {
			vn->refs++;
			pthread_mutex_unlock(&t->mu);
			*out = vn;
			return 0;
		}
		/* Being built or torn down: wait, then look again (it may be gone). */
		pthread_cond_wait(&t->cv, &t->mu);
	}

	vn = vn__alloc(t, ino);
	if (!vn) {
		pthread_mutex_unlock(&t->mu);
		return -ENOMEM;
	}
	vn->hnext = t->buckets[vn__bucket(ino)];
	t->buckets[vn__bucket(ino)] = vn;
	t->count++;
	pthread_mutex_unlock(&t->mu);

	/* Build the chain outside the table mutex: the shape may do I/O. */
	rc = t->shape ? t->shape(t->shape_arg, vn) : 0;

	if (rc) {
		/* Never became live: no INACTIVE, but destroy what shape pushed. */
		vn__destroy_chain(vn);
		vn__retire(t, vn);
		return rc < 0 ? rc : -EIO;
	}
	pthread_mutex_lock(&t->mu);
	vn->state = VN__LIVE;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	*out = vn;
	return 0;
}

void vn_hold(struct vnode *vn)
{
	struct vn_table *t = vn->table;

	pthread_mutex_lock(&t->mu);
	assert(vn->refs > 0 && vn->state == VN__LIVE);
	vn->refs++;
	pthread_mutex_unlock(&t->mu);
}

void vn_put(struct vnode *vn, uint64_t n)
{
	struct vn_table *t = vn->table;
	struct vn_call c = { .op = VN_OP_INACTIVE };

	if (n == 0)
		return;
	pthread_mutex_lock(&t->mu);
	assert(vn->refs >= n && vn->state == VN__LIVE);
	vn->refs -= n;
	if (vn->refs > 0) {
		pthread_mutex_unlock(&t->mu);
		return;
	}
	/*
	 * DYING keeps the vnode in the hash so that a racing vn_get waits for
	 * the teardown instead of taking a reference to it or building a
	 * second vnode for the inode while INACTIVE may still be freeing it.
	 */
	vn->state = VN__DYING;
	pthread_mutex_unlock(&t->mu);

	/* The result of INACTIVE has nowhere to go; behaviors log their own. */
	(void)vn_call(vn, &c);
	vn__destroy_chain(vn);
	vn__retire(t, vn);
}

uint64_t vn_ino(const struct vnode *vn)
{
	return vn->ino;
}

size_t vn_table_count(struct vn_table *t)
{
	size_t n;

	pthread_mutex_lock(&t->mu);
	n = t->count;
	pthread_mutex_unlock(&t->mu);
	return n;
}

/*
 * The first live vnode at or after @vn in bucket @b, then in the following
 * buckets; takes a reference on it.  Caller holds t->mu.
 */
static struct vnode *vn__walk_next(struct vn_table *t, size_t b, struct vnode *vn)
{
	for (;;) {
		for (; vn; vn = vn->hnext) {
			if (vn->state == VN__LIVE) {
				vn->refs++;
				return vn;
			}
		}
		if (++b >= VN__BUCKETS)
			return NULL;
		vn = t->buckets[b];
	}
}

void vn_table_walk(struct vn_table *t, void (*fn)(struct vnode *vn, void *arg), void *arg)
{
	struct vnode *vn, *next;

	pthread_mutex_lock(&t->mu);
	vn = vn__walk_next(t, 0, t->buckets[0]);
	pthread_mutex_unlock(&t->mu);
	while (vn) {
		fn(vn, arg);
		/* Our reference keeps @vn hashed, so its hnext is still valid. */
		pthread_mutex_lock(&t->mu);
		next = vn__walk_next(t, vn__bucket(vn->ino), vn->hnext);
		pthread_mutex_unlock(&t->mu);
		vn_put(vn, 1);
		vn = next;
	}
}

/*
 * Drop every reference on every vnode.  For unmount, when the references the
 * kernel held (its lookup counts) die with the session; nothing else may use
 * the table meanwhile.
 */
void vn_table_purge(struct vn_table *t)
{
	for (;;) {
		struct vnode *vn = NULL;
		uint64_t refs = 0;

		pthread_mutex_lock(&t->mu);
		for (size_t b = 0; b < VN__BUCKETS && !vn; b++)
			for (vn = t->buckets[b]; vn && vn->state != VN__LIVE; vn = vn->hnext)
				;
		if (vn)
			refs = vn->refs;
		pthread_mutex_unlock(&t->mu);
		if (!vn)
			return;
		vn_put(vn, refs);
	}
}

/* ---------------------------------------------------------------------- */
/* 3. Rewrite state                                                        */
/* ---------------------------------------------------------------------- */

/*
 * Rewrites nest: two announcers (say relocation and a DMAPI region change)
 * each end their own, and waiters are released when the last one ends.
 */
void vn_rewrite_begin(struct vnode *vn)
{
	pthread_mutex_lock(&vn->rw_mu);
	vn->rewrites++;
	pthread_mutex_unlock(&vn->rw_mu);
}

void vn_rewrite_end(struct vnode *vn)
{
	pthread_mutex_lock(&vn->rw_mu);
	assert(vn->rewrites > 0);
	if (--vn->rewrites == 0)
		pthread_cond_broadcast(&vn->rw_cv);
	pthread_mutex_unlock(&vn->rw_mu);
}

int vn_rewrite_pending(struct vnode *vn)
{
	int pending;

	pthread_mutex_lock(&vn->rw_mu);
	pending = vn->rewrites > 0;
	pthread_mutex_unlock(&vn->rw_mu);
	return pending;
}

/* ---------------------------------------------------------------------- */
/* 4. Dispatch                                                             */
/* ---------------------------------------------------------------------- */

/* The first behavior from @b on that implements @op.  Caller holds the head lock. */
static struct vn_bhv *vn__impl(struct vn_bhv *b, enum vn_opcode op)
{
	while (b && !b->ops->op[op])
		b = b->next;
	return b;
}

/*
 * An operation got -VN_EMIGRATING: drop the head lock so the rewrite can
 * take it for writing, wait until the rewrite is over, take it again.
 * Caller holds the head lock for reading; so does it on return.
 */
static void vn__emigrate_wait(struct vnode *vn)
{
	vn__rdunlock(&vn->head);
	pthread_mutex_lock(&vn->rw_mu);
	while (vn->rewrites > 0)
		pthread_cond_wait(&vn->rw_cv, &vn->rw_mu);
	pthread_mutex_unlock(&vn->rw_mu);
	vn__rdlock(&vn->head);
}

/*
 * Whether @self is on @vn's chain.  Compares pointers only: a behavior
 * that was removed during the wait may have been freed.  Caller holds the
 * head lock.
 */
static bool vn__on_chain(struct vnode *vn, const struct vn_bhv *self)
{
	const struct vn_bhv *b;

	for (b = vn->first; b; b = b->next)
		if (b == self)
			return true;
	return false;
}

/* The first behavior at or after @b whose position is below @pos. */
static struct vn_bhv *vn__below(struct vn_bhv *b, int pos)
{
	while (b && (int)b->ops->position >= pos)
		b = b->next;
	return b;
}

/* This thread announced the rewrites under way: it may enter (vn_rewriter). */
static _Thread_local bool vn__rewriter;
/* Operations this thread is inside (each holds its vnode's head). */
static _Thread_local unsigned vn__depth;

bool vn_in_call(void)
{
	return vn__depth > 0;
}

void vn_rewriter(bool on)
{
	vn__rewriter = on;
}

bool vn_is_rewriter(void)
{
	return vn__rewriter;
}

/*
 * @nested: the caller holds another vnode's head (an operation inside an
 * operation): it must not wait for this vnode's rewrite, which may wait
 * for that head; -VN_EMIGRATING goes back to it instead, and its own
 * vn__enter waits with no head held.
 */
static int vn__enter(struct vnode *vn, int pos, struct vn_call *c, bool nested)
{
	struct vn_bhv *b;
	int rc;

	if ((unsigned)c->op >= VN_OP__COUNT)
		return -EINVAL;
	vn__rdlock(&vn->head);
	/* A new operation waits for an announced rewrite rather than run on a chain being edited. */
	if (vn_rewrite_pending(vn) && !vn__rewriter) {
		if (nested) {
			vn__rdunlock(&vn->head);
			return -VN_EMIGRATING;
		}
		vn__emigrate_wait(vn);
	}
	for (;;) {
		b = vn__impl(vn__below(vn->first, pos), c->op);
		if (!b) {
			rc = -EOPNOTSUPP;
			break;
		}
		vn__depth++;
		rc = b->ops->op[c->op](b, vn, c);
		vn__depth--;
		if (rc != -VN_EMIGRATING || nested)
			break;
		/* Restart the whole operation at the head of the new chain. */
		vn__emigrate_wait(vn);
	}
	vn__rdunlock(&vn->head);
	return rc;
}

int vn_call(struct vnode *vn, struct vn_call *c)
{
	return vn__enter(vn, INT_MAX, c, false);
}

int vn_call_nested(struct vnode *vn, struct vn_call *c)
{
	return vn__enter(vn, INT_MAX, c, true);
}

int vn_call_below(struct vnode *vn, enum vn_position pos, struct vn_call *c)
{
	return vn__enter(vn, (int)pos, c, false);
}

int vn_next(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct vn_bhv *b;
	int rc;

#ifndef NDEBUG
	assert(vn__reads_held > 0);
#endif
	assert((unsigned)c->op < VN_OP__COUNT);
	for (;;) {
		b = vn__impl(self->next, c->op);
		if (!b)
			return -EOPNOTSUPP;
		rc = b->ops->op[c->op](b, vn, c);
		if (rc != -VN_EMIGRATING)
			return rc;
		vn__emigrate_wait(vn);
		/*
		 * Carry on after @self in the new chain; if @self was taken
		 * off, our caller must give up too and vn_call restarts.
		 */
		if (!vn__on_chain(vn, self))
			return -VN_EMIGRATING;
	}
}

/* ---------------------------------------------------------------------- */
/* 5. Chain edits                                                          */
/* ---------------------------------------------------------------------- */

/* The link that points at @b, or NULL.  Caller holds the head lock for writing. */
static struct vn_bhv **vn__link_of(struct vnode *vn, const struct vn_bhv *b)
{
	struct vn_bhv **pp;

	assert(vn__wrheld(&vn->head));
	for (pp = &vn->first; *pp; pp = &(*pp)->next)
		if (*pp == b)
			return pp;
	return NULL;
}

int vn_bhv_insert(struct vnode *vn, struct vn_bhv *b)
{
	struct vn_bhv **pp;
	int rc = 0;

	vn__wrlock(&vn->head);
	for (pp = &vn->first; *pp && (*pp)->ops->position > b->ops->position; pp = &(*pp)->next)
		;
	if (*pp && (*pp)->ops->position == b->ops->position) {
		rc = -EEXIST;
		goto out_unlock;
	}
	b->next = *pp;
	*pp = b;
out_unlock:
	vn__wrunlock(&vn->head);
	return rc;
}

int vn_bhv_remove(struct vnode *vn, struct vn_bhv *b)
{
	struct vn_bhv **pp;
	int rc = 0;

	vn__wrlock(&vn->head);
	pp = vn__link_of(vn, b);
	if (!pp) {
		rc = -ENOENT;
		goto out_unlock;
	}
	*pp = b->next;
	b->next = NULL;
out_unlock:
	vn__wrunlock(&vn->head);
	return rc;
}

/*
 * @b takes @old's place.  Its position may differ from @old's (server ->
 * client) but must keep the chain ordered: -EEXIST if another behavior
 * holds that position, -EINVAL if @b would sit out of order.
 */
int vn_bhv_replace(struct vnode *vn, struct vn_bhv *old, struct vn_bhv *b)
{
	struct vn_bhv **pp, *prev = NULL, *p;
	int rc = 0;

	vn__wrlock(&vn->head);
	pp = vn__link_of(vn, old);
	if (!pp) {
		rc = -ENOENT;
		goto out_unlock;
	}
	for (p = vn->first; p; p = p->next) {
		if (p != old && p->ops->position == b->ops->position) {
			rc = -EEXIST;
			goto out_unlock;
		}
		if (p->next == old)
			prev = p;
	}
	if ((prev && prev->ops->position < b->ops->position) ||
	    (old->next && old->next->ops->position > b->ops->position)) {
		rc = -EINVAL;
		goto out_unlock;
	}
	b->next = old->next;
	*pp = b;
	old->next = NULL;
out_unlock:
	vn__wrunlock(&vn->head);
	return rc;
}

struct vn_bhv *vn_bhv_find(struct vnode *vn, enum vn_position pos)
{
	struct vn_bhv *b;

	vn__rdlock(&vn->head);
	for (b = vn->first; b && b->ops->position != pos; b = b->next)
		;
	vn__rdunlock(&vn->head);
	return b;
}
