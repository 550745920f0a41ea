/*
 * cl_node.c - the cluster context of one cxfsd: configuration, the RPC
 * endpoint and its dispatch, the name service, the per-inode client state
 * table, stale kernel pages, and the status the admin socket shows.
 *
 * Name service: at start (once a member) a node asks every other member
 * which node serves the filesystem (NAME_QUERY).  If one names a server,
 * that is the MDS.  Otherwise, once every member answered, the first node
 * of the server order that is a member (this node included) serves it; a
 * member that does not answer may be the server (a node that served and
 * died comes back while a survivor serves), so then it asks again.  When
 * the first node is this node it becomes the MDS, else it asks again until
 * that node claims it.  A node answers with the
 * server it knows only once it is attached, so clients never reach an MDS
 * that cannot serve yet.
 *
 * Lock order: see cl_i.h.
 */
#include "cluster/cl_i.h"

#include "dmapi/dm_fs.h"
#include "dmapi/dm_op.h"
#include "relocate/corpse.h"
#include "relocate/kore.h"
#include "vnode/vn_meta.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xvm/xvm.h"
#include "cluster/cl_wire.h"
#include "common/cx_intr.h"
#include "common/cx_rlock.h"
#include "membership/cms.h"
#include "membership/cms_config.h"
#include "meta/meta_sb.h"
#include "vnode/vn_meta.h"

#define CL_NAME_TIMEOUT_MS 1500
#define CL_NAME_WAIT_MS 60000

static void cl_log(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "cxfsd: %s\n", line);
}

/* ---- per-inode state ---------------------------------------------------- */

static size_t ihash_slot(uint64_t ino)
{
	return (size_t)((ino * UINT64_C(0x9E3779B97F4A7C15)) >> 52);
}

struct cl_inode *cl_inode_get(struct cl_ctx *cx, uint64_t ino, bool create)
{
	struct cl_inode *ci, **slot;

	pthread_mutex_lock(&cx->imu);
	slot = &cx->ihash[ihash_slot(ino)];
	for (ci = *slot; ci && ci->ino != ino; ci = ci->hnext)
		;
	if (!ci && create) {
		ci = calloc(1, sizeof(*ci));
		if (ci && !(ci->io = cx_rlock_new())) {
			free(ci);
			ci = NULL;
		}
		if (ci) {
			ci->ino = ino;
			pthread_mutex_init(&ci->mu, NULL);
			pthread_mutex_init(&ci->flush_mu, NULL);
			ci->hnext = *slot;
			*slot = ci;
		}
	}
	if (ci)
		ci->refs++;
	pthread_mutex_unlock(&cx->imu);
	return ci;
}

void cl_dents_free(struct cl_inode *ci)
{
	while (ci->dents) {
		struct cl_dent *d = ci->dents;

		ci->dents = d->next;
		free(d);
	}
	ci->ndents = 0;
	free(ci->dhash);
	ci->dhash = NULL;
	ci->dhash_size = 0;
	ci->names_whole = false;
	ci->whole_tried = false;
}

void cl_xattrs_free(struct cl_inode *ci)
{
	while (ci->xattrs) {
		struct cl_xattr *x = ci->xattrs;

		ci->xattrs = x->next;
		free(x->value);
		free(x);
	}
}

void cl_inode_put(struct cl_ctx *cx, struct cl_inode *ci)
{
	struct cl_inode **pp;

	if (!ci)
		return;
	pthread_mutex_lock(&cx->imu);
	if (--ci->refs) {
		pthread_mutex_unlock(&cx->imu);
		return;
	}
	for (pp = &cx->ihash[ihash_slot(ci->ino)]; *pp != ci; pp = &(*pp)->hnext)
		;
	*pp = ci->hnext;
	pthread_mutex_unlock(&cx->imu);
	cl_dents_free(ci);
	cl_xattrs_free(ci);
	free(ci->map);
	free(ci->pend);
	/*
	 * Range tokens still cached stay until recalled (a node that wants
	 * the range recalls them; they guard no data once the pages go).
	 */
	free(ci->ranges);
	free(ci->bkts);
	cl_pcf_destroy(cx->pc, ci->pcf);
	pthread_mutex_destroy(&ci->mu);
	pthread_mutex_destroy(&ci->flush_mu);
	cx_rlock_free(ci->io);
	free(ci);
}

/* ---- stale kernel pages ------------------------------------------------- */

/* A task on a helper thread that its starter may stop waiting for. */
struct cl_job {
	void (*fn)(void *);
	void *arg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, abandoned;
};

static void job_put(struct cl_job *j, int abandon)
{
	int last;

	pthread_mutex_lock(&j->mu);
	if (abandon)
		j->abandoned = 1;
	else
		j->done = 1;
	last = j->done && j->abandoned;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
	if (last) {
		pthread_mutex_destroy(&j->mu);
		pthread_cond_destroy(&j->cv);
		free(j);
	}
}

static void job_run(void *arg)
{
	struct cl_job *j = arg;

	j->fn(j->arg);
	job_put(j, 0);
}

/*
 * Run @fn(@arg) on a helper thread and wait for it at most @ms.  The kernel
 * calls it makes (dropping pages or names) wait for the kernel's locks, which
 * a request of this node may hold while it waits for a token the caller (a
 * recall) is about to free; so a recall waits a little, then goes on.
 * If no thread can be started, @fn runs here.
 */
static void run_bounded(struct cl_ctx *cx, void (*fn)(void *), void *arg, unsigned ms)
{
	struct cl_job *j = calloc(1, sizeof(*j));
	struct timespec until;

	if (!j) {
		fn(arg);
		return;
	}
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	if (cl_spawn(cx, job_run, j)) {
		job_run(j);
		job_put(j, 1);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long)ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&j->mu);
	while (!j->done && pthread_cond_timedwait(&j->cv, &j->mu, &until) == 0)
		;
	pthread_mutex_unlock(&j->mu);
	job_put(j, 1);
}

void cl_io_begin(struct cl_inode *ci)
{
	pthread_mutex_lock(&ci->mu);
	ci->inflight++;
	pthread_mutex_unlock(&ci->mu);
}

void cl_io_end(struct cl_ctx *cx, struct cl_inode *ci)
{
	pthread_mutex_lock(&ci->mu);
	ci->inflight--;
	pthread_mutex_unlock(&ci->mu);
	cl_io_note(cx, ci);
}

struct cl_pages_job {
	struct cl_ctx *cx;
	struct cl_inode *ci;          /* referenced */
};

static void pages_run(void *arg)
{
	struct cl_pages_job *p = arg;

	cl_pages_check(p->cx, p->ci->ino);
	pthread_mutex_lock(&p->ci->mu);
	p->ci->inval_running = false;
	pthread_mutex_unlock(&p->ci->mu);
	cl_inode_put(p->cx, p->ci);
	free(p);
}

/*
 * Mark the pages stale and drop them on a helper thread (one per inode at a
 * time).  The drop waits for page locks, which a read or write of this node
 * in progress may hold while it waits for a token the recall frees: so the
 * recall waits for it (at most 100 ms) only when no read or write is in
 * progress here, the case that matters for a file mapped into memory.
 * Whatever is still cached is dropped by cl_pages_check() before the next
 * getattr or open is answered, which the kernel sends before every read.
 */
void cl_attr_stale(struct cl_ctx *cx, uint64_t ino)
{
	if (cx->inval_attr)
		(void)cx->inval_attr(cx->inval_arg, ino);
}

void cl_pages_stale(struct cl_ctx *cx, uint64_t ino)
{
	struct cl_inode *ci = cl_inode_get(cx, ino, true);
	struct cl_pages_job *p;
	bool start, wait;

	if (!ci)
		return;
	pthread_mutex_lock(&ci->mu);
	ci->stale_pages = true;
	start = cx->inval && !ci->inval_running;
	pthread_mutex_unlock(&ci->mu);
	/* The kernel's next read asks for attributes first, and gets the pages dropped. */
	cl_attr_stale(cx, ino);
	pthread_mutex_lock(&ci->mu);
	wait = ci->inflight == 0;
	if (start)
		ci->inval_running = true;
	pthread_mutex_unlock(&ci->mu);
	p = start ? malloc(sizeof(*p)) : NULL;
	if (!p) {
		if (start) {
			pthread_mutex_lock(&ci->mu);
			ci->inval_running = false;
			pthread_mutex_unlock(&ci->mu);
		}
		cl_inode_put(cx, ci);
		return;
	}
	p->cx = cx;
	p->ci = ci;
	run_bounded(cx, pages_run, p, wait ? 100 : 0);
}

/* ---- names the kernel knows -------------------------------------------- */

uint32_t cl_name_hash(const char *name)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

/* Grow the index when it holds two entries per bucket. */
static void dhash_grow(struct cl_inode *ci)
{
	size_t size = ci->dhash_size ? ci->dhash_size * 4 : 64;
	struct cl_dent **h = calloc(size, sizeof(*h));

	if (!h)
		return;   /* the old index (or none) still works, only slower */
	for (struct cl_dent *d = ci->dents; d; d = d->next) {
		d->hnext = h[d->hash & (size - 1)];
		h[d->hash & (size - 1)] = d;
	}
	free(ci->dhash);
	ci->dhash = h;
	ci->dhash_size = size;
}

struct cl_dent *cl_dent_find(struct cl_inode *ci, const char *name)
{
	uint32_t hash = cl_name_hash(name);

	if (!ci->dhash) {
		for (struct cl_dent *d = ci->dents; d; d = d->next)
			if (d->hash == hash && strcmp(d->name, name) == 0)
				return d;
		return NULL;
	}
	for (struct cl_dent *d = ci->dhash[hash & (ci->dhash_size - 1)]; d; d = d->hnext)
		if (d->hash == hash && strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

void cl_dent_set(struct cl_inode *ci, const char *name, uint64_t ino)
{
	struct cl_dent *d = cl_dent_find(ci, name);
	size_t len = strlen(name);

	if (d) {
		d->ino = ino;
		return;
	}
	d = malloc(sizeof(*d) + len + 1);
	if (!d) {
		ci->names_whole = false;   /* a name not kept: lookups must ask */
		return;
	}
	d->ino = ino;
	d->told = CL_TOLD_NOT;
	d->hash = cl_name_hash(name);
	memcpy(d->name, name, len + 1);
	d->next = ci->dents;
	ci->dents = d;
	ci->ndents++;
	if (ci->dhash) {
		d->hnext = ci->dhash[d->hash & (ci->dhash_size - 1)];
		ci->dhash[d->hash & (ci->dhash_size - 1)] = d;
	}
	if (ci->ndents > 2 * ci->dhash_size && ci->ndents > 16)
		dhash_grow(ci);
}

void cl_dent_tell(struct cl_inode *ci, const char *name, uint64_t ino, bool kept)
{
	uint8_t told = kept ? CL_TOLD_KEPT : CL_TOLD_SHOWN;
	struct cl_dent *d;

	cl_dent_set(ci, name, ino);
	d = cl_dent_find(ci, name);
	if (d && d->told < told)
		d->told = told;
}

bool cl_names_busy(const struct cl_inode *ci)
{
	return meta_now_ns() - ci->names_dropped_ns < CL_WHOLE_REST_NS;
}

struct cl_names_job {
	struct cl_ctx *cx;
	uint64_t dir;
	struct cl_dent *dents;
};

/* The inode a name of the kernel's names (or NULL), with its count of invalidations in flight. */
static struct cl_inode *unaliasing(struct cl_ctx *cx, const struct cl_dent *d, int delta)
{
	struct cl_inode *ci;

	if (d->ino == 0 || d->ino == CL_DENT_UNKNOWN || !(ci = cl_inode_get(cx, d->ino, false)))
		return NULL;
	pthread_mutex_lock(&cx->nmu);
	ci->unaliasing += (unsigned)delta;
	if (delta < 0)
		pthread_cond_broadcast(&cx->ncv);
	pthread_mutex_unlock(&cx->nmu);
	return ci;
}

static void names_run(void *arg)
{
	struct cl_names_job *n = arg;
	struct cl_ctx *cx = n->cx;
	struct cl_inode *ci;

	while (n->dents) {
		struct cl_dent *d = n->dents;

		n->dents = d->next;
		(void)cx->inval_entry(cx->inval_arg, n->dir, d->name);
		ci = unaliasing(cx, d, -1);
		if (ci) {
			/* The reference taken here, and the one names_inval took. */
			cl_inode_put(cx, ci);
			cl_inode_put(cx, ci);
		}
		free(d);
	}
	free(n);
}

void cl_names_settle(struct cl_ctx *cx, uint64_t ino, unsigned ms)
{
	struct cl_inode *ci = cl_inode_get(cx, ino, false);

	if (!ci)
		return;
	/*
	 * In slices: the caller holds a head lock, which a relocation (seen
	 * in cx->relocating) must not wait for.
	 */
	pthread_mutex_lock(&cx->nmu);
	for (unsigned waited = 0; waited < ms && ci->unaliasing &&
				  !atomic_load(&cx->relocating); waited += 20) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 20 * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		while (ci->unaliasing && pthread_cond_timedwait(&cx->ncv, &cx->nmu, &until) == 0)
			;
	}
	pthread_mutex_unlock(&cx->nmu);
	cl_inode_put(cx, ci);
}

/* Make the kernel forget the names of @list on a helper thread, waiting at most @ms. */
static void names_inval(struct cl_ctx *cx, uint64_t dir, struct cl_dent *list, unsigned ms)
{
	struct cl_names_job *n;

	if (!list)
		return;
	n = cx->inval_entry ? malloc(sizeof(*n)) : NULL;
	if (!n) {
		struct cl_inode tmp = { .dents = list };

		cl_dents_free(&tmp);
		return;
	}
	n->cx = cx;
	n->dir = dir;
	n->dents = list;
	/*
	 * Each named inode here stays (a reference) while its count is up;
	 * one that is not here now is not counted when the job ends either.
	 */
	for (struct cl_dent *d = list; d; d = d->next)
		if (!unaliasing(cx, d, 1))
			d->ino = CL_DENT_UNKNOWN;
	run_bounded(cx, names_run, n, ms);
}

void cl_names_forget(struct cl_ctx *cx, uint64_t dir, const char *name, const char *name2)
{
	const char *names[2] = { name, name2 };
	struct cl_dent *list = NULL;

	for (int i = 0; i < 2; i++) {
		size_t len = names[i] ? strlen(names[i]) : 0;
		struct cl_dent *d = len ? malloc(sizeof(*d) + len + 1) : NULL;

		if (!d)
			continue;
		d->ino = CL_DENT_UNKNOWN;
		memcpy(d->name, names[i], len + 1);
		d->next = list;
		list = d;
	}
	/* The kernel still holds the directory: do not wait for it. */
	names_inval(cx, dir, list, 0);
}

bool cl_bucket_filled(const struct cl_inode *ci, uint64_t key)
{
	for (size_t i = 0; i < ci->nbkts; i++)
		if (ci->bkts[i] == key)
			return true;
	return false;
}

int cl_bucket_note(struct cl_inode *ci, uint64_t key)
{
	if (cl_bucket_filled(ci, key))
		return 0;
	if (ci->nbkts == ci->bkts_cap) {
		size_t cap = ci->bkts_cap ? 2 * ci->bkts_cap : 8;
		uint64_t *v = realloc(ci->bkts, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ci->bkts = v;
		ci->bkts_cap = cap;
	}
	ci->bkts[ci->nbkts++] = key;
	return 0;
}

/* Keep only @rest (the names of other buckets) as @ci's names, and forget bucket @key. */
static void bucket_rest(struct cl_inode *ci, struct cl_dent *rest, uint64_t key)
{
	free(ci->dhash);
	ci->dhash = NULL;
	ci->dhash_size = 0;
	ci->ndents = 0;
	ci->dents = rest;
	ci->names_whole = false;
	for (struct cl_dent *d = rest; d; d = d->next)
		ci->ndents++;
	while (ci->ndents > 2 * ci->dhash_size && ci->ndents > 16) {
		size_t size = ci->dhash_size;

		dhash_grow(ci);
		if (ci->dhash_size == size)
			break;
	}
	for (size_t i = 0; i < ci->nbkts; i++)
		if (ci->bkts[i] == key) {
			ci->bkts[i] = ci->bkts[--ci->nbkts];
			break;
		}
}

/* Forget @dir's names (@key 0) or those of bucket @key only, here and in the kernel. */
static void names_drop(struct cl_ctx *cx, uint64_t dir, uint64_t key)
{
	struct cl_inode *ci = cl_inode_get(cx, dir, false);
	struct cl_dent *kept = NULL, *shown = NULL, *rest = NULL;

	if (!ci)
		return;
	pthread_mutex_lock(&ci->mu);
	/* Only the names the kernel has need its attention. */
	while (ci->dents) {
		struct cl_dent *d = ci->dents;

		ci->dents = d->next;
		if (key && cl_bucket_key(dir, d->name) != key) {
			d->next = rest;
			rest = d;
		} else if (d->told == CL_TOLD_KEPT) {
			d->next = kept;
			kept = d;
		} else if (d->told == CL_TOLD_SHOWN) {
			d->next = shown;
			shown = d;
		} else {
			free(d);
		}
	}
	if (key) {
		bucket_rest(ci, rest, key);
	} else {
		cl_dents_free(ci);
		ci->nbkts = 0;
	}
	ci->names_dropped_ns = meta_now_ns();
	pthread_mutex_unlock(&ci->mu);
	cl_inode_put(cx, ci);
	/*
	 * Names the kernel keeps must go before the change that recalls is
	 * seen, as far as the kernel lets us: a change of this node in the
	 * directory, whose tokens it lent, holds the kernel's lock on it and
	 * ends only after the change that recalls them, so waiting would only
	 * delay both.  Names shown with a time-out of 0 are never used
	 * without asking again; only their aliases must go, in the background.
	 */
	names_inval(cx, dir, kept, tok_client_lent(cx->tc, dir) ? 0 : 100);
	names_inval(cx, dir, shown, 0);
}

void cl_names_drop(struct cl_ctx *cx, uint64_t dir)
{
	names_drop(cx, dir, 0);
}

void cl_names_drop_bucket(struct cl_ctx *cx, uint64_t dir, uint64_t key)
{
	names_drop(cx, dir, key);
}

void cl_pages_check(struct cl_ctx *cx, uint64_t ino)
{
	struct cl_inode *ci = cl_inode_get(cx, ino, false);
	bool stale;

	if (!ci)
		return;
	pthread_mutex_lock(&ci->mu);
	stale = ci->stale_pages;
	ci->stale_pages = false;
	pthread_mutex_unlock(&ci->mu);
	cl_inode_put(cx, ci);
	if (stale && cx->inval) {
		atomic_fetch_add(&cx->stats.invals, 1);
		(void)cx->inval(cx->inval_arg, ino);
	}
}

/* ---- tokens ------------------------------------------------------------- */

/*
 * Acquire @want on @ino for an operation of this node.  A wait cut short
 * (relocation or recovery interrupts every wait) is taken again once the
 * server answers: the application sees a pause, not an error.
 */
static int acquire_loop(struct cl_ctx *cx, uint64_t ino, const struct tok_set *want, uint64_t *gen)
{
	for (;;) {
		int rc = gen ? tok_client_lend(cx->tc, ino, want, gen) :
			       tok_client_acquire(cx->tc, ino, want, NULL);

		if (rc != -TOK_EEARLY)
			return rc;
		/* The MDS moves away from this node: the chain is rewritten. */
		if (atomic_load(&cx->relocating))
			return -VN_EMIGRATING;
		rc = cx_intr_sleep_ms(10);
		if (rc)
			return rc;
	}
}

int cl_acquire(struct cl_ctx *cx, uint64_t ino, const struct tok_set *want)
{
	return acquire_loop(cx, ino, want, NULL);
}

int cl_lend(struct cl_ctx *cx, uint64_t ino, const struct tok_set *want, uint64_t *gen)
{
	return acquire_loop(cx, ino, want, gen);
}

void cl_lend_drop(struct cl_ctx *cx, uint64_t ino, const struct tok_set *want, uint64_t gen)
{
	if (tok_client_unlend(cx->tc, ino, want, gen))
		tok_client_release(cx->tc, ino, want);
}

/* ---- threads ------------------------------------------------------------ */

/*
 * Helper threads are kept for the next job: one that finished waits up to
 * CL_HELPER_IDLE_S for another before it exits, so a busy directory's
 * changes and the recalls (a job each) do not pay a thread's creation and
 * exit each.  A job goes only to a thread that is idle, and a new thread
 * starts when none is, so no job ever waits behind another (a job may
 * block in the kernel: run_bounded).  The set is the process's, not a
 * context's: an idle thread touches no context, and one that outlives its
 * context only waits here.
 */
#define CL_HELPER_IDLE_S 5
#define CL_HELPER_STACK (256 * 1024)

struct cl_thread_arg {
	struct cl_ctx *cx;
	void (*fn)(void *);
	void *arg;
	struct cl_thread_arg *next;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cl_thread_arg *head, **tail;   /* jobs handed to idle threads */
	unsigned idle, queued;                /* queued < idle, always */
} helpers = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, &helpers.head, 0, 0 };

static void cl_job_do(struct cl_thread_arg *a)
{
	struct cl_ctx *cx = a->cx;

	a->fn(a->arg);
	free(a);
	atomic_fetch_sub(&cx->threads, 1);
}

static void *cl_thread(void *p)
{
	struct cl_thread_arg *a = p;

	while (a) {
		struct timespec until;

		cl_job_do(a);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += CL_HELPER_IDLE_S;
		pthread_mutex_lock(&helpers.mu);
		helpers.idle++;
		while (!helpers.head &&
		       pthread_cond_timedwait(&helpers.cv, &helpers.mu, &until) != ETIMEDOUT)
			;
		a = helpers.head;
		if (a) {
			helpers.head = a->next;
			if (!helpers.head)
				helpers.tail = &helpers.head;
			helpers.queued--;
		}
		helpers.idle--;
		pthread_mutex_unlock(&helpers.mu);
	}
	return NULL;
}

int cl_spawn(struct cl_ctx *cx, void (*fn)(void *), void *arg)
{
	struct cl_thread_arg *a = malloc(sizeof(*a));
	pthread_attr_t attr;
	pthread_t t;
	bool handed = false;
	int rc;

	if (!a)
		return -ENOMEM;
	a->cx = cx;
	a->fn = fn;
	a->arg = arg;
	a->next = NULL;
	atomic_fetch_add(&cx->threads, 1);
	pthread_mutex_lock(&helpers.mu);
	if (helpers.idle > helpers.queued) {
		*helpers.tail = a;
		helpers.tail = &a->next;
		helpers.queued++;
		handed = true;
		pthread_cond_signal(&helpers.cv);
	}
	pthread_mutex_unlock(&helpers.mu);
	if (handed)
		return 0;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, CL_HELPER_STACK);
	rc = pthread_create(&t, &attr, cl_thread, a);
	pthread_attr_destroy(&attr);
	if (rc) {
		atomic_fetch_sub(&cx->threads, 1);
		free(a);
		return -rc;
	}
	return 0;
}

/* ---- peers -------------------------------------------------------------- */

uint32_t cl_peer_id(struct cl_ctx *cx, struct rpc_chan *ch)
{
	const struct cms_node *n;
	char name[RPC_NAME_MAX + 1];

	if (rpc_chan_peer(ch, name, sizeof(name), NULL))
		return 0;
	n = cms_config_node(cx->cfg, name);
	return n ? (uint32_t)cms_node_index(n) + 1 : 0;
}

const struct cms_node *cl_node_by_id(struct cl_ctx *cx, uint32_t id)
{
	if (id == 0 || id > cms_config_node_count(cx->cfg))
		return NULL;
	return cms_config_node_at(cx->cfg, id - 1);
}

uint64_t cl_lock_owner(struct cl_ctx *cx, uint64_t owner)
{
	return owner ^ ((uint64_t)cx->self_id * UINT64_C(0x9E3779B97F4A7C15));
}

/* ---- the MDS channel and the gate ---------------------------------------- */

struct rpc_chan *cl_mds_chan(struct cl_ctx *cx)
{
	struct rpc_chan *ch;

	pthread_mutex_lock(&cx->mu);
	ch = cx->mds;
	if (ch)
		rpc_chan_hold(ch);
	pthread_mutex_unlock(&cx->mu);
	return ch;
}

int cl_gate_wait(struct cl_ctx *cx)
{
	int64_t end = cx_intr_now_ns() + (int64_t)cms_config_quorum_wait_ms(cx->cfg) * 1000000;
	struct timespec until = { (time_t)(end / 1000000000), (long)(end % 1000000000) };
	int rc = 0;

	pthread_mutex_lock(&cx->gate_mu);
	while (((cx->gate_closed && !cx->gate_emigrate) || cx->cut_off) && rc == 0) {
		/* Cut off from the cluster: wait for quorum up to quorum_wait, then EIO. */
		rc = cx_intr_wait(&cx->gate_cv, &cx->gate_mu, cx->cut_off ? &until : NULL);
		if (rc == ETIMEDOUT)
			rc = cx->cut_off ? -EIO : 0;
	}
	if (!rc && cx->gate_closed)
		rc = -VN_EMIGRATING;
	pthread_mutex_unlock(&cx->gate_mu);
	return rc;
}

int cl_mds_pause(struct cl_ctx *cx)
{
	/* Not moving (a peer restarting, say): do not spin. */
	return cx_intr_sleep_ms(atomic_load(&cx->relocating) ? 2 : 20);
}

void cl_gate_close(struct cl_ctx *cx, bool emigrate)
{
	pthread_mutex_lock(&cx->gate_mu);
	cx->gate_closed = true;
	cx->gate_emigrate = emigrate;
	/* Those waiting at a closed gate restart on the new chains now. */
	pthread_cond_broadcast(&cx->gate_cv);
	pthread_mutex_unlock(&cx->gate_mu);
}

void cl_gate_open(struct cl_ctx *cx)
{
	pthread_mutex_lock(&cx->gate_mu);
	cx->gate_closed = false;
	cx->gate_emigrate = false;
	pthread_cond_broadcast(&cx->gate_cv);
	pthread_mutex_unlock(&cx->gate_mu);
}

/*
 * Could the MDS not take the request because it was moving?  A lost
 * connection, or an answer whose err says "early" (its wait was
 * interrupted): every reply of proto/cxfs.proto carries err as an int32
 * field named so.  TOKEN_GRANT is the token client's business.
 */
bool cl_mds_moved(int rc, Cxfs__MsgType rt, ProtobufCMessage *rep)
{
	const ProtobufCFieldDescriptor *f;
	int32_t err;

	if (rc == -ECONNRESET || rc == -ENOTCONN || rc == -ECONNREFUSED || rc == -ESHUTDOWN ||
	    rc == -RPC_EEARLY)
		return true;
	if (rc || !rep || rt == CXFS__MSG_TYPE__TOKEN_GRANT)
		return false;
	f = protobuf_c_message_descriptor_get_field_by_name(rep->descriptor, "err");
	if (!f || f->type != PROTOBUF_C_TYPE_INT32)
		return false;
	memcpy(&err, (const char *)rep + f->offset, sizeof(err));
	return err == -RPC_EEARLY || (rt == CXFS__MSG_TYPE__ERROR_REPLY && err == -EAGAIN);
}

int cl_mds_call(struct cl_ctx *cx, Cxfs__MsgType type, ProtobufCMessage *req,
		Cxfs__MsgType *reply_type, ProtobufCMessage **reply)
{
	struct cl_ureq u = { 0 };      /* one id across the resends */
	int rc;

	*reply = NULL;
	/* This node's own changes reach the server first. */
	rc = cl_async_drain(cx);
	if (rc)
		return rc;
	for (;;) {
		struct rpc_chan *ch;

		rc = cl_gate_wait(cx);
		if (rc)
			break;
		ch = cl_mds_chan(cx);
		if (!ch) {
			rc = -ENOTCONN;
			break;
		}
		rc = cl_unsafe_call(cx, &u, ch, type, req, CL_CALL_TIMEOUT_MS, reply_type, reply);
		rpc_chan_put(ch);
		if (!cl_mds_moved(rc, *reply_type, *reply))
			break;
		if (rc == 0) {
			rpc_msg_free(*reply);
			*reply = NULL;
		}
		rc = cl_mds_pause(cx);
		if (rc)
			break;
	}
	cl_ureq_end(cx, &u);
	return rc;
}

/* ---- recalls arriving at a client --------------------------------------- */

struct cl_recall {
	struct cl_ctx *cx;
	uint64_t ino;
	struct tok_set tokens;
	bool conditional;
};

static void recall_run(void *arg)
{
	struct cl_recall *r = arg;
	struct cl_ctx *cx = r->cx;
	int rc;

	atomic_fetch_add(&cx->stats.recalls_in, 1);
	rc = tok_client_recall(cx->tc, r->ino, &r->tokens, r->conditional);
	if (rc == -EBUSY) {
		Cxfs__TokenReturn m = CXFS__TOKEN_RETURN__INIT;
		Cxfs__TokenState buf[TOK_NTOKENS], *ptrs[TOK_NTOKENS];
		struct cl_inode *ci = cl_inode_get(cx, r->ino, false);

		/* The file lost its last name: give it all back once done with it. */
		if (ci) {
			pthread_mutex_lock(&ci->mu);
			ci->exist_refused = true;
			pthread_mutex_unlock(&ci->mu);
			cl_inode_put(cx, ci);
		}

		m.ino = r->ino;
		m.n_held = clw_toks_to_pb(&r->tokens, buf, ptrs);
		m.held = ptrs;
		m.has_refused = 1;
		m.refused = 1;
		{
			struct rpc_chan *ch = cl_mds_chan(cx);

			if (ch) {
				(void)rpc_send(ch, CXFS__MSG_TYPE__TOKEN_RETURN, &m.base);
				rpc_chan_put(ch);
			}
		}
	}
	free(r);
}

static int client_recall(struct cl_ctx *cx, const Cxfs__TokenRecall *m)
{
	struct cl_recall *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return -ENOMEM;
	r->cx = cx;
	r->ino = m->ino;
	r->conditional = m->has_conditional && m->conditional;
	rc = clw_toks_from_pb(m->downgrade, m->n_downgrade, &r->tokens);
	if (!rc)
		rc = cl_spawn(cx, recall_run, r);
	if (rc)
		free(r);
	return rc;
}

/* ---- dispatch ----------------------------------------------------------- */

static int reply_name(struct cl_ctx *cx, struct rpc_req *req, const Cxfs__NameQuery *q)
{
	Cxfs__NameReply r = CXFS__NAME_REPLY__INIT;
	const struct cms_node *n = NULL;

	if (strcmp(q->fs, cms_fs_name(cx->fs)) != 0) {
		r.err = -ENOENT;
	} else {
		pthread_mutex_lock(&cx->mu);
		if (atomic_load(&cx->ready))
			n = cl_node_by_id(cx, cx->server_id);
		pthread_mutex_unlock(&cx->mu);
		if (corpse_busy(cx->corpse))
			r.err = -EBUSY;     /* our server died: ask again once recovered */
		else if (n)
			r.server = (char *)cms_node_name(n);
		else
			r.err = -EAGAIN;
	}
	return rpc_reply(req, CXFS__MSG_TYPE__NAME_REPLY, &r.base);
}

/*
 * Remember @node's channel, on which its recalls go.  (Recalls lost with an
 * older one are sent again by their waiters: tok_server.c.)
 */
static void note_channel(struct cl_ctx *cx, uint32_t node, struct rpc_chan *ch)
{
	struct rpc_chan *old = NULL;

	if (node >= CL_MAX_NODES)
		return;
	pthread_mutex_lock(&cx->mu);
	if (cx->node_chan[node] != ch) {
		old = cx->node_chan[node];
		rpc_chan_hold(ch);
		cx->node_chan[node] = ch;
	}
	pthread_mutex_unlock(&cx->mu);
	if (old)
		rpc_chan_put(old);
}

static int cl_handler(void *arg, struct rpc_req *req, Cxfs__MsgType type,
		      const ProtobufCMessage *msg)
{
	struct cl_ctx *cx = arg;
	uint32_t node;

	int rc;

	if (type == CXFS__MSG_TYPE__NAME_QUERY)
		return reply_name(cx, req, (const Cxfs__NameQuery *)msg);
	if (!atomic_load(&cx->ready))
		return -EAGAIN;
	node = cl_peer_id(cx, rpc_req_chan(req));
	if (!node) {
		char name[RPC_NAME_MAX + 1] = "?";

		(void)rpc_chan_peer(rpc_req_chan(req), name, sizeof(name), NULL);
		fprintf(stderr, "cxfsd: refused a request from \"%s\": not a node of %s\n", name,
			cms_config_path(cx->cfg));
		return -EACCES;
	}
	if (type == CXFS__MSG_TYPE__RELOC_REQ) {
		const Cxfs__RelocReq *m = (const Cxfs__RelocReq *)msg;

		if (m->phase == KORE_JOIN)
			note_channel(cx, node, rpc_req_chan(req));
		if (corpse_phase(m->phase))
			return corpse_handle(cx->corpse, node, req, m);
		return kore_handle(cx->kore, node, req, m);
	}
	if (type == CXFS__MSG_TYPE__LEG_OUT)
		return cl_mirror_leg_out(cx, req, (const Cxfs__LegOut *)msg);
	if (type == CXFS__MSG_TYPE__MIRROR_STATE)
		return cl_mirror_state(cx, req, (const Cxfs__MirrorState *)msg);
	if (type == CXFS__MSG_TYPE__VOL_CHANGE)
		return cl_mirror_vol_change(cx, req, (const Cxfs__VolChange *)msg);
	if (type == CXFS__MSG_TYPE__REPAIR_HINT)
		return cl_mirror_repair_hint(cx, (const Cxfs__RepairHint *)msg);
	atomic_fetch_add(&cx->handlers, 1);
	if (!cx->is_server) {
		if (type == CXFS__MSG_TYPE__TOKEN_RECALL)
			rc = client_recall(cx, (const Cxfs__TokenRecall *)msg);
		else if (type == CXFS__MSG_TYPE__IOEXCL_STATE) {
			const Cxfs__IoexclState *m = (const Cxfs__IoexclState *)msg;

			cl_io_told(cx, m->ino, m->has_excl && m->excl);
			rc = 0;
		} else {
			rc = -RPC_EEARLY;   /* the sender takes us for the MDS: it moved */
		}
	} else if ((atomic_load(&cx->relocating) && type != CXFS__MSG_TYPE__TOKEN_RETURN) ||
		   (type == CXFS__MSG_TYPE__TOKEN_RETURN && atomic_load(&cx->bagging))) {
		rc = -RPC_EEARLY;           /* the MDS is moving: ask again (the new one) */
	} else {
		note_channel(cx, node, rpc_req_chan(req));
		if (type == CXFS__MSG_TYPE__DM_REQUEST)
			rc = cl_dm_handle(cx, req, (const Cxfs__DmRequest *)msg);
		else
			rc = cl_server_handle(cx, node, req, type, msg);
	}
	atomic_fetch_sub(&cx->handlers, 1);
	return rc;
}

/*
 * The lanes of this node's RPC workers (rpc.h): a handler may wait only
 * for messages of its own lane or of a lane below it here, and the handlers
 * of the answers lane never wait for a message or a token, so no number of
 * waiting requests can hold up the answers that end their waits.
 *
 *   requests  everything else: token acquisitions and forwarded operations
 *             (they wait for other nodes to give tokens back), DMAPI, the
 *             phases of a relocation.  Grows with its waiters.
 *   flush     WRITE_DONE and ALLOC_REQ, the data path's extent changes.
 *             They wait for other nodes' EXTENT returns, and a node holds
 *             EXTENT across only its own ALLOC_REQ (this lane) and
 *             EXTENT_MAP_REQ (answers); a node answering a recall sends
 *             WRITE_DONE, so a recall never waits for the requests lane.
 *   answers   TOKEN_RETURN (refusals too: the token server's leaf mutex and
 *             the store), IOEXCL_STATE (the token client's leaf mutex),
 *             TOKEN_RECALL on a client (it only starts the recall's
 *             thread), NAME_QUERY, EXTENT_MAP_REQ (the store only; a reader
 *             or writer holds EXTENT and SIZE while it waits for the map),
 *             an HSM's DM_OP_RESPOND (it ends an event's wait), a
 *             relocation's KORE_JOIN (it notes a channel), LEG_OUT (a
 *             mirror leg marked out in memory, cl_mirror.c) and REPAIR_HINT
 *             (a chunk queued for the revive).
 *
 * A handler moved to a lane must keep its rule: nothing in answers may
 * ever wait, nothing in flush may wait for requests.
 */
enum cl_lane {
	CL_LANE_REQUESTS,
	CL_LANE_FLUSH,
	CL_LANE_ANSWERS,
	CL_NLANES
};

static const struct rpc_lane_config cl_lanes[CL_NLANES] = {
	[CL_LANE_REQUESTS] = { "requests", 8, 1024 },
	[CL_LANE_FLUSH] = { "flush", 2, 256 },
	[CL_LANE_ANSWERS] = { "answers", 2, 64 },
};

static unsigned cl_lane_of(void *arg, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	(void)arg;
	switch (type) {
	case CXFS__MSG_TYPE__TOKEN_RETURN:
	case CXFS__MSG_TYPE__IOEXCL_STATE:
	case CXFS__MSG_TYPE__TOKEN_RECALL:
	case CXFS__MSG_TYPE__NAME_QUERY:
	case CXFS__MSG_TYPE__EXTENT_MAP_REQ:
	case CXFS__MSG_TYPE__LEG_OUT:
	case CXFS__MSG_TYPE__REPAIR_HINT:
		return CL_LANE_ANSWERS;
	case CXFS__MSG_TYPE__DM_REQUEST:
		return ((const Cxfs__DmRequest *)msg)->op == DM_OP_RESPOND ? CL_LANE_ANSWERS
									   : CL_LANE_REQUESTS;
	case CXFS__MSG_TYPE__RELOC_REQ:
		return ((const Cxfs__RelocReq *)msg)->phase == KORE_JOIN ? CL_LANE_ANSWERS
									  : CL_LANE_REQUESTS;
	case CXFS__MSG_TYPE__WRITE_DONE:
	case CXFS__MSG_TYPE__ALLOC_REQ:
		return CL_LANE_FLUSH;
	default:
		return CL_LANE_REQUESTS;
	}
}

/* ---- name service ------------------------------------------------------- */

/*
 * Ask @n who serves; 1: it answered (*@server set if it knows, perhaps to
 * us; a node named by host name cannot be asked yet and knows none), 0: no
 * answer, 2: ask again (it recovers from its server's death).
 */
static int ask_node(struct cl_ctx *cx, const struct cms_node *n, uint32_t *server)
{
	Cxfs__NameQuery q = CXFS__NAME_QUERY__INIT;
	Cxfs__MsgType rt;
	ProtobufCMessage *rep = NULL;
	struct rpc_chan *ch;
	int rc;

	*server = 0;
	if (cms_node_addr_kind(n) == CMS_ADDR_HOST)
		return 1;   /* host names: a later issue resolves them */
	if (rpc_connect(cx->rpc, cms_node_address(n), cms_node_port(n), &ch))
		return 0;
	q.fs = (char *)cms_fs_name(cx->fs);
	rc = rpc_call(ch, CXFS__MSG_TYPE__NAME_QUERY, &q.base, CL_NAME_TIMEOUT_MS, &rt, &rep);
	rpc_chan_put(ch);
	if (rc)
		return 0;
	if (rt == CXFS__MSG_TYPE__NAME_REPLY) {
		const Cxfs__NameReply *r = (const Cxfs__NameReply *)rep;
		const struct cms_node *s = r->err == 0 && r->server ?
					   cms_config_node(cx->cfg, r->server) : NULL;

		/* Recovering: ask again. */
		if (r->err == -EBUSY) {
			rpc_msg_free(rep);
			return 2;
		}
		if (s)
			*server = (uint32_t)cms_node_index(s) + 1;
	}
	rpc_msg_free(rep);
	return 1;
}

int cl_name_ask(struct cl_ctx *cx, uint32_t *server)
{
	bool busy = false;

	*server = 0;
	for (size_t i = 0; i < cms_config_node_count(cx->cfg); i++) {
		const struct cms_node *n = cms_config_node_at(cx->cfg, i);
		uint32_t s = 0;
		int rc;

		if (n == cx->self || !cl_member_up(cx, (uint32_t)i + 1))
			continue;
		rc = ask_node(cx, n, &s);
		busy |= rc == 2;
		if (rc == 1 && s && s != cx->self_id) {
			*server = s;
			return 0;
		}
		if (rc == 1 && s)
			*server = s;
	}
	return busy ? -EAGAIN : 0;
}

static int find_server(struct cl_ctx *cx, char *err, size_t errlen)
{
	size_t nn = cms_config_node_count(cx->cfg);
	bool *up = calloc(nn, sizeof(bool));
	struct timespec t0, now;
	int rc = -ETIMEDOUT;

	if (!up)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		uint32_t server = 0, s;
		const struct cms_node *first;
		bool wait = false, silent = false;

		for (size_t i = 0; i < nn; i++) {
			const struct cms_node *n = cms_config_node_at(cx->cfg, i);

			if (n == cx->self) {
				up[i] = true;
				continue;
			}
			/*
			 * Up is the membership's word, not an answer's: a member that
			 * does not answer (busy, or refusing a handshake) may be the
			 * server, or know it; taking it for one that knows none could
			 * make a second server: no choice by the server order then.
			 */
			up[i] = cl_member_up(cx, (uint32_t)i + 1);
			s = 0;
			rc = up[i] ? ask_node(cx, n, &s) : 1;
			/* Recovering, or naming us (we served before we restarted): ask again. */
			if (rc == 2 || (rc == 1 && s == cx->self_id))
				wait = true;
			if (rc == 0)
				silent = true;
			if (rc != 1)
				s = 0;
			if (s && !server)
				server = s;
		}
		rc = -ETIMEDOUT;
		if (wait)
			server = 0;     /* a recovery runs: its outcome names the server */
		else if (!server && !silent) {
			first = cms_fs_server_for(cx->fs, up, nn);
			if (first == cx->self)
				server = cx->self_id;
		}
		if (server) {
			pthread_mutex_lock(&cx->mu);
			cx->server_id = server;
			pthread_mutex_unlock(&cx->mu);
			cx->is_server = server == cx->self_id;
			rc = 0;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 > CL_NAME_WAIT_MS) {
			snprintf(err, errlen, "no node serves filesystem %s: none of its servers "
				 "(%s first) answered within %d s", cms_fs_name(cx->fs),
				 cms_node_name(cms_fs_server(cx->fs, 0)), CL_NAME_WAIT_MS / 1000);
			break;
		}
		usleep(300 * 1000);
	}
	free(up);
	return rc;
}

/* ---- life cycle ---------------------------------------------------------- */

int cl_start(const struct cl_opts *o, struct cl_ctx **out, char *err, size_t errlen)
{
	struct cl_ctx *cx = calloc(1, sizeof(*cx));
	struct rpc_config rc_cfg = { 0 };
	const uint8_t *secret;
	size_t secret_len;
	int rc;

	if (!cx)
		return -ENOMEM;
	pthread_mutex_init(&cx->mu, NULL);
	pthread_mutex_init(&cx->store_mu, NULL);
	pthread_mutex_init(&cx->dm_mu, NULL);
	pthread_mutex_init(&cx->gate_mu, NULL);
	pthread_cond_init(&cx->gate_cv, NULL);
	pthread_mutex_init(&cx->shape_mu, NULL);
	pthread_cond_init(&cx->shape_cv, NULL);
	pthread_mutex_init(&cx->imu, NULL);
	pthread_mutex_init(&cx->nmu, NULL);
	pthread_cond_init(&cx->ncv, NULL);
	pthread_mutex_init(&cx->rmu, NULL);
	pthread_cond_init(&cx->rcv, NULL);
	pthread_mutex_init(&cx->reach_mu, NULL);
	pthread_cond_init(&cx->reach_cv, NULL);
	cx->server_wait_ms = o->server_wait_ms ? o->server_wait_ms : CL_SERVER_WAIT_MS_DEFAULT;
	cx->un = cl_unsafe_create();
	if (!cx->un) {
		free(cx);
		return -ENOMEM;
	}
	rc = cl_waits_init(cx);
	if (rc) {
		cl_unsafe_destroy(cx->un);
		free(cx);
		return rc;
	}
	rc = cl_role_init(cx);
	if (!rc)
		rc = kore_create(&cx->rl, &cx->kore);
	if (!rc)
		rc = corpse_create(&cx->rl, cx->kore, &cx->corpse);
	if (rc)
		goto fail;
	cx->inval = o->inval;
	cx->inval_entry = o->inval_entry;
	cx->inval_attr = o->inval_attr;
	cx->inval_arg = o->inval_arg;
	cx->serving = o->serving;
	cx->serving_arg = o->serving_arg;
	rc = cms_config_load(o->config, &cx->cfg, err, errlen);
	if (rc)
		goto fail;
	rc = cms_config_self(cx->cfg, o->node, &cx->self, err, errlen);
	if (rc)
		goto fail;
	cx->self_id = (uint32_t)cms_node_index(cx->self) + 1;
	if (cms_config_node_count(cx->cfg) >= CL_MAX_NODES) {
		snprintf(err, errlen, "%s: more than %d nodes", o->config, CL_MAX_NODES - 1);
		rc = -EINVAL;
		goto fail;
	}
	cx->fs = o->fs ? cms_config_fs(cx->cfg, o->fs) : cms_config_fs_at(cx->cfg, 0);
	if (!cx->fs) {
		snprintf(err, errlen, "%s: no filesystem %s", o->config, o->fs ? o->fs : "at all");
		rc = -ENOENT;
		goto fail;
	}
	if (cms_node_addr_kind(cx->self) == CMS_ADDR_HOST) {
		snprintf(err, errlen, "%s:%d: node %s: give a numeric address", o->config,
			 cms_node_line(cx->self), cms_node_name(cx->self));
		rc = -EINVAL;
		goto fail;
	}
	secret = cms_config_secret(cx->cfg, &secret_len);
	rc_cfg.cluster = cms_config_cluster(cx->cfg);
	rc_cfg.node = cms_node_name(cx->self);
	rc_cfg.secret = secret;
	rc_cfg.secret_len = secret_len;
	rc_cfg.epoch = 1;
	rc_cfg.listen_addr = cms_node_address(cx->self);
	rc_cfg.listen_port = cms_node_port(cx->self);
	rc_cfg.nlanes = CL_NLANES;
	memcpy(rc_cfg.lanes, cl_lanes, sizeof(cl_lanes));
	rc_cfg.lane_of = cl_lane_of;
	/* No newer frames than this node says it speaks (cxfsd --protocol-levels). */
	if (o->levels && o->levels->max[CMS_SUB_MESSAGES] < RPC_PROTO_VERSION)
		rc_cfg.level = o->levels->max[CMS_SUB_MESSAGES];
	atomic_store(&cx->msg_level, rc_cfg.level ? rc_cfg.level : RPC_PROTO_VERSION);
	rc_cfg.handler = cl_handler;
	rc_cfg.handler_arg = cx;
	rc_cfg.log = cl_log;
	rc = rpc_ctx_create(&rc_cfg, &cx->rpc);
	if (rc) {
		snprintf(err, errlen, "cannot listen on %s port %u: %s", rc_cfg.listen_addr,
			 rc_cfg.listen_port, strerror(-rc));
		goto fail;
	}
	rc = cl_member_start(cx, o->levels, err, errlen);
	if (rc)
		goto fail;
	rc = find_server(cx, err, errlen);
	if (rc)
		goto fail;
	if (!cx->is_server) {
		const struct cms_node *s = cl_node_by_id(cx, cx->server_id);

		rc = rpc_connect(cx->rpc, cms_node_address(s), cms_node_port(s), &cx->mds);
		if (rc) {
			snprintf(err, errlen, "cannot reach the metadata server %s",
				 cms_node_name(s));
			goto fail;
		}
	}
	*out = cx;
	return 0;
fail:
	cl_member_stop(cx);
	if (cx->rpc)
		rpc_ctx_destroy(cx->rpc);
	corpse_free(cx->corpse);
	kore_free(cx->kore);
	cl_role_fini(cx);
	cms_config_free(cx->cfg);
	cl_waits_fini(cx);
	cl_unsafe_destroy(cx->un);
	free(cx);
	return rc;
}

struct kore *cl_kore(struct cl_ctx *cx)
{
	return cx->kore;
}

bool cl_is_server(const struct cl_ctx *cx)
{
	return cx->is_server;
}

size_t cl_volume_count(const struct cl_ctx *cx)
{
	return cms_fs_volume_count(cx->fs);
}

const char *cl_volume(const struct cl_ctx *cx, size_t i)
{
	return cms_fs_volume(cx->fs, i);
}

const char *cl_initiator(const struct cl_ctx *cx)
{
	return cms_node_initiator(cx->self);
}

const char *cl_node_name(const struct cl_ctx *cx)
{
	return cms_node_name(cx->self);
}

const char *cl_fs_name(const struct cl_ctx *cx)
{
	return cms_fs_name(cx->fs);
}

uint32_t cl_node_id(const struct cl_ctx *cx)
{
	return cx->self_id;
}

const char *cl_metrics_addr(const struct cl_ctx *cx)
{
	return cms_config_metrics(cx->cfg, cx->self);
}

void cl_quiesce(struct cl_ctx *cx)
{
	atomic_store(&cx->ready, false);
}

int cl_attach(struct cl_ctx *cx, struct xvm_vol *dev, struct meta_store *st,
	      struct vn_meta_fs *mfs, char *err, size_t errlen)
{
	struct meta_sb sb;
	int rc;

	rc = meta_sb_read(dev, &sb, err, errlen);
	if (rc)
		return rc;
	cx->dev = dev;
	cx->bs = sb.block_size;
	cx->data_off = sb.data.off;
	cx->data_blocks = sb.data.len / sb.block_size;
	cx->st = st;
	cx->mfs = mfs;
	if (cx->is_server) {
		rc = cl_server_start(cx, true);
		if (!rc)
			rc = tok_client_create(&cl_local_tok_ops, cx, &cx->tc);
	} else {
		rc = tok_client_create(&cl_remote_tok_ops, cx, &cx->tc);
	}
	if (rc) {
		snprintf(err, errlen, "cannot start the token %s: %s",
			 cx->is_server ? "server" : "client", strerror(-rc));
		return rc;
	}
	rc = cl_dm_attach(cx, sb.flags & META_SB_F_DMAPI);
	if (rc) {
		snprintf(err, errlen, "cannot start DMAPI: %s", strerror(-rc));
		return rc;
	}
	rc = cl_watchdog_start(cx);
	if (rc) {
		snprintf(err, errlen, "cannot start the token wait watchdog: %s", strerror(-rc));
		return rc;
	}
	cx->pc = cl_pc_create(cx->bs, (uint64_t)cms_config_write_behind_mb(cx->cfg) << 20,
			      (uint64_t)cms_config_read_cache_mb(cx->cfg) << 20);
	rc = cx->pc ? cl_wb_start(cx) : -ENOMEM;
	if (rc) {
		snprintf(err, errlen, "cannot start the data cache: %s", strerror(-rc));
		return rc;
	}
	rc = cl_async_start(cx);
	if (rc) {
		snprintf(err, errlen, "cannot start the create queue: %s", strerror(-rc));
		return rc;
	}
	rc = cl_io_start(cx);
	if (rc) {
		snprintf(err, errlen, "cannot start the I/O-exclusive thread: %s", strerror(-rc));
		return rc;
	}
	rc = cl_reach_start(cx);
	if (rc)
		snprintf(err, errlen, "cannot start the server prober: %s", strerror(-rc));
	return rc;
}

int cl_shape(void *arg, struct vnode *vn)
{
	struct cl_ctx *cx = arg;
	int rc;

	pthread_mutex_lock(&cx->shape_mu);
	/*
	 * The thread rewriting the chains shapes for the new role (vn_rewriter);
	 * one inside an operation must not wait (the rewrite may wait for the
	 * head it holds): its operation restarts once the rewrite is over.
	 */
	while (cx->shape_blocked && !vn_is_rewriter()) {
		if (vn_in_call()) {
			pthread_mutex_unlock(&cx->shape_mu);
			return -VN_EMIGRATING;
		}
		pthread_cond_wait(&cx->shape_cv, &cx->shape_mu);
	}
	cx->shaping++;
	pthread_mutex_unlock(&cx->shape_mu);
	rc = cl_shape_role(cx, vn);
	pthread_mutex_lock(&cx->shape_mu);
	if (--cx->shaping == 0)
		pthread_cond_broadcast(&cx->shape_cv);
	pthread_mutex_unlock(&cx->shape_mu);
	return rc;
}

void cl_shape_block(struct cl_ctx *cx)
{
	pthread_mutex_lock(&cx->shape_mu);
	cx->shape_blocked = true;
	while (cx->shaping)
		pthread_cond_wait(&cx->shape_cv, &cx->shape_mu);
	pthread_mutex_unlock(&cx->shape_mu);
}

void cl_shape_unblock(struct cl_ctx *cx)
{
	pthread_mutex_lock(&cx->shape_mu);
	cx->shape_blocked = false;
	pthread_cond_broadcast(&cx->shape_cv);
	pthread_mutex_unlock(&cx->shape_mu);
}

int cl_shape_role(struct cl_ctx *cx, struct vnode *vn)
{
	int rc;

	if (!cx->is_server) {
		rc = cl_client_shape(cx, vn);
	} else {
		rc = vn_meta_shape(cx->mfs, vn);
		if (!rc)
			rc = cl_server_shape(cx, vn);
		if (!rc)
			rc = cl_local_shape(cx, vn);
	}
	if (!rc)
		rc = cl_dm_shape(cx, vn);
	return rc;
}

void cl_set_table(struct cl_ctx *cx, struct vn_table *vt)
{
	cx->vt = vt;
	if (cx->dmfs)
		dm_fs_set_table(cx->dmfs, vt);
	atomic_store(&cx->ready, true);
	cl_mirror_attached(cx);
}

void cl_stop(struct cl_ctx *cx)
{
	if (!cx)
		return;
	cl_async_stop(cx);
	atomic_store(&cx->stopping, true);
	cl_io_stop(cx);
	cl_wb_stop(cx);
	/*
	 * A node without the store writes nothing more: its dirty-region log is
	 * left clean now, while its key is surely on the LUNs (once it left,
	 * a tie-break of the others may take it).  The store's node does it
	 * once the store is closed, below.
	 */
	if (cx->dev && !cx->st)
		xvm_drl_stop(cx->dev);
	cl_member_leave(cx);
	atomic_store(&cx->ready, false);
	cl_reach_stop(cx);
	cl_watchdog_stop(cx);
	if (cx->is_server)
		cl_server_stop(cx);
	/* Recall threads finish their last message before the context goes. */
	for (int i = 0; i < 500 && atomic_load(&cx->threads); i++)
		usleep(10 * 1000);
	if (cx->mds)
		rpc_chan_put(cx->mds);
	for (size_t i = 0; i < CL_MAX_NODES; i++) {
		if (cx->node_chan[i])
			rpc_chan_put(cx->node_chan[i]);
		if (cx->out_chan[i])
			rpc_chan_put(cx->out_chan[i]);
	}
	cl_member_stop(cx);
	rpc_ctx_destroy(cx->rpc);
	cl_dm_detach(cx);
	corpse_free(cx->corpse);
	kore_free(cx->kore);
	cl_role_fini(cx);
	if (cx->mfs)
		vn_meta_fs_destroy(cx->mfs);
	if (cx->st)
		meta_store_close(cx->st);
	/* Nothing writes any more: the log's slot is left clean while the key still lets it. */
	if (cx->dev)
		xvm_drl_stop(cx->dev);
	cl_member_unregister(cx);
	tok_client_destroy(cx->tc);
	if (cx->ts)
		tok_server_destroy(cx->ts);
	cl_ledger_destroy(cx->ledger);
	for (size_t i = 0; i < sizeof(cx->ihash) / sizeof(cx->ihash[0]); i++)
		while (cx->ihash[i]) {
			struct cl_inode *ci = cx->ihash[i];

			ci->refs = 1;
			cl_inode_put(cx, ci);
		}
	cl_pc_destroy(cx->pc);
	free(cx->rq);
	cms_config_free(cx->cfg);
	pthread_mutex_destroy(&cx->mu);
	pthread_mutex_destroy(&cx->store_mu);
	pthread_mutex_destroy(&cx->dm_mu);
	pthread_mutex_destroy(&cx->gate_mu);
	pthread_cond_destroy(&cx->gate_cv);
	pthread_mutex_destroy(&cx->shape_mu);
	pthread_cond_destroy(&cx->shape_cv);
	pthread_mutex_destroy(&cx->imu);
	pthread_mutex_destroy(&cx->nmu);
	pthread_cond_destroy(&cx->ncv);
	pthread_mutex_destroy(&cx->rmu);
	pthread_cond_destroy(&cx->rcv);
	pthread_mutex_destroy(&cx->reach_mu);
	pthread_cond_destroy(&cx->reach_cv);
	cl_waits_fini(cx);
	cl_unsafe_destroy(cx->un);
	free(cx);
}

/* ---- status --------------------------------------------------------------- */

int cl_status_json(struct cl_ctx *cx, char *buf, size_t size)
{
	struct rpc_stats rs;
	struct rpc_lane_stats ls[RPC_LANES_MAX];
	unsigned nl;
	struct tok_client_stats tcs;
	struct tok_server_stats tss = { 0 };
	size_t len = 0, nn = cms_config_node_count(cx->cfg);
	const struct cms_node *srv;
	uint64_t fenced;
	bool cut;
	int n;

#define PUT(...)                                                                   \
	do {                                                                       \
		n = snprintf(buf + len, len < size ? size - len : 0, __VA_ARGS__); \
		if (n < 0)                                                         \
			return -EIO;                                               \
		len += (size_t)n;                                                  \
	} while (0)

	rpc_ctx_stats(cx->rpc, &rs);
	nl = rpc_ctx_lanes(cx->rpc, ls, RPC_LANES_MAX);
	tok_client_stats(cx->tc, &tcs);
	pthread_mutex_lock(&cx->store_mu);   /* against a role change (cl_server_publish) */
	if (cx->ts)
		tok_server_stats(cx->ts, &tss);
	pthread_mutex_unlock(&cx->store_mu);
	pthread_mutex_lock(&cx->mu);
	srv = cl_node_by_id(cx, cx->server_id);
	fenced = cx->fenced;
	pthread_mutex_unlock(&cx->mu);
	pthread_mutex_lock(&cx->gate_mu);
	cut = cx->cut_off;
	pthread_mutex_unlock(&cx->gate_mu);
	/* A server cut off serves nothing (its requests wait, its writes are fenced). */
	PUT("{\"cluster\":\"%s\",\"node\":\"%s\",\"filesystem\":\"%s\",\"server\":\"%s\","
	    "\"is_server\":%s,\"cut_off\":%s,\"nodes\":[", cms_config_cluster(cx->cfg),
	    cms_node_name(cx->self), cms_fs_name(cx->fs), srv ? cms_node_name(srv) : "",
	    cx->is_server && !cut ? "true" : "false", cut ? "true" : "false");
	for (size_t i = 0; i < nn; i++) {
		const struct cms_node *nd = cms_config_node_at(cx->cfg, i);
		/* Up: in the membership (this node's view). */
		bool connected = cl_member_up(cx, (uint32_t)i + 1);

		PUT("%s{\"name\":\"%s\",\"address\":\"%s\",\"port\":%u,\"may_serve\":%s,"
		    "\"known_up\":%s}", i ? "," : "", cms_node_name(nd), cms_node_address(nd),
		    cms_node_port(nd), cms_node_may_serve(nd) ? "true" : "false",
		    connected ? "true" : "false");
	}
	PUT("],\"messages\":{\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"calls\":%" PRIu64
	    ",\"timeouts\":%" PRIu64 ",\"connects\":%" PRIu64 ",\"disconnects\":%" PRIu64
	    ",\"dropped\":{", rs.frames_sent, rs.frames_received, rs.calls, rs.timeouts,
	    rs.connects, rs.disconnects);
	for (int i = 0; i < RPC_DROP__COUNT; i++)
		PUT("%s\"%s\":%" PRIu64, i ? "," : "", rpc_drop_name((enum rpc_drop)i),
		    rs.dropped[i]);
	PUT("},\"sent_by_type\":{");
	for (int i = 0, first = 1; i < RPC_TYPES; i++) {
		const ProtobufCEnumValue *v;

		if (!rs.sent_by_type[i] ||
		    !(v = protobuf_c_enum_descriptor_get_value(&cxfs__msg_type__descriptor, i)))
			continue;
		PUT("%s\"%s\":%" PRIu64, first ? "" : ",", v->name, rs.sent_by_type[i]);
		first = 0;
	}
	PUT("}},\"lanes\":{");
	for (unsigned i = 0; i < nl && i < RPC_LANES_MAX; i++)
		PUT("%s\"%s\":{\"workers\":%u,\"running\":%u,\"queued\":%u,\"peak\":%u,"
		    "\"min\":%u,\"max\":%u,\"handled\":%" PRIu64 ",\"waited\":%" PRIu64 "}",
		    i ? "," : "", ls[i].name, ls[i].workers, ls[i].running, ls[i].queued,
		    ls[i].peak, ls[i].min, ls[i].max, ls[i].handled, ls[i].waited);
	if (cx->dev && xvm_is_iscsi(cx->dev)) {
		struct blk_stats bs;

		xvm_get_stats(cx->dev, &bs);
		PUT("},\"fencing\":{\"key\":\"0x%016" PRIx64 "\",\"self_fenced\":%s,"
		    "\"reservation_conflicts\":%" PRIu64, cl_pr_key(cx->cfg, cx->self_id),
		    xvm_fenced(cx->dev) ? "true" : "false", bs.reservation_conflicts);
	}
	PUT("},\"fenced\":\"");
	for (size_t i = 0, first = 1; i < nn && i < CMS_MAX_NODES; i++)
		if (fenced & CMS_BIT(i)) {
			PUT("%s%s", first ? "" : ",", cms_node_name(cms_config_node_at(cx->cfg, i)));
			first = 0;
		}
	PUT("\",\"membership\":");
	if (cx->cms) {
		n = cms_status_json(cx->cms, buf + len, len < size ? size - len : 0);
		if (n < 0)
			return n;
		len += (size_t)n;
	} else {
		PUT("null");
	}
	PUT(",");
	len += (size_t)corpse_status_json(cx->corpse, len < size ? buf + len : NULL,
					  len < size ? size - len : 0);
	PUT(",\"token_client\":{\"acquires_cached\":%" PRIu64 ",\"acquires_server\":%" PRIu64
	    ",\"recalls\":%" PRIu64 ",\"refusals\":%" PRIu64 ",\"inodes\":%" PRIu64 "}",
	    tcs.acquires_cached, tcs.acquires_server, tcs.recalls, tcs.refusals, tcs.inodes);
	if (!cx->is_server)
		PUT(",\"server_reach\":{\"wait_ms\":%u,\"heard_ms_ago\":%" PRId64 "}",
		    cx->server_wait_ms, cl_reach_heard_ms(cx));
	if (cx->is_server)
		PUT(",\"token_server\":{\"grants\":%" PRIu64 ",\"recalls\":%" PRIu64
		    ",\"returns\":%" PRIu64 ",\"refusals\":%" PRIu64 ",\"waiting\":%" PRIu64
		    ",\"inodes\":%" PRIu64 ",\"resent\":%" PRIu64 ",\"ioexcl_tells\":%" PRIu64 "}",
		    tss.grants, tss.recalls, tss.returns, tss.refusals, tss.waiting, tss.inodes,
		    tss.resent, tss.ioexcl_tells);
	PUT(",\"cache\":{\"attr_hits\":%" PRIu64 ",\"attr_misses\":%" PRIu64
	    ",\"name_hits\":%" PRIu64 ",\"name_misses\":%" PRIu64 ",\"map_fetches\":%" PRIu64
	    ",\"allocs\":%" PRIu64 ",\"write_dones\":%" PRIu64 ",\"forwards\":%" PRIu64
	    ",\"recalls_in\":%" PRIu64 ",\"page_invals\":%" PRIu64 ",\"io_given\":%" PRIu64 "},",
	    atomic_load(&cx->stats.attr_hits), atomic_load(&cx->stats.attr_misses),
	    atomic_load(&cx->stats.name_hits), atomic_load(&cx->stats.name_misses),
	    atomic_load(&cx->stats.map_fetches), atomic_load(&cx->stats.allocs),
	    atomic_load(&cx->stats.write_dones), atomic_load(&cx->stats.forwards),
	    atomic_load(&cx->stats.recalls_in), atomic_load(&cx->stats.invals),
	    atomic_load(&cx->stats.io_given));
	if (cx->pc) {
		struct cl_pc_counts pn;

		cl_pc_counts(cx->pc, &pn);
		PUT("\"data_cache\":{\"write_behind_mb\":%u,\"read_cache_mb\":%u"
		    ",\"dirty_bytes\":%" PRIu64 ",\"clean_bytes\":%" PRIu64 ",\"hits\":%" PRIu64
		    ",\"misses\":%" PRIu64 ",\"flushes\":%" PRIu64 ",\"flushed_bytes\":%" PRIu64
		    ",\"waits\":%" PRIu64 ",\"write_errors\":%" PRIu64 "},",
		    cms_config_write_behind_mb(cx->cfg), cms_config_read_cache_mb(cx->cfg),
		    pn.dirty_bytes, pn.clean_bytes, pn.hits, pn.misses, pn.flushes,
		    pn.flushed_bytes, pn.waits, pn.errors);
	}
	{
		struct cl_unsafe_counts uc;

		cl_unsafe_counts(cx, &uc);
		PUT("\"unsafe\":{\"kept\":%zu,\"kept_bytes\":%zu,\"durable\":%" PRIu64
		    ",\"applied\":%" PRIu64 ",\"answered_again\":%" PRIu64 "},", uc.kept,
		    uc.kept_bytes, uc.durable, uc.applied, uc.answered_again);
	}
	{
		uint64_t creates, unlinks, renames, batches, failed, queued;

		cl_async_counts(cx, &creates, &unlinks, &renames, &batches, &failed, &queued);
		PUT("\"async_creates\":{\"made\":%" PRIu64 ",\"unlinks\":%" PRIu64
		    ",\"renames\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"failed\":%" PRIu64
		    ",\"queued\":%" PRIu64 "},", creates, unlinks, renames, batches, failed, queued);
	}
	if (cl_waits_json(cx, 0, buf, size, &len, 2))
		return -ENOSPC;
	PUT("}");
#undef PUT
	return len < size ? (int)len : -ENOSPC;
}

void cl_metrics_get(struct cl_ctx *cx, struct cl_metrics *m)
{
	struct cms_view v = { 0 };
	uint32_t server;

	memset(m, 0, sizeof(*m));
	rpc_ctx_stats(cx->rpc, &m->rpc);
	tok_client_stats(cx->tc, &m->tc);
	tok_client_wait_hist(cx->tc, &m->tok_wait);
	/* The watchdog's hold keeps the token server alive while it is read (cl_wait.c). */
	pthread_mutex_lock(&cx->wmu);
	if (cx->wts) {
		tok_server_stats(cx->wts, &m->ts);
		m->has_ts = true;
	}
	pthread_mutex_unlock(&cx->wmu);
	pthread_mutex_lock(&cx->dm_mu);
	if (cx->dmfs) {
		dm_fs_stats(cx->dmfs, &m->dm);
		m->has_dm = true;
	}
	pthread_mutex_unlock(&cx->dm_mu);
	kore_stats(cx->kore, &m->reloc);
	m->attr_hits = atomic_load(&cx->stats.attr_hits);
	m->attr_misses = atomic_load(&cx->stats.attr_misses);
	m->name_hits = atomic_load(&cx->stats.name_hits);
	m->name_misses = atomic_load(&cx->stats.name_misses);
	if (cx->pc) {
		cl_pc_counts(cx->pc, &m->pc);
		m->has_pc = true;
	}
	m->recoveries = corpse_count(cx->corpse);
	pthread_mutex_lock(&cx->mu);
	server = cx->server_id;
	pthread_mutex_unlock(&cx->mu);
	pthread_mutex_lock(&cx->gate_mu);
	m->cut_off = cx->cut_off;
	pthread_mutex_unlock(&cx->gate_mu);
	m->is_server = cx->is_server && !m->cut_off;
	if (cx->cms)
		cms_view_get(cx->cms, &v);
	m->epoch = v.epoch;
	m->quorum = v.quorum;
	m->nnodes = cms_config_node_count(cx->cfg);
	if (m->nnodes > CL_METRICS_NODES)
		m->nnodes = CL_METRICS_NODES;
	for (size_t i = 0; i < m->nnodes; i++) {
		m->node[i].name = cms_node_name(cms_config_node_at(cx->cfg, i));
		m->node[i].up = cl_member_up(cx, (uint32_t)i + 1);
		m->node[i].serves = server == (uint32_t)i + 1;
	}
}

void cl_call_hist(struct cl_ctx *cx, Cxfs__MsgType type, struct cx_hist_snap *out)
{
	rpc_ctx_call_hist(cx->rpc, type, out);
}

int cl_store_backup(struct cl_ctx *cx, const char *path, char *err, size_t errlen)
{
	const struct cms_node *srv;
	int rc;

	pthread_mutex_lock(&cx->store_mu);
	if (cx->is_server && cx->st) {
		rc = meta_store_backup(cx->st, path, err, errlen);
		pthread_mutex_unlock(&cx->store_mu);
		return rc;
	}
	pthread_mutex_unlock(&cx->store_mu);
	pthread_mutex_lock(&cx->mu);
	srv = cl_node_by_id(cx, cx->server_id);
	pthread_mutex_unlock(&cx->mu);
	snprintf(err, errlen, "node %s does not serve the metadata of %s; run the backup on %s%s",
		 cms_node_name(cx->self), cms_fs_name(cx->fs),
		 srv ? "node " : "its metadata server", srv ? cms_node_name(srv) : "");
	return -EREMOTE;
}

static int put_set(char *buf, size_t size, size_t *len, const struct tok_set *s)
{
	int first = 1, n;

	for (int t = 0; t < TOK_NTOKENS; t++) {
		if (s->level[t] == TOK_NONE)
			continue;
		n = snprintf(buf + *len, *len < size ? size - *len : 0, "%s\"%s\":\"%s\"",
			     first ? "" : ",", tok_name((enum tok_id)t),
			     tok_level_name((enum tok_level)s->level[t]));
		if (n < 0)
			return -EIO;
		*len += (size_t)n;
		first = 0;
	}
	return 0;
}

int cl_tokens_json(struct cl_ctx *cx, uint64_t ino, char *buf, size_t size)
{
	struct tok_set held;
	size_t len = 0;
	int n;

	tok_client_cached(cx->tc, ino, &held);
	n = snprintf(buf, size, "{\"ino\":%" PRIu64 ",\"node\":\"%s\",\"cached\":{", ino,
		     cms_node_name(cx->self));
	if (n < 0)
		return -EIO;
	len = (size_t)n;
	if (put_set(buf, size, &len, &held))
		return -EIO;
	n = snprintf(buf + len, len < size ? size - len : 0, "},\"io_alone\":%s",
		     tok_client_ioexcl(cx->tc, ino, NULL) ? "true" : "false");
	len += (size_t)(n > 0 ? n : 0);
	pthread_mutex_lock(&cx->store_mu);   /* against a role change (cl_server_publish) */
	if (cx->is_server && cx->ts) {
		size_t nn = cms_config_node_count(cx->cfg);

		n = snprintf(buf + len, len < size ? size - len : 0, ",\"granted\":{");
		len += (size_t)(n > 0 ? n : 0);
		for (size_t i = 0, k = 0; i < nn; i++) {
			tok_server_held(cx->ts, (uint32_t)i + 1, ino, &held);
			if (tok_set_empty(&held))
				continue;
			n = snprintf(buf + len, len < size ? size - len : 0, "%s\"%s\":{",
				     k++ ? "," : "", cms_node_name(cms_config_node_at(cx->cfg, i)));
			len += (size_t)(n > 0 ? n : 0);
			if (put_set(buf, size, &len, &held)) {
				pthread_mutex_unlock(&cx->store_mu);
				return -EIO;
			}
			n = snprintf(buf + len, len < size ? size - len : 0, "}");
			len += (size_t)(n > 0 ? n : 0);
		}
		n = snprintf(buf + len, len < size ? size - len : 0, "}");
		len += (size_t)(n > 0 ? n : 0);
	}
	pthread_mutex_unlock(&cx->store_mu);
	n = snprintf(buf + len, len < size ? size - len : 0, ",");
	len += (size_t)(n > 0 ? n : 0);
	if (cl_waits_json(cx, ino, buf, size, &len, 2))
		return -ENOSPC;
	n = snprintf(buf + len, len < size ? size - len : 0, "}");
	len += (size_t)(n > 0 ? n : 0);
	return len < size ? (int)len : -ENOSPC;
}
