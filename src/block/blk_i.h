/*
 * blk_i.h - private header of the block device layer: the backend ops table
 * (struct blk__ops), the layout of struct blk_dev shared by blk.c and the
 * backends, and the file backend's syscall indirection table that the unit
 * test uses to inject faults.  Nothing outside src/block and its unit test
 * includes this file.
 */
#ifndef CXFS_BLK_I_H
#define CXFS_BLK_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "block/blk.h"

struct blk__file;
struct blk__iscsi;

/*
 * A backend.  blk.c checks bounds, read-only mode and alignment before it
 * calls read/write, so the backend sees only whole sectors inside the device
 * (off and len are multiples of dev->sector_size, off + len <= dev->size) and
 * never a zero length.  No lock of blk.c is held during any callback; every
 * callback may be called from many threads at once, except open and close,
 * which run alone.
 */
struct blk__ops {
	/* Open @uri; set dev->size, dev->sector_size and the backend pointer. */
	int (*open)(struct blk_dev *dev, const char *uri, const struct blk_open_opts *opts);
	/* Release everything open() acquired.  No I/O is in flight. */
	void (*close)(struct blk_dev *dev);
	int (*read)(struct blk_dev *dev, void *buf, size_t len, uint64_t off);
	int (*write)(struct blk_dev *dev, const void *buf, size_t len, uint64_t off);
	int (*flush)(struct blk_dev *dev);
	/* NULL when the backend has no persistent reservations. */
	int (*pr_register)(struct blk_dev *dev, uint64_t key);
	int (*pr_preempt)(struct blk_dev *dev, uint64_t my_key, uint64_t victim_key);
};

extern const struct blk__ops blk__file_ops;
extern const struct blk__ops blk__iscsi_ops;

/*
 * A write range registered while a write is in progress (see blk.c).  An
 * exclusive range (a read-modify-write) excludes every overlapping range; a
 * shared range (an aligned write) excludes only overlapping exclusive ones.
 */
struct blk__range {
	uint64_t first, end;              /* sectors [first, end) */
	int exclusive;                    /* 1 for a read-modify-write */
	struct blk__range *prev, *next;   /* in blk_dev.ranges */
};

struct blk_dev {
	const struct blk__ops *ops;       /* backend; set before open(), constant after */
	char *uri;                        /* copy of the URI given to blk_open() */
	uint64_t size;                    /* capacity in bytes, a multiple of sector_size */
	uint32_t sector_size;             /* logical block size, a power of two */
	int read_only;                    /* opened without write access */
	union {
		struct blk__file *file;   /* file backend state (blk_file.c) */
		struct blk__iscsi *iscsi; /* iSCSI backend state (blk_iscsi.c) */
	} be;

	pthread_mutex_t range_lock;       /* protects ranges and range_waiters */
	pthread_cond_t range_cond;        /* broadcast when a range is removed */
	struct blk__range *ranges;        /* writes in progress; protected by range_lock */
	unsigned range_waiters;           /* threads in range_cond wait; protected by range_lock */

	/* Statistics: updated with relaxed atomics, no lock. */
	atomic_uint_fast64_t n_reads, n_writes, n_flushes;
	atomic_uint_fast64_t n_bytes_read, n_bytes_written;
	atomic_uint_fast64_t n_reconnects; /* incremented by the iSCSI I/O thread */
};

/*
 * The file backend's system calls, called through this table so that the
 * unit test can substitute failing or short versions (like SQLite's
 * aSyscall[] in os_unix.c).  The test must restore the originals, saved by
 * copying the struct, before it returns.
 */
struct blk__file_syscalls {
	ssize_t (*pread)(int fd, void *buf, size_t count, off_t offset);
	ssize_t (*pwrite)(int fd, const void *buf, size_t count, off_t offset);
	int (*fdatasync)(int fd);
};
extern struct blk__file_syscalls blk__file_sys;

#endif
