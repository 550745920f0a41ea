/*
 * xvm_label.c - the on-LUN codecs: the label (layout in xvm_i.h) and the
 * reading and writing of a LUN's two label copies, and a dirty-region log
 * slot (layout below).  Decoding trusts no field: the magic, the version,
 * the size, the checksum, the node count and the tree itself are checked,
 * and each failure names what is wrong.
 *
 * A dirty-region log slot (XVM__DRL_SLOT bytes at XVM_DRL_OFF + slot *
 * XVM__DRL_SLOT of every LUN in use, little-endian):
 *      0  magic "CXFSDRL\0"          8
 *      8  format version (1)         u32
 *     12  slot number                u32
 *     16  volume uuid                16
 *     32  region shift               u32
 *     36  bits used                  u32
 *     40  geometry hash              u64
 *     48  sequence (grows per write) u64
 *     56  checksum: BLAKE2b (16 bytes) of the slot with this field zeroed
 *     72  reserved (0) up to XVM__DRL_HDR, then the bitmap (bit b of byte
 *         b / 8 is 1 << b % 8).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "xvm/xvm_i.h"

#define XVM__CSUM_OFF 128u
#define XVM__CSUM_LEN 16u

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The checksum of the @len bytes of @buf with its checksum field (at @at) taken as zero. */
static void xvm__csum(const unsigned char *buf, size_t len, size_t at, unsigned char *out)
{
	static const unsigned char zero[XVM__CSUM_LEN];
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, XVM__CSUM_LEN);
	crypto_generichash_update(&st, buf, at);
	crypto_generichash_update(&st, zero, XVM__CSUM_LEN);
	crypto_generichash_update(&st, buf + at + XVM__CSUM_LEN, len - at - XVM__CSUM_LEN);
	crypto_generichash_final(&st, out, XVM__CSUM_LEN);
}

void xvm__label_seal(unsigned char buf[XVM_LABEL_SIZE])
{
	unsigned char sum[XVM__CSUM_LEN];

	xvm__csum(buf, XVM_LABEL_SIZE, XVM__CSUM_OFF, sum);
	memcpy(buf + XVM__CSUM_OFF, sum, XVM__CSUM_LEN);
}

void xvm__label_encode(const struct xvm__label *l, unsigned char buf[XVM_LABEL_SIZE])
{
	unsigned i, c;

	memset(buf, 0, XVM_LABEL_SIZE);
	memcpy(buf, XVM__LABEL_MAGIC, sizeof(XVM__LABEL_MAGIC));
	put32(buf + 8, XVM__LABEL_VERSION);
	put32(buf + 12, XVM_LABEL_SIZE);
	memcpy(buf + 16, l->uuid, 16);
	memcpy(buf + 32, l->name, strnlen(l->name, XVM_NAME_MAX));
	put64(buf + 96, l->generation);
	put32(buf + 104, l->state);
	put32(buf + 108, l->leaf);
	put32(buf + 112, l->tree.n);
	put64(buf + 120, l->written);
	for (i = 0; i < l->tree.n; i++) {
		const struct xvm__node *nd = &l->tree.node[i];
		unsigned char *p = buf + XVM__LABEL_HDR + i * XVM__LABEL_NODE;

		p[0] = nd->kind;
		p[1] = nd->nchild;
		p[2] = nd->leg_state;
		put32(p + 4, nd->stripe_unit);
		put32(p + 8, nd->leaf);
		put64(p + 16, nd->leaf_size);
		put64(p + 24, nd->revive_point);
		for (c = 0; c < nd->nchild; c++)
			p[32 + c] = nd->child[c];
	}
	xvm__label_seal(buf);
}

int xvm__label_decode(const unsigned char buf[XVM_LABEL_SIZE], struct xvm__label *l, char *err,
		      size_t errlen)
{
	unsigned char sum[XVM__CSUM_LEN];
	unsigned i, c;
	uint32_t v;

	if (memcmp(buf, XVM__LABEL_MAGIC, sizeof(XVM__LABEL_MAGIC)) != 0) {
		snprintf(err, errlen, "no volume label (magic absent)");
		return -ENODATA;
	}
	v = get32(buf + 8);
	if (v != XVM__LABEL_VERSION) {
		snprintf(err, errlen, "label format version %u (this program reads %u)", v,
			 XVM__LABEL_VERSION);
		return -EINVAL;
	}
	if (get32(buf + 12) != XVM_LABEL_SIZE) {
		snprintf(err, errlen, "label size %u (want %u)", get32(buf + 12), XVM_LABEL_SIZE);
		return -EINVAL;
	}
	xvm__csum(buf, XVM_LABEL_SIZE, XVM__CSUM_OFF, sum);
	if (sodium_memcmp(sum, buf + XVM__CSUM_OFF, XVM__CSUM_LEN) != 0) {
		snprintf(err, errlen, "label checksum mismatch (corrupted label)");
		return -EINVAL;
	}
	memset(l, 0, sizeof(*l));
	memcpy(l->uuid, buf + 16, 16);
	memcpy(l->name, buf + 32, XVM_NAME_MAX);
	if (buf[32 + XVM_NAME_MAX] != 0) {
		snprintf(err, errlen, "volume name not terminated");
		return -EINVAL;
	}
	l->generation = get64(buf + 96);
	l->state = get32(buf + 104);
	l->leaf = get32(buf + 108);
	l->tree.n = get32(buf + 112);
	l->written = get64(buf + 120);
	if (l->state > XVM__PREPARED) {
		snprintf(err, errlen, "label state %u", l->state);
		return -EINVAL;
	}
	if (l->tree.n == 0 || l->tree.n > XVM_MAX_NODES) {
		snprintf(err, errlen, "label tree has %u nodes (1 to %d)", l->tree.n, XVM_MAX_NODES);
		return -EINVAL;
	}
	for (i = 0; i < l->tree.n; i++) {
		struct xvm__node *nd = &l->tree.node[i];
		const unsigned char *p = buf + XVM__LABEL_HDR + i * XVM__LABEL_NODE;

		nd->kind = p[0];
		nd->nchild = p[1];
		nd->leg_state = p[2];
		nd->stripe_unit = get32(p + 4);
		nd->leaf = get32(p + 8);
		nd->leaf_size = get64(p + 16);
		nd->revive_point = get64(p + 24);
		if (nd->nchild > XVM_MAX_CHILDREN) {
			snprintf(err, errlen, "label node %u has %u children", i, nd->nchild);
			return -EINVAL;
		}
		for (c = 0; c < nd->nchild; c++)
			nd->child[c] = p[32 + c];
	}
	if (xvm__tree_check(&l->tree, err, errlen)) {
		char why[200];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "label tree invalid: %s", why);
		return -EINVAL;
	}
	if (xvm__tree_leaf(&l->tree, l->leaf) < 0) {
		snprintf(err, errlen, "label names LUN %u, which its tree does not hold", l->leaf);
		return -EINVAL;
	}
	return 0;
}

int xvm__label_read(struct blk_dev *dev, struct xvm__label *l, char *err, size_t errlen)
{
	unsigned char *buf;
	char e0[200], e1[200];
	int r0, r1;

	buf = malloc(2 * XVM_LABEL_SIZE);
	if (!buf)
		return -ENOMEM;
	if (blk_size(dev) < XVM_RESERVED + 4096) {
		free(buf);
		snprintf(err, errlen, "no volume label (LUN smaller than the label area)");
		return -ENODATA;
	}
	r0 = blk_read(dev, buf, 2 * XVM_LABEL_SIZE, 0);
	if (r0) {
		free(buf);
		snprintf(err, errlen, "cannot read the label: %s", strerror(-r0));
		return r0;
	}
	r0 = xvm__label_decode(buf, l, e0, sizeof(e0));
	r1 = r0 ? xvm__label_decode(buf + XVM_LABEL_SIZE, l, e1, sizeof(e1)) : 0;
	free(buf);
	if (r0 == 0 || r1 == 0)
		return 0;
	if (r0 == -ENODATA && r1 == -ENODATA) {
		snprintf(err, errlen, "%s", e0);
		return -ENODATA;
	}
	snprintf(err, errlen, "corrupted label: primary copy: %s; secondary copy: %s", e0, e1);
	return -EINVAL;
}

int xvm__label_write(struct blk_dev *dev, const struct xvm__label *l)
{
	unsigned char *buf = malloc(XVM_LABEL_SIZE);
	int rc;

	if (!buf)
		return -ENOMEM;
	xvm__label_encode(l, buf);
	rc = blk_write(dev, buf, XVM_LABEL_SIZE, 0);
	if (!rc)
		rc = blk_flush(dev);
	if (!rc)
		rc = blk_write(dev, buf, XVM_LABEL_SIZE, XVM_LABEL_SIZE);
	if (!rc)
		rc = blk_flush(dev);
	free(buf);
	return rc;
}

#define XVM__DRL_MAGIC "CXFSDRL"
#define XVM__DRL_VERSION 1u
#define XVM__DRL_CSUM_OFF 56u

void xvm__drl_encode(unsigned char img[XVM__DRL_SLOT], const uint8_t uuid[16], unsigned slot,
		     unsigned shift, unsigned nbits, uint64_t geo, uint64_t seq, const uint8_t *bits)
{
	unsigned char sum[XVM__CSUM_LEN];

	memset(img, 0, XVM__DRL_SLOT);
	memcpy(img, XVM__DRL_MAGIC, sizeof(XVM__DRL_MAGIC));
	put32(img + 8, XVM__DRL_VERSION);
	put32(img + 12, slot);
	memcpy(img + 16, uuid, 16);
	put32(img + 32, shift);
	put32(img + 36, nbits);
	put64(img + 40, geo);
	put64(img + 48, seq);
	memcpy(img + XVM__DRL_HDR, bits, (nbits + 7) / 8);
	xvm__csum(img, XVM__DRL_SLOT, XVM__DRL_CSUM_OFF, sum);
	memcpy(img + XVM__DRL_CSUM_OFF, sum, XVM__CSUM_LEN);
}

int xvm__drl_decode(const unsigned char img[XVM__DRL_SLOT], const uint8_t uuid[16], unsigned slot,
		    unsigned shift, unsigned nbits, uint64_t geo, uint8_t *bits)
{
	unsigned char sum[XVM__CSUM_LEN];
	unsigned n;

	if (memcmp(img, XVM__DRL_MAGIC, sizeof(XVM__DRL_MAGIC)) != 0)
		return 0;       /* never written */
	xvm__csum(img, XVM__DRL_SLOT, XVM__DRL_CSUM_OFF, sum);
	if (sodium_memcmp(sum, img + XVM__DRL_CSUM_OFF, XVM__CSUM_LEN) != 0 ||
	    get32(img + 8) != XVM__DRL_VERSION || get32(img + 12) != slot)
		return -EINVAL;
	if (memcmp(img + 16, uuid, 16) != 0)
		return 0;       /* a slot of a volume this LUN held before */
	n = get32(img + 36);
	if (get32(img + 32) != shift || n != nbits || get64(img + 40) != geo)
		return -ESTALE;
	for (unsigned i = 0; i < (n + 7) / 8; i++)
		bits[i] |= img[XVM__DRL_HDR + i];
	return 0;
}
