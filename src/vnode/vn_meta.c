/*
 * vn_meta.c - the `meta` behavior: every vnode operation carried out on the
 * metadata store (src/meta) and, for file data, directly on the volume.
 *
 * Data path: reads map file blocks to volume blocks and read them (holes and
 * unwritten extents read as zeros).  Reads and writes hold the vnode's I/O
 * lock shared, so many run in parallel on one file; truncate, punch and
 * fallocate take it exclusive.  Besides, a read and a write that is neither
 * direct nor the write-back of the kernel's pages hold their bytes in the
 * node's byte-range lock (cx_rlock.h), so that a read sees such a write
 * whole or not at all (POSIX; in a cluster every read(2) and write(2)
 * reaches the daemon whole, and a read that mixed a local write's old and
 * new bytes was seen), while I/O of other bytes goes on.  A write over
 * blocks that already hold data goes straight to the volume.  A write that
 * needs new blocks first claims its block range in a second byte-range lock,
 * of blocks in allocation (a second writer of an overlapping range waits
 * for it), reserves blocks, writes the
 * data padded with zeros to whole blocks, and only then records the extent,
 * so no crash can leave a file pointing at blocks that were never written,
 * and sequential writers with many requests in flight (O_DIRECT, async I/O)
 * allocate and write concurrently.
 *
 * Lock order: vnode head (read, taken by vn_call) -> meta node I/O lock ->
 *             byte range (held across I/O) -> claimed blocks (held across
 *             I/O; both locks' mutexes are leaves) -> node mutex (allocation
 *             goal; never held across I/O or a store call) ; I/O lock ->
 *             note mutex (write notes) -> store
 *             mutex (inside meta_*) ; the lock manager's mutex is a leaf.
 */
#include "vnode/vn_meta.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cx_rlock.h"
#include "xvm/xvm.h"
#include "meta/meta_store.h"
#include "vnode/vn_lock.h"

#define VN_META_MAPS 64          /* extent runs fetched per mapping call */

struct vn_meta_fs {
	struct meta_store *st;       /* constant */
	struct xvm_vol *dev;         /* constant */
	uint64_t data_off;           /* constant: byte offset of the data region */
	uint32_t bs;                 /* constant: block size */
	struct vn_lockmgr *locks;    /* constant; internally locked */
	struct vn_table *table;      /* set once before the first operation */
	atomic_uint_fast64_t reads, writes, bytes_read, bytes_written, allocs;
};

struct vn_meta_node {
	struct vn_bhv bhv;           /* our place on the chain */
	struct vn_meta_fs *fs;       /* constant */
	pthread_rwlock_t iolock;     /* shared: read and write; exclusive: truncate,
				      * punch, fallocate */
	struct cx_rlock *bytes;      /* the bytes a read or a buffered write works on */
	struct cx_rlock *claims;     /* file blocks being allocated and written */
	pthread_mutex_t mu;          /* protects the fields below */
	uint64_t next_fblk;          /* where the last allocation ended (file block) */
	uint64_t next_pblk;          /* ... and on the volume: the goal for the next */
	pthread_mutex_t note_mu;     /* serializes write notes; protects the two below */
	uint64_t noted_size;         /* size the store has after our last write note */
	int64_t noted_ns;            /* time stamp that note gave mtime and ctime; 0: none */
};

static struct vn_meta_node *node_of(struct vn_bhv *b)
{
	return (struct vn_meta_node *)b->priv;
}

/* ---- data I/O ------------------------------------------------------------ */

static uint64_t vol_off(const struct vn_meta_fs *fs, uint64_t pblk)
{
	return fs->data_off + pblk * fs->bs;
}

/* Read [off, off+len) of the file, all inside its size, into @buf. */
static int read_range(struct vn_meta_fs *fs, uint64_t ino, char *buf, uint64_t off, size_t len)
{
	struct meta_map maps[VN_META_MAPS];
	uint64_t end = off + len, pos = off;
	int n, rc;

	while (pos < end) {
		uint64_t fblk = pos / fs->bs, lblk = (end + fs->bs - 1) / fs->bs;

		n = meta_map_read(fs->st, ino, fblk, lblk - fblk, maps, VN_META_MAPS);
		if (n < 0)
			return n;
		for (int i = 0; i < n && pos < end; i++) {
			uint64_t rend = (maps[i].fblk + maps[i].nblk) * fs->bs;
			size_t chunk = (size_t)((rend < end ? rend : end) - pos);

			if (maps[i].state == META_MAP_DATA) {
				uint64_t at = vol_off(fs, maps[i].pblk) + (pos - maps[i].fblk * fs->bs);

				rc = xvm_read(fs->dev, buf + (pos - off), chunk, at);
				if (rc)
					return rc;
			} else {
				memset(buf + (pos - off), 0, chunk);
			}
			pos += chunk;
		}
	}
	return 0;
}

/* The volume block where an allocation for file block @fblk should start. */
static uint64_t alloc_goal(struct vn_meta_node *n, uint64_t fblk)
{
	uint64_t goal = META_GOAL_ANY;

	pthread_mutex_lock(&n->mu);
	if (n->next_fblk && fblk >= n->next_fblk && fblk - n->next_fblk < 1024)
		goal = n->next_pblk + (fblk - n->next_fblk);
	pthread_mutex_unlock(&n->mu);
	return goal;
}

static void alloc_done(struct vn_meta_node *n, uint64_t fblk, uint64_t pblk, uint64_t got)
{
	pthread_mutex_lock(&n->mu);
	if (fblk + got > n->next_fblk) {
		n->next_fblk = fblk + got;
		n->next_pblk = pblk + got;
	}
	pthread_mutex_unlock(&n->mu);
}

/* The body of write_range(): advances *@posp as the data lands. */
static int write_range_at(struct vn_meta_node *node, uint64_t ino, const char *buf,
			  uint64_t off, size_t len, int may_alloc, uint64_t *posp)
{
	struct vn_meta_fs *fs = node->fs;
	struct meta_map maps[VN_META_MAPS];
	uint64_t end = off + len, pos = off;
	int n, rc = 0;

	while (pos < end) {
		uint64_t fblk = pos / fs->bs, lblk = (end + fs->bs - 1) / fs->bs;

		n = meta_map_read(fs->st, ino, fblk, lblk - fblk, maps, VN_META_MAPS);
		if (n < 0) {
			rc = n;
			goto out;
		}
		if (!may_alloc)
			for (int i = 0; i < n; i++)
				if (maps[i].state != META_MAP_DATA) {
					rc = -EAGAIN;
					goto out;
				}
		for (int i = 0; i < n && pos < end; i++) {
			struct meta_map *m = &maps[i];
			uint64_t rend = (m->fblk + m->nblk) * fs->bs;
			size_t chunk = (size_t)((rend < end ? rend : end) - pos);
			const char *src = buf + (pos - off);

			if (m->state == META_MAP_DATA) {
				rc = xvm_write(fs->dev, src, chunk,
					       vol_off(fs, m->pblk) + (pos - m->fblk * fs->bs));
			} else if (m->state == META_MAP_UNWRITTEN) {
				uint64_t b0 = pos / fs->bs, b1 = (pos + chunk + fs->bs - 1) / fs->bs;
				uint64_t p0 = m->pblk + (b0 - m->fblk);

				rc = xvm_write_padded(fs->dev, vol_off(fs, p0), (size_t)((b1 - b0) * fs->bs), src,
						      (size_t)(pos - b0 * fs->bs), chunk);
				if (!rc)
					rc = meta_map_write(fs->st, ino, b0, b1 - b0, p0, 0);
			} else {
				uint64_t b0 = pos / fs->bs, b1 = (pos + chunk + fs->bs - 1) / fs->bs;
				uint64_t pblk, got;

				rc = meta_store_reserve(fs->st, ino, b0, b1 - b0, alloc_goal(node, b0),
							&pblk, &got);
				if (rc)
					goto out;
				alloc_done(node, b0, pblk, got);
				if (got < b1 - b0)
					chunk = (size_t)((b0 + got) * fs->bs - pos);
				rc = xvm_write_padded(fs->dev, vol_off(fs, pblk), (size_t)(got * fs->bs), src,
					      (size_t)(pos - b0 * fs->bs), chunk);
				if (rc) {
					meta_store_unreserve(fs->st, pblk, got);
					goto out;
				}
				rc = meta_map_write(fs->st, ino, b0, got, pblk, 1);
				if (rc) {
					meta_store_unreserve(fs->st, pblk, got);
					goto out;
				}
				atomic_fetch_add(&fs->allocs, 1);
				pos += chunk;
				break;      /* the mapping changed: map again */
			}
			if (rc)
				goto out;
			pos += chunk;
		}
	}
out:
	*posp = pos;
	return rc;
}

/*
 * Write [off, off+len) from @buf.  With @may_alloc == 0 the call only
 * succeeds if every block is already mapped to data, and returns -EAGAIN
 * otherwise, before writing anything.  With @may_alloc the caller holds a
 * claim on the range's blocks.  *@done gets the bytes from @off on that are
 * written and recorded, also when an error (say ENOSPC) cuts the write short.
 */
static int write_range(struct vn_meta_node *node, uint64_t ino, const char *buf, uint64_t off,
		       size_t len, int may_alloc, size_t *done)
{
	uint64_t pos = off;
	int rc = write_range_at(node, ino, buf, off, len, may_alloc, &pos);

	*done = (size_t)(pos - off);
	return rc;
}

/* Zero [off, end) of the file where it lies in data blocks (partial blocks). */
static int zero_partial(struct vn_meta_fs *fs, uint64_t ino, uint64_t off, uint64_t end)
{
	struct meta_map m;
	char *zero;
	int rc;

	if (off >= end)
		return 0;
	rc = meta_map_read(fs->st, ino, off / fs->bs, 1, &m, 1);
	if (rc < 0)
		return rc;
	if (m.state != META_MAP_DATA)
		return 0;
	zero = calloc(1, (size_t)(end - off));
	if (!zero)
		return -ENOMEM;
	rc = xvm_write(fs->dev, zero, (size_t)(end - off), vol_off(fs, m.pblk) + off % fs->bs);
	free(zero);
	return rc;
}

/* ---- operations ---------------------------------------------------------- */

/*
 * Record in the store that a write ending at @end happened: a larger size,
 * and mtime and ctime of now.  Skipped when the size does not grow and our
 * last note, within the same clock tick, already gave mtime and ctime the
 * very value this one would; that spares a metadata transaction per small
 * write.  Notes are serialized per file, so a writer that skips knows the
 * note covering it is already in the store (and in any later fsync).
 */
static int note_write(struct vn_meta_node *n, uint64_t ino, uint64_t end)
{
	int64_t now = meta_now_ns();
	int rc = 0;

	pthread_mutex_lock(&n->note_mu);
	if (end > n->noted_size || now != n->noted_ns) {
		rc = meta_note_write(n->fs->st, ino, end, NULL);
		if (!rc) {
			n->noted_ns = now;
			if (end > n->noted_size)
				n->noted_size = end;
		}
	}
	pthread_mutex_unlock(&n->note_mu);
	return rc;
}

/* An invisible write ending at @end: a larger size, no time stamp. */
static int grow_quietly(struct vn_meta_node *n, uint64_t ino, uint64_t end)
{
	struct vn_attr a;
	int rc;

	pthread_mutex_lock(&n->note_mu);
	rc = meta_getattr(n->fs->st, ino, &a);
	if (!rc && end > a.size)
		rc = meta_apply_state(n->fs->st, ino, NULL, NULL, NULL, &end, true);
	n->noted_ns = 0;
	n->noted_size = 0;
	pthread_mutex_unlock(&n->note_mu);
	return rc;
}

/* Forget what note_write() knows: the size or time stamps change otherwise. */
static void note_forget(struct vn_meta_node *n)
{
	pthread_mutex_lock(&n->note_mu);
	n->noted_ns = 0;
	n->noted_size = 0;
	pthread_mutex_unlock(&n->note_mu);
}

static int m_getattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_getattr(node_of(self)->fs->st, vn_ino(vn), c->u.getattr.attr);
}

static int m_setattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct vn_meta_node *n = node_of(self);
	struct vn_meta_fs *fs = n->fs;
	uint64_t ino = vn_ino(vn);
	int rc;

	note_forget(n);
	if (!(c->u.setattr.mask & VN_SET_SIZE))
		return meta_setattr(fs->st, ino, c->u.setattr.in, c->u.setattr.mask,
				    c->u.setattr.attr);
	pthread_rwlock_wrlock(&n->iolock);
	{
		struct vn_attr cur;
		uint64_t size = c->u.setattr.in->size;

		rc = meta_getattr(fs->st, ino, &cur);
		/* Bytes past the new end of its last block must read zero if the
		 * file grows again. */
		if (!rc && S_ISREG(cur.mode) && size < cur.size && size % fs->bs) {
			uint64_t blk_end = (size / fs->bs + 1) * fs->bs;

			rc = zero_partial(fs, ino, size, blk_end < cur.size ? blk_end : cur.size);
		}
	}
	if (!rc)
		rc = meta_setattr(fs->st, ino, c->u.setattr.in, c->u.setattr.mask,
				  c->u.setattr.attr);
	pthread_rwlock_unlock(&n->iolock);
	return rc;
}

static int m_lookup(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_lookup(node_of(self)->fs->st, vn_ino(vn), c->u.lookup.name, c->u.lookup.attr);
}

static int m_mknod(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_mknod(node_of(self)->fs->st, vn_ino(vn), c->u.mknod.name, c->u.mknod.mode,
			  c->u.mknod.rdev, c->u.mknod.target, c->cred, c->u.mknod.attr);
}

static int m_link(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_link(node_of(self)->fs->st, c->u.link.ino, vn_ino(vn), c->u.link.name,
			 c->u.link.attr);
}

/* An inode lost a name: free it now if nobody holds it. */
static void reclaim_victim(struct vn_meta_fs *fs, uint64_t victim)
{
	struct vnode *v;

	if (!victim || !fs->table || vn_get(fs->table, victim, &v))
		return;
	vn_put(v, 1);
}

static int m_unlink(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct vn_meta_fs *fs = node_of(self)->fs;
	uint64_t victim;
	int rc;

	rc = meta_unlink(fs->st, vn_ino(vn), c->u.unlink.name, c->u.unlink.is_dir, &victim);
	if (!rc)
		reclaim_victim(fs, victim);
	return rc;
}

static int m_rename(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct vn_meta_fs *fs = node_of(self)->fs;
	uint64_t victim;
	int rc;

	rc = meta_rename(fs->st, vn_ino(vn), c->u.rename.name, c->u.rename.newdir,
			 c->u.rename.newname, c->u.rename.flags, &victim);
	if (!rc)
		reclaim_victim(fs, victim);
	return rc;
}

static int m_readlink(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_readlink(node_of(self)->fs->st, vn_ino(vn), c->u.readlink.buf,
			     c->u.readlink.size);
}

static int m_open(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct vn_attr a;

	return meta_getattr(node_of(self)->fs->st, vn_ino(vn), &a);
}

static int m_release(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct vn_meta_fs *fs = node_of(self)->fs;

	vn_lock_release(fs->locks, vn_ino(vn), c->u.release.lock_owner, 0);
	if (c->u.release.flock_release)
		vn_lock_release(fs->locks, vn_ino(vn), c->u.release.lock_owner, 1);
	return 0;
}

static int m_read(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct vn_meta_node *n = node_of(self);
	struct vn_meta_fs *fs = n->fs;
	uint64_t off = c->u.read.off;
	size_t len = c->u.read.size;
	struct cx_rlock_hold bh;
	struct vn_attr a;
	int rc;

	pthread_rwlock_rdlock(&n->iolock);
	cx_rlock_lock(n->bytes, &bh, off, off + len, false);
	rc = meta_getattr(fs->st, vn_ino(vn), &a);
	if (rc)
		goto out;
	if (S_ISDIR(a.mode)) {
		rc = -EISDIR;
		goto out;
	}
	if (off >= a.size) {
		rc = 0;
		goto out;
	}
	if (len > a.size - off)
		len = (size_t)(a.size - off);
	rc = read_range(fs, vn_ino(vn), c->u.read.buf, off, len);
	/* atime is best effort: the data was read whatever happens to it. */
	if (!rc && !(c->u.read.flags & VN_IO_INVISIBLE) && meta_atime_due(&a))
		(void)meta_touch_atime(fs->st, vn_ino(vn));
	if (!rc) {
		rc = (int)len;
		atomic_fetch_add(&fs->reads, 1);
		atomic_fetch_add(&fs->bytes_read, len);
	}
out:
	cx_rlock_unlock(n->bytes, &bh);
	pthread_rwlock_unlock(&n->iolock);
	return rc;
}

static int m_write(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct vn_meta_node *n = node_of(self);
	struct vn_meta_fs *fs = n->fs;
	uint64_t ino = vn_ino(vn), off = c->u.write.off;
	size_t len = c->u.write.size, done;
	/* Seen whole by reads: all but direct writes and the kernel's write-back. */
	bool whole = !(c->u.write.flags & (O_DIRECT | VN_IO_PAGES));
	struct cx_rlock_hold bh;
	int rc;

	if (len == 0)
		return 0;
	/* As ext4: nothing at or past the largest size, a short write up to it. */
	if (off >= META_MAX_FILE_SIZE)
		return -EFBIG;
	if (len > META_MAX_FILE_SIZE - off)
		len = (size_t)(META_MAX_FILE_SIZE - off);
	pthread_rwlock_rdlock(&n->iolock);
	if (whole)
		cx_rlock_lock(n->bytes, &bh, off, off + len, true);
	rc = write_range(n, ino, c->u.write.buf, off, len, 0, &done);
	if (rc == -EAGAIN) {
		struct cx_rlock_hold claim;

		cx_rlock_lock(n->claims, &claim, off / fs->bs, (off + len + fs->bs - 1) / fs->bs, true);
		rc = write_range(n, ino, c->u.write.buf, off, len, 1, &done);
		cx_rlock_unlock(n->claims, &claim);
	}
	pthread_rwlock_unlock(&n->iolock);
	/* A write cut short (ENOSPC) returns what it wrote, as write(2) does. */
	if (rc < 0 && done > 0) {
		rc = 0;
		len = done;
	}
	if (!rc && (c->u.write.flags & VN_IO_INVISIBLE))
		rc = grow_quietly(n, ino, off + len);
	else if (!rc)
		rc = note_write(n, ino, off + len);
	/* Only now: a read must not see the new bytes without the size they give. */
	if (whole)
		cx_rlock_unlock(n->bytes, &bh);
	if (!rc) {
		atomic_fetch_add(&fs->writes, 1);
		atomic_fetch_add(&fs->bytes_written, len);
		rc = (int)len;
	}
	return rc;
}

static int m_fsync(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_store_sync(node_of(self)->fs->st);
}

static int m_readdir(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct meta_store *st = node_of(self)->fs->st;
	struct vn_attr a;
	int rc;

	rc = meta_readdir(st, vn_ino(vn), c->u.readdir.off, c->u.readdir.plus, c->u.readdir.fill,
			  c->u.readdir.ctx);
	/* Reading a directory from its start counts as an access (relatime). */
	if (!rc && c->u.readdir.off == 0 && !meta_getattr(st, vn_ino(vn), &a) &&
	    meta_atime_due(&a))
		(void)meta_touch_atime(st, vn_ino(vn));
	return rc;
}

static int m_statfs(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_statfs(node_of(self)->fs->st, c->u.statfs.st);
}

static int m_setxattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_setxattr(node_of(self)->fs->st, vn_ino(vn), c->u.setxattr.name,
			     c->u.setxattr.value, c->u.setxattr.size, c->u.setxattr.flags);
}

static int m_getxattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_getxattr(node_of(self)->fs->st, vn_ino(vn), c->u.getxattr.name,
			     c->u.getxattr.buf, c->u.getxattr.size);
}

static int m_listxattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_listxattr(node_of(self)->fs->st, vn_ino(vn), c->u.listxattr.buf,
			      c->u.listxattr.size);
}

static int m_removexattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_removexattr(node_of(self)->fs->st, vn_ino(vn), c->u.removexattr.name);
}

static int m_fallocate(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct vn_meta_node *n = node_of(self);
	struct vn_meta_fs *fs = n->fs;
	uint64_t ino = vn_ino(vn), off = c->u.fallocate.off, end = off + c->u.fallocate.len;
	int mode = c->u.fallocate.mode, rc = 0;

	note_forget(n);
	pthread_rwlock_wrlock(&n->iolock);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		struct vn_attr a;

		rc = meta_getattr(fs->st, ino, &a);
		if (!rc && end > a.size)
			end = a.size > off ? a.size : off;
		/*
		 * Zero the partial blocks at both ends (past the size they
		 * read as zeros already); whole blocks are freed, or made
		 * unwritten (a zeroed range).
		 */
		if (!rc && off < end) {
			uint64_t first_end = (off / fs->bs + 1) * fs->bs;

			if (off % fs->bs)
				rc = zero_partial(fs, ino, off, first_end < end ? first_end : end);
			if (!rc && end % fs->bs && end / fs->bs > off / fs->bs)
				rc = zero_partial(fs, ino, end - end % fs->bs, end);
		}
	}
	if (!rc)
		rc = meta_fallocate(fs->st, ino, mode, c->u.fallocate.off, c->u.fallocate.len);
	pthread_rwlock_unlock(&n->iolock);
	return rc;
}

static int m_lseek(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return meta_seek(node_of(self)->fs->st, vn_ino(vn), c->u.lseek.off, c->u.lseek.whence,
			 &c->u.lseek.result);
}

static int m_getlk(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return vn_lock_test(node_of(self)->fs->locks, vn_ino(vn), c->u.getlk.lk);
}

/* The lock belongs to the node the call comes from, so it goes if that node leaves. */
static int m_setlk(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct vn_flock lk = *c->u.setlk.lk;

	lk.node = c->node;
	return vn_lock_set(node_of(self)->fs->locks, vn_ino(vn), &lk, c->u.setlk.sleep,
			   c->u.setlk.interrupted, c->u.setlk.arg);
}

static int m_inactive(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct vn_meta_fs *fs = node_of(self)->fs;
	struct vn_attr a;

	if (meta_getattr(fs->st, vn_ino(vn), &a) || a.nlink > 0)
		return 0;
	return meta_reclaim(fs->st, vn_ino(vn));
}

static void m_destroy(struct vn_bhv *self, struct vnode *vn)
{
	struct vn_meta_node *n = node_of(self);

	pthread_rwlock_destroy(&n->iolock);
	cx_rlock_free(n->bytes);
	pthread_mutex_destroy(&n->mu);
	pthread_mutex_destroy(&n->note_mu);
	cx_rlock_free(n->claims);
	free(n);
}

static const struct vn_ops vn_meta_ops = {
	.name = "meta",
	.position = VN_POS_META,
	.op = {
		[VN_OP_GETATTR] = m_getattr,
		[VN_OP_SETATTR] = m_setattr,
		[VN_OP_LOOKUP] = m_lookup,
		[VN_OP_MKNOD] = m_mknod,
		[VN_OP_LINK] = m_link,
		[VN_OP_UNLINK] = m_unlink,
		[VN_OP_RENAME] = m_rename,
		[VN_OP_READLINK] = m_readlink,
		[VN_OP_OPEN] = m_open,
		[VN_OP_RELEASE] = m_release,
		[VN_OP_READ] = m_read,
		[VN_OP_WRITE] = m_write,
		[VN_OP_FSYNC] = m_fsync,
		[VN_OP_READDIR] = m_readdir,
		[VN_OP_STATFS] = m_statfs,
		[VN_OP_SETXATTR] = m_setxattr,
		[VN_OP_GETXATTR] = m_getxattr,
		[VN_OP_LISTXATTR] = m_listxattr,
		[VN_OP_REMOVEXATTR] = m_removexattr,
		[VN_OP_FALLOCATE] = m_fallocate,
		[VN_OP_LSEEK] = m_lseek,
		[VN_OP_GETLK] = m_getlk,
		[VN_OP_SETLK] = m_setlk,
		[VN_OP_INACTIVE] = m_inactive,
	},
	.destroy = m_destroy,
};

int vn_meta_shape(void *arg, struct vnode *vn)
{
	struct vn_meta_node *n = calloc(1, sizeof(*n));
	int rc;

	if (!n)
		return -ENOMEM;
	n->fs = arg;
	n->bytes = cx_rlock_new();
	n->claims = cx_rlock_new();
	if (!n->bytes || !n->claims) {
		cx_rlock_free(n->bytes);
		cx_rlock_free(n->claims);
		free(n);
		return -ENOMEM;
	}
	pthread_rwlock_init(&n->iolock, NULL);
	pthread_mutex_init(&n->mu, NULL);
	pthread_mutex_init(&n->note_mu, NULL);
	n->bhv.ops = &vn_meta_ops;
	n->bhv.priv = n;
	rc = vn_bhv_insert(vn, &n->bhv);
	if (rc)
		m_destroy(&n->bhv, vn);
	return rc;
}

int vn_meta_fs_create(struct meta_store *st, struct vn_meta_fs **out)
{
	struct vn_meta_fs *fs = calloc(1, sizeof(*fs));
	int rc;

	if (!fs)
		return -ENOMEM;
	fs->st = st;
	fs->dev = meta_store_dev(st);
	fs->data_off = meta_store_sb(st)->data.off;
	fs->bs = meta_store_sb(st)->block_size;
	rc = vn_lockmgr_create(&fs->locks);
	if (rc) {
		free(fs);
		return rc;
	}
	*out = fs;
	return 0;
}

void vn_meta_fs_set_table(struct vn_meta_fs *fs, struct vn_table *t)
{
	fs->table = t;
}

void vn_meta_fs_destroy(struct vn_meta_fs *fs)
{
	if (!fs)
		return;
	vn_lockmgr_destroy(fs->locks);
	free(fs);
}

void vn_meta_get_stats(struct vn_meta_fs *fs, struct vn_meta_stats *out)
{
	out->reads = atomic_load(&fs->reads);
	out->writes = atomic_load(&fs->writes);
	out->bytes_read = atomic_load(&fs->bytes_read);
	out->bytes_written = atomic_load(&fs->bytes_written);
	out->allocs = atomic_load(&fs->allocs);
}

struct vn_lockmgr *vn_meta_fs_locks(struct vn_meta_fs *fs)
{
	return fs->locks;
}
