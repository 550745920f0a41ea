/*
 * tok_server.c - the token server of one filesystem: per inode, who holds
 * which token at which level, the FIFO of waiting requests, the state merged
 * from returned tokens; recalls, conditional existence recalls, lending, the
 * I/O-exclusive notification, node departure and interruption (see tok.h).
 *
 * Sections:
 *   1. Records: grants, waiters (with their wait links), inodes, operations.
 *   2. Deciding: FIFO order, conflicts, recalls, I/O-exclusive state.
 *   3. Granting and the acquire loop.
 *   4. Answers from nodes: returns and refusals.
 *   5. Existence, operations, departure, interruption, queries.
 *   6. Waits, for diagnostics: what each waiting request waits for.
 *
 * Mutex rules: one mutex (s->mu) protects every field of the server, its
 * inode records, grants and waiters; one condition variable (s->cv) is
 * broadcast whenever any of them changes in a way a waiter may care about
 * (a grant, a return, a refusal, a waiter leaving, a node leaving, an
 * interruption).  Waits are rare and each ends in a message round trip, so
 * one condition variable is cheaper than bookkeeping for many.  The mutex is
 * a leaf: ops.recall and ops.ioexcl_tell run without it (they send
 * messages), ops.merged and ops.last_exist under it (they must not call the
 * server).  A waiter's record stays pinned (users > 0 or a waiter in its
 * FIFO) while the mutex is dropped, and grants are found again by holder
 * after every unlock, never kept by pointer.
 *
 * Wait records: a request that has to wait (or send a recall) puts its
 * waiter on s->waits, with the time it began, until it ends; each grant
 * notes when the first of its unanswered recalls was sent.  The clock is
 * read only then, so a request granted at once costs nothing more, and
 * tok_server_waits() walks only the requests that wait.
 */
#include "token/tok_i.h"

#include "common/cx_intr.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------- */
/* 1. Records                                                              */
/* ---------------------------------------------------------------------- */

#define TOK__BUCKETS 65536u     /* a million inodes stay a few per chain */
/* Holders at or above this are server operations, below it node ids. */
#define TOK__OP_HOLDER (UINT64_C(1) << 32)
#define TOK__NO_HOLDER UINT64_MAX      /* no holder (tok__ioexcl_copies skips none) */
#define TOK__RESEND_NS 1000000000LL  /* a recall unanswered this long is sent again */

/* What one holder has of one inode. */
struct tok__grant {
	struct tok__grant *next;   /* the inode's grants */
	uint64_t holder;           /* node id, or an operation (>= TOK__OP_HOLDER) */
	uint32_t node;             /* the node, or the node the operation works for */
	struct tok_set held;       /* the levels held */
	uint16_t recalling;        /* tokens a recall was sent for and not yet answered */
	int64_t recall_ns;         /* when the first recall in @recalling was sent (tok__now_ns) */
	bool excl;                 /* the holder's I/O-exclusive state as last answered or told */
	bool telling;              /* ops.ioexcl_tell is being called for this holder */
	uint8_t cond;              /* conditional EXIST recall: 0 none, 1 to send, 2 sent */
	bool resending;            /* tok__resend() cleared @recalling: keep @recall_ns */
	int64_t sent_ns;           /* when a recall was last sent (resent after TOK__RESEND_NS) */
};

/*
 * A request waiting in an inode's FIFO, or an existence check (@exist, in no
 * FIFO); lives on the requester's stack.
 */
struct tok__waiter {
	struct tok__waiter *next;  /* later requests */
	uint64_t holder;
	struct tok_set want;
	const struct tok_op *op;   /* the operation asking (for its lend), or NULL */
	bool cancelled;            /* the holder's node went down */
	bool exist;                /* tok_server_recall_exist(), not a request */
	struct tok__sino *r;       /* its inode */
	struct tok__wlink link;    /* on s->waits once it had to wait */
};

/* One inode with grants, waiters or a thread inside. */
struct tok__sino {
	struct tok__sino *hnext;   /* hash chain */
	uint64_t ino;
	struct tok__grant *grants;
	struct tok__waiter *head;  /* FIFO of waiting requests, oldest first */
	struct tok_state st;       /* state merged from returned TIMES / SIZE */
	bool doomed;               /* lost its last name; a node refused to give EXIST back */
	bool freeing;              /* being freed: EXIST is granted to nobody (tok_server_freed) */
	unsigned users;            /* threads using the record across an unlock */
};

/* A server operation on behalf of a node. */
struct tok_op {
	struct tok_server *s;
	uint64_t holder;           /* >= TOK__OP_HOLDER; immutable */
	uint32_t lender;           /* the node that lends, immutable */
	struct tok_set lent;       /* READ tokens it lends, immutable */
	uint64_t *inos;            /* inodes with grants; only the op's own thread touches these */
	size_t ninos, cap;
};

struct tok_server {
	pthread_mutex_t mu;
	pthread_cond_t cv;                       /* see the mutex rules at the top */
	const struct tok_server_ops *ops;        /* immutable */
	void *arg;                               /* immutable */
	struct tok__sino *hash[TOK__BUCKETS];    /* protected by mu */
	uint64_t intr_gen;                       /* interruptions so far; protected by mu */
	uint64_t next_op;                        /* next operation number; protected by mu */
	struct tok_server_stats stats;           /* protected by mu */
	struct tok__wlist waits;                 /* waiters' links, oldest first; protected by mu */
};

static void tok__lock(struct tok_server *s)
{
	pthread_mutex_lock(&s->mu);
}

static void tok__unlock(struct tok_server *s)
{
	pthread_mutex_unlock(&s->mu);
}

/* @g's tokens in @mask are recalled now (and not yet answered). */
static void tok__mark_recalling(struct tok__grant *g, uint16_t mask)
{
	int64_t now = tok__now_ns();

	if (!g->recalling && !g->resending)
		g->recall_ns = now;
	g->sent_ns = now;
	g->resending = false;
	g->recalling |= mask;
}

/* Send @g's unanswered recalls again (they may have been lost with a connection). */
static void tok__resend(struct tok__grant *g)
{
	/* The existence check sends its own again (cond 1); other recalls are
	 * sent again by their waiters once the token is not marked recalling. */
	g->recalling &= g->cond ? TOK__BIT(TOK_EXIST) : 0;
	g->resending = true;
	if (g->cond == 2)
		g->cond = 1;
}

static struct tok__sino **tok__slot(struct tok_server *s, uint64_t ino)
{
	struct tok__sino **pp = &s->hash[(ino * UINT64_C(0x9E3779B97F4A7C15)) >> 48];

	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->hnext;
	return pp;
}

static struct tok__sino *tok__find(struct tok_server *s, uint64_t ino)
{
	return *tok__slot(s, ino);
}

/* Find or create; NULL only if out of memory. */
static struct tok__sino *tok__get(struct tok_server *s, uint64_t ino)
{
	struct tok__sino **pp = tok__slot(s, ino);

	if (*pp == NULL) {
		*pp = calloc(1, sizeof(**pp));
		if (*pp == NULL)
			return NULL;
		(*pp)->ino = ino;
		s->stats.inodes++;
	}
	return *pp;
}

/* Free @r if nothing refers to it any more. */
static void tok__put(struct tok_server *s, struct tok__sino *r)
{
	struct tok__sino **pp;

	if (r->grants || r->head || r->users || r->doomed || r->freeing)
		return;
	pp = tok__slot(s, r->ino);
	*pp = r->hnext;
	s->stats.inodes--;
	free(r);
}

static struct tok__grant *tok__grant_of(struct tok__sino *r, uint64_t holder)
{
	for (struct tok__grant *g = r->grants; g; g = g->next)
		if (g->holder == holder)
			return g;
	return NULL;
}

static void tok__grant_free_if_empty(struct tok__sino *r, struct tok__grant *g)
{
	struct tok__grant **pp;

	if (!tok_set_empty(&g->held))
		return;
	for (pp = &r->grants; *pp != g; pp = &(*pp)->next)
		;
	*pp = g->next;
	free(g);
}

static void tok__grant_drop(struct tok__sino *r, uint64_t holder)
{
	struct tok__grant *g = tok__grant_of(r, holder);

	if (g) {
		tok_set_clear(&g->held);
		tok__grant_free_if_empty(r, g);
	}
}

static bool tok__is_node(uint64_t holder)
{
	return holder < TOK__OP_HOLDER;
}

/*
 * Wait for a change on @r; mu held.  A recall unanswered for
 * TOK__RESEND_NS is sent again: a connection may have lost it (the node
 * stays a member, so it still holds the token and will answer).  0, or on
 * an application's request (a local operation of the metadata server's
 * node, common/cx_intr.h) its interrupt's error: the wait ends there.
 */
static int tok__wait_answer(struct tok_server *s, struct tok__sino *r)
{
	int64_t now = tok__now_ns() + TOK__RESEND_NS;
	struct timespec until = { (time_t)(now / 1000000000), (long)(now % 1000000000) };
	int rc = cx_intr_wait(&s->cv, &s->mu, &until);

	if (rc < 0)
		return rc;
	/* Woken, timed out or a slice of an armed wait: resend what is old enough. */
	now = tok__now_ns();
	for (struct tok__grant *g = r->grants; g; g = g->next)
		if (g->recalling && tok__is_node(g->holder) && now - g->sent_ns >= TOK__RESEND_NS) {
			tok__resend(g);
			s->stats.resent++;
		}
	return 0;
}


/* Does any holder still have EXIST?  If a doomed file lost its last one, say so. */
static void tok__check_doomed(struct tok_server *s, struct tok__sino *r)
{
	for (struct tok__grant *g = r->grants; g; g = g->next)
		if (g->held.level[TOK_EXIST] != TOK_NONE)
			return;
	if (r->doomed) {
		r->doomed = false;
		if (s->ops->last_exist)
			s->ops->last_exist(s->arg, r->ino);
	}
}

/* ---------------------------------------------------------------------- */
/* 2. Deciding                                                             */
/* ---------------------------------------------------------------------- */

/*
 * Is @w behind an earlier request of another holder that it conflicts with?
 * An operation to which a node lends tokens is not: that node holds
 * references on them while it waits for the operation, so an earlier
 * request that needs them recalled could only wait for the operation.
 */
static bool tok__behind_earlier(const struct tok__sino *r, const struct tok__waiter *w)
{
	if (w->op && !tok_set_empty(&w->op->lent))
		return false;
	for (const struct tok__waiter *e = r->head; e != w; e = e->next)
		if (e->holder != w->holder && tok__sets_conflict(&e->want, &w->want))
			return true;
	return false;
}

/* Does @g's level of @t stand in @w's way? */
static bool tok__in_way(const struct tok__grant *g, const struct tok__waiter *w, int t)
{
	uint8_t have = g->held.level[t], want = w->want.level[t];

	if (have == TOK_NONE || want == TOK_NONE || !tok_level_conflicts(have, want))
		return false;
	/*
	 * A token lent to this operation by its node is no obstacle.  The node
	 * lends its READ right; if it holds more (a node that served the
	 * filesystem keeps the WRITE level it had as the MDS), the operation
	 * borrows that as well: the node waits for it either way.
	 */
	if (w->op && g->holder == w->op->lender && w->op->lent.level[t] == TOK_READ)
		return false;
	return true;
}

/*
 * Find what stands in @w's way.  Returns true if anything does; if some of
 * it is a node's grant not yet recalled, marks it recalling and fills
 * @node/@recall with one recall to send (recall empty otherwise).
 */
static bool tok__obstacles(struct tok__sino *r, const struct tok__waiter *w, uint32_t *node,
			   struct tok_set *recall)
{
	bool any = false;

	*node = 0;
	tok_set_clear(recall);
	for (struct tok__grant *g = r->grants; g; g = g->next) {
		if (g->holder == w->holder)
			continue;
		for (int t = 0; t < TOK_NTOKENS; t++) {
			if (!tok__in_way(g, w, t))
				continue;
			any = true;
			if (tok__is_node(g->holder) && !(g->recalling & TOK__BIT(t)))
				recall->level[t] = g->held.level[t];
		}
		if (!tok_set_empty(recall)) {
			tok__mark_recalling(g, tok__mask(recall));
			*node = (uint32_t)g->holder;
			return true;
		}
	}
	return any;
}

/*
 * The nodes other than @skip that hold IOEXCL at READ of @r; *@only (may be
 * NULL) gets one of them.
 */
static int tok__ioexcl_copies(struct tok__sino *r, uint64_t skip, struct tok__grant **only)
{
	int n = 0;

	for (struct tok__grant *g = r->grants; g; g = g->next)
		if (g->holder != skip && tok__is_node(g->holder) &&
		    g->held.level[TOK_IOEXCL] == TOK_READ) {
			n++;
			if (only)
				*only = g;
		}
	return n;
}

/*
 * Before a second node gets IOEXCL READ, the first must hear that it is no
 * longer alone.  Returns the grant to tell (marked telling), NULL if none;
 * sets *wait if another thread is telling it right now.
 */
static struct tok__grant *tok__ioexcl_to_tell(struct tok__sino *r, const struct tok__waiter *w,
					     bool *wait)
{
	struct tok__grant *only;

	*wait = false;
	if (w->want.level[TOK_IOEXCL] != TOK_READ || !tok__is_node(w->holder))
		return NULL;
	if (tok__ioexcl_copies(r, w->holder, &only) != 1 || !only->excl)
		return NULL;
	if (only->telling) {
		*wait = true;
		return NULL;
	}
	only->telling = true;
	return only;
}

/* ---------------------------------------------------------------------- */
/* 3. Granting                                                             */
/* ---------------------------------------------------------------------- */

/* Give @w what it wants; fold in the state of the levels it converts. */
static int tok__grant(struct tok_server *s, struct tok__sino *r, const struct tok__waiter *w,
		      const struct tok_state *in, struct tok_state *out)
{
	struct tok__grant *g = tok__grant_of(r, w->holder);
	bool changed = false;

	if (g == NULL) {
		g = calloc(1, sizeof(*g));
		if (g == NULL)
			return -ENOMEM;
		g->holder = w->holder;
		g->node = w->op ? w->op->lender : (uint32_t)w->holder;
		g->next = r->grants;
		r->grants = g;
	}
	for (int t = 0; t < TOK_NTOKENS; t++) {
		if (w->want.level[t] == TOK_NONE)
			continue;
		if (in && g->held.level[t] != TOK_NONE)
			changed |= tok__merge_state(&r->st, in, t, g->held.level[t]);
		g->held.level[t] = w->want.level[t];
		g->recalling &= (uint16_t)~TOK__BIT(t);
	}
	if (changed && s->ops->merged)
		s->ops->merged(s->arg, r->ino, &r->st);
	if (w->want.level[TOK_IOEXCL] == TOK_READ && tok__is_node(w->holder))
		g->excl = tok__ioexcl_copies(r, g->holder, NULL) == 0;
	s->stats.grants++;
	if (out == NULL)
		return 0;
	memset(out, 0, sizeof(*out));
	if (w->want.level[TOK_TIMES] != TOK_NONE && (r->st.valid & TOK_ST_TIMES)) {
		out->valid |= TOK_ST_TIMES;
		out->atime = r->st.atime;
		out->mtime = r->st.mtime;
		out->ctime = r->st.ctime;
	}
	if (w->want.level[TOK_SIZE] != TOK_NONE && (r->st.valid & TOK_ST_SIZE)) {
		out->valid |= TOK_ST_SIZE;
		out->size = r->st.size;
		out->blocks = r->st.blocks;
	}
	/*
	 * Every answer to a node that holds IOEXCL carries its state, so one
	 * missed corrects itself at the next request without asking again for
	 * a level the node has (a give-back of it crossing that request could
	 * not be told from one before it).  While the holder is being told, it
	 * is answered "not alone", the safe state.
	 */
	if (g->held.level[TOK_IOEXCL] != TOK_NONE) {
		out->valid |= TOK_ST_IOEXCL;
		out->ioexcl = g->excl && !g->telling;
	}
	return 0;
}

/* The FIFO without @w. */
static void tok__dequeue(struct tok__sino *r, struct tok__waiter *w)
{
	struct tok__waiter **pp;

	for (pp = &r->head; *pp != w; pp = &(*pp)->next)
		;
	*pp = w->next;
}

static void tok__enqueue(struct tok__sino *r, struct tok__waiter *w)
{
	struct tok__waiter **pp;

	for (pp = &r->head; *pp; pp = &(*pp)->next)
		;
	*pp = w;
}

/*
 * Wait for a change, s->mu held.  An application's request (a local
 * operation of the metadata server's node, common/cx_intr.h) gives up here
 * when interrupted: 0 or its error.  Requests of other nodes run on threads
 * that are not armed and wait until granted, refused or interrupted all.
 */
static int tok__wait(struct tok_server *s)
{
	return cx_intr_wait(&s->cv, &s->mu, NULL);
}

/* The acquire loop shared by nodes and operations. */
static int tok__acquire(struct tok_server *s, uint64_t holder, const struct tok_op *op,
			uint64_t ino, const struct tok_set *want, const struct tok_state *in,
			struct tok_set *got, struct tok_state *out)
{
	struct tok__waiter w = { .holder = holder, .want = *want, .op = op };
	struct tok__grant *g, *tell;
	struct tok__sino *r;
	struct tok_set recall;
	uint64_t gen, tell_holder;
	uint32_t node;
	bool wait;
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	tok_set_clear(got);
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (want->level[t] >= TOK_NLEVELS)
			return -EINVAL;
	if (tok_set_empty(want))
		return -EINVAL;

	tok__lock(s);
	r = tok__get(s, ino);
	if (r == NULL) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	w.r = r;
	tok__enqueue(r, &w);
	s->stats.waiting++;
	gen = s->intr_gen;
	for (;;) {
		if (w.cancelled) {
			rc = -ENOTCONN;
			break;
		}
		if (s->intr_gen != gen) {
			s->stats.early++;
			rc = -TOK_EEARLY;
			break;
		}
		if (tok__behind_earlier(r, &w) ||
		    (r->freeing && w.want.level[TOK_EXIST] != TOK_NONE)) {
			tok__wait_begin(&s->waits, &w.link);
			rc = tok__wait(s);
			if (rc < 0)
				break;
			continue;
		}
		if (tok__obstacles(r, &w, &node, &recall)) {
			tok__wait_begin(&s->waits, &w.link);
			if (tok_set_empty(&recall)) {
				rc = tok__wait_answer(s, r);
				if (rc < 0)
					break;
				continue;
			}
			s->stats.recalls++;
			tok__unlock(s);
			s->ops->recall(s->arg, node, ino, &recall, false);
			tok__lock(s);
			continue;
		}
		tell = tok__ioexcl_to_tell(r, &w, &wait);
		if (wait) {
			tok__wait_begin(&s->waits, &w.link);
			rc = tok__wait(s);
			if (rc < 0)
				break;
			continue;
		}
		if (tell) {
			tok__wait_begin(&s->waits, &w.link);
			tell_holder = tell->holder;
			tok__unlock(s);
			s->ops->ioexcl_tell(s->arg, (uint32_t)tell_holder, ino, false);
			tok__lock(s);
			g = tok__grant_of(r, tell_holder);
			if (g) {
				g->excl = false;
				g->telling = false;
			}
			s->stats.ioexcl_tells++;
			pthread_cond_broadcast(&s->cv);
			continue;
		}
		rc = tok__grant(s, r, &w, in, out);
		break;
	}
	tok__wait_end(&s->waits, &w.link);
	tok__dequeue(r, &w);
	s->stats.waiting--;
	g = tok__grant_of(r, holder);
	for (int t = 0; t < TOK_NTOKENS && g; t++)
		if (tok_level_covers(g->held.level[t], want->level[t]))
			got->level[t] = want->level[t];
	tok__put(s, r);
	pthread_cond_broadcast(&s->cv);
out_unlock:
	tok__unlock(s);
	return rc;
}

int tok_server_acquire(struct tok_server *s, uint32_t node, uint64_t ino,
		       const struct tok_set *want, const struct tok_state *in,
		       struct tok_set *got, struct tok_state *out)
{
	return tok__acquire(s, node, NULL, ino, want, in, got, out);
}

/* ---------------------------------------------------------------------- */
/* 4. Answers from nodes                                                   */
/* ---------------------------------------------------------------------- */

/*
 * A copy of IOEXCL READ came back or went with its node: if one node
 * holds it now and was last told (or answered) that it is not alone, tell
 * it that it is.  The tell is
 * marked on the grant while the mutex is dropped, so a second node's
 * request waits for it (tok__ioexcl_to_tell) and its "not alone" comes
 * after.  Called and returns with the mutex held, @r pinned by the caller.
 */
static void tok__tell_alone(struct tok_server *s, struct tok__sino *r)
{
	struct tok__grant *only;
	uint64_t holder;

	if (tok__ioexcl_copies(r, TOK__NO_HOLDER, &only) != 1 || only->excl || only->telling)
		return;
	only->telling = true;
	holder = only->holder;
	r->users++;
	tok__unlock(s);
	s->ops->ioexcl_tell(s->arg, (uint32_t)holder, r->ino, true);
	tok__lock(s);
	r->users--;
	only = tok__grant_of(r, holder);
	if (only) {
		only->excl = only->held.level[TOK_IOEXCL] == TOK_READ;
		only->telling = false;
	}
	s->stats.ioexcl_tells++;
}

void tok_server_returned(struct tok_server *s, uint32_t node, uint64_t ino,
			 const struct tok_set *tokens, const struct tok_state *st)
{
	struct tok__grant *g;
	struct tok__sino *r;
	bool changed = false;

	tok__lock(s);
	s->stats.returns++;
	r = tok__find(s, ino);
	g = r ? tok__grant_of(r, node) : NULL;
	if (g == NULL)
		goto out_unlock;
	for (int t = 0; t < TOK_NTOKENS; t++) {
		/* A level the node no longer has here was settled already. */
		if (tokens->level[t] == TOK_NONE || g->held.level[t] != tokens->level[t])
			continue;
		changed |= tok__merge_state(&r->st, st, t, g->held.level[t]);
		g->held.level[t] = TOK_NONE;
		g->recalling &= (uint16_t)~TOK__BIT(t);
		if (t == TOK_IOEXCL)
			g->excl = false;
	}
	if (changed && s->ops->merged)
		s->ops->merged(s->arg, ino, &r->st);
	tok__grant_free_if_empty(r, g);
	if (tokens->level[TOK_IOEXCL] == TOK_READ)
		tok__tell_alone(s, r);
	tok__check_doomed(s, r);
	tok__put(s, r);
	pthread_cond_broadcast(&s->cv);
out_unlock:
	tok__unlock(s);
}

void tok_server_refused(struct tok_server *s, uint32_t node, uint64_t ino,
			const struct tok_set *tokens)
{
	struct tok__grant *g;
	struct tok__sino *r;

	tok__lock(s);
	s->stats.refusals++;
	r = tok__find(s, ino);
	g = r ? tok__grant_of(r, node) : NULL;
	if (g) {
		g->recalling &= (uint16_t)~tok__mask(tokens);
		pthread_cond_broadcast(&s->cv);
	}
	tok__unlock(s);
}

/* ---------------------------------------------------------------------- */
/* 5. Existence, operations, departure, interruption, queries              */
/* ---------------------------------------------------------------------- */

int tok_server_recall_exist(struct tok_server *s, uint64_t ino)
{
	struct tok__waiter w = { .exist = true };
	struct tok__grant *g;
	struct tok__sino *r;
	struct tok_set recall;
	uint64_t gen;
	uint32_t node;
	bool pending;
	int rc;

	tok__lock(s);
	r = tok__get(s, ino);
	if (r == NULL) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	r->users++;
	w.r = r;
	tok_set_add(&w.want, TOK_EXIST, TOK_WRITE);
	gen = s->intr_gen;
	for (g = r->grants; g; g = g->next) {
		if (tok__is_node(g->holder) && g->held.level[TOK_EXIST] != TOK_NONE &&
		    !(g->recalling & TOK__BIT(TOK_EXIST))) {
			tok__mark_recalling(g, TOK__BIT(TOK_EXIST));
			g->cond = 1;
			tok__wait_begin(&s->waits, &w.link);
		}
	}
	for (;;) {
		if (s->intr_gen != gen) {
			s->stats.early++;
			rc = -TOK_EEARLY;
			break;
		}
		pending = false;
		for (g = r->grants; g && g->cond != 1; g = g->next)
			pending |= (g->recalling & TOK__BIT(TOK_EXIST)) != 0;
		if (g) {
			g->cond = 2;
			if (g->held.level[TOK_EXIST] == TOK_NONE) {
				/* Given back on its own meanwhile. */
				g->recalling &= (uint16_t)~TOK__BIT(TOK_EXIST);
				continue;
			}
			node = (uint32_t)g->holder;
			tok_set_clear(&recall);
			recall.level[TOK_EXIST] = g->held.level[TOK_EXIST];
			s->stats.recalls++;
			tok__unlock(s);
			s->ops->recall(s->arg, node, ino, &recall, true);
			tok__lock(s);
			continue;
		}
		if (pending) {
			tok__wait_begin(&s->waits, &w.link);
			(void)tok__wait_answer(s, r);   /* the reclaimer's thread is never armed */
			continue;
		}
		rc = 0;
		for (g = r->grants; g; g = g->next)
			if (g->held.level[TOK_EXIST] != TOK_NONE)
				rc = -EBUSY;
		break;
	}
	tok__wait_end(&s->waits, &w.link);
	for (g = r->grants; g; g = g->next)
		g->cond = 0;
	r->doomed = rc == -EBUSY;
	r->freeing = rc == 0;
	r->users--;
	tok__put(s, r);
out_unlock:
	tok__unlock(s);
	return rc;
}

void tok_server_freed(struct tok_server *s, uint64_t ino)
{
	struct tok__sino *r;

	tok__lock(s);
	r = tok__find(s, ino);
	if (r && r->freeing) {
		r->freeing = false;
		tok__put(s, r);
		pthread_cond_broadcast(&s->cv);
	}
	tok__unlock(s);
}

int tok_server_op_begin(struct tok_server *s, uint32_t lender, const struct tok_set *lent,
			struct tok_op **out)
{
	struct tok_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return -ENOMEM;
	op->s = s;
	op->lender = lender;
	if (lent)
		op->lent = *lent;
	tok__lock(s);
	op->holder = TOK__OP_HOLDER + s->next_op++;
	tok__unlock(s);
	*out = op;
	return 0;
}

int tok_server_op_acquire(struct tok_op *op, uint64_t ino, const struct tok_set *want,
			  struct tok_set *got, struct tok_state *out)
{
	uint64_t *inos;
	size_t i;
	int rc;

	for (i = 0; i < op->ninos && op->inos[i] != ino; i++)
		;
	if (i == op->ninos && op->ninos == op->cap) {
		/* Room first: a grant nobody could release would be worse. */
		inos = realloc(op->inos, (op->cap ? 2 * op->cap : 4) * sizeof(*inos));
		if (inos == NULL)
			return -ENOMEM;
		op->inos = inos;
		op->cap = op->cap ? 2 * op->cap : 4;
	}
	rc = tok__acquire(op->s, op->holder, op, ino, want, NULL, got, out);
	if (rc == 0 && i == op->ninos)
		op->inos[op->ninos++] = ino;
	return rc;
}

void tok_server_op_end(struct tok_op *op)
{
	struct tok_server *s = op->s;
	struct tok__sino *r;

	tok__lock(s);
	for (size_t i = 0; i < op->ninos; i++) {
		r = tok__find(s, op->inos[i]);
		if (r == NULL)
			continue;
		tok__grant_drop(r, op->holder);
		tok__check_doomed(s, r);
		tok__put(s, r);
	}
	pthread_cond_broadcast(&s->cv);
	tok__unlock(s);
	free(op->inos);
	free(op);
}

void tok_server_node_down(struct tok_server *s, uint32_t node)
{
	struct tok__sino *r, *next;
	uint64_t *excl = NULL;     /* inodes whose IOEXCL copy went with the node */
	size_t nexcl = 0, cap = 0;

	tok__lock(s);
	for (unsigned b = 0; b < TOK__BUCKETS; b++) {
		for (r = s->hash[b]; r; r = next) {
			struct tok__grant *g = tok__grant_of(r, node);

			next = r->hnext;
			for (struct tok__waiter *w = r->head; w; w = w->next)
				if (w->holder == node)
					w->cancelled = true;
			if (g && g->held.level[TOK_IOEXCL] == TOK_READ) {
				if (nexcl == cap) {
					uint64_t *v = realloc(excl, (cap ? cap * 2 : 16) * sizeof(*v));

					/* Out of memory: a survivor learns at its next request. */
					if (v) {
						excl = v;
						cap = cap ? cap * 2 : 16;
					}
				}
				if (nexcl < cap)
					excl[nexcl++] = r->ino;
			}
			tok__grant_drop(r, node);
			tok__check_doomed(s, r);
			tok__put(s, r);
		}
	}
	/* As when a copy comes back: a node left alone hears it. */
	for (size_t i = 0; i < nexcl; i++) {
		r = tok__find(s, excl[i]);
		if (r) {
			tok__tell_alone(s, r);
			tok__put(s, r);
		}
	}
	pthread_cond_broadcast(&s->cv);
	tok__unlock(s);
	free(excl);
}

int tok_server_export(struct tok_server *s,
		      int (*fn)(void *arg, uint32_t node, uint64_t ino, const struct tok_set *held),
		      void *arg)
{
	int rc = 0;

	tok__lock(s);
	for (unsigned b = 0; b < TOK__BUCKETS && !rc; b++)
		for (struct tok__sino *r = s->hash[b]; r && !rc; r = r->hnext)
			for (struct tok__grant *g = r->grants; g && !rc; g = g->next)
				if (tok__is_node(g->holder) && !tok_set_empty(&g->held))
					rc = fn(arg, (uint32_t)g->holder, r->ino, &g->held);
	tok__unlock(s);
	return rc;
}

int tok_server_import(struct tok_server *s, uint32_t node, uint64_t ino, const struct tok_set *held)
{
	struct tok__sino *r;
	struct tok__grant *g;
	int rc = 0;

	tok__lock(s);
	r = tok__get(s, ino);
	if (!r) {
		rc = -ENOMEM;
		goto out;
	}
	g = tok__grant_of(r, node);
	if (!g) {
		g = calloc(1, sizeof(*g));
		if (!g) {
			rc = -ENOMEM;
			tok__put(s, r);
			goto out;
		}
		g->holder = node;
		g->node = node;
		g->next = r->grants;
		r->grants = g;
	}
	g->held = *held;
	/* What the node believes of its I/O-exclusive state is unknown: it hears of a second copy. */
	g->excl = held->level[TOK_IOEXCL] == TOK_READ;
	tok__grant_free_if_empty(r, g);
	tok__put(s, r);
out:
	tok__unlock(s);
	return rc;
}

void tok_server_taken(struct tok_server *s, uint32_t node, uint64_t ino, struct tok_set *returning)
{
	struct tok__sino *r;

	tok__lock(s);
	r = tok__find(s, ino);
	for (struct tok__grant *g = r ? r->grants : NULL; g; g = g->next)
		for (int t = 0; g->holder != node && t < TOK_NTOKENS; t++)
			if (returning->level[t] != TOK_NONE && g->held.level[t] != TOK_NONE &&
			    tok_level_conflicts(g->held.level[t], returning->level[t]))
				returning->level[t] = TOK_NONE;
	tok__unlock(s);
}

void tok_server_interrupt_all(struct tok_server *s)
{
	tok__lock(s);
	s->intr_gen++;
	/* Recalls unanswered now are sent again when the requests are retried. */
	for (unsigned b = 0; b < TOK__BUCKETS; b++)
		for (struct tok__sino *r = s->hash[b]; r; r = r->hnext)
			for (struct tok__grant *g = r->grants; g; g = g->next)
				g->recalling = 0;
	pthread_cond_broadcast(&s->cv);
	tok__unlock(s);
}

void tok_server_held(struct tok_server *s, uint32_t node, uint64_t ino, struct tok_set *held)
{
	struct tok__grant *g;
	struct tok__sino *r;

	tok_set_clear(held);
	tok__lock(s);
	r = tok__find(s, ino);
	g = r ? tok__grant_of(r, node) : NULL;
	if (g)
		*held = g->held;
	tok__unlock(s);
}

void tok_server_stats(struct tok_server *s, struct tok_server_stats *st)
{
	tok__lock(s);
	*st = s->stats;
	tok__unlock(s);
}

int tok_server_create(const struct tok_server_ops *ops, void *arg, struct tok_server **out)
{
	struct tok_server *s = calloc(1, sizeof(*s));
	int rc;

	if (s == NULL)
		return -ENOMEM;
	rc = -pthread_mutex_init(&s->mu, NULL);
	if (rc)
		goto out_free;
	rc = -pthread_cond_init(&s->cv, NULL);
	if (rc)
		goto out_mutex;
	s->ops = ops;
	s->arg = arg;
	*out = s;
	return 0;
out_mutex:
	pthread_mutex_destroy(&s->mu);
out_free:
	free(s);
	return rc;
}

void tok_server_destroy(struct tok_server *s)
{
	struct tok__sino *r, *next;
	struct tok__grant *g, *gnext;

	if (s == NULL)
		return;
	for (unsigned b = 0; b < TOK__BUCKETS; b++) {
		for (r = s->hash[b]; r; r = next) {
			next = r->hnext;
			assert(r->head == NULL && r->users == 0);
			for (g = r->grants; g; g = gnext) {
				gnext = g->next;
				free(g);
			}
			free(r);
		}
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ---------------------------------------------------------------------- */
/* 6. Waits, for diagnostics                                               */
/* ---------------------------------------------------------------------- */

static struct tok_who tok__who_waiter(const struct tok__waiter *w)
{
	if (w->exist)
		return (struct tok_who){ .kind = TOK_WHO_SERVER };
	if (w->op)
		return (struct tok_who){ .kind = TOK_WHO_OP, .node = w->op->lender,
					 .op = w->op->holder - TOK__OP_HOLDER };
	return (struct tok_who){ .kind = TOK_WHO_NODE, .node = (uint32_t)w->holder };
}

static struct tok_who tok__who_grant(const struct tok__grant *g)
{
	if (tok__is_node(g->holder))
		return (struct tok_who){ .kind = TOK_WHO_NODE, .node = g->node };
	return (struct tok_who){ .kind = TOK_WHO_OP, .node = g->node,
				 .op = g->holder - TOK__OP_HOLDER };
}

/* Room for one more obstacle in @out?  If not, it is counted as left out. */
static struct tok_obstacle *tok__obstacle_slot(struct tok_server_wait *out)
{
	if (out->nobstacles == TOK_WAIT_OBSTACLES) {
		out->more++;
		return NULL;
	}
	return memset(&out->obstacles[out->nobstacles++], 0, sizeof(out->obstacles[0]));
}

/* A grant in @w's way: its levels in @levels, which @g may be recalling. */
static void tok__note_grant(struct tok_server_wait *out, const struct tok__grant *g,
			    const struct tok_set *levels, int64_t now)
{
	struct tok_obstacle *o = tok__obstacle_slot(out);

	if (o == NULL)
		return;
	o->kind = TOK_OBST_GRANT;
	o->who = tok__who_grant(g);
	o->levels = *levels;
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (levels->level[t] != TOK_NONE && (g->recalling & TOK__BIT(t)))
			o->recalled.level[t] = levels->level[t];
	if (!tok_set_empty(&o->recalled))
		o->recall_age_ms = tok__age_ms(g->recall_ns, now);
}

/*
 * What stands in @w's way now, read without changing anything: the same
 * rules as tok__acquire()'s (tok__behind_earlier(), the freeing gate,
 * tok__obstacles() and tok__ioexcl_to_tell()).
 */
static void tok__describe(const struct tok__waiter *w, int64_t now, struct tok_server_wait *out)
{
	const struct tok__sino *r = w->r;
	struct tok_obstacle *o;
	struct tok_set levels;

	memset(out, 0, sizeof(*out));
	out->ino = r->ino;
	out->who = tok__who_waiter(w);
	out->want = w->want;
	out->age_ms = tok__age_ms(w->link.since, now);
	if (w->exist) {
		/* The conditional recalls of EXIST not answered yet. */
		for (const struct tok__grant *g = r->grants; g; g = g->next) {
			if (!g->cond || !(g->recalling & TOK__BIT(TOK_EXIST)))
				continue;
			tok_set_clear(&levels);
			levels.level[TOK_EXIST] = g->held.level[TOK_EXIST];
			tok__note_grant(out, g, &levels, now);
		}
		return;
	}
	if (r->freeing && w->want.level[TOK_EXIST] != TOK_NONE &&
	    (o = tok__obstacle_slot(out)) != NULL) {
		o->kind = TOK_OBST_FREEING;
		o->who = (struct tok_who){ .kind = TOK_WHO_SERVER };
		o->levels.level[TOK_EXIST] = w->want.level[TOK_EXIST];
	}
	for (const struct tok__waiter *e = r->head; e && e != w; e = e->next) {
		if (e->holder == w->holder || !tok__sets_conflict(&e->want, &w->want) ||
		    (w->op && !tok_set_empty(&w->op->lent)))
			continue;
		o = tok__obstacle_slot(out);
		if (o == NULL)
			continue;
		o->kind = TOK_OBST_QUEUED;
		o->who = tok__who_waiter(e);
		for (int t = 0; t < TOK_NTOKENS; t++)
			if (e->want.level[t] != TOK_NONE && w->want.level[t] != TOK_NONE &&
			    tok_level_conflicts(e->want.level[t], w->want.level[t]))
				o->levels.level[t] = e->want.level[t];
	}
	for (const struct tok__grant *g = r->grants; g; g = g->next) {
		if (g->holder == w->holder)
			continue;
		tok_set_clear(&levels);
		for (int t = 0; t < TOK_NTOKENS; t++)
			if (tok__in_way(g, w, t))
				levels.level[t] = g->held.level[t];
		if (!tok_set_empty(&levels))
			tok__note_grant(out, g, &levels, now);
		if (g->telling && w->want.level[TOK_IOEXCL] == TOK_READ && tok__is_node(w->holder) &&
		    (o = tok__obstacle_slot(out)) != NULL) {
			o->kind = TOK_OBST_IOEXCL;
			o->who = tok__who_grant(g);
			o->levels.level[TOK_IOEXCL] = TOK_READ;
		}
	}
}

void tok_server_waits(struct tok_server *s,
		      void (*fn)(void *arg, const struct tok_server_wait *w), void *arg)
{
	struct tok_server_wait out;
	int64_t now;

	tok__lock(s);
	now = s->waits.first ? tok__now_ns() : 0;
	for (const struct tok__wlink *l = s->waits.first; l; l = l->next) {
		tok__describe(TOK__RECORD(l, struct tok__waiter, link), now, &out);
		fn(arg, &out);
	}
	tok__unlock(s);
}
