/*
 * cms_view.c - the membership's pure decisions: the set to propose, quorum,
 * the leader (cms_view.h).
 */
#include "membership/cms_view.h"

unsigned cms_set_count(uint64_t set)
{
	return (unsigned)__builtin_popcountll(set);
}

/* Do all nodes of @set reach each other? */
static bool connected(const uint64_t *reach, size_t n, uint64_t set)
{
	for (size_t i = 0; i < n; i++)
		if ((set & CMS_BIT(i)) && (reach[i] & set) != set)
			return false;
	return true;
}

/* Is @a a better proposal than @b (see cms_view_clique)? */
static bool better(uint64_t a, uint64_t b, uint64_t prefer)
{
	unsigned ca = cms_set_count(a), cb = cms_set_count(b);
	uint64_t diff;

	if (ca != cb)
		return ca > cb;
	ca = cms_set_count(a & prefer);
	cb = cms_set_count(b & prefer);
	if (ca != cb)
		return ca > cb;
	diff = a ^ b;
	return diff && (a & diff & -diff);
}

uint64_t cms_view_clique(const uint64_t *reach, size_t n, uint64_t cand, int must,
			 uint64_t prefer)
{
	uint64_t best, others;
	int idx[CMS_MAX_NODES];
	unsigned k = 0;

	if (n > CMS_MAX_NODES)
		n = CMS_MAX_NODES;
	if (must < 0 || (size_t)must >= n || !(cand & CMS_BIT(must)))
		return 0;
	/* Only nodes that reach @must and that @must reaches can join it. */
	for (size_t i = 0; i < n; i++)
		if ((int)i != must && (cand & CMS_BIT(i)) && (reach[must] & CMS_BIT(i)) &&
		    (reach[i] & CMS_BIT(must)))
			idx[k++] = (int)i;
	best = CMS_BIT(must);
	if (k <= 20) {
		for (uint64_t m = 1; m < (UINT64_C(1) << k); m++) {
			uint64_t set = CMS_BIT(must);

			for (unsigned j = 0; j < k; j++)
				if (m & (UINT64_C(1) << j))
					set |= CMS_BIT(idx[j]);
			if (better(set, best, prefer) && connected(reach, n, set))
				best = set;
		}
		return best;
	}
	others = 0;
	for (unsigned j = 0; j < k; j++) {
		uint64_t set = best | others | CMS_BIT(idx[j]);

		if (connected(reach, n, set))
			others |= CMS_BIT(idx[j]);
	}
	return best | others;
}

bool cms_view_is_tie(uint64_t set, uint64_t may_serve)
{
	unsigned total = cms_set_count(may_serve);

	return total && 2 * cms_set_count(set & may_serve) == total;
}

bool cms_view_quorum(uint64_t set, uint64_t may_serve, bool tie_won)
{
	unsigned total = cms_set_count(may_serve), in = cms_set_count(set & may_serve);

	if (!total)
		return false;
	return 2 * in > total || (2 * in == total && tie_won);
}

int cms_view_leader(uint64_t cand, uint64_t may_serve, const uint64_t *joined, size_t n)
{
	int best = -1;

	for (size_t i = 0; i < n && i < CMS_MAX_NODES; i++) {
		if (!(cand & may_serve & CMS_BIT(i)))
			continue;
		if (best < 0)
			best = (int)i;
		else if (joined[i] && (!joined[best] || joined[i] < joined[best]))
			best = (int)i;
	}
	return best;
}
