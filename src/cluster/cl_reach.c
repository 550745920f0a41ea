/*
 * cl_reach.c - is the metadata server there?  The bound of an application's
 * request on a node that is not the MDS: it gives up with EIO once the MDS
 * has shown no sign of life for the server wait (cl_opts.server_wait_ms),
 * counted from the request's start at the earliest (docs/ARCHITECTURE.md,
 * "Interrupts").
 *
 * A sign of life is an answer to a probe: while requests have waited for
 * the MDS longer than CL_REACH_EVERY_MS, a prober thread asks it who serves
 * (NAME_QUERY, on the channel the requests use; every node answers it on
 * its answers lane, which never waits) whenever it was last heard from
 * more than CL_REACH_EVERY_MS ago.  Requests that do not wait that long
 * cost no message.  The prober also asks, as often, while this node keeps
 * requests it has not heard are durable (cl_unsafe.h): a STATFS after the
 * probe, whose reply carries the server's durable transaction.
 * A server busy with a long token wait answers, so only a server that is
 * stopped, dead or cut off makes requests fail.  The membership will take
 * this over (quorum).
 *
 * Locks: cl_ctx.reach_mu is a leaf (the prober holds it only between
 * probes); the times are atomics that waiters read with any lock held.
 */
#include "cluster/cl_i.h"

#include <errno.h>

#include "common/cx_intr.h"

#define CL_REACH_EVERY_MS 250      /* a waiter's server is probed when unheard of this long */
#define CL_REACH_TIMEOUT_MS 1000   /* a probe unanswered this long failed */

int cl_request_bound(void *arg, int64_t since_ns)
{
	struct cl_ctx *cx = arg;
	int64_t now = cx_intr_now_ns(), seen = atomic_load(&cx->reach_seen_ns);

	if (cx->is_server)
		return 0;
	/* Only a request that has waited a while has the server probed (no message otherwise). */
	if (now - since_ns > CL_REACH_EVERY_MS * 1000000LL)
		atomic_store(&cx->reach_wanted_ns, now);
	if (seen < since_ns)
		seen = since_ns;
	return now - seen > (int64_t)cx->server_wait_ms * 1000000 ? -EIO : 0;
}

int64_t cl_reach_heard_ms(struct cl_ctx *cx)
{
	return (cx_intr_now_ns() - atomic_load(&cx->reach_seen_ns)) / 1000000;
}

/* The prober's own bound: a probe stuck on a frozen channel ends when the prober stops. */
static int reach_stopping(void *arg, int64_t since_ns)
{
	struct cl_ctx *cx = arg;

	(void)since_ns;
	return atomic_load(&cx->reach_stop) ? -ESHUTDOWN : 0;
}

/* Ask the MDS who serves (and, if @durable, how far it is durable); true if it answered. */
static bool probe(struct cl_ctx *cx, bool durable)
{
	Cxfs__NameQuery q = CXFS__NAME_QUERY__INIT;
	ProtobufCMessage *rep = NULL;
	Cxfs__MsgType rt;
	struct rpc_chan *ch = cl_mds_chan(cx);
	int rc;

	if (!ch)
		return false;
	q.fs = (char *)cl_fs_name(cx);
	cx_intr_arm(reach_stopping, cx);
	rc = rpc_call(ch, CXFS__MSG_TYPE__NAME_QUERY, &q.base, CL_REACH_TIMEOUT_MS, &rt, &rep);
	if (rc == 0 && durable)
		cl_unsafe_ask_durable(cx, ch, CL_REACH_TIMEOUT_MS);
	cx_intr_disarm();
	rpc_chan_put(ch);
	if (rc)
		return false;
	rpc_msg_free(rep);
	return true;
}

static void *prober(void *arg)
{
	struct cl_ctx *cx = arg;

	pthread_mutex_lock(&cx->reach_mu);
	while (!atomic_load(&cx->reach_stop)) {
		int64_t now = cx_intr_now_ns(), every = CL_REACH_EVERY_MS * 1000000LL;
		bool durable;
		struct timespec until = { (time_t)((now + every) / 1000000000),
					  (long)((now + every) % 1000000000) };

		pthread_cond_clockwait(&cx->reach_cv, &cx->reach_mu, CLOCK_MONOTONIC, &until);
		now = cx_intr_now_ns();
		durable = !cx->is_server && cl_unsafe_wants_durable(cx);
		if (atomic_load(&cx->reach_stop) || cx->is_server ||
		    (now - atomic_load(&cx->reach_wanted_ns) > 2 * every && !durable) ||
		    now - atomic_load(&cx->reach_seen_ns) < every)
			continue;
		pthread_mutex_unlock(&cx->reach_mu);
		if (probe(cx, durable))
			atomic_store(&cx->reach_seen_ns, now);
		pthread_mutex_lock(&cx->reach_mu);
	}
	pthread_mutex_unlock(&cx->reach_mu);
	return NULL;
}

int cl_reach_start(struct cl_ctx *cx)
{
	int rc;

	atomic_store(&cx->reach_seen_ns, cx_intr_now_ns());
	atomic_store(&cx->reach_stop, false);
	rc = -pthread_create(&cx->reacher, NULL, prober, cx);
	cx->reach_started = rc == 0;
	return rc;
}

void cl_reach_stop(struct cl_ctx *cx)
{
	if (!cx->reach_started)
		return;
	pthread_mutex_lock(&cx->reach_mu);
	atomic_store(&cx->reach_stop, true);
	pthread_cond_signal(&cx->reach_cv);
	pthread_mutex_unlock(&cx->reach_mu);
	pthread_join(cx->reacher, NULL);
	cx->reach_started = false;
}
