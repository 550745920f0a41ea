/*
 * admin.h - the daemon's admin socket (see admin.c), for cxfsctl.
 */
#ifndef CXFS_ADMIN_H
#define CXFS_ADMIN_H

#include <stdint.h>

struct cxfsd;
struct cxfsd_admin;

#define CXFSD_ADMIN_SOCKET "/run/cxfs/admin.sock"

/*
 * Serve the admin socket at @path (mode 0600) for @d until
 * cxfsd_admin_stop().  -EADDRINUSE if another live daemon answers there.
 */
int cxfsd_admin_start(const struct cxfsd *d, const char *path, struct cxfsd_admin **out);
void cxfsd_admin_stop(struct cxfsd_admin *a);
/*
 * Start a revive of the volume's mirrors on the admin's revive thread, as
 * "volume revive" does; @why says who asks, for the log; at most @rate
 * bytes a second (0: as fast as it goes).  0: started, -EBUSY: one runs,
 * -errno.
 */
int cxfsd_admin_revive(struct cxfsd_admin *a, const char *why, uint64_t rate);
/*
 * Is @path free for an admin socket?  -EADDRINUSE if a live daemon answers
 * there; a socket left by a daemon that died is removed.
 */
int cxfsd_admin_check(const char *path);

#endif
