/*
 * dm_bhv.h - the `dmapi` vnode behavior: it heads the chain of every vnode
 * on every node of a DMAPI-enabled filesystem.  A read, write, truncate or
 * fallocate holds the file's DMAPI token at READ across the operation, so
 * the event list cannot change under it; when the access needs an event it
 * lets the token go, raises the event (to the MDS) and waits for the HSM's
 * answer, then starts over: the HSM has changed the regions (the data is
 * back), or answered with an error the operation returns.  (A range the HSM
 * answered "continue" for twice goes on even if its regions still ask.)
 *
 * The port says how a node holds the token and reaches the MDS; the
 * behavior itself knows no transport.
 */
#ifndef CXFS_DM_BHV_H
#define CXFS_DM_BHV_H

#include <stdint.h>

#include "dmapi/dm.h"

struct vnode;

struct dm_port {
	/*
	 * Take @ino's DMAPI token at READ and say whether an access of
	 * [@off, @off + @len) needs @ev: 1 yes, 0 no (held either way, let
	 * go with unhold), or -errno (not held).
	 */
	int (*hold)(void *arg, uint64_t ino, enum dm_event ev, uint64_t off, uint64_t len);
	void (*unhold)(void *arg, uint64_t ino);
	/* Raise @ev and wait for the answer: 0 (go on) or -errno (the operation fails). */
	int (*raise)(void *arg, uint64_t ino, enum dm_event ev, uint64_t off, uint64_t len);
	/*
	 * The metadata server's node only (NULL elsewhere): @ino goes
	 * inactive.  Called before (@gone false; returns a cookie) and after
	 * (@gone true, with that cookie) the rest of the chain ran.
	 */
	uint64_t (*inactive)(void *arg, uint64_t ino, int gone, uint64_t cookie);
	void *arg;
};

/* Put the dmapi behavior at the head of @vn's chain; @port outlives it. */
int dm_bhv_push(struct vnode *vn, const struct dm_port *port);

#endif
