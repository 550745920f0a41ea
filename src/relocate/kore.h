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

#include <stddef.h>
#include <stdint.h>

#include "proto/cxfs.pb-c.h"

struct cl_ctx;
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

/*
 * Move the MDS of this node's filesystem to node @target (a name), from any
 * node (a node that is not the MDS asks it).  0, or -errno with @err
 * saying why (the MDS keeps serving).  @ms, if not NULL, gets the time
 * from the request until every node was retargeted.
 */
int kore_relocate(struct cl_ctx *cx, const char *target, double *ms, char *err, size_t errlen);
/*
 * Leaving: if this node is the MDS and another node of the server order is
 * up, relocate to it (an orderly stop).  0 if it relocated or there was
 * nothing to do.
 */
int kore_leave(struct cl_ctx *cx);
/* Free the relocation state of @cx (cl_stop). */
void kore_free(struct cl_ctx *cx);
/* A RELOC_REQ from node @from (a node of the configuration). */
int kore_handle(struct cl_ctx *cx, uint32_t from, struct rpc_req *req, const Cxfs__RelocReq *m);

#endif
