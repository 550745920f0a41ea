/*
 * blkperf.c - cxfs-blkperf: raw throughput of a volume through cxfs's own
 * block layer, for reads *and writes* (iscsi-perf only reads), so the
 * benchmarks can put every cxfs figure next to what the device itself does
 * with the same request size and the same number of requests in flight.
 * Each of N threads keeps one request outstanding.  Writing destroys the
 * volume's content.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "block/blk.h"
#include "common/cx_util.h"

struct perf {
	struct blk_dev *dev;         /* constant */
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
			i = atomic_fetch_add(&p->next, 1) % nreq;
		}
		rc = p->write ? blk_write(p->dev, buf, p->bs, i * p->bs)
			      : blk_read(p->dev, buf, p->bs, i * p->bs);
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
		"Usage: cxfs-blkperf [--write] [--random] [-b BYTES] [-m N] [-t SECS] VOLUME\n"
		"\n"
		"Measure VOLUME (a file or iscsi://HOST[:PORT]/IQN/LUN) through cxfs's block\n"
		"layer: N requests of BYTES in flight (default 256K, 16) for SECS seconds\n"
		"(default 10), sequential or random; prints MB/s and IOPS.\n"
		"--write overwrites the volume's content.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "write", no_argument, NULL, 'w' },
		{ "random", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct perf p = { .bs = 256 * 1024 };
	struct blk_open_opts bo = { 0 };
	int inflight = 16, secs = 10, c, rc;
	pthread_t *th;
	double t0, t;

	while ((c = getopt_long(argc, argv, "wrb:m:t:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'w': p.write = 1; break;
		case 'r': p.random = 1; break;
		case 'b': p.bs = cx_parse_size(optarg); break;
		case 'm': inflight = atoi(optarg); break;
		case 't': secs = atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1 || !p.bs || p.bs % 512 || inflight < 1 || secs < 1) {
		usage(stderr);
		return 2;
	}
	rc = blk_open(argv[optind], &bo, &p.dev);
	if (rc) {
		fprintf(stderr, "cxfs-blkperf: cannot open %s: %s\n", argv[optind], strerror(-rc));
		return 1;
	}
	p.span = blk_size(p.dev) / p.bs * p.bs;
	th = calloc((size_t)inflight, sizeof(*th));
	if (!th || p.span < p.bs) {
		fprintf(stderr, "cxfs-blkperf: %s\n", th ? "volume smaller than one request"
							    : "out of memory");
		blk_close(p.dev);
		return 1;
	}
	t0 = now();
	p.deadline = t0 + secs;
	for (int i = 0; i < inflight; i++)
		pthread_create(&th[i], NULL, worker, &p);
	for (int i = 0; i < inflight; i++)
		pthread_join(th[i], NULL);
	t = now() - t0;
	free(th);
	blk_close(p.dev);
	if (atomic_load(&p.err)) {
		fprintf(stderr, "cxfs-blkperf: I/O failed: %s\n", strerror(-atomic_load(&p.err)));
		return 1;
	}
	printf("%s %s bs=%llu inflight=%d: %.1f MB/s %.0f IOPS\n", p.random ? "random" : "sequential",
	       p.write ? "write" : "read", (unsigned long long)p.bs, inflight,
	       (double)atomic_load(&p.ops) * (double)p.bs / t / 1e6,
	       (double)atomic_load(&p.ops) / t);
	return 0;
}
