/*
 * vn_lock.h - POSIX record locks and flock(2) locks of one filesystem.
 *
 * A lock manager keeps, per inode, the granted locks (type, inclusive byte
 * range, owner, pid, kind) and the waiters.  POSIX (fcntl) locks of one owner
 * merge and split like the kernel's: a new lock replaces the owner's own
 * locks in its range.  flock locks are whole-file locks owned by an open file
 * description; POSIX and flock locks do not conflict with each other (as on
 * Linux).  A blocking request waits until it can be granted, is
 * interrupted (-EINTR) or would deadlock (-EDEADLK: the wait-for graph over
 * POSIX owners has a cycle).  On a single node the meta behavior owns the
 * manager; in a cluster the metadata server does, so locks exclude across
 * nodes.  Each lock records the cluster node that holds it (vn_flock.node),
 * so the locks of a node that left go at once (vn_lock_release_node).
 */
#ifndef CXFS_VN_LOCK_H
#define CXFS_VN_LOCK_H

#include "vnode/vn.h"

struct vn_lockmgr;

int vn_lockmgr_create(struct vn_lockmgr **out);
void vn_lockmgr_destroy(struct vn_lockmgr *m);

/*
 * F_GETLK: if a lock of another owner conflicts with @lk, overwrite @lk with
 * it (type, range, pid); otherwise set lk->type = F_UNLCK.  0 or -errno.
 */
int vn_lock_test(struct vn_lockmgr *m, uint64_t ino, struct vn_flock *lk);

/*
 * F_SETLK / F_SETLKW / flock: grant, change or (type F_UNLCK) release.  With
 * @sleep == 0 a conflict gives -EAGAIN (POSIX) or -EWOULDBLOCK (flock, the
 * same value).  With @sleep, waits; @interrupted (may be NULL) is polled
 * about every 50 ms and a non-zero answer ends the wait with -EINTR.
 */
int vn_lock_set(struct vn_lockmgr *m, uint64_t ino, const struct vn_flock *lk, int sleep,
		int (*interrupted)(void *arg), void *arg);

/* Drop every lock of @owner on @ino of the given kind and wake waiters. */
void vn_lock_release(struct vn_lockmgr *m, uint64_t ino, uint64_t owner, int is_flock);

/*
 * A node left the cluster: drop every lock it holds (POSIX and flock, on
 * every inode) and wake the waiters.  Returns how many locks went.
 */
size_t vn_lock_release_node(struct vn_lockmgr *m, uint32_t node);

/*
 * Relocation: call @fn for every granted lock, under the manager's mutex
 * (@fn must not call the manager); non-zero stops.  A new manager takes
 * them back with vn_lock_set(sleep 0).
 */
int vn_lock_export(struct vn_lockmgr *m,
		   int (*fn)(void *arg, uint64_t ino, const struct vn_flock *lk), void *arg);

/* Number of granted locks on @ino (for tests and the admin socket). */
size_t vn_lock_count(struct vn_lockmgr *m, uint64_t ino);

#endif
