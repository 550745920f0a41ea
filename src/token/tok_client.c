/*
 * tok_client.c - the token client of one node for one filesystem: the
 * tokens the node holds per inode, the references its operations put on
 * them, obtaining missing ones from the server, and giving them back (after
 * their duties) when recalled or no longer needed (see tok.h).
 *
 * Sections:
 *   1. Records.
 *   2. Duties.
 *   3. Acquire and release.
 *   4. Giving back: recalls and forgetting.
 *   5. I/O-exclusive state, queries, interruption, life cycle.
 *   6. Waits, for diagnostics: what each waiting call waits for.
 *
 * Mutex rules: one mutex (c->mu) protects every field of the client and of
 * its inode records; one condition variable (c->cv) is broadcast whenever a
 * reference is dropped, an obtain or a give-back ends, or an interruption
 * comes.  The mutex is a leaf: ops.obtain, ops.give_back and ops.duty all
 * run without it.  A record stays pinned (users > 0) while its user has
 * dropped the mutex.
 *
 * Wait records: an acquire that cannot be served from the cache at once,
 * and every give-back, puts a record (struct tok__cwait, on its stack) on
 * c->waits until it ends, with the time it began and the step it is in
 * when that step runs without the mutex (asking the server, duties,
 * sending); what a blocked call waits for is worked out when asked
 * (tok_client_waits), from the same fields that keep it waiting.
 *
 * Lending: an operation the server performs for this node may be lent READ
 * tokens (tok_client_lend), so the server does not recall them from the
 * node that asks.  Lent references are counted apart (lent[]): a recall
 * never waits for them, because the operation they are lent to may itself
 * wait for another node whose own lent operation waits for this recall
 * (two nodes creating in one directory).  A token given back while lent is
 * marked broken: this node does not ask for it again until its lenders are
 * done (tok_client_unlend), so the server never grants it a fresh copy that
 * a lent operation still in flight would skip; and the lender learns that
 * what it meant to cache under the token is not covered any more.
 *
 * Ordering against the server, per inode:
 *   - One obtain is in flight at a time (busy); the tokens it converts are
 *     marked converting, and cache hits on them wait for its answer.
 *   - Tokens being given back are marked recalling from the moment the
 *     recall takes them until ops.give_back has returned: nobody takes a
 *     reference on them or asks the server for them meanwhile, so the
 *     server always sees the return before the next request for them.
 *     A stale level (below) is marked too while it is sent: a grant of
 *     that level arriving first would be undone by the give-back.
 *   - A recall for a level the cache does not have waits if that token is
 *     being converted (the grant's reply may still be on its way); if not,
 *     the server's record is older than ours, and the level is given back
 *     as it is, without duties.
 *   - Unless an obtain of that token failed before (uncertain: given up by
 *     an application's interrupt or bound, it may still be granted by the
 *     server, which then holds the token for us at the level asked): then
 *     whatever level we have goes back with the recall, duties included,
 *     so the server never thinks we have less than we use.
 */
#include "token/tok_i.h"

#include "common/cx_hist.h"
#include "common/cx_intr.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* 1. Records                                                              */
/* ---------------------------------------------------------------------- */

#define TOK__CBUCKETS 65536u    /* a million inodes stay a few per chain */

/* Duties that only collect state for the server; they run on conversions too. */
#define TOK__STATE_DUTIES (TOK_DUTY_BIT(TOK_DUTY_TIMES) | TOK_DUTY_BIT(TOK_DUTY_SIZE))

/* What the node has of one inode. */
struct tok__cino {
	struct tok__cino *hnext;                  /* hash chain */
	uint64_t ino;
	struct tok_set level;                     /* levels cached */
	uint32_t refs[TOK_NTOKENS][TOK_NLEVELS];  /* references per token and level */
	uint32_t lent[TOK_NTOKENS];               /* lent references (not in refs) */
	uint16_t broken;                          /* given back while lent; not asked for until lent[] is 0 */
	uint64_t gen;                             /* give-backs of this record so far */
	uint16_t recalling;                       /* tokens being given back */
	struct tok_set returning;                 /* their levels, until ops.give_back returns:
						   * still this node's for tok_client_export */
	uint16_t converting;                      /* tokens asked for by the obtain in flight */
	uint16_t uncertain;                       /* asked for by an obtain that failed (given up):
						   * the server may hold them at the level asked */
	bool busy;                                /* an obtain is in flight */
	bool ioexcl;                              /* the I/O-exclusive state */
	unsigned users;                           /* threads using the record across an unlock */
};

/* A call that waits (see "Wait records" at the top); on its thread's stack. */
struct tok__cwait {
	struct tok__wlink link;          /* on c->waits while it waits */
	struct tok__cino *r;             /* its inode (pinned by the call) */
	enum tok_cwait_kind kind;
	enum tok_cwait_for what;         /* SERVER, DRAIN, DUTIES or SEND: the step it is in;
					  * TOK_CW_NFOR: blocked, worked out when asked */
	struct tok_set want;             /* acquire: wanted; give-back: still to give back */
	uint16_t mine;                   /* give-back: the tokens of the round in progress */
};

struct tok_client {
	pthread_mutex_t mu;
	pthread_cond_t cv;                        /* see the mutex rules at the top */
	const struct tok_client_ops *ops;         /* changed only by tok_client_set_ops */
	void *arg;
	struct tok__cino *hash[TOK__CBUCKETS];    /* protected by mu */
	uint64_t intr_gen;                        /* interruptions so far; protected by mu */
	unsigned creating;                        /* creations in flight (tok_client_creating); mu */
	struct tok_client_stats stats;            /* protected by mu */
	struct cx_hist wait_hist;                 /* acquires that waited or asked; lock-free */
	struct tok__wlist waits;                  /* waiting calls' links, oldest first; protected by mu */
};

static struct tok__cino **tok__cslot(struct tok_client *c, uint64_t ino)
{
	struct tok__cino **pp = &c->hash[(ino * UINT64_C(0x9E3779B97F4A7C15)) >> 48];

	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->hnext;
	return pp;
}

static struct tok__cino *tok__cfind(struct tok_client *c, uint64_t ino)
{
	return *tok__cslot(c, ino);
}

/* Find or create, pinned (users + 1); NULL only if out of memory. */
static struct tok__cino *tok__cget(struct tok_client *c, uint64_t ino)
{
	struct tok__cino **pp = tok__cslot(c, ino);

	if (*pp == NULL) {
		*pp = calloc(1, sizeof(**pp));
		if (*pp == NULL)
			return NULL;
		(*pp)->ino = ino;
		c->stats.inodes++;
	}
	(*pp)->users++;
	return *pp;
}

static uint32_t tok__refs(const struct tok__cino *r, int t)
{
	uint32_t n = 0;

	for (int l = TOK_READ; l < TOK_NLEVELS; l++)
		n += r->refs[t][l];
	return n;
}

static bool tok__in_use(const struct tok__cino *r)
{
	if (r->busy)
		return true;
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (tok__refs(r, t))
			return true;
	return false;
}

/* Unpin @r and free it if it holds nothing. */
static void tok__cput(struct tok_client *c, struct tok__cino *r)
{
	struct tok__cino **pp;

	assert(r->users > 0);
	if (--r->users || !tok_set_empty(&r->level) || tok__in_use(r) || r->recalling)
		return;
	pp = tok__cslot(c, r->ino);
	*pp = r->hnext;
	c->stats.inodes--;
	free(r);
}

/* ---------------------------------------------------------------------- */
/* 2. Duties                                                               */
/* ---------------------------------------------------------------------- */

/* The duties of @tokens held at their levels, as one mask. */
static unsigned tok__duties_of(const struct tok_set *tokens)
{
	unsigned d = 0;

	for (int t = 0; t < TOK_NTOKENS; t++)
		d |= tok_duties(t, tokens->level[t]);
	return d;
}

/*
 * Run @duties in their order (flush before discard, state before the
 * attributes it is read from are dropped), each once.  Called without the
 * mutex.  Returns the number that failed.
 */
static unsigned tok__run_duties(struct tok_client *c, uint64_t ino, unsigned duties,
				struct tok_state *st)
{
	unsigned failed = 0;

	for (int d = 0; d < TOK_NDUTIES; d++) {
		if (!(duties & TOK_DUTY_BIT(d)))
			continue;
		if (c->ops->duty(c->arg, ino, d, st) < 0) {
			failed++;
			continue;
		}
		if (d == TOK_DUTY_TIMES)
			st->valid |= TOK_ST_TIMES;
		else if (d == TOK_DUTY_SIZE)
			st->valid |= TOK_ST_SIZE;
	}
	return failed;
}

/* ---------------------------------------------------------------------- */
/* 3. Acquire and release                                                  */
/* ---------------------------------------------------------------------- */

static bool tok__valid_set(const struct tok_set *set)
{
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (set->level[t] >= TOK_NLEVELS)
			return false;
	return !tok_set_empty(set);
}

/* Are all of @want cached at covering levels, with none changing hands? */
static bool tok__hit(const struct tok__cino *r, const struct tok_set *want)
{
	if ((r->recalling | r->converting) & tok__mask(want))
		return false;
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (!tok_level_covers(r->level.level[t], want->level[t]))
			return false;
	return true;
}

/*
 * What to ask the server for, and the duties of the levels it converts:
 * a conversion to WRITE keeps the node's caches (nobody else will have the
 * token), any other conversion gives up what the old level allowed.
 * Returns false if a conversion must first wait for the references on the
 * old level to go (only WRITE covers what they were taken for).
 */
static bool tok__request(const struct tok__cino *r, const struct tok_set *want,
			 struct tok_set *ask, unsigned *duties)
{
	unsigned d;

	tok_set_clear(ask);
	*duties = 0;
	for (int t = 0; t < TOK_NTOKENS; t++) {
		uint8_t have = r->level.level[t], w = want->level[t];

		if (tok_level_covers(have, w))
			continue;
		ask->level[t] = w;
		if (have == TOK_NONE)
			continue;
		if (w != TOK_WRITE && tok__refs(r, t))
			return false;
		d = tok_duties(t, have);
		*duties |= w == TOK_WRITE ? d & TOK__STATE_DUTIES : d;
	}
	return true;
}

/*
 * Acquire or (@lend_gen non-NULL) lend: the references go to lent[] and
 * *@lend_gen gets the record's give-back count, for tok_client_unlend().
 * A lend pins the record until the unlend.
 */
static int tok__acquire(struct tok_client *c, uint64_t ino, const struct tok_set *want,
			struct tok_state *out, uint64_t *lend_gen)
{
	struct tok__cwait w = { .kind = lend_gen ? TOK_CW_LEND : TOK_CW_ACQUIRE,
				.what = TOK_CW_NFOR, .want = *want };
	struct tok_state in, reply;
	struct tok_set ask, got;
	struct tok__cino *r;
	unsigned duties, failed;
	bool asked = false;
	int64_t waited_since = 0;       /* the cache could not answer at once: since when */
	uint64_t gen;
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!tok__valid_set(want))
		return -EINVAL;
	pthread_mutex_lock(&c->mu);
	r = tok__cget(c, ino);
	if (r == NULL) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	w.r = r;
	gen = c->intr_gen;
	for (;;) {
		if (c->intr_gen != gen) {
			c->stats.early++;
			rc = -TOK_EEARLY;
			break;
		}
		if (tok__hit(r, want)) {
			for (int t = 0; t < TOK_NTOKENS; t++) {
				if (want->level[t] == TOK_NONE)
					continue;
				if (lend_gen)
					r->lent[t]++;
				else
					r->refs[t][want->level[t]]++;
			}
			if (lend_gen) {
				*lend_gen = r->gen;
				r->users++;
			}
			if (!asked)
				c->stats.acquires_cached++;
			rc = 0;
			break;
		}
		tok__wait_begin(&c->waits, &w.link);
		if (!waited_since)
			waited_since = cx_intr_now_ns();
		if (r->busy || ((r->recalling | r->broken) & tok__mask(want)) ||
		    !tok__request(r, want, &ask, &duties)) {
			/* An application's request gives up here when interrupted (cx_intr.h). */
			rc = cx_intr_wait(&c->cv, &c->mu, NULL);
			if (rc < 0)
				break;
			continue;
		}
		r->busy = true;
		r->converting = tok__mask(&ask);
		asked = true;
		w.what = TOK_CW_SERVER;
		pthread_mutex_unlock(&c->mu);

		memset(&in, 0, sizeof(in));
		failed = tok__run_duties(c, ino, duties, &in);
		rc = c->ops->obtain(c->arg, ino, &ask, &in, &got, &reply);

		pthread_mutex_lock(&c->mu);
		w.what = TOK_CW_NFOR;
		r->busy = false;
		r->converting = 0;
		c->stats.acquires_server++;
		c->stats.duty_errors += failed;
		for (int t = 0; rc == 0 && t < TOK_NTOKENS; t++) {
			if (ask.level[t] == TOK_NONE)
				continue;
			if (!tok_level_covers(got.level[t], ask.level[t]))
				rc = -EPROTO;
			else
				r->level.level[t] = got.level[t];
		}
		/* A copy given back while the answer came is not had any more. */
		if (rc == 0 && (reply.valid & TOK_ST_IOEXCL))
			r->ioexcl = reply.ioexcl && r->level.level[TOK_IOEXCL] == TOK_READ;
		if (rc == 0 && out)
			*out = reply;
		pthread_cond_broadcast(&c->cv);
		if (rc == -TOK_EEARLY)
			c->stats.early++;
		else if (rc)
			r->uncertain |= tok__mask(&ask);
		if (rc)
			break;
	}
	tok__wait_end(&c->waits, &w.link);
	tok__cput(c, r);
out_unlock:
	pthread_mutex_unlock(&c->mu);
	if (waited_since && rc == 0)
		cx_hist_observe_since(&c->wait_hist, waited_since);
	return rc;
}

int tok_client_acquire(struct tok_client *c, uint64_t ino, const struct tok_set *want,
		       struct tok_state *out)
{
	return tok__acquire(c, ino, want, out, NULL);
}

int tok_client_lend(struct tok_client *c, uint64_t ino, const struct tok_set *want, uint64_t *gen)
{
	return tok__acquire(c, ino, want, NULL, gen);
}

bool tok_client_unlend(struct tok_client *c, uint64_t ino, const struct tok_set *want, uint64_t gen)
{
	struct tok__cino *r;
	bool kept;

	pthread_mutex_lock(&c->mu);
	r = tok__cfind(c, ino);
	assert(r != NULL);
	if (r == NULL) {
		pthread_mutex_unlock(&c->mu);
		return false;
	}
	/* A give-back since the lend, or one under way, ends what it covered. */
	kept = r->gen == gen && !(r->recalling & tok__mask(want));
	for (int t = 0; t < TOK_NTOKENS; t++) {
		uint8_t l = want->level[t];

		if (l == TOK_NONE || l >= TOK_NLEVELS)
			continue;
		assert(r->lent[t] > 0);
		if (r->lent[t] > 0)
			r->lent[t]--;
		if (r->lent[t] == 0)
			r->broken &= (uint16_t)~TOK__BIT(t);
		if (kept)
			r->refs[t][l]++;
	}
	tok__cput(c, r);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return kept;
}

bool tok_client_lent(struct tok_client *c, uint64_t ino)
{
	struct tok__cino *r;
	bool lent = false;

	pthread_mutex_lock(&c->mu);
	r = tok__cfind(c, ino);
	for (int t = 0; r && t < TOK_NTOKENS && !lent; t++)
		lent = r->lent[t] > 0;
	pthread_mutex_unlock(&c->mu);
	return lent;
}

void tok_client_creating(struct tok_client *c, int delta)
{
	pthread_mutex_lock(&c->mu);
	c->creating += (unsigned)delta;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

int tok_client_adopt(struct tok_client *c, uint64_t ino, const struct tok_set *granted)
{
	struct tok__cino *r;

	if (!tok__valid_set(granted))
		return -EINVAL;
	pthread_mutex_lock(&c->mu);
	r = tok__cget(c, ino);
	if (r == NULL) {
		pthread_mutex_unlock(&c->mu);
		return -ENOMEM;
	}
	for (int t = 0; t < TOK_NTOKENS; t++) {
		uint8_t l = granted->level[t];

		if (l == TOK_NONE)
			continue;
		if (!tok_level_covers(r->level.level[t], l))
			r->level.level[t] = l;
		r->refs[t][l]++;
	}
	tok__cput(c, r);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int tok_client_try(struct tok_client *c, uint64_t ino, const struct tok_set *want)
{
	struct tok__cino *r;
	int rc = -EWOULDBLOCK;

	if (!tok__valid_set(want))
		return -EINVAL;
	pthread_mutex_lock(&c->mu);
	r = tok__cfind(c, ino);
	if (r && tok__hit(r, want)) {
		for (int t = 0; t < TOK_NTOKENS; t++)
			if (want->level[t] != TOK_NONE)
				r->refs[t][want->level[t]]++;
		c->stats.acquires_cached++;
		rc = 0;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void tok_client_release(struct tok_client *c, uint64_t ino, const struct tok_set *want)
{
	struct tok__cino *r;

	pthread_mutex_lock(&c->mu);
	r = tok__cfind(c, ino);
	assert(r != NULL);
	if (r == NULL)
		goto out_unlock;
	for (int t = 0; t < TOK_NTOKENS; t++) {
		uint8_t l = want->level[t];

		if (l == TOK_NONE || l >= TOK_NLEVELS)
			continue;
		assert(r->refs[t][l] > 0);
		if (r->refs[t][l] > 0)
			r->refs[t][l]--;
	}
	r->users++;
	tok__cput(c, r);
	pthread_cond_broadcast(&c->cv);
out_unlock:
	pthread_mutex_unlock(&c->mu);
}

/* ---------------------------------------------------------------------- */
/* 4. Giving back                                                          */
/* ---------------------------------------------------------------------- */

/*
 * Sort the tokens of @ask: cached at the asked level (@mine), not had at
 * all (@stale: the server's record is older than ours), or to be answered
 * later (@later): being given back by another thread, or being converted
 * by the obtain in flight, whose answer may carry the asked level.  Later
 * ones wait alone, so a stale part never holds up a part a waiter needs.
 */
static void tok__sort_out(const struct tok__cino *r, const struct tok_set *ask, bool creating,
			  uint16_t *mine, uint16_t *stale, uint16_t *later)
{
	*mine = *stale = *later = 0;
	for (int t = 0; t < TOK_NTOKENS; t++) {
		uint16_t bit = TOK__BIT(t);

		if (ask->level[t] == TOK_NONE)
			continue;
		if (r->recalling & bit)
			*later |= bit;
		else if (r->level.level[t] == ask->level[t])
			*mine |= bit;
		else if ((r->converting & bit) || creating)
			*later |= bit;   /* an answer on its way may grant it (a creation's too) */
		else if ((r->uncertain & bit) && r->level.level[t] != TOK_NONE)
			*mine |= bit;    /* our level may be older than the server's: give it all */
		else
			*stale |= bit;
	}
}

static bool tok__mine_in_use(const struct tok__cino *r, uint16_t mine)
{
	for (int t = 0; t < TOK_NTOKENS; t++)
		if ((mine & TOK__BIT(t)) && tok__refs(r, t))
			return true;
	return false;
}

/*
 * One give-back: wait until nobody uses @mine, do their duties, drop them
 * and send them with *@stale, at the levels of @ask; *@stale loses what was
 * asked for meanwhile, which is not sent; @w (the call's wait record) says
 * which step runs.  Called and returns with c->mu held; 0 or -TOK_EEARLY
 * (nothing sent).
 */
static int tok__give_back_round(struct tok_client *c, struct tok__cino *r,
				const struct tok_set *ask, uint16_t mine, uint16_t *stale,
				uint64_t gen, struct tok__cwait *w)
{
	struct tok_set give, back;
	struct tok_state st;
	uint16_t again;                  /* of the stale part: no longer stale */
	unsigned failed;

	/*
	 * From here on nobody takes a reference on or asks for what we give
	 * back; an obtain already in flight may still answer (see below).
	 */
	r->recalling |= mine;
	c->stats.draining++;
	w->mine = mine;
	w->what = TOK_CW_DRAIN;
	while (tok__mine_in_use(r, mine)) {
		if (c->intr_gen != gen) {
			c->stats.draining--;
			c->stats.early++;
			r->recalling &= (uint16_t)~mine;
			w->what = TOK_CW_NFOR;
			pthread_cond_broadcast(&c->cv);
			return -TOK_EEARLY;
		}
		pthread_cond_wait(&c->cv, &c->mu);
	}
	c->stats.draining--;
	w->what = TOK_CW_DUTIES;
	tok_set_clear(&give);
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (mine & TOK__BIT(t))
			give.level[t] = ask->level[t];
	pthread_mutex_unlock(&c->mu);

	memset(&st, 0, sizeof(st));
	failed = tok__run_duties(c, r->ino, tok__duties_of(&give), &st);

	pthread_mutex_lock(&c->mu);
	c->stats.duty_errors += failed;
	/*
	 * An obtain sent before this recall came may have converted a token
	 * meanwhile: its new level is the server's newer grant and stays (the
	 * server ignores the old level we give back).
	 */
	for (int t = 0; t < TOK_NTOKENS; t++) {
		if ((mine & TOK__BIT(t)) &&
		    (r->level.level[t] == give.level[t] || (r->uncertain & TOK__BIT(t))))
			r->level.level[t] = TOK_NONE;
		if ((mine & TOK__BIT(t)) && r->lent[t])
			r->broken |= TOK__BIT(t);
	}
	r->uncertain &= (uint16_t)~mine;
	r->gen++;
	if (r->level.level[TOK_IOEXCL] == TOK_NONE)
		r->ioexcl = false;
	/*
	 * The stale part is marked too while it is sent (only then: the
	 * duties may wait for a server that needs it back): an obtain of it
	 * sent before our give-back arrives would be granted first and then
	 * undone by it.  What an obtain asked for meanwhile waits for its
	 * answer: the part is sorted again (tok__sort_out), and what is no
	 * longer stale is not sent.
	 */
	tok_set_clear(&back);
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (*stale & TOK__BIT(t))
			back.level[t] = ask->level[t];
	tok__sort_out(r, &back, c->creating > 0, &again, stale, &again);
	r->recalling |= *stale;
	tok_set_clear(&back);
	for (int t = 0; t < TOK_NTOKENS; t++)
		if ((mine | *stale) & TOK__BIT(t))
			back.level[t] = ask->level[t];
	w->what = TOK_CW_SEND;
	tok_set_raise(&r->returning, &back);
	pthread_mutex_unlock(&c->mu);

	if (!tok_set_empty(&back))   /* empty: the stale part alone, asked for meanwhile */
		c->ops->give_back(c->arg, r->ino, &back, &st);

	pthread_mutex_lock(&c->mu);
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (back.level[t] != TOK_NONE)
			r->returning.level[t] = TOK_NONE;
	w->what = TOK_CW_NFOR;
	w->mine = 0;
	r->recalling &= (uint16_t)~(mine | *stale);
	pthread_cond_broadcast(&c->cv);
	return 0;
}

/*
 * Give back @tokens of @ino (all cached tokens too if @conditional, which
 * is refused with -EBUSY while the file is in use).  @recalled: the server
 * asked (counted as a recall).
 */
static int tok__give_back(struct tok_client *c, uint64_t ino, const struct tok_set *tokens,
			  bool conditional, bool recalled)
{
	struct tok__cwait w = { .kind = recalled ? TOK_CW_RECALL : TOK_CW_FORGET,
				.what = TOK_CW_NFOR };
	struct tok_set *ask = &w.want;   /* what is still to give back */
	uint16_t mine, stale, later;
	struct tok__cino *r;
	uint64_t gen;
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	r = tok__cget(c, ino);
	if (r == NULL) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	gen = c->intr_gen;
	/*
	 * A file this node is creating may be recalled before the answer
	 * that gives it EXIST arrives: it is in use already.
	 */
	if (conditional && (tok__in_use(r) ||
			    (c->creating && r->level.level[TOK_EXIST] == TOK_NONE))) {
		c->stats.refusals += recalled;
		rc = -EBUSY;
		goto out_put;
	}
	*ask = *tokens;
	for (int t = 0; conditional && t < TOK_NTOKENS; t++)
		if (r->level.level[t] != TOK_NONE)
			ask->level[t] = r->level.level[t];
	w.r = r;
	if (!tok_set_empty(ask))
		tok__wait_begin(&c->waits, &w.link);
	while (!tok_set_empty(ask)) {
		if (c->intr_gen != gen) {
			c->stats.early++;
			rc = -TOK_EEARLY;
			goto out_put;
		}
		tok__sort_out(r, ask, c->creating > 0, &mine, &stale, &later);
		if (!(mine | stale)) {
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		rc = tok__give_back_round(c, r, ask, mine, &stale, gen, &w);
		if (rc)
			goto out_put;
		for (int t = 0; t < TOK_NTOKENS; t++)
			if ((mine | stale) & TOK__BIT(t))
				ask->level[t] = TOK_NONE;
	}
	c->stats.recalls += recalled;
out_put:
	tok__wait_end(&c->waits, &w.link);
	tok__cput(c, r);
out_unlock:
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int tok_client_recall(struct tok_client *c, uint64_t ino, const struct tok_set *tokens,
		      bool conditional)
{
	return tok__give_back(c, ino, tokens, conditional, true);
}

int tok_client_forget(struct tok_client *c, uint64_t ino)
{
	struct tok_set none;

	tok_set_clear(&none);
	return tok__give_back(c, ino, &none, true, false);
}

/* ---------------------------------------------------------------------- */
/* 5. I/O-exclusive state, queries, interruption, life cycle               */
/* ---------------------------------------------------------------------- */

void tok_client_ioexcl_set(struct tok_client *c, uint64_t ino, bool excl)
{
	struct tok__cino *r;

	pthread_mutex_lock(&c->mu);
	r = tok__cfind(c, ino);
	if (r)
		r->ioexcl = excl && r->level.level[TOK_IOEXCL] == TOK_READ;
	pthread_mutex_unlock(&c->mu);
}

bool tok_client_give_io(struct tok_client *c, uint64_t ino)
{
	const uint16_t io = TOK__BIT(TOK_IO) | TOK__BIT(TOK_IOEXCL);
	struct tok_set give;
	struct tok__cino *r;
	bool idle;

	pthread_mutex_lock(&c->mu);
	r = tok__cfind(c, ino);
	idle = r && !r->ioexcl && !r->busy && r->level.level[TOK_IOEXCL] == TOK_READ &&
	       !((r->recalling | r->converting | r->broken) & io) && !tok__mine_in_use(r, io) &&
	       !r->lent[TOK_IO] && !r->lent[TOK_IOEXCL];
	tok_set_clear(&give);
	if (idle) {
		give.level[TOK_IO] = r->level.level[TOK_IO];
		give.level[TOK_IOEXCL] = TOK_READ;
	}
	pthread_mutex_unlock(&c->mu);
	/* A reference taken meanwhile is waited for. */
	return idle && tok__give_back(c, ino, &give, false, false) == 0;
}

bool tok_client_ioexcl(struct tok_client *c, uint64_t ino, bool *held)
{
	struct tok__cino *r;
	bool has;

	pthread_mutex_lock(&c->mu);
	r = tok__cfind(c, ino);
	has = r && r->level.level[TOK_IOEXCL] == TOK_READ;
	if (held)
		*held = has;
	has = has && r->ioexcl;
	pthread_mutex_unlock(&c->mu);
	return has;
}

void tok_client_cached(struct tok_client *c, uint64_t ino, struct tok_set *held)
{
	struct tok__cino *r;

	tok_set_clear(held);
	pthread_mutex_lock(&c->mu);
	r = tok__cfind(c, ino);
	if (r)
		*held = r->level;
	pthread_mutex_unlock(&c->mu);
}

void tok_client_interrupt_all(struct tok_client *c)
{
	pthread_mutex_lock(&c->mu);
	c->intr_gen++;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

size_t tok_client_lose_all(struct tok_client *c)
{
	size_t n = 0;

	pthread_mutex_lock(&c->mu);
	for (unsigned b = 0; b < TOK__CBUCKETS; b++)
		for (struct tok__cino *r = c->hash[b]; r; r = r->hnext) {
			if (tok_set_empty(&r->level))
				continue;
			tok_set_clear(&r->level);
			r->ioexcl = false;
			r->gen++;
			n++;
		}
	c->intr_gen++;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return n;
}

int tok_client_export(struct tok_client *c,
		      int (*fn)(void *arg, uint64_t ino, const struct tok_set *held,
				const struct tok_set *returning),
		      void *arg)
{
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	for (unsigned b = 0; b < TOK__CBUCKETS && !rc; b++)
		for (struct tok__cino *r = c->hash[b]; r && !rc; r = r->hnext) {
			/*
			 * A return on its way (to a server that died, say) is
			 * not taken yet: whoever serves next must see the
			 * tokens here, or it grants them with the state that
			 * return carries missing from the store.
			 */
			struct tok_set held = r->level, ret;

			tok_set_clear(&ret);
			for (int t = 0; t < TOK_NTOKENS; t++)
				if (r->level.level[t] == TOK_NONE)
					ret.level[t] = r->returning.level[t];
			tok_set_raise(&held, &r->returning);
			if (!tok_set_empty(&held))
				rc = fn(arg, r->ino, &held, &ret);
		}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void tok_client_stats(struct tok_client *c, struct tok_client_stats *st)
{
	pthread_mutex_lock(&c->mu);
	*st = c->stats;
	pthread_mutex_unlock(&c->mu);
}

void tok_client_wait_hist(struct tok_client *c, struct cx_hist_snap *out)
{
	cx_hist_snap(&c->wait_hist, out);
}

int tok_client_create(const struct tok_client_ops *ops, void *arg, struct tok_client **out)
{
	struct tok_client *c = calloc(1, sizeof(*c));
	int rc;

	if (c == NULL)
		return -ENOMEM;
	rc = -pthread_mutex_init(&c->mu, NULL);
	if (rc)
		goto out_free;
	rc = -pthread_cond_init(&c->cv, NULL);
	if (rc)
		goto out_mutex;
	c->ops = ops;
	c->arg = arg;
	*out = c;
	return 0;
out_mutex:
	pthread_mutex_destroy(&c->mu);
out_free:
	free(c);
	return rc;
}

void tok_client_destroy(struct tok_client *c)
{
	struct tok__cino *r, *next;

	if (c == NULL)
		return;
	for (unsigned b = 0; b < TOK__CBUCKETS; b++) {
		for (r = c->hash[b]; r; r = next) {
			next = r->hnext;
			assert(r->users == 0 && !r->busy);
			free(r);
		}
	}
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void tok_client_set_ops(struct tok_client *c, const struct tok_client_ops *ops, void *arg)
{
	pthread_mutex_lock(&c->mu);
	c->ops = ops;
	c->arg = arg;
	pthread_mutex_unlock(&c->mu);
}

/* ---------------------------------------------------------------------- */
/* 6. Waits, for diagnostics                                               */
/* ---------------------------------------------------------------------- */

/*
 * What a blocked acquire waits for, by the same tests that keep it waiting
 * in tok__acquire(); the references in the way of a conversion into @refs.
 */
static enum tok_cwait_for tok__acquire_blocked(const struct tok__cino *r,
					       const struct tok_set *want, uint32_t *refs)
{
	uint16_t mask = tok__mask(want);
	enum tok_cwait_for what = TOK_CW_OBTAIN;

	if (r->recalling & mask)
		return TOK_CW_GIVING;
	if (r->broken & mask)
		return TOK_CW_BROKEN;
	if (r->busy)
		return TOK_CW_OBTAIN;
	for (int t = 0; t < TOK_NTOKENS; t++) {
		uint8_t have = r->level.level[t], w = want->level[t];

		if (have == TOK_NONE || w == TOK_WRITE || tok_level_covers(have, w) ||
		    !tok__refs(r, t))
			continue;
		refs[t] = tok__refs(r, t);
		what = TOK_CW_CONVERT;
	}
	/* TOK_CW_OBTAIN otherwise: woken, about to ask. */
	return what;
}

static void tok__cdescribe(const struct tok__cwait *w, int64_t now, struct tok_client_wait *out)
{
	const struct tok__cino *r = w->r;

	memset(out, 0, sizeof(*out));
	out->ino = r->ino;
	out->kind = w->kind;
	out->want = w->want;
	out->age_ms = tok__age_ms(w->link.since, now);
	out->what = w->what;
	if (w->what == TOK_CW_DRAIN) {
		for (int t = 0; t < TOK_NTOKENS; t++)
			if (w->mine & TOK__BIT(t))
				out->refs[t] = tok__refs(r, t);
	} else if (w->what == TOK_CW_NFOR) {
		out->what = w->kind == TOK_CW_RECALL || w->kind == TOK_CW_FORGET ?
			    TOK_CW_LATER : tok__acquire_blocked(r, &w->want, out->refs);
	}
}

void tok_client_waits(struct tok_client *c,
		      void (*fn)(void *arg, const struct tok_client_wait *w), void *arg)
{
	struct tok_client_wait out;
	int64_t now;

	pthread_mutex_lock(&c->mu);
	now = c->waits.first ? tok__now_ns() : 0;
	for (const struct tok__wlink *l = c->waits.first; l; l = l->next) {
		tok__cdescribe(TOK__RECORD(l, struct tok__cwait, link), now, &out);
		fn(arg, &out);
	}
	pthread_mutex_unlock(&c->mu);
}
