/*
 * meta_vfs.c - the SQLite VFS that maps the metadata database, its WAL and
 * its rollback journal onto the fixed regions of the volume named by the
 * superblock (see meta_vfs.h for the contract).
 *
 * Sections, in order:
 *   - the region table and the region header codec;
 *   - the per-file write-gather buffer;
 *   - the io methods (iVersion 1: no shared memory);
 *   - the VFS methods, delegating temporary files, randomness, sleep, time
 *     and dynamic loading to the default VFS;
 *   - registration and meta_vfs_format.
 *
 * Region header (the first META_REGION_HDR bytes of a region, little-endian,
 * zero beyond the fields):
 *
 *     0  magic "CXFSREG1"   8 bytes
 *     8  kind (enum vfs_kind) u32
 *    12  reserved, zero     u32
 *    16  logical size        u64
 *    24  CRC32C of [0, 24)   u32
 *
 * Locking: each registered VFS has one mutex, meta_vfs.lock, taken by every
 * io method and by xOpen, xDelete and xAccess for a region file; it protects
 * the region table and the state of the files open on it, so xAccess or
 * xDelete from another connection's thread sees a consistent size.  It is
 * held across block I/O (the blk layer takes only its own internal locks
 * below it).  Lock order: SQLite's connection mutex -> meta_vfs.lock -> blk
 * internals.  Files delegated to the default VFS never touch the lock.
 *
 * Durability: xSync writes the gathered data, then the size header if the
 * size changed, then issues one xvm_flush.  The data and the header thus
 * become durable together; a crash before the flush completes may leave a
 * header whose size covers bytes that never reached the volume.  That is the
 * case SQLite already assumes of a file system without
 * SQLITE_IOCAP_SAFE_APPEND (a file extended with garbage): WAL frames carry
 * checksums and salts, journal records a checksum and a record count, and
 * database pages are only trusted after the WAL or journal that covers them
 * is synced.  So one flush per sync, not two, is enough.
 *
 * SQLITE_IOCAP_POWERSAFE_OVERWRITE: every sector this file writes holds
 * either bytes SQLite asked to write, bytes read back from the volume just
 * before (the head and tail of a partial sector), or zeros past the file's
 * logical end.  Bytes SQLite did not write are therefore rewritten with their
 * own value, so a torn or interrupted sector write cannot change them, which
 * is what the flag promises.  It spares the WAL its sector padding.
 */
#include "meta/meta_le.h"
#include "meta/meta_vfs.h"
#include "meta/meta_sb.h"
#include "xvm/xvm.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VFS_SECTOR 4096u                   /* sector size reported to SQLite, write granule */
#define VFS_GATHER (1u << 20)              /* bytes of a file's write-gather buffer */
#define VFS_HDR_MAGIC "CXFSREG1"
#define VFS_HDR_CRC_OFF 24

_Static_assert(VFS_GATHER % VFS_SECTOR == 0, "gather buffer holds whole sectors");
_Static_assert(META_REGION_HDR % VFS_SECTOR == 0, "region data starts on a sector");

enum vfs_kind { VFS_DB, VFS_WAL, VFS_JRNL, VFS_NKINDS };

/* What distinguishes the three region files: a table, not three branches. */
static const struct {
	const char *label;                 /* superblock name of the region, for messages */
	const char *suffix;                /* file name suffix that selects it, or NULL */
	int open_flag;                     /* SQLITE_OPEN_* type that selects it in xOpen */
	size_t member;                     /* offsetof(struct meta_sb, <region>) */
} vfs_kinds[VFS_NKINDS] = {
	[VFS_DB] = { "meta_db", NULL, SQLITE_OPEN_MAIN_DB, offsetof(struct meta_sb, meta_db) },
	[VFS_WAL] = { "meta_wal", "-wal", SQLITE_OPEN_WAL, offsetof(struct meta_sb, meta_wal) },
	[VFS_JRNL] = { "meta_jrnl", "-journal", SQLITE_OPEN_MAIN_JOURNAL, offsetof(struct meta_sb, meta_jrnl) },
};

struct vfs_file;

/* One region of the volume and the file SQLite keeps in it. */
struct vfs_region {
	uint64_t off;                      /* volume offset of the region header; constant */
	uint64_t cap;                      /* bytes the file may hold (length - header); constant */
	uint64_t size;                     /* logical file size as SQLite sees it; vfs->lock */
	uint64_t hdr_size;                 /* size recorded in the on-volume header; vfs->lock */
	int loaded;                        /* size and hdr_size were read from the header; vfs->lock */
	int unsynced;                      /* blk writes since the last xvm_flush; vfs->lock */
	struct vfs_file *file;             /* the one open handle, or NULL; vfs->lock */
};

struct meta_vfs {
	sqlite3_vfs base;                  /* registered with SQLite; base.pAppData == this */
	sqlite3_vfs *deflt;                /* default VFS: temp files, randomness, time; constant */
	struct xvm_vol *dev;               /* the volume, not owned; constant */
	pthread_mutex_t lock;              /* protects regions[] and the open files' state */
	struct vfs_region regions[VFS_NKINDS]; /* indexed by enum vfs_kind */
	char name[64];                     /* "cxfs-<uuid>-<n>", base.zName points here */
};

/* An open region file.  Every field after base is protected by vfs->lock. */
struct vfs_file {
	sqlite3_file base;                 /* base.pMethods == &vfs_io */
	struct meta_vfs *vfs;              /* owner */
	enum vfs_kind kind;                /* which region */
	struct vfs_region *reg;            /* &vfs->regions[kind] */
	uint8_t *buf;                      /* write-gather buffer, VFS_GATHER bytes */
	uint64_t buf_off;                  /* file offset of buf[0], a multiple of VFS_SECTOR */
	size_t buf_len;                    /* bytes of buf holding file content from buf_off */
	int buf_dirty;                     /* buf holds content not yet written to the volume */
};

static atomic_uint vfs_counter;            /* makes each registered name unique */

static const struct meta_region *sb_region(const struct meta_sb *sb, enum vfs_kind k)
{
	return (const struct meta_region *)((const char *)sb + vfs_kinds[k].member);
}

/* A region can hold a file: whole sectors, with room after its header. */
static int region_usable(const struct meta_region *r)
{
	return r->off % VFS_SECTOR == 0 && r->len % VFS_SECTOR == 0 && r->len > META_REGION_HDR &&
	       r->off + r->len > r->off;
}

static int hdr_write(struct xvm_vol *dev, uint64_t region_off, enum vfs_kind k, uint64_t size)
{
	uint8_t *hdr = calloc(1, META_REGION_HDR);
	int rc;

	if (!hdr)
		return -ENOMEM;
	memcpy(hdr, VFS_HDR_MAGIC, 8);
	put_le32(hdr + 8, (uint32_t)k);
	put_le64(hdr + 16, size);
	put_le32(hdr + VFS_HDR_CRC_OFF, meta_crc32c(0, hdr, VFS_HDR_CRC_OFF));
	rc = xvm_write(dev, hdr, META_REGION_HDR, region_off);
	free(hdr);
	return rc;
}

/* Read region @k's header into its table entry.  Called with vfs->lock held. */
static int region_load(struct meta_vfs *vfs, enum vfs_kind k)
{
	struct vfs_region *reg = &vfs->regions[k];
	uint8_t hdr[32];
	uint64_t size;
	int rc;

	if (reg->loaded)
		return 0;
	rc = xvm_read(vfs->dev, hdr, sizeof(hdr), reg->off);
	if (rc < 0) {
		sqlite3_log(SQLITE_IOERR, "%s: region %s: cannot read the header: %s",
			    vfs->name, vfs_kinds[k].label, strerror(-rc));
		return rc;
	}
	size = get_le64(hdr + 16);
	if (memcmp(hdr, VFS_HDR_MAGIC, 8) != 0)
		sqlite3_log(SQLITE_CORRUPT, "%s: region %s: no region header (bad magic; not formatted?)",
			    vfs->name, vfs_kinds[k].label);
	else if (get_le32(hdr + VFS_HDR_CRC_OFF) != meta_crc32c(0, hdr, VFS_HDR_CRC_OFF))
		sqlite3_log(SQLITE_CORRUPT, "%s: region %s: header checksum mismatch",
			    vfs->name, vfs_kinds[k].label);
	else if (get_le32(hdr + 8) != (uint32_t)k)
		sqlite3_log(SQLITE_CORRUPT, "%s: region %s: header is of kind %" PRIu32 ", not %d",
			    vfs->name, vfs_kinds[k].label, get_le32(hdr + 8), (int)k);
	else if (size > reg->cap)
		sqlite3_log(SQLITE_CORRUPT, "%s: region %s: size %" PRIu64 " exceeds the capacity %" PRIu64,
			    vfs->name, vfs_kinds[k].label, size, reg->cap);
	else {
		reg->size = reg->hdr_size = size;
		reg->loaded = 1;
		return 0;
	}
	return -EBADMSG;
}

/* Write the size header if it differs from the in-memory size.  vfs->lock held. */
static int region_persist_size(struct meta_vfs *vfs, enum vfs_kind k)
{
	struct vfs_region *reg = &vfs->regions[k];
	int rc;

	if (reg->size == reg->hdr_size)
		return 0;
	rc = hdr_write(vfs->dev, reg->off, k, reg->size);
	if (rc < 0)
		return rc;
	reg->hdr_size = reg->size;
	reg->unsynced = 1;
	return 0;
}

/*
 * Write-gather buffer.  buf[0, buf_len) is the file's content from buf_off,
 * which is sector-aligned: the head of a first partial sector is read from
 * the volume once, when the buffer starts.  A flush writes whole sectors,
 * filling the tail of the last one from the volume (or with zeros past the
 * end of the file), and keeps that last partial sector so that the next
 * appending write needs no read.  All with vfs->lock held.
 */

static uint64_t file_dev_off(const struct vfs_file *f, uint64_t pos)
{
	return f->reg->off + META_REGION_HDR + pos;
}

/* Read file bytes [pos, pos + len) from the volume, zeros past the end of the file. */
static int file_read_volume(struct vfs_file *f, uint8_t *dst, size_t len, uint64_t pos)
{
	uint64_t size = f->reg->size;
	size_t avail = pos >= size ? 0 : size - pos < len ? (size_t)(size - pos) : len;
	int rc;

	if (avail) {
		rc = xvm_read(f->vfs->dev, dst, avail, file_dev_off(f, pos));
		if (rc < 0)
			return rc;
	}
	memset(dst + avail, 0, len - avail);
	return 0;
}

static int gather_flush(struct vfs_file *f)
{
	size_t end = f->buf_len, wlen = (end + VFS_SECTOR - 1) / VFS_SECTOR * VFS_SECTOR;
	size_t last;
	int rc;

	if (!f->buf_dirty)
		return 0;
	if (wlen > end) {
		rc = file_read_volume(f, f->buf + end, wlen - end, f->buf_off + end);
		if (rc < 0)
			return rc;
	}
	rc = xvm_write(f->vfs->dev, f->buf, wlen, file_dev_off(f, f->buf_off));
	if (rc < 0)
		return rc;
	f->reg->unsynced = 1;
	f->buf_dirty = 0;
	last = end - end % VFS_SECTOR;
	if (last < end)
		memmove(f->buf, f->buf + last, VFS_SECTOR);
	f->buf_off += last;
	f->buf_len = end - last;
	return 0;
}

/* Forget the buffer's content (after a truncate or delete); flush first if it matters. */
static void gather_drop(struct vfs_file *f)
{
	f->buf_off = 0;
	f->buf_len = 0;
	f->buf_dirty = 0;
}

static int gather_write(struct vfs_file *f, const uint8_t *src, size_t len, uint64_t pos)
{
	int rc;

	while (len > 0) {
		size_t at, n;

		if (pos < f->buf_off || pos > f->buf_off + f->buf_len || pos >= f->buf_off + VFS_GATHER) {
			size_t head = (size_t)(pos % VFS_SECTOR);

			rc = gather_flush(f);
			if (rc < 0)
				return rc;
			f->buf_off = pos - head;
			f->buf_len = 0;
			if (head) {
				rc = file_read_volume(f, f->buf, head, f->buf_off);
				if (rc < 0)
					return rc;
			}
			f->buf_len = head;
		}
		at = (size_t)(pos - f->buf_off);
		n = VFS_GATHER - at < len ? VFS_GATHER - at : len;
		memcpy(f->buf + at, src, n);
		if (at + n > f->buf_len)
			f->buf_len = at + n;
		f->buf_dirty = 1;
		src += n;
		pos += n;
		len -= n;
		if (f->buf_len == VFS_GATHER) {
			rc = gather_flush(f);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* Extend the file with zeros to @to bytes, as a POSIX file reads its holes. */
static int file_zero_extend(struct vfs_file *f, uint64_t to)
{
	static const uint8_t zeros[VFS_SECTOR];
	int rc;

	while (f->reg->size < to) {
		uint64_t n = to - f->reg->size < VFS_SECTOR ? to - f->reg->size : VFS_SECTOR;

		rc = gather_write(f, zeros, (size_t)n, f->reg->size);
		if (rc < 0)
			return rc;
		f->reg->size += n;
	}
	return 0;
}

/*
 * io methods.  Those that touch the file's or the region's state take
 * f->vfs->lock for the whole call; the others are constant answers.
 */

static int io_close(sqlite3_file *file)
{
	struct vfs_file *f = (struct vfs_file *)file;
	struct meta_vfs *vfs = f->vfs;
	int rc;

	pthread_mutex_lock(&vfs->lock);
	rc = gather_flush(f);
	if (rc < 0)
		sqlite3_log(SQLITE_IOERR_CLOSE, "%s: region %s: write on close failed: %s",
			    vfs->name, vfs_kinds[f->kind].label, strerror(-rc));
	f->reg->file = NULL;
	pthread_mutex_unlock(&vfs->lock);
	free(f->buf);
	f->buf = NULL;
	return rc < 0 ? SQLITE_IOERR_CLOSE : SQLITE_OK;
}

static int io_read(sqlite3_file *file, void *dst, int amt, sqlite3_int64 ofst)
{
	struct vfs_file *f = (struct vfs_file *)file;
	uint64_t pos = (uint64_t)ofst;
	int rc, short_read;

	if (ofst < 0 || amt < 0)
		return SQLITE_IOERR_READ;
	pthread_mutex_lock(&f->vfs->lock);
	if (f->buf_dirty && pos < f->buf_off + f->buf_len && f->buf_off < pos + (uint64_t)amt) {
		rc = gather_flush(f);
		if (rc < 0)
			goto out_unlock;
	}
	rc = file_read_volume(f, dst, (size_t)amt, pos);
out_unlock:
	short_read = pos + (uint64_t)amt > f->reg->size;
	pthread_mutex_unlock(&f->vfs->lock);
	if (rc < 0)
		return SQLITE_IOERR_READ;
	return short_read ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int io_write(sqlite3_file *file, const void *src, int amt, sqlite3_int64 ofst)
{
	struct vfs_file *f = (struct vfs_file *)file;
	uint64_t pos = (uint64_t)ofst;
	int rc;

	if (ofst < 0 || amt < 0)
		return SQLITE_IOERR_WRITE;
	if (pos > f->reg->cap || (uint64_t)amt > f->reg->cap - pos)
		return SQLITE_FULL;
	pthread_mutex_lock(&f->vfs->lock);
	rc = file_zero_extend(f, pos);
	if (rc == 0)
		rc = gather_write(f, src, (size_t)amt, pos);
	if (rc == 0 && pos + (uint64_t)amt > f->reg->size)
		f->reg->size = pos + (uint64_t)amt;
	pthread_mutex_unlock(&f->vfs->lock);
	return rc < 0 ? SQLITE_IOERR_WRITE : SQLITE_OK;
}

static int io_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct vfs_file *f = (struct vfs_file *)file;
	int rc;

	if (size < 0)
		return SQLITE_IOERR_TRUNCATE;
	if ((uint64_t)size > f->reg->cap)
		return SQLITE_FULL;
	pthread_mutex_lock(&f->vfs->lock);
	rc = file_zero_extend(f, (uint64_t)size);
	if (rc == 0)
		rc = gather_flush(f);
	if (rc == 0) {
		gather_drop(f);
		f->reg->size = (uint64_t)size;
		rc = region_persist_size(f->vfs, f->kind);
	}
	pthread_mutex_unlock(&f->vfs->lock);
	return rc < 0 ? SQLITE_IOERR_TRUNCATE : SQLITE_OK;
}

static int io_sync(sqlite3_file *file, int flags)
{
	struct vfs_file *f = (struct vfs_file *)file;
	int rc;

	pthread_mutex_lock(&f->vfs->lock);
	rc = gather_flush(f);
	if (rc == 0)
		rc = region_persist_size(f->vfs, f->kind);
	if (rc == 0 && f->reg->unsynced) {
		rc = xvm_flush(f->vfs->dev);
		if (rc == 0)
			f->reg->unsynced = 0;
	}
	pthread_mutex_unlock(&f->vfs->lock);
	return rc < 0 ? SQLITE_IOERR_FSYNC : SQLITE_OK;
}

static int io_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct vfs_file *f = (struct vfs_file *)file;

	pthread_mutex_lock(&f->vfs->lock);
	*size = (sqlite3_int64)f->reg->size;
	pthread_mutex_unlock(&f->vfs->lock);
	return SQLITE_OK;
}

/* Only the MDS opens the store, in locking_mode=EXCLUSIVE: locks have nothing to exclude. */
static int io_lock(sqlite3_file *file, int level)
{
	return SQLITE_OK;
}

static int io_unlock(sqlite3_file *file, int level)
{
	return SQLITE_OK;
}

static int io_check_reserved_lock(sqlite3_file *file, int *out)
{
	*out = 0;
	return SQLITE_OK;
}

static int io_file_control(sqlite3_file *file, int op, void *arg)
{
	return SQLITE_NOTFOUND;
}

static int io_sector_size(sqlite3_file *file)
{
	return VFS_SECTOR;
}

static int io_device_characteristics(sqlite3_file *file)
{
	return SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static const sqlite3_io_methods vfs_io = {
	.iVersion = 1,
	.xClose = io_close,
	.xRead = io_read,
	.xWrite = io_write,
	.xTruncate = io_truncate,
	.xSync = io_sync,
	.xFileSize = io_file_size,
	.xLock = io_lock,
	.xUnlock = io_unlock,
	.xCheckReservedLock = io_check_reserved_lock,
	.xFileControl = io_file_control,
	.xSectorSize = io_sector_size,
	.xDeviceCharacteristics = io_device_characteristics,
};

/* VFS methods. */

static struct meta_vfs *to_vfs(sqlite3_vfs *base)
{
	return base->pAppData;
}

/* The region a file name selects (xDelete, xAccess), or -1 for the default VFS. */
static int kind_for_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	for (int k = 0; k < VFS_NKINDS; k++) {
		const char *sfx = vfs_kinds[k].suffix;
		size_t sl = sfx ? strlen(sfx) : 0;

		if (sfx && n > sl && strcmp(name + n - sl, sfx) == 0)
			return k;
	}
	return -1;
}

static int kind_for_open(int flags)
{
	for (int k = 0; k < VFS_NKINDS; k++)
		if (flags & vfs_kinds[k].open_flag)
			return k;
	return -1;
}

static int vfs_open(sqlite3_vfs *base, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
	struct meta_vfs *vfs = to_vfs(base);
	struct vfs_file *f = (struct vfs_file *)file;
	int k = kind_for_open(flags);
	int rc = SQLITE_OK;

	if (k < 0 || !name)
		return vfs->deflt->xOpen(vfs->deflt, name, file, flags, out_flags);

	memset(f, 0, sizeof(*f));
	f->buf = aligned_alloc(VFS_SECTOR, VFS_GATHER);
	if (!f->buf)
		return SQLITE_NOMEM;
	pthread_mutex_lock(&vfs->lock);
	if (vfs->regions[k].file) {
		sqlite3_log(SQLITE_CANTOPEN, "%s: region %s is already open (one connection per store)",
			    vfs->name, vfs_kinds[k].label);
		rc = SQLITE_CANTOPEN;
		goto out_unlock;
	}
	if (region_load(vfs, k) < 0) {
		rc = SQLITE_CANTOPEN;
		goto out_unlock;
	}
	f->vfs = vfs;
	f->kind = k;
	f->reg = &vfs->regions[k];
	f->reg->file = f;
	f->base.pMethods = &vfs_io;
	if (out_flags)
		*out_flags = flags;
out_unlock:
	pthread_mutex_unlock(&vfs->lock);
	if (rc != SQLITE_OK) {
		free(f->buf);
		f->buf = NULL;
	}
	return rc;
}

static int vfs_delete(sqlite3_vfs *base, const char *name, int sync_dir)
{
	struct meta_vfs *vfs = to_vfs(base);
	int k = kind_for_name(name);
	struct vfs_region *reg;
	int rc;

	if (k < 0)
		return vfs->deflt->xDelete(vfs->deflt, name, sync_dir);
	reg = &vfs->regions[k];
	pthread_mutex_lock(&vfs->lock);
	rc = region_load(vfs, k);
	if (rc < 0)
		goto out_unlock;
	if (reg->file)
		gather_drop(reg->file);
	reg->size = 0;
	rc = region_persist_size(vfs, k);
	if (rc == 0 && sync_dir && reg->unsynced) {
		rc = xvm_flush(vfs->dev);
		if (rc == 0)
			reg->unsynced = 0;
	}
out_unlock:
	pthread_mutex_unlock(&vfs->lock);
	return rc < 0 ? SQLITE_IOERR_DELETE : SQLITE_OK;
}

/* A WAL or journal exists while it holds bytes; anything else asks the default VFS. */
static int vfs_access(sqlite3_vfs *base, const char *name, int flags, int *out)
{
	struct meta_vfs *vfs = to_vfs(base);
	int k = kind_for_name(name);
	int rc;

	if (k < 0)
		return vfs->deflt->xAccess(vfs->deflt, name, flags, out);
	pthread_mutex_lock(&vfs->lock);
	rc = region_load(vfs, k);
	*out = rc == 0 && vfs->regions[k].size > 0;
	pthread_mutex_unlock(&vfs->lock);
	return rc < 0 ? SQLITE_IOERR_ACCESS : SQLITE_OK;
}

/* Names are keys for regions, not paths: keep them as given. */
static int vfs_full_pathname(sqlite3_vfs *base, const char *name, int n_out, char *out)
{
	if ((int)strlen(name) >= n_out)
		return SQLITE_CANTOPEN;
	sqlite3_snprintf(n_out, out, "%s", name);
	return SQLITE_OK;
}

static void *vfs_dl_open(sqlite3_vfs *base, const char *name)
{
	sqlite3_vfs *d = to_vfs(base)->deflt;

	return d->xDlOpen(d, name);
}

static void vfs_dl_error(sqlite3_vfs *base, int n, char *msg)
{
	sqlite3_vfs *d = to_vfs(base)->deflt;

	d->xDlError(d, n, msg);
}

static void (*vfs_dl_sym(sqlite3_vfs *base, void *h, const char *sym))(void)
{
	sqlite3_vfs *d = to_vfs(base)->deflt;

	return d->xDlSym(d, h, sym);
}

static void vfs_dl_close(sqlite3_vfs *base, void *h)
{
	sqlite3_vfs *d = to_vfs(base)->deflt;

	d->xDlClose(d, h);
}

static int vfs_randomness(sqlite3_vfs *base, int n, char *out)
{
	sqlite3_vfs *d = to_vfs(base)->deflt;

	return d->xRandomness(d, n, out);
}

static int vfs_sleep(sqlite3_vfs *base, int usec)
{
	sqlite3_vfs *d = to_vfs(base)->deflt;

	return d->xSleep(d, usec);
}

static int vfs_current_time(sqlite3_vfs *base, double *out)
{
	sqlite3_vfs *d = to_vfs(base)->deflt;

	return d->xCurrentTime(d, out);
}

static int vfs_get_last_error(sqlite3_vfs *base, int n, char *out)
{
	sqlite3_vfs *d = to_vfs(base)->deflt;

	return d->xGetLastError ? d->xGetLastError(d, n, out) : 0;
}

/* Registration. */

int meta_vfs_write_out(struct meta_vfs *vfs)
{
	int rc = 0;

	pthread_mutex_lock(&vfs->lock);
	for (int k = 0; k < VFS_NKINDS && rc == 0; k++) {
		if (vfs->regions[k].file)
			rc = gather_flush(vfs->regions[k].file);
		if (rc == 0 && vfs->regions[k].loaded)
			rc = region_persist_size(vfs, (enum vfs_kind)k);
	}
	pthread_mutex_unlock(&vfs->lock);
	return rc;
}

int meta_vfs_register(struct xvm_vol *dev, const struct meta_sb *sb, struct meta_vfs **out)
{
	struct meta_vfs *vfs;
	sqlite3_vfs *deflt;
	char uuid[37];
	int rc;

	for (int k = 0; k < VFS_NKINDS; k++) {
		const struct meta_region *r = sb_region(sb, k);

		if (!region_usable(r) || r->off + r->len > xvm_size(dev))
			return -EINVAL;
	}
	deflt = sqlite3_vfs_find(NULL);
	if (!deflt)
		return -ENOENT;   /* SQLite built without any VFS */
	vfs = calloc(1, sizeof(*vfs));
	if (!vfs)
		return -ENOMEM;
	rc = -pthread_mutex_init(&vfs->lock, NULL);
	if (rc < 0)
		goto out_free;
	vfs->deflt = deflt;
	vfs->dev = dev;
	for (int k = 0; k < VFS_NKINDS; k++) {
		const struct meta_region *r = sb_region(sb, k);

		vfs->regions[k].off = r->off;
		vfs->regions[k].cap = r->len - META_REGION_HDR;
	}
	meta_uuid_str(sb->uuid, uuid);
	snprintf(vfs->name, sizeof(vfs->name), "cxfs-%s-%u", uuid, atomic_fetch_add(&vfs_counter, 1));

	vfs->base.iVersion = 1;
	vfs->base.szOsFile = (int)sizeof(struct vfs_file) > deflt->szOsFile ? (int)sizeof(struct vfs_file)
									   : deflt->szOsFile;
	vfs->base.mxPathname = deflt->mxPathname;
	vfs->base.zName = vfs->name;
	vfs->base.pAppData = vfs;
	vfs->base.xOpen = vfs_open;
	vfs->base.xDelete = vfs_delete;
	vfs->base.xAccess = vfs_access;
	vfs->base.xFullPathname = vfs_full_pathname;
	vfs->base.xDlOpen = vfs_dl_open;
	vfs->base.xDlError = vfs_dl_error;
	vfs->base.xDlSym = vfs_dl_sym;
	vfs->base.xDlClose = vfs_dl_close;
	vfs->base.xRandomness = vfs_randomness;
	vfs->base.xSleep = vfs_sleep;
	vfs->base.xCurrentTime = vfs_current_time;
	vfs->base.xGetLastError = vfs_get_last_error;
	if (sqlite3_vfs_register(&vfs->base, 0) != SQLITE_OK) {
		rc = -ENOMEM;
		goto out_destroy_lock;
	}
	*out = vfs;
	return 0;

out_destroy_lock:
	pthread_mutex_destroy(&vfs->lock);
out_free:
	free(vfs);
	return rc;
}

const char *meta_vfs_name(const struct meta_vfs *vfs)
{
	return vfs->name;
}

void meta_vfs_unregister(struct meta_vfs *vfs)
{
	if (!vfs)
		return;
	sqlite3_vfs_unregister(&vfs->base);
	pthread_mutex_destroy(&vfs->lock);
	free(vfs);
}

int meta_vfs_format(struct xvm_vol *dev, const struct meta_sb *sb)
{
	int rc;

	for (int k = 0; k < VFS_NKINDS; k++) {
		const struct meta_region *r = sb_region(sb, k);

		if (!region_usable(r))
			return -EINVAL;
		rc = hdr_write(dev, r->off, k, 0);
		if (rc < 0)
			return rc;
	}
	return xvm_flush(dev);
}
