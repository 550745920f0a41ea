/*
 * meta_store.h - the metadata store: inodes, directory entries, extents,
 * free space, xattrs and DMAPI attributes in one SQLite database on the
 * volume (through meta_vfs), opened by the metadata server only.
 *
 * Every function is one atomic metadata operation: it takes the store mutex,
 * joins the open transaction (starting one if none is open), and leaves it
 * open.  A commit thread closes the transaction (group commit) when it has
 * been open for the commit interval, when it has grown large, or at once
 * when someone asks for durability (meta_store_sync, from fsync).  So a
 * burst of creates costs one sync, and an fsync'ed change is durable when
 * meta_store_sync returns.  A failed commit is fatal for the mount: every
 * later call returns -EIO (errors=remount-ro, as ext4 would).
 *
 * File data never goes through SQLite: the store hands out block runs of the
 * data region (meta_store_reserve) and records extents once the data is on
 * the volume (meta_store_map_write), so no crash can expose blocks that were
 * never written.
 *
 * Lock order: commit mutex -> store mutex -> (nothing).  The store never
 * calls up.
 */
#ifndef CXFS_META_STORE_H
#define CXFS_META_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>

#include "meta/meta_sb.h"
#include "vnode/vn.h"

struct xvm_vol;
struct meta_store;

#define META_ROOT_INO 1
#define META_NAME_MAX 255
#define META_SYMLINK_MAX 4095
#define META_XATTR_SIZE_MAX 65536
/* Largest file size, as ext4 with 4 KiB blocks: 2^32 - 1 blocks. */
#define META_MAX_FILE_SIZE (((UINT64_C(1) << 32) - 1) * 4096)

/* Tuning of group commit. */
struct meta_store_opts {
	unsigned commit_ms;        /* longest a transaction stays open (default 1000) */
	unsigned commit_ops;       /* commit early after this many operations (default 4096,
				    * which keeps the log well inside its region) */
	int keep_orphans;          /* relocation: unlinked files may still be open on nodes */
};

/*
 * Format @dev: superblock, region headers, schema and the root directory
 * (owned by @uid/@gid, mode 0755).  The caller decides whether a formatted
 * volume may be overwritten.
 */
int meta_store_format(struct xvm_vol *dev, const char *name, uint32_t flags, uint32_t uid,
		      uint32_t gid, char *err, size_t errlen);

/*
 * Open the store on @dev (SQLite replays its log), load the allocator, and
 * free the inodes that were unlinked while open when the last mount ended.
 * @opts may be NULL.  On failure @err says why.
 */
int meta_store_open(struct xvm_vol *dev, const struct meta_store_opts *opts,
		    struct meta_store **out, char *err, size_t errlen);
/* Commit, checkpoint and close. */
void meta_store_close(struct meta_store *st);

const struct meta_sb *meta_store_sb(const struct meta_store *st);
struct xvm_vol *meta_store_dev(const struct meta_store *st);

/* Commit the open transaction now and make it durable. */
int meta_store_sync(struct meta_store *st);
/*
 * meta_store_sync, then copy the log into the database (a relocation does it
 * while the store still serves, so closing it later is quick).
 */
int meta_store_checkpoint(struct meta_store *st);
/*
 * Write a consistent copy of the committed store to the file @path (an
 * SQLite database of its own, with a table cxfs_backup naming the
 * filesystem and the size of its data region, which meta_check_store
 * reads): written to @path.tmp.PID, made durable, then renamed over @path.
 * Operations wait while the copy runs.  0, or -errno with @err.
 */
int meta_store_backup(struct meta_store *st, const char *path, char *err, size_t errlen);
/*
 * Another node serves the store now: write nothing more (no commit, no
 * checkpoint, not even at close); every change fails with -EIO.
 */
void meta_store_abandon(struct meta_store *st);
/*
 * Does a transaction not yet durable hold a change that no node's request
 * made (the server node's own: no survivor could apply it again after a
 * crash)?  Then the server makes it durable (meta_store_sync) before it
 * answers another node, which could depend on it.
 */
bool meta_store_local_pending(struct meta_store *st);

/*
 * Transaction numbers: *@open is the number of the open (or next)
 * transaction, which rises at each commit and continues above the last
 * committed one when the store is opened again; *@durable the last whose
 * flush completed.  Either may be NULL.
 */
void meta_store_txns(struct meta_store *st, uint64_t *open, uint64_t *durable);
/*
 * The last transaction committed before this open: a change a server
 * reported in a larger transaction number before the open was lost (the
 * store's own commits after the open reuse those numbers).
 */
uint64_t meta_store_txn_at_open(const struct meta_store *st);
/* Data blocks free for allocation now (what statfs says is available). */
uint64_t meta_store_avail_blocks(struct meta_store *st);

struct meta_map;

/*
 * Requests of cluster nodes (src/cluster/cl_unsafe.c).  A thread applying a
 * node's request makes it the thread's current request (meta_req_set);
 * every store operation of that thread that changes the store then, inside
 * the operation's own savepoint (so nothing can be committed without the
 * other):
 *   - if @record, writes the row (node, reqid) -> (ino, gen, txn, seq) of the table
 *     of applied requests (meta_req_find), and for one request in
 *     META_REQ_PRUNE_EVERY (64) deletes the node's rows below @oldest;
 *   - sets @txn to the transaction the change joined and @seq to the next
 *     number of one counter taken under the store mutex, so seq follows
 *     the order in which changes were applied.
 * A create (meta_mknod) fills @ino and @gen, or with @force_ino set takes
 * that number and @force_gen (a replay: the number is free in the
 * committed state; next_ino goes past it).  An allocation (meta_fallocate)
 * takes exactly the data blocks of @force_runs where they cover the file
 * blocks it fills, or fails with -EEXIST if those are not free.
 *
 * A request whose changes span several store operations should be
 * idempotent: a commit may fall between them (see ARCHITECTURE.md,
 * "Unsafe requests and applied-once").
 */
struct meta_req {
	uint32_t node;                   /* in: the node asking */
	uint64_t reqid;                  /* in: its id (unique per node incarnation) */
	uint64_t oldest;                 /* in: the node's lowest unanswered id (0: unknown) */
	int record;                      /* in: write the applied row */
	int local;                       /* in: no node applies it again (no id): durable before
	                                  * another node's request sees it (meta_store_local_pending) */
	uint64_t force_ino, force_gen;   /* in: identity of a replayed create (0: none) */
	int64_t force_now;               /* in: a node's own create, unlink or rename: its clock
	                                  * (ns; 0: the store's) */
	const struct meta_map *force_runs; /* in: blocks of a replayed allocation */
	size_t nforce;                   /* in: entries of force_runs */
	uint64_t txn, seq;               /* out: of the last change (0: none) */
	uint64_t ino, gen;               /* out: a create's new inode */
};
/*
 * Reserve @n inode numbers for a node's own creates (meta_req.force_ino
 * later takes them, ARCHITECTURE.md "Asynchronous creates"): *@first, and
 * the generation they get in *@gen; committed and flushed before it
 * returns, so no later server hands them out again.  -ENOSPC when the
 * metadata region is nearly full (creates then ask the server one by one).
 */
int meta_ino_reserve(struct meta_store *st, uint32_t n, uint64_t *first, uint64_t *gen);
/* Is @ino a number the store handed out (reserved or used), not the root's? */
bool meta_ino_reserved(struct meta_store *st, uint64_t ino);
/* This thread's current request (NULL: none); the caller owns @r and clears it. */
void meta_req_set(struct meta_req *r);
/*
 * 1 if (node, reqid) was applied (and not pruned), with what its change set
 * in @out (ino, gen, txn, seq; nothing else touched), 0 if not, or -errno.
 */
int meta_req_find(struct meta_store *st, uint32_t node, uint64_t reqid, struct meta_req *out);
/* Forget every applied request of @node (it left the membership). */
int meta_req_drop_node(struct meta_store *st, uint32_t node);

/* Counters for the admin socket and benchmarks. */
struct meta_store_stats {
	uint64_t ops, commits, commit_usec;
};
void meta_store_get_stats(struct meta_store *st, struct meta_store_stats *out);

/* Namespace and attributes.  Names are checked (length, '/', "." and ".."). */
int meta_getattr(struct meta_store *st, uint64_t ino, struct vn_attr *out);
int meta_setattr(struct meta_store *st, uint64_t ino, const struct vn_attr *in, int mask,
		 struct vn_attr *out);
int meta_lookup(struct meta_store *st, uint64_t dir, const char *name, struct vn_attr *out);
int meta_mknod(struct meta_store *st, uint64_t dir, const char *name, uint32_t mode, uint64_t rdev,
	       const char *target, const struct vn_cred *cred, struct vn_attr *out);
int meta_link(struct meta_store *st, uint64_t ino, uint64_t newdir, const char *newname,
	      struct vn_attr *out);
/* Remove a name; *@victim gets the inode it named (its nlink already dropped). */
int meta_unlink(struct meta_store *st, uint64_t dir, const char *name, int is_dir, uint64_t *victim);
/* RENAME_NOREPLACE / RENAME_EXCHANGE in @flags; *@victim: a replaced inode or 0. */
int meta_rename(struct meta_store *st, uint64_t dir, const char *name, uint64_t newdir,
		const char *newname, unsigned int flags, uint64_t *victim);
int meta_readlink(struct meta_store *st, uint64_t ino, char *buf, size_t size);
int meta_readdir(struct meta_store *st, uint64_t dir, int64_t off, int plus, vn_fill_fn fill,
		 void *ctx);
int meta_statfs(struct meta_store *st, struct statvfs *out);
/* Free an inode whose link count is 0 (its last user went away). */
int meta_reclaim(struct meta_store *st, uint64_t ino);

/* Extended attributes (any namespace the caller allows). */
int meta_setxattr(struct meta_store *st, uint64_t ino, const char *name, const void *value,
		  size_t size, int flags);
int meta_getxattr(struct meta_store *st, uint64_t ino, const char *name, void *buf, size_t size);
int meta_listxattr(struct meta_store *st, uint64_t ino, char *buf, size_t size);
int meta_removexattr(struct meta_store *st, uint64_t ino, const char *name);

/*
 * DMAPI attributes, kept with the inode and freed with it; changing them
 * moves no time stamp.  Names are 1..META_DMATTR_NAME_MAX bytes.  get has
 * getxattr(2)'s rules (size 0: the length; -ERANGE; -ENODATA).
 */
#define META_DMATTR_NAME_MAX 63
int meta_dmattr_set(struct meta_store *st, uint64_t ino, const char *name, const void *value,
		    size_t size);
int meta_dmattr_get(struct meta_store *st, uint64_t ino, const char *name, void *buf, size_t size);
int meta_dmattr_remove(struct meta_store *st, uint64_t ino, const char *name);
/*
 * Call @fn for every inode that has DM attribute @name (store mutex held:
 * @fn must not call the store); non-zero from @fn stops (negative: the result).
 */
int meta_dmattr_scan(struct meta_store *st, const char *name,
		     int (*fn)(void *arg, uint64_t ino, const void *value, size_t len), void *arg);
/* Up to @max regular files with inode number >= @from, in order; returns how many. */
int meta_bulkstat(struct meta_store *st, uint64_t from, struct vn_attr *out, int max);

/* Data mapping, in blocks of the superblock's block size. */
enum meta_map_state { META_MAP_HOLE, META_MAP_DATA, META_MAP_UNWRITTEN };

struct meta_map {
	uint64_t fblk;             /* first file block */
	uint64_t nblk;             /* blocks */
	uint64_t pblk;             /* first data-region block (DATA, UNWRITTEN) */
	enum meta_map_state state;
};

/*
 * Describe file blocks [fblk, fblk+nblk) as at most @max runs in file order,
 * covering the range from its start without gaps (holes are runs too);
 * returns the number of runs (fewer than needed to cover all when @max is
 * reached).
 */
int meta_map_read(struct meta_store *st, uint64_t ino, uint64_t fblk, uint64_t nblk,
		  struct meta_map *maps, int max);

/*
 * Reserve up to @nblk data blocks for file blocks starting at @fblk of @ino,
 * as one run starting at data block @goal if free, else the next free run
 * after it.  With @goal == META_GOAL_ANY the run is placed after the file's
 * previous extent when possible.  *@pblk, *@got.
 */
#define META_GOAL_ANY UINT64_MAX
int meta_store_reserve(struct meta_store *st, uint64_t ino, uint64_t fblk, uint64_t nblk,
		       uint64_t goal, uint64_t *pblk, uint64_t *got);
void meta_store_unreserve(struct meta_store *st, uint64_t pblk, uint64_t nblk);

/*
 * Data for file blocks [fblk, fblk+nblk) now sits at [pblk, ...): record the
 * extent (reserved blocks) or mark an unwritten extent written (@pblk is
 * where it already was), and raise the size to @end_size if larger; update
 * mtime/ctime.  The data I/O must have completed before this is called.
 */
int meta_map_write(struct meta_store *st, uint64_t ino, uint64_t fblk, uint64_t nblk,
		   uint64_t pblk, int was_reserved);
/*
 * relatime, as ext4 mounts by default: true when an access to a file with
 * attributes @a should update its atime (atime not after mtime or ctime, or a
 * day old).
 */
int meta_atime_due(const struct vn_attr *a);
/* Set atime to now, leaving ctime alone. */
int meta_touch_atime(struct meta_store *st, uint64_t ino);
/*
 * The time stamp for a change made now, in ns since the epoch: the coarse
 * real-time clock, which ticks every few milliseconds as the kernel's file
 * time stamps do.  Two changes within one tick get the same stamp.
 */
int64_t meta_now_ns(void);
/* Raise size to @size if larger, set mtime and ctime to now (after a write). */
int meta_note_write(struct meta_store *st, uint64_t ino, uint64_t size, struct vn_attr *out);

/*
 * A cluster node gives back time stamps and a size it kept itself: each
 * given time stamp that is later than the stored one replaces it (the
 * largest wins), a given size replaces the stored one (with @size_grow, of
 * a node that wrote at SHARED_WRITE among others, only a larger one).
 * NULL: unchanged.
 */
int meta_apply_state(struct meta_store *st, uint64_t ino, const struct timespec *atime,
		     const struct timespec *mtime, const struct timespec *ctime,
		     const uint64_t *size, bool size_grow);

/* fallocate modes: allocate (unwritten), punch a hole; see fallocate(2); VN_IO_INVISIBLE. */
int meta_fallocate(struct meta_store *st, uint64_t ino, int mode, uint64_t off, uint64_t len);
/* SEEK_DATA / SEEK_HOLE. */
int meta_seek(struct meta_store *st, uint64_t ino, uint64_t off, int whence, uint64_t *result);

/* Checker: returns the number of problems found, each reported through @report. */
int meta_check(struct xvm_vol *dev, void (*report)(void *arg, const char *msg), void *arg);
/* The same checks of a store copy made by meta_store_backup, the file @path. */
int meta_check_store(const char *path, void (*report)(void *arg, const char *msg), void *arg);

#endif
