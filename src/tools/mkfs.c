/*
 * mkfs.c - mkfs.cxfs: format a volume (a file or an iSCSI LUN, or the LUNs
 * of an XVM volume) with a cxfs filesystem, refusing one that already holds
 * cxfs unless --force is given.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xvm/xvm.h"
#include "common/cx_util.h"
#include "meta/meta_sb.h"
#include "meta/meta_store.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: mkfs.cxfs [--force] [--name NAME] [--dmapi] [--size BYTES] VOLUME...\n"
		"\n"
		"Format VOLUME (a file path or iscsi://HOST[:PORT]/TARGET-IQN/LUN) as cxfs.\n"
		"Several VOLUME arguments (or one comma-separated list) are the LUNs of an\n"
		"XVM volume made with cxfs-volume create.\n"
		"\n"
		"  -f, --force        overwrite a volume that already holds a cxfs filesystem\n"
		"  -n, --name NAME    filesystem name (default \"cxfs\")\n"
		"      --dmapi        enable DMAPI events (hierarchical storage management)\n"
		"  -s, --size BYTES   create a missing file volume of this size (K/M/G/T)\n"
		"  -h, --help         this text\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "name", required_argument, NULL, 'n' },
		{ "dmapi", no_argument, NULL, 'D' },
		{ "size", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct xvm_open_opts bo = { 0 };
	const char *name = "cxfs", *volume;
	struct xvm_vol *dev = NULL;
	struct meta_sb sb;
	uint32_t flags = 0;
	int force = 0, c, rc;
	char err[512], uuid[37];

	while ((c = getopt_long(argc, argv, "fn:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': force = 1; break;
		case 'n': name = optarg; break;
		case 'D': flags |= META_SB_F_DMAPI; break;
		case 's':
			bo.create_size = cx_parse_size(optarg);
			if (!bo.create_size) {
				fprintf(stderr, "mkfs.cxfs: --size %s: not a size\n", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (optind != argc - 1 && bo.create_size) {
		fprintf(stderr, "mkfs.cxfs: --size creates a one-file volume only\n");
		return 2;
	}
	if (strlen(name) > META_SB_NAME_MAX) {
		fprintf(stderr, "mkfs.cxfs: --name is longer than %d bytes\n", META_SB_NAME_MAX);
		return 2;
	}
	rc = xvm_open_args((const char *const *)argv + optind, (size_t)(argc - optind), &bo, &dev,
			   err, sizeof(err));
	if (rc) {
		fprintf(stderr, "mkfs.cxfs: %s%s\n", err,
			rc == -ENOENT ? " (give --size to create a file volume)" : "");
		return 1;
	}
	volume = xvm_uri(dev);
	rc = meta_sb_read(dev, &sb, err, sizeof(err));
	if (rc != -META_ENOTFORMATTED && !force) {
		if (rc == 0) {
			meta_uuid_str(sb.uuid, uuid);
			fprintf(stderr, "mkfs.cxfs: %s already holds cxfs filesystem \"%s\" (uuid %s);"
				" use --force to overwrite it\n", volume, sb.name, uuid);
		} else {
			fprintf(stderr, "mkfs.cxfs: %s holds a damaged cxfs superblock (%s);"
				" use --force to overwrite it\n", volume, err);
		}
		xvm_close(dev);
		return 1;
	}
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "mkfs.cxfs: formatting %s (%llu MiB)...\n", volume,
			(unsigned long long)(xvm_size(dev) >> 20));
	rc = meta_store_format(dev, name, flags, 0, 0, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "mkfs.cxfs: %s: %s\n", volume, err);
		xvm_close(dev);
		return 1;
	}
	rc = meta_sb_read(dev, &sb, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "mkfs.cxfs: %s: the new superblock does not read back: %s\n", volume,
			err);
		xvm_close(dev);
		return 1;
	}
	meta_uuid_str(sb.uuid, uuid);
	printf("%s: cxfs \"%s\", uuid %s, %llu MiB data in %u-byte blocks%s\n", volume, sb.name,
	       uuid, (unsigned long long)(sb.data.len >> 20), sb.block_size,
	       (flags & META_SB_F_DMAPI) ? ", DMAPI enabled" : "");
	xvm_close(dev);
	return 0;
}
