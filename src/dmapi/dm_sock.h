/*
 * dm_sock.h - a node's DMAPI socket: the UNIX socket (root only) on which
 * libcxfsdm programs (an HSM, cxfs-hsm) send the requests of dm_op.h to
 * their node's cxfsd.  One thread per connection; requests of a connection
 * are served one after the other.
 */
#ifndef CXFS_DM_SOCK_H
#define CXFS_DM_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include "proto/cxfs.pb-c.h"

struct dm_sock;

/*
 * Serve @req from connection @conn (a number unique in the process, never
 * 0): put the packed DmReply into a new buffer *@buf of *@len bytes.
 * 0 or -errno (the connection closes).
 */
typedef int (*dm_sock_exec_fn)(void *arg, uint64_t conn, const Cxfs__DmRequest *req,
			       uint8_t **buf, size_t *len);
/* Connection @conn closed. */
typedef void (*dm_sock_gone_fn)(void *arg, uint64_t conn);

/*
 * Listen at @path (mode 0600; the caller made sure it is free).  On failure
 * @err says why.
 */
int dm_sock_start(const char *path, dm_sock_exec_fn exec, dm_sock_gone_fn gone, void *arg,
		  struct dm_sock **out, char *err, size_t errlen);
/* Stop listening, close every connection and wait for their threads. */
void dm_sock_stop(struct dm_sock *s);

#endif
