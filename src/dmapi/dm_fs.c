/*
 * dm_fs.c - DMAPI of one filesystem on its metadata server (see dm_fs.h):
 *
 *   1. replies (memory that a DmReply points to)
 *   2. the stored event lists and regions, loaded at start
 *   3. events: slices of a wait, why an event waits (logged), DESTROY
 *   4. the requests of dm_op.h
 *
 * Lock order: dm_fs.mu (the session owners) is a leaf; the dm core's mutex
 * and the store's mutex are taken by the calls into them, never together
 * with dm_fs.mu.  The DMAPI token (ops.excl) is taken before the store.
 */
#include "dmapi/dm_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dmapi/dm_op.h"
#include "meta/meta_store.h"
#include "vnode/vn.h"

#define DMR_MAX_EV 64
#define DMR_MAX_STAT 256
#define DMR_MAX_SESS 64
#define DM_FS_OWNERS 64
#define DM_FS_GET_MAX_MS DM_FS_SLICE_MS   /* longest GET_EVENTS wait per request */
#define DM_FS_LOG_EVERY_S 10      /* a waiting-event log line at most this often */

static const char DM_FS_EVENTS[] = "cxfs.events";
static const char DM_FS_REGIONS[] = "cxfs.regions";
#define DM_FS_REGION_BYTES 20     /* off u64, len u64, events u32, little-endian */

struct dm_fs {
	struct meta_store *st;          /* constant */
	struct vn_table *vt;            /* set before the first request */
	struct dm_ctx *ctx;             /* constant */
	const struct dm_fs_ops *ops;    /* constant */
	void *arg;
	pthread_mutex_t mu;             /* protects owners[] and last_log */
	struct { uint64_t sid, conn; } owners[DM_FS_OWNERS];  /* conn 0: no process */
	time_t last_log;
};

static void dm_fs_log(struct dm_fs *fs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dm_fs_log(struct dm_fs *fs, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fs->ops->log(fs->arg, line);
}

/* ---- 1. replies ----------------------------------------------------------- */

struct dm_reply {
	Cxfs__DmReply r;
	Cxfs__DmRegion reg[DM_MAX_REGIONS], *regp[DM_MAX_REGIONS];
	Cxfs__DmEventMsg ev[DMR_MAX_EV], *evp[DMR_MAX_EV];
	Cxfs__DmStat st[DMR_MAX_STAT], *stp[DMR_MAX_STAT];
	Cxfs__Timespec ts[DMR_MAX_STAT][3];
	Cxfs__DmSessionMsg se[DMR_MAX_SESS], *sep[DMR_MAX_SESS];
	char names[DMR_MAX_SESS][DM_NAME_MAX];
	void *data;
};

struct dm_reply *dm_reply_new(void)
{
	struct dm_reply *r = calloc(1, sizeof(*r));

	if (r)
		cxfs__dm_reply__init(&r->r);
	return r;
}

Cxfs__DmReply *dm_reply_msg(struct dm_reply *r)
{
	return &r->r;
}

void dm_reply_free(struct dm_reply *r)
{
	if (r)
		free(r->data);
	free(r);
}

static void reply_stat(struct dm_reply *r, const struct vn_attr *a)
{
	size_t i = r->r.n_stat;
	Cxfs__DmStat *s = &r->st[i];

	cxfs__dm_stat__init(s);
	s->ino = a->ino;
	s->gen = a->gen;
	s->mode = a->mode;
	s->nlink = a->nlink;
	s->size = a->size;
	s->blocks = a->blocks;
	for (int k = 0; k < 3; k++)
		cxfs__timespec__init(&r->ts[i][k]);
	r->ts[i][0].sec = a->atime.tv_sec;
	r->ts[i][0].nsec = (uint32_t)a->atime.tv_nsec;
	r->ts[i][1].sec = a->mtime.tv_sec;
	r->ts[i][1].nsec = (uint32_t)a->mtime.tv_nsec;
	r->ts[i][2].sec = a->ctime.tv_sec;
	r->ts[i][2].nsec = (uint32_t)a->ctime.tv_nsec;
	s->atime = &r->ts[i][0];
	s->mtime = &r->ts[i][1];
	s->ctime = &r->ts[i][2];
	r->stp[i] = s;
	r->r.stat = r->stp;
	r->r.n_stat = i + 1;
}

static void reply_regions(struct dm_reply *r, const struct dm_region *regs, size_t n)
{
	for (size_t i = 0; i < n && i < DM_MAX_REGIONS; i++) {
		cxfs__dm_region__init(&r->reg[i]);
		r->reg[i].off = regs[i].off;
		r->reg[i].len = regs[i].len;
		r->reg[i].events = regs[i].events;
		r->regp[i] = &r->reg[i];
	}
	r->r.regions = r->regp;
	r->r.n_regions = n < DM_MAX_REGIONS ? n : DM_MAX_REGIONS;
}

/* ---- 2. stored event lists and regions ------------------------------------ */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Decode a stored region array; -EBADMSG if it is not one. */
static int regions_decode(const void *value, size_t len, struct dm_region *out, size_t *n)
{
	const uint8_t *p = value;

	if (len % DM_FS_REGION_BYTES || len / DM_FS_REGION_BYTES > DM_MAX_REGIONS)
		return -EBADMSG;
	*n = len / DM_FS_REGION_BYTES;
	for (size_t i = 0; i < *n; i++, p += DM_FS_REGION_BYTES) {
		out[i].off = get_le(p, 8);
		out[i].len = get_le(p + 8, 8);
		out[i].events = (dm_eventset_t)get_le(p + 16, 4);
	}
	return dm_regions_validate(out, *n) ? -EBADMSG : 0;
}

static int load_events(void *arg, uint64_t ino, const void *value, size_t len)
{
	struct dm_fs *fs = arg;

	if (len == 4)
		(void)dm_set_eventlist(fs->ctx, ino, (dm_eventset_t)get_le(value, 4) & DM_EV_ALL);
	return 0;
}

static int load_regions(void *arg, uint64_t ino, const void *value, size_t len)
{
	struct dm_fs *fs = arg;
	struct dm_region r[DM_MAX_REGIONS];
	size_t n;

	if (regions_decode(value, len, r, &n) == 0)
		(void)dm_set_regions(fs->ctx, ino, r, n);
	return 0;
}

int dm_fs_create(struct meta_store *st, const struct dm_fs_ops *ops, void *arg,
		 uint64_t token_floor, struct dm_fs **out)
{
	struct dm_fs *fs = calloc(1, sizeof(*fs));
	int rc;

	if (!fs)
		return -ENOMEM;
	fs->st = st;
	fs->ops = ops;
	fs->arg = arg;
	pthread_mutex_init(&fs->mu, NULL);
	rc = dm_ctx_create(&fs->ctx);
	if (rc)
		goto out_free;
	dm_set_token_floor(fs->ctx, token_floor);
	rc = meta_dmattr_scan(st, DM_FS_EVENTS, load_events, fs);
	if (!rc)
		rc = meta_dmattr_scan(st, DM_FS_REGIONS, load_regions, fs);
	if (rc)
		goto out_ctx;
	*out = fs;
	return 0;
out_ctx:
	dm_ctx_destroy(fs->ctx);
out_free:
	pthread_mutex_destroy(&fs->mu);
	free(fs);
	return rc;
}

void dm_fs_set_table(struct dm_fs *fs, struct vn_table *vt)
{
	fs->vt = vt;
}

void dm_fs_stats(struct dm_fs *fs, struct dm_stats *out)
{
	dm_get_stats(fs->ctx, out);
}

void dm_fs_destroy(struct dm_fs *fs)
{
	if (!fs)
		return;
	dm_ctx_destroy(fs->ctx);
	pthread_mutex_destroy(&fs->mu);
	free(fs);
}

void dm_fs_interrupt(struct dm_fs *fs)
{
	dm_interrupt_all(fs->ctx, DM_EMIGRATING);
}

bool dm_fs_check(struct dm_fs *fs, uint64_t ino, enum dm_event ev, uint64_t off, uint64_t len)
{
	return dm_check(fs->ctx, ino, ev, off, len);
}

size_t dm_fs_file(struct dm_fs *fs, uint64_t ino, dm_eventset_t *events,
		  struct dm_region *regions)
{
	size_t n = dm_get_regions(fs->ctx, ino, regions, DM_MAX_REGIONS);

	*events = dm_get_eventlist(fs->ctx, ino);
	return n < DM_MAX_REGIONS ? n : DM_MAX_REGIONS;
}

/* ---- 3. events -------------------------------------------------------------- */

static const char *session_name(struct dm_fs *fs, uint64_t sid, char *buf, size_t size)
{
	struct dm_session_info info[DMR_MAX_SESS];
	size_t n = dm_session_list(fs->ctx, info, DMR_MAX_SESS);

	snprintf(buf, size, "%llu", (unsigned long long)sid);
	for (size_t i = 0; i < n && i < DMR_MAX_SESS; i++)
		if (info[i].id == sid)
			snprintf(buf, size, "%s", info[i].name);
	return buf;
}

static bool session_attached(struct dm_fs *fs, uint64_t sid)
{
	bool yes = false;

	pthread_mutex_lock(&fs->mu);
	for (int i = 0; i < DM_FS_OWNERS; i++)
		if (fs->owners[i].sid == sid && fs->owners[i].conn)
			yes = true;
	pthread_mutex_unlock(&fs->mu);
	return yes;
}

/* An event of @ino waits: say why, at most every DM_FS_LOG_EVERY_S. */
static void note_wait(struct dm_fs *fs, uint64_t ino, enum dm_event ev, uint64_t sid)
{
	time_t now = time(NULL);
	char name[DM_NAME_MAX + 24];
	bool due;

	pthread_mutex_lock(&fs->mu);
	due = now - fs->last_log >= DM_FS_LOG_EVERY_S;
	if (due)
		fs->last_log = now;
	pthread_mutex_unlock(&fs->mu);
	if (!due)
		return;
	if (!sid)
		dm_fs_log(fs, "dmapi: a %s event of inode %llu waits: no HSM session receives %s "
			  "events (is cxfs-hsmd running on this node?)", dm_event_name(ev),
			  (unsigned long long)ino, dm_event_name(ev));
	else if (!session_attached(fs, sid))
		dm_fs_log(fs, "dmapi: a %s event of inode %llu waits: HSM session '%s' has no "
			  "process (it died or disconnected); events wait until a restarted HSM "
			  "assumes the session", dm_event_name(ev), (unsigned long long)ino,
			  session_name(fs, sid, name, sizeof(name)));
	else
		dm_fs_log(fs, "dmapi: a %s event of inode %llu waits for HSM session '%s' to answer",
			  dm_event_name(ev), (unsigned long long)ino,
			  session_name(fs, sid, name, sizeof(name)));
}

int dm_fs_event(struct dm_fs *fs, uint64_t ino, enum dm_event ev, uint64_t off, uint64_t len,
		uint64_t *token)
{
	uint64_t sid = 0;
	int rc;

	if (*token == 0) {
		if (ev != DM_EV_USER && !dm_check(fs->ctx, ino, ev, off, len))
			return 0;
		for (int waited = 0; !(sid = dm_disposition(fs->ctx, ev)); waited += 50) {
			if (waited >= (int)DM_FS_SLICE_MS) {
				note_wait(fs, ino, ev, 0);
				return -EINPROGRESS;
			}
			usleep(50 * 1000);
		}
		rc = dm_event_post(fs->ctx, sid, ino, ev, off, len, token);
		if (rc == -ESRCH) {   /* the session went meanwhile */
			*token = 0;
			return -EINPROGRESS;
		}
		if (rc)
			return rc;
	}
	rc = dm_event_wait_slice(fs->ctx, *token, DM_FS_SLICE_MS);
	if (rc == -ETIMEDOUT) {
		note_wait(fs, ino, ev, dm_disposition(fs->ctx, ev));
		return -EINPROGRESS;
	}
	if (rc == -ENOENT || rc == -DM_EEARLY) {
		*token = 0;   /* ask again from the start: the regions tell */
		return -EINPROGRESS;
	}
	if (rc == -DM_EMIGRATING)
		*token = 0;   /* the MDS moves: the caller asks the new one */
	return rc;
}

uint64_t dm_fs_inactive(struct dm_fs *fs, uint64_t ino, bool gone, uint64_t gen)
{
	struct vn_attr a;
	uint64_t sid;

	if (!gone) {
		if (!(dm_get_eventlist(fs->ctx, ino) & DM_EV_BIT(DM_EV_DESTROY)))
			return 0;
		return meta_getattr(fs->st, ino, &a) == 0 ? a.gen : 0;
	}
	if (meta_getattr(fs->st, ino, &a) != -ENOENT)
		return 0;
	(void)dm_set_eventlist(fs->ctx, ino, 0);
	(void)dm_set_regions(fs->ctx, ino, NULL, 0);
	sid = dm_disposition(fs->ctx, DM_EV_DESTROY);
	if (sid && gen)
		(void)dm_event_post_async(fs->ctx, sid, ino, DM_EV_DESTROY, gen, 1);
	return 0;
}

/* ---- 4. requests ------------------------------------------------------------ */

static const struct vn_cred dm_fs_root = { .uid = 0, .gid = 0, .pid = 0, .ngroups = -1 };

/* The file @req names (ino and gen), in @a; -ESTALE if gone or reused. */
static int file_of(struct dm_fs *fs, const Cxfs__DmRequest *req, bool any_gen, struct vn_attr *a)
{
	int rc;

	if (!req->has_ino || req->ino == 0 || (!any_gen && (!req->has_gen || req->gen == 0)))
		return -EINVAL;
	rc = meta_getattr(fs->st, req->ino, a);
	if (rc == -ENOENT)
		return -ESTALE;
	if (rc)
		return rc;
	if (req->has_gen && req->gen && req->gen != a->gen)
		return -ESTALE;
	return 0;
}

/* Run @c on @ino's chain below the dmapi behavior (no event, tokens taken). */
static int vn_below(struct dm_fs *fs, uint64_t ino, struct vn_call *c)
{
	struct vnode *vn;
	int rc;

	if (!fs->vt)
		return -EAGAIN;
	rc = vn_get(fs->vt, ino, &vn);
	if (rc)
		return rc;
	c->cred = &dm_fs_root;
	rc = vn_call_below(vn, VN_POS_DMAPI, c);
	vn_put(vn, 1);
	return rc;
}

static int do_stat(struct dm_fs *fs, const Cxfs__DmRequest *req, struct dm_reply *out)
{
	struct vn_attr a, cur;
	struct vn_call c = { .op = VN_OP_GETATTR, .u.getattr = { &cur } };
	int rc = file_of(fs, req, true, &a);

	if (rc)
		return rc;
	/* Through the chain: a writer elsewhere gives back its size and times. */
	rc = vn_below(fs, a.ino, &c);
	if (rc)
		return rc == -ENOENT ? -ESTALE : rc;
	cur.gen = a.gen;
	reply_stat(out, &cur);
	return 0;
}

static int do_bulkstat(struct dm_fs *fs, const Cxfs__DmRequest *req, struct dm_reply *out)
{
	struct vn_attr *a;
	uint64_t from = req->has_off && req->off ? req->off : 1;
	int max = req->has_max && req->max && req->max < DMR_MAX_STAT ? (int)req->max : DMR_MAX_STAT;
	int n;

	a = calloc((size_t)max, sizeof(*a));
	if (!a)
		return -ENOMEM;
	n = meta_bulkstat(fs->st, from, a, max);
	if (n < 0) {
		free(a);
		return n;
	}
	for (int i = 0; i < n; i++)
		reply_stat(out, &a[i]);
	out->r.has_cursor = 1;
	out->r.cursor = n == max ? a[n - 1].ino + 1 : 0;
	free(a);
	return 0;
}

static int session_name_ok(const Cxfs__DmRequest *req)
{
	if (!req->name || !req->name[0])
		return -EINVAL;
	return strlen(req->name) < DM_NAME_MAX ? 0 : -ENAMETOOLONG;
}

static void own_session(struct dm_fs *fs, uint64_t sid, uint64_t conn)
{
	int free_slot = -1;

	if (!conn)
		return;
	pthread_mutex_lock(&fs->mu);
	for (int i = 0; i < DM_FS_OWNERS; i++) {
		if (fs->owners[i].sid == sid) {
			fs->owners[i].conn = conn;
			goto out;
		}
		if (fs->owners[i].sid == 0 && free_slot < 0)
			free_slot = i;
	}
	if (free_slot >= 0) {
		fs->owners[free_slot].sid = sid;
		fs->owners[free_slot].conn = conn;
	}
out:
	pthread_mutex_unlock(&fs->mu);
}

void dm_fs_conn_gone(struct dm_fs *fs, uint64_t conn)
{
	uint64_t lost[DM_FS_OWNERS];
	int n = 0;
	char name[DM_NAME_MAX + 24];

	pthread_mutex_lock(&fs->mu);
	for (int i = 0; i < DM_FS_OWNERS; i++)
		if (fs->owners[i].sid && fs->owners[i].conn == conn) {
			fs->owners[i].conn = 0;
			lost[n++] = fs->owners[i].sid;
		}
	pthread_mutex_unlock(&fs->mu);
	for (int i = 0; i < n; i++)
		dm_fs_log(fs, "dmapi: the process of HSM session '%s' went away; its events wait "
			  "until a process assumes the session", session_name(fs, lost[i], name,
									sizeof(name)));
}

static int do_sessions(struct dm_fs *fs, struct dm_reply *out)
{
	struct dm_session_info *info = calloc(DMR_MAX_SESS, sizeof(*info));
	size_t n;

	if (!info)
		return -ENOMEM;
	n = dm_session_list(fs->ctx, info, DMR_MAX_SESS);
	if (n > DMR_MAX_SESS)
		n = DMR_MAX_SESS;
	for (size_t i = 0; i < n; i++) {
		Cxfs__DmSessionMsg *m = &out->se[i];

		cxfs__dm_session_msg__init(m);
		m->id = info[i].id;
		memcpy(out->names[i], info[i].name, DM_NAME_MAX);
		m->name = out->names[i];
		m->queued = info[i].queued;
		m->delivered = info[i].delivered;
		m->has_attached = 1;
		m->attached = session_attached(fs, info[i].id);
		m->has_disposition = 1;
		m->disposition = info[i].disp;
		out->sep[i] = m;
	}
	out->r.sessions = out->sep;
	out->r.n_sessions = n;
	free(info);
	return 0;
}

static int do_get_events(struct dm_fs *fs, const Cxfs__DmRequest *req, struct dm_reply *out)
{
	struct dm_event_msg *ev;
	size_t max = req->has_max && req->max && req->max < DMR_MAX_EV ? req->max : DMR_MAX_EV;
	unsigned tmo = req->has_timeout_ms ? req->timeout_ms : 0;
	int n;

	if (tmo == 0 || tmo > DM_FS_GET_MAX_MS)
		tmo = DM_FS_GET_MAX_MS;
	ev = calloc(max, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	n = dm_get_events(fs->ctx, req->session, max, ev, tmo);
	for (int i = 0; i < n; i++) {
		Cxfs__DmEventMsg *m = &out->ev[i];
		struct vn_attr a;

		cxfs__dm_event_msg__init(m);
		m->token = ev[i].token;
		m->ino = ev[i].ino;
		m->type = ev[i].ev;
		m->off = ev[i].off;
		m->len = ev[i].len;
		m->has_waiters = 1;
		m->waiters = ev[i].waiters;
		if (ev[i].ev == DM_EV_DESTROY) {
			m->gen = ev[i].off;
			m->off = m->len = 0;
		} else {
			m->gen = meta_getattr(fs->st, ev[i].ino, &a) == 0 ? a.gen : 0;
		}
		if (ev[i].ev == DM_EV_USER) {
			m->has_code = 1;
			m->code = (uint32_t)ev[i].off;
			m->off = m->len = 0;
		}
		out->evp[i] = m;
	}
	free(ev);
	if (n < 0)
		return n;
	out->r.ev = out->evp;
	out->r.n_ev = (size_t)n;
	return 0;
}

/* A change of the event list or regions, under the DMAPI token at WRITE. */
struct dm_change {
	struct dm_fs *fs;
	uint64_t ino;
	bool regions;
	dm_eventset_t events;
	struct dm_region r[DM_MAX_REGIONS];
	size_t n;
};

static int apply_change(void *arg)
{
	struct dm_change *ch = arg;
	struct dm_fs *fs = ch->fs;
	uint8_t buf[DM_MAX_REGIONS * DM_FS_REGION_BYTES];
	int rc;

	if (ch->regions) {
		for (size_t i = 0; i < ch->n; i++) {
			put_le(buf + i * DM_FS_REGION_BYTES, ch->r[i].off, 8);
			put_le(buf + i * DM_FS_REGION_BYTES + 8, ch->r[i].len, 8);
			put_le(buf + i * DM_FS_REGION_BYTES + 16, ch->r[i].events, 4);
		}
		rc = ch->n ? meta_dmattr_set(fs->st, ch->ino, DM_FS_REGIONS, buf,
					     ch->n * DM_FS_REGION_BYTES)
			   : meta_dmattr_remove(fs->st, ch->ino, DM_FS_REGIONS);
		if (rc == -ENODATA)
			rc = 0;
		return rc ? rc : dm_set_regions(fs->ctx, ch->ino, ch->r, ch->n);
	}
	put_le(buf, ch->events, 4);
	rc = ch->events ? meta_dmattr_set(fs->st, ch->ino, DM_FS_EVENTS, buf, 4)
			: meta_dmattr_remove(fs->st, ch->ino, DM_FS_EVENTS);
	if (rc == -ENODATA)
		rc = 0;
	return rc ? rc : dm_set_eventlist(fs->ctx, ch->ino, ch->events);
}

static int do_change(struct dm_fs *fs, const Cxfs__DmRequest *req, bool regions)
{
	struct dm_change ch = { .fs = fs, .regions = regions };
	struct vn_attr a;
	int rc = file_of(fs, req, false, &a);

	if (rc)
		return rc;
	ch.ino = a.ino;
	if (regions) {
		if (req->n_regions > DM_MAX_REGIONS)
			return -E2BIG;
		ch.n = req->n_regions;
		for (size_t i = 0; i < ch.n; i++) {
			ch.r[i].off = req->regions[i]->off;
			ch.r[i].len = req->regions[i]->len;
			ch.r[i].events = req->regions[i]->events;
		}
		rc = dm_regions_validate(ch.r, ch.n);
		if (rc)
			return rc;
	} else {
		ch.events = req->has_events ? req->events : 0;
		if (ch.events & ~DM_EV_ALL)
			return -EINVAL;
	}
	rc = fs->ops->excl(fs->arg, ch.ino, apply_change, &ch);
	/*
	 * Durable before the HSM hears "done": an HSM marks a range back (or
	 * offline) and then answers readers or logs the recall complete; a
	 * change lost with a dead MDS would make the next one recall the
	 * range again.  The data's extents were mapped before, so they are
	 * durable too.
	 */
	return rc ? rc : meta_store_sync(fs->st);
}

static int dmattr_name_ok(const Cxfs__DmRequest *req)
{
	if (!req->name || !req->name[0] || strlen(req->name) > META_DMATTR_NAME_MAX)
		return -EINVAL;
	return strncmp(req->name, "cxfs.", 5) == 0 ? -EINVAL : 0;   /* ours */
}

static int do_dmattr(struct dm_fs *fs, const Cxfs__DmRequest *req, struct dm_reply *out)
{
	struct vn_attr a;
	int rc = file_of(fs, req, false, &a);

	if (!rc)
		rc = dmattr_name_ok(req);
	if (rc)
		return rc;
	switch (req->op) {
	case DM_OP_SET_DMATTR:
		return meta_dmattr_set(fs->st, a.ino, req->name, req->data.data,
				       req->has_data ? req->data.len : 0);
	case DM_OP_REMOVE_DMATTR:
		return meta_dmattr_remove(fs->st, a.ino, req->name);
	default:
		out->data = malloc(META_XATTR_SIZE_MAX);
		if (!out->data)
			return -ENOMEM;
		rc = meta_dmattr_get(fs->st, a.ino, req->name, out->data, META_XATTR_SIZE_MAX);
		if (rc < 0)
			return rc;
		out->r.has_data = 1;
		out->r.data.data = out->data;
		out->r.data.len = (size_t)rc;
		return 0;
	}
}

static int do_io(struct dm_fs *fs, const Cxfs__DmRequest *req, struct dm_reply *out)
{
	struct vn_attr a;
	struct vn_call c = { 0 };
	uint64_t off = req->has_off ? req->off : 0;
	int rc = file_of(fs, req, false, &a);

	if (rc)
		return rc;
	if (!S_ISREG(a.mode))
		return -EINVAL;
	if (req->op == DM_OP_READ_INVIS) {
		size_t len = req->has_len ? (size_t)req->len : 0;

		if (len > DM_IO_MAX)
			return -EINVAL;
		out->data = malloc(len ? len : 1);
		if (!out->data)
			return -ENOMEM;
		c.op = VN_OP_READ;
		c.u.read.buf = out->data;
		c.u.read.size = len;
		c.u.read.off = off;
		c.u.read.flags = VN_IO_INVISIBLE | O_DIRECT;
		rc = len ? vn_below(fs, a.ino, &c) : 0;
		if (rc < 0)
			return rc;
		out->r.has_data = 1;
		out->r.data.data = out->data;
		out->r.data.len = (size_t)rc;
		return 0;
	}
	if (req->op == DM_OP_WRITE_INVIS) {
		if (!req->has_data || req->data.len > DM_IO_MAX)
			return -EINVAL;
		c.op = VN_OP_WRITE;
		c.u.write.buf = req->data.data;
		c.u.write.size = req->data.len;
		c.u.write.off = off;
		c.u.write.flags = VN_IO_INVISIBLE;
		rc = req->data.len ? vn_below(fs, a.ino, &c) : 0;
		if (rc < 0)
			return rc;
		out->r.has_count = 1;
		out->r.count = (uint64_t)rc;
		return 0;
	}
	/* DM_OP_PUNCH */
	{
		uint64_t len = req->has_len ? req->len : 0;

		/* To EOF: blocks preallocated past the size go too. */
		if (off >= META_MAX_FILE_SIZE)
			return 0;
		if (len == 0 || len > META_MAX_FILE_SIZE - off)
			len = META_MAX_FILE_SIZE - off;
		c.op = VN_OP_FALLOCATE;
		c.u.fallocate.mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE | VN_IO_INVISIBLE;
		c.u.fallocate.off = off;
		c.u.fallocate.len = len;
		return vn_below(fs, a.ino, &c);
	}
}

static int do_event(struct dm_fs *fs, const Cxfs__DmRequest *req, struct dm_reply *out)
{
	uint64_t token = req->has_token ? req->token : 0;
	enum dm_event ev;
	uint64_t off, len;
	struct vn_attr a;
	int rc;

	if (req->op == DM_OP_WAIT) {
		if (!token)
			return -EINVAL;
		ev = DM_EV_USER;
		off = len = 0;
	} else if (req->op == DM_OP_USER) {
		rc = file_of(fs, req, false, &a);
		if (rc)
			return rc;
		ev = DM_EV_USER;
		off = req->has_code ? req->code : 0;
		len = 1;
	} else {
		ev = req->has_type ? (enum dm_event)req->type : DM_EV_NEVENTS;
		if (ev != DM_EV_READ && ev != DM_EV_WRITE && ev != DM_EV_TRUNCATE)
			return -EINVAL;
		if (!req->has_ino)
			return -EINVAL;
		off = req->has_off ? req->off : 0;
		len = req->has_len ? req->len : 0;
	}
	rc = dm_fs_event(fs, req->has_ino ? req->ino : 0, ev, off, len, &token);
	if (rc == -DM_EMIGRATING)
		rc = -EINPROGRESS;
	if (rc == -EINPROGRESS) {
		out->r.has_token = 1;
		out->r.token = token;
	}
	return rc;
}

void dm_fs_handle(struct dm_fs *fs, uint64_t conn, const Cxfs__DmRequest *req,
		  struct dm_reply *out)
{
	uint64_t sid = 0;
	int rc;

	switch (req->op) {
	case DM_OP_STAT:
		rc = do_stat(fs, req, out);
		break;
	case DM_OP_BULKSTAT:
		rc = do_bulkstat(fs, req, out);
		break;
	case DM_OP_SESSION_CREATE:
	case DM_OP_SESSION_ASSUME:
		rc = session_name_ok(req);
		if (!rc)
			rc = req->op == DM_OP_SESSION_CREATE ? dm_session_create(fs->ctx, req->name, &sid)
							      : dm_session_assume(fs->ctx, req->name, &sid);
		if (!rc) {
			own_session(fs, sid, conn);
			out->r.has_session = 1;
			out->r.session = sid;
			dm_fs_log(fs, "dmapi: HSM session '%s' (%llu) %s", req->name,
				  (unsigned long long)sid,
				  req->op == DM_OP_SESSION_CREATE ? "created" : "assumed");
		}
		break;
	case DM_OP_SESSION_DESTROY:
		rc = dm_session_destroy(fs->ctx, req->session, req->has_force && req->force,
					req->has_response ? req->response : -EIO);
		break;
	case DM_OP_SESSION_LIST:
		rc = do_sessions(fs, out);
		break;
	case DM_OP_DISPOSITION:
		rc = dm_set_disposition(fs->ctx, req->session, req->has_events ? req->events : 0);
		break;
	case DM_OP_GET_EVENTS:
		rc = do_get_events(fs, req, out);
		break;
	case DM_OP_RESPOND:
		rc = dm_respond(fs->ctx, req->session, req->has_token ? req->token : 0,
				req->has_response ? req->response : 0);
		break;
	case DM_OP_SET_EVENTLIST:
		rc = do_change(fs, req, false);
		break;
	case DM_OP_SET_REGIONS:
		rc = do_change(fs, req, true);
		break;
	case DM_OP_GET_EVENTLIST:
	case DM_OP_GET_REGIONS: {
		struct dm_region r[DM_MAX_REGIONS];
		dm_eventset_t events;
		struct vn_attr a;
		size_t n;

		rc = file_of(fs, req, true, &a);
		if (rc)
			break;
		n = dm_fs_file(fs, a.ino, &events, r);
		out->r.has_events = 1;
		out->r.events = events;
		reply_regions(out, r, n);
		out->r.has_count = 1;
		out->r.count = n;
		break;
	}
	case DM_OP_SET_DMATTR:
	case DM_OP_GET_DMATTR:
	case DM_OP_REMOVE_DMATTR:
		rc = do_dmattr(fs, req, out);
		break;
	case DM_OP_READ_INVIS:
	case DM_OP_WRITE_INVIS:
	case DM_OP_PUNCH:
		rc = do_io(fs, req, out);
		break;
	case DM_OP_USER:
	case DM_OP_WAIT:
	case DM_OP_EVENT:
		rc = do_event(fs, req, out);
		break;
	default:
		rc = -EINVAL;
		break;
	}
	out->r.err = rc;
}
