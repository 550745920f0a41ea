/*
 * cl_member.c - the cluster's side of the membership (src/membership/cms):
 * joining before serving, what each new membership means for this node
 * (the epoch of its messages, the nodes the MDS recovers after fencing
 * them, being cut off and taken back), the disk tie-breaker, and this
 * node's reservation key.
 *
 * A node that is cut off (no quorum, or a membership without it) stops at
 * once: new requests wait at the gate (cl_gate_wait), every token and every
 * cache goes (the MDS drops the node's tokens when it recovers it, after
 * the fence), and nothing is written until a membership takes it back and
 * it has registered its key anew.
 *
 * Lock order: see cl_i.h.  The membership's callbacks run on its delivery
 * thread (views) and protocol thread (tie-break) with no lock of this layer
 * held.
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xvm/xvm.h"
#include "membership/cms.h"
#include "relocate/corpse.h"

static void member_log(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "cxfsd: %s\n", line);
}

uint64_t cl_pr_key(const struct cms_config *cfg, uint32_t node_id)
{
	const char *s = cms_config_cluster(cfg);
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	/* "CX" in the top bytes, the cluster's hash, the node: never 0, one per node. */
	return (UINT64_C(0x4358) << 48) | ((uint64_t)(h & 0xffffffu) << 24) | (node_id & 0xffffffu);
}

/* Every cache of this node goes: its tokens are lost (cl_member.c head). */
static void lose_everything(struct cl_ctx *cx)
{
	uint64_t *inos = NULL;
	size_t n = 0, cap = 0, lost;

	pthread_mutex_lock(&cx->imu);
	for (size_t b = 0; b < sizeof(cx->ihash) / sizeof(cx->ihash[0]); b++)
		for (struct cl_inode *ci = cx->ihash[b]; ci; ci = ci->hnext) {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 256;
				uint64_t *p = realloc(inos, ncap * sizeof(*p));

				if (!p)
					break;
				inos = p;
				cap = ncap;
			}
			if (n < cap)
				inos[n++] = ci->ino;
		}
	pthread_mutex_unlock(&cx->imu);
	lost = tok_client_lose_all(cx->tc);
	for (size_t i = 0; i < n; i++) {
		struct tok_state st;

		cl_client_drop_data(cx, inos[i]);
		(void)cl_client_duty(cx, inos[i], TOK_DUTY_INVAL_NAMES, &st);
		(void)cl_client_duty(cx, inos[i], TOK_DUTY_INVAL_ATTR, &st);
		(void)cl_client_duty(cx, inos[i], TOK_DUTY_INVAL_EXTENTS, &st);
		(void)cl_client_duty(cx, inos[i], TOK_DUTY_DISCARD, &st);
	}
	free(inos);
	fprintf(stderr, "cxfsd: cut off: dropped the tokens of %zu inode(s) and every cache\n",
		lost);
}

/* Cut the node off (or take it back); returns whether it was cut off before. */
static bool set_cut_off(struct cl_ctx *cx, bool cut)
{
	bool was;

	pthread_mutex_lock(&cx->gate_mu);
	was = cx->cut_off;
	cx->cut_off = cut;
	pthread_cond_broadcast(&cx->gate_cv);
	pthread_mutex_unlock(&cx->gate_mu);
	return was;
}

/* The MDS fences @node (its key goes from the LUN) before recovering it. */
int cl_fence(struct cl_ctx *cx, uint32_t node)
{
	int rc;

	if (!cx->dev || !xvm_is_iscsi(cx->dev))
		return 0;       /* a file volume: one machine, nothing to fence */
	rc = xvm_pr_preempt(cx->dev, cl_pr_key(cx->cfg, node));
	fprintf(stderr, "cxfsd: fence node %s: %s\n", cms_node_name(cl_node_by_id(cx, node)),
		rc ? strerror(-rc) : "its key is preempted on the LUN");
	return rc;
}

/* Drop every cache: a helper thread does it (the fence callback must not block). */
static void lose_run(void *arg)
{
	lose_everything(arg);
}

/*
 * The target refused a write: this node's key is gone (the others fenced
 * it, or the target lost its registrations).  Stop at once, and have the
 * membership take the node back before it registers again.
 */
static void on_fenced(struct xvm_vol *dev, void *arg)
{
	struct cl_ctx *cx = arg;

	(void)dev;
	/* An orderly stop's last writes, after the others took its key: it is going anyway. */
	if (atomic_load(&cx->stopping)) {
		fprintf(stderr, "cxfsd: this node's last writes were refused (its key is gone): it "
			"stops\n");
		return;
	}
	fprintf(stderr, "cxfsd: this node is fenced (the LUN refuses its writes): it stops, drops "
		"its caches and rejoins the membership\n");
	if (!set_cut_off(cx, true))
		(void)cl_spawn(cx, lose_run, cx);
	if (cx->cms)
		cms_rejoin(cx->cms);
}

int cl_register(struct cl_ctx *cx, struct xvm_vol *dev, char *err, size_t errlen)
{
	int rc;

	rc = cl_mirror_drl_start(cx, dev, err, errlen);
	if (rc || !xvm_is_iscsi(dev))
		return rc;
	rc = xvm_pr_register(dev, cl_pr_key(cx->cfg, cx->self_id));
	if (rc == BLK_EFENCED)
		rc = xvm_pr_rejoin(dev, cl_pr_key(cx->cfg, cx->self_id));
	if (!rc)
		rc = xvm_pr_reserve(dev);
	if (rc) {
		snprintf(err, errlen, "cannot register this node's reservation key on %s: %s "
			 "(the target must support SCSI-3 persistent reservations)", xvm_uri(dev),
			 strerror(-rc));
		return rc;
	}
	xvm_set_fence_cb(dev, on_fenced, cx);
	return 0;
}

/*
 * The messages level every member speaks is @level (rpc_ctx_set_level):
 * like the epoch's floor, a fall is accepted at once and spoken once
 * every member accepts it (@settled), a rise spoken at once and required
 * once every member speaks it, so a change never refuses a member's HELLO.
 */
static void set_msg_level(struct cl_ctx *cx, unsigned level, bool settled)
{
	unsigned was = settled ? 0 : atomic_exchange(&cx->msg_level, level);

	if (settled)
		level = atomic_load(&cx->msg_level);
	if (settled || level < was)
		(void)rpc_ctx_set_level_floor(cx->rpc, level);
	if (settled || level > was)
		(void)rpc_ctx_set_level(cx->rpc, level);
}

static void on_view(void *arg, const struct cms_view *v)
{
	struct cl_ctx *cx = arg;
	bool cut;

	if (!v->quorum || !v->member) {
		if (atomic_load(&cx->ready) && !set_cut_off(cx, true))
			lose_everything(cx);
		return;
	}
	rpc_ctx_set_epoch(cx->rpc, v->floor > 1 ? v->floor : 1);
	set_msg_level(cx, v->level[CMS_SUB_MESSAGES], false);
	pthread_mutex_lock(&cx->mu);
	cx->members = v->members;
	cx->fenced &= ~v->members;
	pthread_mutex_unlock(&cx->mu);
	if (cx->is_server && atomic_load(&cx->ready))
		for (size_t i = 0; i < CMS_MAX_NODES; i++) {
			uint32_t node = (uint32_t)i + 1;

			if (!(v->removed & CMS_BIT(i)) || node == cx->self_id)
				continue;
			if (v->withdrawn & CMS_BIT(i)) {
				cl_server_node_lost(cx, node, "withdrew from the membership");
				continue;
			}
			/* Fenced first: its late writes must fail before its work is undone. */
			if (cl_fence(cx, node) == 0) {
				pthread_mutex_lock(&cx->mu);
				cx->fenced |= CMS_BIT(i);
				pthread_mutex_unlock(&cx->mu);
				cl_server_node_lost(cx, node, "left the membership and is fenced");
				cl_mirror_sweep(cx);
			} else {
				cl_server_node_lost(cx, node, "left the membership (fencing failed)");
			}
		}
	/* The server died (or a move was half done): recovery (relocate/corpse.c). */
	if (atomic_load(&cx->ready))
		corpse_view(cx->corpse, v->members, v->removed, v->leader >= 0 ? (uint32_t)v->leader + 1 : 0,
			    v->epoch);
	/* Taken back: registered anew only now, before it serves (writes) again. */
	pthread_mutex_lock(&cx->gate_mu);
	cut = cx->cut_off;
	pthread_mutex_unlock(&cx->gate_mu);
	if (!cut)
		return;
	/*
	 * A server registers only once it knows nobody replaced it
	 * (corpse_rejoined): were its key back first, its store, which the
	 * new server writes now, could take its stale commits.
	 */
	if (!cx->is_server && cl_reregister(cx)) {
		fprintf(stderr, "cxfsd: taken back into the membership (epoch %" PRIu64
			") but the LUN refuses this node's key: it stays cut off\n", v->epoch);
		return;
	}
	fprintf(stderr, "cxfsd: taken back into the membership (epoch %" PRIu64
		"): serving again\n", v->epoch);
	/*
	 * The server may have changed meanwhile: ask (corpse_rejoined).  A
	 * server stays cut off until it knows whether the others replaced it.
	 */
	if (!cx->is_server)
		(void)set_cut_off(cx, false);
	corpse_rejoined(cx->corpse);
}

/*
 * Half of the nodes that may serve are here: race for the LUN.  This node
 * registers, then preempts the others' keys; it won if its own key is
 * still there afterwards (the loser's preempt fails: its key is gone).
 */
static int tie_break(void *arg, uint64_t others)
{
	struct cl_ctx *cx = arg;
	int rc;

	/* Only members race (cms.c), and a member has its volume open: but for a moment at start. */
	if (!cx->dev)
		return -EAGAIN;
	if (!xvm_is_iscsi(cx->dev))
		return -EOPNOTSUPP;
	rc = xvm_pr_register(cx->dev, cl_pr_key(cx->cfg, cx->self_id));
	for (size_t i = 0; !rc && i < CMS_MAX_NODES; i++)
		if (others & CMS_BIT(i))
			rc = xvm_pr_preempt(cx->dev, cl_pr_key(cx->cfg, (uint32_t)i + 1));
	/* The loser's own key is gone: its preempt (or register) says fenced. */
	return rc == 0 ? 1 : rc == BLK_EFENCED ? 0 : rc;
}

/* Every member sends the new floor now: refuse what is older (a cut-off node's). */
static void on_settled(void *arg, uint64_t floor)
{
	struct cl_ctx *cx = arg;

	rpc_ctx_set_floor(cx->rpc, floor > 1 ? floor : 1);
	set_msg_level(cx, 0, true);
}

static const struct cms_ops member_ops = {
	.view = on_view,
	.tie_break = tie_break,
	.settled = on_settled,
};

int cl_member_start(struct cl_ctx *cx, const struct cms_levels *levels, char *err,
		    size_t errlen)
{
	struct cms_opts mo = { .cfg = cx->cfg, .self = cx->self, .ops = &member_ops, .arg = cx,
			       .log = member_log };
	unsigned wait = cms_config_quorum_wait_ms(cx->cfg);
	int rc;

	if (levels)
		mo.levels = *levels;
	rc = cms_start(&mo, &cx->cms);
	if (rc) {
		snprintf(err, errlen, "membership: cannot use UDP port %u on %s: %s",
			 cms_node_port(cx->self), cms_node_address(cx->self), strerror(-rc));
		return rc;
	}
	rc = cms_wait_member(cx->cms, wait ? wait : CMS_QUORUM_WAIT_MS);
	if (rc) {
		snprintf(err, errlen, "no quorum within %u s: a majority of the nodes that may "
			 "serve must be up and reach each other (see cxfsctl status on them)",
			 (wait ? wait : CMS_QUORUM_WAIT_MS) / 1000);
		cms_stop(cx->cms);
		cx->cms = NULL;
		return rc;
	}
	return 0;
}

void cl_member_leave(struct cl_ctx *cx)
{
	if (!cx->cms)
		return;
	(void)cms_leave(cx->cms, 2000);
}

void cl_member_stop(struct cl_ctx *cx)
{
	cms_stop(cx->cms);
	cx->cms = NULL;
}

void cl_member_unregister(struct cl_ctx *cx)
{
	/* Withdrawn, nothing more to write: the key goes (an orderly leave). */
	if (cx->dev && xvm_is_iscsi(cx->dev))
		(void)xvm_pr_unregister(cx->dev);
}

int cl_reregister(struct cl_ctx *cx)
{
	if (!cx->dev || !xvm_is_iscsi(cx->dev))
		return 0;
	if (xvm_pr_rejoin(cx->dev, cl_pr_key(cx->cfg, cx->self_id)) || xvm_pr_reserve(cx->dev))
		return -EACCES;
	return 0;
}

bool cl_cut_off(struct cl_ctx *cx)
{
	bool cut;

	pthread_mutex_lock(&cx->gate_mu);
	cut = cx->cut_off;
	pthread_mutex_unlock(&cx->gate_mu);
	return cut;
}

void cl_uncut(struct cl_ctx *cx)
{
	(void)set_cut_off(cx, false);
}

bool cl_member_up(struct cl_ctx *cx, uint32_t node)
{
	bool up;

	if (node == 0 || node > CMS_MAX_NODES)
		return false;
	pthread_mutex_lock(&cx->mu);
	up = (cx->members & CMS_BIT(node - 1)) != 0;
	pthread_mutex_unlock(&cx->mu);
	return up;
}
