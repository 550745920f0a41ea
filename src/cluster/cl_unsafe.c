/*
 * cl_unsafe.c - unsafe requests and applied-once (see cl_unsafe.h and
 * docs/ARCHITECTURE.md, "Unsafe requests and applied-once").
 *
 * Sections:
 *   1. Fields of any message by name (reqid, oldest, seq, txn, durable,
 *      err): one helper instead of a case per message type.
 *   2. Client: request ids, the unanswered list (for `oldest`), the kept
 *      requests until durable, collect and forget for the recovery engine.
 *   3. Server: the current request of a handler thread, duplicates
 *      answered again, reply stamps, forgetting a node.
 *   4. Replay on a new server.
 *
 * Locks: cl_unsafe.mu and cl_unsafe.smu are leaves (neither is held across
 * a call out; a handler waits on smu's condition only for another handler
 * of the same request id, which waits for nothing of it); the store's
 * mutex is taken inside the store's calls.
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cluster/cl_wire.h"

/* The most blocks runs a replayed allocation may force (as many as an ALLOC reply carries). */
#define CL_UNSAFE_RUNS_MAX 1024

/* ------------------------------------------------------------------ */
/* 1. Fields by name                                                   */
/* ------------------------------------------------------------------ */

/* Field @name of @d if it is a uint64 with label @label, else NULL. */
static const ProtobufCFieldDescriptor *u64_field(const ProtobufCMessageDescriptor *d,
						 const char *name, ProtobufCLabel label)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);

	return f && f->type == PROTOBUF_C_TYPE_UINT64 && f->label == label ? f : NULL;
}

/* Optional uint64 @name of @m: true and *@v if present. */
static bool get_opt(const ProtobufCMessage *m, const char *name, uint64_t *v)
{
	const ProtobufCFieldDescriptor *f = u64_field(m->descriptor, name, PROTOBUF_C_LABEL_OPTIONAL);
	protobuf_c_boolean has;

	if (!f)
		return false;
	memcpy(&has, (const char *)m + f->quantifier_offset, sizeof(has));
	if (has)
		memcpy(v, (const char *)m + f->offset, sizeof(*v));
	return has;
}

/* Set optional uint64 @name of @m, if it has one. */
static void set_opt(ProtobufCMessage *m, const char *name, uint64_t v)
{
	const ProtobufCFieldDescriptor *f = u64_field(m->descriptor, name, PROTOBUF_C_LABEL_OPTIONAL);
	protobuf_c_boolean has = 1;

	if (!f)
		return;
	memcpy((char *)m + f->quantifier_offset, &has, sizeof(has));
	memcpy((char *)m + f->offset, &v, sizeof(v));
}

/* Required uint64 @name of @m (a request's ino), or 0. */
static uint64_t get_req(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *f = u64_field(m->descriptor, name, PROTOBUF_C_LABEL_REQUIRED);
	uint64_t v = 0;

	if (f)
		memcpy(&v, (const char *)m + f->offset, sizeof(v));
	return v;
}

/* The err of a reply (every reply has one, ERROR_REPLY too); -EPROTO if none. */
static int32_t reply_err(const ProtobufCMessage *rep)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(rep->descriptor, "err");
	int32_t err;

	if (!f || (f->type != PROTOBUF_C_TYPE_INT32 && f->type != PROTOBUF_C_TYPE_SINT32))
		return -EPROTO;
	memcpy(&err, (const char *)rep + f->offset, sizeof(err));
	return err;
}

/* ------------------------------------------------------------------ */
/* 2. Client                                                           */
/* ------------------------------------------------------------------ */

/* An answered request kept until its transaction is durable. */
struct cl_ukept {
	struct cl_ukept *next;        /* the next in seq order */
	uint64_t reqid, seq, txn;
	uint32_t type;                /* MsgType of the request */
	size_t body_len, reply_len;
	uint8_t *body, *reply;        /* packed; in the same allocation as this */
};

struct cl_unsafe {
	pthread_mutex_t mu;           /* a leaf: protects everything below */
	uint64_t last_reqid;          /* the last id handed out */
	struct cl_ureq *live, *live_tail;   /* sent, not answered, oldest first */
	struct cl_ukept *kept, *kept_tail;  /* answered, not durable, in seq order */
	size_t nkept, kept_bytes;
	uint64_t durable;             /* the server's durable transaction, as last heard */
	pthread_mutex_t smu;          /* server, a leaf: protects busy */
	pthread_cond_t scv;           /* with smu: a request in busy ended */
	struct cl_usrv *busy;         /* server: requests with an id being handled */
	atomic_ulong applied;         /* server: tracked requests that changed the store (no lock) */
	atomic_ulong answered_again;  /* server: duplicates answered from the store (no lock) */
};

struct cl_unsafe *cl_unsafe_create(void)
{
	struct cl_unsafe *u = calloc(1, sizeof(*u));
	struct timespec ts;

	if (!u)
		return NULL;
	pthread_mutex_init(&u->mu, NULL);
	pthread_mutex_init(&u->smu, NULL);
	pthread_cond_init(&u->scv, NULL);
	/*
	 * Ids are unique per incarnation: a restarted node starts above every
	 * id it can have used before (one a nanosecond at most), so rows of
	 * its former life on the server never answer its new requests.
	 */
	clock_gettime(CLOCK_REALTIME, &ts);
	u->last_reqid = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return u;
}

/* Drop the kept requests whose transaction is at most @durable (mu held). */
static void drop_durable(struct cl_unsafe *u, uint64_t durable)
{
	while (u->kept && u->kept->txn <= durable) {
		struct cl_ukept *k = u->kept;

		u->kept = k->next;
		u->nkept--;
		u->kept_bytes -= k->body_len + k->reply_len;
		free(k);
	}
	if (!u->kept)
		u->kept_tail = NULL;
}

void cl_unsafe_destroy(struct cl_unsafe *u)
{
	if (!u)
		return;
	drop_durable(u, UINT64_MAX);
	pthread_mutex_destroy(&u->mu);
	pthread_mutex_destroy(&u->smu);
	pthread_cond_destroy(&u->scv);
	free(u);
}

/* Take @r off the unanswered list (mu held). */
static void live_unlink(struct cl_unsafe *u, struct cl_ureq *r)
{
	if (!r->live)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		u->live = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		u->live_tail = r->prev;
	r->prev = r->next = NULL;
	r->live = false;
}

/*
 * Put @r on the unanswered list in id order (mu held): at the tail, as ids
 * rise when handed out, unless it was taken off and is sent again.
 */
static void live_insert(struct cl_unsafe *u, struct cl_ureq *r)
{
	struct cl_ureq *after = u->live_tail;

	while (after && after->reqid > r->reqid)
		after = after->prev;
	r->prev = after;
	r->next = after ? after->next : u->live;
	if (r->next)
		r->next->prev = r;
	else
		u->live_tail = r;
	if (after)
		after->next = r;
	else
		u->live = r;
	r->live = true;
}

void cl_ureq_end(struct cl_ctx *cx, struct cl_ureq *r)
{
	pthread_mutex_lock(&cx->un->mu);
	live_unlink(cx->un, r);
	pthread_mutex_unlock(&cx->un->mu);
}

void cl_unsafe_note_durable(struct cl_ctx *cx, const ProtobufCMessage *rep)
{
	struct cl_unsafe *u = cx->un;
	uint64_t d;

	if (!rep || !get_opt(rep, "durable", &d))
		return;
	pthread_mutex_lock(&u->mu);
	if (d > u->durable)
		u->durable = d;
	drop_durable(u, u->durable);
	pthread_mutex_unlock(&u->mu);
}

/* Copy request @msg and reply @rep into a kept entry; NULL on -ENOMEM or a pack failure. */
static struct cl_ukept *kept_new(Cxfs__MsgType type, const ProtobufCMessage *msg,
				 Cxfs__MsgType rt, const ProtobufCMessage *rep)
{
	int64_t blen = rpc_msg_pack(type, msg, NULL, 0), rlen = rpc_msg_pack(rt, rep, NULL, 0);
	struct cl_ukept *k;

	if (blen < 0 || rlen < 0)
		return NULL;
	k = calloc(1, sizeof(*k) + (size_t)blen + (size_t)rlen);
	if (!k)
		return NULL;
	k->type = type;
	k->body = (uint8_t *)(k + 1);
	k->reply = k->body + blen;
	k->body_len = (size_t)blen;
	k->reply_len = (size_t)rlen;
	if (rpc_msg_pack(type, msg, k->body, k->body_len) != blen ||
	    rpc_msg_pack(rt, rep, k->reply, k->reply_len) != rlen) {
		free(k);
		return NULL;
	}
	return k;
}

/* Insert @k in seq order (mu held); answers come nearly in order, so from the tail. */
static void kept_insert(struct cl_unsafe *u, struct cl_ukept *k)
{
	struct cl_ukept **p = &u->kept;

	if (u->kept_tail && u->kept_tail->seq < k->seq) {
		u->kept_tail->next = k;
		u->kept_tail = k;
	} else {
		while (*p && (*p)->seq < k->seq)
			p = &(*p)->next;
		k->next = *p;
		*p = k;
		if (!k->next)
			u->kept_tail = k;
	}
	u->nkept++;
	u->kept_bytes += k->body_len + k->reply_len;
}

/* The final answer @rep to request @msg of @r: keep it if its transaction is not durable. */
static void answered(struct cl_ctx *cx, struct cl_ureq *r, Cxfs__MsgType type,
		     const ProtobufCMessage *msg, Cxfs__MsgType rt, const ProtobufCMessage *rep)
{
	struct cl_unsafe *u = cx->un;
	struct cl_ukept *k = NULL;
	uint64_t txn = 0, seq = 0, durable = 0;

	(void)get_opt(rep, "durable", &durable);
	if (reply_err(rep) == 0 && get_opt(rep, "txn", &txn) && txn > durable &&
	    get_opt(rep, "seq", &seq)) {
		k = kept_new(type, msg, rt, rep);
		if (!k)
			fprintf(stderr, "cxfsd: cannot keep request %llu until durable: out of memory\n",
				(unsigned long long)r->reqid);
	}
	pthread_mutex_lock(&u->mu);
	live_unlink(u, r);
	if (k) {
		k->reqid = r->reqid;
		k->seq = seq;
		k->txn = txn;
		kept_insert(u, k);
	}
	if (durable > u->durable)
		u->durable = durable;
	drop_durable(u, u->durable);
	pthread_mutex_unlock(&u->mu);
}

int cl_unsafe_call(struct cl_ctx *cx, struct cl_ureq *r, struct rpc_chan *ch, Cxfs__MsgType type,
		   ProtobufCMessage *msg, unsigned timeout_ms, Cxfs__MsgType *reply_type,
		   ProtobufCMessage **reply)
{
	struct cl_unsafe *u = cx->un;
	bool tracked = u64_field(msg->descriptor, "reqid", PROTOBUF_C_LABEL_OPTIONAL) != NULL;
	int rc;

	if (tracked) {
		uint64_t oldest;

		pthread_mutex_lock(&u->mu);
		if (!r->reqid)
			r->reqid = ++u->last_reqid;
		if (!r->live)
			live_insert(u, r);
		oldest = u->live->reqid;
		pthread_mutex_unlock(&u->mu);
		set_opt(msg, "reqid", r->reqid);
		set_opt(msg, "oldest", oldest);
	}
	*reply = NULL;
	rc = rpc_call(ch, type, msg, timeout_ms, reply_type, reply);
	if (!tracked || cl_mds_moved(rc, *reply_type, *reply))
		return rc;      /* sent again with the same id, or given up (cl_ureq_end) */
	if (rc == 0)
		answered(cx, r, type, msg, *reply_type, *reply);
	else
		cl_ureq_end(cx, r);
	return rc;
}

int cl_unsafe_batch(struct cl_ctx *cx, struct rpc_chan *ch, size_t n, struct cl_ureq *const *r,
		    const Cxfs__MsgType *types, ProtobufCMessage *const *msgs, unsigned timeout_ms,
		    int *errs)
{
	struct cl_unsafe *u = cx->un;
	Cxfs__BatchReq b = CXFS__BATCH_REQ__INIT;
	ProtobufCMessage *rep = NULL;
	uint32_t *tv = calloc(n ? n : 1, sizeof(*tv));
	ProtobufCBinaryData *bv = calloc(n ? n : 1, sizeof(*bv));
	Cxfs__MsgType rt = 0;
	int rc = -ENOMEM;

	if (!tv || !bv)
		goto out;
	for (size_t i = 0; i < n; i++) {
		uint64_t oldest;
		int64_t len;

		pthread_mutex_lock(&u->mu);
		if (!r[i]->reqid)
			r[i]->reqid = ++u->last_reqid;
		if (!r[i]->live)
			live_insert(u, r[i]);
		oldest = u->live->reqid;
		pthread_mutex_unlock(&u->mu);
		set_opt(msgs[i], "reqid", r[i]->reqid);
		set_opt(msgs[i], "oldest", oldest);
		len = rpc_msg_pack(types[i], msgs[i], NULL, 0);
		if (len < 0 || !(bv[i].data = malloc((size_t)len ? (size_t)len : 1))) {
			rc = len < 0 ? (int)len : -ENOMEM;
			goto out;
		}
		bv[i].len = (size_t)rpc_msg_pack(types[i], msgs[i], bv[i].data, (size_t)len);
		tv[i] = types[i];
	}
	b.n_types = b.n_bodies = n;
	b.types = tv;
	b.bodies = bv;
	rc = rpc_call(ch, CXFS__MSG_TYPE__BATCH_REQ, &b.base, timeout_ms, &rt, &rep);
	if (cl_mds_moved(rc, rt, rep)) {
		rc = rc ? rc : -RPC_EEARLY;      /* sent again with the same ids */
		goto out;
	}
	if (!rc && rt == CXFS__MSG_TYPE__ERROR_REPLY)
		rc = ((Cxfs__ErrorReply *)rep)->err ? ((Cxfs__ErrorReply *)rep)->err : -EPROTO;
	if (!rc) {
		const Cxfs__BatchReply *br = (const Cxfs__BatchReply *)rep;

		rc = br->err ? br->err :
		     br->n_types != n || br->n_bodies != n ? -EPROTO : 0;
		for (size_t i = 0; !rc && i < n; i++) {
			ProtobufCMessage *one = NULL;
			Cxfs__MsgType ot = (Cxfs__MsgType)br->types[i];

			if ((ot != rpc_msg_reply_type(types[i]) && ot != CXFS__MSG_TYPE__ERROR_REPLY) ||
			    rpc_msg_unpack(ot, br->bodies[i].data, br->bodies[i].len, &one)) {
				errs[i] = -EPROTO;
				cl_ureq_end(cx, r[i]);
				continue;
			}
			errs[i] = reply_err(one);
			answered(cx, r[i], types[i], msgs[i], ot, one);
			rpc_msg_free(one);
		}
	}
out:
	if (rep)
		rpc_msg_free(rep);
	for (size_t i = 0; bv && i < n; i++)
		free(bv[i].data);
	free(bv);
	free(tv);
	return rc;
}

void cl_unsafe_ask_durable(struct cl_ctx *cx, struct rpc_chan *ch, unsigned timeout_ms)
{
	Cxfs__StatfsReq q = CXFS__STATFS_REQ__INIT;
	Cxfs__Cred cred = CXFS__CRED__INIT;
	ProtobufCMessage *rep = NULL;
	Cxfs__MsgType rt;

	q.ino = META_ROOT_INO;
	q.cred = &cred;
	if (rpc_call(ch, CXFS__MSG_TYPE__STATFS_REQ, &q.base, timeout_ms, &rt, &rep) == 0) {
		cl_unsafe_note_durable(cx, rep);
		rpc_msg_free(rep);
	}
}

bool cl_unsafe_wants_durable(struct cl_ctx *cx)
{
	bool any;

	pthread_mutex_lock(&cx->un->mu);
	any = cx->un->kept != NULL;
	pthread_mutex_unlock(&cx->un->mu);
	return any;
}

void cl_unsafe_counts(struct cl_ctx *cx, struct cl_unsafe_counts *c)
{
	pthread_mutex_lock(&cx->un->mu);
	c->kept = cx->un->nkept;
	c->kept_bytes = cx->un->kept_bytes;
	c->durable = cx->un->durable;
	pthread_mutex_unlock(&cx->un->mu);
	c->applied = atomic_load(&cx->un->applied);
	c->answered_again = atomic_load(&cx->un->answered_again);
}

void cl_unsafe_collect_free(Cxfs__UnsafeReq **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int cl_unsafe_collect(struct cl_ctx *cx, Cxfs__UnsafeReq ***out, size_t *n)
{
	struct cl_unsafe *u = cx->un;
	Cxfs__UnsafeReq **v;
	size_t i = 0;
	int rc = 0;

	pthread_mutex_lock(&u->mu);
	v = calloc(u->nkept ? u->nkept : 1, sizeof(*v));
	for (struct cl_ukept *k = u->kept; v && k; k = k->next, i++) {
		/* One allocation: the message and its bytes (cl_unsafe_collect_free). */
		Cxfs__UnsafeReq *m = malloc(sizeof(*m) + k->body_len + k->reply_len);

		if (!m)
			break;
		cxfs__unsafe_req__init(m);
		m->node = cx->self_id;
		m->reqid = k->reqid;
		m->seq = k->seq;
		m->type = k->type;
		m->body.len = k->body_len;
		m->body.data = (uint8_t *)(m + 1);
		memcpy(m->body.data, k->body, k->body_len);
		m->reply.len = k->reply_len;
		m->reply.data = m->body.data + k->body_len;
		memcpy(m->reply.data, k->reply, k->reply_len);
		v[i] = m;
	}
	if (!v || i < u->nkept)
		rc = -ENOMEM;
	pthread_mutex_unlock(&u->mu);
	if (rc) {
		cl_unsafe_collect_free(v, i);
		return rc;
	}
	*out = v;
	*n = i;
	return 0;
}

void cl_unsafe_forget_all(struct cl_ctx *cx)
{
	pthread_mutex_lock(&cx->un->mu);
	drop_durable(cx->un, UINT64_MAX);
	/* The new server's numbers are its own: hear them afresh. */
	cx->un->durable = 0;
	pthread_mutex_unlock(&cx->un->mu);
}

/* ------------------------------------------------------------------ */
/* 3. Server                                                           */
/* ------------------------------------------------------------------ */

/* What the replay asks of the request it hands to the handlers (section 4). */
struct cl_replay_one {
	uint64_t force_ino, force_gen;          /* a create's recorded identity */
	const struct meta_map *runs;            /* an allocation's recorded blocks */
	size_t nruns;
};

/* The request this handler thread serves (stamps), and a replay's wishes. */
static _Thread_local struct cl_usrv *cur_srv;
static _Thread_local struct cl_replay_one *cur_replay;

/*
 * Answer again vnode request @msg, applied before (@row): as its handler
 * did, from the store as it is now.  The attributes are those of the
 * created or linked inode (a create is not answered EEXIST); namespace
 * operations give their directory's too.
 */
static int answer_again(struct cl_ctx *cx, struct rpc_req *req, Cxfs__MsgType type,
			const ProtobufCMessage *msg, const struct meta_req *row)
{
	Cxfs__MsgType rt = rpc_msg_reply_type(type);
	uint64_t ino = get_req(msg, "ino"), obj = ino;
	bool names = type == CXFS__MSG_TYPE__MKNOD_REQ || type == CXFS__MSG_TYPE__LINK_REQ ||
		     type == CXFS__MSG_TYPE__UNLINK_REQ || type == CXFS__MSG_TYPE__RENAME_REQ;
	Cxfs__Attr a_pb, d_pb;
	Cxfs__Timespec ts[4], dts[4];
	struct vn_attr a, d;
	int rc = 0;

	if (type == CXFS__MSG_TYPE__MKNOD_REQ)
		obj = row->ino;
	else if (type == CXFS__MSG_TYPE__LINK_REQ)
		obj = get_req(msg, "target_ino");
	if (names && meta_getattr(cx->st, ino, &d) == 0)
		clw_attr_to_pb(&d, &d_pb, dts);
	else
		names = false;
	if (rt == CXFS__MSG_TYPE__ATTR_REPLY) {
		Cxfs__AttrReply r = CXFS__ATTR_REPLY__INIT;

		rc = meta_getattr(cx->st, obj, &a);
		r.err = rc;
		if (!rc) {
			clw_attr_to_pb(&a, &a_pb, ts);
			r.attr = &a_pb;
			r.dir_attr = names ? &d_pb : NULL;
		}
		cl_unsafe_stamp(&r.base);
		return rpc_reply(req, rt, &r.base);
	}
	{
		Cxfs__StatusReply r = CXFS__STATUS_REPLY__INIT;

		r.dir_attr = names ? &d_pb : NULL;
		cl_unsafe_stamp(&r.base);
		return rpc_reply(req, CXFS__MSG_TYPE__STATUS_REPLY, &r.base);
	}
}

/*
 * Make @us the one request (node, reqid) being handled: a copy that arrives
 * while the first is still handled (its connection broke, the node sent it
 * again on a new one) waits until the first has left, then finds its row.
 */
static void busy_add(struct cl_unsafe *u, struct cl_usrv *us)
{
	pthread_mutex_lock(&u->smu);
	for (;;) {
		struct cl_usrv *o = u->busy;

		while (o && (o->mr.node != us->mr.node || o->mr.reqid != us->mr.reqid))
			o = o->next;
		if (!o)
			break;
		pthread_cond_wait(&u->scv, &u->smu);
	}
	us->next = u->busy;
	u->busy = us;
	us->busy = true;
	pthread_mutex_unlock(&u->smu);
}

static void busy_del(struct cl_unsafe *u, struct cl_usrv *us)
{
	struct cl_usrv **p;

	if (!us->busy)
		return;
	pthread_mutex_lock(&u->smu);
	for (p = &u->busy; *p != us; p = &(*p)->next)
		;
	*p = us->next;
	us->busy = false;
	pthread_cond_broadcast(&u->scv);
	pthread_mutex_unlock(&u->smu);
}

/*
 * A node's own change, made there before the server saw it ("Asynchronous
 * creates"): a create (MknodReq.new_ino) of a regular file, with an id, on
 * a number reserved and not yet used, whose number, generation and time go
 * to the store (meta_req.force_*; a replay takes number and generation
 * from the recorded reply as well, the same values); an unlink
 * (UnlinkReq.time_ns), not of a directory, or a rename within one
 * directory without flags (RenameReq.time_ns), whose time does.  0 (also
 * for any other request), or -EPROTO, logged.
 */
static int own_change(struct cl_ctx *cx, uint32_t node, Cxfs__MsgType type,
		      const ProtobufCMessage *msg, struct meta_req *mr)
{
	uint64_t reqid = 0;
	bool ok;

	if (type == CXFS__MSG_TYPE__UNLINK_REQ) {
		const Cxfs__UnlinkReq *u = (const Cxfs__UnlinkReq *)msg;

		if (!u->has_time_ns)
			return 0;
		ok = !u->is_dir && u->time_ns > 0;
		if (ok)
			mr->force_now = u->time_ns;
	} else if (type == CXFS__MSG_TYPE__RENAME_REQ) {
		const Cxfs__RenameReq *r = (const Cxfs__RenameReq *)msg;

		if (!r->has_time_ns)
			return 0;
		ok = r->newdir == r->ino && !r->flags && r->time_ns > 0;
		if (ok)
			mr->force_now = r->time_ns;
	} else if (type == CXFS__MSG_TYPE__MKNOD_REQ) {
		const Cxfs__MknodReq *m = (const Cxfs__MknodReq *)msg;

		if (!m->has_new_ino)
			return 0;
		/* Its own queue, applied by a node that became the server, may never have been sent. */
		ok = S_ISREG(m->mode) && !m->target &&
		     ((get_opt(msg, "reqid", &reqid) && reqid) || node == cx->self_id) &&
		     meta_ino_reserved(cx->st, m->new_ino);
		if (ok) {
			mr->force_ino = m->new_ino;
			mr->force_gen = m->new_gen;
			mr->force_now = m->has_time_ns ? m->time_ns : 0;
		}
	} else {
		return 0;
	}
	if (!ok)
		fprintf(stderr, "cxfsd: refused a change made by node %s itself (%s): not a regular"
			" file's create on a reserved number with a request id, nor an unlink or a"
			" rename\n",
			cl_peer_name(cx, node), msg->descriptor->short_name);
	return ok ? 0 : -EPROTO;
}

bool cl_unsafe_own_create(void)
{
	return cur_srv && !cur_replay && cur_srv->mr.force_ino;
}

bool cl_unsafe_replaying(void)
{
	return cur_replay != NULL;
}

int cl_unsafe_enter(struct cl_ctx *cx, uint32_t node, struct rpc_req *req, Cxfs__MsgType type,
		    const ProtobufCMessage *msg, struct cl_usrv *us)
{
	struct meta_req row = { 0 };
	int rc;

	memset(us, 0, sizeof(*us));
	if (!cx->st)
		return 0;
	us->st = cx->st;
	us->un = cx->un;
	/*
	 * The server node's own changes cannot be applied again by a survivor:
	 * they are made durable before another node's request may see them.
	 */
	if (!cur_replay && meta_store_local_pending(cx->st))
		(void)meta_store_sync(cx->st);
	rc = own_change(cx, node, type, msg, &us->mr);
	if (rc)
		return rc;
	cur_srv = us;            /* stamps durable on every reply */
	if (!get_opt(msg, "reqid", &us->mr.reqid) || !us->mr.reqid) {
		/*
		 * Not tracked: nobody applies it again.  A node's own change that
		 * never left it (its queue, applied by the node that serves now)
		 * still takes its number, generation and time from the request.
		 */
		us->mr.reqid = 0;
		us->mr.local = 1;
		if (us->mr.force_ino || us->mr.force_now)
			meta_req_set(&us->mr);
		return 0;
	}
	us->mr.node = node;
	(void)get_opt(msg, "oldest", &us->mr.oldest);
	/*
	 * An allocation sent again allocates nothing more and answers the same
	 * map: it is simply run again.  Every other request is recorded.
	 */
	us->mr.record = type != CXFS__MSG_TYPE__ALLOC_REQ;
	if (cur_replay) {
		/* Its transaction is lost (cl_unsafe_replay): whatever row it left is a part. */
		us->mr.force_ino = cur_replay->force_ino;
		us->mr.force_gen = cur_replay->force_gen;
		us->mr.force_runs = cur_replay->runs;
		us->mr.nforce = cur_replay->nruns;
	} else if (us->mr.record) {
		busy_add(cx->un, us);
		rc = meta_req_find(cx->st, node, us->mr.reqid, &row);
		if (rc < 0 || rc == 1) {
			if (rc == 1) {
				us->mr.txn = row.txn;
				us->mr.seq = row.seq;
				atomic_fetch_add(&cx->un->answered_again, 1);
				cl_server_again(cx, node, type, msg, row.ino);
				rc = answer_again(cx, req, type, msg, &row);
				rc = rc < 0 ? rc : 1;
			}
			busy_del(cx->un, us);
			cur_srv = NULL;
			return rc;
		}
	}
	meta_req_set(&us->mr);
	return 0;
}

void cl_unsafe_leave(struct cl_usrv *us)
{
	if (us->mr.reqid || us->mr.force_ino || us->mr.force_now)
		meta_req_set(NULL);
	if (us->mr.txn)
		atomic_fetch_add(&us->un->applied, 1);
	busy_del(us->un, us);
	cur_srv = NULL;
}

void cl_unsafe_stamp(ProtobufCMessage *rep)
{
	struct cl_usrv *us = cur_srv;
	uint64_t durable;

	if (!us || !us->st)
		return;
	meta_store_txns(us->st, NULL, &durable);
	set_opt(rep, "durable", durable);
	if (us->mr.txn) {
		set_opt(rep, "txn", us->mr.txn);
		set_opt(rep, "seq", us->mr.seq);
	}
}

void cl_unsafe_node_gone(struct cl_ctx *cx, uint32_t node)
{
	int rc;

	if (!cx->st)
		return;
	rc = meta_req_drop_node(cx->st, node);
	if (rc)
		fprintf(stderr, "cxfsd: cannot forget the applied requests of node %s: %s\n",
			cl_peer_name(cx, node), strerror(-rc));
}

/* ------------------------------------------------------------------ */
/* 4. Replay                                                           */
/* ------------------------------------------------------------------ */

/* The requests a node keeps (what cl_unsafe_call can keep): nothing else is replayed. */
static bool replayable(uint32_t type)
{
	switch (type) {
	case CXFS__MSG_TYPE__SETATTR_REQ:
	case CXFS__MSG_TYPE__MKNOD_REQ:
	case CXFS__MSG_TYPE__LINK_REQ:
	case CXFS__MSG_TYPE__UNLINK_REQ:
	case CXFS__MSG_TYPE__RENAME_REQ:
	case CXFS__MSG_TYPE__SETXATTR_REQ:
	case CXFS__MSG_TYPE__REMOVEXATTR_REQ:
	case CXFS__MSG_TYPE__FALLOCATE_REQ:
	case CXFS__MSG_TYPE__TOKEN_RETURN:
	case CXFS__MSG_TYPE__ALLOC_REQ:
	case CXFS__MSG_TYPE__WRITE_DONE:
		return true;
	default:
		return false;
	}
}

/* The err of the reply a replayed request got (set by rpc_reply on the local request). */
static void replay_reply(void *arg, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	(void)type;
	*(int *)arg = reply_err(msg);
}

/*
 * Read the recorded reply of @o: *@txn, the transaction its change joined,
 * and what a replay must reproduce: a create's identity, an allocation's
 * blocks (*@runs: caller frees).  -EBADMSG if it is not a successful reply
 * of that request with a transaction, or not a sane one.
 */
static int recorded(struct cl_ctx *cx, const Cxfs__UnsafeReq *o, uint64_t *txn,
		    struct cl_replay_one *f, struct meta_map **runs)
{
	Cxfs__MsgType rt = rpc_msg_reply_type((Cxfs__MsgType)o->type);
	ProtobufCMessage *rep = NULL;
	int rc;

	*runs = NULL;
	if (rpc_msg_unpack(rt, o->reply.data, o->reply.len, &rep))
		return -EBADMSG;
	rc = reply_err(rep) == 0 && get_opt(rep, "txn", txn) && *txn ? 0 : -EBADMSG;
	if (rc)
		goto out;
	if (o->type == CXFS__MSG_TYPE__MKNOD_REQ) {
		const Cxfs__AttrReply *r = (const Cxfs__AttrReply *)rep;

		if (!r->attr || r->attr->ino <= META_ROOT_INO) {
			rc = -EBADMSG;
			goto out;
		}
		f->force_ino = r->attr->ino;
		f->force_gen = r->attr->gen;
	} else if (o->type == CXFS__MSG_TYPE__ALLOC_REQ) {
		const Cxfs__AllocReply *r = (const Cxfs__AllocReply *)rep;

		if (r->n_extents > CL_UNSAFE_RUNS_MAX) {
			rc = -EBADMSG;
			goto out;
		}
		*runs = calloc(r->n_extents ? r->n_extents : 1, sizeof(**runs));
		if (!*runs) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < r->n_extents; i++) {
			const Cxfs__Extent *e = r->extents[i];

			if (e->state != CXFS__EXTENT_STATE__EXTENT_HOLE &&
			    (e->count > cx->data_blocks || e->volume_block > cx->data_blocks - e->count)) {
				rc = -EBADMSG;
				goto out;
			}
			(*runs)[i] = (struct meta_map){ e->file_block, e->count, e->volume_block,
							(enum meta_map_state)e->state };
		}
		f->runs = *runs;
		f->nruns = r->n_extents;
	}
out:
	rpc_msg_free(rep);
	if (rc) {
		free(*runs);
		*runs = NULL;
	}
	return rc;
}

/*
 * Apply @o once: 1 applied, 0 its transaction is committed (at most
 * @committed), or -errno (the request failed).
 */
static int replay_one(struct cl_ctx *cx, const Cxfs__UnsafeReq *o, uint64_t committed)
{
	struct cl_replay_one f = { 0 };
	struct meta_map *runs = NULL;
	ProtobufCMessage *msg = NULL;
	struct rpc_req *req = NULL;
	uint64_t reqid, txn;
	int err = -EPROTO, rc;

	/* Each was one frame's payload once: anything larger is not a kept request. */
	if (!replayable(o->type) || !cl_node_by_id(cx, o->node) ||
	    o->body.len > RPC_MAX_PAYLOAD_LIMIT || o->reply.len > RPC_MAX_PAYLOAD_LIMIT)
		return -EINVAL;
	rc = rpc_msg_unpack((Cxfs__MsgType)o->type, o->body.data, o->body.len, &msg);
	if (rc)
		return -EBADMSG;
	if (!get_opt(msg, "reqid", &reqid) || reqid != o->reqid || !reqid) {
		rc = -EBADMSG;
		goto out;
	}
	rc = recorded(cx, o, &txn, &f, &runs);
	if (rc || txn <= committed)
		goto out;
	req = rpc_req_local((Cxfs__MsgType)o->type, replay_reply, &err);
	if (!req) {
		rc = -ENOMEM;
		goto out;
	}
	cur_replay = &f;
	rc = cl_server_handle(cx, o->node, req, (Cxfs__MsgType)o->type, msg);
	cur_replay = NULL;
	if (!rc)
		rc = err;
	if (!rc)
		rc = 1;
out:
	rpc_req_local_free(req);
	free(runs);
	rpc_msg_free(msg);
	return rc;
}

static int by_seq(const void *a, const void *b)
{
	const Cxfs__UnsafeReq *x = *(Cxfs__UnsafeReq *const *)a, *y = *(Cxfs__UnsafeReq *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int cl_unsafe_replay(struct cl_ctx *cx, Cxfs__UnsafeReq *const *v, size_t n,
		     struct cl_unsafe_stats *st)
{
	Cxfs__UnsafeReq **order;
	uint64_t committed;
	int rc;

	memset(st, 0, sizeof(*st));
	if (!cx->st)
		return -EINVAL;
	/* Numbers persist: a kept request's change committed if its txn is at most this. */
	committed = meta_store_txn_at_open(cx->st);
	order = malloc((n ? n : 1) * sizeof(*order));
	if (!order)
		return -ENOMEM;
	memcpy(order, v, n * sizeof(*order));
	qsort(order, n, sizeof(*order), by_seq);
	for (size_t i = 0; i < n; i++) {
		rc = replay_one(cx, order[i], committed);
		/*
		 * What the change granted its node (a create's answer brings
		 * tokens) goes, this node's too: the nodes' grants are imported
		 * afterwards, as they hold them, and a grant made here would make
		 * the next change recall it from a node that cannot answer yet
		 * (or, this node's, from a duty waiting for the rewrites to end).
		 */
		if (cx->ts)
			tok_server_node_down(cx->ts, order[i]->node);
		if (rc == 1) {
			st->applied++;
		} else if (rc == 0) {
			st->skipped++;
		} else {
			st->failed++;
			fprintf(stderr, "cxfsd: replay: request %llu of node %s (%s) failed: %s\n",
				(unsigned long long)order[i]->reqid, cl_peer_name(cx, order[i]->node),
				rpc_msg_descriptor((Cxfs__MsgType)order[i]->type) ?
				rpc_msg_descriptor((Cxfs__MsgType)order[i]->type)->short_name : "?",
				strerror(-rc));
		}
	}
	free(order);
	return meta_store_sync(cx->st);
}
