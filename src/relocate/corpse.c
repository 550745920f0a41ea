/*
 * corpse.c - recovery of the metadata server after its node died (see
 * corpse.h):
 *
 *   1. state, history and the status
 *   2. a survivor's phases (celldown, gather, retarget) and the elected
 *      node's (its bag, reconstruct)
 *   3. the leader's thread: one attempt runs the three passes
 *   4. views and messages
 *
 * The node and its subsystems are reached only through the callout tables
 * of relocate/rl.h.
 *
 * Lock order: corpse.mu is taken alone around the state below; no callout
 * and no message is made with it held.  The elected node's bag is changed
 * and used under corpse.bmu (BAG messages and RECONSTRUCT are handled on
 * RPC workers): corpse.bmu -> kore.mu (kore_celldown) -> the callouts'.
 *
 * Deadlock-freedom: the leader's thread waits only for calls bounded by
 * CORPSE_CALL_MS; a handler never calls the leader back.  A survivor's
 * GATHER handler calls the elected node (BAG): on the elected node those
 * are taken on other workers (the requests lane grows with its waiters).
 */
#include "relocate/corpse.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cx_intr.h"
#include "membership/cms_config.h"
#include "rpc/rpc.h"

#define CORPSE_CALL_MS 10000u      /* a phase not answered by then fails the attempt */
#define CORPSE_HIST 16             /* recoveries kept for the status */
#define CORPSE_RETRY_MS 200        /* between attempts of one recovery */
#define BIT(id) (UINT64_C(1) << ((id) - 1))

/* One recovery as this node saw it (the leader's has every phase's time). */
struct corpse_rec {
	uint64_t id;                    /* the membership's epoch that started it */
	uint64_t dead;                  /* index bits */
	uint32_t leader, elected;
	bool led;                       /* this node led it */
	unsigned attempts;
	unsigned retargeted;            /* survivors told the new server (leader) */
	double ms_celldown, ms_gather, ms_reconstruct, ms_retarget, ms;
	int64_t at;                     /* when it started, unix ms */
	char result[64];
};

struct corpse {
	const struct rl_env *env;       /* constant */
	struct kore *kore;              /* constant */
	pthread_mutex_t mu;             /* protects what follows, up to bmu */
	pthread_cond_t cv;
	uint64_t gen;                   /* grows with each view: older attempts stop */
	uint64_t members, dead;         /* the last view; dead: since the last recovery */
	uint32_t leader;
	uint64_t epoch;
	bool busy;                      /* the server died, not retargeted yet */
	bool rebuilding;                /* elected: reconstruct runs */
	bool wanted;                    /* a view asks the leader for an attempt */
	bool stop;
	const char *phase;              /* the leader's attempt: where it is (NULL: idle) */
	unsigned pass;
	uint32_t elected;
	struct corpse_rec cur;
	struct corpse_rec hist[CORPSE_HIST];
	size_t nhist;                   /* recoveries so far (the last CORPSE_HIST kept) */
	bool started;
	pthread_t thread;
	bool asking;                    /* the rejoin thread runs (corpse_rejoined) */
	bool asker_started;             /* asker is to be joined */
	pthread_t asker;

	pthread_mutex_t bmu;            /* the elected node's bag: protects what follows */
	uint64_t bag_epoch;
	uint64_t have;                  /* nodes whose last part came */
	struct rl_bag bag;
};

/* ---- 1. state and status ---------------------------------------------------- */

static int64_t wall_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static const char *node_name(const struct rl_env *env, uint32_t id)
{
	const struct cms_node *n = rl_node(env, id);

	return n ? cms_node_name(n) : "none";
}

static void set_phase(struct corpse *c, unsigned pass, const char *phase)
{
	pthread_mutex_lock(&c->mu);
	c->pass = pass;
	c->phase = phase;
	pthread_mutex_unlock(&c->mu);
}

/* Keep @r in the history (corpse.mu held). */
static void remember(struct corpse *c, const struct corpse_rec *r)
{
	c->hist[c->nhist % CORPSE_HIST] = *r;
	c->nhist++;
}

static int put(char *buf, size_t size, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int put(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(*len < size ? buf + *len : NULL, *len < size ? size - *len : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n;
	return n;
}

static void rec_json(const struct rl_env *env, const struct corpse_rec *r, char *buf, size_t size,
		     size_t *len)
{
	put(buf, size, len, "{\"id\":%" PRIu64 ",\"at_ms\":%" PRId64 ",\"dead\":[", r->id, r->at);
	for (uint32_t id = 1, first = 1; id <= 64; id++)
		if (r->dead & BIT(id)) {
			put(buf, size, len, "%s\"%s\"", first ? "" : ",", node_name(env, id));
			first = 0;
		}
	put(buf, size, len, "],\"leader\":\"%s\",\"elected\":\"%s\",\"led\":%s,\"attempts\":%u,"
	    "\"result\":\"%s\",\"ms\":{\"celldown\":%.1f,\"gather\":%.1f,\"reconstruct\":%.1f,"
	    "\"retarget\":%.1f,\"total\":%.1f}}", node_name(env, r->leader),
	    node_name(env, r->elected), r->led ? "true" : "false", r->attempts, r->result,
	    r->ms_celldown, r->ms_gather, r->ms_reconstruct, r->ms_retarget, r->ms);
}

int corpse_status_json(struct corpse *c, char *buf, size_t size)
{
	size_t len = 0, n, first;

	pthread_mutex_lock(&c->mu);
	put(buf, size, &len, "\"recovery\":{\"state\":\"%s\",\"busy\":%s,\"pass\":%u,"
	    "\"phase\":\"%s\",\"leader\":\"%s\",\"elected\":\"%s\",\"count\":%zu,\"history\":[",
	    c->phase ? "running" : "idle", c->busy ? "true" : "false", c->phase ? c->pass : 0,
	    c->phase ? c->phase : "", node_name(c->env, c->leader),
	    node_name(c->env, c->elected), c->nhist);
	n = c->nhist < CORPSE_HIST ? c->nhist : CORPSE_HIST;
	first = c->nhist - n;
	for (size_t i = first; i < c->nhist; i++) {
		if (i > first)
			put(buf, size, &len, ",");
		rec_json(c->env, &c->hist[i % CORPSE_HIST], buf, size, &len);
	}
	put(buf, size, &len, "]}");
	pthread_mutex_unlock(&c->mu);
	return (int)len;
}

uint64_t corpse_count(struct corpse *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->mu);
	n = c->nhist;
	pthread_mutex_unlock(&c->mu);
	return n;
}

bool corpse_busy(struct corpse *c)
{
	bool b;

	pthread_mutex_lock(&c->mu);
	b = c->busy;
	pthread_mutex_unlock(&c->mu);
	return b;
}

bool corpse_phase(uint32_t phase)
{
	return phase >= CORPSE_CELLDOWN && phase <= CORPSE_RETARGET;
}

/* ---- 2. the survivors' and the elected node's phases ------------------------ */

/*
 * The server is among @dead: new requests to it wait (detarget), calls
 * waiting on it end at once and wait too, a half relocation ends, and the
 * subsystems drop the dead nodes' state.  Idempotent.
 */
static void celldown(struct corpse *c, uint64_t dead)
{
	const struct rl_env *env = c->env;
	uint32_t server;
	bool first;

	kore_celldown(c->kore, dead);
	server = env->node->server(env->arg);
	if (!server || !(dead & BIT(server)) || env->node->serving(env->arg))
		return;
	pthread_mutex_lock(&c->mu);
	first = !c->busy;
	c->busy = true;
	c->dead |= dead;
	pthread_mutex_unlock(&c->mu);
	env->node->gate(env->arg, RL_GATE_CLOSED);
	env->node->cut(env->arg, server);
	for (size_t i = 0; i < env->nsubs; i++)
		if (env->subs[i]->celldown)
			env->subs[i]->celldown(env->arg, dead);
	if (first)
		fprintf(stderr, "cxfsd: recovery: the metadata server %s is gone: requests to it "
			"wait for the new one\n", node_name(env, server));
}

/* Send this node's share to @target (or keep it, if it is us). */
static int gather(struct corpse *c, uint32_t target, uint64_t epoch);

static int take_part(struct corpse *c, uint32_t from, const Cxfs__RelocReq *m, bool end)
{
	int rc = 0;

	/* Each node speaks for itself only: its tokens, its locks, its requests. */
	for (size_t i = 0; i < m->n_grants; i++)
		if (m->grants[i]->node != from)
			return -EINVAL;
	for (size_t i = 0; i < m->n_locks; i++)
		if (!m->locks[i]->has_node || m->locks[i]->node != from)
			return -EINVAL;
	for (size_t i = 0; i < m->n_unsafe; i++)
		if (m->unsafe[i]->node != from)
			return -EINVAL;
	pthread_mutex_lock(&c->bmu);
	if (m->epoch > c->bag_epoch) {
		rl_bag_clear(&c->bag);
		c->have = 0;
		c->bag_epoch = m->epoch;
	}
	if (m->epoch < c->bag_epoch)
		rc = -ESTALE;
	else if (c->have & BIT(from))
		rc = -EALREADY;     /* a share counts once */
	else
		rc = rl_bag_take(&c->bag, m);
	if (!rc && end)
		c->have |= BIT(from);
	pthread_mutex_unlock(&c->bmu);
	return rc;
}

static int gather(struct corpse *c, uint32_t target, uint64_t epoch)
{
	const struct rl_env *env = c->env;
	uint32_t self = env->node->self(env->arg);
	const struct cms_node *tn = rl_node(env, target);
	Cxfs__RelocReq fill = CXFS__RELOC_REQ__INIT;
	struct rl_bag b = { 0 };
	struct rpc_chan *ch;
	int rc;

	if (!tn)
		return -EINVAL;
	if (target != self)
		env->node->elected(env->arg, target);
	rc = rl_gather(env, &b, false);
	if (rc)
		goto out;
	fill.has_target = fill.has_epoch = 1;
	fill.target = target;
	fill.epoch = epoch;
	if (target == self) {
		/* Our own share: straight into the bag, as a message would bring it. */
		pthread_mutex_lock(&c->bmu);
		if (epoch > c->bag_epoch) {
			rl_bag_clear(&c->bag);
			c->have = 0;
			c->bag_epoch = epoch;
		}
		rc = epoch < c->bag_epoch ? -ESTALE : (c->have & BIT(self)) ? -EALREADY : 0;
		for (size_t i = 0; !rc && i < b.ng; i++)
			rc = rl_bag_grant(&c->bag, b.g[i].node, b.g[i].ino, &b.g[i].held,
					  &b.g[i].returning);
		for (size_t i = 0; !rc && i < b.nl; i++)
			rc = rl_bag_lock(&c->bag, b.l[i].ino, &b.l[i].lk);
		for (size_t i = 0; !rc && i < b.nu; i++)
			rc = rl_bag_unsafe(&c->bag, b.u[i]);
		if (!rc)
			c->have |= BIT(self);
		pthread_mutex_unlock(&c->bmu);
		goto out;
	}
	rc = rpc_connect(env->node->rpc(env->arg), cms_node_address(tn), cms_node_port(tn), &ch);
	if (rc)
		goto out;
	rc = rl_bag_send(ch, &b, &fill, CORPSE_BAG, CORPSE_BAG_END, CORPSE_CALL_MS);
	rpc_chan_put(ch);
out:
	rl_bag_clear(&b);
	return rc;
}

/* The elected node: fence the dead, open the store, rebuild, serve. */
static int reconstruct(struct corpse *c, uint64_t epoch, uint64_t dead, uint64_t sources)
{
	const struct rl_env *env = c->env;
	const struct rl_node_ops *n = env->node;
	int64_t t0, t1;
	char err[256];
	int rc;

	if (n->serving(env->arg))
		return 0;           /* instantiated by an earlier attempt */
	rc = n->can_serve(env->arg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfsd: recovery %" PRIu64 ": cannot serve: %s\n", epoch, err);
		return rc;
	}
	pthread_mutex_lock(&c->bmu);
	if (c->bag_epoch != epoch || (c->have & sources) != sources) {
		pthread_mutex_unlock(&c->bmu);
		return -EAGAIN;
	}
	pthread_mutex_lock(&c->mu);
	c->rebuilding = true;
	pthread_mutex_unlock(&c->mu);
	t0 = cx_intr_now_ns();
	fprintf(stderr, "cxfsd: recovery %" PRIu64 ": reconstruct: %zu grants, %zu locks, %zu "
		"requests not yet durable\n", epoch, c->bag.ng, c->bag.nl, c->bag.nu);
	/* The dead write no more before the store opens: never two writers. */
	for (uint32_t id = 1; id <= 64; id++)
		if ((dead & BIT(id)) && (rc = n->fence(env->arg, id)) != 0)
			fprintf(stderr, "cxfsd: recovery %" PRIu64 ": fencing %s failed: %s\n", epoch,
				node_name(env, id), strerror(-rc));
	t1 = cx_intr_now_ns();
	/* Requests waiting here start over on the server chains. */
	n->moving(env->arg, true);
	n->gate(env->arg, RL_GATE_MIGRATE);
	n->announce(env->arg);
	rc = rl_become_server(env, &c->bag, err, sizeof(err));
	rl_bag_clear(&c->bag);
	c->have = 0;
	pthread_mutex_lock(&c->mu);
	c->rebuilding = false;
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->bmu);
	n->moving(env->arg, false);
	n->release(env->arg);
	if (rc) {
		n->gate(env->arg, RL_GATE_CLOSED);
		fprintf(stderr, "cxfsd: recovery %" PRIu64 ": cannot serve: %s\n", epoch, err);
		return rc;
	}
	fprintf(stderr, "cxfsd: recovery %" PRIu64 ": this node serves filesystem %s now "
		"(fenced in %.1f ms, store opened and rebuilt in %.1f ms)\n", epoch,
		cms_fs_name(n->fs(env->arg)), rl_ms_since(t0) - rl_ms_since(t1),
		rl_ms_since(t1));
	return 0;
}

/* Every survivor: the server is @target now. */
static int retarget(struct corpse *c, uint32_t target, uint64_t epoch)
{
	const struct rl_env *env = c->env;
	int rc = 0;

	if (target != env->node->self(env->arg)) {
		rc = rl_join(env, target, true);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < env->nsubs; i++)
		if (env->subs[i]->retarget)
			env->subs[i]->retarget(env->arg, target);
	pthread_mutex_lock(&c->mu);
	c->busy = false;
	c->dead = 0;
	pthread_mutex_unlock(&c->mu);
	env->node->gate(env->arg, RL_GATE_OPEN);
	fprintf(stderr, "cxfsd: recovery %" PRIu64 ": the metadata server is %s\n", epoch,
		node_name(env, target));
	return 0;
}

/* ---- 3. the leader ------------------------------------------------------------ */

struct answer {
	int err;
	bool serving;
	uint32_t server;
};

static int do_phase(struct corpse *c, uint32_t from, const Cxfs__RelocReq *m, struct answer *a);

/* Phase @m to node @id (ourselves: directly); 0 or -errno, and what it said. */
static int call(struct corpse *c, uint32_t id, const Cxfs__RelocReq *m, struct answer *a)
{
	const struct rl_env *env = c->env;
	const struct cms_node *n = rl_node(env, id);
	ProtobufCMessage *rep = NULL;
	struct rpc_chan *ch;
	Cxfs__MsgType rt;
	int rc;

	memset(a, 0, sizeof(*a));
	if (!n)
		return -EINVAL;
	if (id == env->node->self(env->arg))
		return do_phase(c, id, m, a);
	rc = rpc_connect(env->node->rpc(env->arg), cms_node_address(n), cms_node_port(n), &ch);
	if (rc)
		return rc;
	rc = rpc_call(ch, CXFS__MSG_TYPE__RELOC_REQ, &m->base, CORPSE_CALL_MS, &rt, &rep);
	rpc_chan_put(ch);
	if (rc)
		return rc;
	if (rt == CXFS__MSG_TYPE__ERROR_REPLY) {
		rc = ((Cxfs__ErrorReply *)rep)->err;
	} else {
		const Cxfs__StatusReply *r = (const Cxfs__StatusReply *)rep;

		rc = r->err;
		a->serving = r->has_serving && r->serving;
		a->server = r->has_server ? r->server : 0;
	}
	rpc_msg_free(rep);
	return rc ? rc : 0;
}

static bool stale(struct corpse *c, uint64_t gen)
{
	bool s;

	pthread_mutex_lock(&c->mu);
	s = c->gen != gen || c->stop;
	pthread_mutex_unlock(&c->mu);
	return s;
}

/*
 * Phase @m to every node of @members but those of @skip, each answer into
 * @ans[id]: 0, -ESTALE if a newer view took over, or the first failure's
 * error (its node in *@failed).
 */
static int to_all(struct corpse *c, uint64_t gen, uint64_t members, uint64_t skip,
		  const Cxfs__RelocReq *m, struct answer *ans, uint32_t *failed)
{
	for (uint32_t id = 1; id <= 64; id++) {
		int rc;

		if (!(members & BIT(id)) || (skip & BIT(id)))
			continue;
		rc = call(c, id, m, &ans[id]);
		if (stale(c, gen))
			return -ESTALE;
		if (rc) {
			*failed = id;
			return rc;
		}
	}
	return 0;
}

/* The nodes whose answer named @server (index bits). */
static uint64_t knows_server(const struct answer *ans, uint32_t server)
{
	uint64_t k = 0;

	for (uint32_t id = 1; id <= 64; id++)
		if (ans[id].server == server)
			k |= BIT(id);
	return k;
}

/* The next surviving node of the server order, not in @refused (0: none). */
static uint32_t elect(const struct rl_env *env, uint64_t members, uint64_t refused)
{
	const struct cms_fs *fs = env->node->fs(env->arg);

	for (size_t i = 0; i < cms_fs_server_count(fs); i++) {
		uint32_t id = (uint32_t)cms_node_index(cms_fs_server(fs, i)) + 1;

		if ((members & BIT(id)) && !(refused & BIT(id)))
			return id;
	}
	return 0;
}

/*
 * One attempt: 0 when every survivor has a serving server, -EAGAIN to try
 * again, -ESTALE when a newer view took over.
 */
static int attempt(struct corpse *c, uint64_t gen, uint64_t members, uint64_t dead,
		   uint64_t epoch, uint64_t *refused)
{
	const struct rl_env *env = c->env;
	Cxfs__RelocReq m = CXFS__RELOC_REQ__INIT;
	struct answer a, ans[65] = { { 0 } };
	uint32_t server = 0, failed = 0;
	uint64_t serving = 0, knows = 0, done;
	int64_t t;
	int rc;

	m.has_epoch = m.has_dead = m.has_sources = 1;
	m.epoch = epoch;
	m.dead = dead;
	m.sources = members;
	/* Pass 1 (relocation) and the survivors' celldown: who serves, who knows whom. */
	set_phase(c, 1, "celldown");
	t = cx_intr_now_ns();
	m.phase = CORPSE_CELLDOWN;
	rc = to_all(c, gen, members, 0, &m, ans, &failed);
	if (rc)
		return rc == -ESTALE ? rc : -EAGAIN;
	for (uint32_t id = 1; id <= 64; id++) {
		if (ans[id].serving)
			serving |= BIT(id);
		if (ans[id].server)
			knows |= BIT(id);
	}
	c->cur.ms_celldown = rl_ms_since(t);
	/*
	 * Pass 2: the name service: a survivor that serves stays, else elect.
	 * (Should two say so, the one most survivors know stays.)
	 */
	set_phase(c, 2, "elect");
	for (uint32_t id = 1, best = 0; id <= 64; id++) {
		uint32_t votes = 0;

		if (!(serving & BIT(id)))
			continue;
		for (uint32_t k = 1; k <= 64; k++)
			votes += ans[k].server == id;
		if (!server || votes > best) {
			server = id;
			best = votes;
		}
	}
	if (serving & (serving - 1))
		fprintf(stderr, "cxfsd: recovery %" PRIu64 ": more than one node says it serves; "
			"%s, which most survivors know, stays\n", epoch, node_name(env, server));
	if (!server) {
		/* Nobody lost a server (a client died): nothing to recover. */
		if ((knows & members) == members)
			return 0;
		server = elect(env, members, *refused);
		if (!server) {
			fprintf(stderr, "cxfsd: recovery %" PRIu64 ": no surviving node may serve "
				"filesystem %s: requests wait\n", epoch,
				cms_fs_name(env->node->fs(env->arg)));
			return -EAGAIN;
		}
		pthread_mutex_lock(&c->mu);
		c->elected = server;
		pthread_mutex_unlock(&c->mu);
		c->cur.elected = server;
		fprintf(stderr, "cxfsd: recovery %" PRIu64 ": elected %s to serve filesystem %s\n",
			epoch, node_name(env, server), cms_fs_name(env->node->fs(env->arg)));
		/* Pass 3: the filesystem. */
		set_phase(c, 3, "gather");
		t = cx_intr_now_ns();
		m.phase = CORPSE_GATHER;
		m.has_target = 1;
		m.target = server;
		rc = to_all(c, gen, members, 0, &m, ans, &failed);
		if (rc == -ESTALE)
			return rc;
		if (rc) {
			fprintf(stderr, "cxfsd: recovery %" PRIu64 ": %s could not send its share to "
				"%s: %s\n", epoch, node_name(env, failed), node_name(env, server),
				strerror(-rc));
			if (failed == server || rc == -ECONNREFUSED || rc == -ETIMEDOUT)
				*refused |= BIT(server);
			return -EAGAIN;
		}
		c->cur.ms_gather = rl_ms_since(t);
		set_phase(c, 3, "reconstruct");
		t = cx_intr_now_ns();
		m.phase = CORPSE_RECONSTRUCT;
		rc = call(c, server, &m, &a);
		if (stale(c, gen))
			return -ESTALE;
		if (rc) {
			fprintf(stderr, "cxfsd: recovery %" PRIu64 ": %s could not instantiate: %s\n",
				epoch, node_name(env, server), strerror(-rc));
			if (rc != -EAGAIN)
				*refused |= BIT(server);
			return -EAGAIN;
		}
		/* The instantiation's commit point: from here on the pass ends with it. */
		c->cur.ms_reconstruct = rl_ms_since(t);
		fprintf(stderr, "cxfsd: recovery %" PRIu64 ": instantiated on %s (%.1f ms)\n", epoch,
			node_name(env, server), c->cur.ms_reconstruct);
	}
	c->cur.elected = server;
	set_phase(c, 3, "retarget");
	t = cx_intr_now_ns();
	m.phase = CORPSE_RETARGET;
	m.has_target = 1;
	m.target = server;
	/* Those that know the server already (and it itself, if it served before) are done. */
	done = knows_server(ans, server) | serving;
	c->cur.retargeted = (unsigned)__builtin_popcountll(members & ~done);
	rc = to_all(c, gen, members, done, &m, ans, &failed);
	if (rc == -ESTALE)
		return rc;
	if (rc) {
		fprintf(stderr, "cxfsd: recovery %" PRIu64 ": %s did not take the new server: %s\n",
			epoch, node_name(env, failed), strerror(-rc));
		return -EAGAIN;
	}
	c->cur.ms_retarget = rl_ms_since(t);
	return 0;
}

/* One recovery, attempt after attempt until it completes or a newer view takes over. */
static void recover(struct corpse *c, uint64_t gen, uint64_t members, uint64_t dead,
		    uint64_t epoch)
{
	const struct rl_env *env = c->env;
	uint64_t refused = 0;
	int64_t t0;
	int rc;

	t0 = cx_intr_now_ns();
	memset(&c->cur, 0, sizeof(c->cur));
	c->cur.id = epoch;
	c->cur.dead = dead;
	c->cur.leader = env->node->self(env->arg);
	c->cur.led = true;
	c->cur.at = wall_ms();
	do {
		c->cur.attempts++;
		rc = attempt(c, gen, members, dead, epoch, &refused);
		if (rc == -EAGAIN) {
			struct timespec ts = { 0, CORPSE_RETRY_MS * 1000000L };

			nanosleep(&ts, NULL);
		}
	} while (rc == -EAGAIN && !stale(c, gen));
	c->cur.ms = rl_ms_since(t0);
	snprintf(c->cur.result, sizeof(c->cur.result), "%s",
		 rc == 0 ? "complete" : "overtaken by a newer membership");
	pthread_mutex_lock(&c->mu);
	c->phase = NULL;
	if (rc == 0 && c->cur.retargeted)
		remember(c, &c->cur);
	pthread_mutex_unlock(&c->mu);
	if (rc == 0 && c->cur.retargeted)
		fprintf(stderr, "cxfsd: recovery %" PRIu64 ": complete: %s serves filesystem %s "
			"(%.1f ms: celldown %.1f, gather %.1f, reconstruct %.1f, retarget %.1f; "
			"%u attempt(s))\n", epoch, node_name(env, c->cur.elected),
			cms_fs_name(env->node->fs(env->arg)), c->cur.ms, c->cur.ms_celldown,
			c->cur.ms_gather, c->cur.ms_reconstruct, c->cur.ms_retarget, c->cur.attempts);
}

static void *leader_main(void *arg)
{
	struct corpse *c = arg;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		uint64_t gen, members, dead, epoch;

		if (!c->wanted) {
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		c->wanted = false;
		gen = c->gen;
		members = c->members;
		dead = c->dead;
		epoch = c->epoch;
		pthread_mutex_unlock(&c->mu);
		recover(c, gen, members, dead, epoch);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* ---- 4. views and messages ------------------------------------------------- */

void corpse_view(struct corpse *c, uint64_t members, uint64_t dead, uint32_t leader,
		 uint64_t epoch)
{
	const struct rl_env *env = c->env;
	uint32_t self = env->node->self(env->arg);
	bool busy;

	if (dead)
		celldown(c, dead);
	pthread_mutex_lock(&c->mu);
	c->gen++;
	c->members = members;
	c->leader = leader;
	c->epoch = epoch;
	busy = c->busy;
	/* The leader looks whenever a node left, or while this node has no server. */
	if (leader == self && (dead || busy)) {
		c->wanted = true;
		if (!c->started)
			c->started = pthread_create(&c->thread, NULL, leader_main, c) == 0;
		pthread_cond_signal(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

/* Phase @m from node @from: 0 or -errno, and the answer's other fields in @a. */
static int do_phase(struct corpse *c, uint32_t from, const Cxfs__RelocReq *m, struct answer *a)
{
	const struct rl_env *env = c->env;
	struct corpse_rec seen;
	int rc = 0;

	memset(a, 0, sizeof(*a));
	switch (m->phase) {
	case CORPSE_CELLDOWN:
		if (m->has_dead && m->dead)
			celldown(c, m->dead);
		/* Elected and still rebuilding (a leader's call gave up): ask again later. */
		pthread_mutex_lock(&c->mu);
		rc = c->rebuilding ? -EINPROGRESS : 0;
		pthread_mutex_unlock(&c->mu);
		if (rc)
			break;
		/* A server cut off (or taken back, not yet sure) serves nothing. */
		a->serving = env->node->serving(env->arg) && !env->node->cut_off(env->arg);
		a->server = corpse_busy(c) ? 0 : env->node->server(env->arg);
		break;
	case CORPSE_GATHER:
		rc = m->has_target && m->has_epoch ? gather(c, m->target, m->epoch) : -EINVAL;
		break;
	case CORPSE_BAG:
	case CORPSE_BAG_END:
		rc = m->has_epoch ? take_part(c, from, m, m->phase == CORPSE_BAG_END) : -EINVAL;
		break;
	case CORPSE_RECONSTRUCT:
		rc = m->has_epoch && m->has_sources
			     ? reconstruct(c, m->epoch, m->has_dead ? m->dead : 0, m->sources)
			     : -EINVAL;
		break;
	case CORPSE_RETARGET:
		if (!m->has_target || !rl_node(env, m->target))
			return -EINVAL;
		rc = retarget(c, m->target, m->has_epoch ? m->epoch : 0);
		if (rc || from == env->node->self(env->arg))
			break;
		/* What this node saw of a recovery another node led. */
		memset(&seen, 0, sizeof(seen));
		seen.id = m->has_epoch ? m->epoch : 0;
		seen.dead = m->has_dead ? m->dead : 0;
		seen.leader = from;
		seen.elected = m->target;
		seen.at = wall_ms();
		snprintf(seen.result, sizeof(seen.result), "retargeted");
		pthread_mutex_lock(&c->mu);
		remember(c, &seen);
		pthread_mutex_unlock(&c->mu);
		break;
	default:
		rc = -EINVAL;
		break;
	}
	return rc;
}

int corpse_handle(struct corpse *c, uint32_t from, struct rpc_req *req, const Cxfs__RelocReq *m)
{
	Cxfs__StatusReply r = CXFS__STATUS_REPLY__INIT;
	struct answer a;

	r.err = do_phase(c, from, m, &a);
	if (m->phase == CORPSE_CELLDOWN) {
		r.has_serving = r.has_server = 1;
		r.serving = a.serving;
		r.server = a.server;
	}
	return rpc_reply(req, CXFS__MSG_TYPE__STATUS_REPLY, &r.base);
}

/*
 * This node served and the others replaced it (it was cut off, they
 * recovered; its writes are fenced): it stops serving and takes the client
 * shape, knowing no server.
 */
static void corpse_depose(struct corpse *c)
{
	const struct rl_env *env = c->env;
	const struct rl_node_ops *n = env->node;
	int rc;

	if (!n->serving(env->arg))
		return;
	fprintf(stderr, "cxfsd: cut off while serving filesystem %s: this node stops serving "
		"(a survivor recovers it) and comes back as a client\n", cms_fs_name(n->fs(env->arg)));
	pthread_mutex_lock(&c->mu);
	c->busy = true;
	pthread_mutex_unlock(&c->mu);
	/* The new server writes the store now: not one write more from here. */
	n->abandon(env->arg);
	n->moving(env->arg, true);
	n->gate(env->arg, RL_GATE_CLOSED);
	n->quiesce(env->arg);
	n->announce(env->arg);
	rc = n->unshape(env->arg);
	if (rc)
		fprintf(stderr, "cxfsd: a vnode could not take the client shape: %s\n", strerror(-rc));
	n->drop_server(env->arg);
	n->set_server(env->arg, 0, NULL, true);
	n->moving(env->arg, false);
	n->release(env->arg);
}

/*
 * Taken back: ask who serves until the answer is sure.  A server that
 * others replaced stops (corpse_depose) and becomes their client; one that
 * nobody replaced serves on; a client takes the server named.
 */
static void *ask_main(void *arg)
{
	struct corpse *c = arg;
	const struct rl_env *env = c->env;
	const struct rl_node_ops *n = env->node;
	uint32_t self = n->self(env->arg), s = 0;

	for (;;) {
		struct timespec ts = { 0, CORPSE_RETRY_MS * 1000000L };
		bool stop;

		pthread_mutex_lock(&c->mu);
		stop = c->stop;
		pthread_mutex_unlock(&c->mu);
		if (stop)
			break;
		if (n->ask_server(env->arg, &s) == 0 && (n->serving(env->arg) || (s && s != self)))
			break;
		nanosleep(&ts, NULL);
	}
	if (s && s != self && n->serving(env->arg))
		corpse_depose(c);
	/* Sure of its role now: the key goes back on the volume, then requests go. */
	if (n->reregister(env->arg))
		fprintf(stderr, "cxfsd: the LUN refuses this node's key: it stays cut off\n");
	else if (s && s != self && (corpse_busy(c) || s != n->server(env->arg)))
		(void)retarget(c, s, 0);
	n->uncut(env->arg);
	pthread_mutex_lock(&c->mu);
	c->asking = false;
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

void corpse_rejoined(struct corpse *c)
{
	pthread_mutex_lock(&c->mu);
	if (!c->asking) {
		if (c->asker_started)
			pthread_join(c->asker, NULL);
		c->asking = c->asker_started = pthread_create(&c->asker, NULL, ask_main, c) == 0;
	}
	pthread_mutex_unlock(&c->mu);
}

int corpse_create(const struct rl_env *env, struct kore *k, struct corpse **out)
{
	struct corpse *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->env = env;
	c->kore = k;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	pthread_mutex_init(&c->bmu, NULL);
	*out = c;
	return 0;
}

void corpse_free(struct corpse *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (c->started)
		pthread_join(c->thread, NULL);
	if (c->asker_started)
		pthread_join(c->asker, NULL);
	rl_bag_clear(&c->bag);
	pthread_mutex_destroy(&c->bmu);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}
