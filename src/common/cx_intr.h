/*
 * cx_intr.h - interruptible waits: an application's request that waits on
 * the cluster ends when the kernel interrupts it (a signal, SIGKILL
 * included) or when its bound passes (no server).
 *
 * Each thread has one interrupt.  A thread that serves an application's
 * request arms it for the request (cx_intr_arm) and disarms it when done;
 * another thread raises it when the kernel interrupts the request
 * (cx_intr_raise: libfuse's interrupt callback).  Code that may wait long
 * for another node sleeps with cx_intr_wait() or cx_intr_sleep_ms(): on an
 * armed thread they wait in slices of CX_INTR_SLICE_MS and end with -EINTR
 * once the interrupt is raised, or with the error the request's bound
 * gives (-EIO: no server for too long).  On a thread that is not armed
 * (recalls, handlers of other nodes' requests) they wait as
 * pthread_cond_clockwait() and usleep() do: those waits must end by other
 * means.
 *
 * No lock is taken here: raising stores a flag that the waiter polls.
 */
#ifndef CXFS_CX_INTR_H
#define CXFS_CX_INTR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define CX_INTR_SLICE_MS 20   /* longest an armed wait sleeps between two looks at its interrupt */

struct cx_intr;

/*
 * Whether an armed request waiting since @since_ns (CLOCK_MONOTONIC) must
 * give up now: 0 (no) or a negative errno.  Called on the waiting thread,
 * possibly with any lock of the waiter held: it must not block or take a
 * lock a waiter may hold.
 */
typedef int (*cx_intr_bound_fn)(void *arg, int64_t since_ns);

/* Arm this thread's interrupt for a request starting now, bounded by @bound (may be NULL). */
struct cx_intr *cx_intr_arm(cx_intr_bound_fn bound, void *arg);
/* The request is done: this thread's waits are plain waits again. */
void cx_intr_disarm(void);
/* From any thread: the request of armed interrupt @in is interrupted. */
void cx_intr_raise(struct cx_intr *in);
/*
 * A step of an armed request that must not be given up (a token return the
 * server waits for): this thread's waits are plain until cx_intr_resume()
 * gets what cx_intr_hold() returned.  A raise meanwhile is kept.
 */
bool cx_intr_hold(void);
void cx_intr_resume(bool armed);
/* Is this thread armed (its waits can end early)? */
bool cx_intr_armed(void);
/* 0, -EINTR (interrupted) or the bound's error; always 0 on a thread that is not armed. */
int cx_intr_check(void);
/*
 * pthread_cond_clockwait(@cv, @mu, CLOCK_MONOTONIC, @abs) (@abs NULL: no
 * limit), cut into slices on an armed thread.  0 (woken, or a slice
 * passed: look again), ETIMEDOUT (@abs passed), or cx_intr_check()'s error.
 */
int cx_intr_wait(pthread_cond_t *cv, pthread_mutex_t *mu, const struct timespec *abs);
/* Sleep @ms: 0, or cx_intr_check()'s error as soon as it has one. */
int cx_intr_sleep_ms(unsigned ms);
/* CLOCK_MONOTONIC now, in ns. */
int64_t cx_intr_now_ns(void);

#endif
