/*
 * opstats.h - the FUSE requests the daemon serves, counted by type at the
 * /dev/fuse boundary (see opstats.c): requests and errors by operation,
 * their latency from the read of the request to the write of its reply, and
 * how many are in flight.  One FUSE session per process.
 */
#ifndef CXFS_OPSTATS_H
#define CXFS_OPSTATS_H

#include <stddef.h>
#include <stdint.h>

#include "common/cx_hist.h"

/* The device read function is about to read the next request on this thread. */
void cxfsd_ops_reading(void);
/* It read request @unique of FUSE opcode @opcode. */
void cxfsd_ops_read(uint32_t opcode, uint64_t unique);
/* The reply to @unique is being written, with FUSE error @error (0 or -errno). */
void cxfsd_ops_replied(uint64_t unique, int32_t error);

/* One operation's figures. */
struct cxfsd_op_stats {
	const char *name;             /* "lookup", "getattr", ...; "other" for unknown opcodes */
	uint64_t requests;            /* requests read */
	uint64_t errors;              /* replies with an error */
	struct cx_hist_snap latency;  /* read to reply, of those answered */
};
/*
 * The operations seen so far (requests > 0) into @out (at most @n); their
 * number.
 */
size_t cxfsd_ops_get(struct cxfsd_op_stats *out, size_t n);
/* Requests read and not yet answered. */
uint64_t cxfsd_ops_in_flight(void);

#define CXFSD_OPS_MAX 64              /* enough for every opcode cxfsd_ops_get returns */

#endif
