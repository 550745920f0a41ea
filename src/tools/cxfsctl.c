/*
 * cxfsctl.c - cxfsctl: talk to the local cxfsd through its admin socket.
 * Sends one request line and prints the daemon's answer.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/admin.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cxfsctl [--socket PATH] status [--json]\n"
		"\n"
		"Ask the local cxfs daemon for its state: the filesystem, who serves it,\n"
		"space, cached vnodes, metadata commits, data and device I/O counters.\n"
		"\n"
		"  -s, --socket PATH   the daemon's admin socket (default " CXFSD_ADMIN_SOCKET ")\n"
		"  -j, --json          one JSON object instead of text\n"
		"  -h, --help          this text\n"
		"Exit status: 0 answered; 1 no daemon or an error; 2 usage.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = CXFSD_ADMIN_SOCKET;
	char req[64], buf[4096];
	int json = 0, c, fd, status = 0;
	ssize_t n;

	while ((c = getopt_long(argc, argv, "s:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1 || strcmp(argv[optind], "status") != 0) {
		usage(stderr);
		return 2;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "cxfsctl: socket path too long: %s\n", path);
		return 2;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "cxfsctl: no cxfsd answers at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	snprintf(req, sizeof(req), "status%s\n", json ? " json" : "");
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		fprintf(stderr, "cxfsctl: cannot send to %s: %s\n", path, strerror(errno));
		close(fd);
		return 1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (n >= 6 && strncmp(buf, "error:", 6) == 0)
			status = 1;
		fwrite(buf, 1, (size_t)n, stdout);
	}
	close(fd);
	return n < 0 ? 1 : status;
}
