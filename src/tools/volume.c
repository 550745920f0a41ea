/*
 * volume.c - cxfs-volume: create and administer XVM volumes (src/xvm):
 * create, show, attach and detach a mirror leg, grow a concat, revive out
 * legs (with progress on a terminal), and stop a running revive.
 *
 * Every subcommand but create opens the volume from the LUNs given, as any
 * node assembles it; the layout changes and the revive need the volume not
 * in use by a cxfsd (the daemon would not see them): on iSCSI LUNs a
 * cluster's registered reservation keys refuse them unless --force.  A
 * revive records its pid in a file named for the volume's uuid, which
 * `revive --stop` signals.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cx_util.h"
#include "xvm/xvm.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cxfs-volume create --layout SPEC [--name NAME] [--stripe-unit SIZE] LUN...\n"
		"       cxfs-volume show [--json] LUN...\n"
		"       cxfs-volume attach --mirror ID --lun NEW LUN...\n"
		"       cxfs-volume detach --mirror ID --leg N LUN...\n"
		"       cxfs-volume grow --lun NEW LUN...\n"
		"       cxfs-volume revive [--stop] LUN...\n"
		"\n"
		"LUN is a file path or iscsi://HOST[:PORT]/TARGET-IQN/LUN (or a comma-separated\n"
		"list of them).  SPEC is a layout such as\n"
		"    mirror(concat(0,1),mirror(stripe:64k(2,3,4),stripe:64k(5,6,7)))\n"
		"whose numbers index the LUNs given.  ID is a mirror's node number (show).\n"
		"\n"
		"  -l, --layout SPEC       create: the layout (default: a concat of the LUNs)\n"
		"  -n, --name NAME         create: the volume's name (default \"xvm\")\n"
		"  -u, --stripe-unit SIZE  create: stripe unit where SPEC gives none (64k)\n"
		"  -j, --json              show: one JSON object\n"
		"  -m, --mirror ID         attach/detach: the mirror\n"
		"  -g, --leg N             detach: the leg\n"
		"  -L, --lun NEW           attach/grow: the new LUN\n"
		"  -s, --stop              revive: stop the revive running on the volume\n"
		"  -f, --force             change a volume whose LUNs list a cluster's keys\n"
		"  -i, --initiator IQN     iSCSI initiator name\n"
		"  -h, --help              this text\n");
}

/* The file that holds the pid of a revive of volume @uuid. */
static void pid_path(const char *uuid, char *out, size_t len)
{
	snprintf(out, len, "%s/cxfs-volume-%s.pid", access("/run", W_OK) == 0 ? "/run" : "/tmp",
		 uuid);
}

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	stop_requested = 1;
}

/* The revive's progress state. */
struct progress {
	int tty;                          /* stderr is a terminal: redraw one line */
	struct timespec start;            /* of the current mirror */
	unsigned mirror;                  /* the mirror being revived */
	int last_pct;                     /* last percentage printed (no tty: every 10%) */
};

static int on_progress(void *arg, unsigned mirror, unsigned leg, uint64_t done, uint64_t total)
{
	struct progress *p = arg;
	struct timespec now;
	double secs, pct = 100.0 * (double)done / (double)total;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (mirror != p->mirror || done <= (1u << 20)) {
		p->mirror = mirror;
		p->start = now;
		p->last_pct = -10;   /* so that the first tenth prints */
	}
	secs = (double)(now.tv_sec - p->start.tv_sec) + (double)(now.tv_nsec - p->start.tv_nsec) / 1e9;
	if (p->tty || (int)pct / 10 != p->last_pct / 10 || done == total) {
		fprintf(stderr, "%smirror %u leg %u: %5.1f%% (%llu of %llu MiB, %.0f MiB/s)%s",
			p->tty ? "\r" : "", mirror, leg, pct, (unsigned long long)(done >> 20),
			(unsigned long long)(total >> 20), secs > 0 ? (double)(done >> 20) / secs : 0.0,
			p->tty && done < total ? "" : "\n");
		p->last_pct = (int)pct;
	}
	return stop_requested;
}

static int do_revive(struct xvm_vol *vol, int stop)
{
	struct progress p = { .tty = isatty(STDERR_FILENO), .mirror = ~0u };
	char uuid[33], path[128], err[512];
	struct sigaction sa = { .sa_handler = on_stop };
	FILE *pf;
	long pid;
	int rc;

	xvm_uuid(vol, uuid);
	if (!uuid[0]) {
		fprintf(stderr, "cxfs-volume: a legacy volume has no mirror to revive\n");
		return 1;
	}
	pid_path(uuid, path, sizeof(path));
	if (stop) {
		pf = fopen(path, "r");
		if (!pf || fscanf(pf, "%ld", &pid) != 1) {
			fprintf(stderr, "cxfs-volume: no revive is running on this volume\n");
			if (pf)
				fclose(pf);
			return 1;
		}
		fclose(pf);
		if (kill((pid_t)pid, SIGTERM) != 0) {
			fprintf(stderr, "cxfs-volume: revive %ld: %s\n", pid, strerror(errno));
			return 1;
		}
		printf("asked revive %ld to stop\n", pid);
		return 0;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	pf = fopen(path, "w");
	if (pf) {
		fprintf(pf, "%ld\n", (long)getpid());
		fclose(pf);
	}
	rc = xvm_revive(vol, on_progress, &p, err, sizeof(err));
	unlink(path);
	if (rc < 0) {
		fprintf(stderr, "cxfs-volume: revive: %s\n", err);
		return 1;
	}
	printf("%d leg%s revived\n", rc, rc == 1 ? "" : "s");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "layout", required_argument, NULL, 'l' },
		{ "name", required_argument, NULL, 'n' },
		{ "stripe-unit", required_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ "mirror", required_argument, NULL, 'm' },
		{ "leg", required_argument, NULL, 'g' },
		{ "lun", required_argument, NULL, 'L' },
		{ "stop", no_argument, NULL, 's' },
		{ "force", no_argument, NULL, 'f' },
		{ "initiator", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct xvm_create_opts co = { 0 };
	struct xvm_open_opts oo = { 0 };
	const char *cmd, *lun = NULL;
	long mirror = -1, leg = -1;
	int json = 0, stop = 0, force = 0, c, rc;
	struct xvm_vol *vol;
	char err[512], *text;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "l:n:u:jm:g:L:sfi:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': co.layout = optarg; break;
		case 'n': co.name = optarg; break;
		case 'u':
			co.stripe_unit = (uint32_t)cx_parse_size(optarg);
			if (co.stripe_unit < 512 || (co.stripe_unit & (co.stripe_unit - 1))) {
				fprintf(stderr, "cxfs-volume: --stripe-unit %s: want a power of two "
					">= 512\n", optarg);
				return 2;
			}
			break;
		case 'j': json = 1; break;
		case 'm': mirror = strtol(optarg, NULL, 10); break;
		case 'g': leg = strtol(optarg, NULL, 10); break;
		case 'L': lun = optarg; break;
		case 's': stop = 1; break;
		case 'f': force = 1; break;
		case 'i': co.initiator = oo.initiator = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "create")) {
		rc = xvm_create((const char *const *)argv + optind, (size_t)(argc - optind), &co, err,
				sizeof(err));
		if (rc) {
			fprintf(stderr, "cxfs-volume: create: %s\n", err);
			return 1;
		}
		oo.read_only = 1;
	} else if (!strcmp(cmd, "show") || (!strcmp(cmd, "revive") && stop)) {
		oo.read_only = 1;
	} else if ((!strcmp(cmd, "attach") && (mirror < 0 || !lun)) ||
		   (!strcmp(cmd, "detach") && (mirror < 0 || leg < 0)) ||
		   (!strcmp(cmd, "grow") && !lun)) {
		fprintf(stderr, "cxfs-volume: %s: missing option (see --help)\n", cmd);
		return 2;
	} else if (strcmp(cmd, "attach") && strcmp(cmd, "detach") && strcmp(cmd, "grow") &&
		   strcmp(cmd, "revive")) {
		fprintf(stderr, "cxfs-volume: unknown command %s\n", cmd);
		usage(stderr);
		return 2;
	}
	rc = xvm_open_args((const char *const *)argv + optind, (size_t)(argc - optind), &oo, &vol,
			   err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfs-volume: %s\n", err);
		return 1;
	}
	if (!oo.read_only && !force && (rc = xvm_in_use(vol, err, sizeof(err))) != 0) {
		fprintf(stderr, "cxfs-volume: %s: %s: %s\n", cmd, err,
			rc > 0 ? "a cluster's nodes use the volume (their daemons would not see "
				 "the change): stop them first, or --force if they are gone"
			       : "use --force to go on without knowing");
		xvm_close(vol);
		return 1;
	}
	if (!strcmp(cmd, "attach"))
		rc = xvm_attach(vol, (unsigned)mirror, lun, err, sizeof(err));
	else if (!strcmp(cmd, "detach"))
		rc = xvm_detach(vol, (unsigned)mirror, (unsigned)leg, err, sizeof(err));
	else if (!strcmp(cmd, "grow"))
		rc = xvm_grow(vol, lun, 0, err, sizeof(err));
	else if (!strcmp(cmd, "revive")) {
		rc = do_revive(vol, stop);
		xvm_close(vol);
		return rc;
	}
	if (rc) {
		fprintf(stderr, "cxfs-volume: %s: %s\n", cmd, err);
		xvm_close(vol);
		return 1;
	}
	text = xvm_show(vol, json);
	if (text)
		fputs(text, stdout);
	free(text);
	xvm_close(vol);
	return text ? 0 : 1;
}
