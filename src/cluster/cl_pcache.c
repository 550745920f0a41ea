/*
 * cl_pcache.c - the data cache of a client node (cl_pcache.h): pages of one
 * block indexed per file by a hash of the block number, clean pages on one
 * least-recently-used list, files with dirty pages on another list for the
 * flusher.  Everything is under the cache's one mutex (a leaf).
 */
#include "cluster/cl_pcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cx_intr.h"

#define PC_RESERVE_SLICE_MS 100   /* a waiting writer looks again this often */

struct pc_page {
	uint64_t blk;                   /* file block */
	uint64_t pblk;                  /* volume block (dirty pages) */
	uint64_t wseq;                  /* cl_pc.seq at its last write */
	struct cl_pcf *f;               /* its file */
	struct pc_page *hnext;          /* same hash bucket of the file */
	struct pc_page *lprev, *lnext;  /* the LRU list (clean pages only) */
	bool dirty;
	bool unwritten;                 /* its volume block is still unwritten */
	char data[];                    /* the block */
};

struct cl_pcf {
	uint64_t ino;
	struct pc_page **hash;          /* buckets, a power of two */
	size_t nbuckets, npages, ndirty;
	uint64_t gen;                   /* moves when a page goes (cl_pc_gen) */
	struct cl_pcf *dprev, *dnext;   /* files with dirty pages */
	bool on_dirty;
};

struct cl_pc {
	pthread_mutex_t mu;             /* protects everything here and in pages and files */
	pthread_cond_t room_cv;         /* writers waiting for room */
	pthread_cond_t flush_cv;        /* the flusher */
	uint32_t bs;                    /* constant */
	uint64_t dirty_max, clean_max;  /* bytes; constant */
	uint64_t dirty_bytes, clean_bytes;
	uint64_t seq;                   /* counts writes into pages */
	struct pc_page lru;             /* head: lnext most recent, lprev least */
	struct cl_pcf *dirty_files;
	unsigned waiters;               /* writers waiting for room */
	bool stop;
	struct cl_pc_counts n;          /* counters (the byte figures are the fields above) */
};

static struct timespec ts_of(int64_t ns)
{
	return (struct timespec){ (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
}

/* ---- lists (pc->mu held) ---- */

static void lru_unlink(struct cl_pc *pc, struct pc_page *p)
{
	if (!p->lnext)
		return;
	p->lprev->lnext = p->lnext;
	p->lnext->lprev = p->lprev;
	p->lprev = p->lnext = NULL;
	pc->clean_bytes -= pc->bs;
}

static void lru_push(struct cl_pc *pc, struct pc_page *p)
{
	p->lnext = pc->lru.lnext;
	p->lprev = &pc->lru;
	pc->lru.lnext->lprev = p;
	pc->lru.lnext = p;
	pc->clean_bytes += pc->bs;
}

static void dirty_files_set(struct cl_pc *pc, struct cl_pcf *f)
{
	bool want = f->ndirty > 0;

	if (want == f->on_dirty)
		return;
	if (want) {
		f->dprev = NULL;
		f->dnext = pc->dirty_files;
		if (f->dnext)
			f->dnext->dprev = f;
		pc->dirty_files = f;
	} else {
		if (f->dprev)
			f->dprev->dnext = f->dnext;
		else
			pc->dirty_files = f->dnext;
		if (f->dnext)
			f->dnext->dprev = f->dprev;
		f->dprev = f->dnext = NULL;
	}
	f->on_dirty = want;
}

/* Page @p is dirty, or clean (then most recently used), from now on. */
static void set_dirty(struct cl_pc *pc, struct pc_page *p, bool dirty)
{
	if (p->dirty == dirty) {
		if (!dirty) {
			lru_unlink(pc, p);
			lru_push(pc, p);
		}
		return;
	}
	p->dirty = dirty;
	if (dirty) {
		lru_unlink(pc, p);
		pc->dirty_bytes += pc->bs;
		p->f->ndirty++;
	} else {
		pc->dirty_bytes -= pc->bs;
		p->f->ndirty--;
		lru_push(pc, p);
		pthread_cond_broadcast(&pc->room_cv);
	}
	dirty_files_set(pc, p->f);
}

/* ---- the index of a file (pc->mu held) ---- */

static size_t slot(const struct cl_pcf *f, uint64_t blk)
{
	return (size_t)((blk * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (f->nbuckets - 1);
}

static struct pc_page *find(const struct cl_pcf *f, uint64_t blk)
{
	struct pc_page *p;

	for (p = f->hash[slot(f, blk)]; p && p->blk != blk; p = p->hnext)
		;
	return p;
}

static void grow(struct cl_pcf *f)
{
	size_t nb = f->nbuckets * 2;
	struct pc_page **h = calloc(nb, sizeof(*h));

	if (!h)
		return;   /* longer chains, still correct */
	for (size_t i = 0; i < f->nbuckets; i++)
		while (f->hash[i]) {
			struct pc_page *p = f->hash[i];
			size_t s = (size_t)((p->blk * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (nb - 1);

			f->hash[i] = p->hnext;
			p->hnext = h[s];
			h[s] = p;
		}
	free(f->hash);
	f->hash = h;
	f->nbuckets = nb;
}

/* Take page @p out of its file and free it. */
static void page_free(struct cl_pc *pc, struct pc_page *p)
{
	struct cl_pcf *f = p->f;
	struct pc_page **pp;

	for (pp = &f->hash[slot(f, p->blk)]; *pp != p; pp = &(*pp)->hnext)
		;
	*pp = p->hnext;
	if (p->dirty) {
		pc->dirty_bytes -= pc->bs;
		f->ndirty--;
		dirty_files_set(pc, f);
		pthread_cond_broadcast(&pc->room_cv);
	} else {
		lru_unlink(pc, p);
	}
	f->npages--;
	f->gen++;
	free(p);
}

/* Clean pages beyond the bound go, least recently used first. */
static void evict(struct cl_pc *pc)
{
	while (pc->clean_bytes > pc->clean_max && pc->lru.lprev != &pc->lru)
		page_free(pc, pc->lru.lprev);
}

static struct pc_page *page_new(struct cl_pc *pc, struct cl_pcf *f, uint64_t blk)
{
	struct pc_page *p = malloc(sizeof(*p) + pc->bs);

	if (!p)
		return NULL;
	memset(p, 0, sizeof(*p));
	p->blk = blk;
	p->f = f;
	if (f->npages >= f->nbuckets)
		grow(f);
	p->hnext = f->hash[slot(f, blk)];
	f->hash[slot(f, blk)] = p;
	f->npages++;
	return p;
}

/* ---- the cache ---- */

struct cl_pc *cl_pc_create(uint32_t bs, uint64_t dirty_max, uint64_t clean_max)
{
	struct cl_pc *pc = calloc(1, sizeof(*pc));
	pthread_condattr_t ca;

	if (!pc)
		return NULL;
	pthread_mutex_init(&pc->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pc->room_cv, &ca);
	pthread_cond_init(&pc->flush_cv, &ca);
	pthread_condattr_destroy(&ca);
	pc->bs = bs;
	pc->dirty_max = dirty_max;
	pc->clean_max = clean_max;
	pc->lru.lnext = pc->lru.lprev = &pc->lru;
	return pc;
}

void cl_pc_destroy(struct cl_pc *pc)
{
	if (!pc)
		return;
	pthread_mutex_destroy(&pc->mu);
	pthread_cond_destroy(&pc->room_cv);
	pthread_cond_destroy(&pc->flush_cv);
	free(pc);
}

bool cl_pc_writes_back(const struct cl_pc *pc)
{
	return pc && pc->dirty_max > 0;
}

bool cl_pc_holds(const struct cl_pc *pc, uint64_t bytes)
{
	return pc && pc->clean_max > 0 && bytes <= pc->clean_max;
}

void cl_pc_counts(struct cl_pc *pc, struct cl_pc_counts *out)
{
	pthread_mutex_lock(&pc->mu);
	*out = pc->n;
	out->dirty_bytes = pc->dirty_bytes;
	out->clean_bytes = pc->clean_bytes;
	pthread_mutex_unlock(&pc->mu);
}

struct cl_pcf *cl_pcf_create(struct cl_pc *pc, uint64_t ino)
{
	struct cl_pcf *f = calloc(1, sizeof(*f));

	(void)pc;
	if (!f)
		return NULL;
	f->ino = ino;
	f->nbuckets = 16;
	f->hash = calloc(f->nbuckets, sizeof(*f->hash));
	if (!f->hash) {
		free(f);
		return NULL;
	}
	return f;
}

void cl_pcf_destroy(struct cl_pc *pc, struct cl_pcf *f)
{
	if (!f)
		return;
	cl_pc_drop(pc, f, 0, UINT64_MAX);
	free(f->hash);
	free(f);
}

/* ---- reading ---- */

bool cl_pc_get(struct cl_pc *pc, struct cl_pcf *f, uint64_t blk, size_t boff, size_t len,
	       char *dst)
{
	struct pc_page *p;

	pthread_mutex_lock(&pc->mu);
	p = find(f, blk);
	if (p) {
		memcpy(dst, p->data + boff, len);
		if (!p->dirty) {
			lru_unlink(pc, p);
			lru_push(pc, p);
		}
		pc->n.hits++;
	} else {
		pc->n.misses++;
	}
	pthread_mutex_unlock(&pc->mu);
	return p != NULL;
}

size_t cl_pc_absent(struct cl_pc *pc, struct cl_pcf *f, uint64_t blk, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&pc->mu);
	while (n < max && !find(f, blk + n))
		n++;
	pthread_mutex_unlock(&pc->mu);
	return n;
}

uint64_t cl_pc_gen(struct cl_pc *pc, struct cl_pcf *f)
{
	uint64_t g;

	pthread_mutex_lock(&pc->mu);
	g = f->gen;
	pthread_mutex_unlock(&pc->mu);
	return g;
}

void cl_pc_fill(struct cl_pc *pc, struct cl_pcf *f, uint64_t blk, size_t n, const char *src,
		uint64_t gen)
{
	pthread_mutex_lock(&pc->mu);
	for (size_t i = 0; pc->clean_max && f->gen == gen && i < n; i++) {
		struct pc_page *p;

		if (find(f, blk + i))
			continue;
		p = page_new(pc, f, blk + i);
		if (!p)
			break;
		memcpy(p->data, src + i * pc->bs, pc->bs);
		lru_push(pc, p);
	}
	if (f->gen == gen)
		evict(pc);   /* the file's own pages may go: its generation moves */
	pthread_mutex_unlock(&pc->mu);
}

/* ---- writing ---- */

int cl_pc_reserve(struct cl_pc *pc, size_t bytes)
{
	int rc = 0;
	bool waited = false;

	pthread_mutex_lock(&pc->mu);
	while (pc->dirty_bytes && pc->dirty_bytes + bytes > pc->dirty_max) {
		struct timespec until = ts_of(cx_intr_now_ns() + PC_RESERVE_SLICE_MS * 1000000LL);

		if (!waited) {
			pc->n.waits++;
			waited = true;
		}
		pc->waiters++;
		pthread_cond_signal(&pc->flush_cv);
		rc = cx_intr_wait(&pc->room_cv, &pc->mu, &until);
		pc->waiters--;
		if (rc && rc != ETIMEDOUT)
			break;
		rc = 0;
	}
	if (pc->dirty_bytes + bytes > pc->dirty_max / 4)
		pthread_cond_signal(&pc->flush_cv);
	pthread_mutex_unlock(&pc->mu);
	return rc;
}

int cl_pc_put(struct cl_pc *pc, struct cl_pcf *f, uint64_t blk, size_t boff, const char *src,
	      size_t len, uint64_t pblk, bool unwritten, const char *base)
{
	struct pc_page *p;
	int rc = 0;

	pthread_mutex_lock(&pc->mu);
	p = find(f, blk);
	if (!p) {
		if (len < pc->bs && !base) {
			rc = -ENOENT;
			goto out;
		}
		p = page_new(pc, f, blk);
		if (!p) {
			rc = -ENOMEM;
			goto out;
		}
		if (len < pc->bs)
			memcpy(p->data, base, pc->bs);
	}
	memcpy(p->data + boff, src, len);
	p->pblk = pblk;
	p->unwritten = unwritten;
	p->wseq = ++pc->seq;
	set_dirty(pc, p, true);
out:
	pthread_mutex_unlock(&pc->mu);
	return rc;
}

static void drop(struct cl_pc *pc, struct cl_pcf *f, uint64_t from, uint64_t to, bool dirty_too)
{
	pthread_mutex_lock(&pc->mu);
	for (size_t i = 0; i < f->nbuckets && f->npages; i++) {
		struct pc_page *p = f->hash[i], *next;

		for (; p; p = next) {
			next = p->hnext;
			if (p->blk >= from && p->blk < to && (dirty_too || !p->dirty))
				page_free(pc, p);
		}
	}
	f->gen++;
	pthread_mutex_unlock(&pc->mu);
}

void cl_pc_drop(struct cl_pc *pc, struct cl_pcf *f, uint64_t from, uint64_t to)
{
	drop(pc, f, from, to, true);
}

void cl_pc_drop_clean(struct cl_pc *pc, struct cl_pcf *f, uint64_t from, uint64_t to)
{
	drop(pc, f, from, to, false);
}

/* ---- writing back ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

size_t cl_pc_dirty_list(struct cl_pc *pc, struct cl_pcf *f, uint64_t **out)
{
	uint64_t *v;
	size_t n = 0;

	*out = NULL;
	pthread_mutex_lock(&pc->mu);
	v = malloc((f->ndirty ? f->ndirty : 1) * sizeof(*v));
	for (size_t i = 0; v && i < f->nbuckets; i++)
		for (struct pc_page *p = f->hash[i]; p; p = p->hnext)
			if (p->dirty)
				v[n++] = p->blk;
	pthread_mutex_unlock(&pc->mu);
	if (!v)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	*out = v;
	return n;
}

size_t cl_pc_run(struct cl_pc *pc, struct cl_pcf *f, const uint64_t *blks, size_t n, size_t max,
		 char *buf, size_t *used, uint64_t *blk0, uint64_t *pblk, bool *unwritten,
		 uint64_t *ticket)
{
	size_t i = 0, got = 0;
	struct pc_page *p;

	pthread_mutex_lock(&pc->mu);
	/* The first block still dirty starts the run. */
	for (; i < n; i++) {
		p = find(f, blks[i]);
		if (p && p->dirty)
			break;
	}
	if (i < n) {
		*blk0 = p->blk;
		*pblk = p->pblk;
		*unwritten = p->unwritten;
		for (; i < n && got < max; i++, got++) {
			p = find(f, blks[i]);
			if (!p || !p->dirty || p->blk != *blk0 + got || p->pblk != *pblk + got ||
			    p->unwritten != *unwritten)
				break;
			memcpy(buf + got * pc->bs, p->data, pc->bs);
		}
	}
	*ticket = pc->seq;
	pthread_mutex_unlock(&pc->mu);
	*used = i;
	return got;
}

void cl_pc_written(struct cl_pc *pc, struct cl_pcf *f, uint64_t blk0, size_t n, uint64_t ticket,
		   int rc)
{
	pthread_mutex_lock(&pc->mu);
	for (size_t i = 0; i < n; i++) {
		struct pc_page *p = find(f, blk0 + i);

		if (!p)
			continue;
		if (rc == 0)
			p->unwritten = false;   /* the volume holds the block now */
		if (!p->dirty || p->wseq > ticket)
			continue;
		if (rc)
			page_free(pc, p);
		else
			set_dirty(pc, p, false);
	}
	if (rc) {
		pc->n.errors++;
	} else {
		pc->n.flushes++;
		pc->n.flushed_bytes += (uint64_t)n * pc->bs;
	}
	evict(pc);
	pthread_mutex_unlock(&pc->mu);
}

/* ---- the flusher ---- */

size_t cl_pc_dirty_files(struct cl_pc *pc, uint64_t *inos, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&pc->mu);
	for (struct cl_pcf *f = pc->dirty_files; f && n < max; f = f->dnext)
		inos[n++] = f->ino;
	pthread_mutex_unlock(&pc->mu);
	return n;
}

bool cl_pc_flusher_wait(struct cl_pc *pc, unsigned ms)
{
	int64_t deadline = cx_intr_now_ns() + (int64_t)ms * 1000000;
	bool go;

	pthread_mutex_lock(&pc->mu);
	while (!pc->stop && !pc->waiters && pc->dirty_bytes <= pc->dirty_max / 4) {
		struct timespec until;

		if (cx_intr_now_ns() >= deadline) {
			if (pc->dirty_bytes)
				break;
			deadline = cx_intr_now_ns() + (int64_t)ms * 1000000;
		}
		until = ts_of(deadline);
		(void)pthread_cond_clockwait(&pc->flush_cv, &pc->mu, CLOCK_MONOTONIC, &until);
	}
	go = !pc->stop;
	pthread_mutex_unlock(&pc->mu);
	return go;
}

void cl_pc_stop(struct cl_pc *pc)
{
	pthread_mutex_lock(&pc->mu);
	pc->stop = true;
	pthread_cond_broadcast(&pc->flush_cv);
	pthread_mutex_unlock(&pc->mu);
}
