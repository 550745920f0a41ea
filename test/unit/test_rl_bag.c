/*
 * test_rl_bag.c - unit tests of src/relocate/rl_bag.c, the server's state
 * as it moves between nodes (relocation's bag, recovery's shares): taking
 * the parts of a message (grants, locks, requests kept until durable) and
 * refusing nonsense from the network (a token level out of range, a grant
 * of node 0, a level on its way back that is not one held, a lock that is neither read nor write, a range that ends
 * before it starts), and the bag's own copies of the requests (the message
 * they came in is freed before the bag is used).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relocate/rl.h"

struct msg {
	Cxfs__RelocReq m;
	Cxfs__RelocGrant g, *gp[1];
	Cxfs__RelocLock l, *lp[1];
	Cxfs__UnsafeReq u, *up[1];
	uint8_t levels[TOK_NTOKENS], ret[TOK_NTOKENS];
	uint8_t body[3], reply[2];
};

/* A message with one grant of node 2, one lock of node 2, one request of node 2. */
static void msg_init(struct msg *x)
{
	memset(x, 0, sizeof(*x));
	cxfs__reloc_req__init(&x->m);
	cxfs__reloc_grant__init(&x->g);
	cxfs__reloc_lock__init(&x->l);
	cxfs__unsafe_req__init(&x->u);
	x->levels[TOK_NAME] = TOK_READ;
	x->levels[TOK_ATTR] = TOK_WRITE;
	x->g.node = 2;
	x->g.ino = 77;
	x->g.levels.data = x->levels;
	x->g.levels.len = TOK_NTOKENS;
	x->g.returning.data = x->ret;
	x->g.returning.len = TOK_NTOKENS;
	x->l.ino = 78;
	x->l.type = F_WRLCK;
	x->l.start = 10;
	x->l.end = 19;
	x->l.owner = 0xabc;
	x->l.pid = 42;
	x->l.has_node = 1;
	x->l.node = 2;
	memcpy(x->body, "abc", 3);
	memcpy(x->reply, "ok", 2);
	x->u.node = 2;
	x->u.reqid = 9;
	x->u.seq = 1234;
	x->u.type = CXFS__MSG_TYPE__MKNOD_REQ;
	x->u.body.data = x->body;
	x->u.body.len = 3;
	x->u.reply.data = x->reply;
	x->u.reply.len = 2;
	x->gp[0] = &x->g;
	x->lp[0] = &x->l;
	x->up[0] = &x->u;
	x->m.phase = 22;
	x->m.n_grants = 1;
	x->m.grants = x->gp;
	x->m.n_locks = 1;
	x->m.locks = x->lp;
	x->m.n_unsafe = 1;
	x->m.unsafe = x->up;
}

static void test_take(void **state)
{
	struct rl_bag b = { 0 };
	struct msg x;

	(void)state;
	msg_init(&x);
	assert_int_equal(rl_bag_take(&b, &x.m), 0);
	assert_int_equal(b.ng, 1);
	assert_int_equal(b.g[0].node, 2);
	assert_int_equal(b.g[0].ino, 77);
	assert_int_equal(b.g[0].held.level[TOK_NAME], TOK_READ);
	assert_int_equal(b.g[0].held.level[TOK_ATTR], TOK_WRITE);
	assert_true(tok_set_empty(&b.g[0].returning));
	assert_int_equal(b.nl, 1);
	assert_int_equal(b.l[0].ino, 78);
	assert_int_equal(b.l[0].lk.type, F_WRLCK);
	assert_int_equal(b.l[0].lk.end, 19);
	assert_int_equal(b.l[0].lk.node, 2);
	assert_int_equal(b.nu, 1);
	/* The bag's own copy: the message's bytes may go. */
	memset(x.body, 'x', sizeof(x.body));
	assert_int_equal(b.u[0]->seq, 1234);
	assert_int_equal(b.u[0]->body.len, 3);
	assert_memory_equal(b.u[0]->body.data, "abc", 3);
	assert_memory_equal(b.u[0]->reply.data, "ok", 2);
	/* Parts add up (a share comes in several messages); a return on its way. */
	msg_init(&x);
	x.g.has_returning = 1;
	x.ret[TOK_ATTR] = TOK_WRITE;
	assert_int_equal(rl_bag_take(&b, &x.m), 0);
	assert_int_equal(b.ng, 2);
	assert_int_equal(b.g[1].returning.level[TOK_ATTR], TOK_WRITE);
	assert_int_equal(b.g[1].returning.level[TOK_NAME], TOK_NONE);
	assert_int_equal(b.nu, 2);
	rl_bag_clear(&b);
	assert_int_equal(b.ng + b.nl + b.nu, 0);
}

static void test_refused(void **state)
{
	struct rl_bag b = { 0 };
	struct msg x;

	(void)state;
	msg_init(&x);
	x.levels[TOK_SIZE] = TOK_NLEVELS;                /* no such level */
	assert_int_equal(rl_bag_take(&b, &x.m), -EINVAL);
	msg_init(&x);
	x.g.levels.len = TOK_NTOKENS - 1;                 /* short */
	assert_int_equal(rl_bag_take(&b, &x.m), -EINVAL);
	msg_init(&x);
	x.g.node = 0;                                     /* no node 0 */
	assert_int_equal(rl_bag_take(&b, &x.m), -EINVAL);
	msg_init(&x);
	x.g.has_returning = 1;
	x.ret[TOK_SIZE] = TOK_WRITE;                      /* returning what it does not hold */
	assert_int_equal(rl_bag_take(&b, &x.m), -EINVAL);
	msg_init(&x);
	x.g.has_returning = 1;
	x.g.returning.len = 2;                            /* short */
	assert_int_equal(rl_bag_take(&b, &x.m), -EINVAL);
	msg_init(&x);
	x.l.type = F_UNLCK;                               /* a held lock reads or writes */
	assert_int_equal(rl_bag_take(&b, &x.m), -EINVAL);
	msg_init(&x);
	x.l.start = 20;                                   /* ends before it starts */
	assert_int_equal(rl_bag_take(&b, &x.m), -EINVAL);
	rl_bag_clear(&b);
}

static void test_grow(void **state)
{
	struct rl_bag b = { 0 };
	struct tok_set s;
	struct vn_flock lk = { .type = F_RDLCK, .start = 0, .end = UINT64_MAX, .node = 3 };

	(void)state;
	tok_set_clear(&s);
	tok_set_add(&s, TOK_EXIST, TOK_READ);
	for (uint64_t i = 0; i < 5000; i++) {
		assert_int_equal(rl_bag_grant(&b, 3, i, &s, NULL), 0);
		assert_int_equal(rl_bag_lock(&b, i, &lk), 0);
	}
	assert_int_equal(b.ng, 5000);
	assert_int_equal(b.g[4999].ino, 4999);
	assert_int_equal(b.l[4999].ino, 4999);
	rl_bag_clear(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_grow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
