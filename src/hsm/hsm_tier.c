/*
 * hsm_tier.c - the slow tier of cxfs-hsmd (hsm_tier.h): copies of migrated
 * files in a directory, with per-chunk CRC32C checksums and a shared
 * bandwidth limit.
 *
 * Sections:
 *   - CRC32C (the SSE4.2 instruction when the CPU has it, else the table of
 *     meta_crc32c) and the token bucket
 *   - the tier: open, close, names
 *   - writing a copy: temporary files, fsync, rename
 *   - reading a copy: the checksum file, verified chunks
 *   - the store: remove, scan, small files
 *
 * Lock: tier->mutex guards only the token bucket; it is a leaf, never held
 * across I/O or a sleep.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cx_util.h"
#include "hsm/hsm_log.h"
#include "hsm/hsm_tier.h"
#include "meta/meta_sb.h"

#define TIER_SUM_MAGIC "cxfs-hsm-sum"
#define TIER_SUM_VERSION 1
#define TIER_SUM_HEADER_MAX 128          /* bytes of the header line */
#define TIER_PIECE (256u * 1024)         /* bytes per throttled read or write */
#define TIER_BURST_S 0.1                 /* seconds of rate a quiet bucket may save up */

struct tier {
	char path[4096];          /* TIER/<fs> */
	int dirfd;                /* open on path */
	uint64_t rate;            /* bytes per second, 0 = unlimited */
	pthread_mutex_t mutex;    /* guards next */
	double next;              /* bucket: when (CLOCK_MONOTONIC s) the last grant is paid off */
	unsigned seq;             /* temporary names; atomic increments */
};

struct tier_writer {
	struct tier *t;
	struct cxdm_handle h;
	char tmp[TIER_OBJ_MAX + 64];      /* the data's temporary name */
	int fd;                           /* open on tmp */
	uint32_t chunk;                   /* bytes per checksum */
	uint64_t size;                    /* bytes written so far */
	uint32_t crc;                     /* of the current, unfinished chunk */
	uint32_t *sums;                   /* finished chunks' checksums */
	size_t nsums, cap;                /* used and allocated entries of sums */
};

struct tier_reader {
	struct tier *t;
	char obj[TIER_OBJ_MAX];           /* the object's name */
	int fd;                           /* open on the data */
	uint64_t size;                    /* the copy's bytes */
	uint32_t chunk;                   /* bytes per checksum */
	uint64_t nchunks;
	uint32_t *sums;                   /* nchunks checksums */
};

/* ---- CRC32C and the token bucket ------------------------------------------ */

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t tier__crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc & 0xffffffffu;
	uint64_t v;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

uint32_t tier_crc32c(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__)
	static int hw = -1;

	if (hw < 0)
		hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	if (hw)
		return tier__crc32c_hw(crc, buf, len);
#endif
	return meta_crc32c(crc, buf, len);
}

static double tier__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tier_throttle(struct tier *t, size_t bytes)
{
	double now, until;
	struct timespec ts;

	if (!t->rate || !bytes)
		return;
	pthread_mutex_lock(&t->mutex);
	now = tier__now();
	if (t->next < now - TIER_BURST_S)
		t->next = now - TIER_BURST_S;
	t->next += (double)bytes / (double)t->rate;
	until = t->next;
	pthread_mutex_unlock(&t->mutex);
	if (until <= now)
		return;
	until -= now;
	ts.tv_sec = (time_t)until;
	ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the tier ----------------------------------------------------------------- */

int tier_open(const char *dir, const char *fs, uint64_t rate, struct tier **out)
{
	struct tier *t;
	int rc;

	if (!dir || !fs || !fs[0] || strchr(fs, '/'))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->dirfd = -1;
	t->rate = rate;
	pthread_mutex_init(&t->mutex, NULL);
	if (snprintf(t->path, sizeof(t->path), "%s/%s", dir, fs) >= (int)sizeof(t->path)) {
		rc = -ENAMETOOLONG;
		goto out_free;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		goto out_free;
	}
	if (mkdir(t->path, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		goto out_free;
	}
	t->dirfd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0) {
		rc = -errno;
		goto out_free;
	}
	*out = t;
	return 0;
out_free:
	pthread_mutex_destroy(&t->mutex);
	free(t);
	return rc;
}

void tier_close(struct tier *t)
{
	if (!t)
		return;
	if (t->dirfd >= 0)
		close(t->dirfd);
	pthread_mutex_destroy(&t->mutex);
	free(t);
}

const char *tier_path(const struct tier *t)
{
	return t->path;
}

void tier_obj_name(const struct cxdm_handle *h, char *buf)
{
	snprintf(buf, TIER_OBJ_MAX, "%" PRIu64 "-%" PRIu64, h->ino, h->gen);
}

/* ---- writing a copy ------------------------------------------------------------ */

int tier_write_begin(struct tier *t, const struct cxdm_handle *h, uint32_t chunk,
		     struct tier_writer **out)
{
	struct tier_writer *w;
	char obj[TIER_OBJ_MAX];

	if (!chunk)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->t = t;
	w->h = *h;
	w->chunk = chunk;
	tier_obj_name(h, obj);
	snprintf(w->tmp, sizeof(w->tmp), ".tmp.%s.%ld.%u", obj, (long)getpid(),
		 __atomic_add_fetch(&t->seq, 1, __ATOMIC_RELAXED));
	w->fd = openat(t->dirfd, w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		int rc = -errno;

		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

static int tier__add_sum(struct tier_writer *w)
{
	uint32_t *ns;

	if (w->nsums == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;

		ns = realloc(w->sums, cap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		w->sums = ns;
		w->cap = cap;
	}
	w->sums[w->nsums++] = w->crc;
	w->crc = 0;
	return 0;
}

int tier_write(struct tier_writer *w, const void *buf, size_t len)
{
	const char *p = buf;
	size_t n, in_chunk, take;
	int rc;

	while (len) {
		n = len < TIER_PIECE ? len : TIER_PIECE;
		tier_throttle(w->t, n);
		rc = cx_write_full(w->fd, p, n);
		if (rc < 0)
			return rc;
		/* Checksums per chunk: a piece may finish one chunk and start the next. */
		for (size_t done = 0; done < n; done += take) {
			in_chunk = (size_t)(w->size % w->chunk);
			take = w->chunk - in_chunk;
			if (take > n - done)
				take = n - done;
			w->crc = tier_crc32c(w->crc, p + done, take);
			w->size += take;
			if (w->size % w->chunk == 0) {
				rc = tier__add_sum(w);
				if (rc < 0)
					return rc;
			}
		}
		p += n;
		len -= n;
	}
	return 0;
}

static void tier__writer_free(struct tier_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	free(w->sums);
	free(w);
}

void tier_write_abort(struct tier_writer *w)
{
	if (!w)
		return;
	unlinkat(w->t->dirfd, w->tmp, 0);
	tier__writer_free(w);
}

int tier_write_commit(struct tier_writer *w)
{
	char obj[TIER_OBJ_MAX], sumname[TIER_OBJ_MAX + 8], sumtmp[sizeof(w->tmp) + 8];
	char line[TIER_SUM_HEADER_MAX];
	FILE *f = NULL;
	int fd = -1, rc;
	size_t i;

	if (w->size % w->chunk) {
		rc = tier__add_sum(w);
		if (rc < 0)
			goto out_abort;
	}
	if (fsync(w->fd) < 0) {
		rc = -errno;
		goto out_abort;
	}
	tier_obj_name(&w->h, obj);
	snprintf(sumname, sizeof(sumname), "%s.sum", obj);
	snprintf(sumtmp, sizeof(sumtmp), "%s.sum", w->tmp);
	fd = openat(w->t->dirfd, sumtmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out_abort;
	}
	f = fdopen(fd, "w");
	if (!f) {
		rc = -errno;
		close(fd);
		goto out_unlink_sum;
	}
	snprintf(line, sizeof(line), "%s %d %" PRIu64 " %u %zu\n", TIER_SUM_MAGIC,
		 TIER_SUM_VERSION, w->size, w->chunk, w->nsums);
	fputs(line, f);
	for (i = 0; i < w->nsums; i++)
		fprintf(f, "%08" PRIx32 "\n", w->sums[i]);
	if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) < 0) {
		rc = -(errno ? errno : EIO);
		fclose(f);
		goto out_unlink_sum;
	}
	if (fclose(f) != 0) {
		rc = -errno;
		goto out_unlink_sum;
	}
	/* The checksums first: data under its final name always has them. */
	if (renameat(w->t->dirfd, sumtmp, w->t->dirfd, sumname) < 0) {
		rc = -errno;
		goto out_unlink_sum;
	}
	if (renameat(w->t->dirfd, w->tmp, w->t->dirfd, obj) < 0) {
		rc = -errno;
		unlinkat(w->t->dirfd, sumname, 0);
		goto out_abort;
	}
	if (fsync(w->t->dirfd) < 0) {
		rc = -errno;
		goto out_free;
	}
	rc = 0;
	goto out_free;
out_unlink_sum:
	unlinkat(w->t->dirfd, sumtmp, 0);
out_abort:
	unlinkat(w->t->dirfd, w->tmp, 0);
out_free:
	tier__writer_free(w);
	return rc;
}

/* ---- reading a copy ------------------------------------------------------------ */

/* Parse the checksum file of @obj into @r.  -ENOENT, -EIO (malformed), -ENOMEM. */
static int tier__read_sums(struct tier *t, const char *obj, struct tier_reader *r)
{
	char name[TIER_OBJ_MAX + 8], magic[32];
	uint64_t size, n, i;
	unsigned chunk, sum;
	int version, fd, rc = 0;
	FILE *f;

	snprintf(name, sizeof(name), "%s.sum", obj);
	fd = openat(t->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "r");
	if (!f) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (fscanf(f, "%31s %d %" SCNu64 " %u %" SCNu64, magic, &version, &size, &chunk, &n) != 5 ||
	    strcmp(magic, TIER_SUM_MAGIC) != 0 || version != TIER_SUM_VERSION || chunk == 0 ||
	    n != (size + chunk - 1) / chunk) {
		hlog("tier: %s/%s: malformed checksum file", t->path, name);
		rc = -EIO;
		goto out;
	}
	r->sums = calloc(n ? n : 1, sizeof(*r->sums));
	if (!r->sums) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (fscanf(f, "%x", &sum) != 1) {
			hlog("tier: %s/%s: %" PRIu64 " checksums of %" PRIu64 " present", t->path,
			     name, i, n);
			rc = -EIO;
			goto out;
		}
		r->sums[i] = sum;
	}
	r->size = size;
	r->chunk = chunk;
	r->nchunks = n;
out:
	fclose(f);
	return rc;
}

int tier_read_open(struct tier *t, const struct cxdm_handle *h, struct tier_reader **out)
{
	struct tier_reader *r;
	struct stat sb;
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->t = t;
	r->fd = -1;
	tier_obj_name(h, r->obj);
	r->fd = openat(t->dirfd, r->obj, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		rc = -errno;
		goto out_free;
	}
	rc = tier__read_sums(t, r->obj, r);
	if (rc == -ENOENT) {
		hlog("tier: %s/%s has no checksum file", t->path, r->obj);
		rc = -EIO;
	}
	if (rc < 0)
		goto out_free;
	if (fstat(r->fd, &sb) < 0) {
		rc = -errno;
		goto out_free;
	}
	if ((uint64_t)sb.st_size != r->size) {
		hlog("tier: %s/%s has %jd bytes, its checksums cover %" PRIu64, t->path, r->obj,
		     (intmax_t)sb.st_size, r->size);
		rc = -EIO;
		goto out_free;
	}
	posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	*out = r;
	return 0;
out_free:
	tier_read_close(r);
	return rc;
}

uint64_t tier_read_size(const struct tier_reader *r)
{
	return r->size;
}

uint32_t tier_read_chunk_size(const struct tier_reader *r)
{
	return r->chunk;
}

ssize_t tier_read_chunk(struct tier_reader *r, uint64_t idx, void *buf)
{
	uint64_t off = idx * r->chunk;
	size_t len, done = 0, n;
	ssize_t got;
	uint32_t crc;

	if (idx >= r->nchunks)
		return -EINVAL;
	len = r->size - off < r->chunk ? (size_t)(r->size - off) : r->chunk;
	while (done < len) {
		n = len - done < TIER_PIECE ? len - done : TIER_PIECE;
		tier_throttle(r->t, n);
		got = pread(r->fd, (char *)buf + done, n, (off_t)(off + done));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			hlog("tier: %s/%s: read at %" PRIu64 ": %s", r->t->path, r->obj, off + done,
			     strerror(errno));
			return -EIO;
		}
		if (got == 0) {
			hlog("tier: %s/%s: ends at %" PRIu64 ", before its %" PRIu64 " bytes",
			     r->t->path, r->obj, off + done, r->size);
			return -EIO;
		}
		done += (size_t)got;
	}
	crc = tier_crc32c(0, buf, len);
	if (crc != r->sums[idx]) {
		hlog("tier: CHECKSUM MISMATCH in %s/%s, chunk %" PRIu64 " (bytes %" PRIu64
		     "..%" PRIu64 "): crc32c %08" PRIx32 ", expected %08" PRIx32
		     "; the copy is damaged, the recall fails with EIO",
		     r->t->path, r->obj, idx, off, off + len, crc, r->sums[idx]);
		return -EIO;
	}
	return (ssize_t)len;
}

void tier_read_close(struct tier_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->sums);
	free(r);
}

/* ---- the store ------------------------------------------------------------------ */

int tier_remove(struct tier *t, const struct cxdm_handle *h)
{
	char obj[TIER_OBJ_MAX], sum[TIER_OBJ_MAX + 8];
	int rc = 0;

	tier_obj_name(h, obj);
	snprintf(sum, sizeof(sum), "%s.sum", obj);
	if (unlinkat(t->dirfd, obj, 0) < 0 && errno != ENOENT)
		rc = -errno;
	if (unlinkat(t->dirfd, sum, 0) < 0 && errno != ENOENT && rc == 0)
		rc = -errno;
	return rc;
}

/* Parse "<ino>-<gen>" (all of @name); true if it is one. */
static bool tier__parse_obj(const char *name, struct cxdm_handle *h)
{
	char canon[TIER_OBJ_MAX];
	unsigned long long ino, gen;
	int n = 0;

	if (sscanf(name, "%llu-%llu%n", &ino, &gen, &n) != 2 || name[n] != '\0')
		return false;
	h->ino = ino;
	h->gen = gen;
	tier_obj_name(h, canon);
	return strcmp(canon, name) == 0;
}

int tier_scan(struct tier *t, bool clean, int (*fn)(void *arg, const struct cxdm_handle *h),
	      void *arg)
{
	struct cxdm_handle h;
	struct dirent *de;
	char data[TIER_OBJ_MAX + 8];
	int fd, rc = 0, count = 0;
	size_t len;
	DIR *d;

	fd = openat(t->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((de = readdir(d))) {
		if (clean && strncmp(de->d_name, ".tmp.", 5) == 0) {
			hlog("tier: removing %s/%s, left by an unfinished migration", t->path,
			     de->d_name);
			unlinkat(t->dirfd, de->d_name, 0);
			continue;
		}
		len = strlen(de->d_name);
		if (clean && len > 4 && len < sizeof(data) + 4 &&
		    strcmp(de->d_name + len - 4, ".sum") == 0) {
			snprintf(data, sizeof(data), "%.*s", (int)(len - 4), de->d_name);
			if (faccessat(t->dirfd, data, F_OK, 0) < 0 && errno == ENOENT) {
				hlog("tier: removing %s/%s: its data file is gone", t->path,
				     de->d_name);
				unlinkat(t->dirfd, de->d_name, 0);
			}
			continue;
		}
		if (!tier__parse_obj(de->d_name, &h))
			continue;
		count++;
		rc = fn(arg, &h);
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc < 0 ? rc : count;
}

int tier_put_file(struct tier *t, const char *name, const void *buf, size_t len)
{
	char tmp[256];
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), ".tmp.%s.%ld", name, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = openat(t->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	rc = cx_write_full(fd, buf, len);
	close(fd);
	if (rc == 0 && renameat(t->dirfd, tmp, t->dirfd, name) < 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(t->dirfd, tmp, 0);
	return rc;
}
