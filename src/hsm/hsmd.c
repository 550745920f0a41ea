/*
 * hsmd.c - cxfs-hsmd: the HSM daemon of cxfs, on libcxfsdm.
 *
 * One runs beside each cxfsd that may serve the filesystem; only the one on
 * the metadata server's node works, the others wait (and take over when
 * the metadata server moves to their node).  The working one holds the
 * DMAPI session "cxfs-hsmd" (assumed from a daemon that died, else
 * created), receives READ, WRITE, TRUNCATE, DESTROY and USER events, and:
 *
 *   - migrates files to the tier (hsm_tier.c): regions raising WRITE and
 *     TRUNCATE first, then the copy, then the "hsm" attribute: dual-state;
 *   - releases dual-state files: regions raising READ too, then a punch of
 *     every block (the size stays): offline;
 *   - recalls offline and partial files on a READ (the chunks the waiting
 *     readers asked for first, each reader answered as soon as its range is
 *     back, then the rest of the file in order), with cxdm_write_invis;
 *   - makes a file resident on a WRITE or TRUNCATE (recalling it first if
 *     it is offline; a truncate to 0 needs nothing back): the tier copy is
 *     stale and removed;
 *   - removes the copy of a destroyed file;
 *   - answers cxfs-hsm's requests (USER events: migrate, release, stage);
 *   - keeps the volume under a high-water mark: above it, releases the
 *     least recently used files until the low-water mark (the policy).
 *
 * Sections:
 *   - state: configuration, jobs and their items, counters
 *   - jobs: one per file with work; items queued on it, workers run it
 *   - file operations: make resident, migrate, release
 *   - recall: chunks, answers, regions
 *   - one item: what an event or request needs
 *   - workers
 *   - status: the counters as JSON, on the root inode and in the tier
 *   - policy
 *   - serving: session, reconcile, the event loop
 *   - main: options, idle loop
 *
 * Threads: the main thread (connection, session, events: it owns the
 * session's cxdm_get_events); HSMD_WORKERS workers (--workers), each with
 * a connection of its own, running jobs; short-lived chunk threads that a
 * recalling worker starts for the chunks of a batch (each on a connection
 * the worker keeps for them); the status thread; the policy thread.  A
 * cxdm_t is used by one thread at a time.
 *
 * Mutex rules: H.mutex guards the job table, every job's items and
 * progress, the run queue, the counters and the flags; it is a leaf
 * (never held across a DMAPI call, tier I/O or a sleep).  Only the worker
 * that runs a job removes its items, so a worker may look at its job's
 * items after dropping the mutex; the main thread only appends.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cx_util.h"
#include "cxfsdm.h"
#include "hsm/hsm_log.h"
#include "hsm/hsm_state.h"
#include "hsm/hsm_tier.h"

#define HSMD_WORKERS 8                 /* default --workers */
#define HSMD_EVENT_BATCH 16            /* events per cxdm_get_events */
#define HSMD_WAIT_MS 500               /* longest wait for events, and idle poll */
#define HSMD_INFO_MS 1000              /* how often a serving daemon checks it still is the MDS */
#define HSMD_RECALL_BATCH (4u << 20)   /* bytes recalled at once by the sweep */
#define HSMD_IO_PAR 4                  /* chunks of a batch moved at once, each on a connection */
#define HSMD_REGIONS_EVERY (64u << 20) /* sweep bytes between region updates */
#define HSMD_COPY_UNIT (4u << 20)      /* bytes per invisible read of a migration */
#define HSMD_BULKSTAT 256              /* files per cxdm_bulkstat of the policy */
#define HSMD_STATUS_MIN_MS 200         /* shortest time between two status updates */

#define EV_READ CXDM_EV_BIT(CXDM_EV_READ)
#define EV_WT (CXDM_EV_BIT(CXDM_EV_WRITE) | CXDM_EV_BIT(CXDM_EV_TRUNCATE))
#define HSMD_DISPOSITION (CXDM_EV_DATA | CXDM_EV_BIT(CXDM_EV_DESTROY) | CXDM_EV_BIT(CXDM_EV_USER))

/* Internal result: the daemon stops serving; nothing may be answered. */
#define HSMD_ESTOP 4201

/* ---- state -------------------------------------------------------------------- */

/* A piece of work on a file: an event to answer, or a request of the policy. */
struct item {
	struct item *next;        /* in job->items (H.mutex) */
	bool request;             /* the policy's: no token, completed through H.done */
	struct cxdm_event ev;     /* for a request: type USER, h and code */
	int result;               /* request: the answer (H.mutex) */
	bool finished;            /* request: answered (H.mutex) */
};

/* The work on one file. */
struct job {
	struct job *next;         /* in H.jobs (H.mutex) */
	struct job *qnext;        /* in the run queue (H.mutex) */
	uint64_t ino;             /* the file */
	struct item *items;       /* pending, oldest first (H.mutex; removed by the runner only) */
	struct item **tail;       /* where the next item goes (H.mutex) */
	const char *op;           /* progress: "recall", "migrate", or NULL (H.mutex) */
	uint64_t done, total;     /* progress bytes (H.mutex) */
};

struct hsmd_counters {
	uint64_t recalls;          /* recall jobs run (a file brought back) */
	uint64_t recall_bytes;     /* bytes written back */
	uint64_t migrations, migrate_bytes;
	uint64_t releases, release_bytes;
	uint64_t destroys;         /* DESTROY events */
	uint64_t tier_removed;     /* copies removed (destroyed, stale, reconciled) */
	uint64_t events[CXDM_EV_USER + 1];
	uint64_t answered;         /* synchronous events answered */
	uint64_t errors;           /* failed operations */
	uint64_t policy_runs;      /* times the high-water mark was passed */
	uint64_t policy_released;  /* files released by the policy */
};

static struct hsmd {
	/* Options, set before any thread starts. */
	const char *socket;
	const char *tier_dir;
	const char *pidfile;
	uint64_t rate;
	unsigned high, low;
	bool policy;
	unsigned interval_ms;
	unsigned nworkers;

	struct tier *tier;         /* while serving (main thread sets it before threads start) */

	pthread_mutex_t mutex;
	pthread_cond_t work;       /* a job was queued, or stopping */
	pthread_cond_t done;       /* a request was answered */
	pthread_cond_t changed;    /* counters changed, or stopping (status thread) */
	pthread_cond_t policy_cv;  /* stopping (policy thread) */
	struct job *jobs;          /* every job (mutex) */
	struct job *runq;          /* jobs waiting for a worker (mutex) */
	struct job **runq_tail;
	bool stopping;             /* leave serving (mutex) */
	bool lost;                 /* a connection broke: the main thread stops serving (mutex) */
	uint64_t sid;              /* the session while serving */
	char node[64], fs[64];     /* from cxdm_info */
	time_t started;
	struct hsmd_counters c;    /* (mutex) */
	uint64_t status_seq;       /* bumped on every counter change (mutex) */
} H = {
	.mutex = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
	.changed = PTHREAD_COND_INITIALIZER,
	.policy_cv = PTHREAD_COND_INITIALIZER,
	.runq_tail = &H.runq,
};

static volatile sig_atomic_t hsmd_quit, hsmd_reopen;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !hsmd_quit)
		;
}

/* Start @fn on a thread with the termination signals blocked (main handles them). */
static int spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -rc;
}

/* Count something: @field += @n under the mutex, and wake the status thread. */
#define COUNT(field, n)                                   \
	do {                                              \
		pthread_mutex_lock(&H.mutex);             \
		H.c.field += (n);                         \
		H.status_seq++;                           \
		pthread_cond_signal(&H.changed);          \
		pthread_mutex_unlock(&H.mutex);           \
	} while (0)

/* Is the daemon leaving serving?  Takes the mutex. */
static bool stopping(void)
{
	bool s;

	pthread_mutex_lock(&H.mutex);
	s = H.stopping;
	pthread_mutex_unlock(&H.mutex);
	return s;
}

/* A connection to cxfsd broke (@rc -ENOTCONN): the main thread starts over. */
static int connection_lost(int rc)
{
	if (rc != -ENOTCONN)
		return rc;
	pthread_mutex_lock(&H.mutex);
	if (!H.lost)
		hlog("lost the connection to cxfsd at %s", H.socket);
	H.lost = true;
	pthread_mutex_unlock(&H.mutex);
	return -HSMD_ESTOP;
}

/* ---- jobs ----------------------------------------------------------------------- */

/* The job of @ino, or NULL.  H.mutex. */
static struct job *job_find(uint64_t ino)
{
	struct job *j;

	for (j = H.jobs; j; j = j->next)
		if (j->ino == ino)
			return j;
	return NULL;
}

/*
 * Queue @it on the job of its file, making the job (and queueing it for a
 * worker) if there is none.  H.mutex.  -ENOMEM.
 */
static int job_add_item(struct item *it)
{
	struct job *j = job_find(it->ev.h.ino);

	if (!j) {
		j = calloc(1, sizeof(*j));
		if (!j)
			return -ENOMEM;
		j->ino = it->ev.h.ino;
		j->tail = &j->items;
		j->next = H.jobs;
		H.jobs = j;
		*H.runq_tail = j;
		H.runq_tail = &j->qnext;
		pthread_cond_signal(&H.work);
	}
	*j->tail = it;
	j->tail = &it->next;
	return 0;
}

/* Take @it off @j's items.  H.mutex. */
static void job_unlink_item(struct job *j, struct item *it)
{
	struct item **pp;

	for (pp = &j->items; *pp; pp = &(*pp)->next) {
		if (*pp == it) {
			*pp = it->next;
			if (!*pp)
				j->tail = pp;
			it->next = NULL;
			return;
		}
	}
}

/* Take @j out of the job table and free it (its items must be gone).  H.mutex. */
static void job_free(struct job *j)
{
	struct job **pp;

	for (pp = &H.jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	free(j);
}

/* Does @j have a WRITE or TRUNCATE waiting (a migration must give up)?  Takes the mutex. */
static bool job_has_change(struct job *j)
{
	struct item *it;
	bool yes = false;

	pthread_mutex_lock(&H.mutex);
	for (it = j->items; it; it = it->next)
		if (!it->request && (it->ev.type == CXDM_EV_WRITE || it->ev.type == CXDM_EV_TRUNCATE))
			yes = true;
	pthread_mutex_unlock(&H.mutex);
	return yes;
}

static void job_progress(struct job *j, const char *op, uint64_t done, uint64_t total)
{
	pthread_mutex_lock(&H.mutex);
	j->op = op;
	j->done = done;
	j->total = total;
	H.status_seq++;
	pthread_cond_signal(&H.changed);
	pthread_mutex_unlock(&H.mutex);
}

/* A worker: its connections and buffer. */
struct worker {
	pthread_t thread;
	unsigned id;
	cxdm_t *dm;
	cxdm_t *io[HSMD_IO_PAR - 1];  /* more connections, for the chunks of a batch (opened when needed) */
	char *buf;                 /* HSMD_RECALL_BATCH bytes (>= HSMD_COPY_UNIT) */
};

/*
 * Answer @it of @j with @rc and forget it: an event through the session
 * (counted), a request by waking its waiter.  -HSMD_ESTOP if the
 * connection broke (the item stays answered by nobody; the session keeps
 * the event for the next owner).
 */
static int answer(struct worker *w, struct job *j, struct item *it, int rc)
{
	int r;

	pthread_mutex_lock(&H.mutex);
	job_unlink_item(j, it);
	if (it->request) {
		it->result = rc;
		it->finished = true;
		pthread_cond_broadcast(&H.done);
		pthread_mutex_unlock(&H.mutex);
		return 0;
	}
	pthread_mutex_unlock(&H.mutex);
	r = cxdm_respond(w->dm, H.sid, it->ev.token, rc);
	if (r < 0) {
		hlog("cannot answer the %s event of inode %" PRIu64 " (token %" PRIu64 "): %s",
		     cxdm_event_name(it->ev.type), it->ev.h.ino, it->ev.token, strerror(-r));
		free(it);
		return connection_lost(r);
	}
	hlog_debug("answered %s of inode %" PRIu64 " [%" PRIu64 "+%" PRIu64 "] with %d",
		   cxdm_event_name(it->ev.type), it->ev.h.ino, it->ev.off, it->ev.len, rc);
	free(it);
	COUNT(answered, 1);
	return 0;
}

/* ---- file operations --------------------------------------------------------------- */

static const struct cxdm_region no_region;

/*
 * Make @f resident: no regions, no "hsm" attribute, no DESTROY event; then
 * drop its tier copy (stale from now on).  The order keeps every crash
 * safe: the copy goes last.
 */
static int make_resident(struct worker *w, struct hstate_file *f)
{
	const struct cxdm_handle *h = &f->st.h;
	uint32_t events = 0;
	int rc;

	rc = cxdm_set_regions(w->dm, h, &no_region, 0);
	if (rc < 0)
		return rc;
	if (!f->migrated)
		return 0;
	rc = cxdm_remove_dmattr(w->dm, h, HSM_ATTR);
	if (rc < 0 && rc != -ENODATA)
		return rc;
	if (cxdm_get_eventlist(w->dm, h, &events) == 0 && (events & CXDM_EV_BIT(CXDM_EV_DESTROY)))
		cxdm_set_eventlist(w->dm, h, events & ~CXDM_EV_BIT(CXDM_EV_DESTROY));
	if (tier_remove(H.tier, &f->attr.obj) == 0)
		COUNT(tier_removed, 1);
	f->migrated = false;
	f->nregions = 0;
	f->state = HSTATE_RESIDENT;
	hlog_debug("inode %" PRIu64 " is resident again; its tier copy is removed", h->ino);
	return 0;
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/*
 * Migrate the resident file @f: regions raising WRITE and TRUNCATE (so a
 * change during the copy raises an event), the copy, its attribute and the
 * DESTROY event: dual-state.  -EBUSY if the file changed meanwhile (the
 * copy is dropped).
 */
static int migrate(struct worker *w, struct job *j, struct hstate_file *f)
{
	const struct cxdm_region wt = { .off = 0, .len = 0, .events = EV_WT };
	struct cxdm_handle h = f->st.h;
	struct tier_writer *tw = NULL;
	struct hstate_attr a = { .obj = h, .chunk = TIER_CHUNK };
	struct cxdm_stat st0, st1;
	uint32_t events = 0;
	uint64_t off = 0;
	double t0 = now_s();
	ssize_t n;
	size_t len;
	int rc;

	if ((f->st.mode & S_IFMT) && !S_ISREG(f->st.mode))
		return -EINVAL;
	if (job_has_change(j))
		return -EBUSY;
	rc = cxdm_set_regions(w->dm, &h, &wt, 1);
	if (rc < 0)
		return rc;
	rc = cxdm_stat(w->dm, &h, &st0);
	if (rc < 0)
		goto out_regions;
	rc = tier_write_begin(H.tier, &h, a.chunk, &tw);
	if (rc < 0) {
		hlog("migrate inode %" PRIu64 ": cannot write to the tier %s: %s", h.ino,
		     tier_path(H.tier), strerror(-rc));
		goto out_regions;
	}
	job_progress(j, "migrate", 0, st0.size);
	while (off < st0.size) {
		len = st0.size - off < HSMD_COPY_UNIT ? (size_t)(st0.size - off) : HSMD_COPY_UNIT;
		n = cxdm_read_invis(w->dm, &h, off, w->buf, len);
		if (n < 0) {
			rc = (int)n;
			goto out_abort;
		}
		if ((size_t)n != len) {
			rc = -EBUSY;   /* it shrank: a truncate slipped in */
			goto out_abort;
		}
		rc = tier_write(tw, w->buf, len);
		if (rc < 0) {
			hlog("migrate inode %" PRIu64 ": writing to the tier %s: %s", h.ino,
			     tier_path(H.tier), strerror(-rc));
			goto out_abort;
		}
		off += len;
		job_progress(j, "migrate", off, st0.size);
		if (job_has_change(j)) {
			rc = -EBUSY;
			goto out_abort;
		}
		if (stopping()) {
			rc = -HSMD_ESTOP;
			goto out_abort;
		}
	}
	rc = cxdm_stat(w->dm, &h, &st1);
	if (rc < 0)
		goto out_abort;
	if (st1.size != st0.size || !same_time(&st1.mtime, &st0.mtime)) {
		rc = -EBUSY;
		goto out_abort;
	}
	rc = tier_write_commit(tw);
	tw = NULL;
	if (rc < 0) {
		hlog("migrate inode %" PRIu64 ": cannot commit the copy in %s: %s", h.ino,
		     tier_path(H.tier), strerror(-rc));
		goto out_regions;
	}
	a.size = st0.size;
	a.mtime = st0.mtime;
	rc = hstate_set_attr(w->dm, &h, &a);
	if (rc < 0)
		goto out_remove;
	rc = cxdm_get_eventlist(w->dm, &h, &events);
	if (rc == 0)
		rc = cxdm_set_eventlist(w->dm, &h, events | CXDM_EV_BIT(CXDM_EV_DESTROY));
	if (rc < 0) {
		cxdm_remove_dmattr(w->dm, &h, HSM_ATTR);
		goto out_remove;
	}
	f->migrated = true;
	f->attr = a;
	f->st = st0;
	f->regions[0] = wt;
	f->nregions = 1;
	f->state = HSTATE_DUAL;
	pthread_mutex_lock(&H.mutex);
	H.c.migrations++;
	H.c.migrate_bytes += st0.size;
	H.status_seq++;
	pthread_cond_signal(&H.changed);
	pthread_mutex_unlock(&H.mutex);
	hlog("migrated inode %" PRIu64 " (%" PRIu64 " bytes) in %.2f s", h.ino, st0.size,
	     now_s() - t0);
	job_progress(j, NULL, 0, 0);
	return 0;

out_remove:
	tier_remove(H.tier, &h);
	goto out_regions;
out_abort:
	tier_write_abort(tw);
out_regions:
	job_progress(j, NULL, 0, 0);
	if (rc != -ENOTCONN)
		cxdm_set_regions(w->dm, &h, &no_region, 0);
	if (rc == -EBUSY)
		hlog("migrate inode %" PRIu64 ": the file changed during the copy; copy dropped",
		     h.ino);
	return rc;
}

/*
 * Release the dual-state (or partial) file @f: check that its copy is
 * whole and current, set regions raising READ everywhere, punch every
 * block: offline.
 */
static int release(struct worker *w, struct job *j, struct hstate_file *f)
{
	const struct cxdm_region all = { .off = 0, .len = 0, .events = EV_READ | EV_WT };
	struct tier_reader *r;
	uint64_t freed = f->st.blocks * 512;
	int rc;

	if (f->attr.size != f->st.size || !same_time(&f->attr.mtime, &f->st.mtime)) {
		hlog("release inode %" PRIu64 ": the file differs from its copy (size %" PRIu64
		     " vs %" PRIu64 "); not released", f->st.h.ino, f->st.size, f->attr.size);
		return -ESTALE;
	}
	rc = tier_read_open(H.tier, &f->attr.obj, &r);
	if (rc < 0) {
		hlog("release inode %" PRIu64 ": its tier copy in %s is missing or damaged (%s); "
		     "not released", f->st.h.ino, tier_path(H.tier), strerror(-rc));
		return -EIO;
	}
	if (tier_read_size(r) != f->attr.size)
		rc = -EIO;
	tier_read_close(r);
	if (rc < 0)
		return rc;
	if (job_has_change(j))
		return -EBUSY;
	rc = cxdm_set_regions(w->dm, &f->st.h, &all, 1);
	if (rc < 0)
		return rc;
	rc = cxdm_punch_hole(w->dm, &f->st.h, 0, 0);
	if (rc < 0)
		return rc;
	f->regions[0] = all;
	f->nregions = 1;
	f->state = HSTATE_OFFLINE;
	pthread_mutex_lock(&H.mutex);
	H.c.releases++;
	H.c.release_bytes += freed;
	H.status_seq++;
	pthread_cond_signal(&H.changed);
	pthread_mutex_unlock(&H.mutex);
	hlog_debug("released inode %" PRIu64 " (%" PRIu64 " bytes freed)", f->st.h.ino, freed);
	return 0;
}

/* ---- recall ----------------------------------------------------------------------- */

/* A recall in progress. */
struct recall {
	struct worker *w;
	struct job *j;
	struct hstate_file *f;
	struct tier_reader *r;
	uint64_t size;                  /* bytes of the copy */
	uint32_t chunk;                 /* bytes per chunk */
	size_t nchunks;
	bool *resident;                 /* per chunk: back on the volume */
	struct cxdm_region applied[CXDM_MAX_REGIONS];  /* the regions the file has now */
	size_t napplied;
	size_t sweep;                   /* the sweep's next chunk */
	uint64_t bytes;                 /* recalled */
	unsigned answered;              /* READ events answered */
};

/* The chunks [*first, *last] of a READ event's range; false if it lies past the copy. */
static bool recall_range(const struct recall *rc, const struct cxdm_event *ev, size_t *first,
			 size_t *last)
{
	uint64_t end;

	if (ev->off >= rc->size)
		return false;
	end = ev->len == 0 || ev->off + ev->len < ev->off || ev->off + ev->len > rc->size
		      ? rc->size
		      : ev->off + ev->len;
	*first = (size_t)(ev->off / rc->chunk);
	*last = (size_t)((end - 1) / rc->chunk);
	return true;
}

static bool recall_all_back(const struct recall *rc, size_t first, size_t last)
{
	size_t i;

	for (i = first; i <= last; i++)
		if (!rc->resident[i])
			return false;
	return true;
}

/* The regions for the chunks back so far. */
static size_t recall_regions(const struct recall *rc, struct cxdm_region *out)
{
	size_t i;

	for (i = 0; i < rc->nchunks; i++)
		if (!rc->resident[i])
			return hstate_recall_regions(rc->resident, rc->nchunks, rc->chunk, out,
						     CXDM_MAX_REGIONS);
	out[0] = (struct cxdm_region){ .off = 0, .len = 0, .events = EV_WT };
	return 1;
}

static int recall_apply(struct recall *rc)
{
	struct cxdm_region r[CXDM_MAX_REGIONS];
	size_t n = recall_regions(rc, r);
	int err;

	err = cxdm_set_regions(rc->w->dm, &rc->f->st.h, r, n);
	if (err < 0)
		return err;
	memcpy(rc->applied, r, n * sizeof(r[0]));
	rc->napplied = n;
	return 0;
}

/*
 * Answer every READ event of the job whose range is back: first make the
 * regions say so (else the reader would raise the event again).
 */
static int recall_answer(struct recall *rc)
{
	struct item *ready[64];
	size_t nready = 0, first, last, i;
	bool need_regions = false;
	struct item *it;
	int err;

	pthread_mutex_lock(&H.mutex);
	for (it = rc->j->items; it && nready < 64; it = it->next) {
		if (it->request || it->ev.type != CXDM_EV_READ)
			continue;
		if (recall_range(rc, &it->ev, &first, &last)) {
			if (!recall_all_back(rc, first, last))
				continue;
			if (hstate_read_overlaps(rc->applied, rc->napplied, it->ev.off, it->ev.len))
				need_regions = true;
		}
		ready[nready++] = it;
	}
	pthread_mutex_unlock(&H.mutex);
	if (!nready)
		return 0;
	if (need_regions) {
		err = recall_apply(rc);
		if (err < 0)
			return err;
	}
	for (i = 0; i < nready; i++) {
		it = ready[i];
		/* Coalesced regions may still cover it: it waits for more chunks. */
		if (it->ev.off < rc->size &&
		    hstate_read_overlaps(rc->applied, rc->napplied, it->ev.off, it->ev.len))
			continue;
		err = answer(rc->w, rc->j, it, 0);
		if (err < 0)
			return err;
		rc->answered++;
	}
	return 0;
}

/*
 * The next chunks to bring back, [*first, *first + *count): those a
 * waiting reader asked for first; then, if readers wait only because the
 * regions had to be coalesced, the smallest run still missing (bringing it
 * back merges two runs); then the sweep.  false: everything is back.
 */
static bool recall_pick(struct recall *rc, size_t *first, size_t *count)
{
	size_t max = HSMD_RECALL_BATCH / rc->chunk, a, b, i, best = SIZE_MAX, best_len = 0;
	struct cxdm_region r[CXDM_MAX_REGIONS];
	bool blocked = false;
	struct item *it;
	size_t nr;

	if (!max)
		max = 1;
	nr = recall_regions(rc, r);
	pthread_mutex_lock(&H.mutex);
	for (it = rc->j->items; it; it = it->next) {
		if (it->request || it->ev.type != CXDM_EV_READ || !recall_range(rc, &it->ev, &a, &b))
			continue;
		for (i = a; i <= b; i++) {
			if (rc->resident[i])
				continue;
			/*
			 * A reader at the edge of what is back reads on: a whole
			 * batch from there.  Elsewhere (a reader that jumped into
			 * the file) only its range, for the quickest answer.
			 */
			if (i > 0 && rc->resident[i - 1])
				b = rc->nchunks - 1;
			*first = i;
			for (*count = 0; i <= b && !rc->resident[i] && *count < max; i++)
				(*count)++;
			pthread_mutex_unlock(&H.mutex);
			return true;
		}
		if (hstate_read_overlaps(r, nr, it->ev.off, it->ev.len))
			blocked = true;
	}
	pthread_mutex_unlock(&H.mutex);
	if (blocked) {
		for (i = 0; i < rc->nchunks;) {
			if (rc->resident[i]) {
				i++;
				continue;
			}
			for (a = i; i < rc->nchunks && !rc->resident[i]; i++)
				;
			if (best == SIZE_MAX || i - a < best_len) {
				best = a;
				best_len = i - a;
			}
		}
		if (best != SIZE_MAX) {
			*first = best;
			*count = best_len < max ? best_len : max;
			return true;
		}
	}
	while (rc->sweep < rc->nchunks && rc->resident[rc->sweep])
		rc->sweep++;
	if (rc->sweep >= rc->nchunks)
		return false;
	*first = rc->sweep;
	for (*count = 0, i = rc->sweep; i < rc->nchunks && !rc->resident[i] && *count < max; i++)
		(*count)++;
	return true;
}

/* One chunk of a batch: read from the tier, checked, written to the volume. */
struct chunk_io {
	struct recall *rc;
	size_t idx;                /* the chunk */
	cxdm_t *dm;                /* the connection it is written through */
	char *buf;                 /* rc->chunk bytes */
	ssize_t result;            /* bytes, or -errno */
	pthread_t thread;
};

static void *chunk_io_main(void *arg)
{
	struct chunk_io *io = arg;
	ssize_t n, wn;

	n = tier_read_chunk(io->rc->r, io->idx, io->buf);
	if (n < 0) {
		io->result = -EIO;
		return NULL;
	}
	wn = cxdm_write_invis(io->dm, &io->rc->f->st.h, (uint64_t)io->idx * io->rc->chunk, io->buf,
			      (size_t)n);
	io->result = wn < 0 ? wn : wn != n ? -EIO : n;
	return NULL;
}

/*
 * Bring chunks [first, first + count) back: verified reads of the copy and
 * invisible writes, up to HSMD_IO_PAR chunks at once (a thread and a
 * connection each: the volume's path wants several requests in flight).
 */
static int recall_chunks(struct recall *rc, size_t first, size_t count)
{
	struct chunk_io io[HSMD_IO_PAR];
	struct worker *w = rc->w;
	size_t k, done, n;
	int err = 0;

	for (done = 0; done < count && !err; done += n) {
		n = count - done < HSMD_IO_PAR ? count - done : HSMD_IO_PAR;
		for (k = 0; k < n; k++) {
			io[k] = (struct chunk_io){ .rc = rc, .idx = first + done + k, .dm = w->dm,
						   .buf = w->buf + k * rc->chunk };
			if (k > 0) {
				if (!w->io[k - 1] && cxdm_open(H.socket, &w->io[k - 1]) < 0)
					w->io[k - 1] = NULL;
				io[k].dm = w->io[k - 1];
			}
		}
		/* Chunk 0 here; the others on threads, or here too if that cannot be. */
		for (k = 1; k < n; k++)
			if (!io[k].dm || spawn(&io[k].thread, chunk_io_main, &io[k]) < 0)
				io[k].dm = NULL;
		chunk_io_main(&io[0]);
		for (k = 1; k < n; k++) {
			if (io[k].dm) {
				pthread_join(io[k].thread, NULL);
			} else {
				io[k].dm = w->dm;
				chunk_io_main(&io[k]);
			}
		}
		for (k = 0; k < n; k++) {
			if (io[k].result < 0) {
				if (!err)
					err = (int)io[k].result;
				continue;
			}
			rc->resident[io[k].idx] = true;
			rc->bytes += (uint64_t)io[k].result;
		}
	}
	return err;
}

/*
 * Recall the offline or partial file @f, answering the job's READ events
 * as their ranges come back; at the end the file is dual-state.  0, or an
 * error the caller answers the waiting events with (-EIO for a damaged or
 * missing copy), or -HSMD_ESTOP.
 */
static int recall(struct worker *w, struct job *j, struct hstate_file *f)
{
	struct recall rc = { .w = w, .j = j, .f = f };
	uint64_t since_regions = 0, before, offline = f->offline_bytes;
	size_t first, count, i;
	double t0 = now_s();
	int err;

	err = tier_read_open(H.tier, &f->attr.obj, &rc.r);
	if (err < 0) {
		hlog("recall of inode %" PRIu64 " FAILED: its tier copy %s/%" PRIu64 "-%" PRIu64
		     " cannot be read (%s); readers get EIO",
		     f->st.h.ino, tier_path(H.tier), f->attr.obj.ino, f->attr.obj.gen,
		     strerror(-err));
		COUNT(errors, 1);
		return -EIO;
	}
	rc.size = tier_read_size(rc.r);
	rc.chunk = tier_read_chunk_size(rc.r);
	if (rc.size != f->attr.size || rc.chunk > HSMD_RECALL_BATCH) {
		hlog("recall of inode %" PRIu64 " FAILED: its tier copy has %" PRIu64
		     " bytes in chunks of %u, the file's attribute says %" PRIu64,
		     f->st.h.ino, rc.size, rc.chunk, f->attr.size);
		err = -EIO;
		goto out_close;
	}
	if (f->st.size != rc.size)
		hlog("recall of inode %" PRIu64 ": the file has %" PRIu64
		     " bytes, its copy %" PRIu64 "; recalling the copy",
		     f->st.h.ino, f->st.size, rc.size);
	rc.nchunks = (size_t)((rc.size + rc.chunk - 1) / rc.chunk);
	rc.resident = calloc(rc.nchunks ? rc.nchunks : 1, sizeof(bool));
	if (!rc.resident) {
		err = -ENOMEM;
		goto out_close;
	}
	for (i = 0; i < rc.nchunks; i++)
		rc.resident[i] = !hstate_read_overlaps(f->regions, f->nregions,
						       (uint64_t)i * rc.chunk, rc.chunk);
	memcpy(rc.applied, f->regions, f->nregions * sizeof(f->regions[0]));
	rc.napplied = f->nregions;

	pthread_mutex_lock(&H.mutex);
	H.c.recalls++;
	H.status_seq++;
	pthread_cond_signal(&H.changed);
	pthread_mutex_unlock(&H.mutex);
	hlog("recall of inode %" PRIu64 " starts: %" PRIu64 " of %" PRIu64
	     " bytes to bring back (%s)", f->st.h.ino, offline, rc.size, hstate_name(f->state));
	job_progress(j, "recall", 0, offline);

	for (;;) {
		if (stopping()) {
			err = -HSMD_ESTOP;
			goto out_free;
		}
		err = recall_answer(&rc);
		if (err < 0)
			goto out_free;
		if (!recall_pick(&rc, &first, &count))
			break;
		before = rc.bytes;
		err = recall_chunks(&rc, first, count);
		pthread_mutex_lock(&H.mutex);
		H.c.recall_bytes += rc.bytes - before;
		H.status_seq++;
		pthread_cond_signal(&H.changed);
		j->done = rc.bytes;
		pthread_mutex_unlock(&H.mutex);
		if (err < 0)
			goto out_free;
		since_regions += rc.bytes - before;
		if (since_regions >= HSMD_REGIONS_EVERY) {
			err = recall_apply(&rc);
			if (err < 0)
				goto out_free;
			since_regions = 0;
		}
	}
	err = recall_apply(&rc);
	if (err < 0)
		goto out_free;
	err = recall_answer(&rc);
	if (err < 0)
		goto out_free;
	f->nregions = rc.napplied;
	memcpy(f->regions, rc.applied, rc.napplied * sizeof(rc.applied[0]));
	f->offline_bytes = 0;
	f->state = HSTATE_DUAL;
	{
		double dt = now_s() - t0;

		hlog("recall of inode %" PRIu64 " done: %" PRIu64 " bytes in %.2f s (%.1f MB/s), "
		     "%u read event(s) answered on the way",
		     f->st.h.ino, rc.bytes, dt, dt > 0 ? (double)rc.bytes / dt / 1e6 : 0.0,
		     rc.answered);
	}
out_free:
	if (err == -HSMD_ESTOP)
		hlog("recall of inode %" PRIu64 " stops after %" PRIu64 " bytes: this daemon stops "
		     "serving (the next one finishes it)", f->st.h.ino, rc.bytes);
	if (err < 0 && err != -HSMD_ESTOP) {
		hlog("recall of inode %" PRIu64 " FAILED after %" PRIu64 " bytes: %s",
		     f->st.h.ino, rc.bytes, strerror(-err));
		COUNT(errors, 1);
		/* Keep what came back: the regions say which parts are resident. */
		if (err != -ENOTCONN && rc.bytes)
			recall_apply(&rc);
	}
	free(rc.resident);
out_close:
	job_progress(j, NULL, 0, 0);
	tier_read_close(rc.r);
	return err;
}

/* Answer every READ event of @j with @rc (the recall failed). */
static int fail_reads(struct worker *w, struct job *j, int rc)
{
	struct item *it, *next;
	int err;

	for (;;) {
		pthread_mutex_lock(&H.mutex);
		for (it = j->items; it; it = next) {
			next = it->next;
			if (!it->request && it->ev.type == CXDM_EV_READ)
				break;
		}
		pthread_mutex_unlock(&H.mutex);
		if (!it)
			return 0;
		err = answer(w, j, it, rc);
		if (err < 0)
			return err;
	}
}

/* ---- one item ------------------------------------------------------------------------ */

/* Bring @f back if it is offline or partial (-EIO etc. on failure). */
static int ensure_back(struct worker *w, struct job *j, struct hstate_file *f)
{
	int rc;

	if (f->state != HSTATE_OFFLINE && f->state != HSTATE_PARTIAL)
		return 0;
	rc = recall(w, j, f);
	if (rc == -ENOTCONN || rc == -HSMD_ESTOP)
		return connection_lost(rc);
	if (rc < 0) {
		int e = fail_reads(w, j, -EIO);

		if (e < 0)
			return e;
	}
	return rc;
}

/* A user request (cxfs-hsm) or the policy's: migrate, release, stage. */
static int do_user(struct worker *w, struct job *j, struct hstate_file *f, uint32_t code)
{
	int rc;

	switch (code) {
	case HSM_USER_MIGRATE:
		return f->state == HSTATE_RESIDENT ? migrate(w, j, f) : 0;
	case HSM_USER_RELEASE:
		if (f->state == HSTATE_OFFLINE)
			return 0;
		if (f->state == HSTATE_RESIDENT) {
			rc = migrate(w, j, f);
			if (rc < 0)
				return rc;
		}
		return release(w, j, f);
	case HSM_USER_STAGE:
		return ensure_back(w, j, f);
	}
	return -EINVAL;
}

/*
 * Do what the oldest item of @j needs and answer it (a recall also
 * answers the READ events behind it).  -HSMD_ESTOP: leave it.
 */
static int run_item(struct worker *w, struct job *j, struct item *it)
{
	const struct cxdm_event *ev = &it->ev;
	struct hstate_file f;
	int rc;

	rc = hstate_query(w->dm, &ev->h, &f);
	if (rc == -ENOTCONN)
		return connection_lost(rc);
	if (rc == -ESTALE || rc == -ENOENT) {
		/* The file is gone: its operation fails by itself. */
		return answer(w, j, it, ev->type == CXDM_EV_USER ? rc : 0);
	}
	if (rc < 0) {
		hlog("inode %" PRIu64 ": cannot read its HSM state: %s", ev->h.ino, strerror(-rc));
		COUNT(errors, 1);
		return answer(w, j, it, -EIO);
	}
	switch (ev->type) {
	case CXDM_EV_READ:
		if (f.state == HSTATE_OFFLINE || f.state == HSTATE_PARTIAL) {
			rc = ensure_back(w, j, &f);
			if (rc < 0)
				return connection_lost(rc);
			/* The recall answered it unless the file is odd: answer what is left. */
			return 0;
		}
		if (f.state == HSTATE_RESIDENT && hstate_read_overlaps(f.regions, f.nregions, 0, 0))
			rc = cxdm_set_regions(w->dm, &ev->h, &no_region, 0);
		return rc == -ENOTCONN ? connection_lost(rc) : answer(w, j, it, 0);
	case CXDM_EV_WRITE:
	case CXDM_EV_TRUNCATE:
		if (ev->type == CXDM_EV_TRUNCATE && ev->off == 0 && f.state != HSTATE_RESIDENT) {
			/* Nothing survives a truncate to 0: no recall. */
			rc = 0;
		} else {
			rc = ensure_back(w, j, &f);
		}
		if (rc == 0 && (f.migrated || f.nregions))
			rc = make_resident(w, &f);
		if (rc == -ENOTCONN || rc == -HSMD_ESTOP)
			return connection_lost(rc);
		if (rc < 0) {
			hlog("%s of inode %" PRIu64 " refused: the file cannot be made resident (%s)",
			     cxdm_event_name(ev->type), ev->h.ino, strerror(-rc));
			COUNT(errors, 1);
			rc = -EIO;
		}
		return answer(w, j, it, rc);
	case CXDM_EV_USER:
		rc = do_user(w, j, &f, ev->code);
		if (rc == -ENOTCONN || rc == -HSMD_ESTOP)
			return connection_lost(rc);
		if (rc < 0 && rc != -EINVAL && rc != -EBUSY)
			COUNT(errors, 1);
		return answer(w, j, it, rc);
	default:
		return answer(w, j, it, 0);
	}
}

/* ---- workers ---------------------------------------------------------------------------- */

/* Run @j until it has no items (or the daemon stops serving). */
static void run_job(struct worker *w, struct job *j)
{
	struct item *it;
	int rc;

	for (;;) {
		pthread_mutex_lock(&H.mutex);
		it = j->items;
		if (!it || H.stopping) {
			if (!it)
				job_free(j);
			/* Stopping: the job stays in the table; serve() frees it. */
			pthread_mutex_unlock(&H.mutex);
			return;
		}
		pthread_mutex_unlock(&H.mutex);
		rc = run_item(w, j, it);
		if (rc == -HSMD_ESTOP)
			return;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct job *j;
	int rc;

	rc = cxdm_open(H.socket, &w->dm);
	if (rc < 0) {
		hlog("worker %u: cannot connect to %s: %s", w->id, H.socket, strerror(-rc));
		connection_lost(-ENOTCONN);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&H.mutex);
		while (!H.runq && !H.stopping)
			pthread_cond_wait(&H.work, &H.mutex);
		if (H.stopping) {
			pthread_mutex_unlock(&H.mutex);
			break;
		}
		j = H.runq;
		H.runq = j->qnext;
		if (!H.runq)
			H.runq_tail = &H.runq;
		j->qnext = NULL;
		pthread_mutex_unlock(&H.mutex);
		run_job(w, j);
	}
	cxdm_close(w->dm);
	w->dm = NULL;
	for (unsigned k = 0; k < HSMD_IO_PAR - 1; k++) {
		cxdm_close(w->io[k]);
		w->io[k] = NULL;
	}
	return NULL;
}


/* ---- status ----------------------------------------------------------------------------- */

/* Append to @b (of @size, used *@len) like printf. */
__attribute__((format(printf, 4, 5)))
static void put(char *b, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b + *len, size - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len = *len + (size_t)n < size ? *len + (size_t)n : size;
}

/* The counters and jobs as one JSON object (one line).  Takes the mutex. */
static size_t status_json(char *b, size_t size)
{
	static const char *const names[] = { "read", "write", "truncate", "destroy", "user" };
	static const int types[] = { CXDM_EV_READ, CXDM_EV_WRITE, CXDM_EV_TRUNCATE,
				     CXDM_EV_DESTROY, CXDM_EV_USER };
	size_t len = 0, i;
	unsigned njobs = 0;
	struct job *j;

	pthread_mutex_lock(&H.mutex);
	put(b, size, &len,
	    "{\"node\":\"%s\",\"fs\":\"%s\",\"pid\":%ld,\"session\":%" PRIu64
	    ",\"serving\":%s,\"started\":%lld,\"updated\":%lld,\"tier\":\"%s\",\"rate\":%" PRIu64
	    ",\"recalls\":%" PRIu64 ",\"recall_bytes\":%" PRIu64 ",\"migrations\":%" PRIu64
	    ",\"migrate_bytes\":%" PRIu64 ",\"releases\":%" PRIu64 ",\"release_bytes\":%" PRIu64
	    ",\"destroys\":%" PRIu64 ",\"tier_removed\":%" PRIu64 ",\"answered\":%" PRIu64
	    ",\"errors\":%" PRIu64 ",\"policy_runs\":%" PRIu64 ",\"policy_released\":%" PRIu64
	    ",\"events\":{",
	    H.node, H.fs, (long)getpid(), H.sid, H.stopping ? "false" : "true",
	    (long long)H.started, (long long)time(NULL), H.tier ? tier_path(H.tier) : "",
	    H.rate, H.c.recalls, H.c.recall_bytes, H.c.migrations, H.c.migrate_bytes,
	    H.c.releases, H.c.release_bytes, H.c.destroys, H.c.tier_removed, H.c.answered,
	    H.c.errors, H.c.policy_runs, H.c.policy_released);
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		put(b, size, &len, "%s\"%s\":%" PRIu64, i ? "," : "", names[i], H.c.events[types[i]]);
	put(b, size, &len, "},\"jobs\":[");
	for (j = H.jobs; j; j = j->next) {
		if (!j->op || njobs >= 64)
			continue;
		put(b, size, &len, "%s{\"ino\":%" PRIu64 ",\"op\":\"%s\",\"done\":%" PRIu64
		    ",\"total\":%" PRIu64 "}", njobs ? "," : "", j->ino, j->op, j->done, j->total);
		njobs++;
	}
	put(b, size, &len, "]}");
	pthread_mutex_unlock(&H.mutex);
	return len;
}

/*
 * The status thread: the counters as the DM attribute HSM_STATUS_ATTR of
 * the root inode (cxfs-hsm status reads it from any node) and as the file
 * TIER/<fs>/hsmd.status, every second and soon after each change.
 */
static void *status_main(void *arg)
{
	struct cxdm_handle root = { .ino = 1, .gen = 0 };
	struct cxdm_stat st;
	char buf[16384];
	uint64_t seen = UINT64_MAX;
	bool attr_ok = true, attr_said = false;
	struct timespec dl;
	cxdm_t *dm = NULL;
	size_t len;
	int rc;

	(void)arg;
	rc = cxdm_open(H.socket, &dm);
	if (rc == 0)
		rc = cxdm_stat(dm, &root, &st);
	if (rc < 0) {
		hlog("status: cannot reach the root inode (%s); counters go to %s/%s only",
		     strerror(-rc), tier_path(H.tier), HSM_STATUS_FILE);
		attr_ok = false;
	} else {
		root = st.h;
	}
	for (;;) {
		pthread_mutex_lock(&H.mutex);
		if (!H.stopping && H.status_seq == seen) {
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += 1;
			pthread_cond_timedwait(&H.changed, &H.mutex, &dl);
		}
		seen = H.status_seq;
		if (H.stopping) {
			pthread_mutex_unlock(&H.mutex);
			break;
		}
		pthread_mutex_unlock(&H.mutex);
		len = status_json(buf, sizeof(buf));
		if (attr_ok) {
			rc = cxdm_set_dmattr(dm, &root, HSM_STATUS_ATTR, buf, len);
			if (rc < 0 && !attr_said) {
				hlog("status: cannot set %s on the root inode: %s", HSM_STATUS_ATTR,
				     strerror(-rc));
				attr_said = true;
			} else if (rc == 0) {
				attr_said = false;
			}
		}
		buf[len] = '\n';
		tier_put_file(H.tier, HSM_STATUS_FILE, buf, len + 1);
		sleep_ms(HSMD_STATUS_MIN_MS);
	}
	/* A last word: this daemon no longer serves. */
	len = status_json(buf, sizeof(buf));
	if (attr_ok)
		cxdm_set_dmattr(dm, &root, HSM_STATUS_ATTR, buf, len);
	buf[len] = '\n';
	tier_put_file(H.tier, HSM_STATUS_FILE, buf, len + 1);
	cxdm_close(dm);
	return NULL;
}

/* ---- policy --------------------------------------------------------------------------- */

/*
 * Queue a request @code on @h as if cxfs-hsm had sent it and wait for its
 * answer; -ESHUTDOWN if the daemon stops serving first.
 */
static int submit(const struct cxdm_handle *h, uint32_t code)
{
	struct item *it = calloc(1, sizeof(*it));
	int rc;

	if (!it)
		return -ENOMEM;
	it->request = true;
	it->ev.type = CXDM_EV_USER;
	it->ev.h = *h;
	it->ev.code = code;
	pthread_mutex_lock(&H.mutex);
	if (H.stopping) {
		pthread_mutex_unlock(&H.mutex);
		free(it);
		return -ESHUTDOWN;
	}
	rc = job_add_item(it);
	if (rc < 0) {
		pthread_mutex_unlock(&H.mutex);
		free(it);
		return rc;
	}
	while (!it->finished)
		pthread_cond_wait(&H.done, &H.mutex);
	rc = it->result;
	pthread_mutex_unlock(&H.mutex);
	free(it);
	return rc;
}

static double used_pct(const struct cxdm_info *in)
{
	if (!in->total_bytes)
		return 0;
	return 100.0 * (double)(in->total_bytes - in->free_bytes) / (double)in->total_bytes;
}

static int by_atime(const void *a, const void *b)
{
	const struct cxdm_stat *x = a, *y = b;

	if (x->atime.tv_sec != y->atime.tv_sec)
		return x->atime.tv_sec < y->atime.tv_sec ? -1 : 1;
	if (x->atime.tv_nsec != y->atime.tv_nsec)
		return x->atime.tv_nsec < y->atime.tv_nsec ? -1 : 1;
	return x->h.ino < y->h.ino ? -1 : x->h.ino > y->h.ino;
}

/* The resident regular files with data, least recently used first (caller frees). */
static int policy_candidates(cxdm_t *dm, struct cxdm_stat **out, size_t *count)
{
	struct cxdm_stat batch[HSMD_BULKSTAT], *all = NULL, *na;
	size_t n = 0, cap = 0, i;
	uint64_t cursor = 0;
	int got;

	for (;;) {
		got = cxdm_bulkstat(dm, &cursor, batch, HSMD_BULKSTAT);
		if (got < 0) {
			free(all);
			return got;
		}
		if (got == 0)
			break;
		for (i = 0; i < (size_t)got; i++) {
			if ((batch[i].mode & S_IFMT) && !S_ISREG(batch[i].mode))
				continue;
			if (batch[i].size == 0 || batch[i].blocks == 0)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				na = realloc(all, cap * sizeof(*na));
				if (!na) {
					free(all);
					return -ENOMEM;
				}
				all = na;
			}
			all[n++] = batch[i];
		}
	}
	if (n)
		qsort(all, n, sizeof(*all), by_atime);
	*out = all;
	*count = n;
	return 0;
}

/* One check: above the high-water mark, release LRU files down to the low one. */
static int policy_check(cxdm_t *dm)
{
	struct cxdm_stat *cand = NULL;
	struct cxdm_info in;
	size_t n = 0, i, released = 0;
	uint64_t freed = 0, need, low_bytes;
	double used, start;
	int rc;

	rc = cxdm_info(dm, &in);
	if (rc < 0)
		return rc;
	used = used_pct(&in);
	if (used <= H.high)
		return 0;
	start = used;
	/*
	 * What to free, counted by the blocks of the files released: the free
	 * space the daemon reports lags behind (until the metadata commits),
	 * and re-reading it alone would release far too much.
	 */
	low_bytes = (uint64_t)((double)in.total_bytes * H.low / 100.0);
	need = in.total_bytes - in.free_bytes > low_bytes
		       ? in.total_bytes - in.free_bytes - low_bytes
		       : 0;
	COUNT(policy_runs, 1);
	hlog("policy: the volume is %.1f%% full (high-water mark %u%%): releasing the least "
	     "recently used files down to %u%%", used, H.high, H.low);
	rc = policy_candidates(dm, &cand, &n);
	if (rc < 0)
		return rc;
	for (i = 0; i < n && used > H.low && freed < need && !stopping(); i++) {
		rc = submit(&cand[i].h, HSM_USER_RELEASE);
		if (rc == -ESHUTDOWN)
			break;
		if (rc < 0) {
			hlog_debug("policy: inode %" PRIu64 " not released: %s", cand[i].h.ino,
				   strerror(-rc));
			continue;
		}
		released++;
		freed += cand[i].blocks * 512;
		COUNT(policy_released, 1);
		rc = cxdm_info(dm, &in);
		if (rc < 0)
			break;
		used = used_pct(&in);
	}
	free(cand);
	hlog("policy: released %zu of %zu candidate files (%" PRIu64 " of %" PRIu64
	     " MiB wanted); the volume went from %.1f%% to %.1f%% full (as last reported)",
	     released, n, freed >> 20, need >> 20, start, used);
	return rc < 0 && rc != -ESHUTDOWN ? rc : 0;
}

static void *policy_main(void *arg)
{
	cxdm_t *dm = NULL;
	struct timespec dl;
	int rc;

	(void)arg;
	rc = cxdm_open(H.socket, &dm);
	if (rc < 0) {
		connection_lost(-ENOTCONN);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&H.mutex);
		if (!H.stopping) {
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += H.interval_ms / 1000;
			dl.tv_nsec += (long)(H.interval_ms % 1000) * 1000000L;
			if (dl.tv_nsec >= 1000000000L) {
				dl.tv_sec++;
				dl.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&H.policy_cv, &H.mutex, &dl);
		}
		if (H.stopping) {
			pthread_mutex_unlock(&H.mutex);
			break;
		}
		pthread_mutex_unlock(&H.mutex);
		rc = policy_check(dm);
		if (rc == -ENOTCONN) {
			connection_lost(rc);
			break;
		}
		if (rc < 0)
			hlog("policy: %s", strerror(-rc));
	}
	cxdm_close(dm);
	return NULL;
}

/* ---- serving --------------------------------------------------------------------------- */

struct reconcile {
	cxdm_t *dm;
	unsigned removed;
};

/* One copy of the tier: remove it if its file is gone or no longer names it. */
static int reconcile_one(void *arg, const struct cxdm_handle *h)
{
	struct reconcile *rec = arg;
	struct hstate_attr a;
	struct cxdm_stat st;
	const char *why = NULL;
	int rc;

	rc = cxdm_stat(rec->dm, h, &st);
	if (rc == -ESTALE || rc == -ENOENT) {
		why = "its file is gone";
	} else if (rc < 0) {
		return rc;
	} else {
		rc = hstate_get_attr(rec->dm, h, &a);
		if (rc == -ENODATA)
			why = "its file is resident";
		else if (rc == 0 && (a.obj.ino != h->ino || a.obj.gen != h->gen))
			why = "its file names another copy";
		else if (rc < 0 && rc != -EINVAL)
			return rc;
	}
	if (why) {
		hlog("reconcile: removing the copy %" PRIu64 "-%" PRIu64 ": %s", h->ino, h->gen,
		     why);
		tier_remove(H.tier, h);
		rec->removed++;
	}
	return 0;
}

/* A DESTROY event: the copy of that file goes. */
static void on_destroy(const struct cxdm_event *ev)
{
	int rc = tier_remove(H.tier, &ev->h);

	pthread_mutex_lock(&H.mutex);
	H.c.destroys++;
	if (rc == 0)
		H.c.tier_removed++;
	H.status_seq++;
	pthread_cond_signal(&H.changed);
	pthread_mutex_unlock(&H.mutex);
	if (rc < 0)
		hlog("destroy of inode %" PRIu64 ": cannot remove its copy: %s", ev->h.ino,
		     strerror(-rc));
	else
		hlog_debug("destroy of inode %" PRIu64 "-%" PRIu64 ": copy removed", ev->h.ino,
			   ev->h.gen);
}

/* Hand an event to the job of its file (the main thread). */
static int dispatch(cxdm_t *dm, const struct cxdm_event *ev)
{
	struct item *it;
	int rc;

	hlog_debug("event %s inode %" PRIu64 "-%" PRIu64 " [%" PRIu64 "+%" PRIu64 "] waiters %u "
		   "code %u token %" PRIu64, cxdm_event_name(ev->type), ev->h.ino, ev->h.gen,
		   ev->off, ev->len, ev->waiters, ev->code, ev->token);
	if ((unsigned)ev->type <= CXDM_EV_USER)
		COUNT(events[ev->type], 1);
	switch (ev->type) {
	case CXDM_EV_DESTROY:
		on_destroy(ev);
		return 0;
	case CXDM_EV_READ:
	case CXDM_EV_WRITE:
	case CXDM_EV_TRUNCATE:
	case CXDM_EV_USER:
		break;
	default:
		return cxdm_respond(dm, H.sid, ev->token, 0);
	}
	it = calloc(1, sizeof(*it));
	if (!it)
		return cxdm_respond(dm, H.sid, ev->token, -ENOMEM);
	it->ev = *ev;
	pthread_mutex_lock(&H.mutex);
	rc = job_add_item(it);
	pthread_mutex_unlock(&H.mutex);
	if (rc < 0) {
		free(it);
		return cxdm_respond(dm, H.sid, ev->token, rc);
	}
	return 0;
}

/* Take the session over (or make it), receive the events. */
static int open_session(cxdm_t *dm)
{
	int rc;

	rc = cxdm_assume_session(dm, HSM_SESSION, &H.sid);
	if (rc == 0) {
		hlog("assumed the session \"%s\" (id %" PRIu64 "): its waiting events are ours",
		     HSM_SESSION, H.sid);
	} else {
		if (rc != -ENOENT)
			hlog_debug("assume session: %s", strerror(-rc));
		rc = cxdm_create_session(dm, HSM_SESSION, &H.sid);
		if (rc < 0)
			return rc;
		hlog("created the session \"%s\" (id %" PRIu64 ")", HSM_SESSION, H.sid);
	}
	return cxdm_set_disposition(dm, H.sid, HSMD_DISPOSITION);
}

/* Free every job left after the threads stopped; wake the policy's requests. */
static void drop_jobs(void)
{
	struct item *it, *next;
	struct job *j;

	pthread_mutex_lock(&H.mutex);
	while ((j = H.jobs)) {
		for (it = j->items; it; it = next) {
			next = it->next;
			if (it->request) {
				it->result = -ESHUTDOWN;
				it->finished = true;
			} else {
				free(it);   /* the session keeps the event for its next owner */
			}
		}
		j->items = NULL;
		job_free(j);
	}
	H.runq = NULL;
	H.runq_tail = &H.runq;
	pthread_cond_broadcast(&H.done);
	pthread_mutex_unlock(&H.mutex);
}

/*
 * Serve the filesystem while this node is its metadata server: session,
 * reconcile, threads, the event loop.  Returns when the node stops being
 * the server, a connection breaks, or the daemon is asked to quit.
 */
static int serve(cxdm_t *dm, const struct cxdm_info *info)
{
	struct cxdm_event evs[HSMD_EVENT_BATCH];
	struct worker *workers;
	struct reconcile rec = { .dm = dm };
	pthread_t status_t, policy_t;
	bool policy_on = false, status_on = false;
	double last_info = now_s();
	char rate[32], policy[80];
	struct cxdm_info in;
	unsigned i, nstarted = 0;
	int rc, n;

	rc = tier_open(H.tier_dir, info->fs, H.rate, &H.tier);
	if (rc < 0) {
		hlog("cannot open the tier %s/%s: %s", H.tier_dir, info->fs, strerror(-rc));
		return rc;
	}
	rc = open_session(dm);
	if (rc < 0) {
		hlog("cannot open the session \"%s\": %s", HSM_SESSION, strerror(-rc));
		goto out_tier;
	}
	rc = tier_scan(H.tier, true, reconcile_one, &rec);
	if (rc < 0) {
		hlog("reconcile of the tier %s stopped: %s", tier_path(H.tier), strerror(-rc));
		goto out_tier;
	}
	if (H.rate)
		snprintf(rate, sizeof(rate), "%" PRIu64 " bytes/s", H.rate);
	else
		snprintf(rate, sizeof(rate), "unlimited");
	if (H.policy)
		snprintf(policy, sizeof(policy), "release above %u%% of the volume down to %u%%",
			 H.high, H.low);
	else
		snprintf(policy, sizeof(policy), "off");
	hlog("serving %s on %s: tier %s (%d copies, %u stale removed), rate %s, policy %s",
	     info->fs, info->node, tier_path(H.tier), rc, rec.removed, rate, policy);
	workers = calloc(H.nworkers, sizeof(*workers));
	if (!workers) {
		rc = -ENOMEM;
		goto out_tier;
	}
	pthread_mutex_lock(&H.mutex);
	H.stopping = false;
	H.lost = false;
	H.status_seq++;
	pthread_mutex_unlock(&H.mutex);
	for (i = 0; i < H.nworkers; i++) {
		workers[i].id = i;
		workers[i].buf = malloc(HSMD_RECALL_BATCH);
		if (!workers[i].buf || spawn(&workers[i].thread, worker_main, &workers[i]) < 0) {
			free(workers[i].buf);
			rc = -ENOMEM;
			goto out_stop;
		}
		nstarted++;
	}
	status_on = spawn(&status_t, status_main, NULL) == 0;
	if (H.policy)
		policy_on = spawn(&policy_t, policy_main, NULL) == 0;

	rc = 0;
	while (!hsmd_quit) {
		if (hsmd_reopen) {
			hsmd_reopen = 0;
			hlog_reopen();
		}
		pthread_mutex_lock(&H.mutex);
		if (H.lost)
			rc = -ENOTCONN;
		pthread_mutex_unlock(&H.mutex);
		if (rc < 0)
			break;
		n = cxdm_get_events(dm, H.sid, evs, HSMD_EVENT_BATCH, HSMD_WAIT_MS);
		if (n < 0 && n != -ETIMEDOUT) {
			rc = n;
			hlog("waiting for events: %s", strerror(-rc));
			break;
		}
		for (i = 0; n > 0 && i < (unsigned)n; i++) {
			rc = dispatch(dm, &evs[i]);
			if (rc < 0)
				hlog("event %s of inode %" PRIu64 ": %s", cxdm_event_name(evs[i].type),
				     evs[i].h.ino, strerror(-rc));
			rc = 0;
		}
		if (now_s() - last_info >= HSMD_INFO_MS / 1000.0) {
			last_info = now_s();
			rc = cxdm_info(dm, &in);
			if (rc < 0)
				break;
			if (!in.is_server) {
				hlog("%s is no longer the metadata server (%s is): stopping",
				     in.node, in.server[0] ? in.server : "none known");
				break;
			}
		}
	}

out_stop:
	pthread_mutex_lock(&H.mutex);
	H.stopping = true;
	pthread_cond_broadcast(&H.work);
	pthread_cond_broadcast(&H.changed);
	pthread_cond_broadcast(&H.policy_cv);
	pthread_mutex_unlock(&H.mutex);
	for (i = 0; i < nstarted; i++) {
		pthread_join(workers[i].thread, NULL);
		free(workers[i].buf);
	}
	drop_jobs();
	if (policy_on)
		pthread_join(policy_t, NULL);
	if (status_on)
		pthread_join(status_t, NULL);
	free(workers);
	hlog("stopped serving (%s)", hsmd_quit ? "asked to quit" : rc < 0 ? strerror(-rc) : "idle");
out_tier:
	tier_close(H.tier);
	H.tier = NULL;
	return rc;
}

/* ---- main ------------------------------------------------------------------------------ */

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		hsmd_reopen = 1;
	else
		hsmd_quit = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cxfs-hsmd --tier DIR [--socket PATH] [--rate BYTES_PER_S]\n"
		"                 [--high PCT] [--low PCT] [--no-policy] [--interval MS]\n"
		"                 [--workers N] [--log FILE] [--pidfile FILE] [-v]\n"
		"\n"
		"The HSM daemon of cxfs.  Run one beside each cxfsd that may serve the\n"
		"filesystem; the one on the metadata server's node migrates files to the\n"
		"tier directory, releases their blocks, recalls them on access and keeps\n"
		"the volume below the high-water mark; the others wait.\n"
		"\n"
		"  -s, --socket PATH    the DMAPI socket of this node's cxfsd (default\n"
		"                       $CXFS_DM_SOCKET or " CXDM_DEFAULT_SOCKET ")\n"
		"  -t, --tier DIR       the slow tier: copies go to DIR/<fsname>/\n"
		"  -r, --rate BYTES     bandwidth limit of the tier in bytes per second\n"
		"                       (suffixes K, M, G; 0 = unlimited, the default)\n"
		"      --high PCT       above this volume use, release files (default 90)\n"
		"      --low PCT        ... until this one (default 80)\n"
		"      --no-policy      never release files by itself\n"
		"      --interval MS    how often the policy looks (default 1000)\n"
		"      --workers N      files worked on at once (default %d)\n"
		"  -l, --log FILE       log there (default: standard error); SIGHUP reopens it\n"
		"  -p, --pidfile FILE   write the daemon's PID there\n"
		"  -v, --verbose        log every event\n"
		"  -h, --help           this text\n",
		HSMD_WORKERS);
}

/* A number in [lo, hi] from @s, or exit with a usage error naming @opt. */
static unsigned long num_arg(const char *opt, const char *s, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "cxfs-hsmd: %s wants a number from %lu to %lu, not '%s'\n", opt, lo,
			hi, s);
		exit(2);
	}
	return v;
}

static void write_pidfile(void)
{
	FILE *f;

	if (!H.pidfile)
		return;
	f = fopen(H.pidfile, "w");
	if (!f) {
		hlog("cannot write the pid file %s: %s", H.pidfile, strerror(errno));
		return;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
}

/* Remove the pid file if it still names this process. */
static void remove_pidfile(void)
{
	long pid = 0;
	FILE *f;

	if (!H.pidfile)
		return;
	f = fopen(H.pidfile, "r");
	if (!f)
		return;
	if (fscanf(f, "%ld", &pid) == 1 && pid == (long)getpid())
		unlink(H.pidfile);
	fclose(f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "tier", required_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' },
		{ "high", required_argument, NULL, 'H' },
		{ "low", required_argument, NULL, 'L' },
		{ "no-policy", no_argument, NULL, 'N' },
		{ "interval", required_argument, NULL, 'i' },
		{ "workers", required_argument, NULL, 'w' },
		{ "log", required_argument, NULL, 'l' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *log_path = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	bool verbose = false, said_conn = false, said_idle = false, said_dmapi = false;
	struct cxdm_info info;
	cxdm_t *dm = NULL;
	int c, rc;

	H.high = 90;
	H.low = 80;
	H.policy = true;
	H.interval_ms = 1000;
	H.nworkers = HSMD_WORKERS;
	H.socket = getenv("CXFS_DM_SOCKET");
	if (!H.socket || !H.socket[0])
		H.socket = CXDM_DEFAULT_SOCKET;
	while ((c = getopt_long(argc, argv, "s:t:r:l:p:vh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			H.socket = optarg;
			break;
		case 't':
			H.tier_dir = optarg;
			break;
		case 'r':
			H.rate = strcmp(optarg, "0") == 0 ? 0 : cx_parse_size(optarg);
			if (!H.rate && strcmp(optarg, "0") != 0) {
				fprintf(stderr, "cxfs-hsmd: --rate '%s': want bytes per second "
						"(suffixes K, M, G)\n", optarg);
				return 2;
			}
			break;
		case 'H':
			H.high = (unsigned)num_arg("--high", optarg, 1, 100);
			break;
		case 'L':
			H.low = (unsigned)num_arg("--low", optarg, 0, 99);
			break;
		case 'N':
			H.policy = false;
			break;
		case 'i':
			H.interval_ms = (unsigned)num_arg("--interval", optarg, 10, 3600000);
			break;
		case 'w':
			H.nworkers = (unsigned)num_arg("--workers", optarg, 1, 256);
			break;
		case 'l':
			log_path = optarg;
			break;
		case 'p':
			H.pidfile = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !H.tier_dir) {
		fprintf(stderr, optind < argc ? "cxfs-hsmd: unexpected argument '%s'\n"
					      : "cxfs-hsmd: --tier DIR is required%s\n",
			optind < argc ? argv[optind] : "");
		usage(stderr);
		return 2;
	}
	if (H.low >= H.high) {
		fprintf(stderr, "cxfs-hsmd: --low (%u%%) must be below --high (%u%%)\n", H.low, H.high);
		return 2;
	}
	rc = hlog_open(log_path, verbose);
	if (rc < 0) {
		fprintf(stderr, "cxfs-hsmd: cannot open the log %s: %s\n", log_path, strerror(-rc));
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	H.started = time(NULL);
	write_pidfile();
	hlog("cxfs-hsmd starts: socket %s, tier %s", H.socket, H.tier_dir);

	while (!hsmd_quit) {
		if (hsmd_reopen) {
			hsmd_reopen = 0;
			hlog_reopen();
		}
		if (!dm) {
			rc = cxdm_open(H.socket, &dm);
			if (rc < 0) {
				if (!said_conn)
					hlog("no cxfsd answers at %s (%s); trying again every %d ms",
					     H.socket, strerror(-rc), HSMD_WAIT_MS);
				said_conn = true;
				dm = NULL;
				sleep_ms(HSMD_WAIT_MS);
				continue;
			}
			said_conn = false;
		}
		rc = cxdm_info(dm, &info);
		if (rc < 0) {
			cxdm_close(dm);
			dm = NULL;
			continue;
		}
		if (!info.dmapi) {
			if (!said_dmapi)
				hlog("the filesystem %s was not made with DMAPI (mkfs.cxfs --dmapi): "
				     "nothing to do", info.fs);
			said_dmapi = true;
			sleep_ms(HSMD_WAIT_MS);
			continue;
		}
		if (!info.is_server) {
			if (!said_idle)
				hlog("%s is not the metadata server of %s (%s is): idle", info.node,
				     info.fs, info.server[0] ? info.server : "none known");
			said_idle = true;
			sleep_ms(HSMD_WAIT_MS);
			continue;
		}
		said_idle = said_dmapi = false;
		pthread_mutex_lock(&H.mutex);
		snprintf(H.node, sizeof(H.node), "%s", info.node);
		snprintf(H.fs, sizeof(H.fs), "%s", info.fs);
		pthread_mutex_unlock(&H.mutex);
		rc = serve(dm, &info);
		/* Start over on a fresh connection: the session is left for the next owner. */
		cxdm_close(dm);
		dm = NULL;
		if (rc < 0 && !hsmd_quit)
			sleep_ms(HSMD_WAIT_MS);
	}
	cxdm_close(dm);
	hlog("cxfs-hsmd exits");
	remove_pidfile();
	return 0;
}
