/*
 * opstats.c - FUSE requests by operation, counted where the daemon reads
 * them from /dev/fuse and writes their replies (the session's custom I/O
 * functions in cxfsd.c).  libfuse's worker thread that reads a request
 * handles it and writes its reply itself, so a thread-local record pairs
 * the two without a lock; a request whose reply never comes on that thread
 * (FORGET, INTERRUPT, which have none) is closed when the thread reads its
 * next one.  Counters are relaxed atomics.
 */
#include <stdatomic.h>
#include <stdbool.h>

#include "common/cx_intr.h"
#include "daemon/opstats.h"

#define OP_TABLE 53                   /* opcodes below this have a name; 0 holds the rest */

/* FUSE opcodes (linux/fuse.h) by number; gaps are opcodes that do not exist. */
static const char *const op_names[OP_TABLE] = {
	[0] = "other", [1] = "lookup", [2] = "forget", [3] = "getattr", [4] = "setattr",
	[5] = "readlink", [6] = "symlink", [8] = "mknod", [9] = "mkdir", [10] = "unlink",
	[11] = "rmdir", [12] = "rename", [13] = "link", [14] = "open", [15] = "read",
	[16] = "write", [17] = "statfs", [18] = "release", [20] = "fsync", [21] = "setxattr",
	[22] = "getxattr", [23] = "listxattr", [24] = "removexattr", [25] = "flush",
	[26] = "init", [27] = "opendir", [28] = "readdir", [29] = "releasedir",
	[30] = "fsyncdir", [31] = "getlk", [32] = "setlk", [33] = "setlkw", [34] = "access",
	[35] = "create", [36] = "interrupt", [37] = "bmap", [38] = "destroy", [39] = "ioctl",
	[40] = "poll", [41] = "notify_reply", [42] = "batch_forget", [43] = "fallocate",
	[44] = "readdirplus", [45] = "rename2", [46] = "lseek", [47] = "copy_file_range",
	[48] = "setupmapping", [49] = "removemapping", [50] = "syncfs", [51] = "tmpfile",
	[52] = "statx",
};

/* Opcodes the kernel expects no reply to: FORGET, INTERRUPT, NOTIFY_REPLY, BATCH_FORGET. */
static bool no_reply(uint32_t op)
{
	return op == 2 || op == 36 || op == 41 || op == 42;
}

static struct {
	atomic_uint_fast64_t requests, errors;
	struct cx_hist latency;
} ops[OP_TABLE];
static atomic_int_fast64_t in_flight;

/* This thread's request being handled. */
static _Thread_local struct {
	bool open;
	uint32_t op;                  /* index into ops */
	uint64_t unique;
	int64_t t0;                   /* when it was read */
} cur;

void cxfsd_ops_reading(void)
{
	if (!cur.open)
		return;
	cur.open = false;
	atomic_fetch_sub_explicit(&in_flight, 1, memory_order_relaxed);
}

void cxfsd_ops_read(uint32_t opcode, uint64_t unique)
{
	uint32_t i = opcode < OP_TABLE && op_names[opcode] ? opcode : 0;

	cxfsd_ops_reading();
	atomic_fetch_add_explicit(&ops[i].requests, 1, memory_order_relaxed);
	if (no_reply(opcode))
		return;
	cur.open = true;
	cur.op = i;
	cur.unique = unique;
	cur.t0 = cx_intr_now_ns();
	atomic_fetch_add_explicit(&in_flight, 1, memory_order_relaxed);
}

void cxfsd_ops_replied(uint64_t unique, int32_t error)
{
	if (!cur.open || cur.unique != unique)
		return;
	cx_hist_observe_since(&ops[cur.op].latency, cur.t0);
	if (error)
		atomic_fetch_add_explicit(&ops[cur.op].errors, 1, memory_order_relaxed);
	cxfsd_ops_reading();
}

size_t cxfsd_ops_get(struct cxfsd_op_stats *out, size_t n)
{
	size_t k = 0;

	for (uint32_t i = 0; i < OP_TABLE && k < n; i++) {
		uint64_t r = atomic_load_explicit(&ops[i].requests, memory_order_relaxed);

		if (!r)
			continue;
		out[k].name = op_names[i];
		out[k].requests = r;
		out[k].errors = atomic_load_explicit(&ops[i].errors, memory_order_relaxed);
		cx_hist_snap(&ops[i].latency, &out[k].latency);
		k++;
	}
	return k;
}

uint64_t cxfsd_ops_in_flight(void)
{
	int64_t n = atomic_load_explicit(&in_flight, memory_order_relaxed);

	return n > 0 ? (uint64_t)n : 0;
}
