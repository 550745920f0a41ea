/*
 * hsm_tier.h - the slow tier of cxfs-hsmd: a directory (a tape library, an
 * NFS share or an object-store gateway in real life) holding one copy per
 * migrated file.
 *
 * Layout: TIER/<fsname>/<ino>-<gen> is the file's bytes, unchanged (a plain
 * copy), and TIER/<fsname>/<ino>-<gen>.sum its checksums: a header line
 * "cxfs-hsm-sum 1 SIZE CHUNK NCHUNKS" and one CRC32C (8 hex digits) per
 * CHUNK bytes.  A copy is written under temporary names (".tmp.*"),
 * fsync'ed, and renamed into place (the checksums first, then the data),
 * so a copy under its final name is always whole.  Every chunk read back is
 * checked against its checksum: a mismatch is -EIO, logged loudly.
 *
 * Reads and writes of copies go through one token bucket per tier (the
 * --rate limit of cxfs-hsmd; 0 is unlimited), shared by every thread.
 *
 * Every function returns 0 (or a count) or a negative errno.  A tier may
 * be used from several threads; a writer by one thread at a time; a
 * reader's chunks may be read by several threads at once.
 */
#ifndef CXFS_HSM_TIER_H
#define CXFS_HSM_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cxfsdm.h"

#define TIER_CHUNK (1u << 20)      /* bytes per checksum, the default */
#define TIER_OBJ_MAX 48            /* bytes of an object name, with the NUL */

struct tier;
struct tier_writer;
struct tier_reader;

/*
 * The tier in @dir for the filesystem @fs (TIER/<fs> is created if needed);
 * @rate bytes per second, 0 = unlimited.  Caller frees with tier_close().
 */
int tier_open(const char *dir, const char *fs, uint64_t rate, struct tier **out);
void tier_close(struct tier *t);
/* The directory of the copies (TIER/<fs>). */
const char *tier_path(const struct tier *t);

/* "<ino>-<gen>" into @buf of TIER_OBJ_MAX bytes. */
void tier_obj_name(const struct cxdm_handle *h, char *buf);

/* CRC32C (Castagnoli) of @buf, continuing from @crc (start with 0). */
uint32_t tier_crc32c(uint32_t crc, const void *buf, size_t len);

/* Wait until @bytes may move under the rate limit. */
void tier_throttle(struct tier *t, size_t bytes);

/* ---- writing a copy ------------------------------------------------------ */

/* Start a copy of @h with checksums every @chunk bytes.  Caller ends it with commit or abort. */
int tier_write_begin(struct tier *t, const struct cxdm_handle *h, uint32_t chunk,
		     struct tier_writer **out);
/* Append @len bytes (throttled). */
int tier_write(struct tier_writer *w, const void *buf, size_t len);
/* Make the copy durable under its final name; frees @w whatever it returns. */
int tier_write_commit(struct tier_writer *w);
/* Drop the copy being written; frees @w. */
void tier_write_abort(struct tier_writer *w);

/* ---- reading a copy ------------------------------------------------------ */

/*
 * Open the copy of @h, checking that its checksum file is whole and that
 * the data file has the size the checksums cover.  -ENOENT (no copy),
 * -EIO (damaged).  Caller frees with tier_read_close().
 */
int tier_read_open(struct tier *t, const struct cxdm_handle *h, struct tier_reader **out);
uint64_t tier_read_size(const struct tier_reader *r);
uint32_t tier_read_chunk_size(const struct tier_reader *r);
/*
 * Read chunk @idx into @buf (of tier_read_chunk_size() bytes), throttled,
 * and check its checksum.  Returns the chunk's length (the last may be
 * short), or -EIO on a short read or a mismatch (logged).
 */
ssize_t tier_read_chunk(struct tier_reader *r, uint64_t idx, void *buf);
void tier_read_close(struct tier_reader *r);

/* ---- the store ----------------------------------------------------------- */

/* Remove the copy of @h (both files); 0 if there was none. */
int tier_remove(struct tier *t, const struct cxdm_handle *h);
/*
 * Call @fn for the handle of every copy in the tier; with @clean, first
 * remove temporary files and checksum files without data (left by a daemon
 * that died: call it only while nothing writes to the tier).  Stops at the
 * first negative return of @fn and returns it.  Returns the number of copies.
 */
int tier_scan(struct tier *t, bool clean, int (*fn)(void *arg, const struct cxdm_handle *h),
	      void *arg);
/* Replace the file @name of the tier's directory by @len bytes of @buf, atomically. */
int tier_put_file(struct tier *t, const char *name, const void *buf, size_t len);

#endif
