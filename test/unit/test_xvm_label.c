/*
 * test_xvm_label.c - unit tests of the volume layer's labels (src/xvm):
 *   - the codec: a figure-9 label round-trips; every single corrupted byte
 *     of a copy is refused; forged fields with a valid checksum (version,
 *     size, node count, state, tree shape, name, LUN number) each give an
 *     error that names what is wrong;
 *   - the two copies: a damaged primary is read from the secondary, both
 *     damaged is a "corrupted label" error, no magic is "no label";
 *   - the layout grammar: parse and format round-trip, errors at a position;
 *   - assembly from real file LUNs in a temporary directory: refusals of a
 *     missing, foreign, duplicated and stale LUN and of a corrupted label,
 *     each naming the LUN; an interrupted two-phase change rolled back when
 *     its prepare phase did not reach every LUN, forward when it did;
 *   - the dirty-region log: the geometry (figure 9's two mirrors get bits
 *     of their own; a large mirror gets larger regions), the slot codec
 *     (round trip, a damaged slot, one of another volume or layout), and on
 *     file LUNs a node that "dies" with a region written (the LUN files
 *     copied before its orderly stop) leaves that region, and only it, in
 *     its slot; made to differ on the leg reads do not use, it is resynced
 *     and the legs end identical.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "xvm/xvm_i.h"

#define FIG9 "mirror(concat(0,1),mirror(stripe:64k(2,3,4),stripe:64k(5,6,7)))"
#define LUN_SIZE (4u << 20)

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

/* A figure-9 label over 8 LUNs of @size usable bytes. */
static void fig9_label(struct xvm__label *l, uint64_t size)
{
	uint64_t sizes[8];
	char err[256];

	for (int i = 0; i < 8; i++)
		sizes[i] = size;
	memset(l, 0, sizeof(*l));
	assert_int_equal(xvm__layout_parse(FIG9, 8, sizes, 65536, &l->tree, err, sizeof(err)), 0);
	memset(l->uuid, 0xab, sizeof(l->uuid));
	strcpy(l->name, "fig9");
	l->generation = 7;
	l->leaf = 3;
	l->written = 0xff;
	l->tree.node[1].leg_state = XVM_LEG_OUT;
	l->tree.node[0].revive_point = 12345;
}

static void test_roundtrip(void **state)
{
	struct xvm__label l, d;
	unsigned char buf[XVM_LABEL_SIZE];
	char err[256], a[512], b[512];

	fig9_label(&l, 1 << 20);
	xvm__label_encode(&l, buf);
	assert_int_equal(xvm__label_decode(buf, &d, err, sizeof(err)), 0);
	assert_memory_equal(d.uuid, l.uuid, 16);
	assert_string_equal(d.name, "fig9");
	assert_int_equal(d.generation, 7);
	assert_int_equal(d.leaf, 3);
	assert_int_equal(d.written, 0xff);
	assert_int_equal(d.tree.n, l.tree.n);
	assert_int_equal(d.tree.node[1].leg_state, XVM_LEG_OUT);
	assert_int_equal(d.tree.node[0].revive_point, 12345);
	/* Sizes derived again: a mirror of concat(2 MiB) and stripes of 3 MiB. */
	assert_int_equal(d.tree.node[0].size, 2u << 20);
	xvm__layout_format(&l.tree, 0, a, sizeof(a));
	xvm__layout_format(&d.tree, 0, b, sizeof(b));
	assert_string_equal(a, FIG9);
	assert_string_equal(b, FIG9);
}

/* Every byte of a copy, flipped, makes the copy invalid with a reason. */
static void test_every_byte(void **state)
{
	struct xvm__label l, d;
	unsigned char buf[XVM_LABEL_SIZE];
	char err[256];
	unsigned i;
	int rc;

	fig9_label(&l, 1 << 20);
	xvm__label_encode(&l, buf);
	for (i = 0; i < XVM_LABEL_SIZE; i++) {
		buf[i] ^= 0x5a;
		err[0] = 0;
		rc = xvm__label_decode(buf, &d, err, sizeof(err));
		if (rc == 0)
			fail_msg("byte %u corrupted and the label still decodes", i);
		assert_true(rc == -EINVAL || (rc == -ENODATA && i < 8));
		assert_true(strlen(err) > 10);
		buf[i] ^= 0x5a;
	}
	assert_int_equal(xvm__label_decode(buf, &d, err, sizeof(err)), 0);
}

/* Forge a field, seal, decode: the error must contain @want. */
static void forged(const unsigned char *good, unsigned off, const void *val, size_t len,
		   const char *want)
{
	unsigned char buf[XVM_LABEL_SIZE];
	struct xvm__label d;
	char err[256] = "";

	memcpy(buf, good, sizeof(buf));
	memcpy(buf + off, val, len);
	xvm__label_seal(buf);
	assert_int_equal(xvm__label_decode(buf, &d, err, sizeof(err)), -EINVAL);
	if (!strstr(err, want))
		fail_msg("forged field at %u: error \"%s\" does not say \"%s\"", off, err, want);
}

static void test_forged_fields(void **state)
{
	static const uint32_t two = 2, zero = 0, many = 65, big = 4096;
	static const uint8_t cycle = 0, kind9 = 9, legs = 4, st7 = 7;
	struct xvm__label l;
	unsigned char good[XVM_LABEL_SIZE], name[64];
	const unsigned node0 = XVM__LABEL_HDR;

	fig9_label(&l, 1 << 20);
	xvm__label_encode(&l, good);
	forged(good, 8, &two, 4, "version");
	forged(good, 12, &big, 4, "size");
	forged(good, 104, &two, 4, "state");
	forged(good, 112, &zero, 4, "nodes");
	forged(good, 112, &many, 4, "nodes");
	forged(good, 108, &many, 4, "LUN 65");
	forged(good, node0 + 32, &cycle, 1, "tree");          /* root's first child is the root */
	forged(good, node0, &kind9, 1, "kind");
	forged(good, node0 + 1, &legs, 1, "children");
	forged(good, node0 + XVM__LABEL_NODE + 2, &st7, 1, "leg state");
	memset(name, 'x', sizeof(name));
	forged(good, 32, name, sizeof(name), "name");
}

/* The fixture: a temporary directory with @n LUN files. */
struct luns {
	char dir[64];                     /* mkdtemp directory */
	char path[8][96];                 /* LUN files */
	const char *uris[8];              /* pointers into path */
};

static int luns_setup(void **state)
{
	struct luns *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/cxfs-xvml-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	for (int i = 0; i < 8; i++) {
		int fd;

		snprintf(f->path[i], sizeof(f->path[i]), "%s/lun%d.img", f->dir, i);
		fd = open(f->path[i], O_CREAT | O_RDWR, 0644);
		if (fd < 0 || ftruncate(fd, LUN_SIZE) != 0)
			return -1;
		close(fd);
		f->uris[i] = f->path[i];
	}
	*state = f;
	return 0;
}

static int luns_teardown(void **state)
{
	struct luns *f = *state;

	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Two copies: primary damaged is read from the secondary; both damaged is an error. */
static void test_copies(void **state)
{
	struct luns *f = *state;
	struct blk_open_opts bo = { 0 };
	struct blk_dev *dev;
	struct xvm__label l, d;
	char err[512];
	unsigned char junk[16];

	memset(junk, 0x77, sizeof(junk));
	assert_int_equal(blk_open(f->uris[0], &bo, &dev), 0);
	assert_int_equal(xvm__label_read(dev, &d, err, sizeof(err)), -ENODATA);
	fig9_label(&l, 1 << 20);
	assert_int_equal(xvm__label_write(dev, &l), 0);
	assert_int_equal(blk_write(dev, junk, sizeof(junk), 200), 0);
	assert_int_equal(xvm__label_read(dev, &d, err, sizeof(err)), 0);
	assert_int_equal(d.generation, 7);
	assert_int_equal(blk_write(dev, junk, sizeof(junk), XVM_LABEL_SIZE + 300), 0);
	assert_int_equal(xvm__label_read(dev, &d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "corrupted label"));
	assert_non_null(strstr(err, "checksum"));
	blk_close(dev);
}

static void test_grammar(void **state)
{
	static const char *const bad[][2] = {
		{ "concat(0,1", "want ',' or ')'" },
		{ "mirror(0)", "2 or 3 legs" },
		{ "mirror(0,1,2,3)", "2 or 3 legs" },
		{ "stripe:3k(0,1)", "power of two" },
		{ "concat:64k(0,1)", "only a stripe" },
		{ "concat(0,0)", "LUN used twice" },
		{ "concat(0,9)", "beyond the LUNs" },
		{ "raid5(0,1)", "want a LUN number" },
		{ "concat(0,1) x", "trailing" },
		{ "concat(0)", "does not use every LUN" },
	};
	uint64_t sizes[4] = { 1 << 20, 1 << 20, 1 << 20, 1 << 20 };
	struct xvm__tree t;
	char err[256], out[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = strstr(bad[i][0], "(0,1,2") ? 4 : 2;

		assert_int_equal(xvm__layout_parse(bad[i][0], n, sizes, 65536, &t, err, sizeof(err)),
				 -EINVAL);
		if (!strstr(err, bad[i][1]))
			fail_msg("layout %s: error \"%s\" does not say \"%s\"", bad[i][0], err, bad[i][1]);
	}
	assert_int_equal(xvm__layout_parse(" stripe:128k( 0 , mirror(1,2) ,3)", 4, sizes, 65536, &t,
					   err, sizeof(err)), 0);
	xvm__layout_format(&t, 0, out, sizeof(out));
	assert_string_equal(out, "stripe:128k(0,mirror(1,2),3)");
	assert_int_equal(t.node[0].size, 3u << 20);
}

/* Create a volume of @layout over the @n LUNs from @first. */
static void create(struct luns *f, const char *layout, size_t first, size_t n, const char *name)
{
	struct xvm_create_opts co = { .layout = layout, .name = name };
	char err[512];

	if (xvm_create(f->uris + first, n, &co, err, sizeof(err)) != 0)
		fail_msg("create %s: %s", layout, err);
}

/* xvm_open of @uris must fail with an error containing @want. */
static void refused(const char *const *uris, size_t n, const char *want)
{
	struct xvm_vol *vol;
	char err[512] = "";

	assert_int_not_equal(xvm_open(uris, n, NULL, &vol, err, sizeof(err)), 0);
	if (!strstr(err, want))
		fail_msg("error \"%s\" does not say \"%s\"", err, want);
}

static void test_assembly_refusals(void **state)
{
	struct luns *f = *state;
	const char *swapped[3], *dup[3];
	struct xvm_vol *vol;
	char err[512];
	struct blk_open_opts bo = { 0 };
	struct blk_dev *dev;
	unsigned char junk[8] = "garbage!";

	create(f, "stripe(0,1,2)", 0, 3, "vol-a");
	create(f, "concat(0,1)", 3, 2, "vol-b");
	/* Any order works. */
	swapped[0] = f->uris[2];
	swapped[1] = f->uris[0];
	swapped[2] = f->uris[1];
	assert_int_equal(xvm_open(swapped, 3, NULL, &vol, err, sizeof(err)), 0);
	assert_int_equal(xvm_size(vol), 3 * ((LUN_SIZE - XVM_RESERVED) / 65536 * 65536));
	xvm_close(vol);
	/* Missing, foreign, duplicate. */
	refused(f->uris, 2, "LUN 2 of volume vol-a is missing");
	refused((const char *const[]){ f->uris[0], f->uris[1], f->uris[3] }, 3,
		"belongs to volume");
	dup[0] = f->uris[0];
	dup[1] = f->uris[1];
	dup[2] = f->uris[1];
	refused(dup, 3, "both claim place 1");
	refused((const char *const[]){ f->uris[5], f->uris[0] }, 2, "has no volume label");
	/* A creation over a labelled LUN is refused. */
	assert_int_not_equal(xvm_create((const char *const[]){ f->uris[0] }, 1,
					&(struct xvm_create_opts){ 0 }, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "already belongs to volume vol-a"));
	/* Both copies of LUN 1's label damaged. */
	assert_int_equal(blk_open(f->uris[1], &bo, &dev), 0);
	assert_int_equal(blk_write(dev, junk, sizeof(junk), 1000), 0);
	assert_int_equal(blk_write(dev, junk, sizeof(junk), XVM_LABEL_SIZE + 1000), 0);
	blk_close(dev);
	refused(f->uris, 3, "lun1.img: corrupted label");
}

/* Copy the first @len bytes of LUN file @from to @to. */
static void copy_bytes(const char *from, const char *to, size_t len)
{
	char *buf = malloc(len);
	int a = open(from, O_RDONLY), b = open(to, O_WRONLY);

	assert_true(buf && a >= 0 && b >= 0);
	assert_int_equal(pread(a, buf, len, 0), (ssize_t)len);
	assert_int_equal(pwrite(b, buf, len, 0), (ssize_t)len);
	close(a);
	close(b);
	free(buf);
}

/* Copy a LUN file's label area. */
static void copy_label(const char *from, const char *to)
{
	copy_bytes(from, to, 2 * XVM_LABEL_SIZE);
}

static void test_stale(void **state)
{
	struct luns *f = *state;
	struct xvm_vol *vol;
	char err[512];

	create(f, "concat(0,1)", 0, 2, "growing");
	copy_label(f->path[0], f->path[7]);                  /* lun7 keeps the old label of LUN 0 */
	assert_int_equal(xvm_open(f->uris, 2, NULL, &vol, err, sizeof(err)), 0);
	assert_int_equal(xvm_grow(vol, f->uris[2], 0, err, sizeof(err)), 0);
	xvm_close(vol);
	/* The old copy of LUN 0 in place of LUN 0: stale. */
	refused((const char *const[]){ f->uris[7], f->uris[1], f->uris[2] }, 3, "lun7.img is stale");
	assert_int_equal(xvm_open((const char *const[]){ f->uris[0], f->uris[1], f->uris[2] }, 3,
				  NULL, &vol, err, sizeof(err)), 0);
	xvm_close(vol);
}

/* Write generation @gen of @l as prepared to the LUNs in @mask, as a crash would leave it. */
static void prepare_some(struct luns *f, struct xvm__label *l, uint64_t gen, unsigned mask)
{
	struct blk_open_opts bo = { 0 };
	struct blk_dev *dev;

	l->generation = gen;
	l->state = XVM__PREPARED;
	l->written = 0x3;
	for (unsigned i = 0; i < 2; i++) {
		if (!(mask >> i & 1))
			continue;
		assert_int_equal(blk_open(f->uris[i], &bo, &dev), 0);
		l->leaf = i;
		assert_int_equal(xvm__label_write(dev, l), 0);
		blk_close(dev);
	}
}

static void test_two_phase_resolution(void **state)
{
	struct luns *f = *state;
	struct blk_open_opts bo = { 0 };
	struct xvm__label l;
	struct xvm_vol *vol;
	struct blk_dev *dev;
	char err[512];
	uint64_t gen;

	create(f, "mirror(0,1)", 0, 2, "twophase");
	assert_int_equal(blk_open(f->uris[0], &bo, &dev), 0);
	assert_int_equal(xvm__label_read(dev, &l, err, sizeof(err)), 0);
	blk_close(dev);
	gen = l.generation;

	/* Prepared on LUN 0 only (leg 1 marked out in it): undone, both legs active. */
	l.tree.node[2].leg_state = XVM_LEG_OUT;
	prepare_some(f, &l, gen + 1, 0x1);
	assert_int_equal(xvm_open(f->uris, 2, NULL, &vol, err, sizeof(err)), 0);
	assert_int_equal(vol->label.tree.node[2].leg_state, XVM_LEG_ACTIVE);
	assert_true(vol->label.generation > gen + 1);          /* written again, agreed */
	gen = vol->label.generation;
	xvm_close(vol);

	/* Prepared on both: kept, leg 1 out. */
	prepare_some(f, &l, gen + 1, 0x3);
	assert_int_equal(xvm_open(f->uris, 2, NULL, &vol, err, sizeof(err)), 0);
	assert_int_equal(vol->label.tree.node[2].leg_state, XVM_LEG_OUT);
	xvm_close(vol);

	/* And that is now the committed state on every LUN. */
	assert_int_equal(blk_open(f->uris[1], &bo, &dev), 0);
	assert_int_equal(xvm__label_read(dev, &l, err, sizeof(err)), 0);
	blk_close(dev);
	assert_int_equal(l.state, XVM__COMMITTED);
	assert_int_equal(l.tree.node[2].leg_state, XVM_LEG_OUT);
}

static void test_drl_geometry(void **state)
{
	unsigned shift, nbits, base[XVM_MAX_NODES];
	struct xvm__label l;
	struct xvm__tree t;
	uint64_t geo, geo2, sizes[2] = { 1ull << 40, 1ull << 40 };
	char err[256];

	(void)state;
	fig9_label(&l, 4u << 20);
	assert_int_equal(xvm__drl_geometry(&l.tree, &shift, base, &nbits, &geo), 1);
	assert_int_equal(shift, 20);
	/* Node 0 is the outer mirror (8 MiB: concat of two 4 MiB LUNs); its inner mirror's bits follow. */
	for (unsigned i = 0, seen = 0; i < l.tree.n; i++) {
		if (l.tree.node[i].kind != XVM__MIRROR)
			continue;
		assert_int_equal(base[i], seen);
		seen += (unsigned)((l.tree.node[i].size + (1u << 20) - 1) >> 20);
		assert_true(seen <= nbits);
	}
	/* A leg state does not change the geometry; a size does. */
	l.tree.node[1].leg_state = XVM_LEG_ACTIVE;
	assert_int_equal(xvm__drl_geometry(&l.tree, &shift, base, &nbits, &geo2), 1);
	assert_true(geo == geo2);
	assert_int_equal(xvm__layout_parse("mirror(0,1)", 2, sizes, 65536, &t, err, sizeof(err)), 0);
	assert_int_equal(xvm__drl_geometry(&t, &shift, base, &nbits, &geo2), 1);
	assert_true(geo != geo2);
	assert_true(nbits <= XVM__DRL_BITS && shift > 20);
	assert_int_equal(nbits, (unsigned)(((1ull << 40) - XVM_RESERVED + (1ull << shift) - 1) >> shift));
	/* No mirror: no log. */
	assert_int_equal(xvm__layout_parse("stripe:64k(0,1)", 2, sizes, 65536, &t, err, sizeof(err)), 0);
	assert_int_equal(xvm__drl_geometry(&t, &shift, base, &nbits, &geo2), 0);
}

static void test_drl_codec(void **state)
{
	static unsigned char img[XVM__DRL_SLOT], bad[XVM__DRL_SLOT];
	uint8_t uuid[16], other[16], bits[64] = { 0 }, got[64];

	(void)state;
	memset(uuid, 0x11, sizeof(uuid));
	memset(other, 0x22, sizeof(other));
	bits[0] = 0x05;
	bits[40] = 0x80;
	xvm__drl_encode(img, uuid, 3, 20, 330, 0xfeed, 9, bits);
	memset(got, 0, sizeof(got));
	assert_int_equal(xvm__drl_decode(img, uuid, 3, 20, 330, 0xfeed, got), 0);
	assert_memory_equal(got, bits, (330 + 7) / 8);
	/* Another volume's slot (the LUN held one before), never written: nothing. */
	memset(got, 0, sizeof(got));
	assert_int_equal(xvm__drl_decode(img, other, 3, 20, 330, 0xfeed, got), 0);
	memset(bad, 0, sizeof(bad));
	assert_int_equal(xvm__drl_decode(bad, uuid, 3, 20, 330, 0xfeed, got), 0);
	assert_int_equal(got[0] | got[40], 0);
	/* Another layout. */
	assert_int_equal(xvm__drl_decode(img, uuid, 3, 21, 330, 0xfeed, got), -ESTALE);
	assert_int_equal(xvm__drl_decode(img, uuid, 3, 20, 330, 0xbeef, got), -ESTALE);
	/* Damaged anywhere, or another slot's. */
	for (unsigned off = 8; off < XVM__DRL_SLOT; off += 509) {
		memcpy(bad, img, sizeof(bad));
		bad[off] ^= 0x40;
		assert_int_equal(xvm__drl_decode(bad, uuid, 3, 20, 330, 0xfeed, got), -EINVAL);
	}
	assert_int_equal(xvm__drl_decode(img, uuid, 4, 20, 330, 0xfeed, got), -EINVAL);
}

/* 1 if the data areas of the two LUN files are the same bytes. */
static int same_legs(const char *a, const char *b)
{
	static char x[LUN_SIZE], y[LUN_SIZE];
	int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);

	assert_true(fa >= 0 && fb >= 0);
	assert_int_equal(pread(fa, x, sizeof(x), 0), sizeof(x));
	assert_int_equal(pread(fb, y, sizeof(y), 0), sizeof(y));
	close(fa);
	close(fb);
	return memcmp(x + XVM_RESERVED, y + XVM_RESERVED, LUN_SIZE - XVM_RESERVED) == 0;
}

static void test_drl_resync(void **state)
{
	struct luns *f = *state;
	static char data[256 << 10], leg[4096];
	unsigned regions, total;
	struct xvm_vol *vol;
	char err[512], saved[2][128];
	int fd;

	create(f, "mirror(0,1)", 0, 2, "drl");
	assert_int_equal(xvm_open(f->uris, 2, NULL, &vol, err, sizeof(err)), 0);
	assert_int_equal(xvm_drl_start(vol, 5, err, sizeof(err)), 0);
	assert_int_equal(xvm_drl_dirty_slots(vol), 0);
	/* Region 2 written: on the LUNs in slot 5 before the write returned. */
	memset(data, 'x', sizeof(data));
	assert_int_equal(xvm_write(vol, data, sizeof(data), (2u << 20) + 4096), 0);
	assert_int_equal(xvm_drl_dirty_slots(vol), 1ull << 5);
	/* "Dies": the LUNs as they are now. */
	for (int i = 0; i < 2; i++) {
		snprintf(saved[i], sizeof(saved[i]), "%s/saved%d", f->dir, i);
		close(open(saved[i], O_CREAT | O_WRONLY, 0644));
		assert_int_equal(truncate(saved[i], LUN_SIZE), 0);
		copy_bytes(f->uris[i], saved[i], LUN_SIZE);
	}
	xvm_close(vol);
	/* An orderly stop leaves the slot clean. */
	assert_int_equal(xvm_open(f->uris, 2, NULL, &vol, err, sizeof(err)), 0);
	assert_int_equal(xvm_drl_dirty_slots(vol), 0);
	xvm_close(vol);
	for (int i = 0; i < 2; i++)
		copy_bytes(saved[i], f->uris[i], LUN_SIZE);
	/* The written range's first 256 KiB piece (number 8) is read from leg 0: leg 1 differs. */
	fd = open(f->uris[1], O_RDWR);
	assert_true(fd >= 0);
	memset(leg, 'y', sizeof(leg));
	assert_int_equal(pwrite(fd, leg, sizeof(leg), XVM_RESERVED + (2u << 20) + 8192), sizeof(leg));
	close(fd);
	assert_false(same_legs(f->uris[0], f->uris[1]));
	assert_int_equal(xvm_open(f->uris, 2, NULL, &vol, err, sizeof(err)), 0);
	assert_int_equal(xvm_drl_start(vol, 5, err, sizeof(err)), 1);
	assert_int_equal(xvm_drl_resync(vol, 5, NULL, NULL, &regions, &total, err, sizeof(err)), 0);
	assert_int_equal(regions, 1);
	assert_int_equal(total, 3);
	xvm_drl_resynced(vol);
	assert_int_equal(xvm_drl_dirty_slots(vol), 0);
	memset(data, 0, sizeof(data));
	assert_int_equal(xvm_read(vol, data, 4096, (2u << 20) + 8192), 0);
	assert_int_equal(data[0], 'x');
	xvm_close(vol);
	assert_true(same_legs(f->uris[0], f->uris[1]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_forged_fields),
		cmocka_unit_test(test_grammar),
		cmocka_unit_test_setup_teardown(test_copies, luns_setup, luns_teardown),
		cmocka_unit_test_setup_teardown(test_assembly_refusals, luns_setup, luns_teardown),
		cmocka_unit_test_setup_teardown(test_stale, luns_setup, luns_teardown),
		cmocka_unit_test_setup_teardown(test_two_phase_resolution, luns_setup, luns_teardown),
		cmocka_unit_test(test_drl_geometry),
		cmocka_unit_test(test_drl_codec),
		cmocka_unit_test_setup_teardown(test_drl_resync, luns_setup, luns_teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
