/*
 * meta_alloc.h - the data-region block allocator (internal to src/meta).
 *
 * Free space is a bitmap per allocation group (AG) of META_AG_BLOCKS blocks,
 * stored as one row per AG in the metadata store's `freemap` table and kept
 * in memory here.  A block is in one of four states:
 *
 *   free      allocatable;
 *   used      owned by an extent in the store (the bit set in `freemap`);
 *   reserved  handed to a writer whose data I/O is in flight; it becomes used
 *             when the writer records the extent, and is never written to
 *             the store as used, so a crash cannot leak it;
 *   pending   freed by the open transaction; allocatable only after that
 *             transaction commits, so a crash can never leave a deleted
 *             file's extent pointing at blocks that another file's data has
 *             already overwritten.
 *
 * Not thread-safe: the store calls it under its own mutex.
 */
#ifndef CXFS_META_ALLOC_H
#define CXFS_META_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#define META_AG_BLOCKS 32768u            /* 128 MiB of 4 KiB blocks per AG */
#define META_AG_BYTES (META_AG_BLOCKS / 8)

struct meta_alloc;

int meta_alloc_create(uint64_t nblocks, struct meta_alloc **out);
void meta_alloc_destroy(struct meta_alloc *a);
uint32_t meta_alloc_ag_count(const struct meta_alloc *a);

/* Load one AG's used bitmap (@len == META_AG_BYTES) as stored. */
int meta_alloc_load(struct meta_alloc *a, uint32_t ag, const void *bits, size_t len);

/*
 * Reserve up to @want free blocks as one run, preferring the run that starts
 * at @goal, then the first run after it.  Sets *@start and *@got (1..want).
 * -ENOSPC when no block is free.
 */
int meta_alloc_reserve(struct meta_alloc *a, uint64_t goal, uint64_t want, uint64_t *start,
		       uint64_t *got);
/* Give reserved blocks back (the write failed). */
void meta_alloc_unreserve(struct meta_alloc *a, uint64_t start, uint64_t n);
/* Reserved blocks now belong to an extent in the open transaction. */
void meta_alloc_use_reserved(struct meta_alloc *a, uint64_t start, uint64_t n);
/* Blocks that an extent of the open transaction no longer owns. */
void meta_alloc_free(struct meta_alloc *a, uint64_t start, uint64_t n);
/* The open transaction committed durably: pending blocks become free. */
void meta_alloc_committed(struct meta_alloc *a);
/*
 * Two-step form for a commit whose sync runs outside the store mutex: seal
 * the blocks pending now (returns a mark), and once the commit is durable
 * release exactly those; blocks freed after the seal stay pending.
 */
size_t meta_alloc_seal(const struct meta_alloc *a);
void meta_alloc_release_sealed(struct meta_alloc *a, size_t mark);

/* 1 if every block of the run is used (for the checker). */
int meta_alloc_is_used(const struct meta_alloc *a, uint64_t start, uint64_t n);

/*
 * Iterate over AGs whose used bitmap changed since it was last taken:
 * returns 1 and the AG's bitmap (valid until the next call that changes the
 * allocator) and clears its dirty mark, or 0 when none is left.
 */
int meta_alloc_take_dirty(struct meta_alloc *a, uint32_t *ag, const void **bits);

uint64_t meta_alloc_total(const struct meta_alloc *a);
/* Blocks a new reservation could get now (free, neither pending nor reserved). */
uint64_t meta_alloc_available(const struct meta_alloc *a);

#endif
