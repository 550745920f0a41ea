/*
 * cl_runs.c - extent runs from the network, checked where they are used
 * (see cl_runs.h): the shape and place of an extent map a node receives,
 * and the metadata server's ledger of the unwritten runs handed to each
 * node and not yet published.
 *
 * The ledger keeps, per node, an unsorted array of runs.  Runs of one node
 * with the same freshness never overlap (an add first punches its range out
 * of them); a fresh run and a seen run of one node may (the node allocated
 * blocks, then saw them in a map).  The arrays stay short: contiguous runs
 * merge, published runs go, and a node holds few unwritten runs at once
 * (each call scans them: at most CL_LEDGER_MAX_RUNS per node).
 *
 * Locking: cl_ledger.mu, a leaf, protects every node's array.
 */
#include "cluster/cl_runs.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int cl_runs_check(const struct meta_map *r, size_t n, uint64_t from, uint64_t data_blocks)
{
	for (size_t i = 0; i < n; i++) {
		if (r[i].fblk != from || r[i].nblk == 0 || r[i].nblk > UINT64_MAX - from)
			return -EPROTO;
		if (r[i].state != META_MAP_HOLE &&
		    (r[i].pblk >= data_blocks || r[i].nblk > data_blocks - r[i].pblk))
			return -EIO;
		from += r[i].nblk;
	}
	return 0;
}

/* ---- the ledger ----------------------------------------------------------- */

struct cl_ledger_node {
	struct cl_ledger_run *runs;     /* unsorted; cl_ledger.mu */
	size_t n, cap;                  /* cl_ledger.mu */
};

struct cl_ledger {
	pthread_mutex_t mu;             /* a leaf: every node's runs */
	unsigned max_nodes;             /* constant */
	size_t max_runs;                /* per node; constant */
	struct cl_ledger_node nodes[];  /* index: node id (0 unused) */
};

static uint64_t run_end(const struct cl_ledger_run *r)
{
	return r->fblk + r->nblk;
}

/* Does @r hold file block @p of @ino? */
static bool run_holds(const struct cl_ledger_run *r, uint64_t ino, uint64_t p)
{
	return r->ino == ino && r->fblk <= p && p < run_end(r);
}

/* Room for @n runs in @ln; mu held.  0 or -ENOMEM. */
static int reserve(struct cl_ledger_node *ln, size_t n)
{
	struct cl_ledger_run *v;
	size_t cap = ln->cap ? ln->cap : 8;

	if (n <= ln->cap)
		return 0;
	while (cap < n)
		cap *= 2;
	v = realloc(ln->runs, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	ln->runs = v;
	ln->cap = cap;
	return 0;
}

/*
 * Remove file blocks [fblk, end) of @ino from @ln's runs (of freshness
 * @fresh only, unless @any); mu held.  A run across both ends splits in
 * two when the array has room for one more, and goes whole otherwise (a
 * node that loses a claim that way is only checked against other nodes').
 */
static void punch(struct cl_ledger_node *ln, uint64_t ino, uint64_t fblk, uint64_t end, bool any,
		  bool fresh)
{
	for (size_t i = 0; i < ln->n;) {
		struct cl_ledger_run *r = &ln->runs[i];
		uint64_t re = run_end(r);

		if (r->ino != ino || (!any && r->fresh != fresh) || re <= fblk || r->fblk >= end) {
			i++;
		} else if (r->fblk < fblk && re > end && ln->n < ln->cap) {
			struct cl_ledger_run tail = *r;

			tail.pblk += end - r->fblk;
			tail.fblk = end;
			tail.nblk = re - end;
			r->nblk = fblk - r->fblk;
			ln->runs[ln->n++] = tail;
			i++;
		} else if (r->fblk < fblk && re <= end) {
			r->nblk = fblk - r->fblk;
			i++;
		} else if (r->fblk >= fblk && re > end) {
			r->pblk += end - r->fblk;
			r->nblk = re - end;
			r->fblk = end;
			i++;
		} else {
			ln->runs[i] = ln->runs[--ln->n];
		}
	}
}

/* Does @b continue @a (same inode and freshness, next file and data blocks)? */
static bool continues(const struct cl_ledger_run *a, const struct cl_ledger_run *b)
{
	return a->ino == b->ino && a->fresh == b->fresh && run_end(a) == b->fblk &&
	       a->pblk + a->nblk == b->pblk;
}

/* Merge @ln's run @i with the runs it touches; mu held. */
static void merge(struct cl_ledger_node *ln, size_t i)
{
	for (size_t k = 0; k < ln->n;) {
		struct cl_ledger_run *a = &ln->runs[i], *b = &ln->runs[k];

		if (k != i && (continues(a, b) || continues(b, a))) {
			if (continues(b, a)) {
				a->fblk = b->fblk;
				a->pblk = b->pblk;
			}
			a->nblk += b->nblk;
			ln->runs[k] = ln->runs[--ln->n];
			if (i == ln->n)
				i = k;          /* run i was the last: it moved to k */
			k = 0;
			continue;
		}
		k++;
	}
}

int cl_ledger_create(unsigned max_nodes, size_t max_runs, struct cl_ledger **out)
{
	struct cl_ledger *l = calloc(1, sizeof(*l) + (max_nodes + 1) * sizeof(l->nodes[0]));

	if (!l)
		return -ENOMEM;
	pthread_mutex_init(&l->mu, NULL);
	l->max_nodes = max_nodes;
	l->max_runs = max_runs;
	*out = l;
	return 0;
}

void cl_ledger_reset(struct cl_ledger *l)
{
	pthread_mutex_lock(&l->mu);
	for (unsigned i = 0; i <= l->max_nodes; i++) {
		free(l->nodes[i].runs);
		memset(&l->nodes[i], 0, sizeof(l->nodes[i]));
	}
	pthread_mutex_unlock(&l->mu);
}

void cl_ledger_destroy(struct cl_ledger *l)
{
	if (!l)
		return;
	cl_ledger_reset(l);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

static bool node_ok(const struct cl_ledger *l, uint32_t node)
{
	return node >= 1 && node <= l->max_nodes;
}

int cl_ledger_add(struct cl_ledger *l, uint32_t node, const struct cl_ledger_run *r)
{
	struct cl_ledger_node *ln;
	int rc;

	if (!node_ok(l, node) || r->nblk == 0 || r->nblk > UINT64_MAX - r->fblk)
		return -EINVAL;
	ln = &l->nodes[node];
	pthread_mutex_lock(&l->mu);
	/* Room for the split of a punch and for the new run. */
	rc = reserve(ln, ln->n + 2);
	if (rc)
		goto out;
	punch(ln, r->ino, r->fblk, run_end(r), false, r->fresh);
	ln->runs[ln->n++] = *r;
	merge(ln, ln->n - 1);
	/* Unmerged, the new run is still the last: one too many goes. */
	if (ln->n > l->max_runs) {
		ln->n--;
		rc = -ENOSPC;
	}
out:
	pthread_mutex_unlock(&l->mu);
	return rc;
}

/* Does any node hold block @p of @ino fresh?  mu held. */
static bool held_fresh(const struct cl_ledger *l, uint64_t ino, uint64_t p)
{
	for (unsigned k = 1; k <= l->max_nodes; k++)
		for (size_t i = 0; i < l->nodes[k].n; i++)
			if (l->nodes[k].runs[i].fresh && run_holds(&l->nodes[k].runs[i], ino, p))
				return true;
	return false;
}

/* The first run start of @ino above block @p, or @end; mu held. */
static uint64_t next_start(const struct cl_ledger *l, uint64_t ino, uint64_t p, uint64_t end)
{
	for (unsigned k = 1; k <= l->max_nodes; k++)
		for (size_t i = 0; i < l->nodes[k].n; i++) {
			const struct cl_ledger_run *r = &l->nodes[k].runs[i];

			if (r->ino == ino && r->fblk > p && r->fblk < end)
				end = r->fblk;
		}
	return end;
}

int cl_ledger_check(struct cl_ledger *l, uint32_t node, uint64_t ino, uint64_t fblk,
		    uint64_t nblk, uint64_t pblk)
{
	uint64_t end = fblk + nblk, p = fblk;
	int rc = 0;

	if (!node_ok(l, node) || nblk == 0 || nblk > UINT64_MAX - fblk || nblk > UINT64_MAX - pblk)
		return -EPERM;
	pthread_mutex_lock(&l->mu);
	while (p < end && !rc) {
		const struct cl_ledger_node *ln = &l->nodes[node];
		const struct cl_ledger_run *own = NULL;

		/* Handed to the node at this place? */
		for (size_t i = 0; i < ln->n && !own; i++)
			if (run_holds(&ln->runs[i], ino, p) &&
			    ln->runs[i].pblk + (p - ln->runs[i].fblk) == pblk + (p - fblk))
				own = &ln->runs[i];
		if (own)
			p = run_end(own) < end ? run_end(own) : end;
		else if (held_fresh(l, ino, p))
			rc = -EPERM;            /* another node's allocation (or ours, elsewhere) */
		else
			p = next_start(l, ino, p, end);   /* no known owner up to there */
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void cl_ledger_clear(struct cl_ledger *l, uint64_t ino, uint64_t fblk, uint64_t nblk)
{
	uint64_t end = nblk > UINT64_MAX - fblk ? UINT64_MAX : fblk + nblk;

	pthread_mutex_lock(&l->mu);
	for (unsigned k = 1; k <= l->max_nodes; k++) {
		struct cl_ledger_node *ln = &l->nodes[k];

		if (ln->n)
			(void)reserve(ln, ln->n + 1);   /* without room, a run across goes whole */
		punch(ln, ino, fblk, end, true, false);
	}
	pthread_mutex_unlock(&l->mu);
}

void cl_ledger_forget(struct cl_ledger *l, uint32_t node, uint64_t ino)
{
	if (!node_ok(l, node))
		return;
	pthread_mutex_lock(&l->mu);
	punch(&l->nodes[node], ino, 0, UINT64_MAX, true, false);
	pthread_mutex_unlock(&l->mu);
}

long cl_ledger_drop_node(struct cl_ledger *l, uint32_t node, struct cl_ledger_run **out)
{
	struct cl_ledger_node *ln;
	struct cl_ledger_run *v = NULL;
	long n = 0;

	if (!node_ok(l, node))
		return -EINVAL;
	ln = &l->nodes[node];
	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < ln->n; i++)
		n += ln->runs[i].fresh;
	if (n) {
		v = malloc((size_t)n * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&l->mu);
			return -ENOMEM;
		}
		n = 0;
		for (size_t i = 0; i < ln->n; i++)
			if (ln->runs[i].fresh)
				v[n++] = ln->runs[i];
	}
	free(ln->runs);
	memset(ln, 0, sizeof(*ln));
	pthread_mutex_unlock(&l->mu);
	*out = v;
	return n;
}

size_t cl_ledger_count(struct cl_ledger *l, uint32_t node)
{
	size_t n;

	if (!node_ok(l, node))
		return 0;
	pthread_mutex_lock(&l->mu);
	n = l->nodes[node].n;
	pthread_mutex_unlock(&l->mu);
	return n;
}
