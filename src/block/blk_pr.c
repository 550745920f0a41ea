/*
 * blk_pr.c - the parts of SCSI-3 persistent reservations that need no
 * target: decoding PERSISTENT RESERVE IN parameter data, and deciding whether
 * a registration made again after a reconnect may stand.  Pure functions,
 * unit-tested on hand-made buffers (test/unit/test_block.c).
 */
#include <errno.h>

#include "block/blk_i.h"

static uint32_t blk__be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t blk__be64(const unsigned char *p)
{
	return (uint64_t)blk__be32(p) << 32 | blk__be32(p + 4);
}

/*
 * READ KEYS: PRgeneration (4 bytes), ADDITIONAL LENGTH (4: 8 per key), then
 * the keys.  n_keys counts every registration the target has, even those
 * beyond @len or BLK_PR_MAX_KEYS, which are not stored (a key cut off by
 * @len is stored as 0, which no node uses).
 */
int blk__pr_parse_keys(const unsigned char *d, size_t len, struct blk_pr_state *out)
{
	uint32_t add;
	unsigned i, stored, slots;

	if (len < 8)
		return -EIO;
	out->generation = blk__be32(d);
	add = blk__be32(d + 4);
	out->n_keys = add / 8;
	slots = out->n_keys < BLK_PR_MAX_KEYS ? out->n_keys : BLK_PR_MAX_KEYS;
	stored = (len - 8) / 8 < slots ? (unsigned)((len - 8) / 8) : slots;
	for (i = 0; i < slots; i++)
		out->keys[i] = i < stored ? blk__be64(d + 8 + 8 * i) : 0;
	return 0;
}

/*
 * READ RESERVATION: PRgeneration, ADDITIONAL LENGTH (0, or 16 with a
 * reservation), then the holder's key (8), obsolete (4), reserved (1), and
 * SCOPE (high nibble) | TYPE (low nibble).
 */
int blk__pr_parse_reservation(const unsigned char *d, size_t len, struct blk_pr_state *out)
{
	if (len < 8)
		return -EIO;
	out->reserved = 0;
	out->type = 0;
	out->holder = 0;
	if (blk__be32(d + 4) < 16)
		return 0;
	if (len < 22)
		return -EIO;
	out->reserved = 1;
	out->holder = blk__be64(d + 8);
	out->type = d[21] & 0x0f;
	return 0;
}

unsigned blk__pr_count(const struct blk_pr_state *s, uint64_t key)
{
	unsigned i, n = 0, stored = s->n_keys < BLK_PR_MAX_KEYS ? s->n_keys : BLK_PR_MAX_KEYS;

	for (i = 0; i < stored; i++)
		n += s->keys[i] == key;
	return n;
}

/*
 * Our REGISTER moves PRgeneration by exactly one; so does a PREEMPT (and
 * every other PERSISTENT RESERVE OUT but RESERVE and RELEASE).  If the
 * generation moved by one, nothing came between the two reads but our
 * registration.  If it moved more, something else ran: a PREEMPT of our key
 * removes every registration carrying it, so afterwards at most our new one
 * is listed; more of them than before proves that none was removed (a target
 * that keeps old sessions' registrations, like tgtd, lists one more).  A
 * target that replaced the old registration in place lists as many as
 * before: that case cannot be told apart from a preempt, and is taken for
 * one (a needless fence, never a missed one).
 */
int blk__pr_reregistered(uint64_t key, const struct blk_pr_state *before,
			 const struct blk_pr_state *after)
{
	unsigned n_after = blk__pr_count(after, key);

	if (n_after == 0)
		return 0;
	if (after->generation == before->generation + 1)
		return 1;
	return n_after > blk__pr_count(before, key);
}
