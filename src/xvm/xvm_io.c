/*
 * xvm_io.c - the I/O path of a labelled volume: mapping a volume range along
 * the tree to LUN pieces (concat, stripe, mirror), issuing the pieces in
 * parallel on the volume's worker threads, and absorbing LUN failures into
 * mirrors (the failed leg is marked out, a read is mapped again).
 *
 * Mirror policy.  A write maps to every active leg, and to a reviving leg
 * for the part below the mirror's revive point (the revive copies the rest).
 * A read maps to one active leg per XVM__READ_REGION of the mirror's
 * address space, chosen by region number, so random reads spread evenly over
 * the legs and a large read is served by all of them at once.  A reviving
 * leg is never read.
 *
 * The revive's overlap check: a write through mirror M over a range M is
 * copying (vol->busy_lo/hi[M]) waits until that chunk is done and is mapped
 * again; the revive waits until no write in flight (vol->active) covers the
 * chunk before it copies.  (The cluster's overlap queue, asking the mirror
 * master, goes in the same place: xvm__map's mirror case.)
 *
 * Gathering.  A stripe maps a large request to one piece per stripe unit,
 * but the units a request takes from one LUN lie back to back on it: such
 * pieces become one command per LUN (xvm__coalesce), read into or written
 * from a bounce buffer and scattered to or gathered from the request's
 * parts.  One command of 512 KiB costs the target far less than eight of
 * 64 KiB (bench/xvm.sh: a 2-LUN stripe read 1 MiB requests at 0.77x of one
 * LUN before).
 *
 * Threads.  A request that maps to one piece runs inline.  Otherwise the
 * caller queues its pieces as a batch on the volume's pool and works on its
 * own batch too, so it never waits for a worker that is busy elsewhere: the
 * pool only adds parallelism (bounded by its thread count).
 *
 * Locks: pool->lock alone (never with vol->lock); vol->lock while mapping and
 * while a plan joins or leaves vol->active; never across I/O.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xvm/xvm_i.h"

#define XVM__READ_REGION (256u << 10)

bool xvm__is_leg_error(int rc)
{
	return rc < 0 && rc != BLK_EFENCED && rc != -EINVAL && rc != -ENOSPC && rc != -ENOMEM &&
	       rc != -EROFS && rc != -EBADF;
}

/* Make room for one more element in *@arr (@n used of *@cap, @size bytes each). */
static int xvm__room(void **arr, size_t n, size_t *cap, size_t size)
{
	void *p;

	if (n < *cap)
		return 0;
	p = realloc(*arr, (*cap ? 2 * *cap : 8) * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = *cap ? 2 * *cap : 8;
	return 0;
}

static int xvm__add_piece(struct xvm__plan *pl, unsigned node, uint64_t off, uint64_t len,
			  size_t rpos)
{
	if (xvm__room((void **)&pl->p, pl->n, &pl->cap, sizeof(*pl->p)))
		return -ENOMEM;
	pl->p[pl->n++] = (struct xvm__piece){ node, off + XVM_RESERVED, (size_t)len, rpos, 0, 0, 0 };
	return 0;
}

static int xvm__add_wrange(struct xvm__plan *pl, unsigned mirror, uint64_t lo, uint64_t hi)
{
	if (xvm__room((void **)&pl->w, pl->nw, &pl->capw, sizeof(*pl->w)))
		return -ENOMEM;
	pl->w[pl->nw++] = (struct xvm__wrange){ mirror, lo, hi };
	return 0;
}

/*
 * A write's part for reviving leg @leg of mirror @m: what lies below the
 * revive point, and the chunks above it copied ahead for reads.
 */
static int xvm__map_reviving(const struct xvm_vol *vol, unsigned m, unsigned leg, uint64_t off,
			     uint64_t len, size_t rpos, struct xvm__plan *pl)
{
	uint64_t point = vol->label.tree.node[m].revive_point, end = off + len, at = off, to;
	int rc = 0;

	while (at < end && !rc) {
		/* The run from @at that goes (or does not go) to the leg: below the point, or ahead. */
		int in = at < point || xvm__ahead(vol, m, at);

		to = at < point ? point : at - at % XVM__REVIVE_CHUNK + XVM__REVIVE_CHUNK;
		while (to < end && !(to < point) && xvm__ahead(vol, m, to) == in)
			to += XVM__REVIVE_CHUNK;
		if (to > end)
			to = end;
		if (in)
			rc = xvm__map(vol, leg, at, to - at, rpos + (at - off), pl);
		at = to;
	}
	return rc;
}

static int xvm__map_mirror(const struct xvm_vol *vol, unsigned i, uint64_t off, uint64_t len,
			   size_t rpos, struct xvm__plan *pl)
{
	const struct xvm__node *nd = &vol->label.tree.node[i];
	unsigned act[XVM_MAX_LEGS], nact = 0, c;
	int rc;

	for (c = 0; c < nd->nchild; c++)
		if (vol->label.tree.node[nd->child[c]].leg_state == XVM_LEG_ACTIVE)
			act[nact++] = nd->child[c];
	if (pl->op == XVM__READ) {
		if (nact == 0)
			return -EIO;
		/* A reviving leg and a chunk above the revive point not copied: hint it. */
		for (c = 0; c < nd->nchild && !pl->hint; c++) {
			uint64_t at = off > nd->revive_point ? off : nd->revive_point;

			at -= at % XVM__REVIVE_CHUNK;
			if (vol->label.tree.node[nd->child[c]].leg_state == XVM_LEG_REVIVING &&
			    off + len > nd->revive_point && !xvm__ahead(vol, i, at)) {
				pl->hint = i + 1;
				pl->hint_off = at;
			}
		}
		while (len) {
			uint64_t region = off / XVM__READ_REGION;
			uint64_t n = (region + 1) * XVM__READ_REGION - off;

			if (n > len)
				n = len;
			rc = xvm__map(vol, act[region % nact], off, n, rpos, pl);
			if (rc)
				return rc;
			off += n;
			rpos += n;
			len -= n;
		}
		return 0;
	}
	if (vol->busy_lo[i] < vol->busy_hi[i] && off < vol->busy_hi[i] && vol->busy_lo[i] < off + len)
		return -EAGAIN;
	rc = xvm__add_wrange(pl, i, off, off + len);
	for (c = 0; c < nd->nchild && !rc; c++) {
		const struct xvm__node *leg = &vol->label.tree.node[nd->child[c]];

		if (leg->leg_state == XVM_LEG_ACTIVE)
			rc = xvm__map(vol, nd->child[c], off, len, rpos, pl);
		else if (leg->leg_state == XVM_LEG_REVIVING)
			rc = xvm__map_reviving(vol, i, nd->child[c], off, len, rpos, pl);
	}
	return rc;
}

int xvm__map(const struct xvm_vol *vol, unsigned i, uint64_t off, uint64_t len, size_t rpos,
	     struct xvm__plan *pl)
{
	const struct xvm__node *nd = &vol->label.tree.node[i];
	uint64_t start = 0;
	unsigned c;
	int rc = 0;

	switch (nd->kind) {
	case XVM__LEAF:
		return xvm__add_piece(pl, i, off, len, rpos);
	case XVM__CONCAT:
		for (c = 0; c < nd->nchild && len && !rc; c++) {
			uint64_t sz = vol->label.tree.node[nd->child[c]].size, n;

			if (off < start + sz) {
				n = start + sz - off < len ? start + sz - off : len;
				rc = xvm__map(vol, nd->child[c], off - start, n, rpos, pl);
				off += n;
				rpos += n;
				len -= n;
			}
			start += sz;
		}
		return rc;
	case XVM__STRIPE:
		while (len && !rc) {
			uint64_t su = nd->stripe_unit, unit = off / su, in = off % su;
			uint64_t n = su - in < len ? su - in : len;

			rc = xvm__map(vol, nd->child[unit % nd->nchild], unit / nd->nchild * su + in, n,
				      rpos, pl);
			off += n;
			rpos += n;
			len -= n;
		}
		return rc;
	default:
		return xvm__map_mirror(vol, i, off, len, rpos, pl);
	}
}

void xvm__plan_free(struct xvm__plan *pl)
{
	free(pl->p);
	free(pl->w);
	free(pl->s);
	pl->p = NULL;
	pl->w = NULL;
	pl->s = NULL;
	pl->n = pl->cap = pl->nw = pl->capw = pl->ns = pl->caps = 0;
}

/* Append the part [@rpos, +@len) of the request to a group's parts, pl->s[@seg0..). */
static int xvm__add_seg(struct xvm__plan *pl, size_t seg0, size_t rpos, size_t len)
{
	if (pl->ns > seg0 && pl->s[pl->ns - 1].rpos + pl->s[pl->ns - 1].len == rpos) {
		pl->s[pl->ns - 1].len += len;     /* it continues the last part */
		return 0;
	}
	if (xvm__room((void **)&pl->s, pl->ns, &pl->caps, sizeof(*pl->s)))
		return -ENOMEM;
	pl->s[pl->ns++] = (struct xvm__seg){ rpos, len };
	return 0;
}

#define XVM__GATHER_MAX (4u << 20)    /* the largest gathered command */

/*
 * Join the pieces of a read or write that follow each other on one LUN into
 * one piece each, their parts listed in pl->s.  Pieces come in the order of
 * the request's bytes, so a LUN's pieces come in the order of its offsets;
 * one that does not follow its LUN's last group starts a new group.
 */
static int xvm__coalesce(struct xvm__plan *pl)
{
	int last[XVM_MAX_NODES];          /* node -> its latest group, -1: none */
	size_t *grp, ng = 0, k, g;
	struct xvm__piece *out;
	int rc = 0;

	if ((pl->op != XVM__READ && pl->op != XVM__WRITE) || pl->n < 2)
		return 0;
	grp = malloc(pl->n * sizeof(*grp));
	out = malloc(pl->n * sizeof(*out));
	if (!grp || !out) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (k = 0; k < XVM_MAX_NODES; k++)
		last[k] = -1;
	/* Pass 1: a group per run of pieces that follow each other on a LUN (out[] holds its span). */
	for (k = 0; k < pl->n; k++) {
		const struct xvm__piece *pc = &pl->p[k];
		int j = last[pc->node];

		if (j >= 0 && out[j].off + out[j].len == pc->off &&
		    out[j].len + pc->len <= XVM__GATHER_MAX) {
			out[j].len += pc->len;
			grp[k] = (size_t)j;
			continue;
		}
		out[ng] = *pc;
		grp[k] = ng;
		last[pc->node] = (int)ng++;
	}
	if (ng == pl->n)
		goto out_free;
	/* Pass 2: each group's parts, in order, one after the other in pl->s. */
	pl->ns = 0;
	for (g = 0; g < ng; g++) {
		out[g].seg0 = pl->ns;
		for (k = 0; k < pl->n && !rc; k++)
			if (grp[k] == g)
				rc = xvm__add_seg(pl, out[g].seg0, pl->p[k].rpos, pl->p[k].len);
		if (rc)
			goto out_free;
		out[g].nseg = pl->ns - out[g].seg0;
		if (out[g].nseg == 1) {           /* one part: a plain piece */
			out[g].rpos = pl->s[out[g].seg0].rpos;
			out[g].nseg = 0;
		}
	}
	memcpy(pl->p, out, ng * sizeof(*out));
	pl->n = ng;
out_free:
	free(grp);
	free(out);
	return rc;
}

/* Issue a gathered piece through a bounce buffer. */
static void xvm__do_gathered(struct blk_dev *dev, const struct xvm__plan *pl,
			     struct xvm__piece *pc)
{
	char *bounce = malloc(pc->len);
	const struct xvm__seg *sg = &pl->s[pc->seg0];
	size_t k, at;

	if (!bounce) {
		pc->rc = -ENOMEM;
		return;
	}
	if (pl->op == XVM__WRITE) {
		for (k = 0, at = 0; k < pc->nseg; at += sg[k].len, k++)
			memcpy(bounce + at, pl->buf + sg[k].rpos, sg[k].len);
		pc->rc = blk_write(dev, bounce, pc->len, pc->off);
	} else {
		pc->rc = blk_read(dev, bounce, pc->len, pc->off);
		for (k = 0, at = 0; k < pc->nseg && !pc->rc; at += sg[k].len, k++)
			memcpy(pl->buf + sg[k].rpos, bounce + at, sg[k].len);
	}
	free(bounce);
}

/* Issue one piece. */
static void xvm__do_piece(struct xvm_vol *vol, const struct xvm__plan *pl, struct xvm__piece *pc)
{
	struct blk_dev *dev = vol->dev[vol->label.tree.node[pc->node].leaf];
	size_t lo, hi;

	if (!dev) {
		pc->rc = -ENXIO;
		return;
	}
	if (pc->nseg) {
		xvm__do_gathered(dev, pl, pc);
		return;
	}
	switch (pl->op) {
	case XVM__READ:
		pc->rc = blk_read(dev, pl->buf + pc->rpos, pc->len, pc->off);
		break;
	case XVM__WRITE:
		pc->rc = blk_write(dev, pl->buf + pc->rpos, pc->len, pc->off);
		break;
	case XVM__PADDED:
		lo = pc->rpos > pl->at ? pc->rpos : pl->at;
		hi = pc->rpos + pc->len < pl->at + pl->dlen ? pc->rpos + pc->len : pl->at + pl->dlen;
		if (lo >= hi)
			lo = hi = pc->rpos;
		pc->rc = blk_write_padded(dev, pc->off, pc->len, pl->data + (lo - pl->at),
					  lo - pc->rpos, hi - lo);
		break;
	case XVM__FLUSH:
		pc->rc = blk_flush(dev);
		break;
	}
}

/* A plan's pieces queued on the pool. */
struct xvm__batch {
	struct xvm__plan *pl;             /* the request */
	size_t next;                      /* first piece nobody took; pool->lock */
	size_t done;                      /* pieces finished; pool->lock */
	pthread_cond_t cond;              /* signalled when done reaches pl->n */
	struct xvm__batch *qnext;         /* in pool->queue while next < pl->n; pool->lock */
};

struct xvm__pool {
	struct xvm_vol *vol;              /* owner */
	pthread_mutex_t lock;             /* protects the fields below */
	pthread_cond_t work;              /* signalled when a batch is queued or on stop */
	struct xvm__batch *queue;         /* batches with pieces left, oldest first */
	struct xvm__batch **tail;         /* where to append */
	int stop;                         /* workers exit */
	unsigned nthreads;                /* started */
	pthread_t tid[];                  /* workers */
};

/* Take one piece from the head batch (pool->lock held); NULL if none. */
static struct xvm__piece *xvm__take(struct xvm__pool *pool, struct xvm__batch *only,
				    struct xvm__batch **from)
{
	struct xvm__batch *b = only ? only : pool->queue;
	struct xvm__piece *pc;

	if (!b || b->next >= b->pl->n)
		return NULL;
	pc = &b->pl->p[b->next++];
	if (b->next == b->pl->n) {
		struct xvm__batch **pp;

		for (pp = &pool->queue; *pp != b; pp = &(*pp)->qnext)
			;
		*pp = b->qnext;
		if (pool->tail == &b->qnext)
			pool->tail = pp;
	}
	*from = b;
	return pc;
}

static void xvm__finish(struct xvm__batch *b)
{
	if (++b->done == b->pl->n)
		pthread_cond_signal(&b->cond);
}

static void *xvm__worker(void *arg)
{
	struct xvm__pool *pool = arg;
	struct xvm__batch *b;
	struct xvm__piece *pc;

	pthread_mutex_lock(&pool->lock);
	while (!pool->stop) {
		pc = xvm__take(pool, NULL, &b);
		if (!pc) {
			pthread_cond_wait(&pool->work, &pool->lock);
			continue;
		}
		pthread_mutex_unlock(&pool->lock);
		xvm__do_piece(pool->vol, b->pl, pc);
		pthread_mutex_lock(&pool->lock);
		xvm__finish(b);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

int xvm__pool_start(struct xvm_vol *vol, unsigned nthreads, struct xvm__pool **out)
{
	struct xvm__pool *pool = calloc(1, sizeof(*pool) + nthreads * sizeof(pthread_t));
	unsigned i;

	if (!pool)
		return -ENOMEM;
	pool->vol = vol;
	pool->tail = &pool->queue;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->work, NULL);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&pool->tid[i], NULL, xvm__worker, pool) != 0)
			break;
		pool->nthreads++;
	}
	if (pool->nthreads == 0) {
		xvm__pool_stop(pool);
		return -EAGAIN;
	}
	*out = pool;
	return 0;
}

void xvm__pool_stop(struct xvm__pool *pool)
{
	unsigned i;

	if (!pool)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stop = 1;
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->lock);
	for (i = 0; i < pool->nthreads; i++)
		pthread_join(pool->tid[i], NULL);
	pthread_cond_destroy(&pool->work);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

/* Issue every piece of @pl, in parallel when there are several. */
static void xvm__issue(struct xvm_vol *vol, struct xvm__plan *pl)
{
	struct xvm__pool *pool = vol->pool;
	struct xvm__batch b = { .pl = pl }, *from;
	struct xvm__piece *pc;

	if (pl->n == 1 || !pool) {
		for (size_t k = 0; k < pl->n; k++)
			xvm__do_piece(vol, pl, &pl->p[k]);
		return;
	}
	pthread_cond_init(&b.cond, NULL);
	pthread_mutex_lock(&pool->lock);
	*pool->tail = &b;
	pool->tail = &b.qnext;
	if (pl->n > 2)
		pthread_cond_broadcast(&pool->work);
	else
		pthread_cond_signal(&pool->work);
	while ((pc = xvm__take(pool, &b, &from))) {
		pthread_mutex_unlock(&pool->lock);
		xvm__do_piece(vol, pl, pc);
		pthread_mutex_lock(&pool->lock);
		xvm__finish(&b);
	}
	while (b.done < pl->n)
		pthread_cond_wait(&b.cond, &pool->lock);
	pthread_mutex_unlock(&pool->lock);
	pthread_cond_destroy(&b.cond);
}

int xvm__absorbing_leg(const struct xvm_vol *vol, unsigned leaf)
{
	const struct xvm__tree *t = &vol->label.tree;
	unsigned n, c, others;

	for (n = leaf; n != 0; n = t->node[n].parent) {
		const struct xvm__node *p = &t->node[t->node[n].parent];

		if (p->kind != XVM__MIRROR)
			continue;
		if (t->node[n].leg_state == XVM_LEG_OUT || t->node[n].leg_state == XVM_LEG_DETACHED)
			return 0;
		if (t->node[n].leg_state == XVM_LEG_REVIVING)
			return (int)n;
		for (c = 0, others = 0; c < p->nchild; c++)
			if (p->child[c] != n && t->node[p->child[c]].leg_state == XVM_LEG_ACTIVE)
				others++;
		if (others)
			return (int)n;
	}
	return -1;
}

/* Unlink @pl from vol->active (vol->lock held) and wake a waiting revive. */
static void xvm__deactivate(struct xvm_vol *vol, struct xvm__plan *pl)
{
	if (pl->prev)
		pl->prev->next = pl->next;
	else
		vol->active = pl->next;
	if (pl->next)
		pl->next->prev = pl->prev;
	pl->prev = pl->next = NULL;
	pthread_cond_broadcast(&vol->cond);
}

/*
 * Absorb the failed pieces of @pl into mirrors.  0 if none failed, 1 if
 * every failure was absorbed (legs marked out), else the error to return.
 */
static int xvm__absorb(struct xvm_vol *vol, struct xvm__plan *pl)
{
	int failed = 0, leg, rc;
	bool gone;

	for (size_t k = 0; k < pl->n; k++) {
		struct xvm__piece *pc = &pl->p[k];

		if (!pc->rc)
			continue;
		/*
		 * A leg detached while this I/O was on its way: its LUNs refuse
		 * this node's writes (its key is gone from them), and nothing
		 * needs them any more.  Only that fence is absorbed.
		 */
		pthread_mutex_lock(&vol->lock);
		gone = pc->rc == BLK_EFENCED && xvm__under_detached(&vol->label.tree, pc->node);
		leg = xvm__absorbing_leg(vol, pc->node);
		pthread_mutex_unlock(&vol->lock);
		if (gone) {
			failed = 1;
			continue;
		}
		if (!xvm__is_leg_error(pc->rc))
			return pc->rc;
		if (leg < 0)
			return pc->rc;
		if (leg > 0) {
			rc = xvm__leg_failed(vol, (unsigned)leg);
			if (rc)
				return rc;
		}
		failed = 1;
	}
	return failed;
}

int xvm__run(struct xvm_vol *vol, unsigned i, uint64_t off, uint64_t len, struct xvm__plan *pl)
{
	int rc, tries;

	for (tries = 0; tries <= XVM_MAX_LEAVES; tries++) {
		pthread_mutex_lock(&vol->lock);
		for (;;) {
			pl->n = pl->nw = 0;
			pl->hint = 0;
			rc = xvm__map(vol, i, off, len, 0, pl);
			if (!rc)
				rc = xvm__coalesce(pl);
			if (rc != -EAGAIN)
				break;
			pthread_cond_wait(&vol->cond, &vol->lock);
		}
		if (!rc && pl->nw) {
			pl->prev = NULL;
			pl->next = vol->active;
			if (vol->active)
				vol->active->prev = pl;
			vol->active = pl;
		}
		pthread_mutex_unlock(&vol->lock);
		if (pl->hint)
			xvm__hint(vol, pl->hint - 1, pl->hint_off);
		/* The regions are in this node's dirty-region log before any leg is written. */
		if (!rc)
			rc = xvm__drl_mark(vol, pl);
		if (rc) {
			if (pl->nw) {
				pthread_mutex_lock(&vol->lock);
				xvm__deactivate(vol, pl);
				pthread_mutex_unlock(&vol->lock);
			}
			return rc;
		}
		xvm__issue(vol, pl);
		if (pl->nw) {
			xvm__drl_unmark(vol, pl);
			pthread_mutex_lock(&vol->lock);
			xvm__deactivate(vol, pl);
			pthread_mutex_unlock(&vol->lock);
		}
		rc = xvm__absorb(vol, pl);
		/* A write reached every leg still active; a read must be mapped again. */
		if (rc <= 0 || pl->op != XVM__READ)
			return rc < 0 ? rc : 0;
	}
	return -EIO;
}

/*
 * A piece at byte @lunoff of each LUN in use (not under an inactive leg) for
 * @pl.  xvm__add_piece() takes offsets past the reserved area and adds it:
 * @lunoff - XVM_RESERVED (modulo 2^64) gives @lunoff back, inside it too.
 */
static int xvm__leaves(struct xvm_vol *vol, struct xvm__plan *pl, uint64_t lunoff, size_t len)
{
	unsigned i;
	int rc = 0;

	pthread_mutex_lock(&vol->lock);
	for (i = 0; i < vol->label.tree.n && !rc; i++)
		if (vol->label.tree.node[i].kind == XVM__LEAF &&
		    !xvm__tree_under_inactive(&vol->label.tree, i))
			rc = xvm__add_piece(pl, i, lunoff - XVM_RESERVED, len, 0);
	pthread_mutex_unlock(&vol->lock);
	return rc;
}

int xvm__flush(struct xvm_vol *vol)
{
	struct xvm__plan pl = { .op = XVM__FLUSH };
	uint64_t me = atomic_fetch_add(&vol->flush_started, 1) + 1, done;
	int rc;

	rc = xvm__leaves(vol, &pl, XVM_RESERVED, 0);
	if (!rc) {
		xvm__issue(vol, &pl);
		rc = xvm__absorb(vol, &pl);
	}
	xvm__plan_free(&pl);
	/* Every write completed before it began is durable now (the dirty-region log clears by it). */
	done = atomic_load(&vol->flush_done);
	while (rc >= 0 && done < me && !atomic_compare_exchange_weak(&vol->flush_done, &done, me))
		;
	return rc < 0 ? rc : 0;
}

int xvm__write_leaves(struct xvm_vol *vol, const void *buf, size_t len, uint64_t lunoff)
{
	struct xvm__plan pl = { .op = XVM__WRITE, .buf = (char *)buf };
	int rc;

	rc = xvm__leaves(vol, &pl, lunoff, len);
	if (!rc) {
		xvm__issue(vol, &pl);
		rc = pl.n ? pl.p[0].rc : -EIO;
		for (size_t k = 0; k < pl.n && rc; k++)
			rc = pl.p[k].rc;
	}
	xvm__plan_free(&pl);
	return rc;
}
