/*
 * cl_wire.c - vnode operations on the wire: struct vn_call <-> the messages
 * of section 4 of proto/cxfs.proto (see cl_wire.h).
 *
 * Sections:
 *   1. Conversions of the shared pieces (time stamps, attributes,
 *      credentials, locks, token sets, error codes).
 *   2. Client: one encoder per request, one result function per reply that
 *      fills the call's outputs.
 *   3. Server: one decoder per request (every check of untrusted input is
 *      there), the readdir collector, one builder per reply.
 *   4. The table of operations and the entry points.
 *
 * Messages are built on the stack (or in a per-call struct) with their INIT
 * values and point into the caller's data; nothing here outlives a call.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cluster/cl_wire.h"
#include "cluster/cl_unsafe.h"

/* Every VN_SET_* bit. */
#define CLW__SET_ALL (VN_SET_MODE | VN_SET_UID | VN_SET_GID | VN_SET_SIZE | VN_SET_ATIME | \
		      VN_SET_MTIME | VN_SET_ATIME_NOW | VN_SET_MTIME_NOW | VN_SET_CTIME)
/* A reply's err beyond this is nonsense (errnos and the internal 41xx codes are below). */
#define CLW__ERR_LIMIT 65536

/* ------------------------------------------------------------------ */
/* 1. Conversions                                                      */
/* ------------------------------------------------------------------ */

void clw_ts_to_pb(const struct timespec *ts, Cxfs__Timespec *pb)
{
	cxfs__timespec__init(pb);
	pb->sec = ts->tv_sec;
	pb->nsec = (uint32_t)ts->tv_nsec;
}

void clw_ts_from_pb(const Cxfs__Timespec *pb, struct timespec *ts)
{
	if (!pb) {
		ts->tv_sec = 0;
		ts->tv_nsec = 0;
		return;
	}
	ts->tv_sec = (time_t)pb->sec;
	ts->tv_nsec = pb->nsec < 1000000000u ? (long)pb->nsec : 999999999L;
}

void clw_attr_to_pb(const struct vn_attr *a, Cxfs__Attr *pb, Cxfs__Timespec ts[4])
{
	cxfs__attr__init(pb);
	pb->ino = a->ino;
	pb->gen = a->gen;
	pb->mode = a->mode;
	pb->nlink = a->nlink;
	pb->uid = a->uid;
	pb->gid = a->gid;
	pb->rdev = a->rdev;
	pb->size = a->size;
	pb->blocks = a->blocks;
	clw_ts_to_pb(&a->atime, &ts[0]);
	clw_ts_to_pb(&a->mtime, &ts[1]);
	clw_ts_to_pb(&a->ctime, &ts[2]);
	clw_ts_to_pb(&a->btime, &ts[3]);
	pb->atime = &ts[0];
	pb->mtime = &ts[1];
	pb->ctime = &ts[2];
	pb->btime = &ts[3];
}

void clw_attr_from_pb(const Cxfs__Attr *pb, struct vn_attr *a)
{
	a->ino = pb->ino;
	a->gen = pb->gen;
	a->mode = pb->mode;
	a->nlink = pb->nlink;
	a->uid = pb->uid;
	a->gid = pb->gid;
	a->rdev = pb->rdev;
	a->size = pb->size;
	a->blocks = pb->blocks;
	clw_ts_from_pb(pb->atime, &a->atime);
	clw_ts_from_pb(pb->mtime, &a->mtime);
	clw_ts_from_pb(pb->ctime, &a->ctime);
	clw_ts_from_pb(pb->btime, &a->btime);
}

void clw_cred_to_pb(const struct vn_cred *cred, Cxfs__Cred *pb)
{
	cxfs__cred__init(pb);
	pb->uid = cred->uid;
	pb->gid = cred->gid;
	pb->pid = cred->pid;
	pb->has_groups_known = 1;
	pb->groups_known = cred->ngroups >= 0;
	if (cred->ngroups > 0) {
		/* Packing only reads the groups. */
		pb->n_groups = (size_t)cred->ngroups;
		pb->groups = (uint32_t *)cred->groups;
	}
}

int clw_cred_from_pb(const Cxfs__Cred *pb, struct vn_cred *cred)
{
	if (!pb || pb->n_groups > CLW_GROUPS_MAX)
		return -EINVAL;
	cred->uid = pb->uid;
	cred->gid = pb->gid;
	cred->pid = pb->pid;
	cred->ngroups = pb->groups_known ? (int)pb->n_groups : -1;
	cred->groups = pb->groups;
	return 0;
}

static void clw__flock_to_pb(const struct vn_flock *lk, Cxfs__Flock *pb)
{
	cxfs__flock__init(pb);
	pb->type = lk->type;
	pb->start = lk->start;
	pb->end = lk->end;
	pb->owner = lk->owner;
	pb->pid = lk->pid;
	pb->has_is_flock = 1;
	pb->is_flock = lk->is_flock != 0;
}

/* -EINVAL (and @lk untouched) unless @pb is a lock of a known type and a sane range. */
static int clw__flock_from_pb(const Cxfs__Flock *pb, struct vn_flock *lk)
{
	if (!pb || (pb->type != F_RDLCK && pb->type != F_WRLCK && pb->type != F_UNLCK) ||
	    pb->start > pb->end)
		return -EINVAL;
	lk->type = (short)pb->type;
	lk->start = pb->start;
	lk->end = pb->end;
	lk->owner = pb->owner;
	lk->pid = pb->pid;
	lk->is_flock = pb->is_flock;
	return 0;
}

size_t clw_toks_to_pb(const struct tok_set *set, Cxfs__TokenState *buf, Cxfs__TokenState **ptrs)
{
	size_t n = 0;

	for (unsigned t = 0; t < TOK_NTOKENS; t++) {
		if (set->level[t] == TOK_NONE)
			continue;
		cxfs__token_state__init(&buf[n]);
		buf[n].token = t;
		buf[n].level = (Cxfs__TokenLevel)set->level[t];
		ptrs[n] = &buf[n];
		n++;
	}
	return n;
}

int clw_toks_from_pb(Cxfs__TokenState *const *v, size_t n, struct tok_set *set)
{
	tok_set_clear(set);
	for (size_t i = 0; i < n; i++) {
		if (v[i]->token >= TOK_NTOKENS || (unsigned)v[i]->level >= TOK_NLEVELS)
			return -EBADMSG;
		tok_set_add(set, (enum tok_id)v[i]->token, (enum tok_level)v[i]->level);
	}
	return 0;
}

/* The result a reply's err field says: 0 or a negative errno, -EPROTO for nonsense. */
static int clw__err(int32_t err)
{
	return err <= 0 && err > -CLW__ERR_LIMIT ? err : -EPROTO;
}

/* The err field of a reply to an operation that returned @rc. */
static int32_t clw__rc_err(int rc)
{
	return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------ */
/* 2. Client                                                           */
/* ------------------------------------------------------------------ */

/* Everything one request points into. */
struct clw__creq {
	Cxfs__Cred cred;
	Cxfs__TokenState tok[TOK_NTOKENS];     /* lent tokens */
	Cxfs__TokenState *tokp[TOK_NTOKENS];
	size_t ntok;
	Cxfs__Attr attr;                        /* setattr */
	Cxfs__Timespec ts[4];
	Cxfs__Flock lock;                       /* getlk, setlk */
	uint64_t lent_inos[2];                  /* unlink, rename */
	union {
		Cxfs__GetattrReq getattr;
		Cxfs__SetattrReq setattr;
		Cxfs__LookupReq lookup;
		Cxfs__MknodReq mknod;
		Cxfs__LinkReq link;
		Cxfs__UnlinkReq unlink;
		Cxfs__RenameReq rename;
		Cxfs__ReadlinkReq readlink;
		Cxfs__OpenReq open;
		Cxfs__ReleaseReq release;
		Cxfs__ReaddirReq readdir;
		Cxfs__StatfsReq statfs;
		Cxfs__SetxattrReq setxattr;
		Cxfs__GetxattrReq getxattr;
		Cxfs__ListxattrReq listxattr;
		Cxfs__RemovexattrReq removexattr;
		Cxfs__FallocateReq fallocate;
		Cxfs__LseekReq lseek;
		Cxfs__GetlkReq getlk;
		Cxfs__SetlkReq setlk;
		Cxfs__FsyncReq fsync;
	} m;                                    /* the request itself */
};

/* The fields every request starts with. */
#define CLW__HDR_OUT(m, q, i) \
	((m)->ino = (i), (m)->cred = &(q)->cred, (m)->n_lent = (q)->ntok, (m)->lent = (q)->tokp)

/* An xattr size as the request carries it (the server allows no more). */
static uint32_t clw__xattr_size(size_t size)
{
	return size < CLW_XATTR_SIZE_MAX ? (uint32_t)size : CLW_XATTR_SIZE_MAX;
}

/* Encoders: build the request of @c entering at @ino in @q (protobuf-c
 * strings and bytes are not const, but packing only reads them). */

static ProtobufCMessage *clw__enc_getattr(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__GetattrReq *m = &q->m.getattr;

	cxfs__getattr_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	return &m->base;
}

static ProtobufCMessage *clw__enc_setattr(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__SetattrReq *m = &q->m.setattr;

	cxfs__setattr_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->mask = (uint32_t)c->u.setattr.mask;
	clw_attr_to_pb(c->u.setattr.in, &q->attr, q->ts);
	m->attr = &q->attr;
	return &m->base;
}

static ProtobufCMessage *clw__enc_lookup(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__LookupReq *m = &q->m.lookup;

	cxfs__lookup_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->name = (char *)c->u.lookup.name;
	return &m->base;
}

static ProtobufCMessage *clw__enc_mknod(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__MknodReq *m = &q->m.mknod;

	cxfs__mknod_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->name = (char *)c->u.mknod.name;
	m->mode = c->u.mknod.mode;
	m->has_rdev = 1;
	m->rdev = c->u.mknod.rdev;
	if (S_ISLNK(c->u.mknod.mode))
		m->target = (char *)c->u.mknod.target;
	return &m->base;
}

static ProtobufCMessage *clw__enc_link(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__LinkReq *m = &q->m.link;

	cxfs__link_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->target_ino = c->u.link.ino;
	m->name = (char *)c->u.link.name;
	return &m->base;
}

/* The inodes besides the directories whose tokens the request lends. */
static void clw__lent_inos_out(struct clw__creq *q, size_t *n, uint64_t **v, const struct vn_call *c)
{
	*n = 0;
	for (int i = 0; i < 2; i++)
		if (c->lent_inos[i])
			q->lent_inos[(*n)++] = c->lent_inos[i];
	*v = q->lent_inos;
}

static void clw__lent_inos_in(struct vn_call *c, const uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n && i < 2; i++)
		c->lent_inos[i] = v[i];
}

static ProtobufCMessage *clw__enc_unlink(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__UnlinkReq *m = &q->m.unlink;

	cxfs__unlink_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->name = (char *)c->u.unlink.name;
	m->has_is_dir = 1;
	m->is_dir = c->u.unlink.is_dir != 0;
	clw__lent_inos_out(q, &m->n_lent_inos, &m->lent_inos, c);
	return &m->base;
}

static ProtobufCMessage *clw__enc_rename(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__RenameReq *m = &q->m.rename;

	cxfs__rename_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->name = (char *)c->u.rename.name;
	m->newdir = c->u.rename.newdir;
	m->newname = (char *)c->u.rename.newname;
	m->has_flags = 1;
	m->flags = c->u.rename.flags;
	clw__lent_inos_out(q, &m->n_lent_inos, &m->lent_inos, c);
	return &m->base;
}

static ProtobufCMessage *clw__enc_readlink(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__ReadlinkReq *m = &q->m.readlink;

	cxfs__readlink_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	return &m->base;
}

static ProtobufCMessage *clw__enc_open(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__OpenReq *m = &q->m.open;

	cxfs__open_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->flags = c->u.open.flags;
	return &m->base;
}

static ProtobufCMessage *clw__enc_release(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__ReleaseReq *m = &q->m.release;

	cxfs__release_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->has_lock_owner = 1;
	m->lock_owner = c->u.release.lock_owner;
	m->has_flock_release = 1;
	m->flock_release = c->u.release.flock_release != 0;
	return &m->base;
}

static ProtobufCMessage *clw__enc_readdir(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__ReaddirReq *m = &q->m.readdir;

	cxfs__readdir_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->off = c->u.readdir.off;
	m->has_plus = 1;
	m->plus = c->u.readdir.plus != 0;
	m->has_bucket = c->u.readdir.bucket != 0;
	m->bucket = c->u.readdir.bucket;
	return &m->base;
}

static ProtobufCMessage *clw__enc_statfs(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__StatfsReq *m = &q->m.statfs;

	cxfs__statfs_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	return &m->base;
}

static ProtobufCMessage *clw__enc_setxattr(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__SetxattrReq *m = &q->m.setxattr;

	cxfs__setxattr_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->name = (char *)c->u.setxattr.name;
	m->value.data = (uint8_t *)c->u.setxattr.value;
	m->value.len = c->u.setxattr.size;
	m->has_flags = 1;
	m->flags = c->u.setxattr.flags;
	return &m->base;
}

static ProtobufCMessage *clw__enc_getxattr(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__GetxattrReq *m = &q->m.getxattr;

	cxfs__getxattr_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->name = (char *)c->u.getxattr.name;
	m->size = clw__xattr_size(c->u.getxattr.size);
	return &m->base;
}

static ProtobufCMessage *clw__enc_listxattr(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__ListxattrReq *m = &q->m.listxattr;

	cxfs__listxattr_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->size = clw__xattr_size(c->u.listxattr.size);
	return &m->base;
}

static ProtobufCMessage *clw__enc_removexattr(struct clw__creq *q, uint64_t ino,
					       const struct vn_call *c)
{
	Cxfs__RemovexattrReq *m = &q->m.removexattr;

	cxfs__removexattr_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->name = (char *)c->u.removexattr.name;
	return &m->base;
}

static ProtobufCMessage *clw__enc_fallocate(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__FallocateReq *m = &q->m.fallocate;

	cxfs__fallocate_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->mode = c->u.fallocate.mode;
	m->off = c->u.fallocate.off;
	m->len = c->u.fallocate.len;
	return &m->base;
}

static ProtobufCMessage *clw__enc_lseek(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__LseekReq *m = &q->m.lseek;

	cxfs__lseek_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->off = c->u.lseek.off;
	m->whence = c->u.lseek.whence;
	return &m->base;
}

static ProtobufCMessage *clw__enc_getlk(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__GetlkReq *m = &q->m.getlk;

	cxfs__getlk_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	clw__flock_to_pb(c->u.getlk.lk, &q->lock);
	m->lock = &q->lock;
	return &m->base;
}

static ProtobufCMessage *clw__enc_setlk(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__SetlkReq *m = &q->m.setlk;

	cxfs__setlk_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	clw__flock_to_pb(c->u.setlk.lk, &q->lock);
	m->lock = &q->lock;
	m->has_sleep = 1;
	m->sleep = c->u.setlk.sleep != 0;
	return &m->base;
}

static ProtobufCMessage *clw__enc_fsync(struct clw__creq *q, uint64_t ino, const struct vn_call *c)
{
	Cxfs__FsyncReq *m = &q->m.fsync;

	cxfs__fsync_req__init(m);
	CLW__HDR_OUT(m, q, ino);
	m->has_datasync = 1;
	m->datasync = c->u.fsync.datasync != 0;
	return &m->base;
}

/* Result functions: fill the outputs of @c from reply @rep; the call's result. */

/* A namespace operation's reply may carry its directory's new attributes. */
static void clw__dir_attr_in(struct vn_call *c, const Cxfs__Attr *pb)
{
	if (pb && c->dir_attr) {
		clw_attr_from_pb(pb, c->dir_attr);
		c->dir_attr_set = 1;
	}
}

static int clw__res_status(struct vn_call *c, const ProtobufCMessage *rep)
{
	const Cxfs__StatusReply *r = (const Cxfs__StatusReply *)rep;
	int rc = clw__err(r->err);

	if (!rc)
		clw__dir_attr_in(c, r->dir_attr);
	return rc;
}

/* Where the attributes of an ATTR_REPLY go: NULL for open and fallocate. */
static struct vn_attr *clw__attr_out(struct vn_call *c)
{
	switch (c->op) {
	case VN_OP_GETATTR:
		return c->u.getattr.attr;
	case VN_OP_SETATTR:
		return c->u.setattr.attr;
	case VN_OP_LOOKUP:
		return c->u.lookup.attr;
	case VN_OP_MKNOD:
		return c->u.mknod.attr;
	case VN_OP_LINK:
		return c->u.link.attr;
	default:
		return NULL;
	}
}

static int clw__res_attr(struct vn_call *c, const ProtobufCMessage *rep)
{
	const Cxfs__AttrReply *r = (const Cxfs__AttrReply *)rep;
	struct vn_attr *out = clw__attr_out(c);
	int rc = clw__err(r->err);

	if (rc || !out)
		return rc;
	if (!r->attr)
		return -EPROTO;
	clw_attr_from_pb(r->attr, out);
	clw__dir_attr_in(c, r->dir_attr);
	return 0;
}

static int clw__res_readlink(struct vn_call *c, const ProtobufCMessage *rep)
{
	const Cxfs__ReadlinkReply *r = (const Cxfs__ReadlinkReply *)rep;
	size_t size = c->u.readlink.size, len;
	int rc = clw__err(r->err);

	if (rc)
		return rc;
	if (!r->target)
		return -EPROTO;
	if (size == 0)
		return -ERANGE;
	len = strnlen(r->target, size - 1);
	memcpy(c->u.readlink.buf, r->target, len);
	c->u.readlink.buf[len] = '\0';
	return (int)len;
}

/* Results of one readdir batch (the internal protocol of clw__forward_readdir). */
enum { CLW__DIR_MORE = 0, CLW__DIR_DONE = 1 };

/*
 * Hand one batch of entries to the caller's fill; c->u.readdir.off moves
 * past each entry filled.  CLW__DIR_DONE at eof or when fill is full,
 * CLW__DIR_MORE to ask again, or a negative errno.
 */
static int clw__res_readdir(struct vn_call *c, const ProtobufCMessage *rep)
{
	const Cxfs__ReaddirReply *r = (const Cxfs__ReaddirReply *)rep;
	int rc = clw__err(r->err);
	struct vn_attr a;

	if (rc)
		return rc;
	for (size_t i = 0; i < r->n_entries; i++) {
		const Cxfs__DirEntry *e = r->entries[i];

		if (e->attr) {
			clw_attr_from_pb(e->attr, &a);
		} else {
			memset(&a, 0, sizeof(a));
			a.ino = e->ino;
			a.mode = e->mode;
		}
		if (c->u.readdir.fill(c->u.readdir.ctx, e->name, &a, e->next_off))
			return CLW__DIR_DONE;
		c->u.readdir.off = e->next_off;
	}
	if (r->eof)
		return CLW__DIR_DONE;
	/* Not at the end yet nothing to go on from: asking again would loop. */
	return r->n_entries ? CLW__DIR_MORE : -EPROTO;
}

static int clw__res_statfs(struct vn_call *c, const ProtobufCMessage *rep)
{
	const Cxfs__StatfsReply *r = (const Cxfs__StatfsReply *)rep;
	struct statvfs *sv = c->u.statfs.st;
	int rc = clw__err(r->err);

	if (rc)
		return rc;
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = (unsigned long)r->bsize;
	sv->f_frsize = (unsigned long)r->frsize;
	sv->f_blocks = (fsblkcnt_t)r->blocks;
	sv->f_bfree = (fsblkcnt_t)r->bfree;
	sv->f_bavail = (fsblkcnt_t)r->bavail;
	sv->f_files = (fsfilcnt_t)r->files;
	sv->f_ffree = (fsfilcnt_t)r->ffree;
	sv->f_favail = (fsfilcnt_t)r->favail;
	sv->f_namemax = (unsigned long)r->namemax;
	return 0;
}

/* An XATTR_REPLY into @buf of @size bytes: the byte count (the size alone if @size is 0). */
static int clw__xattr_copy(const ProtobufCMessage *rep, void *buf, size_t size)
{
	const Cxfs__XattrReply *r = (const Cxfs__XattrReply *)rep;
	int rc = clw__err(r->err);

	if (rc)
		return rc;
	if (size == 0)
		return r->has_size && r->size <= INT_MAX ? (int)r->size : -EPROTO;
	if (!r->has_value)
		return -EPROTO;
	if (r->value.len > size)
		return -ERANGE;
	if (r->value.len)
		memcpy(buf, r->value.data, r->value.len);
	return (int)r->value.len;
}

static int clw__res_getxattr(struct vn_call *c, const ProtobufCMessage *rep)
{
	return clw__xattr_copy(rep, c->u.getxattr.buf, c->u.getxattr.size);
}

static int clw__res_listxattr(struct vn_call *c, const ProtobufCMessage *rep)
{
	return clw__xattr_copy(rep, c->u.listxattr.buf, c->u.listxattr.size);
}

static int clw__res_lseek(struct vn_call *c, const ProtobufCMessage *rep)
{
	const Cxfs__LseekReply *r = (const Cxfs__LseekReply *)rep;
	int rc = clw__err(r->err);

	if (rc)
		return rc;
	if (!r->has_off)
		return -EPROTO;
	c->u.lseek.result = r->off;
	return 0;
}

static int clw__res_lock(struct vn_call *c, const ProtobufCMessage *rep)
{
	const Cxfs__LockReply *r = (const Cxfs__LockReply *)rep;
	int rc = clw__err(r->err);

	if (rc)
		return rc;
	return clw__flock_from_pb(r->lock, c->u.getlk.lk) ? -EPROTO : 0;
}

/* ------------------------------------------------------------------ */
/* 3. Server                                                           */
/* ------------------------------------------------------------------ */

/* The entries of one readdir reply, collected by clw__dir_fill(). */
struct clw__dir {
	Cxfs__DirEntry *ents;       /* max entries */
	Cxfs__DirEntry **ptrs;      /* max entries, into ents */
	Cxfs__Attr *attrs;          /* max entries with plus, else NULL */
	Cxfs__Timespec *ts;         /* 4 per attrs entry */
	char *names;                /* CLW_READDIR_BYTES of NUL-terminated names */
	size_t n, max;              /* entries collected, and the most allowed */
	size_t used;                /* bytes of names used */
	int full;                   /* fill refused an entry: not at eof */
};

/* One request being served: the call and everything it points into. */
struct clw__sreq {
	struct vn_call call;
	uint64_t ino;               /* the vnode it enters at */
	struct vn_cred cred;        /* groups point into the request */
	struct tok_set lent;
	struct vn_attr in;          /* setattr's new values */
	struct vn_attr attr;        /* the result of an attribute operation */
	int want_attr;              /* the ATTR_REPLY carries attr */
	struct vn_attr dattr;       /* namespace ops: the directory afterwards */
	struct vn_flock lk;         /* getlk, setlk */
	struct statvfs sv;          /* statfs */
	char *buf;                  /* readlink target, xattr value or list; malloc'ed */
	size_t size;                /* bytes of buf (0: an xattr size alone is asked) */
	struct clw__dir dir;        /* readdir */
};

/* The fields every request starts with: ino, cred, lent. */
static int clw__hdr_in(struct clw__sreq *s, uint64_t ino, const Cxfs__Cred *cred,
		       Cxfs__TokenState *const *lent, size_t n_lent)
{
	int rc = clw_cred_from_pb(cred, &s->cred);

	if (rc)
		return rc;
	s->ino = ino;
	s->call.cred = &s->cred;
	if (n_lent) {
		rc = clw_toks_from_pb(lent, n_lent, &s->lent);
		if (rc)
			return rc;
		s->call.lent = &s->lent;
	}
	return 0;
}

#define CLW__HDR_IN(s, m) clw__hdr_in((s), (m)->ino, (m)->cred, (m)->lent, (m)->n_lent)

/*
 * @name must be at most @max bytes: else @toolong.  (protobuf-c ends each
 * string at its first NUL, so a NUL inside a name only shortens it.)
 */
static int clw__name_ok(const char *name, size_t max, int toolong)
{
	if (!name)
		return -EINVAL;
	return strnlen(name, max + 1) > max ? toolong : 0;
}

static int clw__entry_name_ok(const char *name)
{
	return clw__name_ok(name, CLW_NAME_MAX, -ENAMETOOLONG);
}

/* A reply buffer of @size bytes, at most CLW_XATTR_SIZE_MAX (none for 0). */
static int clw__buf_alloc(struct clw__sreq *s, size_t size)
{
	s->size = size < CLW_XATTR_SIZE_MAX ? size : CLW_XATTR_SIZE_MAX;
	if (s->size == 0)
		return 0;
	s->buf = malloc(s->size);
	return s->buf ? 0 : -ENOMEM;
}

/* Decoders: check request @msg and set up s->call; a negative errno if malformed. */

static int clw__dec_getattr(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__GetattrReq *m = (const Cxfs__GetattrReq *)msg;

	s->call.u.getattr.attr = &s->attr;
	s->want_attr = 1;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_setattr(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__SetattrReq *m = (const Cxfs__SetattrReq *)msg;

	if ((m->mask & ~(uint32_t)CLW__SET_ALL) || !m->attr)
		return -EINVAL;
	clw_attr_from_pb(m->attr, &s->in);
	s->call.u.setattr.in = &s->in;
	s->call.u.setattr.mask = (int)m->mask;
	s->call.u.setattr.attr = &s->attr;
	s->want_attr = 1;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_lookup(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__LookupReq *m = (const Cxfs__LookupReq *)msg;
	int rc = clw__entry_name_ok(m->name);

	if (rc)
		return rc;
	s->call.u.lookup.name = m->name;
	s->call.u.lookup.attr = &s->attr;
	s->want_attr = 1;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_mknod(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__MknodReq *m = (const Cxfs__MknodReq *)msg;
	int rc = clw__entry_name_ok(m->name);

	if (!rc && S_ISLNK(m->mode))
		rc = clw__name_ok(m->target, CLW_SYMLINK_MAX, -ENAMETOOLONG);
	if (rc)
		return rc;
	s->call.u.mknod.name = m->name;
	s->call.u.mknod.mode = m->mode;
	s->call.u.mknod.rdev = m->rdev;
	s->call.u.mknod.target = S_ISLNK(m->mode) ? m->target : NULL;
	s->call.u.mknod.attr = &s->attr;
	s->want_attr = 1;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_link(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__LinkReq *m = (const Cxfs__LinkReq *)msg;
	int rc = clw__entry_name_ok(m->name);

	if (rc)
		return rc;
	s->call.u.link.ino = m->target_ino;
	s->call.u.link.name = m->name;
	s->call.u.link.attr = &s->attr;
	s->want_attr = 1;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_unlink(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__UnlinkReq *m = (const Cxfs__UnlinkReq *)msg;
	int rc = clw__entry_name_ok(m->name);

	if (rc)
		return rc;
	s->call.u.unlink.name = m->name;
	s->call.u.unlink.is_dir = m->is_dir;
	clw__lent_inos_in(&s->call, m->lent_inos, m->n_lent_inos);
	return CLW__HDR_IN(s, m);
}

static int clw__dec_rename(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__RenameReq *m = (const Cxfs__RenameReq *)msg;
	int rc = clw__entry_name_ok(m->name);

	if (!rc)
		rc = clw__entry_name_ok(m->newname);
	if (rc)
		return rc;
	if (m->flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	s->call.u.rename.name = m->name;
	s->call.u.rename.newdir = m->newdir;
	s->call.u.rename.newname = m->newname;
	s->call.u.rename.flags = m->flags;
	clw__lent_inos_in(&s->call, m->lent_inos, m->n_lent_inos);
	return CLW__HDR_IN(s, m);
}

static int clw__dec_readlink(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__ReadlinkReq *m = (const Cxfs__ReadlinkReq *)msg;

	s->size = CLW_SYMLINK_MAX + 1;
	s->buf = malloc(s->size);
	if (!s->buf)
		return -ENOMEM;
	s->call.u.readlink.buf = s->buf;
	s->call.u.readlink.size = s->size;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_open(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__OpenReq *m = (const Cxfs__OpenReq *)msg;

	s->call.u.open.flags = m->flags;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_release(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__ReleaseReq *m = (const Cxfs__ReleaseReq *)msg;

	s->call.u.release.lock_owner = m->lock_owner;
	s->call.u.release.flock_release = m->flock_release;
	return CLW__HDR_IN(s, m);
}

/* The readdir fill callback of the server: 1 (entry refused) once the reply is full. */
static int clw__dir_fill(void *ctx, const char *name, const struct vn_attr *attr, int64_t next_off)
{
	struct clw__dir *d = ctx;
	size_t len = strlen(name) + 1;
	Cxfs__DirEntry *e;

	if (d->n == d->max || d->used + len > CLW_READDIR_BYTES) {
		d->full = 1;
		return 1;
	}
	e = &d->ents[d->n];
	cxfs__dir_entry__init(e);
	e->name = memcpy(d->names + d->used, name, len);
	d->used += len;
	e->next_off = next_off;
	e->ino = attr->ino;
	e->mode = attr->mode;
	if (d->attrs) {
		clw_attr_to_pb(attr, &d->attrs[d->n], &d->ts[4 * d->n]);
		e->attr = &d->attrs[d->n];
	}
	d->ptrs[d->n++] = e;
	return 0;
}

static int clw__dec_readdir(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__ReaddirReq *m = (const Cxfs__ReaddirReq *)msg;
	struct clw__dir *d = &s->dir;

	d->max = m->max_entries && m->max_entries < CLW_READDIR_ENTRIES ? m->max_entries
									: CLW_READDIR_ENTRIES;
	d->ents = calloc(d->max, sizeof(*d->ents));
	d->ptrs = calloc(d->max, sizeof(*d->ptrs));
	d->names = malloc(CLW_READDIR_BYTES);
	if (m->plus) {
		d->attrs = calloc(d->max, sizeof(*d->attrs));
		d->ts = calloc(4 * d->max, sizeof(*d->ts));
	}
	if (!d->ents || !d->ptrs || !d->names || (m->plus && (!d->attrs || !d->ts)))
		return -ENOMEM;
	s->call.u.readdir.off = m->off;
	s->call.u.readdir.plus = m->plus;
	s->call.u.readdir.bucket = m->has_bucket ? m->bucket : 0;
	s->call.u.readdir.fill = clw__dir_fill;
	s->call.u.readdir.ctx = d;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_statfs(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__StatfsReq *m = (const Cxfs__StatfsReq *)msg;

	s->call.u.statfs.st = &s->sv;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_setxattr(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__SetxattrReq *m = (const Cxfs__SetxattrReq *)msg;
	int rc = clw__name_ok(m->name, CLW_XATTR_NAME_MAX, -ERANGE);

	if (rc)
		return rc;
	if (m->value.len > CLW_XATTR_SIZE_MAX)
		return -E2BIG;
	if (m->flags & ~(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	s->call.u.setxattr.name = m->name;
	/* protobuf-c gives an empty value no data; the local path never passes NULL. */
	s->call.u.setxattr.value = m->value.len ? m->value.data : (const void *)"";
	s->call.u.setxattr.size = m->value.len;
	s->call.u.setxattr.flags = m->flags;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_getxattr(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__GetxattrReq *m = (const Cxfs__GetxattrReq *)msg;
	int rc = clw__name_ok(m->name, CLW_XATTR_NAME_MAX, -ERANGE);

	if (!rc)
		rc = clw__buf_alloc(s, m->size);
	if (rc)
		return rc;
	s->call.u.getxattr.name = m->name;
	s->call.u.getxattr.buf = s->buf;
	s->call.u.getxattr.size = s->size;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_listxattr(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__ListxattrReq *m = (const Cxfs__ListxattrReq *)msg;
	int rc = clw__buf_alloc(s, m->size);

	if (rc)
		return rc;
	s->call.u.listxattr.buf = s->buf;
	s->call.u.listxattr.size = s->size;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_removexattr(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__RemovexattrReq *m = (const Cxfs__RemovexattrReq *)msg;
	int rc = clw__name_ok(m->name, CLW_XATTR_NAME_MAX, -ERANGE);

	if (rc)
		return rc;
	s->call.u.removexattr.name = m->name;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_fallocate(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__FallocateReq *m = (const Cxfs__FallocateReq *)msg;

	s->call.u.fallocate.mode = m->mode;
	s->call.u.fallocate.off = m->off;
	s->call.u.fallocate.len = m->len;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_lseek(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__LseekReq *m = (const Cxfs__LseekReq *)msg;

	if (m->whence != SEEK_DATA && m->whence != SEEK_HOLE)
		return -EINVAL;
	s->call.u.lseek.off = m->off;
	s->call.u.lseek.whence = m->whence;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_getlk(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__GetlkReq *m = (const Cxfs__GetlkReq *)msg;
	int rc = clw__flock_from_pb(m->lock, &s->lk);

	if (rc)
		return rc;
	s->call.u.getlk.lk = &s->lk;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_setlk(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__SetlkReq *m = (const Cxfs__SetlkReq *)msg;
	int rc = clw__flock_from_pb(m->lock, &s->lk);

	if (rc)
		return rc;
	/* Never wait here: a worker thread would be held; the client retries. */
	s->call.u.setlk.lk = &s->lk;
	s->call.u.setlk.sleep = 0;
	s->call.u.setlk.interrupted = NULL;
	s->call.u.setlk.arg = NULL;
	return CLW__HDR_IN(s, m);
}

static int clw__dec_fsync(struct clw__sreq *s, const ProtobufCMessage *msg)
{
	const Cxfs__FsyncReq *m = (const Cxfs__FsyncReq *)msg;

	s->call.u.fsync.datasync = m->datasync;
	return CLW__HDR_IN(s, m);
}

/* Reply builders: answer @req for @s, whose operation returned @rc. */

static int clw__rep_status(struct rpc_req *req, struct clw__sreq *s, int rc)
{
	Cxfs__StatusReply r = CXFS__STATUS_REPLY__INIT;
	Cxfs__Attr d;
	Cxfs__Timespec dts[4];

	r.err = clw__rc_err(rc);
	if (rc >= 0 && s->call.dir_attr_set) {
		clw_attr_to_pb(&s->dattr, &d, dts);
		r.dir_attr = &d;
	}
	cl_unsafe_stamp(&r.base);
	return rpc_reply(req, CXFS__MSG_TYPE__STATUS_REPLY, &r.base);
}

static int clw__rep_attr(struct rpc_req *req, struct clw__sreq *s, int rc)
{
	Cxfs__AttrReply r = CXFS__ATTR_REPLY__INIT;
	Cxfs__Attr a, d;
	Cxfs__Timespec ts[4], dts[4];

	r.err = clw__rc_err(rc);
	if (rc >= 0 && s->want_attr) {
		clw_attr_to_pb(&s->attr, &a, ts);
		r.attr = &a;
	}
	if (rc >= 0 && s->call.dir_attr_set) {
		clw_attr_to_pb(&s->dattr, &d, dts);
		r.dir_attr = &d;
	}
	cl_unsafe_stamp(&r.base);
	return rpc_reply(req, CXFS__MSG_TYPE__ATTR_REPLY, &r.base);
}

static int clw__rep_readlink(struct rpc_req *req, struct clw__sreq *s, int rc)
{
	Cxfs__ReadlinkReply r = CXFS__READLINK_REPLY__INIT;

	r.err = clw__rc_err(rc);
	if (rc >= 0) {
		s->buf[s->size - 1] = '\0';
		r.target = s->buf;
	}
	return rpc_reply(req, CXFS__MSG_TYPE__READLINK_REPLY, &r.base);
}

/*
 * An error after some entries were collected: send those (not at eof), the
 * client asks again from the last and gets the error then.
 */
static int clw__rep_readdir(struct rpc_req *req, struct clw__sreq *s, int rc)
{
	Cxfs__ReaddirReply r = CXFS__READDIR_REPLY__INIT;

	r.err = s->dir.n ? 0 : clw__rc_err(rc);
	r.n_entries = s->dir.n;
	r.entries = s->dir.ptrs;
	r.has_eof = 1;
	r.eof = rc >= 0 && !s->dir.full;
	return rpc_reply(req, CXFS__MSG_TYPE__READDIR_REPLY, &r.base);
}

static int clw__rep_statfs(struct rpc_req *req, struct clw__sreq *s, int rc)
{
	Cxfs__StatfsReply r = CXFS__STATFS_REPLY__INIT;

	r.err = clw__rc_err(rc);
	if (rc >= 0) {
		r.has_bsize = r.has_frsize = r.has_blocks = r.has_bfree = r.has_bavail = 1;
		r.has_files = r.has_ffree = r.has_favail = r.has_namemax = 1;
		r.bsize = s->sv.f_bsize;
		r.frsize = s->sv.f_frsize;
		r.blocks = s->sv.f_blocks;
		r.bfree = s->sv.f_bfree;
		r.bavail = s->sv.f_bavail;
		r.files = s->sv.f_files;
		r.ffree = s->sv.f_ffree;
		r.favail = s->sv.f_favail;
		r.namemax = s->sv.f_namemax;
	}
	cl_unsafe_stamp(&r.base);
	return rpc_reply(req, CXFS__MSG_TYPE__STATFS_REPLY, &r.base);
}

static int clw__rep_xattr(struct rpc_req *req, struct clw__sreq *s, int rc)
{
	Cxfs__XattrReply r = CXFS__XATTR_REPLY__INIT;

	/* A count beyond the buffer would send memory that is not the value. */
	if (s->size && rc > 0 && (size_t)rc > s->size)
		rc = -EIO;
	r.err = clw__rc_err(rc);
	if (rc >= 0 && s->size == 0) {
		r.has_size = 1;
		r.size = (uint32_t)rc;
	} else if (rc >= 0) {
		r.has_value = 1;
		r.value.data = (uint8_t *)s->buf;
		r.value.len = (size_t)rc;
	}
	return rpc_reply(req, CXFS__MSG_TYPE__XATTR_REPLY, &r.base);
}

static int clw__rep_lseek(struct rpc_req *req, struct clw__sreq *s, int rc)
{
	Cxfs__LseekReply r = CXFS__LSEEK_REPLY__INIT;

	r.err = clw__rc_err(rc);
	if (rc >= 0) {
		r.has_off = 1;
		r.off = s->call.u.lseek.result;
	}
	return rpc_reply(req, CXFS__MSG_TYPE__LSEEK_REPLY, &r.base);
}

static int clw__rep_lock(struct rpc_req *req, struct clw__sreq *s, int rc)
{
	Cxfs__LockReply r = CXFS__LOCK_REPLY__INIT;
	Cxfs__Flock l;

	r.err = clw__rc_err(rc);
	if (rc >= 0) {
		clw__flock_to_pb(&s->lk, &l);
		r.lock = &l;
	}
	return rpc_reply(req, CXFS__MSG_TYPE__LOCK_REPLY, &r.base);
}

static void clw__sreq_free(struct clw__sreq *s)
{
	free(s->buf);
	free(s->dir.ents);
	free(s->dir.ptrs);
	free(s->dir.attrs);
	free(s->dir.ts);
	free(s->dir.names);
}

/* ------------------------------------------------------------------ */
/* 4. The table and the entry points                                   */
/* ------------------------------------------------------------------ */

/* One vnode operation on the wire. */
struct clw__op {
	Cxfs__MsgType req;          /* its request; 0: not carried */
	ProtobufCMessage *(*encode)(struct clw__creq *q, uint64_t ino, const struct vn_call *c);
	int (*result)(struct vn_call *c, const ProtobufCMessage *rep);   /* client */
	int (*decode)(struct clw__sreq *s, const ProtobufCMessage *msg); /* server */
	int (*reply)(struct rpc_req *req, struct clw__sreq *s, int rc);  /* server */
};

#define CLW__OP(type, name, res, rep) \
	{ CXFS__MSG_TYPE__##type, clw__enc_##name, clw__res_##res, clw__dec_##name, clw__rep_##rep }

static const struct clw__op clw__ops[VN_OP__COUNT] = {
	[VN_OP_GETATTR]     = CLW__OP(GETATTR_REQ, getattr, attr, attr),
	[VN_OP_SETATTR]     = CLW__OP(SETATTR_REQ, setattr, attr, attr),
	[VN_OP_LOOKUP]      = CLW__OP(LOOKUP_REQ, lookup, attr, attr),
	[VN_OP_MKNOD]       = CLW__OP(MKNOD_REQ, mknod, attr, attr),
	[VN_OP_LINK]        = CLW__OP(LINK_REQ, link, attr, attr),
	[VN_OP_UNLINK]      = CLW__OP(UNLINK_REQ, unlink, status, status),
	[VN_OP_RENAME]      = CLW__OP(RENAME_REQ, rename, status, status),
	[VN_OP_READLINK]    = CLW__OP(READLINK_REQ, readlink, readlink, readlink),
	[VN_OP_OPEN]        = CLW__OP(OPEN_REQ, open, attr, attr),
	[VN_OP_RELEASE]     = CLW__OP(RELEASE_REQ, release, status, status),
	[VN_OP_FSYNC]       = CLW__OP(FSYNC_REQ, fsync, status, status),
	[VN_OP_READDIR]     = CLW__OP(READDIR_REQ, readdir, readdir, readdir),
	[VN_OP_STATFS]      = CLW__OP(STATFS_REQ, statfs, statfs, statfs),
	[VN_OP_SETXATTR]    = CLW__OP(SETXATTR_REQ, setxattr, status, status),
	[VN_OP_GETXATTR]    = CLW__OP(GETXATTR_REQ, getxattr, getxattr, xattr),
	[VN_OP_LISTXATTR]   = CLW__OP(LISTXATTR_REQ, listxattr, listxattr, xattr),
	[VN_OP_REMOVEXATTR] = CLW__OP(REMOVEXATTR_REQ, removexattr, status, status),
	[VN_OP_FALLOCATE]   = CLW__OP(FALLOCATE_REQ, fallocate, attr, attr),
	[VN_OP_LSEEK]       = CLW__OP(LSEEK_REQ, lseek, lseek, lseek),
	[VN_OP_GETLK]       = CLW__OP(GETLK_REQ, getlk, lock, lock),
	[VN_OP_SETLK]       = CLW__OP(SETLK_REQ, setlk, status, status),
};

/* The operation whose request is @type, or VN_OP__COUNT. */
static enum vn_opcode clw__op_of(Cxfs__MsgType type)
{
	for (int op = 0; op < VN_OP__COUNT; op++)
		if (clw__ops[op].req && clw__ops[op].req == type)
			return (enum vn_opcode)op;
	return VN_OP__COUNT;
}

/* One request and its reply: the result function's answer or an error. */
static int clw__call(struct rpc_chan *ch, uint64_t ino, struct vn_call *c, unsigned timeout_ms,
		     clw_call_fn call, void *arg)
{
	const struct clw__op *op = &clw__ops[c->op];
	struct clw__creq q;
	ProtobufCMessage *rep;
	Cxfs__MsgType rt;
	int rc;

	clw_cred_to_pb(c->cred, &q.cred);
	q.ntok = c->lent ? clw_toks_to_pb(c->lent, q.tok, q.tokp) : 0;
	if (call)
		rc = call(arg, ch, op->req, op->encode(&q, ino, c), timeout_ms, &rt, &rep);
	else
		rc = rpc_call(ch, op->req, op->encode(&q, ino, c), timeout_ms, &rt, &rep);
	if (rc)
		return rc;
	if (rt == CXFS__MSG_TYPE__ERROR_REPLY) {
		rc = clw__err(((const Cxfs__ErrorReply *)rep)->err);
		if (rc == 0)
			rc = -EPROTO;
	} else {
		rc = op->result(c, rep);
	}
	rpc_msg_free(rep);
	return rc;
}

/* Readdir in batches, each from where the last one ended. */
static int clw__forward_readdir(struct rpc_chan *ch, uint64_t ino, const struct vn_call *c,
				unsigned timeout_ms, clw_call_fn call, void *arg)
{
	struct vn_call step = *c;   /* its off moves on; the caller's does not */
	int rc;

	do
		rc = clw__call(ch, ino, &step, timeout_ms, call, arg);
	while (rc == CLW__DIR_MORE);
	return rc == CLW__DIR_DONE ? 0 : rc;
}

int clw_forward(struct rpc_chan *ch, uint64_t ino, struct vn_call *c, unsigned timeout_ms,
		clw_call_fn call, void *arg)
{
	if ((unsigned)c->op >= VN_OP__COUNT || !clw__ops[c->op].req || !c->cred)
		return -EINVAL;
	if (c->op == VN_OP_READDIR)
		return clw__forward_readdir(ch, ino, c, timeout_ms, call, arg);
	return clw__call(ch, ino, c, timeout_ms, call, arg);
}

bool clw_transport_error(int rc)
{
	switch (-rc) {
	case ETIMEDOUT:
	case RPC_EEARLY:
	case ECONNRESET:
	case ECONNREFUSED:
	case ENOTCONN:
	case EPROTO:
	case ESHUTDOWN:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ECONNABORTED:
	case EPIPE:
		return true;
	default:
		return false;
	}
}

bool clw_is_vnode_req(Cxfs__MsgType type)
{
	return clw__op_of(type) != VN_OP__COUNT;
}

int clw_serve(struct rpc_req *req, Cxfs__MsgType type, const ProtobufCMessage *msg,
	      uint32_t node, clw_exec_fn exec, void *arg)
{
	enum vn_opcode op = clw__op_of(type);
	struct clw__sreq s;
	int rc;

	if (op == VN_OP__COUNT || !msg || msg->descriptor != rpc_msg_descriptor(type))
		return -EINVAL;
	memset(&s, 0, sizeof(s));
	s.call.op = op;
	s.call.node = node;
	rc = clw__ops[op].decode(&s, msg);
	if (rc)
		goto out;
	/* The asker keeps its cached directory current with what exec gives. */
	if (op == VN_OP_MKNOD || op == VN_OP_LINK || op == VN_OP_UNLINK || op == VN_OP_RENAME)
		s.call.dir_attr = &s.dattr;
	rc = clw__ops[op].reply(req, &s, exec(arg, s.ino, &s.call));
out:
	clw__sreq_free(&s);
	return rc;
}
