/*
 * test_rpc.c - unit tests of the rpc layer (src/rpc): every message type
 * through the codec, the frame MAC (with its sequence number) and the keys
 * of a connection (known answers shared with badframe.py); request/reply
 * between two contexts
 * in one process over real TCP on 127.0.0.1 (ports picked by binding to 0),
 * with concurrent callers, error replies, one-way notices and a request
 * from the server back to the client; time-outs and refused connections;
 * freeze, thaw and interruption, and calls given up by their caller's
 * interrupt (common/cx_intr.h); and hostile peers on raw sockets (wrong
 * MAC, oversized length, garbage, truncated frame, older protocol version,
 * huge protobuf field, unknown type, no HELLO, reply to no request, a
 * payload bigger than a HELLO before the handshake, a frame under the
 * cluster key or replayed after the handshake, a request instead of
 * HELLO_DONE), each refused, counted and closed while the server keeps
 * serving; a replayed handshake and a HELLO_REPLY that does not echo our
 * nonce (RPC_DROP_REPLAY); a peer of an older membership epoch refused
 * until it learns the new one (RPC_DROP_EPOCH); the limits on connections
 * in their handshake (per address, in all) and per node (RPC_DROP_CONNS);
 * and lanes:
 * returns answered while the requests lane is full of acquires waiting for
 * them (which one lane cannot do), and a lane growing with its waiting
 * requests up to its maximum, queueing beyond it, and shrinking when idle.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "common/cx_intr.h"
#include "rpc/rpc_i.h"

#define CLUSTER "testcluster"
#define INO_SLOW 7          /* the server sleeps before answering */
#define INO_ENOENT 2        /* the server's handler fails with -ENOENT */
#define SLOW_MS 400
#define CALL_MS 5000

static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t wrong_secret[32] = "fedcba9876543210fedcba9876543210";

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ */
/* Fixture: a server context and a client context with a channel        */
/* ------------------------------------------------------------------ */

struct fix {
	struct rpc_ctx *srv, *cli;
	struct rpc_chan *ch;                /* client -> server */
	pthread_mutex_t mu;
	struct rpc_chan *back;              /* server's channel to the client; mu */
	atomic_int notices;                 /* one-way WRITE_DONE seen by the server */
	atomic_int log_lines;
	char last_log[512];                 /* mu */
	const char *watch;                  /* log lines holding this are counted; mu */
	int watched;                        /* mu */
};

static void fix_log(void *arg, const char *line)
{
	struct fix *fx = arg;

	atomic_fetch_add(&fx->log_lines, 1);
	if (getenv("RPC_TEST_LOG"))      /* set it to see the refusals */
		fprintf(stderr, "log: %s\n", line);
	pthread_mutex_lock(&fx->mu);
	snprintf(fx->last_log, sizeof(fx->last_log), "%s", line);
	if (fx->watch && strstr(line, fx->watch))
		fx->watched++;
	pthread_mutex_unlock(&fx->mu);
}

static int reply_attr(struct rpc_req *req, uint64_t ino)
{
	Cxfs__AttrReply r = CXFS__ATTR_REPLY__INIT;
	Cxfs__Attr a = CXFS__ATTR__INIT;
	Cxfs__Timespec t = CXFS__TIMESPEC__INIT;

	a.ino = ino;
	a.atime = a.mtime = a.ctime = a.btime = &t;
	r.attr = &a;
	return rpc_reply(req, CXFS__MSG_TYPE__ATTR_REPLY, &r.base);
}

static int srv_handler(void *arg, struct rpc_req *req, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	struct fix *fx = arg;

	switch (type) {
	case CXFS__MSG_TYPE__GETATTR_REQ: {
		const Cxfs__GetattrReq *g = (const Cxfs__GetattrReq *)msg;

		if (g->ino == INO_SLOW)
			sleep_ms(SLOW_MS);
		if (g->ino == INO_ENOENT)
			return -ENOENT;
		return reply_attr(req, g->ino);
	}
	case CXFS__MSG_TYPE__TOKEN_ACQUIRE: {
		Cxfs__TokenGrant g = CXFS__TOKEN_GRANT__INIT;

		pthread_mutex_lock(&fx->mu);
		if (!fx->back) {
			fx->back = rpc_req_chan(req);
			rpc_chan_hold(fx->back);
		}
		pthread_mutex_unlock(&fx->mu);
		return rpc_reply(req, CXFS__MSG_TYPE__TOKEN_GRANT, &g.base);
	}
	case CXFS__MSG_TYPE__WRITE_DONE:
		assert_true(rpc_req_is_oneway(req));
		atomic_fetch_add(&fx->notices, 1);
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

static int cli_handler(void *arg, struct rpc_req *req, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	const Cxfs__TokenRecall *rc = (const Cxfs__TokenRecall *)msg;
	Cxfs__TokenReturn r = CXFS__TOKEN_RETURN__INIT;

	if (type != CXFS__MSG_TYPE__TOKEN_RECALL)
		return -EOPNOTSUPP;
	r.ino = rc->ino;
	r.has_size = 1;
	r.size = 4242;
	return rpc_reply(req, CXFS__MSG_TYPE__TOKEN_RETURN, &r.base);
}

static int setup(void **state)
{
	struct fix *fx = calloc(1, sizeof(*fx));
	struct rpc_config sc = { .cluster = CLUSTER, .node = "server", .secret = secret,
				 .secret_len = sizeof(secret), .epoch = 1, .listen_addr = "127.0.0.1",
				 .workers = 4, .hello_timeout_ms = 1000, .handler = srv_handler,
				 .log = fix_log };
	struct rpc_config cc = { .cluster = CLUSTER, .node = "client", .secret = secret,
				 .secret_len = sizeof(secret), .epoch = 1, .workers = 2,
				 .handler = cli_handler, .log = fix_log };

	if (!fx)
		return -1;
	pthread_mutex_init(&fx->mu, NULL);
	sc.handler_arg = sc.log_arg = cc.handler_arg = cc.log_arg = fx;
	if (rpc_ctx_create(&sc, &fx->srv) || rpc_ctx_create(&cc, &fx->cli))
		return -1;
	if (rpc_connect(fx->cli, "127.0.0.1", rpc_ctx_port(fx->srv), &fx->ch))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fix *fx = *state;

	rpc_chan_put(fx->ch);
	if (fx->back)
		rpc_chan_put(fx->back);
	rpc_ctx_destroy(fx->cli);
	rpc_ctx_destroy(fx->srv);
	pthread_mutex_destroy(&fx->mu);
	free(fx);
	return 0;
}

/* One GETATTR on @ch: 0 and the reply checked, or the call's error. */
static int getattr(struct rpc_chan *ch, uint64_t ino, unsigned timeout_ms)
{
	Cxfs__GetattrReq g = CXFS__GETATTR_REQ__INIT;
	Cxfs__Cred cred = CXFS__CRED__INIT;
	Cxfs__MsgType rt;
	ProtobufCMessage *rep;
	int rc;

	g.ino = ino;
	g.cred = &cred;
	rc = rpc_call(ch, CXFS__MSG_TYPE__GETATTR_REQ, &g.base, timeout_ms, &rt, &rep);
	if (rc)
		return rc;
	if (rt == CXFS__MSG_TYPE__ERROR_REPLY) {
		rc = ((Cxfs__ErrorReply *)rep)->err;
	} else {
		const Cxfs__AttrReply *a = (const Cxfs__AttrReply *)rep;

		rc = rt == CXFS__MSG_TYPE__ATTR_REPLY && a->err == 0 && a->attr &&
		     a->attr->ino == ino ? 0 : -EPROTO;
	}
	rpc_msg_free(rep);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Codec                                                               */
/* ------------------------------------------------------------------ */

/* Fill every field of @m (of @d) with a value of its type; repeated: two. */
static void fill_msg(ProtobufCMessage *m, const ProtobufCMessageDescriptor *d);

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		fail_msg("field %s: type %d not used by cxfs.proto", f->name, f->type);
		return 0;
	}
}

static void fill_value(const ProtobufCFieldDescriptor *f, void *p, unsigned k)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
		*(int32_t *)p = -1000 - (int32_t)k;
		break;
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *)p = 0xdeadbe00u + k;
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *e = f->descriptor;

		*(int *)p = e->values[(e->n_values - 1 - k % e->n_values)].value;
		break;
	}
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
		*(int64_t *)p = -123456789012ll - k;
		break;
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		*(uint64_t *)p = 0x1234567890abcd00ull + k;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)p = 1;
		break;
	case PROTOBUF_C_TYPE_STRING: {
		char buf[64];

		snprintf(buf, sizeof(buf), "%s-%u", f->name, k);
		*(char **)p = strdup(buf);
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = p;

		b->len = 5 + k;
		b->data = malloc(b->len);
		memset(b->data, 0xa5, b->len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessageDescriptor *sd = f->descriptor;
		ProtobufCMessage *sub = calloc(1, sd->sizeof_message);

		fill_msg(sub, sd);
		*(ProtobufCMessage **)p = sub;
		break;
	}
	default:
		fail();
	}
}

static void fill_msg(ProtobufCMessage *m, const ProtobufCMessageDescriptor *d)
{
	protobuf_c_message_init(d, m);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char *member = (char *)m + f->offset;

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t es = elem_size(f);
			char *arr = calloc(2, es);

			for (unsigned k = 0; k < 2; k++)
				fill_value(f, arr + k * es, k);
			*(void **)member = arr;
			*(size_t *)((char *)m + f->quantifier_offset) = 2;
			continue;
		}
		fill_value(f, member, 0);
		if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE)
			*(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
	}
}

/* Every message type: filled, packed, unpacked, packed again: same bytes. */
static void test_codec_roundtrip(void **state)
{
	const ProtobufCEnumDescriptor *types = &cxfs__msg_type__descriptor;
	unsigned n = 0;

	for (unsigned i = 0; i < types->n_values; i++) {
		Cxfs__MsgType t = (Cxfs__MsgType)types->values[i].value;
		const ProtobufCMessageDescriptor *d = rpc_msg_descriptor(t);
		ProtobufCMessage *m, *back, *none = NULL;
		uint8_t *b1, *b2;
		int64_t len, len2;

		if (t == CXFS__MSG_TYPE__MSG_NONE) {
			assert_null(d);
			continue;
		}
		assert_non_null(d);     /* every type the proto names has a message */
		assert_true(rpc__msg_kinds(t) != 0);
		if (rpc__msg_kinds(t) & RPC__F_REQUEST)
			assert_non_null(rpc_msg_descriptor(rpc_msg_reply_type(t)));
		m = calloc(1, d->sizeof_message);
		fill_msg(m, d);
		len = rpc_msg_pack(t, m, NULL, 0);
		assert_true(len > 0 || d->n_fields == 0);      /* HELLO_DONE is empty */
		b1 = malloc((size_t)len + 1);
		assert_int_equal(rpc_msg_pack(t, m, b1, (size_t)len), len);
		assert_int_equal(rpc_msg_unpack(t, b1, (size_t)len, &back), 0);
		len2 = rpc_msg_pack(t, back, NULL, 0);
		assert_int_equal(len2, len);
		b2 = malloc((size_t)len2 + 1);
		rpc_msg_pack(t, back, b2, (size_t)len2);
		assert_memory_equal(b1, b2, (size_t)len);
		/* A truncated payload never decodes. */
		if (len > 0) {
			assert_int_equal(rpc_msg_unpack(t, b1, (size_t)len - 1, &none), -EBADMSG);
			assert_null(none);
		}
		rpc_msg_free(back);
		protobuf_c_message_free_unpacked(m, NULL);
		free(b1);
		free(b2);
		n++;
	}
	assert_int_equal(n, 59);
}

static void test_codec_refuses(void **state)
{
	Cxfs__Hello h = CXFS__HELLO__INIT;
	Cxfs__StatusReply s = CXFS__STATUS_REPLY__INIT;
	ProtobufCMessage *m;
	uint8_t junk[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	/* Wrong descriptor for the type, unknown type, NULL required string. */
	assert_int_equal(rpc_msg_pack(CXFS__MSG_TYPE__HELLO, &s.base, NULL, 0), -EINVAL);
	assert_int_equal(rpc_msg_pack((Cxfs__MsgType)999, &s.base, NULL, 0), -EINVAL);
	assert_int_equal(rpc_msg_pack(CXFS__MSG_TYPE__HELLO, &h.base, NULL, 0), -EINVAL);
	assert_int_equal(rpc_msg_unpack((Cxfs__MsgType)999, junk, sizeof(junk), &m), -EINVAL);
	assert_int_equal(rpc_msg_unpack(CXFS__MSG_TYPE__HELLO, junk, sizeof(junk), &m), -EBADMSG);
	assert_int_equal(rpc_msg_reply_type(CXFS__MSG_TYPE__STATUS_REPLY), 0);
	assert_int_equal(rpc_msg_reply_type(CXFS__MSG_TYPE__TOKEN_RECALL), CXFS__MSG_TYPE__TOKEN_RETURN);
}

/* The header round trip and the MAC: any flipped bit is caught. */
static void test_frame_mac(void **state)
{
	struct rpc__key k, wrong;
	struct rpc__hdr h = { .magic = RPC__MAGIC, .version = RPC_PROTO_VERSION, .type = 10,
			      .flags = RPC__F_REQUEST, .id = 0x0102030405060708ull, .epoch = 99 };
	struct rpc__hdr g;
	uint8_t payload[40], *f;
	size_t len;

	memset(payload, 7, sizeof(payload));
	assert_int_equal(rpc__key_init(&k, secret, 8), -EINVAL);
	assert_int_equal(rpc__key_init(&k, secret, sizeof(secret)), 0);
	assert_int_equal(rpc__key_init(&wrong, wrong_secret, sizeof(wrong_secret)), 0);
	assert_int_equal(rpc__frame_raw(&k, 5, &h, payload, sizeof(payload), &f, &len), 0);
	assert_int_equal(len, RPC__HDR_SIZE + sizeof(payload) + RPC__MAC_SIZE);
	rpc__hdr_get(f, &g);
	assert_memory_equal(&g, &h, sizeof(h));
	assert_int_equal(f[0], 'C');    /* little-endian magic spells CXFS */
	assert_int_equal(f[3], 'S');
	assert_int_equal(rpc__mac_verify(&k, 5, f, f + RPC__HDR_SIZE, sizeof(payload),
					 f + RPC__HDR_SIZE + sizeof(payload)), 0);
	assert_int_equal(rpc__mac_verify(&wrong, 5, f, f + RPC__HDR_SIZE, sizeof(payload),
					 f + RPC__HDR_SIZE + sizeof(payload)), -EBADMSG);
	/* The same bytes as another frame of the connection (a replay) do not verify. */
	assert_int_equal(rpc__mac_verify(&k, 4, f, f + RPC__HDR_SIZE, sizeof(payload),
					 f + RPC__HDR_SIZE + sizeof(payload)), -EBADMSG);
	assert_int_equal(rpc__mac_verify(&k, 6, f, f + RPC__HDR_SIZE, sizeof(payload),
					 f + RPC__HDR_SIZE + sizeof(payload)), -EBADMSG);
	for (size_t bit = 0; bit < 8 * (RPC__HDR_SIZE + sizeof(payload)); bit += 13) {
		f[bit / 8] ^= (uint8_t)(1u << bit % 8);
		assert_int_equal(rpc__mac_verify(&k, 5, f, f + RPC__HDR_SIZE, sizeof(payload),
						 f + RPC__HDR_SIZE + sizeof(payload)), -EBADMSG);
		f[bit / 8] ^= (uint8_t)(1u << bit % 8);
	}
	free(f);
	rpc__key_wipe(&k);
	rpc__key_wipe(&wrong);
}

/* Connection keys: one per direction, fixed by the secret and both nonces. */
static void test_conn_keys(void **state)
{
	struct rpc__key k, wrong, c2s, s2c, c2s2, s2c2;
	uint8_t nc[RPC__NONCE_SIZE], ns[RPC__NONCE_SIZE], a[RPC__MAC_SIZE], b[RPC__MAC_SIZE];
	uint8_t hdr[RPC__HDR_SIZE] = { 0 };

	(void)state;
	memset(nc, 1, sizeof(nc));
	memset(ns, 2, sizeof(ns));
	assert_int_equal(rpc__key_init(&k, secret, sizeof(secret)), 0);
	assert_int_equal(rpc__key_init(&wrong, wrong_secret, sizeof(wrong_secret)), 0);
	rpc__conn_keys(&k, nc, ns, &c2s, &s2c);
	rpc__mac(&c2s, 1, hdr, NULL, 0, a);
	rpc__mac(&s2c, 1, hdr, NULL, 0, b);
	assert_memory_not_equal(a, b, sizeof(a));          /* two directions, two keys */
	/* Known answers, the same as test/integration/badframe.py --self-test's. */
	{
		static const uint8_t kcs_mac[RPC__MAC_SIZE] = {
			0x7c, 0xe9, 0x16, 0x10, 0x92, 0xc7, 0x75, 0x47, 0x75, 0xaa, 0xf9, 0xf1,
			0x98, 0x2b, 0x7f, 0x45, 0xbd, 0xaa, 0x6c, 0x9f, 0x30, 0x66, 0x8d, 0xa3,
			0x14, 0x61, 0x5e, 0xe5, 0x2e, 0x71, 0x16, 0x45 };
		static const uint8_t ksc_mac[RPC__MAC_SIZE] = {
			0x86, 0xd2, 0x05, 0x5d, 0x72, 0xc0, 0x63, 0x38, 0xf2, 0x1a, 0x04, 0xbc,
			0x04, 0x1d, 0xb1, 0x1d, 0x6a, 0x52, 0xcd, 0x4e, 0x8b, 0x40, 0x0a, 0x2c,
			0x8a, 0x2a, 0x85, 0xce, 0x8a, 0x63, 0x20, 0x1b };

		assert_memory_equal(a, kcs_mac, sizeof(a));
		assert_memory_equal(b, ksc_mac, sizeof(b));
	}
	rpc__conn_keys(&k, nc, ns, &c2s2, &s2c2);
	assert_int_equal(rpc__mac_verify(&c2s2, 1, hdr, NULL, 0, a), 0);   /* both sides agree */
	assert_int_equal(rpc__mac_verify(&s2c2, 1, hdr, NULL, 0, b), 0);
	rpc__mac(&k, 1, hdr, NULL, 0, b);
	assert_memory_not_equal(a, b, sizeof(a));          /* not the cluster key */
	ns[7] ^= 1;                                         /* another connection */
	rpc__conn_keys(&k, nc, ns, &c2s2, &s2c2);
	assert_int_equal(rpc__mac_verify(&c2s2, 1, hdr, NULL, 0, a), -EBADMSG);
	ns[7] ^= 1;
	rpc__conn_keys(&wrong, nc, ns, &c2s2, &s2c2);      /* another secret */
	assert_int_equal(rpc__mac_verify(&c2s2, 1, hdr, NULL, 0, a), -EBADMSG);
	rpc__key_wipe(&k);
	rpc__key_wipe(&wrong);
}

/* ------------------------------------------------------------------ */
/* Request and reply                                                   */
/* ------------------------------------------------------------------ */

#define CALLERS 8
#define CALLS_EACH 200

struct caller {
	struct rpc_chan *ch;
	unsigned idx;
	int bad;
};

static void *caller_main(void *arg)
{
	struct caller *c = arg;

	for (unsigned i = 0; i < CALLS_EACH; i++) {
		uint64_t ino = 1000 + (uint64_t)c->idx * CALLS_EACH + i;

		if (getattr(c->ch, ino, CALL_MS))
			c->bad++;
	}
	return NULL;
}

static void test_concurrent_calls(void **state)
{
	struct fix *fx = *state;
	pthread_t th[CALLERS];
	struct caller c[CALLERS];
	struct rpc_stats st;
	char peer[64];
	uint64_t epoch;

	for (unsigned i = 0; i < CALLERS; i++) {
		c[i] = (struct caller){ .ch = fx->ch, .idx = i };
		assert_int_equal(pthread_create(&th[i], NULL, caller_main, &c[i]), 0);
	}
	for (unsigned i = 0; i < CALLERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(c[i].bad, 0);
	}
	assert_int_equal(rpc_chan_peer(fx->ch, peer, sizeof(peer), &epoch), 0);
	assert_string_equal(peer, "server");
	assert_int_equal(epoch, 1);
	rpc_chan_stats(fx->ch, &st);
	assert_int_equal(st.calls, CALLERS * CALLS_EACH);
	assert_int_equal(st.frames_sent, CALLERS * CALLS_EACH + 2);      /* and HELLO, HELLO_DONE */
	assert_int_equal(st.frames_received, CALLERS * CALLS_EACH + 1);
	assert_int_equal(st.connects, 1);
	assert_true(st.bytes_sent > st.frames_sent * (RPC__HDR_SIZE + RPC__MAC_SIZE));
	for (unsigned r = 0; r < RPC_DROP__COUNT; r++)
		assert_int_equal(st.dropped[r], 0);
	rpc_ctx_stats(fx->srv, &st);
	assert_int_equal(st.frames_received, CALLERS * CALLS_EACH + 2);   /* and HELLO, HELLO_DONE */
}

/* Error replies, one-way notices, and a request from the server back. */
static void test_error_oneway_and_back(void **state)
{
	struct fix *fx = *state;
	Cxfs__TokenAcquire acq = CXFS__TOKEN_ACQUIRE__INIT;
	Cxfs__TokenRecall rec = CXFS__TOKEN_RECALL__INIT;
	Cxfs__WriteDone wd = CXFS__WRITE_DONE__INIT;
	Cxfs__StatfsReq sf = CXFS__STATFS_REQ__INIT;
	Cxfs__Cred cred = CXFS__CRED__INIT;
	Cxfs__MsgType rt;
	ProtobufCMessage *rep;
	struct rpc_chan *back;
	char peer[64];

	assert_int_equal(getattr(fx->ch, INO_ENOENT, CALL_MS), -ENOENT);
	/* A request type nobody handles: the pool answers for the handler. */
	sf.ino = 1;
	sf.cred = &cred;
	assert_int_equal(rpc_call(fx->ch, CXFS__MSG_TYPE__STATFS_REQ, &sf.base, CALL_MS, &rt, &rep), 0);
	assert_int_equal(rt, CXFS__MSG_TYPE__ERROR_REPLY);
	assert_int_equal(((Cxfs__ErrorReply *)rep)->err, -EOPNOTSUPP);
	rpc_msg_free(rep);
	/* A reply type is not a request; a request is not a one-way notice. */
	assert_int_equal(rpc_call(fx->ch, CXFS__MSG_TYPE__STATUS_REPLY, &sf.base, CALL_MS, &rt, &rep),
			 -EINVAL);
	assert_int_equal(rpc_send(fx->ch, CXFS__MSG_TYPE__STATFS_REQ, &sf.base), -EINVAL);
	{
		Cxfs__HelloDone hd = CXFS__HELLO_DONE__INIT;
		Cxfs__Hello h = CXFS__HELLO__INIT;

		/* The handshake's messages are the layer's own. */
		h.cluster = h.node = "x";
		assert_int_equal(rpc_send(fx->ch, CXFS__MSG_TYPE__HELLO_DONE, &hd.base), -EINVAL);
		assert_int_equal(rpc_call(fx->ch, CXFS__MSG_TYPE__HELLO, &h.base, CALL_MS, &rt, &rep),
				 -EINVAL);
	}

	wd.ino = 5;
	for (int i = 0; i < 3; i++)
		assert_int_equal(rpc_send(fx->ch, CXFS__MSG_TYPE__WRITE_DONE, &wd.base), 0);
	for (int i = 0; i < 500 && atomic_load(&fx->notices) < 3; i++)
		sleep_ms(10);
	assert_int_equal(atomic_load(&fx->notices), 3);

	acq.ino = 9;
	assert_int_equal(rpc_call(fx->ch, CXFS__MSG_TYPE__TOKEN_ACQUIRE, &acq.base, CALL_MS, &rt, &rep), 0);
	assert_int_equal(rt, CXFS__MSG_TYPE__TOKEN_GRANT);
	rpc_msg_free(rep);
	pthread_mutex_lock(&fx->mu);
	back = fx->back;
	pthread_mutex_unlock(&fx->mu);
	assert_non_null(back);
	rec.ino = 9;
	assert_int_equal(rpc_call(back, CXFS__MSG_TYPE__TOKEN_RECALL, &rec.base, CALL_MS, &rt, &rep), 0);
	assert_int_equal(rt, CXFS__MSG_TYPE__TOKEN_RETURN);
	assert_int_equal(((Cxfs__TokenReturn *)rep)->ino, 9);
	assert_int_equal(((Cxfs__TokenReturn *)rep)->size, 4242);
	rpc_msg_free(rep);
	assert_int_equal(rpc_chan_peer(back, peer, sizeof(peer), NULL), 0);
	assert_string_equal(peer, "client");
}

/* ------------------------------------------------------------------ */
/* Time-outs and connections                                           */
/* ------------------------------------------------------------------ */

static void test_timeout(void **state)
{
	struct fix *fx = *state;
	struct rpc_stats st;

	assert_int_equal(getattr(fx->ch, INO_SLOW, 100), -ETIMEDOUT);
	/* The connection stays up; the late reply is ignored. */
	assert_int_equal(getattr(fx->ch, 11, CALL_MS), 0);
	sleep_ms(SLOW_MS + 200);
	rpc_chan_stats(fx->ch, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.late_replies, 1);
	assert_int_equal(st.connects, 1);
	assert_int_equal(getattr(fx->ch, 12, CALL_MS), 0);
}

static void test_connect_refused_and_reconnect(void **state)
{
	struct fix *fx = *state;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	struct rpc_chan *ch;
	struct rpc_stats st;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* A port that was free a moment ago: nobody listens there. */
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	assert_int_equal(rpc_connect(fx->cli, "127.0.0.1", ntohs(sa.sin_port), &ch), 0);
	assert_int_equal(getattr(ch, 1, CALL_MS), -ECONNREFUSED);
	assert_int_equal(getattr(ch, 1, CALL_MS), -ECONNREFUSED);
	rpc_chan_put(ch);
	assert_int_equal(rpc_connect(fx->cli, "no-such-address", 1, &ch), -EINVAL);

	/* A channel whose user let go closes; a new one connects again. */
	assert_int_equal(getattr(fx->ch, 1, CALL_MS), 0);
	assert_int_equal(rpc_connect(fx->cli, "127.0.0.1", rpc_ctx_port(fx->srv), &ch), 0);
	assert_int_equal(getattr(ch, 5, CALL_MS), 0);
	rpc_chan_put(ch);
	assert_int_equal(getattr(fx->ch, 3, CALL_MS), 0);
	rpc_ctx_stats(fx->srv, &st);
	for (int i = 0; i < 500 && st.disconnects < 1; i++) {
		sleep_ms(10);
		rpc_ctx_stats(fx->srv, &st);
	}
	assert_int_equal(st.connects, 2);
	assert_int_equal(st.disconnects, 1);
}

/* The server goes away and comes back on the same port: the channel
 * fails the call on the lost connection (if any) and connects again. */
static void test_reconnect(void **state)
{
	struct fix *fx = *state;
	struct rpc_config sc = { .cluster = CLUSTER, .node = "server2", .secret = secret,
				 .secret_len = sizeof(secret), .epoch = 1, .listen_addr = "127.0.0.1",
				 .listen_port = rpc_ctx_port(fx->srv), .handler = srv_handler,
				 .handler_arg = fx, .log = fix_log, .log_arg = fx };
	struct rpc_stats st;
	char peer[64];
	int rc;

	assert_int_equal(getattr(fx->ch, 50, CALL_MS), 0);
	rpc_ctx_destroy(fx->srv);
	/* Lost under the call (not yet noticed), or no one listening. */
	rc = getattr(fx->ch, 51, CALL_MS);
	assert_true(rc == -ECONNRESET || rc == -ECONNREFUSED);
	assert_int_equal(rpc_ctx_create(&sc, &fx->srv), 0);
	assert_int_equal(getattr(fx->ch, 52, CALL_MS), 0);
	assert_int_equal(rpc_chan_peer(fx->ch, peer, sizeof(peer), NULL), 0);
	assert_string_equal(peer, "server2");
	rpc_chan_stats(fx->ch, &st);
	assert_int_equal(st.connects, 2);
	assert_int_equal(st.disconnects, 1);
}

/* ------------------------------------------------------------------ */
/* Freeze, thaw, interrupt                                             */
/* ------------------------------------------------------------------ */

struct bg_call {
	struct rpc_chan *ch;
	uint64_t ino;
	unsigned timeout_ms;
	bool armed;                  /* arm the thread's interrupt (cx_intr.h) first */
	atomic_uintptr_t intr;       /* then its struct cx_intr */
	atomic_int done;
	int rc;
};

static void *bg_main(void *arg)
{
	struct bg_call *b = arg;

	if (b->armed)
		atomic_store(&b->intr, (uintptr_t)cx_intr_arm(NULL, NULL));
	b->rc = getattr(b->ch, b->ino, b->timeout_ms);
	if (b->armed)
		cx_intr_disarm();
	atomic_store(&b->done, 1);
	return NULL;
}

/* Start @b on @th, wait @ms, and raise its interrupt. */
static void bg_raise(struct bg_call *b, pthread_t *th, unsigned ms)
{
	b->armed = true;
	assert_int_equal(pthread_create(th, NULL, bg_main, b), 0);
	while (!atomic_load(&b->intr))
		sleep_ms(1);
	sleep_ms(ms);
	assert_int_equal(atomic_load(&b->done), 0);
	cx_intr_raise((struct cx_intr *)atomic_load(&b->intr));
}

/*
 * A caller whose interrupt is raised gives its call up: at once, whether the
 * request is on the wire (its reply, when it comes, is a late one) or waits
 * on a frozen channel (it is never sent); the channel goes on.
 */
static void test_call_given_up(void **state)
{
	struct fix *fx = *state;
	struct bg_call slow = { .ch = fx->ch, .ino = INO_SLOW, .timeout_ms = CALL_MS };
	struct bg_call frozen = { .ch = fx->ch, .ino = 31, .timeout_ms = CALL_MS };
	struct timespec t0, t1;
	struct rpc_stats st;
	pthread_t th;

	assert_int_equal(getattr(fx->ch, 30, CALL_MS), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bg_raise(&slow, &th, 50);
	pthread_join(th, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(slow.rc, -EINTR);
	/* Given up before the server's answer (SLOW_MS), with room for a loaded machine. */
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < SLOW_MS);
	sleep_ms(SLOW_MS + 200);
	rpc_chan_stats(fx->ch, &st);
	assert_int_equal(st.late_replies, 1);
	assert_int_equal(st.timeouts, 0);

	rpc_chan_freeze(fx->ch);
	bg_raise(&frozen, &th, 100);
	pthread_join(th, NULL);
	assert_int_equal(frozen.rc, -EINTR);
	rpc_chan_thaw(fx->ch);
	assert_int_equal(getattr(fx->ch, 32, CALL_MS), 0);
	rpc_chan_stats(fx->ch, &st);
	assert_int_equal(st.connects, 1);
}

static void test_freeze_thaw(void **state)
{
	struct fix *fx = *state;
	/* A time-out shorter than the freeze: the frozen wait does not count. */
	struct bg_call b = { .ch = fx->ch, .ino = 21, .timeout_ms = 300 };
	struct bg_call slow = { .ch = fx->ch, .ino = INO_SLOW, .timeout_ms = CALL_MS };
	pthread_t th;

	assert_int_equal(getattr(fx->ch, 20, CALL_MS), 0);
	rpc_chan_freeze(fx->ch);
	assert_int_equal(pthread_create(&th, NULL, bg_main, &b), 0);
	sleep_ms(600);
	assert_int_equal(atomic_load(&b.done), 0);      /* waits while frozen */
	rpc_chan_thaw(fx->ch);
	pthread_join(th, NULL);
	assert_int_equal(b.rc, 0);

	/* A call already on the wire completes while the channel is frozen. */
	assert_int_equal(pthread_create(&th, NULL, bg_main, &slow), 0);
	sleep_ms(100);
	rpc_chan_freeze(fx->ch);
	pthread_join(th, NULL);
	assert_int_equal(slow.rc, 0);
	rpc_chan_thaw(fx->ch);
	assert_int_equal(getattr(fx->ch, 22, CALL_MS), 0);
}

static void test_interrupt(void **state)
{
	struct fix *fx = *state;
	struct bg_call b = { .ch = fx->ch, .ino = 40, .timeout_ms = CALL_MS };
	struct rpc_stats st;
	pthread_t th;

	rpc_chan_freeze(fx->ch);
	assert_int_equal(pthread_create(&th, NULL, bg_main, &b), 0);
	sleep_ms(200);
	assert_int_equal(atomic_load(&b.done), 0);
	rpc_chan_interrupt(fx->ch);
	pthread_join(th, NULL);
	assert_int_equal(b.rc, -RPC_EEARLY);
	rpc_chan_stats(fx->ch, &st);
	assert_int_equal(st.interrupted, 1);
	rpc_chan_thaw(fx->ch);
	assert_int_equal(getattr(fx->ch, 41, CALL_MS), 0);
}

/* ------------------------------------------------------------------ */
/* Lanes                                                               */
/* ------------------------------------------------------------------ */

#define LANE_REQ 0
#define LANE_ANS 1
#define LANE_INOS 64
#define LANE_WAIT_MS 20000      /* for a figure to be reached (TSan is slow) */

/*
 * A server whose TOKEN_ACQUIRE of inode i waits until the TOKEN_RETURN of
 * inode i has arrived (or everything is released), as the MDS's does for
 * another node's return; a client calling it from many threads.
 */
struct lfix {
	struct rpc_ctx *srv, *cli;
	struct rpc_chan *ch;
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* with mu: a return, or the release */
	bool returned[LANE_INOS];       /* mu */
	bool released;                  /* mu: every acquire may go on */
	atomic_int acquiring;           /* handlers of TOKEN_ACQUIRE inside */
};

static int lane_handler(void *arg, struct rpc_req *req, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	struct lfix *lf = arg;

	if (type == CXFS__MSG_TYPE__TOKEN_ACQUIRE) {
		const Cxfs__TokenAcquire *a = (const Cxfs__TokenAcquire *)msg;
		Cxfs__TokenGrant g = CXFS__TOKEN_GRANT__INIT;

		assert_true(a->ino < LANE_INOS);
		atomic_fetch_add(&lf->acquiring, 1);
		pthread_mutex_lock(&lf->mu);
		while (!lf->returned[a->ino] && !lf->released)
			pthread_cond_wait(&lf->cv, &lf->mu);
		pthread_mutex_unlock(&lf->mu);
		atomic_fetch_sub(&lf->acquiring, 1);
		return rpc_reply(req, CXFS__MSG_TYPE__TOKEN_GRANT, &g.base);
	}
	if (type == CXFS__MSG_TYPE__TOKEN_RETURN) {
		const Cxfs__TokenReturn *r = (const Cxfs__TokenReturn *)msg;
		Cxfs__StatusReply ok = CXFS__STATUS_REPLY__INIT;

		assert_true(r->ino < LANE_INOS);
		pthread_mutex_lock(&lf->mu);
		lf->returned[r->ino] = true;
		pthread_cond_broadcast(&lf->cv);
		pthread_mutex_unlock(&lf->mu);
		return rpc_req_is_oneway(req) ? 0 : rpc_reply(req, CXFS__MSG_TYPE__STATUS_REPLY, &ok.base);
	}
	return -EOPNOTSUPP;
}

/* Returns go to the answers lane, everything else to the requests lane. */
static unsigned lane_of(void *arg, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	(void)arg;
	(void)msg;
	return type == CXFS__MSG_TYPE__TOKEN_RETURN ? LANE_ANS : LANE_REQ;
}

/* A server of @nlanes lanes (0: one fixed lane of @max workers). */
static struct lfix *lfix_new(unsigned nlanes, unsigned min, unsigned max, unsigned idle_ms)
{
	struct lfix *lf = calloc(1, sizeof(*lf));
	struct rpc_config sc = { .cluster = CLUSTER, .node = "server", .secret = secret,
				 .secret_len = sizeof(secret), .epoch = 1, .listen_addr = "127.0.0.1",
				 .workers = max, .nlanes = nlanes, .idle_ms = idle_ms,
				 .lane_of = lane_of, .handler = lane_handler };
	struct rpc_config cc = { .cluster = CLUSTER, .node = "client", .secret = secret,
				 .secret_len = sizeof(secret), .epoch = 1, .workers = 1 };

	assert_non_null(lf);
	sc.lanes[LANE_REQ] = (struct rpc_lane_config){ "requests", min, max };
	sc.lanes[LANE_ANS] = (struct rpc_lane_config){ "answers", 1, 1 };
	sc.handler_arg = lf;
	pthread_mutex_init(&lf->mu, NULL);
	pthread_cond_init(&lf->cv, NULL);
	assert_int_equal(rpc_ctx_create(&sc, &lf->srv), 0);
	assert_int_equal(rpc_ctx_create(&cc, &lf->cli), 0);
	assert_int_equal(rpc_connect(lf->cli, "127.0.0.1", rpc_ctx_port(lf->srv), &lf->ch), 0);
	return lf;
}

static void lfix_release(struct lfix *lf)
{
	pthread_mutex_lock(&lf->mu);
	lf->released = true;
	pthread_cond_broadcast(&lf->cv);
	pthread_mutex_unlock(&lf->mu);
}

static void lfix_free(struct lfix *lf)
{
	lfix_release(lf);
	rpc_chan_put(lf->ch);
	rpc_ctx_destroy(lf->cli);
	rpc_ctx_destroy(lf->srv);
	pthread_cond_destroy(&lf->cv);
	pthread_mutex_destroy(&lf->mu);
	free(lf);
}

/* The server's lane @i now. */
static struct rpc_lane_stats lane_now(struct lfix *lf, unsigned i)
{
	struct rpc_lane_stats st[RPC_LANES_MAX];

	assert_true(rpc_ctx_lanes(lf->srv, st, RPC_LANES_MAX) > i);
	return st[i];
}

/* Wait until lane @i has @running handlers running and @queued queued. */
static struct rpc_lane_stats lane_wait(struct lfix *lf, unsigned i, unsigned running,
				       unsigned queued)
{
	struct rpc_lane_stats st = lane_now(lf, i);

	for (int t = 0; t < LANE_WAIT_MS / 5 && (st.running != running || st.queued != queued); t++) {
		sleep_ms(5);
		st = lane_now(lf, i);
	}
	assert_int_equal(st.running, running);
	assert_int_equal(st.queued, queued);
	return st;
}

/* Wait until lane @i has @workers threads. */
static struct rpc_lane_stats lane_wait_workers(struct lfix *lf, unsigned i, unsigned workers)
{
	struct rpc_lane_stats st = lane_now(lf, i);

	for (int t = 0; t < LANE_WAIT_MS / 5 && st.workers != workers; t++) {
		sleep_ms(5);
		st = lane_now(lf, i);
	}
	assert_int_equal(st.workers, workers);
	return st;
}

/* Wait until @n acquire handlers are inside (past their start). */
static void acquiring_wait(struct lfix *lf, int n)
{
	for (int t = 0; t < LANE_WAIT_MS / 5 && atomic_load(&lf->acquiring) != n; t++)
		sleep_ms(5);
	assert_int_equal(atomic_load(&lf->acquiring), n);
}

struct acq_call {
	struct rpc_chan *ch;
	uint64_t ino;
	int rc;                         /* 0: granted */
};

static void *acq_main(void *arg)
{
	struct acq_call *a = arg;
	Cxfs__TokenAcquire m = CXFS__TOKEN_ACQUIRE__INIT;
	ProtobufCMessage *rep;
	Cxfs__MsgType rt;

	m.ino = a->ino;
	a->rc = rpc_call(a->ch, CXFS__MSG_TYPE__TOKEN_ACQUIRE, &m.base, 4 * LANE_WAIT_MS, &rt, &rep);
	if (a->rc == 0) {
		a->rc = rt == CXFS__MSG_TYPE__TOKEN_GRANT ? 0 : -EPROTO;
		rpc_msg_free(rep);
	}
	return NULL;
}

/* Start @n acquires of inodes @first.. from their own threads. */
static void acq_start(struct lfix *lf, pthread_t *th, struct acq_call *a, unsigned first, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		a[i] = (struct acq_call){ .ch = lf->ch, .ino = first + i, .rc = 1 };
		assert_int_equal(pthread_create(&th[i], NULL, acq_main, &a[i]), 0);
	}
}

static void acq_join(pthread_t *th, struct acq_call *a, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].rc, 0);
	}
}

/* The return of @ino, as a call: 0 once the server has taken it. */
static int give_back(struct rpc_chan *ch, uint64_t ino, unsigned timeout_ms)
{
	Cxfs__TokenReturn m = CXFS__TOKEN_RETURN__INIT;
	ProtobufCMessage *rep;
	Cxfs__MsgType rt;
	int rc;

	m.ino = ino;
	rc = rpc_call(ch, CXFS__MSG_TYPE__TOKEN_RETURN, &m.base, timeout_ms, &rt, &rep);
	if (rc == 0) {
		rc = rt == CXFS__MSG_TYPE__STATUS_REPLY ? 0 : -EPROTO;
		rpc_msg_free(rep);
	}
	return rc;
}

#define LANE_MAX 6              /* the requests lane's maximum */
#define LANE_EXTRA 3            /* acquires beyond it */

/*
 * The requests lane is full of acquires that wait for returns, more wait in
 * its queue, and the returns still get through on the answers lane: every
 * acquire ends.  With one lane, the same returns would wait behind the
 * acquires for ever (shown first, with a time-out).
 */
static void test_lanes_answers_pass_full_lane(void **state)
{
	pthread_t th[LANE_MAX + LANE_EXTRA];
	struct acq_call a[LANE_MAX + LANE_EXTRA];
	struct rpc_lane_stats st;
	struct lfix *lf;

	(void)state;
	/* One lane: the return queues behind the acquires waiting for it. */
	lf = lfix_new(0, LANE_MAX, LANE_MAX, 0);
	assert_int_equal(rpc_ctx_lanes(lf->srv, &st, 1), 1);
	assert_string_equal(st.name, "requests");
	assert_int_equal(st.min, LANE_MAX);
	assert_int_equal(st.max, LANE_MAX);
	acq_start(lf, th, a, 0, LANE_MAX);
	lane_wait(lf, 0, LANE_MAX, 0);
	acquiring_wait(lf, LANE_MAX);
	assert_int_equal(give_back(lf->ch, 0, 300), -ETIMEDOUT);
	assert_int_equal(atomic_load(&lf->acquiring), LANE_MAX);
	lfix_release(lf);
	acq_join(th, a, LANE_MAX);
	lfix_free(lf);

	/* Lanes: the requests lane at its maximum, and three more queued. */
	lf = lfix_new(2, 1, LANE_MAX, 0);
	acq_start(lf, th, a, 0, LANE_MAX);
	lane_wait(lf, LANE_REQ, LANE_MAX, 0);
	acquiring_wait(lf, LANE_MAX);
	acq_start(lf, th + LANE_MAX, a + LANE_MAX, LANE_MAX, LANE_EXTRA);
	st = lane_wait(lf, LANE_REQ, LANE_MAX, LANE_EXTRA);
	assert_int_equal(st.workers, LANE_MAX);
	assert_int_equal(st.peak, LANE_MAX);
	assert_int_equal(st.waited, LANE_EXTRA);
	/* Each return is taken (its call answered) while the lane stays full. */
	for (unsigned i = LANE_MAX; i < LANE_MAX + LANE_EXTRA; i++)
		assert_int_equal(give_back(lf->ch, i, LANE_WAIT_MS), 0);
	st = lane_now(lf, LANE_REQ);
	assert_int_equal(st.running, LANE_MAX);
	assert_int_equal(st.queued, LANE_EXTRA);
	assert_int_equal(atomic_load(&lf->acquiring), LANE_MAX);
	/* The returns of the waiting ones end them; the queued ones then run. */
	for (unsigned i = 0; i < LANE_MAX; i++)
		assert_int_equal(give_back(lf->ch, i, LANE_WAIT_MS), 0);
	acq_join(th, a, LANE_MAX + LANE_EXTRA);
	st = lane_wait(lf, LANE_REQ, 0, 0);
	assert_int_equal(st.handled, LANE_MAX + LANE_EXTRA);
	assert_int_equal(st.peak, LANE_MAX);
	st = lane_now(lf, LANE_ANS);
	assert_string_equal(st.name, "answers");
	assert_int_equal(st.handled, LANE_MAX + LANE_EXTRA);
	assert_int_equal(st.peak, 1);
	assert_int_equal(st.waited, 0);
	lfix_free(lf);
}

#define GROW_MAX 8
#define GROW_BELOW 5            /* concurrent acquires below the maximum */
#define GROW_ABOVE 12           /* and above it */
#define GROW_IDLE_MS 200

/*
 * N concurrent waiting requests get N workers, up to the maximum; beyond
 * it they queue and still end once the waits end.  Extra workers go when
 * idle; destroying the context joins whatever is left.
 */
static void test_lanes_grow(void **state)
{
	pthread_t th[GROW_ABOVE];
	struct acq_call a[GROW_ABOVE];
	struct rpc_lane_stats st;
	struct lfix *lf;

	(void)state;
	lf = lfix_new(2, 1, GROW_MAX, GROW_IDLE_MS);
	st = lane_now(lf, LANE_REQ);
	assert_int_equal(st.workers, 1);
	assert_int_equal(st.started, 1);

	/* Below the maximum: one worker each, nothing queued. */
	acq_start(lf, th, a, 0, GROW_BELOW);
	st = lane_wait(lf, LANE_REQ, GROW_BELOW, 0);
	assert_int_equal(st.workers, GROW_BELOW);
	assert_int_equal(st.peak, GROW_BELOW);
	assert_int_equal(st.started, GROW_BELOW);
	assert_int_equal(st.waited, 0);
	lfix_release(lf);
	acq_join(th, a, GROW_BELOW);
	/* Idle for GROW_IDLE_MS: back to the minimum (and never below it). */
	st = lane_wait_workers(lf, LANE_REQ, 1);
	sleep_ms(3 * GROW_IDLE_MS);
	st = lane_now(lf, LANE_REQ);
	assert_int_equal(st.workers, 1);
	assert_int_equal(st.handled, GROW_BELOW);

	/* Above the maximum: GROW_MAX workers, the rest queued, all end. */
	pthread_mutex_lock(&lf->mu);
	lf->released = false;
	pthread_mutex_unlock(&lf->mu);
	acq_start(lf, th, a, 0, GROW_ABOVE);
	st = lane_wait(lf, LANE_REQ, GROW_MAX, GROW_ABOVE - GROW_MAX);
	assert_int_equal(st.workers, GROW_MAX);
	assert_int_equal(st.peak, GROW_MAX);
	assert_int_equal(st.started, GROW_BELOW + GROW_MAX - 1);
	assert_int_equal(st.waited, GROW_ABOVE - GROW_MAX);
	acquiring_wait(lf, GROW_MAX);
	lfix_release(lf);
	acq_join(th, a, GROW_ABOVE);
	st = lane_wait(lf, LANE_REQ, 0, 0);
	assert_int_equal(st.handled, GROW_BELOW + GROW_ABOVE);
	assert_int_equal(st.peak, GROW_MAX);
	/* Destroyed with extra workers still there: all joined. */
	assert_true(st.workers > 1);
	lfix_free(lf);
}

/* ------------------------------------------------------------------ */
/* Hostile peers                                                       */
/* ------------------------------------------------------------------ */

static int raw_connect(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;        /* the server may close before we finish */
		p += n;
		len -= (size_t)n;
	}
}

static int recv_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Did the server close @fd (EOF or reset, not a time-out)? */
static int closed_by_peer(int fd)
{
	uint8_t b[256];

	for (;;) {
		ssize_t n = recv(fd, b, sizeof(b), 0);

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
		if (n < 0)
			return 0;
	}
}

/* A frame of @payload, MAC'd with @key as frame @seq. */
static uint8_t *raw_frame_k(const struct rpc__key *k, uint64_t seq, uint16_t version, uint16_t type,
			    uint16_t flags, uint64_t id, const uint8_t *payload, size_t plen, size_t *len)
{
	struct rpc__hdr h = { .magic = RPC__MAGIC, .version = version, .type = type,
			      .flags = flags, .id = id, .epoch = 1 };
	uint8_t *f;

	assert_int_equal(rpc__frame_raw(k, seq, &h, payload, plen, &f, len), 0);
	return f;
}

/* A frame of @payload, MAC'd with the cluster secret @key (a handshake frame). */
static uint8_t *raw_frame(const uint8_t *key, uint16_t version, uint16_t type, uint16_t flags,
			  uint64_t id, const uint8_t *payload, size_t plen, size_t *len)
{
	struct rpc__key k;
	uint8_t *f;

	assert_int_equal(rpc__key_init(&k, key, 32), 0);
	f = raw_frame_k(&k, 0, version, type, flags, id, payload, plen, len);
	rpc__key_wipe(&k);
	return f;
}

static uint8_t *pack(Cxfs__MsgType type, const ProtobufCMessage *m, size_t *plen)
{
	int64_t n = rpc_msg_pack(type, m, NULL, 0);
	uint8_t *payload;

	assert_true(n >= 0);
	payload = malloc((size_t)n + 1);
	rpc_msg_pack(type, m, payload, (size_t)n);
	*plen = (size_t)n;
	return payload;
}

static uint8_t *msg_frame(const uint8_t *key, uint16_t version, Cxfs__MsgType type, uint16_t flags,
			  uint64_t id, const ProtobufCMessage *m, size_t *len)
{
	size_t plen;
	uint8_t *payload = pack(type, m, &plen), *f;

	f = raw_frame(key, version, (uint16_t)type, flags, id, payload, plen, len);
	free(payload);
	return f;
}

static const uint8_t raw_nonce[RPC__NONCE_SIZE] = "raw nonce, the same every time!";

static uint8_t *hello_frame_as(const uint8_t *key, uint16_t version, const char *node, size_t *len)
{
	Cxfs__Hello h = CXFS__HELLO__INIT;

	h.version = RPC_PROTO_VERSION;
	h.cluster = CLUSTER;
	h.node = (char *)node;
	h.epoch = 1;
	h.has_nonce = 1;
	h.nonce.data = (uint8_t *)raw_nonce;
	h.nonce.len = sizeof(raw_nonce);
	return msg_frame(key, version, CXFS__MSG_TYPE__HELLO, RPC__F_REQUEST, 1, &h.base, len);
}

static uint8_t *hello_frame(const uint8_t *key, uint16_t version, size_t *len)
{
	return hello_frame_as(key, version, "raw", len);
}

/*
 * A raw client that speaks the handshake itself: what it sent is kept
 * (sent[]), so that a test can send the same bytes again on another
 * connection, as someone who recorded them would.
 */
struct raw {
	int fd;
	struct rpc__key tx, rx;         /* the connection's keys */
	uint64_t tx_seq, rx_seq;
	uint8_t ns[RPC__NONCE_SIZE];    /* the server's nonce */
	uint8_t sent[4096];             /* every byte sent */
	size_t nsent;
};

static void raw_send(struct raw *r, const uint8_t *buf, size_t len)
{
	send_all(r->fd, buf, len);
	if (r->nsent + len <= sizeof(r->sent)) {
		memcpy(r->sent + r->nsent, buf, len);
		r->nsent += len;
	}
}

/* Read one frame; its MAC checked with @k as frame @seq.  The payload: free it. */
static uint8_t *raw_read(int fd, const struct rpc__key *k, uint64_t seq, struct rpc__hdr *h)
{
	uint8_t hdr[RPC__HDR_SIZE], *body;

	assert_int_equal(recv_all(fd, hdr, sizeof(hdr)), 0);
	rpc__hdr_get(hdr, h);
	assert_true(h->len < (1u << 20));
	body = malloc(h->len + RPC__MAC_SIZE);
	assert_int_equal(recv_all(fd, body, h->len + RPC__MAC_SIZE), 0);
	assert_int_equal(rpc__mac_verify(k, seq, hdr, body, h->len, body + h->len), 0);
	return body;
}

/* On new connection @fd: send a HELLO as node @node, read the reply, make the keys. */
static void raw_hello(struct raw *r, int fd, const char *node)
{
	struct rpc__key cluster;
	Cxfs__HelloReply *rep;
	struct rpc__hdr h;
	uint8_t *f, *body;
	size_t len;

	memset(r, 0, sizeof(*r));
	r->fd = fd;
	assert_int_equal(rpc__key_init(&cluster, secret, sizeof(secret)), 0);
	f = hello_frame_as(secret, RPC_PROTO_VERSION, node, &len);
	raw_send(r, f, len);
	free(f);
	body = raw_read(r->fd, &cluster, 0, &h);
	assert_int_equal(h.type, CXFS__MSG_TYPE__HELLO_REPLY);
	assert_int_equal(rpc_msg_unpack(CXFS__MSG_TYPE__HELLO_REPLY, body, h.len,
					(ProtobufCMessage **)&rep), 0);
	assert_true(rep->has_nonce && rep->nonce.len == RPC__NONCE_SIZE);
	assert_true(rep->has_peer_nonce && rep->peer_nonce.len == RPC__NONCE_SIZE);
	assert_memory_equal(rep->peer_nonce.data, raw_nonce, RPC__NONCE_SIZE);
	memcpy(r->ns, rep->nonce.data, RPC__NONCE_SIZE);
	rpc_msg_free(&rep->base);
	free(body);
	rpc__conn_keys(&cluster, raw_nonce, r->ns, &r->tx, &r->rx);
	rpc__key_wipe(&cluster);
	r->tx_seq = r->rx_seq = 1;
}

/* End @r's handshake: HELLO_DONE under the connection's key. */
static void raw_done(struct raw *r)
{
	Cxfs__HelloDone done = CXFS__HELLO_DONE__INIT;
	uint8_t *f, *body;
	size_t len, plen;

	body = pack(CXFS__MSG_TYPE__HELLO_DONE, &done.base, &plen);
	f = raw_frame_k(&r->tx, r->tx_seq++, RPC_PROTO_VERSION, CXFS__MSG_TYPE__HELLO_DONE,
			RPC__F_ONEWAY, 0, body, plen, &len);
	raw_send(r, f, len);
	free(f);
	free(body);
}

/* Connect to @port as node @node and go through the handshake. */
static void raw_handshake(struct raw *r, uint16_t port, const char *node)
{
	raw_hello(r, raw_connect(port), node);
	raw_done(r);
}

/* A frame of @m under @r's key, as its next frame. */
static uint8_t *raw_msg(struct raw *r, Cxfs__MsgType type, uint16_t flags, uint64_t id,
			const ProtobufCMessage *m, size_t *len)
{
	size_t plen;
	uint8_t *payload = pack(type, m, &plen), *f;

	f = raw_frame_k(&r->tx, r->tx_seq++, RPC_PROTO_VERSION, (uint16_t)type, flags, id,
			payload, plen, len);
	free(payload);
	return f;
}

/* A GETATTR of @ino with request id @id on @r, and its reply read back. */
static void raw_getattr(struct raw *r, uint64_t ino, uint64_t id)
{
	Cxfs__GetattrReq g = CXFS__GETATTR_REQ__INIT;
	Cxfs__Cred cred = CXFS__CRED__INIT;
	struct rpc__hdr h;
	uint8_t *f;
	size_t len;

	g.ino = ino;
	g.cred = &cred;
	f = raw_msg(r, CXFS__MSG_TYPE__GETATTR_REQ, RPC__F_REQUEST, id, &g.base, &len);
	raw_send(r, f, len);
	free(f);
	free(raw_read(r->fd, &r->rx, r->rx_seq++, &h));
	assert_int_equal(h.type, CXFS__MSG_TYPE__ATTR_REPLY);
	assert_int_equal(h.id, id);
}

static void raw_close(struct raw *r)
{
	close(r->fd);
	rpc__key_wipe(&r->tx);
	rpc__key_wipe(&r->rx);
}

/* Wait until the server has counted @want drops for @reason. */
static void wait_dropped_ctx(struct rpc_ctx *ctx, enum rpc_drop reason, uint64_t want)
{
	struct rpc_stats st;

	for (int i = 0; i < 500; i++) {
		rpc_ctx_stats(ctx, &st);
		if (st.dropped[reason] >= want)
			break;
		sleep_ms(10);
	}
	assert_int_equal(st.dropped[reason], want);
}

static void wait_dropped(struct fix *fx, enum rpc_drop reason, uint64_t want)
{
	wait_dropped_ctx(fx->srv, reason, want);
}

/*
 * Send @buf on a new raw connection, or on @r's (through its handshake):
 * refused for @reason, closed; good clients still served.
 */
static void hostile(struct fix *fx, struct raw *r, const void *buf, size_t len, int shut,
		    enum rpc_drop reason)
{
	struct rpc_stats before;
	int fd;

	rpc_ctx_stats(fx->srv, &before);
	fd = r ? r->fd : raw_connect(rpc_ctx_port(fx->srv));
	send_all(fd, buf, len);
	if (shut)
		shutdown(fd, SHUT_WR);
	assert_true(closed_by_peer(fd));
	if (r)
		raw_close(r);
	else
		close(fd);
	wait_dropped(fx, reason, before.dropped[reason] + 1);
	assert_int_equal(getattr(fx->ch, 77, CALL_MS), 0);
}

static void test_hostile_frames(void **state)
{
	struct fix *fx = *state;
	Cxfs__GetattrReq g = CXFS__GETATTR_REQ__INIT;
	Cxfs__StatusReply sr = CXFS__STATUS_REPLY__INIT;
	Cxfs__Cred cred = CXFS__CRED__INIT;
	uint8_t garbage[96], *f, *hello;
	size_t len, hlen;
	struct rpc_stats st;
	uint16_t port = rpc_ctx_port(fx->srv);
	struct raw r;

	assert_int_equal(getattr(fx->ch, 76, CALL_MS), 0);

	/* Wrong MAC: a well-formed HELLO keyed with another secret. */
	f = hello_frame(wrong_secret, RPC_PROTO_VERSION, &len);
	hostile(fx, NULL, f, len, 0, RPC_DROP_MAC);
	free(f);

	/* A MAC with one bit flipped in the payload. */
	f = hello_frame(secret, RPC_PROTO_VERSION, &len);
	f[RPC__HDR_SIZE + 3] ^= 0x10;
	hostile(fx, NULL, f, len, 0, RPC_DROP_MAC);
	free(f);

	/* Oversized length field: refused on the header alone. */
	{
		struct rpc__hdr h = { .magic = RPC__MAGIC, .version = RPC_PROTO_VERSION,
				      .type = CXFS__MSG_TYPE__HELLO, .flags = RPC__F_REQUEST,
				      .len = 0xffffffffu, .id = 1, .epoch = 1 };
		uint8_t hdr[RPC__HDR_SIZE];

		rpc__hdr_put(hdr, &h);
		hostile(fx, NULL, hdr, sizeof(hdr), 0, RPC_DROP_OVERSIZE);
		h.len = RPC_MAX_PAYLOAD_DEFAULT + 1;
		rpc__hdr_put(hdr, &h);
		hostile(fx, NULL, hdr, sizeof(hdr), 0, RPC_DROP_OVERSIZE);
	}

	/* Garbage bytes. */
	srand(4);
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (uint8_t)rand();
	hostile(fx, NULL, garbage, sizeof(garbage), 0, RPC_DROP_MAGIC);

	/* Truncated frames: in the header, and in the payload. */
	f = hello_frame(secret, RPC_PROTO_VERSION, &len);
	hostile(fx, NULL, f, 10, 1, RPC_DROP_TRUNCATED);
	hostile(fx, NULL, f, len - 5, 1, RPC_DROP_TRUNCATED);
	free(f);

	/* An older protocol version, even with a good MAC. */
	f = hello_frame(secret, RPC_PROTO_VERSION - 1, &len);
	hostile(fx, NULL, f, len, 0, RPC_DROP_VERSION);
	free(f);

	/* Flags that are not exactly one kind. */
	{
		uint8_t p[1] = { 0 };

		f = raw_frame(secret, RPC_PROTO_VERSION, CXFS__MSG_TYPE__HELLO,
			      RPC__F_REQUEST | RPC__F_REPLY, 1, p, 0, &len);
		hostile(fx, NULL, f, len, 0, RPC_DROP_HEADER);
		free(f);
	}

	/* A huge protobuf field: HELLO's cluster string claims 2^31 bytes. */
	{
		uint8_t p[] = { 0x08, 0x01, 0x12, 0x80, 0x80, 0x80, 0x80, 0x08, 'x', 'y' };

		f = raw_frame(secret, RPC_PROTO_VERSION, CXFS__MSG_TYPE__HELLO, RPC__F_REQUEST, 1,
			      p, sizeof(p), &len);
		hostile(fx, NULL, f, len, 0, RPC_DROP_DECODE);
		free(f);
	}

	/* An unknown type, and a reply type sent as a request. */
	{
		uint8_t p[1] = { 0 };

		f = raw_frame(secret, RPC_PROTO_VERSION, 999, RPC__F_REQUEST, 1, p, 0, &len);
		hostile(fx, NULL, f, len, 0, RPC_DROP_TYPE);
		free(f);
		f = raw_frame(secret, RPC_PROTO_VERSION, CXFS__MSG_TYPE__STATUS_REPLY,
			      RPC__F_REQUEST, 1, p, 0, &len);
		hostile(fx, NULL, f, len, 0, RPC_DROP_TYPE);
		free(f);
	}

	/* A good request, but before any HELLO. */
	g.ino = 3;
	g.cred = &cred;
	f = msg_frame(secret, RPC_PROTO_VERSION, CXFS__MSG_TYPE__GETATTR_REQ, RPC__F_REQUEST, 2,
		      &g.base, &len);
	hostile(fx, NULL, f, len, 0, RPC_DROP_HANDSHAKE);
	free(f);

	/* A HELLO for another cluster. */
	{
		Cxfs__Hello h = CXFS__HELLO__INIT;

		h.version = RPC_PROTO_VERSION;
		h.cluster = "othercluster";
		h.node = "raw";
		f = msg_frame(secret, RPC_PROTO_VERSION, CXFS__MSG_TYPE__HELLO, RPC__F_REQUEST, 1,
			      &h.base, &len);
		hostile(fx, NULL, f, len, 0, RPC_DROP_HANDSHAKE);
		free(f);
		/* Of this cluster, but without a nonce (no fresh keys could be made). */
		h.cluster = CLUSTER;
		f = msg_frame(secret, RPC_PROTO_VERSION, CXFS__MSG_TYPE__HELLO, RPC__F_REQUEST, 1,
			      &h.base, &len);
		hostile(fx, NULL, f, len, 0, RPC_DROP_HANDSHAKE);
		free(f);
	}

	/* A peer that connects and says nothing is closed after the HELLO time-out. */
	hostile(fx, NULL, "", 0, 0, RPC_DROP_HANDSHAKE);

	/* A header announcing more than a HELLO before the handshake: refused on
	 * the header alone, though below the payload limit of the context. */
	{
		struct rpc__hdr h = { .magic = RPC__MAGIC, .version = RPC_PROTO_VERSION,
				      .type = CXFS__MSG_TYPE__HELLO, .flags = RPC__F_REQUEST,
				      .len = RPC__HELLO_MAX + 1, .id = 1, .epoch = 1 };
		uint8_t hdr[RPC__HDR_SIZE];

		rpc__hdr_put(hdr, &h);
		hostile(fx, NULL, hdr, sizeof(hdr), 0, RPC_DROP_OVERSIZE);
		h.len = 64 * 1024;
		rpc__hdr_put(hdr, &h);
		hostile(fx, NULL, hdr, sizeof(hdr), 0, RPC_DROP_OVERSIZE);
	}

	/* After the handshake: a reply to a request never sent. */
	raw_handshake(&r, port, "raw");
	f = raw_msg(&r, CXFS__MSG_TYPE__STATUS_REPLY, RPC__F_REPLY, 77, &sr.base, &len);
	hostile(fx, &r, f, len, 0, RPC_DROP_UNEXPECTED);
	free(f);

	/* After the handshake: a frame MAC'd with the cluster secret, not the connection's key. */
	g.ino = 3;
	raw_handshake(&r, port, "raw");
	f = msg_frame(secret, RPC_PROTO_VERSION, CXFS__MSG_TYPE__GETATTR_REQ, RPC__F_REQUEST, 2,
		      &g.base, &len);
	hostile(fx, &r, f, len, 0, RPC_DROP_MAC);
	free(f);

	/* A frame sent twice on one connection: served once, then refused (its sequence number). */
	raw_handshake(&r, port, "raw");
	f = raw_msg(&r, CXFS__MSG_TYPE__GETATTR_REQ, RPC__F_REQUEST, 2, &g.base, &len);
	send_all(r.fd, f, len);
	{
		struct rpc__hdr h;

		free(raw_read(r.fd, &r.rx, r.rx_seq++, &h));
		assert_int_equal(h.type, CXFS__MSG_TYPE__ATTR_REPLY);
	}
	hostile(fx, &r, f, len, 0, RPC_DROP_MAC);
	free(f);

	/* A request after the HELLO but instead of the HELLO_DONE. */
	raw_hello(&r, raw_connect(port), "raw");
	f = raw_msg(&r, CXFS__MSG_TYPE__GETATTR_REQ, RPC__F_REQUEST, 2, &g.base, &len);
	hostile(fx, &r, f, len, 0, RPC_DROP_HANDSHAKE);
	free(f);

	/* A stale membership epoch: the cluster moved to 2 (the good client
	 * too), the raw frames carry 1. */
	rpc_ctx_set_epoch(fx->srv, 2);
	rpc_ctx_set_epoch(fx->cli, 2);
	rpc_ctx_set_floor(fx->srv, 2);
	hello = hello_frame(secret, RPC_PROTO_VERSION, &hlen);
	hostile(fx, NULL, hello, hlen, 0, RPC_DROP_EPOCH);
	free(hello);

	/* Each refusal was logged with the peer's address. */
	pthread_mutex_lock(&fx->mu);
	assert_non_null(strstr(fx->last_log, "127.0.0.1:"));
	pthread_mutex_unlock(&fx->mu);
	assert_true(atomic_load(&fx->log_lines) >= 16);
	/* The good client never lost its connection. */
	rpc_chan_stats(fx->ch, &st);
	assert_int_equal(st.connects, 1);
	for (unsigned k = 0; k < RPC_DROP__COUNT; k++)
		assert_int_equal(st.dropped[k], 0);
}

/* The first thing read on @fd is the end of the connection (no frame before it). */
static int closed_at_once(int fd)
{
	uint8_t b[1];
	ssize_t n = recv(fd, b, sizeof(b), 0);

	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/*
 * A HELLO recorded from an earlier connection and sent again, with the rest
 * of what was recorded (HELLO_DONE, a request): the server answers the
 * HELLO with a nonce of its own, the recorded HELLO_DONE fails the new
 * keys, the connection is refused as a replay before it is taken for a
 * node's, and the recorded request is never served.
 */
static void test_replayed_hello(void **state)
{
	struct fix *fx = *state;
	uint16_t port = rpc_ctx_port(fx->srv);
	struct rpc_stats before, after;
	struct rpc__key cluster;
	Cxfs__HelloReply *rep;
	struct rpc__hdr h;
	struct raw r1;
	uint8_t *body;
	int fd;

	raw_handshake(&r1, port, "raw");
	raw_getattr(&r1, 50, 2);                   /* the recorded session works */
	raw_close(&r1);

	rpc_ctx_stats(fx->srv, &before);
	fd = raw_connect(port);
	send_all(fd, r1.sent, r1.nsent);
	assert_int_equal(rpc__key_init(&cluster, secret, sizeof(secret)), 0);
	body = raw_read(fd, &cluster, 0, &h);
	rpc__key_wipe(&cluster);
	assert_int_equal(h.type, CXFS__MSG_TYPE__HELLO_REPLY);
	assert_int_equal(rpc_msg_unpack(CXFS__MSG_TYPE__HELLO_REPLY, body, h.len,
					(ProtobufCMessage **)&rep), 0);
	assert_memory_not_equal(rep->nonce.data, r1.ns, RPC__NONCE_SIZE);   /* a fresh nonce */
	rpc_msg_free(&rep->base);
	free(body);
	assert_true(closed_at_once(fd));            /* no reply to the recorded request */
	close(fd);
	wait_dropped(fx, RPC_DROP_REPLAY, before.dropped[RPC_DROP_REPLAY] + 1);
	rpc_ctx_stats(fx->srv, &after);
	assert_int_equal(after.connects, before.connects);     /* never a node's channel */
	pthread_mutex_lock(&fx->mu);
	assert_non_null(strstr(fx->last_log, "replay"));
	pthread_mutex_unlock(&fx->mu);
	assert_int_equal(getattr(fx->ch, 51, CALL_MS), 0);
}

/*
 * A HELLO_REPLY that does not echo our HELLO's nonce (recorded from an
 * earlier connection, or made for another one) is refused by the
 * connecting side.
 */
static void test_reply_not_fresh(void **state)
{
	struct fix *fx = *state;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	Cxfs__WriteDone wd = CXFS__WRITE_DONE__INIT;
	Cxfs__HelloReply rep = CXFS__HELLO_REPLY__INIT;
	uint8_t other[RPC__NONCE_SIZE], *f, *body;
	struct rpc__key cluster;
	struct rpc_stats before;
	struct rpc_chan *ch;
	struct rpc__hdr h;
	struct timeval tv = { .tv_sec = 5 };
	size_t len;
	int ls = socket(AF_INET, SOCK_STREAM, 0), fd;

	assert_true(ls >= 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
	rpc_ctx_stats(fx->cli, &before);
	assert_int_equal(rpc_connect(fx->cli, "127.0.0.1", ntohs(sa.sin_port), &ch), 0);
	assert_int_equal(rpc_send(ch, CXFS__MSG_TYPE__WRITE_DONE, &wd.base), 0);   /* connects */
	fd = accept(ls, NULL, NULL);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(rpc__key_init(&cluster, secret, sizeof(secret)), 0);
	body = raw_read(fd, &cluster, 0, &h);
	assert_int_equal(h.type, CXFS__MSG_TYPE__HELLO);
	free(body);
	memset(other, 9, sizeof(other));
	rep.version = RPC_PROTO_VERSION;
	rep.cluster = CLUSTER;
	rep.node = "fake";
	rep.epoch = 1;
	rep.has_nonce = rep.has_peer_nonce = 1;
	rep.nonce.data = other;
	rep.nonce.len = sizeof(other);
	rep.peer_nonce.data = (uint8_t *)raw_nonce;     /* not the client's */
	rep.peer_nonce.len = sizeof(raw_nonce);
	f = msg_frame(secret, RPC_PROTO_VERSION, CXFS__MSG_TYPE__HELLO_REPLY, RPC__F_REPLY, h.id,
		      &rep.base, &len);
	send_all(fd, f, len);
	free(f);
	rpc__key_wipe(&cluster);
	assert_true(closed_at_once(fd));                /* no HELLO_DONE, no notice */
	close(fd);
	close(ls);
	wait_dropped_ctx(fx->cli, RPC_DROP_REPLAY, before.dropped[RPC_DROP_REPLAY] + 1);
	rpc_chan_put(ch);
}

/*
 * The membership epoch: once the server's floor is above the client's epoch,
 * the client's frames are refused and counted (RPC_DROP_EPOCH) and the
 * connection closes: the call in flight fails, and so does the HELLO of
 * the reconnection while the client's epoch is old.  Once the client has
 * the new epoch too, it is served again.
 */
static void test_epoch(void **state)
{
	struct fix *fx = *state;
	struct rpc_stats st;

	assert_int_equal(getattr(fx->ch, 80, CALL_MS), 0);
	pthread_mutex_lock(&fx->mu);
	fx->watch = "stale epoch: epoch 1, below 3";
	pthread_mutex_unlock(&fx->mu);
	rpc_ctx_set_epoch(fx->srv, 3);
	rpc_ctx_set_floor(fx->srv, 3);
	assert_int_equal(getattr(fx->ch, 81, CALL_MS), -ECONNRESET);     /* the request refused */
	wait_dropped(fx, RPC_DROP_EPOCH, 1);
	assert_int_equal(getattr(fx->ch, 82, CALL_MS), -ECONNRESET);     /* its HELLO refused */
	wait_dropped(fx, RPC_DROP_EPOCH, 2);
	pthread_mutex_lock(&fx->mu);
	assert_int_equal(fx->watched, 2);              /* each refusal logged, with both epochs */
	pthread_mutex_unlock(&fx->mu);
	rpc_ctx_set_epoch(fx->cli, 3);
	assert_int_equal(getattr(fx->ch, 83, CALL_MS), 0);
	rpc_chan_stats(fx->ch, &st);
	assert_int_equal(st.connects, 2);              /* the first, and the one at epoch 3 */
	for (unsigned r = 0; r < RPC_DROP__COUNT; r++)
		assert_int_equal(st.dropped[r], 0);    /* the client refused nothing */
	rpc_ctx_stats(fx->srv, &st);
	assert_int_equal(st.dropped[RPC_DROP_EPOCH], 2);
}

/*
 * Protocol levels: a node at level 1 (an older member in the cluster)
 * connects at version 1 and is refused by a node whose level floor is 2;
 * once that floor is 1, it serves version 1 (no nonces, no HELLO_DONE,
 * the cluster key without sequence numbers) and version 2 alike; back at
 * level 2 it refuses version 1 again.
 */
static void test_levels(void **state)
{
	struct fix *fx = *state;
	uint16_t port = rpc_ctx_port(fx->srv);
	Cxfs__Hello h = CXFS__HELLO__INIT;
	struct rpc__key cluster;
	struct rpc_chan *ch2;
	struct rpc_stats st;
	struct rpc__hdr rh;
	size_t plen, len;
	uint8_t *payload, *f, *body;
	int fd;

	assert_int_equal(rpc_ctx_set_level(fx->cli, 0), -EINVAL);
	assert_int_equal(rpc_ctx_set_level(fx->cli, RPC_PROTO_VERSION + 1), -EINVAL);
	assert_int_equal(rpc_ctx_set_level(fx->cli, 1), 0);
	assert_int_equal(getattr(fx->ch, 90, CALL_MS), -ECONNRESET);      /* server at level 2 */
	wait_dropped(fx, RPC_DROP_VERSION, 1);
	assert_int_equal(rpc_ctx_set_level_floor(fx->srv, 0), -EINVAL);
	assert_int_equal(rpc_ctx_set_level_floor(fx->srv, 1), 0);
	assert_int_equal(getattr(fx->ch, 91, CALL_MS), 0);                /* accepted now */
	/* A version 2 client is served at level 1 too. */
	assert_int_equal(rpc_ctx_set_level(fx->cli, 2), 0);
	assert_int_equal(rpc_connect(fx->cli, "127.0.0.1", port, &ch2), 0);
	assert_int_equal(getattr(ch2, 92, CALL_MS), 0);
	rpc_chan_put(ch2);

	/* A raw version 1 handshake: HELLO without nonce, the secret's MAC without sequence number. */
	assert_int_equal(rpc__key_init(&cluster, secret, sizeof(secret)), 0);
	h.version = 1;
	h.cluster = CLUSTER;
	h.node = "old";
	h.epoch = 1;
	payload = pack(CXFS__MSG_TYPE__HELLO, &h.base, &plen);
	f = raw_frame_k(&cluster, RPC__SEQ_NONE, 1, CXFS__MSG_TYPE__HELLO, RPC__F_REQUEST, 1,
			payload, plen, &len);
	fd = raw_connect(port);
	send_all(fd, f, len);
	body = raw_read(fd, &cluster, RPC__SEQ_NONE, &rh);
	assert_int_equal(rh.version, 1);
	assert_int_equal(rh.type, CXFS__MSG_TYPE__HELLO_REPLY);
	free(body);
	close(fd);
	/* The floor back at 2: the same HELLO is refused. */
	assert_int_equal(rpc_ctx_set_level_floor(fx->srv, 2), 0);
	hostile(fx, NULL, f, len, 0, RPC_DROP_VERSION);
	free(f);
	free(payload);
	rpc__key_wipe(&cluster);
	rpc_ctx_stats(fx->srv, &st);
	assert_int_equal(st.dropped[RPC_DROP_VERSION], 2);
}

static int raw_connect_from(uint16_t port, const char *from)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in me = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(inet_pton(AF_INET, from, &me.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/*
 * Limits on connections: at most 2 in their handshake from one address,
 * 3 in all, and 1 connection of one authenticated node.  Each refused
 * connection is closed at once and counted (RPC_DROP_CONNS); connections
 * under the limits are served.
 */
static void test_conn_limits(void **state)
{
	struct fix fx0 = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct rpc_config sc = { .cluster = CLUSTER, .node = "server", .secret = secret,
				 .secret_len = sizeof(secret), .epoch = 1, .listen_addr = "127.0.0.1",
				 .workers = 2, .hello_timeout_ms = 600000, .handler = srv_handler,
				 .handler_arg = &fx0, .log = fix_log, .log_arg = &fx0,
				 .max_unauth = 3, .max_unauth_per_addr = 2, .max_conns_per_node = 1 };
	struct rpc_ctx *srv;
	struct raw a1, a2, b1, c2;
	uint16_t port;
	int fd;

	(void)state;
	assert_int_equal(rpc_ctx_create(&sc, &srv), 0);
	port = rpc_ctx_port(srv);
	/* Two from 127.0.0.1, in their handshake (HELLO answered, no HELLO_DONE). */
	raw_hello(&a1, raw_connect_from(port, "127.0.0.1"), "raw");
	raw_hello(&a2, raw_connect_from(port, "127.0.0.1"), "raw");
	/* A third from there is one too many for that address. */
	fd = raw_connect_from(port, "127.0.0.1");
	assert_true(closed_at_once(fd));
	close(fd);
	wait_dropped_ctx(srv, RPC_DROP_CONNS, 1);
	/* Another address may still come: the third in all. */
	raw_hello(&b1, raw_connect_from(port, "127.0.0.2"), "raw2");
	/* A fourth in all is one too many, whatever its address. */
	fd = raw_connect_from(port, "127.0.0.3");
	assert_true(closed_at_once(fd));
	close(fd);
	wait_dropped_ctx(srv, RPC_DROP_CONNS, 2);
	pthread_mutex_lock(&fx0.mu);
	assert_non_null(strstr(fx0.last_log, "connection refused"));
	pthread_mutex_unlock(&fx0.mu);
	/* a1 ends its handshake and is served: it no longer counts as unauthenticated. */
	raw_done(&a1);
	raw_getattr(&a1, 60, 2);
	raw_hello(&c2, raw_connect_from(port, "127.0.0.3"), "raw3");
	/* a2 is node "raw" too, which has its one connection: refused at its HELLO_DONE. */
	raw_done(&a2);
	assert_true(closed_at_once(a2.fd));
	wait_dropped_ctx(srv, RPC_DROP_CONNS, 3);
	raw_getattr(&a1, 61, 3);                       /* the first connection of "raw" goes on */
	raw_close(&a1);
	raw_close(&a2);
	raw_close(&b1);
	raw_close(&c2);
	rpc_ctx_destroy(srv);
	if (fx0.back)
		rpc_chan_put(fx0.back);
}

/*
 * A payload of half a million empty repeated sub-messages is refused (they
 * lack their required fields; the decode budget bounds what protobuf-c may
 * allocate meanwhile) and leaks nothing.
 */
static void test_decode_hostile_repeated(void **state)
{
	size_t n = RPC_MAX_PAYLOAD_DEFAULT / 2;
	uint8_t *p = malloc(2 * n + 2);
	ProtobufCMessage *m;

	/* TokenAcquire: ino, then `want` (field 2) repeated as empty messages. */
	p[0] = 0x08;
	p[1] = 0x01;
	for (size_t i = 0; i < n - 1; i++) {
		p[2 + 2 * i] = 0x12;
		p[3 + 2 * i] = 0x00;
	}
	assert_int_equal(rpc_msg_unpack(CXFS__MSG_TYPE__TOKEN_ACQUIRE, p, 2 * n, &m), -EBADMSG);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codec_roundtrip),
		cmocka_unit_test(test_codec_refuses),
		cmocka_unit_test(test_frame_mac),
		cmocka_unit_test(test_conn_keys),
		cmocka_unit_test(test_decode_hostile_repeated),
		cmocka_unit_test_setup_teardown(test_concurrent_calls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_oneway_and_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused_and_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_freeze_thaw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_given_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replayed_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_not_fresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
		cmocka_unit_test(test_conn_limits),
		cmocka_unit_test(test_lanes_answers_pass_full_lane),
		cmocka_unit_test(test_lanes_grow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
