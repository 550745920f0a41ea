/*
 * rpc_i.h - internals of the rpc layer shared by its files (and its unit
 * test): the wire header, the MAC keys, and the message kind table.
 *
 * Wire format of one frame (all integers little-endian):
 *
 *   offset  size  field
 *        0     4  magic "CXFS" (0x53465843)
 *        4     2  protocol version (RPC_PROTO_VERSION)
 *        6     2  message type (enum Cxfs__MsgType)
 *        8     2  flags: exactly one of REQUEST, REPLY, ONEWAY
 *       10     2  reserved, zero
 *       12     4  payload length (at most the context's max_payload;
 *                 RPC__HELLO_MAX until the handshake is done)
 *       16     8  request id (the id being answered, for a reply; 0 one-way)
 *       24     8  membership epoch of the sender
 *       32     n  payload: the protobuf encoding of the message
 *     32+n    32  MAC: HMAC-SHA-256(key, seq || bytes [0, 32+n)), seq being
 *                 the frame's sequence number as 8 little-endian bytes (not
 *                 sent: both sides count); version 1: HMAC-SHA-256(secret,
 *                 bytes [0, 32+n))
 *
 * The handshake (version 2) and the keys:
 *
 *   connecting side (c)                      accepting side (s)
 *   HELLO {.., nonce Nc}        ------->     key: cluster secret, seq 0
 *                               <-------     HELLO_REPLY {.., nonce Ns,
 *                                              peer_nonce Nc}: secret, seq 0
 *   HELLO_DONE {}               ------->     key: Kcs, seq 1
 *   then frames c -> s with Kcs, seq 2, 3, ...; s -> c with Ksc, seq 1, 2, ...
 *
 *   PRK = HMAC(secret, "cxfs rpc connection v2" || Nc || Ns)
 *   Kcs = HMAC(PRK, "client to server"), Ksc = HMAC(PRK, "server to client")
 *
 * Nc and Ns are RPC__NONCE_SIZE random bytes (randombytes_buf) drawn for
 * each connection.  A HELLO recorded from an earlier connection and sent
 * again is answered with a new Ns: without the secret nobody can make the
 * HELLO_DONE of the new keys, so the connection is refused (RPC_DROP_REPLAY)
 * before it is taken for a node's.  A HELLO_REPLY is accepted only if it
 * echoes our Nc.  The sequence numbers make a frame replayed, dropped or
 * reordered within a connection fail its MAC.
 *
 * Version 1 (spoken while a member of the cluster speaks no more: see
 * rpc_ctx_set_level): HELLO and HELLO_REPLY without nonces, no HELLO_DONE,
 * every frame MAC'd with the cluster secret and no sequence number.
 */
#ifndef CXFS_RPC_I_H
#define CXFS_RPC_I_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "rpc/rpc.h"

#define RPC__MAGIC 0x53465843u
#define RPC__HDR_SIZE 32
#define RPC__MAC_SIZE crypto_auth_hmacsha256_BYTES
#define RPC__NONCE_SIZE 32
#define RPC__SEQ_NONE UINT64_MAX    /* version 1: no sequence number in the MAC */
#define RPC__HELLO_MAX 1024         /* payload bytes accepted before the handshake is done */

#define RPC__F_REQUEST 0x1
#define RPC__F_REPLY   0x2
#define RPC__F_ONEWAY  0x4

_Static_assert(RPC__MAC_SIZE == 32, "HMAC-SHA-256 tag is 32 bytes");

/* The header, decoded. */
struct rpc__hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint16_t flags;
	uint16_t reserved;
	uint32_t len;               /* payload bytes */
	uint64_t id;
	uint64_t epoch;
};

void rpc__hdr_put(uint8_t out[RPC__HDR_SIZE], const struct rpc__hdr *h);
void rpc__hdr_get(const uint8_t in[RPC__HDR_SIZE], struct rpc__hdr *h);

/* A MAC key: HMAC state after absorbing the key, copied per frame. */
struct rpc__key {
	crypto_auth_hmacsha256_state base;
};

/* The cluster secret's key: 0, or -EINVAL if shorter than RPC_SECRET_MIN. */
int rpc__key_init(struct rpc__key *k, const uint8_t *secret, size_t len);
void rpc__key_wipe(struct rpc__key *k);
/* The keys of a connection (see the top) from the cluster key and both nonces. */
void rpc__conn_keys(const struct rpc__key *cluster, const uint8_t nc[RPC__NONCE_SIZE],
		    const uint8_t ns[RPC__NONCE_SIZE], struct rpc__key *c2s, struct rpc__key *s2c);
/*
 * MAC of frame number @seq (RPC__SEQ_NONE: a version 1 frame): @hdr
 * (RPC__HDR_SIZE bytes) then @len bytes of @payload.
 */
void rpc__mac(const struct rpc__key *k, uint64_t seq, const uint8_t *hdr, const uint8_t *payload,
	      size_t len, uint8_t mac[RPC__MAC_SIZE]);
/* 0 if @mac is right (compared in constant time), -EBADMSG if not. */
int rpc__mac_verify(const struct rpc__key *k, uint64_t seq, const uint8_t *hdr,
		    const uint8_t *payload, size_t len, const uint8_t mac[RPC__MAC_SIZE]);

/*
 * Build a whole frame number @seq from @h (its len is set here) and
 * @payload into a new buffer of *@outlen bytes; the caller must free *@out.
 * 0 or -ENOMEM.
 */
int rpc__frame_raw(const struct rpc__key *k, uint64_t seq, struct rpc__hdr *h,
		   const uint8_t *payload, size_t len, uint8_t **out, size_t *outlen);

/* Kinds of a message type: a bit set of RPC__F_*; 0 for an unknown type. */
unsigned rpc__msg_kinds(uint32_t type);

#endif
