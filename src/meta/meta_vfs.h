/*
 * meta_vfs.h - the SQLite VFS that keeps the metadata database and its
 * write-ahead log in fixed regions of the volume.
 *
 * A registered VFS maps SQLite's files onto the superblock's regions: the
 * main database file to meta_db, "<name>-wal" to meta_wal and
 * "<name>-journal" to meta_jrnl.  Temporary files go to the default VFS (the
 * store also sets temp_store=MEMORY).  Each region begins with one 4 KiB
 * region header holding a magic, the file's durable logical size and a
 * CRC32C; file byte N lives at region.off + 4096 + N.  The size is written to
 * the header on xSync and xTruncate (and on xDelete, which sets it to 0), so
 * after a crash a file is exactly as long as it was at its last sync; SQLite's
 * own WAL checksums and salts cover frames written after that.
 *
 * Writes past the region end fail with SQLITE_FULL.  Locking is a no-op and
 * there are no shared-memory methods (iVersion 1 io methods): only one
 * process opens the store (the MDS), and the store runs in
 * locking_mode=EXCLUSIVE so WAL needs no -shm file.
 *
 * Sequential small writes (WAL frames are 24 + page-size bytes, unaligned)
 * are gathered in a per-file buffer and written in aligned chunks, flushed at
 * xSync, when the buffer is full, and before any read that overlaps it, so
 * the block device sees few read-modify-writes.
 */
#ifndef CXFS_META_VFS_H
#define CXFS_META_VFS_H

#include "meta/meta_sb.h"

struct xvm_vol;
struct meta_vfs;

#define META_REGION_HDR 4096u

/*
 * Register a VFS over @dev using the regions of @sb, under a unique name
 * that meta_vfs_name() returns (pass it to sqlite3_open_v2).  The caller must
 * meta_vfs_unregister() after closing every connection on it.
 */
int meta_vfs_register(struct xvm_vol *dev, const struct meta_sb *sb, struct meta_vfs **out);
const char *meta_vfs_name(const struct meta_vfs *vfs);
void meta_vfs_unregister(struct meta_vfs *vfs);

/*
 * Write every region file's gathered data and durable size to the volume,
 * without flushing the device: with synchronous=NORMAL a COMMIT does not
 * sync, so the store calls this right after COMMIT and then flushes the
 * device itself (outside its own mutex).  0 or -errno.
 */
int meta_vfs_write_out(struct meta_vfs *vfs);

/*
 * Reset the region headers of all three regions to an empty file (mkfs).
 */
int meta_vfs_format(struct xvm_vol *dev, const struct meta_sb *sb);

#endif
