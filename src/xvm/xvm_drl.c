/*
 * xvm_drl.c - the dirty-region log: which regions of the volume's mirrors a
 * node may have written to one leg and not yet to another, so that after
 * the node dies only those regions are copied between the legs (a resync)
 * instead of a whole revive.
 *
 * Every LUN in use carries one slot per node (XVM__DRL_SLOTS of
 * XVM__DRL_SLOT bytes from XVM_DRL_OFF, format in xvm_label.c): a bitmap
 * with a bit per region (1 << shift bytes, at least 1 MiB, the smallest
 * power of two that gives every mirror of the tree its bits).  The rules:
 *
 *   - Before a write through a mirror is issued its regions' bits are set
 *     in this node's slot on the LUNs (xvm__drl_mark; concurrent writers
 *     share one slot write).  A region already set costs nothing.
 *   - A bit is cleared lazily: the cleaner, every second, takes the regions
 *     with no write in flight and none since its last pass as a batch, and
 *     writes the slot without them once a flush that started after that has
 *     completed (the data is on every leg for good): one of the store's
 *     commits or an fsync usually, its own after 5 s without.
 *   - A node writes its own slot only.  At start it reads what its slot
 *     holds from its last run (inherited bits); they stay in every image it
 *     writes until they were resynced (xvm_drl_resynced), so a node that
 *     dies again before that leaves them still set.
 *   - A resync (xvm_drl_resync, run by the mirror master or the single
 *     node) reads a slot from every LUN in use (a damaged slot, or one of
 *     another layout, counts as every region) and copies each dirty region
 *     of each mirror, outer mirrors first, holding it busy on every node
 *     (xvm__busy_begin) as a revive's chunk: it reads the region as reads
 *     map it and writes it to every active leg (and to a reviving leg below
 *     the revive point).  Copying from the leg reads use means what any
 *     node reads there never changes by the resync: before it a region's
 *     read leg is fixed by its number, after it every leg agrees with it.
 *
 * Locks: drl->mu protects the bitmaps, the counters and the slot write's
 * state; it is never held across I/O nor with the volume's locks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cx_intr.h"
#include "xvm/xvm_i.h"

#define XVM__DRL_MIN_SHIFT 20u            /* regions of 1 MiB at least */
#define XVM__DRL_CLEAN_MS 1000            /* the cleaner's pass */
#define XVM__DRL_FLUSH_WAIT 5             /* s an idle batch waits for another's flush */
#define XVM__DRL_AHEAD 3                  /* regions logged ahead of a write that needs a slot write */
#define XVM__DRL_COPY (1u << 20)          /* a resync copies 1 MiB at a time */

struct xvm__drl {
	struct xvm_vol *vol;              /* owner */
	unsigned slot;                    /* this node's; constant */
	unsigned shift, nbits;            /* geometry; constant */
	uint64_t geo;                     /* its hash; constant */
	unsigned base[XVM_MAX_NODES];     /* first bit of each mirror; constant */
	unsigned nreg[XVM_MAX_NODES];     /* its regions; constant */

	pthread_mutex_t mu;               /* protects what follows */
	pthread_cond_t cv;                /* a slot write ended; the cleaner's stop */
	uint8_t *live;                    /* set for this run's writes */
	uint8_t *inherited;               /* left by the last run, until resynced */
	uint8_t *recent;                  /* marked since the cleaner's last pass */
	uint8_t *clear;                   /* the cleaner's batch: idle, waiting for a flush */
	unsigned npending;                /* regions in it */
	uint64_t pending_epoch;           /* a flush numbered from this one makes them durable */
	int64_t pending_since;            /* when the batch was taken (cx_intr_now_ns) */
	uint8_t *both;                    /* live | inherited, for the image */
	uint32_t *inflight;               /* writes in flight, by bit */
	uint64_t seq_want, seq_done;      /* slot images asked for, written */
	int writing;                      /* a slot write is in flight */
	int stop;                         /* the cleaner ends */
	unsigned char *img;               /* the image being written */
	pthread_t cleaner;
};

static int bit_get(const uint8_t *b, unsigned i)
{
	return b[i / 8] >> (i % 8) & 1;
}

static void bit_set(uint8_t *b, unsigned i)
{
	b[i / 8] |= (uint8_t)(1u << (i % 8));
}

static void bit_clr(uint8_t *b, unsigned i)
{
	b[i / 8] &= (uint8_t)~(1u << (i % 8));
}

int xvm__drl_geometry(const struct xvm__tree *t, unsigned *shift, unsigned base[XVM_MAX_NODES],
		      unsigned *nbits, uint64_t *geo)
{
	uint64_t h = 1469598103934665603ull;
	unsigned s, i, n;
	int any = 0;

	for (s = XVM__DRL_MIN_SHIFT;; s++) {
		n = 0;
		for (i = 0; i < t->n; i++) {
			if (t->node[i].kind != XVM__MIRROR)
				continue;
			any = 1;
			base[i] = n;
			n += (unsigned)((t->node[i].size + (1ull << s) - 1) >> s);
		}
		if (n <= XVM__DRL_BITS || s >= 62)
			break;
	}
	*shift = s;
	*nbits = n;
	/* FNV-1a over the shift and each mirror's index and size. */
	h = (h ^ s) * 1099511628211ull;
	for (i = 0; i < t->n; i++)
		if (t->node[i].kind == XVM__MIRROR) {
			h = (h ^ i) * 1099511628211ull;
			h = (h ^ t->node[i].size) * 1099511628211ull;
		}
	*geo = h;
	return any;
}

/* The bits of mirror range @w. */
static void drl_bits(const struct xvm__drl *d, const struct xvm__wrange *w, unsigned *lo,
		     unsigned *hi)
{
	*lo = d->base[w->mirror] + (unsigned)(w->lo >> d->shift);
	*hi = w->hi > w->lo ? d->base[w->mirror] + (unsigned)((w->hi - 1) >> d->shift) + 1 : *lo;
}

/* Until image @seq (or a later one) is on the LUNs (d->mu held; dropped across the write). */
static int drl_sync(struct xvm__drl *d, uint64_t seq)
{
	struct xvm_vol *vol = d->vol;
	uint8_t uuid[16];
	uint64_t s;
	int rc = 0;

	memcpy(uuid, vol->label.uuid, sizeof(uuid));
	while (d->seq_done < seq && !rc) {
		if (d->writing) {
			pthread_cond_wait(&d->cv, &d->mu);
			continue;
		}
		d->writing = 1;
		s = d->seq_want;
		for (unsigned i = 0; i < (d->nbits + 7) / 8; i++)
			d->both[i] = d->live[i] | d->inherited[i];
		xvm__drl_encode(d->img, uuid, d->slot, d->shift, d->nbits, d->geo, s, d->both);
		pthread_mutex_unlock(&d->mu);
		rc = xvm__write_leaves(vol, d->img, XVM__DRL_SLOT,
				       XVM_DRL_OFF + (uint64_t)d->slot * XVM__DRL_SLOT);
		pthread_mutex_lock(&d->mu);
		d->writing = 0;
		if (!rc && s > d->seq_done)
			d->seq_done = s;
		pthread_cond_broadcast(&d->cv);
	}
	return rc;
}

int xvm__drl_mark(struct xvm_vol *vol, const struct xvm__plan *pl)
{
	struct xvm__drl *d = vol->drl;
	unsigned lo, hi, b, end;
	int need = 0, rc = 0;

	if (!d || !pl->nw)
		return 0;
	pthread_mutex_lock(&d->mu);
	for (size_t k = 0; k < pl->nw; k++) {
		drl_bits(d, &pl->w[k], &lo, &hi);
		for (b = lo; b < hi && b < d->nbits; b++) {
			d->inflight[b]++;
			bit_set(d->recent, b);
			bit_clr(d->clear, b);   /* written again: not idle */
			if (!bit_get(d->live, b)) {
				bit_set(d->live, b);
				need |= !bit_get(d->inherited, b);
			}
		}
	}
	/*
	 * A slot write is due anyway: the regions that follow each range go in
	 * with it, so a sequential writer pays one a XVM__DRL_AHEAD + 1 regions
	 * (they leave at the cleaner's pass after next if it does not come).
	 */
	for (size_t k = 0; need && k < pl->nw; k++) {
		drl_bits(d, &pl->w[k], &lo, &hi);
		end = d->base[pl->w[k].mirror] + d->nreg[pl->w[k].mirror];
		for (b = hi; b < hi + XVM__DRL_AHEAD && b < end; b++) {
			bit_set(d->recent, b);
			bit_clr(d->clear, b);
			bit_set(d->live, b);
		}
	}
	if (need)
		rc = drl_sync(d, ++d->seq_want);
	pthread_mutex_unlock(&d->mu);
	if (rc)
		xvm__drl_unmark(vol, pl);
	return rc;
}

void xvm__drl_unmark(struct xvm_vol *vol, const struct xvm__plan *pl)
{
	struct xvm__drl *d = vol->drl;
	unsigned lo, hi, b;

	if (!d || !pl->nw)
		return;
	pthread_mutex_lock(&d->mu);
	for (size_t k = 0; k < pl->nw; k++) {
		drl_bits(d, &pl->w[k], &lo, &hi);
		for (b = lo; b < hi && b < d->nbits; b++)
			d->inflight[b]--;
	}
	pthread_mutex_unlock(&d->mu);
}

/*
 * One pass (d->mu held).  The idle regions of the last pass (d->clear, none
 * marked since: a mark takes its region out) leave the slot once a flush
 * that started after they went idle has completed, whoever ran it (the
 * store's commits, an fsync); after XVM__DRL_FLUSH_WAIT s without one the
 * cleaner flushes itself.  Then the regions idle now are the next batch.
 */
static void drl_clean(struct xvm__drl *d)
{
	struct xvm_vol *vol = d->vol;
	unsigned b, n = 0, cleared = 0;

	if (d->npending && atomic_load(&vol->flush_done) < d->pending_epoch &&
	    cx_intr_now_ns() - d->pending_since >= XVM__DRL_FLUSH_WAIT * INT64_C(1000000000)) {
		pthread_mutex_unlock(&d->mu);
		(void)xvm__flush(vol);
		pthread_mutex_lock(&d->mu);
	}
	if (d->npending && atomic_load(&vol->flush_done) >= d->pending_epoch) {
		for (b = 0; b < d->nbits; b++)
			if (bit_get(d->clear, b)) {
				bit_clr(d->clear, b);
				bit_clr(d->live, b);
				cleared++;
			}
		d->npending = 0;
		if (cleared)
			(void)drl_sync(d, ++d->seq_want);
	}
	if (!d->npending) {
		for (b = 0; b < d->nbits; b++)
			if (bit_get(d->live, b) && !d->inflight[b] && !bit_get(d->recent, b)) {
				bit_set(d->clear, b);
				n++;
			}
		d->npending = n;
		d->pending_epoch = atomic_load(&vol->flush_started) + 1;
		d->pending_since = cx_intr_now_ns();
	}
	memset(d->recent, 0, (d->nbits + 7) / 8);
}

static void *drl_cleaner(void *arg)
{
	struct xvm__drl *d = arg;
	struct timespec until;

	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += XVM__DRL_CLEAN_MS / 1000;
		while (!d->stop && pthread_cond_timedwait(&d->cv, &d->mu, &until) != ETIMEDOUT)
			;
		if (!d->stop)
			drl_clean(d);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

static void drl_free(struct xvm__drl *d)
{
	free(d->live);
	free(d->inherited);
	free(d->recent);
	free(d->clear);
	free(d->both);
	free(d->inflight);
	free(d->img);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

/*
 * Slot @slot as the LUNs in use hold it, OR-ed into @bits (geometry of @d's
 * shape: @shift, @nbits, @geo).  A damaged slot, or one of another layout,
 * sets every bit.  -EIO if no LUN could be read.
 */
static int drl_read(struct xvm_vol *vol, unsigned slot, unsigned shift, unsigned nbits,
		    uint64_t geo, uint8_t *bits, char *err, size_t errlen)
{
	unsigned char *img = malloc(XVM__DRL_SLOT);
	unsigned i, got = 0;
	int rc = -EIO, r;

	if (!img)
		return -ENOMEM;
	for (i = 0;; i++) {
		struct blk_dev *dev = NULL;
		uint32_t leaf = 0;

		/* The tree under the lock: an online change may append to it meanwhile. */
		pthread_mutex_lock(&vol->lock);
		r = i < vol->label.tree.n;
		if (r && vol->label.tree.node[i].kind == XVM__LEAF &&
		    !xvm__tree_under_inactive(&vol->label.tree, i)) {
			leaf = vol->label.tree.node[i].leaf;
			dev = vol->dev[leaf];
		}
		pthread_mutex_unlock(&vol->lock);
		if (!r)
			break;
		if (!dev ||
		    blk_read(dev, img, XVM__DRL_SLOT, XVM_DRL_OFF + (uint64_t)slot * XVM__DRL_SLOT))
			continue;
		got++;
		r = xvm__drl_decode(img, vol->label.uuid, slot, shift, nbits, geo, bits);
		if (r) {
			fprintf(stderr, "xvm: the dirty-region log of slot %u on %s is %s: every "
				"region counts as dirty\n", slot, vol->lun_uri[leaf],
				r == -ESTALE ? "of another layout" : "damaged");
			memset(bits, 0xff, (nbits + 7) / 8);
		}
	}
	free(img);
	if (got)
		rc = 0;
	else
		snprintf(err, errlen, "no LUN of the volume answers for the dirty-region log");
	return rc;
}

int xvm_drl_start(struct xvm_vol *vol, unsigned slot, char *err, size_t errlen)
{
	struct xvm__drl *d;
	unsigned b, n = 0;
	size_t bytes;
	int rc;

	if (vol->legacy || vol->read_only || vol->drl)
		return 0;
	if (slot >= XVM__DRL_SLOTS) {
		snprintf(err, errlen, "dirty-region log slot %u: at most %u", slot, XVM__DRL_SLOTS);
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	d->vol = vol;
	d->slot = slot;
	if (!xvm__drl_geometry(&vol->label.tree, &d->shift, d->base, &d->nbits, &d->geo)) {
		drl_free(d);
		return 0;       /* no mirror: nothing to log */
	}
	for (unsigned i = 0; i < vol->label.tree.n; i++)
		if (vol->label.tree.node[i].kind == XVM__MIRROR)
			d->nreg[i] = (unsigned)((vol->label.tree.node[i].size + (1ull << d->shift) - 1) >>
						d->shift);
	bytes = (d->nbits + 7) / 8;
	d->live = calloc(1, bytes);
	d->inherited = calloc(1, bytes);
	d->recent = calloc(1, bytes);
	d->clear = calloc(1, bytes);
	d->both = calloc(1, bytes);
	d->inflight = calloc(d->nbits, sizeof(*d->inflight));
	d->img = malloc(XVM__DRL_SLOT);
	rc = d->live && d->inherited && d->recent && d->clear && d->both && d->inflight && d->img
		     ? 0 : -ENOMEM;
	if (!rc)
		rc = drl_read(vol, slot, d->shift, d->nbits, d->geo, d->inherited, err, errlen);
	if (!rc && (rc = -pthread_create(&d->cleaner, NULL, drl_cleaner, d)))
		snprintf(err, errlen, "cannot start the dirty-region log's thread");
	if (rc) {
		drl_free(d);
		return rc;
	}
	for (b = 0; b < d->nbits; b++)
		n += bit_get(d->inherited, b);
	vol->drl = d;
	return (int)n;
}

void xvm_drl_stop(struct xvm_vol *vol)
{
	struct xvm__drl *d = vol->drl;

	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = 1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->cleaner, NULL);
	/* Nothing in flight any more: once flushed, only the inherited bits stay. */
	if (xvm__flush(vol) == 0) {
		pthread_mutex_lock(&d->mu);
		for (unsigned b = 0; b < d->nbits; b++)
			if (!d->inflight[b])
				bit_clr(d->live, b);
		(void)drl_sync(d, ++d->seq_want);
		pthread_mutex_unlock(&d->mu);
	}
	vol->drl = NULL;
	drl_free(d);
}

void xvm_drl_resynced(struct xvm_vol *vol)
{
	struct xvm__drl *d = vol->drl;

	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	memset(d->inherited, 0, (d->nbits + 7) / 8);
	(void)drl_sync(d, ++d->seq_want);
	pthread_mutex_unlock(&d->mu);
}

int xvm__drl_figures(struct xvm_vol *vol, struct xvm__drl_fig *f)
{
	struct xvm__drl *d = vol->drl;

	memset(f, 0, sizeof(*f));
	if (!d)
		return -ENOENT;
	f->slot = d->slot;
	f->region = 1ull << d->shift;
	f->regions = d->nbits;
	pthread_mutex_lock(&d->mu);
	for (unsigned b = 0; b < d->nbits; b++) {
		f->dirty += bit_get(d->live, b) | bit_get(d->inherited, b);
		f->inherited += bit_get(d->inherited, b);
	}
	pthread_mutex_unlock(&d->mu);
	return 0;
}

uint64_t xvm_drl_dirty_slots(struct xvm_vol *vol)
{
	unsigned shift, nbits, base[XVM_MAX_NODES];
	uint64_t geo, mask = 0;
	uint8_t *bits;
	char err[128];

	if (vol->legacy || !xvm__drl_geometry(&vol->label.tree, &shift, base, &nbits, &geo))
		return 0;
	bits = malloc((nbits + 7) / 8);
	for (unsigned s = 0; bits && s < XVM__DRL_SLOTS; s++) {
		memset(bits, 0, (nbits + 7) / 8);
		if (drl_read(vol, s, shift, nbits, geo, bits, err, sizeof(err)))
			continue;
		for (unsigned b = 0; b < nbits; b++)
			if (bit_get(bits, b)) {
				mask |= 1ull << s;
				break;
			}
	}
	free(bits);
	return mask;
}

/*
 * Copy [lo, lo + n) of mirror @m from where reads map it to every active leg
 * and to a reviving leg below the revive point, held busy on every node.
 */
static int resync_chunk(struct xvm_vol *vol, unsigned m, uint64_t lo, uint64_t n, char *buf)
{
	const struct xvm__node *nd = &vol->label.tree.node[m];
	struct xvm__plan rd = { .op = XVM__READ, .buf = buf };
	unsigned targets[XVM_MAX_LEGS], nt = 0, c;
	uint64_t len[XVM_MAX_LEGS];
	int rc;

	rc = xvm__busy_begin(vol, m, lo, lo + n);
	if (rc)
		return rc;
	pthread_mutex_lock(&vol->lock);
	for (c = 0; c < nd->nchild; c++) {
		const struct xvm__node *leg = &vol->label.tree.node[nd->child[c]];

		if (leg->leg_state == XVM_LEG_ACTIVE) {
			len[nt] = n;
			targets[nt++] = nd->child[c];
		} else if (leg->leg_state == XVM_LEG_REVIVING && lo < nd->revive_point) {
			len[nt] = lo + n <= nd->revive_point ? n : nd->revive_point - lo;
			targets[nt++] = nd->child[c];
		}
	}
	pthread_mutex_unlock(&vol->lock);
	rc = xvm__run(vol, m, lo, n, &rd);
	xvm__plan_free(&rd);
	for (c = 0; !rc && c < nt; c++) {
		struct xvm__plan wr = { .op = XVM__WRITE, .buf = buf };

		rc = xvm__run(vol, targets[c], lo, len[c], &wr);
		xvm__plan_free(&wr);
	}
	xvm__busy_end(vol, m);
	return rc;
}

int xvm_drl_resync(struct xvm_vol *vol, unsigned slot, xvm_progress_fn *progress, void *arg,
		   unsigned *regions, unsigned *total, char *err, size_t errlen)
{
	const struct xvm__tree *t = &vol->label.tree;
	unsigned shift, nbits, base[XVM_MAX_NODES], b, hi, dep, m, done;
	uint64_t geo, lo, end, n;
	uint8_t *bits = NULL;
	char *buf = NULL;
	int rc;

	*regions = *total = 0;
	if (vol->legacy || !xvm__drl_geometry(t, &shift, base, &nbits, &geo))
		return 0;
	if (vol->read_only || slot >= XVM__DRL_SLOTS) {
		snprintf(err, errlen, vol->read_only ? "the volume is open read-only"
						     : "no dirty-region log slot %u", slot);
		return vol->read_only ? -EROFS : -EINVAL;
	}
	*total = nbits;
	bits = calloc(1, (nbits + 7) / 8);
	buf = malloc(XVM__DRL_COPY);
	rc = bits && buf ? drl_read(vol, slot, shift, nbits, geo, bits, err, errlen) : -ENOMEM;
	/* Outer mirrors first: an inner mirror's legs take the outer copy's bytes. */
	for (dep = 0; dep < XVM_MAX_NODES && !rc; dep++) {
		for (m = 0; m < t->n && !rc; m++) {
			if (t->node[m].kind != XVM__MIRROR || xvm__tree_depth(t, m) != dep)
				continue;
			hi = base[m] + (unsigned)((t->node[m].size + (1ull << shift) - 1) >> shift);
			done = *regions;
			for (b = base[m]; b < hi && !rc; b++) {
				if (!bit_get(bits, b))
					continue;
				lo = (uint64_t)(b - base[m]) << shift;
				end = lo + (1ull << shift) < t->node[m].size ? lo + (1ull << shift)
									      : t->node[m].size;
				for (; lo < end && !rc; lo += n) {
					n = end - lo < XVM__DRL_COPY ? end - lo : XVM__DRL_COPY;
					rc = resync_chunk(vol, m, lo, n, buf);
				}
				if (rc) {
					snprintf(err, errlen, "mirror %u: the resync of its region at %llu "
						 "failed: %s", m, (unsigned long long)lo, strerror(-rc));
					break;
				}
				++*regions;
				if (progress && progress(arg, m, 0, *regions, nbits)) {
					snprintf(err, errlen, "the resync stopped");
					rc = -EINTR;
				}
			}
			/* The other nodes forget the last busy region (best effort after an error). */
			if (*regions != done && xvm__publish(vol, m) && !rc) {
				snprintf(err, errlen, "mirror %u: the other nodes did not take the "
					 "resync's end", m);
				rc = -EIO;
			}
		}
	}
	free(bits);
	free(buf);
	return rc;
}
