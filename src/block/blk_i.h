/*
 * blk_i.h - private header of the block device layer: the backend ops table
 * (struct blk__ops), the layout of struct blk_dev shared by blk.c and the
 * backends, the persistent-reservation helpers that need no target (blk_pr.c:
 * decoding PERSISTENT RESERVE IN data, the re-registration verdict), and the
 * file backend's syscall indirection table that the unit test uses to inject
 * faults.  Nothing outside src/block and its unit test
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

/* The PERSISTENT RESERVE OUT service actions we use (SPC-3 table 38). */
enum blk__pr_sa {
	BLK__PR_RESERVE = 1,
	BLK__PR_PREEMPT = 4,
	BLK__PR_REGISTER_IGNORE = 6,      /* REGISTER AND IGNORE EXISTING KEY */
};

/* One PERSISTENT RESERVE OUT command (SPC-3 6.12), scope LU_SCOPE. */
struct blk__pr_out {
	enum blk__pr_sa sa;               /* service action */
	int type;                         /* reservation type (RESERVE, PREEMPT) */
	uint64_t key;                     /* RESERVATION KEY: ours, 0 if unregistered */
	uint64_t sa_key;                  /* SERVICE ACTION RESERVATION KEY */
	int rejoin;                       /* on GOOD status, clear the fenced state */
};

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
	/*
	 * Persistent reservations; both NULL when the backend has none.
	 * pr_out issues one PERSISTENT RESERVE OUT; on GOOD status it calls
	 * blk__pr_done() before the caller is woken.  RESERVATION CONFLICT is
	 * returned as BLK_EFENCED and does not by itself fence the device.
	 * pr_in fills @out from READ KEYS and READ RESERVATION.
	 */
	int (*pr_out)(struct blk_dev *dev, const struct blk__pr_out *req);
	int (*pr_in)(struct blk_dev *dev, struct blk_pr_state *out);
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
	atomic_uint_fast64_t n_conflicts;  /* data commands refused with RESERVATION CONFLICT */
	atomic_uint_fast64_t n_errors;     /* reads, writes and flushes the backend failed */

	/* Fencing (blk.h): atomics, no lock. */
	_Atomic uint64_t pr_key;          /* our registered key, 0 if none; set by blk__pr_done() */
	atomic_int fenced;                /* 1 once fenced, until a rejoin succeeds */
	blk_fence_fn *_Atomic fence_fn;   /* called once per fence, may be NULL */
	void *_Atomic fence_arg;          /* its argument */
};

/*
 * blk_iscsi.c: the PERSISTENT RESERVE OUT task (CDB and 24-byte parameter
 * list) that carries @req; NULL on ENOMEM.  The caller issues it or frees
 * it (scsi_free_scsi_task()).  The unit test checks its bytes.
 */
struct scsi_task;
struct scsi_task *blk__iscsi_pr_out_task(const struct blk__pr_out *req);

/* Mark @dev fenced (@why is logged); the first call since the last rejoin runs the callback. */
void blk__fence(struct blk_dev *dev, const char *why);
/* A backend's pr_out succeeded: record its effect on our key and fenced state. */
void blk__pr_done(struct blk_dev *dev, const struct blk__pr_out *req);

/*
 * blk_pr.c: decode the parameter data of PERSISTENT RESERVE IN READ KEYS
 * (SPC-3 6.11.2) or READ RESERVATION (6.11.3), @len bytes at @d, into the
 * matching fields of @out.  -EIO if the data is too short to be valid.
 */
int blk__pr_parse_keys(const unsigned char *d, size_t len, struct blk_pr_state *out);
int blk__pr_parse_reservation(const unsigned char *d, size_t len, struct blk_pr_state *out);
/* Allocation length that fits BLK_PR_MAX_KEYS keys (READ KEYS). */
#define BLK__PR_IN_LEN (8 + 8 * BLK_PR_MAX_KEYS)
/* How many of the listed registrations carry @key. */
unsigned blk__pr_count(const struct blk_pr_state *s, uint64_t key);
/*
 * After a reconnect we read @before (our key listed), registered @key again,
 * and read @after: 1 if no preempt of @key can have come in between, so the
 * new registration may stand; 0 if one may have (the caller withdraws it and
 * fences the device).
 */
int blk__pr_reregistered(uint64_t key, const struct blk_pr_state *before,
			 const struct blk_pr_state *after);

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
