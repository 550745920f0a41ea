/*
 * blk.c - the backend-independent half of the block device layer: URI
 * dispatch to a backend, bounds and read-only checks, statistics, and the
 * read-modify-write that turns an unaligned request into whole sectors.
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
 * Locks: only dev->range_lock, never held across I/O.
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
		return rc;
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
		return rc;
	atomic_fetch_add_explicit(&dev->n_writes, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&dev->n_bytes_written, len, memory_order_relaxed);
	return 0;
}

int blk_flush(struct blk_dev *dev)
{
	int rc;

	if (dev->read_only)
		return 0;
	rc = dev->ops->flush(dev);
	if (rc < 0)
		return rc;
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
}

int blk_pr_register(struct blk_dev *dev, uint64_t key)
{
	if (!dev->ops->pr_register)
		return -EOPNOTSUPP;
	return dev->ops->pr_register(dev, key);
}

int blk_pr_preempt(struct blk_dev *dev, uint64_t my_key, uint64_t victim_key)
{
	if (!dev->ops->pr_preempt)
		return -EOPNOTSUPP;
	return dev->ops->pr_preempt(dev, my_key, victim_key);
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
