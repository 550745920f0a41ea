/*
 * cl_dm.c - DMAPI in a cluster: the dmapi behavior's port on each node (the
 * DMAPI token through the node's token client; events to the MDS), the MDS's
 * DMAPI context (dm_fs) and its requests from other nodes, and the requests
 * of this node's DMAPI socket (INFO answered here, the rest by the MDS).
 *
 * A client caches a file's event list and regions with its DMAPI token: a
 * grant of the token carries them (cl_server.c fills them, cl_client.c
 * keeps them), and they stay current while the token is held, since the MDS
 * changes them only with the token taken at WRITE from every node.
 *
 * Lock order: cl_inode.mu is taken alone here; no lock is held across a
 * token acquire, an RPC or a wait for the HSM.
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/cx_intr.h"
#include "dmapi/dm_bhv.h"
#include "dmapi/dm_fs.h"
#include "dmapi/dm_op.h"
#include "membership/cms_config.h"

static void dmapi_set(struct tok_set *s, enum tok_level level)
{
	tok_set_clear(s);
	tok_set_add(s, TOK_DMAPI, level);
}

/* ---- the port ------------------------------------------------------------- */

/* Keep @ino's event list and regions from a grant or an answer in @ci. */
static void keep_lists(struct cl_inode *ci, uint32_t events, Cxfs__DmRegion **r, size_t n)
{
	pthread_mutex_lock(&ci->mu);
	ci->dm_events = events & DM_EV_ALL;
	for (size_t i = 0; i < n; i++) {
		ci->dm_regions[i].off = r[i]->off;
		ci->dm_regions[i].len = r[i]->len;
		ci->dm_regions[i].events = r[i]->events & DM_EV_DATA;
	}
	ci->dm_nregions = n;
	ci->dm_valid = true;
	pthread_mutex_unlock(&ci->mu);
}

/*
 * A client holding @ino's DMAPI token whose lists went with an earlier
 * inode state asks the MDS for them; they cannot change while it holds it.
 */
static int fetch_lists(struct cl_ctx *cx, struct cl_inode *ci)
{
	Cxfs__DmRequest m = CXFS__DM_REQUEST__INIT;
	ProtobufCMessage *rep = NULL;
	const Cxfs__DmReply *r;
	Cxfs__MsgType rt;
	int rc;

	m.op = DM_OP_GET_REGIONS;
	m.has_ino = 1;
	m.ino = ci->ino;
	rc = cl_mds_call(cx, CXFS__MSG_TYPE__DM_REQUEST, &m.base, &rt, &rep);
	if (rc)
		return rc == -RPC_EEARLY ? -EAGAIN : rc;
	if (rt == CXFS__MSG_TYPE__ERROR_REPLY) {
		rc = ((Cxfs__ErrorReply *)rep)->err;
		goto out;
	}
	r = (const Cxfs__DmReply *)rep;
	rc = r->err;
	if (!rc && r->n_regions > DM_MAX_REGIONS)
		rc = -EPROTO;
	if (!rc)
		keep_lists(ci, r->events, r->regions, r->n_regions);
out:
	rpc_msg_free(rep);
	return rc;
}

static int p_hold(void *arg, uint64_t ino, enum dm_event ev, uint64_t off, uint64_t len)
{
	struct cl_ctx *cx = arg;
	struct tok_set want;
	struct cl_inode *ci;
	int rc;

	dmapi_set(&want, TOK_READ);
	rc = cl_acquire(cx, ino, &want);
	if (rc)
		return rc;
	if (cx->dmfs)
		return dm_fs_check(cx->dmfs, ino, ev, off, len);
	ci = cl_inode_get(cx, ino, true);
	if (!ci) {
		rc = -ENOMEM;
		goto out_release;
	}
	pthread_mutex_lock(&ci->mu);
	rc = ci->dm_valid ? 0 : 1;
	pthread_mutex_unlock(&ci->mu);
	if (rc)
		rc = fetch_lists(cx, ci);
	if (!rc) {
		pthread_mutex_lock(&ci->mu);
		rc = dm_match(ci->dm_regions, ci->dm_nregions, ci->dm_events, ev, off, len);
		pthread_mutex_unlock(&ci->mu);
	}
	cl_inode_put(cx, ci);
	if (rc >= 0)
		return rc;
out_release:
	tok_client_release(cx->tc, ino, &want);
	return rc;
}

static void p_unhold(void *arg, uint64_t ino)
{
	struct cl_ctx *cx = arg;
	struct tok_set want;

	dmapi_set(&want, TOK_READ);
	tok_client_release(cx->tc, ino, &want);
}

/* One slice of an event at the MDS, from another node. */
static int remote_event(struct cl_ctx *cx, uint64_t ino, enum dm_event ev, uint64_t off,
			uint64_t len, uint64_t *token)
{
	Cxfs__DmRequest m = CXFS__DM_REQUEST__INIT;
	ProtobufCMessage *rep = NULL;
	Cxfs__MsgType rt;
	int rc;

	m.op = DM_OP_EVENT;
	m.has_ino = m.has_type = m.has_off = m.has_len = 1;
	m.ino = ino;
	m.type = ev;
	m.off = off;
	m.len = len;
	if (*token) {
		m.has_token = 1;
		m.token = *token;
	}
	rc = cl_mds_call(cx, CXFS__MSG_TYPE__DM_REQUEST, &m.base, &rt, &rep);
	if (rc)
		return rc == -RPC_EEARLY ? -EINPROGRESS : rc;
	if (rt == CXFS__MSG_TYPE__ERROR_REPLY) {
		rc = ((Cxfs__ErrorReply *)rep)->err;
	} else {
		const Cxfs__DmReply *r = (const Cxfs__DmReply *)rep;

		rc = r->err;
		*token = r->has_token ? r->token : 0;
	}
	rpc_msg_free(rep);
	/* An MDS not serving yet, or busy: ask again. */
	return rc == -EAGAIN ? -EINPROGRESS : rc;
}

static int p_raise(void *arg, uint64_t ino, enum dm_event ev, uint64_t off, uint64_t len)
{
	struct cl_ctx *cx = arg;
	struct timespec t0, now;
	uint64_t token = 0;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		/* The MDS moves away from this node: start again on the new chain. */
		if (cx->is_server && atomic_load(&cx->relocating))
			return -VN_EMIGRATING;
		if (cx->dmfs)
			rc = dm_fs_event(cx->dmfs, ino, ev, off, len, &token);
		else
			rc = remote_event(cx, ino, ev, off, len, &token);
		if (rc != -EINPROGRESS)
			return rc;
		/* An application's request gives up between slices (cx_intr.h). */
		rc = cx_intr_check();
		if (rc)
			return rc;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (cx->dm_timeout_s && now.tv_sec - t0.tv_sec >= (time_t)cx->dm_timeout_s) {
			fprintf(stderr, "cxfsd: dmapi: a %s event of inode %llu was not answered in "
				"%u s: the operation fails with EIO (--dmapi-timeout)\n",
				dm_event_name(ev), (unsigned long long)ino, cx->dm_timeout_s);
			return -EIO;
		}
	}
}

static uint64_t p_inactive(void *arg, uint64_t ino, int gone, uint64_t cookie)
{
	struct cl_ctx *cx = arg;

	return dm_fs_inactive(cx->dmfs, ino, gone, cookie);
}

/* ---- the MDS's DMAPI context --------------------------------------------- */

static void dmfs_log(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "cxfsd: %s\n", line);
}

static int dmfs_excl(void *arg, uint64_t ino, int (*fn)(void *fnarg), void *fnarg)
{
	return cl_server_dmapi_excl(arg, ino, fn, fnarg);
}

static const struct dm_fs_ops cl_dmfs_ops = {
	.excl = dmfs_excl,
	.log = dmfs_log,
};

/*
 * Where this MDS's event tokens start.  Nodes waiting for an event keep its
 * token across a move of the MDS (a relocation or a recovery) and ask the
 * next MDS with it; that one must find no event under it, or they would
 * wait on, and take the answer of, another file's event.  Tokens start at
 * the node id (below CL_MAX_NODES, 8 bits) in the top byte and the
 * wall-clock millisecond (40 bits, 34 years before it wraps) times 2^16
 * below it: two MDSs on two nodes never share a token, and a node serving
 * again gives out tokens above those of its last turn.
 */
static uint64_t token_floor(const struct cl_ctx *cx)
{
	struct timespec t;
	uint64_t ms;

	clock_gettime(CLOCK_REALTIME, &t);
	ms = (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
	return (uint64_t)cx->self_id << 56 | (ms & ((UINT64_C(1) << 40) - 1)) << 16;
}

int cl_dm_attach(struct cl_ctx *cx, bool enabled)
{
	struct dm_fs *dmfs;
	int rc;

	cx->dm_enabled = enabled;
	if (!enabled)
		return 0;
	cx->dm_port.hold = p_hold;
	cx->dm_port.unhold = p_unhold;
	cx->dm_port.raise = p_raise;
	cx->dm_port.arg = cx;
	if (!cx->is_server)
		return 0;
	cx->dm_port.inactive = p_inactive;
	rc = dm_fs_create(cx->st, &cl_dmfs_ops, cx, token_floor(cx), &dmfs);
	if (rc) {
		fprintf(stderr, "cxfsd: cannot load the DMAPI event lists: %s\n", strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&cx->dm_mu);
	cx->dmfs = dmfs;
	pthread_mutex_unlock(&cx->dm_mu);
	return 0;
}

void cl_dm_detach(struct cl_ctx *cx)
{
	struct dm_fs *dmfs = cx->dmfs;

	pthread_mutex_lock(&cx->dm_mu);   /* a metrics scrape reading it ends first */
	cx->dmfs = NULL;
	pthread_mutex_unlock(&cx->dm_mu);
	dm_fs_destroy(dmfs);
}

int cl_dm_shape(struct cl_ctx *cx, struct vnode *vn)
{
	return cx->dm_enabled ? dm_bhv_push(vn, &cx->dm_port) : 0;
}

void cl_dm_grant(struct cl_ctx *cx, uint64_t ino, Cxfs__TokenGrant *g, Cxfs__DmRegion *regs,
		 Cxfs__DmRegion **ptrs)
{
	struct dm_region r[DM_MAX_REGIONS];
	dm_eventset_t events = 0;
	size_t n = cx->dmfs ? dm_fs_file(cx->dmfs, ino, &events, r) : 0;

	g->has_dm_events = 1;
	g->dm_events = events;
	for (size_t i = 0; i < n; i++) {
		cxfs__dm_region__init(&regs[i]);
		regs[i].off = r[i].off;
		regs[i].len = r[i].len;
		regs[i].events = r[i].events;
		ptrs[i] = &regs[i];
	}
	g->n_dm_regions = n;
	g->dm_regions = ptrs;
}

void cl_dm_granted(struct cl_ctx *cx, uint64_t ino, const Cxfs__TokenGrant *g)
{
	struct cl_inode *ci;

	if (!g->has_dm_events || g->n_dm_regions > DM_MAX_REGIONS)
		return;
	ci = cl_inode_get(cx, ino, false);
	if (!ci)
		return;   /* nobody uses the file: p_hold asks when it does */
	keep_lists(ci, g->dm_events, g->dm_regions, g->n_dm_regions);
	cl_inode_put(cx, ci);
}

int cl_dm_handle(struct cl_ctx *cx, struct rpc_req *req, const Cxfs__DmRequest *m)
{
	struct dm_reply *out;
	int rc;

	if (!cx->dmfs)
		return -EOPNOTSUPP;
	if (m->op == DM_OP_INFO)
		return -EINVAL;
	out = dm_reply_new();
	if (!out)
		return -ENOMEM;
	dm_fs_handle(cx->dmfs, 0, m, out);
	rc = rpc_reply(req, CXFS__MSG_TYPE__DM_REPLY, &dm_reply_msg(out)->base);
	dm_reply_free(out);
	return rc;
}

/* ---- this node's DMAPI socket -------------------------------------------- */

static void info(struct cl_ctx *cx, Cxfs__DmReply *r, char *server, size_t size)
{
	const struct cms_node *srv = NULL;
	struct statvfs sv;
	uint32_t sid;

	pthread_mutex_lock(&cx->mu);
	sid = cx->server_id;
	pthread_mutex_unlock(&cx->mu);
	if (sid)
		srv = cms_config_node_at(cx->cfg, sid - 1);
	snprintf(server, size, "%s", srv ? cms_node_name(srv) : "");
	r->has_is_server = r->has_dmapi = 1;
	r->is_server = cx->is_server;
	r->dmapi = cx->dm_enabled;
	r->node = (char *)cms_node_name(cx->self);
	r->server = server;
	r->fs = (char *)cms_fs_name(cx->fs);
	if (cx->is_server && meta_statfs(cx->st, &sv) == 0) {
		r->has_total_bytes = r->has_free_bytes = r->has_block_size = 1;
		r->total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
		r->free_bytes = (uint64_t)sv.f_bfree * sv.f_frsize;
		r->block_size = (uint32_t)sv.f_frsize;
	}
}

/* Pack @r into a new buffer. */
static int pack(const ProtobufCMessage *r, uint8_t **buf, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(r);

	*buf = malloc(n ? n : 1);
	if (!*buf)
		return -ENOMEM;
	*len = protobuf_c_message_pack(r, *buf);
	return 0;
}

int cl_dm_request(struct cl_ctx *cx, uint64_t conn, const Cxfs__DmRequest *req, uint8_t **buf,
		  size_t *len)
{
	Cxfs__DmReply r = CXFS__DM_REPLY__INIT;
	ProtobufCMessage *rep = NULL;
	Cxfs__DmRequest fwd;
	Cxfs__MsgType rt;
	char server[RPC_NAME_MAX + 1];
	int rc;

	if (req->op == DM_OP_INFO) {
		info(cx, &r, server, sizeof(server));
		return pack(&r.base, buf, len);
	}
	if (!cx->dm_enabled) {
		r.err = -EOPNOTSUPP;
		return pack(&r.base, buf, len);
	}
	/* Served here while this node is the MDS and stays it (see kore.c). */
	for (;;) {
		atomic_fetch_add(&cx->handlers, 1);
		if (cx->dmfs && !atomic_load(&cx->relocating)) {
			struct dm_reply *out = dm_reply_new();

			rc = -ENOMEM;
			if (out) {
				dm_fs_handle(cx->dmfs, conn, req, out);
				rc = pack(&dm_reply_msg(out)->base, buf, len);
				dm_reply_free(out);
			}
			atomic_fetch_sub(&cx->handlers, 1);
			return rc;
		}
		atomic_fetch_sub(&cx->handlers, 1);
		if (!cx->is_server || !atomic_load(&cx->relocating))
			break;
		usleep(2000);
	}
	fwd = *req;     /* a copy cl_mds_call may stamp (a DM request has no id: it does not) */
	rc = cl_mds_call(cx, CXFS__MSG_TYPE__DM_REQUEST, &fwd.base, &rt, &rep);
	if (rc) {
		r.err = rc == -RPC_EEARLY || rc == -VN_EMIGRATING ? -EAGAIN : rc;
		return pack(&r.base, buf, len);
	}
	if (rt == CXFS__MSG_TYPE__ERROR_REPLY) {
		r.err = ((Cxfs__ErrorReply *)rep)->err;
		rc = pack(&r.base, buf, len);
	} else {
		rc = pack(rep, buf, len);
	}
	rpc_msg_free(rep);
	return rc;
}

void cl_dm_conn_gone(struct cl_ctx *cx, uint64_t conn)
{
	if (cx->dmfs)
		dm_fs_conn_gone(cx->dmfs, conn);
}

void cl_dm_set_timeout(struct cl_ctx *cx, unsigned seconds)
{
	cx->dm_timeout_s = seconds;
}

void cl_set_store_opts(struct cl_ctx *cx, const struct meta_store_opts *so)
{
	cx->store_opts = *so;
}
