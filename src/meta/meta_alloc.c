/*
 * meta_alloc.c - the data-region block allocator: used, reserved and
 * pending bitmaps over the whole data region, with per-AG counters to skip
 * full groups and a dirty mark per AG for the commit (see meta_alloc.h for
 * the states and why they exist).
 */
#include "meta/meta_alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct meta_run {
	uint64_t start, n;
};

struct meta_alloc {
	uint64_t nblocks;          /* blocks in the data region */
	uint32_t nag;              /* allocation groups */
	uint64_t nwords;           /* 64-bit words per bitmap */
	uint64_t *used;            /* owned by an extent of the store */
	uint64_t *resv;            /* reserved for a write in flight */
	uint64_t *pend;            /* freed by the open transaction */
	uint32_t *ag_busy;         /* per AG: blocks used, reserved or pending */
	uint8_t *ag_dirty;         /* per AG: used bitmap changed since taken */
	uint64_t busy;             /* total blocks used, reserved or pending */
	struct meta_run *pending;  /* runs to release at commit */
	size_t npending, cap_pending;
	uint32_t dirty_cursor;     /* where meta_alloc_take_dirty resumes */
};

static inline int bit_get(const uint64_t *bm, uint64_t b)
{
	return (int)((bm[b >> 6] >> (b & 63)) & 1u);
}

static inline void bit_set(uint64_t *bm, uint64_t b)
{
	bm[b >> 6] |= (uint64_t)1 << (b & 63);
}

static inline void bit_clear(uint64_t *bm, uint64_t b)
{
	bm[b >> 6] &= ~((uint64_t)1 << (b & 63));
}

static inline uint64_t busy_word(const struct meta_alloc *a, uint64_t w)
{
	uint64_t v = a->used[w] | a->resv[w] | a->pend[w];

	/* Blocks past the end of the region are never free. */
	if (w == (a->nblocks - 1) >> 6 && (a->nblocks & 63))
		v |= ~(uint64_t)0 << (a->nblocks & 63);
	else if (w > (a->nblocks - 1) >> 6)
		v = ~(uint64_t)0;
	return v;
}

int meta_alloc_create(uint64_t nblocks, struct meta_alloc **out)
{
	struct meta_alloc *a;

	if (nblocks == 0)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->nblocks = nblocks;
	a->nag = (uint32_t)((nblocks + META_AG_BLOCKS - 1) / META_AG_BLOCKS);
	/* Bitmaps cover whole AGs so that an AG's bytes can be handed out as is. */
	a->nwords = (uint64_t)a->nag * (META_AG_BLOCKS / 64);
	a->used = calloc(a->nwords, sizeof(uint64_t));
	a->resv = calloc(a->nwords, sizeof(uint64_t));
	a->pend = calloc(a->nwords, sizeof(uint64_t));
	a->ag_busy = calloc(a->nag, sizeof(uint32_t));
	a->ag_dirty = calloc(a->nag, 1);
	if (!a->used || !a->resv || !a->pend || !a->ag_busy || !a->ag_dirty) {
		meta_alloc_destroy(a);
		return -ENOMEM;
	}
	/* The tail of the last AG beyond the region counts as busy. */
	uint64_t tail = (uint64_t)a->nag * META_AG_BLOCKS - nblocks;
	a->ag_busy[a->nag - 1] = (uint32_t)tail;
	*out = a;
	return 0;
}

void meta_alloc_destroy(struct meta_alloc *a)
{
	if (!a)
		return;
	free(a->used);
	free(a->resv);
	free(a->pend);
	free(a->ag_busy);
	free(a->ag_dirty);
	free(a->pending);
	free(a);
}

uint32_t meta_alloc_ag_count(const struct meta_alloc *a)
{
	return a->nag;
}

uint64_t meta_alloc_total(const struct meta_alloc *a)
{
	return a->nblocks;
}

uint64_t meta_alloc_available(const struct meta_alloc *a)
{
	return a->nblocks - a->busy;
}

int meta_alloc_load(struct meta_alloc *a, uint32_t ag, const void *bits, size_t len)
{
	uint64_t first = (uint64_t)ag * META_AG_BLOCKS;
	const uint8_t *src = bits;
	uint32_t count = 0;

	if (ag >= a->nag || len != META_AG_BYTES)
		return -EINVAL;
	/* Check the new bitmap before touching any state. */
	for (uint64_t b = first; b < first + META_AG_BLOCKS; b++) {
		uint64_t i = b - first;

		if (!((src[i / 8] >> (i % 8)) & 1))
			continue;
		if (b >= a->nblocks)
			return -EINVAL;      /* a block beyond the region marked used */
		count++;
	}
	/* Drop the old state of the AG from the counters, then take the new. */
	for (uint64_t b = first; b < first + META_AG_BLOCKS && b < a->nblocks; b++)
		if (bit_get(a->used, b))
			a->busy--, a->ag_busy[ag]--;
	memcpy(a->used + first / 64, bits, len);
	a->ag_busy[ag] += count;
	a->busy += count;
	return 0;
}

/* Mark [start, start+n) in @bm and count the blocks in busy counters. */
static void mark_busy(struct meta_alloc *a, uint64_t *bm, uint64_t start, uint64_t n)
{
	for (uint64_t b = start; b < start + n; b++) {
		bit_set(bm, b);
		a->ag_busy[b / META_AG_BLOCKS]++;
	}
	a->busy += n;
}

static void clear_busy(struct meta_alloc *a, uint64_t *bm, uint64_t start, uint64_t n)
{
	for (uint64_t b = start; b < start + n; b++) {
		bit_clear(bm, b);
		a->ag_busy[b / META_AG_BLOCKS]--;
	}
	a->busy -= n;
}

static void mark_dirty(struct meta_alloc *a, uint64_t start, uint64_t n)
{
	for (uint64_t ag = start / META_AG_BLOCKS; ag <= (start + n - 1) / META_AG_BLOCKS; ag++)
		a->ag_dirty[ag] = 1;
}

/* First free block at or after @from, or UINT64_MAX. */
static uint64_t find_free(const struct meta_alloc *a, uint64_t from)
{
	uint64_t b = from;

	while (b < a->nblocks) {
		uint32_t ag = (uint32_t)(b / META_AG_BLOCKS);

		if (a->ag_busy[ag] == META_AG_BLOCKS) {
			b = (uint64_t)(ag + 1) * META_AG_BLOCKS;
			continue;
		}
		uint64_t w = b >> 6;
		uint64_t free_bits = ~busy_word(a, w) & (~(uint64_t)0 << (b & 63));

		if (free_bits)
			return (w << 6) + (uint64_t)__builtin_ctzll(free_bits);
		b = (w + 1) << 6;
	}
	return UINT64_MAX;
}

/* Length of the free run at @start, at most @max. */
static uint64_t free_run(const struct meta_alloc *a, uint64_t start, uint64_t max)
{
	uint64_t b = start, n = 0;

	while (n < max && b < a->nblocks) {
		uint64_t busy = busy_word(a, b >> 6) >> (b & 63);
		uint64_t avail = busy ? (uint64_t)__builtin_ctzll(busy) : 64 - (b & 63);

		if (avail == 0)
			break;
		n += avail;
		b += avail;
		if (b & 63)
			break;          /* the run ended inside this word */
	}
	return n < max ? n : max;
}

int meta_alloc_reserve(struct meta_alloc *a, uint64_t goal, uint64_t want, uint64_t *start,
		       uint64_t *got)
{
	uint64_t s;

	if (want == 0)
		return -EINVAL;
	if (a->busy >= a->nblocks)
		return -ENOSPC;
	if (goal >= a->nblocks)
		goal = 0;
	s = find_free(a, goal);
	if (s == UINT64_MAX)
		s = find_free(a, 0);
	if (s == UINT64_MAX)
		return -ENOSPC;
	*got = free_run(a, s, want);
	*start = s;
	mark_busy(a, a->resv, s, *got);
	return 0;
}

void meta_alloc_unreserve(struct meta_alloc *a, uint64_t start, uint64_t n)
{
	clear_busy(a, a->resv, start, n);
}

void meta_alloc_use_reserved(struct meta_alloc *a, uint64_t start, uint64_t n)
{
	for (uint64_t b = start; b < start + n; b++) {
		bit_clear(a->resv, b);
		bit_set(a->used, b);
	}
	mark_dirty(a, start, n);
}

void meta_alloc_free(struct meta_alloc *a, uint64_t start, uint64_t n)
{
	struct meta_run *r;

	for (uint64_t b = start; b < start + n; b++) {
		bit_clear(a->used, b);
		bit_set(a->pend, b);
	}
	mark_dirty(a, start, n);
	if (a->npending == a->cap_pending) {
		size_t cap = a->cap_pending ? a->cap_pending * 2 : 64;
		struct meta_run *p = realloc(a->pending, cap * sizeof(*p));

		if (!p) {
			/* Without room to remember the run, keep it pending for good
			 * rather than risk reuse before the commit. */
			return;
		}
		a->pending = p;
		a->cap_pending = cap;
	}
	r = &a->pending[a->npending++];
	r->start = start;
	r->n = n;
}

void meta_alloc_committed(struct meta_alloc *a)
{
	meta_alloc_release_sealed(a, a->npending);
}

size_t meta_alloc_seal(const struct meta_alloc *a)
{
	return a->npending;
}

void meta_alloc_release_sealed(struct meta_alloc *a, size_t mark)
{
	for (size_t i = 0; i < mark; i++)
		clear_busy(a, a->pend, a->pending[i].start, a->pending[i].n);
	if (a->npending > mark)
		memmove(a->pending, a->pending + mark,
			(a->npending - mark) * sizeof(*a->pending));
	a->npending -= mark;
}

int meta_alloc_is_used(const struct meta_alloc *a, uint64_t start, uint64_t n)
{
	if (start + n > a->nblocks || start + n < start)
		return 0;
	for (uint64_t b = start; b < start + n; b++)
		if (!bit_get(a->used, b))
			return 0;
	return 1;
}

int meta_alloc_take_dirty(struct meta_alloc *a, uint32_t *ag, const void **bits)
{
	for (uint32_t i = 0; i < a->nag; i++) {
		uint32_t g = (a->dirty_cursor + i) % a->nag;

		if (!a->ag_dirty[g])
			continue;
		a->ag_dirty[g] = 0;
		a->dirty_cursor = g + 1;
		*ag = g;
		*bits = a->used + (uint64_t)g * (META_AG_BLOCKS / 64);
		return 1;
	}
	return 0;
}
