/*
 * hsm_state.c - the "hsm" DM attribute, a file's HSM state from its
 * attribute and managed regions, and the regions of a file being recalled
 * (hsm_state.h).  Pure functions except hstate_get_attr, hstate_set_attr
 * and hstate_query, which ask libcxfsdm.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsm/hsm_state.h"

#define HSTATE_ATTR_MAX 256   /* bytes of the attribute's text */

#define EV_READ CXDM_EV_BIT(CXDM_EV_READ)
#define EV_WT (CXDM_EV_BIT(CXDM_EV_WRITE) | CXDM_EV_BIT(CXDM_EV_TRUNCATE))

const char *hstate_name(enum hstate s)
{
	switch (s) {
	case HSTATE_RESIDENT:
		return "resident";
	case HSTATE_DUAL:
		return "dual-state";
	case HSTATE_OFFLINE:
		return "offline";
	case HSTATE_PARTIAL:
		return "partial";
	}
	return "?";
}

size_t hstate_attr_encode(const struct hstate_attr *a, char *buf, size_t size)
{
	int n = snprintf(buf, size,
			 "cxfs-hsm %d obj=%" PRIu64 "-%" PRIu64 " size=%" PRIu64
			 " mtime=%lld.%09ld chunk=%" PRIu32,
			 HSM_ATTR_VERSION, a->obj.ino, a->obj.gen, a->size,
			 (long long)a->mtime.tv_sec, (long)a->mtime.tv_nsec, a->chunk);

	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

int hstate_attr_decode(const char *buf, size_t len, struct hstate_attr *a)
{
	char text[HSTATE_ATTR_MAX];
	unsigned long long ino, gen, size;
	long long sec;
	long nsec;
	unsigned chunk;
	int version, end = 0;

	if (len >= sizeof(text))
		return -EINVAL;
	memcpy(text, buf, len);
	text[len] = '\0';
	if (sscanf(text, "cxfs-hsm %d obj=%llu-%llu size=%llu mtime=%lld.%ld chunk=%u%n",
		   &version, &ino, &gen, &size, &sec, &nsec, &chunk, &end) != 7 ||
	    version != HSM_ATTR_VERSION || text[end] != '\0' || chunk == 0 || nsec < 0 ||
	    nsec >= 1000000000L)
		return -EINVAL;
	a->obj.ino = ino;
	a->obj.gen = gen;
	a->size = size;
	a->mtime.tv_sec = (time_t)sec;
	a->mtime.tv_nsec = nsec;
	a->chunk = chunk;
	return 0;
}

int hstate_get_attr(cxdm_t *dm, const struct cxdm_handle *h, struct hstate_attr *a)
{
	char buf[HSTATE_ATTR_MAX];
	ssize_t n;

	n = cxdm_get_dmattr(dm, h, HSM_ATTR, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	if ((size_t)n >= sizeof(buf))
		return -EINVAL;
	return hstate_attr_decode(buf, (size_t)n, a);
}

int hstate_set_attr(cxdm_t *dm, const struct cxdm_handle *h, const struct hstate_attr *a)
{
	char buf[HSTATE_ATTR_MAX];
	size_t n = hstate_attr_encode(a, buf, sizeof(buf));

	return cxdm_set_dmattr(dm, h, HSM_ATTR, buf, n);
}

/* The end of region @r (UINT64_MAX for len 0 or an end past 2^64). */
static uint64_t hstate__end(const struct cxdm_region *r)
{
	if (r->len == 0 || r->off + r->len < r->off)
		return UINT64_MAX;
	return r->off + r->len;
}

uint64_t hstate_offline_bytes(const struct cxdm_region *r, size_t n, uint64_t size)
{
	uint64_t sum = 0, lo, hi;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!(r[i].events & EV_READ) || r[i].off >= size)
			continue;
		lo = r[i].off;
		hi = hstate__end(&r[i]);
		if (hi > size)
			hi = size;
		sum += hi - lo;
	}
	return sum;
}

bool hstate_read_overlaps(const struct cxdm_region *r, size_t n, uint64_t off, uint64_t len)
{
	uint64_t end = len == 0 || off + len < off ? UINT64_MAX : off + len;
	size_t i;

	for (i = 0; i < n; i++)
		if ((r[i].events & EV_READ) && r[i].off < end && off < hstate__end(&r[i]))
			return true;
	return false;
}

enum hstate hstate_classify(bool migrated, const struct cxdm_region *r, size_t n, uint64_t size)
{
	uint64_t off;

	if (!migrated)
		return HSTATE_RESIDENT;
	if (!hstate_read_overlaps(r, n, 0, 0))
		return HSTATE_DUAL;
	off = hstate_offline_bytes(r, n, size);
	return off >= size ? HSTATE_OFFLINE : HSTATE_PARTIAL;
}

int hstate_query(cxdm_t *dm, const struct cxdm_handle *h, struct hstate_file *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = cxdm_stat(dm, h, &out->st);
	if (rc < 0)
		return rc;
	rc = hstate_get_attr(dm, h, &out->attr);
	if (rc == 0)
		out->migrated = true;
	else if (rc != -ENODATA)
		return rc;
	rc = cxdm_get_regions(dm, h, out->regions, CXDM_MAX_REGIONS);
	if (rc < 0)
		return rc;
	out->nregions = (size_t)rc < CXDM_MAX_REGIONS ? (size_t)rc : CXDM_MAX_REGIONS;
	out->offline_bytes = hstate_offline_bytes(out->regions, out->nregions, out->st.size);
	out->state = hstate_classify(out->migrated, out->regions, out->nregions, out->st.size);
	return 0;
}

/* A run of chunks that are all resident or all not. */
struct hstate_run {
	size_t first, count;
	bool resident;
};

size_t hstate_recall_regions(const bool *resident, size_t nchunks, uint32_t chunk,
			     struct cxdm_region *out, size_t max)
{
	struct hstate_run *runs;
	size_t nruns = 0, i, best, k;

	if (nchunks == 0 || max == 0) {
		out[0] = (struct cxdm_region){ .off = 0, .len = 0, .events = EV_WT };
		return 1;
	}
	runs = calloc(nchunks, sizeof(*runs));
	if (!runs) {
		/* Without memory, the safe answer: everything still to come. */
		out[0] = (struct cxdm_region){ .off = 0, .len = 0, .events = EV_READ | EV_WT };
		return 1;
	}
	for (i = 0; i < nchunks; i++) {
		if (nruns && runs[nruns - 1].resident == resident[i]) {
			runs[nruns - 1].count++;
			continue;
		}
		runs[nruns++] = (struct hstate_run){ .first = i, .count = 1, .resident = resident[i] };
	}
	/*
	 * Too many runs: mark the smallest resident run READ and merge it with
	 * its neighbours; an interior one removes two runs, an edge one one.
	 */
	while (nruns > max) {
		best = nruns;
		for (i = 1; i + 1 < nruns; i++)
			if (runs[i].resident && (best == nruns || runs[i].count < runs[best].count))
				best = i;
		if (best == nruns)
			best = runs[0].resident ? 0 : nruns - 1;
		runs[best].resident = false;
		/* Merge runs that now have the same kind. */
		k = 0;
		for (i = 0; i < nruns; i++) {
			if (k && runs[k - 1].resident == runs[i].resident) {
				runs[k - 1].count += runs[i].count;
				continue;
			}
			runs[k++] = runs[i];
		}
		nruns = k;
	}
	for (i = 0; i < nruns; i++) {
		out[i].off = (uint64_t)runs[i].first * chunk;
		out[i].len = i + 1 == nruns ? 0 : (uint64_t)runs[i].count * chunk;
		out[i].events = runs[i].resident ? EV_WT : EV_READ | EV_WT;
	}
	free(runs);
	return nruns;
}
