/*
 * test_sb.c - unit tests of the superblock codec (src/meta/meta_sb.c): the
 * layout of new volumes, the encode/decode round trip, and that every kind of
 * damage is refused with a clear message and without a crash, on its own and
 * through meta_sb_read's primary/backup fallback on a file-backed device.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xvm/xvm.h"
#include "meta/meta_sb.h"
#include "meta/meta_vfs.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

/* Per-test state: a fresh layout and its encoding. */
struct sb_fixture {
	struct meta_sb sb;                 /* layout of a 1 GiB volume */
	uint8_t buf[META_SB_SIZE];         /* its encoding */
	char dir[64];                      /* mkdtemp directory for device tests */
	char path[96];                     /* volume file inside dir */
};

static int setup(void **state)
{
	struct sb_fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	if (meta_sb_layout(GIB, "test-fs", META_SB_F_DMAPI, &f->sb) != 0)
		return -1;
	meta_sb_encode(&f->sb, f->buf);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cxfs-test-sb-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vol", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct sb_fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Rewrite the checksum after a deliberate change, as a malicious or buggy writer would. */
static void reseal(uint8_t *buf)
{
	uint32_t crc = meta_crc32c(0, buf, META_SB_SIZE - 4);

	for (int i = 0; i < 4; i++)
		buf[META_SB_SIZE - 4 + i] = (uint8_t)(crc >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void assert_sb_equal(const struct meta_sb *a, const struct meta_sb *b)
{
	assert_int_equal(a->version, b->version);
	assert_memory_equal(a->uuid, b->uuid, sizeof(a->uuid));
	assert_int_equal(a->block_size, b->block_size);
	assert_int_equal(a->volume_size, b->volume_size);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->created, b->created);
	assert_string_equal(a->name, b->name);
	assert_memory_equal(&a->meta_db, &b->meta_db, sizeof(a->meta_db));
	assert_memory_equal(&a->meta_wal, &b->meta_wal, sizeof(a->meta_wal));
	assert_memory_equal(&a->meta_jrnl, &b->meta_jrnl, sizeof(a->meta_jrnl));
	assert_memory_equal(&a->data, &b->data, sizeof(a->data));
}

static void test_crc32c_vector(void **state)
{
	/* The standard check value of CRC-32C. */
	assert_int_equal(meta_crc32c(0, "123456789", 9), 0xe3069283u);
	/* Continuing from a previous value equals one pass. */
	assert_int_equal(meta_crc32c(meta_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

static void test_round_trip(void **state)
{
	struct sb_fixture *f = *state;
	struct meta_sb out;
	char err[256];

	assert_int_equal(meta_sb_decode(f->buf, sizeof(f->buf), &out, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_sb_equal(&f->sb, &out);
	assert_int_equal(out.version, META_SB_VERSION);
	assert_int_equal(out.block_size, 4096);
	/* The encoding is explicit little-endian: the version sits at byte 8. */
	assert_int_equal(f->buf[8], META_SB_VERSION);
	assert_int_equal(f->buf[9], 0);
}

/* Region sizes across volume sizes: bounds, order, alignment, no gaps lost. */
static void test_layout_sizes(void **state)
{
	static const uint64_t sizes[] = { 64 * MIB, 100 * MIB, GIB, 10 * GIB, 300 * GIB,
					  4096 * GIB, 64 * MIB + 12345 };
	struct meta_sb sb, out;
	uint8_t buf[META_SB_SIZE];
	char err[256];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		assert_int_equal(meta_sb_layout(sizes[i], "x", 0, &sb), 0);
		assert_true(sb.meta_db.len >= 32 * MIB && sb.meta_db.len <= 8 * GIB);
		assert_true(sb.meta_wal.len >= 16 * MIB && sb.meta_wal.len <= GIB);
		assert_int_equal(sb.meta_jrnl.len, 8 * MIB);
		assert_true(sb.meta_db.off >= 2 * META_SB_SIZE);
		assert_int_equal(sb.meta_wal.off, sb.meta_db.off + sb.meta_db.len);
		assert_int_equal(sb.meta_jrnl.off, sb.meta_wal.off + sb.meta_wal.len);
		assert_int_equal(sb.data.off, sb.meta_jrnl.off + sb.meta_jrnl.len);
		assert_int_equal(sb.data.off % 4096, 0);
		assert_int_equal(sb.data.len % 4096, 0);
		assert_true(sb.data.off + sb.data.len <= sizes[i]);
		assert_true(sizes[i] - (sb.data.off + sb.data.len) < 4096);
		meta_sb_encode(&sb, buf);
		assert_int_equal(meta_sb_decode(buf, sizeof(buf), &out, err, sizeof(err)), 0);
	}
	/* 3% of 300 GiB is 9 GiB: clamped to 8 GiB, WAL to 1 GiB. */
	assert_int_equal(meta_sb_layout(300 * GIB, "x", 0, &sb), 0);
	assert_int_equal(sb.meta_db.len, 8 * GIB);
	assert_int_equal(sb.meta_wal.len, GIB);
}

static void test_layout_rejects(void **state)
{
	struct meta_sb sb, sb2;
	char longname[META_SB_NAME_MAX + 2];

	assert_int_equal(meta_sb_layout(64 * MIB - 1, "x", 0, &sb), -ENOSPC);
	assert_int_equal(meta_sb_layout(0, "x", 0, &sb), -ENOSPC);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(meta_sb_layout(GIB, longname, 0, &sb), -ENAMETOOLONG);
	assert_int_equal(meta_sb_layout(GIB, "x", 0x80000000u, &sb), -EINVAL);
	/* Two layouts get different uuids. */
	assert_int_equal(meta_sb_layout(GIB, NULL, 0, &sb), 0);
	assert_int_equal(meta_sb_layout(GIB, NULL, 0, &sb2), 0);
	assert_memory_not_equal(sb.uuid, sb2.uuid, sizeof(sb.uuid));
	assert_string_equal(sb.name, "");
}

static void test_bad_magic(void **state)
{
	struct sb_fixture *f = *state;
	struct meta_sb out;
	char err[256];
	uint8_t zero[META_SB_SIZE] = { 0 };

	f->buf[0] ^= 0x01;
	assert_int_equal(meta_sb_decode(f->buf, sizeof(f->buf), &out, err, sizeof(err)), -META_ENOTFORMATTED);
	assert_non_null(strstr(err, "magic"));
	assert_int_equal(meta_sb_decode(zero, sizeof(zero), &out, err, sizeof(err)), -META_ENOTFORMATTED);
	/* A NULL message buffer is allowed. */
	assert_int_equal(meta_sb_decode(zero, sizeof(zero), &out, NULL, 0), -META_ENOTFORMATTED);
}

/* Every single-byte change anywhere in the block is refused, never accepted. */
static void test_every_byte_flipped(void **state)
{
	struct sb_fixture *f = *state;
	struct meta_sb out;
	char err[256];
	uint8_t copy[META_SB_SIZE];

	for (size_t i = 0; i < META_SB_SIZE; i++) {
		static const uint8_t masks[] = { 0x01, 0x80, 0xff };

		for (size_t m = 0; m < sizeof(masks); m++) {
			int rc;

			memcpy(copy, f->buf, sizeof(copy));
			copy[i] ^= masks[m];
			err[0] = '\0';
			rc = meta_sb_decode(copy, sizeof(copy), &out, err, sizeof(err));
			if (rc == 0)
				fail_msg("byte %zu ^ 0x%02x accepted", i, masks[m]);
			assert_true(rc == -EBADMSG || rc == -META_ENOTFORMATTED || rc == -EPROTONOSUPPORT);
			assert_true(strlen(err) > 0);
			assert_null(strchr(err, '\n'));
			if (i < 8)
				assert_int_equal(rc, -META_ENOTFORMATTED);
			else if (i >= 12)
				assert_non_null(strstr(err, "checksum mismatch"));
		}
	}
}

static void test_truncated(void **state)
{
	struct sb_fixture *f = *state;
	struct meta_sb out;
	char err[256];

	assert_int_equal(meta_sb_decode(f->buf, META_SB_SIZE - 1, &out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "truncated"));
	assert_int_equal(meta_sb_decode(f->buf, 0, &out, err, sizeof(err)), -EBADMSG);
	assert_int_equal(meta_sb_decode(f->buf, 3, &out, err, sizeof(err)), -EBADMSG);
}

static void test_version_too_new(void **state)
{
	struct sb_fixture *f = *state;
	struct meta_sb out;
	char err[256];

	f->sb.version = 7;
	meta_sb_encode(&f->sb, f->buf);
	assert_int_equal(meta_sb_decode(f->buf, sizeof(f->buf), &out, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_string_equal(err, "format version 7 is newer than this cxfs (1)");
	/* Version 0 never existed. */
	f->sb.version = 0;
	meta_sb_encode(&f->sb, f->buf);
	assert_int_equal(meta_sb_decode(f->buf, sizeof(f->buf), &out, err, sizeof(err)), -EBADMSG);
}

/* Encode @sb, decode it, and expect -EBADMSG with @needle in the message. */
static void expect_layout_error(const struct meta_sb *sb, const char *needle)
{
	uint8_t buf[META_SB_SIZE];
	struct meta_sb out;
	char err[256];

	meta_sb_encode(sb, buf);
	assert_int_equal(meta_sb_decode(buf, sizeof(buf), &out, err, sizeof(err)), -EBADMSG);
	if (!strstr(err, needle))
		fail_msg("message \"%s\" lacks \"%s\"", err, needle);
}

/* Layout damage behind a valid checksum: only the layout check can catch it. */
static void test_bad_layout(void **state)
{
	struct sb_fixture *f = *state;
	struct meta_sb sb;

	sb = f->sb;
	sb.meta_wal.len += 4096;                      /* runs into meta_jrnl */
	expect_layout_error(&sb, "region meta_jrnl");
	expect_layout_error(&sb, "overlaps meta_wal");

	sb = f->sb;
	sb.data.off = sb.meta_wal.off;                /* data on top of the WAL */
	sb.data.len = sb.volume_size - sb.data.off;
	expect_layout_error(&sb, "region data");
	expect_layout_error(&sb, "overlaps");

	sb = f->sb;
	sb.data.len += 4096;                          /* past the end of the volume */
	expect_layout_error(&sb, "extends beyond the volume");

	sb = f->sb;
	sb.meta_db.off = UINT64_MAX - 4095;           /* off + len overflows */
	expect_layout_error(&sb, "extends beyond the volume");

	sb = f->sb;
	sb.meta_db.off = 0;                           /* on top of the superblocks */
	expect_layout_error(&sb, "overlaps the superblocks");

	sb = f->sb;
	sb.meta_jrnl.off += 512;                      /* misaligned */
	expect_layout_error(&sb, "not aligned");

	sb = f->sb;
	sb.meta_wal.len = 4096;                       /* no room after the region header */
	expect_layout_error(&sb, "less than the minimum");

	sb = f->sb;
	sb.block_size = 3000;
	expect_layout_error(&sb, "block size");

	sb = f->sb;
	sb.volume_size = 32 * MIB;                    /* too small a volume */
	expect_layout_error(&sb, "below the minimum");

	sb = f->sb;
	sb.flags |= 0x100;
	expect_layout_error(&sb, "unknown flags");
}

static void test_field_damage_resealed(void **state)
{
	struct sb_fixture *f = *state;
	struct meta_sb out;
	char err[256];

	/* Name without a terminator. */
	memset(f->buf + 56, 'n', META_SB_NAME_MAX + 1);
	reseal(f->buf);
	assert_int_equal(meta_sb_decode(f->buf, sizeof(f->buf), &out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "NUL"));

	/* Reserved word set. */
	meta_sb_encode(&f->sb, f->buf);
	f->buf[44] = 1;
	reseal(f->buf);
	assert_int_equal(meta_sb_decode(f->buf, sizeof(f->buf), &out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "reserved"));

	/* The data region's length at byte 176 beyond the volume. */
	meta_sb_encode(&f->sb, f->buf);
	put_le64(f->buf + 176, UINT64_C(1) << 62);
	reseal(f->buf);
	assert_int_equal(meta_sb_decode(f->buf, sizeof(f->buf), &out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "region data"));
}

static void test_uuid_str(void **state)
{
	static const uint8_t u[16] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
				       0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe };
	char s[37];
	struct meta_sb sb;

	meta_uuid_str(u, s);
	assert_string_equal(s, "01234567-89ab-cdef-1032-547698badcfe");
	assert_int_equal(meta_sb_layout(GIB, "x", 0, &sb), 0);
	meta_uuid_str(sb.uuid, s);
	assert_int_equal(strlen(s), 36);
	assert_int_equal(s[14], '4');                 /* random (version 4) uuid */
}

static struct xvm_vol *open_volume(struct sb_fixture *f, uint64_t size)
{
	struct xvm_open_opts o = { .create_size = size };
	struct xvm_vol *dev = NULL;

	assert_int_equal(xvm_open((const char *const[]){ f->path }, 1, &o, &dev, NULL, 0), 0);
	return dev;
}

static void test_read_write_device(void **state)
{
	struct sb_fixture *f = *state;
	struct xvm_vol *dev = open_volume(f, GIB);
	struct meta_sb out;
	char err[256];

	/* A blank device is not formatted. */
	assert_int_equal(meta_sb_read(dev, &out, err, sizeof(err)), -META_ENOTFORMATTED);
	assert_non_null(strstr(err, "magic"));

	assert_int_equal(meta_sb_write(dev, &f->sb), 0);
	assert_int_equal(meta_sb_read(dev, &out, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_sb_equal(&f->sb, &out);
	xvm_close(dev);
}

static void test_backup_used(void **state)
{
	struct sb_fixture *f = *state;
	struct xvm_vol *dev = open_volume(f, GIB);
	struct meta_sb out;
	char err[256];
	uint8_t junk[64];

	assert_int_equal(meta_sb_write(dev, &f->sb), 0);

	/* Damage the primary's region table: the backup copy is used. */
	memset(junk, 0xa5, sizeof(junk));
	assert_int_equal(xvm_write(dev, junk, sizeof(junk), 130), 0);
	assert_int_equal(meta_sb_read(dev, &out, err, sizeof(err)), 0);
	assert_sb_equal(&f->sb, &out);
	assert_non_null(strstr(err, "checksum mismatch"));
	assert_non_null(strstr(err, "backup"));

	/* A wiped primary too. */
	memset(junk, 0, sizeof(junk));
	assert_int_equal(xvm_write(dev, junk, sizeof(junk), 0), 0);
	assert_int_equal(meta_sb_read(dev, &out, err, sizeof(err)), 0);
	assert_sb_equal(&f->sb, &out);

	/* Both damaged: a failure that names both, and not "not formatted". */
	memset(junk, 0xa5, sizeof(junk));
	assert_int_equal(xvm_write(dev, junk, sizeof(junk), META_SB_SIZE + 200), 0);
	assert_int_equal(meta_sb_read(dev, &out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "primary"));
	assert_non_null(strstr(err, "backup"));
	xvm_close(dev);
}

/* A superblock made for a bigger volume than the device is refused. */
static void test_volume_larger_than_device(void **state)
{
	struct sb_fixture *f = *state;
	struct xvm_vol *dev = open_volume(f, 128 * MIB);
	struct meta_sb out;
	char err[256];

	assert_int_equal(meta_sb_write(dev, &f->sb), 0);      /* laid out for 1 GiB */
	assert_int_equal(meta_sb_read(dev, &out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "exceeds the device size"));
	xvm_close(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crc32c_vector, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layout_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layout_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_byte_flipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_too_new, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_field_damage_resealed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uuid_str, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_write_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup_used, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volume_larger_than_device, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
