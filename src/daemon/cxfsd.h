/*
 * cxfsd.h - what the daemon's pieces share: the mounted filesystem's state
 * and the FUSE low-level operations table that serves it.
 */
#ifndef CXFS_CXFSD_H
#define CXFS_CXFSD_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>

struct xvm_vol;
struct cl_ctx;
struct meta_store;
struct vn_meta_fs;
struct vn_table;

/*
 * What the daemon read from /dev/fuse that orders flock requests after the
 * releases queued before them (cluster mode; see fuse_ops.c, "flock").
 */
struct cxfsd_flk {
	pthread_mutex_t mu;           /* a leaf but for libfuse's lock in fuse_req_interrupted() */
	pthread_cond_t cv;            /* broadcast whenever done grows */
	uint64_t read;                /* flock RELEASEs read; protected by mu */
	uint64_t done;                /* of which the lock is gone; protected by mu */
	uint64_t seen_below;          /* every request id below it was read (0: none
					 yet); protected by mu */
	uint64_t seen_ahead;          /* bit i: id seen_below + 2 * i was read; bit 0
					 is always clear; protected by mu */
};

/*
 * One mounted filesystem; every field but flk (which has its own mutex) is
 * constant while the session runs.
 */
struct cxfsd {
	struct xvm_vol *dev;          /* the volume */
	struct meta_store *st;        /* its metadata store (this node is the MDS), or NULL */
	struct cl_ctx *cl;            /* cluster mode: the node's cluster context, or NULL */
	uint32_t node_id;             /* cluster node number (0: single machine) */
	struct vn_meta_fs *mfs;       /* shared state of the meta behaviors */
	struct vn_table *vt;          /* every vnode the kernel knows */
	double entry_timeout;         /* seconds the kernel may cache a name */
	double attr_timeout;          /* seconds the kernel may cache attributes */
	int writeback;                /* ask for the kernel's writeback cache */
	const char *mountpoint;       /* where it is mounted */
	/*
	 * The session, for cache invalidations from cluster threads: set once it
	 * exists, NULL once it goes (cxfsd_session_get/put bracket each use).
	 */
	_Atomic(struct fuse_session *) se;
	atomic_uint notifying;        /* invalidations in progress on se */
	struct cxfsd_flk flk;         /* lock releases in flight */
	pthread_mutex_t admin_mu;     /* a leaf: protects admin */
	struct cxfsd_admin *admin;    /* the admin socket, while it serves */
};

extern const struct fuse_lowlevel_ops cxfsd_fuse_ops;

/*
 * The /dev/fuse read function read the request numbered @unique, a RELEASE
 * that drops locks if @lock_release; called on the thread that will handle
 * it, before it is handled (fuse_ops.c, "flock").
 */
void cxfsd_dev_read(struct cxfsd *d, uint64_t unique, int lock_release);
/* Does the RELEASE of open file description @fh drop record locks? */
bool cxfsd_fh_locked(uint64_t fh);

#endif
