/*
 * rpc.c - rpc contexts: the libuv loop thread and its connections, channels,
 * calls waiting for replies, and the lanes of workers that run request
 * handlers.
 *
 * Divisions of this file:
 *   1. Structures, lists, logging and counters.
 *   2. Channels: references, freezing, interruption, statistics.
 *   3. The loop thread: waking it, connecting, accepting (and the limits on
 *      connections), sealing and writing frames, reading and checking
 *      frames, the handshake (HELLO, HELLO_REPLY, HELLO_DONE), closing.
 *   4. Calls, one-way sends and replies (caller threads).
 *   5. The lanes of workers.
 *   6. Creating and destroying a context.
 *
 * Threads.  The loop thread owns every uv handle and every struct
 * rpc__conn; nothing else touches them.  Other threads hand it frames by
 * appending them to a channel's out-queue under ctx->lock and waking it with
 * uv_async_send(); the loop moves them to the connection's txq under the
 * lock, then seals each (the MAC of the connection's next sequence number)
 * and writes it with the lock dropped.  Incoming requests go from the loop to the queue of the
 * lane the classifier names; a worker of that lane runs the handler.  When
 * the loop queues a request and the lane has no idle worker, it starts one
 * (pthread_create(), which does not wait for anything) unless the lane is at
 * its maximum.  Workers exit when idle above their lane's minimum, or at the
 * end; each exiting worker joins the one that exited before it, and
 * rpc_ctx_destroy() joins the last, so no list of threads is kept.  Callers
 * of rpc_call() sleep on a condition variable of their own; the loop
 * completes their call when the reply (or the end of the connection) comes.
 *
 * Lock order: ctx->lock and ctx->pool_lock are never held together (the
 * loop takes a channel reference under ctx->lock, drops it, then queues the
 * request under ctx->pool_lock).  ctx->pool_lock protects every lane; it is
 * never held across a handler, the classifier or pthread_create().  Every
 * call's cond and every channel's cond
 * are waited on with ctx->lock.  The log callback may run under ctx->lock
 * (and so must take no lock of ours).  No lock is held across a handler, and
 * ctx->lock is never held across protobuf packing or MAC computation except
 * for the handshake frames the loop itself builds (a few hundred bytes).
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>
#include <uv.h>

#include "common/cx_hist.h"
#include "common/cx_intr.h"
#include "rpc/rpc_i.h"

#define RPC__WORKERS_DEFAULT 4
#define RPC__IDLE_MS_DEFAULT 10000  /* a worker above its lane's minimum exits when idle this long */
#define RPC__RXBUF (64u * 1024)     /* bytes per read from a socket, once the handshake is done */
#define RPC__RXBUF_HELLO 512        /* bytes per read until then */
#define RPC__HELLO_MS_DEFAULT 10000 /* connect and HELLO exchange must be done by then */
#define RPC__MAX_UNAUTH_DEFAULT 64  /* connections in their handshake at once */
#define RPC__MAX_UNAUTH_ADDR_DEFAULT 8   /* of them, from one address */
#define RPC__MAX_NODE_CONNS_DEFAULT 16   /* incoming connections of one authenticated node */
#define RPC__REFUSAL_LOG_NS 1000000000ull  /* refused connections are logged once a second at most */

/* ------------------------------------------------------------------ */
/* 1. Structures, lists, logging and counters                          */
/* ------------------------------------------------------------------ */

struct rpc__list {
	struct rpc__list *prev, *next;
};

static void list_init(struct rpc__list *l)
{
	l->prev = l->next = l;
}

static int list_empty(const struct rpc__list *l)
{
	return l->next == l;
}

static void list_add_tail(struct rpc__list *l, struct rpc__list *e)
{
	e->prev = l->prev;
	e->next = l;
	l->prev->next = e;
	l->prev = e;
}

static void list_del(struct rpc__list *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	list_init(e);
}

#define list_entry(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

enum rpc__chan_state {
	CHAN_IDLE,          /* outgoing, no connection: one is made when a frame is queued */
	CHAN_CONNECTING,    /* outgoing, TCP connect in progress */
	CHAN_HELLO,         /* connected, HELLO exchange in progress */
	CHAN_READY,         /* frames flow */
	CHAN_DEAD,          /* incoming, connection gone: never comes back */
};

enum rpc__call_state {
	CALL_QUEUED,        /* frame on the channel's out-queue */
	CALL_SENT,          /* frame handed to the socket; waiting for the reply */
	CALL_DONE,
};

struct rpc__call;

/*
 * One outgoing frame: header, payload and MAC in data[].  The MAC is made
 * by the loop thread when the frame goes to its connection (rpc__write):
 * only then are the connection's key and the frame's sequence number known.
 */
struct rpc__frame {
	struct rpc__list link;          /* ch->outq under ctx->lock; then conn->txq (loop thread) */
	struct rpc__call *call;         /* the call waiting for it while queued; ctx->lock */
	uv_write_t wr;                  /* loop thread, once taken off the queue */
	uint16_t type;                  /* Cxfs__MsgType */
	size_t len;
	uint8_t data[];
};

/* A caller of rpc_call(), on its own stack. */
struct rpc__call {
	struct rpc__list link;          /* ch->calls while not DONE; ctx->lock */
	pthread_cond_t cond;            /* signalled when DONE */
	uint64_t id;
	Cxfs__MsgType expect;           /* the reply type of the request */
	enum rpc__call_state state;     /* ctx->lock */
	struct rpc__frame *frame;       /* while QUEUED; ctx->lock */
	int result;                     /* ctx->lock */
	Cxfs__MsgType reply_type;       /* ctx->lock */
	ProtobufCMessage *reply;        /* ctx->lock; handed to the caller */
};

struct rpc__conn;

struct rpc_chan {
	struct rpc_ctx *ctx;
	struct rpc__list link;          /* ctx->chans; ctx->lock */
	unsigned refs;                  /* users, requests in the pool and the conn; ctx->lock */
	int outgoing;                   /* we connect (constant) */
	struct sockaddr_storage addr;   /* the peer (constant for an outgoing channel) */
	char peer[64];                  /* "address:port" for logs (constant) */
	enum rpc__chan_state state;     /* ctx->lock */
	struct rpc__conn *conn;         /* the live connection or NULL; ctx->lock */
	uint64_t conn_gen;              /* number of the current/last connection; ctx->lock */
	int frozen;                     /* ctx->lock */
	unsigned failed_connects;       /* in a row, since the last success (logged once); ctx->lock */
	int aborted;                    /* rpc_chan_abort: its peer died, calls fail; ctx->lock */
	uint64_t intr_gen;              /* bumped by rpc_chan_interrupt(); ctx->lock */
	pthread_cond_t cond;            /* thaw, interrupt, shutdown; with ctx->lock */
	struct rpc__list outq;          /* frames waiting for the loop; ctx->lock */
	struct rpc__list calls;         /* calls not DONE; ctx->lock */
	int want_close;                 /* nobody but the conn holds it; ctx->lock */
	_Atomic uint64_t next_id;       /* request ids: issued ids are below it */
	char peer_node[RPC_NAME_MAX + 1]; /* from the peer's HELLO; ctx->lock */
	uint64_t peer_epoch;            /* ctx->lock */
	int peer_known;                 /* ctx->lock */
	struct rpc_stats st;            /* ctx->lock */
};

/*
 * One TCP connection of a channel; loop thread only.  Until its handshake
 * is done it costs little: this structure (about 1.7 KiB, with a small
 * read buffer), its channel, and a body of at most RPC__HELLO_MAX bytes.
 */
struct rpc__conn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_timer_t hello_timer;         /* closes a connection whose HELLO does not come */
	int handles;                    /* open uv handles (tcp, timer); freed at 0 */
	struct rpc_ctx *ctx;
	struct rpc_chan *ch;            /* holds a reference */
	uint64_t gen;                   /* ch->conn_gen when made */
	int closing;
	unsigned version;               /* its protocol version: ours at HELLO, or the peer's; 0 yet */
	int keyed;                      /* tx, rx hold the connection's keys (else: the cluster key) */
	int authed;                     /* handshake done: the peer holds the keys */
	uint64_t hello_id;              /* outgoing: id of our HELLO */
	uint8_t nonce[RPC__NONCE_SIZE]; /* ours, sent in our HELLO or HELLO_REPLY */
	struct rpc__key tx, rx;         /* the connection's keys, once keyed */
	uint64_t tx_seq, rx_seq;        /* sequence numbers of the next frame out and in */
	struct rpc__list txq;           /* frames taken off ch->outq, to be sealed and written */
	struct rpc__list txlink;        /* in ctx->txconns while txq is not empty */
	uint8_t hdr[RPC__HDR_SIZE];     /* header being received */
	size_t hdr_got;
	struct rpc__hdr h;              /* decoded once complete */
	uint8_t *body;                  /* payload and MAC being received */
	size_t body_len, body_got;
	uint8_t *rxbig;                 /* RPC__RXBUF bytes, once the handshake is done */
	uint8_t rxsmall[RPC__RXBUF_HELLO];
};

/* An incoming request or one-way notice, on its way to (or in) a handler. */
struct rpc_req {
	struct rpc__list link;          /* its lane's queue; ctx->pool_lock */
	struct rpc_chan *ch;            /* holds a reference */
	uint64_t conn_gen;              /* the connection it came on */
	uint64_t id;
	Cxfs__MsgType type;
	int oneway;
	int replied;                    /* the handler's thread only */
	ProtobufCMessage *msg;
	rpc_local_reply_fn local;       /* a local request (rpc_req_local): its reply goes here */
	void *local_arg;
};

/*
 * One lane: a queue and the workers that serve it.  idle counts the workers
 * not running a handler, those still starting included, so that the loop
 * starts a worker when the queue is longer than the number of workers about
 * to take from it (one that is just leaving a handler is not counted: at
 * worst a worker more than needed starts, and later leaves).
 */
struct rpc__lane {
	struct rpc_ctx *ctx;
	char name[RPC_LANE_NAME_MAX + 1]; /* constant */
	unsigned min, max;              /* constant; 1 <= min <= max */
	pthread_cond_t cond;            /* with ctx->pool_lock: work queued, or stop */
	struct rpc__list queue;         /* requests waiting for a worker; pool_lock */
	unsigned queued;                /* length of queue; pool_lock */
	unsigned workers;               /* threads started and not exiting; pool_lock */
	unsigned idle;                  /* of them, not running a handler; pool_lock */
	unsigned peak;                  /* most workers at once; pool_lock */
	uint64_t handled;               /* handlers run; pool_lock */
	uint64_t waited;                /* requests queued with every worker busy at max; pool_lock */
	uint64_t started;               /* threads started; pool_lock */
};

struct rpc_ctx {
	pthread_mutex_t lock;           /* see the lock order at the top */
	uv_loop_t loop;                 /* loop thread */
	uv_async_t wake;                /* the one handle other threads poke */
	uv_tcp_t listener;              /* loop thread */
	int listening;                  /* constant after create */
	uint16_t port;                  /* constant after create */
	pthread_t loop_thread;
	struct rpc__key key;            /* constant after create */
	char cluster[RPC_NAME_MAX + 1]; /* constant */
	char node[RPC_NAME_MAX + 1];    /* constant */
	_Atomic uint64_t epoch;          /* frames carry it */
	_Atomic uint64_t floor;          /* frames that carry less are refused */
	_Atomic unsigned level;          /* version of new connections */
	_Atomic unsigned level_floor;    /* the least version a peer's HELLO may have */
	uint32_t max_payload;           /* constant */
	unsigned hello_ms;              /* constant */
	unsigned max_unauth, max_unauth_addr, max_node_conns;   /* constant */
	struct rpc__list txconns;       /* connections with frames to write; loop thread */
	uint64_t refused_logged_ns;     /* when a refused connection was last logged; loop thread */
	uint64_t refused_unlogged;      /* refused since; loop thread */
	rpc_handler_fn handler;         /* constant */
	void *handler_arg;
	rpc_log_fn log;                 /* constant */
	void *log_arg;
	pthread_condattr_t cattr;       /* CLOCK_MONOTONIC for every cond */
	int stopping;                   /* ctx->lock */
	struct rpc__list chans;         /* ctx->lock */
	struct rpc_stats st;            /* totals; ctx->lock */
	struct cx_hist call_hist[RPC_TYPES];  /* rpc_call latencies by request type; lock-free */

	pthread_mutex_t pool_lock;      /* the lanes and the fields below */
	struct rpc__lane lanes[RPC_LANES_MAX];
	unsigned nlanes;                /* constant */
	rpc_lane_fn lane_of;            /* constant */
	unsigned idle_ms;               /* constant */
	int pool_stop;                  /* pool_lock */
	unsigned nthreads;              /* workers of every lane not yet gone; pool_lock */
	pthread_cond_t pool_done;       /* with pool_lock: nthreads fell to 0 */
	pthread_t last_exited;          /* the worker that exited last, not joined; pool_lock */
	int have_last_exited;           /* pool_lock */
};

static void rpc__log(struct rpc_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rpc__log(struct rpc_ctx *ctx, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (ctx->log)
		ctx->log(ctx->log_arg, line);
	else
		fprintf(stderr, "cxfs rpc: %s\n", line);
}

/* Add @n to counter @field of @ch and of the context; ctx->lock held. */
#define STAT_ADD(ch, field, n) do { (ch)->st.field += (n); (ch)->ctx->st.field += (n); } while (0)

static void rpc__addr_name(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		uv_ip4_name(a, host, sizeof(host));
		port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		uv_ip6_name(a, host, sizeof(host));
		port = ntohs(a->sin6_port);
	}
	snprintf(buf, size, ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
}

static uint64_t rpc__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* 2. Channels                                                         */
/* ------------------------------------------------------------------ */

static void rpc__wake_locked(struct rpc_ctx *ctx)
{
	/* Once stopping is set the loop may close the handle at any time;
	 * rpc_ctx_destroy() sends the last wake-up itself. */
	if (!ctx->stopping)
		uv_async_send(&ctx->wake);
}

static void rpc__frame_free(struct rpc__frame *f)
{
	free(f);
}

/* End call @c with @result (and reply @msg, which it takes); ctx->lock held. */
static void rpc__call_complete(struct rpc__call *c, int result, Cxfs__MsgType type,
			       ProtobufCMessage *msg)
{
	if (c->state == CALL_QUEUED && c->frame) {
		list_del(&c->frame->link);
		rpc__frame_free(c->frame);
	}
	c->frame = NULL;
	c->state = CALL_DONE;
	c->result = result;
	c->reply_type = type;
	c->reply = msg;
	list_del(&c->link);
	pthread_cond_signal(&c->cond);
}

/*
 * Drop every frame still queued on @ch: calls waiting for theirs end with
 * @err, one-way notices and replies are lost.  ctx->lock held.
 */
static void rpc__fail_queued(struct rpc_chan *ch, int err)
{
	while (!list_empty(&ch->outq)) {
		struct rpc__frame *f = list_entry(ch->outq.next, struct rpc__frame, link);

		if (f->call) {
			rpc__call_complete(f->call, err, 0, NULL);   /* frees f */
		} else {
			list_del(&f->link);
			rpc__frame_free(f);
		}
	}
}

static void rpc__chan_free(struct rpc_chan *ch)
{
	list_del(&ch->link);
	rpc__fail_queued(ch, -ESHUTDOWN);
	pthread_cond_destroy(&ch->cond);
	free(ch);
}

/* ctx->lock held. */
static void rpc__chan_unref(struct rpc_chan *ch)
{
	assert(ch->refs > 0);
	if (--ch->refs == 0) {
		rpc__chan_free(ch);
		return;
	}
	if (ch->outgoing && ch->conn && ch->refs == 1) {
		ch->want_close = 1;
		rpc__wake_locked(ch->ctx);
	}
}

static struct rpc_chan *rpc__chan_new(struct rpc_ctx *ctx, int outgoing,
				      const struct sockaddr_storage *addr)
{
	struct rpc_chan *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	if (pthread_cond_init(&ch->cond, &ctx->cattr)) {
		free(ch);
		return NULL;
	}
	ch->ctx = ctx;
	ch->refs = 1;
	ch->outgoing = outgoing;
	ch->addr = *addr;
	rpc__addr_name(addr, ch->peer, sizeof(ch->peer));
	ch->state = outgoing ? CHAN_IDLE : CHAN_HELLO;
	list_init(&ch->outq);
	list_init(&ch->calls);
	atomic_init(&ch->next_id, 1);
	list_add_tail(&ctx->chans, &ch->link);
	return ch;
}

int rpc_connect(struct rpc_ctx *ctx, const char *addr, uint16_t port, struct rpc_chan **out)
{
	struct sockaddr_storage ss;
	struct rpc_chan *ch;

	memset(&ss, 0, sizeof(ss));
	if (!addr || (uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss) &&
		      uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss)))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	ch = ctx->stopping ? NULL : rpc__chan_new(ctx, 1, &ss);
	pthread_mutex_unlock(&ctx->lock);
	if (!ch)
		return ctx->stopping ? -ESHUTDOWN : -ENOMEM;
	*out = ch;
	return 0;
}

void rpc_chan_hold(struct rpc_chan *ch)
{
	pthread_mutex_lock(&ch->ctx->lock);
	ch->refs++;
	pthread_mutex_unlock(&ch->ctx->lock);
}

void rpc_chan_put(struct rpc_chan *ch)
{
	struct rpc_ctx *ctx = ch->ctx;

	pthread_mutex_lock(&ctx->lock);
	rpc__chan_unref(ch);
	pthread_mutex_unlock(&ctx->lock);
}

void rpc_chan_freeze(struct rpc_chan *ch)
{
	pthread_mutex_lock(&ch->ctx->lock);
	ch->frozen = 1;
	pthread_mutex_unlock(&ch->ctx->lock);
}

void rpc_chan_thaw(struct rpc_chan *ch)
{
	pthread_mutex_lock(&ch->ctx->lock);
	ch->frozen = 0;
	pthread_cond_broadcast(&ch->cond);
	pthread_mutex_unlock(&ch->ctx->lock);
}

void rpc_chan_interrupt(struct rpc_chan *ch)
{
	struct rpc__list *p, *n;

	pthread_mutex_lock(&ch->ctx->lock);
	ch->intr_gen++;
	pthread_cond_broadcast(&ch->cond);
	for (p = ch->calls.next; p != &ch->calls; p = n) {
		struct rpc__call *c = list_entry(p, struct rpc__call, link);

		n = p->next;
		if (c->state == CALL_QUEUED)
			rpc__call_complete(c, -RPC_EEARLY, 0, NULL);
	}
	pthread_mutex_unlock(&ch->ctx->lock);
}

void rpc_chan_abort(struct rpc_chan *ch)
{
	struct rpc__list *p, *n;

	pthread_mutex_lock(&ch->ctx->lock);
	ch->aborted = 1;
	ch->intr_gen++;
	pthread_cond_broadcast(&ch->cond);
	for (p = ch->calls.next; p != &ch->calls; p = n) {
		n = p->next;
		rpc__call_complete(list_entry(p, struct rpc__call, link), -ECONNRESET, 0, NULL);
	}
	pthread_mutex_unlock(&ch->ctx->lock);
}

void rpc_chan_stats(struct rpc_chan *ch, struct rpc_stats *st)
{
	pthread_mutex_lock(&ch->ctx->lock);
	*st = ch->st;
	pthread_mutex_unlock(&ch->ctx->lock);
}

int rpc_chan_peer(struct rpc_chan *ch, char *name, size_t size, uint64_t *epoch)
{
	int rc = -ENOTCONN;

	pthread_mutex_lock(&ch->ctx->lock);
	if (ch->peer_known) {
		if (name && size)
			snprintf(name, size, "%s", ch->peer_node);
		if (epoch)
			*epoch = ch->peer_epoch;
		rc = 0;
	}
	pthread_mutex_unlock(&ch->ctx->lock);
	return rc;
}

/* ------------------------------------------------------------------ */
/* 3. The loop thread                                                  */
/* ------------------------------------------------------------------ */

static void rpc__flush_locked(struct rpc_chan *ch);

/* A new connection of @ctx, not yet in any list; NULL without memory. */
static struct rpc__conn *rpc__conn_new(struct rpc_ctx *ctx)
{
	struct rpc__conn *conn = calloc(1, sizeof(*conn));

	if (!conn)
		return NULL;
	conn->ctx = ctx;
	list_init(&conn->txq);
	list_init(&conn->txlink);
	return conn;
}

static void rpc__conn_free(struct rpc__conn *conn)
{
	assert(list_empty(&conn->txq));
	rpc__key_wipe(&conn->tx);
	rpc__key_wipe(&conn->rx);
	free(conn->rxbig);
	free(conn->body);
	free(conn);
}

static void rpc__on_closed(uv_handle_t *h)
{
	struct rpc__conn *conn = h->data;
	struct rpc_ctx *ctx = conn->ctx;

	if (--conn->handles)
		return;
	pthread_mutex_lock(&ctx->lock);
	rpc__chan_unref(conn->ch);
	pthread_mutex_unlock(&ctx->lock);
	rpc__conn_free(conn);
}

/*
 * Close @conn: calls whose request went out on it end with -ECONNRESET.
 * An outgoing channel that never finished its HELLO fails its queued
 * frames with @err (so a peer that refuses us cannot make us reconnect in a
 * loop); one that had been ready reconnects if frames are waiting.  An
 * incoming channel is dead.  Loop thread, ctx->lock held; the channel lives
 * on until the close callback drops the connection's reference.
 */
static void rpc__conn_close_locked(struct rpc__conn *conn, int err)
{
	struct rpc_chan *ch = conn->ch;
	struct rpc_ctx *ctx = conn->ctx;
	struct rpc__list *p, *n;

	if (conn->closing)
		return;
	conn->closing = 1;
	for (p = ch->calls.next; p != &ch->calls; p = n) {
		struct rpc__call *c = list_entry(p, struct rpc__call, link);

		n = p->next;
		if (c->state == CALL_SENT)
			rpc__call_complete(c, -ECONNRESET, 0, NULL);
	}
	if (ch->state == CHAN_READY)
		STAT_ADD(ch, disconnects, 1);
	if (!ch->outgoing) {
		ch->state = CHAN_DEAD;
		rpc__fail_queued(ch, -ENOTCONN);
	} else {
		if (ch->state != CHAN_READY || ctx->stopping)
			rpc__fail_queued(ch, err);
		ch->state = CHAN_IDLE;
		if (!list_empty(&ch->outq))
			rpc__wake_locked(ctx);
	}
	/* Frames taken for this connection but not written are lost with it. */
	while (!list_empty(&conn->txq)) {
		struct rpc__frame *f = list_entry(conn->txq.next, struct rpc__frame, link);

		list_del(&f->link);
		rpc__frame_free(f);
	}
	list_del(&conn->txlink);
	ch->conn = NULL;
	ch->want_close = 0;
	uv_close((uv_handle_t *)&conn->tcp, rpc__on_closed);
	uv_close((uv_handle_t *)&conn->hello_timer, rpc__on_closed);
}

static void rpc__on_hello_timeout(uv_timer_t *t)
{
	struct rpc__conn *conn = t->data;
	struct rpc_ctx *ctx = conn->ctx;

	rpc__log(ctx, "%s: no connection and HELLO within %u ms; closing the connection",
		 conn->ch->peer, ctx->hello_ms);
	pthread_mutex_lock(&ctx->lock);
	STAT_ADD(conn->ch, dropped[RPC_DROP_HANDSHAKE], 1);
	rpc__conn_close_locked(conn, -ETIMEDOUT);
	pthread_mutex_unlock(&ctx->lock);
}

/* A new connection's two handles: @conn->tcp is initialized, start the timer. */
static void rpc__hello_timer_start(struct rpc__conn *conn)
{
	uv_timer_init(&conn->ctx->loop, &conn->hello_timer);
	conn->hello_timer.data = conn;
	conn->handles = 2;
	uv_timer_start(&conn->hello_timer, rpc__on_hello_timeout, conn->ctx->hello_ms, 0);
}

static void rpc__conn_close(struct rpc__conn *conn, int err)
{
	pthread_mutex_lock(&conn->ctx->lock);
	rpc__conn_close_locked(conn, err);
	pthread_mutex_unlock(&conn->ctx->lock);
}

/* Refuse the frame being received on @conn and close the connection. */
static void rpc__drop(struct rpc__conn *conn, enum rpc_drop reason, const char *detail)
{
	struct rpc_chan *ch = conn->ch;

	pthread_mutex_lock(&conn->ctx->lock);
	STAT_ADD(ch, dropped[reason], 1);
	pthread_mutex_unlock(&conn->ctx->lock);
	rpc__log(conn->ctx, "%s: dropped frame type %u id %llu (%s%s%s); closing the connection",
		 ch->peer, conn->h.type, (unsigned long long)conn->h.id, rpc_drop_name(reason),
		 detail ? ": " : "", detail ? detail : "");
	rpc__conn_close(conn, -ECONNABORTED);
}

static void rpc__on_written(uv_write_t *wr, int status)
{
	struct rpc__frame *f = wr->data;
	struct rpc__conn *conn = wr->handle->data;

	rpc__frame_free(f);
	if (status < 0 && status != UV_ECANCELED) {
		rpc__log(conn->ctx, "%s: write failed: %s", conn->ch->peer, uv_strerror(status));
		rpc__conn_close(conn, -ECONNRESET);
	}
}

/* Count frame @f as sent on @ch; ctx->lock held. */
static void rpc__count_sent_locked(struct rpc_chan *ch, const struct rpc__frame *f)
{
	STAT_ADD(ch, frames_sent, 1);
	if (f->type < RPC_TYPES)
		STAT_ADD(ch, sent_by_type[f->type], 1);
	STAT_ADD(ch, bytes_sent, f->len);
}

/*
 * Seal frame @f with the MAC of @conn's next frame (the cluster key and
 * sequence number 0 until the connection is keyed; the cluster key and no
 * sequence number at version 1) and hand it to the socket.  Loop thread;
 * any lock or none.
 */
static void rpc__write(struct rpc__conn *conn, struct rpc__frame *f)
{
	size_t len = f->len - RPC__HDR_SIZE - RPC__MAC_SIZE;
	uv_buf_t b = uv_buf_init((char *)f->data, (unsigned)f->len);
	uint64_t seq = conn->version == 1 ? RPC__SEQ_NONE : conn->keyed ? conn->tx_seq++ : 0;
	int rc;

	/* Frames are built in the newest version: an older connection's says its own. */
	if (conn->version != RPC_PROTO_VERSION) {
		struct rpc__hdr h;

		rpc__hdr_get(f->data, &h);
		h.version = (uint16_t)conn->version;
		rpc__hdr_put(f->data, &h);
	}
	rpc__mac(conn->keyed ? &conn->tx : &conn->ctx->key, seq, f->data, f->data + RPC__HDR_SIZE,
		 len, f->data + RPC__HDR_SIZE + len);
	f->wr.data = f;
	rc = uv_write(&f->wr, (uv_stream_t *)&conn->tcp, &b, 1, rpc__on_written);
	if (rc < 0) {
		/* Only on a closing handle; the close has failed the calls. */
		rpc__frame_free(f);
	}
}

/* Count and write a frame the loop made itself (the handshake); ctx->lock held. */
static void rpc__send_locked(struct rpc__conn *conn, struct rpc__frame *f)
{
	rpc__count_sent_locked(conn->ch, f);
	rpc__write(conn, f);
}

/*
 * Write the frames rpc__flush_locked() took for each connection.  Loop
 * thread, no lock held (the MACs are made here); called before the loop
 * callback that took them returns, so no connection of ctx->txconns has
 * been freed meanwhile.
 */
static void rpc__tx_run(struct rpc_ctx *ctx)
{
	while (!list_empty(&ctx->txconns)) {
		struct rpc__conn *conn = list_entry(ctx->txconns.next, struct rpc__conn, txlink);

		list_del(&conn->txlink);
		while (!list_empty(&conn->txq)) {
			struct rpc__frame *f = list_entry(conn->txq.next, struct rpc__frame, link);

			list_del(&f->link);
			rpc__write(conn, f);
		}
	}
}

/* Build a frame of @msg, its MAC still to be made; the caller must free it.  0 or -errno. */
static int rpc__frame_build(struct rpc_ctx *ctx, Cxfs__MsgType type, unsigned flags, uint64_t id,
			    const ProtobufCMessage *msg, struct rpc__frame **out)
{
	struct rpc__hdr h = { .magic = RPC__MAGIC, .version = RPC_PROTO_VERSION,
			      .type = (uint16_t)type, .flags = (uint16_t)flags, .id = id,
			      .epoch = atomic_load(&ctx->epoch) };
	struct rpc__frame *f;
	int64_t len = rpc_msg_pack(type, msg, NULL, 0);

	if (len < 0)
		return (int)len;
	if ((uint64_t)len > ctx->max_payload)
		return -EMSGSIZE;
	f = malloc(sizeof(*f) + RPC__HDR_SIZE + (size_t)len + RPC__MAC_SIZE);
	if (!f)
		return -ENOMEM;
	list_init(&f->link);
	f->call = NULL;
	f->type = (uint16_t)type;
	f->len = RPC__HDR_SIZE + (size_t)len + RPC__MAC_SIZE;
	h.len = (uint32_t)len;
	rpc__hdr_put(f->data, &h);
	rpc_msg_pack(type, msg, f->data + RPC__HDR_SIZE, (size_t)len);
	*out = f;
	return 0;
}

static void rpc__on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct rpc__conn *conn = h->data;

	/* A peer not through its handshake makes us read little at a time. */
	if (conn->rxbig)
		*buf = uv_buf_init((char *)conn->rxbig, RPC__RXBUF);
	else
		*buf = uv_buf_init((char *)conn->rxsmall, sizeof(conn->rxsmall));
}

static void rpc__on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Send our HELLO on a new outgoing connection; ctx->lock held. */
static int rpc__send_hello_locked(struct rpc__conn *conn)
{
	struct rpc_ctx *ctx = conn->ctx;
	Cxfs__Hello hello = CXFS__HELLO__INIT;
	struct rpc__frame *f;
	int rc;

	conn->version = atomic_load(&ctx->level);
	randombytes_buf(conn->nonce, sizeof(conn->nonce));
	hello.version = conn->version;
	hello.cluster = ctx->cluster;
	hello.node = ctx->node;
	hello.epoch = atomic_load(&ctx->epoch);
	hello.has_nonce = conn->version >= 2;
	hello.nonce.data = conn->nonce;
	hello.nonce.len = sizeof(conn->nonce);
	conn->hello_id = atomic_fetch_add(&conn->ch->next_id, 1);
	rc = rpc__frame_build(ctx, CXFS__MSG_TYPE__HELLO, RPC__F_REQUEST, conn->hello_id,
			      &hello.base, &f);
	if (rc)
		return rc;
	rpc__send_locked(conn, f);
	return 0;
}

/*
 * A connection to @ch's peer failed: logged once in a row (a dead peer is
 * tried again at every call until the membership says it is gone).
 * ctx->lock held.
 */
static void rpc__connect_failed_locked(struct rpc_chan *ch, int rc)
{
	if (ch->failed_connects++ == 0)
		rpc__log(ch->ctx, "%s: cannot connect: %s (logged once until it connects again)",
			 ch->peer, uv_strerror(rc));
}

static void rpc__on_connect(uv_connect_t *req, int status)
{
	struct rpc__conn *conn = req->data;
	struct rpc_ctx *ctx = conn->ctx;
	int rc = status;

	if (conn->closing)
		return;
	if (rc == 0)
		rc = uv_read_start((uv_stream_t *)&conn->tcp, rpc__on_alloc, rpc__on_read);
	if (rc == 0) {
		uv_tcp_nodelay(&conn->tcp, 1);
		pthread_mutex_lock(&ctx->lock);
		conn->ch->state = CHAN_HELLO;
		conn->ch->failed_connects = 0;
		rc = rpc__send_hello_locked(conn);
		pthread_mutex_unlock(&ctx->lock);
	}
	if (rc < 0) {
		pthread_mutex_lock(&ctx->lock);
		rpc__connect_failed_locked(conn->ch, rc);
		pthread_mutex_unlock(&ctx->lock);
		rpc__conn_close(conn, rc);
	}
}

/* Start connecting @ch; loop thread, ctx->lock held. */
static void rpc__connect_locked(struct rpc_chan *ch)
{
	struct rpc_ctx *ctx = ch->ctx;
	struct rpc__conn *conn = rpc__conn_new(ctx);
	int rc;

	if (!conn) {
		rpc__fail_queued(ch, -ENOMEM);
		return;
	}
	rc = uv_tcp_init(&ctx->loop, &conn->tcp);
	if (rc < 0) {
		free(conn);
		rpc__fail_queued(ch, rc);
		return;
	}
	conn->tcp.data = conn;
	conn->creq.data = conn;
	conn->ch = ch;
	ch->refs++;
	ch->conn = conn;
	conn->gen = ++ch->conn_gen;
	ch->state = CHAN_CONNECTING;
	rpc__hello_timer_start(conn);
	rc = uv_tcp_connect(&conn->creq, &conn->tcp, (const struct sockaddr *)&ch->addr,
			    rpc__on_connect);
	if (rc < 0) {
		rpc__connect_failed_locked(ch, rc);
		rpc__conn_close_locked(conn, rc);
	}
}

/*
 * Move @ch's queued frames to its socket, or start its connection; loop
 * thread, ctx->lock held.
 */
static void rpc__flush_locked(struct rpc_chan *ch)
{
	if (ch->want_close) {
		rpc__conn_close_locked(ch->conn, -ESHUTDOWN);
		return;
	}
	if (list_empty(&ch->outq))
		return;
	switch (ch->state) {
	case CHAN_READY:
		/* rpc__tx_run() seals and writes them once the lock is dropped. */
		while (!list_empty(&ch->outq)) {
			struct rpc__frame *f = list_entry(ch->outq.next, struct rpc__frame, link);

			list_del(&f->link);
			if (f->call) {
				f->call->state = CALL_SENT;
				f->call->frame = NULL;
				f->call = NULL;
			}
			rpc__count_sent_locked(ch, f);
			list_add_tail(&ch->conn->txq, &f->link);
		}
		if (list_empty(&ch->conn->txlink))
			list_add_tail(&ch->ctx->txconns, &ch->conn->txlink);
		break;
	case CHAN_IDLE:
		rpc__connect_locked(ch);
		break;
	case CHAN_DEAD:
		rpc__fail_queued(ch, -ENOTCONN);
		break;
	case CHAN_CONNECTING:
	case CHAN_HELLO:
		break;
	}
}

/* The loop's stop: close every handle so that uv_run() returns; ctx->lock held. */
static void rpc__stop_loop_locked(struct rpc_ctx *ctx)
{
	struct rpc__list *p;

	if (ctx->listening)
		uv_close((uv_handle_t *)&ctx->listener, NULL);
	uv_close((uv_handle_t *)&ctx->wake, NULL);
	for (p = ctx->chans.next; p != &ctx->chans; p = p->next) {
		struct rpc_chan *ch = list_entry(p, struct rpc_chan, link);

		if (ch->conn)
			rpc__conn_close_locked(ch->conn, -ESHUTDOWN);
	}
}

static void rpc__on_wake(uv_async_t *a)
{
	struct rpc_ctx *ctx = a->data;
	struct rpc__list *p;

	pthread_mutex_lock(&ctx->lock);
	if (ctx->stopping) {
		rpc__stop_loop_locked(ctx);
	} else {
		/* A flush never frees a channel: closing a connection drops
		 * its reference only in the close callback. */
		for (p = ctx->chans.next; p != &ctx->chans; p = p->next)
			rpc__flush_locked(list_entry(p, struct rpc_chan, link));
	}
	pthread_mutex_unlock(&ctx->lock);
	rpc__tx_run(ctx);
}

/* Close callback of a connection that never got a channel. */
static void rpc__on_closed_unowned(uv_handle_t *h)
{
	rpc__conn_free(h->data);
}

/* Same host (the port aside)? */
static int rpc__same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
	return 0;
}

/*
 * Why a new connection from @ss must be refused (NULL: it may come): too
 * many connections in their handshake, in all or from that address.
 * ctx->lock held.
 */
static const char *rpc__over_unauth_locked(struct rpc_ctx *ctx, const struct sockaddr_storage *ss,
					   unsigned *limit)
{
	unsigned all = 0, here = 0;
	struct rpc__list *p;

	for (p = ctx->chans.next; p != &ctx->chans; p = p->next) {
		struct rpc_chan *ch = list_entry(p, struct rpc_chan, link);

		if (ch->outgoing || ch->state != CHAN_HELLO || !ch->conn)
			continue;
		all++;
		here += rpc__same_host(&ch->addr, ss);
	}
	*limit = all >= ctx->max_unauth ? ctx->max_unauth : ctx->max_unauth_addr;
	if (all >= ctx->max_unauth)
		return "connections in their handshake";
	if (here >= ctx->max_unauth_addr)
		return "connections in their handshake from this address";
	return NULL;
}

/*
 * Count a connection refused for being over a limit (@what, at most
 * @limit), and log it, at most once a second with the number refused since.
 * Loop thread, ctx->lock held.
 */
static void rpc__refused_locked(struct rpc_ctx *ctx, const char *peer, const char *what,
				unsigned limit)
{
	uint64_t now = rpc__now_ns();

	ctx->st.dropped[RPC_DROP_CONNS]++;
	ctx->refused_unlogged++;
	if (ctx->refused_logged_ns && now - ctx->refused_logged_ns < RPC__REFUSAL_LOG_NS)
		return;
	rpc__log(ctx, "%s: connection refused: more than %u %s (%llu refused since the last such line)",
		 peer, limit, what, (unsigned long long)ctx->refused_unlogged);
	ctx->refused_logged_ns = now;
	ctx->refused_unlogged = 0;
}

static void rpc__on_connection(uv_stream_t *server, int status)
{
	struct rpc_ctx *ctx = server->data;
	struct sockaddr_storage ss;
	struct rpc__conn *conn;
	struct rpc_chan *ch = NULL;
	const char *over;
	unsigned limit;
	int len = sizeof(ss);

	if (status < 0) {
		rpc__log(ctx, "accept: %s", uv_strerror(status));
		return;
	}
	conn = rpc__conn_new(ctx);
	if (!conn)
		return;
	if (uv_tcp_init(&ctx->loop, &conn->tcp) < 0) {
		rpc__conn_free(conn);
		return;
	}
	conn->tcp.data = conn;
	memset(&ss, 0, sizeof(ss));
	if (uv_accept(server, (uv_stream_t *)&conn->tcp) < 0 ||
	    uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) < 0) {
		uv_close((uv_handle_t *)&conn->tcp, rpc__on_closed_unowned);
		return;
	}
	pthread_mutex_lock(&ctx->lock);
	over = rpc__over_unauth_locked(ctx, &ss, &limit);
	if (over) {
		char peer[64];

		rpc__addr_name(&ss, peer, sizeof(peer));
		rpc__refused_locked(ctx, peer, over, limit);
	} else {
		ch = rpc__chan_new(ctx, 0, &ss);
	}
	if (ch) {
		ch->conn = conn;              /* the channel's first reference */
		conn->gen = ++ch->conn_gen;
		conn->ch = ch;
		rpc__hello_timer_start(conn);
	}
	pthread_mutex_unlock(&ctx->lock);
	if (!ch) {
		uv_close((uv_handle_t *)&conn->tcp, rpc__on_closed_unowned);
		return;
	}
	uv_tcp_nodelay(&conn->tcp, 1);
	if (uv_read_start((uv_stream_t *)&conn->tcp, rpc__on_alloc, rpc__on_read) < 0)
		rpc__conn_close(conn, -ECONNABORTED);
}

static void rpc__lane_queue(struct rpc_ctx *ctx, struct rpc_req *req);

/* Queue an incoming request or notice in its lane. */
static void rpc__dispatch(struct rpc__conn *conn, ProtobufCMessage *msg)
{
	struct rpc_ctx *ctx = conn->ctx;
	struct rpc_req *req = calloc(1, sizeof(*req));

	if (!req) {
		rpc__log(ctx, "%s: out of memory: request %llu dropped", conn->ch->peer,
			 (unsigned long long)conn->h.id);
		rpc_msg_free(msg);
		return;
	}
	req->ch = conn->ch;
	req->conn_gen = conn->gen;
	req->id = conn->h.id;
	req->type = (Cxfs__MsgType)conn->h.type;
	req->oneway = conn->h.flags == RPC__F_ONEWAY;
	req->msg = msg;
	pthread_mutex_lock(&ctx->lock);
	conn->ch->refs++;
	pthread_mutex_unlock(&ctx->lock);
	rpc__lane_queue(ctx, req);
}

/*
 * Is a HELLO or HELLO_REPLY acceptable on @conn?  NULL, or why not in @why
 * (of @size bytes).
 */
static const char *rpc__hello_bad(struct rpc__conn *conn, uint32_t version, const char *cluster,
				  const char *node, int has_nonce, const ProtobufCBinaryData *nonce,
				  char *why, size_t size)
{
	struct rpc_ctx *ctx = conn->ctx;

	if (version != conn->version)
		snprintf(why, size, "a HELLO of version %u in a frame of version %u", version,
			 conn->version);
	else if (strcmp(cluster, ctx->cluster) != 0)
		snprintf(why, size, "the peer is of cluster \"%.64s\", not \"%.64s\"", cluster,
			 ctx->cluster);
	else if (!node[0] || strlen(node) > RPC_NAME_MAX)
		snprintf(why, size, "no valid node name");
	else if (version >= 2 && (!has_nonce || nonce->len != RPC__NONCE_SIZE))
		snprintf(why, size, "no nonce of %d bytes", RPC__NONCE_SIZE);
	else
		return NULL;
	return why;
}

/* The handshake on @conn completed with peer @node at @epoch; ctx->lock held. */
static void rpc__chan_ready_locked(struct rpc__conn *conn, const char *node, uint64_t epoch)
{
	struct rpc_chan *ch = conn->ch;

	snprintf(ch->peer_node, sizeof(ch->peer_node), "%s", node);
	ch->peer_epoch = epoch;
	ch->peer_known = 1;
	ch->state = CHAN_READY;
	conn->authed = 1;
	/* Without the big buffer reads are only smaller. */
	conn->rxbig = malloc(RPC__RXBUF);
	uv_timer_stop(&conn->hello_timer);
	STAT_ADD(ch, connects, 1);
}

/* How many incoming connections of node @node are through their handshake; ctx->lock held. */
static unsigned rpc__node_conns_locked(struct rpc_ctx *ctx, const char *node)
{
	unsigned n = 0;

	for (struct rpc__list *p = ctx->chans.next; p != &ctx->chans; p = p->next) {
		struct rpc_chan *ch = list_entry(p, struct rpc_chan, link);

		n += !ch->outgoing && ch->state == CHAN_READY && ch->peer_known &&
		     strcmp(ch->peer_node, node) == 0;
	}
	return n;
}

/*
 * The handshake of incoming @conn is done (the peer named in ch->peer_node):
 * ready, unless its node has all the connections it may have.
 */
static void rpc__incoming_ready(struct rpc__conn *conn)
{
	struct rpc_ctx *ctx = conn->ctx;
	struct rpc_chan *ch = conn->ch;
	char node[RPC_NAME_MAX + 1];

	pthread_mutex_lock(&ctx->lock);
	snprintf(node, sizeof(node), "%s", ch->peer_node);
	if (rpc__node_conns_locked(ctx, node) >= ctx->max_node_conns) {
		rpc__refused_locked(ctx, ch->peer, "connections of this node", ctx->max_node_conns);
		rpc__conn_close_locked(conn, -ECONNABORTED);
		pthread_mutex_unlock(&ctx->lock);
		return;
	}
	rpc__chan_ready_locked(conn, node, ch->peer_epoch);
	rpc__flush_locked(ch);
	pthread_mutex_unlock(&ctx->lock);
	rpc__tx_run(ctx);
}

/*
 * A good HELLO arrived on an incoming connection: answer (with our nonce,
 * and make the connection's keys, at version 2).  At version 2 the channel
 * is ready only once the peer's HELLO_DONE shows it holds the keys too; at
 * version 1 at once.
 */
static void rpc__hello_in(struct rpc__conn *conn, ProtobufCMessage *msg)
{
	struct rpc_ctx *ctx = conn->ctx;
	struct rpc_chan *ch = conn->ch;
	Cxfs__Hello *in = (Cxfs__Hello *)msg;
	Cxfs__HelloReply rep = CXFS__HELLO_REPLY__INIT;
	struct rpc__frame *f;
	char why[192];
	int rc;

	if (rpc__hello_bad(conn, in->version, in->cluster, in->node, in->has_nonce, &in->nonce,
			   why, sizeof(why))) {
		rpc_msg_free(msg);
		rpc__drop(conn, RPC_DROP_HANDSHAKE, why);
		return;
	}
	randombytes_buf(conn->nonce, sizeof(conn->nonce));
	rep.version = conn->version;
	rep.cluster = ctx->cluster;
	rep.node = ctx->node;
	rep.epoch = atomic_load(&ctx->epoch);
	rep.has_nonce = rep.has_peer_nonce = conn->version >= 2;
	rep.nonce.data = conn->nonce;
	rep.nonce.len = sizeof(conn->nonce);
	rep.peer_nonce = in->nonce;
	rc = rpc__frame_build(ctx, CXFS__MSG_TYPE__HELLO_REPLY, RPC__F_REPLY, conn->h.id, &rep.base, &f);
	if (rc) {
		rpc_msg_free(msg);
		rpc__conn_close(conn, rc);
		return;
	}
	pthread_mutex_lock(&ctx->lock);
	/* Named now for the logs; the name counts only once the handshake is done. */
	snprintf(ch->peer_node, sizeof(ch->peer_node), "%s", in->node);
	ch->peer_epoch = in->epoch;
	rpc__send_locked(conn, f);      /* under the cluster key */
	pthread_mutex_unlock(&ctx->lock);
	if (conn->version >= 2) {
		rpc__conn_keys(&ctx->key, in->nonce.data, conn->nonce, &conn->rx, &conn->tx);
		conn->keyed = 1;
		conn->tx_seq = conn->rx_seq = 1;
	}
	rpc_msg_free(msg);
	if (conn->version == 1)
		rpc__incoming_ready(conn);
}

/* The peer's HELLO_DONE verified under the connection's key: it is ready. */
static void rpc__hello_done_in(struct rpc__conn *conn, ProtobufCMessage *msg)
{
	rpc_msg_free(msg);
	rpc__incoming_ready(conn);
}

/*
 * The reply to our HELLO arrived on an outgoing connection: ready (at
 * version 2 once keyed, with HELLO_DONE sent first).
 */
static void rpc__hello_reply_in(struct rpc__conn *conn, ProtobufCMessage *msg)
{
	struct rpc_ctx *ctx = conn->ctx;
	struct rpc_chan *ch = conn->ch;
	Cxfs__HelloReply *in = (Cxfs__HelloReply *)msg;
	Cxfs__HelloDone done = CXFS__HELLO_DONE__INIT;
	struct rpc__frame *f = NULL;
	char why[192];
	int rc;

	if (conn->h.type != CXFS__MSG_TYPE__HELLO_REPLY) {
		rpc_msg_free(msg);
		rpc__drop(conn, RPC_DROP_HANDSHAKE, "HELLO refused");
		return;
	}
	if (rpc__hello_bad(conn, in->version, in->cluster, in->node, in->has_nonce, &in->nonce,
			   why, sizeof(why))) {
		rpc_msg_free(msg);
		rpc__drop(conn, RPC_DROP_HANDSHAKE, why);
		return;
	}
	if (conn->version >= 2 &&
	    (!in->has_peer_nonce || in->peer_nonce.len != RPC__NONCE_SIZE ||
	     sodium_memcmp(in->peer_nonce.data, conn->nonce, RPC__NONCE_SIZE) != 0)) {
		rpc_msg_free(msg);
		rpc__drop(conn, RPC_DROP_REPLAY, "the HELLO_REPLY does not answer our HELLO");
		return;
	}
	if (conn->version >= 2) {
		rpc__conn_keys(&ctx->key, conn->nonce, in->nonce.data, &conn->tx, &conn->rx);
		conn->keyed = 1;
		conn->tx_seq = conn->rx_seq = 1;
		rc = rpc__frame_build(ctx, CXFS__MSG_TYPE__HELLO_DONE, RPC__F_ONEWAY, 0, &done.base,
				      &f);
		if (rc) {
			rpc_msg_free(msg);
			rpc__conn_close(conn, rc);
			return;
		}
	}
	pthread_mutex_lock(&ctx->lock);
	if (f)
		rpc__send_locked(conn, f);      /* before any frame of the queue */
	rpc__chan_ready_locked(conn, in->node, in->epoch);
	rpc__flush_locked(ch);
	pthread_mutex_unlock(&ctx->lock);
	rpc__tx_run(ctx);
	rpc_msg_free(msg);
}

/* A reply arrived on a ready connection. */
static void rpc__reply_in(struct rpc__conn *conn, ProtobufCMessage *msg)
{
	struct rpc_ctx *ctx = conn->ctx;
	struct rpc_chan *ch = conn->ch;
	Cxfs__MsgType type = (Cxfs__MsgType)conn->h.type;
	struct rpc__call *c = NULL;
	struct rpc__list *p;
	enum rpc_drop bad = RPC_DROP__COUNT;

	pthread_mutex_lock(&ctx->lock);
	for (p = ch->calls.next; p != &ch->calls; p = p->next) {
		struct rpc__call *k = list_entry(p, struct rpc__call, link);

		if (k->id == conn->h.id && k->state == CALL_SENT) {
			c = k;
			break;
		}
	}
	if (c && type != c->expect && type != CXFS__MSG_TYPE__ERROR_REPLY) {
		rpc__call_complete(c, -EPROTO, 0, NULL);
		bad = RPC_DROP_UNEXPECTED;
	} else if (c) {
		rpc__call_complete(c, 0, type, msg);
		msg = NULL;
	} else if (conn->h.id && conn->h.id < atomic_load(&ch->next_id)) {
		STAT_ADD(ch, late_replies, 1);     /* its caller timed out */
	} else {
		bad = RPC_DROP_UNEXPECTED;
	}
	pthread_mutex_unlock(&ctx->lock);
	rpc_msg_free(msg);
	if (bad != RPC_DROP__COUNT)
		rpc__drop(conn, bad, c ? "wrong reply type" : "no such request");
}

/*
 * May a frame of @version come on @conn?  A connection speaks one version:
 * ours when we connect, else the one of the peer's first frame, which must
 * be one we speak and not below the level floor.
 */
static int rpc__version_ok(struct rpc__conn *conn, unsigned version)
{
	if (conn->version)
		return version == conn->version;
	if (version < atomic_load(&conn->ctx->level_floor) || version > RPC_PROTO_VERSION)
		return 0;
	conn->version = version;
	return 1;
}

/* Header complete: refuse it at once or make room for the body. */
static int rpc__header_in(struct rpc__conn *conn)
{
	struct rpc__hdr *h = &conn->h;
	unsigned f;

	rpc__hdr_get(conn->hdr, h);
	f = h->flags;
	if (h->magic != RPC__MAGIC) {
		rpc__drop(conn, RPC_DROP_MAGIC, NULL);
		return -1;
	}
	if (!rpc__version_ok(conn, h->version)) {
		char why[160];

		snprintf(why, sizeof(why), "the peer speaks protocol version %u, this node %u to %u "
			 "and accepts %u now", h->version, RPC_PROTO_VERSION_MIN,
			 RPC_PROTO_VERSION, atomic_load(&conn->ctx->level_floor));
		rpc__drop(conn, RPC_DROP_VERSION, why);
		return -1;
	}
	if (h->reserved || (f != RPC__F_REQUEST && f != RPC__F_REPLY && f != RPC__F_ONEWAY)) {
		rpc__drop(conn, RPC_DROP_HEADER, NULL);
		return -1;
	}
	/* Nothing is allocated for a peer not through its handshake but a HELLO's room. */
	if (h->len > (conn->authed ? conn->ctx->max_payload : RPC__HELLO_MAX)) {
		rpc__drop(conn, RPC_DROP_OVERSIZE, conn->authed ? NULL : "before the handshake");
		return -1;
	}
	conn->body_len = (size_t)h->len + RPC__MAC_SIZE;
	conn->body_got = 0;
	conn->body = malloc(conn->body_len);
	if (!conn->body) {
		rpc__conn_close(conn, -ENOMEM);
		return -1;
	}
	return 0;
}

/*
 * Whole frame received: check it in order (MAC, kind, epoch, payload),
 * then route it.  -1 if the connection closed.
 */
static int rpc__frame_in(struct rpc__conn *conn)
{
	struct rpc_ctx *ctx = conn->ctx;
	struct rpc_chan *ch = conn->ch;
	struct rpc__hdr *h = &conn->h;
	ProtobufCMessage *msg = NULL;

	if (rpc__mac_verify(conn->keyed ? &conn->rx : &ctx->key,
			    conn->version == 1 ? RPC__SEQ_NONE : conn->keyed ? conn->rx_seq : 0,
			    conn->hdr, conn->body, h->len, conn->body + h->len)) {
		/* Keyed but not authed: the first frame after our HELLO_REPLY. */
		if (conn->keyed && !conn->authed)
			rpc__drop(conn, RPC_DROP_REPLAY,
				  "no HELLO_DONE under this connection's keys (a replayed HELLO?)");
		else
			rpc__drop(conn, RPC_DROP_MAC, NULL);
		return -1;
	}
	if (conn->keyed)
		conn->rx_seq++;
	if (!(rpc__msg_kinds(h->type) & h->flags)) {
		rpc__drop(conn, RPC_DROP_TYPE, NULL);
		return -1;
	}
	if (h->epoch < atomic_load(&ctx->floor)) {
		char why[96];

		snprintf(why, sizeof(why), "epoch %llu, below %llu", (unsigned long long)h->epoch,
			 (unsigned long long)atomic_load(&ctx->floor));
		rpc__drop(conn, RPC_DROP_EPOCH, why);
		return -1;
	}
	if (rpc_msg_unpack((Cxfs__MsgType)h->type, conn->body, h->len, &msg)) {
		rpc__drop(conn, RPC_DROP_DECODE, NULL);
		return -1;
	}
	free(conn->body);
	conn->body = NULL;
	pthread_mutex_lock(&ctx->lock);
	STAT_ADD(ch, frames_received, 1);
	if (h->type < RPC_TYPES)
		STAT_ADD(ch, received_by_type[h->type], 1);
	STAT_ADD(ch, bytes_received, RPC__HDR_SIZE + h->len + RPC__MAC_SIZE);
	pthread_mutex_unlock(&ctx->lock);

	if (!conn->authed) {
		if (!ch->outgoing && !conn->keyed && h->type == CXFS__MSG_TYPE__HELLO)
			rpc__hello_in(conn, msg);
		else if (!ch->outgoing && conn->keyed && h->type == CXFS__MSG_TYPE__HELLO_DONE)
			rpc__hello_done_in(conn, msg);
		else if (ch->outgoing && h->flags == RPC__F_REPLY && h->id == conn->hello_id)
			rpc__hello_reply_in(conn, msg);
		else {
			rpc_msg_free(msg);
			rpc__drop(conn, RPC_DROP_HANDSHAKE, "frame before the handshake is done");
		}
	} else if (h->type == CXFS__MSG_TYPE__HELLO || h->type == CXFS__MSG_TYPE__HELLO_DONE) {
		rpc_msg_free(msg);
		rpc__drop(conn, RPC_DROP_HANDSHAKE, "second HELLO");
	} else if (h->flags == RPC__F_REPLY) {
		rpc__reply_in(conn, msg);
	} else {
		rpc__dispatch(conn, msg);
	}
	return conn->closing ? -1 : 0;
}

static void rpc__on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct rpc__conn *conn = s->data;
	const uint8_t *p = (const uint8_t *)buf->base;
	size_t left = nread > 0 ? (size_t)nread : 0;

	if (conn->closing)
		return;
	if (nread < 0) {
		if (conn->hdr_got) {
			rpc__drop(conn, RPC_DROP_TRUNCATED, uv_strerror((int)nread));
		} else {
			if (nread != UV_EOF)
				rpc__log(conn->ctx, "%s: read: %s", conn->ch->peer,
					 uv_strerror((int)nread));
			else if (conn->ch->outgoing && !conn->authed)
				rpc__log(conn->ctx, "%s: the peer closed the connection in the handshake "
					 "(another protocol version, cluster or secret, an old epoch, "
					 "or a limit of connections: see its log)", conn->ch->peer);
			rpc__conn_close(conn, -ECONNRESET);
		}
		return;
	}
	while (left) {
		size_t n;

		if (conn->hdr_got < RPC__HDR_SIZE) {
			n = RPC__HDR_SIZE - conn->hdr_got;
			n = n < left ? n : left;
			memcpy(conn->hdr + conn->hdr_got, p, n);
			conn->hdr_got += n;
			p += n;
			left -= n;
			if (conn->hdr_got == RPC__HDR_SIZE && rpc__header_in(conn))
				return;
			continue;
		}
		n = conn->body_len - conn->body_got;
		n = n < left ? n : left;
		memcpy(conn->body + conn->body_got, p, n);
		conn->body_got += n;
		p += n;
		left -= n;
		if (conn->body_got == conn->body_len) {
			if (rpc__frame_in(conn))
				return;
			conn->hdr_got = 0;
		}
	}
}

static void *rpc__loop_main(void *arg)
{
	struct rpc_ctx *ctx = arg;

	uv_run(&ctx->loop, UV_RUN_DEFAULT);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* 4. Calls, one-way sends and replies                                 */
/* ------------------------------------------------------------------ */

/*
 * Wait while @ch is frozen; ctx->lock held.  0, -RPC_EEARLY, -ESHUTDOWN
 * or -ENOTCONN; for a call (@call) also cx_intr_check()'s error: a call
 * may be given up, a one-way notice (a recall, say) is never dropped so.
 */
static int rpc__wait_thawed_locked(struct rpc_chan *ch, bool call)
{
	struct rpc_ctx *ctx = ch->ctx;
	uint64_t gen = ch->intr_gen;
	int rc = 0;

	while (ch->frozen && !ctx->stopping && ch->intr_gen == gen && rc >= 0) {
		if (call)
			rc = cx_intr_wait(&ch->cond, &ctx->lock, NULL);
		else
			pthread_cond_wait(&ch->cond, &ctx->lock);
	}
	if (rc < 0)
		return rc;
	if (ctx->stopping)
		return -ESHUTDOWN;
	if (ch->intr_gen != gen) {
		STAT_ADD(ch, interrupted, 1);
		return -RPC_EEARLY;
	}
	if (ch->state == CHAN_DEAD)
		return -ENOTCONN;
	return 0;
}

/* The handshake's messages are this layer's own. */
static int rpc__handshake_type(Cxfs__MsgType type)
{
	return type == CXFS__MSG_TYPE__HELLO || type == CXFS__MSG_TYPE__HELLO_DONE;
}

/* Queue frame @f on @ch unless the channel went away meanwhile; ctx->lock held. */
static int rpc__queue_locked(struct rpc_chan *ch, struct rpc__frame *f)
{
	if (ch->ctx->stopping)
		return -ESHUTDOWN;
	if (ch->state == CHAN_DEAD)
		return -ENOTCONN;
	if (ch->aborted)
		return -ECONNRESET;
	list_add_tail(&ch->outq, &f->link);
	rpc__wake_locked(ch->ctx);
	return 0;
}

int rpc_call(struct rpc_chan *ch, Cxfs__MsgType type, const ProtobufCMessage *req,
	     unsigned timeout_ms, Cxfs__MsgType *reply_type, ProtobufCMessage **reply)
{
	struct rpc_ctx *ctx = ch->ctx;
	struct rpc__call c = { .expect = rpc_msg_reply_type(type), .state = CALL_QUEUED };
	struct rpc__frame *f;
	struct timespec dl;
	uint64_t deadline;
	int64_t t0 = cx_intr_now_ns();
	int rc;

	if (!c.expect || rpc__handshake_type(type))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	rc = rpc__wait_thawed_locked(ch, true);
	pthread_mutex_unlock(&ctx->lock);
	if (rc)
		return rc;

	c.id = atomic_fetch_add(&ch->next_id, 1);
	rc = rpc__frame_build(ctx, type, RPC__F_REQUEST, c.id, req, &f);
	if (rc)
		return rc;
	if (pthread_cond_init(&c.cond, &ctx->cattr)) {
		rpc__frame_free(f);
		return -ENOMEM;
	}
	deadline = rpc__now_ns() + (uint64_t)timeout_ms * 1000000u;
	dl.tv_sec = (time_t)(deadline / 1000000000u);
	dl.tv_nsec = (long)(deadline % 1000000000u);

	pthread_mutex_lock(&ctx->lock);
	rc = rpc__queue_locked(ch, f);
	if (rc) {
		pthread_mutex_unlock(&ctx->lock);
		rpc__frame_free(f);
		goto out_cond;
	}
	f->call = &c;
	c.frame = f;
	list_add_tail(&ch->calls, &c.link);
	STAT_ADD(ch, calls, 1);
	while (c.state != CALL_DONE) {
		rc = cx_intr_wait(&c.cond, &ctx->lock, &dl);
		if (c.state == CALL_DONE)
			break;
		if (rc == ETIMEDOUT) {
			rpc__call_complete(&c, -ETIMEDOUT, 0, NULL);
			STAT_ADD(ch, timeouts, 1);
		} else if (rc < 0) {
			/* Given up by the caller (cx_intr.h): a reply that comes later is dropped. */
			rpc__call_complete(&c, rc, 0, NULL);
		}
	}
	if (c.result == -RPC_EEARLY)
		STAT_ADD(ch, interrupted, 1);
	pthread_mutex_unlock(&ctx->lock);
	rc = c.result;
	if (rc == 0) {
		*reply_type = c.reply_type;
		*reply = c.reply;
	}
out_cond:
	pthread_cond_destroy(&c.cond);
	if ((unsigned)type < RPC_TYPES)
		cx_hist_observe_since(&ctx->call_hist[type], t0);
	return rc;
}

int rpc_send(struct rpc_chan *ch, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	struct rpc_ctx *ctx = ch->ctx;
	struct rpc__frame *f;
	int rc;

	if (!(rpc__msg_kinds((uint32_t)type) & RPC__F_ONEWAY) || rpc__handshake_type(type))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	rc = rpc__wait_thawed_locked(ch, false);
	pthread_mutex_unlock(&ctx->lock);
	if (rc)
		return rc;
	rc = rpc__frame_build(ctx, type, RPC__F_ONEWAY, 0, msg, &f);
	if (rc)
		return rc;
	pthread_mutex_lock(&ctx->lock);
	rc = rpc__queue_locked(ch, f);
	pthread_mutex_unlock(&ctx->lock);
	if (rc)
		rpc__frame_free(f);
	return rc;
}

struct rpc_chan *rpc_req_chan(struct rpc_req *req)
{
	return req->ch;
}

int rpc_req_is_oneway(const struct rpc_req *req)
{
	return req->oneway;
}

struct rpc_req *rpc_req_local(Cxfs__MsgType type, rpc_local_reply_fn fn, void *arg)
{
	struct rpc_req *req = calloc(1, sizeof(*req));

	if (!req)
		return NULL;
	req->type = type;
	req->local = fn;
	req->local_arg = arg;
	return req;
}

void rpc_req_local_free(struct rpc_req *req)
{
	free(req);
}

int rpc_reply(struct rpc_req *req, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	struct rpc_chan *ch = req->ch;
	struct rpc_ctx *ctx;
	struct rpc__frame *f;
	int rc;

	if (req->oneway)
		return -EINVAL;
	if (req->replied)
		return -EALREADY;
	if (type != rpc_msg_reply_type(req->type) && type != CXFS__MSG_TYPE__ERROR_REPLY)
		return -EINVAL;
	if (req->local) {
		req->replied = 1;
		req->local(req->local_arg, type, msg);
		return 0;
	}
	ctx = ch->ctx;
	rc = rpc__frame_build(ctx, type, RPC__F_REPLY, req->id, msg, &f);
	if (rc)
		return rc;
	req->replied = 1;
	pthread_mutex_lock(&ctx->lock);
	/* The reply belongs to the connection the request came on. */
	if (ctx->stopping || !ch->conn || ch->conn_gen != req->conn_gen ||
	    ch->state != CHAN_READY) {
		pthread_mutex_unlock(&ctx->lock);
		rpc__frame_free(f);
		return 0;
	}
	list_add_tail(&ch->outq, &f->link);
	rpc__wake_locked(ctx);
	pthread_mutex_unlock(&ctx->lock);
	return 0;
}

int rpc_reply_error(struct rpc_req *req, int err)
{
	Cxfs__ErrorReply e = CXFS__ERROR_REPLY__INIT;

	e.err = err;
	return rpc_reply(req, CXFS__MSG_TYPE__ERROR_REPLY, &e.base);
}

/* ------------------------------------------------------------------ */
/* 5. The worker pool                                                  */
/* ------------------------------------------------------------------ */

static void rpc__req_free(struct rpc_ctx *ctx, struct rpc_req *req)
{
	rpc_msg_free(req->msg);
	pthread_mutex_lock(&ctx->lock);
	rpc__chan_unref(req->ch);
	pthread_mutex_unlock(&ctx->lock);
	free(req);
}

/*
 * Take a place for one more worker of @ln; pool_lock held.  The thread is
 * started with rpc__worker_start() once the lock is dropped.
 */
static void rpc__lane_reserve_locked(struct rpc__lane *ln)
{
	struct rpc_ctx *ctx = ln->ctx;

	ln->workers++;
	ln->idle++;
	ln->started++;
	if (ln->workers > ln->peak)
		ln->peak = ln->workers;
	ctx->nthreads++;
}

/*
 * A worker of @ln goes; pool_lock held, and dropped here.  It joins the
 * worker that went before it (which has nothing left to do but return), and
 * leaves itself to be joined by the next one or by rpc__pool_stop().
 */
static void rpc__worker_exit_locked(struct rpc__lane *ln)
{
	struct rpc_ctx *ctx = ln->ctx;
	pthread_t prev = ctx->last_exited;
	int join = ctx->have_last_exited;

	ln->workers--;
	ln->idle--;
	ctx->last_exited = pthread_self();
	ctx->have_last_exited = 1;
	if (--ctx->nthreads == 0)
		pthread_cond_broadcast(&ctx->pool_done);
	pthread_mutex_unlock(&ctx->pool_lock);
	/* ctx may be gone from here on: rpc__pool_stop() can return now. */
	if (join)
		pthread_join(prev, NULL);
}

static void *rpc__worker_main(void *arg)
{
	struct rpc__lane *ln = arg;
	struct rpc_ctx *ctx = ln->ctx;

	pthread_mutex_lock(&ctx->pool_lock);
	for (;;) {
		uint64_t deadline = rpc__now_ns() + (uint64_t)ctx->idle_ms * 1000000u;
		struct timespec dl = { .tv_sec = (time_t)(deadline / 1000000000u),
				       .tv_nsec = (long)(deadline % 1000000000u) };
		struct rpc_req *req;
		int rc;

		/* Workers above the minimum leave after idle_ms without work. */
		while (list_empty(&ln->queue) && !ctx->pool_stop) {
			if (ln->workers <= ln->min)
				pthread_cond_wait(&ln->cond, &ctx->pool_lock);
			else if (pthread_cond_timedwait(&ln->cond, &ctx->pool_lock, &dl) == ETIMEDOUT &&
				 list_empty(&ln->queue) && ln->workers > ln->min)
				goto out_exit;
		}
		if (ctx->pool_stop)
			break;
		req = list_entry(ln->queue.next, struct rpc_req, link);
		list_del(&req->link);
		ln->queued--;
		ln->idle--;
		pthread_mutex_unlock(&ctx->pool_lock);

		rc = ctx->handler ? ctx->handler(ctx->handler_arg, req, req->type, req->msg)
				  : -EOPNOTSUPP;
		if (!req->oneway && !req->replied)
			rpc_reply_error(req, rc < 0 ? rc : -EIO);
		rpc__req_free(ctx, req);

		pthread_mutex_lock(&ctx->pool_lock);
		ln->idle++;
		ln->handled++;
	}
out_exit:
	rpc__worker_exit_locked(ln);
	return NULL;
}

/* Start the worker whose place rpc__lane_reserve_locked() took.  0 or -errno. */
static int rpc__worker_start(struct rpc__lane *ln)
{
	struct rpc_ctx *ctx = ln->ctx;
	pthread_t t;
	int rc = pthread_create(&t, NULL, rpc__worker_main, ln);

	if (rc == 0)
		return 0;       /* joined when it exits: see rpc__worker_exit_locked() */
	pthread_mutex_lock(&ctx->pool_lock);
	ln->workers--;
	ln->idle--;
	ln->started--;
	if (--ctx->nthreads == 0)
		pthread_cond_broadcast(&ctx->pool_done);
	pthread_mutex_unlock(&ctx->pool_lock);
	return -rc;
}

/*
 * Queue @req in the lane the classifier names, and start a worker there if
 * none is idle and the lane may grow.  Loop thread, no lock held.
 */
static void rpc__lane_queue(struct rpc_ctx *ctx, struct rpc_req *req)
{
	unsigned i = ctx->lane_of ? ctx->lane_of(ctx->handler_arg, req->type, req->msg) : 0;
	struct rpc__lane *ln = &ctx->lanes[i < ctx->nlanes ? i : 0];
	int grow = 0, rc;

	pthread_mutex_lock(&ctx->pool_lock);
	list_add_tail(&ln->queue, &req->link);
	ln->queued++;
	if (ln->queued > ln->idle) {
		if (ln->workers < ln->max) {
			rpc__lane_reserve_locked(ln);
			grow = 1;
		} else {
			ln->waited++;
		}
	}
	pthread_mutex_unlock(&ctx->pool_lock);
	/* After the unlock (the lane outlives its workers): the woken worker does not wait for it. */
	pthread_cond_signal(&ln->cond);
	/* If no thread can be made now, the request waits for a busy worker. */
	if (grow && (rc = rpc__worker_start(ln)))
		rpc__log(ctx, "lane %s: cannot start a worker: %s", ln->name, strerror(-rc));
}

unsigned rpc_ctx_lanes(struct rpc_ctx *ctx, struct rpc_lane_stats *out, unsigned n)
{
	pthread_mutex_lock(&ctx->pool_lock);
	for (unsigned i = 0; i < n && i < ctx->nlanes; i++) {
		const struct rpc__lane *ln = &ctx->lanes[i];

		memset(&out[i], 0, sizeof(out[i]));
		snprintf(out[i].name, sizeof(out[i].name), "%s", ln->name);
		out[i].min = ln->min;
		out[i].max = ln->max;
		out[i].workers = ln->workers;
		out[i].running = ln->workers - ln->idle;
		out[i].peak = ln->peak;
		out[i].queued = ln->queued;
		out[i].handled = ln->handled;
		out[i].waited = ln->waited;
		out[i].started = ln->started;
	}
	pthread_mutex_unlock(&ctx->pool_lock);
	return ctx->nlanes;
}

/* ------------------------------------------------------------------ */
/* 6. Creating and destroying a context                                */
/* ------------------------------------------------------------------ */

static int rpc__listen(struct rpc_ctx *ctx, const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	int rc;

	memset(&ss, 0, sizeof(ss));
	if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss) &&
	    uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss))
		return -EINVAL;
	rc = uv_tcp_init(&ctx->loop, &ctx->listener);
	if (rc < 0)
		return rc;
	ctx->listener.data = ctx;
	ctx->listening = 1;
	rc = uv_tcp_bind(&ctx->listener, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&ctx->listener, 128, rpc__on_connection);
	if (rc == 0)
		rc = uv_tcp_getsockname(&ctx->listener, (struct sockaddr *)&ss, &len);
	if (rc < 0)
		return rc;
	ctx->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* Close the handles made so far and run the loop until they are gone. */
static void rpc__loop_unwind(struct rpc_ctx *ctx)
{
	if (ctx->listening)
		uv_close((uv_handle_t *)&ctx->listener, NULL);
	uv_close((uv_handle_t *)&ctx->wake, NULL);
	uv_run(&ctx->loop, UV_RUN_DEFAULT);
	uv_loop_close(&ctx->loop);
}

/* Stop every lane: wait for every worker to go, join them, drop the queues. */
static void rpc__pool_stop(struct rpc_ctx *ctx)
{
	pthread_t last;
	int join;

	pthread_mutex_lock(&ctx->pool_lock);
	ctx->pool_stop = 1;
	for (unsigned i = 0; i < ctx->nlanes; i++)
		pthread_cond_broadcast(&ctx->lanes[i].cond);
	while (ctx->nthreads)
		pthread_cond_wait(&ctx->pool_done, &ctx->pool_lock);
	last = ctx->last_exited;
	join = ctx->have_last_exited;
	ctx->have_last_exited = 0;
	pthread_mutex_unlock(&ctx->pool_lock);
	/* Each worker joined the one before it; this is the last. */
	if (join)
		pthread_join(last, NULL);
	for (unsigned i = 0; i < ctx->nlanes; i++) {
		struct rpc__lane *ln = &ctx->lanes[i];

		while (!list_empty(&ln->queue)) {
			struct rpc_req *req = list_entry(ln->queue.next, struct rpc_req, link);

			list_del(&req->link);
			ln->queued--;
			rpc__req_free(ctx, req);
		}
	}
}

static void rpc__ctx_free(struct rpc_ctx *ctx)
{
	rpc__key_wipe(&ctx->key);
	for (unsigned i = 0; i < ctx->nlanes; i++)
		pthread_cond_destroy(&ctx->lanes[i].cond);
	pthread_cond_destroy(&ctx->pool_done);
	pthread_mutex_destroy(&ctx->pool_lock);
	pthread_mutex_destroy(&ctx->lock);
	pthread_condattr_destroy(&ctx->cattr);
	free(ctx);
}

/* The lanes of @cfg into @ctx (their conds too); 0 or -EINVAL / -ENOMEM. */
static int rpc__lanes_init(struct rpc_ctx *ctx, const struct rpc_config *cfg)
{
	struct rpc_lane_config one = { .name = "requests" };
	const struct rpc_lane_config *lc = cfg->nlanes ? cfg->lanes : &one;
	unsigned n = cfg->nlanes ? cfg->nlanes : 1;

	if (n > RPC_LANES_MAX)
		return -EINVAL;
	one.min = one.max = cfg->workers ? cfg->workers : RPC__WORKERS_DEFAULT;
	for (unsigned i = 0; i < n; i++) {
		struct rpc__lane *ln = &ctx->lanes[i];

		if (pthread_cond_init(&ln->cond, &ctx->cattr))
			return -ENOMEM;
		ctx->nlanes = i + 1;
		ln->ctx = ctx;
		if (lc[i].name)
			snprintf(ln->name, sizeof(ln->name), "%s", lc[i].name);
		else
			snprintf(ln->name, sizeof(ln->name), "lane%u", i);
		ln->min = lc[i].min ? lc[i].min : 1;
		ln->max = lc[i].max > ln->min ? lc[i].max : ln->min;
		list_init(&ln->queue);
	}
	return 0;
}

int rpc_ctx_create(const struct rpc_config *cfg, struct rpc_ctx **out)
{
	struct rpc_ctx *ctx;
	int rc;

	if (!cfg->cluster || !cfg->node || !cfg->cluster[0] || !cfg->node[0] ||
	    strlen(cfg->cluster) > RPC_NAME_MAX || strlen(cfg->node) > RPC_NAME_MAX ||
	    cfg->max_payload > RPC_MAX_PAYLOAD_LIMIT ||
	    (cfg->level && (cfg->level < RPC_PROTO_VERSION_MIN || cfg->level > RPC_PROTO_VERSION)))
		return -EINVAL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	rc = rpc__key_init(&ctx->key, cfg->secret, cfg->secret_len);
	if (rc)
		goto out_free;
	snprintf(ctx->cluster, sizeof(ctx->cluster), "%s", cfg->cluster);
	snprintf(ctx->node, sizeof(ctx->node), "%s", cfg->node);
	atomic_init(&ctx->epoch, cfg->epoch);
	atomic_init(&ctx->floor, cfg->epoch);
	atomic_init(&ctx->level, cfg->level ? cfg->level : RPC_PROTO_VERSION);
	atomic_init(&ctx->level_floor, cfg->level ? cfg->level : RPC_PROTO_VERSION);
	ctx->max_payload = cfg->max_payload ? cfg->max_payload : RPC_MAX_PAYLOAD_DEFAULT;
	ctx->hello_ms = cfg->hello_timeout_ms ? cfg->hello_timeout_ms : RPC__HELLO_MS_DEFAULT;
	ctx->max_unauth = cfg->max_unauth ? cfg->max_unauth : RPC__MAX_UNAUTH_DEFAULT;
	ctx->max_unauth_addr = cfg->max_unauth_per_addr ? cfg->max_unauth_per_addr
							: RPC__MAX_UNAUTH_ADDR_DEFAULT;
	ctx->max_node_conns = cfg->max_conns_per_node ? cfg->max_conns_per_node
						      : RPC__MAX_NODE_CONNS_DEFAULT;
	list_init(&ctx->txconns);
	ctx->handler = cfg->handler;
	ctx->handler_arg = cfg->handler_arg;
	ctx->log = cfg->log;
	ctx->log_arg = cfg->log_arg;
	ctx->lane_of = cfg->lane_of;
	ctx->idle_ms = cfg->idle_ms ? cfg->idle_ms : RPC__IDLE_MS_DEFAULT;
	list_init(&ctx->chans);
	pthread_condattr_init(&ctx->cattr);
	pthread_condattr_setclock(&ctx->cattr, CLOCK_MONOTONIC);
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_mutex_init(&ctx->pool_lock, NULL);
	pthread_cond_init(&ctx->pool_done, &ctx->cattr);
	rc = rpc__lanes_init(ctx, cfg);
	if (rc)
		goto out_free;

	rc = uv_loop_init(&ctx->loop);
	if (rc < 0)
		goto out_free;
	rc = uv_async_init(&ctx->loop, &ctx->wake, rpc__on_wake);
	if (rc < 0) {
		uv_loop_close(&ctx->loop);
		goto out_free;
	}
	ctx->wake.data = ctx;
	if (cfg->listen_addr) {
		rc = rpc__listen(ctx, cfg->listen_addr, cfg->listen_port);
		if (rc < 0)
			goto out_loop;
	}
	for (unsigned i = 0; i < ctx->nlanes; i++) {
		struct rpc__lane *ln = &ctx->lanes[i];

		for (unsigned k = 0; k < ln->min; k++) {
			pthread_mutex_lock(&ctx->pool_lock);
			rpc__lane_reserve_locked(ln);
			pthread_mutex_unlock(&ctx->pool_lock);
			rc = rpc__worker_start(ln);
			if (rc)
				goto out_workers;
		}
	}
	/* From here on only the loop thread touches the loop's handles. */
	rc = -pthread_create(&ctx->loop_thread, NULL, rpc__loop_main, ctx);
	if (rc)
		goto out_workers;
	*out = ctx;
	return 0;

out_workers:
	rpc__pool_stop(ctx);
out_loop:
	rpc__loop_unwind(ctx);
out_free:
	rpc__ctx_free(ctx);
	return rc;
}

void rpc_ctx_destroy(struct rpc_ctx *ctx)
{
	struct rpc__list *p, *n;

	pthread_mutex_lock(&ctx->lock);
	/* The last wake-up: the loop closes every handle and returns. */
	uv_async_send(&ctx->wake);
	ctx->stopping = 1;
	for (p = ctx->chans.next; p != &ctx->chans; p = p->next) {
		struct rpc_chan *ch = list_entry(p, struct rpc_chan, link);
		struct rpc__list *q, *m;

		pthread_cond_broadcast(&ch->cond);
		for (q = ch->calls.next; q != &ch->calls; q = m) {
			m = q->next;
			rpc__call_complete(list_entry(q, struct rpc__call, link), -ESHUTDOWN, 0, NULL);
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	pthread_join(ctx->loop_thread, NULL);
	/* Handlers still running may reply or call: both fail at once now. */
	rpc__pool_stop(ctx);
	uv_loop_close(&ctx->loop);

	pthread_mutex_lock(&ctx->lock);
	for (p = ctx->chans.next; p != &ctx->chans; p = n) {
		n = p->next;
		assert(!"rpc_ctx_destroy: a channel reference was not put");
		rpc__chan_free(list_entry(p, struct rpc_chan, link));
	}
	pthread_mutex_unlock(&ctx->lock);
	rpc__ctx_free(ctx);
}

uint16_t rpc_ctx_port(const struct rpc_ctx *ctx)
{
	return ctx->port;
}

void rpc_ctx_set_epoch(struct rpc_ctx *ctx, uint64_t epoch)
{
	atomic_store(&ctx->epoch, epoch);
}

void rpc_ctx_set_floor(struct rpc_ctx *ctx, uint64_t floor)
{
	atomic_store(&ctx->floor, floor);
}

int rpc_ctx_set_level(struct rpc_ctx *ctx, unsigned level)
{
	if (level < RPC_PROTO_VERSION_MIN || level > RPC_PROTO_VERSION)
		return -EINVAL;
	atomic_store(&ctx->level, level);
	return 0;
}

int rpc_ctx_set_level_floor(struct rpc_ctx *ctx, unsigned level)
{
	if (level < RPC_PROTO_VERSION_MIN || level > RPC_PROTO_VERSION)
		return -EINVAL;
	atomic_store(&ctx->level_floor, level);
	return 0;
}

void rpc_ctx_stats(struct rpc_ctx *ctx, struct rpc_stats *st)
{
	pthread_mutex_lock(&ctx->lock);
	*st = ctx->st;
	pthread_mutex_unlock(&ctx->lock);
}

void rpc_ctx_call_hist(struct rpc_ctx *ctx, Cxfs__MsgType type, struct cx_hist_snap *out)
{
	if ((unsigned)type < RPC_TYPES)
		cx_hist_snap(&ctx->call_hist[type], out);
	else
		memset(out, 0, sizeof(*out));
}
