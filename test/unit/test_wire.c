/*
 * test_wire.c - unit tests of the vnode operations on the wire
 * (src/cluster/cl_wire.c): a server rpc context whose handler serves every
 * vnode request with clw_serve() and a fake filesystem that records each
 * decoded call and answers with canned results, and a client that sends
 * every operation with clw_forward() over real TCP on 127.0.0.1, checking
 * that every field makes the round trip (attributes and times to the
 * nanosecond, credentials with groups, lent tokens, names, xattr values,
 * readdir in many batches with fill stopping early, readlink truncation,
 * size-only xattr queries, errors passing through); hostile requests given
 * to clw_serve() directly and over the wire; transport errors; and the
 * conversions of the shared pieces.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "cluster/cl_wire.h"
#include "rpc_pair.h"

#define CALL_MS 5000
#define NODE 7                  /* the node id the server gives the client */

#define INO_ENOENT 2            /* every operation fails with -ENOENT */
#define INO_DIR 100             /* a directory of NDIR entries */
#define INO_FILE 200
#define INO_LIAR 300            /* getxattr/listxattr answer more than asked */
#define INO_CHILD 555           /* what lookup and mknod find or make */
#define NDIR 1500

#define LINK_TARGET "../some/where/else/target"
#define XLIST "user.a\0user.bb\0trusted.ccc"   /* and its final NUL */

/* ------------------------------------------------------------------ */
/* The fake filesystem on the server side                              */
/* ------------------------------------------------------------------ */

/* What the last call that reached the fake looked like. */
struct rec {
	int calls;                          /* exec calls so far */
	uint64_t ino;
	struct vn_call call;                /* its scalars (pointers are stale) */
	uint32_t uid, gid;
	pid_t pid;
	int ngroups;
	uint32_t groups[8];
	int lent_null;
	struct tok_set lent;
	char name[CLW_NAME_MAX + 1];
	char name2[CLW_SYMLINK_MAX + 1];    /* rename's newname, mknod's target */
	int has_target;
	struct vn_attr in;                  /* setattr */
	struct vn_flock lk;                 /* getlk, setlk */
	size_t vsize;                       /* setxattr value size */
	uint8_t value[CLW_XATTR_SIZE_MAX];  /* setxattr value */
};

struct fix {
	struct rpc_ctx *srv, *cli;
	struct rpc_chan *ch;
	pthread_mutex_t mu;
	struct rec rec;                     /* mu */
};

static void mk_attr(uint64_t ino, struct vn_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->gen = ino * 3 + 1;
	a->mode = S_IFREG | 0640;
	a->nlink = 2;
	a->uid = 1001;
	a->gid = 1002;
	a->rdev = 0x0803;
	a->size = (1ull << 40) + 7;
	a->blocks = 12345;
	a->atime = (struct timespec){ 1700000000, 123456789 };
	a->mtime = (struct timespec){ 1700000001, 987654321 };
	a->ctime = (struct timespec){ -5, 1 };
	a->btime = (struct timespec){ 1, 999999999 };
}

/* Directory entry @i: names of many lengths, so bytes and counts both limit batches. */
static void dir_name(int i, char *buf)
{
	int len = 8 + (i * 37) % 200;

	snprintf(buf, 16, "f%05d-", i);
	memset(buf + 7, 'a' + i % 26, (size_t)len - 7);
	buf[len] = '\0';
}

static void dir_attr(int i, int plus, struct vn_attr *a)
{
	if (plus) {
		mk_attr(10000 + (uint64_t)i, a);
	} else {
		memset(a, 0, sizeof(*a));
		a->ino = 10000 + (uint64_t)i;
	}
	a->mode = (i % 3 ? S_IFREG : S_IFDIR) | 0755;
}

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static void record(struct fix *fx, uint64_t ino, const struct vn_call *c)
{
	struct rec *r = &fx->rec;

	pthread_mutex_lock(&fx->mu);
	r->calls++;
	r->ino = ino;
	r->call = *c;
	r->uid = c->cred->uid;
	r->gid = c->cred->gid;
	r->pid = c->cred->pid;
	r->ngroups = c->cred->ngroups;
	for (int i = 0; i < c->cred->ngroups && i < 8; i++)
		r->groups[i] = c->cred->groups[i];
	r->lent_null = c->lent == NULL;
	if (c->lent)
		r->lent = *c->lent;
	r->name[0] = r->name2[0] = '\0';
	r->has_target = 0;
	switch (c->op) {
	case VN_OP_SETATTR:
		r->in = *c->u.setattr.in;
		break;
	case VN_OP_LOOKUP:
		copy_str(r->name, sizeof(r->name), c->u.lookup.name);
		break;
	case VN_OP_MKNOD:
		copy_str(r->name, sizeof(r->name), c->u.mknod.name);
		copy_str(r->name2, sizeof(r->name2), c->u.mknod.target);
		r->has_target = c->u.mknod.target != NULL;
		break;
	case VN_OP_LINK:
		copy_str(r->name, sizeof(r->name), c->u.link.name);
		break;
	case VN_OP_UNLINK:
		copy_str(r->name, sizeof(r->name), c->u.unlink.name);
		break;
	case VN_OP_RENAME:
		copy_str(r->name, sizeof(r->name), c->u.rename.name);
		copy_str(r->name2, sizeof(r->name2), c->u.rename.newname);
		break;
	case VN_OP_SETXATTR:
		copy_str(r->name, sizeof(r->name), c->u.setxattr.name);
		r->vsize = c->u.setxattr.size;
		memcpy(r->value, c->u.setxattr.value, c->u.setxattr.size);
		break;
	case VN_OP_GETXATTR:
		copy_str(r->name, sizeof(r->name), c->u.getxattr.name);
		break;
	case VN_OP_REMOVEXATTR:
		copy_str(r->name, sizeof(r->name), c->u.removexattr.name);
		break;
	case VN_OP_GETLK:
		r->lk = *c->u.getlk.lk;
		break;
	case VN_OP_SETLK:
		r->lk = *c->u.setlk.lk;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&fx->mu);
}

/* The value of xattr @name of the fake: @len bytes of a pattern. */
static size_t xattr_value(const char *name, uint8_t *buf)
{
	size_t len = strcmp(name, "user.big") == 0 ? CLW_XATTR_SIZE_MAX : 3000;

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	return len;
}

/* getxattr/listxattr as the meta behavior does them, from @src of @len bytes. */
static int xattr_answer(uint64_t ino, const void *src, size_t len, void *buf, size_t size)
{
	if (ino == INO_LIAR)
		return (int)size + 10;
	if (size == 0)
		return (int)len;
	if (len > size)
		return -ERANGE;
	memcpy(buf, src, len);
	return (int)len;
}

static int fake_readdir(struct vn_call *c)
{
	char name[256];
	struct vn_attr a;

	for (int64_t i = c->u.readdir.off; i < NDIR; i++) {
		dir_name((int)i, name);
		dir_attr((int)i, c->u.readdir.plus, &a);
		if (c->u.readdir.fill(c->u.readdir.ctx, name, &a, i + 1))
			break;
	}
	return 0;
}

static int fake_exec(void *arg, uint64_t ino, struct vn_call *c)
{
	static uint8_t val[CLW_XATTR_SIZE_MAX];   /* only one xattr call at a time */
	size_t len;

	record(arg, ino, c);
	if (ino == INO_ENOENT)
		return -ENOENT;
	switch (c->op) {
	case VN_OP_GETATTR:
		mk_attr(ino, c->u.getattr.attr);
		return 0;
	case VN_OP_SETATTR:
		*c->u.setattr.attr = *c->u.setattr.in;
		c->u.setattr.attr->ino = ino;
		return 0;
	case VN_OP_LOOKUP:
		mk_attr(INO_CHILD, c->u.lookup.attr);
		return 0;
	case VN_OP_MKNOD:
		mk_attr(INO_CHILD, c->u.mknod.attr);
		c->u.mknod.attr->mode = c->u.mknod.mode;
		c->u.mknod.attr->rdev = c->u.mknod.rdev;
		return 0;
	case VN_OP_LINK:
		mk_attr(c->u.link.ino, c->u.link.attr);
		c->u.link.attr->nlink = 3;
		return 0;
	case VN_OP_READLINK:
		len = strlen(LINK_TARGET) < c->u.readlink.size - 1 ? strlen(LINK_TARGET)
								    : c->u.readlink.size - 1;
		memcpy(c->u.readlink.buf, LINK_TARGET, len);
		c->u.readlink.buf[len] = '\0';
		return (int)len;
	case VN_OP_READDIR:
		return fake_readdir(c);
	case VN_OP_STATFS:
		memset(c->u.statfs.st, 0, sizeof(*c->u.statfs.st));
		c->u.statfs.st->f_bsize = 4096;
		c->u.statfs.st->f_frsize = 512;
		c->u.statfs.st->f_blocks = 1ull << 33;
		c->u.statfs.st->f_bfree = 1000001;
		c->u.statfs.st->f_bavail = 1000000;
		c->u.statfs.st->f_files = 1ull << 34;
		c->u.statfs.st->f_ffree = 77;
		c->u.statfs.st->f_favail = 76;
		c->u.statfs.st->f_namemax = 255;
		return 0;
	case VN_OP_GETXATTR:
		len = xattr_value(c->u.getxattr.name, val);
		return xattr_answer(ino, val, len, c->u.getxattr.buf, c->u.getxattr.size);
	case VN_OP_LISTXATTR:
		return xattr_answer(ino, XLIST, sizeof(XLIST), c->u.listxattr.buf, c->u.listxattr.size);
	case VN_OP_LSEEK:
		c->u.lseek.result = c->u.lseek.off + 4096;
		return 0;
	case VN_OP_GETLK:
		*c->u.getlk.lk = (struct vn_flock){ .type = F_WRLCK, .start = 10, .end = 19,
						     .owner = 77, .pid = 4242 };
		return 0;
	case VN_OP_UNLINK: case VN_OP_RENAME: case VN_OP_OPEN: case VN_OP_RELEASE:
	case VN_OP_FSYNC: case VN_OP_SETXATTR: case VN_OP_REMOVEXATTR: case VN_OP_FALLOCATE:
	case VN_OP_SETLK:
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

static int srv_handler(void *arg, struct rpc_req *req, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	if (!clw_is_vnode_req(type))
		return -EOPNOTSUPP;
	return clw_serve(req, type, msg, NODE, fake_exec, arg);
}

static int setup(void **state)
{
	struct fix *fx = calloc(1, sizeof(*fx));
	struct rpc_config sc = { .workers = 4, .handler = srv_handler };
	struct rpc_config cc = { .workers = 2 };

	if (!fx)
		return -1;
	pthread_mutex_init(&fx->mu, NULL);
	sc.handler_arg = fx;
	if (rpc_pair_open(sc, cc, &fx->srv, &fx->cli, &fx->ch))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fix *fx = *state;

	rpc_pair_close(fx->srv, fx->cli, fx->ch);
	pthread_mutex_destroy(&fx->mu);
	free(fx);
	return 0;
}

/* The record of the last call (the call has returned: the server is done with it). */
static struct rec *last(struct fix *fx)
{
	pthread_mutex_lock(&fx->mu);
	pthread_mutex_unlock(&fx->mu);
	return &fx->rec;
}

static int calls(struct fix *fx)
{
	int n;

	pthread_mutex_lock(&fx->mu);
	n = fx->rec.calls;
	pthread_mutex_unlock(&fx->mu);
	return n;
}

static void assert_ts_equal(const struct timespec *x, const struct timespec *y)
{
	assert_int_equal(x->tv_sec, y->tv_sec);
	assert_int_equal(x->tv_nsec, y->tv_nsec);
}

static void assert_attr_equal(const struct vn_attr *x, const struct vn_attr *y)
{
	assert_int_equal(x->ino, y->ino);
	assert_int_equal(x->gen, y->gen);
	assert_int_equal(x->mode, y->mode);
	assert_int_equal(x->nlink, y->nlink);
	assert_int_equal(x->uid, y->uid);
	assert_int_equal(x->gid, y->gid);
	assert_int_equal(x->rdev, y->rdev);
	assert_int_equal(x->size, y->size);
	assert_int_equal(x->blocks, y->blocks);
	assert_ts_equal(&x->atime, &y->atime);
	assert_ts_equal(&x->mtime, &y->mtime);
	assert_ts_equal(&x->ctime, &y->ctime);
	assert_ts_equal(&x->btime, &y->btime);
}

static const uint32_t groups[3] = { 10, 20, 4000000000u };
static const struct vn_cred cred = { .uid = 1000, .gid = 1001, .pid = 4321, .ngroups = 3,
				     .groups = groups };
static const struct vn_cred cred_nogroups = { .uid = 0, .gid = 0, .pid = 1, .ngroups = -1 };

static int fwd(struct fix *fx, uint64_t ino, struct vn_call *c)
{
	if (!c->cred)
		c->cred = &cred;
	return clw_forward(fx->ch, ino, c, CALL_MS, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* Round trips                                                         */
/* ------------------------------------------------------------------ */

/* Credentials, node and lent tokens reach the server as sent. */
static void test_cred_and_lent(void **state)
{
	struct fix *fx = *state;
	struct tok_set lent;
	struct vn_attr a, want;
	struct vn_call c = { .op = VN_OP_GETATTR, .u.getattr = { &a } };
	static const uint32_t none[1];
	struct vn_cred empty = { .uid = 5, .gid = 6, .pid = 7, .ngroups = 0, .groups = none };
	struct rec *r;

	tok_set_clear(&lent);
	tok_set_add(&lent, TOK_ATTR, TOK_READ);
	tok_set_add(&lent, TOK_NAME, TOK_READ);
	tok_set_add(&lent, TOK_DMAPI, TOK_WRITE);
	c.lent = &lent;
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	mk_attr(INO_FILE, &want);
	assert_attr_equal(&a, &want);
	r = last(fx);
	assert_int_equal(r->call.op, VN_OP_GETATTR);
	assert_int_equal(r->ino, INO_FILE);
	assert_int_equal(r->call.node, NODE);
	assert_int_equal(r->uid, 1000);
	assert_int_equal(r->gid, 1001);
	assert_int_equal(r->pid, 4321);
	assert_int_equal(r->ngroups, 3);
	assert_int_equal(r->groups[0], 10);
	assert_int_equal(r->groups[1], 20);
	assert_int_equal(r->groups[2], 4000000000u);
	assert_false(r->lent_null);
	assert_memory_equal(&r->lent, &lent, sizeof(lent));

	/* Groups not fetched, nothing lent. */
	c.cred = &cred_nogroups;
	c.lent = NULL;
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	r = last(fx);
	assert_int_equal(r->uid, 0);
	assert_int_equal(r->pid, 1);
	assert_int_equal(r->ngroups, -1);
	assert_true(r->lent_null);

	/* Groups fetched and none. */
	c.cred = &empty;
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	r = last(fx);
	assert_int_equal(r->uid, 5);
	assert_int_equal(r->ngroups, 0);
}

/* Every operation answered by ATTR_REPLY. */
static void test_attr_ops(void **state)
{
	struct fix *fx = *state;
	struct vn_attr a, in, want;
	struct vn_call c;
	struct rec *r;

	/* setattr: every field and nanosecond there and back. */
	mk_attr(INO_FILE, &in);
	in.mode = S_IFREG | 0600;
	in.uid = 5;
	in.size = 42;
	in.atime = (struct timespec){ 1234567890, 5 };
	in.mtime = (struct timespec){ 1234567891, 999999999 };
	c = (struct vn_call){ .op = VN_OP_SETATTR,
			      .u.setattr = { &in, VN_SET_MODE | VN_SET_UID | VN_SET_SIZE |
						  VN_SET_ATIME | VN_SET_MTIME | VN_SET_CTIME, &a } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	r = last(fx);
	assert_int_equal(r->call.u.setattr.mask, VN_SET_MODE | VN_SET_UID | VN_SET_SIZE |
						 VN_SET_ATIME | VN_SET_MTIME | VN_SET_CTIME);
	assert_attr_equal(&r->in, &in);
	assert_attr_equal(&a, &in);

	/* lookup */
	c = (struct vn_call){ .op = VN_OP_LOOKUP, .u.lookup = { "hello.txt", &a } };
	assert_int_equal(fwd(fx, INO_DIR, &c), 0);
	r = last(fx);
	assert_int_equal(r->ino, INO_DIR);
	assert_string_equal(r->name, "hello.txt");
	mk_attr(INO_CHILD, &want);
	assert_attr_equal(&a, &want);

	/* mknod of a device: no target goes along even if given. */
	c = (struct vn_call){ .op = VN_OP_MKNOD,
			      .u.mknod = { "dev", S_IFCHR | 0600, 0x1234567890ull, "ignored", &a } };
	assert_int_equal(fwd(fx, INO_DIR, &c), 0);
	r = last(fx);
	assert_string_equal(r->name, "dev");
	assert_int_equal(r->call.u.mknod.mode, S_IFCHR | 0600);
	assert_int_equal(r->call.u.mknod.rdev, 0x1234567890ull);
	assert_false(r->has_target);
	assert_int_equal(a.mode, S_IFCHR | 0600);
	assert_int_equal(a.rdev, 0x1234567890ull);
	assert_int_equal(a.ino, INO_CHILD);

	/* A symlink carries its target. */
	c = (struct vn_call){ .op = VN_OP_MKNOD,
			      .u.mknod = { "ln", S_IFLNK | 0777, 0, LINK_TARGET, &a } };
	assert_int_equal(fwd(fx, INO_DIR, &c), 0);
	r = last(fx);
	assert_string_equal(r->name, "ln");
	assert_true(r->has_target);
	assert_string_equal(r->name2, LINK_TARGET);
	assert_int_equal(a.mode, S_IFLNK | 0777);

	/* link */
	c = (struct vn_call){ .op = VN_OP_LINK, .u.link = { INO_FILE, "another-name", &a } };
	assert_int_equal(fwd(fx, INO_DIR, &c), 0);
	r = last(fx);
	assert_int_equal(r->ino, INO_DIR);
	assert_int_equal(r->call.u.link.ino, INO_FILE);
	assert_string_equal(r->name, "another-name");
	mk_attr(INO_FILE, &want);
	want.nlink = 3;
	assert_attr_equal(&a, &want);

	/* open and fallocate: ATTR_REPLY without attributes for the caller. */
	c = (struct vn_call){ .op = VN_OP_OPEN, .u.open = { O_RDWR | O_TRUNC | O_APPEND } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	assert_int_equal(last(fx)->call.u.open.flags, O_RDWR | O_TRUNC | O_APPEND);
	c = (struct vn_call){ .op = VN_OP_FALLOCATE, .u.fallocate = { 3, 1ull << 41, 65536 } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	r = last(fx);
	assert_int_equal(r->call.u.fallocate.mode, 3);
	assert_int_equal(r->call.u.fallocate.off, 1ull << 41);
	assert_int_equal(r->call.u.fallocate.len, 65536);
}

/* Every operation answered by STATUS_REPLY. */
static void test_status_ops(void **state)
{
	struct fix *fx = *state;
	struct vn_flock lk = { .type = F_RDLCK, .start = 100, .end = UINT64_MAX, .owner = 0xabcdef12345ull,
			       .pid = 999, .is_flock = 1 };
	uint8_t value[1000];
	struct vn_call c;
	struct rec *r;

	c = (struct vn_call){ .op = VN_OP_UNLINK, .u.unlink = { "subdir", 1 } };
	assert_int_equal(fwd(fx, INO_DIR, &c), 0);
	r = last(fx);
	assert_string_equal(r->name, "subdir");
	assert_int_equal(r->call.u.unlink.is_dir, 1);

	c = (struct vn_call){ .op = VN_OP_RENAME,
			      .u.rename = { "from", INO_DIR + 1, "to", RENAME_NOREPLACE } };
	assert_int_equal(fwd(fx, INO_DIR, &c), 0);
	r = last(fx);
	assert_string_equal(r->name, "from");
	assert_string_equal(r->name2, "to");
	assert_int_equal(r->call.u.rename.newdir, INO_DIR + 1);
	assert_int_equal(r->call.u.rename.flags, RENAME_NOREPLACE);

	c = (struct vn_call){ .op = VN_OP_RELEASE, .u.release = { 0x1122334455667788ull, 1 } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	r = last(fx);
	assert_int_equal(r->call.u.release.lock_owner, 0x1122334455667788ull);
	assert_int_equal(r->call.u.release.flock_release, 1);

	c = (struct vn_call){ .op = VN_OP_FSYNC, .u.fsync = { 1 } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	assert_int_equal(last(fx)->call.u.fsync.datasync, 1);

	for (size_t i = 0; i < sizeof(value); i++)
		value[i] = (uint8_t)(255 - i);
	value[10] = 0;
	c = (struct vn_call){ .op = VN_OP_SETXATTR,
			      .u.setxattr = { "user.x", value, sizeof(value), XATTR_CREATE } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	r = last(fx);
	assert_string_equal(r->name, "user.x");
	assert_int_equal(r->vsize, sizeof(value));
	assert_memory_equal(r->value, value, sizeof(value));
	assert_int_equal(r->call.u.setxattr.flags, XATTR_CREATE);

	/* An empty value. */
	c = (struct vn_call){ .op = VN_OP_SETXATTR, .u.setxattr = { "user.empty", "", 0, 0 } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	assert_int_equal(last(fx)->vsize, 0);

	c = (struct vn_call){ .op = VN_OP_REMOVEXATTR, .u.removexattr = { "trusted.gone" } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	assert_string_equal(last(fx)->name, "trusted.gone");

	/* setlk: the server never sleeps, whatever the client asked. */
	c = (struct vn_call){ .op = VN_OP_SETLK, .u.setlk = { &lk, 1, NULL, NULL } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	r = last(fx);
	assert_int_equal(r->lk.type, F_RDLCK);
	assert_int_equal(r->lk.start, 100);
	assert_int_equal(r->lk.end, UINT64_MAX);
	assert_int_equal(r->lk.owner, 0xabcdef12345ull);
	assert_int_equal(r->lk.pid, 999);
	assert_int_equal(r->lk.is_flock, 1);
	assert_int_equal(r->call.u.setlk.sleep, 0);
	assert_null(r->call.u.setlk.interrupted);
}

static void test_readlink(void **state)
{
	struct fix *fx = *state;
	char buf[64];
	struct vn_call c = { .op = VN_OP_READLINK, .u.readlink = { buf, sizeof(buf) } };

	assert_int_equal(fwd(fx, INO_FILE, &c), (int)strlen(LINK_TARGET));
	assert_string_equal(buf, LINK_TARGET);

	/* Truncated to the caller's buffer, NUL-terminated. */
	memset(buf, 'X', sizeof(buf));
	c.u.readlink.size = 6;
	assert_int_equal(fwd(fx, INO_FILE, &c), 5);
	assert_string_equal(buf, "../so");
	assert_int_equal(buf[6], 'X');

	c.u.readlink.size = 0;
	assert_int_equal(fwd(fx, INO_FILE, &c), -ERANGE);
}

static void test_xattr_get_list(void **state)
{
	struct fix *fx = *state;
	static uint8_t buf[CLW_XATTR_SIZE_MAX + 100], want[CLW_XATTR_SIZE_MAX];
	struct vn_call c = { .op = VN_OP_GETXATTR, .u.getxattr = { "user.x", NULL, 0 } };
	size_t len = xattr_value("user.x", want);

	/* Size 0: the size only. */
	assert_int_equal(fwd(fx, INO_FILE, &c), (int)len);
	assert_string_equal(last(fx)->name, "user.x");
	assert_int_equal(last(fx)->call.u.getxattr.size, 0);

	c.u.getxattr.buf = buf;
	c.u.getxattr.size = 4000;
	assert_int_equal(fwd(fx, INO_FILE, &c), (int)len);
	assert_memory_equal(buf, want, len);

	c.u.getxattr.size = 100;
	assert_int_equal(fwd(fx, INO_FILE, &c), -ERANGE);

	/* The largest value, with a buffer bigger than any value. */
	c.u.getxattr.name = "user.big";
	c.u.getxattr.size = sizeof(buf);
	len = xattr_value("user.big", want);
	assert_int_equal(fwd(fx, INO_FILE, &c), CLW_XATTR_SIZE_MAX);
	assert_memory_equal(buf, want, len);
	assert_int_equal(last(fx)->call.u.getxattr.size, CLW_XATTR_SIZE_MAX);

	/* A server operation that claims more than the buffer holds. */
	c.u.getxattr.size = 10;
	assert_int_equal(fwd(fx, INO_LIAR, &c), -EIO);

	c = (struct vn_call){ .op = VN_OP_LISTXATTR, .u.listxattr = { NULL, 0 } };
	assert_int_equal(fwd(fx, INO_FILE, &c), (int)sizeof(XLIST));
	c.u.listxattr.buf = (char *)buf;
	c.u.listxattr.size = 200;
	assert_int_equal(fwd(fx, INO_FILE, &c), (int)sizeof(XLIST));
	assert_memory_equal(buf, XLIST, sizeof(XLIST));
	c.u.listxattr.size = 5;
	assert_int_equal(fwd(fx, INO_FILE, &c), -ERANGE);
}

static void test_statfs_lseek_getlk(void **state)
{
	struct fix *fx = *state;
	struct statvfs sv;
	struct vn_flock lk = { .type = F_WRLCK, .start = 0, .end = 99, .owner = 5, .pid = 6 };
	struct vn_call c = { .op = VN_OP_STATFS, .u.statfs = { &sv } };
	struct rec *r;

	memset(&sv, 0xff, sizeof(sv));
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	assert_int_equal(sv.f_bsize, 4096);
	assert_int_equal(sv.f_frsize, 512);
	assert_int_equal(sv.f_blocks, 1ull << 33);
	assert_int_equal(sv.f_bfree, 1000001);
	assert_int_equal(sv.f_bavail, 1000000);
	assert_int_equal(sv.f_files, 1ull << 34);
	assert_int_equal(sv.f_ffree, 77);
	assert_int_equal(sv.f_favail, 76);
	assert_int_equal(sv.f_namemax, 255);
	assert_int_equal(sv.f_flag, 0);

	c = (struct vn_call){ .op = VN_OP_LSEEK, .u.lseek = { 1ull << 50, SEEK_HOLE, 0 } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	assert_int_equal(c.u.lseek.result, (1ull << 50) + 4096);
	r = last(fx);
	assert_int_equal(r->call.u.lseek.whence, SEEK_HOLE);
	assert_int_equal(r->call.u.lseek.off, 1ull << 50);
	c = (struct vn_call){ .op = VN_OP_LSEEK, .u.lseek = { 7, SEEK_DATA, 0 } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	assert_int_equal(c.u.lseek.result, 7 + 4096);

	/* getlk: the request's lock goes, the conflicting one comes back. */
	c = (struct vn_call){ .op = VN_OP_GETLK, .u.getlk = { &lk } };
	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	r = last(fx);
	assert_int_equal(r->lk.type, F_WRLCK);
	assert_int_equal(r->lk.end, 99);
	assert_int_equal(r->lk.owner, 5);
	assert_int_equal(r->lk.pid, 6);
	assert_int_equal(lk.type, F_WRLCK);
	assert_int_equal(lk.start, 10);
	assert_int_equal(lk.end, 19);
	assert_int_equal(lk.owner, 77);
	assert_int_equal(lk.pid, 4242);
	assert_int_equal(lk.is_flock, 0);
}

/* ------------------------------------------------------------------ */
/* Readdir                                                             */
/* ------------------------------------------------------------------ */

struct dctx {
	int64_t start;              /* the first entry expected */
	int n;                      /* entries accepted */
	int stop_at;                /* refuse entries from this count on; -1: never */
	int plus;
	int refused;                /* fill calls answered "full" */
};

static int dfill(void *ctx, const char *name, const struct vn_attr *a, int64_t next_off)
{
	struct dctx *d = ctx;
	int i = (int)d->start + d->n;
	char want[256];
	struct vn_attr wa;

	if (d->n == d->stop_at) {
		d->refused++;
		return 1;
	}
	dir_name(i, want);
	dir_attr(i, d->plus, &wa);
	assert_string_equal(name, want);
	assert_int_equal(next_off, i + 1);
	if (d->plus) {
		assert_attr_equal(a, &wa);
	} else {
		assert_int_equal(a->ino, wa.ino);
		assert_int_equal(a->mode, wa.mode);
	}
	d->n++;
	return 0;
}

static int readdir(struct fix *fx, int64_t off, int plus, struct dctx *d)
{
	struct vn_call c = { .op = VN_OP_READDIR, .u.readdir = { off, plus, dfill, d } };
	int rc;

	d->start = off;
	d->plus = plus;
	rc = fwd(fx, INO_DIR, &c);
	assert_int_equal(c.u.readdir.off, off);   /* the caller's call is left alone */
	return rc;
}

static void test_readdir(void **state)
{
	struct fix *fx = *state;
	struct dctx d = { .stop_at = -1 };
	int before = calls(fx);

	/* The whole directory, in batches limited by bytes and by count. */
	assert_int_equal(readdir(fx, 0, 0, &d), 0);
	assert_int_equal(d.n, NDIR);
	assert_true(calls(fx) - before >= 4);
	assert_int_equal(last(fx)->ino, INO_DIR);

	before = calls(fx);
	d = (struct dctx){ .stop_at = -1 };
	assert_int_equal(readdir(fx, 0, 1, &d), 0);
	assert_int_equal(d.n, NDIR);
	assert_true(calls(fx) - before >= 4);
	assert_int_equal(last(fx)->call.u.readdir.plus, 1);

	/* fill full after 700: no more requests once it said so. */
	before = calls(fx);
	d = (struct dctx){ .stop_at = 700 };
	assert_int_equal(readdir(fx, 0, 1, &d), 0);
	assert_int_equal(d.n, 700);
	assert_int_equal(d.refused, 1);
	assert_true(calls(fx) - before < 10);

	/* From an offset; and at the end. */
	d = (struct dctx){ .stop_at = -1 };
	assert_int_equal(readdir(fx, 1200, 0, &d), 0);
	assert_int_equal(d.n, NDIR - 1200);
	d = (struct dctx){ .stop_at = -1 };
	assert_int_equal(readdir(fx, NDIR, 0, &d), 0);
	assert_int_equal(d.n, 0);

	struct vn_call c = { .op = VN_OP_READDIR, .u.readdir = { 0, 0, dfill, &d } };

	assert_int_equal(fwd(fx, INO_ENOENT, &c), -ENOENT);
}

/* READDIR_REQ by hand: max_entries is obeyed and clamped, batches stay small. */
static void test_readdir_raw(void **state)
{
	struct fix *fx = *state;
	Cxfs__ReaddirReq m = CXFS__READDIR_REQ__INIT;
	Cxfs__Cred cr;
	Cxfs__MsgType rt;
	ProtobufCMessage *rep;
	const Cxfs__ReaddirReply *r;
	uint32_t maxes[] = { 10, 100000, 0 };

	clw_cred_to_pb(&cred, &cr);
	m.ino = INO_DIR;
	m.cred = &cr;
	m.has_max_entries = 1;
	for (unsigned k = 0; k < 3; k++) {
		size_t bytes = 0;

		m.max_entries = maxes[k];
		assert_int_equal(rpc_call(fx->ch, CXFS__MSG_TYPE__READDIR_REQ, &m.base, CALL_MS, &rt,
					  &rep), 0);
		assert_int_equal(rt, CXFS__MSG_TYPE__READDIR_REPLY);
		r = (const Cxfs__ReaddirReply *)rep;
		assert_int_equal(r->err, 0);
		assert_false(r->eof);
		if (k == 0)
			assert_int_equal(r->n_entries, 10);
		assert_true(r->n_entries >= 10 && r->n_entries <= CLW_READDIR_ENTRIES);
		for (size_t i = 0; i < r->n_entries; i++)
			bytes += strlen(r->entries[i]->name) + 1;
		assert_true(bytes <= CLW_READDIR_BYTES);
		rpc_msg_free(rep);
	}
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* A valid call of @op (outputs into static buffers). */
static void prep(enum vn_opcode op, struct vn_call *c)
{
	static struct vn_attr a, in;
	static char buf[256];
	static struct statvfs sv;
	static struct vn_flock lk = { .type = F_RDLCK, .end = 10 };
	static struct dctx d = { .stop_at = -1 };

	*c = (struct vn_call){ .op = op };
	switch (op) {
	case VN_OP_GETATTR: c->u.getattr.attr = &a; break;
	case VN_OP_SETATTR: c->u.setattr.in = &in; c->u.setattr.attr = &a; break;
	case VN_OP_LOOKUP: c->u.lookup.name = "n"; c->u.lookup.attr = &a; break;
	case VN_OP_MKNOD: c->u.mknod.name = "n"; c->u.mknod.mode = S_IFREG; c->u.mknod.attr = &a; break;
	case VN_OP_LINK: c->u.link.name = "n"; c->u.link.attr = &a; break;
	case VN_OP_UNLINK: c->u.unlink.name = "n"; break;
	case VN_OP_RENAME: c->u.rename.name = "n"; c->u.rename.newname = "m"; break;
	case VN_OP_READLINK: c->u.readlink.buf = buf; c->u.readlink.size = sizeof(buf); break;
	case VN_OP_READDIR: c->u.readdir.fill = dfill; c->u.readdir.ctx = &d; break;
	case VN_OP_STATFS: c->u.statfs.st = &sv; break;
	case VN_OP_SETXATTR: c->u.setxattr.name = "user.n"; c->u.setxattr.value = buf; break;
	case VN_OP_GETXATTR: c->u.getxattr.name = "user.n"; break;
	case VN_OP_REMOVEXATTR: c->u.removexattr.name = "user.n"; break;
	case VN_OP_LSEEK: c->u.lseek.whence = SEEK_DATA; break;
	case VN_OP_GETLK: c->u.getlk.lk = &lk; break;
	case VN_OP_SETLK: c->u.setlk.lk = &lk; break;
	default: break;
	}
}

/* Every operation's error comes back as the operation's result. */
static void test_errors_pass_through(void **state)
{
	struct fix *fx = *state;
	struct vn_call c;
	int n = 0;

	for (int op = 0; op < VN_OP__COUNT; op++) {
		if (op == VN_OP_READ || op == VN_OP_WRITE || op == VN_OP_INACTIVE)
			continue;
		prep((enum vn_opcode)op, &c);
		assert_int_equal(fwd(fx, INO_ENOENT, &c), -ENOENT);
		assert_int_equal(last(fx)->call.op, op);
		assert_false(clw_transport_error(-ENOENT));
		n++;
	}
	assert_int_equal(n, 21);

	/* A request the server refuses to decode: its error as an ERROR_REPLY. */
	char longname[301];

	memset(longname, 'n', 300);
	longname[300] = '\0';
	n = calls(fx);
	prep(VN_OP_LOOKUP, &c);
	c.u.lookup.name = longname;
	assert_int_equal(fwd(fx, INO_DIR, &c), -ENAMETOOLONG);
	assert_int_equal(calls(fx), n);
}

static void test_unsupported_ops(void **state)
{
	struct fix *fx = *state;
	char buf[16];
	struct vn_call c = { .op = VN_OP_READ, .u.read = { buf, sizeof(buf), 0 } };
	int n = calls(fx);

	assert_int_equal(fwd(fx, INO_FILE, &c), -EINVAL);
	c = (struct vn_call){ .op = VN_OP_WRITE, .u.write = { buf, sizeof(buf), 0 } };
	assert_int_equal(fwd(fx, INO_FILE, &c), -EINVAL);
	c = (struct vn_call){ .op = VN_OP_INACTIVE };
	assert_int_equal(fwd(fx, INO_FILE, &c), -EINVAL);
	c = (struct vn_call){ .op = VN_OP__COUNT };
	assert_int_equal(fwd(fx, INO_FILE, &c), -EINVAL);
	/* No credential. */
	prep(VN_OP_GETATTR, &c);
	assert_int_equal(clw_forward(fx->ch, INO_FILE, &c, CALL_MS, NULL, NULL), -EINVAL);
	assert_int_equal(calls(fx), n);
}

/* ------------------------------------------------------------------ */
/* Hostile requests                                                    */
/* ------------------------------------------------------------------ */

static int never_exec(void *arg, uint64_t ino, struct vn_call *c)
{
	fail_msg("a malformed request reached the operation (op %d)", c->op);
	return 0;
}

/* Malformed requests: clw_serve() refuses before running or replying. */
static void test_hostile_serve(void **state)
{
	static char longname[301], longtarget[5000];
	static uint8_t bigval[CLW_XATTR_SIZE_MAX + 1];
	static uint32_t manygroups[CLW_GROUPS_MAX + 1];
	Cxfs__Cred cr;
	Cxfs__TokenState ts = CXFS__TOKEN_STATE__INIT, *tsp = &ts;
	Cxfs__Flock fl = CXFS__FLOCK__INIT;
	Cxfs__Attr at;
	Cxfs__Timespec tsv[4];
	struct vn_attr va;

	memset(longname, 'x', 300);
	memset(longtarget, 't', sizeof(longtarget) - 1);
	clw_cred_to_pb(&cred, &cr);
#define SERVE(type, m) clw_serve(NULL, CXFS__MSG_TYPE__##type, &(m).base, NODE, never_exec, NULL)

	Cxfs__LookupReq lk = CXFS__LOOKUP_REQ__INIT;
	lk.cred = &cr;
	lk.name = longname;
	assert_int_equal(SERVE(LOOKUP_REQ, lk), -ENAMETOOLONG);
	lk.name = NULL;
	assert_int_equal(SERVE(LOOKUP_REQ, lk), -EINVAL);
	/* A message of another type than it claims; not a vnode request. */
	lk.name = "ok";
	assert_int_equal(SERVE(GETATTR_REQ, lk), -EINVAL);
	assert_int_equal(SERVE(TOKEN_ACQUIRE, lk), -EINVAL);
	assert_int_equal(clw_serve(NULL, CXFS__MSG_TYPE__LOOKUP_REQ, NULL, NODE, never_exec, NULL),
			 -EINVAL);
	/* Credentials: missing, or too many groups. */
	lk.cred = NULL;
	assert_int_equal(SERVE(LOOKUP_REQ, lk), -EINVAL);
	lk.cred = &cr;
	cr.n_groups = CLW_GROUPS_MAX + 1;
	cr.groups = manygroups;
	assert_int_equal(SERVE(LOOKUP_REQ, lk), -EINVAL);
	clw_cred_to_pb(&cred, &cr);
	/* Lent tokens out of range. */
	lk.n_lent = 1;
	lk.lent = &tsp;
	ts.token = TOK_NTOKENS;
	ts.level = CXFS__TOKEN_LEVEL__TOKEN_READ;
	assert_int_equal(SERVE(LOOKUP_REQ, lk), -EBADMSG);
	ts.token = TOK_ATTR;
	ts.level = (Cxfs__TokenLevel)7;
	assert_int_equal(SERVE(LOOKUP_REQ, lk), -EBADMSG);

	Cxfs__MknodReq mk = CXFS__MKNOD_REQ__INIT;
	mk.cred = &cr;
	mk.name = "ln";
	mk.mode = S_IFLNK | 0777;
	mk.target = longtarget;
	assert_int_equal(SERVE(MKNOD_REQ, mk), -ENAMETOOLONG);
	mk.target = NULL;
	assert_int_equal(SERVE(MKNOD_REQ, mk), -EINVAL);

	Cxfs__RenameReq rn = CXFS__RENAME_REQ__INIT;
	rn.cred = &cr;
	rn.name = "a";
	rn.newname = longname;
	assert_int_equal(SERVE(RENAME_REQ, rn), -ENAMETOOLONG);
	rn.newname = "b";
	rn.has_flags = 1;
	rn.flags = RENAME_WHITEOUT;
	assert_int_equal(SERVE(RENAME_REQ, rn), -EINVAL);

	Cxfs__SetattrReq sa = CXFS__SETATTR_REQ__INIT;
	mk_attr(1, &va);
	clw_attr_to_pb(&va, &at, tsv);
	sa.cred = &cr;
	sa.attr = &at;
	sa.mask = 0x8000;
	assert_int_equal(SERVE(SETATTR_REQ, sa), -EINVAL);

	Cxfs__SetxattrReq sx = CXFS__SETXATTR_REQ__INIT;
	sx.cred = &cr;
	sx.name = longname;
	assert_int_equal(SERVE(SETXATTR_REQ, sx), -ERANGE);
	sx.name = "user.v";
	sx.value.data = bigval;
	sx.value.len = sizeof(bigval);
	assert_int_equal(SERVE(SETXATTR_REQ, sx), -E2BIG);
	sx.value.len = 1;
	sx.has_flags = 1;
	sx.flags = 0x40;
	assert_int_equal(SERVE(SETXATTR_REQ, sx), -EINVAL);

	Cxfs__GetxattrReq gx = CXFS__GETXATTR_REQ__INIT;
	gx.cred = &cr;
	gx.name = longname;
	gx.size = UINT32_MAX;
	assert_int_equal(SERVE(GETXATTR_REQ, gx), -ERANGE);

	Cxfs__LseekReq ls = CXFS__LSEEK_REQ__INIT;
	ls.cred = &cr;
	ls.whence = SEEK_END;
	assert_int_equal(SERVE(LSEEK_REQ, ls), -EINVAL);
	ls.whence = -1;
	assert_int_equal(SERVE(LSEEK_REQ, ls), -EINVAL);

	Cxfs__SetlkReq sl = CXFS__SETLK_REQ__INIT;
	sl.cred = &cr;
	sl.lock = &fl;
	fl.type = 77;
	assert_int_equal(SERVE(SETLK_REQ, sl), -EINVAL);
	fl.type = F_WRLCK;
	fl.start = 10;
	fl.end = 9;
	assert_int_equal(SERVE(SETLK_REQ, sl), -EINVAL);
	sl.lock = NULL;
	assert_int_equal(SERVE(SETLK_REQ, sl), -EINVAL);

	Cxfs__GetlkReq gl = CXFS__GETLK_REQ__INIT;
	gl.cred = &cr;
	gl.lock = &fl;
	fl.type = -3;
	fl.end = 20;
	assert_int_equal(SERVE(GETLK_REQ, gl), -EINVAL);
#undef SERVE
}

/* Hostile requests over the wire: refused with ERROR_REPLY, or clamped. */
static void test_hostile_wire(void **state)
{
	struct fix *fx = *state;
	static char longname[301];
	static uint8_t want[CLW_XATTR_SIZE_MAX];
	Cxfs__Cred cr;
	Cxfs__MsgType rt;
	ProtobufCMessage *rep;
	int n = calls(fx);

	memset(longname, 'y', 300);
	clw_cred_to_pb(&cred, &cr);

	Cxfs__LookupReq lk = CXFS__LOOKUP_REQ__INIT;
	lk.ino = INO_DIR;
	lk.cred = &cr;
	lk.name = longname;
	assert_int_equal(rpc_call(fx->ch, CXFS__MSG_TYPE__LOOKUP_REQ, &lk.base, CALL_MS, &rt, &rep), 0);
	assert_int_equal(rt, CXFS__MSG_TYPE__ERROR_REPLY);
	assert_int_equal(((Cxfs__ErrorReply *)rep)->err, -ENAMETOOLONG);
	rpc_msg_free(rep);

	Cxfs__SetlkReq sl = CXFS__SETLK_REQ__INIT;
	Cxfs__Flock fl = CXFS__FLOCK__INIT;
	sl.ino = INO_FILE;
	sl.cred = &cr;
	sl.lock = &fl;
	fl.type = 12345;
	assert_int_equal(rpc_call(fx->ch, CXFS__MSG_TYPE__SETLK_REQ, &sl.base, CALL_MS, &rt, &rep), 0);
	assert_int_equal(rt, CXFS__MSG_TYPE__ERROR_REPLY);
	assert_int_equal(((Cxfs__ErrorReply *)rep)->err, -EINVAL);
	rpc_msg_free(rep);
	assert_int_equal(calls(fx), n);

	/* A huge getxattr size is clamped: the server allocates no more than a value can be. */
	Cxfs__GetxattrReq gx = CXFS__GETXATTR_REQ__INIT;
	const Cxfs__XattrReply *xr;
	size_t len = xattr_value("user.big", want);

	gx.ino = INO_FILE;
	gx.cred = &cr;
	gx.name = "user.big";
	gx.size = UINT32_MAX;
	assert_int_equal(rpc_call(fx->ch, CXFS__MSG_TYPE__GETXATTR_REQ, &gx.base, CALL_MS, &rt, &rep), 0);
	assert_int_equal(rt, CXFS__MSG_TYPE__XATTR_REPLY);
	xr = (const Cxfs__XattrReply *)rep;
	assert_int_equal(xr->err, 0);
	assert_true(xr->has_value);
	assert_int_equal(xr->value.len, len);
	assert_memory_equal(xr->value.data, want, len);
	rpc_msg_free(rep);
	assert_int_equal(last(fx)->call.u.getxattr.size, CLW_XATTR_SIZE_MAX);

	/* The server keeps serving. */
	struct vn_attr a;
	struct vn_call c = { .op = VN_OP_GETATTR, .u.getattr = { &a } };

	assert_int_equal(fwd(fx, INO_FILE, &c), 0);
	assert_int_equal(a.ino, INO_FILE);
}

/* ------------------------------------------------------------------ */
/* Transport errors and conversions                                    */
/* ------------------------------------------------------------------ */

static void test_transport_error(void **state)
{
	struct fix *fx = *state;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct rpc_chan *ch;
	struct vn_attr a;
	struct vn_call c = { .op = VN_OP_GETATTR, .cred = &cred, .u.getattr = { &a } };
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

	/* A port nobody listens on. */
	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	assert_int_equal(rpc_connect(fx->cli, "127.0.0.1", ntohs(sa.sin_port), &ch), 0);
	rc = clw_forward(ch, INO_FILE, &c, CALL_MS, NULL, NULL);
	assert_int_equal(rc, -ECONNREFUSED);
	assert_true(clw_transport_error(rc));
	rpc_chan_put(ch);

	assert_true(clw_transport_error(-ETIMEDOUT));
	assert_true(clw_transport_error(-RPC_EEARLY));
	assert_true(clw_transport_error(-ECONNRESET));
	assert_true(clw_transport_error(-ESHUTDOWN));
	assert_false(clw_transport_error(0));
	assert_false(clw_transport_error(-ENOENT));
	assert_false(clw_transport_error(-EINVAL));
	assert_false(clw_transport_error(5));
}

static void test_conversions(void **state)
{
	struct tok_set set, back;
	Cxfs__TokenState buf[TOK_NTOKENS], *ptrs[TOK_NTOKENS];
	Cxfs__Timespec pb = CXFS__TIMESPEC__INIT;
	struct timespec ts = { 99, 99 };
	struct vn_cred vc;
	Cxfs__Cred cr;

	tok_set_clear(&set);
	assert_int_equal(clw_toks_to_pb(&set, buf, ptrs), 0);
	for (unsigned t = 0; t < TOK_NTOKENS; t++)
		tok_set_add(&set, (enum tok_id)t, (enum tok_level)(t % TOK_NLEVELS));
	assert_int_equal(clw_toks_to_pb(&set, buf, ptrs), TOK_NTOKENS - (TOK_NTOKENS + 3) / 4);
	assert_int_equal(clw_toks_from_pb(ptrs, clw_toks_to_pb(&set, buf, ptrs), &back), 0);
	assert_memory_equal(&set, &back, sizeof(set));
	buf[0].level = (Cxfs__TokenLevel)TOK_NLEVELS;
	assert_int_equal(clw_toks_from_pb(ptrs, 1, &back), -EBADMSG);

	clw_ts_from_pb(NULL, &ts);
	assert_int_equal(ts.tv_sec, 0);
	assert_int_equal(ts.tv_nsec, 0);
	pb.sec = -7;
	pb.nsec = 2000000000u;
	clw_ts_from_pb(&pb, &ts);
	assert_int_equal(ts.tv_sec, -7);
	assert_int_equal(ts.tv_nsec, 999999999);

	clw_cred_to_pb(&cred_nogroups, &cr);
	assert_int_equal(clw_cred_from_pb(&cr, &vc), 0);
	assert_int_equal(vc.ngroups, -1);
	clw_cred_to_pb(&cred, &cr);
	assert_int_equal(clw_cred_from_pb(&cr, &vc), 0);
	assert_int_equal(vc.ngroups, 3);
	assert_int_equal(vc.groups[2], 4000000000u);
	assert_int_equal(clw_cred_from_pb(NULL, &vc), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conversions),
		cmocka_unit_test(test_hostile_serve),
		cmocka_unit_test_setup_teardown(test_cred_and_lent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attr_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xattr_get_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_statfs_lseek_getlk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readdir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readdir_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_pass_through, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_wire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transport_error, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
