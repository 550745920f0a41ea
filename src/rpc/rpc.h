/*
 * rpc.h - cluster messaging: authenticated frames of proto/cxfs.proto
 * messages on TCP channels between cxfs nodes.
 *
 * An rpc context owns one libuv loop thread, which owns every socket and
 * never blocks, and lanes of worker threads that run the handler of each
 * incoming request (handlers may block, e.g. on token recalls).  Callers on
 * any other thread send requests with rpc_call(), which blocks until the
 * reply, a time-out or an interruption, and one-way notices with rpc_send().
 * rpc_call() and rpc_send() must never be called on the loop thread (no
 * callback of this layer runs there but the lane classifier).
 *
 * Lanes: each incoming request or notice goes to one lane, chosen by the
 * user's classifier (rpc_config.lane_of), with its own queue and its own
 * workers.  A lane starts its minimum of workers; when a message is queued
 * and none of the lane's workers is idle, the loop starts one more, up to
 * the lane's maximum; a worker above the minimum that stays idle for
 * rpc_config.idle_ms exits.  Beyond the maximum, messages queue.
 *
 * The rule that keeps lanes from starving each other: a handler of lane i
 * may wait (directly, or through work of another node that must end first)
 * only for messages of its own lane or of lanes numbered above i, and the
 * handlers of the last lane never wait for any message.  The graph of
 * "waits for" between lanes is then acyclic, so a lane full of waiters
 * never holds up the messages that end their waits: the last lane always
 * drains, and a lane's waits end once the lanes above it have drained.
 * Waits within one lane (a request waiting for a token whose holder must
 * first have its own request answered) are what a lane's growth is for;
 * at its maximum those can still queue.  cxfs uses requests (0) -> flush
 * (1) -> answers (2): see docs/ARCHITECTURE.md, "Threads".
 *
 * A frame is a fixed little-endian header (magic, protocol version, message
 * type, flags, request id, membership epoch, payload length), the protobuf
 * payload and an HMAC-SHA-256 over the frame's sequence number, header and
 * payload, keyed by keys of the connection derived from the cluster secret
 * and a random nonce of each side (rpc_i.h).  A frame that fails any check
 * (see enum rpc_drop) is dropped, counted, logged with the peer's address,
 * and its connection is closed.  A frame whose membership epoch is below
 * our floor (rpc_ctx_set_floor) is refused the same way: the peer's calls
 * on that connection fail with -ECONNRESET, and it connects again (its
 * HELLO refused too while its epoch is old) once it has learned the new
 * membership.
 *
 * Channels: rpc_connect() names a peer by numeric address and port; the
 * connection is made on demand when something is to be sent, and again after
 * it is lost.  Each connection starts with a HELLO exchange (protocol
 * version, cluster name, node name, membership epoch, nonces) ended by the
 * connecting side's HELLO_DONE under the new keys; nothing else is sent or
 * accepted before it.  A peer that connects to us shows up as an incoming
 * channel in the handler's rpc_req_chan(); requests can be sent back on it
 * (a token recall) while its connection lasts.
 *
 * Levels: a connection speaks one protocol version, the context's level
 * when it was made (rpc_ctx_set_level) or the peer's if that is not below
 * the level floor (rpc_ctx_set_level_floor).
 *
 * Limits on peers: until its handshake is done a connection may send only
 * a HELLO-sized frame (RPC__HELLO_MAX bytes of payload) and costs this node
 * about 4.5 KiB; at most rpc_config.max_unauth such connections exist at once,
 * at most max_unauth_per_addr from one address, and an authenticated node
 * keeps at most max_conns_per_node incoming connections.  A connection over
 * a limit is closed at once and counted (RPC_DROP_CONNS).
 *
 * A channel can be frozen: new calls and one-way sends wait (without their
 * time-out running) until it is thawed, while calls already sent complete.
 * rpc_chan_interrupt() makes every call still waiting to be sent on the
 * channel (frozen, or waiting for the connection) return -RPC_EEARLY.
 *
 * Messages: the type numbers are enum Cxfs__MsgType of the proto file.  A
 * message received from this layer (a reply, or a request in a handler) was
 * decoded with an allocation budget proportional to its size, and is freed
 * with rpc_msg_free().
 */
#ifndef CXFS_RPC_H
#define CXFS_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "proto/cxfs.pb-c.h"

/* Internal result: a wait was interrupted (same number as VN_EEARLY). */
#define RPC_EEARLY 4102

#define RPC_PROTO_VERSION 2                  /* 2: nonces, connection keys, sequence numbers */
#define RPC_PROTO_VERSION_MIN 1              /* the oldest spoken (see rpc_ctx_set_level) */
#define RPC_MAX_PAYLOAD_DEFAULT (1u << 20)   /* bytes of protobuf per frame */
#define RPC_MAX_PAYLOAD_LIMIT (16u << 20)    /* the most rpc_config.max_payload may say */
#define RPC_SECRET_MIN 16                    /* bytes of cluster secret at least */
#define RPC_NAME_MAX 255                     /* cluster and node names, bytes */

struct rpc_ctx;
struct rpc_chan;
struct rpc_req;

/* Why a frame was refused: the index of rpc_stats.dropped. */
enum rpc_drop {
	RPC_DROP_MAGIC,         /* not a cxfs frame */
	RPC_DROP_VERSION,       /* another protocol version */
	RPC_DROP_HEADER,        /* bad flags or reserved bits */
	RPC_DROP_OVERSIZE,      /* payload length above the maximum */
	RPC_DROP_MAC,           /* MAC does not verify */
	RPC_DROP_TYPE,          /* unknown message type, or not valid as request/reply/one-way */
	RPC_DROP_DECODE,        /* payload does not decode (or exceeds the decode budget) */
	RPC_DROP_EPOCH,         /* membership epoch older than ours */
	RPC_DROP_HANDSHAKE,     /* anything but a good HELLO first, a wrong cluster, or no HELLO in time */
	RPC_DROP_UNEXPECTED,    /* reply to a request never sent, or of the wrong type */
	RPC_DROP_TRUNCATED,     /* connection closed in the middle of a frame */
	RPC_DROP_REPLAY,        /* a handshake not fresh: no HELLO_DONE under this connection's keys,
				 * or a HELLO_REPLY that does not echo our nonce */
	RPC_DROP_CONNS,         /* a connection over a limit (unauthenticated, per address, per node) */
	RPC_DROP__COUNT
};

/* Counters of a channel, or of a whole context (every channel it had). */
/* Message types counted one by one in struct rpc_stats (Cxfs__MsgType values). */
#define RPC_TYPES 128

struct rpc_stats {
	uint64_t frames_sent;
	uint64_t frames_received;           /* good frames only */
	uint64_t bytes_sent;                /* whole frames */
	uint64_t bytes_received;            /* whole good frames */
	uint64_t calls;                     /* rpc_call()s made */
	uint64_t timeouts;                  /* calls that timed out */
	uint64_t interrupted;               /* calls ended with -RPC_EEARLY */
	uint64_t late_replies;              /* replies to calls timed out or given up; ignored */
	uint64_t connects;                  /* connections established (hello done) */
	uint64_t disconnects;               /* connections lost or closed */
	uint64_t dropped[RPC_DROP__COUNT];  /* refused frames, by reason */
	uint64_t sent_by_type[RPC_TYPES];   /* frames sent, by message type (type < RPC_TYPES) */
	uint64_t received_by_type[RPC_TYPES]; /* good frames received, by message type */
};

/*
 * The handler of incoming requests and one-way notices; runs on a worker
 * thread with no lock of this layer held, and may block.  @msg is the
 * decoded message of type @type, freed by the pool after the handler returns.
 * For a request the handler either replies once with rpc_reply() and returns
 * 0, or returns a negative errno and the pool replies ERROR_REPLY with it
 * (-EIO if it returned 0 without replying).  For a one-way notice
 * (rpc_req_is_oneway()) the return value is ignored.
 */
typedef int (*rpc_handler_fn)(void *arg, struct rpc_req *req, Cxfs__MsgType type,
			      const ProtobufCMessage *msg);

/*
 * The lane of an incoming request or notice @msg of type @type: an index
 * below rpc_config.nlanes (anything else means lane 0).  Runs on the loop
 * thread with no lock of this layer held: it must not block or call into
 * this layer.  @arg is rpc_config.handler_arg.
 */
typedef unsigned (*rpc_lane_fn)(void *arg, Cxfs__MsgType type, const ProtobufCMessage *msg);

#define RPC_LANES_MAX 4
#define RPC_LANE_NAME_MAX 15

/* One lane of workers. */
struct rpc_lane_config {
	const char *name;                 /* for statistics and logs; NULL: "lane<i>" */
	unsigned min;                     /* workers started at once and kept; 0: 1 */
	unsigned max;                     /* most workers at once; below min: min (a fixed pool) */
};

/* A lane's figures (rpc_ctx_lanes). */
struct rpc_lane_stats {
	char name[RPC_LANE_NAME_MAX + 1];
	unsigned min, max;                /* as configured */
	unsigned workers;                 /* threads now */
	unsigned running;                 /* of them, running a handler now */
	unsigned peak;                    /* most threads at once */
	unsigned queued;                  /* messages waiting for a worker now */
	uint64_t handled;                 /* handlers run to their end */
	uint64_t waited;                  /* messages queued with the lane at its maximum, all busy */
	uint64_t started;                 /* threads started, the first min included */
};

/*
 * Where log lines go; NULL: standard error.  @line has no newline.  Called
 * on any thread, the loop thread included, sometimes with this layer's lock
 * held: it must not block or call into this layer.
 */
typedef void (*rpc_log_fn)(void *arg, const char *line);

struct rpc_config {
	const char *cluster;              /* cluster name, sent and checked in HELLO */
	const char *node;                 /* this node's name */
	const uint8_t *secret;            /* cluster secret, at least RPC_SECRET_MIN bytes */
	size_t secret_len;
	uint64_t epoch;                   /* initial membership epoch */
	const char *listen_addr;          /* numeric IPv4/IPv6 address, or NULL: no listener */
	uint16_t listen_port;             /* 0: any free port (see rpc_ctx_port) */
	unsigned workers;                 /* nlanes 0: one fixed lane of this many; 0: 4 */
	unsigned nlanes;                  /* lanes[] used, at most RPC_LANES_MAX; 0: see workers */
	struct rpc_lane_config lanes[RPC_LANES_MAX];
	rpc_lane_fn lane_of;              /* NULL: everything to lane 0 */
	unsigned idle_ms;                 /* a worker above its lane's min exits when idle this long; 0: 10 s */
	uint32_t max_payload;             /* 0: RPC_MAX_PAYLOAD_DEFAULT */
	unsigned hello_timeout_ms;        /* a connection not through HELLO by then closes; 0: 10 s */
	unsigned max_unauth;              /* connections still in their handshake; 0: 64 */
	unsigned max_unauth_per_addr;     /* of them, from one address; 0: 8 */
	unsigned max_conns_per_node;      /* incoming connections of one authenticated node; 0: 16 */
	unsigned level;                   /* protocol level to start at (rpc_ctx_set_level); 0: newest */
	rpc_handler_fn handler;           /* NULL: every request gets -EOPNOTSUPP */
	void *handler_arg;
	rpc_log_fn log;
	void *log_arg;
};

/* Start a context (its loop thread, listener and workers).  0 or -errno. */
int rpc_ctx_create(const struct rpc_config *cfg, struct rpc_ctx **out);
/*
 * Stop everything: connections close, calls still waiting (in handlers)
 * return -ESHUTDOWN, queued requests are dropped, the workers of every lane
 * finish their handler and are joined.  Every channel reference must have been put, and
 * no thread but the pool's may still be inside this layer.  Must not be
 * called from a handler.
 */
void rpc_ctx_destroy(struct rpc_ctx *ctx);
/* The port the listener is bound to (0 without a listener). */
uint16_t rpc_ctx_port(const struct rpc_ctx *ctx);
/*
 * Set the membership epoch that frames from now on carry.  Frames that
 * carry less than the floor are refused (both start at rpc_config.epoch);
 * the membership raises the floor only once every member sends the new
 * epoch, so a change never refuses a member's frame.
 */
void rpc_ctx_set_epoch(struct rpc_ctx *ctx, uint64_t epoch);
void rpc_ctx_set_floor(struct rpc_ctx *ctx, uint64_t floor);
/*
 * Protocol levels, between RPC_PROTO_VERSION_MIN and RPC_PROTO_VERSION,
 * both starting at rpc_config.level: connections made from now on speak
 * version @level (rpc_ctx_set_level), and a peer's HELLO of a version below
 * the level floor is refused (rpc_ctx_set_level_floor, RPC_DROP_VERSION).
 * Like the epoch and its floor, the membership lowers the floor first and
 * the level once every member accepts it, and raises the level first and
 * the floor once no member sends less.  At version 1 nothing proves a
 * handshake fresh (a recorded session can be replayed): a cluster speaks it
 * only while an older node is a member.  Connections already made keep
 * their version until they close (closing them would fail the calls they
 * carry).  0, or -EINVAL for a level this build does not speak.
 */
int rpc_ctx_set_level(struct rpc_ctx *ctx, unsigned level);
int rpc_ctx_set_level_floor(struct rpc_ctx *ctx, unsigned level);
/* Totals over every channel the context has had. */
void rpc_ctx_stats(struct rpc_ctx *ctx, struct rpc_stats *st);
/*
 * The latencies of the rpc_call()s of request type @type (< RPC_TYPES),
 * from the call to its end (a reply, an error, a time-out), over every
 * channel of the context; lock-free.
 */
struct cx_hist_snap;
void rpc_ctx_call_hist(struct rpc_ctx *ctx, Cxfs__MsgType type, struct cx_hist_snap *out);
/* The figures of the first @n lanes into @out; returns the number of lanes. */
unsigned rpc_ctx_lanes(struct rpc_ctx *ctx, struct rpc_lane_stats *out, unsigned n);

/*
 * A channel to @addr (numeric) port @port; no connection is made yet.
 * Returns 0 and a reference the caller must put, or -EINVAL / -ENOMEM.
 */
int rpc_connect(struct rpc_ctx *ctx, const char *addr, uint16_t port, struct rpc_chan **out);
void rpc_chan_hold(struct rpc_chan *ch);
/* Drop a reference; an outgoing channel whose last user goes is closed. */
void rpc_chan_put(struct rpc_chan *ch);
void rpc_chan_freeze(struct rpc_chan *ch);
void rpc_chan_thaw(struct rpc_chan *ch);
/* Calls waiting to be sent on @ch return -RPC_EEARLY (see the top). */
void rpc_chan_interrupt(struct rpc_chan *ch);
/*
 * @ch's peer died: every call on it, sent or not, returns -ECONNRESET now
 * (a late reply is dropped as unknown), and so does every later one (the
 * caller makes a new channel once the peer, or its successor, is back).
 */
void rpc_chan_abort(struct rpc_chan *ch);
void rpc_chan_stats(struct rpc_chan *ch, struct rpc_stats *st);
/*
 * The peer's node name and epoch from its HELLO (copied into @name of
 * @size bytes); -ENOTCONN before the first handshake.
 */
int rpc_chan_peer(struct rpc_chan *ch, char *name, size_t size, uint64_t *epoch);

/*
 * Send request @req of type @type on @ch and wait for the reply, at most
 * @timeout_ms after it was queued (the wait while frozen does not count).
 * On success returns 0 with *@reply_type and *@reply set: the expected reply
 * type of @type, or CXFS__MSG_TYPE__ERROR_REPLY; the caller must free the
 * reply with rpc_msg_free().  Errors: -ETIMEDOUT, -RPC_EEARLY (interrupted),
 * -ECONNRESET (the connection was lost after the request was sent),
 * -ECONNREFUSED etc. (no connection could be made), -ENOTCONN (incoming
 * channel whose peer is gone), -EPROTO (the peer replied with the wrong
 * type), -EMSGSIZE, -EINVAL (not a request type, or @req is not of @type),
 * -ESHUTDOWN; and on a thread whose interrupt is armed (common/cx_intr.h),
 * the error of cx_intr_check() (-EINTR, or the request's bound) as soon as
 * it has one, whether the request was sent or not: a reply that comes later
 * is dropped (a late reply).  Per call, this is the only cancellation.
 */
int rpc_call(struct rpc_chan *ch, Cxfs__MsgType type, const ProtobufCMessage *req,
	     unsigned timeout_ms, Cxfs__MsgType *reply_type, ProtobufCMessage **reply);
/*
 * Queue one-way notice @msg; waits only while the channel is frozen.  Best
 * effort: a notice not yet written when its connection fails is lost.
 */
int rpc_send(struct rpc_chan *ch, Cxfs__MsgType type, const ProtobufCMessage *msg);

/* An incoming request, inside a handler. */
struct rpc_chan *rpc_req_chan(struct rpc_req *req);   /* valid during the handler; hold to keep */
int rpc_req_is_oneway(const struct rpc_req *req);
/*
 * Reply to @req (once): @type must be the request's expected reply type or
 * CXFS__MSG_TYPE__ERROR_REPLY.  A reply whose connection is gone is dropped.
 * 0, -EINVAL, -EALREADY, -EMSGSIZE.
 */
int rpc_reply(struct rpc_req *req, Cxfs__MsgType type, const ProtobufCMessage *msg);
int rpc_reply_error(struct rpc_req *req, int err);
/*
 * A request made on this node rather than received (a metadata server
 * applying again a request a node had sent to the one before it): a
 * handler runs it as any other, and its rpc_reply hands the reply to @fn
 * (on the replying thread, the message valid during the call) instead of a
 * connection.  rpc_req_chan gives NULL.  NULL if out of memory; the caller
 * frees it with rpc_req_local_free.
 */
typedef void (*rpc_local_reply_fn)(void *arg, Cxfs__MsgType type, const ProtobufCMessage *msg);
struct rpc_req *rpc_req_local(Cxfs__MsgType type, rpc_local_reply_fn fn, void *arg);
void rpc_req_local_free(struct rpc_req *req);

/*
 * Codec, used by the frames and open to tests.  rpc_msg_pack() returns the
 * packed size of @msg of type @type into @buf of @size bytes (if it fits:
 * call with size 0 to learn it), or -EINVAL.  rpc_msg_unpack() decodes, with
 * an allocation budget proportional to @len; 0 and *@out (free it with
 * rpc_msg_free()), or -EINVAL / -EBADMSG.
 */
int64_t rpc_msg_pack(Cxfs__MsgType type, const ProtobufCMessage *msg, uint8_t *buf, size_t size);
int rpc_msg_unpack(Cxfs__MsgType type, const uint8_t *data, size_t len, ProtobufCMessage **out);
void rpc_msg_free(ProtobufCMessage *msg);
/* The protobuf descriptor of @type, or NULL if it is not a message type. */
const ProtobufCMessageDescriptor *rpc_msg_descriptor(Cxfs__MsgType type);
/* The reply @type expects, or 0 if @type is not a request. */
Cxfs__MsgType rpc_msg_reply_type(Cxfs__MsgType type);
/* "bad MAC" etc. */
const char *rpc_drop_name(enum rpc_drop reason);

#endif
