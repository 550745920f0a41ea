/*
 * hsm_cli.c - cxfs-hsm: the user commands of the cxfs HSM.
 *
 *   cxfs-hsm [--socket PATH] migrate|release|stage PATH...
 *   cxfs-hsm [--socket PATH] ls PATH...
 *   cxfs-hsm [--socket PATH] status [--json]
 *
 * They work from any node's mount: the PATHs are looked up there, and
 * every request goes through that node's cxfsd (its DMAPI socket) to the
 * metadata server, where cxfs-hsmd answers.  migrate, release and stage
 * are user events (cxdm_send_user) that the daemon answers when the work is
 * done; ls reads each file's HSM state (hsm_state.c); status lists the
 * DMAPI sessions and the daemon's counters (the DM attribute it keeps on
 * the root inode).
 *
 * Sections: files (PATH arguments, directories); progress (a line on a
 * terminal, updated from the daemon's status); the commands; main.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cxfsdm.h"
#include "hsm/hsm_state.h"

#define CLI_STATUS_MAX 16384        /* bytes of the daemon's status text */
#define CLI_PROGRESS_MS 250         /* progress line updates */
#define CLI_PROGRESS_AFTER_MS 1000  /* a single file shows progress after this */

static const char *cli_socket;      /* --socket, or NULL for the default */

/* ---- files ---------------------------------------------------------------------- */

/* A list of paths (caller frees with files_free). */
struct files {
	char **path;
	size_t n, cap;
};

static int files_add(struct files *fl, const char *path)
{
	char **np;

	if (fl->n == fl->cap) {
		size_t cap = fl->cap ? fl->cap * 2 : 64;

		np = realloc(fl->path, cap * sizeof(*np));
		if (!np)
			return -ENOMEM;
		fl->path = np;
		fl->cap = cap;
	}
	fl->path[fl->n] = strdup(path);
	if (!fl->path[fl->n])
		return -ENOMEM;
	fl->n++;
	return 0;
}

static void files_free(struct files *fl)
{
	size_t i;

	for (i = 0; i < fl->n; i++)
		free(fl->path[i]);
	free(fl->path);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Add the regular files of directory @dir (sorted by name); below it too
 * if @recurse.  Returns the number of entries that could not be read.
 */
static int files_add_dir(struct files *fl, const char *dir, bool recurse)
{
	struct files names = { 0 };
	struct dirent *de;
	struct stat sb;
	char *p;
	size_t i;
	int bad = 0;
	DIR *d;

	d = opendir(dir);
	if (!d) {
		fprintf(stderr, "cxfs-hsm: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (files_add(&names, de->d_name) < 0) {
			bad++;
			break;
		}
	}
	closedir(d);
	if (names.n)
		qsort(names.path, names.n, sizeof(char *), cmp_str);
	for (i = 0; i < names.n; i++) {
		if (asprintf(&p, "%s/%s", dir, names.path[i]) < 0) {
			bad++;
			continue;
		}
		if (lstat(p, &sb) < 0) {
			fprintf(stderr, "cxfs-hsm: %s: %s\n", p, strerror(errno));
			bad++;
		} else if (S_ISREG(sb.st_mode)) {
			if (files_add(fl, p) < 0)
				bad++;
		} else if (S_ISDIR(sb.st_mode) && recurse) {
			bad += files_add_dir(fl, p, true);
		}
		free(p);
	}
	files_free(&names);
	return bad;
}

/*
 * The files the PATH arguments name: a regular file itself, a directory
 * its regular files (below it too if @recurse).  Returns the number of
 * arguments that could not be used (said on standard error).
 */
static int files_collect(struct files *fl, char **argv, int argc, bool recurse)
{
	struct stat sb;
	int i, bad = 0;

	for (i = 0; i < argc; i++) {
		if (stat(argv[i], &sb) < 0) {
			fprintf(stderr, "cxfs-hsm: %s: %s\n", argv[i], strerror(errno));
			bad++;
		} else if (S_ISDIR(sb.st_mode)) {
			bad += files_add_dir(fl, argv[i], recurse);
		} else if (S_ISREG(sb.st_mode)) {
			if (files_add(fl, argv[i]) < 0)
				bad++;
		} else {
			fprintf(stderr, "cxfs-hsm: %s: not a regular file or directory\n", argv[i]);
			bad++;
		}
	}
	return bad;
}

/* "1.2 GiB" into @buf. */
static const char *human(uint64_t bytes, char *buf, size_t size)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, size, "%.1f %s", v, unit[u]);
	return buf;
}

/* What a DMAPI error means to a user of this command. */
static const char *explain(int rc)
{
	switch (rc) {
	case -ENOTCONN:
		return "no cxfsd answers at the DMAPI socket (see --socket)";
	case -EOPNOTSUPP:
		return "the filesystem was not made with DMAPI (mkfs.cxfs --dmapi)";
	case -ESRCH:
		return "no HSM daemon serves the filesystem (is cxfs-hsmd running beside the "
		       "metadata server's cxfsd?)";
	case -EBUSY:
		return "the file changed while it was copied; try again";
	case -ESTALE:
		return "the file is gone, or differs from its tier copy";
	case -EIO:
		return "I/O error (the tier copy may be missing or damaged: see the cxfs-hsmd log)";
	case -ESHUTDOWN:
		return "the HSM daemon stopped serving; try again";
	}
	return strerror(-rc);
}

/* ---- progress ---------------------------------------------------------------------- */

/* The first JSON number "@key":N in @js, or 0. */
static uint64_t json_num(const char *js, const char *key)
{
	char pat[80];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(js, pat);
	return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

/* A JSON string "@key":"..." of @js into @buf ("" if absent). */
static const char *json_str(const char *js, const char *key, char *buf, size_t size)
{
	char pat[80];
	const char *p, *e;

	buf[0] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(js, pat);
	if (!p)
		return buf;
	p += strlen(pat);
	e = strchr(p, '"');
	if (e)
		snprintf(buf, size, "%.*s", (int)(e - p), p);
	return buf;
}

/* The daemon's status text from the root inode into @buf; its length or -errno. */
static ssize_t read_status(cxdm_t *dm, char *buf, size_t size)
{
	struct cxdm_handle root = { .ino = 1, .gen = 0 };
	struct cxdm_stat st;
	ssize_t n;
	int rc;

	rc = cxdm_stat(dm, &root, &st);
	if (rc < 0)
		return rc;
	n = cxdm_get_dmattr(dm, &st.h, HSM_STATUS_ATTR, buf, size - 1);
	if (n < 0)
		return n;
	if ((size_t)n > size - 1)
		n = (ssize_t)(size - 1);
	buf[n] = '\0';
	return n;
}

/* The bytes done so far of the daemon's job on @ino, from its status. */
static uint64_t job_done(const char *js, uint64_t ino)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "{\"ino\":%" PRIu64 ",", ino);
	p = strstr(js, pat);
	return p ? json_num(p, "done") : 0;
}

/* A progress line on standard error, from a thread of its own. */
struct progress {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	bool stop;                /* (mutex) */
	const char *verb;         /* "migrate", ... */
	size_t files, nfiles;     /* done, all (mutex) */
	uint64_t bytes, total;    /* bytes of the files done, of all (mutex) */
	uint64_t cur_ino;         /* the file being worked on (mutex) */
	bool shown;               /* a line is on the terminal */
	struct timespec start;
};

static double elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void *progress_main(void *arg)
{
	struct progress *pg = arg;
	char js[CLI_STATUS_MAX], a[32], b[32];
	cxdm_t *dm = NULL;
	struct timespec dl;
	uint64_t done, cur;
	size_t files;

	cxdm_open(cli_socket, &dm);
	pthread_mutex_lock(&pg->mutex);
	while (!pg->stop) {
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += CLI_PROGRESS_MS * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&pg->cond, &pg->mutex, &dl);
		if (pg->stop)
			break;
		if (pg->nfiles < 2 && elapsed_ms(&pg->start) < CLI_PROGRESS_AFTER_MS)
			continue;
		files = pg->files;
		done = pg->bytes;
		cur = pg->cur_ino;
		pthread_mutex_unlock(&pg->mutex);
		if (dm && cur && read_status(dm, js, sizeof(js)) > 0)
			done += job_done(js, cur);
		fprintf(stderr, "\r%s: %zu/%zu files, %s of %s   ", pg->verb, files, pg->nfiles,
			human(done, a, sizeof(a)), human(pg->total, b, sizeof(b)));
		pthread_mutex_lock(&pg->mutex);
		pg->shown = true;
	}
	pthread_mutex_unlock(&pg->mutex);
	cxdm_close(dm);
	return NULL;
}

/* ---- the commands ------------------------------------------------------------------ */

/*
 * Say so when the session that takes user requests has no daemon: the
 * requests then wait until a cxfs-hsmd takes it over.
 */
static void warn_detached(cxdm_t *dm)
{
	struct cxdm_session_info ss[32];
	int n, i;

	n = cxdm_list_sessions(dm, ss, sizeof(ss) / sizeof(ss[0]));
	for (i = 0; i < n && i < (int)(sizeof(ss) / sizeof(ss[0])); i++) {
		if ((ss[i].disposition & CXDM_EV_BIT(CXDM_EV_USER)) && !ss[i].attached)
			fprintf(stderr, "cxfs-hsm: the HSM session \"%s\" has no daemon (cxfs-hsmd "
					"died or stopped): the requests wait until one takes it over\n",
				ss[i].name);
	}
}

/* migrate, release, stage: one user event per file. */
static int cmd_request(cxdm_t *dm, const char *verb, uint32_t code, char **argv, int argc)
{
	struct progress pg = { .verb = verb };
	struct files fl = { 0 };
	struct cxdm_handle *hs = NULL;
	uint64_t *sizes = NULL;
	pthread_t thread;
	bool progress_on = false;
	char a[32];
	size_t i, failed = 0;
	int rc, bad;

	bad = files_collect(&fl, argv, argc, true);
	hs = calloc(fl.n ? fl.n : 1, sizeof(*hs));
	sizes = calloc(fl.n ? fl.n : 1, sizeof(*sizes));
	if (!hs || !sizes) {
		fprintf(stderr, "cxfs-hsm: out of memory\n");
		bad++;
		goto out;
	}
	/* Handles and sizes first: the total for the progress line. */
	for (i = 0; i < fl.n; i++) {
		struct cxdm_stat st;

		rc = cxdm_path_to_handle(dm, fl.path[i], &hs[i]);
		if (rc == 0)
			rc = cxdm_stat(dm, &hs[i], &st);
		if (rc < 0) {
			fprintf(stderr, "cxfs-hsm: %s: %s\n", fl.path[i], explain(rc));
			hs[i].ino = 0;
			failed++;
			if (rc == -ENOTCONN || rc == -EOPNOTSUPP)
				goto out;
			continue;
		}
		sizes[i] = st.size;
		pg.total += st.size;
	}
	pg.nfiles = fl.n;
	warn_detached(dm);
	pthread_mutex_init(&pg.mutex, NULL);
	pthread_cond_init(&pg.cond, NULL);
	clock_gettime(CLOCK_MONOTONIC, &pg.start);
	if (isatty(STDERR_FILENO))
		progress_on = pthread_create(&thread, NULL, progress_main, &pg) == 0;
	for (i = 0; i < fl.n; i++) {
		if (!hs[i].ino)
			continue;
		pthread_mutex_lock(&pg.mutex);
		pg.cur_ino = hs[i].ino;
		pthread_mutex_unlock(&pg.mutex);
		rc = cxdm_send_user(dm, &hs[i], code);
		pthread_mutex_lock(&pg.mutex);
		pg.files++;
		pg.bytes += sizes[i];
		pg.cur_ino = 0;
		if (rc < 0 && pg.shown) {
			/* The message goes below the progress line. */
			fputc('\n', stderr);
			pg.shown = false;
		}
		pthread_mutex_unlock(&pg.mutex);
		if (rc < 0) {
			fprintf(stderr, "cxfs-hsm: %s: %s failed: %s\n", fl.path[i], verb, explain(rc));
			failed++;
			if (rc == -ENOTCONN || rc == -EOPNOTSUPP || rc == -ESRCH)
				break;
		}
	}
	if (progress_on) {
		pthread_mutex_lock(&pg.mutex);
		pg.stop = true;
		pthread_cond_signal(&pg.cond);
		pthread_mutex_unlock(&pg.mutex);
		pthread_join(thread, NULL);
		if (pg.shown)
			fprintf(stderr, "\r%s: %zu/%zu files, %s   \n", verb, pg.files, pg.nfiles,
				human(pg.total, a, sizeof(a)));
	}
	pthread_cond_destroy(&pg.cond);
	pthread_mutex_destroy(&pg.mutex);
out:
	free(hs);
	free(sizes);
	files_free(&fl);
	if (failed || bad) {
		fprintf(stderr, "cxfs-hsm: %s: %zu of %zu file(s) failed%s\n", verb, failed, fl.n,
			bad ? ", and some paths could not be read" : "");
		return 1;
	}
	return 0;
}

/* ls: STATE SIZE RESIDENT_BYTES PATH per file. */
static int cmd_ls(cxdm_t *dm, char **argv, int argc)
{
	struct files fl = { 0 };
	struct hstate_file f;
	struct cxdm_handle h;
	uint64_t resident;
	size_t i, failed = 0;
	int rc, bad;

	bad = files_collect(&fl, argv, argc, false);
	for (i = 0; i < fl.n; i++) {
		rc = cxdm_path_to_handle(dm, fl.path[i], &h);
		if (rc == 0)
			rc = hstate_query(dm, &h, &f);
		if (rc < 0) {
			fprintf(stderr, "cxfs-hsm: %s: %s\n", fl.path[i], explain(rc));
			failed++;
			if (rc == -ENOTCONN || rc == -EOPNOTSUPP)
				break;
			continue;
		}
		resident = f.offline_bytes < f.st.size ? f.st.size - f.offline_bytes : 0;
		printf("%-10s %12" PRIu64 " %12" PRIu64 " %s\n", hstate_name(f.state), f.st.size,
		       resident, fl.path[i]);
	}
	files_free(&fl);
	return failed || bad ? 1 : 0;
}

static void event_names(uint32_t events, char *buf, size_t size)
{
	size_t len = 0;
	int e;

	buf[0] = '\0';
	for (e = 0; e <= CXDM_EV_USER; e++) {
		if (!(events & CXDM_EV_BIT(e)))
			continue;
		len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s",
					len ? "," : "", cxdm_event_name((enum cxdm_event_type)e));
		if (len >= size)
			break;
	}
	if (!buf[0])
		snprintf(buf, size, "none");
}

/* status: the sessions, the volume, the daemon's counters. */
static int cmd_status(cxdm_t *dm, bool json)
{
	struct cxdm_session_info ss[32];
	struct cxdm_info in;
	char js[CLI_STATUS_MAX], evs[128], a[32], b[32], s1[128], s2[128];
	const char *p;
	ssize_t n;
	int rc, i, ns;
	long long age;

	n = read_status(dm, js, sizeof(js));
	if (json) {
		if (n < 0) {
			fprintf(stderr, "cxfs-hsm: no status of cxfs-hsmd: %s\n",
				n == -ENODATA ? "it has not run on this filesystem" : explain((int)n));
			return 1;
		}
		printf("%s\n", js);
		return 0;
	}
	rc = cxdm_info(dm, &in);
	if (rc < 0) {
		fprintf(stderr, "cxfs-hsm: %s\n", explain(rc));
		return 1;
	}
	printf("filesystem %s, DMAPI %s; this node %s, metadata server %s\n", in.fs,
	       in.dmapi ? "on" : "off", in.node, in.server[0] ? in.server : "(none known)");
	if (in.total_bytes)
		printf("  volume      %s free of %s (%.1f%% used)\n",
		       human(in.free_bytes, a, sizeof(a)), human(in.total_bytes, b, sizeof(b)),
		       100.0 * (double)(in.total_bytes - in.free_bytes) / (double)in.total_bytes);
	ns = cxdm_list_sessions(dm, ss, sizeof(ss) / sizeof(ss[0]));
	if (ns < 0) {
		fprintf(stderr, "cxfs-hsm: sessions: %s\n", explain(ns));
		return 1;
	}
	if (ns == 0)
		printf("  sessions    none (no HSM daemon has served this filesystem since it was mounted)\n");
	for (i = 0; i < ns && i < (int)(sizeof(ss) / sizeof(ss[0])); i++) {
		event_names(ss[i].disposition, evs, sizeof(evs));
		printf("  session     %" PRIu64 " \"%s\": %s, %" PRIu64 " queued, %" PRIu64
		       " delivered; receives %s\n", ss[i].id, ss[i].name,
		       ss[i].attached ? "attached" : "DETACHED (its daemon is gone: events wait)",
		       ss[i].queued, ss[i].delivered, evs);
	}
	if (n < 0) {
		printf("  cxfs-hsmd   no status (%s)\n",
		       n == -ENODATA ? "it has not run on this filesystem" : explain((int)n));
		return n == -ENODATA ? 0 : 1;
	}
	age = (long long)time(NULL) - (long long)json_num(js, "updated");
	printf("  cxfs-hsmd   on %s, pid %" PRIu64 ", %s; status %lld s old\n",
	       json_str(js, "node", s1, sizeof(s1)), json_num(js, "pid"),
	       strstr(js, "\"serving\":true") ? "serving" : "stopped", age);
	printf("  tier        %s, rate %s%s\n", json_str(js, "tier", s2, sizeof(s2)),
	       json_num(js, "rate") ? human(json_num(js, "rate"), a, sizeof(a)) : "unlimited",
	       json_num(js, "rate") ? "/s" : "");
	printf("  recalls     %" PRIu64 " (%s)\n", json_num(js, "recalls"),
	       human(json_num(js, "recall_bytes"), a, sizeof(a)));
	printf("  migrations  %" PRIu64 " (%s)\n", json_num(js, "migrations"),
	       human(json_num(js, "migrate_bytes"), a, sizeof(a)));
	printf("  releases    %" PRIu64 " (%s freed)\n", json_num(js, "releases"),
	       human(json_num(js, "release_bytes"), a, sizeof(a)));
	printf("  destroys    %" PRIu64 "; tier copies removed %" PRIu64 "\n",
	       json_num(js, "destroys"), json_num(js, "tier_removed"));
	p = strstr(js, "\"events\":");
	if (p)
		printf("  events      read %" PRIu64 ", write %" PRIu64 ", truncate %" PRIu64
		       ", destroy %" PRIu64 ", user %" PRIu64 "; %" PRIu64 " answered\n",
		       json_num(p, "read"), json_num(p, "write"), json_num(p, "truncate"),
		       json_num(p, "destroy"), json_num(p, "user"), json_num(js, "answered"));
	printf("  policy      %" PRIu64 " run(s), %" PRIu64 " file(s) released\n",
	       json_num(js, "policy_runs"), json_num(js, "policy_released"));
	printf("  errors      %" PRIu64 "\n", json_num(js, "errors"));
	for (p = strstr(js, "{\"ino\":"); p; p = strstr(p + 1, "{\"ino\":")) {
		char op[16];

		printf("  working on  inode %" PRIu64 ": %s, %s of %s\n", json_num(p, "ino"),
		       json_str(p, "op", op, sizeof(op)), human(json_num(p, "done"), a, sizeof(a)),
		       human(json_num(p, "total"), b, sizeof(b)));
	}
	return 0;
}

/* ---- main -------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cxfs-hsm [--socket PATH] migrate|release|stage PATH...\n"
		"       cxfs-hsm [--socket PATH] ls PATH...\n"
		"       cxfs-hsm [--socket PATH] status [--json]\n"
		"\n"
		"The user commands of the cxfs HSM (cxfs-hsmd), from any node's mount.\n"
		"\n"
		"  migrate  copy each file to the tier: it becomes dual-state\n"
		"  release  free each file's blocks, migrating it first if needed: offline\n"
		"           (the size stays; a read brings the data back)\n"
		"  stage    bring each offline or partial file back: dual-state\n"
		"  ls       STATE SIZE RESIDENT_BYTES PATH for each file; STATE is\n"
		"           resident, dual-state, offline or partial\n"
		"  status   the DMAPI sessions and the HSM daemon's counters\n"
		"\n"
		"A directory stands for its regular files (and, for migrate, release and\n"
		"stage, those below it).\n"
		"\n"
		"  -s, --socket PATH  the DMAPI socket of this node's cxfsd (default\n"
		"                     $CXFS_DM_SOCKET or " CXDM_DEFAULT_SOCKET ")\n"
		"  -j, --json         status: the daemon's counters as one JSON object\n"
		"  -h, --help         this text\n"
		"Exit status: 0 done; 1 a file or the request failed (named on standard\n"
		"error); 2 usage.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false;
	const char *cmd;
	cxdm_t *dm;
	int c, rc;

	while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			cli_socket = optarg;
			break;
		case 'j':
			json = true;
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
		fprintf(stderr, "cxfs-hsm: no command (migrate, release, stage, ls or status)\n");
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "status") != 0 && optind >= argc) {
		fprintf(stderr, "cxfs-hsm: %s needs at least one PATH\n", cmd);
		return 2;
	}
	if (strcmp(cmd, "status") == 0 && optind < argc) {
		fprintf(stderr, "cxfs-hsm: status takes no PATH\n");
		return 2;
	}
	if (strcmp(cmd, "migrate") && strcmp(cmd, "release") && strcmp(cmd, "stage") &&
	    strcmp(cmd, "ls") && strcmp(cmd, "status")) {
		fprintf(stderr, "cxfs-hsm: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	rc = cxdm_open(cli_socket, &dm);
	if (rc < 0) {
		fprintf(stderr, "cxfs-hsm: no cxfsd answers at %s: %s\n",
			cli_socket ? cli_socket
				   : getenv("CXFS_DM_SOCKET") ? getenv("CXFS_DM_SOCKET")
							      : CXDM_DEFAULT_SOCKET,
			strerror(-rc));
		return 1;
	}
	if (!strcmp(cmd, "migrate"))
		rc = cmd_request(dm, cmd, HSM_USER_MIGRATE, argv + optind, argc - optind);
	else if (!strcmp(cmd, "release"))
		rc = cmd_request(dm, cmd, HSM_USER_RELEASE, argv + optind, argc - optind);
	else if (!strcmp(cmd, "stage"))
		rc = cmd_request(dm, cmd, HSM_USER_STAGE, argv + optind, argc - optind);
	else if (!strcmp(cmd, "ls"))
		rc = cmd_ls(dm, argv + optind, argc - optind);
	else
		rc = cmd_status(dm, json);
	cxdm_close(dm);
	return rc;
}
