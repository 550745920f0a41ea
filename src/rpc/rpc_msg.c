/*
 * rpc_msg.c - the codec of the rpc layer: the table of message types (which
 * protobuf message each carries, whether it is a request, a reply or a
 * one-way notice, which reply a request expects), bounded packing and
 * unpacking of payloads, and the frame header, its MAC and the keys of a
 * connection (rpc_i.h).
 *
 * No locks: everything here works on its arguments only.  The MAC key's
 * base state is written once by rpc__key_init() and only read (copied)
 * afterwards, so threads share it freely.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc_i.h"

#define REQ RPC__F_REQUEST
#define REP RPC__F_REPLY
#define ONE RPC__F_ONEWAY
#define T(x) CXFS__MSG_TYPE__##x

/* What one message type number means. */
struct rpc__msg_info {
	const ProtobufCMessageDescriptor *desc;   /* NULL: no such type */
	unsigned kinds;                           /* RPC__F_* it may travel as */
	Cxfs__MsgType reply;                      /* for a request: the reply it expects */
};

static const struct rpc__msg_info rpc__msgs[] = {
	[T(HELLO)]            = { &cxfs__hello__descriptor, REQ, T(HELLO_REPLY) },
	[T(HELLO_REPLY)]      = { &cxfs__hello_reply__descriptor, REP, 0 },
	[T(ERROR_REPLY)]      = { &cxfs__error_reply__descriptor, REP, 0 },
	[T(HELLO_DONE)]       = { &cxfs__hello_done__descriptor, ONE, 0 },

	[T(GETATTR_REQ)]      = { &cxfs__getattr_req__descriptor, REQ, T(ATTR_REPLY) },
	[T(SETATTR_REQ)]      = { &cxfs__setattr_req__descriptor, REQ, T(ATTR_REPLY) },
	[T(LOOKUP_REQ)]       = { &cxfs__lookup_req__descriptor, REQ, T(ATTR_REPLY) },
	[T(MKNOD_REQ)]        = { &cxfs__mknod_req__descriptor, REQ, T(ATTR_REPLY) },
	[T(LINK_REQ)]         = { &cxfs__link_req__descriptor, REQ, T(ATTR_REPLY) },
	[T(UNLINK_REQ)]       = { &cxfs__unlink_req__descriptor, REQ, T(STATUS_REPLY) },
	[T(RENAME_REQ)]       = { &cxfs__rename_req__descriptor, REQ, T(STATUS_REPLY) },
	[T(READLINK_REQ)]     = { &cxfs__readlink_req__descriptor, REQ, T(READLINK_REPLY) },
	[T(OPEN_REQ)]         = { &cxfs__open_req__descriptor, REQ, T(ATTR_REPLY) },
	[T(RELEASE_REQ)]      = { &cxfs__release_req__descriptor, REQ, T(STATUS_REPLY) },
	[T(READDIR_REQ)]      = { &cxfs__readdir_req__descriptor, REQ, T(READDIR_REPLY) },
	[T(STATFS_REQ)]       = { &cxfs__statfs_req__descriptor, REQ, T(STATFS_REPLY) },
	[T(SETXATTR_REQ)]     = { &cxfs__setxattr_req__descriptor, REQ, T(STATUS_REPLY) },
	[T(GETXATTR_REQ)]     = { &cxfs__getxattr_req__descriptor, REQ, T(XATTR_REPLY) },
	[T(LISTXATTR_REQ)]    = { &cxfs__listxattr_req__descriptor, REQ, T(XATTR_REPLY) },
	[T(REMOVEXATTR_REQ)]  = { &cxfs__removexattr_req__descriptor, REQ, T(STATUS_REPLY) },
	[T(FALLOCATE_REQ)]    = { &cxfs__fallocate_req__descriptor, REQ, T(ATTR_REPLY) },
	[T(LSEEK_REQ)]        = { &cxfs__lseek_req__descriptor, REQ, T(LSEEK_REPLY) },
	[T(GETLK_REQ)]        = { &cxfs__getlk_req__descriptor, REQ, T(LOCK_REPLY) },
	[T(SETLK_REQ)]        = { &cxfs__setlk_req__descriptor, REQ, T(STATUS_REPLY) },
	[T(FSYNC_REQ)]        = { &cxfs__fsync_req__descriptor, REQ, T(STATUS_REPLY) },

	[T(STATUS_REPLY)]     = { &cxfs__status_reply__descriptor, REP, 0 },
	[T(ATTR_REPLY)]       = { &cxfs__attr_reply__descriptor, REP, 0 },
	[T(READLINK_REPLY)]   = { &cxfs__readlink_reply__descriptor, REP, 0 },
	[T(READDIR_REPLY)]    = { &cxfs__readdir_reply__descriptor, REP, 0 },
	[T(STATFS_REPLY)]     = { &cxfs__statfs_reply__descriptor, REP, 0 },
	[T(XATTR_REPLY)]      = { &cxfs__xattr_reply__descriptor, REP, 0 },
	[T(LSEEK_REPLY)]      = { &cxfs__lseek_reply__descriptor, REP, 0 },
	[T(LOCK_REPLY)]       = { &cxfs__lock_reply__descriptor, REP, 0 },

	[T(TOKEN_ACQUIRE)]    = { &cxfs__token_acquire__descriptor, REQ, T(TOKEN_GRANT) },
	[T(TOKEN_GRANT)]      = { &cxfs__token_grant__descriptor, REP, 0 },
	[T(TOKEN_RECALL)]     = { &cxfs__token_recall__descriptor, REQ | ONE, T(TOKEN_RETURN) },
	[T(TOKEN_RETURN)]     = { &cxfs__token_return__descriptor, REQ | REP | ONE, T(STATUS_REPLY) },
	[T(TOKEN_LEND)]       = { &cxfs__token_lend__descriptor, REQ, T(STATUS_REPLY) },
	[T(IOEXCL_STATE)]     = { &cxfs__ioexcl_state__descriptor, ONE, 0 },

	[T(NAME_QUERY)]       = { &cxfs__name_query__descriptor, REQ, T(NAME_REPLY) },
	[T(NAME_REPLY)]       = { &cxfs__name_reply__descriptor, REP, 0 },

	[T(EXTENT_MAP_REQ)]   = { &cxfs__extent_map_req__descriptor, REQ, T(EXTENT_MAP_REPLY) },
	[T(EXTENT_MAP_REPLY)] = { &cxfs__extent_map_reply__descriptor, REP, 0 },
	[T(ALLOC_REQ)]        = { &cxfs__alloc_req__descriptor, REQ, T(ALLOC_REPLY) },
	[T(ALLOC_REPLY)]      = { &cxfs__alloc_reply__descriptor, REP, 0 },
	[T(WRITE_DONE)]       = { &cxfs__write_done__descriptor, REQ | ONE, T(ATTR_REPLY) },
	[T(INO_GRANT_REQ)]    = { &cxfs__ino_grant_req__descriptor, REQ, T(INO_GRANT_REPLY) },
	[T(INO_GRANT_REPLY)]  = { &cxfs__ino_grant_reply__descriptor, REP, 0 },
	[T(BATCH_REQ)]        = { &cxfs__batch_req__descriptor, REQ, T(BATCH_REPLY) },
	[T(BATCH_REPLY)]      = { &cxfs__batch_reply__descriptor, REP, 0 },

	[T(DM_REQUEST)]       = { &cxfs__dm_request__descriptor, REQ, T(DM_REPLY) },
	[T(DM_REPLY)]         = { &cxfs__dm_reply__descriptor, REP, 0 },

	[T(RELOC_REQ)]        = { &cxfs__reloc_req__descriptor, REQ, T(STATUS_REPLY) },

	[T(LEG_FAILED)]       = { &cxfs__leg_failed__descriptor, REQ, T(STATUS_REPLY) },
	[T(LEG_OUT)]          = { &cxfs__leg_out__descriptor, REQ, T(STATUS_REPLY) },
	[T(MIRROR_STATE)]     = { &cxfs__mirror_state__descriptor, REQ, T(STATUS_REPLY) },
	[T(DRL_RESYNC)]       = { &cxfs__drl_resync__descriptor, REQ, T(STATUS_REPLY) },
	[T(VOL_CHANGE)]       = { &cxfs__vol_change__descriptor, REQ, T(STATUS_REPLY) },
	[T(REPAIR_HINT)]      = { &cxfs__repair_hint__descriptor, ONE, 0 },
};

#define RPC__NMSGS (sizeof(rpc__msgs) / sizeof(rpc__msgs[0]))

static const struct rpc__msg_info *rpc__msg_info(uint32_t type)
{
	if (type >= RPC__NMSGS || !rpc__msgs[type].desc)
		return NULL;
	return &rpc__msgs[type];
}

const ProtobufCMessageDescriptor *rpc_msg_descriptor(Cxfs__MsgType type)
{
	const struct rpc__msg_info *mi = rpc__msg_info((uint32_t)type);

	return mi ? mi->desc : NULL;
}

Cxfs__MsgType rpc_msg_reply_type(Cxfs__MsgType type)
{
	const struct rpc__msg_info *mi = rpc__msg_info((uint32_t)type);

	return mi && (mi->kinds & REQ) ? mi->reply : 0;
}

unsigned rpc__msg_kinds(uint32_t type)
{
	const struct rpc__msg_info *mi = rpc__msg_info(type);

	return mi ? mi->kinds : 0;
}

/* ------------------------------------------------------------------ */
/* Packing and unpacking                                               */
/* ------------------------------------------------------------------ */

int64_t rpc_msg_pack(Cxfs__MsgType type, const ProtobufCMessage *msg, uint8_t *buf, size_t size)
{
	const struct rpc__msg_info *mi = rpc__msg_info((uint32_t)type);
	size_t need;

	/* protobuf_c_message_check() catches NULL required strings and
	 * sub-messages, which packing would dereference. */
	if (!mi || !msg || msg->descriptor != mi->desc || !protobuf_c_message_check(msg))
		return -EINVAL;
	need = protobuf_c_message_get_packed_size(msg);
	if (need > INT64_MAX)
		return -EINVAL;
	if (buf && need <= size)
		protobuf_c_message_pack(msg, buf);
	return (int64_t)need;
}

/*
 * The decode budget: a hostile payload of many tiny repeated sub-messages
 * would make protobuf-c allocate tens of bytes per byte of input.  Honest
 * messages need less than eight; sixteen times the payload plus a little
 * for the top-level structure is allowed.
 */
#define RPC__BUDGET_PER_BYTE 16
#define RPC__BUDGET_BASE (64u * 1024)

struct rpc__budget {
	size_t left;                /* bytes protobuf-c may still allocate */
};

static void *rpc__budget_alloc(void *data, size_t size)
{
	struct rpc__budget *b = data;

	if (size > b->left)
		return NULL;
	b->left -= size;
	return malloc(size ? size : 1);
}

static void rpc__budget_free(void *data, void *p)
{
	free(p);
}

int rpc_msg_unpack(Cxfs__MsgType type, const uint8_t *data, size_t len, ProtobufCMessage **out)
{
	const struct rpc__msg_info *mi = rpc__msg_info((uint32_t)type);
	struct rpc__budget b = { .left = RPC__BUDGET_BASE + RPC__BUDGET_PER_BYTE * len };
	ProtobufCAllocator a = { .alloc = rpc__budget_alloc, .free = rpc__budget_free,
				 .allocator_data = &b };
	ProtobufCMessage *m;

	if (!mi)
		return -EINVAL;
	if (len > RPC_MAX_PAYLOAD_LIMIT)
		return -EBADMSG;
	/* The budget allocator frees with free(), so the default allocator
	 * (malloc/free) releases the message later: rpc_msg_free(). */
	m = protobuf_c_message_unpack(mi->desc, &a, len, data);
	if (!m)
		return -EBADMSG;
	*out = m;
	return 0;
}

void rpc_msg_free(ProtobufCMessage *msg)
{
	if (msg)
		protobuf_c_message_free_unpacked(msg, NULL);
}

const char *rpc_drop_name(enum rpc_drop reason)
{
	static const char *const names[RPC_DROP__COUNT] = {
		[RPC_DROP_MAGIC] = "bad magic",
		[RPC_DROP_VERSION] = "protocol version",
		[RPC_DROP_HEADER] = "bad header",
		[RPC_DROP_OVERSIZE] = "oversize",
		[RPC_DROP_MAC] = "bad MAC",
		[RPC_DROP_TYPE] = "bad type",
		[RPC_DROP_DECODE] = "undecodable",
		[RPC_DROP_EPOCH] = "stale epoch",
		[RPC_DROP_HANDSHAKE] = "handshake",
		[RPC_DROP_UNEXPECTED] = "unexpected reply",
		[RPC_DROP_TRUNCATED] = "truncated",
		[RPC_DROP_REPLAY] = "replay",
		[RPC_DROP_CONNS] = "too many connections",
	};

	return (unsigned)reason < RPC_DROP__COUNT ? names[reason] : "?";
}

/* ------------------------------------------------------------------ */
/* Header and MAC                                                      */
/* ------------------------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void rpc__hdr_put(uint8_t out[RPC__HDR_SIZE], const struct rpc__hdr *h)
{
	put32(out + 0, h->magic);
	put16(out + 4, h->version);
	put16(out + 6, h->type);
	put16(out + 8, h->flags);
	put16(out + 10, h->reserved);
	put32(out + 12, h->len);
	put64(out + 16, h->id);
	put64(out + 24, h->epoch);
}

void rpc__hdr_get(const uint8_t in[RPC__HDR_SIZE], struct rpc__hdr *h)
{
	h->magic = get32(in + 0);
	h->version = get16(in + 4);
	h->type = get16(in + 6);
	h->flags = get16(in + 8);
	h->reserved = get16(in + 10);
	h->len = get32(in + 12);
	h->id = get64(in + 16);
	h->epoch = get64(in + 24);
}

int rpc__key_init(struct rpc__key *k, const uint8_t *secret, size_t len)
{
	if (!secret || len < RPC_SECRET_MIN)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;      /* libsodium could not initialise its CPU checks */
	crypto_auth_hmacsha256_init(&k->base, secret, len);
	return 0;
}

void rpc__key_wipe(struct rpc__key *k)
{
	sodium_memzero(k, sizeof(*k));
}

/* A frame's MAC: HMAC of its sequence number, header and payload. */
void rpc__mac(const struct rpc__key *k, uint64_t seq, const uint8_t *hdr, const uint8_t *payload,
	      size_t len, uint8_t mac[RPC__MAC_SIZE])
{
	crypto_auth_hmacsha256_state st = k->base;
	uint8_t s[8];

	if (seq != RPC__SEQ_NONE) {
		put64(s, seq);
		crypto_auth_hmacsha256_update(&st, s, sizeof(s));
	}
	crypto_auth_hmacsha256_update(&st, hdr, RPC__HDR_SIZE);
	if (len)
		crypto_auth_hmacsha256_update(&st, payload, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

int rpc__mac_verify(const struct rpc__key *k, uint64_t seq, const uint8_t *hdr,
		    const uint8_t *payload, size_t len, const uint8_t mac[RPC__MAC_SIZE])
{
	uint8_t want[RPC__MAC_SIZE];
	int rc;

	rpc__mac(k, seq, hdr, payload, len, want);
	rc = sodium_memcmp(want, mac, RPC__MAC_SIZE) == 0 ? 0 : -EBADMSG;
	sodium_memzero(want, sizeof(want));
	return rc;
}

/* One key of a connection: HMAC(prk, label), as the key of an HMAC state. */
static void rpc__subkey(const uint8_t prk[crypto_auth_hmacsha256_BYTES], const char *label,
			struct rpc__key *out)
{
	uint8_t k[crypto_auth_hmacsha256_BYTES];

	crypto_auth_hmacsha256(k, (const uint8_t *)label, strlen(label), prk);
	crypto_auth_hmacsha256_init(&out->base, k, sizeof(k));
	sodium_memzero(k, sizeof(k));
}

void rpc__conn_keys(const struct rpc__key *cluster, const uint8_t nc[RPC__NONCE_SIZE],
		    const uint8_t ns[RPC__NONCE_SIZE], struct rpc__key *c2s, struct rpc__key *s2c)
{
	static const char label[] = "cxfs rpc connection v2";
	crypto_auth_hmacsha256_state st = cluster->base;
	uint8_t prk[crypto_auth_hmacsha256_BYTES];

	crypto_auth_hmacsha256_update(&st, (const uint8_t *)label, sizeof(label) - 1);
	crypto_auth_hmacsha256_update(&st, nc, RPC__NONCE_SIZE);
	crypto_auth_hmacsha256_update(&st, ns, RPC__NONCE_SIZE);
	crypto_auth_hmacsha256_final(&st, prk);
	rpc__subkey(prk, "client to server", c2s);
	rpc__subkey(prk, "server to client", s2c);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(prk, sizeof(prk));
}

int rpc__frame_raw(const struct rpc__key *k, uint64_t seq, struct rpc__hdr *h,
		   const uint8_t *payload, size_t len, uint8_t **out, size_t *outlen)
{
	uint8_t *f;

	if (len > UINT32_MAX)
		return -EMSGSIZE;
	f = malloc(RPC__HDR_SIZE + len + RPC__MAC_SIZE);
	if (!f)
		return -ENOMEM;
	h->len = (uint32_t)len;
	rpc__hdr_put(f, h);
	if (len)
		memcpy(f + RPC__HDR_SIZE, payload, len);
	rpc__mac(k, seq, f, f + RPC__HDR_SIZE, len, f + RPC__HDR_SIZE + len);
	*out = f;
	*outlen = RPC__HDR_SIZE + len + RPC__MAC_SIZE;
	return 0;
}
