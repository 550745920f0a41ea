/*
 * cl_unsafe.h - unsafe requests and applied-once (cl_unsafe.c; the rule is
 * docs/ARCHITECTURE.md, "Unsafe requests and applied-once").
 *
 * Every store-changing request a client node sends to the metadata server
 * (the forwarded vnode operations that change anything, TOKEN_RETURN,
 * ALLOC_REQ, WRITE_DONE) carries an id unique per node incarnation
 * (`reqid`) and the node's lowest unanswered id (`oldest`); a resend keeps
 * its id.  The server applies a vnode operation at most once per id (a
 * row in the store, committed with the change, answers a duplicate) and
 * answers with the transaction the change joined (`txn`), its order
 * (`seq`) and its own durable transaction (`durable`).  The client keeps
 * each answered request until its transaction is durable; a new server
 * applies the kept requests of every survivor again, in seq order.
 *
 * Client side: cl_unsafe_call, cl_ureq_end, the lead's collect and forget.
 * Server side: cl_unsafe_enter/leave around each handled request,
 * cl_unsafe_stamp on its reply, cl_unsafe_replay, cl_unsafe_node_gone.
 *
 * Locks: struct cl_unsafe's two mutexes are leaves (no call out while held).
 */
#ifndef CXFS_CL_UNSAFE_H
#define CXFS_CL_UNSAFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta/meta_store.h"
#include "proto/cxfs.pb-c.h"
#include "rpc/rpc.h"

struct cl_ctx;
struct cl_unsafe;

/* The unsafe state of a node; NULL on -ENOMEM.  Destroy frees the kept requests. */
struct cl_unsafe *cl_unsafe_create(void);
void cl_unsafe_destroy(struct cl_unsafe *u);

/* ---- client ------------------------------------------------------------- */

/* One request across its resends: zero it before the first send. */
struct cl_ureq {
	uint64_t reqid;               /* 0 until first sent */
	bool live;                    /* in the unanswered list (protected by the unsafe mutex) */
	struct cl_ureq *prev, *next;  /* the unanswered list, oldest first (same) */
};

/*
 * rpc_call(@ch, @type, @msg, ...) for request @r: if @msg has a `reqid`
 * field (a store-changing request), it gets @r's id (a new one at the first
 * send) and the node's oldest unanswered id.  A final answer (not "the MDS
 * moved", cl_mds_moved) ends @r and, if the reply names a transaction not
 * yet durable, keeps a copy of the request and reply; any reply's `durable`
 * drops the kept requests it covers.  Returns rpc_call's result.
 */
int cl_unsafe_call(struct cl_ctx *cx, struct cl_ureq *r, struct rpc_chan *ch, Cxfs__MsgType type,
		   ProtobufCMessage *msg, unsigned timeout_ms, Cxfs__MsgType *reply_type,
		   ProtobufCMessage **reply);
/*
 * cl_unsafe_call for @n requests (@types, @msgs, each its own @r) sent in one
 * BATCH_REQ, which the server applies in order: each request's error in
 * @errs[i] (0 or -errno from its reply).  A nonzero return is the batch's
 * (nothing answered, nothing ended: send it again with the same ids, or
 * give each up with cl_ureq_end).
 */
int cl_unsafe_batch(struct cl_ctx *cx, struct rpc_chan *ch, size_t n, struct cl_ureq *const *r,
		    const Cxfs__MsgType *types, ProtobufCMessage *const *msgs, unsigned timeout_ms,
		    int *errs);
/* The caller gives @r up (it will not be sent again); harmless if already ended. */
void cl_ureq_end(struct cl_ctx *cx, struct cl_ureq *r);
/* A reply's `durable` field (if it has one) as this node's news of the server. */
void cl_unsafe_note_durable(struct cl_ctx *cx, const ProtobufCMessage *rep);
/* Does this node keep requests it has not heard are durable?  (the prober then asks) */
bool cl_unsafe_wants_durable(struct cl_ctx *cx);
/* Ask the server on @ch its durable number (a STATFS, whose reply says it). */
void cl_unsafe_ask_durable(struct cl_ctx *cx, struct rpc_chan *ch, unsigned timeout_ms);
/* For the status (cxfsctl status: cluster.unsafe). */
struct cl_unsafe_counts {
	size_t kept;                  /* client: answered requests kept until durable */
	size_t kept_bytes;            /* their packed requests and replies */
	uint64_t durable;             /* client: the server's durable transaction last heard */
	uint64_t applied;             /* server: requests with an id that changed the store */
	uint64_t answered_again;      /* server: duplicates answered from the store */
};
void cl_unsafe_counts(struct cl_ctx *cx, struct cl_unsafe_counts *c);

/*
 * Copies of every answered, not yet durable request of this node, oldest
 * (lowest seq) first, node set to this node; the caller frees them with
 * cl_unsafe_collect_free.  0 or -ENOMEM.
 */
int cl_unsafe_collect(struct cl_ctx *cx, Cxfs__UnsafeReq ***out, size_t *n);
void cl_unsafe_collect_free(Cxfs__UnsafeReq **v, size_t n);
/* The new server committed the replay: every kept request is durable now. */
void cl_unsafe_forget_all(struct cl_ctx *cx);

/* ---- server ------------------------------------------------------------- */

/* The server's state of one request being handled (on the handler's stack). */
struct cl_usrv {
	struct meta_req mr;           /* the store's view (meta_req_set) */
	struct meta_store *st;        /* the store (NULL: not on a server) */
	struct cl_unsafe *un;         /* the node's counters */
	bool busy;                    /* in the list of requests being handled */
	struct cl_usrv *next;         /* that list (the unsafe state's smu) */
};

/*
 * Before handling request @msg of @type from @node: a tracked request
 * (it carries a reqid) becomes this thread's current one, so the store
 * records it with its change.  A vnode operation already applied is not
 * applied again: it is answered here as the first time (a create gets
 * its inode's attributes, not EEXIST) and 1 is returned; 0: handle it,
 * then call cl_unsafe_leave; or the store's -errno.
 */
int cl_unsafe_enter(struct cl_ctx *cx, uint32_t node, struct rpc_req *req, Cxfs__MsgType type,
		    const ProtobufCMessage *msg, struct cl_usrv *us);
void cl_unsafe_leave(struct cl_usrv *us);
/* Is this handler thread's request a node's own create (MknodReq.new_ino), not a replay? */
bool cl_unsafe_own_create(void);
/* Is this handler thread replaying a request (no token is granted yet)? */
bool cl_unsafe_replaying(void);
/* Put the current request's seq, txn and the durable number into reply @rep (if it has them). */
void cl_unsafe_stamp(ProtobufCMessage *rep);
/* @node left the membership: forget its applied requests. */
void cl_unsafe_node_gone(struct cl_ctx *cx, uint32_t node);

struct cl_unsafe_stats {
	unsigned applied, skipped, failed;
};
/*
 * New server: after the store is open and the token server created
 * (empty), before any grant is imported, apply each request (from all
 * survivors) once, in seq order, through the server's own handlers, a
 * create with the inode number and generation of its recorded reply, an
 * allocation on the blocks of its recorded reply; then commit
 * (meta_store_sync).  Bodies are untrusted: a malformed one fails alone.
 * Counts in *@st; one log line per failed request (node, reqid, op,
 * errno).  0, or -errno if the store failed.
 */
int cl_unsafe_replay(struct cl_ctx *cx, Cxfs__UnsafeReq *const *v, size_t n,
		     struct cl_unsafe_stats *st);

#endif
