/*
 * test_tok.c - unit tests of the token layer (src/token): a token server and
 * four token clients wired together in one process through their callbacks,
 * as the RPC layer will wire them over the network.  Obtain and give-back
 * are direct calls (ordered, like one channel per node); every recall is
 * delivered on a thread of its own, as a network would deliver it.
 *
 * Covered: the conflict rule and duties of every pair of levels of every
 * token; flush before discard; FIFO order of recalls and grants without
 * starvation; upgrade and downgrade in place without self-recall; lending;
 * conditional recall of existence; the I/O-exclusive notification; merging
 * of returned timestamps and sizes; node departure; interruption of server
 * and client waits, and of an application's acquire (its interrupt,
 * common/cx_intr.h); references holding recalls off; the counters; the wait
 * records both sides keep for diagnostics; and a randomized run checking
 * that no two nodes ever use conflicting levels.
 *
 * Every callback appends to one event log, so the tests can check order.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/cx_intr.h"
#include "token/tok.h"

#define NNODES 4
#define MAXEV 65536

enum ev_kind { EV_DUTY, EV_RECALL, EV_RECALL_DONE, EV_IOEXCL, EV_GRANTED, EV_MERGED,
	       EV_LAST_EXIST };

struct ev {
	enum ev_kind kind;
	uint32_t node;
	uint64_t ino;
	int duty;           /* EV_DUTY */
	bool cond;          /* EV_RECALL; EV_IOEXCL: the state told */
	int rc;             /* EV_RECALL_DONE */
	struct tok_set set; /* EV_RECALL, EV_GRANTED */
};

struct cluster;

struct node {
	struct cluster *cl;
	uint32_t id;
	struct tok_client *c;
	struct tok_state local;   /* the node's own times and size; protected by cl->mu */
	bool net;                 /* obtains go "over a network" (net_obtain): the asker may give up */
};

struct cluster {
	struct tok_server *s;
	struct node n[NNODES];
	pthread_mutex_t mu;       /* protects everything below and node.local */
	pthread_cond_t idle;      /* broadcast when a delivery ends */
	struct ev ev[MAXEV];
	size_t nev;
	int deliveries;           /* recall deliveries still running (detached threads) */
	bool log_off;             /* the randomized test logs nothing */
	bool hold[NNODES];        /* recalls to this node wait before delivery (a stopped node) */
};

/* ---- wiring ------------------------------------------------------------ */

static void logev(struct cluster *cl, struct ev e)
{
	pthread_mutex_lock(&cl->mu);
	if (!cl->log_off) {
		assert_true(cl->nev < MAXEV);
		cl->ev[cl->nev++] = e;
	}
	pthread_mutex_unlock(&cl->mu);
}

struct delivery {
	struct node *n;
	uint64_t ino;
	struct tok_set set;
	bool cond;
};

/* Run @fn(@arg) on a detached thread, counted in cl->deliveries (@fn's end must uncount it). */
static void deliver(struct cluster *cl, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t th;

	pthread_mutex_lock(&cl->mu);
	cl->deliveries++;
	pthread_mutex_unlock(&cl->mu);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	assert_int_equal(pthread_create(&th, &attr, fn, arg), 0);
	pthread_attr_destroy(&attr);
}

static void *deliver_recall(void *p)
{
	struct delivery *d = p;
	int rc;

	pthread_mutex_lock(&d->n->cl->mu);
	while (d->n->cl->hold[d->n->id])
		pthread_cond_wait(&d->n->cl->idle, &d->n->cl->mu);
	pthread_mutex_unlock(&d->n->cl->mu);
	rc = tok_client_recall(d->n->c, d->ino, &d->set, d->cond);

	if (rc == -EBUSY)
		tok_server_refused(d->n->cl->s, d->n->id, d->ino, &d->set);
	logev(d->n->cl, (struct ev){ .kind = EV_RECALL_DONE, .node = d->n->id, .ino = d->ino,
				     .rc = rc });
	pthread_mutex_lock(&d->n->cl->mu);
	d->n->cl->deliveries--;
	pthread_cond_broadcast(&d->n->cl->idle);
	pthread_mutex_unlock(&d->n->cl->mu);
	free(d);
	return NULL;
}

static void srv_recall(void *arg, uint32_t node, uint64_t ino, const struct tok_set *tokens,
		       bool conditional)
{
	struct cluster *cl = arg;
	struct delivery *d = malloc(sizeof(*d));

	assert_non_null(d);
	*d = (struct delivery){ .n = &cl->n[node], .ino = ino, .set = *tokens, .cond = conditional };
	logev(cl, (struct ev){ .kind = EV_RECALL, .node = node, .ino = ino, .set = *tokens,
			       .cond = conditional });
	deliver(cl, deliver_recall, d);
}

static void srv_ioexcl_tell(void *arg, uint32_t node, uint64_t ino, bool excl)
{
	struct cluster *cl = arg;

	logev(cl, (struct ev){ .kind = EV_IOEXCL, .node = node, .ino = ino, .cond = excl });
	tok_client_ioexcl_set(cl->n[node].c, ino, excl);
}

static void srv_merged(void *arg, uint64_t ino, const struct tok_state *st)
{
	logev(arg, (struct ev){ .kind = EV_MERGED, .ino = ino });
}

static void srv_last_exist(void *arg, uint64_t ino)
{
	logev(arg, (struct ev){ .kind = EV_LAST_EXIST, .ino = ino });
}

static const struct tok_server_ops srv_ops = {
	.recall = srv_recall,
	.ioexcl_tell = srv_ioexcl_tell,
	.merged = srv_merged,
	.last_exist = srv_last_exist,
};

static int server_obtain(struct node *n, uint64_t ino, const struct tok_set *want,
			 const struct tok_state *in, struct tok_set *got, struct tok_state *out)
{
	int rc = tok_server_acquire(n->cl->s, n->id, ino, want, in, got, out);

	if (rc == 0)
		logev(n->cl, (struct ev){ .kind = EV_GRANTED, .node = n->id, .ino = ino,
					  .set = *want });
	return rc;
}

/*
 * An obtain over a "network": a thread of its own asks the server, as the
 * server's worker would, while the asker waits for the answer and may give
 * up (its interrupt, common/cx_intr.h); the server grants all the same.
 */
struct net_obtain {
	struct node *n;
	uint64_t ino;
	struct tok_set want, got;
	struct tok_state in, out;
	int rc;
	bool done, abandoned;     /* protected by the cluster's mu */
};

static void *net_obtain_main(void *p)
{
	struct net_obtain *o = p;
	struct cluster *cl = o->n->cl;
	int rc = server_obtain(o->n, o->ino, &o->want, &o->in, &o->got, &o->out);
	bool abandoned;

	pthread_mutex_lock(&cl->mu);
	o->rc = rc;
	o->done = true;
	abandoned = o->abandoned;
	cl->deliveries--;
	pthread_cond_broadcast(&cl->idle);
	pthread_mutex_unlock(&cl->mu);
	if (abandoned)
		free(o);
	return NULL;
}

static int net_obtain(struct node *n, uint64_t ino, const struct tok_set *want,
		      const struct tok_state *in, struct tok_set *got, struct tok_state *out)
{
	struct net_obtain *o = calloc(1, sizeof(*o));
	struct cluster *cl = n->cl;
	int rc = 0;

	assert_non_null(o);
	*o = (struct net_obtain){ .n = n, .ino = ino, .want = *want, .in = *in };
	deliver(cl, net_obtain_main, o);
	pthread_mutex_lock(&cl->mu);
	while (!o->done && rc >= 0)
		rc = cx_intr_wait(&cl->idle, &cl->mu, NULL);
	if (!o->done) {
		o->abandoned = true;   /* the thread frees it */
		pthread_mutex_unlock(&cl->mu);
		return rc;
	}
	pthread_mutex_unlock(&cl->mu);
	*got = o->got;
	*out = o->out;
	rc = o->rc;
	free(o);
	return rc;
}

static int cli_obtain(void *arg, uint64_t ino, const struct tok_set *want,
		      const struct tok_state *in, struct tok_set *got, struct tok_state *out)
{
	struct node *n = arg;

	return n->net ? net_obtain(n, ino, want, in, got, out)
		      : server_obtain(n, ino, want, in, got, out);
}

static void cli_give_back(void *arg, uint64_t ino, const struct tok_set *tokens,
			  const struct tok_state *st)
{
	struct node *n = arg;

	tok_server_returned(n->cl->s, n->id, ino, tokens, st);
}

static int cli_duty(void *arg, uint64_t ino, enum tok_duty duty, struct tok_state *st)
{
	struct node *n = arg;

	pthread_mutex_lock(&n->cl->mu);
	if (duty == TOK_DUTY_TIMES) {
		st->atime = n->local.atime;
		st->mtime = n->local.mtime;
		st->ctime = n->local.ctime;
	} else if (duty == TOK_DUTY_SIZE) {
		st->size = n->local.size;
		st->blocks = n->local.blocks;
	}
	pthread_mutex_unlock(&n->cl->mu);
	logev(n->cl, (struct ev){ .kind = EV_DUTY, .node = n->id, .ino = ino, .duty = duty });
	return 0;
}

static const struct tok_client_ops cli_ops = {
	.obtain = cli_obtain,
	.give_back = cli_give_back,
	.duty = cli_duty,
};

/* Wait until every recall delivery has ended (the recalled nodes are done with them). */
static void settle(struct cluster *cl)
{
	pthread_mutex_lock(&cl->mu);
	while (cl->deliveries > 0)
		pthread_cond_wait(&cl->idle, &cl->mu);
	pthread_mutex_unlock(&cl->mu);
}

static int setup(void **state)
{
	struct cluster *cl = calloc(1, sizeof(*cl));

	if (cl == NULL || pthread_mutex_init(&cl->mu, NULL) || pthread_cond_init(&cl->idle, NULL))
		return -1;
	if (tok_server_create(&srv_ops, cl, &cl->s))
		return -1;
	for (uint32_t i = 0; i < NNODES; i++) {
		cl->n[i].cl = cl;
		cl->n[i].id = i;
		if (tok_client_create(&cli_ops, &cl->n[i], &cl->n[i].c))
			return -1;
	}
	*state = cl;
	return 0;
}

static int teardown(void **state)
{
	struct cluster *cl = *state;

	settle(cl);
	for (int i = 0; i < NNODES; i++)
		tok_client_destroy(cl->n[i].c);
	tok_server_destroy(cl->s);
	pthread_cond_destroy(&cl->idle);
	pthread_mutex_destroy(&cl->mu);
	free(cl);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static struct tok_set one(enum tok_id t, enum tok_level l)
{
	struct tok_set s;

	tok_set_clear(&s);
	tok_set_add(&s, t, l);
	return s;
}

static void acq(struct node *n, uint64_t ino, enum tok_id t, enum tok_level l)
{
	struct tok_set s = one(t, l);

	assert_int_equal(tok_client_acquire(n->c, ino, &s, NULL), 0);
}

static void rel(struct node *n, uint64_t ino, enum tok_id t, enum tok_level l)
{
	struct tok_set s = one(t, l);

	tok_client_release(n->c, ino, &s);
}

static enum tok_level srv_level(struct cluster *cl, uint32_t node, uint64_t ino, enum tok_id t)
{
	struct tok_set h;

	tok_server_held(cl->s, node, ino, &h);
	return h.level[t];
}

static enum tok_level cli_level(struct node *n, uint64_t ino, enum tok_id t)
{
	struct tok_set h;

	tok_client_cached(n->c, ino, &h);
	return h.level[t];
}

static size_t mark(struct cluster *cl)
{
	size_t m;

	pthread_mutex_lock(&cl->mu);
	m = cl->nev;
	pthread_mutex_unlock(&cl->mu);
	return m;
}

/* Events of @kind (for @node unless UINT32_MAX) on @ino since @from. */
static int count_ev(struct cluster *cl, size_t from, enum ev_kind kind, uint32_t node, uint64_t ino)
{
	int n = 0;

	pthread_mutex_lock(&cl->mu);
	for (size_t i = from; i < cl->nev; i++)
		if (cl->ev[i].kind == kind && cl->ev[i].ino == ino &&
		    (node == UINT32_MAX || cl->ev[i].node == node))
			n++;
	pthread_mutex_unlock(&cl->mu);
	return n;
}

/* Index of the first event of @kind for @node on @ino since @from, or -1. */
static long find_ev(struct cluster *cl, size_t from, enum ev_kind kind, uint32_t node, uint64_t ino)
{
	long at = -1;

	pthread_mutex_lock(&cl->mu);
	for (size_t i = from; i < cl->nev && at < 0; i++)
		if (cl->ev[i].kind == kind && cl->ev[i].ino == ino && cl->ev[i].node == node)
			at = (long)i;
	pthread_mutex_unlock(&cl->mu);
	return at;
}

static const char duty_letter[TOK_NDUTIES] = {
	[TOK_DUTY_FLUSH] = 'F', [TOK_DUTY_DISCARD] = 'D', [TOK_DUTY_TIMES] = 'T',
	[TOK_DUTY_SIZE] = 'S', [TOK_DUTY_INVAL_NAMES] = 'N', [TOK_DUTY_INVAL_ATTR] = 'A',
	[TOK_DUTY_INVAL_EXTENTS] = 'E',
};

/* The duties @node ran on @ino since @from, as letters in order. */
static void duties_since(struct cluster *cl, size_t from, uint32_t node, uint64_t ino,
			 char *buf, size_t len)
{
	size_t k = 0;

	pthread_mutex_lock(&cl->mu);
	for (size_t i = from; i < cl->nev && k + 1 < len; i++)
		if (cl->ev[i].kind == EV_DUTY && cl->ev[i].node == node && cl->ev[i].ino == ino)
			buf[k++] = duty_letter[cl->ev[i].duty];
	pthread_mutex_unlock(&cl->mu);
	buf[k] = '\0';
}

static void msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Poll @cond for up to ten seconds. */
#define WAIT_FOR(cond)                                              \
	do {                                                        \
		for (int w_ = 0; w_ < 10000 && !(cond); w_++)       \
			msleep(1);                                  \
		assert_true(cond);                                  \
	} while (0)

static uint64_t srv_waiting(struct cluster *cl)
{
	struct tok_server_stats st;

	tok_server_stats(cl->s, &st);
	return st.waiting;
}

static uint64_t cli_draining(struct node *n)
{
	struct tok_client_stats st;

	tok_client_stats(n->c, &st);
	return st.draining;
}

/* An acquire on a thread of its own. */
struct async {
	pthread_t th;
	struct node *n;            /* a node's acquire, or */
	struct tok_op *op;         /* a server operation's */
	uint64_t ino;
	struct tok_set want;
	struct tok_state out;
	int rc;
	atomic_bool done;
	bool armed;                /* an application's request (cx_intr.h): its interrupt is armed */
	atomic_uintptr_t intr;     /* then its struct cx_intr */
};

static void *async_main(void *p)
{
	struct async *a = p;
	struct tok_set got;

	if (a->armed)
		atomic_store(&a->intr, (uintptr_t)cx_intr_arm(NULL, NULL));
	if (a->op)
		a->rc = tok_server_op_acquire(a->op, a->ino, &a->want, &got, &a->out);
	else
		a->rc = tok_client_acquire(a->n->c, a->ino, &a->want, &a->out);
	if (a->armed)
		cx_intr_disarm();
	atomic_store(&a->done, true);
	return NULL;
}

static void start_as(struct async *a, struct node *n, struct tok_op *op, uint64_t ino,
		     struct tok_set want, bool armed)
{
	memset(a, 0, sizeof(*a));
	a->n = n;
	a->op = op;
	a->ino = ino;
	a->want = want;
	a->armed = armed;
	atomic_init(&a->done, false);
	assert_int_equal(pthread_create(&a->th, NULL, async_main, a), 0);
}

static void start(struct async *a, struct node *n, struct tok_op *op, uint64_t ino,
		  struct tok_set want)
{
	start_as(a, n, op, ino, want, false);
}

/* An application's acquire (its thread's interrupt armed, cx_intr.h); returns that interrupt. */
static struct cx_intr *start_armed(struct async *a, struct node *n, uint64_t ino,
				   struct tok_set want)
{
	start_as(a, n, NULL, ino, want, true);
	WAIT_FOR(atomic_load(&a->intr) != 0);
	return (struct cx_intr *)atomic_load(&a->intr);
}

static int finish(struct async *a)
{
	pthread_join(a->th, NULL);
	return a->rc;
}

static void forget_all(struct cluster *cl, uint64_t ino)
{
	for (int i = 0; i < NNODES; i++)
		assert_int_equal(tok_client_forget(cl->n[i].c, ino), 0);
}

/* ---- tests -------------------------------------------------------------- */

static void test_table(void **state)
{
	for (int a = TOK_READ; a < TOK_NLEVELS; a++)
		for (int b = TOK_READ; b < TOK_NLEVELS; b++)
			assert_int_equal(tok_level_conflicts(a, b), a != b || a == TOK_WRITE);
	assert_true(tok_level_covers(TOK_WRITE, TOK_READ));
	assert_true(tok_level_covers(TOK_WRITE, TOK_SWRITE));
	assert_false(tok_level_covers(TOK_SWRITE, TOK_READ));
	assert_false(tok_level_covers(TOK_READ, TOK_SWRITE));
	assert_string_equal(tok_name(TOK_PAGE_DIRTY), "page-dirty");
	assert_string_equal(tok_level_name(TOK_SWRITE), "swrite");
}

/*
 * The duties each (token, level) must do when given back, as letters in the
 * order they must run: F flush, D discard, T times, S size, N names,
 * A attributes, E extents.  Written from the specification, not the table
 * (SHARED_WRITE page tokens cover data a node caches under byte-range
 * tokens: their return writes it back and drops it).
 */
static const char *const expect_duties[TOK_NTOKENS][TOK_NLEVELS] = {
	[TOK_EXIST]      = { "", "", "", "" },
	[TOK_IOEXCL]     = { "", "", "", "" },
	[TOK_IO]         = { "", "", "", "" },
	[TOK_PAGE_DIRTY] = { "", "", "FD", "FD" },
	[TOK_PAGE_CLEAN] = { "", "D", "FD", "F" },
	[TOK_NAME]       = { "", "N", "N", "N" },
	[TOK_ATTR]       = { "", "A", "A", "A" },
	[TOK_TIMES]      = { "", "A", "TA", "TA" },
	[TOK_SIZE]       = { "", "A", "SA", "SA" },
	[TOK_EXTENT]     = { "", "E", "E", "E" },
	[TOK_DMAPI]      = { "", "", "", "" },
};

/* Node 0 holds (t, a) cached; node 1 asks for (t, b). */
/* tok_set_raise keeps the higher level of each token, and adds none. */
static void test_set_raise(void **state)
{
	struct tok_set a, b;

	(void)state;
	tok_set_clear(&a);
	tok_set_clear(&b);
	tok_set_add(&a, TOK_SIZE, TOK_WRITE);
	tok_set_add(&a, TOK_ATTR, TOK_READ);
	tok_set_add(&b, TOK_SIZE, TOK_READ);
	tok_set_add(&b, TOK_ATTR, TOK_SWRITE);
	tok_set_add(&b, TOK_EXTENT, TOK_READ);
	tok_set_raise(&a, &b);
	assert_int_equal(a.level[TOK_SIZE], TOK_WRITE);
	assert_int_equal(a.level[TOK_ATTR], TOK_SWRITE);
	assert_int_equal(a.level[TOK_EXTENT], TOK_READ);
	assert_int_equal(a.level[TOK_NAME], TOK_NONE);
	tok_set_clear(&b);
	tok_set_raise(&a, &b);
	assert_int_equal(a.level[TOK_SIZE], TOK_WRITE);
}

static void test_every_pair(void **state)
{
	struct cluster *cl = *state;
	struct node *n0 = &cl->n[0], *n1 = &cl->n[1];
	char duties[32];

	for (int t = 0; t < TOK_NTOKENS; t++) {
		for (int a = TOK_READ; a < TOK_NLEVELS; a++) {
			for (int b = TOK_READ; b < TOK_NLEVELS; b++) {
				uint64_t ino = 1000 + (uint64_t)(t * 16 + a * 4 + b);
				bool conflict = a != b || a == TOK_WRITE;
				size_t m;

				acq(n0, ino, t, a);
				rel(n0, ino, t, a);
				m = mark(cl);
				acq(n1, ino, t, b);

				assert_int_equal(srv_level(cl, 1, ino, t), b);
				assert_int_equal(cli_level(n1, ino, t), b);
				assert_int_equal(srv_level(cl, 0, ino, t), conflict ? TOK_NONE : a);
				assert_int_equal(cli_level(n0, ino, t), conflict ? TOK_NONE : a);
				assert_int_equal(count_ev(cl, m, EV_RECALL, 0, ino), conflict);
				assert_int_equal(count_ev(cl, m, EV_RECALL, 1, ino), 0);
				duties_since(cl, m, 0, ino, duties, sizeof(duties));
				assert_string_equal(duties, conflict ? expect_duties[t][a] : "");
				duties_since(cl, m, 1, ino, duties, sizeof(duties));
				assert_string_equal(duties, "");

				rel(n1, ino, t, b);
				forget_all(cl, ino);
				assert_int_equal(srv_level(cl, 0, ino, t), TOK_NONE);
				assert_int_equal(srv_level(cl, 1, ino, t), TOK_NONE);
			}
		}
	}
}

/* Both page tokens at WRITE go back in one recall: one flush, then one discard. */
static void test_flush_before_discard(void **state)
{
	struct cluster *cl = *state;
	struct tok_set w, r;
	char duties[32];
	size_t m;

	tok_set_clear(&w);
	tok_set_add(&w, TOK_PAGE_DIRTY, TOK_WRITE);
	tok_set_add(&w, TOK_PAGE_CLEAN, TOK_WRITE);
	tok_set_clear(&r);
	tok_set_add(&r, TOK_PAGE_DIRTY, TOK_READ);
	tok_set_add(&r, TOK_PAGE_CLEAN, TOK_READ);
	assert_int_equal(tok_client_acquire(cl->n[0].c, 3000, &w, NULL), 0);
	tok_client_release(cl->n[0].c, 3000, &w);
	m = mark(cl);
	assert_int_equal(tok_client_acquire(cl->n[1].c, 3000, &r, NULL), 0);
	assert_int_equal(count_ev(cl, m, EV_RECALL, 0, 3000), 1);
	duties_since(cl, m, 0, 3000, duties, sizeof(duties));
	assert_string_equal(duties, "FD");
	tok_client_release(cl->n[1].c, 3000, &r);
	forget_all(cl, 3000);
}

/* A writer waits for a reader; a later reader waits behind the writer. */
static void test_fifo(void **state)
{
	struct cluster *cl = *state;
	struct async a, b, c;
	const uint64_t ino = 3001;
	size_t m = mark(cl);
	long ga, gb, gc;

	acq(&cl->n[0], ino, TOK_ATTR, TOK_READ);
	start(&a, &cl->n[1], NULL, ino, one(TOK_ATTR, TOK_WRITE));
	WAIT_FOR(srv_waiting(cl) == 1 && count_ev(cl, m, EV_RECALL, 0, ino) == 1);
	start(&b, &cl->n[2], NULL, ino, one(TOK_ATTR, TOK_READ));
	WAIT_FOR(srv_waiting(cl) == 2);
	start(&c, &cl->n[3], NULL, ino, one(TOK_ATTR, TOK_WRITE));
	WAIT_FOR(srv_waiting(cl) == 3);
	msleep(50);
	/* b is compatible with node 0's READ but must not overtake a. */
	assert_false(atomic_load(&a.done) || atomic_load(&b.done) || atomic_load(&c.done));
	assert_int_equal(count_ev(cl, m, EV_RECALL, UINT32_MAX, ino), 1);

	rel(&cl->n[0], ino, TOK_ATTR, TOK_READ);
	assert_int_equal(finish(&a), 0);
	msleep(50);
	assert_false(atomic_load(&b.done) || atomic_load(&c.done));
	rel(&cl->n[1], ino, TOK_ATTR, TOK_WRITE);
	assert_int_equal(finish(&b), 0);
	msleep(50);
	assert_false(atomic_load(&c.done));
	rel(&cl->n[2], ino, TOK_ATTR, TOK_READ);
	assert_int_equal(finish(&c), 0);
	rel(&cl->n[3], ino, TOK_ATTR, TOK_WRITE);

	ga = find_ev(cl, m, EV_GRANTED, 1, ino);
	gb = find_ev(cl, m, EV_GRANTED, 2, ino);
	gc = find_ev(cl, m, EV_GRANTED, 3, ino);
	assert_true(ga >= 0 && ga < gb && gb < gc);
	forget_all(cl, ino);
}

static void test_upgrade_downgrade(void **state)
{
	struct cluster *cl = *state;
	struct node *n0 = &cl->n[0], *n1 = &cl->n[1];
	const uint64_t ino = 3002;
	struct tok_client_stats before, after;
	struct tok_state out;
	struct tok_set s;
	char duties[32];
	size_t m;

	acq(n0, ino, TOK_ATTR, TOK_READ);
	rel(n0, ino, TOK_ATTR, TOK_READ);
	acq(n1, ino, TOK_ATTR, TOK_READ);
	rel(n1, ino, TOK_ATTR, TOK_READ);

	/* Upgrade: node 1 is recalled, node 0 is not. */
	m = mark(cl);
	acq(n0, ino, TOK_ATTR, TOK_WRITE);
	assert_int_equal(count_ev(cl, m, EV_RECALL, 0, ino), 0);
	assert_int_equal(count_ev(cl, m, EV_RECALL, 1, ino), 1);
	assert_int_equal(srv_level(cl, 0, ino, TOK_ATTR), TOK_WRITE);
	duties_since(cl, m, 0, ino, duties, sizeof(duties));
	assert_string_equal(duties, "");
	rel(n0, ino, TOK_ATTR, TOK_WRITE);

	/* WRITE covers READ: served from the cache. */
	tok_client_stats(n0->c, &before);
	acq(n0, ino, TOK_ATTR, TOK_READ);
	rel(n0, ino, TOK_ATTR, TOK_READ);
	tok_client_stats(n0->c, &after);
	assert_int_equal(after.acquires_cached, before.acquires_cached + 1);
	assert_int_equal(after.acquires_server, before.acquires_server);

	/* Downgrade SWRITE -> READ of times: the node's times travel with the request. */
	pthread_mutex_lock(&cl->mu);
	n0->local.mtime = (struct timespec){ 777, 7 };
	pthread_mutex_unlock(&cl->mu);
	acq(n0, ino, TOK_TIMES, TOK_SWRITE);
	rel(n0, ino, TOK_TIMES, TOK_SWRITE);
	m = mark(cl);
	s = one(TOK_TIMES, TOK_READ);
	assert_int_equal(tok_client_acquire(n0->c, ino, &s, &out), 0);
	assert_int_equal(count_ev(cl, m, EV_RECALL, 0, ino), 0);
	assert_int_equal(srv_level(cl, 0, ino, TOK_TIMES), TOK_READ);
	duties_since(cl, m, 0, ino, duties, sizeof(duties));
	assert_string_equal(duties, "TA");
	assert_true(out.valid & TOK_ST_TIMES);
	assert_int_equal(out.mtime.tv_sec, 777);
	assert_int_equal(out.mtime.tv_nsec, 7);
	tok_client_release(n0->c, ino, &s);
	forget_all(cl, ino);
}

static void test_lending(void **state)
{
	struct cluster *cl = *state;
	struct node *n0 = &cl->n[0], *n1 = &cl->n[1], *n2 = &cl->n[2];
	const uint64_t ino = 3003;
	struct tok_set lent = one(TOK_EXTENT, TOK_READ), w = one(TOK_EXTENT, TOK_WRITE), got;
	struct tok_op *op;
	struct async a;
	size_t m;

	/* Node 0 is in a write and needs space: it holds its extent READ. */
	acq(n0, ino, TOK_EXTENT, TOK_READ);
	acq(n1, ino, TOK_EXTENT, TOK_READ);
	rel(n1, ino, TOK_EXTENT, TOK_READ);

	m = mark(cl);
	assert_int_equal(tok_server_op_begin(cl->s, 0, &lent, &op), 0);
	assert_int_equal(tok_server_op_acquire(op, ino, &w, &got, NULL), 0);
	assert_int_equal(got.level[TOK_EXTENT], TOK_WRITE);
	assert_int_equal(count_ev(cl, m, EV_RECALL, 0, ino), 0);
	assert_int_equal(count_ev(cl, m, EV_RECALL, 1, ino), 1);
	assert_int_equal(cli_level(n0, ino, TOK_EXTENT), TOK_READ);
	assert_int_equal(cli_level(n1, ino, TOK_EXTENT), TOK_NONE);

	/* Others wait for the operation. */
	start(&a, n2, NULL, ino, one(TOK_EXTENT, TOK_READ));
	WAIT_FOR(srv_waiting(cl) == 1);
	msleep(30);
	assert_false(atomic_load(&a.done));
	tok_server_op_end(op);
	assert_int_equal(finish(&a), 0);
	rel(n2, ino, TOK_EXTENT, TOK_READ);
	assert_int_equal(srv_level(cl, 0, ino, TOK_EXTENT), TOK_READ);

	/* Without the lend the operation recalls node 0 and waits for its reference. */
	m = mark(cl);
	assert_int_equal(tok_server_op_begin(cl->s, 0, NULL, &op), 0);
	start(&a, NULL, op, ino, w);
	WAIT_FOR(count_ev(cl, m, EV_RECALL, 0, ino) == 1);
	msleep(30);
	assert_false(atomic_load(&a.done));
	rel(n0, ino, TOK_EXTENT, TOK_READ);
	assert_int_equal(finish(&a), 0);
	assert_int_equal(cli_level(n0, ino, TOK_EXTENT), TOK_NONE);
	tok_server_op_end(op);
	forget_all(cl, ino);
}

static void test_conditional(void **state)
{
	struct cluster *cl = *state;
	struct node *n0 = &cl->n[0], *n1 = &cl->n[1];
	const uint64_t ino = 3004, ino2 = 3005;
	char duties[32];
	size_t m;

	/* Node 0 has the file open; node 1 only looked it up. */
	acq(n0, ino, TOK_EXIST, TOK_READ);
	acq(n0, ino, TOK_ATTR, TOK_READ);
	rel(n0, ino, TOK_ATTR, TOK_READ);
	acq(n1, ino, TOK_EXIST, TOK_READ);
	rel(n1, ino, TOK_EXIST, TOK_READ);
	acq(n1, ino, TOK_NAME, TOK_READ);
	rel(n1, ino, TOK_NAME, TOK_READ);

	m = mark(cl);
	assert_int_equal(tok_server_recall_exist(cl->s, ino), -EBUSY);
	assert_int_equal(count_ev(cl, m, EV_RECALL, 0, ino), 1);
	assert_int_equal(count_ev(cl, m, EV_RECALL, 1, ino), 1);
	/* Node 1 gave everything back, node 0 kept everything. */
	assert_int_equal(srv_level(cl, 1, ino, TOK_EXIST), TOK_NONE);
	assert_int_equal(srv_level(cl, 1, ino, TOK_NAME), TOK_NONE);
	assert_int_equal(cli_level(n1, ino, TOK_NAME), TOK_NONE);
	duties_since(cl, m, 1, ino, duties, sizeof(duties));
	assert_string_equal(duties, "N");
	assert_int_equal(srv_level(cl, 0, ino, TOK_EXIST), TOK_READ);
	assert_int_equal(srv_level(cl, 0, ino, TOK_ATTR), TOK_READ);
	duties_since(cl, m, 0, ino, duties, sizeof(duties));
	assert_string_equal(duties, "");
	WAIT_FOR(count_ev(cl, m, EV_RECALL_DONE, 0, ino) == 1);

	/* Closed: the next conditional recall is accepted. */
	rel(n0, ino, TOK_EXIST, TOK_READ);
	m = mark(cl);
	assert_int_equal(tok_server_recall_exist(cl->s, ino), 0);
	assert_int_equal(srv_level(cl, 0, ino, TOK_EXIST), TOK_NONE);
	assert_int_equal(srv_level(cl, 0, ino, TOK_ATTR), TOK_NONE);
	duties_since(cl, m, 0, ino, duties, sizeof(duties));
	assert_string_equal(duties, "A");
	tok_server_freed(cl->s, ino);

	/* Refused, then given back on the node's own: the server hears of the last one. */
	acq(n0, ino2, TOK_EXIST, TOK_READ);
	m = mark(cl);
	assert_int_equal(tok_server_recall_exist(cl->s, ino2), -EBUSY);
	assert_int_equal(count_ev(cl, m, EV_LAST_EXIST, UINT32_MAX, ino2), 0);
	assert_int_equal(tok_client_forget(n0->c, ino2), -EBUSY);
	rel(n0, ino2, TOK_EXIST, TOK_READ);
	assert_int_equal(tok_client_forget(n0->c, ino2), 0);
	assert_int_equal(count_ev(cl, m, EV_LAST_EXIST, UINT32_MAX, ino2), 1);
}

static void test_ioexcl(void **state)
{
	struct cluster *cl = *state;
	const uint64_t ino = 3006;
	struct tok_set s = one(TOK_IOEXCL, TOK_READ);
	struct tok_state out;
	long told, granted;
	size_t m = mark(cl);

	assert_int_equal(tok_client_acquire(cl->n[0].c, ino, &s, &out), 0);
	assert_true((out.valid & TOK_ST_IOEXCL) && out.ioexcl);
	assert_true(tok_client_ioexcl(cl->n[0].c, ino, NULL));

	assert_int_equal(tok_client_acquire(cl->n[1].c, ino, &s, &out), 0);
	assert_true((out.valid & TOK_ST_IOEXCL) && !out.ioexcl);
	told = find_ev(cl, m, EV_IOEXCL, 0, ino);
	granted = find_ev(cl, m, EV_GRANTED, 1, ino);
	assert_true(told >= 0 && told < granted);
	assert_false(tok_client_ioexcl(cl->n[0].c, ino, NULL));
	assert_false(tok_client_ioexcl(cl->n[1].c, ino, NULL));

	/* A third copy needs no notice: nobody thinks it is alone. */
	assert_int_equal(tok_client_acquire(cl->n[2].c, ino, &s, NULL), 0);
	assert_int_equal(count_ev(cl, m, EV_IOEXCL, UINT32_MAX, ino), 1);
	assert_int_equal(count_ev(cl, m, EV_RECALL, UINT32_MAX, ino), 0);
	for (int i = 0; i < 3; i++)
		tok_client_release(cl->n[i].c, ino, &s);
	forget_all(cl, ino);
}

/* The I/O sets of the data path: IO and IOEXCL at READ, or IO at WRITE with IOEXCL at READ. */
static struct tok_set io_set(enum tok_level io)
{
	struct tok_set s = one(TOK_IO, io);

	tok_set_add(&s, TOK_IOEXCL, TOK_READ);
	return s;
}

/*
 * A node done with I/O on a shared file gives IO and IOEXCL back and the
 * other node hears it is alone; a recall of IO leaves IOEXCL (a node that
 * takes turns with another stays "not alone"); an acquire that asks the
 * server anyway asks the state again.
 */
static void test_ioexcl_back(void **state)
{
	struct cluster *cl = *state;
	const uint64_t ino = 3007;
	struct tok_set rd = io_set(TOK_READ), wr = io_set(TOK_WRITE), sz = one(TOK_SIZE, TOK_READ);
	struct tok_state out;
	size_t m = mark(cl);
	long lost, alone;

	assert_int_equal(tok_client_acquire(cl->n[0].c, ino, &rd, &out), 0);
	assert_true(out.ioexcl);
	assert_int_equal(tok_client_acquire(cl->n[1].c, ino, &rd, &out), 0);
	assert_false(out.ioexcl);
	assert_false(tok_client_ioexcl(cl->n[0].c, ino, NULL));

	/* Not given back while in use, nor by a node that is alone. */
	assert_false(tok_client_give_io(cl->n[1].c, ino));
	tok_client_release(cl->n[1].c, ino, &rd);
	assert_true(tok_client_give_io(cl->n[1].c, ino));
	assert_int_equal(srv_level(cl, 1, ino, TOK_IOEXCL), TOK_NONE);
	assert_int_equal(srv_level(cl, 1, ino, TOK_IO), TOK_NONE);
	lost = find_ev(cl, m, EV_IOEXCL, 0, ino);
	assert_true(lost >= 0 && !cl->ev[lost].cond);
	alone = find_ev(cl, (size_t)lost + 1, EV_IOEXCL, 0, ino);
	assert_true(alone > lost && cl->ev[alone].cond);
	assert_true(tok_client_ioexcl(cl->n[0].c, ino, NULL));
	assert_false(tok_client_give_io(cl->n[0].c, ino));   /* in use, and alone */
	tok_client_release(cl->n[0].c, ino, &rd);
	assert_false(tok_client_give_io(cl->n[0].c, ino));   /* alone: keeps them */

	/* A writer's recall of IO leaves the readers' IOEXCL, which go once idle. */
	assert_int_equal(tok_client_acquire(cl->n[1].c, ino, &rd, NULL), 0);
	tok_client_release(cl->n[1].c, ino, &rd);
	assert_false(tok_client_ioexcl(cl->n[0].c, ino, NULL));
	assert_int_equal(tok_client_acquire(cl->n[2].c, ino, &wr, &out), 0);
	assert_false(out.ioexcl);
	settle(cl);   /* the readers are done with the recall of IO */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(srv_level(cl, (uint32_t)i, ino, TOK_IO), TOK_NONE);
		assert_int_equal(srv_level(cl, (uint32_t)i, ino, TOK_IOEXCL), TOK_READ);
	}
	assert_true(tok_client_give_io(cl->n[0].c, ino));
	assert_false(tok_client_ioexcl(cl->n[2].c, ino, NULL));
	assert_true(tok_client_give_io(cl->n[1].c, ino));
	assert_true(tok_client_ioexcl(cl->n[2].c, ino, NULL));
	assert_int_equal(srv_level(cl, 1, ino, TOK_IOEXCL), TOK_NONE);

	/* A state believed false is corrected by the answer to the next request. */
	tok_client_ioexcl_set(cl->n[2].c, ino, false);
	assert_false(tok_client_ioexcl(cl->n[2].c, ino, NULL));
	tok_set_add(&sz, TOK_IOEXCL, TOK_READ);
	assert_int_equal(tok_client_acquire(cl->n[2].c, ino, &sz, &out), 0);
	assert_true((out.valid & TOK_ST_IOEXCL) && out.ioexcl);
	assert_true(tok_client_ioexcl(cl->n[2].c, ino, NULL));
	tok_client_release(cl->n[2].c, ino, &sz);
	tok_client_release(cl->n[2].c, ino, &wr);
	forget_all(cl, ino);

	/* A copy that goes with its node (it left the cluster) leaves the other alone too. */
	assert_int_equal(tok_client_acquire(cl->n[0].c, ino, &rd, NULL), 0);
	assert_int_equal(tok_client_acquire(cl->n[3].c, ino, &rd, NULL), 0);
	assert_false(tok_client_ioexcl(cl->n[0].c, ino, NULL));
	m = mark(cl);
	tok_server_node_down(cl->s, 3);
	(void)tok_client_lose_all(cl->n[3].c);
	tok_client_release(cl->n[3].c, ino, &rd);
	alone = find_ev(cl, m, EV_IOEXCL, 0, ino);
	assert_true(alone >= 0 && cl->ev[alone].cond);
	assert_true(tok_client_ioexcl(cl->n[0].c, ino, NULL));
	tok_client_release(cl->n[0].c, ino, &rd);
	forget_all(cl, ino);
}

static void set_times(struct cluster *cl, int node, time_t a, time_t msec, long mnsec, time_t c)
{
	pthread_mutex_lock(&cl->mu);
	cl->n[node].local.atime = (struct timespec){ a, 0 };
	cl->n[node].local.mtime = (struct timespec){ msec, mnsec };
	cl->n[node].local.ctime = (struct timespec){ c, 0 };
	pthread_mutex_unlock(&cl->mu);
}

static void test_times_merge(void **state)
{
	struct cluster *cl = *state;
	const uint64_t ino = 3007;
	struct tok_set r = one(TOK_TIMES, TOK_READ);
	struct tok_state out;
	size_t m;

	set_times(cl, 0, 10, 100, 0, 50);
	set_times(cl, 1, 30, 300, 5, 20);
	set_times(cl, 2, 20, 300, 9, 70);
	for (int i = 0; i < 3; i++) {
		acq(&cl->n[i], ino, TOK_TIMES, TOK_SWRITE);
		rel(&cl->n[i], ino, TOK_TIMES, TOK_SWRITE);
	}
	m = mark(cl);
	assert_int_equal(tok_client_acquire(cl->n[3].c, ino, &r, &out), 0);
	assert_int_equal(count_ev(cl, m, EV_RECALL, UINT32_MAX, ino), 3);
	assert_true(count_ev(cl, m, EV_MERGED, UINT32_MAX, ino) >= 1);
	assert_true(out.valid & TOK_ST_TIMES);
	assert_int_equal(out.atime.tv_sec, 30);
	assert_int_equal(out.mtime.tv_sec, 300);
	assert_int_equal(out.mtime.tv_nsec, 9);
	assert_int_equal(out.ctime.tv_sec, 70);
	tok_client_release(cl->n[3].c, ino, &r);

	/* The single writer set them explicitly: its values win, even if smaller. */
	set_times(cl, 0, 1, 2, 0, 3);
	acq(&cl->n[0], ino, TOK_TIMES, TOK_WRITE);
	rel(&cl->n[0], ino, TOK_TIMES, TOK_WRITE);
	assert_int_equal(tok_client_acquire(cl->n[1].c, ino, &r, &out), 0);
	assert_int_equal(out.atime.tv_sec, 1);
	assert_int_equal(out.mtime.tv_sec, 2);
	assert_int_equal(out.ctime.tv_sec, 3);
	tok_client_release(cl->n[1].c, ino, &r);
	forget_all(cl, ino);
}

static void test_size(void **state)
{
	struct cluster *cl = *state;
	const uint64_t ino = 3008, ino2 = 3009;
	struct tok_set r = one(TOK_SIZE, TOK_READ);
	struct tok_state out;
	char duties[32];
	size_t m;

	pthread_mutex_lock(&cl->mu);
	cl->n[0].local.size = 12345;
	cl->n[0].local.blocks = 32;
	pthread_mutex_unlock(&cl->mu);
	acq(&cl->n[0], ino, TOK_SIZE, TOK_WRITE);
	rel(&cl->n[0], ino, TOK_SIZE, TOK_WRITE);
	m = mark(cl);
	assert_int_equal(tok_client_acquire(cl->n[1].c, ino, &r, &out), 0);
	duties_since(cl, m, 0, ino, duties, sizeof(duties));
	assert_string_equal(duties, "SA");
	assert_true(out.valid & TOK_ST_SIZE);
	assert_int_equal(out.size, 12345);
	assert_int_equal(out.blocks, 32);
	tok_client_release(cl->n[1].c, ino, &r);
	forget_all(cl, ino);

	/* Shared writers (direct writes) only grow the file: the largest wins. */
	pthread_mutex_lock(&cl->mu);
	cl->n[0].local.size = 100;
	cl->n[1].local.size = 5000;
	pthread_mutex_unlock(&cl->mu);
	acq(&cl->n[0], ino2, TOK_SIZE, TOK_SWRITE);
	rel(&cl->n[0], ino2, TOK_SIZE, TOK_SWRITE);
	acq(&cl->n[1], ino2, TOK_SIZE, TOK_SWRITE);
	rel(&cl->n[1], ino2, TOK_SIZE, TOK_SWRITE);
	assert_int_equal(tok_client_acquire(cl->n[2].c, ino2, &r, &out), 0);
	assert_int_equal(out.size, 5000);
	tok_client_release(cl->n[2].c, ino2, &r);
	forget_all(cl, ino2);
}

static void test_node_down(void **state)
{
	struct cluster *cl = *state;
	const uint64_t ino = 3010;
	struct async a;
	size_t m = mark(cl);

	/* Node 0 hangs holding WRITE: node 1 waits until node 0 is declared down. */
	acq(&cl->n[0], ino, TOK_ATTR, TOK_WRITE);
	start(&a, &cl->n[1], NULL, ino, one(TOK_ATTR, TOK_READ));
	WAIT_FOR(srv_waiting(cl) == 1 && count_ev(cl, m, EV_RECALL, 0, ino) == 1);
	tok_server_node_down(cl->s, 0);
	assert_int_equal(finish(&a), 0);
	assert_int_equal(srv_level(cl, 0, ino, TOK_ATTR), TOK_NONE);
	assert_int_equal(srv_level(cl, 1, ino, TOK_ATTR), TOK_READ);

	/* A request of a node that goes down while it waits fails. */
	start(&a, &cl->n[2], NULL, ino, one(TOK_ATTR, TOK_WRITE));
	WAIT_FOR(srv_waiting(cl) == 1);
	tok_server_node_down(cl->s, 2);
	assert_int_equal(finish(&a), -ENOTCONN);

	rel(&cl->n[0], ino, TOK_ATTR, TOK_WRITE);
	rel(&cl->n[1], ino, TOK_ATTR, TOK_READ);
	WAIT_FOR(cli_level(&cl->n[0], ino, TOK_ATTR) == TOK_NONE);
	forget_all(cl, ino);
}

static void test_interrupt(void **state)
{
	struct cluster *cl = *state;
	const uint64_t ino = 3011;
	struct tok_server_stats sst;
	struct tok_client_stats cst;
	struct async a, b;
	long done;
	size_t m = mark(cl);

	acq(&cl->n[0], ino, TOK_ATTR, TOK_WRITE);
	/* A server wait (node 1) and a client wait (node 0 behind its own recall). */
	start(&a, &cl->n[1], NULL, ino, one(TOK_ATTR, TOK_READ));
	WAIT_FOR(srv_waiting(cl) == 1 && cli_draining(&cl->n[0]) == 1);
	start(&b, &cl->n[0], NULL, ino, one(TOK_ATTR, TOK_READ));
	msleep(30);
	assert_false(atomic_load(&b.done));

	tok_server_interrupt_all(cl->s);
	assert_int_equal(finish(&a), -TOK_EEARLY);
	tok_client_interrupt_all(cl->n[0].c);
	assert_int_equal(finish(&b), -TOK_EEARLY);
	WAIT_FOR(count_ev(cl, m, EV_RECALL_DONE, 0, ino) == 1);
	done = find_ev(cl, m, EV_RECALL_DONE, 0, ino);
	assert_int_equal(cl->ev[done].rc, -TOK_EEARLY);
	/* Nothing moved: node 0 still has its token. */
	assert_int_equal(cli_level(&cl->n[0], ino, TOK_ATTR), TOK_WRITE);
	assert_int_equal(srv_level(cl, 0, ino, TOK_ATTR), TOK_WRITE);
	tok_server_stats(cl->s, &sst);
	tok_client_stats(cl->n[0].c, &cst);
	assert_true(sst.early >= 1);
	assert_true(cst.early >= 2);

	/* Retried later, the request recalls again and succeeds. */
	rel(&cl->n[0], ino, TOK_ATTR, TOK_WRITE);
	acq(&cl->n[1], ino, TOK_ATTR, TOK_READ);
	assert_int_equal(count_ev(cl, m, EV_RECALL, 0, ino), 2);
	assert_int_equal(cli_level(&cl->n[0], ino, TOK_ATTR), TOK_NONE);
	rel(&cl->n[1], ino, TOK_ATTR, TOK_READ);
	forget_all(cl, ino);
}

static void test_refs_hold_recall(void **state)
{
	struct cluster *cl = *state;
	const uint64_t ino = 3012;
	struct async a;
	size_t m = mark(cl);

	acq(&cl->n[0], ino, TOK_ATTR, TOK_READ);
	acq(&cl->n[0], ino, TOK_ATTR, TOK_READ);
	start(&a, &cl->n[1], NULL, ino, one(TOK_ATTR, TOK_WRITE));
	WAIT_FOR(count_ev(cl, m, EV_RECALL, 0, ino) == 1 && cli_draining(&cl->n[0]) == 1);
	msleep(30);
	assert_false(atomic_load(&a.done));
	rel(&cl->n[0], ino, TOK_ATTR, TOK_READ);
	msleep(30);
	assert_false(atomic_load(&a.done));
	assert_int_equal(cli_level(&cl->n[0], ino, TOK_ATTR), TOK_READ);
	rel(&cl->n[0], ino, TOK_ATTR, TOK_READ);
	assert_int_equal(finish(&a), 0);
	assert_int_equal(cli_level(&cl->n[0], ino, TOK_ATTR), TOK_NONE);
	rel(&cl->n[1], ino, TOK_ATTR, TOK_WRITE);
	forget_all(cl, ino);
}

/* tok_client_try: only what the cache holds, never while it is being given back. */
static void test_try(void **state)
{
	struct cluster *cl = *state;
	const uint64_t ino = 3013;
	struct tok_set r = one(TOK_ATTR, TOK_READ), w = one(TOK_ATTR, TOK_WRITE);
	struct async a;
	size_t m = mark(cl);

	assert_int_equal(tok_client_try(cl->n[0].c, ino, &r), -EWOULDBLOCK);
	acq(&cl->n[0], ino, TOK_ATTR, TOK_READ);
	assert_int_equal(tok_client_try(cl->n[0].c, ino, &r), 0);
	assert_int_equal(tok_client_try(cl->n[0].c, ino, &w), -EWOULDBLOCK);
	tok_client_release(cl->n[0].c, ino, &r);
	/* A recall waits for the reference; meanwhile nothing more is taken from the cache. */
	start(&a, &cl->n[1], NULL, ino, one(TOK_ATTR, TOK_WRITE));
	WAIT_FOR(count_ev(cl, m, EV_RECALL, 0, ino) == 1 && cli_draining(&cl->n[0]) == 1);
	assert_int_equal(tok_client_try(cl->n[0].c, ino, &r), -EWOULDBLOCK);
	rel(&cl->n[0], ino, TOK_ATTR, TOK_READ);
	assert_int_equal(finish(&a), 0);
	assert_int_equal(tok_client_try(cl->n[1].c, ino, &w), 0);
	tok_client_release(cl->n[1].c, ino, &w);
	rel(&cl->n[1], ino, TOK_ATTR, TOK_WRITE);
	forget_all(cl, ino);
}

static void test_counters(void **state)
{
	struct cluster *cl = *state;
	const uint64_t ino = 3013;
	struct tok_client_stats st;
	struct tok_server_stats sst;

	for (int i = 0; i < 100; i++) {
		acq(&cl->n[0], ino, TOK_ATTR, TOK_READ);
		rel(&cl->n[0], ino, TOK_ATTR, TOK_READ);
	}
	tok_client_stats(cl->n[0].c, &st);
	assert_int_equal(st.acquires_server, 1);
	assert_int_equal(st.acquires_cached, 99);
	assert_int_equal(st.inodes, 1);
	acq(&cl->n[1], ino, TOK_ATTR, TOK_WRITE);
	WAIT_FOR(count_ev(cl, 0, EV_RECALL_DONE, 0, ino) == 1);
	tok_client_stats(cl->n[0].c, &st);
	assert_int_equal(st.recalls, 1);
	assert_int_equal(st.inodes, 0);
	rel(&cl->n[1], ino, TOK_ATTR, TOK_WRITE);
	forget_all(cl, ino);
	tok_server_stats(cl->s, &sst);
	assert_int_equal(sst.grants, 2);
	assert_int_equal(sst.waiting, 0);
	assert_int_equal(sst.inodes, 0);
}

/* ---- randomized: no two nodes ever use conflicting levels ------------- */

#define RINOS 3
#define RTHREADS 2
#define ROPS 400

struct rand_ctx {
	struct cluster *cl;
	pthread_mutex_t mu;
	/* uses[ino][token][node][level]: references taken and not yet dropped */
	int uses[RINOS][TOK_NTOKENS][NNODES][TOK_NLEVELS];
	atomic_int violations;
};

struct rand_thread {
	pthread_t th;
	struct rand_ctx *rc;
	int node;
	unsigned seed;
};

static void rand_use(struct rand_ctx *rc, int ino, int node, const struct tok_set *s, int delta)
{
	pthread_mutex_lock(&rc->mu);
	for (int t = 0; t < TOK_NTOKENS; t++) {
		int l = s->level[t];

		if (l == TOK_NONE)
			continue;
		rc->uses[ino][t][node][l] += delta;
		for (int o = 0; delta > 0 && o < NNODES; o++)
			for (int ol = TOK_READ; o != node && ol < TOK_NLEVELS; ol++)
				if (rc->uses[ino][t][o][ol] && tok_level_conflicts(l, ol))
					atomic_fetch_add(&rc->violations, 1);
	}
	pthread_mutex_unlock(&rc->mu);
}

static void *rand_main(void *p)
{
	struct rand_thread *rt = p;
	struct node *n = &rt->rc->cl->n[rt->node];

	for (int i = 0; i < ROPS; i++) {
		int ino = rand_r(&rt->seed) % RINOS;
		int k = 1 + rand_r(&rt->seed) % 3;
		struct tok_set s;

		tok_set_clear(&s);
		for (int j = 0; j < k; j++)
			tok_set_add(&s, rand_r(&rt->seed) % TOK_NTOKENS,
				    TOK_READ + rand_r(&rt->seed) % 3);
		if (tok_client_acquire(n->c, 4000 + (uint64_t)ino, &s, NULL) != 0) {
			atomic_fetch_add(&rt->rc->violations, 1000);
			continue;
		}
		rand_use(rt->rc, ino, rt->node, &s, 1);
		if (rand_r(&rt->seed) % 4 == 0)
			msleep(1);
		rand_use(rt->rc, ino, rt->node, &s, -1);
		tok_client_release(n->c, 4000 + (uint64_t)ino, &s);
		if (rand_r(&rt->seed) % 16 == 0)
			tok_client_forget(n->c, 4000 + (uint64_t)ino);
	}
	return NULL;
}

static void test_randomized(void **state)
{
	struct cluster *cl = *state;
	struct rand_ctx *rc = calloc(1, sizeof(*rc));
	struct rand_thread rt[NNODES * RTHREADS];
	struct tok_server_stats sst;

	assert_non_null(rc);
	rc->cl = cl;
	pthread_mutex_init(&rc->mu, NULL);
	pthread_mutex_lock(&cl->mu);
	cl->log_off = true;
	pthread_mutex_unlock(&cl->mu);
	for (int i = 0; i < NNODES * RTHREADS; i++) {
		rt[i] = (struct rand_thread){ .rc = rc, .node = i % NNODES, .seed = 1234u + (unsigned)i };
		assert_int_equal(pthread_create(&rt[i].th, NULL, rand_main, &rt[i]), 0);
	}
	for (int i = 0; i < NNODES * RTHREADS; i++)
		pthread_join(rt[i].th, NULL);
	assert_int_equal(atomic_load(&rc->violations), 0);
	tok_server_stats(cl->s, &sst);
	assert_true(sst.recalls > 100);
	for (int i = 0; i < RINOS; i++)
		forget_all(cl, 4000 + (uint64_t)i);
	assert_int_equal(srv_waiting(cl), 0);
	pthread_mutex_destroy(&rc->mu);
	free(rc);
}

/*
 * Issue 11: two nodes each lend their NAME copy of one directory to their
 * own change at the server; each change needs the other's copy recalled.
 * A lent reference does not hold a recall up, so both changes finish; the
 * lenders learn their copies went back, and a node asks for its copy again
 * only once its lend is over.
 */
static void test_lend_crossing(void **state)
{
	struct cluster *cl = *state;
	struct node *n0 = &cl->n[0], *n1 = &cl->n[1], *n2 = &cl->n[2];
	const uint64_t dir = 3020;
	struct tok_set lent = one(TOK_NAME, TOK_READ), w = one(TOK_NAME, TOK_WRITE);
	struct tok_op *op0, *op1;
	struct async a0, a1, again;
	uint64_t g0, g1, g2;

	acq(n0, dir, TOK_NAME, TOK_READ);
	rel(n0, dir, TOK_NAME, TOK_READ);
	acq(n1, dir, TOK_NAME, TOK_READ);
	rel(n1, dir, TOK_NAME, TOK_READ);
	assert_int_equal(tok_client_lend(n0->c, dir, &lent, &g0), 0);
	assert_int_equal(tok_client_lend(n1->c, dir, &lent, &g1), 0);
	assert_true(tok_client_lent(n0->c, dir));
	assert_false(tok_client_lent(n2->c, dir));
	assert_int_equal(tok_server_op_begin(cl->s, 0, &lent, &op0), 0);
	assert_int_equal(tok_server_op_begin(cl->s, 1, &lent, &op1), 0);
	start(&a0, NULL, op0, dir, w);
	start(&a1, NULL, op1, dir, w);
	/* One of them is granted at once (the other's copy came back). */
	WAIT_FOR(atomic_load(&a0.done) || atomic_load(&a1.done));
	if (atomic_load(&a0.done)) {
		assert_int_equal(finish(&a0), 0);
		tok_server_op_end(op0);
		assert_int_equal(finish(&a1), 0);
		tok_server_op_end(op1);
	} else {
		assert_int_equal(finish(&a1), 0);
		tok_server_op_end(op1);
		assert_int_equal(finish(&a0), 0);
		tok_server_op_end(op0);
	}
	assert_int_equal(cli_level(n0, dir, TOK_NAME), TOK_NONE);
	assert_int_equal(cli_level(n1, dir, TOK_NAME), TOK_NONE);

	/* Broken: node 0 does not ask for NAME again while its lend is out. */
	start(&again, n0, NULL, dir, lent);
	msleep(30);
	assert_false(atomic_load(&again.done));
	assert_false(tok_client_unlend(n0->c, dir, &lent, g0));
	assert_false(tok_client_lent(n0->c, dir));
	assert_int_equal(finish(&again), 0);
	rel(n0, dir, TOK_NAME, TOK_READ);
	assert_false(tok_client_unlend(n1->c, dir, &lent, g1));

	/* A lend nobody recalled is kept, as an ordinary reference a recall waits for. */
	assert_int_equal(tok_client_forget(n0->c, dir), 0);
	assert_int_equal(tok_client_lend(n2->c, dir, &lent, &g2), 0);
	assert_true(tok_client_unlend(n2->c, dir, &lent, g2));
	start(&again, n1, NULL, dir, w);
	WAIT_FOR(cli_draining(n2) == 1);
	msleep(30);
	assert_false(atomic_load(&again.done));
	rel(n2, dir, TOK_NAME, TOK_READ);
	assert_int_equal(finish(&again), 0);
	rel(n1, dir, TOK_NAME, TOK_WRITE);
	forget_all(cl, dir);
}

/*
 * A node creating a file gets EXIST with the server's answer: a conditional
 * recall that arrives before the answer is refused, and the adopted token
 * holds the file until its reference goes.
 */
static void test_create_exist(void **state)
{
	struct cluster *cl = *state;
	struct node *n0 = &cl->n[0];
	const uint64_t ino = 3021;
	struct tok_set ex = one(TOK_EXIST, TOK_READ), got;

	tok_client_creating(n0->c, 1);
	assert_int_equal(tok_server_acquire(cl->s, 0, ino, &ex, NULL, &got, NULL), 0);
	assert_int_equal(tok_server_recall_exist(cl->s, ino), -EBUSY);
	assert_int_equal(srv_level(cl, 0, ino, TOK_EXIST), TOK_READ);
	assert_int_equal(tok_client_adopt(n0->c, ino, &ex), 0);
	tok_client_creating(n0->c, -1);
	assert_int_equal(cli_level(n0, ino, TOK_EXIST), TOK_READ);
	assert_int_equal(tok_server_recall_exist(cl->s, ino), -EBUSY);
	rel(n0, ino, TOK_EXIST, TOK_READ);
	assert_int_equal(tok_client_forget(n0->c, ino), 0);
	assert_int_equal(srv_level(cl, 0, ino, TOK_EXIST), TOK_NONE);

	/* Not creating: a recall of a file the node does not hold is not refused. */
	assert_int_equal(tok_server_acquire(cl->s, 0, ino, &ex, NULL, &got, NULL), 0);
	assert_int_equal(tok_server_recall_exist(cl->s, ino), 0);
	tok_server_freed(cl->s, ino);
}

/* ---- wait records ------------------------------------------------------- */

#define MAXWAITS 8

/* A copy of what tok_server_waits() or tok_client_waits() reported. */
struct waits {
	struct tok_server_wait s[MAXWAITS];
	struct tok_client_wait c[MAXWAITS];
	int n;
};

static void got_server_wait(void *arg, const struct tok_server_wait *w)
{
	struct waits *ws = arg;

	if (ws->n < MAXWAITS)
		ws->s[ws->n] = *w;
	ws->n++;
}

static void got_client_wait(void *arg, const struct tok_client_wait *w)
{
	struct waits *ws = arg;

	if (ws->n < MAXWAITS)
		ws->c[ws->n] = *w;
	ws->n++;
}

static int srv_waits(struct cluster *cl, struct waits *ws)
{
	ws->n = 0;
	tok_server_waits(cl->s, got_server_wait, ws);
	return ws->n;
}

static int cli_waits(struct node *n, struct waits *ws)
{
	ws->n = 0;
	tok_client_waits(n->c, got_client_wait, ws);
	return ws->n;
}

static void hold_recalls(struct cluster *cl, uint32_t node, bool hold)
{
	pthread_mutex_lock(&cl->mu);
	cl->hold[node] = hold;
	pthread_cond_broadcast(&cl->idle);
	pthread_mutex_unlock(&cl->mu);
}

/*
 * An application's acquire waiting for its node's request in flight (here
 * held up by a recall the holder does not answer yet) ends with -EINTR
 * when its interrupt is raised; the request in flight goes on and is
 * granted; nothing was counted for the interrupted one.
 */
static void test_client_wait_interrupted(void **state)
{
	struct cluster *cl = *state;
	const uint64_t ino = 3013;
	struct async a, b;
	struct cx_intr *in;

	acq(&cl->n[0], ino, TOK_ATTR, TOK_WRITE);
	hold_recalls(cl, 0, true);
	start(&a, &cl->n[1], NULL, ino, one(TOK_ATTR, TOK_READ));
	WAIT_FOR(srv_waiting(cl) == 1);
	in = start_armed(&b, &cl->n[1], ino, one(TOK_ATTR, TOK_READ));
	msleep(50);
	assert_false(atomic_load(&b.done));
	cx_intr_raise(in);
	assert_int_equal(finish(&b), -EINTR);
	assert_false(atomic_load(&a.done));

	hold_recalls(cl, 0, false);
	rel(&cl->n[0], ino, TOK_ATTR, TOK_WRITE);
	assert_int_equal(finish(&a), 0);
	assert_int_equal(cli_level(&cl->n[1], ino, TOK_ATTR), TOK_READ);
	rel(&cl->n[1], ino, TOK_ATTR, TOK_READ);
	forget_all(cl, ino);
}

/*
 * A local application's request at the server (the metadata server's own
 * node) waiting for a holder that does not answer its recall: the recall is
 * sent again after a second, as for any waiter, and the request ends with
 * -EINTR when interrupted; the holder keeps its token.
 */
static void test_server_wait_interrupted(void **state)
{
	struct cluster *cl = *state;
	struct node *n0 = &cl->n[0], *n1 = &cl->n[1];
	const uint64_t ino = 3015;
	size_t m = mark(cl);
	struct async b;
	struct cx_intr *in;

	acq(n0, ino, TOK_ATTR, TOK_WRITE);
	rel(n0, ino, TOK_ATTR, TOK_WRITE);
	hold_recalls(cl, 0, true);
	in = start_armed(&b, n1, ino, one(TOK_ATTR, TOK_READ));
	WAIT_FOR(count_ev(cl, m, EV_RECALL, 0, ino) >= 2);   /* sent again after 1 s */
	assert_false(atomic_load(&b.done));
	cx_intr_raise(in);
	assert_int_equal(finish(&b), -EINTR);
	assert_int_equal(srv_level(cl, 1, ino, TOK_ATTR), TOK_NONE);
	hold_recalls(cl, 0, false);
	forget_all(cl, ino);
}

/*
 * An application's conversion given up while its request is on the wire
 * (READ asked to become WRITE); the server grants it afterwards, so it
 * records WRITE for the node, which still has READ.  The next recall takes
 * whatever the node has (uncertain): both sides agree on nothing held,
 * never on the server holding less than the node uses.
 */
static void test_obtain_given_up(void **state)
{
	struct cluster *cl = *state;
	struct node *n0 = &cl->n[0], *n1 = &cl->n[1], *n2 = &cl->n[2];
	const uint64_t ino = 3014;
	struct async b;
	struct cx_intr *in;

	acq(n0, ino, TOK_ATTR, TOK_READ);
	rel(n0, ino, TOK_ATTR, TOK_READ);
	acq(n1, ino, TOK_ATTR, TOK_READ);
	rel(n1, ino, TOK_ATTR, TOK_READ);
	hold_recalls(cl, 0, true);
	n1->net = true;
	in = start_armed(&b, n1, ino, one(TOK_ATTR, TOK_WRITE));
	WAIT_FOR(srv_waiting(cl) == 1);
	cx_intr_raise(in);
	assert_int_equal(finish(&b), -EINTR);
	assert_int_equal(cli_level(n1, ino, TOK_ATTR), TOK_READ);

	/* node 0 answers its recall: the server grants the request given up. */
	hold_recalls(cl, 0, false);
	WAIT_FOR(srv_level(cl, 1, ino, TOK_ATTR) == TOK_WRITE);
	assert_int_equal(cli_level(n1, ino, TOK_ATTR), TOK_READ);

	/* Another node's read recalls node 1's WRITE: node 1 gives up its READ too. */
	acq(n2, ino, TOK_ATTR, TOK_READ);
	assert_int_equal(srv_level(cl, 1, ino, TOK_ATTR), TOK_NONE);
	assert_int_equal(cli_level(n1, ino, TOK_ATTR), TOK_NONE);
	rel(n2, ino, TOK_ATTR, TOK_READ);
	n1->net = false;
	forget_all(cl, ino);
}

/*
 * The server's view: a node's request behind a recall its holder does not
 * answer yet names the holder, its levels and the recall's growing age; a
 * server operation behind that request names it as queued first; both go
 * once granted.  The holder's client shows its recall draining.
 */
static void test_waits_server(void **state)
{
	struct cluster *cl = *state;
	struct node *n0 = &cl->n[0], *n1 = &cl->n[1];
	const uint64_t ino = 3020;
	struct tok_op *op;
	struct waits ws, cw;
	struct async a, b;
	uint64_t age, recall_age;

	assert_int_equal(srv_waits(cl, &ws), 0);
	acq(n0, ino, TOK_ATTR, TOK_WRITE);
	/* Granted at once: never a wait. */
	assert_int_equal(srv_waits(cl, &ws), 0);
	assert_int_equal(cli_waits(n0, &cw), 0);

	start(&a, n1, NULL, ino, one(TOK_ATTR, TOK_READ));
	WAIT_FOR(srv_waits(cl, &ws) == 1 && cli_draining(n0) == 1);
	assert_int_equal(ws.s[0].ino, ino);
	assert_int_equal(ws.s[0].who.kind, TOK_WHO_NODE);
	assert_int_equal(ws.s[0].who.node, 1);
	assert_int_equal(ws.s[0].want.level[TOK_ATTR], TOK_READ);
	assert_int_equal(ws.s[0].nobstacles, 1);
	assert_int_equal(ws.s[0].more, 0);
	assert_int_equal(ws.s[0].obstacles[0].kind, TOK_OBST_GRANT);
	assert_int_equal(ws.s[0].obstacles[0].who.kind, TOK_WHO_NODE);
	assert_int_equal(ws.s[0].obstacles[0].who.node, 0);
	assert_int_equal(ws.s[0].obstacles[0].levels.level[TOK_ATTR], TOK_WRITE);
	assert_int_equal(ws.s[0].obstacles[0].recalled.level[TOK_ATTR], TOK_WRITE);
	age = ws.s[0].age_ms;
	recall_age = ws.s[0].obstacles[0].recall_age_ms;

	/* Node 0's recall waits for its reference. */
	assert_int_equal(cli_waits(n0, &cw), 1);
	assert_int_equal(cw.c[0].ino, ino);
	assert_int_equal(cw.c[0].kind, TOK_CW_RECALL);
	assert_int_equal(cw.c[0].what, TOK_CW_DRAIN);
	assert_int_equal(cw.c[0].want.level[TOK_ATTR], TOK_WRITE);
	assert_int_equal(cw.c[0].refs[TOK_ATTR], 1);
	/* Node 1 waits for the server's answer. */
	assert_int_equal(cli_waits(n1, &cw), 1);
	assert_int_equal(cw.c[0].kind, TOK_CW_ACQUIRE);
	assert_int_equal(cw.c[0].what, TOK_CW_SERVER);

	/* An operation for node 2 wanting WRITE queues behind node 1's request. */
	assert_int_equal(tok_server_op_begin(cl->s, 2, NULL, &op), 0);
	start(&b, NULL, op, ino, one(TOK_ATTR, TOK_WRITE));
	WAIT_FOR(srv_waits(cl, &ws) == 2);
	assert_int_equal(ws.s[0].who.kind, TOK_WHO_NODE);  /* oldest first */
	assert_int_equal(ws.s[1].who.kind, TOK_WHO_OP);
	assert_int_equal(ws.s[1].who.node, 2);
	assert_int_equal(ws.s[1].nobstacles, 2);
	assert_int_equal(ws.s[1].obstacles[0].kind, TOK_OBST_QUEUED);
	assert_int_equal(ws.s[1].obstacles[0].who.node, 1);
	assert_int_equal(ws.s[1].obstacles[0].levels.level[TOK_ATTR], TOK_READ);
	assert_int_equal(ws.s[1].obstacles[1].kind, TOK_OBST_GRANT);
	assert_int_equal(ws.s[1].obstacles[1].who.node, 0);

	/* The ages grow. */
	msleep(60);
	assert_int_equal(srv_waits(cl, &ws), 2);
	assert_true(ws.s[0].age_ms >= age + 50);
	assert_true(ws.s[0].obstacles[0].recall_age_ms >= recall_age + 50);
	assert_true(ws.s[0].age_ms >= ws.s[1].age_ms);

	/* Node 1 is granted and goes from the list; the operation now waits for it. */
	rel(n0, ino, TOK_ATTR, TOK_WRITE);
	assert_int_equal(finish(&a), 0);
	WAIT_FOR(srv_waits(cl, &ws) == 1 && ws.s[0].nobstacles == 1 &&
		 ws.s[0].obstacles[0].kind == TOK_OBST_GRANT && ws.s[0].obstacles[0].who.node == 1 &&
		 cli_draining(n1) == 1);
	assert_int_equal(ws.s[0].who.kind, TOK_WHO_OP);
	assert_int_equal(ws.s[0].obstacles[0].levels.level[TOK_ATTR], TOK_READ);
	assert_int_equal(cli_waits(n1, &cw), 1);
	assert_int_equal(cw.c[0].kind, TOK_CW_RECALL);
	assert_int_equal(cw.c[0].what, TOK_CW_DRAIN);
	rel(n1, ino, TOK_ATTR, TOK_READ);
	assert_int_equal(finish(&b), 0);
	assert_int_equal(srv_waits(cl, &ws), 0);
	WAIT_FOR(cli_waits(n0, &cw) == 0 && cli_waits(n1, &cw) == 0);
	tok_server_op_end(op);
	forget_all(cl, ino);
}

/* tok_server_recall_exist() on a thread of its own. */
struct exist_arg {
	struct cluster *cl;
	uint64_t ino;
	atomic_int rc;
};

static void *exist_main(void *p)
{
	struct exist_arg *ea = p;

	atomic_store(&ea->rc, tok_server_recall_exist(ea->cl->s, ea->ino));
	return NULL;
}

/*
 * The client's view: an acquire behind its own node's recall, then at the
 * server; and the server's existence check waiting for a node that does
 * not answer its recall.
 */
static void test_waits_client(void **state)
{
	struct cluster *cl = *state;
	struct node *n0 = &cl->n[0], *n1 = &cl->n[1];
	const uint64_t ino = 3021, ino2 = 3022;
	struct exist_arg ea;
	struct waits ws, cw;
	struct async a, c;
	pthread_t th;

	acq(n0, ino, TOK_ATTR, TOK_READ);
	start(&a, n1, NULL, ino, one(TOK_ATTR, TOK_WRITE));
	WAIT_FOR(cli_draining(n0) == 1);
	start(&c, n0, NULL, ino, one(TOK_ATTR, TOK_READ));
	WAIT_FOR(cli_waits(n0, &cw) == 2);
	assert_int_equal(cw.c[0].kind, TOK_CW_RECALL);
	assert_int_equal(cw.c[0].what, TOK_CW_DRAIN);
	assert_int_equal(cw.c[0].refs[TOK_ATTR], 1);
	assert_int_equal(cw.c[1].kind, TOK_CW_ACQUIRE);
	assert_int_equal(cw.c[1].what, TOK_CW_GIVING);
	assert_int_equal(cw.c[1].want.level[TOK_ATTR], TOK_READ);

	/* The recall ends; node 0's acquire goes to the server, behind node 1's grant. */
	rel(n0, ino, TOK_ATTR, TOK_READ);
	assert_int_equal(finish(&a), 0);
	WAIT_FOR(cli_waits(n0, &cw) == 1 && cw.c[0].what == TOK_CW_SERVER && cli_draining(n1) == 1);
	assert_int_equal(cw.c[0].kind, TOK_CW_ACQUIRE);
	assert_int_equal(srv_waits(cl, &ws), 1);
	assert_int_equal(ws.s[0].who.node, 0);
	assert_int_equal(ws.s[0].obstacles[0].who.node, 1);
	assert_int_equal(ws.s[0].obstacles[0].levels.level[TOK_ATTR], TOK_WRITE);
	rel(n1, ino, TOK_ATTR, TOK_WRITE);
	assert_int_equal(finish(&c), 0);
	rel(n0, ino, TOK_ATTR, TOK_READ);
	WAIT_FOR(cli_waits(n0, &cw) == 0 && cli_waits(n1, &cw) == 0);
	assert_int_equal(srv_waits(cl, &ws), 0);
	forget_all(cl, ino);

	/* Node 0 is "stopped": the existence check waits for its answer. */
	acq(n0, ino2, TOK_EXIST, TOK_READ);
	rel(n0, ino2, TOK_EXIST, TOK_READ);
	hold_recalls(cl, 0, true);
	ea = (struct exist_arg){ .cl = cl, .ino = ino2 };
	atomic_init(&ea.rc, 1);
	assert_int_equal(pthread_create(&th, NULL, exist_main, &ea), 0);
	WAIT_FOR(srv_waits(cl, &ws) == 1);
	assert_int_equal(ws.s[0].who.kind, TOK_WHO_SERVER);
	assert_int_equal(ws.s[0].ino, ino2);
	assert_int_equal(ws.s[0].nobstacles, 1);
	assert_int_equal(ws.s[0].obstacles[0].who.node, 0);
	assert_int_equal(ws.s[0].obstacles[0].recalled.level[TOK_EXIST], TOK_READ);
	msleep(30);
	assert_int_equal(srv_waits(cl, &ws), 1);
	assert_true(ws.s[0].obstacles[0].recall_age_ms >= 25);
	hold_recalls(cl, 0, false);
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&ea.rc), 0);
	assert_int_equal(srv_waits(cl, &ws), 0);
}

/*
 * Between the check that found nobody holding a file and its freeing, a
 * node that asks for EXIST (it opens the file by a name it looked up before
 * the unlink) waits, and its wait record says why: granted at once, it
 * would open a file about to be freed.  Other tokens of the file are not
 * held back.
 */
static void test_exist_freeing(void **state)
{
	struct cluster *cl = *state;
	struct node *n0 = &cl->n[0], *n1 = &cl->n[1];
	const uint64_t ino = 3023;
	bool attr_done, a_waited;
	struct async a, b;
	struct waits ws;
	enum tok_level held0;

	acq(n1, ino, TOK_EXIST, TOK_READ);
	rel(n1, ino, TOK_EXIST, TOK_READ);
	assert_int_equal(tok_server_recall_exist(cl->s, ino), 0);
	assert_int_equal(srv_level(cl, 1, ino, TOK_EXIST), TOK_NONE);
	start(&a, n0, NULL, ino, one(TOK_EXIST, TOK_READ));
	WAIT_FOR(srv_waits(cl, &ws) == 1);
	held0 = srv_level(cl, 0, ino, TOK_EXIST);
	start(&b, n1, NULL, ino, one(TOK_ATTR, TOK_READ));
	for (int i = 0; i < 10000 && !atomic_load(&b.done); i++)
		msleep(1);
	attr_done = atomic_load(&b.done);
	a_waited = !atomic_load(&a.done);
	/* Everything the checks below need is read: let both go first, so a failure cannot hang. */
	tok_server_freed(cl->s, ino);
	assert_int_equal(finish(&a), 0);
	assert_int_equal(finish(&b), 0);
	rel(n1, ino, TOK_ATTR, TOK_READ);
	assert_true(a_waited);
	assert_int_equal(held0, TOK_NONE);
	assert_true(attr_done);
	assert_int_equal(ws.s[0].who.kind, TOK_WHO_NODE);
	assert_int_equal(ws.s[0].who.node, 0);
	assert_int_equal(ws.s[0].nobstacles, 1);
	assert_int_equal(ws.s[0].obstacles[0].kind, TOK_OBST_FREEING);
	assert_int_equal(ws.s[0].obstacles[0].who.kind, TOK_WHO_SERVER);
	assert_int_equal(ws.s[0].obstacles[0].levels.level[TOK_EXIST], TOK_READ);
	assert_int_equal(srv_level(cl, 0, ino, TOK_EXIST), TOK_READ);
	assert_int_equal(srv_waits(cl, &ws), 0);
	rel(n0, ino, TOK_EXIST, TOK_READ);
	/* A second freed() is harmless; so is one for a file nobody checked. */
	tok_server_freed(cl->s, ino);
	tok_server_freed(cl->s, ino + 1);
	forget_all(cl, ino);
}

/*
 * Recovery: a level a node's return was carrying to a server that died is
 * dropped where another node's grant conflicts with it (the old server
 * took the return and granted on), kept where none does.
 */
static void test_taken(void **state)
{
	struct cluster *cl = *state;
	const uint64_t ino = 3020;
	struct tok_set held, ret, none;

	tok_set_clear(&none);
	tok_set_clear(&held);
	tok_set_add(&held, TOK_SIZE, TOK_WRITE);
	tok_set_add(&held, TOK_ATTR, TOK_READ);
	assert_int_equal(tok_server_import(cl->s, 1, ino, &held), 0);
	tok_set_clear(&ret);
	tok_set_add(&ret, TOK_SIZE, TOK_WRITE);    /* node 1 holds it: taken */
	tok_set_add(&ret, TOK_TIMES, TOK_WRITE);   /* nobody: may not have been */
	tok_set_add(&ret, TOK_ATTR, TOK_READ);     /* shared with node 1's READ */
	tok_server_taken(cl->s, 2, ino, &ret);
	assert_int_equal(ret.level[TOK_SIZE], TOK_NONE);
	assert_int_equal(ret.level[TOK_TIMES], TOK_WRITE);
	assert_int_equal(ret.level[TOK_ATTR], TOK_READ);
	/* A node's own grant is no conflict. */
	tok_set_clear(&ret);
	tok_set_add(&ret, TOK_SIZE, TOK_WRITE);
	tok_server_taken(cl->s, 1, ino, &ret);
	assert_int_equal(ret.level[TOK_SIZE], TOK_WRITE);
	/* Nothing known of the inode: everything stays. */
	tok_server_taken(cl->s, 2, ino + 1, &ret);
	assert_int_equal(ret.level[TOK_SIZE], TOK_WRITE);
	assert_int_equal(tok_server_import(cl->s, 1, ino, &none), 0);
	assert_int_equal(srv_level(cl, 1, ino, TOK_SIZE), TOK_NONE);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_set_raise),
		T(test_every_pair),
		T(test_flush_before_discard),
		T(test_fifo),
		T(test_upgrade_downgrade),
		T(test_lending),
		T(test_conditional),
		T(test_ioexcl),
		T(test_ioexcl_back),
		T(test_times_merge),
		T(test_size),
		T(test_node_down),
		T(test_taken),
		T(test_interrupt),
		T(test_client_wait_interrupted),
		T(test_obtain_given_up),
		T(test_server_wait_interrupted),
		T(test_refs_hold_recall),
		T(test_try),
		T(test_lend_crossing),
		T(test_create_exist),
		T(test_counters),
		T(test_waits_server),
		T(test_waits_client),
		T(test_exist_freeing),
		T(test_randomized),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
