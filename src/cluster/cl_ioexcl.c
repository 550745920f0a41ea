/*
 * cl_ioexcl.c - the I/O-exclusive state of the files this node reads and
 * writes (docs/ARCHITECTURE.md, "I/O-exclusive state").
 *
 * Every write holds IOEXCL at READ with IO (the writers' sets of
 * cl_local.c; readers do not: docs/ARCHITECTURE.md says why); the MDS
 * answers with each grant whether this node is the only one writing the
 * file, and tells it when that changes (the token layer, tok.h).  A node alone on a file writes it as a lone writer
 * (whole-file tokens, asked once, not byte ranges: cl_range_wanted) and
 * preallocates further ahead (cl_prealloc_max).  What ends a sharing: a
 * node that is not alone and did no I/O on the file for CL_IO_IDLE_MS gives
 * IO and IOEXCL back (this file's thread), so the MDS can tell the other
 * node it is alone.  The state only steers how tokens are asked for: every
 * guarantee rests on the IO and page tokens, whatever it says.
 *
 * Lock order: cx->io_mu and cl_inode.mu are taken alone here (never across
 * a token call).
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cx_intr.h"

/* A node that is not alone gives its I/O tokens back after this long without I/O. */
#define CL_IO_IDLE_MS 2000
/* The idle list is looked at this often while it is not empty. */
#define CL_IO_SCAN_MS 500

bool cl_io_alone(struct cl_ctx *cx, struct cl_inode *ci)
{
	return tok_client_ioexcl(cx->tc, ci->ino, NULL);
}

uint64_t cl_prealloc_max(struct cl_ctx *cx, struct cl_inode *ci)
{
	return cl_io_alone(cx, ci) ? CL_PREALLOC_EXCL_MAX : CL_PREALLOC_MAX;
}

/* List @ci for the idle scan (cx->io_mu held). */
static void io_list(struct cl_ctx *cx, struct cl_inode *ci)
{
	if (!ci->io_listed) {
		uint64_t *v = cx->io_inos;

		if (cx->io_n == cx->io_cap) {
			size_t cap = cx->io_cap ? cx->io_cap * 2 : 16;

			v = realloc(cx->io_inos, cap * sizeof(*v));
			if (v) {
				cx->io_inos = v;
				cx->io_cap = cap;
			}
		}
		/* Out of memory: the file keeps its tokens until they are recalled. */
		if (v && cx->io_n < cx->io_cap) {
			cx->io_inos[cx->io_n++] = ci->ino;
			ci->io_listed = true;
			pthread_cond_signal(&cx->io_cv);
		}
	}
}

void cl_io_note(struct cl_ctx *cx, struct cl_inode *ci)
{
	bool held;

	atomic_store_explicit(&ci->io_last_ns, cx_intr_now_ns(), memory_order_relaxed);
	/* Alone, or a reader (no IOEXCL): nothing to give back. */
	if (tok_client_ioexcl(cx->tc, ci->ino, &held) || !held)
		return;
	pthread_mutex_lock(&cx->io_mu);
	io_list(cx, ci);
	pthread_mutex_unlock(&cx->io_mu);
}

void cl_io_told(struct cl_ctx *cx, uint64_t ino, bool excl)
{
	struct cl_inode *ci;

	tok_client_ioexcl_set(cx->tc, ino, excl);
	if (excl || !(ci = cl_inode_get(cx, ino, false)))
		return;
	/* No longer alone: if this node stays idle, its tokens go so the other may be. */
	pthread_mutex_lock(&cx->io_mu);
	io_list(cx, ci);
	pthread_mutex_unlock(&cx->io_mu);
	cl_inode_put(cx, ci);
}

/*
 * Look at listed file @ino: it stays listed while it was used lately or its
 * tokens are in use now; it leaves once they went, or it is alone again.
 */
static void io_idle(struct cl_ctx *cx, uint64_t ino, int64_t now)
{
	struct cl_inode *ci = cl_inode_get(cx, ino, false);
	bool held, done;

	if (!ci)
		return;   /* its tokens went with it (forgotten) */
	/* A read or write in progress (waiting for its tokens, maybe) is use too. */
	pthread_mutex_lock(&ci->mu);
	done = ci->inflight == 0 &&
	       now - atomic_load_explicit(&ci->io_last_ns, memory_order_relaxed) >=
		       (int64_t)CL_IO_IDLE_MS * 1000000;
	pthread_mutex_unlock(&ci->mu);
	if (done) {
		/* Alone again, or nothing left to give: off the list either way. */
		if (!tok_client_ioexcl(cx->tc, ino, &held) && held) {
			done = tok_client_give_io(cx->tc, ino);
			if (done)
				atomic_fetch_add(&cx->stats.io_given, 1);
		}
	}
	pthread_mutex_lock(&cx->io_mu);
	if (done) {
		ci->io_listed = false;
		for (size_t i = 0; i < cx->io_n; i++)
			if (cx->io_inos[i] == ino) {
				cx->io_inos[i] = cx->io_inos[--cx->io_n];
				break;
			}
	}
	pthread_mutex_unlock(&cx->io_mu);
	cl_inode_put(cx, ci);
}

static void *io_main(void *arg)
{
	struct cl_ctx *cx = arg;

	pthread_mutex_lock(&cx->io_mu);
	while (!cx->io_stop) {
		int64_t now = cx_intr_now_ns() + (int64_t)CL_IO_SCAN_MS * 1000000;
		struct timespec until = { (time_t)(now / 1000000000), (long)(now % 1000000000) };
		uint64_t *inos;
		size_t n;

		if (cx->io_n == 0) {
			pthread_cond_wait(&cx->io_cv, &cx->io_mu);
			continue;
		}
		(void)pthread_cond_clockwait(&cx->io_cv, &cx->io_mu, CLOCK_MONOTONIC, &until);
		n = cx->io_n;
		inos = cx->io_stop ? NULL : malloc(n * sizeof(*inos));
		if (!inos)
			continue;   /* stopping, or out of memory: the next round tries again */
		memcpy(inos, cx->io_inos, n * sizeof(*inos));
		pthread_mutex_unlock(&cx->io_mu);
		now = cx_intr_now_ns();
		for (size_t i = 0; i < n; i++)
			io_idle(cx, inos[i], now);
		free(inos);
		pthread_mutex_lock(&cx->io_mu);
	}
	pthread_mutex_unlock(&cx->io_mu);
	return NULL;
}

int cl_io_start(struct cl_ctx *cx)
{
	int rc;

	pthread_mutex_init(&cx->io_mu, NULL);
	pthread_cond_init(&cx->io_cv, NULL);
	rc = -pthread_create(&cx->io_thread, NULL, io_main, cx);
	cx->io_started = rc == 0;
	return rc;
}

void cl_io_stop(struct cl_ctx *cx)
{
	if (!cx->io_started)
		return;
	pthread_mutex_lock(&cx->io_mu);
	cx->io_stop = true;
	pthread_cond_signal(&cx->io_cv);
	pthread_mutex_unlock(&cx->io_mu);
	pthread_join(cx->io_thread, NULL);
	cx->io_started = false;
	free(cx->io_inos);
	cx->io_inos = NULL;
	cx->io_n = cx->io_cap = 0;
}
