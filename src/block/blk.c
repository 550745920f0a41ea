/*
 * blk.c - the backend-independent half of the block device layer: URI
 * dispatch to a backend, bounds and read-only checks, statistics, the
 * read-modify-write that turns an unaligned request into whole sectors, and
 * the fencing policy (the fenced state, and the persistent-reservation calls
 * of blk.h built from the backend's PERSISTENT RESERVE OUT and IN).
 *
 * Aligned requests go straight to the backend with the caller's buffer (no
 * copy).  An unaligned request goes through a bounce buffer covering the
 * sectors it touches.  A read-modify-write must not race with another write
 * of the same sectors, or the other write's bytes outside our range would be
 * overwritten with what we read before it; so every write registers its
 * sector range in dev->ranges for its duration: aligned writes as shared
 * ranges (they may overlap each other: the caller orders those), a
 * read-modify-write as an exclusive range that waits for, and then excludes,
 * every overlapping write.  Reads take no lock.
 *
 * Locks: only dev->range_lock, never held across I/O.  The fencing state is
 * kept in atomics.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/blk_i.h"

static const char blk__iscsi_scheme[] = "iscsi://";

/* Wait until @r conflicts with no registered range, then register it. */
static void blk__range_lock(struct blk_dev *dev, struct blk__range *r)
{
	struct blk__range *o;

	pthread_mutex_lock(&dev->range_lock);
again:
	for (o = dev->ranges; o; o = o->next) {
		if (o->first < r->end && r->first < o->end && (o->exclusive || r->exclusive)) {
			dev->range_waiters++;
			pthread_cond_wait(&dev->range_cond, &dev->range_lock);
			dev->range_waiters--;
			goto again;
		}
	}
	r->prev = NULL;
	r->next = dev->ranges;
	if (dev->ranges)
		dev->ranges->prev = r;
	dev->ranges = r;
	pthread_mutex_unlock(&dev->range_lock);
}

static void blk__range_unlock(struct blk_dev *dev, struct blk__range *r)
{
	pthread_mutex_lock(&dev->range_lock);
	if (r->prev)
		r->prev->next = r->next;
	else
		dev->ranges = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (dev->range_waiters)
		pthread_cond_broadcast(&dev->range_cond);
	pthread_mutex_unlock(&dev->range_lock);
}

int blk_open(const char *uri, const struct blk_open_opts *opts, struct blk_dev **out)
{
	static const struct blk_open_opts no_opts;
	struct blk_dev *dev;
	int rc;

	*out = NULL;
	if (!uri || !*uri) {
		fprintf(stderr, "cxfs blk: empty device URI\n");
		return -EINVAL;
	}
	if (!opts)
		opts = &no_opts;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->uri = strdup(uri);
	if (!dev->uri) {
		rc = -ENOMEM;
		goto out_free_dev;
	}
	dev->read_only = opts->read_only != 0;
	if (strncmp(uri, blk__iscsi_scheme, sizeof(blk__iscsi_scheme) - 1) == 0)
		dev->ops = &blk__iscsi_ops;
	else
		dev->ops = &blk__file_ops;
	pthread_mutex_init(&dev->range_lock, NULL);
	pthread_cond_init(&dev->range_cond, NULL);

	rc = dev->ops->open(dev, uri, opts);
	if (rc < 0)
		goto out_destroy_locks;
	*out = dev;
	return 0;

out_destroy_locks:
	pthread_cond_destroy(&dev->range_cond);
	pthread_mutex_destroy(&dev->range_lock);
	free(dev->uri);
out_free_dev:
	free(dev);
	return rc;
}

void blk_close(struct blk_dev *dev)
{
	if (!dev)
		return;
	dev->ops->close(dev);
	pthread_cond_destroy(&dev->range_cond);
	pthread_mutex_destroy(&dev->range_lock);
	free(dev->uri);
	free(dev);
}

/* The sector-aligned span [*a0, *a1) that covers [off, off + len). */
static void blk__span(const struct blk_dev *dev, size_t len, uint64_t off, uint64_t *a0, uint64_t *a1)
{
	uint64_t mask = dev->sector_size - 1;

	*a0 = off & ~mask;
	*a1 = (off + len + mask) & ~mask;
}

static int blk__read_unaligned(struct blk_dev *dev, void *buf, size_t len, uint64_t off)
{
	uint64_t a0, a1;
	char *bounce;
	int rc;

	blk__span(dev, len, off, &a0, &a1);
	bounce = malloc(a1 - a0);
	if (!bounce)
		return -ENOMEM;
	rc = dev->ops->read(dev, bounce, a1 - a0, a0);
	if (rc == 0)
		memcpy(buf, bounce + (off - a0), len);
	free(bounce);
	return rc;
}

/* Count a backend's failure @rc of a read, write or flush; returns @rc. */
static int blk__failed(struct blk_dev *dev, int rc)
{
	atomic_fetch_add_explicit(&dev->n_errors, 1, memory_order_relaxed);
	return rc;
}

int blk_read(struct blk_dev *dev, void *buf, size_t len, uint64_t off)
{
	uint64_t mask = dev->sector_size - 1;
	int rc;

	if (off > dev->size || len > dev->size - off)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (((off | len) & mask) == 0)
		rc = dev->ops->read(dev, buf, len, off);
	else
		rc = blk__read_unaligned(dev, buf, len, off);
	if (rc < 0)
		return blk__failed(dev, rc);
	atomic_fetch_add_explicit(&dev->n_reads, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&dev->n_bytes_read, len, memory_order_relaxed);
	return 0;
}

/*
 * Read the partial head and tail sectors into a bounce buffer for the whole
 * span, copy the caller's bytes over them, and write the span back, all
 * while holding the span exclusively.
 */
static int blk__write_unaligned(struct blk_dev *dev, const void *buf, size_t len, uint64_t off)
{
	uint32_t ss = dev->sector_size;
	struct blk__range r;
	uint64_t a0, a1, span;
	char *bounce;
	int rc = 0;

	blk__span(dev, len, off, &a0, &a1);
	span = a1 - a0;
	bounce = malloc(span);
	if (!bounce)
		return -ENOMEM;
	r.first = a0 / ss;
	r.end = a1 / ss;
	r.exclusive = 1;
	blk__range_lock(dev, &r);

	if (off != a0)
		rc = dev->ops->read(dev, bounce, ss, a0);
	/* The tail sector, unless it is the head sector just read. */
	if (rc == 0 && off + len != a1 && (span > ss || off == a0))
		rc = dev->ops->read(dev, bounce + span - ss, ss, a1 - ss);
	if (rc < 0)
		goto out_unlock_range;
	memcpy(bounce + (off - a0), buf, len);
	rc = dev->ops->write(dev, bounce, span, a0);

out_unlock_range:
	blk__range_unlock(dev, &r);
	free(bounce);
	return rc;
}

int blk_write(struct blk_dev *dev, const void *buf, size_t len, uint64_t off)
{
	uint32_t ss = dev->sector_size;
	struct blk__range r;
	int rc;

	if (dev->read_only)
		return -EROFS;
	if (blk_fenced(dev))
		return BLK_EFENCED;
	if (off > dev->size || len > dev->size - off)
		return -ENOSPC;
	if (len == 0)
		return 0;
	if (((off | len) & (ss - 1)) == 0) {
		r.first = off / ss;
		r.end = (off + len) / ss;
		r.exclusive = 0;
		blk__range_lock(dev, &r);
		rc = dev->ops->write(dev, buf, len, off);
		blk__range_unlock(dev, &r);
	} else {
		rc = blk__write_unaligned(dev, buf, len, off);
	}
	if (rc < 0)
		return blk__failed(dev, rc);
	atomic_fetch_add_explicit(&dev->n_writes, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&dev->n_bytes_written, len, memory_order_relaxed);
	return 0;
}

int blk_flush(struct blk_dev *dev)
{
	int rc;

	if (dev->read_only)
		return 0;
	if (blk_fenced(dev))
		return BLK_EFENCED;
	rc = dev->ops->flush(dev);
	if (rc < 0)
		return blk__failed(dev, rc);
	atomic_fetch_add_explicit(&dev->n_flushes, 1, memory_order_relaxed);
	return 0;
}

uint64_t blk_size(const struct blk_dev *dev)
{
	return dev->size;
}

uint32_t blk_sector_size(const struct blk_dev *dev)
{
	return dev->sector_size;
}

const char *blk_uri(const struct blk_dev *dev)
{
	return dev->uri;
}

int blk_is_iscsi(const struct blk_dev *dev)
{
	return dev->ops == &blk__iscsi_ops;
}

void blk_get_stats(const struct blk_dev *dev, struct blk_stats *out)
{
	/* The counters are only ever incremented, so reading them through a
	 * const pointer with relaxed loads is safe. */
	struct blk_dev *d = (struct blk_dev *)dev;

	out->reads = atomic_load_explicit(&d->n_reads, memory_order_relaxed);
	out->writes = atomic_load_explicit(&d->n_writes, memory_order_relaxed);
	out->flushes = atomic_load_explicit(&d->n_flushes, memory_order_relaxed);
	out->bytes_read = atomic_load_explicit(&d->n_bytes_read, memory_order_relaxed);
	out->bytes_written = atomic_load_explicit(&d->n_bytes_written, memory_order_relaxed);
	out->reconnects = atomic_load_explicit(&d->n_reconnects, memory_order_relaxed);
	out->reservation_conflicts = atomic_load_explicit(&d->n_conflicts, memory_order_relaxed);
	out->errors = atomic_load_explicit(&d->n_errors, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* Fencing                                                             */
/* ------------------------------------------------------------------ */

int blk_fenced(const struct blk_dev *dev)
{
	return atomic_load(&((struct blk_dev *)dev)->fenced);
}

void blk_set_fence_cb(struct blk_dev *dev, blk_fence_fn *fn, void *arg)
{
	atomic_store(&dev->fence_arg, arg);
	atomic_store(&dev->fence_fn, fn);
}

void blk__fence(struct blk_dev *dev, const char *why)
{
	blk_fence_fn *fn;

	if (atomic_exchange(&dev->fenced, 1))
		return;
	fprintf(stderr, "cxfs blk: %s: fenced: %s\n", dev->uri, why);
	fn = atomic_load(&dev->fence_fn);
	if (fn)
		fn(dev, atomic_load(&dev->fence_arg));
}

void blk__pr_done(struct blk_dev *dev, const struct blk__pr_out *req)
{
	if (req->sa != BLK__PR_REGISTER_IGNORE)
		return;
	atomic_store(&dev->pr_key, req->sa_key);
	if (req->rejoin && atomic_exchange(&dev->fenced, 0))
		fprintf(stderr, "cxfs blk: %s: registered again, no longer fenced\n", dev->uri);
}

/* REGISTER AND IGNORE EXISTING KEY with @key (0: unregister). */
static int blk__pr_set_key(struct blk_dev *dev, uint64_t key, int rejoin)
{
	struct blk__pr_out req = { .sa = BLK__PR_REGISTER_IGNORE, .sa_key = key, .rejoin = rejoin };

	if (!dev->ops->pr_out)
		return -EOPNOTSUPP;
	return dev->ops->pr_out(dev, &req);
}

int blk_pr_register(struct blk_dev *dev, uint64_t key)
{
	if (!dev->ops->pr_out)
		return -EOPNOTSUPP;
	if (key == 0)
		return -EINVAL;
	if (blk_fenced(dev))
		return BLK_EFENCED;
	return blk__pr_set_key(dev, key, 0);
}

int blk_pr_rejoin(struct blk_dev *dev, uint64_t key)
{
	if (!dev->ops->pr_out)
		return -EOPNOTSUPP;
	if (key == 0)
		return -EINVAL;
	return blk__pr_set_key(dev, key, 1);
}

int blk_pr_unregister(struct blk_dev *dev)
{
	return blk__pr_set_key(dev, 0, 0);
}

int blk_pr_read(struct blk_dev *dev, struct blk_pr_state *out)
{
	if (!dev->ops->pr_in)
		return -EOPNOTSUPP;
	memset(out, 0, sizeof(*out));
	return dev->ops->pr_in(dev, out);
}

/*
 * A PERSISTENT RESERVE OUT with our key ended in RESERVATION CONFLICT: if
 * the target no longer lists our key we were preempted, and the device is
 * fenced.  Returns BLK_EFENCED then, 1 if our key is still listed, or the
 * error of reading the state; *@st holds the state read.
 */
static int blk__pr_check_self(struct blk_dev *dev, uint64_t key, struct blk_pr_state *st)
{
	int rc = blk_pr_read(dev, st);

	if (rc < 0)
		return rc;
	if (blk__pr_count(st, key) == 0) {
		blk__fence(dev, "our reservation key is no longer registered (preempted)");
		return BLK_EFENCED;
	}
	return 1;
}

int blk_pr_reserve(struct blk_dev *dev)
{
	struct blk__pr_out req = { .sa = BLK__PR_RESERVE, .type = BLK_PR_TYPE_WE_RO };
	struct blk_pr_state *st;
	int rc;

	if (!dev->ops->pr_out)
		return -EOPNOTSUPP;
	req.key = atomic_load(&dev->pr_key);
	if (req.key == 0)
		return -EINVAL;
	/* The holder's RESERVE of the same type is GOOD; anyone else's is a
	 * conflict, which READ RESERVATION explains. */
	rc = dev->ops->pr_out(dev, &req);
	if (rc != BLK_EFENCED)
		return rc;
	st = malloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	rc = blk__pr_check_self(dev, req.key, st);
	if (rc == 1)
		rc = st->reserved && st->type == BLK_PR_TYPE_WE_RO ? 0 : -EBUSY;
	free(st);
	return rc;
}

int blk_pr_preempt(struct blk_dev *dev, uint64_t victim_key)
{
	struct blk__pr_out req = {
		.sa = BLK__PR_PREEMPT,
		.type = BLK_PR_TYPE_WE_RO,
		.sa_key = victim_key,
	};
	struct blk_pr_state *st;
	int rc;

	if (!dev->ops->pr_out)
		return -EOPNOTSUPP;
	req.key = atomic_load(&dev->pr_key);
	if (req.key == 0 || victim_key == 0 || victim_key == req.key)
		return -EINVAL;
	if (blk_fenced(dev))
		return BLK_EFENCED;
	rc = dev->ops->pr_out(dev, &req);
	if (rc == BLK_EFENCED) {
		/* The target refuses a PREEMPT of a key nobody holds too. */
		st = malloc(sizeof(*st));
		if (!st)
			return -ENOMEM;
		rc = blk__pr_check_self(dev, req.key, st);
		if (rc == 1)
			rc = blk__pr_count(st, victim_key) == 0 ? 0 : -EIO;
		free(st);
	}
	if (rc < 0)
		return rc;
	/* Without a reservation a preempted node could still write. */
	return blk_pr_reserve(dev);
}

int blk_write_padded(struct blk_dev *dev, uint64_t off, size_t span, const void *data, size_t at,
		     size_t len)
{
	char *bounce;
	int rc;

	if (at > span || len > span - at)
		return -EINVAL;
	if (at == 0 && len == span)
		return blk_write(dev, data, len, off);
	bounce = calloc(1, span);
	if (!bounce)
		return -ENOMEM;
	memcpy(bounce + at, data, len);
	rc = blk_write(dev, bounce, span, off);
	free(bounce);
	return rc;
}
