/*
 * kore.c - relocation of the metadata server (see kore.h):
 *
 *   1. the relocation state, announcing rewrites on every vnode
 *   2. the two shapes of a node: becoming a client (the source), becoming
 *      the server (the target, or the source taking its state back)
 *   3. the source's phases (kore_relocate, kore_leave)
 *   4. the other nodes' phases (kore_handle)
 *
 * Lock order: kore.mu (one relocation at a time, on the source) ->
 * (shaping blocked from the announcement until the new shape serves; the
 * target blocks and unblocks it in different requests, so it is a flag,
 * not a lock owned by a thread) -> vnode head (each chain edit) -> the
 * cluster's locks.
 * Between announcing and ending the rewrites, operations entering a vnode
 * wait (vn.h); those inside that wait for the token server or the HSM get
 * -VN_EMIGRATING (token waits are interrupted, the gate returns it on the
 * target) and restart on the new chain.
 */
#include "relocate/kore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cl_i.h"
#include "dmapi/dm_fs.h"
#include "membership/cms_config.h"
#include "meta/meta_sb.h"
#include "vnode/vn_lock.h"
#include "vnode/vn_meta.h"

#define KORE_CALL_MS 30000u        /* a phase message not answered by then fails */
#define KORE_BAG_GRANTS 16384      /* grants per BAG message */

struct kore_grant {
	uint32_t node;
	uint64_t ino;
	struct tok_set held;
};

struct kore_lock {
	uint64_t ino;
	struct vn_flock lk;
};

/* A server's state between two nodes. */
struct kore_bag {
	struct kore_grant *g;
	size_t ng, gcap;
	struct kore_lock *l;
	size_t nl, lcap;
};

struct kore {
	pthread_mutex_t mu;             /* one relocation at a time (source) */
	pthread_mutex_t vmu;            /* protects vns */
	struct vnode **vns;             /* vnodes with a rewrite announced by us */
	size_t nvns, vcap;
	struct kore_bag bag;            /* target: received; source: sent (for an abort) */
	bool announced;                 /* rewrites announced, shaping blocked */
	struct rpc_chan *chans[CL_MAX_NODES];  /* source: one channel per node a run talks to */
	uint64_t epoch;                 /* relocations so far */
};

static pthread_mutex_t kore_init_mu = PTHREAD_MUTEX_INITIALIZER;

static struct kore *kore_of(struct cl_ctx *cx)
{
	pthread_mutex_lock(&kore_init_mu);
	if (!cx->kore) {
		struct kore *k = calloc(1, sizeof(*k));

		if (k) {
			pthread_mutex_init(&k->mu, NULL);
			pthread_mutex_init(&k->vmu, NULL);
			cx->kore = k;
		}
	}
	pthread_mutex_unlock(&kore_init_mu);
	return cx->kore;
}

static void bag_clear(struct kore_bag *b)
{
	free(b->g);
	free(b->l);
	memset(b, 0, sizeof(*b));
}

static int bag_grant(void *arg, uint32_t node, uint64_t ino, const struct tok_set *held)
{
	struct kore_bag *b = arg;

	if (b->ng == b->gcap) {
		size_t cap = b->gcap ? b->gcap * 2 : 1024;
		struct kore_grant *g = realloc(b->g, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		b->g = g;
		b->gcap = cap;
	}
	b->g[b->ng++] = (struct kore_grant){ node, ino, *held };
	return 0;
}

static int bag_lock(void *arg, uint64_t ino, const struct vn_flock *lk)
{
	struct kore_bag *b = arg;

	if (b->nl == b->lcap) {
		size_t cap = b->lcap ? b->lcap * 2 : 64;
		struct kore_lock *l = realloc(b->l, cap * sizeof(*l));

		if (!l)
			return -ENOMEM;
		b->l = l;
		b->lcap = cap;
	}
	b->l[b->nl++] = (struct kore_lock){ ino, *lk };
	return 0;
}

/* ---- 1. announcing rewrites ------------------------------------------------ */

static void announce_one(struct vnode *vn, void *arg)
{
	struct kore *k = arg;

	pthread_mutex_lock(&k->vmu);
	if (k->nvns == k->vcap) {
		size_t cap = k->vcap ? k->vcap * 2 : 4096;
		struct vnode **v = realloc(k->vns, cap * sizeof(*v));

		if (!v) {
			pthread_mutex_unlock(&k->vmu);
			return;   /* not announced: its operations finish on the old chain first */
		}
		k->vns = v;
		k->vcap = cap;
	}
	vn_hold(vn);
	vn_rewrite_begin(vn);
	k->vns[k->nvns++] = vn;
	pthread_mutex_unlock(&k->vmu);
}

/*
 * Announce a rewrite of every vnode and keep new ones from being shaped
 * until the new role is set.  Operations entering a vnode wait from now on.
 */
static void announce(struct cl_ctx *cx, struct kore *k)
{
	if (k->announced)
		return;
	cl_shape_block(cx);
	vn_table_walk(cx->vt, announce_one, k);
	k->announced = true;
}

static void fix_shape(struct vnode *vn, void *arg);

/* End the rewrites; the vnodes run their new chains. */
static void release(struct cl_ctx *cx, struct kore *k)
{
	struct vnode **v;
	size_t n;

	if (!k->announced)
		return;
	/*
	 * A vnode that was being built when the rewrites were announced (it
	 * became live just after, so the walk missed it) may have the old
	 * shape: give it the node's shape before shaping resumes.
	 */
	vn_table_walk(cx->vt, fix_shape, cx);
	pthread_mutex_lock(&k->vmu);
	v = k->vns;
	n = k->nvns;
	k->vns = NULL;
	k->nvns = k->vcap = 0;
	pthread_mutex_unlock(&k->vmu);
	for (size_t i = 0; i < n; i++)
		vn_rewrite_end(v[i]);
	k->announced = false;
	cl_shape_unblock(cx);
	for (size_t i = 0; i < n; i++)
		vn_put(v[i], 1);
	free(v);
}

/* ---- 2. the two shapes ------------------------------------------------------ */

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
		fprintf(stderr, "cxfsd: relocation: inode %llu could not take its new shape: %s\n",
			(unsigned long long)vn_ino(vn), strerror(-r.rc));
}

/* Every vnode gets the chain of the node's (new) role. */
static int reshape_all(struct cl_ctx *cx, struct kore *k, bool server)
{
	struct reshape r = { cx, 0 };

	pthread_mutex_lock(&k->vmu);
	for (size_t i = 0; i < k->nvns; i++)
		(server ? to_server : to_client)(k->vns[i], &r);
	pthread_mutex_unlock(&k->vmu);
	return r.rc;
}

static void set_mds(struct cl_ctx *cx, uint32_t server, struct rpc_chan *ch)
{
	struct rpc_chan *old;

	pthread_mutex_lock(&cx->mu);
	old = cx->mds;
	cx->mds = ch;
	cx->server_id = server;
	pthread_mutex_unlock(&cx->mu);
	if (old)
		rpc_chan_put(old);
}

/*
 * Become the MDS with @bag: open the store (its log is replayed; files
 * unlinked while open stay, nodes may still use them), take the grants and
 * locks, load DMAPI, and rewrite every announced chain to the server shape.
 */
static int become_server(struct cl_ctx *cx, struct kore *k, const struct kore_bag *bag,
			 char *err, size_t errlen)
{
	struct meta_store_opts so = cx->store_opts;
	int rc;

	so.keep_orphans = 1;
	rc = meta_store_open(cx->dev, &so, &cx->st, err, errlen);
	if (rc)
		return rc;
	/* The old server closed the store (a commit) first: what this node kept is in it. */
	cl_unsafe_forget_all(cx);
	rc = vn_meta_fs_create(cx->st, &cx->mfs);
	if (rc) {
		snprintf(err, errlen, "cannot start the meta behaviors: %s", strerror(-rc));
		goto out_store;
	}
	vn_meta_fs_set_table(cx->mfs, cx->vt);
	rc = cl_server_start(cx);
	if (rc) {
		snprintf(err, errlen, "cannot start the token server: %s", strerror(-rc));
		goto out_mfs;
	}
	for (size_t i = 0; i < bag->ng && !rc; i++)
		rc = tok_server_import(cx->ts, bag->g[i].node, bag->g[i].ino, &bag->g[i].held);
	for (size_t i = 0; i < bag->nl && !rc; i++)
		rc = vn_lock_set(vn_meta_fs_locks(cx->mfs), bag->l[i].ino, &bag->l[i].lk, 0, NULL, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot take the server's state: %s", strerror(-rc));
		goto out_server;
	}
	cx->is_server = true;
	atomic_store(&cx->bagging, false);
	rc = cl_dm_attach(cx, cx->dm_enabled);
	if (rc) {
		snprintf(err, errlen, "cannot start DMAPI: %s", strerror(-rc));
		cx->is_server = false;
		goto out_server;
	}
	if (cx->dmfs)
		dm_fs_set_table(cx->dmfs, cx->vt);
	tok_client_set_ops(cx->tc, &cl_local_tok_ops, cx);
	set_mds(cx, cx->self_id, NULL);
	rc = reshape_all(cx, k, true);
	cl_client_to_store(cx, true);
	if (rc)
		fprintf(stderr, "cxfsd: relocation: a vnode could not take the server shape: %s\n",
			strerror(-rc));
	return 0;
out_server:
	cl_server_stop(cx);
	tok_server_destroy(cx->ts);
	cx->ts = NULL;
out_mfs:
	vn_meta_fs_destroy(cx->mfs);
	cx->mfs = NULL;
out_store:
	meta_store_close(cx->st);
	cx->st = NULL;
	return rc;
}

/* Keep waking token and DMAPI waits while the source drains (see run()). */
struct poker {
	struct cl_ctx *cx;
	atomic_bool stop;
	bool running;
	pthread_t t;
};

static void *poke(void *arg)
{
	struct poker *p = arg;

	while (!atomic_load(&p->stop)) {
		if (p->cx->ts)
			tok_server_interrupt_all(p->cx->ts);
		if (p->cx->dmfs)
			dm_fs_interrupt(p->cx->dmfs);
		usleep(5000);
	}
	return NULL;
}

static void poker_start(struct poker *p, struct cl_ctx *cx)
{
	p->cx = cx;
	atomic_store(&p->stop, false);
	p->running = pthread_create(&p->t, NULL, poke, p) == 0;
}

/* Before the token server and DMAPI context go. */
static void poker_stop(struct poker *p)
{
	if (!p->running)
		return;
	atomic_store(&p->stop, true);
	pthread_join(p->t, NULL);
	p->running = false;
}

/*
 * Stop being the MDS: every announced chain takes the client shape, the
 * server's state goes into @bag, and the store is closed (committed).
 * @pk wakes waits until the chains are rewritten; it stops before the
 * token server goes.
 */
static int become_client(struct cl_ctx *cx, struct kore *k, struct kore_bag *bag,
			 struct poker *pk)
{
	int rc;

	rc = reshape_all(cx, k, false);
	poker_stop(pk);
	if (rc)
		return rc;
	cl_client_to_store(cx, false);
	/* Recall threads of this node's own tokens finish first. */
	for (int i = 0; i < 3000 && atomic_load(&cx->threads); i++)
		usleep(1000);
	/* From now on returns go to the new MDS; those being taken finish. */
	atomic_store(&cx->bagging, true);
	while (atomic_load(&cx->handlers))
		usleep(200);
	bag_clear(bag);
	rc = tok_server_export(cx->ts, bag_grant, bag);
	if (!rc)
		rc = vn_lock_export(vn_meta_fs_locks(cx->mfs), bag_lock, bag);
	if (rc) {
		atomic_store(&cx->bagging, false);
		return rc;
	}
	cx->is_server = false;
	tok_client_set_ops(cx->tc, &cl_remote_tok_ops, cx);
	cl_dm_detach(cx);
	cx->dm_port.inactive = NULL;
	tok_server_destroy(cx->ts);
	cx->ts = NULL;
	vn_meta_fs_destroy(cx->mfs);
	cx->mfs = NULL;
	meta_store_close(cx->st);
	cx->st = NULL;
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
	return 0;
}

/* ---- 3. the source ---------------------------------------------------------- */

static int join(struct cl_ctx *cx, uint32_t target);

/*
 * Send phase @m to node @id over the run's channel to it (made at the first
 * phase, one connection and handshake per node for the whole run; the
 * caller holds kore.mu); 0 or -errno.
 */
static int send_phase(struct cl_ctx *cx, uint32_t id, const Cxfs__RelocReq *m)
{
	const struct cms_node *n = cl_node_by_id(cx, id);
	struct kore *k = cx->kore;
	ProtobufCMessage *rep = NULL;
	Cxfs__MsgType rt;
	int rc;

	if (!n)
		return -ENOENT;
	if (!k->chans[id]) {
		rc = rpc_connect(cx->rpc, cms_node_address(n), cms_node_port(n), &k->chans[id]);
		if (rc)
			return rc;
	}
	rc = rpc_call(k->chans[id], CXFS__MSG_TYPE__RELOC_REQ, &m->base, KORE_CALL_MS, &rt, &rep);
	if (rc)
		return rc;
	rc = rt == CXFS__MSG_TYPE__ERROR_REPLY ? ((Cxfs__ErrorReply *)rep)->err
					       : ((Cxfs__StatusReply *)rep)->err;
	rpc_msg_free(rep);
	return rc;
}

static int send_simple(struct cl_ctx *cx, uint32_t id, enum kore_phase phase, uint32_t target,
		       uint64_t epoch)
{
	Cxfs__RelocReq m = CXFS__RELOC_REQ__INIT;

	m.phase = phase;
	m.has_target = m.has_epoch = 1;
	m.target = target;
	m.epoch = epoch;
	return send_phase(cx, id, &m);
}

/* The bag to @target, in parts; the last one says INSTANTIATE. */
static int send_bag(struct cl_ctx *cx, uint32_t target, uint64_t epoch, const struct kore_bag *b)
{
	size_t gi = 0;
	int rc;

	do {
		size_t n = b->ng - gi < KORE_BAG_GRANTS ? b->ng - gi : KORE_BAG_GRANTS;
		bool last = gi + n == b->ng;
		Cxfs__RelocReq m = CXFS__RELOC_REQ__INIT;
		Cxfs__RelocGrant *g = calloc(n ? n : 1, sizeof(*g));
		Cxfs__RelocGrant **gp = calloc(n ? n : 1, sizeof(*gp));
		Cxfs__RelocLock *l = NULL, **lp = NULL;

		if (!g || !gp) {
			free(g);
			free(gp);
			return -ENOMEM;
		}
		for (size_t i = 0; i < n; i++) {
			cxfs__reloc_grant__init(&g[i]);
			g[i].node = b->g[gi + i].node;
			g[i].ino = b->g[gi + i].ino;
			g[i].levels.data = (uint8_t *)b->g[gi + i].held.level;
			g[i].levels.len = TOK_NTOKENS;
			gp[i] = &g[i];
		}
		if (last && b->nl) {
			l = calloc(b->nl, sizeof(*l));
			lp = calloc(b->nl, sizeof(*lp));
			if (!l || !lp) {
				free(g);
				free(gp);
				free(l);
				free(lp);
				return -ENOMEM;
			}
			for (size_t i = 0; i < b->nl; i++) {
				cxfs__reloc_lock__init(&l[i]);
				l[i].ino = b->l[i].ino;
				l[i].type = b->l[i].lk.type;
				l[i].start = b->l[i].lk.start;
				l[i].end = b->l[i].lk.end;
				l[i].owner = b->l[i].lk.owner;
				l[i].pid = b->l[i].lk.pid;
				l[i].has_is_flock = 1;
				l[i].is_flock = b->l[i].lk.is_flock;
				l[i].has_node = 1;
				l[i].node = b->l[i].lk.node;
				lp[i] = &l[i];
			}
			m.n_locks = b->nl;
			m.locks = lp;
		}
		m.phase = last ? KORE_INSTANTIATE : KORE_BAG;
		m.has_target = m.has_epoch = 1;
		m.target = target;
		m.epoch = epoch;
		m.n_grants = n;
		m.grants = gp;
		rc = send_phase(cx, target, &m);
		free(g);
		free(gp);
		free(l);
		free(lp);
		gi += n;
		if (rc || last)
			return rc;
	} while (1);
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Nodes (other than us) with a connection to this MDS, as a bit per id. */
static void connected_nodes(struct cl_ctx *cx, bool *up)
{
	pthread_mutex_lock(&cx->mu);
	for (size_t i = 0; i < CL_MAX_NODES; i++)
		up[i] = cx->node_chan[i] != NULL && i != cx->self_id;
	pthread_mutex_unlock(&cx->mu);
}

static int run(struct cl_ctx *cx, struct kore *k, uint32_t target, double *ms, char *err,
	       size_t errlen)
{
	const struct cms_node *tn = cl_node_by_id(cx, target);
	struct poker pk = { 0 };
	bool up[CL_MAX_NODES], detargeted[CL_MAX_NODES] = { false };
	struct timespec t0;
	uint64_t epoch = ++k->epoch;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!tn || !cms_node_may_serve(tn)) {
		snprintf(err, errlen, "node %s may not serve filesystem %s (not in its server order)",
			 tn ? cms_node_name(tn) : "?", cms_fs_name(cx->fs));
		return -EINVAL;
	}
	if (target == cx->self_id) {
		snprintf(err, errlen, "node %s already serves filesystem %s", cms_node_name(tn),
			 cms_fs_name(cx->fs));
		return -EALREADY;
	}
	connected_nodes(cx, up);
	if (!up[target]) {
		snprintf(err, errlen, "node %s is not up (it has no connection to the metadata server)",
			 cms_node_name(tn));
		return -EHOSTDOWN;
	}
	/* Empty the store's log now, while serving: closing it later is quick. */
	(void)meta_store_checkpoint(cx->st);
	rc = send_simple(cx, target, KORE_PREPARE, target, epoch);
	if (rc) {
		snprintf(err, errlen, "node %s cannot serve filesystem %s: %s", cms_node_name(tn),
			 cms_fs_name(cx->fs), strerror(-rc));
		return rc;
	}
	/* New requests of every other node wait from now on. */
	for (uint32_t id = 1; id < CL_MAX_NODES; id++)
		if (up[id] && id != target)
			detargeted[id] = send_simple(cx, id, KORE_DETARGET, target, epoch) == 0;
	/* Quiesce: wake every wait, let the handlers finish, park our own operations. */
	atomic_store(&cx->relocating, true);
	cl_gate_close(cx, false);
	poker_start(&pk, cx);
	while (atomic_load(&cx->handlers))
		usleep(500);
	/* The reclaimer makes vnodes: stop it before shaping is blocked. */
	cl_server_stop(cx);
	announce(cx, k);
	rc = become_client(cx, k, &k->bag, &pk);
	poker_stop(&pk);
	if (rc) {
		snprintf(err, errlen, "cannot bag the server's state: %s", strerror(-rc));
		goto out_abort;
	}
	rc = send_bag(cx, target, epoch, &k->bag);
	if (rc) {
		snprintf(err, errlen, "node %s failed before it could serve (%s): %s keeps serving",
			 cms_node_name(tn), strerror(-rc), cms_node_name(cx->self));
		goto out_abort;
	}
	/* The target serves the store now; point everyone at it. */
	if (join(cx, target))
		fprintf(stderr, "cxfsd: relocation: cannot reach the new metadata server yet\n");
	for (uint32_t id = 1; id < CL_MAX_NODES; id++)
		if (detargeted[id] && send_simple(cx, id, KORE_RETARGET, target, epoch))
			fprintf(stderr, "cxfsd: relocation: node %u did not take the new metadata "
				"server; it finds it when it asks again\n", id);
	(void)send_simple(cx, target, KORE_OPEN, target, epoch);
	atomic_store(&cx->relocating, false);
	release(cx, k);
	cl_gate_open(cx);
	bag_clear(&k->bag);
	if (ms)
		*ms = ms_since(&t0);
	fprintf(stderr, "cxfsd: relocation %llu: filesystem %s is served by %s now (%.1f ms)\n",
		(unsigned long long)epoch, cms_fs_name(cx->fs), cms_node_name(tn), ms_since(&t0));
	return 0;

out_abort:
	if (!cx->is_server) {
		char e2[256];
		int rc2 = become_server(cx, k, &k->bag, e2, sizeof(e2));

		if (rc2)
			fprintf(stderr, "cxfsd: relocation: cannot take the server back: %s\n", e2);
	} else if (!cx->reclaimer_started) {
		(void)cl_reclaimer_start(cx);
	}
	for (uint32_t id = 1; id < CL_MAX_NODES; id++)
		if (detargeted[id])
			(void)send_simple(cx, id, KORE_ABORT, cx->self_id, epoch);
	atomic_store(&cx->relocating, false);
	release(cx, k);
	cl_gate_open(cx);
	bag_clear(&k->bag);
	fprintf(stderr, "cxfsd: relocation %llu to %s aborted: %s\n", (unsigned long long)epoch,
		cms_node_name(tn), err);
	return rc;
}

static uint32_t id_of(struct cl_ctx *cx, const char *name)
{
	for (size_t i = 0; i < cms_config_node_count(cx->cfg); i++)
		if (strcmp(cms_node_name(cms_config_node_at(cx->cfg, i)), name) == 0)
			return (uint32_t)i + 1;
	return 0;
}

int kore_relocate(struct cl_ctx *cx, const char *target, double *ms, char *err, size_t errlen)
{
	struct kore *k = kore_of(cx);
	uint32_t id = id_of(cx, target);
	int rc;

	if (!k)
		return -ENOMEM;
	if (!id) {
		snprintf(err, errlen, "no node named \"%s\" in %s", target, cms_config_path(cx->cfg));
		return -ENOENT;
	}
	if (!cx->is_server && id == cx->server_id) {
		snprintf(err, errlen, "node %s already serves filesystem %s", target,
			 cms_fs_name(cx->fs));
		return -EALREADY;
	}
	if (!cx->is_server) {
		Cxfs__RelocReq m = CXFS__RELOC_REQ__INIT;
		ProtobufCMessage *rep = NULL;
		Cxfs__MsgType rt;
		struct timespec t0;

		/* The MDS answers once every node is retargeted: that is our measure. */
		clock_gettime(CLOCK_MONOTONIC, &t0);
		m.phase = KORE_REQUEST;
		m.target_name = (char *)target;
		rc = cl_mds_call(cx, CXFS__MSG_TYPE__RELOC_REQ, &m.base, &rt, &rep);
		if (ms)
			*ms = ms_since(&t0);
		if (!rc) {
			rc = rt == CXFS__MSG_TYPE__ERROR_REPLY ? ((Cxfs__ErrorReply *)rep)->err
							       : ((Cxfs__StatusReply *)rep)->err;
			rpc_msg_free(rep);
		}
		if (rc)
			snprintf(err, errlen, "the metadata server refused (see its log): %s",
				 strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&k->mu);
	rc = cx->is_server ? run(cx, k, id, ms, err, errlen) : -EAGAIN;
	for (size_t i = 0; i < CL_MAX_NODES; i++)
		if (k->chans[i]) {
			rpc_chan_put(k->chans[i]);
			k->chans[i] = NULL;
		}
	pthread_mutex_unlock(&k->mu);
	return rc;
}

int kore_leave(struct cl_ctx *cx)
{
	bool up[CL_MAX_NODES];
	char err[256];

	if (!cx->is_server)
		return 0;
	connected_nodes(cx, up);
	for (size_t i = 0; i < cms_fs_server_count(cx->fs); i++) {
		const struct cms_node *n = cms_fs_server(cx->fs, i);
		uint32_t id = (uint32_t)cms_node_index(n) + 1;

		if (id == cx->self_id || !up[id])
			continue;
		if (kore_relocate(cx, cms_node_name(n), NULL, err, sizeof(err)) == 0)
			return 0;
		fprintf(stderr, "cxfsd: leaving: %s\n", err);
	}
	return -EHOSTDOWN;
}

/* ---- 4. the other nodes ------------------------------------------------------ */

static int take_bag(struct kore *k, const Cxfs__RelocReq *m)
{
	for (size_t i = 0; i < m->n_grants; i++) {
		struct tok_set s;

		if (m->grants[i]->levels.len != TOK_NTOKENS || m->grants[i]->node >= CL_MAX_NODES)
			return -EINVAL;
		memcpy(s.level, m->grants[i]->levels.data, TOK_NTOKENS);
		for (int t = 0; t < TOK_NTOKENS; t++)
			if (s.level[t] >= TOK_NLEVELS)
				return -EINVAL;
		if (bag_grant(&k->bag, m->grants[i]->node, m->grants[i]->ino, &s))
			return -ENOMEM;
	}
	for (size_t i = 0; i < m->n_locks; i++) {
		const Cxfs__RelocLock *l = m->locks[i];
		struct vn_flock lk = { .type = (short)l->type, .start = l->start, .end = l->end,
				       .owner = l->owner, .pid = l->pid,
				       .is_flock = l->has_is_flock && l->is_flock,
				       .node = l->has_node ? l->node : 0 };

		if (bag_lock(&k->bag, l->ino, &lk))
			return -ENOMEM;
	}
	return 0;
}

static int on_prepare(struct cl_ctx *cx, struct kore *k)
{
	struct meta_sb sb;
	char err[256];
	int rc;

	if (cx->is_server)
		return -EALREADY;
	/* Serving needs the volume: its superblock must read here. */
	rc = meta_sb_read(cx->dev, &sb, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfsd: relocation: cannot serve: %s\n", err);
		return rc;
	}
	bag_clear(&k->bag);
	atomic_store(&cx->relocating, true);
	/* Our chains become server chains: waiting requests start over on them. */
	cl_gate_close(cx, true);
	announce(cx, k);
	return 0;
}

static int on_instantiate(struct cl_ctx *cx, struct kore *k)
{
	char err[256];
	int rc = become_server(cx, k, &k->bag, err, sizeof(err));

	bag_clear(&k->bag);
	if (rc)
		fprintf(stderr, "cxfsd: relocation: cannot serve: %s\n", err);
	else
		fprintf(stderr, "cxfsd: relocation: this node serves filesystem %s now\n",
			cms_fs_name(cx->fs));
	return rc;
}

/* Join the new MDS: it learns our channel, on which its recalls come. */
static int join(struct cl_ctx *cx, uint32_t target)
{
	const struct cms_node *n = cl_node_by_id(cx, target);
	Cxfs__RelocReq m = CXFS__RELOC_REQ__INIT;
	ProtobufCMessage *rep = NULL;
	struct rpc_chan *ch;
	Cxfs__MsgType rt;
	int rc;

	if (!n)
		return -EINVAL;
	rc = rpc_connect(cx->rpc, cms_node_address(n), cms_node_port(n), &ch);
	if (rc)
		return rc;
	m.phase = KORE_JOIN;
	rc = rpc_call(ch, CXFS__MSG_TYPE__RELOC_REQ, &m.base, KORE_CALL_MS, &rt, &rep);
	if (!rc)
		rpc_msg_free(rep);
	set_mds(cx, target, ch);
	return rc;
}

int kore_handle(struct cl_ctx *cx, uint32_t from, struct rpc_req *req, const Cxfs__RelocReq *m)
{
	Cxfs__StatusReply r = CXFS__STATUS_REPLY__INIT;
	struct kore *k = kore_of(cx);
	char err[256];
	int rc = 0;

	if (!k)
		return -ENOMEM;
	switch (m->phase) {
	case KORE_REQUEST:
		if (!m->target_name)
			return -EINVAL;
		rc = kore_relocate(cx, m->target_name, NULL, err, sizeof(err));
		if (rc)
			fprintf(stderr, "cxfsd: relocation asked by node %u refused: %s\n", from, err);
		break;
	case KORE_PREPARE:
		rc = on_prepare(cx, k);
		break;
	case KORE_DETARGET:
		cl_gate_close(cx, false);
		break;
	case KORE_BAG:
		rc = take_bag(k, m);
		break;
	case KORE_INSTANTIATE:
		rc = take_bag(k, m);
		if (!rc)
			rc = on_instantiate(cx, k);
		break;
	case KORE_JOIN:
		/* The channel was noted by the caller (cl_handler). */
		break;
	case KORE_RETARGET:
		if (!m->has_target)
			return -EINVAL;
		rc = join(cx, m->target);
		cl_gate_open(cx);
		break;
	case KORE_OPEN:
		atomic_store(&cx->relocating, false);
		release(cx, k);
		cl_gate_open(cx);
		break;
	case KORE_ABORT:
		if (!cx->is_server && k->announced) {
			/* We were the target: our chains stay as they were. */
			bag_clear(&k->bag);
			atomic_store(&cx->relocating, false);
			release(cx, k);
		}
		cl_gate_open(cx);
		break;
	default:
		return -EINVAL;
	}
	r.err = rc;
	return rpc_reply(req, CXFS__MSG_TYPE__STATUS_REPLY, &r.base);
}

void kore_free(struct cl_ctx *cx)
{
	struct kore *k = cx->kore;

	if (!k)
		return;
	bag_clear(&k->bag);
	free(k->vns);
	pthread_mutex_destroy(&k->mu);
	pthread_mutex_destroy(&k->vmu);
	free(k);
	cx->kore = NULL;
}
