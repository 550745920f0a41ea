/*
 * xvm_layout.c - the volume tree: its checks and derived sizes, its edits
 * (append a subtree, remove one), and the layout grammar that describes it
 * (parse for xvm_create(), format for xvm_show()).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cx_util.h"
#include "xvm/xvm_i.h"

#define XVM__NO_PARENT 0xffu

static const char *const xvm__kind_name[] = {
	[XVM__LEAF] = "lun", [XVM__CONCAT] = "concat", [XVM__STRIPE] = "stripe",
	[XVM__MIRROR] = "mirror",
};

/* Depth-first: set parents and sizes below @i; count visits in @seen. */
static int xvm__check_node(struct xvm__tree *t, unsigned i, unsigned depth, uint8_t *seen,
			   char *err, size_t errlen)
{
	struct xvm__node *nd = &t->node[i];
	uint64_t min = UINT64_MAX, sum = 0;
	unsigned c;
	int rc;

	if (seen[i]++ || depth > XVM_MAX_NODES) {
		snprintf(err, errlen, "node %u is reached twice (the tree has a cycle)", i);
		return -EINVAL;
	}
	if (nd->kind == XVM__LEAF) {
		if (nd->nchild || nd->leaf >= XVM_MAX_LEAVES || nd->leaf_size == 0) {
			snprintf(err, errlen, "leaf node %u is malformed", i);
			return -EINVAL;
		}
		nd->size = nd->leaf_size;
		return 0;
	}
	if (nd->kind < XVM__CONCAT || nd->kind > XVM__MIRROR) {
		snprintf(err, errlen, "node %u has unknown kind %u", i, nd->kind);
		return -EINVAL;
	}
	if (nd->nchild < 1 || nd->nchild > XVM_MAX_CHILDREN ||
	    (nd->kind == XVM__MIRROR && nd->nchild > XVM_MAX_LEGS)) {
		snprintf(err, errlen, "%s node %u has %u children (a mirror takes 1 to 3 legs, "
			 "a concat or stripe 1 to %d)", xvm__kind_name[nd->kind], i, nd->nchild,
			 XVM_MAX_CHILDREN);
		return -EINVAL;
	}
	if (nd->kind == XVM__STRIPE &&
	    (nd->stripe_unit < 512 || (nd->stripe_unit & (nd->stripe_unit - 1)))) {
		snprintf(err, errlen, "stripe node %u has stripe unit %u (want a power of two >= 512)",
			 i, nd->stripe_unit);
		return -EINVAL;
	}
	for (c = 0; c < nd->nchild; c++) {
		unsigned ch = nd->child[c];

		if (ch >= t->n || ch == 0) {
			snprintf(err, errlen, "node %u names child %u of %u nodes", i, ch, t->n);
			return -EINVAL;
		}
		t->node[ch].parent = (uint8_t)i;
		rc = xvm__check_node(t, ch, depth + 1, seen, err, errlen);
		if (rc)
			return rc;
		if (t->node[ch].leg_state > XVM_LEG_DETACHED ||
		    (nd->kind != XVM__MIRROR && t->node[ch].leg_state != XVM_LEG_ACTIVE)) {
			snprintf(err, errlen, "node %u has leg state %u", ch, t->node[ch].leg_state);
			return -EINVAL;
		}
		sum += t->node[ch].size;
		if (t->node[ch].size < min)
			min = t->node[ch].size;
	}
	switch (nd->kind) {
	case XVM__CONCAT:
		nd->size = sum;
		break;
	case XVM__STRIPE:
		nd->size = (uint64_t)nd->nchild * (min / nd->stripe_unit * nd->stripe_unit);
		break;
	default:
		if (nd->leaf_size > min) {
			snprintf(err, errlen, "mirror node %u: a leg holds %llu bytes, the mirror %llu",
				 i, (unsigned long long)min, (unsigned long long)nd->leaf_size);
			return -EINVAL;
		}
		nd->size = nd->leaf_size ? nd->leaf_size : min;
		break;
	}
	if (nd->size == 0) {
		snprintf(err, errlen, "%s node %u holds no bytes", xvm__kind_name[nd->kind], i);
		return -EINVAL;
	}
	return 0;
}

int xvm__tree_check(struct xvm__tree *t, char *err, size_t errlen)
{
	uint8_t seen[XVM_MAX_NODES] = { 0 };
	uint32_t leaves = 0;
	unsigned i;
	int rc;

	if (t->n == 0 || t->n > XVM_MAX_NODES) {
		snprintf(err, errlen, "the tree has %u nodes (1 to %d)", t->n, XVM_MAX_NODES);
		return -EINVAL;
	}
	t->node[0].parent = XVM__NO_PARENT;
	if (t->node[0].leg_state != XVM_LEG_ACTIVE) {
		snprintf(err, errlen, "the root has a leg state");
		return -EINVAL;
	}
	rc = xvm__check_node(t, 0, 0, seen, err, errlen);
	if (rc)
		return rc;
	for (i = 0; i < t->n; i++) {
		if (!seen[i]) {
			snprintf(err, errlen, "node %u is not in the tree", i);
			return -EINVAL;
		}
		if (t->node[i].kind != XVM__LEAF)
			continue;
		if (leaves & (1u << t->node[i].leaf)) {
			snprintf(err, errlen, "LUN %u appears twice in the tree", t->node[i].leaf);
			return -EINVAL;
		}
		leaves |= 1u << t->node[i].leaf;
	}
	return 0;
}

int xvm__tree_leaf(const struct xvm__tree *t, uint32_t leaf)
{
	unsigned i;

	for (i = 0; i < t->n; i++)
		if (t->node[i].kind == XVM__LEAF && t->node[i].leaf == leaf)
			return (int)i;
	return -1;
}

uint32_t xvm__tree_nleaves(const struct xvm__tree *t)
{
	uint32_t n = 0;
	unsigned i;

	for (i = 0; i < t->n; i++)
		if (t->node[i].kind == XVM__LEAF && t->node[i].leaf + 1 > n)
			n = t->node[i].leaf + 1;
	return n;
}

unsigned xvm__tree_depth(const struct xvm__tree *t, unsigned i)
{
	unsigned d = 0;

	for (; i != 0; i = t->node[i].parent)
		d++;
	return d;
}

int xvm__tree_under_inactive(const struct xvm__tree *t, unsigned i)
{
	for (; i != 0 && i != XVM__NO_PARENT; i = t->node[i].parent)
		if (t->node[i].leg_state != XVM_LEG_ACTIVE)
			return 1;
	return 0;
}

int xvm__under_detached(const struct xvm__tree *t, unsigned i)
{
	for (; i != 0 && i != XVM__NO_PARENT; i = t->node[i].parent)
		if (t->node[i].leg_state == XVM_LEG_DETACHED)
			return 1;
	return 0;
}

int xvm__tree_add_child(struct xvm__tree *t, unsigned parent, const struct xvm__tree *sub)
{
	struct xvm__node *p = &t->node[parent];
	unsigned base = t->n, i, c;

	if (t->n + sub->n > XVM_MAX_NODES || p->nchild >= XVM_MAX_CHILDREN)
		return -ENOSPC;
	for (i = 0; i < sub->n; i++) {
		t->node[base + i] = sub->node[i];
		for (c = 0; c < sub->node[i].nchild; c++)
			t->node[base + i].child[c] = (uint8_t)(sub->node[i].child[c] + base);
	}
	t->n += sub->n;
	p->child[p->nchild++] = (uint8_t)base;
	return 0;
}

/* Mark the subtree at @i in @drop. */
static void xvm__mark(const struct xvm__tree *t, unsigned i, uint8_t *drop)
{
	unsigned c;

	drop[i] = 1;
	for (c = 0; c < t->node[i].nchild; c++)
		xvm__mark(t, t->node[i].child[c], drop);
}

void xvm__tree_remove(struct xvm__tree *t, unsigned i)
{
	uint8_t drop[XVM_MAX_NODES] = { 0 }, map[XVM_MAX_NODES];
	struct xvm__node *p = &t->node[t->node[i].parent];
	unsigned j, k, c;

	for (c = 0, k = 0; c < p->nchild; c++)
		if (p->child[c] != i)
			p->child[k++] = p->child[c];
	p->nchild = (uint8_t)k;
	xvm__mark(t, i, drop);
	for (j = 0, k = 0; j < t->n; j++) {
		map[j] = (uint8_t)k;
		if (!drop[j])
			t->node[k++] = t->node[j];
	}
	t->n = k;
	for (j = 0; j < t->n; j++)
		for (c = 0; c < t->node[j].nchild; c++)
			t->node[j].child[c] = map[t->node[j].child[c]];
}

/* The parser's state. */
struct xvm__parser {
	const char *s;                    /* next character */
	const char *start;                /* the whole spec, for positions */
	size_t nluns;                     /* LUNs given */
	const uint64_t *sizes;            /* their usable sizes */
	uint32_t unit;                    /* default stripe unit */
	uint32_t used;                    /* LUN numbers used (bitmap) */
	struct xvm__tree *t;              /* being built */
	char *err;                        /* where reasons go */
	size_t errlen;                    /* its size */
};

static int xvm__perr(struct xvm__parser *ps, const char *what)
{
	snprintf(ps->err, ps->errlen, "layout \"%s\", at offset %zu: %s", ps->start,
		 (size_t)(ps->s - ps->start), what);
	return -EINVAL;
}

/* Parse one node; *@out gets its index. */
static int xvm__parse_node(struct xvm__parser *ps, unsigned depth, unsigned *out)
{
	static const struct { const char *word; enum xvm__kind kind; } kinds[] = {
		{ "concat", XVM__CONCAT }, { "stripe", XVM__STRIPE }, { "mirror", XVM__MIRROR },
	};
	struct xvm__node *nd;
	unsigned idx, k, ch;
	size_t wl;
	int rc;

	while (isspace((unsigned char)*ps->s))
		ps->s++;
	if (ps->t->n >= XVM_MAX_NODES || depth > 16)
		return xvm__perr(ps, "too many nodes");
	idx = ps->t->n++;
	nd = &ps->t->node[idx];
	memset(nd, 0, sizeof(*nd));
	*out = idx;
	if (isdigit((unsigned char)*ps->s)) {
		char *end;
		unsigned long lun = strtoul(ps->s, &end, 10);

		if (lun >= ps->nluns)
			return xvm__perr(ps, "LUN number beyond the LUNs given");
		if (ps->used & (1u << lun))
			return xvm__perr(ps, "LUN used twice");
		ps->used |= 1u << lun;
		ps->s = end;
		nd->kind = XVM__LEAF;
		nd->leaf = (uint32_t)lun;
		nd->leaf_size = ps->sizes[lun];
		return 0;
	}
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		wl = strlen(kinds[k].word);
		if (strncmp(ps->s, kinds[k].word, wl) == 0)
			break;
	}
	if (k == sizeof(kinds) / sizeof(kinds[0]))
		return xvm__perr(ps, "want a LUN number, concat, stripe or mirror");
	ps->s += wl;
	nd->kind = (uint8_t)kinds[k].kind;
	nd->stripe_unit = nd->kind == XVM__STRIPE ? ps->unit : 0;
	if (*ps->s == ':') {
		char word[32];
		size_t n = strcspn(ps->s + 1, "(");

		if (nd->kind != XVM__STRIPE)
			return xvm__perr(ps, "only a stripe takes a size");
		if (n == 0 || n >= sizeof(word))
			return xvm__perr(ps, "bad stripe unit");
		memcpy(word, ps->s + 1, n);
		word[n] = 0;
		uint64_t unit = cx_parse_size(word);
		if (unit < 512 || unit > (1u << 30) || (unit & (unit - 1)))
			return xvm__perr(ps, "stripe unit must be a power of two from 512 bytes to 1G");
		nd->stripe_unit = (uint32_t)unit;
		ps->s += 1 + n;
	}
	if (*ps->s != '(')
		return xvm__perr(ps, "want '('");
	ps->s++;
	for (;;) {
		if (nd->nchild >= XVM_MAX_CHILDREN)
			return xvm__perr(ps, "too many children");
		rc = xvm__parse_node(ps, depth + 1, &ch);
		if (rc)
			return rc;
		nd = &ps->t->node[idx];
		nd->child[nd->nchild++] = (uint8_t)ch;
		while (isspace((unsigned char)*ps->s))
			ps->s++;
		if (*ps->s == ',') {
			ps->s++;
			continue;
		}
		if (*ps->s == ')') {
			ps->s++;
			break;
		}
		return xvm__perr(ps, "want ',' or ')'");
	}
	if (nd->kind == XVM__MIRROR && (nd->nchild < 2 || nd->nchild > XVM_MAX_LEGS))
		return xvm__perr(ps, "a mirror takes 2 or 3 legs");
	return 0;
}

int xvm__layout_parse(const char *spec, size_t nluns, const uint64_t *sizes,
		      uint32_t default_unit, struct xvm__tree *t, char *err, size_t errlen)
{
	struct xvm__parser ps = { spec, spec, nluns, sizes, default_unit, 0, t, err, errlen };
	unsigned root;
	int rc;

	memset(t, 0, sizeof(*t));
	if (nluns > XVM_MAX_LEAVES) {
		snprintf(err, errlen, "%zu LUNs (at most %d)", nluns, XVM_MAX_LEAVES);
		return -EINVAL;
	}
	rc = xvm__parse_node(&ps, 0, &root);
	if (rc)
		return rc;
	while (isspace((unsigned char)*ps.s))
		ps.s++;
	if (*ps.s)
		return xvm__perr(&ps, "trailing characters");
	if (ps.used != (nluns == 32 ? UINT32_MAX : (1u << nluns) - 1)) {
		snprintf(err, errlen, "layout \"%s\" does not use every LUN given (%zu)", spec, nluns);
		return -EINVAL;
	}
	rc = xvm__tree_check(t, err, errlen);
	/* A mirror keeps its size when legs come and go. */
	for (root = 0; root < t->n && !rc; root++)
		if (t->node[root].kind == XVM__MIRROR)
			t->node[root].leaf_size = t->node[root].size;
	return rc;
}

void xvm__layout_format(const struct xvm__tree *t, unsigned i, char *out, size_t outlen)
{
	const struct xvm__node *nd = &t->node[i];
	size_t used;
	unsigned c;

	if (outlen == 0)
		return;
	if (nd->kind == XVM__LEAF) {
		snprintf(out, outlen, "%u", nd->leaf);
		return;
	}
	if (nd->kind == XVM__STRIPE && nd->stripe_unit % 1024 == 0)
		snprintf(out, outlen, "stripe:%uk(", nd->stripe_unit >> 10);
	else if (nd->kind == XVM__STRIPE)
		snprintf(out, outlen, "stripe:%u(", nd->stripe_unit);
	else
		snprintf(out, outlen, "%s(", xvm__kind_name[nd->kind]);
	for (c = 0; c < nd->nchild; c++) {
		used = strlen(out);
		if (c && used + 1 < outlen) {
			out[used++] = ',';
			out[used] = 0;
		}
		xvm__layout_format(t, nd->child[c], out + used, outlen - used);
	}
	used = strlen(out);
	if (used + 1 < outlen) {
		out[used] = ')';
		out[used + 1] = 0;
	}
}
