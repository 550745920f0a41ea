/*
 * hsm_state.h - what cxfs-hsmd keeps about a file and how its HSM state is
 * read from DMAPI, shared by the daemon and the user commands.
 *
 * A migrated file carries the DM attribute "hsm": which tier copy holds
 * it, and the size, mtime and checksum chunk of the file when it was
 * copied.  Its state follows from that attribute and its managed regions:
 *
 *   resident    no "hsm" attribute (the data is only on the volume)
 *   dual-state  "hsm", and no region raises READ: the data is on the volume
 *               and in the tier (regions raise WRITE and TRUNCATE, so that
 *               a change makes the copy stale)
 *   offline     READ regions cover [0, size): the blocks were released
 *   partial     READ regions cover part of it (a recall under way, or one
 *               that was cut short)
 */
#ifndef CXFS_HSM_STATE_H
#define CXFS_HSM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cxfsdm.h"

#define HSM_SESSION "cxfs-hsmd"              /* the daemon's DMAPI session */
#define HSM_ATTR "hsm"                       /* per-file DM attribute */
#define HSM_STATUS_ATTR "cxfs-hsmd.status"   /* the daemon's counters, on the root inode */
#define HSM_STATUS_FILE "hsmd.status"        /* the same, in TIER/<fs> */
#define HSM_ATTR_VERSION 1

/* Codes of the user events cxfs-hsm sends (cxdm_send_user). */
enum hsm_user_code {
	HSM_USER_MIGRATE = 1,   /* copy to the tier: dual-state */
	HSM_USER_RELEASE = 2,   /* free the blocks (migrating first): offline */
	HSM_USER_STAGE = 3,     /* recall the whole file: dual-state */
};

enum hstate {
	HSTATE_RESIDENT,
	HSTATE_DUAL,
	HSTATE_OFFLINE,
	HSTATE_PARTIAL,
};

/* The "hsm" attribute. */
struct hstate_attr {
	struct cxdm_handle obj;     /* the tier copy's name (the file's handle at migration) */
	uint64_t size;              /* file size when copied */
	struct timespec mtime;      /* file mtime when copied */
	uint32_t chunk;             /* bytes per checksum of the copy */
};

/* A file as the HSM sees it. */
struct hstate_file {
	struct cxdm_stat st;
	bool migrated;                                 /* has the "hsm" attribute */
	struct hstate_attr attr;                       /* valid if migrated */
	struct cxdm_region regions[CXDM_MAX_REGIONS];
	size_t nregions;
	uint64_t offline_bytes;                        /* bytes of [0, size) under READ regions */
	enum hstate state;
};

const char *hstate_name(enum hstate s);   /* "resident", "dual-state", ... */

/* The attribute as text into @buf; returns its length. */
size_t hstate_attr_encode(const struct hstate_attr *a, char *buf, size_t size);
/* 0, or -EINVAL if @buf is not an attribute of this version. */
int hstate_attr_decode(const char *buf, size_t len, struct hstate_attr *a);
/* Read / write the attribute of @h: 0, -ENODATA (none), -EINVAL (unreadable), or DMAPI errors. */
int hstate_get_attr(cxdm_t *dm, const struct cxdm_handle *h, struct hstate_attr *a);
int hstate_set_attr(cxdm_t *dm, const struct cxdm_handle *h, const struct hstate_attr *a);

/* Bytes of [0, @size) covered by regions carrying READ. */
uint64_t hstate_offline_bytes(const struct cxdm_region *r, size_t n, uint64_t size);
/* Does any region carrying READ overlap [@off, @off + @len) (len 0: to the end)? */
bool hstate_read_overlaps(const struct cxdm_region *r, size_t n, uint64_t off, uint64_t len);
/* The state of a file with @migrated, @r[0..@n) and @size. */
enum hstate hstate_classify(bool migrated, const struct cxdm_region *r, size_t n, uint64_t size);

/* stat, attribute and regions of @h, and its state. */
int hstate_query(cxdm_t *dm, const struct cxdm_handle *h, struct hstate_file *out);

/*
 * The regions of a file being recalled in chunks of @chunk bytes, with
 * @resident[i] true for each of the @nchunks chunks already back:
 * READ|WRITE|TRUNCATE over chunks not back, WRITE|TRUNCATE over the rest,
 * the last region reaching to the end of the file (len 0).  When that takes
 * more than @max regions, the smallest runs of resident chunks are marked
 * READ as well (harmless: a reader there raises an event that is answered
 * at once).  Returns the number of regions written to @out (>= 1).
 */
size_t hstate_recall_regions(const bool *resident, size_t nchunks, uint32_t chunk,
			     struct cxdm_region *out, size_t max);

#endif
