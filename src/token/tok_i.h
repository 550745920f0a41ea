/*
 * tok_i.h - internals shared by the token server and client (tok__ names):
 * how returned state is merged, and small helpers over token sets.
 */
#ifndef CXFS_TOK_I_H
#define CXFS_TOK_I_H

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

#endif
