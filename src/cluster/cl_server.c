/*
 * cl_server.c - the metadata server's side of the cluster: the token
 * server and its transport, the `server` behavior (dsvn) that sits above
 * `meta` on every vnode of the MDS, and the handlers of remote nodes'
 * requests (tokens, extent maps, allocation, write done, and every vnode
 * operation, run on the MDS's chain below its own client behavior).
 *
 * The server behavior takes, for each change, the tokens that protect what
 * the change touches at WRITE level, which recalls them from every node that
 * caches them (the asking node included, except what it lent the operation)
 * before the store changes:
 *   - the directories of a namespace operation: name, attr, times and size
 *     (lent by the asking node, which keeps its cached names up to date
 *     itself);
 *   - the inodes a namespace operation links or unlinks: attr, times and
 *     name (a directory removed must be empty at every node); the inode of
 *     a setattr or xattr change: attr and times;
 *   - a truncate or fallocate: every data token as well.
 * Every inode's tokens, directories and others alike, are taken in one
 * ascending order of inode numbers, so server operations cannot deadlock
 * among themselves (srv_take_names).  A change a node made itself in a
 * directory it shares by name buckets (docs/ARCHITECTURE.md, "Shared
 * directories") takes the directory's tokens at the shared levels instead,
 * and then the buckets of its names, whose keys lie above every inode
 * (shared_keys); a read of one bucket's names filters the directory's
 * (bucket_read).
 *
 * An inode whose last name goes is freed only when no node holds its EXIST
 * token: the server recalls it conditionally, a node that still uses the
 * file refuses, and the file is freed when that node's EXIST comes back
 * (last_exist, which queues it for the reclaimer thread).  From the check
 * that finds no holder until the file is gone from the store, EXIST is
 * granted to nobody (tok_server_freed): a node that opens the file
 * meanwhile finds it gone, instead of opening a file about to be freed (its
 * write would then fail with ENOENT).
 *
 * Liveness is the membership's (cl_member.c), not the connection's: a node
 * whose connection drops keeps its tokens, and recalls that could not be
 * sent, or were lost with the connection, go again a second later (the
 * token server's waiters resend them).  Its tokens and locks go only when the
 * membership loses it, after it is fenced (cl_server_node_lost).
 *
 * Values from other nodes are clamped where they are used: a remote
 * fallocate carries only the modes of fallocate(2) the store supports
 * (never an internal flag such as VN_IO_INVISIBLE), and a WRITE_DONE
 * publishes only runs handed to that node (the ledger of cl_runs.h, fed by
 * every ALLOC and extent map reply) that are the file's unwritten (or
 * already written) blocks at those places in the store; anything else is
 * refused whole, logged, and changes nothing.
 *
 * Lock order: see cl_i.h; cl_ctx.rmu is a leaf.
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cluster/cl_wire.h"
#include "membership/cms_config.h"
#include "vnode/vn_lock.h"
#include "vnode/vn_meta.h"

#define CL_MAP_MAX 1024               /* runs per extent-map reply */

/* Logged sparsely (log_sampled): runs the ledger could not note, asks for gone files' blocks. */
static atomic_uint ledger_refusals, gone_asks;

/* This thread is the reclaimer (which may wait for nodes' answers). */
static _Thread_local bool cl_in_reclaimer;

/* ---- token server transport ------------------------------------------- */

struct cl_srv_recall {
	struct cl_ctx *cx;
	uint32_t node;
	uint64_t ino;
	struct tok_set tokens;
	bool conditional;
};

static void local_recall_run(void *arg)
{
	struct cl_srv_recall *r = arg;
	int rc = tok_client_recall(r->cx->tc, r->ino, &r->tokens, r->conditional);

	if (rc == -EBUSY)
		tok_server_refused(r->cx->ts, r->cx->self_id, r->ino, &r->tokens);
	free(r);
}

/* The blocks a lost node allocated and never published, freed on a thread of their own. */
struct cl_unpub {
	struct cl_ctx *cx;
	uint32_t node;
	struct cl_ledger_run *runs;
	long n;
};

/*
 * Free run @r of a lost node if its blocks are still the file's unwritten
 * blocks there: with the file's EXTENT token at WRITE (every node that
 * maps the file publishes what it wrote first), so no published block is
 * ever freed.  Returns the blocks freed.
 */
static uint64_t free_unpublished(struct cl_ctx *cx, const struct cl_ledger_run *r)
{
	struct meta_map maps[64];
	struct tok_set none, want, got;
	struct tok_op *op;
	uint64_t freed = 0;
	int n;

	tok_set_clear(&none);
	tok_set_clear(&want);
	tok_set_add(&want, TOK_EXTENT, TOK_WRITE);
	if (tok_server_op_begin(cx->ts, cx->self_id, &none, &op))
		return 0;
	if (tok_server_op_acquire(op, r->ino, &want, &got, NULL) == 0) {
		n = meta_map_read(cx->st, r->ino, r->fblk, r->nblk, maps, 64);
		for (int i = 0; i < n; i++) {
			const struct meta_map *m = &maps[i];

			if (m->state != META_MAP_UNWRITTEN ||
			    m->pblk != r->pblk + (m->fblk - r->fblk))
				continue;
			if (meta_fallocate(cx->st, r->ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					   m->fblk * cx->bs, m->nblk * cx->bs) == 0)
				freed += m->nblk;
		}
		cl_ledger_clear(cx->ledger, r->ino, r->fblk, r->nblk);
	}
	tok_server_op_end(op);
	return freed;
}

static void unpub_run(void *arg)
{
	struct cl_unpub *u = arg;
	uint64_t freed = 0;

	for (long i = 0; i < u->n; i++)
		if (u->runs[i].fresh)
			freed += free_unpublished(u->cx, &u->runs[i]);
	fprintf(stderr, "cxfsd: node %s: %llu block(s) it allocated and never published are "
		"freed (%ld run(s))\n", cms_node_name(cl_node_by_id(u->cx, u->node)),
		(unsigned long long)freed, u->n);
	free(u->runs);
	free(u);
}

/* What lost node @node allocated and never published goes (not on this thread: it recalls). */
static void free_unpublished_later(struct cl_ctx *cx, uint32_t node)
{
	struct cl_unpub *u = calloc(1, sizeof(*u));

	if (!u)
		return;
	u->cx = cx;
	u->node = node;
	u->n = cl_ledger_drop_node(cx->ledger, node, &u->runs);
	if (u->n <= 0 || cl_spawn(cx, unpub_run, u)) {
		free(u->runs);
		free(u);
	}
}

void cl_server_node_lost(struct cl_ctx *cx, uint32_t node, const char *why)
{
	struct rpc_chan *ch = NULL, *out = NULL;
	size_t nlocks = 0;

	pthread_mutex_lock(&cx->mu);
	if (node < CL_MAX_NODES) {
		ch = cx->node_chan[node];
		cx->node_chan[node] = NULL;
		out = cx->out_chan[node];
		cx->out_chan[node] = NULL;
	}
	pthread_mutex_unlock(&cx->mu);
	if (ch)
		rpc_chan_put(ch);
	if (out)
		rpc_chan_put(out);
	tok_server_node_down(cx->ts, node);
	if (cx->mfs)
		nlocks = vn_lock_release_node(vn_meta_fs_locks(cx->mfs), node);
	fprintf(stderr, "cxfsd: node %s %s: its tokens and its %zu lock(s) are dropped\n",
		cms_node_name(cl_node_by_id(cx, node)), why, nlocks);
	free_unpublished_later(cx, node);
	cl_unsafe_node_gone(cx, node);
}

/*
 * The channel to reach @node on: the one it connected to us on while that
 * connection lasts, else one of ours to its address (connected on demand),
 * so a recall reaches a member whose own connection broke.  NULL if none.
 */
struct rpc_chan *cl_node_chan(struct cl_ctx *cx, uint32_t node)
{
	const struct cms_node *nd = cl_node_by_id(cx, node);
	struct rpc_chan *ch = NULL;

	if (node >= CL_MAX_NODES)
		return NULL;
	pthread_mutex_lock(&cx->mu);
	ch = cx->node_chan[node];
	if (ch) {
		struct rpc_stats st;

		rpc_chan_stats(ch, &st);
		if (st.disconnects)
			ch = NULL;
	}
	if (!ch && nd && !cx->out_chan[node] && cms_node_addr_kind(nd) != CMS_ADDR_HOST)
		(void)rpc_connect(cx->rpc, cms_node_address(nd), cms_node_port(nd), &cx->out_chan[node]);
	if (!ch)
		ch = cx->out_chan[node];
	if (ch)
		rpc_chan_hold(ch);
	pthread_mutex_unlock(&cx->mu);
	return ch;
}

static void srv_recall(void *arg, uint32_t node, uint64_t ino, const struct tok_set *tokens,
		       bool conditional)
{
	struct cl_ctx *cx = arg;
	struct rpc_chan *ch;

	if (node == cx->self_id) {
		struct cl_srv_recall *r = calloc(1, sizeof(*r));

		if (!r)
			return;
		*r = (struct cl_srv_recall){ cx, node, ino, *tokens, conditional };
		if (cl_spawn(cx, local_recall_run, r))
			free(r);
		return;
	}
	/*
	 * Not sent, or lost with a connection: the recall stays marked and its
	 * waiter sends it again a second later; the node's tokens go when the
	 * membership loses it.
	 */
	ch = cl_node_chan(cx, node);
	if (ch) {
		Cxfs__TokenRecall m = CXFS__TOKEN_RECALL__INIT;
		Cxfs__TokenState buf[TOK_NTOKENS], *ptrs[TOK_NTOKENS];

		m.ino = ino;
		m.n_downgrade = clw_toks_to_pb(tokens, buf, ptrs);
		m.downgrade = ptrs;
		m.has_conditional = 1;
		m.conditional = conditional;
		(void)rpc_send(ch, CXFS__MSG_TYPE__TOKEN_RECALL, &m.base);
		rpc_chan_put(ch);
	}
}

static void srv_ioexcl_tell(void *arg, uint32_t node, uint64_t ino, bool excl)
{
	struct cl_ctx *cx = arg;
	Cxfs__IoexclState m = CXFS__IOEXCL_STATE__INIT;
	struct rpc_chan *ch;

	if (node == cx->self_id) {
		cl_io_told(cx, ino, excl);
		return;
	}
	ch = cl_node_chan(cx, node);
	if (!ch)
		return;
	m.ino = ino;
	m.has_excl = 1;
	m.excl = excl;
	(void)rpc_send(ch, CXFS__MSG_TYPE__IOEXCL_STATE, &m.base);
	rpc_chan_put(ch);
}

/* Runs under the token server's mutex: only queue the inode. */
static void srv_last_exist(void *arg, uint64_t ino)
{
	struct cl_ctx *cx = arg;

	pthread_mutex_lock(&cx->rmu);
	if (cx->nrq == cx->rq_cap) {
		size_t cap = cx->rq_cap ? cx->rq_cap * 2 : 64;
		uint64_t *q = realloc(cx->rq, cap * sizeof(*q));

		if (!q) {
			/* The file stays an orphan; the next MDS start frees it. */
			pthread_mutex_unlock(&cx->rmu);
			return;
		}
		cx->rq = q;
		cx->rq_cap = cap;
	}
	cx->rq[cx->nrq++] = ino;
	pthread_cond_signal(&cx->rcv);
	pthread_mutex_unlock(&cx->rmu);
}

static const struct tok_server_ops srv_tok_ops = {
	.recall = srv_recall,
	.ioexcl_tell = srv_ioexcl_tell,
	.last_exist = srv_last_exist,
};

/* Free inodes whose last EXIST token came back (their INACTIVE reclaims them). */
static void *reclaimer(void *arg)
{
	struct cl_ctx *cx = arg;

	cl_in_reclaimer = true;
	pthread_mutex_lock(&cx->rmu);
	for (;;) {
		uint64_t ino;
		struct vnode *vn;

		while (!cx->nrq && !cx->rstop)
			pthread_cond_wait(&cx->rcv, &cx->rmu);
		if (!cx->nrq)
			break;
		ino = cx->rq[--cx->nrq];
		pthread_mutex_unlock(&cx->rmu);
		if (cx->vt && vn_get(cx->vt, ino, &vn) == 0)
			vn_put(vn, 1);
		pthread_mutex_lock(&cx->rmu);
	}
	pthread_mutex_unlock(&cx->rmu);
	return NULL;
}

/* ---- the MDS node's own token client, in process ------------------------ */

static int local_obtain(void *arg, uint64_t ino, const struct tok_set *want,
			const struct tok_state *in, struct tok_set *got, struct tok_state *out)
{
	struct cl_ctx *cx = arg;

	return tok_server_acquire(cx->ts, cx->self_id, ino, want, in, got, out);
}

static void local_give_back(void *arg, uint64_t ino, const struct tok_set *tokens,
			    const struct tok_state *st)
{
	struct cl_ctx *cx = arg;

	tok_server_returned(cx->ts, cx->self_id, ino, tokens, st);
	cl_range_returned(cx, ino, tokens);
}

/* The store is this node's cache: only what the kernel cached needs care. */
static int local_duty(void *arg, uint64_t ino, enum tok_duty duty, struct tok_state *st)
{
	struct cl_ctx *cx = arg;
	struct vn_attr a;
	uint64_t file, off, end;
	int rc;

	switch (duty) {
	case TOK_DUTY_FLUSH:
	case TOK_DUTY_DISCARD:
		/* A byte range's (cl_range.c): the kernel's pages of its file. */
		cl_pages_stale(cx, cl_range_of(ino, &file, &off, &end) ? file : ino);
		return 0;
	case TOK_DUTY_INVAL_NAMES:
		cl_names_drop(cx, ino);
		return 0;
	case TOK_DUTY_INVAL_ATTR:
		cl_attr_stale(cx, ino);
		return 0;
	case TOK_DUTY_TIMES:
	case TOK_DUTY_SIZE:
		rc = meta_getattr(cx->st, ino, &a);
		if (rc)
			return rc;
		st->atime = a.atime;
		st->mtime = a.mtime;
		st->ctime = a.ctime;
		st->size = a.size;
		st->blocks = a.blocks;
		return 0;
	default:
		return 0;
	}
}

const struct tok_client_ops cl_local_tok_ops = {
	.obtain = local_obtain,
	.give_back = local_give_back,
	.duty = local_duty,
};

/* ---- the server behavior ------------------------------------------------ */

struct srv_ops {
	struct tok_op *lent;   /* tokens on directories, with the asker's lend */
	struct tok_op *own;    /* tokens on other inodes, recalled from everyone */
};

static int srv_begin(struct cl_ctx *cx, const struct vn_call *c, struct srv_ops *so)
{
	int rc;

	so->lent = so->own = NULL;
	rc = tok_server_op_begin(cx->ts, c->node, c->lent, &so->lent);
	if (!rc)
		rc = tok_server_op_begin(cx->ts, c->node, NULL, &so->own);
	if (rc && so->lent)
		tok_server_op_end(so->lent);
	return rc;
}

static void srv_end(struct srv_ops *so)
{
	tok_server_op_end(so->own);
	tok_server_op_end(so->lent);
}

static void set_of(struct tok_set *s, unsigned mask, enum tok_level level)
{
	tok_set_clear(s);
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (mask & (1u << t))
			tok_set_add(s, (enum tok_id)t, level);
}

/* Grant @node the tokens its answer to a create of @ino brings (CL_CREATE_TOKS). */
static void create_toks(struct cl_ctx *cx, uint32_t node, uint64_t ino)
{
	struct tok_set ct, got;

	set_of(&ct, CL_CREATE_TOKS, TOK_READ);
	/* A node's own create: it holds what its own unlink changes at WRITE (cl_async.c). */
	if (cl_unsafe_own_create()) {
		set_of(&got, CL_OWN_WRITE_TOKS, TOK_WRITE);
		tok_set_raise(&ct, &got);
	}
	(void)tok_server_acquire(cx->ts, node, ino, &ct, NULL, &got, NULL);
}

/* The tokens @set of @node's return @m (not its state): those it still has here go. */
static void take_return(struct cl_ctx *cx, uint32_t node, const Cxfs__TokenReturn *m,
			const struct tok_set *set)
{
	if (m->has_refused && m->refused) {
		tok_server_refused(cx->ts, node, m->ino, set);
		return;
	}
	tok_server_returned(cx->ts, node, m->ino, set, NULL);
	if (set->level[TOK_EXTENT] != TOK_NONE)
		cl_ledger_forget(cx->ledger, node, m->ino);
}

void cl_server_again(struct cl_ctx *cx, uint32_t node, Cxfs__MsgType type,
		     const ProtobufCMessage *msg, uint64_t ino)
{
	const Cxfs__TokenReturn *m = (const Cxfs__TokenReturn *)msg;
	struct tok_set set;

	if (!cx->ts)
		return;
	if (type == CXFS__MSG_TYPE__MKNOD_REQ && ino && node != cx->self_id)
		create_toks(cx, node, ino);
	else if (type == CXFS__MSG_TYPE__TOKEN_RETURN &&
		 clw_toks_from_pb(m->held, m->n_held, &set) == 0)
		take_return(cx, node, m, &set);
}

#define B(t) (1u << (t))
#define DIR_TOKS (B(TOK_NAME) | B(TOK_ATTR) | B(TOK_TIMES) | B(TOK_SIZE))
#define OBJ_TOKS (B(TOK_ATTR) | B(TOK_TIMES))
/*
 * Of an inode a namespace operation links or unlinks: its attributes, and
 * its names if it is a directory (one that an rmdir or a rename removes
 * must be empty of files a node created there itself and has not sent yet:
 * taking NAME recalls them, "Asynchronous creates").
 */
#define LINKED_TOKS (OBJ_TOKS | B(TOK_NAME))
#define DATA_TOKS (OBJ_TOKS | B(TOK_SIZE) | B(TOK_EXTENT) | B(TOK_IO) | B(TOK_PAGE_CLEAN) | \
		   B(TOK_PAGE_DIRTY))

/*
 * A token wait cut short because the MDS moves away: this node's own
 * operation starts again on its new chain (-VN_EMIGRATING); another node's
 * gets "early" and asks the new MDS.
 */
static int srv_moved(struct cl_ctx *cx, const struct vn_call *c, int rc)
{
	if (rc == -TOK_EEARLY && atomic_load(&cx->relocating) && c->node == cx->self_id)
		return -VN_EMIGRATING;
	return rc;
}

/* The smallest inode of @inos (0s skipped) above @last, or UINT64_MAX. */
static uint64_t next_above(const uint64_t *inos, int n, uint64_t last)
{
	uint64_t next = UINT64_MAX;

	for (int i = 0; i < n; i++)
		if (inos[i] > last && inos[i] < next)
			next = inos[i];
	return next;
}

static bool has_ino(const uint64_t *inos, int n, uint64_t ino)
{
	for (int i = 0; i < n; i++)
		if (inos[i] == ino)
			return true;
	return false;
}

/* Take @mask at WRITE on each inode of @inos (0s skipped), ascending. */
static int srv_take(struct tok_op *op, uint64_t *inos, int n, unsigned mask)
{
	struct tok_set want, got;
	uint64_t next = 0;
	int rc;

	set_of(&want, mask, TOK_WRITE);
	while ((next = next_above(inos, n, next)) != UINT64_MAX)
		if ((rc = tok_server_op_acquire(op, next, &want, &got, NULL)))
			return rc;
	return 0;
}

/*
 * Take the tokens of a namespace operation in one ascending order of inode
 * numbers, directories and other inodes alike: name, attr, times and size
 * of the directories @dirs (with the asker's lend), attr and times of the
 * inodes @objs it links or unlinks (with the lend if the asker lent them:
 * it drops its cached copy when the answer comes; recalled from all
 * otherwise).  One order for every server operation is what keeps them
 * from waiting for each other in a circle: taking the directories first
 * would let a rename of directory D within its parent P (P, then D) and a
 * rename from D to P (D, then P) each hold what the other waits for.
 */
static int srv_take_names(struct srv_ops *so, const struct vn_call *c, const uint64_t *dirs,
			  int nd, const uint64_t *objs, int no, const uint64_t *keys, int nk)
{
	uint64_t all[4], next = 0;
	struct tok_set want, got;
	int n = 0, rc;

	for (int i = 0; i < nd; i++)
		all[n++] = dirs[i];
	for (int i = 0; i < no; i++)
		all[n++] = objs[i];
	while ((next = next_above(all, n, next)) != UINT64_MAX) {
		bool dir = has_ino(dirs, nd, next);
		bool lent = dir || (c->lent && (next == c->lent_inos[0] || next == c->lent_inos[1]));

		if (dir && nk) {
			cl_shared_dir_set(&want, true);
			rc = tok_server_op_acquire(so->lent, next, &want, &got, NULL);
		} else {
			rc = srv_take(lent ? so->lent : so->own, &next, 1, dir ? DIR_TOKS : LINKED_TOKS);
		}
		if (rc)
			return rc;
	}
	/* The names' buckets last: their keys lie above every inode number. */
	next = 0;
	while ((next = next_above(keys, nk, next)) != UINT64_MAX)
		if ((rc = srv_take(so->lent, &next, 1, B(TOK_NAME))))
			return rc;
	return 0;
}

/*
 * The names a change in a shared directory adds or removes, as bucket keys
 * (@keys, 0 to 2 of them; docs/ARCHITECTURE.md, "Shared directories"), if
 * it may take the directory's tokens at the shared levels: a node's own
 * change (it lends) of a directory whose NAME it holds at SWRITE, within
 * the directory, that leaves the directory's link count alone (no new
 * directory, no rmdir, no rename over a directory: @victim_dir).  0
 * otherwise: the change takes the directory's tokens at WRITE, which
 * recalls every sharer.
 */
static int shared_keys(struct cl_ctx *cx, const struct vn_call *c, const uint64_t *dirs,
		       bool victim_dir, uint64_t *keys)
{
	const char *names[2] = { NULL, NULL };
	struct tok_set held;
	int n = 0;

	if (!c->lent || !c->node || c->node == cx->self_id)
		return 0;
	switch (c->op) {
	case VN_OP_MKNOD:
		if (!S_ISREG(c->u.mknod.mode) || c->u.mknod.target)
			return 0;
		names[0] = c->u.mknod.name;
		break;
	case VN_OP_UNLINK:
		if (c->u.unlink.is_dir)
			return 0;
		names[0] = c->u.unlink.name;
		break;
	case VN_OP_RENAME:
		if (dirs[0] != dirs[1] || c->u.rename.flags || victim_dir)
			return 0;
		names[0] = c->u.rename.name;
		names[1] = c->u.rename.newname;
		break;
	default:
		return 0;
	}
	tok_server_held(cx->ts, c->node, dirs[0], &held);
	if (held.level[TOK_NAME] != TOK_SWRITE)
		return 0;
	for (int i = 0; i < 2 && names[i]; i++) {
		keys[n] = cl_bucket_key(dirs[0], names[i]);
		if (!keys[n])
			return 0;
		if (n == 0 || keys[n] != keys[0])
			n++;
	}
	return n;
}

static struct cl_ctx *ctx_of(struct vn_bhv *self)
{
	return self->priv;
}

/* The inode @name of @dir names now, or 0; whether it is a directory (@is_dir, may be NULL). */
static uint64_t name_ino(struct cl_ctx *cx, uint64_t dir, const char *name, bool *is_dir)
{
	struct vn_attr a;

	if (meta_lookup(cx->st, dir, name, &a))
		return 0;
	if (is_dir)
		*is_dir = S_ISDIR(a.mode);
	return a.ino;
}

int cl_server_dmapi_excl(struct cl_ctx *cx, uint64_t ino, int (*fn)(void *arg), void *arg)
{
	struct tok_op *op;
	int rc = tok_server_op_begin(cx->ts, cx->self_id, NULL, &op);

	if (rc)
		return rc;
	rc = srv_take(op, &ino, 1, B(TOK_DMAPI));
	if (!rc)
		rc = fn(arg);
	tok_server_op_end(op);
	return rc;
}

/* An operation changing the inode itself. */
static int s_obj(struct vn_bhv *self, struct vnode *vn, struct vn_call *c, unsigned mask)
{
	struct cl_ctx *cx = ctx_of(self);
	uint64_t ino = vn_ino(vn);
	struct srv_ops so;
	int rc = srv_begin(cx, c, &so);

	if (rc)
		return rc;
	rc = srv_take(so.own, &ino, 1, mask);
	if (!rc)
		rc = vn_next(self, vn, c);
	srv_end(&so);
	return srv_moved(cx, c, rc);
}

static int s_setattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return s_obj(self, vn, c, (c->u.setattr.mask & VN_SET_SIZE) ? DATA_TOKS : OBJ_TOKS);
}

static int s_xattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return s_obj(self, vn, c, OBJ_TOKS);
}

static int s_fallocate(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	return s_obj(self, vn, c, DATA_TOKS);
}

/* SEEK_DATA/SEEK_HOLE must see every node's written extents. */
static int s_lseek(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_ctx *cx = ctx_of(self);
	uint64_t ino = vn_ino(vn);
	struct tok_set want, got;
	struct srv_ops so;
	int rc = srv_begin(cx, c, &so);

	if (rc)
		return rc;
	set_of(&want, B(TOK_EXTENT) | B(TOK_PAGE_DIRTY) | B(TOK_SIZE), TOK_READ);
	rc = tok_server_op_acquire(so.own, ino, &want, &got, NULL);
	if (!rc)
		rc = vn_next(self, vn, c);
	srv_end(&so);
	return srv_moved(cx, c, rc);
}

/*
 * The names of one bucket of a shared directory (a node that takes the
 * bucket learns them once, docs/ARCHITECTURE.md, "Shared directories"):
 * the directory's NAME at SWRITE (any node holding it at READ or WRITE
 * is recalled, sharers are not) and the bucket at READ (a node that
 * changes names there sends them first), the asker's grants lent.
 */
static int bucket_read(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_ctx *cx = ctx_of(self);
	struct cl_bucket_filter f = { c->u.readdir.fill, c->u.readdir.ctx, vn_ino(vn),
				 c->u.readdir.bucket };
	uint64_t dir, off, end;
	struct tok_set lent, want, got;
	struct tok_op *op;
	int rc;

	if (!cl_range_of(f.key, &dir, &off, &end) || dir != f.dir)
		return -EINVAL;
	set_of(&lent, B(TOK_NAME), TOK_READ);
	rc = tok_server_op_begin(cx->ts, c->node, &lent, &op);
	if (rc)
		return srv_moved(cx, c, rc);
	set_of(&want, B(TOK_NAME), TOK_SWRITE);
	rc = tok_server_op_acquire(op, f.dir, &want, &got, NULL);
	if (!rc)
		rc = tok_server_op_acquire(op, f.key, &lent, &got, NULL);
	if (!rc) {
		c->u.readdir.fill = cl_bucket_fill;
		c->u.readdir.ctx = &f;
		rc = vn_next(self, vn, c);
		c->u.readdir.fill = f.fill;
		c->u.readdir.ctx = f.ctx;
	}
	tok_server_op_end(op);
	return srv_moved(cx, c, rc);
}

/*
 * A lookup or a directory read answered from the store: a client that
 * holds the directory's NAME at WRITE may have created files there the
 * server has not seen (asynchronous creates), so NAME is taken at READ
 * first, which recalls it, and the recall sends those creates.  The asker's
 * own grant is lent (it sent its creates before this request).
 */
static int s_dirread(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_ctx *cx = ctx_of(self);
	uint64_t ino = vn_ino(vn);
	struct tok_set name, got;
	struct tok_op *op;
	int rc;

	if (c->op == VN_OP_READDIR && c->u.readdir.bucket)
		return bucket_read(self, vn, c);
	set_of(&name, B(TOK_NAME), TOK_READ);
	rc = tok_server_op_begin(cx->ts, c->node, &name, &op);
	if (rc)
		return srv_moved(cx, c, rc);
	rc = tok_server_op_acquire(op, ino, &name, &got, NULL);
	if (!rc)
		rc = vn_next(self, vn, c);
	tok_server_op_end(op);
	return srv_moved(cx, c, rc);
}

/*
 * The inodes an unlink or a rename finds at its names now (0: none), and
 * whether a rename would replace a directory (*@victim_dir).
 */
static void names_objs(struct cl_ctx *cx, const struct vn_call *c, const uint64_t *dirs,
		       uint64_t *objs, bool *victim_dir)
{
	*victim_dir = false;
	if (c->op == VN_OP_UNLINK) {
		objs[0] = name_ino(cx, dirs[0], c->u.unlink.name, NULL);
	} else if (c->op == VN_OP_RENAME) {
		objs[0] = name_ino(cx, dirs[0], c->u.rename.name, NULL);
		objs[1] = name_ino(cx, dirs[1], c->u.rename.newname, victim_dir);
	}
}

/*
 * This node's own call, restarted here after an attempt sent to a server
 * that died (vn_call.prior_reqid): 1 if that attempt was applied (its row
 * is in the store, committed with its change), with a create's attributes
 * in the call; 0 if it was not (apply the call now).
 */
static int applied_before(struct cl_ctx *cx, struct vnode *vn, struct vn_call *c)
{
	struct meta_req row = { 0 };

	if (!c->prior_reqid || c->node != cx->self_id ||
	    meta_req_find(cx->st, cx->self_id, c->prior_reqid, &row) != 1)
		return 0;
	if (c->op == VN_OP_MKNOD &&
	    (meta_lookup(cx->st, vn_ino(vn), c->u.mknod.name, c->u.mknod.attr) ||
	     c->u.mknod.attr->ino != row.ino))
		return 0;   /* the name went meanwhile: not the same file */
	return 1;
}

/*
 * A namespace operation on directories @dirs, also changing inodes @objs.
 * Which inodes the names denote is read before the tokens are taken (they
 * are taken in one order with the directories') and again once they are
 * held; if another operation changed them meanwhile, everything is let go
 * and taken again.
 */
static int s_names(struct vn_bhv *self, struct vnode *vn, struct vn_call *c, uint64_t *dirs,
		   int nd, uint64_t *objs, int no)
{
	struct cl_ctx *cx = ctx_of(self);
	uint64_t seen[2] = { 0, 0 }, keys[2];
	bool victim_dir = false;
	struct srv_ops so;
	int rc, nk;

	if (applied_before(cx, vn, c))
		return 0;

	for (;;) {
		rc = srv_begin(cx, c, &so);
		if (rc)
			return rc;
		if (no) {
			names_objs(cx, c, dirs, objs, &victim_dir);
			memcpy(seen, objs, (size_t)no * sizeof(*objs));
		}
		nk = shared_keys(cx, c, dirs, victim_dir, keys);
		rc = srv_take_names(&so, c, dirs, nd, objs, no, keys, nk);
		if (rc || no == 0)
			break;
		names_objs(cx, c, dirs, objs, &victim_dir);
		if (memcmp(seen, objs, (size_t)no * sizeof(*objs)) == 0)
			break;
		srv_end(&so);
	}
	if (!rc)
		rc = vn_next(self, vn, c);
	/*
	 * A node that creates a file holds its EXIST token from the answer on
	 * (tok_client_adopt), granted while the directory's tokens are still
	 * held: an unlink of the new name, from anywhere, cannot free the file
	 * before the node that created it has it.  With it come the READ
	 * tokens covering the attributes the answer carries, which the
	 * creator's open and stat use next (CL_CREATE_TOKS).
	 */
	if (rc == 0 && c->op == VN_OP_MKNOD && c->node && c->node != cx->self_id &&
	    c->u.mknod.attr)
		create_toks(cx, c->node, c->u.mknod.attr->ino);
	srv_end(&so);
	return srv_moved(cx, c, rc);
}

static int s_mknod(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	uint64_t dir = vn_ino(vn);

	return s_names(self, vn, c, &dir, 1, NULL, 0);
}

static int s_link(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	uint64_t dir = vn_ino(vn), obj = c->u.link.ino;

	return s_names(self, vn, c, &dir, 1, &obj, 1);
}

static int s_unlink(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	uint64_t dir = vn_ino(vn), obj = 0;

	return s_names(self, vn, c, &dir, 1, &obj, 1);
}

static int s_rename(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	uint64_t dirs[2] = { vn_ino(vn), c->u.rename.newdir }, objs[2] = { 0, 0 };

	return s_names(self, vn, c, dirs, 2, objs, 2);
}

/*
 * Free an unlinked inode only once no node holds its EXIST token.  Asking
 * the nodes takes a round trip to each, so an operation that dropped the
 * last name (unlink, rename) leaves it to the reclaimer thread.
 */
static int s_inactive(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_ctx *cx = ctx_of(self);
	struct vn_attr a;
	int rc;

	if (meta_getattr(cx->st, vn_ino(vn), &a) || a.nlink > 0)
		return 0;
	if (!cl_in_reclaimer) {
		srv_last_exist(cx, vn_ino(vn));
		return 0;
	}
	if (tok_server_recall_exist(cx->ts, vn_ino(vn)) != 0)
		return 0;   /* last_exist frees it later (or, out of memory, the next MDS start) */
	rc = vn_next(self, vn, c);
	tok_server_freed(cx->ts, vn_ino(vn));
	return rc;
}

static void s_destroy(struct vn_bhv *self, struct vnode *vn)
{
	(void)vn;
	free(self);
}

static const struct vn_ops cl_server_ops = {
	.name = "server",
	.position = VN_POS_SERVER,
	.op = {
		[VN_OP_SETATTR] = s_setattr,
		[VN_OP_LOOKUP] = s_dirread,
		[VN_OP_READDIR] = s_dirread,
		[VN_OP_MKNOD] = s_mknod,
		[VN_OP_LINK] = s_link,
		[VN_OP_UNLINK] = s_unlink,
		[VN_OP_RENAME] = s_rename,
		[VN_OP_SETXATTR] = s_xattr,
		[VN_OP_REMOVEXATTR] = s_xattr,
		[VN_OP_FALLOCATE] = s_fallocate,
		[VN_OP_LSEEK] = s_lseek,
		[VN_OP_INACTIVE] = s_inactive,
	},
	.destroy = s_destroy,
};

int cl_server_shape(struct cl_ctx *cx, struct vnode *vn)
{
	struct vn_bhv *b = calloc(1, sizeof(*b));
	int rc;

	if (!b)
		return -ENOMEM;
	b->ops = &cl_server_ops;
	b->priv = cx;
	rc = vn_bhv_insert(vn, b);
	if (rc)
		free(b);
	return rc;
}

/* ---- requests of remote nodes ------------------------------------------- */

static bool want_attr(const struct tok_set *s)
{
	return s->level[TOK_ATTR] || s->level[TOK_TIMES] || s->level[TOK_SIZE];
}

/*
 * State @node sends back: its times win if later, its size replaces ours,
 * or only grows it if the node holds SIZE at SHARED_WRITE (one of several
 * direct writers: the largest size wins).
 */
static void apply_state(struct cl_ctx *cx, uint32_t node, uint64_t ino, const Cxfs__Timespec *at,
			const Cxfs__Timespec *mt, const Cxfs__Timespec *ct, const uint64_t *size)
{
	struct timespec a, m, c;
	struct tok_set held;

	if (!at && !mt && !ct && !size)
		return;
	tok_server_held(cx->ts, node, ino, &held);
	/*
	 * Only a writer's state: a return the server that died had taken
	 * (tokens_reconstruct in cl_role.c) comes again without the tokens,
	 * and its state is older than the holder's since.  A replay runs
	 * before any grant is back and applies what the old server applied.
	 */
	if (!cl_unsafe_replaying()) {
		if (held.level[TOK_SIZE] < TOK_SWRITE)
			size = NULL;
		if (held.level[TOK_TIMES] < TOK_SWRITE)
			at = mt = ct = NULL;
		if (!at && !mt && !ct && !size)
			return;
	}
	clw_ts_from_pb(at, &a);
	clw_ts_from_pb(mt, &m);
	clw_ts_from_pb(ct, &c);
	(void)meta_apply_state(cx->st, ino, at ? &a : NULL, mt ? &m : NULL, ct ? &c : NULL, size,
			       held.level[TOK_SIZE] == TOK_SWRITE);
}

static int h_acquire(struct cl_ctx *cx, uint32_t node, struct rpc_req *req,
		     const Cxfs__TokenAcquire *m)
{
	Cxfs__TokenGrant g = CXFS__TOKEN_GRANT__INIT;
	Cxfs__TokenState buf[TOK_NTOKENS], *ptrs[TOK_NTOKENS];
	Cxfs__DmRegion regs[DM_MAX_REGIONS], *rptrs[DM_MAX_REGIONS];
	Cxfs__Attr pa = CXFS__ATTR__INIT;
	Cxfs__Timespec ts[4];
	struct tok_set want, got;
	struct tok_state in = { 0 }, out;
	struct vn_attr a;
	int rc;

	rc = clw_toks_from_pb(m->want, m->n_want, &want);
	if (rc)
		return rc;
	apply_state(cx, node, m->ino, m->atime, m->mtime, m->ctime, m->has_size ? &m->size : NULL);
	rc = tok_server_acquire(cx->ts, node, m->ino, &want, &in, &got, &out);
	if (rc == 0 && want_attr(&want)) {
		rc = meta_getattr(cx->st, m->ino, &a);
		if (rc)
			tok_server_returned(cx->ts, node, m->ino, &got, NULL);
		else {
			clw_attr_to_pb(&a, &pa, ts);
			g.attr = &pa;
		}
	}
	g.err = rc;
	if (rc == 0) {
		g.n_granted = clw_toks_to_pb(&got, buf, ptrs);
		g.granted = ptrs;
		if (out.valid & TOK_ST_IOEXCL) {
			g.has_ioexcl = 1;
			g.ioexcl = out.ioexcl;
		}
		if (got.level[TOK_DMAPI])
			cl_dm_grant(cx, m->ino, &g, regs, rptrs);
	}
	return rpc_reply(req, CXFS__MSG_TYPE__TOKEN_GRANT, &g.base);
}

static int h_return(struct cl_ctx *cx, uint32_t node, struct rpc_req *req,
		    const Cxfs__TokenReturn *m)
{
	Cxfs__StatusReply r = CXFS__STATUS_REPLY__INIT;
	struct tok_set set;
	int rc = clw_toks_from_pb(m->held, m->n_held, &set);

	if (rc)
		return rc;
	/* Its state first, while the node still holds what it returns. */
	if (!(m->has_refused && m->refused))
		apply_state(cx, node, m->ino, m->atime, m->mtime, m->ctime, m->has_size ? &m->size : NULL);
	take_return(cx, node, m, &set);
	if (rpc_req_is_oneway(req))
		return 0;
	cl_unsafe_stamp(&r.base);
	return rpc_reply(req, CXFS__MSG_TYPE__STATUS_REPLY, &r.base);
}

/* Log this one of the events @count counts?  The first, then one in 1024. */
static bool log_sampled(atomic_uint *count)
{
	return atomic_fetch_add(count, 1) % 1024 == 0;
}

/*
 * Note in the ledger the unwritten runs of @maps handed to @node: fresh
 * (its own allocation) where @before, the map before its ALLOC, had holes.
 * A run the ledger cannot take only leaves its blocks without a known
 * owner (cl_ledger_check lets any node publish those).
 */
static void ledger_note(struct cl_ctx *cx, uint32_t node, uint64_t ino, const struct meta_map *maps,
			int n, const struct meta_map *before, int nbefore)
{
	for (int i = 0; i < n; i++) {
		uint64_t p = maps[i].fblk, end = maps[i].fblk + maps[i].nblk;

		while (maps[i].state == META_MAP_UNWRITTEN && p < end) {
			struct cl_ledger_run r = { .ino = ino, .fblk = p, .nblk = end - p,
						   .pblk = maps[i].pblk + (p - maps[i].fblk) };
			int rc;

			for (int k = 0; k < nbefore; k++)
				if (before[k].fblk <= p && p < before[k].fblk + before[k].nblk) {
					r.fresh = before[k].state == META_MAP_HOLE;
					if (before[k].fblk + before[k].nblk < end)
						r.nblk = before[k].fblk + before[k].nblk - p;
					break;
				}
			rc = cl_ledger_add(cx->ledger, node, &r);
			if (rc && log_sampled(&ledger_refusals))
				fprintf(stderr, "cxfsd: the ledger cannot note blocks [%llu, +%llu) of inode "
					"%llu handed to node %s: %s\n", (unsigned long long)r.fblk,
					(unsigned long long)r.nblk, (unsigned long long)ino,
					cl_peer_name(cx, node), strerror(-rc));
			p += r.nblk;
		}
	}
}

/*
 * A node asked for the blocks of a file that is gone: it has the file open
 * only if it holds EXIST, and then the file may not be gone.  Logged
 * (sampled) with what the node holds, for the diagnosis.
 */
static void gone_asked(struct cl_ctx *cx, uint32_t node, uint64_t ino, const char *what)
{
	struct tok_set held;

	if (!log_sampled(&gone_asks))
		return;
	tok_server_held(cx->ts, node, ino, &held);
	fprintf(stderr, "cxfsd: node %s asked to %s inode %llu, which is gone; it holds EXIST %s\n",
		cl_peer_name(cx, node), what, (unsigned long long)ino,
		held.level[TOK_EXIST] != TOK_NONE ? "(a freed file it still uses)"
						  : "not (it no longer uses the file)");
}

/*
 * Reply with the runs of [fblk, fblk+count) of @ino (at most CL_MAP_MAX),
 * noting the unwritten ones as handed to @node (see ledger_note).
 */
static int reply_map(struct cl_ctx *cx, uint32_t node, struct rpc_req *req, Cxfs__MsgType type,
		     uint64_t ino, uint64_t fblk, uint64_t count, int err,
		     const struct meta_map *before, int nbefore)
{
	struct meta_map *maps = NULL;
	Cxfs__Extent *ext = NULL, **ptrs = NULL;
	Cxfs__ExtentMapReply mr = CXFS__EXTENT_MAP_REPLY__INIT;
	Cxfs__AllocReply ar = CXFS__ALLOC_REPLY__INIT;
	struct vn_attr a;
	int n = 0, rc = err;

	if (!rc) {
		maps = calloc(CL_MAP_MAX, sizeof(*maps));
		ext = calloc(CL_MAP_MAX, sizeof(*ext));
		ptrs = calloc(CL_MAP_MAX, sizeof(*ptrs));
		rc = maps && ext && ptrs ? 0 : -ENOMEM;
	}
	if (!rc)
		rc = meta_getattr(cx->st, ino, &a);
	if (rc == -ENOENT)
		gone_asked(cx, node, ino, type == CXFS__MSG_TYPE__EXTENT_MAP_REPLY ? "map" : "allocate in");
	if (!rc) {
		n = meta_map_read(cx->st, ino, fblk, count, maps, CL_MAP_MAX);
		rc = n < 0 ? n : 0;
	}
	if (!rc)
		ledger_note(cx, node, ino, maps, n, before, nbefore);
	for (int i = 0; !rc && i < n; i++) {
		cxfs__extent__init(&ext[i]);
		ext[i].file_block = maps[i].fblk;
		ext[i].volume_block = maps[i].pblk;
		ext[i].count = maps[i].nblk;
		ext[i].state = (Cxfs__ExtentState)maps[i].state;
		ptrs[i] = &ext[i];
	}
	if (type == CXFS__MSG_TYPE__EXTENT_MAP_REPLY) {
		mr.err = rc;
		if (!rc) {
			mr.n_extents = (size_t)n;
			mr.extents = ptrs;
			mr.has_size = 1;
			mr.size = a.size;
			mr.has_block_size = 1;
			mr.block_size = cx->bs;
		}
		rc = rpc_reply(req, type, &mr.base);
	} else {
		ar.err = rc;
		if (!rc) {
			ar.n_extents = (size_t)n;
			ar.extents = ptrs;
		}
		cl_unsafe_stamp(&ar.base);
		rc = rpc_reply(req, type, &ar.base);
	}
	free(maps);
	free(ext);
	free(ptrs);
	return rc;
}

/* Blocks of the largest file, so ranges from the wire cannot overflow. */
#define CL_MAX_FBLK (META_MAX_FILE_SIZE / 4096)

static int h_map(struct cl_ctx *cx, uint32_t node, struct rpc_req *req,
		 const Cxfs__ExtentMapReq *m)
{
	uint64_t count = m->count;

	if (m->file_block > CL_MAX_FBLK)
		return -EFBIG;
	if (count > CL_MAX_FBLK - m->file_block)
		count = CL_MAX_FBLK - m->file_block;
	return reply_map(cx, node, req, CXFS__MSG_TYPE__EXTENT_MAP_REPLY, m->ino, m->file_block,
			 count, 0, NULL, 0);
}

/* A server operation holding EXTENT WRITE on @ino, with the node's lend. */
static int extent_op(struct cl_ctx *cx, uint32_t node, uint64_t ino, Cxfs__TokenState *const *lent,
		     size_t nlent, struct tok_op **op)
{
	struct tok_set l, want, got;
	int rc = clw_toks_from_pb(lent, nlent, &l);

	if (rc)
		return rc;
	rc = tok_server_op_begin(cx->ts, node, &l, op);
	if (rc)
		return rc;
	tok_set_clear(&want);
	tok_set_add(&want, TOK_EXTENT, TOK_WRITE);
	rc = tok_server_op_acquire(*op, ino, &want, &got, NULL);
	if (rc)
		tok_server_op_end(*op);
	return rc;
}

static int h_alloc(struct cl_ctx *cx, uint32_t node, struct rpc_req *req, const Cxfs__AllocReq *m)
{
	uint64_t count = m->count, pre = m->has_prealloc ? m->prealloc : 0, avail;
	struct meta_map *before;
	struct tok_op *op;
	int nbefore, rc;

	if (count == 0 || m->file_block > CL_MAX_FBLK || count > CL_MAX_FBLK - m->file_block)
		return -EINVAL;
	if (pre > CL_PREALLOC_MAX)
		pre = CL_PREALLOC_MAX;
	if (pre > CL_MAX_FBLK - m->file_block - count)
		pre = CL_MAX_FBLK - m->file_block - count;
	/*
	 * Speculative blocks take at most a share of the free space, so they
	 * never fill the volume by themselves (blocks past a file's end stay
	 * its own until it is truncated); XFS throttles its speculative
	 * preallocation as free space drops in the same spirit.
	 */
	avail = meta_store_avail_blocks(cx->st) / CL_PREALLOC_SHARE;
	if (pre > avail)
		pre = avail;
	before = calloc(CL_MAP_MAX, sizeof(*before));
	if (!before)
		return -ENOMEM;
	rc = extent_op(cx, node, m->ino, m->lent, m->n_lent, &op);
	if (rc) {
		free(before);
		return rc;
	}
	/* The holes before are what this ALLOC makes: the node's own blocks. */
	nbefore = meta_map_read(cx->st, m->ino, m->file_block, count + pre, before, CL_MAP_MAX);
	if (nbefore < 0)
		nbefore = 0;
	rc = meta_fallocate(cx->st, m->ino, FALLOC_FL_KEEP_SIZE, m->file_block * cx->bs,
			    (count + pre) * cx->bs);
	if (rc == -ENOSPC && pre) {
		pre = 0;
		rc = meta_fallocate(cx->st, m->ino, FALLOC_FL_KEEP_SIZE, m->file_block * cx->bs,
				    count * cx->bs);
	}
	rc = reply_map(cx, node, req, CXFS__MSG_TYPE__ALLOC_REPLY, m->ino, m->file_block, count + pre,
		       rc, before, nbefore);
	tok_server_op_end(op);
	free(before);
	return rc;
}

/*
 * Are file blocks [fblk, fblk+n) of @ino, in the store, unwritten or
 * written blocks of the file at data blocks [pblk, ...)?  0, -EPERM, or the
 * store's error.
 */
static int store_holds(struct cl_ctx *cx, uint64_t ino, uint64_t fblk, uint64_t n, uint64_t pblk)
{
	struct meta_map maps[64];
	uint64_t p = fblk, end = fblk + n;

	while (p < end) {
		uint64_t from = p;
		int k = meta_map_read(cx->st, ino, p, end - p, maps, 64);

		if (k <= 0)
			return k < 0 ? k : -EPERM;
		for (int i = 0; i < k; i++) {
			if (maps[i].state == META_MAP_HOLE || maps[i].pblk != pblk + (maps[i].fblk - fblk))
				return -EPERM;
			p = maps[i].fblk + maps[i].nblk;
		}
		if (p <= from)
			return -EIO;        /* the store's runs did not move on */
	}
	return 0;
}

/*
 * May @node publish the runs of WRITE_DONE @m (see the top)?  0, or the
 * reason to refuse it whole: -EINVAL (out of any file's range), -EPERM
 * (not blocks handed to it, or not the file's at those places).  Called
 * with EXTENT held at WRITE, so the map does not change meanwhile.
 */
static int written_ok(struct cl_ctx *cx, uint32_t node, const Cxfs__WriteDone *m)
{
	if (m->has_size && m->size > META_MAX_FILE_SIZE)
		return -EINVAL;
	for (size_t i = 0; i < m->n_written; i++) {
		const Cxfs__Extent *e = m->written[i];
		int rc;

		if (e->count == 0 || e->file_block > CL_MAX_FBLK ||
		    e->count > CL_MAX_FBLK - e->file_block || e->volume_block > UINT64_MAX - e->count)
			return -EINVAL;
		rc = cl_ledger_check(cx->ledger, node, m->ino, e->file_block, e->count,
				     e->volume_block);
		if (!rc)
			rc = store_holds(cx, m->ino, e->file_block, e->count, e->volume_block);
		if (rc) {
			fprintf(stderr, "cxfsd: refused a WRITE_DONE of node %s: blocks [%llu, +%llu) of "
				"inode %llu at data block %llu are not %s: %s\n", cl_peer_name(cx, node),
				(unsigned long long)e->file_block, (unsigned long long)e->count,
				(unsigned long long)m->ino, (unsigned long long)e->volume_block,
				rc == -EPERM ? "blocks handed to it there" : "readable",
				strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int h_write_done(struct cl_ctx *cx, uint32_t node, struct rpc_req *req,
			const Cxfs__WriteDone *m)
{
	Cxfs__AttrReply r = CXFS__ATTR_REPLY__INIT;
	struct tok_set lent;
	struct tok_op *op;
	int rc;

	/* Only converting extents changes the map that others cache. */
	tok_set_clear(&lent);
	if (m->n_written)
		tok_set_add(&lent, TOK_EXTENT, TOK_READ);
	rc = tok_server_op_begin(cx->ts, node, &lent, &op);
	if (rc)
		return rc;
	if (m->n_written) {
		struct tok_set want, got;

		tok_set_clear(&want);
		tok_set_add(&want, TOK_EXTENT, TOK_WRITE);
		rc = tok_server_op_acquire(op, m->ino, &want, &got, NULL);
	}
	if (!rc)
		rc = written_ok(cx, node, m);
	for (size_t i = 0; !rc && i < m->n_written; i++) {
		const Cxfs__Extent *e = m->written[i];

		rc = meta_map_write(cx->st, m->ino, e->file_block, e->count, e->volume_block, 0);
		if (!rc)
			cl_ledger_clear(cx->ledger, m->ino, e->file_block, e->count);
	}
	if (!rc)
		apply_state(cx, node, m->ino, NULL, m->mtime, m->mtime, m->has_size ? &m->size : NULL);
	tok_server_op_end(op);
	atomic_fetch_add(&cx->stats.write_dones, 1);
	r.err = rc;
	if (rpc_req_is_oneway(req))
		return 0;
	cl_unsafe_stamp(&r.base);
	return rpc_reply(req, CXFS__MSG_TYPE__ATTR_REPLY, &r.base);
}

/* A remote node's vnode operation, below this node's own client behavior. */
static int srv_exec(void *arg, uint64_t ino, struct vn_call *c)
{
	struct cl_ctx *cx = arg;
	struct vnode *vn;
	int rc;

	/* Internal flags never come from the network. */
	if (c->op == VN_OP_FALLOCATE && (c->u.fallocate.mode & ~CL_FALLOC_REMOTE)) {
		fprintf(stderr, "cxfsd: refused a fallocate of inode %llu from node %s: mode %#x\n",
			(unsigned long long)ino, cl_peer_name(cx, c->node), (unsigned)c->u.fallocate.mode);
		return -EOPNOTSUPP;
	}
	rc = vn_get(cx->vt, ino, &vn);
	if (rc)
		return rc;
	rc = vn_call_below(vn, VN_POS_CLIENT, c);
	vn_put(vn, 1);
	/* The asker lent its tokens on the directory: they still cover this. */
	if (rc == 0 && c->dir_attr && meta_getattr(cx->st, ino, c->dir_attr) == 0)
		c->dir_attr_set = 1;
	return rc;
}

/* Inode numbers for @node's own creates ("Asynchronous creates"). */
static int h_ino_grant(struct cl_ctx *cx, uint32_t node, struct rpc_req *req,
		       const Cxfs__InoGrantReq *m)
{
	Cxfs__InoGrantReply r = CXFS__INO_GRANT_REPLY__INIT;
	uint32_t n = m->count < CL_INO_GRANT_MAX ? m->count : CL_INO_GRANT_MAX;
	uint64_t first = 0, gen = 0;

	(void)node;
	r.err = n ? meta_ino_reserve(cx->st, n, &first, &gen) : -EINVAL;
	if (!r.err) {
		r.has_first = r.has_count = r.has_gen = 1;
		r.first = first;
		r.count = n;
		r.gen = gen;
	}
	return rpc_reply(req, CXFS__MSG_TYPE__INO_GRANT_REPLY, &r.base);
}

/* One reply of a batch's request, packed into the slot it was made for. */
struct batch_slot {
	uint32_t type;
	ProtobufCBinaryData body;
	bool moved;           /* answered "ask the new server" */
};

static void batch_reply(void *arg, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	struct batch_slot *sl = arg;
	int64_t len = rpc_msg_pack(type, msg, NULL, 0);

	if (len < 0 || !(sl->body.data = malloc((size_t)len ? (size_t)len : 1)))
		return;
	sl->body.len = (size_t)rpc_msg_pack(type, msg, sl->body.data, (size_t)len);
	sl->type = type;
	sl->moved = cl_mds_moved(0, type, (ProtobufCMessage *)msg);
}

/*
 * A node's queued creates, unlinks and renames, applied one after the other, each through the
 * handlers as if it came alone (its id, applied once).  Checked whole
 * first: a malformed batch changes nothing.  A request cut short because
 * the server moves ends the batch early: the node sends it all again and
 * the ones applied are answered again.
 */
static int h_batch(struct cl_ctx *cx, uint32_t node, struct rpc_req *req, const Cxfs__BatchReq *m)
{
	Cxfs__BatchReply r = CXFS__BATCH_REPLY__INIT;
	size_t n = m->n_types;
	ProtobufCMessage **msgs = NULL;
	struct batch_slot *sl = NULL;
	uint32_t *tv = NULL;
	ProtobufCBinaryData *bv = NULL;
	int rc = 0;

	if (n != m->n_bodies || n == 0 || n > CL_BATCH_MAX) {
		r.err = -EPROTO;
		goto reply;
	}
	msgs = calloc(n, sizeof(*msgs));
	sl = calloc(n, sizeof(*sl));
	tv = calloc(n, sizeof(*tv));
	bv = calloc(n, sizeof(*bv));
	if (!msgs || !sl || !tv || !bv) {
		r.err = -ENOMEM;
		goto reply;
	}
	for (size_t i = 0; i < n && !r.err; i++)
		if ((m->types[i] != CXFS__MSG_TYPE__MKNOD_REQ &&
		     m->types[i] != CXFS__MSG_TYPE__UNLINK_REQ &&
		     m->types[i] != CXFS__MSG_TYPE__RENAME_REQ) ||
		    rpc_msg_unpack((Cxfs__MsgType)m->types[i], m->bodies[i].data, m->bodies[i].len,
				   &msgs[i]))
			r.err = -EPROTO;
	if (r.err) {
		fprintf(stderr, "cxfsd: refused a batch of %zu requests from node %s: malformed\n", n,
			cl_peer_name(cx, node));
		goto reply;
	}
	for (size_t i = 0; i < n; i++) {
		Cxfs__MsgType t = (Cxfs__MsgType)m->types[i];
		struct rpc_req *one = rpc_req_local(t, batch_reply, &sl[i]);

		rc = one ? cl_server_handle(cx, node, one, t, msgs[i]) : -ENOMEM;
		rpc_req_local_free(one);
		if (rc == -RPC_EEARLY || rc == -TOK_EEARLY || sl[i].moved) {
			rc = -RPC_EEARLY;
			goto out;         /* answered "early": the node sends it all again */
		}
		if (!sl[i].body.data) {
			Cxfs__ErrorReply e = CXFS__ERROR_REPLY__INIT;

			e.err = rc ? rc : -EIO;
			batch_reply(&sl[i], CXFS__MSG_TYPE__ERROR_REPLY, &e.base);
			if (!sl[i].body.data) {
				r.err = -ENOMEM;
				goto reply;
			}
		}
		tv[i] = sl[i].type;
		bv[i] = sl[i].body;
	}
	r.n_types = r.n_bodies = n;
	r.types = tv;
	r.bodies = bv;
reply:
	rc = rpc_reply(req, CXFS__MSG_TYPE__BATCH_REPLY, &r.base);
out:
	for (size_t i = 0; i < n; i++) {
		if (msgs && msgs[i])
			rpc_msg_free(msgs[i]);
		if (sl)
			free(sl[i].body.data);
	}
	free(msgs);
	free(sl);
	free(tv);
	free(bv);
	return rc;
}

/* One request of another node (or replayed as its): the handler of its type. */
static int handle(struct cl_ctx *cx, uint32_t node, struct rpc_req *req, Cxfs__MsgType type,
		  const ProtobufCMessage *msg)
{
	switch (type) {
	case CXFS__MSG_TYPE__TOKEN_ACQUIRE:
		return h_acquire(cx, node, req, (const Cxfs__TokenAcquire *)msg);
	case CXFS__MSG_TYPE__TOKEN_RETURN:
		return h_return(cx, node, req, (const Cxfs__TokenReturn *)msg);
	case CXFS__MSG_TYPE__EXTENT_MAP_REQ:
		return h_map(cx, node, req, (const Cxfs__ExtentMapReq *)msg);
	case CXFS__MSG_TYPE__ALLOC_REQ:
		atomic_fetch_add(&cx->stats.allocs, 1);
		return h_alloc(cx, node, req, (const Cxfs__AllocReq *)msg);
	case CXFS__MSG_TYPE__WRITE_DONE:
		return h_write_done(cx, node, req, (const Cxfs__WriteDone *)msg);
	case CXFS__MSG_TYPE__INO_GRANT_REQ:
		return h_ino_grant(cx, node, req, (const Cxfs__InoGrantReq *)msg);
	case CXFS__MSG_TYPE__BATCH_REQ:
		return h_batch(cx, node, req, (const Cxfs__BatchReq *)msg);
	case CXFS__MSG_TYPE__LEG_FAILED:
		return cl_mirror_leg_failed(cx, node, req, (const Cxfs__LegFailed *)msg);
	case CXFS__MSG_TYPE__DRL_RESYNC:
		return cl_mirror_drl_resync(cx, node, req, (const Cxfs__DrlResync *)msg);
	default:
		if (clw_is_vnode_req(type)) {
			atomic_fetch_add(&cx->stats.forwards, 1);
			return clw_serve(req, type, msg, node, srv_exec, cx);
		}
		return -EOPNOTSUPP;
	}
}

int cl_server_handle(struct cl_ctx *cx, uint32_t node, struct rpc_req *req, Cxfs__MsgType type,
		     const ProtobufCMessage *msg)
{
	struct cl_usrv us;
	int rc = cl_unsafe_enter(cx, node, req, type, msg, &us);

	if (rc)
		return rc > 0 ? 0 : rc;     /* applied before: answered again */
	rc = handle(cx, node, req, type, msg);
	cl_unsafe_leave(&us);
	return rc;
}

int cl_reclaimer_start(struct cl_ctx *cx)
{
	int rc;

	cx->rstop = false;
	rc = pthread_create(&cx->reclaimer, NULL, reclaimer, cx);
	if (rc)
		return -rc;
	cx->reclaimer_started = true;
	/* The server's waits can be shown while it serves (cl_wait.c). */
	cl_waits_server(cx, cx->ts);
	return 0;
}

void cl_server_publish(struct cl_ctx *cx, struct tok_server *ts)
{
	pthread_mutex_lock(&cx->store_mu);
	cx->ts = ts;
	pthread_mutex_unlock(&cx->store_mu);
}

int cl_server_start(struct cl_ctx *cx, bool reclaim)
{
	struct tok_server *ts;
	int rc;

	/* What a ledger knew from an earlier time as server is stale. */
	if (cx->ledger)
		cl_ledger_reset(cx->ledger);
	else if ((rc = cl_ledger_create(CL_MAX_NODES, CL_LEDGER_MAX_RUNS, &cx->ledger)))
		return rc;
	rc = tok_server_create(&srv_tok_ops, cx, &ts);
	if (rc)
		return rc;
	cl_server_publish(cx, ts);
	if (!reclaim)
		return 0;
	rc = cl_reclaimer_start(cx);
	if (rc) {
		cl_server_publish(cx, NULL);
		tok_server_destroy(ts);
	}
	return rc;
}

void cl_server_stop(struct cl_ctx *cx)
{
	cl_waits_server(cx, NULL);
	if (!cx->reclaimer_started)
		return;
	pthread_mutex_lock(&cx->rmu);
	cx->rstop = true;
	cx->nrq = 0;
	pthread_cond_signal(&cx->rcv);
	pthread_mutex_unlock(&cx->rmu);
	pthread_join(cx->reclaimer, NULL);
	cx->reclaimer_started = false;
}
