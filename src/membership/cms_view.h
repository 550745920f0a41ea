/*
 * cms_view.h - the pure decisions of the membership protocol, apart from
 * its transport so that they can be tested alone: which set of nodes to
 * propose (the largest fully connected one), whether a set has quorum, and
 * which node leads.
 *
 * Sets of nodes are bit masks: bit i is the node of index i in the cluster
 * configuration (cms_node_index()), so a cluster has at most CMS_MAX_NODES
 * nodes.
 */
#ifndef CXFS_CMS_VIEW_H
#define CXFS_CMS_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMS_MAX_NODES 64
#define CMS_BIT(i) (UINT64_C(1) << (i))

/* Nodes in @set. */
unsigned cms_set_count(uint64_t set);

/*
 * The largest set containing node @must in which every two nodes reach each
 * other: j is in @reach[i] and i in @reach[j] (@reach[i] covers node i's
 * view of the @n nodes; only nodes in @cand are considered).  Of two sets
 * of the same size the one holding more nodes of @prefer wins, then the one
 * whose lowest differing node is lower.  Exact up to 20 candidates, greedy
 * in index order beyond.  0 if @must is not in @cand.
 */
uint64_t cms_view_clique(const uint64_t *reach, size_t n, uint64_t cand, int must,
			 uint64_t prefer);

/*
 * Quorum: more than half of the nodes that may serve (@may_serve) are in
 * @set; exactly half counts only if @tie_won (the tie-breaker was won).
 * A cluster without nodes that may serve has no quorum.
 */
bool cms_view_quorum(uint64_t set, uint64_t may_serve, bool tie_won);
/* Is @set exactly half of @may_serve (so quorum depends on the tie-breaker)? */
bool cms_view_is_tie(uint64_t set, uint64_t may_serve);

/*
 * The leader among @cand: the node that may serve (@may_serve) and has been
 * in the membership the longest (smallest @joined[i], the epoch it joined
 * in; 0 for a node that is not a member), the lowest index on a tie;
 * members come before non-members.  -1 if no node of @cand may serve.
 */
int cms_view_leader(uint64_t cand, uint64_t may_serve, const uint64_t *joined, size_t n);

#endif
