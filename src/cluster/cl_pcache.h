/*
 * cl_pcache.h - a client node's cache of file data in daemon memory: pages
 * of one filesystem block, each whole (every byte of the block is known),
 * clean (the volume has the same bytes) or dirty (written here, not yet on
 * the volume).  Dirty pages record where their block lies on the volume
 * (the writer allocated it) and whether that block is still unwritten, so
 * writing them back needs no extent map and no call to the MDS.
 *
 * What may be cached under which token, and when pages go, is the caller's
 * business (cl_client.c; docs/ARCHITECTURE.md, "Data cache"): this module
 * only keeps pages, bounds them (dirty bytes: writers wait in
 * cl_pc_reserve; clean bytes: least recently used pages are evicted) and
 * counts.
 *
 * Locking: one mutex per cache, a leaf, taken by each call; page contents
 * are copied under it.  A file's pages change generation (cl_pc_gen) when
 * any of them is dropped or evicted, so a reader that copied blocks from
 * the volume without the lock keeps them only if nothing went meanwhile.
 */
#ifndef CXFS_CL_PCACHE_H
#define CXFS_CL_PCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cl_pc;       /* a node's cache */
struct cl_pcf;      /* the pages of one file */

/* Counters for `cxfsctl status` (bytes, and events since the cache was made). */
struct cl_pc_counts {
	uint64_t dirty_bytes, clean_bytes;
	uint64_t hits, misses;          /* blocks read from the cache / not found there */
	uint64_t flushes, flushed_bytes;  /* runs written back, and their bytes */
	uint64_t waits;                 /* writers that waited for room */
	uint64_t errors;                /* runs whose write-back failed (their pages went) */
};

/*
 * A cache of @bs-byte pages holding at most @dirty_max dirty and
 * @clean_max clean bytes (0: none).  NULL on ENOMEM.
 */
struct cl_pc *cl_pc_create(uint32_t bs, uint64_t dirty_max, uint64_t clean_max);
/* Frees every page; no file may still use it. */
void cl_pc_destroy(struct cl_pc *pc);
bool cl_pc_writes_back(const struct cl_pc *pc);   /* dirty_max > 0 */
/* A file of @bytes read through would stay cached whole (clean_max >= @bytes > 0). */
bool cl_pc_holds(const struct cl_pc *pc, uint64_t bytes);
void cl_pc_counts(struct cl_pc *pc, struct cl_pc_counts *out);

/* The pages of file @ino (NULL on ENOMEM); destroying it drops them all, dirty too. */
struct cl_pcf *cl_pcf_create(struct cl_pc *pc, uint64_t ino);
void cl_pcf_destroy(struct cl_pc *pc, struct cl_pcf *f);

/* ---- reading ---- */

/*
 * Copy @len bytes from offset @boff of block @blk into @dst if it is
 * cached (true: a hit, the page becomes the most recently used).
 */
bool cl_pc_get(struct cl_pc *pc, struct cl_pcf *f, uint64_t blk, size_t boff, size_t len,
	       char *dst);
/* How many blocks from @blk on (at most @max) are not cached. */
size_t cl_pc_absent(struct cl_pc *pc, struct cl_pcf *f, uint64_t blk, size_t max);
/* The file's generation now (see the top of this file). */
uint64_t cl_pc_gen(struct cl_pc *pc, struct cl_pcf *f);
/*
 * Keep clean copies of blocks [@blk, @blk + @n) read from the volume
 * (@src, n whole blocks), unless the file's generation moved past @gen:
 * blocks already cached stay as they are.
 */
void cl_pc_fill(struct cl_pc *pc, struct cl_pcf *f, uint64_t blk, size_t n, const char *src,
		uint64_t gen);

/* ---- writing ---- */

/*
 * Wait until @bytes more dirty bytes fit (or nothing is dirty); an
 * application's request waits interruptibly (cx_intr_wait).  0, -EINTR or
 * the request's bound's error.  Wakes the flusher.
 */
int cl_pc_reserve(struct cl_pc *pc, size_t bytes);
/*
 * Write @len bytes at offset @boff of block @blk (volume block @pblk,
 * @unwritten if the volume does not hold it yet): the page becomes dirty.
 * A block not cached takes its other bytes from @base (a whole block;
 * NULL for a whole-block write): -ENOENT if they are needed and missing,
 * -ENOMEM.
 */
int cl_pc_put(struct cl_pc *pc, struct cl_pcf *f, uint64_t blk, size_t boff, const char *src,
	      size_t len, uint64_t pblk, bool unwritten, const char *base);
/* Drop the pages of blocks [@from, @to), dirty ones too. */
void cl_pc_drop(struct cl_pc *pc, struct cl_pcf *f, uint64_t from, uint64_t to);
/* Drop the clean pages of blocks [@from, @to). */
void cl_pc_drop_clean(struct cl_pc *pc, struct cl_pcf *f, uint64_t from, uint64_t to);

/* ---- writing back ---- */

/* The file's dirty blocks in ascending order in *@out (caller must free); their count. */
size_t cl_pc_dirty_list(struct cl_pc *pc, struct cl_pcf *f, uint64_t **out);
/*
 * One run to write back, from the dirty blocks @blks[0..n): blocks still
 * dirty, consecutive in the file and on the volume, all unwritten or all
 * not, at most @max; their bytes go to @buf.  *@used: entries of @blks
 * looked at; *@blk0, *@pblk, *@unwritten: where the run is; *@ticket: for
 * cl_pc_written.  Returns the run's blocks (0: none left in @blks[0..*used)).
 */
size_t cl_pc_run(struct cl_pc *pc, struct cl_pcf *f, const uint64_t *blks, size_t n, size_t max,
		 char *buf, size_t *used, uint64_t *blk0, uint64_t *pblk, bool *unwritten,
		 uint64_t *ticket);
/*
 * The run [@blk0, @blk0 + @n) of @ticket was written back (@rc 0) or not:
 * pages not written again since become clean, or go (@rc < 0); all of
 * them hold written blocks now if @rc is 0.
 */
void cl_pc_written(struct cl_pc *pc, struct cl_pcf *f, uint64_t blk0, size_t n, uint64_t ticket,
		   int rc);

/* ---- the flusher ---- */

/*
 * Up to @max inode numbers of files with dirty pages into @inos; their
 * count.  Used by the flusher, woken by cl_pc_flusher_wait.
 */
size_t cl_pc_dirty_files(struct cl_pc *pc, uint64_t *inos, size_t max);
/*
 * Sleep until dirty pages pass a quarter of the bound, a writer waits, or
 * @ms pass with something dirty; false once cl_pc_stop was called.
 */
bool cl_pc_flusher_wait(struct cl_pc *pc, unsigned ms);
void cl_pc_stop(struct cl_pc *pc);

#endif
