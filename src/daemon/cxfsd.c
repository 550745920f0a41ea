/*
 * cxfsd.c - the cxfs daemon: parses the command line, opens the volume (a
 * file, created and formatted if it does not exist yet, or an iSCSI LUN),
 * opens the metadata store, builds the vnode table and serves the mount
 * through FUSE until SIGTERM/SIGINT or an unmount, then tears everything
 * down in reverse order so the store is committed and closed cleanly.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "xvm/xvm.h"
#include "cluster/cl.h"
#include "common/cx_intr.h"
#include "common/cx_util.h"
#include "daemon/admin.h"
#include "daemon/metrics_http.h"
#include "daemon/opstats.h"
#include "dmapi/dm_sock.h"
#include "membership/cms.h"
#include "relocate/kore.h"
#include "daemon/cxfsd.h"
#include "meta/meta_store.h"
#include "vnode/vn.h"
#include "vnode/vn_meta.h"

#define CXFSD_DEFAULT_SIZE (2ull << 30)

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cxfsd --volume VOLUME [options] MOUNTPOINT\n"
		"       cxfsd --config FILE --node NAME [--fs NAME] [options] MOUNTPOINT\n"
		"\n"
		"Mount the cxfs filesystem on VOLUME at MOUNTPOINT.  This node is its own\n"
		"metadata server (the single-machine mode).  VOLUME is a file path or\n"
		"iscsi://HOST[:PORT]/TARGET-IQN/LUN, or the comma-separated LUNs of an XVM\n"
		"volume (cxfs-volume).  A file volume that does not exist yet is\n"
		"created and formatted.  cxfsd stays in the foreground (logging to stderr)\n"
		"until SIGTERM, SIGINT or an unmount (umount / fusermount3 -u MOUNTPOINT).\n"
		"\n"
		"Options:\n"
		"  -v, --volume VOLUME    the volume to mount (single-machine mode)\n"
		"  -c, --config FILE      cluster mode: the cluster configuration\n"
		"                         (docs/cluster.conf.md); the filesystem's volume,\n"
		"                         this node's address and initiator come from it\n"
		"  -N, --node NAME        cluster mode: which node of FILE this is\n"
		"      --fs NAME          cluster mode: the filesystem (default: the first)\n"
		"  -s, --size BYTES       size of a file volume to create (default 2G;\n"
		"                         suffixes K, M, G, T)\n"
		"  -n, --name NAME        filesystem name for a volume created here\n"
		"  -d, --daemon           detach once the filesystem is mounted\n"
		"      --commit-ms MS     longest time a metadata transaction stays open (1000)\n"
		"      --writeback        let the kernel cache writes (faster small writes, but\n"
		"                         SEEK_DATA/SEEK_HOLE may miss data not yet flushed)\n"
		"      --threads N        most FUSE worker threads (default 32)\n"
		"      --initiator IQN    iSCSI initiator name of this node\n"
		"      --admin-socket PATH  where cxfsctl reaches this daemon\n"
		"                         (default " CXFSD_ADMIN_SOCKET ")\n"
		"      --metrics ADDR:PORT  serve Prometheus metrics at http://ADDR:PORT/metrics\n"
		"                         (e.g. 127.0.0.1:9420; default: off, or the\n"
		"                         node's \"metrics\" in the cluster configuration)\n"
		"      --dm-socket PATH   cluster mode: serve the DMAPI socket (libcxfsdm,\n"
		"                         cxfs-hsmd, cxfs-hsm) at PATH\n"
		"      --dmapi-timeout S  fail an access with EIO when its DMAPI event is not\n"
		"                         answered in S seconds (default 0: wait forever)\n"
		"      --server-wait S    cluster mode: a request that waits for a metadata\n"
		"                         server that shows no sign of life fails with EIO\n"
		"                         after S seconds (default 60)\n"
		"      --token-wait-log S cluster mode: log a token wait older than S seconds,\n"
		"                         and again at 6, 24 and every 120 times S (default 5;\n"
		"                         0: never)\n"
		"      --protocol-levels SUBSYS=MIN-MAX[,...]  cluster mode: advertise these\n"
		"                         protocol levels instead of this build's (messages,\n"
		"                         tokens, dmapi, relocation, membership), to try a\n"
		"                         node that speaks an older protocol\n"
		"  -f, --debug            print every FUSE request\n"
		"  -h, --help             this text\n");
}

struct cxfsd_opts {
	const char *volume, *mountpoint, *name, *initiator, *admin, *config, *node, *fs, *dm_socket;
	const char *metrics;          /* --metrics ADDR:PORT, or NULL */
	uint64_t size;
	unsigned commit_ms, threads, dm_timeout;
	unsigned server_wait;         /* --server-wait seconds (0: the default) */
	int wait_log;                 /* --token-wait-log seconds, or -1: the default */
	struct cms_levels levels;     /* --protocol-levels */
	bool levels_set;
	int daemon, debug, writeback;
};

/* Open the volume, creating and formatting a missing file volume (of one LUN). */
static int open_volume(const struct cxfsd_opts *o, struct xvm_vol **dev)
{
	struct xvm_open_opts bo = { .initiator = o->initiator };
	struct stat sb;
	char err[512];
	int created = 0, rc;

	if (strncmp(o->volume, "iscsi://", 8) != 0 && !strchr(o->volume, ',') &&
	    stat(o->volume, &sb) != 0) {
		bo.create_size = o->size;
		created = 1;
	}
	rc = xvm_open_args(&o->volume, 1, &bo, dev, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfsd: cannot open volume %s: %s\n", o->volume, err);
		return rc;
	}
	if (!created)
		return 0;
	fprintf(stderr, "cxfsd: %s did not exist: created a %llu-byte volume and formatting it\n",
		o->volume, (unsigned long long)o->size);
	rc = meta_store_format(*dev, o->name, 0, getuid(), getgid(), err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfsd: cannot format %s: %s\n", o->volume, err);
		xvm_close(*dev);
		unlink(o->volume);
	}
	return rc;
}

static int parse_args(int argc, char **argv, struct cxfsd_opts *o)
{
	enum { OPT_COMMIT = 256, OPT_WB, OPT_THREADS, OPT_INITIATOR, OPT_ADMIN, OPT_FS, OPT_DMSOCK,
	       OPT_DMTMO, OPT_WAITLOG, OPT_LEVELS, OPT_SRVWAIT, OPT_METRICS };
	static const struct option longopts[] = {
		{ "volume", required_argument, NULL, 'v' },
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'N' },
		{ "fs", required_argument, NULL, OPT_FS },
		{ "size", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "debug", no_argument, NULL, 'f' },
		{ "commit-ms", required_argument, NULL, OPT_COMMIT },
		{ "writeback", no_argument, NULL, OPT_WB },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "initiator", required_argument, NULL, OPT_INITIATOR },
		{ "admin-socket", required_argument, NULL, OPT_ADMIN },
		{ "dm-socket", required_argument, NULL, OPT_DMSOCK },
		{ "dmapi-timeout", required_argument, NULL, OPT_DMTMO },
		{ "token-wait-log", required_argument, NULL, OPT_WAITLOG },
		{ "protocol-levels", required_argument, NULL, OPT_LEVELS },
		{ "server-wait", required_argument, NULL, OPT_SRVWAIT },
		{ "metrics", required_argument, NULL, OPT_METRICS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "v:c:N:s:n:dfh", longopts, NULL)) != -1) {
		switch (c) {
		case 'v': o->volume = optarg; break;
		case 'c': o->config = optarg; break;
		case 'N': o->node = optarg; break;
		case OPT_FS: o->fs = optarg; break;
		case 's':
			o->size = cx_parse_size(optarg);
			if (!o->size) {
				fprintf(stderr, "cxfsd: --size %s: not a size\n", optarg);
				return 2;
			}
			break;
		case 'n': o->name = optarg; break;
		case 'd': o->daemon = 1; break;
		case 'f': o->debug = 1; break;
		case OPT_COMMIT: o->commit_ms = (unsigned)atoi(optarg); break;
		case OPT_WB: o->writeback = 1; break;
		case OPT_THREADS: o->threads = (unsigned)atoi(optarg); break;
		case OPT_INITIATOR: o->initiator = optarg; break;
		case OPT_ADMIN: o->admin = optarg; break;
		case OPT_DMSOCK: o->dm_socket = optarg; break;
		case OPT_METRICS: {
			struct sockaddr_storage ss;
			socklen_t len;

			if (cx_parse_listen(optarg, &ss, &len)) {
				fprintf(stderr, "cxfsd: --metrics %s: want ADDR:PORT (numeric, e.g. "
					"127.0.0.1:9420 or [::1]:9420)\n", optarg);
				return 2;
			}
			o->metrics = optarg;
			break;
		}
		case OPT_DMTMO: o->dm_timeout = (unsigned)atoi(optarg); break;
		case OPT_WAITLOG:
			o->wait_log = atoi(optarg);
			if (o->wait_log < 0) {
				fprintf(stderr, "cxfsd: --token-wait-log %s: not a number of seconds\n",
					optarg);
				return 2;
			}
			break;
		case OPT_LEVELS:
			if (cms_levels_parse(optarg, &o->levels)) {
				fprintf(stderr, "cxfsd: --protocol-levels %s: want SUBSYS=MIN-MAX[,...] "
					"with SUBSYS one of messages, tokens, dmapi, relocation, "
					"membership\n", optarg);
				return 2;
			}
			o->levels_set = true;
			break;
		case OPT_SRVWAIT: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*optarg == '-' || end == optarg || *end || v == 0 || v > 86400) {
				fprintf(stderr, "cxfsd: --server-wait %s: not a number of seconds "
					"from 1 to 86400\n", optarg);
				return 2;
			}
			o->server_wait = (unsigned)v;
			break;
		}
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (o->config && (o->volume || !o->node)) {
		fprintf(stderr, "cxfsd: %s\n", o->volume ? "--config and --volume exclude each other"
							 : "--config needs --node NAME");
		usage(stderr);
		return 2;
	}
	if (o->dm_socket && !o->config) {
		fprintf(stderr, "cxfsd: --dm-socket needs cluster mode (--config; one node is a cluster)\n");
		return 2;
	}
	if (optind != argc - 1 || (!o->volume && !o->config)) {
		fprintf(stderr, "cxfsd: %s\n", optind == argc - 1 ? "--volume VOLUME or --config FILE is required"
							  : "exactly one MOUNTPOINT is required");
		usage(stderr);
		return 2;
	}
	o->mountpoint = argv[optind];
	return 0;
}

/* Start the admin socket (or with @d NULL only check that its path is free),
 * making its directory if needed. */
static int start_admin(const struct cxfsd *d, const char *path, struct cxfsd_admin **out)
{
	char dir[256];
	char *slash;
	int rc;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0755);
	}
	rc = d ? cxfsd_admin_start(d, path, out) : cxfsd_admin_check(path);
	if (rc)
		fprintf(stderr, "cxfsd: cannot serve the socket %s: %s%s\n", path,
			rc == -EADDRINUSE ? "another cxfsd answers there" : strerror(-rc),
			rc == -EADDRINUSE ? "; give each daemon its own socket paths" : "");
	return rc;
}

/*
 * Cluster mode reads and writes regular files through the daemon
 * (FOPEN_DIRECT_IO), where the tokens make each read(2) and write(2)
 * atomic against other nodes; the kernel's page cache then serves only
 * shared memory maps, which FUSE allows for such files only if the INIT
 * reply carries FUSE_DIRECT_IO_ALLOW_MMAP (flags2 bit 36, Linux 6.6).  The
 * libfuse of Debian 12 (3.14) does not know that flag, so the daemon's own
 * I/O functions for /dev/fuse add it to the INIT reply.
 */
#define CX_FUSE_INIT 26               /* opcode of FUSE_INIT */
#define CX_FUSE_INIT_EXT (1u << 30)   /* flags: flags2 is meaningful */
#define CX_FUSE_DIO_ALLOW_MMAP2 (1u << 4)   /* flags2: FUSE_DIRECT_IO_ALLOW_MMAP */
static _Atomic uint64_t cx_init_unique;

/*
 * --daemon: the process forks before anything starts a thread (the volume,
 * the cluster, the admin and metrics servers all do, and a fork keeps only
 * the thread that calls it); the parent waits until the child has mounted
 * and exits 0, or 1 when the child ends before (its errors went to the
 * terminal).  The write end of the pipe the parent reads, in the child.
 */
static int detach_fd = -1;

static int detach_begin(void)
{
	char st = 1;
	int p[2];
	pid_t pid;

	if (pipe(p) != 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid > 0) {
		close(p[1]);
		while (read(p[0], &st, 1) < 0 && errno == EINTR)
			;
		_exit(st);
	}
	close(p[0]);
	detach_fd = p[1];
	(void)setsid();
	return 0;
}

/* Mounted: let the parent go, and leave the terminal and the directory. */
static void detach_done(void)
{
	const char ok = 0;
	int null;

	if (detach_fd < 0)
		return;
	(void)!write(detach_fd, &ok, 1);
	close(detach_fd);
	detach_fd = -1;
	(void)!chdir("/");
	null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
}

/*
 * The read function also tells fuse_ops.c of every request read, and
 * whether a RELEASE drops locks (a cluster's flock, or an open file
 * description's record locks): a lock request is ordered after the lock
 * releases the kernel queued before it (fuse_ops.c, "flock").  The read and
 * write functions count the requests by operation (opstats.c).
 */
#define CX_RELEASE_FLAGS_AT (sizeof(struct fuse_in_header) + \
			     offsetof(struct fuse_release_in, release_flags))
#define CX_RELEASE_FH_AT (sizeof(struct fuse_in_header) + offsetof(struct fuse_release_in, fh))

static ssize_t dev_read(int fd, void *buf, size_t len, void *userdata)
{
	struct cxfsd *d = userdata;
	uint32_t opcode, rflags = 0;
	uint64_t unique, fh = 0;
	ssize_t n;

	cxfsd_ops_reading();
	n = read(fd, buf, len);
	if (n >= 16) {
		memcpy(&opcode, (char *)buf + 4, 4);
		memcpy(&unique, (char *)buf + 8, 8);
		cxfsd_ops_read(opcode, unique);
		if (d->cl && opcode == CX_FUSE_INIT)
			atomic_store(&cx_init_unique, unique);
		if (opcode == FUSE_RELEASE && (size_t)n >= CX_RELEASE_FLAGS_AT + 4) {
			memcpy(&rflags, (char *)buf + CX_RELEASE_FLAGS_AT, 4);
			memcpy(&fh, (char *)buf + CX_RELEASE_FH_AT, 8);
		}
		cxfsd_dev_read(d, unique, opcode == FUSE_RELEASE &&
				  ((d->cl && (rflags & FUSE_RELEASE_FLOCK_UNLOCK)) ||
				   cxfsd_fh_locked(fh)));
	}
	return n;
}

static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	uint64_t want = atomic_load(&cx_init_unique), unique;

	(void)userdata;
	/* A reply's out header: error at 4, unique at 8 (0: a notification). */
	if (count >= 1 && iov[0].iov_len >= 16) {
		int32_t error;

		memcpy(&error, (char *)iov[0].iov_base + 4, 4);
		memcpy(&unique, (char *)iov[0].iov_base + 8, 8);
		if (unique)
			cxfsd_ops_replied(unique, error);
	}
	/* The INIT reply: out header, then struct fuse_init_out (flags at 12, flags2 at 32). */
	if (want && count >= 2 && iov[0].iov_len >= 16 && iov[1].iov_len >= 36) {
		memcpy(&unique, (char *)iov[0].iov_base + 8, 8);
		if (unique == want) {
			uint32_t flags, flags2;
			char *out = iov[1].iov_base;

			memcpy(&flags, out + 12, 4);
			memcpy(&flags2, out + 32, 4);
			flags |= CX_FUSE_INIT_EXT;
			flags2 |= CX_FUSE_DIO_ALLOW_MMAP2;
			memcpy(out + 12, &flags, 4);
			memcpy(out + 32, &flags2, 4);
			atomic_store(&cx_init_unique, 0);
		}
	}
	return writev(fd, iov, count);
}

/* Serve the mount until it ends; 0 on a clean end. */
/*
 * No invalidation starts on the session from now on; those in flight end
 * first (for at most 2 s: one may wait on the kernel's page lock held by an
 * application whose request this daemon no longer answers; the unmount then
 * goes on and fails it).
 */
static void session_close(struct cxfsd *d)
{
	atomic_store(&d->se, NULL);
	for (int i = 0; i < 200 && atomic_load(&d->notifying); i++)
		usleep(10 * 1000);
}

static int serve(struct cxfsd *d, const struct cxfsd_opts *o)
{
	char fsname[512], opts[700];
	char *fargv[] = { "cxfsd", "-o", opts, o->debug ? "-d" : NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(o->debug ? 4 : 3, fargv);
	struct fuse_loop_config *lc = NULL;
	struct fuse_session *se;
	int rc = 1;

	snprintf(fsname, sizeof(fsname), "cxfs:%s", o->volume);
	for (char *p = fsname; *p; p++)
		if (*p == ',')
			*p = '_';
	snprintf(opts, sizeof(opts), "fsname=%s,subtype=cxfs,allow_other,default_permissions",
		 fsname);
	se = fuse_session_new(&args, &cxfsd_fuse_ops, sizeof(cxfsd_fuse_ops), d);
	atomic_store(&d->se, se);
	if (!se) {
		fprintf(stderr, "cxfsd: cannot set up the FUSE session\n");
		fuse_opt_free_args(&args);
		return 1;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fuse_session_mount(se, o->mountpoint) != 0) {
		fprintf(stderr, "cxfsd: cannot mount on %s (does it exist, and is /dev/fuse there?)\n",
			o->mountpoint);
		goto out_signals;
	}
	{
		static const struct fuse_custom_io io = { .read = dev_read, .writev = dev_writev };

		if (fuse_session_custom_io(se, &io, fuse_session_fd(se)) != 0) {
			fprintf(stderr, "cxfsd: cannot set up the FUSE device I/O\n");
			goto out_unmount;
		}
	}
	fprintf(stderr, "cxfsd: %s mounted on %s\n", o->volume, o->mountpoint);
	detach_done();
	lc = fuse_loop_cfg_create();
	if (!lc)
		goto out_unmount;
	fuse_loop_cfg_set_max_threads(lc, o->threads);
	fuse_loop_cfg_set_idle_threads(lc, 8);
	/* A signal ends the loop with its number: a clean end, like an unmount. */
	rc = fuse_session_loop_mt(se, lc) >= 0 ? 0 : 1;
	fuse_loop_cfg_destroy(lc);
	/*
	 * An orderly stop of the metadata server hands it to the next node,
	 * while the session still exists: the recalls of that relocation drop
	 * this node's kernel caches through it.
	 */
	if (d->cl)
		(void)kore_leave(cl_kore(d->cl));
out_unmount:
	session_close(d);
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	session_close(d);
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	return rc;
}

/*
 * A cluster thread's use of the session for an invalidation: NULL once the
 * session closes (the kernel's caches go with the mount then).
 */
static struct fuse_session *session_get(struct cxfsd *d)
{
	struct fuse_session *se;

	atomic_fetch_add(&d->notifying, 1);
	se = atomic_load(&d->se);
	if (!se)
		atomic_fetch_sub(&d->notifying, 1);
	return se;
}

static void session_put(struct cxfsd *d)
{
	atomic_fetch_sub(&d->notifying, 1);
}

/* Drop the kernel's pages and attributes of @ino (a token's duty). */
static int inval_inode(void *arg, uint64_t ino)
{
	struct cxfsd *d = arg;
	struct fuse_session *se = session_get(d);
	int rc;

	if (!se)
		return 0;
	rc = fuse_lowlevel_notify_inval_inode(se, ino, 0, 0);
	session_put(d);
	return rc == -ENOENT ? 0 : rc;
}

/* Drop the kernel's entry @name of directory @dir (a token's duty). */
static int inval_entry(void *arg, uint64_t dir, const char *name)
{
	struct cxfsd *d = arg;
	struct fuse_session *se = session_get(d);
	int rc;

	if (!se)
		return 0;
	rc = fuse_lowlevel_notify_inval_entry(se, dir, name, strlen(name));
	session_put(d);
	return rc == -ENOENT ? 0 : rc;
}

/* Drop the kernel's attributes of @ino (a token's duty); does not wait. */
static int inval_attr(void *arg, uint64_t ino)
{
	struct cxfsd *d = arg;
	struct fuse_session *se = session_get(d);
	int rc;

	if (!se)
		return 0;
	rc = fuse_lowlevel_notify_inval_inode(se, ino, -1, 0);
	session_put(d);
	return rc == -ENOENT ? 0 : rc;
}

/* Go on with a revive of the volume's mirrors that was left unfinished (@why: how, for the log). */
static void revive_leftover(struct cxfsd *d, const char *why)
{
	if (!d->dev || !xvm_reviving(d->dev))
		return;
	pthread_mutex_lock(&d->admin_mu);
	if (d->admin)
		(void)cxfsd_admin_revive(d->admin, why, 0);
	pthread_mutex_unlock(&d->admin_mu);
}

/* cl_opts.serving: this node took over serving, and so the mirrors' revive. */
static void on_serving(void *arg)
{
	revive_leftover(arg, "this node took over as mirror master");
}

/* Cluster mode: join, open the volume the configuration names, and the store on the MDS. */
static int open_cluster(struct cxfsd *d, struct cxfsd_opts *o, const struct meta_store_opts *so)
{
	struct cl_opts co = { o->config, o->node, o->fs, inval_inode, inval_entry, inval_attr, d,
			      o->levels_set ? &o->levels : NULL, o->server_wait * 1000u, on_serving, d };
	struct xvm_open_opts bo = { 0 };
	const char *luns[XVM_MAX_LEAVES];
	struct vn_meta_fs *mfs;
	size_t nluns, i;
	char err[512];
	int rc;

	rc = cl_start(&co, &d->cl, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfsd: %s\n", err);
		return rc;
	}
	bo.initiator = o->initiator ? o->initiator : cl_initiator(d->cl);
	bo.cluster_ops = &cl_xvm_ops;
	bo.cluster_arg = d->cl;
	fprintf(stderr, "cxfsd: node %s joins filesystem %s as %s\n", cl_node_name(d->cl),
		cl_fs_name(d->cl), cl_is_server(d->cl) ? "its metadata server" : "a client");
	/* Every volume line of the filesystem is a LUN of its volume. */
	nluns = cl_volume_count(d->cl);
	if (nluns > XVM_MAX_LEAVES)
		nluns = XVM_MAX_LEAVES;
	for (i = 0; i < nluns; i++)
		luns[i] = cl_volume(d->cl, i);
	rc = xvm_open(luns, nluns, &bo, &d->dev, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfsd: cannot open volume %s: %s\n", luns[0], err);
		return rc;
	}
	o->volume = xvm_uri(d->dev);
	/* Registered on the LUN before the first write (fencing). */
	rc = cl_register(d->cl, d->dev, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfsd: %s\n", err);
		return rc;
	}
	if (cl_is_server(d->cl)) {
		rc = meta_store_open(d->dev, so, &d->st, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "cxfsd: cannot mount %s: %s\n", o->volume, err);
			return rc;
		}
		rc = vn_meta_fs_create(d->st, &d->mfs);
		if (rc)
			return rc;
	}
	cl_set_store_opts(d->cl, so);
	rc = cl_attach(d->cl, d->dev, d->st, d->mfs, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfsd: %s\n", err);
		return rc;
	}
	/* The cluster owns the store now: it moves with the metadata server. */
	mfs = d->mfs;
	d->st = NULL;
	d->mfs = NULL;
	rc = vn_table_create(cl_shape, d->cl, &d->vt);
	if (rc)
		return rc;
	if (mfs)
		vn_meta_fs_set_table(mfs, d->vt);
	cl_set_table(d->cl, d->vt);
	cl_dm_set_timeout(d->cl, o->dm_timeout);
	if (o->wait_log >= 0)
		cl_set_wait_log(d->cl, (unsigned)o->wait_log);
	d->node_id = cl_node_id(d->cl);
	/*
	 * The kernel keeps names and attributes as on a single node: the
	 * recall of the token that covers them makes it forget them.
	 */
	return 0;
}

/* The DMAPI socket's requests, served by the cluster (dm_sock_exec_fn). */
static int dm_exec(void *arg, uint64_t conn, const Cxfs__DmRequest *req, uint8_t **buf,
		   size_t *len)
{
	return cl_dm_request(arg, conn, req, buf, len);
}

static void dm_gone(void *arg, uint64_t conn)
{
	cl_dm_conn_gone(arg, conn);
}

/*
 * Single-machine mode: log mirror writes in the volume's dirty-region log,
 * and first resync what a crash of this node left in it (nothing else
 * writes the volume yet).
 */
static int single_drl(struct xvm_vol *dev)
{
	unsigned regions, total;
	char err[256];
	int64_t t0;
	int rc;

	rc = xvm_drl_start(dev, 0, err, sizeof(err));
	if (rc <= 0) {
		if (rc)
			fprintf(stderr, "cxfsd: cannot start the dirty-region log: %s\n", err);
		return rc;
	}
	t0 = cx_intr_now_ns();
	rc = xvm_drl_resync(dev, 0, NULL, NULL, &regions, &total, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfsd: cannot resync the mirrors' dirty regions: %s\n", err);
		return rc;
	}
	xvm_drl_resynced(dev);
	fprintf(stderr, "cxfsd: dirty-region log: resynced the %u of %u regions the last run left "
		"dirty (%.0f ms)\n", regions, total, (double)(cx_intr_now_ns() - t0) / 1e6);
	return 0;
}

/* Single-machine mode: the volume (created if missing), its store, meta behaviors. */
static int open_single(struct cxfsd *d, const struct cxfsd_opts *o, const struct meta_store_opts *so)
{
	char err[256];
	int rc;

	if (open_volume(o, &d->dev))
		return -EIO;
	rc = single_drl(d->dev);
	if (rc)
		return rc;
	rc = meta_store_open(d->dev, so, &d->st, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "cxfsd: cannot mount %s: %s\n", o->volume, err);
		if (rc == -META_ENOTFORMATTED)
			fprintf(stderr, "cxfsd: format it first: mkfs.cxfs %s\n", o->volume);
		return rc;
	}
	rc = vn_meta_fs_create(d->st, &d->mfs);
	if (!rc)
		rc = vn_table_create(vn_meta_shape, d->mfs, &d->vt);
	if (!rc)
		vn_meta_fs_set_table(d->mfs, d->vt);
	return rc;
}

int main(int argc, char **argv)
{
	struct cxfsd_opts o = { .size = CXFSD_DEFAULT_SIZE, .threads = 32, .wait_log = -1,
				.admin = CXFSD_ADMIN_SOCKET };
	struct cxfsd_admin *admin = NULL;
	struct cxfsd_metrics_http *mh = NULL;
	const char *metrics;
	struct dm_sock *dms = NULL;
	struct meta_store_opts so = { 0 };
	struct cxfsd d = { .entry_timeout = 3600, .attr_timeout = 3600,
			   .flk = { .mu = PTHREAD_MUTEX_INITIALIZER,
				    .cv = PTHREAD_COND_INITIALIZER },
			   .admin_mu = PTHREAD_MUTEX_INITIALIZER };
	struct vnode *root = NULL;
	int rc;

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc;
	if (o.daemon && detach_begin() != 0) {
		perror("cxfsd: --daemon");
		return 1;
	}
	d.writeback = o.writeback;
	d.mountpoint = o.mountpoint;
	/* Refuse a taken admin socket before touching the volume. */
	rc = start_admin(NULL, o.admin, NULL);
	if (!rc && o.dm_socket)
		rc = start_admin(NULL, o.dm_socket, NULL);
	if (rc)
		return 1;
	so.commit_ms = o.commit_ms;
	rc = o.config ? open_cluster(&d, &o, &so) : open_single(&d, &o, &so);
	if (!rc)
		rc = vn_get(d.vt, META_ROOT_INO, &root);
	if (rc) {
		fprintf(stderr, "cxfsd: cannot set up the filesystem: %s\n", strerror(-rc));
		goto out_close;
	}
	rc = start_admin(&d, o.admin, &admin);
	if (rc)
		goto out_put;
	pthread_mutex_lock(&d.admin_mu);
	d.admin = admin;
	pthread_mutex_unlock(&d.admin_mu);
	/* A revive its last mirror master left (it died or stopped) goes on here. */
	if (!d.cl || cl_is_server(d.cl))
		revive_leftover(&d, "a revive was left unfinished");
	if (o.dm_socket) {
		char err[256];

		rc = dm_sock_start(o.dm_socket, dm_exec, dm_gone, d.cl, &dms, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "cxfsd: %s\n", err);
			goto out_admin;
		}
	}
	metrics = o.metrics ? o.metrics : d.cl ? cl_metrics_addr(d.cl) : NULL;
	/* The filesystem matters more than its metrics: a taken port is only logged. */
	if (metrics && cxfsd_metrics_http_start(&d, metrics, &mh) == 0)
		fprintf(stderr, "cxfsd: metrics at http://%s/metrics\n", metrics);
	else if (metrics)
		fprintf(stderr, "cxfsd: cannot serve metrics on %s (is the port taken?); "
			"going on without them\n", metrics);
	rc = serve(&d, &o);
	cxfsd_metrics_http_stop(mh);
	dm_sock_stop(dms);
out_admin:
	pthread_mutex_lock(&d.admin_mu);
	d.admin = NULL;
	pthread_mutex_unlock(&d.admin_mu);
	cxfsd_admin_stop(admin);
out_put:
	vn_put(root, 1);
out_close:
	if (d.cl)
		cl_quiesce(d.cl);
	if (d.vt)
		vn_table_purge(d.vt);
	cl_stop(d.cl);
	if (d.vt)
		vn_table_destroy(d.vt);
	vn_meta_fs_destroy(d.mfs);
	if (d.st)
		meta_store_close(d.st);
	if (d.dev)
		xvm_close(d.dev);
	return rc ? 1 : 0;
}
