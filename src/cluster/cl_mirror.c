/*
 * cl_mirror.c - mirrors of the volume in a cluster: the mirror master.
 *
 * A mirror leg that fails I/O on one node must be out on every node before
 * that node's I/O may go on without it: otherwise another node would go on
 * reading the leg, which misses the writes made since.  The mirror master
 * decides, and it is the metadata server (one election for both roles: the
 * server is chosen by the membership, every node knows it, and it moves
 * with a relocation or a recovery).  The node whose I/O failed asks it
 * (LEG_FAILED, or a call in process on the server's node); the master marks
 * the leg out in memory and in the labels (two phases, xvm_leg_out_commit),
 * then tells every member (LEG_OUT) and answers once each has it out.  A
 * node told so marks the leg out in memory only, without waiting for I/O,
 * so LEG_OUT is an answers-lane message (cl_node.c, "lanes").  A master
 * that dies mid-way is replaced by the recovered server, which the asking
 * node asks again; marking out is idempotent, so the new master tells
 * everyone again.  A node that joins later assembles the volume from the
 * labels, which say the leg is out.
 *
 * A revive runs on the master (cxfsctl volume revive on the metadata
 * server): at each change of a mirror's state (legs reviving, the next chunk
 * to copy, the end) it calls MIRROR_STATE on every member, which takes the
 * state (writes below the revive point reach the reviving legs too, writes
 * over the chunk being copied wait) and answers once its own writes in
 * flight over that chunk are done; only then is the chunk copied.  This is
 * the seed's overlap queue turned round: the master tells every node the
 * one busy chunk, instead of every write above the revive point asking the
 * master "proceed or overlaps?".  MIRROR_STATE waits for I/O, so it is a
 * requests-lane message.  A change of server drops the busy ranges a node
 * was given (cl_mirror_unbusy), so a master that dies leaves no write
 * waiting.
 *
 * The dirty-region log (xvm_drl.c): every node logs its mirror writes in a
 * slot of its own (its node number less one) and only it writes that slot.
 * The master resyncs a slot, never clears it: its sweep (cl_mirror_sweep)
 * takes the slots with regions of every node that is not a member, when it
 * starts serving (a server that died, a node that died while no server
 * ran) and after it fenced a node, and its own last run's.  A
 * client that starts with regions of its last run in its slot asks the
 * master (DRL_RESYNC, requests lane: it copies) and drops them once
 * answered; until then they stay in every image of its slot, so a second
 * death before that loses nothing.  A slot a dead node left dirty is
 * resynced again at each start of a server until the node comes back:
 * only time, since a resync never changes what a read returns.
 *
 * The config server (the metadata server too) changes the layout while the
 * volume is in use, only by appending to the tree (xvm.h, online changes):
 * every member opens the new LUN (VOL_CHANGE OPEN; one that cannot names
 * itself and every node closes it again), the server commits the labels,
 * every member takes the committed tree (ADOPT).  A detach first makes the
 * leg write-only everywhere (MIRROR_STATE), then detached in the labels,
 * then on every member (DETACH), and only then wipes its LUNs' labels.  Its
 * calls wait only for a member's LUN login and label read, never for the
 * server.
 *
 * Lock order: cl_ctx.leg_mu (held across the master's calls to the nodes) ->
 * cl_ctx.mu (to read the members) -> the volume's locks (xvm.h).  LEG_OUT's
 * handler takes only the volume's lock.
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cx_intr.h"
#include "membership/cms.h"
#include "rpc/rpc.h"
#include "xvm/xvm.h"

#define CL_LEG_CALL_MS 2000u            /* one LEG_OUT call to a node */
#define CL_LEG_TELL_MS 60000            /* a member that never answers is given up then */

static const char *node_name(struct cl_ctx *cx, uint32_t node)
{
	const struct cms_node *n = cl_node_by_id(cx, node);

	return n ? cms_node_name(n) : "?";
}

/* The err of a STATUS_REPLY or ERROR_REPLY @rep of type @rt, which it frees. */
static int reply_err(Cxfs__MsgType rt, ProtobufCMessage *rep)
{
	int err = rt == CXFS__MSG_TYPE__STATUS_REPLY ? ((Cxfs__StatusReply *)rep)->err
						     : ((Cxfs__ErrorReply *)rep)->err;

	rpc_msg_free(rep);
	return err;
}

/*
 * Call member @node with @type, again until it answers, it leaves the
 * membership (fenced: it writes nothing more) or CL_LEG_TELL_MS pass; 0
 * once it answered.  With @why (a layout change), the node's refusal is
 * returned and its reason written there; without (LEG_OUT, MIRROR_STATE), a
 * node whose tree differs says so in its log and counts as answered.
 * @what names the message in the log.
 */
static int tell_node(struct cl_ctx *cx, uint32_t node, Cxfs__MsgType type, ProtobufCMessage *m,
		     const char *what, unsigned call_ms, char *why, size_t whylen)
{
	int64_t end = cx_intr_now_ns() + (int64_t)CL_LEG_TELL_MS * 1000000;
	int rc = -ENOTCONN;

	while (cl_member_up(cx, node)) {
		struct rpc_chan *ch = cl_node_chan(cx, node);
		ProtobufCMessage *rep = NULL;
		Cxfs__MsgType rt;

		if (ch) {
			rc = rpc_call(ch, type, m, call_ms, &rt, &rep);
			rpc_chan_put(ch);
			if (rc == 0) {
				if (why && rt == CXFS__MSG_TYPE__ERROR_REPLY)
					snprintf(why, whylen, "node %s: %s", node_name(cx, node),
						 ((Cxfs__ErrorReply *)rep)->message
						 ? ((Cxfs__ErrorReply *)rep)->message
						 : strerror(-((Cxfs__ErrorReply *)rep)->err));
				rc = reply_err(rt, rep);
				if (rc == 0 || why)
					return rc;
				if (rc == -EINVAL || rc == -EIO)
					return 0;
			}
		}
		if (rc == -EINTR || cx_intr_now_ns() > end)
			break;
		rc = cx_intr_sleep_ms(50);
		if (rc)
			break;
	}
	if (!cl_member_up(cx, node))
		return 0;
	fprintf(stderr, "cxfsd: mirror master: node %s did not take the %s (%s)\n",
		node_name(cx, node), what, strerror(rc < 0 ? -rc : EIO));
	if (why)
		snprintf(why, whylen, "node %s did not answer the %s: %s", node_name(cx, node), what,
			 strerror(rc < 0 ? -rc : EIO));
	return rc ? rc : -EIO;
}

/* Call every member but this node with @type (tell_node); the first error. */
static int tell_members(struct cl_ctx *cx, Cxfs__MsgType type, ProtobufCMessage *m,
			const char *what, unsigned call_ms, char *why, size_t whylen)
{
	uint64_t members;
	int rc = 0;

	pthread_mutex_lock(&cx->mu);
	members = cx->members;
	pthread_mutex_unlock(&cx->mu);
	for (uint32_t node = 1; node <= CMS_MAX_NODES && !rc; node++)
		if (node != cx->self_id && (members & CMS_BIT(node - 1)))
			rc = tell_node(cx, node, type, m, what, call_ms, why, whylen);
	return rc;
}

/* The mirror master: leg @leg of mirror @mirror is out here, in the labels and on every member. */
static int master_leg_out(struct cl_ctx *cx, struct xvm_vol *vol, unsigned mirror, unsigned leg)
{
	Cxfs__LegOut m = CXFS__LEG_OUT__INIT;
	char uuid[33], what[64];
	uint64_t gen = 0;
	int rc;

	pthread_mutex_lock(&cx->leg_mu);
	rc = xvm_leg_out_commit(vol, mirror, leg, &gen);
	if (rc)
		goto out;
	xvm_uuid(vol, uuid);
	m.volume = uuid;
	m.mirror = mirror;
	m.leg = leg;
	m.generation = gen;
	snprintf(what, sizeof(what), "failed leg of mirror %u", mirror);
	rc = tell_members(cx, CXFS__MSG_TYPE__LEG_OUT, &m.base, what, CL_LEG_CALL_MS, NULL, 0);
out:
	pthread_mutex_unlock(&cx->leg_mu);
	return rc;
}

/* The xvm cluster op (xvm.h): this node's I/O to a leg failed. */
static int leg_failed(void *arg, struct xvm_vol *vol, unsigned mirror, unsigned leg)
{
	struct cl_ctx *cx = arg;
	char uuid[33];
	int rc;

	xvm_uuid(vol, uuid);
	fprintf(stderr, "cxfsd: leg %u of mirror %u failed I/O here: asking the mirror master to "
		"mark it out\n", leg, mirror);
	for (;;) {
		Cxfs__LegFailed m = CXFS__LEG_FAILED__INIT;
		ProtobufCMessage *rep = NULL;
		Cxfs__MsgType rt;

		if (atomic_load(&cx->is_server))
			return master_leg_out(cx, vol, mirror, leg);
		m.volume = uuid;
		m.mirror = mirror;
		m.leg = leg;
		rc = cl_mds_call(cx, CXFS__MSG_TYPE__LEG_FAILED, &m.base, &rt, &rep);
		if (rc == 0)
			return reply_err(rt, rep);
		/* No server to ask: this node may have become it. */
		if (rc != -ENOTCONN || (rc = cl_mds_pause(cx)))
			return rc;
	}
}

/*
 * The xvm cluster op (xvm.h): the revive running here (cxfsctl volume revive
 * on the metadata server) changed a mirror's state; every member takes it
 * before the revive goes on.  Only the master revives: one that stopped
 * being the server stops (the legs stay reviving; revive again on the new
 * one, whose members forgot the busy ranges at the change, cl_mirror_unbusy).
 */
static int mirror_state(void *arg, struct xvm_vol *vol, const struct xvm_mirror_state *st)
{
	struct cl_ctx *cx = arg;
	Cxfs__MirrorState m = CXFS__MIRROR_STATE__INIT;
	uint32_t legs[XVM_MAX_LEGS];
	char uuid[33], what[64];

	if (!atomic_load(&cx->is_server))
		return -EAGAIN;
	xvm_uuid(vol, uuid);
	m.volume = uuid;
	m.mirror = st->mirror;
	m.n_leg_state = st->nlegs < XVM_MAX_LEGS ? st->nlegs : XVM_MAX_LEGS;
	for (size_t c = 0; c < m.n_leg_state; c++)
		legs[c] = st->leg_state[c];
	m.leg_state = legs;
	m.revive_point = st->revive_point;
	m.busy_lo = st->busy_lo;
	m.busy_hi = st->busy_hi;
	m.generation = st->generation;
	m.n_ahead = st->nahead;
	m.ahead = (uint32_t *)st->ahead;
	snprintf(what, sizeof(what), "revive state of mirror %u", st->mirror);
	return tell_members(cx, CXFS__MSG_TYPE__MIRROR_STATE, &m.base, what, CL_LEG_CALL_MS, NULL, 0);
}

/*
 * The xvm cluster op (xvm.h): a read here met a chunk not revived yet; the
 * master's revive copies it next.  One-way: a lost hint only means the
 * chunk is copied in order.
 */
static void read_hint(void *arg, struct xvm_vol *vol, unsigned mirror, uint64_t off)
{
	struct cl_ctx *cx = arg;
	Cxfs__RepairHint m = CXFS__REPAIR_HINT__INIT;
	struct rpc_chan *ch;
	char uuid[33];

	if (atomic_load(&cx->is_server) || !(ch = cl_mds_chan(cx)))
		return;
	xvm_uuid(vol, uuid);
	m.volume = uuid;
	m.mirror = mirror;
	m.off = off;
	(void)rpc_send(ch, CXFS__MSG_TYPE__REPAIR_HINT, &m.base);
	rpc_chan_put(ch);
}

const struct xvm_cluster_ops cl_xvm_ops = {
	.leg_failed = leg_failed, .mirror_state = mirror_state, .read_hint = read_hint,
};

/* The leg messages name the volume: refuse those of another. */
static bool our_volume(struct cl_ctx *cx, const char *volume)
{
	char uuid[33];

	xvm_uuid(cx->dev, uuid);
	return volume && uuid[0] && strcmp(volume, uuid) == 0;
}

static int reply_status(struct rpc_req *req, int err)
{
	Cxfs__StatusReply r = CXFS__STATUS_REPLY__INIT;

	r.err = err;
	return rpc_reply(req, CXFS__MSG_TYPE__STATUS_REPLY, &r.base);
}

int cl_mirror_leg_failed(struct cl_ctx *cx, uint32_t node, struct rpc_req *req,
			 const Cxfs__LegFailed *m)
{
	if (!our_volume(cx, m->volume))
		return reply_status(req, -EINVAL);
	fprintf(stderr, "cxfsd: mirror master: node %s failed I/O to leg %u of mirror %u\n",
		node_name(cx, node), m->leg, m->mirror);
	return reply_status(req, master_leg_out(cx, cx->dev, m->mirror, m->leg));
}

int cl_mirror_leg_out(struct cl_ctx *cx, struct rpc_req *req, const Cxfs__LegOut *m)
{
	if (!our_volume(cx, m->volume))
		return reply_status(req, -EINVAL);
	return reply_status(req, xvm_leg_out_told(cx->dev, m->mirror, m->leg, m->generation));
}

int cl_mirror_state(struct cl_ctx *cx, struct rpc_req *req, const Cxfs__MirrorState *m)
{
	struct xvm_mirror_state st = { 0 };

	if (!our_volume(cx, m->volume) || m->n_leg_state > XVM_MAX_LEGS)
		return reply_status(req, -EINVAL);
	st.mirror = m->mirror;
	st.nlegs = (unsigned)m->n_leg_state;
	for (size_t c = 0; c < m->n_leg_state; c++) {
		if (m->leg_state[c] > UINT8_MAX)
			return reply_status(req, -EINVAL);
		st.leg_state[c] = (uint8_t)m->leg_state[c];
	}
	st.revive_point = m->revive_point;
	st.busy_lo = m->busy_lo;
	st.busy_hi = m->busy_hi;
	st.generation = m->generation;
	if (m->n_ahead > XVM_REPAIR_MAX)
		return reply_status(req, -EINVAL);
	st.nahead = (unsigned)m->n_ahead;
	memcpy(st.ahead, m->ahead, m->n_ahead * sizeof(st.ahead[0]));
	return reply_status(req, xvm_mirror_state_apply(cx->dev, &st));
}

int cl_mirror_repair_hint(struct cl_ctx *cx, const Cxfs__RepairHint *m)
{
	if (our_volume(cx, m->volume))
		xvm_read_hint(cx->dev, m->mirror, m->off);
	return 0;
}

void cl_mirror_unbusy(struct cl_ctx *cx)
{
	if (cx->dev)
		xvm_mirror_unbusy(cx->dev);
}

/* Stop a resync when the node stops (xvm_progress_fn). */
static int resync_stop(void *arg, unsigned mirror, unsigned leg, uint64_t done, uint64_t total)
{
	struct cl_ctx *cx = arg;

	(void)mirror;
	(void)leg;
	(void)done;
	(void)total;
	return !atomic_load(&cx->ready);
}

/* The master: resync slot @slot (node @slot + 1's); @why for the log. */
static int resync_slot(struct cl_ctx *cx, unsigned slot, const char *why)
{
	int64_t t0 = cx_intr_now_ns();
	unsigned regions, total;
	char err[256] = "";
	int rc;

	rc = xvm_drl_resync(cx->dev, slot, resync_stop, cx, &regions, &total, err, sizeof(err));
	if (rc)
		fprintf(stderr, "cxfsd: mirror master: dirty-region log of node %s (%s): %s\n",
			node_name(cx, slot + 1), why, err);
	else
		fprintf(stderr, "cxfsd: mirror master: dirty-region log of node %s (%s): resynced "
			"%u of %u regions (%.0f ms)\n", node_name(cx, slot + 1), why, regions, total,
			(double)(cx_intr_now_ns() - t0) / 1e6);
	return rc;
}

int cl_mirror_drl_start(struct cl_ctx *cx, struct xvm_vol *dev, char *err, size_t errlen)
{
	int n = xvm_drl_start(dev, cx->self_id - 1, err, errlen);

	if (n > 0)
		fprintf(stderr, "cxfsd: dirty-region log: %d region(s) of this node's last run are "
			"not resynced yet: the mirror master resyncs them\n", n);
	atomic_store(&cx->drl_left, n > 0);
	return n < 0 ? n : 0;
}

/* The master's sweep: the slots of the nodes that are not members, and this node's own. */
static void sweep_run(void *arg)
{
	struct cl_ctx *cx = arg;
	uint64_t dirty = xvm_drl_dirty_slots(cx->dev), members;

	pthread_mutex_lock(&cx->mu);
	members = cx->members;
	pthread_mutex_unlock(&cx->mu);
	for (unsigned s = 0; s < CMS_MAX_NODES && atomic_load(&cx->ready); s++) {
		if (!(dirty >> s & 1) || !atomic_load(&cx->is_server))
			continue;
		if (s + 1 == cx->self_id) {
			/* Its live regions are there too: only what its last run left needs it. */
			if (atomic_load(&cx->drl_left) &&
			    resync_slot(cx, s, "this node's last run") == 0) {
				xvm_drl_resynced(cx->dev);
				atomic_store(&cx->drl_left, false);
			}
		} else if (!(members & CMS_BIT(s))) {
			(void)resync_slot(cx, s, "not a member");
		}
	}
}

/* A client: the master resyncs what its last run left in its slot. */
static void ask_run(void *arg)
{
	struct cl_ctx *cx = arg;
	char uuid[33];
	int rc;

	xvm_uuid(cx->dev, uuid);
	while (atomic_load(&cx->ready) && atomic_load(&cx->drl_left) &&
	       !atomic_load(&cx->is_server)) {
		Cxfs__DrlResync m = CXFS__DRL_RESYNC__INIT;
		ProtobufCMessage *rep = NULL;
		Cxfs__MsgType rt;

		m.volume = uuid;
		m.slot = cx->self_id - 1;
		rc = cl_mds_call(cx, CXFS__MSG_TYPE__DRL_RESYNC, &m.base, &rt, &rep);
		if (rc == 0)
			rc = reply_err(rt, rep);
		if (rc == 0) {
			xvm_drl_resynced(cx->dev);
			atomic_store(&cx->drl_left, false);
			fprintf(stderr, "cxfsd: dirty-region log: the mirror master resynced what this "
				"node's last run left\n");
			return;
		}
		if (cx_intr_sleep_ms(1000))
			return;
	}
}

void cl_mirror_attached(struct cl_ctx *cx)
{
	if (atomic_load(&cx->is_server))
		cl_mirror_sweep(cx);
	else if (atomic_load(&cx->drl_left))
		(void)cl_spawn(cx, ask_run, cx);
}

void cl_mirror_sweep(struct cl_ctx *cx)
{
	if (cx->dev)
		(void)cl_spawn(cx, sweep_run, cx);
}

int cl_mirror_drl_resync(struct cl_ctx *cx, uint32_t node, struct rpc_req *req,
			 const Cxfs__DrlResync *m)
{
	if (!our_volume(cx, m->volume) || m->slot != node - 1)
		return reply_status(req, -EINVAL);
	return reply_status(req, resync_slot(cx, m->slot, "asked by it"));
}

/* ---- the config server: layout changes while the volume is in use ------- */

enum { VOLCHG_OPEN = 1, VOLCHG_ADOPT = 2, VOLCHG_CLOSE = 3, VOLCHG_DETACH = 4 };

#define CL_VOLCHG_CALL_MS 30000u        /* opening a LUN may log in to a target */

static int reply_error(struct rpc_req *req, int err, const char *why)
{
	Cxfs__ErrorReply r = CXFS__ERROR_REPLY__INIT;

	r.err = err;
	r.message = (char *)why;
	return rpc_reply(req, CXFS__MSG_TYPE__ERROR_REPLY, &r.base);
}

int cl_mirror_vol_change(struct cl_ctx *cx, struct rpc_req *req, const Cxfs__VolChange *m)
{
	char err[256] = "";
	unsigned leaf;
	int rc = -EINVAL;

	if (!our_volume(cx, m->volume) || m->leaf >= XVM_MAX_LEAVES)
		return reply_status(req, -EINVAL);
	switch (m->phase) {
	case VOLCHG_OPEN:
		if (!m->uri)
			break;
		rc = xvm_lun_open(cx->dev, m->uri, (int)m->leaf, cl_pr_key(cx->cfg, cx->self_id), &leaf,
				  err, sizeof(err));
		break;
	case VOLCHG_ADOPT:
		if (!m->has_label)
			break;
		rc = xvm_adopt(cx->dev, m->label.data, m->label.len, err, sizeof(err));
		if (!rc)
			fprintf(stderr, "cxfsd: volume change: took the layout of the config server "
				"(LUN %s is LUN number %u)\n", m->uri ? m->uri : "?", m->leaf);
		break;
	case VOLCHG_CLOSE:
		xvm_lun_close(cx->dev, m->leaf);
		rc = 0;
		break;
	case VOLCHG_DETACH:
		if (!m->has_mirror || !m->has_leg || !m->has_generation)
			break;
		rc = xvm_detach_told(cx->dev, m->mirror, m->leg, m->generation);
		if (rc)
			snprintf(err, sizeof(err), "mirror %u has no leg %u here", m->mirror, m->leg);
		break;
	}
	if (!rc)
		return reply_status(req, 0);
	if (!err[0])
		snprintf(err, sizeof(err), "malformed volume change");
	fprintf(stderr, "cxfsd: volume change refused: %s\n", err);
	return reply_error(req, rc, err);
}

/* Is this node the config server (the metadata server)?  If not, @err says so. */
static bool config_server(struct cl_ctx *cx, char *err, size_t errlen)
{
	if (atomic_load(&cx->is_server))
		return true;
	snprintf(err, errlen, "the volume's layout is changed by its config server, the metadata "
		 "server: run it there");
	return false;
}

int cl_volume_change(struct cl_ctx *cx, int mirror, const char *uri, char *err, size_t errlen)
{
	unsigned char *img = NULL;
	Cxfs__VolChange m = CXFS__VOL_CHANGE__INIT;
	char uuid[33];
	unsigned leaf;
	int rc;

	if (!config_server(cx, err, errlen))
		return -EAGAIN;
	/* One change or leg decision at a time; each call to a node ends with its own I/O. */
	pthread_mutex_lock(&cx->leg_mu);
	rc = xvm_lun_open(cx->dev, uri, -1, cl_pr_key(cx->cfg, cx->self_id), &leaf, err, errlen);
	if (rc)
		goto out_unlock;
	xvm_uuid(cx->dev, uuid);
	m.volume = uuid;
	m.leaf = leaf;
	m.uri = (char *)uri;
	/* 1: every member opens the LUN (the config server's rule: every node has a path to it). */
	m.phase = VOLCHG_OPEN;
	rc = tell_members(cx, CXFS__MSG_TYPE__VOL_CHANGE, &m.base, "new LUN", CL_VOLCHG_CALL_MS, err,
			  errlen);
	/* 2: the labels, two phases over every LUN; the change is made here. */
	if (!rc)
		rc = mirror >= 0 ? xvm_attach_lun(cx->dev, (unsigned)mirror, leaf, err, errlen)
				 : xvm_grow_lun(cx->dev, leaf, 1, err, errlen);
	if (rc) {
		m.phase = VOLCHG_CLOSE;
		(void)tell_members(cx, CXFS__MSG_TYPE__VOL_CHANGE, &m.base, "closing of the new LUN",
				   CL_LEG_CALL_MS, NULL, 0);
		xvm_lun_close(cx->dev, leaf);
		goto out_unlock;
	}
	fprintf(stderr, "cxfsd: config server: %s %s (LUN number %u) in the labels\n",
		mirror >= 0 ? "attached" : "appended", uri, leaf);
	/*
	 * 3: every member takes the layout.  One that cannot (it says why) has
	 * the new LUN outside its tree: it writes nothing there, and a revive of
	 * the new leg stops at it (its tree does not fit the revive's state).
	 */
	img = malloc(XVM_LABEL_SIZE);
	rc = img ? xvm_label_image(cx->dev, img) : -ENOMEM;
	if (!rc) {
		m.phase = VOLCHG_ADOPT;
		m.has_label = true;
		m.label.data = img;
		m.label.len = XVM_LABEL_SIZE;
		rc = tell_members(cx, CXFS__MSG_TYPE__VOL_CHANGE, &m.base, "new layout",
				  CL_VOLCHG_CALL_MS, err, errlen);
	}
	if (rc && !err[0])
		snprintf(err, errlen, "%s", strerror(-rc));
	free(img);
out_unlock:
	pthread_mutex_unlock(&cx->leg_mu);
	return rc;
}

int cl_volume_detach(struct cl_ctx *cx, unsigned mirror, unsigned leg, char *err, size_t errlen)
{
	Cxfs__VolChange m = CXFS__VOL_CHANGE__INIT;
	char uuid[33];
	uint64_t gen = 0;
	int rc;

	if (!config_server(cx, err, errlen))
		return -EAGAIN;
	pthread_mutex_lock(&cx->leg_mu);
	/* 1: nobody reads the leg any more (every node still writes it). */
	rc = xvm_detach_begin(cx->dev, mirror, leg, err, errlen);
	/* 2: detached in the labels; 3: every node stops writing it. */
	if (!rc)
		rc = xvm_detach_commit(cx->dev, mirror, leg, &gen, err, errlen);
	if (!rc) {
		xvm_uuid(cx->dev, uuid);
		m.volume = uuid;
		m.phase = VOLCHG_DETACH;
		m.has_mirror = m.has_leg = m.has_generation = true;
		m.mirror = mirror;
		m.leg = leg;
		m.generation = gen;
		rc = tell_members(cx, CXFS__MSG_TYPE__VOL_CHANGE, &m.base, "detach", CL_LEG_CALL_MS,
				  err, errlen);
	}
	/* 4: its LUNs leave the volume, once no node writes them. */
	if (!rc)
		xvm_detach_finish(cx->dev, mirror, leg);
	pthread_mutex_unlock(&cx->leg_mu);
	if (!rc)
		fprintf(stderr, "cxfsd: config server: leg %u of mirror %u detached\n", leg, mirror);
	return rc;
}
