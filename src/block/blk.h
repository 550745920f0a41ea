/*
 * blk.h - the block device layer: one interface over the storage a node
 * reaches directly (a plain file for single-machine use, an iSCSI LUN through
 * libiscsi for a cluster).
 *
 * Every call is synchronous for its caller and thread-safe: many threads may
 * have I/O in flight on one device at once (the iSCSI backend keeps several
 * SCSI commands outstanding on its session and completes them from its own
 * I/O thread).  Offsets and lengths are in bytes and need not be aligned to
 * the device's sector size; unaligned head and tail sectors are handled by a
 * read-modify-write that is serialized against other writers of the same
 * sector.  Aligned I/O is the fast path.
 *
 * A write returns 0 only when the target acknowledged all of it; blk_flush()
 * then makes every acknowledged write durable (fdatasync for a file,
 * SYNCHRONIZE CACHE for a LUN).  A lost iSCSI connection is reconnected and
 * the commands in flight are reissued, so an acknowledged write is never lost
 * and a caller sees at most a delay.
 *
 * Errors are negative errno values.
 */
#ifndef CXFS_BLK_H
#define CXFS_BLK_H

#include <stddef.h>
#include <stdint.h>

struct blk_dev;

/* Options for blk_open(); zero-initialize and set what you need. */
struct blk_open_opts {
	uint64_t create_size;     /* file backend: create the file with this size if missing (0: must exist) */
	const char *initiator;    /* iSCSI initiator IQN; NULL: derived from the host name */
	int read_only;            /* open without write access */
};

/*
 * Open a device.  @uri is an absolute or relative file path, or
 * "iscsi://HOST[:PORT]/TARGET-IQN/LUN".  On success *@out holds the device;
 * the caller must blk_close() it.  Errors: -EINVAL for a malformed URI,
 * -ENOENT for a missing file, -EIO / -ECONNREFUSED / -EHOSTUNREACH for a LUN
 * that cannot be logged into.  A human-readable reason is logged to stderr.
 */
int blk_open(const char *uri, const struct blk_open_opts *opts, struct blk_dev **out);
void blk_close(struct blk_dev *dev);

/* Read exactly @len bytes at @off.  Reading past the end gives -EINVAL. */
int blk_read(struct blk_dev *dev, void *buf, size_t len, uint64_t off);
/* Write exactly @len bytes at @off.  Writing past the end gives -ENOSPC. */
int blk_write(struct blk_dev *dev, const void *buf, size_t len, uint64_t off);
/* Make every acknowledged write durable. */
int blk_flush(struct blk_dev *dev);
/*
 * Write @span bytes at @off that hold nothing yet: @len bytes of @data at
 * @at inside them, zeros around (whole blocks for a fresh extent).
 */
int blk_write_padded(struct blk_dev *dev, uint64_t off, size_t span, const void *data, size_t at,
		     size_t len);

uint64_t blk_size(const struct blk_dev *dev);          /* capacity in bytes */
uint32_t blk_sector_size(const struct blk_dev *dev);   /* logical block size */
const char *blk_uri(const struct blk_dev *dev);        /* the URI it was opened with */
int blk_is_iscsi(const struct blk_dev *dev);

/* Counters, for the admin socket and the benchmarks. */
struct blk_stats {
	uint64_t reads, writes, flushes;      /* completed calls */
	uint64_t bytes_read, bytes_written;
	uint64_t reconnects;                  /* iSCSI sessions re-established */
};
void blk_get_stats(const struct blk_dev *dev, struct blk_stats *out);

/*
 * SCSI-3 persistent reservations, used by a later issue to fence a node that
 * left the cluster.  The file backend answers -EOPNOTSUPP.
 */
int blk_pr_register(struct blk_dev *dev, uint64_t key);
int blk_pr_preempt(struct blk_dev *dev, uint64_t my_key, uint64_t victim_key);

#endif
