/*
 * blkperf.c - cxfs-blkperf: raw throughput of a volume (one LUN or an XVM
 * volume of several) through cxfs's own volume and block layers, for reads
 * *and writes* (iscsi-perf only reads), so the benchmarks can put every cxfs
 * figure next to what the device itself does with the same request size and
 * the same number of requests in flight.  Each of N threads keeps one
 * request outstanding.  Writing destroys the volume's content.  --copy-to
 * copies the whole volume onto another, the reference a mirror's revive is
 * measured against.  --log logs the writes in the volume's dirty-region log
 * (slot 0), as a mounted cxfsd does, so that its cost can be measured.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cx_util.h"
#include "xvm/xvm.h"

struct perf {
	struct xvm_vol *dev;         /* constant */
	struct xvm_vol *dst;         /* --copy-to: the volume written; NULL otherwise */
	uint64_t bs;                 /* request size; constant */
	uint64_t span;               /* bytes of the device used; constant */
	int write, random;           /* constant */
	double deadline;             /* monotonic seconds; constant */
	atomic_uint_fast64_t next;   /* next sequential request */
	atomic_uint_fast64_t ops;    /* completed requests */
	atomic_int err;              /* first error */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
	struct perf *p = arg;
	uint64_t nreq = p->span / p->bs, seed = (uint64_t)(uintptr_t)&arg ^ (uint64_t)now();
	char *buf = aligned_alloc(4096, p->bs);

	if (!buf) {
		atomic_store(&p->err, -ENOMEM);
		return NULL;
	}
	memset(buf, 0x5a, p->bs);
	while (now() < p->deadline && !atomic_load(&p->err)) {
		uint64_t i;
		int rc;

		if (p->random) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			i = (seed >> 17) % nreq;
		} else {
			i = atomic_fetch_add(&p->next, 1);
			if (p->dst && i >= nreq)
				break;          /* the copy is done */
			i %= nreq;
		}
		if (p->dst) {
			rc = xvm_read(p->dev, buf, p->bs, i * p->bs);
			if (!rc)
				rc = xvm_write(p->dst, buf, p->bs, i * p->bs);
		} else {
			rc = p->write ? xvm_write(p->dev, buf, p->bs, i * p->bs)
				      : xvm_read(p->dev, buf, p->bs, i * p->bs);
		}
		if (rc) {
			atomic_store(&p->err, rc);
			break;
		}
		atomic_fetch_add(&p->ops, 1);
	}
	free(buf);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cxfs-blkperf [--write] [--random] [-b BYTES] [-m N] [-t SECS] [-s BYTES] VOLUME...\n"
		"       cxfs-blkperf --copy-to DEST [-b BYTES] [-m N] VOLUME...\n"
		"       cxfs-blkperf --write --log [--random] [-b BYTES] [-m N] [-t SECS] VOLUME...\n"
		"\n"
		"Measure VOLUME (a file or iscsi://HOST[:PORT]/IQN/LUN, or the LUNs of an XVM\n"
		"volume) through cxfs's volume and block layers: N requests of BYTES in\n"
		"flight (default 256K, 16) for SECS seconds (default 10), sequential or\n"
		"random; prints MB/s and IOPS.  --write overwrites the volume's content.\n"
		"--copy-to copies all of VOLUME onto DEST (a volume at least as large,\n"
		"whose content it destroys) and prints the copy's rate.  -s, --span: use\n"
		"only the first BYTES of the volume (the same working set on volumes of\n"
		"different sizes).  --log logs the\n"
		"writes of a volume with mirrors in its dirty-region log (slot 0, as a\n"
		"single-machine cxfsd does), to measure what the log costs.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "write", no_argument, NULL, 'w' },
		{ "random", no_argument, NULL, 'r' },
		{ "copy-to", required_argument, NULL, 'c' },
		{ "log", no_argument, NULL, 'l' },
		{ "span", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct perf p = { .bs = 256 * 1024 };
	struct xvm_open_opts bo = { 0 };
	const char *copy_to = NULL;
	char err[256];
	int inflight = 16, secs = 10, log = 0, c, rc;
	uint64_t span = 0;
	pthread_t *th = NULL;
	double t0, t;

	while ((c = getopt_long(argc, argv, "wrb:m:t:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'w': p.write = 1; break;
		case 'r': p.random = 1; break;
		case 'c': copy_to = optarg; break;
		case 'l': log = 1; break;
		case 'b': p.bs = cx_parse_size(optarg); break;
		case 'm': inflight = atoi(optarg); break;
		case 't': secs = atoi(optarg); break;
		case 's': span = cx_parse_size(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind == argc || !p.bs || p.bs % 512 || inflight < 1 || secs < 1 ||
	    (copy_to && (p.write || p.random)) || (log && !p.write)) {
		usage(stderr);
		return 2;
	}
	rc = xvm_open_args((const char *const *)argv + optind, (size_t)(argc - optind), &bo, &p.dev,
			   err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfs-blkperf: %s\n", err);
		return 1;
	}
	if (log && (rc = xvm_drl_start(p.dev, 0, err, sizeof(err))) < 0) {
		fprintf(stderr, "cxfs-blkperf: %s\n", err);
		xvm_close(p.dev);
		return 1;
	}
	if (copy_to) {
		rc = xvm_open_args(&copy_to, 1, &bo, &p.dst, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "cxfs-blkperf: %s\n", err);
			xvm_close(p.dev);
			return 1;
		}
	}
	p.span = (span && span < xvm_size(p.dev) ? span : xvm_size(p.dev)) / p.bs * p.bs;
	th = calloc((size_t)inflight, sizeof(*th));
	if (!th || p.span < p.bs || (p.dst && xvm_size(p.dst) < p.span)) {
		fprintf(stderr, "cxfs-blkperf: %s\n", !th ? "out of memory"
			: p.span < p.bs ? "volume smaller than one request"
					: "the destination is smaller than the volume");
		rc = 1;
		goto out_close;
	}
	t0 = now();
	p.deadline = p.dst ? INFINITY : t0 + secs;
	for (int i = 0; i < inflight; i++)
		pthread_create(&th[i], NULL, worker, &p);
	for (int i = 0; i < inflight; i++)
		pthread_join(th[i], NULL);
	if (p.dst && !atomic_load(&p.err))
		atomic_store(&p.err, xvm_flush(p.dst));
	t = now() - t0;
	if (atomic_load(&p.err)) {
		fprintf(stderr, "cxfs-blkperf: I/O failed: %s\n", strerror(-atomic_load(&p.err)));
		rc = 1;
		goto out_close;
	}
	printf("%s %s bs=%llu inflight=%d: %.1f MB/s %.0f IOPS\n",
	       p.dst ? "copy" : p.random ? "random" : "sequential",
	       p.dst ? "all" : p.write ? "write" : "read", (unsigned long long)p.bs, inflight,
	       (double)atomic_load(&p.ops) * (double)p.bs / t / 1e6,
	       (double)atomic_load(&p.ops) / t);
	rc = 0;
out_close:
	free(th);
	if (p.dst)
		xvm_close(p.dst);
	xvm_close(p.dev);
	return rc ? 1 : 0;
}
