/*
 * cl_role.c - the node's role (server or client of its filesystem) as the
 * engines of src/relocate change it, given to them as callout tables
 * (relocate/rl.h): they never reach into this layer otherwise.
 *
 *   1. rewrites: announcing a rewrite of every vnode, the two chain shapes
 *   2. the server's parts: open the store, serve, stop serving
 *   3. the node table (struct rl_node_ops)
 *   4. the subsystems' callouts: tokens, locks (this node's own locks are
 *      kept in a shadow manager so a survivor can report them), requests
 *
 * Lock order: cl_role.vmu is a leaf beside the vnode heads: a vnode's
 * rewrite is announced with it held, never the other way round; shaping is
 * blocked (a flag, see cl_shape_block) from the announcement until the new
 * shape serves.  The callouts take the cluster's locks as cl_i.h orders.
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xvm/xvm.h"
#include "dmapi/dm_fs.h"
#include "membership/cms_config.h"
#include "meta/meta_sb.h"
#include "relocate/rl.h"
#include "vnode/vn_lock.h"
#include "vnode/vn_meta.h"

struct cl_role {
	pthread_mutex_t vmu;            /* protects vns, nvns, vcap */
	struct vnode **vns;             /* vnodes with a rewrite announced by us */
	size_t nvns, vcap;
	bool announced;                 /* rewrites announced, shaping blocked */
	/* While the server quiesces: a thread keeps waking token and DMAPI waits. */
	atomic_bool poke_stop;
	bool poking;
	pthread_t poker;
};

/* ---- 1. rewrites and shapes ------------------------------------------------- */

static void announce_one(struct vnode *vn, void *arg)
{
	struct cl_role *r = arg;

	pthread_mutex_lock(&r->vmu);
	if (r->nvns == r->vcap) {
		size_t cap = r->vcap ? r->vcap * 2 : 4096;
		struct vnode **v = realloc(r->vns, cap * sizeof(*v));

		if (!v) {
			pthread_mutex_unlock(&r->vmu);
			return;   /* not announced: its operations finish on the old chain first */
		}
		r->vns = v;
		r->vcap = cap;
	}
	vn_hold(vn);
	vn_rewrite_begin(vn);
	r->vns[r->nvns++] = vn;
	pthread_mutex_unlock(&r->vmu);
}

static void n_announce(void *arg)
{
	struct cl_ctx *cx = arg;
	struct cl_role *r = cx->role;

	if (r->announced)
		return;
	cl_shape_block(cx);
	vn_table_walk(cx->vt, announce_one, r);
	r->announced = true;
}

/* Take the behaviors at @pos off @vn's chain and free them. */
static void drop_bhv(struct vnode *vn, enum vn_position pos)
{
	struct vn_bhv *b = vn_bhv_find(vn, pos);

	if (b && vn_bhv_remove(vn, b) == 0 && b->ops->destroy)
		b->ops->destroy(b, vn);
}

struct reshape {
	struct cl_ctx *cx;
	int rc;
};

/*
 * The node's state of the inode (locks used, unpublished writes) outlives the
 * behaviors that hold it, so it is held across the swap.
 */
static void to_client(struct vnode *vn, void *arg)
{
	struct reshape *r = arg;
	struct cl_inode *ci = cl_inode_get(r->cx, vn_ino(vn), false);
	int rc;

	drop_bhv(vn, VN_POS_CLIENT);
	drop_bhv(vn, VN_POS_SERVER);
	drop_bhv(vn, VN_POS_META);
	rc = cl_client_shape(r->cx, vn);
	if (rc && !r->rc)
		r->rc = rc;
	if (ci)
		cl_inode_put(r->cx, ci);
}

static void to_server(struct vnode *vn, void *arg)
{
	struct reshape *r = arg;
	struct cl_inode *ci = cl_inode_get(r->cx, vn_ino(vn), false);
	int rc;

	drop_bhv(vn, VN_POS_CLIENT);
	rc = vn_meta_shape(r->cx->mfs, vn);
	if (!rc)
		rc = cl_server_shape(r->cx, vn);
	if (!rc)
		rc = cl_local_shape(r->cx, vn);
	if (rc && !r->rc)
		r->rc = rc;
	if (ci)
		cl_inode_put(r->cx, ci);
}

static void fix_shape(struct vnode *vn, void *arg)
{
	struct cl_ctx *cx = arg;
	struct reshape r = { cx, 0 };

	if ((vn_bhv_find(vn, VN_POS_SERVER) != NULL) == (bool)cx->is_server)
		return;
	vn_rewrite_begin(vn);
	(cx->is_server ? to_server : to_client)(vn, &r);
	vn_rewrite_end(vn);
	if (r.rc)
		fprintf(stderr, "cxfsd: inode %llu could not take its new shape: %s\n",
			(unsigned long long)vn_ino(vn), strerror(-r.rc));
}

/* End the rewrites; the vnodes run their new chains. */
static void n_release(void *arg)
{
	struct cl_ctx *cx = arg;
	struct cl_role *r = cx->role;
	struct vnode **v;
	size_t n;

	if (!r->announced)
		return;
	/*
	 * A vnode that was being built when the rewrites were announced (it
	 * became live just after, so the walk missed it) may have the old
	 * shape: give it the node's shape before shaping resumes.
	 */
	vn_table_walk(cx->vt, fix_shape, cx);
	pthread_mutex_lock(&r->vmu);
	v = r->vns;
	n = r->nvns;
	r->vns = NULL;
	r->nvns = r->vcap = 0;
	pthread_mutex_unlock(&r->vmu);
	for (size_t i = 0; i < n; i++)
		vn_rewrite_end(v[i]);
	r->announced = false;
	cl_shape_unblock(cx);
	for (size_t i = 0; i < n; i++)
		vn_put(v[i], 1);
	free(v);
}

/* Every announced vnode gets the chain of the node's (new) role. */
static int reshape_all(struct cl_ctx *cx, bool server)
{
	struct cl_role *r = cx->role;
	struct reshape rs = { cx, 0 };

	pthread_mutex_lock(&r->vmu);
	for (size_t i = 0; i < r->nvns; i++)
		(server ? to_server : to_client)(r->vns[i], &rs);
	pthread_mutex_unlock(&r->vmu);
	return rs.rc;
}

/* ---- 2. the server's parts -------------------------------------------------- */

static void n_set_server(void *arg, uint32_t server, struct rpc_chan *ch, bool old_dead)
{
	struct cl_ctx *cx = arg;
	struct rpc_chan *old;

	pthread_mutex_lock(&cx->mu);
	old = cx->mds;
	cx->mds = ch;
	cx->server_id = server;
	pthread_mutex_unlock(&cx->mu);
	atomic_store(&cx->elected, 0);
	/* Before the gate opens: maps cached here may predate its settle (cl_i.h). */
	atomic_fetch_add(&cx->map_epoch, 1);
	/* A revive of the old server's leaves no write here waiting. */
	cl_mirror_unbusy(cx);
	if (old) {
		/* Calls still waiting on a dead server go to the new one. */
		if (old_dead)
			rpc_chan_abort(old);
		rpc_chan_put(old);
	}
}

static void n_elected(void *arg, uint32_t node)
{
	struct cl_ctx *cx = arg;

	atomic_store(&cx->elected, node);
}

static int n_open_store(void *arg, char *err, size_t errlen)
{
	struct cl_ctx *cx = arg;
	struct meta_store_opts so = cx->store_opts;
	int rc;

	/* Files unlinked while open stay: nodes may still use them. */
	so.keep_orphans = 1;
	rc = meta_store_open(cx->dev, &so, &cx->st, err, errlen);
	if (rc)
		return rc;
	rc = vn_meta_fs_create(cx->st, &cx->mfs);
	if (rc) {
		snprintf(err, errlen, "cannot start the meta behaviors: %s", strerror(-rc));
		goto out_store;
	}
	vn_meta_fs_set_table(cx->mfs, cx->vt);
	/* Files that lose their last name wait until every node's EXIST is back (settle). */
	rc = cl_server_start(cx, false);
	if (rc) {
		snprintf(err, errlen, "cannot start the token server: %s", strerror(-rc));
		goto out_mfs;
	}
	return 0;
out_mfs:
	vn_meta_fs_destroy(cx->mfs);
	cx->mfs = NULL;
out_store:
	meta_store_close(cx->st);
	cx->st = NULL;
	return rc;
}

static void n_unserve(void *arg)
{
	struct cl_ctx *cx = arg;

	cx->is_server = false;
	if (cx->ts) {
		struct tok_server *ts = cx->ts;

		cl_server_stop(cx);
		cl_server_publish(cx, NULL);
		tok_server_destroy(ts);
	}
	if (cx->mfs) {
		vn_meta_fs_destroy(cx->mfs);
		cx->mfs = NULL;
	}
	if (cx->st) {
		struct meta_store *st = cx->st;

		pthread_mutex_lock(&cx->store_mu);   /* a backup in progress ends first */
		cx->st = NULL;
		pthread_mutex_unlock(&cx->store_mu);
		meta_store_close(st);
	}
}

static int n_serve(void *arg, char *err, size_t errlen)
{
	struct cl_ctx *cx = arg;
	int rc;

	cx->is_server = true;
	/* No return until the grants it ends are imported (n_settle). */
	atomic_store(&cx->bagging, true);
	rc = cl_dm_attach(cx, cx->dm_enabled);
	if (rc) {
		snprintf(err, errlen, "cannot start DMAPI: %s", strerror(-rc));
		cx->is_server = false;
		return rc;
	}
	if (cx->dmfs)
		dm_fs_set_table(cx->dmfs, cx->vt);
	tok_client_set_ops(cx->tc, &cl_local_tok_ops, cx);
	n_set_server(cx, cx->self_id, NULL, false);
	rc = reshape_all(cx, true);
	if (rc)
		fprintf(stderr, "cxfsd: a vnode could not take the server shape: %s\n",
			strerror(-rc));
	return 0;
}

/* Wait (3 s at most) until no thread counted by @n is left. */
static void drain(atomic_uint *n)
{
	for (int i = 0; i < 3000 && atomic_load(n); i++)
		usleep(1000);
}

static void n_settle(void *arg)
{
	struct cl_ctx *cx = arg;

	/* The grants are imported: returns are taken (the settle below may wait for some). */
	atomic_store(&cx->bagging, false);
	/* Returns that were on their way to the old server keep their state here first. */
	drain(&cx->returns);
	cl_client_to_store(cx, true);
	/* Its own changes answered as a client, after every replayed request. */
	cl_async_settle(cx);
	if (!cx->reclaimer_started)
		(void)cl_reclaimer_start(cx);
	cl_mirror_sweep(cx);
	if (cx->serving)
		cx->serving(cx->serving_arg);
}

static void *poke(void *arg)
{
	struct cl_ctx *cx = arg;

	while (!atomic_load(&cx->role->poke_stop)) {
		/*
		 * Not while a role change sets the token server
		 * (cl_server_publish); a backup holding the lock only skips
		 * a round.
		 */
		if (pthread_mutex_trylock(&cx->store_mu) == 0) {
			if (cx->ts)
				tok_server_interrupt_all(cx->ts);
			pthread_mutex_unlock(&cx->store_mu);
		}
		if (cx->dmfs)
			dm_fs_interrupt(cx->dmfs);
		usleep(5000);
	}
	return NULL;
}

/* Before the token server and DMAPI context go. */
static void poker_stop(struct cl_role *r)
{
	if (!r->poking)
		return;
	atomic_store(&r->poke_stop, true);
	pthread_join(r->poker, NULL);
	r->poking = false;
}

static void n_quiesce(void *arg)
{
	struct cl_ctx *cx = arg;
	struct cl_role *r = cx->role;

	atomic_store(&r->poke_stop, false);
	r->poking = pthread_create(&r->poker, NULL, poke, cx) == 0;
	while (atomic_load(&cx->handlers))
		usleep(500);
	/* The reclaimer makes vnodes: stop it before shaping is blocked. */
	cl_server_stop(cx);
}

static void n_resume(void *arg)
{
	struct cl_ctx *cx = arg;

	poker_stop(cx->role);
	if (!cx->reclaimer_started)
		(void)cl_reclaimer_start(cx);
}

static int n_unshape(void *arg)
{
	struct cl_ctx *cx = arg;
	int rc = reshape_all(cx, false);

	poker_stop(cx->role);
	if (rc)
		return rc;
	cl_client_to_store(cx, false);
	/* Recall threads of this node's own tokens finish first. */
	drain(&cx->threads);
	/* From now on returns go to the new MDS; those being taken finish. */
	atomic_store(&cx->bagging, true);
	while (atomic_load(&cx->handlers))
		usleep(200);
	return 0;
}

static void n_drop_server(void *arg)
{
	struct cl_ctx *cx = arg;

	cx->is_server = false;
	tok_client_set_ops(cx->tc, &cl_remote_tok_ops, cx);
	cl_dm_detach(cx);
	cx->dm_port.inactive = NULL;
	n_unserve(cx);
	pthread_mutex_lock(&cx->mu);
	for (size_t i = 0; i < CL_MAX_NODES; i++) {
		if (cx->node_chan[i]) {
			rpc_chan_put(cx->node_chan[i]);
			cx->node_chan[i] = NULL;
		}
		if (cx->out_chan[i]) {
			rpc_chan_put(cx->out_chan[i]);
			cx->out_chan[i] = NULL;
		}
	}
	pthread_mutex_unlock(&cx->mu);
}

static void n_abandon(void *arg)
{
	struct cl_ctx *cx = arg;

	if (cx->st)
		meta_store_abandon(cx->st);
}

static int n_reregister(void *arg)
{
	return cl_reregister(arg);
}

/* ---- 3. the node table ------------------------------------------------------ */

static const struct cms_config *n_config(void *arg)
{
	return ((struct cl_ctx *)arg)->cfg;
}

static const struct cms_fs *n_fs(void *arg)
{
	return ((struct cl_ctx *)arg)->fs;
}

static struct rpc_ctx *n_rpc(void *arg)
{
	return ((struct cl_ctx *)arg)->rpc;
}

static uint32_t n_self(void *arg)
{
	return ((struct cl_ctx *)arg)->self_id;
}

static uint32_t n_server(void *arg)
{
	struct cl_ctx *cx = arg;
	uint32_t s;

	pthread_mutex_lock(&cx->mu);
	s = cx->server_id;
	pthread_mutex_unlock(&cx->mu);
	return s;
}

static bool n_serving(void *arg)
{
	return atomic_load(&((struct cl_ctx *)arg)->is_server);
}

static bool n_connected(void *arg, uint32_t node)
{
	struct cl_ctx *cx = arg;
	bool up;

	if (node == 0 || node >= CL_MAX_NODES || node == cx->self_id)
		return false;
	pthread_mutex_lock(&cx->mu);
	up = cx->node_chan[node] != NULL;
	pthread_mutex_unlock(&cx->mu);
	return up;
}

static bool n_member(void *arg, uint32_t node)
{
	return cl_member_up(arg, node);
}

static void n_gate(void *arg, enum rl_gate g)
{
	if (g == RL_GATE_OPEN)
		cl_gate_open(arg);
	else
		cl_gate_close(arg, g == RL_GATE_MIGRATE);
}

static void n_moving(void *arg, bool on)
{
	atomic_store(&((struct cl_ctx *)arg)->relocating, on);
}

static int n_can_serve(void *arg, char *err, size_t errlen)
{
	struct cl_ctx *cx = arg;
	struct meta_sb sb;

	/* Serving needs the volume: its superblock must read here. */
	return meta_sb_read(cx->dev, &sb, err, errlen);
}

static int n_fence(void *arg, uint32_t node)
{
	return cl_fence(arg, node);
}

static void n_cut(void *arg, uint32_t node)
{
	struct cl_ctx *cx = arg;
	struct rpc_chan *ch = NULL;

	pthread_mutex_lock(&cx->mu);
	if (cx->server_id == node && cx->mds) {
		ch = cx->mds;
		rpc_chan_hold(ch);
	}
	pthread_mutex_unlock(&cx->mu);
	if (ch) {
		rpc_chan_abort(ch);
		rpc_chan_put(ch);
	}
}

static void n_checkpoint(void *arg)
{
	struct cl_ctx *cx = arg;

	if (cx->st)
		(void)meta_store_checkpoint(cx->st);
}

static int n_server_call(void *arg, Cxfs__MsgType type, ProtobufCMessage *req,
			 Cxfs__MsgType *reply_type, ProtobufCMessage **reply)
{
	return cl_mds_call(arg, type, req, reply_type, reply);
}

static bool n_cut_off(void *arg)
{
	return cl_cut_off(arg);
}

static void n_uncut(void *arg)
{
	cl_uncut(arg);
}

static int n_ask_server(void *arg, uint32_t *server)
{
	return cl_name_ask(arg, server);
}

static const struct rl_node_ops cl_role_node_ops = {
	.config = n_config,
	.fs = n_fs,
	.rpc = n_rpc,
	.self = n_self,
	.server = n_server,
	.serving = n_serving,
	.connected = n_connected,
	.member = n_member,
	.gate = n_gate,
	.moving = n_moving,
	.can_serve = n_can_serve,
	.announce = n_announce,
	.release = n_release,
	.quiesce = n_quiesce,
	.resume = n_resume,
	.unshape = n_unshape,
	.drop_server = n_drop_server,
	.abandon = n_abandon,
	.reregister = n_reregister,
	.fence = n_fence,
	.open_store = n_open_store,
	.serve = n_serve,
	.settle = n_settle,
	.unserve = n_unserve,
	.set_server = n_set_server,
	.elected = n_elected,
	.cut = n_cut,
	.checkpoint = n_checkpoint,
	.server_call = n_server_call,
	.ask_server = n_ask_server,
	.cut_off = n_cut_off,
	.uncut = n_uncut,
};

/* ---- 4. the subsystems ------------------------------------------------------ */

struct grant_arg {
	struct rl_bag *b;
	uint32_t node;
};

static int grant_server(void *arg, uint32_t node, uint64_t ino, const struct tok_set *held)
{
	return rl_bag_grant(arg, node, ino, held, NULL);
}

static int grant_own(void *arg, uint64_t ino, const struct tok_set *held,
		     const struct tok_set *returning)
{
	struct grant_arg *g = arg;

	return rl_bag_grant(g->b, g->node, ino, held, returning);
}

static void tokens_celldown(void *arg, uint64_t dead)
{
	struct cl_ctx *cx = arg;

	if (!cx->is_server)
		return;
	for (uint32_t i = 0; i < 64; i++)
		if ((dead & (UINT64_C(1) << i)) && i + 1 != cx->self_id)
			cl_server_node_lost(cx, i + 1, "died while a server move ran");
}

static int tokens_gather(void *arg, struct rl_bag *b, bool server)
{
	struct cl_ctx *cx = arg;
	struct grant_arg g = { b, cx->self_id };

	if (server)
		return tok_server_export(cx->ts, grant_server, b);
	return tok_client_export(cx->tc, grant_own, &g);
}

/* What @g's node holds for sure: its levels but those only on their way back. */
static struct tok_set firm_of(const struct rl_grant *g)
{
	struct tok_set s = g->held;

	for (int t = 0; t < TOK_NTOKENS; t++)
		if (g->returning.level[t] != TOK_NONE)
			s.level[t] = TOK_NONE;
	return s;
}

/*
 * Every node's grants as it reports them, but a level only on its way back
 * to the server that died is the node's only if no other node holds a
 * conflicting one: the old server took that return (then granted it on),
 * and the size and times the return carries are older than the holder's.
 * Dropped here, they are ignored when the return comes again (apply_state
 * in cl_server.c; on this node, cl_client_return_taken undoes keep_state).  Two returns
 * that conflict keep both levels: which is the newer is unknown.
 */
static int tokens_reconstruct(void *arg, const struct rl_bag *b)
{
	struct cl_ctx *cx = arg;
	struct tok_set *kept = calloc(b->ng ? b->ng : 1, sizeof(*kept));
	int rc = 0;

	if (!kept)
		return -ENOMEM;
	for (size_t i = 0; i < b->ng && !rc; i++) {
		struct tok_set firm = firm_of(&b->g[i]);

		rc = tok_server_import(cx->ts, b->g[i].node, b->g[i].ino, &firm);
	}
	for (size_t i = 0; i < b->ng && !rc; i++) {
		const struct rl_grant *g = &b->g[i];
		struct tok_set taken = g->returning;

		if (tok_set_empty(&g->returning))
			continue;   /* most grants: no server lock taken for them */
		kept[i] = g->returning;
		tok_server_taken(cx->ts, g->node, g->ino, &kept[i]);
		for (int t = 0; t < TOK_NTOKENS; t++)
			if (kept[i].level[t] != TOK_NONE)
				taken.level[t] = TOK_NONE;
		if (tok_set_empty(&taken))
			continue;
		fprintf(stderr, "cxfsd: recovery: node %s's token return for inode %llu was taken "
			"by the old server (another node holds them now): the size and times it "
			"carries are dropped\n", cl_peer_name(cx, g->node), (unsigned long long)g->ino);
		if (g->node == cx->self_id)
			cl_client_return_taken(cx, g->ino, &taken);
	}
	for (size_t i = 0; i < b->ng && !rc; i++) {
		struct tok_set all = firm_of(&b->g[i]);

		if (tok_set_empty(&kept[i]))
			continue;
		tok_set_raise(&all, &kept[i]);
		rc = tok_server_import(cx->ts, b->g[i].node, b->g[i].ino, &all);
	}
	free(kept);
	return rc;
}

static const struct rl_callout cl_role_tokens = {
	.name = "tokens",
	.celldown = tokens_celldown,
	.gather = tokens_gather,
	.reconstruct = tokens_reconstruct,
};

static int lock_into(void *arg, uint64_t ino, const struct vn_flock *lk)
{
	return rl_bag_lock(arg, ino, lk);
}

static int locks_gather(void *arg, struct rl_bag *b, bool server)
{
	struct cl_ctx *cx = arg;
	int rc;

	if (server)
		return vn_lock_export(vn_meta_fs_locks(cx->mfs), lock_into, b);
	pthread_mutex_lock(&cx->held_mu);
	rc = vn_lock_export(cx->held, lock_into, b);
	pthread_mutex_unlock(&cx->held_mu);
	return rc;
}

static int locks_reconstruct(void *arg, const struct rl_bag *b)
{
	struct cl_ctx *cx = arg;
	int rc = 0;

	for (size_t i = 0; i < b->nl && !rc; i++)
		rc = vn_lock_set(vn_meta_fs_locks(cx->mfs), b->l[i].ino, &b->l[i].lk, 0, NULL, NULL);
	return rc;
}

static const struct rl_callout cl_role_locks = {
	.name = "locks",
	.gather = locks_gather,
	.reconstruct = locks_reconstruct,
};

void cl_locks_note_set(struct cl_ctx *cx, uint64_t ino, const struct vn_flock *lk)
{
	struct vn_flock own = *lk;

	own.node = cx->self_id;
	pthread_mutex_lock(&cx->held_mu);
	(void)vn_lock_set(cx->held, ino, &own, 0, NULL, NULL);
	pthread_mutex_unlock(&cx->held_mu);
}

void cl_locks_note_release(struct cl_ctx *cx, uint64_t ino, uint64_t owner, bool flock)
{
	pthread_mutex_lock(&cx->held_mu);
	vn_lock_release(cx->held, ino, owner, 0);
	if (flock)
		vn_lock_release(cx->held, ino, owner, 1);
	pthread_mutex_unlock(&cx->held_mu);
}

/*
 * Requests answered and not yet durable (cl_unsafe.c): a survivor reports
 * its own; the new server applies them before anything else (no grant is
 * imported yet, so a replayed change recalls nothing), as the thread that
 * rewrites the chains; afterwards nothing anyone kept is pending.
 */
static int requests_gather(void *arg, struct rl_bag *b, bool server)
{
	Cxfs__UnsafeReq **v = NULL;
	size_t n = 0;
	int rc;

	if (server)
		return 0;   /* a relocation's source committed the store: nothing pending */
	rc = cl_unsafe_collect(arg, &v, &n);
	for (size_t i = 0; !rc && i < n; i++)
		rc = rl_bag_unsafe(b, v[i]);
	cl_unsafe_collect_free(v, n);
	return rc;
}

static int requests_reconstruct(void *arg, const struct rl_bag *b)
{
	struct cl_ctx *cx = arg;
	struct cl_unsafe_stats st = { 0 };
	int rc = 0;

	if (b->nu) {
		vn_rewriter(true);
		rc = cl_unsafe_replay(cx, b->u, b->nu, &st);
		vn_rewriter(false);
		fprintf(stderr, "cxfsd: requests not yet durable at the old server: %u applied, %u "
			"already in the store, %u failed\n", st.applied, st.skipped, st.failed);
	}
	/* This node serves: nothing it kept as a client is pending any more. */
	cl_unsafe_forget_all(cx);
	return rc;
}

static void requests_retarget(void *arg, uint32_t server)
{
	(void)server;
	cl_unsafe_forget_all(arg);
}

static const struct rl_callout cl_role_requests = {
	.name = "requests",
	.gather = requests_gather,
	.reconstruct = requests_reconstruct,
	.retarget = requests_retarget,
};

/* Table order: the requests are applied before any grant is imported. */
static const struct rl_callout *const cl_role_subs[] = {
	&cl_role_requests,
	&cl_role_tokens,
	&cl_role_locks,
};

int cl_role_init(struct cl_ctx *cx)
{
	struct cl_role *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return -ENOMEM;
	rc = vn_lockmgr_create(&cx->held);
	if (rc) {
		free(r);
		return rc;
	}
	pthread_mutex_init(&cx->held_mu, NULL);
	pthread_mutex_init(&cx->leg_mu, NULL);
	pthread_mutex_init(&r->vmu, NULL);
	cx->role = r;
	cx->rl = (struct rl_env){ .node = &cl_role_node_ops, .subs = cl_role_subs,
				  .nsubs = sizeof(cl_role_subs) / sizeof(cl_role_subs[0]),
				  .arg = cx };
	return 0;
}

void cl_role_fini(struct cl_ctx *cx)
{
	struct cl_role *r = cx->role;

	if (!r)
		return;
	poker_stop(r);
	free(r->vns);
	pthread_mutex_destroy(&r->vmu);
	free(r);
	cx->role = NULL;
	vn_lockmgr_destroy(cx->held);
	cx->held = NULL;
	pthread_mutex_destroy(&cx->held_mu);
	pthread_mutex_destroy(&cx->leg_mu);
}
