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
 * and a caller sees at most a delay (or BLK_EFENCED once the node is fenced:
 * see "Fencing" below).
 *
 * Errors are negative errno values.
 */
#ifndef CXFS_BLK_H
#define CXFS_BLK_H

#include <errno.h>
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
	uint64_t errors;                      /* reads, writes and flushes that failed
	                                       * in the backend (not refused arguments) */
	uint64_t reservation_conflicts;       /* data commands the target refused with
	                                       * RESERVATION CONFLICT status */
};
void blk_get_stats(const struct blk_dev *dev, struct blk_stats *out);

/*
 * Fencing: SCSI-3 persistent reservations (SPC-3 5.6).  The file backend
 * answers -EOPNOTSUPP to every blk_pr_* call and is never fenced.
 *
 * Each node registers its own 64-bit key (the cluster derives it, e.g. from
 * the cluster id and the node number; it must not be 0) on every LUN it uses,
 * before its first write, and the LUN carries one WRITE EXCLUSIVE -
 * REGISTRANTS ONLY reservation (type 5): every registered node may read and
 * write, an unregistered one may only read.  Fencing a node is removing its
 * key with PREEMPT: from then on the target answers its writes with
 * RESERVATION CONFLICT.
 *
 * BLK_EFENCED (-EACCES) is the answer of a fenced device: a data command that
 * ended with RESERVATION CONFLICT is never retried and fails with it, the
 * device becomes fenced (blk_fenced() is true, the fence callback runs once),
 * and from then on blk_write(), blk_write_padded() and blk_flush() fail with
 * it at once, without reaching the target.  Reads go on (the reservation lets
 * anyone read).  The device also becomes fenced, without any write, when it
 * finds after an iSCSI reconnect that its key is no longer registered.  Only
 * blk_pr_rejoin() clears the state.
 *
 * Re-registration after a reconnect.  A target may tie a registration to the
 * iSCSI session (tgtd does: the new session is a new I_T nexus and is not
 * registered, while the old registration stays listed), so after every
 * reconnect of a registered device, before any queued command is reissued,
 * the I/O thread reads the registered keys: if its key is still there it
 * registers it again on the new session; if it is gone (preempted, or the
 * target lost its reservation state in a restart: tgtd keeps none across one,
 * so its restart fences every registered node) it does NOT register (that
 * would undo a fence): the device becomes fenced.  A preempt that lands
 * between that read and the re-registration is detected from the PR
 * generation and the key count read again afterwards; then the new
 * registration is withdrawn and the device is fenced.
 *
 * All calls block until the target answered (the I/O thread's reconnect and
 * give-up rules apply).  Errors: -EOPNOTSUPP (file backend), -EINVAL (bad
 * argument, or no key registered where one is needed), BLK_EFENCED, -EIO.
 */
#define BLK_EFENCED (-EACCES)
#define BLK_PR_TYPE_WE_RO 5       /* WRITE EXCLUSIVE - REGISTRANTS ONLY (SPC-3 table 34) */
#define BLK_PR_MAX_KEYS 256       /* keys blk_pr_read() returns */

/* The target's persistent reservation state, from PERSISTENT RESERVE IN. */
struct blk_pr_state {
	uint32_t generation;              /* PRgeneration of READ KEYS */
	unsigned n_keys;                  /* registrations the target lists (one per I_T
	                                   * nexus: a key may appear more than once) */
	uint64_t keys[BLK_PR_MAX_KEYS];   /* the first min(n_keys, BLK_PR_MAX_KEYS) */
	int reserved;                     /* 1 if the LUN carries a persistent reservation */
	int type;                         /* its type (BLK_PR_TYPE_WE_RO), 0 if none */
	uint64_t holder;                  /* its holder's key (0 for an all-registrants type) */
};

/*
 * Register @key (REGISTER AND IGNORE EXISTING KEY, so a node restarting with
 * the key it had works, and a registered device may change its key).  The
 * device remembers the key for blk_pr_preempt(), blk_pr_reserve() and the
 * re-registration after a reconnect.  BLK_EFENCED if the device is fenced
 * (use blk_pr_rejoin()), -EINVAL for key 0.  Like a rejoin, registering
 * undoes an earlier preempt of the key (a node fenced while it was down, then
 * restarted): call it only once the membership has admitted the node.
 */
int blk_pr_register(struct blk_dev *dev, uint64_t key);
/*
 * Make sure the LUN carries the cluster's WE-RO reservation: take it if
 * nobody holds one; 0 also when another registrant holds it (it is shared).
 * -EINVAL if this device has no key registered, -EBUSY if the LUN carries a
 * reservation of another type.
 */
int blk_pr_reserve(struct blk_dev *dev);
/* Read the registered keys and the reservation (allowed even when fenced). */
int blk_pr_read(struct blk_dev *dev, struct blk_pr_state *out);
/*
 * Fence the node whose key is @victim_key: PREEMPT removes every
 * registration with that key (and hands us the reservation if the victim held
 * it), then the WE-RO reservation is made sure of (blk_pr_reserve()).  On 0
 * the victim's key is gone (also if it was already) and its writes fail at
 * the target.  -EINVAL if @victim_key is 0 or our own key (a node never
 * preempts itself) or we have no key registered; BLK_EFENCED if our own key
 * is gone (we were fenced ourselves: the device becomes fenced).  So of two
 * nodes that preempt each other the second loses, fenced: a tie-breaker.
 */
int blk_pr_preempt(struct blk_dev *dev, uint64_t victim_key);
/*
 * Orderly leave: remove this session's registration and forget the key
 * (0 also if none).  A write after it meets RESERVATION CONFLICT and fences
 * the device (come back with blk_pr_rejoin()).  If this node held the WE-RO
 * reservation the target releases it: another registrant must call
 * blk_pr_reserve() (a later blk_pr_preempt() does).  On tgtd the
 * registrations of this node's earlier sessions stay listed (they cannot
 * write; a preempt of the key removes them).  blk_close() does not
 * unregister: a node that stops without leaving keeps its key until the
 * cluster preempts it.
 */
int blk_pr_unregister(struct blk_dev *dev);
/*
 * Register @key again after a fence and clear the fenced state once the
 * target accepted it.  Only for a node the membership has admitted again:
 * this undoes the fence.
 */
int blk_pr_rejoin(struct blk_dev *dev, uint64_t key);
/* 1 once the device is fenced (a reservation conflict or a lost key), until blk_pr_rejoin(). */
int blk_fenced(const struct blk_dev *dev);
/*
 * Called once each time the device becomes fenced, from the iSCSI I/O thread
 * (or from the thread of a blk_pr_preempt() or blk_pr_reserve() that finds
 * our key gone), with no lock of the block layer held: it must not block or
 * call into this device; record the fact and wake someone.
 * Set it before the first write (a fence before that is seen with
 * blk_fenced()); NULL removes it.
 */
typedef void blk_fence_fn(struct blk_dev *dev, void *arg);
void blk_set_fence_cb(struct blk_dev *dev, blk_fence_fn *fn, void *arg);

#endif
