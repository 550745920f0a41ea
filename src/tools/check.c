/*
 * check.c - cxfs-check: verify a cxfs volume (superblock, SQLite integrity,
 * extents against free space, link counts, sizes).  Exit 0 when consistent,
 * 1 when damage was found, 2 when the volume cannot be examined.
 * Run it on an unmounted volume, or with --store on a copy of the metadata
 * store that `cxfsctl backup` wrote.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xvm/xvm.h"
#include "meta/meta_store.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cxfs-check [-q] VOLUME...\n"
		"       cxfs-check [-q] --store FILE\n"
		"\n"
		"Check the cxfs filesystem on VOLUME (a file path or\n"
		"iscsi://HOST[:PORT]/TARGET-IQN/LUN, or the LUNs of an XVM volume), which\n"
		"must not be mounted; or\n"
		"with --store the copy of a metadata store that `cxfsctl backup` wrote.\n"
		"Exit status: 0 consistent, 1 damage found, 2 cannot check.\n"
		"\n"
		"  -s, --store   FILE is a store copy (cxfsctl backup), not a volume\n"
		"  -q, --quiet   print only problems\n"
		"  -h, --help    this text\n");
}

static void report(void *arg, const char *msg)
{
	printf("%s: %s\n", (const char *)arg, msg);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "store", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct xvm_open_opts bo = { 0 };
	struct xvm_vol *dev = NULL;
	char err[512], *name = NULL;
	int quiet = 0, store = 0, c, rc, problems;

	while ((c = getopt_long(argc, argv, "qsh", longopts, NULL)) != -1) {
		switch (c) {
		case 'q': quiet = 1; break;
		case 's': store = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc || (store && optind != argc - 1)) {
		usage(stderr);
		return 2;
	}
	if (store) {
		if (access(argv[optind], R_OK)) {
			fprintf(stderr, "cxfs-check: cannot open %s: %s\n", argv[optind],
				strerror(errno));
			return 2;
		}
		name = argv[optind];
		problems = meta_check_store(name, report, name);
	} else {
		rc = xvm_open_args((const char *const *)argv + optind, (size_t)(argc - optind), &bo,
				   &dev, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "cxfs-check: %s\n", err);
			return 2;
		}
		name = strdup(xvm_uri(dev));
		if (!name) {
			xvm_close(dev);
			return 2;
		}
		problems = meta_check(dev, report, name);
		xvm_close(dev);
	}
	if (problems)
		printf("%s: %d problem%s found\n", name, problems, problems == 1 ? "" : "s");
	else if (!quiet)
		printf("%s: clean\n", name);
	if (!store)
		free(name);
	return problems ? 1 : 0;
}
