/*
 * meta_sb.h - the superblock: the first thing on a cxfs volume, naming the
 * format and the regions that follow it.
 *
 * On-volume layout (offsets in bytes, all multiples of the block size):
 *
 *   0                  superblock (one 4 KiB block, META_SB_SIZE)
 *   4096               backup copy of the superblock
 *   meta_db.off        SQLite database region  (own VFS, meta_vfs.c)
 *   meta_wal.off       SQLite write-ahead log region
 *   meta_jrnl.off      SQLite rollback-journal region (used only by mkfs)
 *   data.off           data region, allocated in blocks to file extents
 *
 * The encoded superblock is little-endian with a CRC32C over every byte before
 * the checksum field.  Decoding never trusts a field: the magic, the version,
 * the checksum and the consistency of the region layout with the block size
 * and the volume size are all checked, and a failure is reported with a
 * message saying what is wrong.
 */
#ifndef CXFS_META_SB_H
#define CXFS_META_SB_H

#include <stddef.h>
#include <stdint.h>

struct xvm_vol;

#define META_SB_SIZE 4096u
#define META_SB_MAGIC "CXFSVOL\x01"      /* 8 bytes */
#define META_SB_VERSION 1u
#define META_SB_NAME_MAX 63
#define META_SB_F_DMAPI 0x1u              /* DMAPI events enabled on this filesystem */

/* Internal result of meta_sb_decode: the block does not hold a cxfs superblock at all. */
#define META_ENOTFORMATTED 4001

struct meta_region {
	uint64_t off;                      /* byte offset on the volume */
	uint64_t len;                      /* byte length */
};

struct meta_sb {
	uint32_t version;                  /* META_SB_VERSION */
	uint8_t uuid[16];                  /* filesystem identity */
	uint32_t block_size;               /* data allocation unit, 4096 */
	uint64_t volume_size;              /* bytes the layout was made for */
	uint32_t flags;                    /* META_SB_F_* */
	uint64_t created;                  /* mkfs time, seconds since the epoch */
	char name[META_SB_NAME_MAX + 1];   /* filesystem name, NUL-terminated */
	struct meta_region meta_db;        /* SQLite database */
	struct meta_region meta_wal;       /* SQLite write-ahead log */
	struct meta_region meta_jrnl;      /* SQLite rollback journal */
	struct meta_region data;           /* file data blocks */
};

/*
 * Fill @sb with a fresh layout for a volume of @volume_size bytes: a new
 * uuid, block size 4096, metadata regions sized from the volume (about 3%
 * for the database, bounded, and a write-ahead log), the rest data.
 * -ENOSPC if the volume is too small to hold a filesystem (under 64 MiB).
 */
int meta_sb_layout(uint64_t volume_size, const char *name, uint32_t flags, struct meta_sb *sb);

/* Encode @sb into @buf (META_SB_SIZE bytes). */
void meta_sb_encode(const struct meta_sb *sb, uint8_t *buf);

/*
 * Decode and check @len bytes at @buf.  0 on success; -META_ENOTFORMATTED if
 * the magic is absent; -EPROTONOSUPPORT for a newer format version; -EBADMSG
 * for a bad checksum or an inconsistent layout.  On failure @err (if not
 * NULL) receives a one-line reason.
 */
int meta_sb_decode(const uint8_t *buf, size_t len, struct meta_sb *sb, char *err, size_t errlen);

/*
 * Read the superblock from a device (primary, then the backup copy if the
 * primary is damaged), checking it also against the device's size.
 */
int meta_sb_read(struct xvm_vol *dev, struct meta_sb *sb, char *err, size_t errlen);
/* Write both copies and flush. */
int meta_sb_write(struct xvm_vol *dev, const struct meta_sb *sb);

/* Format a uuid as 36 characters plus NUL into @out. */
void meta_uuid_str(const uint8_t uuid[16], char out[37]);

/* CRC32C (Castagnoli) of a buffer, continuing from @crc (start with 0). */
uint32_t meta_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
