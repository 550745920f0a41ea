/*
 * kore.h - relocation of a filesystem's metadata server (KORE): the MDS
 * moves from this node to another on purpose, while every node's
 * applications see only a pause.  The phases (see kore.c):
 *
 *   source (old MDS)            target                  other nodes
 *   PREPARE  ----------------->  can serve? announce
 *                                rewrite, gate (migrate)
 *   DETARGET ----------------------------------------->  gate closed: new
 *                                                        MDS requests wait
 *   quiesce: interrupt token and DMAPI waits, drain handlers, rewrite the
 *   chains to the client shape, bag (grants, locks), close the store
 *   BAG..., INSTANTIATE ------>  open the store, unbag,
 *                                server shape
 *   RETARGET ------------------------------------------>  new channel, JOIN
 *   OPEN --------------------->  serve; gate open               gate open
 *
 * If the target fails before it instantiates, the source takes its state
 * back and keeps serving (ABORT to the other nodes).
 */
#ifndef CXFS_KORE_H
#define CXFS_KORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cx_hist.h"
#include "proto/cxfs.pb-c.h"
#include "relocate/rl.h"

struct kore;
struct rpc_req;

enum kore_phase {
	KORE_REQUEST = 1,
	KORE_PREPARE,
	KORE_DETARGET,
	KORE_BAG,
	KORE_INSTANTIATE,
	KORE_RETARGET,
	KORE_OPEN,
	KORE_ABORT,
	KORE_JOIN,
};

/* The relocation state of a node that reaches the rest through @env (kept). */
int kore_create(const struct rl_env *env, struct kore **out);
void kore_free(struct kore *k);
/*
 * Move the MDS of this node's filesystem to node @target (a name), from any
 * node (a node that is not the MDS asks it).  0, or -errno with @err
 * saying why (the MDS keeps serving).  @ms, if not NULL, gets the time
 * from the request until every node was retargeted.
 */
int kore_relocate(struct kore *k, const char *target, double *ms, char *err, size_t errlen);
/*
 * Leaving: if this node is the MDS and another node of the server order is
 * up, relocate to it (an orderly stop).  0 if it relocated or there was
 * nothing to do.
 */
int kore_leave(struct kore *k);
/* A RELOC_REQ of a relocation's phase from node @from (a node of the configuration). */
int kore_handle(struct kore *k, uint32_t from, struct rpc_req *req, const Cxfs__RelocReq *m);
/*
 * Recovery's first pass: nodes @dead died.  A source's calls to them end
 * (a relocation to a dead target aborts, the source keeps serving); a
 * relocation to this node whose source died ends here: if it instantiated,
 * this node serves on (the recovery retargets the others to it), else it
 * lets go and the recovery elects a server.
 */
void kore_celldown(struct kore *k, uint64_t dead);

/* What this node did as the source of relocations (lock-free). */
struct kore_stats {
	uint64_t done;                  /* relocations completed */
	uint64_t aborted;               /* relocations aborted (the source kept serving) */
	struct cx_hist_snap pause;      /* completed ones: request to every node retargeted */
};
void kore_stats(struct kore *k, struct kore_stats *out);

#endif
