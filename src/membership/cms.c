/*
 * cms.c - cell membership: heartbeats, the leader's two-phase proposals,
 * quorum, delivery (cms.h).
 *
 * Datagram: a fixed header (struct cms__hdr), a body by type, and an
 * HMAC-SHA-256 over both keyed by a key derived from the cluster secret.
 * Types: HB (heartbeat), PROPOSE, ACK, COMMIT.  The structures are sent as
 * they lie in memory: little-endian hosts with the same ABI, as the rest of
 * the cluster assumes (the sizes are checked below).
 *
 * Lock order: cms.mu only; the delivery callback and the tie-breaker run
 * without it.
 */
#include "membership/cms.h"

#include "common/cx_intr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CMS__MAGIC 0x534d5843u          /* "CXMS" */
#define CMS__VERSION 1
#define CMS__MAC 32
#define CMS__PKT_MAX 1400

enum cms__type { CMS__HB = 1, CMS__PROPOSE, CMS__ACK, CMS__COMMIT };

struct cms__hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint16_t from;                   /* sender's node index */
	uint16_t nnodes;                 /* nodes in the sender's configuration */
	uint32_t pad;
	uint64_t incarnation;            /* sender's start, CLOCK_REALTIME ns */
	uint64_t seq;                    /* per incarnation, grows by one per datagram */
};

struct cms__hb {
	uint64_t epoch;                  /* the sender's membership */
	uint64_t applied;                /* the epoch it applied */
	uint64_t promised;               /* the highest epoch it promised */
	uint64_t reach;                  /* whom it hears */
	uint64_t settled;                /* leader: every member applied this epoch */
	uint8_t state;
	uint8_t leaving;
	uint16_t min[CMS_NSUBSYS];
	uint16_t max[CMS_NSUBSYS];
};

struct cms__prop {                       /* PROPOSE and COMMIT */
	uint64_t epoch;
	uint64_t floor;                      /* epoch of the last removal */
	uint64_t gone;                       /* withdrew in order and not back: out of the count */
	uint64_t members;
	uint64_t withdrawn;
	uint16_t leader;
	uint16_t level[CMS_NSUBSYS];
	uint64_t joined[CMS_MAX_NODES];      /* epoch each member joined in */
	uint64_t incarnation[CMS_MAX_NODES];
};

struct cms__ack {
	uint64_t epoch;
};

_Static_assert(sizeof(struct cms__hdr) == 32, "cms__hdr layout");
_Static_assert(sizeof(struct cms__hb) == 64, "cms__hb layout");
_Static_assert(sizeof(struct cms__prop) == 56 + 16 * CMS_MAX_NODES, "cms__prop layout");

struct cms__peer {
	struct sockaddr_storage addr;
	socklen_t alen;
	bool resolved;
	uint64_t inc, seq;                   /* newest datagram accepted */
	int64_t heard_ns;                    /* monotonic; 0: never */
	struct cms__hb hb;                   /* its last heartbeat */
	uint64_t refused_inc;                /* the incarnation refused for its levels (logged once) */
};

struct cms {
	struct cms_opts o;
	size_t n;                            /* nodes */
	int self;
	uint64_t may_serve;
	unsigned hb_ms, dead_ms;
	int fd;
	uint8_t key[crypto_auth_hmacsha256_KEYBYTES];
	uint64_t inc, seq;

	pthread_mutex_t mu;
	pthread_cond_t cv;                   /* delivery and waiters */
	pthread_t proto_thr, deliver_thr;
	bool stop, leaving;

	struct cms__peer peer[CMS_MAX_NODES];
	enum cms_state state;
	struct cms_view view;                /* committed (this node's knowledge) */
	uint64_t joined[CMS_MAX_NODES];
	uint64_t promised;                   /* highest epoch promised */
	int promised_leader;
	uint64_t applied;                    /* epoch the callback finished */
	int64_t lost_since;                  /* a member out of reach since (monotonic ns) */
	uint64_t settled_floor;              /* the floor handed to ops.settled last */
	bool ever_member;                    /* was a member of a membership with quorum */
	bool quorum_lost;                    /* a no-quorum view was delivered last */

	/* The leader's proposal in flight. */
	struct cms__prop prop;
	uint64_t prop_removed;
	uint64_t acked;
	int64_t prop_ns;                     /* 0: none */
	uint64_t tie_set;                    /* the set the last tie-break was for */
	int tie_result;

	/* Delivery. */
	bool pending;
	struct cms_view deliver;
	bool delivering;

	/* Counters. */
	uint64_t changes, refused_mac, refused_replay, refused_epoch, refused_other;
	uint64_t refused_levels;
	char last_refusal[160];
};

static const char *const state_names[] = { "nascent", "follower", "leader", "stable", "dead",
					   "shutdown" };
static const char *const subsys_names[] = { "messages", "tokens", "dmapi", "relocation",
					    "membership" };

const char *cms_state_name(enum cms_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

const char *cms_subsys_name(enum cms_subsys s)
{
	return (unsigned)s < CMS_NSUBSYS ? subsys_names[s] : "?";
}

void cms_levels_current(struct cms_levels *out)
{
	/* Messages: level 2 adds the per-connection keys; a level-1 node still talks. */
	static const uint16_t max[CMS_NSUBSYS] = { 2, 1, 1, 1, 1 };

	for (int s = 0; s < CMS_NSUBSYS; s++) {
		out->min[s] = 1;
		out->max[s] = max[s];
	}
}

int cms_levels_parse(const char *spec, struct cms_levels *out)
{
	char buf[256], *save = NULL, *item;

	cms_levels_current(out);
	if (strlen(spec) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, spec);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		unsigned lo, hi;
		char name[32];
		int s, used = 0;

		if (sscanf(item, "%31[a-z]=%u-%u%n", name, &lo, &hi, &used) != 3 || item[used] ||
		    lo < 1 || lo > hi || hi > UINT16_MAX)
			return -EINVAL;
		for (s = 0; s < CMS_NSUBSYS && strcmp(name, subsys_names[s]); s++)
			;
		if (s == CMS_NSUBSYS)
			return -EINVAL;
		out->min[s] = (uint16_t)lo;
		out->max[s] = (uint16_t)hi;
	}
	return 0;
}

__attribute__((format(printf, 2, 3)))
static void say(struct cms *m, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (m->o.log)
		m->o.log(m->o.arg, line);
}

static const char *node_name(struct cms *m, int i)
{
	return i >= 0 && (size_t)i < m->n ? cms_node_name(cms_config_node_at(m->o.cfg, (size_t)i)) : "?";
}

/* "node1,node3" into @buf. */
static const char *set_str(struct cms *m, uint64_t set, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < m->n && len < size; i++)
		if (set & CMS_BIT(i)) {
			int k = snprintf(buf + len, size - len, "%s%s", len ? "," : "", node_name(m, (int)i));

			if (k < 0)
				break;
			len += (size_t)k;
		}
	if (!len)
		snprintf(buf, size, "none");
	return buf;
}

/* ---- datagrams --------------------------------------------------------- */

static int resolve(struct cms__peer *p, const struct cms_node *nd)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	char port[8];

	snprintf(port, sizeof(port), "%u", cms_node_port(nd));
	if (getaddrinfo(cms_node_address(nd), port, &hints, &res) != 0)
		return -EHOSTUNREACH;
	memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
	p->alen = res->ai_addrlen;
	p->resolved = true;
	freeaddrinfo(res);
	return 0;
}

/* Send a datagram of @type with @body to node @to; mu held (for seq). */
static void send_to(struct cms *m, int to, enum cms__type type, const void *body, size_t len)
{
	uint8_t pkt[CMS__PKT_MAX];
	struct cms__hdr h = { .magic = CMS__MAGIC, .version = CMS__VERSION, .type = (uint16_t)type,
			      .from = (uint16_t)m->self, .nnodes = (uint16_t)m->n,
			      .incarnation = m->inc, .seq = ++m->seq };
	struct cms__peer *p = &m->peer[to];

	if (to == m->self || sizeof(h) + len + CMS__MAC > sizeof(pkt))
		return;
	if (!p->resolved && resolve(p, cms_config_node_at(m->o.cfg, (size_t)to)))
		return;
	memcpy(pkt, &h, sizeof(h));
	memcpy(pkt + sizeof(h), body, len);
	crypto_auth_hmacsha256(pkt + sizeof(h) + len, pkt, sizeof(h) + len, m->key);
	(void)sendto(m->fd, pkt, sizeof(h) + len + CMS__MAC, MSG_DONTWAIT,
		     (struct sockaddr *)&p->addr, p->alen);
}

static void send_set(struct cms *m, uint64_t set, enum cms__type type, const void *body, size_t len)
{
	for (size_t i = 0; i < m->n; i++)
		if (set & CMS_BIT(i))
			send_to(m, (int)i, type, body, len);
}

/* ---- what this node sees ---------------------------------------------- */

static bool heard_within(struct cms *m, int i, int64_t now, unsigned ms)
{
	const struct cms__peer *p = &m->peer[i];

	return p->heard_ns && now - p->heard_ns < (int64_t)ms * 1000000LL;
}

static bool heard(struct cms *m, int i, int64_t now)
{
	return heard_within(m, i, now, m->dead_ms);
}

/* The nodes this node heard within @ms (itself included), not withdrawing. */
static uint64_t reach_within(struct cms *m, int64_t now, unsigned ms)
{
	uint64_t r = CMS_BIT(m->self);

	for (size_t i = 0; i < m->n; i++)
		if ((int)i != m->self && heard_within(m, (int)i, now, ms) && !m->peer[i].hb.leaving)
			r |= CMS_BIT(i);
	return r;
}

/* The nodes this node hears (itself included), not withdrawing. */
static uint64_t my_reach(struct cms *m, int64_t now)
{
	return reach_within(m, now, m->dead_ms);
}

/*
 * The nodes quorum is counted over: those that may serve, less those that
 * withdrew in order and have not come back (a node that withdrew cannot be
 * on the other side of a partition: it must be admitted again first, by a
 * side that has quorum without it).
 */
static uint64_t voters(const struct cms *m)
{
	return m->may_serve & ~m->view.gone;
}

/*
 * Does this node still hear a quorum (or half, for the tie-breaker) to keep
 * serving?  The others declare it dead after dead_after, and a node stops
 * one heartbeat before that (a lease), so that it never serves from its
 * caches after the others recovered it.
 */
static bool lease_holds(struct cms *m, int64_t now)
{
	uint64_t r = reach_within(m, now, m->dead_ms - m->hb_ms);

	return cms_view_quorum(r, voters(m), false) || cms_view_is_tie(r, voters(m));
}

/* Has @set quorum (a tie only if won on the disk, see tie_won)? */
static bool has_quorum(struct cms *m, uint64_t set, bool may_race);

/* Do the ranges of the nodes in @set share a level of every subsystem?  Fill @level. */
static bool levels_meet(struct cms *m, uint64_t set, uint16_t *level, int *bad_sub)
{
	for (int s = 0; s < CMS_NSUBSYS; s++) {
		uint16_t lo = 0, hi = UINT16_MAX;

		for (size_t i = 0; i < m->n; i++) {
			const uint16_t *mn, *mx;

			if (!(set & CMS_BIT(i)))
				continue;
			mn = (int)i == m->self ? m->o.levels.min : m->peer[i].hb.min;
			mx = (int)i == m->self ? m->o.levels.max : m->peer[i].hb.max;
			if (mn[s] > lo)
				lo = mn[s];
			if (mx[s] < hi)
				hi = mx[s];
		}
		if (lo > hi) {
			if (bad_sub)
				*bad_sub = s;
			return false;
		}
		level[s] = hi;
	}
	return true;
}

/* ---- delivery ----------------------------------------------------------- */

/* Hand @v to the delivery thread; mu held. */
static void deliver(struct cms *m, const struct cms_view *v)
{
	m->deliver = *v;
	m->pending = true;
	pthread_cond_broadcast(&m->cv);
}

static void *deliver_main(void *arg)
{
	struct cms *m = arg;

	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		struct cms_view v;

		if (!m->pending) {
			pthread_cond_wait(&m->cv, &m->mu);
			continue;
		}
		v = m->deliver;
		m->pending = false;
		m->delivering = true;
		pthread_mutex_unlock(&m->mu);
		if (m->o.ops && m->o.ops->view)
			m->o.ops->view(m->o.arg, &v);
		pthread_mutex_lock(&m->mu);
		m->delivering = false;
		if (v.quorum && v.member && v.epoch == m->view.epoch) {
			m->applied = v.epoch;
			if (m->state == CMS_FOLLOWER)
				m->state = CMS_STABLE;
		}
		pthread_cond_broadcast(&m->cv);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* A committed membership @p arrived (or this leader committed it); mu held. */
static void commit(struct cms *m, const struct cms__prop *p)
{
	struct cms_view v = { .epoch = p->epoch, .floor = p->floor, .members = p->members,
			      .withdrawn = p->withdrawn, .gone = p->gone, .leader = p->leader,
			      .quorum = true };
	char a[256], b[256], c[256];

	if (p->epoch <= m->view.epoch)
		return;
	/*
	 * A membership that lists this node as its previous incarnation (this
	 * one started before the others saw the old one die) does not admit
	 * it: the old one is fenced first (its key, which is this one's too,
	 * is preempted), and this one joins after, so it registers and writes
	 * only once nobody will fence it for its predecessor.
	 */
	v.member = (p->members & CMS_BIT(m->self)) != 0 &&
		   (p->incarnation[m->self] == 0 || p->incarnation[m->self] == m->inc);
	v.removed = m->view.members & ~p->members;
	memcpy(v.incarnation, p->incarnation, sizeof(v.incarnation));
	memcpy(v.level, p->level, sizeof(v.level));
	memcpy(m->joined, p->joined, sizeof(m->joined));
	m->view = v;
	m->quorum_lost = false;
	m->lost_since = 0;
	m->changes++;
	if (m->promised < p->epoch)
		m->promised = p->epoch;
	if (v.member)
		m->ever_member = true;
	if (!v.member)
		m->state = m->leaving ? CMS_SHUTDOWN : CMS_NASCENT;
	else
		m->state = p->leader == m->self ? CMS_LEADER : CMS_FOLLOWER;
	say(m, "membership epoch %" PRIu64 ": members %s; leader %s%s%s%s%s", v.epoch,
	    set_str(m, v.members, a, sizeof(a)), node_name(m, v.leader),
	    v.removed & ~v.withdrawn ? "; lost " : "",
	    v.removed & ~v.withdrawn ? set_str(m, v.removed & ~v.withdrawn, b, sizeof(b)) : "",
	    v.withdrawn ? "; withdrew " : "", v.withdrawn ? set_str(m, v.withdrawn, c, sizeof(c)) : "");
	deliver(m, &v);
}

/* This node cannot reach a quorum: stop serving until it can; mu held. */
static void lose_quorum(struct cms *m, uint64_t reach)
{
	struct cms_view v = m->view;
	char a[256];

	if (m->quorum_lost || m->leaving)
		return;
	m->quorum_lost = true;
	m->state = m->view.member ? CMS_DEAD : CMS_NASCENT;
	v.quorum = false;
	if (m->view.member)
		say(m, "no quorum: this node hears only %s of the %u node(s) that may serve and have "
	    "not withdrawn; it serves nothing until the membership takes it back",
	    set_str(m, reach, a, sizeof(a)), cms_set_count(voters(m)));
	deliver(m, &v);
}

/* ---- the leader ---------------------------------------------------------- */

static uint64_t highest_epoch(struct cms *m)
{
	uint64_t e = m->view.epoch > m->promised ? m->view.epoch : m->promised;

	for (size_t i = 0; i < m->n; i++) {
		if (m->peer[i].hb.epoch > e)
			e = m->peer[i].hb.epoch;
		if (m->peer[i].hb.promised > e)
			e = m->peer[i].hb.promised;
	}
	if (m->prop_ns && m->prop.epoch > e)
		e = m->prop.epoch;
	return e;
}

/* Decide a tie for @set: 1 won; the disk race runs once per set (mu dropped). */
static bool tie_won(struct cms *m, uint64_t set)
{
	int rc;

	if (cms_config_tie_breaker(m->o.cfg) != CMS_TIE_DISK || !m->o.ops || !m->o.ops->tie_break)
		return false;
	/*
	 * Only a node that was in a membership with quorum breaks a tie: at the
	 * cluster's start half waits for the others (a latecomer registering
	 * afresh would win the disk a second time: two halves at once).
	 */
	if (!m->ever_member)
		return false;
	if (m->tie_set == set)
		return m->tie_result == 1;
	pthread_mutex_unlock(&m->mu);
	rc = m->o.ops->tie_break(m->o.arg, voters(m) & ~set);
	pthread_mutex_lock(&m->mu);
	/* Won or lost stands for this set; an attempt that could not run is made again. */
	if (rc < 0)
		return false;
	m->tie_set = set;
	m->tie_result = rc;
	say(m, "tie-breaker (half of the nodes that may serve): %s",
	    rc == 1 ? "won the disk" : "lost the disk");
	return rc == 1;
}

static bool has_quorum(struct cms *m, uint64_t set, bool may_race)
{
	uint64_t v = voters(m);

	if (cms_view_quorum(set, v, false))
		return true;
	return may_race && cms_view_is_tie(set, v) && tie_won(m, set & v);
}

static void lead(struct cms *m, uint64_t reach, int64_t now)
{
	uint64_t rows[CMS_MAX_NODES], set, members = m->view.quorum ? m->view.members : 0;
	uint64_t behind = 0, dead = 0, restarted = 0, joiners, withdrawn;
	struct cms__prop *p = &m->prop;
	int bad;

	for (size_t i = 0; i < m->n; i++)
		rows[i] = (int)i == m->self ? reach : m->peer[i].hb.reach | CMS_BIT(i);
	set = cms_view_clique(rows, m->n, reach, m->self, members);
	/* The other members: behind the current membership, dead, restarted. */
	for (size_t i = 0; i < m->n; i++) {
		const struct cms__peer *pe = &m->peer[i];

		if (!(members & set & CMS_BIT(i)) || (int)i == m->self)
			continue;
		if (pe->hb.applied < m->view.epoch)
			behind |= CMS_BIT(i);
		if (pe->hb.state == CMS_DEAD)
			dead |= CMS_BIT(i);
		if (pe->inc != m->view.incarnation[i])
			restarted |= CMS_BIT(i);
	}
	if (m->applied < m->view.epoch && (members & CMS_BIT(m->self)))
		behind |= CMS_BIT(m->self);
	/* Joins wait while a member has not applied the current membership. */
	joiners = set & ~members;
	if (joiners && behind && members)
		set &= members;
	/* A node whose levels and the others' share nothing stays out. */
	for (size_t i = 0; i < m->n; i++) {
		uint16_t lv[CMS_NSUBSYS];

		if (!(joiners & set & CMS_BIT(i)) || levels_meet(m, set, lv, &bad))
			continue;
		set &= ~CMS_BIT(i);
		if (m->peer[i].refused_inc == m->peer[i].inc)
			continue;
		m->peer[i].refused_inc = m->peer[i].inc;
		m->refused_levels++;
		snprintf(m->last_refusal, sizeof(m->last_refusal),
			 "node %s refused: its %s levels %u..%u share none with the members'",
			 node_name(m, (int)i), cms_subsys_name((enum cms_subsys)bad),
			 m->peer[i].hb.min[bad], m->peer[i].hb.max[bad]);
		say(m, "%s", m->last_refusal);
	}
	if (!has_quorum(m, set, true) || !lease_holds(m, now)) {
		lose_quorum(m, reach);
		return;
	}
	/*
	 * Nothing to change, unless a member lost quorum meanwhile (it needs a
	 * new membership to serve again) or restarted (it leaves and joins again).
	 */
	if (set == members && m->view.quorum && !m->quorum_lost && !dead && !restarted) {
		m->prop_ns = 0;
		return;
	}
	if (m->prop_ns && now - m->prop_ns < (int64_t)m->dead_ms * 1000000LL &&
	    p->members == (set & ~restarted))
		return;                      /* in flight */
	/* A restarted member goes out first, so that it is fenced before it rejoins. */
	set &= ~restarted;
	withdrawn = 0;
	for (size_t i = 0; i < m->n; i++)
		if ((members & ~set & CMS_BIT(i)) && m->peer[i].hb.leaving && heard(m, (int)i, now))
			withdrawn |= CMS_BIT(i);
	memset(p, 0, sizeof(*p));
	p->epoch = highest_epoch(m) + 1;
	p->floor = (members & ~set) ? p->epoch : m->view.floor;
	p->gone = (m->view.gone | withdrawn) & ~set;
	p->members = set;
	p->withdrawn = withdrawn;
	p->leader = (uint16_t)m->self;
	levels_meet(m, set, p->level, NULL);
	for (size_t i = 0; i < m->n; i++) {
		if (!(set & CMS_BIT(i)))
			continue;
		p->joined[i] = (members & CMS_BIT(i)) && m->joined[i] ? m->joined[i] : p->epoch;
		p->incarnation[i] = (int)i == m->self ? m->inc : m->peer[i].inc;
	}
	m->prop_ns = now;
	m->acked = CMS_BIT(m->self);
	m->promised = p->epoch;
	m->promised_leader = m->self;
	if (set == CMS_BIT(m->self)) {
		commit(m, p);
		m->prop_ns = 0;
		return;
	}
	send_set(m, set, CMS__PROPOSE, p, sizeof(*p));
}

/*
 * Leader: the epoch every member has applied (so every member sends it on
 * its messages), or 0.  Then, and only then, messages below its floor are
 * refused everywhere (ops.settled).
 */
static uint64_t settled(struct cms *m)
{
	if (m->view.leader != m->self || !m->view.quorum || m->applied < m->view.epoch)
		return 0;
	for (size_t i = 0; i < m->n; i++)
		if ((m->view.members & CMS_BIT(i)) && (int)i != m->self &&
		    m->peer[i].hb.applied < m->view.epoch)
			return 0;
	return m->view.epoch;
}

/* The view @epoch is settled everywhere: raise the message floor; mu held. */
static void settle(struct cms *m, uint64_t epoch)
{
	if (!epoch || epoch != m->view.epoch || m->settled_floor >= m->view.floor)
		return;
	m->settled_floor = m->view.floor;
	if (m->o.ops && m->o.ops->settled)
		m->o.ops->settled(m->o.arg, m->view.floor);
}

/* ---- receiving ------------------------------------------------------------ */

static void on_hb(struct cms *m, int from, const struct cms__hb *hb)
{
	struct cms__peer *p = &m->peer[from];

	p->hb = *hb;
	if (from == m->view.leader)
		settle(m, hb->settled);
	/* A member behind our epoch missed the COMMIT: the leader sends it again. */
	if (m->view.leader == m->self && m->view.quorum && hb->epoch < m->view.epoch &&
	    (m->view.members & CMS_BIT(from)) && m->prop.epoch == m->view.epoch)
		send_to(m, from, CMS__COMMIT, &m->prop, sizeof(m->prop));
}

static void on_propose(struct cms *m, int from, const struct cms__prop *p)
{
	struct cms__ack a = { .epoch = p->epoch };

	if (p->leader != from || !(p->members & CMS_BIT(m->self)))
		return;
	if (p->epoch <= m->view.epoch) {
		m->refused_epoch++;
		return;
	}
	if (p->epoch < m->promised || (p->epoch == m->promised && m->promised_leader != from)) {
		m->refused_epoch++;
		return;
	}
	m->promised = p->epoch;
	m->promised_leader = from;
	send_to(m, from, CMS__ACK, &a, sizeof(a));
}

static void on_ack(struct cms *m, int from, const struct cms__ack *a)
{
	if (!m->prop_ns || a->epoch != m->prop.epoch)
		return;
	m->acked |= CMS_BIT(from);
	if ((m->acked & m->prop.members) != m->prop.members)
		return;
	commit(m, &m->prop);
	m->prop_ns = 0;
	send_set(m, m->prop.members, CMS__COMMIT, &m->prop, sizeof(m->prop));
}

static void on_commit(struct cms *m, int from, const struct cms__prop *p)
{
	if (p->leader != from)
		return;
	if (p->epoch <= m->view.epoch) {
		if (p->epoch < m->view.epoch)
			m->refused_epoch++;
		return;
	}
	commit(m, p);
}

static void refuse(struct cms *m, uint64_t *counter, const char *why)
{
	(*counter)++;
	snprintf(m->last_refusal, sizeof(m->last_refusal), "%s", why);
}

static void receive(struct cms *m)
{
	uint8_t pkt[CMS__PKT_MAX + 1];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	struct cms__hdr h;
	struct cms__peer *p;
	ssize_t len = recvfrom(m->fd, pkt, sizeof(pkt), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
	size_t body;
	const void *b;

	if (len < (ssize_t)(sizeof(h) + CMS__MAC) || len > CMS__PKT_MAX) {
		if (len >= 0)
			refuse(m, &m->refused_other, "a datagram of a wrong size");
		return;
	}
	if (crypto_auth_hmacsha256_verify(pkt + len - CMS__MAC, pkt, (size_t)len - CMS__MAC, m->key)) {
		refuse(m, &m->refused_mac, "a datagram with a wrong MAC (another cluster or secret)");
		return;
	}
	memcpy(&h, pkt, sizeof(h));
	if (h.magic != CMS__MAGIC || h.version != CMS__VERSION || h.from >= m->n ||
	    h.from == m->self || h.nnodes != m->n) {
		refuse(m, &m->refused_other, "a datagram of another version or configuration");
		return;
	}
	p = &m->peer[h.from];
	/* Replays: an older incarnation, or a sequence number already seen. */
	if (h.incarnation < p->inc || (h.incarnation == p->inc && h.seq <= p->seq)) {
		refuse(m, &m->refused_replay, "a replayed or reordered datagram");
		return;
	}
	body = (size_t)len - sizeof(h) - CMS__MAC;
	b = pkt + sizeof(h);
	switch (h.type) {
	case CMS__HB:
		if (body != sizeof(struct cms__hb))
			goto bad;
		break;
	case CMS__PROPOSE:
	case CMS__COMMIT:
		if (body != sizeof(struct cms__prop))
			goto bad;
		break;
	case CMS__ACK:
		if (body != sizeof(struct cms__ack))
			goto bad;
		break;
	default:
		goto bad;
	}
	if (h.incarnation != p->inc && p->inc)
		say(m, "node %s restarted (new incarnation)", node_name(m, h.from));
	p->inc = h.incarnation;
	p->seq = h.seq;
	p->heard_ns = cx_intr_now_ns();
	switch (h.type) {
	case CMS__HB: {
		struct cms__hb hb;

		memcpy(&hb, b, sizeof(hb));
		on_hb(m, h.from, &hb);
		break;
	}
	case CMS__PROPOSE:
	case CMS__COMMIT: {
		struct cms__prop pr;

		memcpy(&pr, b, sizeof(pr));
		if (pr.leader >= m->n)
			goto bad;
		if (h.type == CMS__PROPOSE)
			on_propose(m, h.from, &pr);
		else
			on_commit(m, h.from, &pr);
		break;
	}
	case CMS__ACK: {
		struct cms__ack a;

		memcpy(&a, b, sizeof(a));
		on_ack(m, h.from, &a);
		break;
	}
	}
	return;
bad:
	refuse(m, &m->refused_other, "a malformed datagram");
}

/* ---- the protocol thread -------------------------------------------------- */

/* Does a node within @reach report a newer membership than ours? */
static bool hears_newer(const struct cms *m, uint64_t reach)
{
	for (size_t i = 0; i < m->n; i++)
		if ((int)i != m->self && (reach & CMS_BIT(i)) && m->peer[i].hb.epoch > m->view.epoch)
			return true;
	return false;
}

static void tick(struct cms *m)
{
	int64_t now = cx_intr_now_ns();
	uint64_t reach = my_reach(m, now);
	struct cms__hb hb = { .epoch = m->view.epoch, .applied = m->applied,
			      .promised = m->promised, .reach = reach, .settled = settled(m),
			      .state = (uint8_t)m->state, .leaving = m->leaving };
	int leader;

	memcpy(hb.min, m->o.levels.min, sizeof(hb.min));
	memcpy(hb.max, m->o.levels.max, sizeof(hb.max));
	settle(m, hb.settled);
	for (size_t i = 0; i < m->n; i++)
		if ((int)i != m->self)
			send_to(m, (int)i, CMS__HB, &hb, sizeof(hb));
	if (m->leaving)
		return;
	leader = cms_view_leader(reach, m->may_serve, m->joined, m->n);
	/*
	 * A node that hears a newer membership than its own (it was cut off,
	 * and the others went on without it) never leads: its view, floor
	 * included, is stale.  It waits to be admitted by the current leader.
	 */
	if (leader == m->self && !hears_newer(m, reach)) {
		lead(m, reach, now);
		return;
	}
	/*
	 * Not the leader: without quorum within reach, stop.  A member that lost
	 * sight of other members waits for the leader's new membership for one
	 * dead threshold more; none came: its side has no quorum (its leader
	 * lost a tie, say), stop too.
	 */
	if (!lease_holds(m, now)) {
		lose_quorum(m, reach);
	} else if (m->view.member && (m->view.members & ~reach)) {
		if (!m->lost_since)
			m->lost_since = now;
		else if (now - m->lost_since > 2 * (int64_t)m->dead_ms * 1000000LL)
			lose_quorum(m, reach);
	} else {
		m->lost_since = 0;
	}
}

static void *proto_main(void *arg)
{
	struct cms *m = arg;
	int64_t next = cx_intr_now_ns();

	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		struct pollfd pfd = { .fd = m->fd, .events = POLLIN };
		int64_t now = cx_intr_now_ns();
		int wait = next > now ? (int)((next - now) / 1000000) : 0;

		pthread_mutex_unlock(&m->mu);
		(void)poll(&pfd, 1, wait);
		pthread_mutex_lock(&m->mu);
		if (pfd.revents & POLLIN)
			for (int k = 0; k < 64 && !m->stop; k++) {
				receive(m);
				pfd.revents = 0;
				if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & POLLIN))
					break;
			}
		if (cx_intr_now_ns() >= next) {
			tick(m);
			next = cx_intr_now_ns() + (int64_t)m->hb_ms * 1000000LL;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* ---- life ----------------------------------------------------------------- */

static int bind_self(struct cms *m)
{
	struct cms__peer me = { 0 };
	int fd, one = 1;

	if (resolve(&me, m->o.self))
		return -EHOSTUNREACH;
	fd = socket(me.addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&me.addr, me.alen)) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	m->fd = fd;
	return 0;
}

int cms_start(const struct cms_opts *o, struct cms **out)
{
	static const uint8_t label[] = "cxfs membership heartbeats";
	struct cms *m;
	size_t slen;
	const uint8_t *secret = cms_config_secret(o->cfg, &slen);
	struct timespec ts;
	int rc;

	if (cms_config_node_count(o->cfg) > CMS_MAX_NODES)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->o = *o;
	if (!m->o.levels.max[0])
		cms_levels_current(&m->o.levels);
	m->n = cms_config_node_count(o->cfg);
	m->self = (int)cms_node_index(o->self);
	m->hb_ms = cms_config_heartbeat_ms(o->cfg);
	m->dead_ms = cms_config_dead_ms(o->cfg);
	for (size_t i = 0; i < m->n; i++)
		if (cms_node_may_serve(cms_config_node_at(o->cfg, i)))
			m->may_serve |= CMS_BIT(i);
	/* The heartbeats' key: HMAC of a fixed label under the secret. */
	{
		crypto_auth_hmacsha256_state st;

		crypto_auth_hmacsha256_init(&st, secret, slen);
		crypto_auth_hmacsha256_update(&st, label, sizeof(label) - 1);
		crypto_auth_hmacsha256_final(&st, m->key);
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	m->inc = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	m->view.leader = -1;
	m->promised_leader = -1;
	m->tie_result = -1;
	m->state = CMS_NASCENT;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	rc = bind_self(m);
	if (rc)
		goto fail;
	rc = -pthread_create(&m->deliver_thr, NULL, deliver_main, m);
	if (rc)
		goto fail_fd;
	rc = -pthread_create(&m->proto_thr, NULL, proto_main, m);
	if (rc) {
		pthread_mutex_lock(&m->mu);
		m->stop = true;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->deliver_thr, NULL);
		goto fail_fd;
	}
	*out = m;
	return 0;
fail_fd:
	close(m->fd);
fail:
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	sodium_memzero(m->key, sizeof(m->key));
	free(m);
	return rc;
}

/* Wait on cv for a change, 50 ms at most (what is awaited may come with a heartbeat); mu held. */
static void nap(struct cms *m)
{
	int64_t until = cx_intr_now_ns() + 50 * 1000000LL;
	struct timespec ts = { (time_t)(until / 1000000000), (long)(until % 1000000000) };

	(void)pthread_cond_clockwait(&m->cv, &m->mu, CLOCK_MONOTONIC, &ts);
}

int cms_leave(struct cms *m, unsigned wait_ms)
{
	int64_t until = cx_intr_now_ns() + (int64_t)wait_ms * 1000000LL;
	int rc = -ETIMEDOUT;

	pthread_mutex_lock(&m->mu);
	m->leaving = true;
	m->state = CMS_SHUTDOWN;
	while (cx_intr_now_ns() < until) {
		bool seen = true;

		/* Seen once every member heard it would not count this node any more. */
		for (size_t i = 0; i < m->n; i++)
			if ((int)i != m->self && (m->view.members & CMS_BIT(i)) &&
			    heard(m, (int)i, cx_intr_now_ns()) && (m->peer[i].hb.reach & CMS_BIT(m->self)))
				seen = false;
		if (seen) {
			rc = 0;
			break;
		}
		nap(m);
	}
	pthread_mutex_unlock(&m->mu);
	say(m, "left the membership%s", rc ? " (not every member confirmed in time)" : "");
	return rc;
}

void cms_stop(struct cms *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	pthread_join(m->proto_thr, NULL);
	pthread_join(m->deliver_thr, NULL);
	close(m->fd);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	sodium_memzero(m->key, sizeof(m->key));
	free(m);
}

void cms_view_get(struct cms *m, struct cms_view *out)
{
	pthread_mutex_lock(&m->mu);
	*out = m->view;
	out->quorum = m->view.quorum && !m->quorum_lost;
	pthread_mutex_unlock(&m->mu);
}

void cms_rejoin(struct cms *m)
{
	pthread_mutex_lock(&m->mu);
	if (m->view.member && !m->leaving) {
		m->quorum_lost = true;
		m->state = CMS_DEAD;
		say(m, "asks the membership to take it back (epoch %" PRIu64 ")", m->view.epoch);
	}
	pthread_mutex_unlock(&m->mu);
}

enum cms_state cms_state_get(struct cms *m)
{
	enum cms_state s;

	pthread_mutex_lock(&m->mu);
	s = m->state;
	pthread_mutex_unlock(&m->mu);
	return s;
}

int cms_wait_member(struct cms *m, unsigned ms)
{
	int64_t until = cx_intr_now_ns() + (int64_t)ms * 1000000LL;
	int rc = -ETIMEDOUT;

	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		if (m->view.member && m->view.quorum && !m->quorum_lost && m->applied == m->view.epoch) {
			rc = 0;
			break;
		}
		if (cx_intr_now_ns() >= until)
			break;
		nap(m);
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

int cms_status_json(struct cms *m, char *buf, size_t size)
{
	size_t len = 0;
	int64_t now = cx_intr_now_ns();
	int n;

#define PUT(...)                                                                   \
	do {                                                                       \
		n = snprintf(buf + len, len < size ? size - len : 0, __VA_ARGS__); \
		if (n < 0)                                                         \
			return -EIO;                                               \
		len += (size_t)n;                                                  \
	} while (0)
	pthread_mutex_lock(&m->mu);
	PUT("{\"epoch\":%" PRIu64 ",\"floor\":%" PRIu64 ",\"state\":\"%s\",\"leader\":\"%s\","
	    "\"quorum\":%s,\"heartbeat_ms\":%u,\"dead_after_ms\":%u,\"changes\":%" PRIu64
	    ",\"levels\":{",
	    m->view.epoch, m->settled_floor, cms_state_name(m->state),
	    m->view.leader >= 0 ? node_name(m, m->view.leader) : "",
	    m->view.quorum && !m->quorum_lost ? "true" : "false", m->hb_ms, m->dead_ms, m->changes);
	for (int s = 0; s < CMS_NSUBSYS; s++)
		PUT("%s\"%s\":%u", s ? "," : "", cms_subsys_name((enum cms_subsys)s), m->view.level[s]);
	{
		char g[256];

		PUT("},\"withdrawn\":\"%s\",\"nodes\":[",
		    m->view.gone ? set_str(m, m->view.gone, g, sizeof(g)) : "");
	}
	for (size_t i = 0; i < m->n; i++) {
		bool me = (int)i == m->self, member = (m->view.members & CMS_BIT(i)) != 0;
		const char *st = me ? cms_state_name(m->state)
			       : heard(m, (int)i, now) ? cms_state_name((enum cms_state)m->peer[i].hb.state)
			       : m->peer[i].heard_ns ? "dead" : "unknown";
		const uint16_t *mn = me ? m->o.levels.min : m->peer[i].hb.min;
		const uint16_t *mx = me ? m->o.levels.max : m->peer[i].hb.max;

		PUT("%s{\"name\":\"%s\",\"member\":%s,\"state\":\"%s\",\"heard_ms_ago\":%" PRId64
		    ",\"joined_epoch\":%" PRIu64 ",\"levels\":{", i ? "," : "", node_name(m, (int)i),
		    member ? "true" : "false", st,
		    me ? 0 : m->peer[i].heard_ns ? (now - m->peer[i].heard_ns) / 1000000 : -1,
		    member ? m->joined[i] : 0);
		for (int s = 0; s < CMS_NSUBSYS; s++)
			PUT("%s\"%s\":\"%u..%u\"", s ? "," : "", cms_subsys_name((enum cms_subsys)s),
			    mn[s], mx[s]);
		PUT("}}");
	}
	PUT("],\"refused\":{\"mac\":%" PRIu64 ",\"replay\":%" PRIu64 ",\"old_epoch\":%" PRIu64
	    ",\"levels\":%" PRIu64 ",\"other\":%" PRIu64 "},\"last_refusal\":\"%s\"}",
	    m->refused_mac, m->refused_replay, m->refused_epoch, m->refused_levels,
	    m->refused_other, m->last_refusal);
	pthread_mutex_unlock(&m->mu);
#undef PUT
	return len < size ? (int)len : -ENOSPC;
}
