/*
 * admin.c - the daemon's admin socket: a root-only UNIX socket on which
 * `cxfsctl` asks for the node's state.  A libuv loop thread owns the socket
 * and every connection and never blocks: gathering the figures (which takes
 * the store's and the block layer's locks) runs on libuv's thread pool, and
 * the reply is written back from the loop.
 *
 * Protocol: the client sends one line, the request ("status",
 * "status json", "metrics", "backup PATH", "volume", "volume json",
 * "volume revive [MB/s]", "volume stop", "volume progress", "volume attach
 * MIRROR LUN", "volume detach MIRROR LEG" and "volume grow LUN" (in a
 * cluster on the metadata server
 * only: it is the mirror master and the config server), or in cluster mode
 * "tokens INO" and "relocate FS NODE");
 * the daemon answers with text (or one JSON object) and closes the
 * connection.  Lines longer than 256 bytes are refused.
 *
 * "volume revive" starts xvm_revive() on a thread of its own (the revive
 * thread, joined by the next revive or by cxfsd_admin_stop()), so the
 * mirror's legs are copied while the mount serves I/O; "volume progress"
 * answers "running MIRROR LEG DONE TOTAL" or "idle" and the last result;
 * "volume stop" asks the revive to stop after its current chunk.  A revive
 * given a rate (MB/s, as md's speed_limit_max) sleeps between chunks so
 * that it copies no faster, leaving the LUNs to the applications.
 *
 * Lock order: none here; the gatherers take the locks of the layers they
 * read, one at a time.  revive_lock is a leaf.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "xvm/xvm.h"
#include "cluster/cl.h"
#include "common/cx_intr.h"
#include "daemon/admin.h"
#include "daemon/cxfsd.h"
#include "daemon/metrics_node.h"
#include "meta/meta_store.h"
#include "relocate/kore.h"
#include "vnode/vn.h"
#include "vnode/vn_meta.h"

#define ADMIN_LINE_MAX 256
#define ADMIN_REPLY_MAX 65536   /* the status lists every token wait that fits */

struct cxfsd_admin {
	const struct cxfsd *d;        /* the mounted filesystem; constant */
	char path[108];               /* socket path; constant */
	time_t started;               /* daemon start; constant */
	uv_loop_t loop;               /* owned by the loop thread */
	uv_pipe_t listener;           /* loop thread */
	uv_async_t stop;              /* the only handle touched from other threads */
	uv_thread_t thread;

	/* The volume's revive (single machine, or the cluster's metadata server). */
	pthread_mutex_t revive_lock;  /* protects the fields up to revive_result */
	pthread_t revive_tid;         /* the revive thread, if revive_joinable */
	int revive_joinable;          /* a revive thread was started and not joined */
	int revive_running;           /* it has not finished */
	char revive_result[256];      /* what the last revive ended with */
	atomic_int revive_stop;       /* set by "volume stop" and by cxfsd_admin_stop() */
	_Atomic uint64_t revive_done, revive_total; /* progress of the mirror being copied */
	atomic_uint revive_mirror, revive_leg;      /* which */
	uint64_t revive_rate;         /* bytes a second at most (0: no limit); revive thread */
	int64_t revive_t0;            /* when the mirror being copied started (ns); revive thread */
	atomic_uint revive_mirror_t0; /* which mirror revive_t0 is for (~0u: none yet) */
};

/* One client connection, owned by the loop thread. */
struct admin_conn {
	uv_pipe_t pipe;
	struct cxfsd_admin *a;
	char line[ADMIN_LINE_MAX + 1];    /* the request as received so far */
	size_t len;
	int json;                         /* reply in JSON */
	uint64_t tokens_ino;              /* "tokens INO": that inode's tokens */
	char relocate[ADMIN_LINE_MAX + 1]; /* "relocate FS NODE": the request */
	char backup[ADMIN_LINE_MAX + 1];  /* "backup PATH": the path */
	char volume[ADMIN_LINE_MAX + 1];  /* "volume ...": the request */
	int metrics;                      /* "metrics": the Prometheus text */
	char *text;                       /* a reply of its own size (metrics), or NULL */
	int busy;                         /* gathering on the thread pool: do not close */
	uv_work_t work;                   /* gathering on the thread pool */
	uv_write_t wr;
	char reply[ADMIN_REPLY_MAX];      /* filled on the thread pool */
	size_t reply_len;
};

/* Append to the reply (truncating silently at the buffer's end). */
static void out(struct admin_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct admin_conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->reply_len >= sizeof(c->reply))
		return;
	va_start(ap, fmt);
	n = vsnprintf(c->reply + c->reply_len, sizeof(c->reply) - c->reply_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		c->reply_len += (size_t)n;
	if (c->reply_len > sizeof(c->reply))
		c->reply_len = sizeof(c->reply);
}

/* Single-machine mode: the store is here. */
static void gather_single(struct admin_conn *c)
{
	const struct cxfsd *d = c->a->d;
	const struct meta_sb *sb = meta_store_sb(d->st);
	struct meta_store_stats ms;
	struct vn_meta_stats vs;
	struct blk_stats bs;
	struct statvfs sv;
	char uuid[37], host[256] = "";
	long uptime = (long)(time(NULL) - c->a->started);

	meta_store_get_stats(d->st, &ms);
	vn_meta_get_stats(d->mfs, &vs);
	xvm_get_stats(d->dev, &bs);
	meta_statfs(d->st, &sv);
	meta_uuid_str(sb->uuid, uuid);
	gethostname(host, sizeof(host) - 1);
	if (c->json) {
		out(c, "{\"node\":\"%s\",\"mode\":\"single\",\"uptime_s\":%ld,"
		    "\"filesystems\":[{\"name\":\"%s\",\"uuid\":\"%s\",\"volume\":\"%s\","
		    "\"server\":\"%s\",\"role\":\"server\",\"mountpoint\":\"%s\","
		    "\"blocks\":%llu,\"blocks_free\":%llu,\"vnodes\":%zu,"
		    "\"store\":{\"ops\":%llu,\"commits\":%llu,\"commit_usec\":%llu},"
		    "\"data\":{\"reads\":%llu,\"writes\":%llu,\"bytes_read\":%llu,"
		    "\"bytes_written\":%llu,\"allocations\":%llu},"
		    "\"device\":{\"reads\":%llu,\"writes\":%llu,\"flushes\":%llu,"
		    "\"bytes_read\":%llu,\"bytes_written\":%llu,\"reconnects\":%llu}}],"
		    "\"messages\":{\"sent\":0,\"received\":0}}\n",
		    host, uptime, sb->name, uuid, xvm_uri(d->dev), host, d->mountpoint,
		    (unsigned long long)sv.f_blocks, (unsigned long long)sv.f_bfree,
		    vn_table_count(d->vt), (unsigned long long)ms.ops,
		    (unsigned long long)ms.commits, (unsigned long long)ms.commit_usec,
		    (unsigned long long)vs.reads, (unsigned long long)vs.writes,
		    (unsigned long long)vs.bytes_read, (unsigned long long)vs.bytes_written,
		    (unsigned long long)vs.allocs, (unsigned long long)bs.reads,
		    (unsigned long long)bs.writes, (unsigned long long)bs.flushes,
		    (unsigned long long)bs.bytes_read, (unsigned long long)bs.bytes_written,
		    (unsigned long long)bs.reconnects);
		return;
	}
	out(c, "node %s (single-machine mode), up %ld s\n", host, uptime);
	out(c, "filesystem %s  uuid %s\n", sb->name, uuid);
	out(c, "  volume      %s\n", xvm_uri(d->dev));
	out(c, "  mounted on  %s\n", d->mountpoint);
	out(c, "  served by   %s (this node)\n", host);
	out(c, "  space       %llu of %llu MiB free\n",
	    (unsigned long long)(sv.f_bfree * sv.f_bsize >> 20),
	    (unsigned long long)(sv.f_blocks * sv.f_bsize >> 20));
	out(c, "  vnodes      %zu cached\n", vn_table_count(d->vt));
	out(c, "  metadata    %llu operations in %llu commits (%.2f ms per commit)\n",
	    (unsigned long long)ms.ops, (unsigned long long)ms.commits,
	    ms.commits ? (double)ms.commit_usec / (double)ms.commits / 1000.0 : 0.0);
	out(c, "  data        %llu reads (%llu MiB), %llu writes (%llu MiB), %llu allocations\n",
	    (unsigned long long)vs.reads, (unsigned long long)(vs.bytes_read >> 20),
	    (unsigned long long)vs.writes, (unsigned long long)(vs.bytes_written >> 20),
	    (unsigned long long)vs.allocs);
	out(c, "  device      %llu reads, %llu writes, %llu flushes, %llu reconnects\n",
	    (unsigned long long)bs.reads, (unsigned long long)bs.writes,
	    (unsigned long long)bs.flushes, (unsigned long long)bs.reconnects);
}

/* A cluster node: its part of the cluster, and its device. */
static void gather_cluster(struct admin_conn *c)
{
	const struct cxfsd *d = c->a->d;
	char *cl = malloc(ADMIN_REPLY_MAX / 2);
	struct blk_stats bs;
	long uptime = (long)(time(NULL) - c->a->started);

	if (!cl || cl_status_json(d->cl, cl, ADMIN_REPLY_MAX / 2) < 0) {
		out(c, c->json ? "{\"error\":\"status too large\"}\n" : "error: status too large\n");
		free(cl);
		return;
	}
	xvm_get_stats(d->dev, &bs);
	if (c->json) {
		out(c, "{\"node\":\"%s\",\"mode\":\"cluster\",\"uptime_s\":%ld,"
		    "\"mountpoint\":\"%s\",\"volume\":\"%s\",\"vnodes\":%zu,"
		    "\"device\":{\"reads\":%llu,\"writes\":%llu,\"flushes\":%llu,"
		    "\"bytes_read\":%llu,\"bytes_written\":%llu,\"reconnects\":%llu},"
		    "\"cluster\":%s}\n", cl_node_name(d->cl), uptime, d->mountpoint,
		    xvm_uri(d->dev), vn_table_count(d->vt), (unsigned long long)bs.reads,
		    (unsigned long long)bs.writes, (unsigned long long)bs.flushes,
		    (unsigned long long)bs.bytes_read, (unsigned long long)bs.bytes_written,
		    (unsigned long long)bs.reconnects, cl);
		free(cl);
		return;
	}
	out(c, "node %s (cluster mode), up %ld s\n", cl_node_name(d->cl), uptime);
	out(c, "filesystem %s  %s\n", cl_fs_name(d->cl),
	    cl_is_server(d->cl) ? "served by this node (metadata server)" : "client");
	out(c, "  volume      %s\n", xvm_uri(d->dev));
	out(c, "  mounted on  %s\n", d->mountpoint);
	out(c, "  vnodes      %zu cached\n", vn_table_count(d->vt));
	out(c, "  device      %llu reads, %llu writes, %llu flushes, %llu reconnects\n",
	    (unsigned long long)bs.reads, (unsigned long long)bs.writes,
	    (unsigned long long)bs.flushes, (unsigned long long)bs.reconnects);
	out(c, "  cluster     %s\n", cl);
	free(cl);
}

/* "backup PATH": a copy of the store, made here if this node serves it. */
static void backup(struct admin_conn *c)
{
	const struct cxfsd *d = c->a->d;
	char err[512] = "";
	int rc;

	if (c->backup[0] != '/') {
		out(c, "error: backup wants an absolute path\n");
		return;
	}
	rc = d->cl ? cl_store_backup(d->cl, c->backup, err, sizeof(err))
		   : meta_store_backup(d->st, c->backup, err, sizeof(err));
	if (rc)
		out(c, "error: %s\n", err);
	else
		out(c, "ok: the metadata store of %s is copied to %s\n",
		    d->cl ? cl_fs_name(d->cl) : meta_store_sb(d->st)->name, c->backup);
}

static int revive_progress(void *arg, unsigned mirror, unsigned leg, uint64_t done, uint64_t total)
{
	const struct timespec tick = { 0, 100 * 1000 * 1000 };
	struct cxfsd_admin *a = arg;

	atomic_store(&a->revive_mirror, mirror);
	atomic_store(&a->revive_leg, leg);
	atomic_store(&a->revive_total, total);
	atomic_store(&a->revive_done, done);
	if (atomic_exchange(&a->revive_mirror_t0, mirror) != mirror)
		a->revive_t0 = cx_intr_now_ns();
	/* A rate: no further than done / rate seconds after the start, woken each 0.1 s for a stop. */
	while (a->revive_rate && !atomic_load(&a->revive_stop) &&
	       (double)(cx_intr_now_ns() - a->revive_t0) < 1e9 * (double)done / (double)a->revive_rate)
		nanosleep(&tick, NULL);
	return atomic_load(&a->revive_stop);
}

/* The revive thread: copy every out leg whose LUNs answer, while the mount runs. */
static void *revive_main(void *arg)
{
	struct cxfsd_admin *a = arg;
	char err[256] = "", res[256];
	int rc;

	rc = xvm_revive(a->d->dev, revive_progress, a, err, sizeof(err));
	if (rc >= 0)
		snprintf(res, sizeof(res), "ok: %d leg%s revived\n", rc, rc == 1 ? "" : "s");
	else
		snprintf(res, sizeof(res), "error: %s\n", err);
	fprintf(stderr, "cxfsd: volume revive: %s", res);
	pthread_mutex_lock(&a->revive_lock);
	snprintf(a->revive_result, sizeof(a->revive_result), "%s", res);
	a->revive_running = 0;
	pthread_mutex_unlock(&a->revive_lock);
	return NULL;
}

/* Join a finished revive thread, or (@stop) stop and join a running one. */
static void revive_reap(struct cxfsd_admin *a, int stop)
{
	pthread_t tid;

	pthread_mutex_lock(&a->revive_lock);
	if (!a->revive_joinable || (a->revive_running && !stop)) {
		pthread_mutex_unlock(&a->revive_lock);
		return;
	}
	tid = a->revive_tid;
	a->revive_joinable = 0;
	pthread_mutex_unlock(&a->revive_lock);
	atomic_store(&a->revive_stop, stop);
	pthread_join(tid, NULL);
}

int cxfsd_admin_revive(struct cxfsd_admin *a, const char *why, uint64_t rate)
{
	int rc = 0;

	revive_reap(a, 0);
	pthread_mutex_lock(&a->revive_lock);
	if (a->revive_running) {
		rc = -EBUSY;
	} else {
		atomic_store(&a->revive_stop, 0);
		atomic_store(&a->revive_total, 0);
		atomic_store(&a->revive_done, 0);
		a->revive_result[0] = 0;
		a->revive_rate = rate;
		atomic_store(&a->revive_mirror_t0, ~0u);
		rc = -pthread_create(&a->revive_tid, NULL, revive_main, a);
		if (rc == 0) {
			a->revive_joinable = a->revive_running = 1;
			fprintf(stderr, "cxfsd: volume revive started (%s)\n", why);
		}
	}
	pthread_mutex_unlock(&a->revive_lock);
	return rc;
}

/*
 * "volume attach MIRROR URI", "volume detach MIRROR LEG", "volume grow URI"
 * (@req without "volume "): the
 * layout change while the volume is in use (xvm.h, online changes; in a
 * cluster on every node through the config server, cl_volume_change).
 */
static void volume_change(struct admin_conn *c, const char *req)
{
	const struct cxfsd *d = c->a->d;
	char uri[ADMIN_LINE_MAX], err[512] = "";
	unsigned mirror = 0, leg = 0;
	uint64_t gen;
	int attach = req[0] == 'a', rc;

	if (req[0] == 'd') {
		if (sscanf(req, "detach %u %u", &mirror, &leg) != 2) {
			out(c, "error: usage: volume detach MIRROR LEG\n");
			return;
		}
		if (d->cl) {
			rc = cl_volume_detach(d->cl, mirror, leg, err, sizeof(err));
		} else {
			rc = xvm_detach_begin(d->dev, mirror, leg, err, sizeof(err));
			if (!rc)
				rc = xvm_detach_commit(d->dev, mirror, leg, &gen, err, sizeof(err));
			if (!rc)
				xvm_detach_finish(d->dev, mirror, leg);
		}
		if (rc)
			out(c, "error: %s\n", err[0] ? err : strerror(-rc));
		else
			out(c, "ok: leg %u of mirror %u detached; take its LUNs out of the volume's "
			    "LUNs (%s) before the next start\n", leg, mirror,
			    d->cl ? "the volume lines of cluster.conf on every node" : "--volume or fstab");
		return;
	}
	if (attach ? sscanf(req, "attach %u %255s", &mirror, uri) != 2
		   : sscanf(req, "grow %255s", uri) != 1) {
		out(c, "error: usage: volume attach MIRROR LUN | volume grow LUN\n");
		return;
	}
	if (d->cl)
		rc = cl_volume_change(d->cl, attach ? (int)mirror : -1, uri, err, sizeof(err));
	else if (attach)
		rc = xvm_attach(d->dev, mirror, uri, err, sizeof(err));
	else
		rc = xvm_grow(d->dev, uri, 1, err, sizeof(err));
	if (rc) {
		out(c, "error: %s\n", err[0] ? err : strerror(-rc));
		return;
	}
	fprintf(stderr, "cxfsd: volume %s %s: done\n", attach ? "attach" : "grow", uri);
	out(c, "ok: %s %s%s; add it to the volume's LUNs (%s) before the next start\n",
	    attach ? "attached as a reviving leg:" : "appended:", uri,
	    attach ? " (cxfsctl volume revive copies the mirror onto it)" : "",
	    d->cl ? "the volume line of cluster.conf on every node" : "--volume or fstab");
}

/* "volume", "volume json", "volume revive [MB/s]", "volume stop", "volume progress". */
static void volume_request(struct admin_conn *c)
{
	struct cxfsd_admin *a = c->a;
	const char *req = c->volume + 6;
	char *text;
	int rc;

	if (!strcmp(req, "") || !strcmp(req, " json")) {
		text = xvm_show(a->d->dev, req[0] != 0);
		out(c, "%s", text ? text : "error: out of memory\n");
		free(text);
		return;
	}
	if (a->d->cl && !cl_is_server(a->d->cl)) {
		out(c, "error: in a cluster the volume's mirrors and layout are handled by the "
		    "metadata server (mirror master and config server): run it there\n");
		return;
	}
	if (!strncmp(req, " attach ", 8) || !strncmp(req, " grow ", 6) || !strncmp(req, " detach ", 8)) {
		volume_change(c, req + 1);
	} else if (!strcmp(req, " revive") || !strncmp(req, " revive ", 8)) {
		char *end;
		unsigned long mbps = req[7] ? strtoul(req + 8, &end, 10) : 0;

		if (req[7] && (*end || !mbps || mbps > 1000000)) {
			out(c, "error: the revive rate is a whole number of MB/s, 1 to 1000000\n");
			return;
		}
		rc = cxfsd_admin_revive(a, "cxfsctl", (uint64_t)mbps * 1000000u);
		out(c, rc == 0 ? "ok: revive started\n" : rc == -EBUSY ? "error: a revive is running\n"
			 : "error: cannot start the revive thread\n");
	} else if (!strcmp(req, " stop")) {
		pthread_mutex_lock(&a->revive_lock);
		if (a->revive_running) {
			atomic_store(&a->revive_stop, 1);
			out(c, "ok: the revive stops after its current chunk\n");
		} else {
			out(c, "error: no revive is running\n");
		}
		pthread_mutex_unlock(&a->revive_lock);
	} else if (!strcmp(req, " progress")) {
		pthread_mutex_lock(&a->revive_lock);
		if (a->revive_running)
			out(c, "running %u %u %llu %llu\n", atomic_load(&a->revive_mirror),
			    atomic_load(&a->revive_leg),
			    (unsigned long long)atomic_load(&a->revive_done),
			    (unsigned long long)atomic_load(&a->revive_total));
		else
			out(c, "idle %s", a->revive_result[0] ? a->revive_result : "no revive ran\n");
		pthread_mutex_unlock(&a->revive_lock);
	} else {
		out(c, "error: unknown volume request "
		    "(volume [json|revive|stop|progress|attach|detach|grow])\n");
	}
}

/* Thread pool: read every counter and format the reply. */
static void gather(uv_work_t *w)
{
	struct admin_conn *c = w->data;

	if (c->metrics) {
		c->text = cxfsd_metrics_render(c->a->d, &c->reply_len);
		if (!c->text)
			out(c, "error: out of memory\n");
	} else if (c->backup[0]) {
		backup(c);
	} else if (c->volume[0]) {
		volume_request(c);
	} else if (c->relocate[0]) {
		char fs[ADMIN_LINE_MAX], node[ADMIN_LINE_MAX], err[512];
		double ms = 0;
		int rc;

		if (sscanf(c->relocate, "relocate %255s %255s", fs, node) != 2) {
			out(c, "error: usage: relocate FS NODE\n");
		} else if (strcmp(fs, cl_fs_name(c->a->d->cl)) != 0) {
			out(c, "error: this node has no filesystem \"%s\" (it has \"%s\")\n", fs,
			    cl_fs_name(c->a->d->cl));
		} else if ((rc = kore_relocate(cl_kore(c->a->d->cl), node, &ms, err, sizeof(err))) != 0) {
			out(c, "error: %s\n", err);
		} else if (ms > 0) {
			out(c, "ok: %s is served by %s (%.1f ms)\n", fs, node, ms);
		} else {
			out(c, "ok: %s is served by %s\n", fs, node);
		}
	} else if (c->tokens_ino) {
		int n = cl_tokens_json(c->a->d->cl, c->tokens_ino, c->reply, sizeof(c->reply) - 1);

		c->reply_len = n > 0 ? (size_t)n : 0;
		out(c, n > 0 ? "\n" : "{\"error\":\"too large\"}\n");
	} else if (c->a->d->cl) {
		gather_cluster(c);
	} else {
		gather_single(c);
	}
}

static void conn_closed(uv_handle_t *h)
{
	struct admin_conn *c = h->data;

	free(c->text);
	free(c);
}

static void conn_close(struct admin_conn *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->pipe))
		uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

static void written(uv_write_t *wr, int status)
{
	conn_close(wr->data);
}

static void reply(struct admin_conn *c)
{
	uv_buf_t b = uv_buf_init(c->text ? c->text : c->reply, (unsigned)c->reply_len);

	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, written))
		conn_close(c);
}

static void gathered(uv_work_t *w, int status)
{
	struct admin_conn *c = w->data;

	c->busy = 0;
	if (status)
		c->reply_len = (size_t)snprintf(c->reply, sizeof(c->reply), "error: %s\n",
						uv_strerror(status));
	reply(c);
}

/* A whole request line arrived: answer it. */
static void handle(struct admin_conn *c)
{
	unsigned long long ino = 0;
	char end;

	if (c->a->d->cl && sscanf(c->line, "tokens %llu%c", &ino, &end) == 1 && ino)
		c->tokens_ino = ino;
	if (c->a->d->cl && strncmp(c->line, "relocate ", 9) == 0)
		snprintf(c->relocate, sizeof(c->relocate), "%s", c->line);
	if (strncmp(c->line, "backup ", 7) == 0)
		snprintf(c->backup, sizeof(c->backup), "%s", c->line + 7);
	if (strcmp(c->line, "volume") == 0 || strncmp(c->line, "volume ", 7) == 0)
		snprintf(c->volume, sizeof(c->volume), "%s", c->line);
	c->metrics = strcmp(c->line, "metrics") == 0;
	if (c->a->d->cl && strcmp(c->line, "leave") == 0) {
		/* An orderly stop, as SIGTERM: withdraw from the membership, unmount, exit. */
		c->reply_len = (size_t)snprintf(c->reply, sizeof(c->reply),
						"leaving: withdrawing from the membership and "
						"unmounting %s\n", c->a->d->mountpoint);
		uv_read_stop((uv_stream_t *)&c->pipe);
		reply(c);
		kill(getpid(), SIGTERM);
		return;
	}
	if (c->tokens_ino || c->relocate[0] || c->backup[0] || c->volume[0] || c->metrics ||
	    strcmp(c->line, "status") == 0 ||
	    strcmp(c->line, "status json") == 0) {
		c->json = strcmp(c->line, "status json") == 0;
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->work.data = c;
		c->busy = 1;
		if (uv_queue_work(&c->a->loop, &c->work, gather, gathered) == 0)
			return;
		c->busy = 0;
	}
	c->reply_len = (size_t)snprintf(c->reply, sizeof(c->reply),
					"error: unknown request \"%.64s\" (try \"status\", "
					"\"metrics\" or \"tokens INO\")\n",
					c->line);
	uv_read_stop((uv_stream_t *)&c->pipe);
	reply(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct admin_conn *c = h->data;

	buf->base = c->line + c->len;
	buf->len = ADMIN_LINE_MAX - c->len;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct admin_conn *c = s->data;
	char *nl;

	if (n < 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)n;
	c->line[c->len] = '\0';
	nl = memchr(c->line, '\n', c->len);
	if (nl) {
		*nl = '\0';
		handle(c);
	} else if (c->len >= ADMIN_LINE_MAX) {
		uv_read_stop(s);
		c->reply_len = (size_t)snprintf(c->reply, sizeof(c->reply),
						"error: request longer than %d bytes\n", ADMIN_LINE_MAX);
		reply(c);
	}
}

static void on_connect(uv_stream_t *server, int status)
{
	struct cxfsd_admin *a = server->data;
	struct admin_conn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->a = a;
	uv_pipe_init(&a->loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) ||
	    uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb))
		conn_close(c);
}

/* At stop: close the listener, the stop handle and idle connections; a
 * connection whose reply is being gathered closes itself once written. */
static void close_walk(uv_handle_t *h, void *arg)
{
	struct admin_conn *c = h->data;

	if (uv_is_closing(h))
		return;
	if (h->data == arg)
		uv_close(h, NULL);
	else if (!c->busy)
		uv_close(h, conn_closed);
}

static void on_stop(uv_async_t *h)
{
	struct cxfsd_admin *a = h->data;

	uv_walk(&a->loop, close_walk, a);
}

static void loop_thread(void *arg)
{
	struct cxfsd_admin *a = arg;

	uv_run(&a->loop, UV_RUN_DEFAULT);
}

/*
 * Is @path free for our socket?  A socket that answers belongs to a live
 * daemon (-EADDRINUSE); one that does not is left by a daemon that died and
 * is removed.
 */
int cxfsd_admin_check(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rc == 0)
		return -EADDRINUSE;
	if (unlink(path) && errno != ENOENT)
		return -errno;
	return 0;
}

int cxfsd_admin_start(const struct cxfsd *d, const char *path, struct cxfsd_admin **out)
{
	struct cxfsd_admin *a = calloc(1, sizeof(*a));
	int rc;

	if (!a)
		return -ENOMEM;
	if (strlen(path) >= sizeof(a->path)) {
		free(a);
		return -ENAMETOOLONG;
	}
	snprintf(a->path, sizeof(a->path), "%s", path);
	a->d = d;
	pthread_mutex_init(&a->revive_lock, NULL);
	a->started = time(NULL);
	rc = uv_loop_init(&a->loop);
	if (rc)
		goto out_free;
	uv_pipe_init(&a->loop, &a->listener, 0);
	a->listener.data = a;
	uv_async_init(&a->loop, &a->stop, on_stop);
	a->stop.data = a;
	rc = cxfsd_admin_check(a->path);
	if (!rc)
		rc = uv_pipe_bind(&a->listener, a->path);
	if (!rc)
		rc = chmod(a->path, 0600) ? -errno : 0;   /* root only */
	if (!rc)
		rc = uv_listen((uv_stream_t *)&a->listener, 8, on_connect);
	if (!rc)
		rc = uv_thread_create(&a->thread, loop_thread, a);
	if (rc)
		goto out_loop;
	*out = a;
	return 0;
out_loop:
	uv_walk(&a->loop, close_walk, a);
	uv_run(&a->loop, UV_RUN_DEFAULT);
	uv_loop_close(&a->loop);
	if (rc != -EADDRINUSE)
		unlink(a->path);
out_free:
	pthread_mutex_destroy(&a->revive_lock);
	free(a);
	return rc;
}

void cxfsd_admin_stop(struct cxfsd_admin *a)
{
	if (!a)
		return;
	uv_async_send(&a->stop);
	uv_thread_join(&a->thread);
	revive_reap(a, 1);
	uv_loop_close(&a->loop);
	unlink(a->path);
	pthread_mutex_destroy(&a->revive_lock);
	free(a);
}
