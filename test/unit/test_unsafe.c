/*
 * test_unsafe.c - unit tests of unsafe requests (src/cluster/cl_unsafe.c)
 * over real TCP on 127.0.0.1: a client context sends creates with
 * cl_unsafe_call to a server rpc context whose handler runs them the way
 * the metadata server does (cl_unsafe_enter, the store's meta_mknod on a
 * real store in a file, a reply stamped with cl_unsafe_stamp,
 * cl_unsafe_leave).  Checked: the request id and `oldest` on the wire, the
 * same id when a request is sent again after an answer that says "the MDS
 * moved" (here: after the create was applied), the copy answered from the
 * table with the first create's inode (not EEXIST), answered requests kept
 * until a reply says their transaction is durable, collect (oldest first,
 * the node's id, bodies that decode) and forget_all.  And the replay on a
 * one-node cluster in this process (its node serves): in seq order, a
 * create with its recorded inode number and generation, an allocation on
 * its recorded blocks, a WRITE_DONE of them; a request committed before the
 * open skipped; a garbled body and a type never kept refused alone.  A
 * token return's size taken only from a node that holds SIZE to write, or
 * replayed; a return answered again from the table gives its tokens back.
 */
#include <errno.h>
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
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "xvm/xvm.h"
#include "cluster/cl_i.h"
#include "cluster/cl_wire.h"
#include "rpc_pair.h"
#include "vnode/vn_meta.h"

#define CALL_MS 5000
#define NODE 2                  /* the node id the server takes the client for */
#define VOLUME_SIZE (256ull << 20)

struct fix {
	char dir[256], path[300];     /* the store's volume file */
	struct xvm_vol *dev;
	struct cl_ctx scx, ccx;       /* the server's and the client's (the fields used) */
	struct rpc_ctx *srv, *cli;
	struct rpc_chan *ch;
	pthread_mutex_t mu;           /* protects the fields below */
	int moved_after_apply;        /* answer the next create "moved" once applied */
	uint64_t seen_reqid[8], seen_oldest[8];  /* of the creates that reached the server */
	int nseen;
	int nrun;                     /* creates the handler ran (not answered from the table) */
};

/* The server's create: as the MDS's handlers, around the store's own call. */
static int serve_mknod(struct fix *fx, struct rpc_req *req, const Cxfs__MknodReq *m)
{
	Cxfs__AttrReply r = CXFS__ATTR_REPLY__INIT;
	Cxfs__Attr pa;
	Cxfs__Timespec ts[4];
	struct vn_cred cred = { .uid = 0, .gid = 0, .ngroups = 0 };
	struct vn_attr a;
	bool moved;
	int rc;

	pthread_mutex_lock(&fx->mu);
	fx->nrun++;
	moved = fx->moved_after_apply;
	fx->moved_after_apply = 0;
	pthread_mutex_unlock(&fx->mu);
	rc = meta_mknod(fx->scx.st, m->ino, m->name, m->mode, 0, NULL, &cred, &a);
	if (moved)
		return rpc_reply_error(req, -EAGAIN);   /* applied; the node must ask again */
	r.err = rc < 0 ? rc : 0;
	if (rc >= 0) {
		clw_attr_to_pb(&a, &pa, ts);
		r.attr = &pa;
	}
	cl_unsafe_stamp(&r.base);
	return rpc_reply(req, CXFS__MSG_TYPE__ATTR_REPLY, &r.base);
}

static int srv_handler(void *arg, struct rpc_req *req, Cxfs__MsgType type,
		       const ProtobufCMessage *msg)
{
	struct fix *fx = arg;
	const Cxfs__MknodReq *m = (const Cxfs__MknodReq *)msg;
	struct cl_usrv us;
	int rc;

	pthread_mutex_lock(&fx->mu);
	if (type == CXFS__MSG_TYPE__MKNOD_REQ && fx->nseen < 8) {
		fx->seen_reqid[fx->nseen] = m->has_reqid ? m->reqid : 0;
		fx->seen_oldest[fx->nseen] = m->has_oldest ? m->oldest : 0;
		fx->nseen++;
	}
	pthread_mutex_unlock(&fx->mu);
	rc = cl_unsafe_enter(&fx->scx, NODE, req, type, msg, &us);
	if (rc)
		return rc > 0 ? 0 : rc;
	if (type == CXFS__MSG_TYPE__MKNOD_REQ) {
		rc = serve_mknod(fx, req, (const Cxfs__MknodReq *)msg);
	} else if (type == CXFS__MSG_TYPE__STATFS_REQ) {
		Cxfs__StatfsReply r = CXFS__STATFS_REPLY__INIT;

		cl_unsafe_stamp(&r.base);
		rc = rpc_reply(req, CXFS__MSG_TYPE__STATFS_REPLY, &r.base);
	} else {
		rc = -EOPNOTSUPP;
	}
	cl_unsafe_leave(&us);
	return rc;
}

static int setup(void **state)
{
	struct fix *fx = calloc(1, sizeof(*fx));
	struct xvm_open_opts o = { .create_size = VOLUME_SIZE };
	const struct meta_store_opts slow = { .commit_ms = 600000, .commit_ops = 100000000 };
	struct rpc_config sc = { .workers = 4, .handler = srv_handler };
	struct rpc_config cc = { .workers = 2 };
	char err[256] = "";

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "%s/cxfs-test-unsafe-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/vol", fx->dir);
	if (xvm_open((const char *const[]){ fx->path }, 1, &o, &fx->dev, NULL, 0) ||
	    meta_store_format(fx->dev, "unsafe-test", 0, 0, 0, err, sizeof(err)) ||
	    meta_store_open(fx->dev, &slow, &fx->scx.st, err, sizeof(err))) {
		fprintf(stderr, "store: %s\n", err);
		return -1;
	}
	fx->scx.un = cl_unsafe_create();
	fx->ccx.un = cl_unsafe_create();
	fx->ccx.self_id = NODE;
	if (!fx->scx.un || !fx->ccx.un)
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
	meta_store_close(fx->scx.st);
	xvm_close(fx->dev);
	cl_unsafe_destroy(fx->scx.un);
	cl_unsafe_destroy(fx->ccx.un);
	pthread_mutex_destroy(&fx->mu);
	unlink(fx->path);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* Send a create of @name in the root as request @u; the reply (caller frees) in *@rep. */
static int create(struct fix *fx, struct cl_ureq *u, const char *name, Cxfs__MsgType *rt,
		  ProtobufCMessage **rep)
{
	Cxfs__MknodReq m = CXFS__MKNOD_REQ__INIT;
	Cxfs__Cred cred = CXFS__CRED__INIT;

	m.ino = META_ROOT_INO;
	m.cred = &cred;
	m.name = (char *)name;
	m.mode = S_IFREG | 0644;
	return cl_unsafe_call(&fx->ccx, u, fx->ch, CXFS__MSG_TYPE__MKNOD_REQ, &m.base, CALL_MS, rt,
			      rep);
}

static size_t kept(struct fix *fx)
{
	struct cl_unsafe_counts c;

	cl_unsafe_counts(&fx->ccx, &c);
	return c.kept;
}

static void test_kept_until_durable(void **state)
{
	struct fix *fx = *state;
	struct cl_ureq u = { 0 };
	ProtobufCMessage *rep = NULL;
	const Cxfs__AttrReply *r;
	Cxfs__MsgType rt;

	assert_int_equal(create(fx, &u, "a", &rt, &rep), 0);
	assert_int_equal(rt, CXFS__MSG_TYPE__ATTR_REPLY);
	r = (const Cxfs__AttrReply *)rep;
	assert_int_equal(r->err, 0);
	assert_true(r->has_txn && r->has_seq && r->has_durable);
	assert_true(r->txn > r->durable);
	assert_false(u.live);
	assert_true(u.reqid != 0);
	assert_int_equal(fx->seen_reqid[0], u.reqid);
	assert_int_equal(fx->seen_oldest[0], u.reqid);
	rpc_msg_free(rep);
	assert_int_equal(kept(fx), 1);
	cl_unsafe_ask_durable(&fx->ccx, fx->ch, CALL_MS);
	assert_int_equal(kept(fx), 1);          /* not committed yet */
	assert_int_equal(meta_store_sync(fx->scx.st), 0);
	cl_unsafe_ask_durable(&fx->ccx, fx->ch, CALL_MS);
	assert_int_equal(kept(fx), 0);
}

static void test_same_id_answered_again(void **state)
{
	struct fix *fx = *state;
	struct cl_ureq u = { 0 }, other = { 0 }, late = { 0 };
	struct cl_unsafe_counts c;
	ProtobufCMessage *rep = NULL;
	const Cxfs__AttrReply *r;
	Cxfs__UnsafeReq **v = NULL;
	Cxfs__MsgType rt;
	struct vn_attr a;
	size_t n;

	fx->moved_after_apply = 1;
	assert_int_equal(create(fx, &u, "b", &rt, &rep), 0);
	assert_int_equal(rt, CXFS__MSG_TYPE__ERROR_REPLY);
	rpc_msg_free(rep);
	assert_true(u.live);                    /* moved: to be sent again */
	assert_int_equal(kept(fx), 0);
	/* Meanwhile another request: the first is still the oldest unanswered. */
	assert_int_equal(create(fx, &other, "c", &rt, &rep), 0);
	rpc_msg_free(rep);
	assert_int_equal(fx->seen_oldest[1], u.reqid);
	assert_true(other.reqid > u.reqid);
	/*
	 * A newer one that must be sent again too: the first is still the
	 * oldest on the wire.  (A request given up with cl_ureq_end is never
	 * sent again: the server may drop its row once an `oldest` passes it,
	 * every META_REQ_PRUNE_EVERY ids, so a test that did so failed when
	 * the clock-seeded id of "d" fell on such a multiple.)
	 */
	fx->moved_after_apply = 1;
	assert_int_equal(create(fx, &late, "d", &rt, &rep), 0);
	rpc_msg_free(rep);
	assert_true(late.live);
	assert_int_equal(fx->seen_oldest[2], u.reqid);
	/* Sent again: the same id, answered from the table with the inode made the first time. */
	assert_int_equal(create(fx, &u, "b", &rt, &rep), 0);
	assert_int_equal(fx->nseen, 4);
	assert_int_equal(fx->seen_reqid[3], u.reqid);
	assert_int_equal(fx->seen_oldest[3], u.reqid);
	assert_int_equal(fx->nrun, 3);          /* b, c, d: b's copy did not run again */
	assert_int_equal(rt, CXFS__MSG_TYPE__ATTR_REPLY);
	r = (const Cxfs__AttrReply *)rep;
	assert_int_equal(r->err, 0);
	assert_non_null(r->attr);
	assert_int_equal(meta_lookup(fx->scx.st, META_ROOT_INO, "b", &a), 0);
	assert_int_equal(r->attr->ino, a.ino);
	assert_true(r->has_txn && r->has_seq);
	rpc_msg_free(rep);
	cl_unsafe_counts(&fx->scx, &c);
	assert_int_equal(c.answered_again, 1);
	/* Both kept, oldest (lowest seq) first: b was applied before c. */
	assert_int_equal(kept(fx), 2);
	assert_int_equal(cl_unsafe_collect(&fx->ccx, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_true(v[0]->seq < v[1]->seq);
	assert_int_equal(v[0]->reqid, u.reqid);
	assert_int_equal(v[1]->reqid, other.reqid);
	for (size_t i = 0; i < n; i++) {
		ProtobufCMessage *body = NULL;

		assert_int_equal(v[i]->node, NODE);
		assert_int_equal(v[i]->type, CXFS__MSG_TYPE__MKNOD_REQ);
		assert_int_equal(rpc_msg_unpack(CXFS__MSG_TYPE__MKNOD_REQ, v[i]->body.data,
						v[i]->body.len, &body), 0);
		assert_int_equal(((Cxfs__MknodReq *)body)->reqid, v[i]->reqid);
		rpc_msg_free(body);
	}
	cl_unsafe_collect_free(v, n);
	cl_unsafe_forget_all(&fx->ccx);
	assert_int_equal(kept(fx), 0);
	cl_ureq_end(&fx->ccx, &late);
}

/*
 * A node's own create that never left it, applied by that node once it
 * serves (cl_async_settle): no request id, yet the number, generation and
 * time the node gave it go to the store.  (They did not: the store gave
 * the name a number of its own, and the node's kernel, which had the
 * reserved one, got ENOENT for a file that was there; t_relocate.)  The
 * change is the server's own: durable before another node's request sees
 * it.
 */
static void test_own_create_here(void **state)
{
	struct fix *fx = *state;
	Cxfs__MknodReq m = CXFS__MKNOD_REQ__INIT;
	Cxfs__Cred cred = CXFS__CRED__INIT;
	struct vn_cred vc = { .uid = 0, .gid = 0, .ngroups = 0 };
	const int64_t when = INT64_C(1700000000123456789);
	struct cl_usrv us;
	struct vn_attr a;
	uint64_t first, gen;

	fx->scx.self_id = 1;
	assert_int_equal(meta_ino_reserve(fx->scx.st, 4, &first, &gen), 0);
	assert_int_equal(meta_store_sync(fx->scx.st), 0);
	m.ino = META_ROOT_INO;
	m.cred = &cred;
	m.name = "own";
	m.mode = S_IFREG | 0644;
	m.has_new_ino = m.has_new_gen = m.has_time_ns = 1;
	m.new_ino = first + 2;
	m.new_gen = gen;
	m.time_ns = when;
	assert_int_equal(cl_unsafe_enter(&fx->scx, 1, NULL, CXFS__MSG_TYPE__MKNOD_REQ, &m.base, &us),
			 0);
	assert_int_equal(meta_mknod(fx->scx.st, META_ROOT_INO, "own", S_IFREG | 0644, 0, NULL, &vc,
				    &a), 0);
	cl_unsafe_leave(&us);
	assert_int_equal(a.ino, first + 2);
	assert_int_equal(a.gen, gen);
	assert_int_equal(a.mtime.tv_sec, when / 1000000000);
	assert_int_equal(a.mtime.tv_nsec, when % 1000000000);
	assert_int_equal(meta_lookup(fx->scx.st, META_ROOT_INO, "own", &a), 0);
	assert_int_equal(a.ino, first + 2);
	assert_true(meta_store_local_pending(fx->scx.st));
	/* The request is over: the next create gets the store's own number. */
	assert_int_equal(meta_mknod(fx->scx.st, META_ROOT_INO, "plain", S_IFREG | 0644, 0, NULL,
				    &vc, &a), 0);
	assert_true(a.ino >= first + 4);
}

/* ---- replay, on a one-node cluster in this process ------------------------ */

/* A one-node cluster on a volume file: its node is the metadata server. */
struct node_fx {
	char dir[256], vol[300], conf[300];
	struct cl_ctx *cx;
	struct xvm_vol *dev;
	struct vn_table *vt;
};

static int no_inval(void *arg, uint64_t ino)
{
	(void)arg;
	(void)ino;
	return 0;
}

static int no_inval_entry(void *arg, uint64_t dir, const char *name)
{
	(void)arg;
	(void)dir;
	(void)name;
	return 0;
}

/* A TCP port free on 127.0.0.1 now. */
static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int node_setup(void **state)
{
	struct node_fx *nf = calloc(1, sizeof(*nf));
	struct xvm_open_opts o = { .create_size = VOLUME_SIZE };
	struct cl_opts co = { 0 };
	struct meta_store *st = NULL;
	struct vn_meta_fs *mfs = NULL;
	char err[512] = "", path[320];
	FILE *f;

	if (!nf)
		return -1;
	snprintf(nf->dir, sizeof(nf->dir), "%s/cxfs-test-replay-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(nf->dir))
		return -1;
	snprintf(nf->vol, sizeof(nf->vol), "%s/vol", nf->dir);
	snprintf(nf->conf, sizeof(nf->conf), "%s/cluster.conf", nf->dir);
	snprintf(path, sizeof(path), "%s/key", nf->dir);
	f = fopen(path, "w");
	if (!f || fprintf(f, "%s%s", "0123456789abcdef0123456789abcdef",
			  "0123456789abcdef0123456789abcdef") < 0 || fclose(f) || chmod(path, 0600))
		return -1;
	f = fopen(nf->conf, "w");
	if (!f || fprintf(f, "cluster replay\nsecret key\nnode n1\naddress 127.0.0.1\nport %d\n"
			  "serve yes\nfilesystem fs\nvolume %s\nservers n1\n", free_port(),
			  nf->vol) < 0 || fclose(f))
		return -1;
	/* Formatted and used once: transactions were committed before the server's open. */
	if (xvm_open((const char *const[]){ nf->vol }, 1, &o, &nf->dev, NULL, 0) ||
	    meta_store_format(nf->dev, "replay", 0, 0, 0, err, sizeof(err)) ||
	    meta_store_open(nf->dev, NULL, &st, err, sizeof(err)))
		return -1;
	meta_store_close(st);
	st = NULL;
	xvm_close(nf->dev);
	nf->dev = NULL;
	co.config = nf->conf;
	co.node = "n1";
	co.inval = no_inval;
	co.inval_entry = no_inval_entry;
	co.inval_attr = no_inval;
	if (cl_start(&co, &nf->cx, err, sizeof(err)) || !cl_is_server(nf->cx)) {
		fprintf(stderr, "cl_start: %s\n", err);
		return -1;
	}
	o.create_size = 0;
	if (xvm_open((const char *const[]){ nf->vol }, 1, &o, &nf->dev, NULL, 0) ||
	    cl_register(nf->cx, nf->dev, err, sizeof(err)) ||
	    meta_store_open(nf->dev, NULL, &st, err, sizeof(err)) || vn_meta_fs_create(st, &mfs) ||
	    cl_attach(nf->cx, nf->dev, st, mfs, err, sizeof(err)) ||
	    vn_table_create(cl_shape, nf->cx, &nf->vt)) {
		fprintf(stderr, "attach: %s\n", err);
		return -1;
	}
	vn_meta_fs_set_table(mfs, nf->vt);
	cl_set_table(nf->cx, nf->vt);
	*state = nf;
	return 0;
}

static int node_teardown(void **state)
{
	struct node_fx *nf = *state;
	char path[320];

	cl_quiesce(nf->cx);
	vn_table_purge(nf->vt);
	cl_stop(nf->cx);
	vn_table_destroy(nf->vt);
	xvm_close(nf->dev);
	unlink(nf->vol);
	unlink(nf->conf);
	snprintf(path, sizeof(path), "%s/key", nf->dir);
	unlink(path);
	rmdir(nf->dir);
	free(nf);
	return 0;
}

/* A kept request as a node would collect it: @body of @type and @rep, packed. */
static Cxfs__UnsafeReq *kept_req(uint64_t reqid, uint64_t seq, Cxfs__MsgType type,
				 const ProtobufCMessage *body, Cxfs__MsgType rt,
				 const ProtobufCMessage *rep)
{
	int64_t bl = rpc_msg_pack(type, body, NULL, 0), rl = rpc_msg_pack(rt, rep, NULL, 0);
	Cxfs__UnsafeReq *u = malloc(sizeof(*u) + (size_t)bl + (size_t)rl);

	assert_non_null(u);
	cxfs__unsafe_req__init(u);
	u->node = 1;
	u->reqid = reqid;
	u->seq = seq;
	u->type = type;
	u->body.data = (uint8_t *)(u + 1);
	u->body.len = (size_t)bl;
	u->reply.data = u->body.data + bl;
	u->reply.len = (size_t)rl;
	assert_int_equal(rpc_msg_pack(type, body, u->body.data, u->body.len), bl);
	assert_int_equal(rpc_msg_pack(rt, rep, u->reply.data, u->reply.len), rl);
	return u;
}

/* The kept create of @name (its reply: inode @ino, generation @gen, transaction @txn). */
static Cxfs__UnsafeReq *kept_create(uint64_t reqid, uint64_t seq, const char *name, uint64_t ino,
				    uint64_t gen, uint64_t txn)
{
	Cxfs__MknodReq m = CXFS__MKNOD_REQ__INIT;
	Cxfs__AttrReply r = CXFS__ATTR_REPLY__INIT;
	Cxfs__Cred cred = CXFS__CRED__INIT;
	Cxfs__Attr a;
	Cxfs__Timespec ts[4];
	struct vn_attr va = { .ino = ino, .gen = gen, .mode = S_IFREG | 0644, .nlink = 1 };

	m.ino = META_ROOT_INO;
	m.cred = &cred;
	m.name = (char *)name;
	m.mode = S_IFREG | 0644;
	m.has_reqid = 1;
	m.reqid = reqid;
	clw_attr_to_pb(&va, &a, ts);
	r.attr = &a;
	r.has_txn = r.has_seq = 1;
	r.txn = txn;
	r.seq = seq;
	return kept_req(reqid, seq, CXFS__MSG_TYPE__MKNOD_REQ, &m.base, CXFS__MSG_TYPE__ATTR_REPLY,
			&r.base);
}

static void test_replay(void **state)
{
	struct node_fx *nf = *state;
	struct cl_ctx *cx = nf->cx;
	uint64_t lost = meta_store_txn_at_open(cx->st) + 1, committed = lost - 1;
	Cxfs__AllocReq al = CXFS__ALLOC_REQ__INIT;
	Cxfs__AllocReply ar = CXFS__ALLOC_REPLY__INIT;
	Cxfs__Extent ext = CXFS__EXTENT__INIT, *extp = &ext;
	Cxfs__WriteDone wd = CXFS__WRITE_DONE__INIT;
	Cxfs__AttrReply wr = CXFS__ATTR_REPLY__INIT;
	Cxfs__Extent wext = CXFS__EXTENT__INIT, *wextp = &wext;
	Cxfs__UnsafeReq *v[6];
	struct cl_unsafe_stats st;
	struct meta_map map;
	struct vn_attr a;

	/* In the array out of order: the replay sorts by seq (the allocation needs the create). */
	al.ino = 5000;
	al.file_block = 0;
	al.count = 4;
	al.has_reqid = 1;
	al.reqid = 12;
	ext.file_block = 0;
	ext.volume_block = 7777;
	ext.count = 4;
	ext.state = CXFS__EXTENT_STATE__EXTENT_UNWRITTEN;
	ar.n_extents = 1;
	ar.extents = &extp;
	ar.has_txn = ar.has_seq = 1;
	ar.txn = lost;
	ar.seq = 21;
	v[0] = kept_req(12, 21, CXFS__MSG_TYPE__ALLOC_REQ, &al.base, CXFS__MSG_TYPE__ALLOC_REPLY,
			&ar.base);
	v[1] = kept_create(11, 20, "made", 5000, 77, lost);
	/* Committed before the open: skipped (not made). */
	v[2] = kept_create(10, 19, "committed", 6000, 77, committed);
	/* A body that is not a request of its type, and a type a node never keeps. */
	v[3] = kept_create(13, 22, "bad", 7000, 77, lost);
	memset(v[3]->body.data, 0xff, v[3]->body.len);
	v[4] = kept_create(14, 23, "getattr", 7001, 77, lost);
	v[4]->type = CXFS__MSG_TYPE__GETATTR_REQ;
	/* The node wrote the blocks and published them: after the allocation (seq). */
	wd.ino = 5000;
	wext = ext;
	wext.state = CXFS__EXTENT_STATE__EXTENT_DATA;
	wd.n_written = 1;
	wd.written = &wextp;
	wd.has_size = 1;
	wd.size = 16384;
	wd.has_reqid = 1;
	wd.reqid = 15;
	wr.has_txn = wr.has_seq = 1;
	wr.txn = lost;
	wr.seq = 24;
	v[5] = kept_req(15, 24, CXFS__MSG_TYPE__WRITE_DONE, &wd.base, CXFS__MSG_TYPE__ATTR_REPLY,
			&wr.base);

	assert_int_equal(cl_unsafe_replay(cx, v, 6, &st), 0);
	assert_int_equal(st.applied, 3);
	assert_int_equal(st.skipped, 1);
	assert_int_equal(st.failed, 2);
	/* The create took the recorded identity, the allocation the recorded blocks, written. */
	assert_int_equal(meta_lookup(cx->st, META_ROOT_INO, "made", &a), 0);
	assert_int_equal(a.ino, 5000);
	assert_int_equal(a.gen, 77);
	assert_int_equal(meta_lookup(cx->st, META_ROOT_INO, "committed", &a), -ENOENT);
	assert_int_equal(meta_map_read(cx->st, 5000, 0, 4, &map, 1), 1);
	assert_int_equal(map.pblk, 7777);
	assert_int_equal(map.nblk, 4);
	assert_int_equal(map.state, META_MAP_DATA);
	assert_int_equal(meta_getattr(cx->st, 5000, &a), 0);
	assert_int_equal(a.size, 16384);
	/* Committed by the replay; the create's row answers a later copy of it. */
	{
		struct meta_req row = { 0 };
		uint64_t durable;

		meta_store_txns(cx->st, NULL, &durable);
		assert_true(durable > committed);
		assert_int_equal(meta_req_find(cx->st, 1, 11, &row), 1);
		assert_int_equal(row.ino, 5000);
	}
	for (int i = 0; i < 6; i++)
		free(v[i]);
}

/* The kept return by node 1 of SIZE and TIMES of @ino with @size. */
static Cxfs__UnsafeReq *kept_return(uint64_t reqid, uint64_t seq, uint64_t ino, uint64_t size,
				    uint64_t txn)
{
	Cxfs__TokenReturn m = CXFS__TOKEN_RETURN__INIT;
	Cxfs__StatusReply r = CXFS__STATUS_REPLY__INIT;
	Cxfs__TokenState buf[TOK_NTOKENS], *ptrs[TOK_NTOKENS];
	struct tok_set s;

	tok_set_clear(&s);
	tok_set_add(&s, TOK_SIZE, TOK_WRITE);
	tok_set_add(&s, TOK_TIMES, TOK_WRITE);
	m.ino = ino;
	m.n_held = clw_toks_to_pb(&s, buf, ptrs);
	m.held = ptrs;
	m.has_size = 1;
	m.size = size;
	m.has_reqid = 1;
	m.reqid = reqid;
	r.has_txn = r.has_seq = 1;
	r.txn = txn;
	r.seq = seq;
	return kept_req(reqid, seq, CXFS__MSG_TYPE__TOKEN_RETURN, &m.base,
			CXFS__MSG_TYPE__STATUS_REPLY, &r.base);
}

static void count_reply(void *arg, Cxfs__MsgType type, const ProtobufCMessage *msg)
{
	(void)type;
	(void)msg;
	(*(int *)arg)++;
}

/* Node 1's return (@u's body) handled now, as if it came again after a recovery. */
static void handle_again(struct cl_ctx *cx, const Cxfs__UnsafeReq *u)
{
	ProtobufCMessage *m = NULL;
	struct rpc_req *req;
	int replies = 0;

	assert_int_equal(rpc_msg_unpack(CXFS__MSG_TYPE__TOKEN_RETURN, u->body.data, u->body.len, &m),
			 0);
	req = rpc_req_local(CXFS__MSG_TYPE__TOKEN_RETURN, count_reply, &replies);
	assert_non_null(req);
	assert_int_equal(cl_server_handle(cx, 1, req, CXFS__MSG_TYPE__TOKEN_RETURN, m), 0);
	assert_int_equal(replies, 1);
	rpc_req_local_free(req);
	rpc_msg_free(m);
}

/*
 * A token return's size goes into the store only from a node that holds
 * SIZE at a writing level, or replayed (no grant is back then): a return
 * the server that died had taken comes again without the tokens
 * (tokens_reconstruct in cl_role.c), its size older than the new holder's.
 */
static void test_return_state(void **state)
{
	struct node_fx *nf = *state;
	struct cl_ctx *cx = nf->cx;
	uint64_t lost = meta_store_txn_at_open(cx->st) + 1;
	Cxfs__UnsafeReq *v[4];
	struct cl_unsafe_stats st;
	struct tok_set w;
	struct vn_attr a;
	uint64_t size;

	v[0] = kept_create(30, 40, "ret", 5100, 78, lost);
	v[1] = kept_return(31, 41, 5100, 100, lost);
	assert_int_equal(cl_unsafe_replay(cx, v, 2, &st), 0);
	assert_int_equal(st.applied, 2);
	assert_int_equal(meta_getattr(cx->st, 5100, &a), 0);
	assert_int_equal(a.size, 100);
	/* Taken before: node 1 holds nothing now; its older size stays out. */
	v[2] = kept_return(32, 42, 5100, 50, lost);
	handle_again(cx, v[2]);
	assert_int_equal(meta_getattr(cx->st, 5100, &a), 0);
	assert_int_equal(a.size, 100);
	/* Its return still due: it holds SIZE WRITE, its size is the file's. */
	tok_set_clear(&w);
	tok_set_add(&w, TOK_SIZE, TOK_WRITE);
	tok_set_add(&w, TOK_TIMES, TOK_WRITE);
	assert_int_equal(tok_server_import(cx->ts, 1, 5100, &w), 0);
	v[3] = kept_return(33, 43, 5100, 70, lost);
	handle_again(cx, v[3]);
	assert_int_equal(meta_getattr(cx->st, 5100, &a), 0);
	assert_int_equal(a.size, 70);
	/*
	 * The same return again (its answer was lost) where the tokens are
	 * back as held (a new server took them from the node's share): answered
	 * from the table, the tokens go, the size stays another's.
	 */
	assert_int_equal(tok_server_import(cx->ts, 1, 5100, &w), 0);
	size = 90;
	assert_int_equal(meta_apply_state(cx->st, 5100, NULL, NULL, NULL, &size, false), 0);
	handle_again(cx, v[3]);
	assert_int_equal(meta_getattr(cx->st, 5100, &a), 0);
	assert_int_equal(a.size, 90);
	tok_server_held(cx->ts, 1, 5100, &w);
	assert_true(tok_set_empty(&w));
	for (int i = 0; i < 4; i++)
		free(v[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kept_until_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_id_answered_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_create_here, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay, node_setup, node_teardown),
		cmocka_unit_test_setup_teardown(test_return_state, node_setup, node_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
