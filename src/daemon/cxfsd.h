/*
 * cxfsd.h - what the daemon's pieces share: the mounted filesystem's state
 * and the FUSE low-level operations table that serves it.
 */
#ifndef CXFS_CXFSD_H
#define CXFS_CXFSD_H

#include <fuse_lowlevel.h>

struct blk_dev;
struct cl_ctx;
struct meta_store;
struct vn_meta_fs;
struct vn_table;

/* One mounted filesystem; every field is constant while the session runs. */
struct cxfsd {
	struct blk_dev *dev;          /* the volume */
	struct meta_store *st;        /* its metadata store (this node is the MDS), or NULL */
	struct cl_ctx *cl;            /* cluster mode: the node's cluster context, or NULL */
	uint32_t node_id;             /* cluster node number (0: single machine) */
	struct vn_meta_fs *mfs;       /* shared state of the meta behaviors */
	struct vn_table *vt;          /* every vnode the kernel knows */
	double entry_timeout;         /* seconds the kernel may cache a name */
	double attr_timeout;          /* seconds the kernel may cache attributes */
	int writeback;                /* ask for the kernel's writeback cache */
	const char *mountpoint;       /* where it is mounted */
	struct fuse_session *se;      /* set once the session exists (cache invalidation) */
};

extern const struct fuse_lowlevel_ops cxfsd_fuse_ops;

#endif
