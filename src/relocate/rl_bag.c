/*
 * rl_bag.c - a server's state between nodes (rl.h): growing it, taking it
 * from messages (every field checked: it comes from the network) and
 * sending it in parts.
 */
#include "relocate/rl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc.h"

#define RL_BAG_PART 16384          /* grants (or requests) per message */

static void *grow(void *arr, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return arr;
	ncap = *cap ? *cap * 2 : first;
	p = realloc(arr, ncap * size);
	if (p)
		*cap = ncap;
	return p;
}

int rl_bag_grant(struct rl_bag *b, uint32_t node, uint64_t ino, const struct tok_set *held,
		 const struct tok_set *returning)
{
	struct rl_grant *g = grow(b->g, &b->gcap, b->ng, sizeof(*g), 1024);

	if (!g)
		return -ENOMEM;
	b->g = g;
	b->g[b->ng] = (struct rl_grant){ node, ino, *held, { { 0 } } };
	if (returning)
		b->g[b->ng].returning = *returning;
	b->ng++;
	return 0;
}

/* Levels @v of a message: TOK_NTOKENS bytes, each a level; -EINVAL if not. */
static int levels_from(const ProtobufCBinaryData *v, struct tok_set *s)
{
	if (v->len != TOK_NTOKENS)
		return -EINVAL;
	memcpy(s->level, v->data, TOK_NTOKENS);
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (s->level[t] >= TOK_NLEVELS)
			return -EINVAL;
	return 0;
}

int rl_bag_lock(struct rl_bag *b, uint64_t ino, const struct vn_flock *lk)
{
	struct rl_lock *l = grow(b->l, &b->lcap, b->nl, sizeof(*l), 64);

	if (!l)
		return -ENOMEM;
	b->l = l;
	b->l[b->nl++] = (struct rl_lock){ ino, *lk };
	return 0;
}

void rl_bag_clear(struct rl_bag *b)
{
	for (size_t i = 0; i < b->nu; i++)
		cxfs__unsafe_req__free_unpacked(b->u[i], NULL);
	free(b->g);
	free(b->l);
	free(b->u);
	memset(b, 0, sizeof(*b));
}

int rl_bag_unsafe(struct rl_bag *b, const Cxfs__UnsafeReq *u)
{
	Cxfs__UnsafeReq **v = grow(b->u, &b->ucap, b->nu, sizeof(*v), 256);
	size_t n = cxfs__unsafe_req__get_packed_size(u);
	uint8_t *buf;

	if (!v)
		return -ENOMEM;
	b->u = v;
	/* The bag's own copy, freed as protobuf-c frees what it unpacks. */
	buf = malloc(n ? n : 1);
	if (!buf)
		return -ENOMEM;
	cxfs__unsafe_req__pack(u, buf);
	b->u[b->nu] = cxfs__unsafe_req__unpack(NULL, n, buf);
	free(buf);
	if (!b->u[b->nu])
		return -ENOMEM;
	b->nu++;
	return 0;
}

int rl_bag_take(struct rl_bag *b, const Cxfs__RelocReq *m)
{
	for (size_t i = 0; i < m->n_grants; i++) {
		const Cxfs__RelocGrant *g = m->grants[i];
		struct tok_set s, r;

		tok_set_clear(&r);
		if (g->node == 0 || g->node > 256 || levels_from(&g->levels, &s) ||
		    (g->has_returning && levels_from(&g->returning, &r)))
			return -EINVAL;
		/* A level on its way back is one of the levels held. */
		for (int t = 0; t < TOK_NTOKENS; t++)
			if (r.level[t] != TOK_NONE && r.level[t] != s.level[t])
				return -EINVAL;
		if (rl_bag_grant(b, g->node, g->ino, &s, &r))
			return -ENOMEM;
	}
	for (size_t i = 0; i < m->n_locks; i++) {
		const Cxfs__RelocLock *l = m->locks[i];
		struct vn_flock lk = { .type = (short)l->type, .start = l->start, .end = l->end,
				       .owner = l->owner, .pid = l->pid,
				       .is_flock = l->has_is_flock && l->is_flock,
				       .node = l->has_node ? l->node : 0 };

		if ((lk.type != F_RDLCK && lk.type != F_WRLCK) || lk.start > lk.end)
			return -EINVAL;
		if (rl_bag_lock(b, l->ino, &lk))
			return -ENOMEM;
	}
	for (size_t i = 0; i < m->n_unsafe; i++)
		if (rl_bag_unsafe(b, m->unsafe[i]))
			return -ENOMEM;
	return 0;
}

/* One message of @b: grants [gi, gi+ng), requests [ui, ui+nu), the locks if @locks. */
static int send_part(struct rpc_chan *ch, const struct rl_bag *b, Cxfs__RelocReq *m, size_t gi,
		     size_t ng, size_t ui, size_t nu, bool locks, unsigned timeout_ms)
{
	Cxfs__RelocGrant *g = calloc(ng ? ng : 1, sizeof(*g));
	Cxfs__RelocGrant **gp = calloc(ng ? ng : 1, sizeof(*gp));
	size_t nl = locks ? b->nl : 0;
	Cxfs__RelocLock *l = calloc(nl ? nl : 1, sizeof(*l));
	Cxfs__RelocLock **lp = calloc(nl ? nl : 1, sizeof(*lp));
	ProtobufCMessage *rep = NULL;
	Cxfs__MsgType rt;
	int rc = -ENOMEM;

	if (!g || !gp || !l || !lp)
		goto out;
	for (size_t i = 0; i < ng; i++) {
		cxfs__reloc_grant__init(&g[i]);
		g[i].node = b->g[gi + i].node;
		g[i].ino = b->g[gi + i].ino;
		g[i].levels.data = (uint8_t *)b->g[gi + i].held.level;
		g[i].levels.len = TOK_NTOKENS;
		if (!tok_set_empty(&b->g[gi + i].returning)) {
			g[i].has_returning = 1;
			g[i].returning.data = (uint8_t *)b->g[gi + i].returning.level;
			g[i].returning.len = TOK_NTOKENS;
		}
		gp[i] = &g[i];
	}
	for (size_t i = 0; i < nl; i++) {
		const struct vn_flock *k = &b->l[i].lk;

		cxfs__reloc_lock__init(&l[i]);
		l[i].ino = b->l[i].ino;
		l[i].type = k->type;
		l[i].start = k->start;
		l[i].end = k->end;
		l[i].owner = k->owner;
		l[i].pid = k->pid;
		l[i].has_is_flock = 1;
		l[i].is_flock = k->is_flock;
		l[i].has_node = 1;
		l[i].node = k->node;
		lp[i] = &l[i];
	}
	m->n_grants = ng;
	m->grants = gp;
	m->n_locks = nl;
	m->locks = lp;
	m->n_unsafe = nu;
	m->unsafe = nu ? b->u + ui : NULL;
	rc = rpc_call(ch, CXFS__MSG_TYPE__RELOC_REQ, &m->base, timeout_ms, &rt, &rep);
	if (!rc) {
		rc = rt == CXFS__MSG_TYPE__ERROR_REPLY ? ((Cxfs__ErrorReply *)rep)->err
						       : ((Cxfs__StatusReply *)rep)->err;
		rpc_msg_free(rep);
	}
out:
	free(g);
	free(gp);
	free(l);
	free(lp);
	return rc;
}

int rl_bag_send(struct rpc_chan *ch, const struct rl_bag *b, const Cxfs__RelocReq *fill,
		uint32_t part, uint32_t last, unsigned timeout_ms)
{
	size_t gi = 0, ui = 0;

	for (;;) {
		size_t ng = b->ng - gi < RL_BAG_PART ? b->ng - gi : RL_BAG_PART;
		size_t nu = b->nu - ui < RL_BAG_PART ? b->nu - ui : RL_BAG_PART;
		bool end = gi + ng == b->ng && ui + nu == b->nu;
		Cxfs__RelocReq m = *fill;
		int rc;

		m.phase = end ? last : part;
		rc = send_part(ch, b, &m, gi, ng, ui, nu, end, timeout_ms);
		if (rc || end)
			return rc;
		gi += ng;
		ui += nu;
	}
}
