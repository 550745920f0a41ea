/*
 * meta_sb.c - the superblock codec: the layout of a new volume, the
 * little-endian encoding of struct meta_sb with its CRC32C, the checking
 * decoder, and reading/writing the primary and backup copies on a device.
 *
 * Encoded superblock (META_SB_SIZE bytes, every integer little-endian):
 *
 *     0  magic "CXFSVOL\x01"        8 bytes
 *     8  version                    u32
 *    12  block_size                 u32
 *    16  uuid                       16 bytes
 *    32  volume_size                u64
 *    40  flags                      u32
 *    44  reserved, zero             u32
 *    48  created                    u64
 *    56  name, NUL-padded           64 bytes
 *   120  meta_db   {off, len}       2 x u64
 *   136  meta_wal  {off, len}       2 x u64
 *   152  meta_jrnl {off, len}       2 x u64
 *   168  data      {off, len}       2 x u64
 *   184  zero padding up to the checksum
 *  4092  CRC32C of bytes [0, 4092)  u32
 *
 * The checksum covers the padding too, so any damaged byte of the block is
 * detected.  The version is checked before the checksum because a newer
 * format may place its checksum elsewhere: "newer than this cxfs" is the
 * useful message for such a volume.
 *
 * The file has no locks and no state: every function works on its arguments.
 */
#include "meta/meta_le.h"
#include "meta/meta_sb.h"
#include "meta/meta_vfs.h"
#include "xvm/xvm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

#define SB_MIN_VOLUME (64 * MIB)        /* smallest volume meta_sb_layout accepts */
#define SB_BLOCK_SIZE 4096u             /* block size of a new layout */
#define SB_REGION_ALIGN MIB             /* region starts of a new layout: LUN-friendly */
#define SB_DB_MIN (32 * MIB)            /* database region bounds (3% of the volume) */
#define SB_DB_MAX (8 * GIB)
#define SB_WAL_MIN (16 * MIB)           /* WAL region bounds (1/4 of the database) */
#define SB_WAL_MAX GIB
#define SB_JRNL_LEN (8 * MIB)           /* rollback journal region, mkfs only */

#define SB_BLOCK_MIN 4096u              /* decode accepts power-of-two block sizes in this range */
#define SB_BLOCK_MAX 65536u
#define SB_KNOWN_FLAGS META_SB_F_DMAPI

/* Field offsets of the encoding (see the map above). */
enum {
	SB_OFF_MAGIC = 0,
	SB_OFF_VERSION = 8,
	SB_OFF_BLOCK_SIZE = 12,
	SB_OFF_UUID = 16,
	SB_OFF_VOLUME_SIZE = 32,
	SB_OFF_FLAGS = 40,
	SB_OFF_RESERVED = 44,
	SB_OFF_CREATED = 48,
	SB_OFF_NAME = 56,
	SB_OFF_REGIONS = SB_OFF_NAME + META_SB_NAME_MAX + 1,
	SB_REGION_ENC = 16,
	SB_NREGIONS = 4,
	SB_OFF_END = SB_OFF_REGIONS + SB_NREGIONS * SB_REGION_ENC,
	SB_OFF_CRC = META_SB_SIZE - 4,
};

_Static_assert(sizeof(META_SB_MAGIC) - 1 == 8, "superblock magic is 8 bytes");
_Static_assert(SB_OFF_REGIONS == 120, "superblock name field moved");
_Static_assert(SB_OFF_END <= SB_OFF_CRC, "superblock fields overlap the checksum");
_Static_assert(META_REGION_HDR % SB_BLOCK_SIZE == 0, "region header is whole blocks");

/* The regions in encoding order, with the name used in messages. */
static const struct {
	const char *name;                  /* as in struct meta_sb and messages */
	size_t member;                     /* offsetof(struct meta_sb, <region>) */
	int is_meta;                       /* begins with a META_REGION_HDR header */
} sb_regions[SB_NREGIONS] = {
	{ "meta_db", offsetof(struct meta_sb, meta_db), 1 },
	{ "meta_wal", offsetof(struct meta_sb, meta_wal), 1 },
	{ "meta_jrnl", offsetof(struct meta_sb, meta_jrnl), 1 },
	{ "data", offsetof(struct meta_sb, data), 0 },
};

static const struct meta_region *sb_region(const struct meta_sb *sb, int i)
{
	return (const struct meta_region *)((const char *)sb + sb_regions[i].member);
}

static struct meta_region *sb_region_mut(struct meta_sb *sb, int i)
{
	return (struct meta_region *)((char *)sb + sb_regions[i].member);
}

/* CRC32C, reflected Castagnoli polynomial 0x82F63B78, one table lookup per byte. */
static const uint32_t crc32c_table[256] = {
	0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu,
	0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
	0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu,
	0xf165b798u, 0x030e349bu, 0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
	0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
	0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
	0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
	0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
	0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu,
	0x1642ae59u, 0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
	0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu,
	0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
	0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu,
	0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
	0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
	0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
	0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu,
	0x4767748au, 0xb50cf789u, 0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
	0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu,
	0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
	0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
	0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
	0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u,
	0xe9141340u, 0x1b7f9043u, 0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
	0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
	0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
	0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u, 0x502036a5u,
	0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
	0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u,
	0x0e330a81u, 0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
	0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u,
	0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
	0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u,
	0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
	0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
	0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
	0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u,
	0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
	0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u,
	0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
	0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au, 0xc69f7b69u,
	0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
	0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

uint32_t meta_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
	return ~crc;
}

static uint64_t round_down(uint64_t v, uint64_t align)
{
	return v - v % align;
}

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Record a one-line reason in @err (if any) and return @rc. */
__attribute__((format(printf, 4, 5)))
static int sb_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int meta_sb_layout(uint64_t volume_size, const char *name, uint32_t flags, struct meta_sb *sb)
{
	uint64_t db_len, wal_len, off;

	if (!name)
		name = "";
	if (strlen(name) > META_SB_NAME_MAX)
		return -ENAMETOOLONG;
	if (flags & ~SB_KNOWN_FLAGS)
		return -EINVAL;
	if (volume_size < SB_MIN_VOLUME)
		return -ENOSPC;

	memset(sb, 0, sizeof(*sb));
	if (getrandom(sb->uuid, sizeof(sb->uuid), 0) != (ssize_t)sizeof(sb->uuid))
		return errno ? -errno : -EIO;
	sb->uuid[6] = (uint8_t)((sb->uuid[6] & 0x0f) | 0x40);   /* RFC 4122 version 4 */
	sb->uuid[8] = (uint8_t)((sb->uuid[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
	sb->version = META_SB_VERSION;
	sb->block_size = SB_BLOCK_SIZE;
	sb->volume_size = volume_size;
	sb->flags = flags;
	sb->created = (uint64_t)time(NULL);
	memcpy(sb->name, name, strlen(name) + 1);

	db_len = clamp(round_down(volume_size / 100 * 3, SB_REGION_ALIGN), SB_DB_MIN, SB_DB_MAX);
	wal_len = clamp(round_down(db_len / 4, SB_REGION_ALIGN), SB_WAL_MIN, SB_WAL_MAX);

	/* The first MiB holds the two superblock copies; regions start aligned. */
	off = SB_REGION_ALIGN;
	sb->meta_db = (struct meta_region){ off, db_len };
	off += db_len;
	sb->meta_wal = (struct meta_region){ off, wal_len };
	off += wal_len;
	sb->meta_jrnl = (struct meta_region){ off, SB_JRNL_LEN };
	off += SB_JRNL_LEN;
	if (off + SB_BLOCK_SIZE > volume_size)
		return -ENOSPC;
	sb->data = (struct meta_region){ off, round_down(volume_size - off, SB_BLOCK_SIZE) };
	return 0;
}

void meta_sb_encode(const struct meta_sb *sb, uint8_t *buf)
{
	memset(buf, 0, META_SB_SIZE);
	memcpy(buf + SB_OFF_MAGIC, META_SB_MAGIC, 8);
	put_le32(buf + SB_OFF_VERSION, sb->version);
	put_le32(buf + SB_OFF_BLOCK_SIZE, sb->block_size);
	memcpy(buf + SB_OFF_UUID, sb->uuid, sizeof(sb->uuid));
	put_le64(buf + SB_OFF_VOLUME_SIZE, sb->volume_size);
	put_le32(buf + SB_OFF_FLAGS, sb->flags);
	put_le64(buf + SB_OFF_CREATED, sb->created);
	/* strnlen: the name field is copied only up to its terminator. */
	memcpy(buf + SB_OFF_NAME, sb->name, strnlen(sb->name, META_SB_NAME_MAX));
	for (int i = 0; i < SB_NREGIONS; i++) {
		const struct meta_region *r = sb_region(sb, i);
		uint8_t *p = buf + SB_OFF_REGIONS + i * SB_REGION_ENC;

		put_le64(p, r->off);
		put_le64(p + 8, r->len);
	}
	put_le32(buf + SB_OFF_CRC, meta_crc32c(0, buf, SB_OFF_CRC));
}

/* Check the region layout of a decoded superblock against itself. */
static int sb_check_layout(const struct meta_sb *sb, char *err, size_t errlen)
{
	const uint64_t bs = sb->block_size;

	for (int i = 0; i < SB_NREGIONS; i++) {
		const struct meta_region *r = sb_region(sb, i);
		const char *n = sb_regions[i].name;
		const uint64_t min_len = sb_regions[i].is_meta ? META_REGION_HDR + bs : bs;

		if (r->off % bs || r->len % bs)
			return sb_fail(-EBADMSG, err, errlen,
				       "region %s [%" PRIu64 ",%" PRIu64 ") is not aligned to the block size %" PRIu64,
				       n, r->off, r->off + r->len, bs);
		if (r->len < min_len)
			return sb_fail(-EBADMSG, err, errlen,
				       "region %s is %" PRIu64 " bytes, less than the minimum %" PRIu64,
				       n, r->len, min_len);
		if (r->off < 2 * META_SB_SIZE)
			return sb_fail(-EBADMSG, err, errlen,
				       "region %s [%" PRIu64 ",%" PRIu64 ") overlaps the superblocks",
				       n, r->off, r->off + r->len);
		if (r->off > sb->volume_size || r->len > sb->volume_size - r->off)
			return sb_fail(-EBADMSG, err, errlen,
				       "region %s [%" PRIu64 ",%" PRIu64 ") extends beyond the volume (%" PRIu64 " bytes)",
				       n, r->off, r->off + r->len, sb->volume_size);
		for (int j = 0; j < i; j++) {
			const struct meta_region *o = sb_region(sb, j);

			if (r->off < o->off + o->len && o->off < r->off + r->len)
				return sb_fail(-EBADMSG, err, errlen,
					       "region %s [%" PRIu64 ",%" PRIu64 ") overlaps %s [%" PRIu64 ",%" PRIu64 ")",
					       n, r->off, r->off + r->len, sb_regions[j].name, o->off, o->off + o->len);
		}
	}
	return 0;
}

int meta_sb_decode(const uint8_t *buf, size_t len, struct meta_sb *sb, char *err, size_t errlen)
{
	uint32_t stored, computed;

	if (err && errlen)
		err[0] = '\0';
	if (len < META_SB_SIZE)
		return sb_fail(-EBADMSG, err, errlen, "superblock truncated: %zu bytes, need %u",
			       len, META_SB_SIZE);
	if (memcmp(buf + SB_OFF_MAGIC, META_SB_MAGIC, 8) != 0)
		return sb_fail(-META_ENOTFORMATTED, err, errlen, "no cxfs superblock (bad magic)");

	memset(sb, 0, sizeof(*sb));
	sb->version = get_le32(buf + SB_OFF_VERSION);
	if (sb->version > META_SB_VERSION)
		return sb_fail(-EPROTONOSUPPORT, err, errlen,
			       "format version %" PRIu32 " is newer than this cxfs (%u)",
			       sb->version, META_SB_VERSION);

	stored = get_le32(buf + SB_OFF_CRC);
	computed = meta_crc32c(0, buf, SB_OFF_CRC);
	if (stored != computed)
		return sb_fail(-EBADMSG, err, errlen,
			       "superblock checksum mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
			       stored, computed);
	if (sb->version == 0)
		return sb_fail(-EBADMSG, err, errlen, "format version 0 is invalid");

	sb->block_size = get_le32(buf + SB_OFF_BLOCK_SIZE);
	memcpy(sb->uuid, buf + SB_OFF_UUID, sizeof(sb->uuid));
	sb->volume_size = get_le64(buf + SB_OFF_VOLUME_SIZE);
	sb->flags = get_le32(buf + SB_OFF_FLAGS);
	sb->created = get_le64(buf + SB_OFF_CREATED);
	memcpy(sb->name, buf + SB_OFF_NAME, META_SB_NAME_MAX + 1);
	for (int i = 0; i < SB_NREGIONS; i++) {
		const uint8_t *p = buf + SB_OFF_REGIONS + i * SB_REGION_ENC;
		struct meta_region *r = sb_region_mut(sb, i);

		r->off = get_le64(p);
		r->len = get_le64(p + 8);
	}

	if (sb->block_size < SB_BLOCK_MIN || sb->block_size > SB_BLOCK_MAX ||
	    (sb->block_size & (sb->block_size - 1)))
		return sb_fail(-EBADMSG, err, errlen, "block size %" PRIu32 " is not a power of two in [%u, %u]",
			       sb->block_size, SB_BLOCK_MIN, SB_BLOCK_MAX);
	if (get_le32(buf + SB_OFF_RESERVED) != 0)
		return sb_fail(-EBADMSG, err, errlen, "reserved field is 0x%08" PRIx32 ", not zero",
			       get_le32(buf + SB_OFF_RESERVED));
	if (sb->flags & ~SB_KNOWN_FLAGS)
		return sb_fail(-EBADMSG, err, errlen, "unknown flags 0x%08" PRIx32,
			       sb->flags & ~(uint32_t)SB_KNOWN_FLAGS);
	if (sb->volume_size < SB_MIN_VOLUME)
		return sb_fail(-EBADMSG, err, errlen, "volume size %" PRIu64 " is below the minimum %" PRIu64,
			       sb->volume_size, SB_MIN_VOLUME);
	if (memchr(sb->name, '\0', META_SB_NAME_MAX + 1) == NULL)
		return sb_fail(-EBADMSG, err, errlen, "filesystem name is not NUL-terminated");
	return sb_check_layout(sb, err, errlen);
}

/* Decode one on-device copy and check it against the device's size. */
static int sb_decode_on(const uint8_t *buf, uint64_t dev_size, struct meta_sb *sb,
			char *err, size_t errlen)
{
	int rc = meta_sb_decode(buf, META_SB_SIZE, sb, err, errlen);

	if (rc == 0 && sb->volume_size > dev_size)
		rc = sb_fail(-EBADMSG, err, errlen,
			     "volume size %" PRIu64 " exceeds the device size %" PRIu64,
			     sb->volume_size, dev_size);
	return rc;
}

/*
 * On success from the backup copy, @err holds why the primary was not used
 * (so that mount can log it and the checker can rewrite the primary); on
 * success from the primary it is empty.
 */
int meta_sb_read(struct xvm_vol *dev, struct meta_sb *sb, char *err, size_t errlen)
{
	uint8_t *buf;
	char perr[256], berr[256];
	uint64_t dev_size = xvm_size(dev);
	int rc, brc;

	if (err && errlen)
		err[0] = '\0';
	if (dev_size < 2 * META_SB_SIZE)
		return sb_fail(-META_ENOTFORMATTED, err, errlen,
			       "device of %" PRIu64 " bytes is too small to hold a superblock", dev_size);
	buf = malloc(2 * META_SB_SIZE);
	if (!buf)
		return -ENOMEM;
	rc = xvm_read(dev, buf, 2 * META_SB_SIZE, 0);
	if (rc < 0) {
		sb_fail(rc, err, errlen, "cannot read the superblock: %s", strerror(-rc));
		goto out_free;
	}

	rc = sb_decode_on(buf, dev_size, sb, perr, sizeof(perr));
	if (rc == 0)
		goto out_free;
	brc = sb_decode_on(buf + META_SB_SIZE, dev_size, sb, berr, sizeof(berr));
	if (brc == 0) {
		sb_fail(0, err, errlen, "primary superblock unusable (%s); using the backup copy", perr);
		rc = 0;
	} else if (rc == -META_ENOTFORMATTED && brc == -META_ENOTFORMATTED) {
		sb_fail(rc, err, errlen, "%s", perr);
	} else {
		/* A damaged primary over an intact format says more than "not formatted". */
		if (rc == -META_ENOTFORMATTED)
			rc = brc;
		sb_fail(rc, err, errlen, "primary: %s; backup: %s", perr, berr);
	}
out_free:
	free(buf);
	return rc;
}

/*
 * The backup is written and flushed before the primary, so a crash in the
 * middle leaves at least one intact copy.
 */
int meta_sb_write(struct xvm_vol *dev, const struct meta_sb *sb)
{
	uint8_t *buf = malloc(META_SB_SIZE);
	int rc;

	if (!buf)
		return -ENOMEM;
	meta_sb_encode(sb, buf);
	rc = xvm_write(dev, buf, META_SB_SIZE, META_SB_SIZE);
	if (rc == 0)
		rc = xvm_flush(dev);
	if (rc == 0)
		rc = xvm_write(dev, buf, META_SB_SIZE, 0);
	if (rc == 0)
		rc = xvm_flush(dev);
	free(buf);
	return rc;
}

void meta_uuid_str(const uint8_t uuid[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[uuid[i] >> 4];
		*p++ = hex[uuid[i] & 0xf];
	}
	*p = '\0';
}
