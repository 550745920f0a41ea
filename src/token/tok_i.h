/*
 * tok_i.h - internals shared by the token server and client (tok__ names):
 * how returned state is merged, small helpers over token sets, and the
 * clock their wait records use.
 */
#ifndef CXFS_TOK_I_H
#define CXFS_TOK_I_H

#include <stddef.h>

#include "token/tok.h"

/* Bit of token @t in a uint16_t token mask. */
#define TOK__BIT(t) ((uint16_t)(1u << (t)))

/* How the server folds in state returned with a token at a level. */
enum tok__merge {
	TOK__MERGE_NONE,     /* the level carries no state */
	TOK__MERGE_MAX,      /* shared writers: keep the largest value */
	TOK__MERGE_REPLACE,  /* the only writer: its value is the truth */
};

/* The merge rule for state returned with @tok held at @level. */
enum tok__merge tok__merge_rule(enum tok_id tok, enum tok_level level);

/*
 * Fold the fields of @src that returning @tok at @level carries into @dst.
 * Returns true if @dst changed.
 */
bool tok__merge_state(struct tok_state *dst, const struct tok_state *src,
		      enum tok_id tok, enum tok_level level);

/* Mask of the tokens present in @set. */
uint16_t tok__mask(const struct tok_set *set);

/* Does any token of @a conflict with the same token of @b? */
bool tok__sets_conflict(const struct tok_set *a, const struct tok_set *b);

/* CLOCK_MONOTONIC in nanoseconds: when a wait began, when a recall was sent. */
int64_t tok__now_ns(void);

/* Milliseconds from @since (tok__now_ns) to @now, 0 if @since is 0 or later. */
uint64_t tok__age_ms(int64_t since, int64_t now);

/*
 * Wait records, for diagnostics: a record in a waiting call's stack frame
 * embeds a link, which is on its server's or client's list of waits
 * (oldest first) while the call waits.  Both are protected by the mutex of
 * the server or client.
 */
struct tok__wlink {
	struct tok__wlink *prev, *next;  /* the list, oldest first */
	int64_t since;                   /* tok__now_ns() when the wait began; 0: on no list */
};

struct tok__wlist {
	struct tok__wlink *first, *last;
};

/* The record of @type whose member @field is the link @l. */
#define TOK__RECORD(l, type, field) ((const type *)((const char *)(l) - offsetof(type, field)))

/* The call of @l has to wait: on its first time, stamp it and append it. */
void tok__wait_begin(struct tok__wlist *list, struct tok__wlink *l);
/* The call of @l is done waiting: off the list if it is on. */
void tok__wait_end(struct tok__wlist *list, struct tok__wlink *l);

#endif
