/*
 * cl_runs.h - extent runs that cross the network, checked where they are
 * used: the runs of an extent map a node receives from the metadata server
 * (cl_runs_check), and the server's ledger of the unwritten runs it handed
 * to each node and that node has not yet published (struct cl_ledger).
 *
 * The ledger answers "may node N publish these blocks?" (a WRITE_DONE):
 * N may publish a run that was handed to it (by ALLOC, or seen unwritten
 * in an extent map it asked for: a file's preallocated blocks, or blocks
 * another node allocated and gave up with its EXTENT token), or one whose
 * owner this server does not know (allocated before it served: the ledger
 * is not carried by a relocation), but never blocks another node allocated
 * and still holds.  It does not know the store: the server also checks
 * that the blocks are the file's unwritten (or already written) blocks
 * before it publishes them.
 *
 * For the recovery of a node that is gone for good, cl_ledger_drop_node()
 * hands back the runs its own ALLOCs made and it never published (the
 * blocks to free), and forgets everything it held.  A node's runs of a
 * file go when it gives back the file's EXTENT token (cl_ledger_forget),
 * so the ledger holds no more than the token server does.
 *
 * Locking: the ledger has one mutex, a leaf, taken by each call.
 */
#ifndef CXFS_CL_RUNS_H
#define CXFS_CL_RUNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta/meta_store.h"

/*
 * Runs @r[0..n) of an extent map received from the server, asked from file
 * block @from: they must cover [from, ...) in order without gaps (-EPROTO
 * if not), and every run with blocks (DATA, UNWRITTEN) must lie within the
 * data region's @data_blocks blocks (-EIO if not: no I/O may go there).
 */
int cl_runs_check(const struct meta_map *r, size_t n, uint64_t from, uint64_t data_blocks);

/* Unwritten file blocks [fblk, fblk + nblk) of inode @ino at data blocks [pblk, ...). */
struct cl_ledger_run {
	uint64_t ino;
	uint64_t fblk, nblk;
	uint64_t pblk;
	bool fresh;                    /* allocated by the node's own ALLOC (else: seen in a map) */
};

#define CL_LEDGER_MAX_RUNS 4096    /* runs one node may hold (the server's ledger) */

struct cl_ledger;

/*
 * An empty ledger for node ids 1..@max_nodes, each holding at most
 * @max_runs runs (more are refused: -ENOSPC).  0, -ENOMEM.
 */
int cl_ledger_create(unsigned max_nodes, size_t max_runs, struct cl_ledger **out);
void cl_ledger_destroy(struct cl_ledger *l);
/* Forget every run (this node serves anew: what it knew is stale). */
void cl_ledger_reset(struct cl_ledger *l);

/*
 * Node @node was handed run @r: it replaces what the node held of those
 * blocks with the same freshness.  0, -EINVAL (no such node, empty run),
 * -ENOSPC (the node holds its maximum of runs), -ENOMEM.
 */
int cl_ledger_add(struct cl_ledger *l, uint32_t node, const struct cl_ledger_run *r);

/*
 * May node @node publish file blocks [fblk, fblk + nblk) of @ino as written
 * at data blocks [pblk, ...)?  0 if each block was handed to @node at that
 * place, or is held fresh by no node; -EPERM if not (nothing changes).
 */
int cl_ledger_check(struct cl_ledger *l, uint32_t node, uint64_t ino, uint64_t fblk,
		    uint64_t nblk, uint64_t pblk);

/* Blocks [fblk, fblk + nblk) of @ino were published (or freed): no node holds them now. */
void cl_ledger_clear(struct cl_ledger *l, uint64_t ino, uint64_t fblk, uint64_t nblk);

/*
 * Node @node gave back its EXTENT token of @ino: it has no map of it to
 * write by, so it holds none of its blocks now (what it still publishes
 * later is of no known owner).
 */
void cl_ledger_forget(struct cl_ledger *l, uint32_t node, uint64_t ino);

/*
 * Node @node is gone for good: forget what it held, and return in *@out the
 * runs its own ALLOCs made that it never published (the caller must free
 * *@out; NULL when there are none).  Other nodes may have seen those blocks
 * in a map: call cl_ledger_clear() for the runs once they are freed.
 * Returns the number of runs, or -EINVAL / -ENOMEM.
 */
long cl_ledger_drop_node(struct cl_ledger *l, uint32_t node, struct cl_ledger_run **out);

/* How many runs node @node holds (for statistics and tests). */
size_t cl_ledger_count(struct cl_ledger *l, uint32_t node);

#endif
