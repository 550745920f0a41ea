/*
 * dm_fs.h - DMAPI of one filesystem on its metadata server: the dm core
 * (dm.h) bound to the metadata store, which keeps each file's event list and
 * managed regions (as DM attributes "cxfs.events" and "cxfs.regions") and
 * the HSM's DM attributes, and to the vnode table, through which invisible
 * I/O runs.  It serves the requests of dm_op.h from HSMs (through any
 * node's DMAPI socket) and the events nodes raise.
 *
 * The event list and regions of a file change only with its DMAPI token
 * taken at WRITE from every node (ops.excl), so a node that holds the token
 * at READ across an I/O sees a list that cannot change under it.
 *
 * Waiting: an event is answered within DM_FS_SLICE_MS; if the HSM has not
 * answered by then the answer is -EINPROGRESS with a token to wait on again,
 * so no thread of the MDS is held for longer (the asker loops).
 */
#ifndef CXFS_DM_FS_H
#define CXFS_DM_FS_H

#include <stdbool.h>
#include <stdint.h>

#include "dmapi/dm.h"
#include "proto/cxfs.pb-c.h"

struct meta_store;
struct vn_table;
struct dm_fs;

#define DM_FS_SLICE_MS 2000u

struct dm_fs_ops {
	/*
	 * Run @fn(@fnarg) with @ino's DMAPI token taken at WRITE from every
	 * node; returns what @fn returned, or the error taking it.
	 */
	int (*excl)(void *arg, uint64_t ino, int (*fn)(void *fnarg), void *fnarg);
	/* A log line (no newline). */
	void (*log)(void *arg, const char *line);
};

/*
 * Load every event list and region array from @st.  @ops and @arg outlive
 * the context.  Its event tokens are above @token_floor: nodes carry the
 * tokens of the previous MDS to this one, which must not know them (an
 * unknown token is posted anew; a known one would wait on another event).
 * 0 or -errno.
 */
int dm_fs_create(struct meta_store *st, const struct dm_fs_ops *ops, void *arg,
		 uint64_t token_floor, struct dm_fs **out);
/* The vnode table invisible I/O and STAT go through (before any request). */
void dm_fs_set_table(struct dm_fs *fs, struct vn_table *vt);
/* No thread may be inside; answers nothing more. */
void dm_fs_destroy(struct dm_fs *fs);
/* The event engine's counters (dm_get_stats). */
struct dm_stats;
void dm_fs_stats(struct dm_fs *fs, struct dm_stats *out);

/* A reply and the memory it points to. */
struct dm_reply;
struct dm_reply *dm_reply_new(void);
Cxfs__DmReply *dm_reply_msg(struct dm_reply *r);
void dm_reply_free(struct dm_reply *r);

/*
 * Serve @req from connection @conn (0: not a local connection, e.g. a
 * request forwarded by another node); the answer goes to @out.  INFO is
 * the node's own business (the caller answers it).
 */
void dm_fs_handle(struct dm_fs *fs, uint64_t conn, const Cxfs__DmRequest *req,
		  struct dm_reply *out);
/* Relocation: every event wait and event getter returns now (see dm_interrupt_all). */
void dm_fs_interrupt(struct dm_fs *fs);
/* Connection @conn closed: the sessions it created or assumed have no process now. */
void dm_fs_conn_gone(struct dm_fs *fs, uint64_t conn);

/* Does an access of @ino need event @ev?  (The caller holds the DMAPI token.) */
bool dm_fs_check(struct dm_fs *fs, uint64_t ino, enum dm_event ev, uint64_t off, uint64_t len);
/* @ino's event list and regions, for a DMAPI token grant; returns the region count. */
size_t dm_fs_file(struct dm_fs *fs, uint64_t ino, dm_eventset_t *events,
		  struct dm_region *regions);
/*
 * One slice of an event: post @ev (or, with *@token set, wait again on it)
 * and wait up to DM_FS_SLICE_MS.  0 / -errno: the HSM's answer (0 also when
 * the regions no longer ask for the event); -EINPROGRESS: ask again with
 * *@token (0: post anew); -DM_EMIGRATING: the MDS is moving (*@token 0).
 */
int dm_fs_event(struct dm_fs *fs, uint64_t ino, enum dm_event ev, uint64_t off, uint64_t len,
		uint64_t *token);
/*
 * @ino is about to go inactive (@gone false: returns its generation if it
 * asks for DESTROY, else 0) or went (@gone true, with that generation):
 * if it was freed, post DESTROY and forget its lists.
 */
uint64_t dm_fs_inactive(struct dm_fs *fs, uint64_t ino, bool gone, uint64_t gen);

#endif
