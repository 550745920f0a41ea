/*
 * cxdm-example.c - a small program that shows how an HSM uses libcxfsdm
 * (include/cxfsdm.h, docs/libcxfsdm.md):
 *
 *   cxdm-example [--socket S] info        the daemon, its node and the MDS
 *   cxdm-example [--socket S] show PATH   a file as DMAPI sees it
 *   cxdm-example [--socket S] watch       print data and destroy events as
 *                                         they come, and let each go on
 *
 * It is documentation by example: each command is one short function that
 * calls the library in the order a real program would.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxfsdm.h"

#define EX_SESSION "cxdm-example"
#define EX_BATCH 16          /* events fetched per cxdm_get_events() */
#define EX_WAIT_MS 1000      /* so that ^C is noticed within a second */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "cxdm-example: %s: %s\n", what, strerror(-err));
	return 1;
}

/* info: what the daemon says about itself (answered by this node). */
static int cmd_info(cxdm_t *dm)
{
	struct cxdm_info in;
	int rc = cxdm_info(dm, &in);

	if (rc < 0)
		return fail("info", rc);
	printf("node        %s%s\n", in.node, in.is_server ? " (metadata server)" : "");
	printf("server      %s\n", in.server[0] ? in.server : "(none known)");
	printf("filesystem  %s, DMAPI %s\n", in.fs, in.dmapi ? "on" : "off");
	printf("space       %" PRIu64 " of %" PRIu64 " bytes free, blocks of %u\n",
	       in.free_bytes, in.total_bytes, in.block_size);
	return 0;
}

/* show PATH: its handle, stat, event list, managed regions, "hsm" attribute. */
static int cmd_show(cxdm_t *dm, const char *path)
{
	struct cxdm_region r[CXDM_MAX_REGIONS];
	struct cxdm_handle h;
	struct cxdm_stat st;
	uint32_t events;
	ssize_t alen;
	int rc, n, i;

	rc = cxdm_path_to_handle(dm, path, &h);
	if (rc < 0)
		return fail(path, rc);
	rc = cxdm_stat(dm, &h, &st);
	if (rc < 0)
		return fail("stat", rc);
	printf("handle      ino %" PRIu64 " gen %" PRIu64 "\n", h.ino, h.gen);
	printf("stat        mode %o, %u links, %" PRIu64 " bytes, %" PRIu64 " blocks of 512\n",
	       st.mode, st.nlink, st.size, st.blocks);

	rc = cxdm_get_eventlist(dm, &h, &events);
	if (rc < 0)
		return fail("event list", rc);
	printf("events      0x%x", events);
	for (i = 0; i <= CXDM_EV_USER; i++)
		if (events & CXDM_EV_BIT(i))
			printf(" %s", cxdm_event_name(i));
	printf("\n");

	/* Returns how many regions the file has, copies at most the array. */
	n = cxdm_get_regions(dm, &h, r, CXDM_MAX_REGIONS);
	if (n < 0)
		return fail("regions", n);
	printf("regions     %d\n", n);
	for (i = 0; i < n && i < CXDM_MAX_REGIONS; i++)
		printf("  [%" PRIu64 ", %s%" PRIu64 ") events 0x%x\n", r[i].off,
		       r[i].len ? "+" : "EOF", r[i].len, r[i].events);

	/* There is no list of attribute names: ask for the one an HSM would set. */
	alen = cxdm_get_dmattr(dm, &h, "hsm", NULL, 0);
	if (alen == -ENODATA)
		printf("dmattr hsm  (none)\n");
	else if (alen < 0)
		return fail("dmattr", (int)alen);
	else
		printf("dmattr hsm  %zd bytes\n", alen);
	return 0;
}

/* watch: a session that receives data and destroy events and lets each go on. */
static int cmd_watch(cxdm_t *dm)
{
	struct cxdm_event ev[EX_BATCH];
	struct sigaction sa = { .sa_handler = on_signal };
	uint64_t sid;
	int rc, n, i, ret = 0;

	rc = cxdm_create_session(dm, EX_SESSION, &sid);
	if (rc < 0)
		return fail("create session", rc);
	rc = cxdm_set_disposition(dm, sid, CXDM_EV_DATA | CXDM_EV_BIT(CXDM_EV_DESTROY));
	if (rc < 0) {
		ret = fail("disposition", rc);
		goto out_destroy;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("session %" PRIu64 " watching; ^C to stop\n", sid);

	while (!stop) {
		n = cxdm_get_events(dm, sid, ev, EX_BATCH, EX_WAIT_MS);
		if (n == -ETIMEDOUT)
			continue;
		if (n < 0) {
			ret = fail("get events", n);
			break;
		}
		for (i = 0; i < n; i++) {
			printf("%-9s ino %" PRIu64 " gen %" PRIu64 " [%" PRIu64 ", +%" PRIu64
			       ") waiters %u\n", cxdm_event_name(ev[i].type), ev[i].h.ino,
			       ev[i].h.gen, ev[i].off, ev[i].len, ev[i].waiters);
			/* DESTROY is asynchronous: nobody waits for an answer. */
			if (ev[i].type == CXDM_EV_DESTROY)
				continue;
			rc = cxdm_respond(dm, sid, ev[i].token, 0);
			if (rc < 0)
				fprintf(stderr, "cxdm-example: respond: %s\n", strerror(-rc));
		}
		fflush(stdout);
	}

out_destroy:
	/* Force: events delivered and not answered yet go on (response 0). */
	rc = cxdm_destroy_session(dm, sid, true, 0);
	if (rc < 0)
		ret = fail("destroy session", rc);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cxdm-example [--socket S] info\n"
		"       cxdm-example [--socket S] show PATH\n"
		"       cxdm-example [--socket S] watch\n"
		"\n"
		"Talk DMAPI to the local cxfsd (socket: S, $CXFS_DM_SOCKET or %s).\n",
		CXDM_DEFAULT_SOCKET);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *cmd;
	cxdm_t *dm;
	int c, rc, ret;

	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	if (strcmp(cmd, "info") && strcmp(cmd, "watch") &&
	    (strcmp(cmd, "show") || optind + 2 != argc)) {
		usage(stderr);
		return 2;
	}

	rc = cxdm_open(sock, &dm);
	if (rc < 0)
		return fail(sock ? sock : "open", rc);
	if (!strcmp(cmd, "info"))
		ret = cmd_info(dm);
	else if (!strcmp(cmd, "show"))
		ret = cmd_show(dm, argv[optind + 1]);
	else
		ret = cmd_watch(dm);
	cxdm_close(dm);
	return ret;
}
