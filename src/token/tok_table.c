/*
 * tok_table.c - the token table: for each of the eleven tokens its name and,
 * per level, the duties a node does before giving it back and the rule by
 * which the server merges the state it returns; plus the conflict rule and
 * helpers over token sets.  Everything that differs between tokens is data
 * here, so the server and client have no per-token branches.  Also the
 * clock and the lists of the wait records.
 */
#include "token/tok_i.h"

#include <string.h>
#include <time.h>

#define D(d) TOK_DUTY_BIT(TOK_DUTY_##d)

/* One token: indexed by enum tok_level. */
struct tok__info {
	const char *name;
	unsigned duties[TOK_NLEVELS];           /* TOK_DUTY_BIT() masks */
	enum tok__merge merge[TOK_NLEVELS];     /* state returned with the level */
};

/*
 * Why these duties (patent [0032]-[0033], and FUSE's caches):
 *   - page-dirty WRITE (buffered writers) flushes, then discards; page-clean
 *     WRITE flushes; page-clean READ (buffered readers) discards.  The
 *     SHARED_WRITE levels are held by nodes sharing a file (direct I/O,
 *     and buffered writers under byte-range tokens, which cache data of
 *     the ranges they hold): their return writes back and drops it all.
 *   - name and attr: any level may back cached lookups / attributes.
 *   - times and size: whoever held a writing level sends its values back
 *     (shared writers are merged by maximum, the single writer replaces);
 *     every level drops the attributes the kernel caches, which include
 *     times and size.  The values are read before the attributes go.
 *   - extent: the map the node got with the token is stale once it is gone.
 *   - existence, I/O-exclusive, IO and DMAPI guard no cached data.
 */
static const struct tok__info tok__table[TOK_NTOKENS] = {
	[TOK_EXIST]      = { "exist",      { 0, 0, 0, 0 }, { 0 } },
	[TOK_IOEXCL]     = { "ioexcl",     { 0, 0, 0, 0 }, { 0 } },
	[TOK_IO]         = { "io",         { 0, 0, 0, 0 }, { 0 } },
	[TOK_PAGE_DIRTY] = { "page-dirty", { 0, 0, D(FLUSH) | D(DISCARD), D(FLUSH) | D(DISCARD) },
			     { 0 } },
	[TOK_PAGE_CLEAN] = { "page-clean", { 0, D(DISCARD), D(FLUSH) | D(DISCARD), D(FLUSH) },
			     { 0 } },
	[TOK_NAME]       = { "name",
			     { 0, D(INVAL_NAMES), D(INVAL_NAMES), D(INVAL_NAMES) }, { 0 } },
	[TOK_ATTR]       = { "attr",
			     { 0, D(INVAL_ATTR), D(INVAL_ATTR), D(INVAL_ATTR) }, { 0 } },
	[TOK_TIMES]      = { "times",
			     { 0, D(INVAL_ATTR), D(TIMES) | D(INVAL_ATTR), D(TIMES) | D(INVAL_ATTR) },
			     { 0, 0, TOK__MERGE_MAX, TOK__MERGE_REPLACE } },
	[TOK_SIZE]       = { "size",
			     { 0, D(INVAL_ATTR), D(SIZE) | D(INVAL_ATTR), D(SIZE) | D(INVAL_ATTR) },
			     { 0, 0, TOK__MERGE_MAX, TOK__MERGE_REPLACE } },
	[TOK_EXTENT]     = { "extent",
			     { 0, D(INVAL_EXTENTS), D(INVAL_EXTENTS), D(INVAL_EXTENTS) }, { 0 } },
	[TOK_DMAPI]      = { "dmapi",      { 0, 0, 0, 0 }, { 0 } },
};

_Static_assert(TOK_NTOKENS <= 16, "token masks are uint16_t");

static const char *const tok__level_names[TOK_NLEVELS] = { "none", "read", "swrite", "write" };

void tok_set_clear(struct tok_set *set)
{
	memset(set, 0, sizeof(*set));
}

void tok_set_add(struct tok_set *set, enum tok_id tok, enum tok_level level)
{
	set->level[tok] = (uint8_t)level;
}

void tok_set_raise(struct tok_set *set, const struct tok_set *by)
{
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (by->level[t] > set->level[t])
			set->level[t] = by->level[t];
}

bool tok_set_empty(const struct tok_set *set)
{
	return tok__mask(set) == 0;
}

bool tok_level_conflicts(enum tok_level a, enum tok_level b)
{
	return a != b || a == TOK_WRITE;
}

bool tok_level_covers(enum tok_level held, enum tok_level want)
{
	return want == TOK_NONE || held == want || held == TOK_WRITE;
}

const char *tok_name(enum tok_id tok)
{
	return (unsigned)tok < TOK_NTOKENS ? tok__table[tok].name : "?";
}

const char *tok_level_name(enum tok_level level)
{
	return (unsigned)level < TOK_NLEVELS ? tok__level_names[level] : "?";
}

unsigned tok_duties(enum tok_id tok, enum tok_level level)
{
	if ((unsigned)tok >= TOK_NTOKENS || (unsigned)level >= TOK_NLEVELS)
		return 0;
	return tok__table[tok].duties[level];
}

enum tok__merge tok__merge_rule(enum tok_id tok, enum tok_level level)
{
	return tok__table[tok].merge[level];
}

static bool tok__ts_less(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Fold @src into @dst by @rule; true if @dst changed. */
static bool tok__merge_ts(struct timespec *dst, const struct timespec *src, enum tok__merge rule,
			  bool had)
{
	if (had && rule == TOK__MERGE_MAX && !tok__ts_less(dst, src))
		return false;
	if (had && dst->tv_sec == src->tv_sec && dst->tv_nsec == src->tv_nsec)
		return false;
	*dst = *src;
	return true;
}

static bool tok__merge_u64(uint64_t *dst, uint64_t src, enum tok__merge rule, bool had)
{
	if (had && (rule == TOK__MERGE_MAX ? src <= *dst : src == *dst))
		return false;
	*dst = src;
	return true;
}

bool tok__merge_state(struct tok_state *dst, const struct tok_state *src,
		      enum tok_id tok, enum tok_level level)
{
	enum tok__merge rule = tok__merge_rule(tok, level);
	unsigned duties = tok_duties(tok, level);
	bool changed = false, had;

	if (rule == TOK__MERGE_NONE || src == NULL)
		return false;
	if ((duties & D(TIMES)) && (src->valid & TOK_ST_TIMES)) {
		had = dst->valid & TOK_ST_TIMES;
		changed |= tok__merge_ts(&dst->atime, &src->atime, rule, had);
		changed |= tok__merge_ts(&dst->mtime, &src->mtime, rule, had);
		changed |= tok__merge_ts(&dst->ctime, &src->ctime, rule, had);
		dst->valid |= TOK_ST_TIMES;
	}
	if ((duties & D(SIZE)) && (src->valid & TOK_ST_SIZE)) {
		had = dst->valid & TOK_ST_SIZE;
		changed |= tok__merge_u64(&dst->size, src->size, rule, had);
		changed |= tok__merge_u64(&dst->blocks, src->blocks, rule, had);
		dst->valid |= TOK_ST_SIZE;
	}
	return changed;
}

uint16_t tok__mask(const struct tok_set *set)
{
	uint16_t m = 0;

	for (int t = 0; t < TOK_NTOKENS; t++)
		if (set->level[t] != TOK_NONE)
			m |= TOK__BIT(t);
	return m;
}

bool tok__sets_conflict(const struct tok_set *a, const struct tok_set *b)
{
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (a->level[t] != TOK_NONE && b->level[t] != TOK_NONE &&
		    tok_level_conflicts(a->level[t], b->level[t]))
			return true;
	return false;
}

int64_t tok__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t tok__age_ms(int64_t since, int64_t now)
{
	return since && now > since ? (uint64_t)(now - since) / 1000000u : 0;
}

void tok__wait_begin(struct tok__wlist *list, struct tok__wlink *l)
{
	if (l->since)
		return;
	l->since = tok__now_ns();
	l->next = NULL;
	l->prev = list->last;
	if (list->last)
		list->last->next = l;
	else
		list->first = l;
	list->last = l;
}

void tok__wait_end(struct tok__wlist *list, struct tok__wlink *l)
{
	if (!l->since)
		return;
	if (l->prev)
		l->prev->next = l->next;
	else
		list->first = l->next;
	if (l->next)
		l->next->prev = l->prev;
	else
		list->last = l->prev;
	l->since = 0;
}
