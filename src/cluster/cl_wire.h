/*
 * cl_wire.h - vnode operations on the wire: every metadata operation of
 * struct vn_call (src/vnode/vn.h) as the request and reply messages of
 * section 4 of proto/cxfs.proto, carried by src/rpc.
 *
 * A client node forwards an operation with clw_forward(), which encodes it,
 * waits for the reply and fills the call's outputs; the metadata server's
 * rpc handler hands each vnode-operation request to clw_serve(), which
 * checks and decodes it (everything that arrives is untrusted), runs it
 * through a callback and replies (stamped by cl_unsafe_stamp with what the
 * handler thread's current request learned).  The conversions of the shared pieces
 * (time stamps, attributes, credentials, token sets) are public here
 * because the other cluster files use them too.
 *
 * No locks and no state: every function works on its arguments only.
 */
#ifndef CXFS_CL_WIRE_H
#define CXFS_CL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto/cxfs.pb-c.h"
#include "rpc/rpc.h"
#include "token/tok.h"
#include "vnode/vn.h"

/* Bounds the server checks in requests (those of ext4 and Linux). */
#define CLW_NAME_MAX 255                /* bytes of a directory entry name */
#define CLW_SYMLINK_MAX 4095            /* bytes of a symlink target */
#define CLW_XATTR_NAME_MAX 255          /* bytes of an xattr name */
#define CLW_XATTR_SIZE_MAX 65536        /* bytes of an xattr value or list */
#define CLW_GROUPS_MAX 65536            /* supplementary groups of a credential */
#define CLW_READDIR_BYTES (32u * 1024)  /* bytes of names per readdir reply, about */
#define CLW_READDIR_ENTRIES 512         /* entries per readdir reply, at most */

/* ---- conversions -------------------------------------------------------- */

void clw_ts_to_pb(const struct timespec *ts, Cxfs__Timespec *pb);
/* NULL @pb gives zero; nsec above 999999999 is clamped to it. */
void clw_ts_from_pb(const Cxfs__Timespec *pb, struct timespec *ts);
/* @pb gets pointers into @ts (4 entries: atime, mtime, ctime, btime). */
void clw_attr_to_pb(const struct vn_attr *a, Cxfs__Attr *pb, Cxfs__Timespec ts[4]);
void clw_attr_from_pb(const Cxfs__Attr *pb, struct vn_attr *a);

/* @pb points at @cred's groups (if ngroups >= 0) and must not outlive them. */
void clw_cred_to_pb(const struct vn_cred *cred, Cxfs__Cred *pb);
/*
 * @cred points at @pb's groups and must not outlive @pb.  -EINVAL if @pb
 * is NULL or has more than CLW_GROUPS_MAX groups.
 */
int clw_cred_from_pb(const Cxfs__Cred *pb, struct vn_cred *cred);

/*
 * Token sets <-> repeated TokenState: @buf/@ptrs have TOK_NTOKENS entries;
 * one entry per token held above TOK_NONE.  Returns the count.
 */
size_t clw_toks_to_pb(const struct tok_set *set, Cxfs__TokenState *buf, Cxfs__TokenState **ptrs);
/* Fills @set (cleared first); -EBADMSG on an out-of-range token number or level. */
int clw_toks_from_pb(Cxfs__TokenState *const *v, size_t n, struct tok_set *set);

/* ---- client side -------------------------------------------------------- */

/*
 * How clw_forward makes each call: rpc_call's contract, with @arg (the
 * caller's: cl_unsafe_call gives store-changing requests their ids).
 */
typedef int (*clw_call_fn)(void *arg, struct rpc_chan *ch, Cxfs__MsgType type,
			   ProtobufCMessage *msg, unsigned timeout_ms, Cxfs__MsgType *reply_type,
			   ProtobufCMessage **reply);

/*
 * Send @c, an operation that enters at vnode @ino (the directory for
 * namespace ops, as in vn.h), as its request on @ch through @call(@arg, ...)
 * (NULL: rpc_call); wait at most
 * @timeout_ms (for each reply: a readdir may take several); fill the outputs
 * of @c from the reply (attr structs, readlink/getxattr/listxattr buffers,
 * lseek result, getlk lock, statfs, readdir entries through
 * c->u.readdir.fill).  c->cred (must not be NULL) is encoded, with its
 * groups if ngroups >= 0; c->lent (may be NULL) goes into the request's
 * `lent`.
 *
 * Returns what the operation returns on the server: 0, the byte count for
 * getxattr/listxattr (the size alone when asked with size 0), the length
 * of the target copied for readlink (truncated to fit, NUL-terminated,
 * -ERANGE with size 0, as the meta behavior does), or a negative errno from
 * the reply's err or an ERROR_REPLY.  A reply bigger than the caller's
 * xattr buffer gives -ERANGE.  Or the transport error of rpc_call
 * (-ETIMEDOUT, -RPC_EEARLY, -ECONNRESET, ...; a reply that makes no sense
 * gives -EPROTO): tell them apart with clw_transport_error().  Every
 * VN_OP except READ, WRITE and INACTIVE; those give -EINVAL.
 *
 * Readdir asks again from the last entry's next_off until the server says
 * eof or fill says full, and returns 0 (or the error of a later batch).
 */
int clw_forward(struct rpc_chan *ch, uint64_t ino, struct vn_call *c, unsigned timeout_ms,
		clw_call_fn call, void *arg);
/* Is @rc (from clw_forward) a transport failure rather than the operation's answer? */
bool clw_transport_error(int rc);

/* ---- server side -------------------------------------------------------- */

/* Is @type one of the vnode-op requests clw_serve() handles? */
bool clw_is_vnode_req(Cxfs__MsgType type);

/*
 * Run @c, decoded from a request, on vnode @ino: the server's way into its
 * vnode chain.  c->cred, c->lent and every pointer in c->u are valid only
 * during the call.  Returns what the operation returns.
 */
typedef int (*clw_exec_fn)(void *arg, uint64_t ino, struct vn_call *c);

/*
 * Check and decode request @msg of @type into a struct vn_call (cred, node
 * = @node, lent: NULL if the request lends nothing), call @exec(@arg, ino,
 * &call) and reply with the matching reply message (rpc_reply).  Readdir
 * runs @exec with a fill callback that collects up to
 * max_entries (clamped to CLW_READDIR_ENTRIES, which is also the default)
 * or about CLW_READDIR_BYTES of names; setlk runs with sleep = 0 and no
 * interrupted callback (the client retries blocking locks itself).
 * Returns 0 once it has replied (or rpc_reply's error), or before calling
 * @exec a negative errno if the request is malformed (the rpc pool then
 * replies ERROR_REPLY): -EINVAL, -ENAMETOOLONG (name or symlink target too
 * long), -ERANGE (xattr name too long), -E2BIG (xattr value too big),
 * -EBADMSG (bad token in lent), -ENOMEM.
 */
int clw_serve(struct rpc_req *req, Cxfs__MsgType type, const ProtobufCMessage *msg,
	      uint32_t node, clw_exec_fn exec, void *arg);

#endif
