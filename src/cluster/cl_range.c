/*
 * cl_range.c - byte-range IO tokens: how several nodes write one file at
 * once, buffered (cached) or direct, each write atomic against the others
 * and every node's cached data coherent (docs/ARCHITECTURE.md, "Byte-range
 * tokens"); and the keys of the name buckets of shared directories, which
 * have the same form, with the tokens such a directory is shared by
 * (docs/ARCHITECTURE.md, "Shared directories").
 *
 * A file's own tokens stay whole-file.  A lone writer holds IO, the page
 * tokens, SIZE and TIMES at WRITE and asks once; a node the MDS says is
 * alone on the file (I/O-exclusive, cl_ioexcl.c) writes so.  Otherwise,
 * once that WRITE was recalled from a node (another node wrote or read the
 * file) within CL_RANGE_SHARE_NS, or while the node shares the file already, a write
 * whose blocks all have data (it allocates and converts nothing) takes the
 * file's tokens at the shared levels (cl_swrite_set) and, besides, the
 * range tokens of each 1 << CL_RANGE_SHIFT aligned range it touches
 * (range_set: IO and the page tokens at WRITE for a buffered write, the
 * page tokens at SHARED_WRITE for a direct one), held under a key of their
 * own (the range's number and the inode in one 64-bit key, range_key),
 * which the token server and client handle like any inode's.  A node that
 * shares the file reads by ranges too, at READ, within the size it knows.
 * So two nodes writing disjoint parts ask once per range and never take
 * turns; two writing one range take turns on that range only, its recall
 * writing back the file's cached data and dropping the range's
 * (cl_client.c, range_duty).
 *
 * Why it is coherent: cached data of a file held under the shared levels
 * lies in ranges whose tokens the node holds (dirty data at WRITE, clean
 * at READ or better); whoever else writes a range in shared mode takes its
 * tokens; whoever uses the file whole (a reader, an exclusive writer, a
 * truncate) conflicts with the page tokens at SWRITE, whose return writes
 * back and drops every cached page of the file (tok_table.c).  A node gives its range tokens back once its
 * page tokens at SWRITE went (cl_range_returned: they guard nothing then),
 * so range keys do not outlive the file's sharing; and a client that writes
 * with the exclusive set gives them back too (cl_range_forget): while it
 * has extent conversions unpublished it takes no range (c_write, c_read),
 * and so never holds one that a sharer waits for while its publish waits
 * for that sharer's EXTENT token.
 *
 * Why it is deadlock-free: a write takes the file's tokens first, then the
 * range keys in ascending order (all above any inode number), so the rule
 * of tok.h (across inodes, ascending order) holds; a holder of a range
 * waits for nothing but its own I/O before it lets the range go.
 *
 * Lock order: cl_inode.mu is taken alone here (never across a token call).
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "common/cx_intr.h"

#define RANGE_KEY_BIT (UINT64_C(1) << 63)
#define RANGE_INO_BITS 40
#define RANGE_INO_MASK ((UINT64_C(1) << RANGE_INO_BITS) - 1)
#define RANGE_IDX_MAX ((UINT64_C(1) << (63 - RANGE_INO_BITS)) - 1)

_Static_assert((META_MAX_FILE_SIZE >> CL_RANGE_SHIFT) <= RANGE_IDX_MAX,
	       "every range of the largest file has a key");

/*
 * The key of range @idx of @ino.  Only files whose inode fits take ranges
 * (cl_range_reads); every range of a file fits (the assertion above).
 */
static uint64_t range_key(uint64_t ino, uint64_t idx)
{
	return RANGE_KEY_BIT | (idx << RANGE_INO_BITS) | ino;
}

bool cl_range_of(uint64_t key, uint64_t *ino, uint64_t *off, uint64_t *end)
{
	uint64_t idx;

	if (!(key & RANGE_KEY_BIT))
		return false;
	idx = (key & ~RANGE_KEY_BIT) >> RANGE_INO_BITS;
	*ino = key & RANGE_INO_MASK;
	*off = idx << CL_RANGE_SHIFT;
	*end = (idx + 1) << CL_RANGE_SHIFT;
	return true;
}

/*
 * The name bucket of @name in directory @dir (docs/ARCHITECTURE.md,
 * "Shared directories"): a key of the same form as a range's, the
 * directory's inode below and, as the range number, a hash of the name
 * with its last run of digits taken out, so that the names one job of one
 * node makes ("n2.000017", "file.mdtest.3.41") share a bucket and another
 * node's fall elsewhere.  A directory has no byte ranges, so the two kinds
 * never meet; a bucket key carries only NAME.  0 if @dir is too large to
 * have buckets.
 */
uint64_t cl_bucket_key(uint64_t dir, const char *name)
{
	size_t len = strlen(name), end = len, start;
	char stem[META_NAME_MAX + 1];

	if (dir > RANGE_INO_MASK || len > META_NAME_MAX)
		return 0;
	while (end > 0 && !(name[end - 1] >= '0' && name[end - 1] <= '9'))
		end--;
	start = end;
	while (start > 0 && name[start - 1] >= '0' && name[start - 1] <= '9')
		start--;
	memcpy(stem, name, start);
	memcpy(stem + start, name + end, len - end + 1);
	return range_key(dir, cl_name_hash(stem) & RANGE_IDX_MAX);
}

int cl_bucket_fill(void *ctx, const char *name, const struct vn_attr *a, int64_t next_off)
{
	struct cl_bucket_filter *f = ctx;

	if (cl_bucket_key(f->dir, name) != f->key)
		return 0;
	return f->fill(f->ctx, name, a, next_off);
}

void cl_shared_dir_set(struct tok_set *s, bool names)
{
	tok_set_clear(s);
	tok_set_add(s, TOK_TIMES, TOK_SWRITE);
	tok_set_add(s, TOK_SIZE, TOK_SWRITE);
	tok_set_add(s, TOK_ATTR, TOK_READ);
	if (names)
		tok_set_add(s, TOK_NAME, TOK_SWRITE);
}

/*
 * A buffered write holds its ranges' IO and page tokens at WRITE; a direct
 * write, which caches nothing, their page tokens at SHARED_WRITE, as the
 * file's (the seed's levels for direct I/O): direct writers of one range
 * do not take turns, and a buffered writer's cached data of the range is
 * written back and dropped before they write it.  A read holds them at
 * READ: another node's cached writes of the range are written back first,
 * and what it reads may stay cached until the range is recalled.
 */
static void range_set(struct tok_set *s, enum cl_range_use use)
{
	tok_set_clear(s);
	switch (use) {
	case CL_RANGE_WRITE:
		tok_set_add(s, TOK_IO, TOK_WRITE);
		tok_set_add(s, TOK_PAGE_DIRTY, TOK_WRITE);
		tok_set_add(s, TOK_PAGE_CLEAN, TOK_WRITE);
		break;
	case CL_RANGE_DIRECT:
		tok_set_add(s, TOK_PAGE_DIRTY, TOK_SWRITE);
		tok_set_add(s, TOK_PAGE_CLEAN, TOK_SWRITE);
		break;
	case CL_RANGE_READ:
		tok_set_add(s, TOK_IO, TOK_READ);
		tok_set_add(s, TOK_PAGE_DIRTY, TOK_READ);
		tok_set_add(s, TOK_PAGE_CLEAN, TOK_READ);
		break;
	}
}

bool cl_range_reads(struct cl_ctx *cx, struct cl_inode *ci)
{
	struct tok_set held;

	if (ci->ino > RANGE_INO_MASK)
		return false;
	tok_client_cached(cx->tc, ci->ino, &held);
	return held.level[TOK_PAGE_DIRTY] == TOK_SWRITE;
}

bool cl_range_wanted(struct cl_ctx *cx, struct cl_inode *ci, const struct vn_call *c)
{
	int64_t until;

	if (c->u.write.flags & (O_APPEND | O_DIRECT) || c->u.write.size == 0 ||
	    ci->ino > RANGE_INO_MASK)
		return false;
	/* The MDS says no other node writes the file: write it alone (cl_ioexcl.c). */
	if (cl_io_alone(cx, ci))
		return false;
	pthread_mutex_lock(&ci->mu);
	until = ci->shared_until_ns;
	pthread_mutex_unlock(&ci->mu);
	if (until && cx_intr_now_ns() < until)
		return true;
	return cl_range_reads(cx, ci);
}

/* Note range @idx as held by this node (ci->mu held); -ENOMEM. */
static int range_note(struct cl_inode *ci, uint64_t idx)
{
	size_t lo = 0, hi = ci->nranges;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ci->ranges[mid] < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ci->nranges && ci->ranges[lo] == idx)
		return 0;
	if (ci->nranges == ci->ranges_cap) {
		size_t cap = ci->ranges_cap ? ci->ranges_cap * 2 : 16;
		uint64_t *v = realloc(ci->ranges, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ci->ranges = v;
		ci->ranges_cap = cap;
	}
	memmove(ci->ranges + lo + 1, ci->ranges + lo, (ci->nranges - lo) * sizeof(*ci->ranges));
	ci->ranges[lo] = idx;
	ci->nranges++;
	return 0;
}

void cl_range_release(struct cl_ctx *cx, const struct cl_range_hold *h)
{
	struct tok_set s;

	range_set(&s, h->use);
	for (uint64_t i = h->first; i < h->next; i++)
		tok_client_release(cx->tc, range_key(h->ino, i), &s);
}

int cl_range_acquire(struct cl_ctx *cx, struct cl_inode *ci, uint64_t off, uint64_t end,
		     enum cl_range_use use, struct cl_range_hold *h)
{
	struct tok_set s;
	uint64_t last = (end - 1) >> CL_RANGE_SHIFT;
	int rc = 0;

	range_set(&s, use);
	h->ino = ci->ino;
	h->use = use;
	h->first = h->next = off >> CL_RANGE_SHIFT;
	/* A file too large to have range keys is never cached by ranges: none needed. */
	if (ci->ino > RANGE_INO_MASK)
		return 0;
	for (; h->next <= last; h->next++) {
		pthread_mutex_lock(&ci->mu);
		rc = range_note(ci, h->next);
		pthread_mutex_unlock(&ci->mu);
		if (!rc)
			rc = cl_acquire(cx, range_key(ci->ino, h->next), &s);
		if (rc)
			break;
	}
	if (rc) {
		cl_range_release(cx, h);
		h->next = h->first;
	}
	return rc;
}

/* Give back the range tokens of a file that is no longer shared here. */
struct forget_job {
	struct cl_ctx *cx;
	struct cl_inode *ci;
};

static void forget_run(void *arg)
{
	struct forget_job *j = arg;
	struct cl_inode *ci = j->ci;
	uint64_t *v;
	size_t n;

	pthread_mutex_lock(&ci->mu);
	v = ci->ranges;
	n = ci->nranges;
	ci->ranges = NULL;
	ci->nranges = ci->ranges_cap = 0;
	pthread_mutex_unlock(&ci->mu);
	for (size_t i = 0; i < n; i++) {
		/* In use again (a new shared write): it stays noted. */
		if (tok_client_forget(j->cx->tc, range_key(ci->ino, v[i])) == -EBUSY) {
			pthread_mutex_lock(&ci->mu);
			(void)range_note(ci, v[i]);
			pthread_mutex_unlock(&ci->mu);
		}
	}
	free(v);
	cl_inode_put(j->cx, ci);
	free(j);
}

/* Give @ci's range tokens back on a helper thread (it puts @ci's reference). */
static void forget_spawn(struct cl_ctx *cx, struct cl_inode *ci)
{
	struct forget_job *j = malloc(sizeof(*j));

	if (j) {
		j->cx = cx;
		j->ci = ci;
		if (cl_spawn(cx, forget_run, j) == 0)
			return;
		free(j);
	}
	cl_inode_put(cx, ci);
}

void cl_range_forget(struct cl_ctx *cx, struct cl_inode *ci)
{
	bool any;

	pthread_mutex_lock(&ci->mu);
	any = ci->nranges > 0;
	pthread_mutex_unlock(&ci->mu);
	if (!any)
		return;
	ci = cl_inode_get(cx, ci->ino, false);
	if (ci)
		forget_spawn(cx, ci);
}

void cl_range_returned(struct cl_ctx *cx, uint64_t ino, const struct tok_set *tokens)
{
	struct cl_inode *ci;
	bool any;

	if (ino & RANGE_KEY_BIT)
		return;
	ci = cl_inode_get(cx, ino, false);
	if (!ci)
		return;
	pthread_mutex_lock(&ci->mu);
	if (tokens->level[TOK_IO] == TOK_WRITE)
		ci->shared_until_ns = cx_intr_now_ns() + CL_RANGE_SHARE_NS;
	any = ci->nranges > 0;
	pthread_mutex_unlock(&ci->mu);
	if (any && tokens->level[TOK_PAGE_DIRTY] == TOK_SWRITE)
		forget_spawn(cx, ci);
	else
		cl_inode_put(cx, ci);
}
