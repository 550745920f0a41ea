/*
 * corpse.h - recovery of a filesystem's metadata server after its node died
 * (the seed's common object recovery protocol, CORPSE).  The survivors'
 * applications see a pause, never an error.  Three passes, lowest layer
 * first, each led by the membership's leader:
 *
 *   1. relocation: a move half done when a node of it died ends (a target
 *      that already serves stays the server; one that does not lets go)
 *   2. name service and volume: who serves now (a survivor that serves, or
 *      the next surviving node of the server order), which fences the dead
 *   3. filesystem: every survivor gathers its share (its tokens, locks and
 *      requests not yet durable) and sends it to the elected node, which
 *      reconstructs (fence, open the store, replay, rebuild) and
 *      instantiates; every survivor is retargeted to it; complete
 *
 *   leader            survivors                    elected
 *   CELLDOWN ------>  detarget (gate closed), drop the dead server's
 *                     channel; say what you serve
 *   GATHER -------->  gather ----- BAG ... BAG_END ---->  keep
 *   RECONSTRUCT ---------------------------------------->  fence, store,
 *                                                          rebuild, serve
 *   RETARGET ------>  JOIN the new server, gate open
 *
 * A failure before the instantiation starts the pass again (a node that
 * failed is not elected again in it); a new membership while a recovery
 * runs ends that attempt, and the next one starts from what the nodes say
 * (an elected node that already serves is kept: it is retargeted to).
 */
#ifndef CXFS_CORPSE_H
#define CXFS_CORPSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/cxfs.pb-c.h"
#include "relocate/kore.h"
#include "relocate/rl.h"

struct corpse;
struct rpc_req;

enum corpse_phase {
	CORPSE_CELLDOWN = 20,
	CORPSE_GATHER,
	CORPSE_BAG,
	CORPSE_BAG_END,
	CORPSE_RECONSTRUCT,
	CORPSE_RETARGET,
};

int corpse_create(const struct rl_env *env, struct kore *k, struct corpse **out);
void corpse_free(struct corpse *c);
/* Is @phase one of a recovery's (then corpse_handle takes the message)? */
bool corpse_phase(uint32_t phase);
/*
 * A new membership with quorum (on the membership's delivery thread;
 * returns at once): @members (index bits) remain, @dead left, @leader (a
 * node id, 0: none) leads, @epoch numbers it.
 */
void corpse_view(struct corpse *c, uint64_t members, uint64_t dead, uint32_t leader,
		 uint64_t epoch);
int corpse_handle(struct corpse *c, uint32_t from, struct rpc_req *req, const Cxfs__RelocReq *m);
/*
 * Taken back into a membership after being cut off: ask the members who
 * serves now (on a thread of its own, until the answer is sure); a server
 * they replaced stops (corpse_depose), a client retargets to the server
 * they name if it is not the one it knows.
 */
void corpse_rejoined(struct corpse *c);
/* This node lost its server and is not retargeted yet: it names no server. */
bool corpse_busy(struct corpse *c);
/* Recoveries this node took part in so far. */
uint64_t corpse_count(struct corpse *c);
/* `"recovery":{...}` (state, pass, phase, leader, elected, history) into @buf; its length. */
int corpse_status_json(struct corpse *c, char *buf, size_t size);

#endif
