/*
 * cl_async.c - asynchronous creates: the queue of a client node's own
 * creates, the numbers reserved for them, and the sender that applies them
 * at the server in batches (docs/ARCHITECTURE.md, "Asynchronous creates").
 *
 * A client node that holds a directory's name, attr, times and size tokens
 * at WRITE knows every name of it and is the only node that may change it:
 * it creates a regular file there itself (cl_client.c, async_create), with
 * a number the server reserved for it (INO_GRANT, durable before it is
 * granted), answers the application, and queues the create here.  The
 * sender applies the queue in order, up to CL_BATCH_MAX creates per
 * BATCH_REQ, each with its own request id (applied once, kept until
 * durable, replayed by a new server as any request), every few
 * milliseconds and whenever anything else of this node goes to the server
 * first (cl_async_drain: forwarded operations, token requests and
 * returns, allocations).  So the server never sees this node's later
 * request before its earlier creates, and a directory's tokens go back
 * (a return) only after the creates they covered were applied: another
 * node that asks for them sees the files.
 *
 * Locks: cl_async.mu is a leaf (the queue, the numbers, and the send lock:
 * cl_async.sending, one sender at a time, held across the batch's call so
 * batches apply in the order they were queued, taken with an interruptible
 * wait).  The sender holds no token reference:
 * the server applies a create under the directory's tokens this node lends
 * it (their WRITE grant is no obstacle to an operation they are lent to),
 * so a recall that waits for the drain cannot wait for itself.
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cl_wire.h"
#include "common/cx_intr.h"

/* Creates queued at most; a create past it sends the queue itself first. */
#define CL_ASYNC_MAX 1024
/* The sender's period while anything is queued (ms). */
#define CL_ASYNC_PERIOD_MS 2
/* An unmount waits this long for a server to send the queue to (ms). */
#define CL_ASYNC_UNMOUNT_MS 10000

struct cl_aop {
	struct cl_aop *next;
	struct cl_ureq u;               /* its id across the resends */
	Cxfs__MsgType type;             /* MKNOD_REQ, UNLINK_REQ or RENAME_REQ */
	uint64_t dir, ino, gen;         /* unlink, rename: the file's ino (its tokens are lent) */
	const char *newname;            /* a rename's (within @dir), after @name */
	int64_t time_ns;
	uint32_t mode;
	struct vn_cred cred;            /* groups point into @groups */
	uint32_t *groups;
	char name[];
};

struct cl_async {
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* queued (for the sender), or stop */
	pthread_cond_t send_cv;         /* sending went false */
	bool sending;                   /* a thread sends the queue's head (the send lock) */
	struct cl_aop *head, **tail;
	atomic_size_t n;                /* queued (a batch on the wire too): not yet answered */
	uint64_t next, end, gen;        /* reserved numbers [next, end) */
	bool stop;
	atomic_llong give_up_ns;        /* unmounting: a drain with no server ends then (0: never) */
	pthread_t thr;
	atomic_uint_fast64_t creates, unlinks, renames, batches, failed;
};

/* The drain of this thread's sender: its own calls to the server must not drain again. */
static _Thread_local bool in_drain;

static void aop_free(struct cl_aop *o)
{
	free(o->groups);
	free(o);
}

/* The err of a create applied here (rpc_req_local's reply). */
static void here_reply(void *arg, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	*(int *)arg = type == CXFS__MSG_TYPE__ATTR_REPLY ? ((const Cxfs__AttrReply *)msg)->err :
		      type == CXFS__MSG_TYPE__STATUS_REPLY ? ((const Cxfs__StatusReply *)msg)->err :
		      type == CXFS__MSG_TYPE__ERROR_REPLY ? ((const Cxfs__ErrorReply *)msg)->err :
		      -EPROTO;
}

/* Apply @n changes @msgs of @types on this node, which serves now. */
static void apply_here(struct cl_ctx *cx, const Cxfs__MsgType *types, ProtobufCMessage *const *msgs,
		       size_t n, int *errs)
{
	for (size_t i = 0; i < n; i++) {
		struct rpc_req *one = rpc_req_local(types[i], here_reply, &errs[i]);
		int rc = -ENOMEM;

		errs[i] = -EIO;
		if (one)
			rc = cl_server_handle(cx, cx->self_id, one, types[i], msgs[i]);
		rpc_req_local_free(one);
		if (rc)
			errs[i] = rc;
	}
}

/*
 * Send @v (@n changes, in order) to the server, or apply them here (@here:
 * this node serves now), once.  0: answered (failures logged, each request
 * ended); -EAGAIN: no server took them now, or -EINTR / -EIO: the
 * application's call that sends them gave up (they are sent again later
 * with the same ids); -ENOMEM.
 */
static int send_ops(struct cl_ctx *cx, struct cl_aop **v, size_t n, bool here)
{
	Cxfs__MknodReq *m = calloc(n, sizeof(*m));
	Cxfs__UnlinkReq *ul = calloc(n, sizeof(*ul));
	Cxfs__RenameReq *rn = calloc(n, sizeof(*rn));
	Cxfs__Cred *cr = calloc(n, sizeof(*cr));
	ProtobufCMessage **msgs = calloc(n, sizeof(*msgs));
	Cxfs__MsgType *types = calloc(n, sizeof(*types));
	struct cl_ureq **ur = calloc(n, sizeof(*ur));
	int *errs = calloc(n, sizeof(*errs));
	struct cl_async *as = cx->as;
	Cxfs__TokenState lbuf[TOK_NTOKENS], *lent[TOK_NTOKENS];
	struct tok_set dir;
	size_t nlent;
	int rc = -ENOMEM;

	if (!m || !ul || !rn || !cr || !msgs || !types || !ur || !errs)
		goto out;
	/*
	 * Each change lends the server this node's READ right on the directory's
	 * tokens (and an unlink on the file's attr and times), so their WRITE
	 * grant here is no obstacle to it (a recall of them waits for this very
	 * batch).
	 */
	tok_set_clear(&dir);
	tok_set_add(&dir, TOK_NAME, TOK_READ);
	tok_set_add(&dir, TOK_ATTR, TOK_READ);
	tok_set_add(&dir, TOK_TIMES, TOK_READ);
	tok_set_add(&dir, TOK_SIZE, TOK_READ);
	nlent = clw_toks_to_pb(&dir, lbuf, lent);
	/*
	 * A change sent before carries its id (cl_unsafe_batch gives the others
	 * theirs): applied here after the server that had it died, what that
	 * server committed is answered from the store, not applied twice.
	 */
	for (size_t i = 0; i < n; i++) {
		clw_cred_to_pb(&v[i]->cred, &cr[i]);
		if (v[i]->type == CXFS__MSG_TYPE__UNLINK_REQ) {
			cxfs__unlink_req__init(&ul[i]);
			ul[i].ino = v[i]->dir;
			ul[i].cred = &cr[i];
			ul[i].name = v[i]->name;
			ul[i].has_time_ns = 1;
			ul[i].time_ns = v[i]->time_ns;
			ul[i].n_lent = nlent;
			ul[i].lent = lent;
			ul[i].n_lent_inos = 1;
			ul[i].lent_inos = &v[i]->ino;
			ul[i].has_reqid = v[i]->u.reqid != 0;
			ul[i].reqid = v[i]->u.reqid;
			msgs[i] = &ul[i].base;
		} else if (v[i]->type == CXFS__MSG_TYPE__RENAME_REQ) {
			cxfs__rename_req__init(&rn[i]);
			rn[i].ino = rn[i].newdir = v[i]->dir;
			rn[i].cred = &cr[i];
			rn[i].name = v[i]->name;
			rn[i].newname = (char *)v[i]->newname;
			rn[i].has_time_ns = 1;
			rn[i].time_ns = v[i]->time_ns;
			rn[i].n_lent = nlent;
			rn[i].lent = lent;
			rn[i].n_lent_inos = 1;
			rn[i].lent_inos = &v[i]->ino;
			rn[i].has_reqid = v[i]->u.reqid != 0;
			rn[i].reqid = v[i]->u.reqid;
			msgs[i] = &rn[i].base;
		} else {
			cxfs__mknod_req__init(&m[i]);
			m[i].ino = v[i]->dir;
			m[i].cred = &cr[i];
			m[i].name = v[i]->name;
			m[i].mode = v[i]->mode;
			m[i].has_new_ino = m[i].has_new_gen = m[i].has_time_ns = 1;
			m[i].new_ino = v[i]->ino;
			m[i].new_gen = v[i]->gen;
			m[i].time_ns = v[i]->time_ns;
			m[i].n_lent = nlent;
			m[i].lent = lent;
			m[i].has_reqid = v[i]->u.reqid != 0;
			m[i].reqid = v[i]->u.reqid;
			msgs[i] = &m[i].base;
		}
		types[i] = v[i]->type;
		ur[i] = &v[i]->u;
	}
	if (here) {
		apply_here(cx, types, msgs, n, errs);
		rc = 0;
	} else {
		struct rpc_chan *ch = cl_gate_wait(cx) == 0 ? cl_mds_chan(cx) : NULL;

		if (!ch) {
			rc = -EAGAIN;
			goto free;
		}
		rc = cl_unsafe_batch(cx, ch, n, ur, types, msgs, CL_CALL_TIMEOUT_MS, errs);
		rpc_chan_put(ch);
		/* Moved, lost, or timed out: sent again later with the same ids (applied once). */
		if (rc == -ETIMEDOUT || cl_mds_moved(rc, 0, NULL)) {
			rc = -EAGAIN;
			goto free;
		}
		/* The application's call that sends them gave up: they stay queued. */
		if (rc == -EINTR || (rc == -EIO && cx_intr_armed()))
			goto free;
	}
out:
	for (size_t i = 0; i < n; i++) {
		int err = rc ? rc : errs[i];

		if (err) {
			atomic_fetch_add(&as->failed, 1);
			fprintf(stderr, "cxfsd: the %s of \"%s\" (inode %llu) in directory %llu,"
				" answered here, failed at the server: %s\n",
				v[i]->type == CXFS__MSG_TYPE__UNLINK_REQ ? "unlink" :
				v[i]->type == CXFS__MSG_TYPE__RENAME_REQ ? "rename" : "create", v[i]->name,
				(unsigned long long)v[i]->ino, (unsigned long long)v[i]->dir,
				strerror(-err));
			cl_names_forget(cx, v[i]->dir, v[i]->name, v[i]->newname);
		}
		cl_ureq_end(cx, &v[i]->u);
	}
	atomic_fetch_add(&as->batches, 1);
	rc = 0;
free:
	free(m);
	free(ul);
	free(rn);
	free(cr);
	free(msgs);
	free(types);
	free(ur);
	free(errs);
	return rc;
}

/*
 * With send_mu held: send (or apply, @here) the queue's head batch and drop
 * it from the queue once answered.  0 sent, 1 the queue is empty, -EAGAIN
 * no server now (the batch stays at the head), -ENOMEM.
 */
static int send_head(struct cl_ctx *cx, bool here)
{
	struct cl_async *as = cx->as;
	struct cl_aop *v[CL_BATCH_MAX];
	size_t n = 0;
	int rc;

	pthread_mutex_lock(&as->mu);
	for (struct cl_aop *o = as->head; o && n < CL_BATCH_MAX; o = o->next)
		v[n++] = o;
	pthread_mutex_unlock(&as->mu);
	if (!n)
		return 1;
	rc = send_ops(cx, v, n, here);
	if (rc)
		return rc;
	pthread_mutex_lock(&as->mu);
	as->head = v[n - 1]->next;
	if (!as->head)
		as->tail = &as->head;
	atomic_fetch_sub(&as->n, n);
	pthread_mutex_unlock(&as->mu);
	for (size_t i = 0; i < n; i++)
		aop_free(v[i]);
	return 0;
}

/* Take the send lock: 0, or cx_intr's error (an application's call given up). */
static int send_lock(struct cl_async *as)
{
	int rc = 0;

	pthread_mutex_lock(&as->mu);
	while (as->sending && rc >= 0)
		rc = cx_intr_wait(&as->send_cv, &as->mu, NULL);
	if (rc >= 0) {
		as->sending = true;
		rc = 0;
	}
	pthread_mutex_unlock(&as->mu);
	in_drain = rc == 0;
	return rc;
}

static void send_unlock(struct cl_async *as)
{
	in_drain = false;
	pthread_mutex_lock(&as->mu);
	as->sending = false;
	pthread_cond_broadcast(&as->send_cv);
	pthread_mutex_unlock(&as->mu);
}

/* Does a change queued touch @ino: its directory, its file, the bucket of a name of it? */
static bool queued_touches(struct cl_async *as, uint64_t ino)
{
	bool hit = false;

	pthread_mutex_lock(&as->mu);
	for (struct cl_aop *o = as->head; o && !hit; o = o->next)
		hit = o->dir == ino || o->ino == ino || cl_bucket_key(o->dir, o->name) == ino ||
		      (o->newname && cl_bucket_key(o->dir, o->newname) == ino);
	pthread_mutex_unlock(&as->mu);
	return hit;
}

/* cl_async_drain, or (@ret_ino) cl_async_drain_return's. */
static int drain(struct cl_ctx *cx, uint64_t ret_ino)
{
	struct cl_async *as = cx->as;
	int rc;

	/*
	 * Not on the server: a node that becomes it applies its queue while
	 * it settles (cl_async_settle), before its gate opens to the calls
	 * that restart there.
	 */
	if (!as || atomic_load(&as->n) == 0 || in_drain || atomic_load(&cx->is_server))
		return 0;
	/*
	 * An application's call waits here as for the server itself: its
	 * interrupt or the server wait ends it (the queue stays for the
	 * sender), and then the call is not sent either.
	 */
	for (;;) {
		/* A return while a recovery elects a server: see cl_async_drain_return. */
		if (ret_ino && atomic_load(&cx->elected) && !queued_touches(as, ret_ino))
			return 0;
		rc = send_lock(as);
		if (rc)
			break;
		while ((rc = send_head(cx, false)) == 0)
			;
		send_unlock(as);
		/* No server now: wait without the send lock (a node becoming the server takes it). */
		if (rc != -EAGAIN || atomic_load(&cx->is_server) || atomic_load(&cx->stopping) ||
		    cx->cut_off ||
		    (atomic_load(&as->give_up_ns) && cx_intr_now_ns() > atomic_load(&as->give_up_ns)))
			break;
		rc = cl_mds_pause(cx);
		if (rc)
			break;
	}
	return rc == 1 || rc == -EAGAIN ? 0 : rc;
}

int cl_async_drain(struct cl_ctx *cx)
{
	return drain(cx, 0);
}

int cl_async_drain_return(struct cl_ctx *cx, uint64_t ino)
{
	return drain(cx, ino);
}

void cl_async_settle(struct cl_ctx *cx)
{
	struct cl_async *as = cx->as;

	if (!as || atomic_load(&as->n) == 0 || send_lock(as))
		return;
	/* The chains are the server's already; the rewrite ends once the role change does. */
	vn_rewriter(true);
	while (send_head(cx, true) == 0)
		;
	vn_rewriter(false);
	send_unlock(as);
}

int cl_async_ino(struct cl_ctx *cx, uint64_t *ino, uint64_t *gen)
{
	struct cl_async *as = cx->as;
	Cxfs__InoGrantReq q = CXFS__INO_GRANT_REQ__INIT;
	ProtobufCMessage *rep = NULL;
	Cxfs__MsgType rt;
	int rc;

	pthread_mutex_lock(&as->mu);
	if (as->next < as->end) {
		*ino = as->next++;
		*gen = as->gen;
		pthread_mutex_unlock(&as->mu);
		return 0;
	}
	pthread_mutex_unlock(&as->mu);
	q.count = CL_INO_GRANT;
	rc = cl_mds_call(cx, CXFS__MSG_TYPE__INO_GRANT_REQ, &q.base, &rt, &rep);
	if (rc)
		return rc;
	if (rt != CXFS__MSG_TYPE__INO_GRANT_REPLY) {
		rc = rt == CXFS__MSG_TYPE__ERROR_REPLY ? ((Cxfs__ErrorReply *)rep)->err : -EPROTO;
	} else {
		const Cxfs__InoGrantReply *g = (const Cxfs__InoGrantReply *)rep;

		rc = g->err ? g->err :
		     !g->has_first || !g->count || g->count > CL_INO_GRANT_MAX ||
		     g->first <= META_ROOT_INO ? -EPROTO : 0;
		if (!rc) {
			pthread_mutex_lock(&as->mu);
			as->next = g->first + 1;
			as->end = g->first + g->count;
			as->gen = g->gen;
			pthread_mutex_unlock(&as->mu);
			*ino = g->first;
			*gen = g->gen;
		}
	}
	rpc_msg_free(rep);
	return rc ? rc : 0;
}

/* Queue change @type (MKNOD_REQ, UNLINK_REQ, RENAME_REQ) made here; 0 or -ENOMEM. */
static int queue(struct cl_ctx *cx, Cxfs__MsgType type, uint64_t dir, const char *name,
		 const char *newname, uint32_t mode, const struct vn_cred *cred, uint64_t ino,
		 uint64_t gen, int64_t time_ns)
{
	struct cl_async *as = cx->as;
	size_t len = strlen(name) + 1, nlen = newname ? strlen(newname) + 1 : 0;
	struct cl_aop *o = calloc(1, sizeof(*o) + len + nlen);
	size_t n;

	if (!o)
		return -ENOMEM;
	memcpy(o->name, name, len);
	if (newname) {
		memcpy(o->name + len, newname, nlen);
		o->newname = o->name + len;
	}
	o->type = type;
	o->dir = dir;
	o->ino = ino;
	o->gen = gen;
	o->time_ns = time_ns;
	o->mode = mode;
	o->cred = *cred;
	o->cred.groups = NULL;
	if (cred->ngroups > 0) {
		o->groups = malloc((size_t)cred->ngroups * sizeof(*o->groups));
		if (!o->groups) {
			free(o);
			return -ENOMEM;
		}
		memcpy(o->groups, cred->groups, (size_t)cred->ngroups * sizeof(*o->groups));
		o->cred.groups = o->groups;
	}
	pthread_mutex_lock(&as->mu);
	*as->tail = o;
	as->tail = &o->next;
	n = atomic_fetch_add(&as->n, 1) + 1;
	if (n == 1 || n >= CL_BATCH_MAX)
		pthread_cond_signal(&as->cv);
	pthread_mutex_unlock(&as->mu);
	atomic_fetch_add(type == CXFS__MSG_TYPE__UNLINK_REQ ? &as->unlinks :
			 type == CXFS__MSG_TYPE__RENAME_REQ ? &as->renames : &as->creates, 1);
	return 0;
}

int cl_async_queue(struct cl_ctx *cx, uint64_t dir, const char *name, uint32_t mode,
		   const struct vn_cred *cred, uint64_t ino, uint64_t gen, int64_t time_ns)
{
	return queue(cx, CXFS__MSG_TYPE__MKNOD_REQ, dir, name, NULL, mode, cred, ino, gen, time_ns);
}

int cl_async_queue_unlink(struct cl_ctx *cx, uint64_t dir, const char *name,
			  const struct vn_cred *cred, uint64_t ino, int64_t time_ns)
{
	return queue(cx, CXFS__MSG_TYPE__UNLINK_REQ, dir, name, NULL, 0, cred, ino, 0, time_ns);
}

int cl_async_queue_rename(struct cl_ctx *cx, uint64_t dir, const char *name, const char *newname,
			  const struct vn_cred *cred, uint64_t ino, int64_t time_ns)
{
	return queue(cx, CXFS__MSG_TYPE__RENAME_REQ, dir, name, newname, 0, cred, ino, 0, time_ns);
}

bool cl_async_full(struct cl_ctx *cx)
{
	return cx->as && atomic_load(&cx->as->n) >= CL_ASYNC_MAX;
}

static void *sender(void *arg)
{
	struct cl_ctx *cx = arg;
	struct cl_async *as = cx->as;

	pthread_mutex_lock(&as->mu);
	while (!as->stop) {
		size_t n = atomic_load(&as->n);

		if (n == 0) {
			pthread_cond_wait(&as->cv, &as->mu);
			continue;
		}
		if (n < CL_BATCH_MAX) {
			/* Gather a batch for a moment. */
			struct timespec t;

			clock_gettime(CLOCK_REALTIME, &t);
			t.tv_nsec += CL_ASYNC_PERIOD_MS * 1000000L;
			if (t.tv_nsec >= 1000000000L) {
				t.tv_sec++;
				t.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&as->cv, &as->mu, &t);
		}
		pthread_mutex_unlock(&as->mu);
		(void)cl_async_drain(cx);
		/* Left queued (no server, or this node serves and settles): not in a spin. */
		if (atomic_load(&as->n))
			usleep(20 * 1000);
		pthread_mutex_lock(&as->mu);
	}
	pthread_mutex_unlock(&as->mu);
	return NULL;
}

int cl_async_start(struct cl_ctx *cx)
{
	struct cl_async *as = calloc(1, sizeof(*as));
	int rc;

	if (!as)
		return -ENOMEM;
	pthread_mutex_init(&as->mu, NULL);
	pthread_cond_init(&as->cv, NULL);
	pthread_cond_init(&as->send_cv, NULL);
	as->tail = &as->head;
	cx->as = as;
	rc = pthread_create(&as->thr, NULL, sender, cx);
	if (rc) {
		cx->as = NULL;
		free(as);
		return -rc;
	}
	return 0;
}

void cl_async_stop(struct cl_ctx *cx)
{
	struct cl_async *as = cx->as;

	if (!as)
		return;
	/* What the applications were told was made goes first, if a server takes it soon. */
	atomic_store(&as->give_up_ns, cx_intr_now_ns() + (int64_t)CL_ASYNC_UNMOUNT_MS * 1000000);
	(void)cl_async_drain(cx);
	if (atomic_load(&as->n))
		fprintf(stderr, "cxfsd: unmounting with %zu changes made here that no server took"
			" within %d s: they are lost\n", atomic_load(&as->n), CL_ASYNC_UNMOUNT_MS / 1000);
	pthread_mutex_lock(&as->mu);
	as->stop = true;
	pthread_cond_signal(&as->cv);
	pthread_mutex_unlock(&as->mu);
	pthread_join(as->thr, NULL);
	while (as->head) {
		struct cl_aop *o = as->head;

		as->head = o->next;
		aop_free(o);
	}
	cx->as = NULL;
	pthread_mutex_destroy(&as->mu);
	pthread_cond_destroy(&as->cv);
	pthread_cond_destroy(&as->send_cv);
	free(as);
}

void cl_async_counts(struct cl_ctx *cx, uint64_t *creates, uint64_t *unlinks, uint64_t *renames,
		     uint64_t *batches, uint64_t *failed, uint64_t *queued)
{
	struct cl_async *as = cx->as;

	*renames = as ? atomic_load(&as->renames) : 0;
	*creates = as ? atomic_load(&as->creates) : 0;
	*unlinks = as ? atomic_load(&as->unlinks) : 0;
	*batches = as ? atomic_load(&as->batches) : 0;
	*failed = as ? atomic_load(&as->failed) : 0;
	*queued = as ? atomic_load(&as->n) : 0;
}
