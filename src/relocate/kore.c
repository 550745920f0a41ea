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
/*
 * kore.c - relocation of the metadata server (see kore.h):
 *
 *   1. the relocation state, becoming the server with a bag
 *   2. the source's phases (kore_relocate, kore_leave)
 *   3. the other nodes' phases (kore_handle)
 *
 * The node and its subsystems are reached only through the callout tables
 * of relocate/rl.h (the cluster layer gives them: src/cluster/cl_role.c).
 *
 * Lock order: kore.mu (one relocation at a time, on the source) -> what
 * the callouts take (rl.h: vnode heads, then the cluster's locks).
 * Between announcing and ending the rewrites, operations entering a vnode
 * wait (vn.h); those inside that wait for the token server or the HSM get
 * -VN_EMIGRATING (token waits are interrupted, the gate returns it on the
 * target) and restart on the new chain.
 */
#include "relocate/kore.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cx_hist.h"
#include "common/cx_intr.h"
#include "membership/cms_config.h"
#include "rpc/rpc.h"

#define KORE_CALL_MS 30000u        /* a phase message not answered by then fails */

struct kore {
	const struct rl_env *env;       /* constant */
	pthread_mutex_t mu;             /* one relocation at a time (source) */
	struct rl_bag bag;              /* target: received; source: sent (for an abort) */
	pthread_mutex_t cmu;            /* a leaf: protects chans (kore_celldown aborts them) */
	struct rpc_chan *chans[RL_MAX_NODES];  /* source: one channel per node a run talks to */
	uint64_t epoch;                 /* relocations so far */
	uint32_t source;                /* target: the source of the relocation to us (0: none) */
	atomic_uint_fast64_t done, aborted;  /* source: relocations completed, aborted */
	struct cx_hist pause;           /* source: a completed one's time from request to retarget */
};

void kore_stats(struct kore *k, struct kore_stats *out)
{
	out->done = atomic_load(&k->done);
	out->aborted = atomic_load(&k->aborted);
	cx_hist_snap(&k->pause, &out->pause);
}

int kore_create(const struct rl_env *env, struct kore **out)
{
	struct kore *k = calloc(1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	k->env = env;
	pthread_mutex_init(&k->mu, NULL);
	pthread_mutex_init(&k->cmu, NULL);
	*out = k;
	return 0;
}

/* ---- 1. becoming the server ------------------------------------------------- */

const struct cms_node *rl_node(const struct rl_env *env, uint32_t id)
{
	const struct cms_config *cfg = env->node->config(env->arg);

	if (id == 0 || id > cms_config_node_count(cfg))
		return NULL;
	return cms_config_node_at(cfg, id - 1);
}

int rl_become_server(const struct rl_env *env, const struct rl_bag *bag, char *err,
		     size_t errlen)
{
	const struct rl_node_ops *n = env->node;
	int rc = n->open_store(env->arg, err, errlen);

	if (rc)
		return rc;
	rc = n->serve(env->arg, err, errlen);
	for (size_t i = 0; i < env->nsubs && !rc; i++)
		if (env->subs[i]->reconstruct) {
			rc = env->subs[i]->reconstruct(env->arg, bag);
			if (rc)
				snprintf(err, errlen, "cannot rebuild the %s: %s", env->subs[i]->name,
					 strerror(-rc));
		}
	if (rc) {
		n->unserve(env->arg);
		return rc;
	}
	n->settle(env->arg);
	return 0;
}

int rl_gather(const struct rl_env *env, struct rl_bag *bag, bool server)
{
	int rc = 0;

	for (size_t i = 0; i < env->nsubs && !rc; i++)
		if (env->subs[i]->gather)
			rc = env->subs[i]->gather(env->arg, bag, server);
	return rc;
}

/*
 * Stop being the MDS: every announced chain takes the client shape, the
 * server's state goes into @bag, and the store is closed (committed).
 */
static int become_client(const struct rl_env *env, struct rl_bag *bag)
{
	const struct rl_node_ops *n = env->node;
	int rc = n->unshape(env->arg);

	if (rc)
		return rc;
	rl_bag_clear(bag);
	rc = rl_gather(env, bag, true);
	if (rc)
		return rc;
	n->drop_server(env->arg);
	return 0;
}

/* ---- 2. the source ---------------------------------------------------------- */

/* A StatusReply's (or ErrorReply's) err. */
static int reply_err(Cxfs__MsgType rt, ProtobufCMessage *rep)
{
	return rt == CXFS__MSG_TYPE__ERROR_REPLY ? ((Cxfs__ErrorReply *)rep)->err
						 : ((Cxfs__StatusReply *)rep)->err;
}

/*
 * The run's channel to node @id (made at the first phase, one per node and
 * run; the run's thread alone puts them, at its end).
 */
static struct rpc_chan *chan_to(struct kore *k, uint32_t id)
{
	const struct cms_node *n = rl_node(k->env, id);
	struct rpc_chan *ch = NULL;

	if (!n || id >= RL_MAX_NODES)
		return NULL;
	pthread_mutex_lock(&k->cmu);
	if (!k->chans[id] && rpc_connect(k->env->node->rpc(k->env->arg), cms_node_address(n),
					 cms_node_port(n), &k->chans[id]))
		k->chans[id] = NULL;
	ch = k->chans[id];
	pthread_mutex_unlock(&k->cmu);
	return ch;
}

/* Send phase @m to node @id (the caller holds kore.mu); 0 or -errno. */
static int send_phase(struct kore *k, uint32_t id, const Cxfs__RelocReq *m)
{
	struct rpc_chan *ch = chan_to(k, id);
	ProtobufCMessage *rep = NULL;
	Cxfs__MsgType rt;
	int rc;

	if (!ch)
		return -ENOENT;
	rc = rpc_call(ch, CXFS__MSG_TYPE__RELOC_REQ, &m->base, KORE_CALL_MS, &rt, &rep);
	if (rc)
		return rc;
	rc = reply_err(rt, rep);
	rpc_msg_free(rep);
	return rc;
}

static int send_simple(struct kore *k, uint32_t id, enum kore_phase phase, uint32_t target,
		       uint64_t epoch)
{
	Cxfs__RelocReq m = CXFS__RELOC_REQ__INIT;

	m.phase = phase;
	m.has_target = m.has_epoch = 1;
	m.target = target;
	m.epoch = epoch;
	return send_phase(k, id, &m);
}

double rl_ms_since(int64_t t0)
{
	return (double)(cx_intr_now_ns() - t0) / 1e6;
}

/* Take the server back after a failed run; the others go on with it. */
static void abort_run(struct kore *k, bool *detargeted, uint64_t epoch)
{
	const struct rl_env *env = k->env;
	const struct rl_node_ops *n = env->node;

	if (!n->serving(env->arg)) {
		char e2[256];

		if (rl_become_server(env, &k->bag, e2, sizeof(e2)))
			fprintf(stderr, "cxfsd: relocation: cannot take the server back: %s\n", e2);
	} else {
		n->resume(env->arg);
	}
	for (uint32_t id = 1; id < RL_MAX_NODES; id++)
		if (detargeted[id])
			(void)send_simple(k, id, KORE_ABORT, n->self(env->arg), epoch);
	n->moving(env->arg, false);
	n->release(env->arg);
	n->gate(env->arg, RL_GATE_OPEN);
	rl_bag_clear(&k->bag);
}

static int run(struct kore *k, uint32_t target, double *ms, char *err, size_t errlen)
{
	const struct rl_env *env = k->env;
	const struct rl_node_ops *n = env->node;
	const struct cms_node *tn = rl_node(env, target);
	const char *fs = cms_fs_name(n->fs(env->arg));
	bool detargeted[RL_MAX_NODES] = { false };
	Cxfs__RelocReq fill = CXFS__RELOC_REQ__INIT;
	struct rpc_chan *ch;
	int64_t t0;
	uint64_t epoch = ++k->epoch;
	int rc;

	t0 = cx_intr_now_ns();
	if (!tn || !cms_node_may_serve(tn)) {
		snprintf(err, errlen, "node %s may not serve filesystem %s (not in its server order)",
			 tn ? cms_node_name(tn) : "?", fs);
		return -EINVAL;
	}
	if (target == n->self(env->arg)) {
		snprintf(err, errlen, "node %s already serves filesystem %s", cms_node_name(tn), fs);
		return -EALREADY;
	}
	if (!n->connected(env->arg, target)) {
		snprintf(err, errlen, "node %s is not up (it has no connection to the metadata server)",
			 cms_node_name(tn));
		return -EHOSTDOWN;
	}
	/* Empty the store's log now, while serving: closing it later is quick. */
	n->checkpoint(env->arg);
	rc = send_simple(k, target, KORE_PREPARE, target, epoch);
	if (rc) {
		snprintf(err, errlen, "node %s cannot serve filesystem %s: %s", cms_node_name(tn), fs,
			 strerror(-rc));
		return rc;
	}
	/* New requests of every other node wait from now on. */
	for (uint32_t id = 1; id < RL_MAX_NODES; id++)
		if (id != target && n->connected(env->arg, id))
			detargeted[id] = send_simple(k, id, KORE_DETARGET, target, epoch) == 0;
	/* Quiesce: wake every wait, let the handlers finish, park our own operations. */
	n->moving(env->arg, true);
	n->gate(env->arg, RL_GATE_CLOSED);
	n->quiesce(env->arg);
	n->announce(env->arg);
	rc = become_client(env, &k->bag);
	if (rc) {
		snprintf(err, errlen, "cannot bag the server's state: %s", strerror(-rc));
		goto out_abort;
	}
	fill.has_target = fill.has_epoch = 1;
	fill.target = target;
	fill.epoch = epoch;
	ch = chan_to(k, target);
	rc = ch ? rl_bag_send(ch, &k->bag, &fill, KORE_BAG, KORE_INSTANTIATE, KORE_CALL_MS)
		: -ENOENT;
	if (rc) {
		snprintf(err, errlen, "node %s failed before it could serve (%s): %s keeps serving",
			 cms_node_name(tn), strerror(-rc), cms_node_name(rl_node(env, n->self(env->arg))));
		goto out_abort;
	}
	/* The target serves the store now; point everyone at it. */
	if (rl_join(env, target, false))
		fprintf(stderr, "cxfsd: relocation: cannot reach the new metadata server yet\n");
	for (uint32_t id = 1; id < RL_MAX_NODES; id++)
		if (detargeted[id] && send_simple(k, id, KORE_RETARGET, target, epoch))
			fprintf(stderr, "cxfsd: relocation: node %u did not take the new metadata "
				"server; it finds it when it asks again\n", id);
	(void)send_simple(k, target, KORE_OPEN, target, epoch);
	n->moving(env->arg, false);
	n->release(env->arg);
	n->gate(env->arg, RL_GATE_OPEN);
	rl_bag_clear(&k->bag);
	if (ms)
		*ms = rl_ms_since(t0);
	atomic_fetch_add(&k->done, 1);
	cx_hist_observe_since(&k->pause, t0);
	fprintf(stderr, "cxfsd: relocation %llu: filesystem %s is served by %s now (%.1f ms)\n",
		(unsigned long long)epoch, fs, cms_node_name(tn), rl_ms_since(t0));
	return 0;

out_abort:
	atomic_fetch_add(&k->aborted, 1);
	abort_run(k, detargeted, epoch);
	fprintf(stderr, "cxfsd: relocation %llu to %s aborted: %s\n", (unsigned long long)epoch,
		cms_node_name(tn), err);
	return rc;
}

static uint32_t id_of(const struct rl_env *env, const char *name)
{
	const struct cms_config *cfg = env->node->config(env->arg);

	for (size_t i = 0; i < cms_config_node_count(cfg); i++)
		if (strcmp(cms_node_name(cms_config_node_at(cfg, i)), name) == 0)
			return (uint32_t)i + 1;
	return 0;
}

/* Not the MDS: ask it (it answers once every node is retargeted: our measure). */
static int ask_server(const struct rl_env *env, const char *target, double *ms, char *err,
		      size_t errlen)
{
	Cxfs__RelocReq m = CXFS__RELOC_REQ__INIT;
	ProtobufCMessage *rep = NULL;
	Cxfs__MsgType rt;
	int64_t t0;
	int rc;

	t0 = cx_intr_now_ns();
	m.phase = KORE_REQUEST;
	m.target_name = (char *)target;
	rc = env->node->server_call(env->arg, CXFS__MSG_TYPE__RELOC_REQ, &m.base, &rt, &rep);
	if (ms)
		*ms = rl_ms_since(t0);
	if (!rc) {
		rc = reply_err(rt, rep);
		rpc_msg_free(rep);
	}
	if (rc)
		snprintf(err, errlen, "the metadata server refused (see its log): %s", strerror(-rc));
	return rc;
}

int kore_relocate(struct kore *k, const char *target, double *ms, char *err, size_t errlen)
{
	const struct rl_env *env = k->env;
	const struct rl_node_ops *n = env->node;
	uint32_t id = id_of(env, target);
	int rc;

	if (!id) {
		snprintf(err, errlen, "no node named \"%s\" in %s", target,
			 cms_config_path(n->config(env->arg)));
		return -ENOENT;
	}
	if (!n->serving(env->arg) && id == n->server(env->arg)) {
		snprintf(err, errlen, "node %s already serves filesystem %s", target,
			 cms_fs_name(n->fs(env->arg)));
		return -EALREADY;
	}
	if (!n->serving(env->arg))
		return ask_server(env, target, ms, err, errlen);
	pthread_mutex_lock(&k->mu);
	rc = n->serving(env->arg) ? run(k, id, ms, err, errlen) : -EAGAIN;
	pthread_mutex_lock(&k->cmu);
	for (size_t i = 0; i < RL_MAX_NODES; i++)
		if (k->chans[i]) {
			rpc_chan_put(k->chans[i]);
			k->chans[i] = NULL;
		}
	pthread_mutex_unlock(&k->cmu);
	pthread_mutex_unlock(&k->mu);
	return rc;
}

int kore_leave(struct kore *k)
{
	const struct rl_env *env = k->env;
	const struct rl_node_ops *n = env->node;
	const struct cms_fs *fs = n->fs(env->arg);
	char err[256];

	if (!n->serving(env->arg))
		return 0;
	for (size_t i = 0; i < cms_fs_server_count(fs); i++) {
		const struct cms_node *sn = cms_fs_server(fs, i);
		uint32_t id = (uint32_t)cms_node_index(sn) + 1;

		if (id == n->self(env->arg) || !n->connected(env->arg, id))
			continue;
		if (kore_relocate(k, cms_node_name(sn), NULL, err, sizeof(err)) == 0)
			return 0;
		fprintf(stderr, "cxfsd: leaving: %s\n", err);
	}
	return -EHOSTDOWN;
}

/* ---- 3. the other nodes ------------------------------------------------------ */

static int on_prepare(struct kore *k)
{
	const struct rl_env *env = k->env;
	char err[256];
	int rc;

	if (env->node->serving(env->arg))
		return -EALREADY;
	rc = env->node->can_serve(env->arg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfsd: relocation: cannot serve: %s\n", err);
		return rc;
	}
	rl_bag_clear(&k->bag);
	env->node->moving(env->arg, true);
	/* Our chains become server chains: waiting requests start over on them. */
	env->node->gate(env->arg, RL_GATE_MIGRATE);
	env->node->announce(env->arg);
	return 0;
}

static int on_instantiate(struct kore *k)
{
	char err[256];
	int rc = rl_become_server(k->env, &k->bag, err, sizeof(err));

	rl_bag_clear(&k->bag);
	if (rc)
		fprintf(stderr, "cxfsd: relocation: cannot serve: %s\n", err);
	else
		fprintf(stderr, "cxfsd: relocation: this node serves filesystem %s now\n",
			cms_fs_name(k->env->node->fs(k->env->arg)));
	return rc;
}

/* Join the new MDS: it learns our channel, on which its recalls come. */
int rl_join(const struct rl_env *env, uint32_t target, bool old_dead)
{
	const struct cms_node *n = rl_node(env, target);
	Cxfs__RelocReq m = CXFS__RELOC_REQ__INIT;
	ProtobufCMessage *rep = NULL;
	struct rpc_chan *ch;
	Cxfs__MsgType rt;
	int rc;

	if (!n)
		return -EINVAL;
	rc = rpc_connect(env->node->rpc(env->arg), cms_node_address(n), cms_node_port(n), &ch);
	if (rc)
		return rc;
	m.phase = KORE_JOIN;
	rc = rpc_call(ch, CXFS__MSG_TYPE__RELOC_REQ, &m.base, KORE_CALL_MS, &rt, &rep);
	if (!rc)
		rpc_msg_free(rep);
	env->node->set_server(env->arg, target, ch, old_dead);
	return rc;
}

int kore_handle(struct kore *k, uint32_t from, struct rpc_req *req, const Cxfs__RelocReq *m)
{
	const struct rl_env *env = k->env;
	const struct rl_node_ops *n = env->node;
	Cxfs__StatusReply r = CXFS__STATUS_REPLY__INIT;
	/* The target's state (its bag) changes under kore.mu: a recovery may end it. */
	bool target_side = m->phase == KORE_PREPARE || m->phase == KORE_BAG ||
			   m->phase == KORE_INSTANTIATE || m->phase == KORE_OPEN ||
			   m->phase == KORE_ABORT;
	char err[256];
	int rc = 0;

	if (target_side)
		pthread_mutex_lock(&k->mu);
	switch (m->phase) {
	case KORE_REQUEST:
		if (!m->target_name) {
			rc = -EINVAL;
			break;
		}
		rc = kore_relocate(k, m->target_name, NULL, err, sizeof(err));
		if (rc)
			fprintf(stderr, "cxfsd: relocation asked by node %u refused: %s\n", from, err);
		break;
	case KORE_PREPARE:
		rc = on_prepare(k);
		k->source = rc ? 0 : from;
		break;
	case KORE_DETARGET:
		n->gate(env->arg, RL_GATE_CLOSED);
		break;
	case KORE_BAG:
		rc = rl_bag_take(&k->bag, m);
		break;
	case KORE_INSTANTIATE:
		rc = rl_bag_take(&k->bag, m);
		if (!rc)
			rc = on_instantiate(k);
		break;
	case KORE_JOIN:
		/* The channel was noted by the caller (cl_handler). */
		break;
	case KORE_RETARGET:
		if (!m->has_target) {
			rc = -EINVAL;
			break;
		}
		rc = rl_join(env, m->target, false);
		n->gate(env->arg, RL_GATE_OPEN);
		break;
	case KORE_OPEN:
		k->source = 0;
		n->moving(env->arg, false);
		n->release(env->arg);
		n->gate(env->arg, RL_GATE_OPEN);
		break;
	case KORE_ABORT:
		k->source = 0;
		if (!n->serving(env->arg)) {
			/* We may have been the target: our chains stay as they were. */
			rl_bag_clear(&k->bag);
			n->moving(env->arg, false);
			n->release(env->arg);
		}
		n->gate(env->arg, RL_GATE_OPEN);
		break;
	default:
		rc = -EINVAL;
		break;
	}
	if (target_side)
		pthread_mutex_unlock(&k->mu);
	r.err = rc;
	return rpc_reply(req, CXFS__MSG_TYPE__STATUS_REPLY, &r.base);
}

void kore_celldown(struct kore *k, uint64_t dead)
{
	const struct rl_env *env = k->env;
	const struct rl_node_ops *n = env->node;

	/* A relocation to this node whose source died ends here. */
	pthread_mutex_lock(&k->mu);
	if (k->source && k->source <= 64 && (dead & (UINT64_C(1) << (k->source - 1)))) {
		rl_bag_clear(&k->bag);
		n->moving(env->arg, false);
		n->release(env->arg);
		/* Instantiated: we serve (the recovery retargets the others to us). */
		if (n->serving(env->arg))
			n->gate(env->arg, RL_GATE_OPEN);
		k->source = 0;
	}
	pthread_mutex_unlock(&k->mu);
	/* A source's calls to a dead target end now (it aborts and keeps serving). */
	pthread_mutex_lock(&k->cmu);
	for (uint32_t id = 1; id < RL_MAX_NODES && id <= 64; id++)
		if ((dead & (UINT64_C(1) << (id - 1))) && k->chans[id])
			rpc_chan_abort(k->chans[id]);
	pthread_mutex_unlock(&k->cmu);
}

void kore_free(struct kore *k)
{
	if (!k)
		return;
	rl_bag_clear(&k->bag);
	pthread_mutex_destroy(&k->cmu);
	pthread_mutex_destroy(&k->mu);
	free(k);
}
