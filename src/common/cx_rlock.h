/*
 * cx_rlock.h - a byte-range reader-writer lock: holders of overlapping
 * ranges exclude each other when one of them writes; others go on at once.
 * Fair: a holder waits only for earlier arrivals whose ranges conflict
 * with its own, so a stream of readers cannot keep a writer waiting, and
 * no circle of waits can form.
 *
 * The caller owns each hold (on its stack, typically) from lock to unlock;
 * its fields are this module's.
 */
#ifndef CXFS_CX_RLOCK_H
#define CXFS_CX_RLOCK_H

#include <stdbool.h>
#include <stdint.h>

struct cx_rlock;

struct cx_rlock_hold {
	uint64_t from, to;              /* bytes [from, to) */
	bool write;
	struct cx_rlock_hold *next;     /* in order of arrival */
};

/* A new lock, or NULL (no memory). */
struct cx_rlock *cx_rlock_new(void);
/* Free @l (nothing held; NULL is fine). */
void cx_rlock_free(struct cx_rlock *l);
/* Wait until every earlier conflicting hold is gone; @h then holds [@from, @to). */
void cx_rlock_lock(struct cx_rlock *l, struct cx_rlock_hold *h, uint64_t from, uint64_t to,
		   bool write);
void cx_rlock_unlock(struct cx_rlock *l, struct cx_rlock_hold *h);

#endif
