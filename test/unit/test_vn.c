/*
 * test_vn.c - unit tests of the vnode core (src/vnode/vn.c): chain order and
 * dispatch, chain edits atomic against concurrent operations, references and
 * teardown, the vnode table under concurrency, and the -VN_EMIGRATING
 * protocol with real threads (a waiter inside the chain releases the head
 * lock to a relocation and continues in the new chain).
 *
 * cmocka assertions are made on the main thread only; worker threads count
 * failures in atomics that the main thread checks.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vnode/vn.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------------- */
/* Fixture: a table whose shape callback the test configures.              */
/* ---------------------------------------------------------------------- */

struct fx {
	struct vn_table *t;
	atomic_int shapes;           /* shape callback calls */
	atomic_int inactives;        /* VN_OP_INACTIVE calls */
	atomic_int destroys;         /* destroy() calls */
	atomic_int live;             /* vnodes shaped and not yet destroyed */
	atomic_int violations;       /* two live vnodes of one inode */
	long shape_delay_ms;         /* widen the construction window */
	uint64_t fail_ino;           /* shape fails (after pushing) for this inode */
	bool push_meta;              /* shape pushes a counting meta behavior */
};

static int meta_inactive(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct fx *f = self->priv;

	atomic_fetch_add(&f->inactives, 1);
	return 0;
}

static int meta_getattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	c->u.getattr.attr->ino = vn_ino(vn);
	return 0;
}

static void meta_destroy(struct vn_bhv *self, struct vnode *vn)
{
	struct fx *f = self->priv;

	atomic_fetch_add(&f->destroys, 1);
	atomic_fetch_sub(&f->live, 1);
	free(self);
}

static const struct vn_ops meta_ops = {
	.name = "meta",
	.position = VN_POS_META,
	.op = { [VN_OP_INACTIVE] = meta_inactive, [VN_OP_GETATTR] = meta_getattr },
	.destroy = meta_destroy,
};

static int fx_shape(void *arg, struct vnode *vn)
{
	struct fx *f = arg;
	struct vn_bhv *b;
	int rc;

	atomic_fetch_add(&f->shapes, 1);
	if (f->shape_delay_ms)
		sleep_ms(f->shape_delay_ms);
	if (!f->push_meta)
		return 0;
	if (atomic_fetch_add(&f->live, 1) != 0)
		atomic_fetch_add(&f->violations, 1);
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ops = &meta_ops;
	b->priv = f;
	rc = vn_bhv_insert(vn, b);
	if (rc) {
		free(b);
		return rc;
	}
	return vn_ino(vn) == f->fail_ino ? -EIO : 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || vn_table_create(fx_shape, f, &f->t)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(vn_table_count(f->t), 0);
	vn_table_destroy(f->t);
	free(f);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Test behaviors: each counts its entries; most pass the call on.         */
/* ---------------------------------------------------------------------- */

struct tb {
	struct vn_bhv bhv;           /* on the chain; bhv.priv points back here */
	int id;                      /* added to the result by tb_add */
	atomic_int entered;          /* calls of any op */
	char *trace;                 /* tb_trace appends id here if set */
};

static void tb_init(struct tb *b, const struct vn_ops *ops, int id)
{
	memset(b, 0, sizeof(*b));
	b->bhv.ops = ops;
	b->bhv.priv = b;
	b->id = id;
}

static struct tb *tb_of(struct vn_bhv *self)
{
	return self->priv;
}

/* Appends its id to the trace and passes on. */
static int tb_trace(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct tb *b = tb_of(self);

	atomic_fetch_add(&b->entered, 1);
	if (b->trace) {
		size_t n = strlen(b->trace);

		b->trace[n] = (char)('0' + b->id);
		b->trace[n + 1] = '\0';
	}
	return vn_next(self, vn, c);
}

/* Returns its id plus whatever the rest of the chain returns. */
static int tb_add(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct tb *b = tb_of(self);
	int rc;

	atomic_fetch_add(&b->entered, 1);
	rc = vn_next(self, vn, c);
	if (rc == -EOPNOTSUPP)
		rc = 0;
	return rc < 0 ? rc : rc + b->id;
}

/* Returns its id and stops. */
static int tb_leaf(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct tb *b = tb_of(self);

	atomic_fetch_add(&b->entered, 1);
	return b->id;
}

#define TRACE_OPS(nm, pos) \
	{ .name = nm, .position = pos, .op = { [VN_OP_GETATTR] = tb_trace, [VN_OP_READ] = tb_trace } }

static const struct vn_ops trace_top = TRACE_OPS("top", VN_POS_TEST_TOP);
static const struct vn_ops trace_dmapi = TRACE_OPS("dmapi", VN_POS_DMAPI);
static const struct vn_ops trace_meta = TRACE_OPS("meta", VN_POS_META);
/* Implements READ only: GETATTR passes through it. */
static const struct vn_ops trace_server_readonly = {
	.name = "server", .position = VN_POS_SERVER, .op = { [VN_OP_READ] = tb_trace },
};

static int call_op(struct vnode *vn, enum vn_opcode op)
{
	struct vn_attr attr;
	char buf[8];
	struct vn_call c = { .op = op };

	if (op == VN_OP_GETATTR)
		c.u.getattr.attr = &attr;
	else if (op == VN_OP_READ) {
		c.u.read.buf = buf;
		c.u.read.size = sizeof(buf);
	}
	return vn_call(vn, &c);
}

/* Take the test behaviors off before the vnode goes (they live on the stack). */
static void strip(struct vnode *vn, struct tb **bs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		vn_bhv_remove(vn, &bs[i]->bhv);
}

/* ---------------------------------------------------------------------- */
/* Chain order and dispatch                                                */
/* ---------------------------------------------------------------------- */

static void test_chain_order(void **state)
{
	struct fx *f = *state;
	struct vnode *vn;
	struct tb top, dm, meta, dup;
	char trace[16] = "";

	assert_int_equal(vn_get(f->t, 1, &vn), 0);
	tb_init(&top, &trace_top, 5);
	tb_init(&dm, &trace_dmapi, 4);
	tb_init(&meta, &trace_meta, 1);
	top.trace = dm.trace = meta.trace = trace;
	/* Insertion order does not matter; position does. */
	assert_int_equal(vn_bhv_insert(vn, &meta.bhv), 0);
	assert_int_equal(vn_bhv_insert(vn, &top.bhv), 0);
	assert_int_equal(vn_bhv_insert(vn, &dm.bhv), 0);
	tb_init(&dup, &trace_dmapi, 9);
	assert_int_equal(vn_bhv_insert(vn, &dup.bhv), -EEXIST);

	/* Every behavior passes on; nobody below meta: -EOPNOTSUPP. */
	assert_int_equal(call_op(vn, VN_OP_GETATTR), -EOPNOTSUPP);
	assert_string_equal(trace, "541");

	assert_ptr_equal(vn_bhv_find(vn, VN_POS_DMAPI), &dm.bhv);
	assert_ptr_equal(vn_bhv_find(vn, VN_POS_META), &meta.bhv);
	assert_null(vn_bhv_find(vn, VN_POS_SERVER));

	strip(vn, (struct tb *[]){ &top, &dm, &meta }, 3);
	vn_put(vn, 1);
}

static void test_passthrough_null_entries(void **state)
{
	struct fx *f = *state;
	struct vnode *vn;
	struct tb dm, srv, meta;
	char trace[16] = "";

	assert_int_equal(vn_get(f->t, 1, &vn), 0);
	tb_init(&dm, &trace_dmapi, 4);
	tb_init(&srv, &trace_server_readonly, 2);
	tb_init(&meta, &trace_meta, 1);
	dm.trace = srv.trace = meta.trace = trace;
	assert_int_equal(vn_bhv_insert(vn, &srv.bhv), 0);
	assert_int_equal(vn_bhv_insert(vn, &meta.bhv), 0);
	assert_int_equal(vn_bhv_insert(vn, &dm.bhv), 0);

	assert_int_equal(call_op(vn, VN_OP_GETATTR), -EOPNOTSUPP);
	assert_string_equal(trace, "41");
	trace[0] = '\0';
	assert_int_equal(call_op(vn, VN_OP_READ), -EOPNOTSUPP);
	assert_string_equal(trace, "421");
	/* Nobody implements WRITE: the head passes it to the bottom. */
	assert_int_equal(call_op(vn, VN_OP_WRITE), -EOPNOTSUPP);
	assert_int_equal(atomic_load(&dm.entered), 2);

	strip(vn, (struct tb *[]){ &dm, &srv, &meta }, 3);
	vn_put(vn, 1);
}

static void test_enosys_and_einval(void **state)
{
	struct fx *f = *state;
	struct vnode *vn;
	struct vn_call c = { .op = VN_OP__COUNT };

	assert_int_equal(vn_get(f->t, 1, &vn), 0);
	assert_int_equal(call_op(vn, VN_OP_GETATTR), -EOPNOTSUPP);
	assert_int_equal(vn_call(vn, &c), -EINVAL);
	vn_put(vn, 1);
}

static const struct vn_ops leaf_server = {
	.name = "server", .position = VN_POS_SERVER, .op = { [VN_OP_GETATTR] = tb_leaf },
};
static const struct vn_ops leaf_client = {
	.name = "client", .position = VN_POS_CLIENT, .op = { [VN_OP_GETATTR] = tb_leaf },
};
static const struct vn_ops leaf_top = {
	.name = "top", .position = VN_POS_TEST_TOP, .op = { [VN_OP_GETATTR] = tb_leaf },
};

static void test_edit_errors(void **state)
{
	struct fx *f = *state;
	struct vnode *vn;
	struct tb dm, srv, cli, top, meta;

	assert_int_equal(vn_get(f->t, 1, &vn), 0);
	tb_init(&dm, &trace_dmapi, 4);
	tb_init(&srv, &leaf_server, 2);
	tb_init(&cli, &leaf_client, 3);
	tb_init(&top, &leaf_top, 5);
	tb_init(&meta, &trace_meta, 1);
	assert_int_equal(vn_bhv_insert(vn, &dm.bhv), 0);
	assert_int_equal(vn_bhv_insert(vn, &srv.bhv), 0);
	assert_int_equal(vn_bhv_insert(vn, &meta.bhv), 0);

	assert_int_equal(vn_bhv_remove(vn, &cli.bhv), -ENOENT);
	assert_int_equal(vn_bhv_replace(vn, &cli.bhv, &top.bhv), -ENOENT);
	/* top (50) cannot sit below dmapi (40). */
	assert_int_equal(vn_bhv_replace(vn, &srv.bhv, &top.bhv), -EINVAL);
	/* meta's position is taken by meta itself. */
	assert_int_equal(vn_bhv_replace(vn, &srv.bhv, &meta.bhv), -EEXIST);
	assert_int_equal(call_op(vn, VN_OP_GETATTR), 2);

	assert_int_equal(vn_bhv_replace(vn, &srv.bhv, &cli.bhv), 0);
	assert_null(srv.bhv.next);
	assert_ptr_equal(vn_bhv_find(vn, VN_POS_CLIENT), &cli.bhv);
	assert_null(vn_bhv_find(vn, VN_POS_SERVER));
	assert_int_equal(call_op(vn, VN_OP_GETATTR), 3);

	assert_int_equal(vn_bhv_remove(vn, &cli.bhv), 0);
	assert_int_equal(call_op(vn, VN_OP_GETATTR), -EOPNOTSUPP);

	strip(vn, (struct tb *[]){ &dm, &meta }, 2);
	vn_put(vn, 1);
}

/* ---------------------------------------------------------------------- */
/* Chain edits are atomic with respect to concurrent operations            */
/* ---------------------------------------------------------------------- */

struct atomic_ctx {
	struct vnode *vn;
	atomic_bool stop;
	atomic_int calls;
	atomic_int torn;             /* two passes in one op saw different chains */
	atomic_int bad;              /* a result no whole chain produces */
};

/* The head walks the rest of the chain twice: both passes must agree. */
static int twice_top(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	int r1, r2;

	r1 = vn_next(self, vn, c);
	sched_yield();
	r2 = vn_next(self, vn, c);
	return r1 == r2 ? r1 : -EPROTO;
}

static const struct vn_ops twice_ops = {
	.name = "top", .position = VN_POS_TEST_TOP, .op = { [VN_OP_GETATTR] = twice_top },
};
static const struct vn_ops add_a = {
	.name = "A", .position = VN_POS_CLIENT, .op = { [VN_OP_GETATTR] = tb_add },
};
static const struct vn_ops add_b = {
	.name = "B", .position = VN_POS_CLIENT, .op = { [VN_OP_GETATTR] = tb_add },
};
static const struct vn_ops add_e = {
	.name = "E", .position = VN_POS_SERVER, .op = { [VN_OP_GETATTR] = tb_add },
};
static const struct vn_ops add_bottom = {
	.name = "bottom", .position = VN_POS_META, .op = { [VN_OP_GETATTR] = tb_add },
};

static void *atomic_caller(void *arg)
{
	struct atomic_ctx *a = arg;

	while (!atomic_load(&a->stop)) {
		int rc = call_op(a->vn, VN_OP_GETATTR);

		atomic_fetch_add(&a->calls, 1);
		if (rc == -EPROTO)
			atomic_fetch_add(&a->torn, 1);
		else if (rc != 101 && rc != 111 && rc != 201 && rc != 211)
			atomic_fetch_add(&a->bad, 1);
	}
	return NULL;
}

struct edit_ctx {
	struct vnode *vn;
	struct tb *a, *b, *e;
	int rounds;
	atomic_int errors;
};

static void *replacer(void *arg)
{
	struct edit_ctx *x = arg;

	for (int i = 0; i < x->rounds; i++) {
		if (vn_bhv_replace(x->vn, &x->a->bhv, &x->b->bhv))
			atomic_fetch_add(&x->errors, 1);
		if (vn_bhv_replace(x->vn, &x->b->bhv, &x->a->bhv))
			atomic_fetch_add(&x->errors, 1);
	}
	return NULL;
}

static void *inserter(void *arg)
{
	struct edit_ctx *x = arg;

	for (int i = 0; i < x->rounds; i++) {
		if (vn_bhv_insert(x->vn, &x->e->bhv))
			atomic_fetch_add(&x->errors, 1);
		if (vn_bhv_remove(x->vn, &x->e->bhv))
			atomic_fetch_add(&x->errors, 1);
	}
	return NULL;
}

static void test_edits_atomic(void **state)
{
	struct fx *f = *state;
	struct atomic_ctx a = { 0 };
	struct edit_ctx x = { 0 };
	struct tb top, ba, bb, be, bottom;
	pthread_t callers[4], rep, ins;

	assert_int_equal(vn_get(f->t, 1, &a.vn), 0);
	tb_init(&top, &twice_ops, 0);
	tb_init(&ba, &add_a, 100);
	tb_init(&bb, &add_b, 200);
	tb_init(&be, &add_e, 10);
	tb_init(&bottom, &add_bottom, 1);
	assert_int_equal(vn_bhv_insert(a.vn, &top.bhv), 0);
	assert_int_equal(vn_bhv_insert(a.vn, &ba.bhv), 0);
	assert_int_equal(vn_bhv_insert(a.vn, &bottom.bhv), 0);

	for (size_t i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&callers[i], NULL, atomic_caller, &a), 0);
	x.vn = a.vn;
	x.a = &ba;
	x.b = &bb;
	x.e = &be;
	x.rounds = 2000;
	assert_int_equal(pthread_create(&rep, NULL, replacer, &x), 0);
	assert_int_equal(pthread_create(&ins, NULL, inserter, &x), 0);
	pthread_join(rep, NULL);
	pthread_join(ins, NULL);
	atomic_store(&a.stop, true);
	for (size_t i = 0; i < 4; i++)
		pthread_join(callers[i], NULL);

	assert_int_equal(atomic_load(&x.errors), 0);
	assert_int_equal(atomic_load(&a.torn), 0);
	assert_int_equal(atomic_load(&a.bad), 0);
	assert_true(atomic_load(&a.calls) > 0);
	assert_int_equal(call_op(a.vn, VN_OP_GETATTR), 101);

	strip(a.vn, (struct tb *[]){ &top, &ba, &bottom }, 3);
	vn_put(a.vn, 1);
}

/* Operations that overlap all the time must not starve a chain edit. */
static int slow_leaf(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	sleep_ms(2);
	return 7;
}

static const struct vn_ops slow_ops = {
	.name = "slow", .position = VN_POS_META, .op = { [VN_OP_GETATTR] = slow_leaf },
};

static void test_writer_not_starved(void **state)
{
	struct fx *f = *state;
	struct atomic_ctx a = { 0 };
	struct tb slow, e;
	pthread_t callers[6];

	assert_int_equal(vn_get(f->t, 1, &a.vn), 0);
	tb_init(&slow, &slow_ops, 0);
	tb_init(&e, &add_e, 10);
	assert_int_equal(vn_bhv_insert(a.vn, &slow.bhv), 0);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(pthread_create(&callers[i], NULL, atomic_caller, &a), 0);
	sleep_ms(20);
	/* With a reader-preferring lock these would wait for the callers to stop. */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(vn_bhv_insert(a.vn, &e.bhv), 0);
		assert_int_equal(vn_bhv_remove(a.vn, &e.bhv), 0);
	}
	atomic_store(&a.stop, true);
	for (size_t i = 0; i < 6; i++)
		pthread_join(callers[i], NULL);
	strip(a.vn, (struct tb *[]){ &slow }, 1);
	vn_put(a.vn, 1);
}

/* ---------------------------------------------------------------------- */
/* References and the table                                                */
/* ---------------------------------------------------------------------- */

static void test_refcount_inactive_destroy(void **state)
{
	struct fx *f = *state;
	struct vnode *v1, *v2;
	struct vn_attr attr = { 0 };
	struct vn_call c = { .op = VN_OP_GETATTR, .u.getattr.attr = &attr };

	f->push_meta = true;
	assert_int_equal(vn_get(f->t, 77, &v1), 0);
	assert_int_equal(vn_get(f->t, 77, &v2), 0);
	assert_ptr_equal(v1, v2);
	assert_int_equal(vn_ino(v1), 77);
	assert_int_equal(vn_table_count(f->t), 1);
	assert_int_equal(atomic_load(&f->shapes), 1);
	assert_int_equal(vn_call(v1, &c), 0);
	assert_int_equal(attr.ino, 77);

	vn_hold(v1);
	vn_put(v1, 2);
	assert_int_equal(atomic_load(&f->inactives), 0);
	assert_int_equal(atomic_load(&f->destroys), 0);
	vn_put(v1, 1);
	assert_int_equal(atomic_load(&f->inactives), 1);
	assert_int_equal(atomic_load(&f->destroys), 1);
	assert_int_equal(vn_table_count(f->t), 0);

	/* A new reference builds a new vnode. */
	assert_int_equal(vn_get(f->t, 77, &v1), 0);
	assert_int_equal(atomic_load(&f->shapes), 2);
	vn_put(v1, 1);
	assert_int_equal(atomic_load(&f->destroys), 2);
}

static void test_shape_failure(void **state)
{
	struct fx *f = *state;
	struct vnode *vn = NULL;

	f->push_meta = true;
	f->fail_ino = 13;
	assert_int_equal(vn_get(f->t, 13, &vn), -EIO);
	assert_null(vn);
	assert_int_equal(vn_table_count(f->t), 0);
	/* What the shape pushed is destroyed; it never was active. */
	assert_int_equal(atomic_load(&f->destroys), 1);
	assert_int_equal(atomic_load(&f->inactives), 0);
}

struct getter_ctx {
	struct fx *f;
	pthread_barrier_t *start;
	uint64_t ino;
	int iters;
	struct vnode *got;           /* single-shot mode: the vnode obtained */
	atomic_int *errors;
};

static void *getter_once(void *arg)
{
	struct getter_ctx *g = arg;

	pthread_barrier_wait(g->start);
	if (vn_get(g->f->t, g->ino, &g->got))
		atomic_fetch_add(g->errors, 1);
	return NULL;
}

static void test_concurrent_get_one_vnode(void **state)
{
	struct fx *f = *state;
	enum { N = 8 };
	pthread_barrier_t start;
	struct getter_ctx g[N];
	pthread_t th[N];
	atomic_int errors = 0;

	f->push_meta = true;
	f->shape_delay_ms = 20;
	pthread_barrier_init(&start, NULL, N);
	for (size_t i = 0; i < N; i++) {
		g[i] = (struct getter_ctx){ .f = f, .start = &start, .ino = 42, .errors = &errors };
		assert_int_equal(pthread_create(&th[i], NULL, getter_once, &g[i]), 0);
	}
	for (size_t i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);

	assert_int_equal(atomic_load(&errors), 0);
	assert_int_equal(atomic_load(&f->shapes), 1);
	assert_int_equal(vn_table_count(f->t), 1);
	for (size_t i = 1; i < N; i++)
		assert_ptr_equal(g[i].got, g[0].got);
	vn_put(g[0].got, N);
	assert_int_equal(atomic_load(&f->inactives), 1);
	assert_int_equal(atomic_load(&f->destroys), 1);
}

static void *getter_loop(void *arg)
{
	struct getter_ctx *g = arg;
	struct vn_attr attr;
	struct vn_call c = { .op = VN_OP_GETATTR, .u.getattr.attr = &attr };
	struct vnode *vn;

	pthread_barrier_wait(g->start);
	for (int i = 0; i < g->iters; i++) {
		if (vn_get(g->f->t, g->ino, &vn)) {
			atomic_fetch_add(g->errors, 1);
			continue;
		}
		if (vn_call(vn, &c) || attr.ino != g->ino)
			atomic_fetch_add(g->errors, 1);
		vn_put(vn, 1);
	}
	return NULL;
}

/* vn_get racing with the final vn_put: never a freed or a second vnode. */
static void test_get_put_race(void **state)
{
	struct fx *f = *state;
	enum { N = 8 };
	pthread_barrier_t start;
	struct getter_ctx g[N];
	pthread_t th[N];
	atomic_int errors = 0;

	f->push_meta = true;
	pthread_barrier_init(&start, NULL, N);
	for (size_t i = 0; i < N; i++) {
		g[i] = (struct getter_ctx){ .f = f, .start = &start, .ino = 7, .iters = 3000,
					    .errors = &errors };
		assert_int_equal(pthread_create(&th[i], NULL, getter_loop, &g[i]), 0);
	}
	for (size_t i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);

	assert_int_equal(atomic_load(&errors), 0);
	assert_int_equal(atomic_load(&f->violations), 0);
	assert_int_equal(vn_table_count(f->t), 0);
	assert_true(atomic_load(&f->shapes) >= 1);
	assert_int_equal(atomic_load(&f->shapes), atomic_load(&f->inactives));
	assert_int_equal(atomic_load(&f->shapes), atomic_load(&f->destroys));
}

struct walk_ctx {
	struct fx *f;
	int seen;
	int inactive_during;         /* INACTIVE ran while the walk held the vnode */
};

static void walk_drop(struct vnode *vn, void *arg)
{
	struct walk_ctx *w = arg;
	int before = atomic_load(&w->f->inactives);

	w->seen++;
	/* Drop the caller's reference: the walk's own keeps the vnode. */
	vn_put(vn, 1);
	if (atomic_load(&w->f->inactives) != before)
		w->inactive_during++;
}

static void test_table_walk(void **state)
{
	struct fx *f = *state;
	struct vnode *vn;
	struct walk_ctx w = { .f = f };

	f->push_meta = true;
	for (uint64_t ino = 1; ino <= 5; ino++)
		assert_int_equal(vn_get(f->t, ino * 4096, &vn), 0);
	assert_int_equal(vn_table_count(f->t), 5);
	vn_table_walk(f->t, walk_drop, &w);
	assert_int_equal(w.seen, 5);
	assert_int_equal(w.inactive_during, 0);
	assert_int_equal(atomic_load(&f->inactives), 5);
	assert_int_equal(vn_table_count(f->t), 0);
}

/* ---------------------------------------------------------------------- */
/* -VN_EMIGRATING: a blocked operation yields the head lock to a rewrite    */
/* ---------------------------------------------------------------------- */

/*
 * dmapi passes on and records that the operation is in flight; server
 * waits (like a DMAPI event waiting for the HSM) until a rewrite is
 * announced, then answers -VN_EMIGRATING; client answers at once.
 */
struct emig {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int waiting;                 /* threads waiting inside server; mu */
	atomic_int inflight;         /* ops between dmapi entry and exit */
	atomic_int done;             /* ops returned from vn_call */
};

struct ebhv {
	struct vn_bhv bhv;           /* bhv.priv points back here */
	struct emig *e;
	int answer;                  /* what client returns */
	atomic_int entered;
};

static int e_dmapi(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct ebhv *b = self->priv;
	struct emig *e = b->e;
	int rc;

	atomic_fetch_add(&b->entered, 1);
	atomic_fetch_add(&e->inflight, 1);
	rc = vn_next(self, vn, c);
	atomic_fetch_sub(&e->inflight, 1);
	return rc;
}

static int e_server(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct ebhv *b = self->priv;
	struct emig *e = b->e;

	atomic_fetch_add(&b->entered, 1);
	pthread_mutex_lock(&e->mu);
	e->waiting++;
	pthread_cond_broadcast(&e->cv);
	while (!vn_rewrite_pending(vn))
		pthread_cond_wait(&e->cv, &e->mu);
	e->waiting--;
	pthread_mutex_unlock(&e->mu);
	return -VN_EMIGRATING;
}

static int e_client(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct ebhv *b = self->priv;

	atomic_fetch_add(&b->entered, 1);
	return b->answer;
}

static const struct vn_ops e_top_ops = {
	.name = "top", .position = VN_POS_TEST_TOP, .op = { [VN_OP_GETATTR] = e_dmapi },
};
static const struct vn_ops e_dmapi_ops = {
	.name = "dmapi", .position = VN_POS_DMAPI, .op = { [VN_OP_GETATTR] = e_dmapi },
};
static const struct vn_ops e_server_ops = {
	.name = "server", .position = VN_POS_SERVER, .op = { [VN_OP_GETATTR] = e_server },
};
static const struct vn_ops e_client_ops = {
	.name = "client", .position = VN_POS_CLIENT, .op = { [VN_OP_GETATTR] = e_client },
};
static const struct vn_ops e_meta_ops = {
	.name = "meta", .position = VN_POS_META, .op = { [VN_OP_GETATTR] = e_client },
};

static void ebhv_init(struct ebhv *b, const struct vn_ops *ops, struct emig *e, int answer)
{
	memset(b, 0, sizeof(*b));
	b->bhv.ops = ops;
	b->bhv.priv = b;
	b->e = e;
	b->answer = answer;
}

static void emig_init(struct emig *e)
{
	memset(e, 0, sizeof(*e));
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
}

static void emig_fini(struct emig *e)
{
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
}

/* Wait until @n threads wait inside server. */
static void emig_wait_for(struct emig *e, int n)
{
	pthread_mutex_lock(&e->mu);
	while (e->waiting < n)
		pthread_cond_wait(&e->cv, &e->mu);
	pthread_mutex_unlock(&e->mu);
}

/* Announce a rewrite and wake server's waiters. */
static void emig_announce(struct emig *e, struct vnode *vn)
{
	vn_rewrite_begin(vn);
	pthread_mutex_lock(&e->mu);
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

struct op_thread {
	struct vnode *vn;
	struct emig *e;
	int expect;                  /* stress: the answer the op must get */
	int rounds;                  /* stress: ops to run, one per round */
	pthread_barrier_t *start, *end;
	int rc;                      /* single op: its result */
	atomic_int *wrong;           /* stress: results not from the new chain */
	atomic_int *round_answer;    /* stress: the client's answer this round */
};

static void *op_once(void *arg)
{
	struct op_thread *o = arg;

	o->rc = call_op(o->vn, VN_OP_GETATTR);
	atomic_fetch_add(&o->e->done, 1);
	return NULL;
}

/* The patent's case: dmapi -> server -> meta becomes dmapi -> client -> meta. */
static void test_emigrate_continues_in_new_chain(void **state)
{
	struct fx *f = *state;
	struct emig e;
	struct ebhv dm, srv, cli, meta;
	struct op_thread o = { 0 };
	pthread_t th;
	int inflight_at_edit, done_at_edit;

	emig_init(&e);
	assert_int_equal(vn_get(f->t, 1, &o.vn), 0);
	o.e = &e;
	ebhv_init(&dm, &e_dmapi_ops, &e, 0);
	ebhv_init(&srv, &e_server_ops, &e, 0);
	ebhv_init(&cli, &e_client_ops, &e, 222);
	ebhv_init(&meta, &e_meta_ops, &e, 111);
	assert_int_equal(vn_bhv_insert(o.vn, &meta.bhv), 0);
	assert_int_equal(vn_bhv_insert(o.vn, &srv.bhv), 0);
	assert_int_equal(vn_bhv_insert(o.vn, &dm.bhv), 0);

	assert_int_equal(pthread_create(&th, NULL, op_once, &o), 0);
	emig_wait_for(&e, 1);

	/* The relocation: announce, then rewrite under the head write lock. */
	emig_announce(&e, o.vn);
	assert_int_equal(vn_bhv_replace(o.vn, &srv.bhv, &cli.bhv), 0);
	inflight_at_edit = atomic_load(&e.inflight);
	done_at_edit = atomic_load(&e.done);
	vn_rewrite_end(o.vn);
	pthread_join(th, NULL);

	/* The write lock was had while the op was still inside dmapi. */
	assert_int_equal(inflight_at_edit, 1);
	assert_int_equal(done_at_edit, 0);
	assert_int_equal(o.rc, 222);
	assert_int_equal(atomic_load(&dm.entered), 1);
	assert_int_equal(atomic_load(&srv.entered), 1);
	assert_int_equal(atomic_load(&cli.entered), 1);
	assert_int_equal(atomic_load(&meta.entered), 0);
	assert_false(vn_rewrite_pending(o.vn));

	vn_bhv_remove(o.vn, &dm.bhv);
	vn_bhv_remove(o.vn, &cli.bhv);
	vn_bhv_remove(o.vn, &meta.bhv);
	vn_put(o.vn, 1);
	emig_fini(&e);
}

/* The behavior that called vn_next is itself taken off: restart at the head. */
static void test_emigrate_caller_removed_restarts(void **state)
{
	struct fx *f = *state;
	struct emig e;
	struct ebhv dm, dm2, srv, cli;
	struct op_thread o = { 0 };
	pthread_t th;

	emig_init(&e);
	assert_int_equal(vn_get(f->t, 1, &o.vn), 0);
	o.e = &e;
	ebhv_init(&dm, &e_dmapi_ops, &e, 0);
	ebhv_init(&dm2, &e_dmapi_ops, &e, 0);
	ebhv_init(&srv, &e_server_ops, &e, 0);
	ebhv_init(&cli, &e_client_ops, &e, 333);
	assert_int_equal(vn_bhv_insert(o.vn, &srv.bhv), 0);
	assert_int_equal(vn_bhv_insert(o.vn, &dm.bhv), 0);

	assert_int_equal(pthread_create(&th, NULL, op_once, &o), 0);
	emig_wait_for(&e, 1);
	emig_announce(&e, o.vn);
	assert_int_equal(vn_bhv_replace(o.vn, &dm.bhv, &dm2.bhv), 0);
	assert_int_equal(vn_bhv_replace(o.vn, &srv.bhv, &cli.bhv), 0);
	assert_int_equal(atomic_load(&e.done), 0);
	vn_rewrite_end(o.vn);
	pthread_join(th, NULL);

	assert_int_equal(o.rc, 333);
	assert_int_equal(atomic_load(&dm.entered), 1);
	assert_int_equal(atomic_load(&dm2.entered), 1);
	assert_int_equal(atomic_load(&srv.entered), 1);
	assert_int_equal(atomic_load(&cli.entered), 1);

	vn_bhv_remove(o.vn, &dm2.bhv);
	vn_bhv_remove(o.vn, &cli.bhv);
	vn_put(o.vn, 1);
	emig_fini(&e);
}

/*
 * Nested: top -> dmapi -> server.  dmapi's vn_next finds dmapi gone and
 * gives up; top is still on the chain, so it carries on after itself.
 */
static void test_emigrate_nested_caller_continues(void **state)
{
	struct fx *f = *state;
	struct emig e;
	struct ebhv top, dm, srv, cli;
	struct op_thread o = { 0 };
	pthread_t th;

	emig_init(&e);
	assert_int_equal(vn_get(f->t, 1, &o.vn), 0);
	o.e = &e;
	ebhv_init(&top, &e_top_ops, &e, 0);
	ebhv_init(&dm, &e_dmapi_ops, &e, 0);
	ebhv_init(&srv, &e_server_ops, &e, 0);
	ebhv_init(&cli, &e_client_ops, &e, 444);
	assert_int_equal(vn_bhv_insert(o.vn, &srv.bhv), 0);
	assert_int_equal(vn_bhv_insert(o.vn, &dm.bhv), 0);
	assert_int_equal(vn_bhv_insert(o.vn, &top.bhv), 0);

	assert_int_equal(pthread_create(&th, NULL, op_once, &o), 0);
	emig_wait_for(&e, 1);
	emig_announce(&e, o.vn);
	assert_int_equal(vn_bhv_remove(o.vn, &dm.bhv), 0);
	assert_int_equal(vn_bhv_replace(o.vn, &srv.bhv, &cli.bhv), 0);
	assert_int_equal(atomic_load(&e.inflight), 2);
	vn_rewrite_end(o.vn);
	pthread_join(th, NULL);

	assert_int_equal(o.rc, 444);
	assert_int_equal(atomic_load(&top.entered), 1);
	assert_int_equal(atomic_load(&dm.entered), 1);
	assert_int_equal(atomic_load(&srv.entered), 1);
	assert_int_equal(atomic_load(&cli.entered), 1);

	vn_bhv_remove(o.vn, &top.bhv);
	vn_bhv_remove(o.vn, &cli.bhv);
	vn_put(o.vn, 1);
	emig_fini(&e);
}

/*
 * Stress: V vnodes with T threads each.  Every round all threads block in
 * server; the relocation announces on every vnode, swaps server for client
 * (answering this round's number) and ends; every op must come back with
 * that number.  Then server goes back for the next round.
 */
enum { ST_V = 4, ST_T = 4, ST_ROUNDS = 40 };

struct stress_vnode {
	struct vnode *vn;
	struct ebhv dm, srv, cli;
	struct emig e;
};

static void *op_rounds(void *arg)
{
	struct op_thread *o = arg;

	for (int r = 0; r < o->rounds; r++) {
		pthread_barrier_wait(o->start);
		if (call_op(o->vn, VN_OP_GETATTR) != atomic_load(o->round_answer))
			atomic_fetch_add(o->wrong, 1);
		pthread_barrier_wait(o->end);
	}
	return NULL;
}

static void test_emigrate_stress(void **state)
{
	struct fx *f = *state;
	struct stress_vnode sv[ST_V];
	struct op_thread o[ST_V * ST_T];
	pthread_t th[ST_V * ST_T];
	pthread_barrier_t start, end;
	atomic_int wrong = 0, answer = 0;
	int edit_errors = 0;

	pthread_barrier_init(&start, NULL, ST_V * ST_T + 1);
	pthread_barrier_init(&end, NULL, ST_V * ST_T + 1);
	for (size_t v = 0; v < ST_V; v++) {
		struct stress_vnode *s = &sv[v];

		emig_init(&s->e);
		assert_int_equal(vn_get(f->t, 100 + v, &s->vn), 0);
		ebhv_init(&s->dm, &e_dmapi_ops, &s->e, 0);
		ebhv_init(&s->srv, &e_server_ops, &s->e, 0);
		ebhv_init(&s->cli, &e_client_ops, &s->e, 0);
		assert_int_equal(vn_bhv_insert(s->vn, &s->srv.bhv), 0);
		assert_int_equal(vn_bhv_insert(s->vn, &s->dm.bhv), 0);
	}
	for (size_t i = 0; i < ST_V * ST_T; i++) {
		o[i] = (struct op_thread){ .vn = sv[i % ST_V].vn, .e = &sv[i % ST_V].e,
					   .rounds = ST_ROUNDS, .start = &start, .end = &end,
					   .wrong = &wrong, .round_answer = &answer };
		assert_int_equal(pthread_create(&th[i], NULL, op_rounds, &o[i]), 0);
	}

	for (int r = 0; r < ST_ROUNDS; r++) {
		atomic_store(&answer, 1000 + r);
		for (size_t v = 0; v < ST_V; v++)
			sv[v].cli.answer = 1000 + r;
		pthread_barrier_wait(&start);
		for (size_t v = 0; v < ST_V; v++)
			emig_wait_for(&sv[v].e, ST_T);
		for (size_t v = 0; v < ST_V; v++)
			emig_announce(&sv[v].e, sv[v].vn);
		for (size_t v = 0; v < ST_V; v++)
			edit_errors += vn_bhv_replace(sv[v].vn, &sv[v].srv.bhv, &sv[v].cli.bhv) != 0;
		for (size_t v = 0; v < ST_V; v++)
			vn_rewrite_end(sv[v].vn);
		pthread_barrier_wait(&end);
		for (size_t v = 0; v < ST_V; v++)
			edit_errors += vn_bhv_replace(sv[v].vn, &sv[v].cli.bhv, &sv[v].srv.bhv) != 0;
	}
	for (size_t i = 0; i < ST_V * ST_T; i++)
		pthread_join(th[i], NULL);

	assert_int_equal(edit_errors, 0);
	assert_int_equal(atomic_load(&wrong), 0);
	for (size_t v = 0; v < ST_V; v++) {
		struct stress_vnode *s = &sv[v];

		assert_int_equal(atomic_load(&s->dm.entered), ST_T * ST_ROUNDS);
		assert_int_equal(atomic_load(&s->srv.entered), ST_T * ST_ROUNDS);
		assert_int_equal(atomic_load(&s->cli.entered), ST_T * ST_ROUNDS);
		vn_bhv_remove(s->vn, &s->dm.bhv);
		vn_bhv_remove(s->vn, &s->srv.bhv);
		vn_put(s->vn, 1);
		emig_fini(&s->e);
	}
	pthread_barrier_destroy(&start);
	pthread_barrier_destroy(&end);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chain_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passthrough_null_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enosys_and_einval, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edits_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_not_starved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refcount_inactive_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shape_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_get_one_vnode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_put_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_walk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emigrate_continues_in_new_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emigrate_caller_removed_restarts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emigrate_nested_caller_continues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emigrate_stress, setup, teardown),
	};

	/* A lock that is never released would hang the suite: fail it instead. */
	alarm(240);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
