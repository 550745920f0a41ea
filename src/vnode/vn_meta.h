/*
 * vn_meta.h - the `meta` behavior: the bottom of a metadata server's chain,
 * where operations meet the metadata store and file data meets the volume.
 *
 * One struct vn_meta_fs per mounted filesystem holds what every vnode's meta
 * behavior shares: the store, the data device, the lock manager and the
 * vnode table.  vn_meta_shape() is the vnode table's shape callback for a
 * single-node filesystem: it pushes the meta behavior.
 */
#ifndef CXFS_VN_META_H
#define CXFS_VN_META_H

#include "vnode/vn.h"

struct meta_store;
struct vn_meta_fs;

int vn_meta_fs_create(struct meta_store *st, struct vn_meta_fs **out);
/* The table whose vnodes this filesystem's behaviors serve (for reclaim). */
void vn_meta_fs_set_table(struct vn_meta_fs *fs, struct vn_table *t);
void vn_meta_fs_destroy(struct vn_meta_fs *fs);
/* The POSIX and flock locks of the filesystem (relocation bags them). */
struct vn_lockmgr *vn_meta_fs_locks(struct vn_meta_fs *fs);

/* vn_shape_fn: @arg is the struct vn_meta_fs. */
int vn_meta_shape(void *arg, struct vnode *vn);

/* Data I/O counters for the admin socket and benchmarks. */
struct vn_meta_stats {
	uint64_t reads, writes, bytes_read, bytes_written, allocs;
};
void vn_meta_get_stats(struct vn_meta_fs *fs, struct vn_meta_stats *out);

#endif
