/*
 * cxfsdm.c - libcxfsdm: the client side of the DMAPI socket of cxfsd
 * (include/cxfsdm.h).  It owns the connection (struct cxdm), the framing of
 * requests and replies (src/dmapi/dm_op.h) and the translation between the
 * public structures and the DmRequest / DmReply messages of proto/cxfs.proto
 * (section 7).
 *
 * Sections:
 *   - the connection: open, close, one request/reply round trip (dm__call)
 *   - the daemon and handles: info, path_to_handle, stat, bulkstat
 *   - sessions and events
 *   - event lists, managed regions, DM attributes
 *   - invisible I/O, punch, user requests
 *
 * Every reply is distrusted: counts, lengths and strings are checked
 * against the caller's buffers before anything is copied.  A reply that
 * breaks the framing (a length above DM_FRAME_MAX, bytes that do not
 * decode) closes the connection, since the stream can no longer be trusted
 * to be in step; every later call then fails with -ENOTCONN.
 *
 * Lock: dm->mutex is held across one round trip so that two threads that
 * share a connection by mistake cannot interleave frames; a connection is
 * still meant for one thread at a time (a thread in cxdm_get_events holds
 * it for as long as it waits).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cx_util.h"
#include "cxfsdm.h"
#include "dmapi/dm_op.h"
#include "proto/cxfs.pb-c.h"

_Static_assert(CXDM_IO_MAX == DM_IO_MAX, "cxfsdm.h and dm_op.h disagree on the I/O size");
_Static_assert(CXDM_IO_MAX + 4096 < DM_FRAME_MAX, "an I/O request must fit in one frame");

/* A bulkstat cursor after the last batch (the daemon's 0 would restart). */
#define DM__CURSOR_END UINT64_MAX

struct cxdm {
	pthread_mutex_t mutex;  /* held across one request/reply */
	int fd;                 /* the socket; -1 once broken (mutex) */
};

/* ---------------------------------------------------------------- the connection */

int cxdm_open(const char *sock_path, cxdm_t **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct cxdm *dm;
	int fd, rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!sock_path) {
		sock_path = getenv("CXFS_DM_SOCKET");
		if (!sock_path || !*sock_path)
			sock_path = CXDM_DEFAULT_SOCKET;
	}
	if (!*sock_path)
		return -EINVAL;
	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);

	dm = calloc(1, sizeof(*dm));
	if (!dm)
		return -ENOMEM;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto out_free;
	}
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		rc = -ENOTCONN;
		goto out_close;
	}
	rc = pthread_mutex_init(&dm->mutex, NULL);
	if (rc) {
		rc = -rc;
		goto out_close;
	}
	dm->fd = fd;
	*out = dm;
	return 0;

out_close:
	close(fd);
out_free:
	free(dm);
	return rc;
}

void cxdm_close(cxdm_t *dm)
{
	if (!dm)
		return;
	if (dm->fd >= 0)
		close(dm->fd);
	pthread_mutex_destroy(&dm->mutex);
	free(dm);
}

/* The stream is out of step or gone: no call may use it again.  dm->mutex. */
static void dm__break(struct cxdm *dm)
{
	if (dm->fd >= 0) {
		close(dm->fd);
		dm->fd = -1;
	}
}

/* Write @req as one frame and read one reply frame into *@out.  dm->mutex. */
static int dm__roundtrip(struct cxdm *dm, const Cxfs__DmRequest *req, Cxfs__DmReply **out)
{
	uint8_t *buf, hdr[4];
	size_t len;
	uint32_t rlen;
	int rc;

	len = cxfs__dm_request__get_packed_size(req);
	if (len > DM_FRAME_MAX)
		return -EMSGSIZE;
	buf = malloc(4 + len);
	if (!buf)
		return -ENOMEM;
	buf[0] = (uint8_t)len;
	buf[1] = (uint8_t)(len >> 8);
	buf[2] = (uint8_t)(len >> 16);
	buf[3] = (uint8_t)(len >> 24);
	cxfs__dm_request__pack(req, buf + 4);
	rc = cx_write_full(dm->fd, buf, 4 + len);
	free(buf);
	if (rc < 0)
		goto out_gone;

	if (cx_read_full(dm->fd, hdr, sizeof(hdr)) < 0)
		goto out_gone;
	rlen = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
	       (uint32_t)hdr[3] << 24;
	if (rlen > DM_FRAME_MAX) {
		rc = -EPROTO;
		goto out_break;
	}
	buf = malloc(rlen ? rlen : 1);
	if (!buf) {
		/* The reply cannot be skipped without reading it: give up on the stream. */
		rc = -ENOMEM;
		goto out_break;
	}
	if (cx_read_full(dm->fd, buf, rlen) < 0) {
		free(buf);
		goto out_gone;
	}
	*out = cxfs__dm_reply__unpack(NULL, rlen, buf);
	free(buf);
	if (!*out) {
		rc = -EPROTO;
		goto out_break;
	}
	return 0;

out_gone:
	/* Whatever the socket said (EPIPE, ECONNRESET, EOF): the daemon is gone. */
	rc = -ENOTCONN;
out_break:
	dm__break(dm);
	return rc;
}

/*
 * One request and its reply.  Returns a transport error (*@out NULL), or
 * the reply's err with the reply in *@out, which the caller frees with
 * dm__free() on every path (also when err is negative: DM_OP_USER's
 * -EINPROGRESS carries a token).
 */
static int dm__call(struct cxdm *dm, const Cxfs__DmRequest *req, Cxfs__DmReply **out)
{
	int rc;

	*out = NULL;
	if (!dm)
		return -EINVAL;
	pthread_mutex_lock(&dm->mutex);
	if (dm->fd < 0)
		rc = -ENOTCONN;
	else
		rc = dm__roundtrip(dm, req, out);
	pthread_mutex_unlock(&dm->mutex);
	if (rc < 0)
		return rc;
	if ((*out)->err > 0)      /* not an errno the protocol allows */
		return -EPROTO;
	return (*out)->err;
}

static void dm__free(Cxfs__DmReply *rep)
{
	if (rep)
		cxfs__dm_reply__free_unpacked(rep, NULL);
}

/* A request whose reply says nothing but its err. */
static int dm__call_err(struct cxdm *dm, const Cxfs__DmRequest *req)
{
	Cxfs__DmReply *rep;
	int rc = dm__call(dm, req, &rep);

	dm__free(rep);
	return rc;
}

/* A request that names the file @h (false: no handle). */
static bool dm__set_handle(Cxfs__DmRequest *req, uint32_t op, const struct cxdm_handle *h)
{
	req->op = op;
	if (!h)
		return false;
	req->has_ino = true;
	req->ino = h->ino;
	req->has_gen = true;
	req->gen = h->gen;
	return true;
}

/* A request about session @sid. */
static void dm__set_session(Cxfs__DmRequest *req, uint32_t op, uint64_t sid)
{
	req->op = op;
	req->has_session = true;
	req->session = sid;
}

/* The range [@off, @off + @len) of a request. */
static void dm__set_range(Cxfs__DmRequest *req, uint64_t off, uint64_t len)
{
	req->has_off = true;
	req->off = off;
	req->has_len = true;
	req->len = len;
}

/* 0 if @name is 1..CXDM_NAME_MAX bytes; -EINVAL or -ENAMETOOLONG. */
static int dm__check_name(const char *name)
{
	if (!name || !*name)
		return -EINVAL;
	if (strnlen(name, CXDM_NAME_MAX + 1) > CXDM_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Copy @src (may be NULL) into @dst[@size], truncated and terminated. */
static void dm__copy_str(char *dst, size_t size, const char *src)
{
	size_t n = src ? strnlen(src, size - 1) : 0;

	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

/* ---------------------------------------------------------------- the daemon and handles */

int cxdm_info(cxdm_t *dm, struct cxdm_info *out)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep;
	int rc;

	if (!out)
		return -EINVAL;
	req.op = DM_OP_INFO;
	rc = dm__call(dm, &req, &rep);
	if (rc < 0)
		goto out;
	memset(out, 0, sizeof(*out));
	out->is_server = rep->has_is_server && rep->is_server;
	out->dmapi = rep->has_dmapi && rep->dmapi;
	dm__copy_str(out->node, sizeof(out->node), rep->node);
	dm__copy_str(out->server, sizeof(out->server), rep->server);
	dm__copy_str(out->fs, sizeof(out->fs), rep->fs);
	out->total_bytes = rep->has_total_bytes ? rep->total_bytes : 0;
	out->free_bytes = rep->has_free_bytes ? rep->free_bytes : 0;
	out->block_size = rep->has_block_size ? rep->block_size : 0;
out:
	dm__free(rep);
	return rc;
}

static void dm__timespec(struct timespec *ts, const Cxfs__Timespec *m)
{
	ts->tv_sec = m ? (time_t)m->sec : 0;
	ts->tv_nsec = m && m->nsec < 1000000000u ? (long)m->nsec : 0;
}

static void dm__stat(struct cxdm_stat *st, const Cxfs__DmStat *m)
{
	st->h.ino = m->ino;
	st->h.gen = m->gen;
	st->mode = m->mode;
	st->nlink = m->nlink;
	st->size = m->size;
	st->blocks = m->blocks;
	dm__timespec(&st->atime, m->atime);
	dm__timespec(&st->mtime, m->mtime);
	dm__timespec(&st->ctime, m->ctime);
}

/* DM_OP_STAT of @ino, @gen (0: whatever generation is current). */
static int dm__stat_ino(cxdm_t *dm, uint64_t ino, uint64_t gen, struct cxdm_stat *out)
{
	struct cxdm_handle h = { .ino = ino, .gen = gen };
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep;
	int rc;

	dm__set_handle(&req, DM_OP_STAT, &h);
	rc = dm__call(dm, &req, &rep);
	if (rc < 0)
		goto out;
	if (rep->n_stat < 1 || rep->stat[0]->ino != ino) {
		rc = -EPROTO;
		goto out;
	}
	dm__stat(out, rep->stat[0]);
out:
	dm__free(rep);
	return rc;
}

int cxdm_path_to_handle(cxdm_t *dm, const char *path, struct cxdm_handle *out)
{
	struct cxdm_stat st;
	struct stat sb;
	int rc;

	if (!path || !out)
		return -EINVAL;
	if (stat(path, &sb) < 0)
		return -errno;
	rc = dm__stat_ino(dm, (uint64_t)sb.st_ino, 0, &st);
	if (rc < 0)
		return rc;
	*out = st.h;
	return 0;
}

int cxdm_stat(cxdm_t *dm, const struct cxdm_handle *h, struct cxdm_stat *out)
{
	if (!h || !out)
		return -EINVAL;
	return dm__stat_ino(dm, h->ino, h->gen, out);
}

int cxdm_bulkstat(cxdm_t *dm, uint64_t *cursor, struct cxdm_stat *out, size_t max)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep = NULL;
	size_t i;
	int rc;

	if (!cursor || !out || max == 0)
		return -EINVAL;
	if (*cursor == DM__CURSOR_END)
		return 0;
	req.op = DM_OP_BULKSTAT;
	req.has_off = true;
	req.off = *cursor;
	req.has_max = true;
	req.max = max > INT_MAX ? INT_MAX : (uint32_t)max;
	rc = dm__call(dm, &req, &rep);
	if (rc < 0)
		goto out;
	if (rep->n_stat > req.max) {
		rc = -EPROTO;
		goto out;
	}
	for (i = 0; i < rep->n_stat; i++)
		dm__stat(&out[i], rep->stat[i]);
	/*
	 * The daemon's cursor 0 means "no more", which as a cursor would
	 * start over: a last batch that has files leaves the end mark.
	 */
	if (rep->has_cursor && rep->cursor != 0)
		*cursor = rep->cursor;
	else
		*cursor = rep->n_stat ? DM__CURSOR_END : 0;
	rc = (int)rep->n_stat;
out:
	dm__free(rep);
	return rc;
}

/* ---------------------------------------------------------------- sessions and events */

/* DM_OP_SESSION_CREATE or _ASSUME. */
static int dm__session_named(cxdm_t *dm, uint32_t op, const char *name, uint64_t *sid)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep = NULL;
	int rc;

	if (!sid)
		return -EINVAL;
	rc = dm__check_name(name);
	if (rc < 0)
		return rc;
	req.op = op;
	req.name = (char *)name;
	rc = dm__call(dm, &req, &rep);
	if (rc < 0)
		goto out;
	if (!rep->has_session || rep->session == 0) {
		rc = -EPROTO;
		goto out;
	}
	*sid = rep->session;
out:
	dm__free(rep);
	return rc;
}

int cxdm_create_session(cxdm_t *dm, const char *name, uint64_t *sid)
{
	return dm__session_named(dm, DM_OP_SESSION_CREATE, name, sid);
}

int cxdm_assume_session(cxdm_t *dm, const char *name, uint64_t *sid)
{
	return dm__session_named(dm, DM_OP_SESSION_ASSUME, name, sid);
}

/* Send @req as @op of session @sid with @response (0 or a negative errno). */
static int dm__call_response(cxdm_t *dm, Cxfs__DmRequest *req, uint32_t op, uint64_t sid,
			     int response)
{
	if (response > 0)
		return -EINVAL;
	dm__set_session(req, op, sid);
	req->has_response = true;
	req->response = response;
	return dm__call_err(dm, req);
}

int cxdm_destroy_session(cxdm_t *dm, uint64_t sid, bool force, int error)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;

	req.has_force = true;
	req.force = force;
	return dm__call_response(dm, &req, DM_OP_SESSION_DESTROY, sid, error);
}

int cxdm_set_disposition(cxdm_t *dm, uint64_t sid, uint32_t events)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;

	dm__set_session(&req, DM_OP_DISPOSITION, sid);
	req.has_events = true;
	req.events = events;
	return dm__call_err(dm, &req);
}

int cxdm_list_sessions(cxdm_t *dm, struct cxdm_session_info *out, size_t max)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep;
	size_t i;
	int rc;

	if (!out && max > 0)
		return -EINVAL;
	req.op = DM_OP_SESSION_LIST;
	rc = dm__call(dm, &req, &rep);
	if (rc < 0)
		goto out;
	if (rep->n_sessions > INT_MAX) {
		rc = -EPROTO;
		goto out;
	}
	for (i = 0; i < rep->n_sessions && i < max; i++) {
		const Cxfs__DmSessionMsg *m = rep->sessions[i];
		struct cxdm_session_info *s = &out[i];

		s->id = m->id;
		dm__copy_str(s->name, sizeof(s->name), m->name);
		s->queued = m->queued;
		s->delivered = m->delivered;
		s->attached = m->has_attached && m->attached;
		s->disposition = m->has_disposition ? m->disposition : 0;
	}
	rc = (int)rep->n_sessions;
out:
	dm__free(rep);
	return rc;
}

/* Milliseconds of the monotonic clock. */
static uint64_t dm__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int cxdm_get_events(cxdm_t *dm, uint64_t sid, struct cxdm_event *out, size_t max,
		    unsigned timeout_ms)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep;
	uint64_t deadline, now;
	size_t i;
	int rc;

	if (!out || max == 0)
		return -EINVAL;
	dm__set_session(&req, DM_OP_GET_EVENTS, sid);
	req.has_max = true;
	req.max = max > INT_MAX ? INT_MAX : (uint32_t)max;
	req.has_timeout_ms = true;
	req.timeout_ms = timeout_ms;
	/*
	 * The daemon waits at most a slice of its own per request (a request
	 * forwarded to the MDS must not hang on for ever): ask again until
	 * @timeout_ms is over, or for ever if it is 0.
	 */
	deadline = timeout_ms ? dm__now_ms() + timeout_ms : 0;
	for (;;) {
		rc = dm__call(dm, &req, &rep);
		if (rc == 0 && rep->n_ev == 0)
			rc = -ETIMEDOUT;
		if (rc != -ETIMEDOUT || !rep)
			break;
		now = dm__now_ms();
		if (deadline && now >= deadline)
			break;
		req.timeout_ms = deadline ? (uint32_t)(deadline - now) : 0;
		dm__free(rep);
	}
	if (rc < 0)
		goto out;
	/* Events beyond @max would be delivered and never seen: refuse. */
	if (rep->n_ev > req.max) {
		rc = -EPROTO;
		goto out;
	}
	for (i = 0; i < rep->n_ev; i++) {
		const Cxfs__DmEventMsg *m = rep->ev[i];
		struct cxdm_event *e = &out[i];

		memset(e, 0, sizeof(*e));
		e->token = m->token;
		e->h.ino = m->ino;
		e->h.gen = m->gen;
		e->type = (enum cxdm_event_type)m->type;
		e->off = m->off;
		e->len = m->len;
		e->waiters = m->has_waiters ? m->waiters : 0;
		e->code = m->has_code ? m->code : 0;
	}
	rc = (int)rep->n_ev;
out:
	dm__free(rep);
	return rc;
}

int cxdm_respond(cxdm_t *dm, uint64_t sid, uint64_t token, int response)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;

	req.has_token = true;
	req.token = token;
	return dm__call_response(dm, &req, DM_OP_RESPOND, sid, response);
}

/* ---------------------------------------------------------------- event lists, regions, DM attributes */

int cxdm_set_eventlist(cxdm_t *dm, const struct cxdm_handle *h, uint32_t events)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;

	if (!dm__set_handle(&req, DM_OP_SET_EVENTLIST, h))
		return -EINVAL;
	req.has_events = true;
	req.events = events;
	return dm__call_err(dm, &req);
}

int cxdm_get_eventlist(cxdm_t *dm, const struct cxdm_handle *h, uint32_t *events)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep;
	int rc;

	if (!events || !dm__set_handle(&req, DM_OP_GET_EVENTLIST, h))
		return -EINVAL;
	rc = dm__call(dm, &req, &rep);
	if (rc == 0)
		*events = rep->has_events ? rep->events : 0;
	dm__free(rep);
	return rc;
}

int cxdm_set_regions(cxdm_t *dm, const struct cxdm_handle *h, const struct cxdm_region *r,
		     size_t n)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmRegion msg[CXDM_MAX_REGIONS];
	Cxfs__DmRegion *ptr[CXDM_MAX_REGIONS];
	size_t i;

	if ((!r && n > 0) || !dm__set_handle(&req, DM_OP_SET_REGIONS, h))
		return -EINVAL;
	if (n > CXDM_MAX_REGIONS)
		return -E2BIG;
	for (i = 0; i < n; i++) {
		cxfs__dm_region__init(&msg[i]);
		msg[i].off = r[i].off;
		msg[i].len = r[i].len;
		msg[i].events = r[i].events;
		ptr[i] = &msg[i];
	}
	req.n_regions = n;
	req.regions = ptr;
	return dm__call_err(dm, &req);
}

int cxdm_get_regions(cxdm_t *dm, const struct cxdm_handle *h, struct cxdm_region *out,
		     size_t max)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep;
	uint64_t count;
	size_t i;
	int rc;

	if ((!out && max > 0) || !dm__set_handle(&req, DM_OP_GET_REGIONS, h))
		return -EINVAL;
	rc = dm__call(dm, &req, &rep);
	if (rc < 0)
		goto out;
	count = rep->has_count ? rep->count : rep->n_regions;
	if (count < rep->n_regions || count > INT_MAX) {
		rc = -EPROTO;
		goto out;
	}
	for (i = 0; i < rep->n_regions && i < max; i++) {
		out[i].off = rep->regions[i]->off;
		out[i].len = rep->regions[i]->len;
		out[i].events = rep->regions[i]->events;
	}
	rc = (int)count;
out:
	dm__free(rep);
	return rc;
}

int cxdm_set_dmattr(cxdm_t *dm, const struct cxdm_handle *h, const char *name,
		    const void *value, size_t len)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	int rc;

	if ((!value && len > 0) || !dm__set_handle(&req, DM_OP_SET_DMATTR, h))
		return -EINVAL;
	rc = dm__check_name(name);
	if (rc < 0)
		return rc;
	if (len > CXDM_ATTR_MAX)
		return -E2BIG;
	req.name = (char *)name;
	req.has_data = true;
	req.data.data = (uint8_t *)value;
	req.data.len = len;
	return dm__call_err(dm, &req);
}

ssize_t cxdm_get_dmattr(cxdm_t *dm, const struct cxdm_handle *h, const char *name, void *buf,
			size_t size)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep;
	ssize_t rc;
	size_t len;

	if ((!buf && size > 0) || !dm__set_handle(&req, DM_OP_GET_DMATTR, h))
		return -EINVAL;
	rc = dm__check_name(name);
	if (rc < 0)
		return rc;
	req.name = (char *)name;
	rc = dm__call(dm, &req, &rep);
	if (rc < 0)
		goto out;
	len = rep->has_data ? rep->data.len : 0;
	if (len > 0 && size > 0)
		memcpy(buf, rep->data.data, len < size ? len : size);
	rc = (ssize_t)len;
out:
	dm__free(rep);
	return rc;
}

int cxdm_remove_dmattr(cxdm_t *dm, const struct cxdm_handle *h, const char *name)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	int rc;

	if (!dm__set_handle(&req, DM_OP_REMOVE_DMATTR, h))
		return -EINVAL;
	rc = dm__check_name(name);
	if (rc < 0)
		return rc;
	req.name = (char *)name;
	return dm__call_err(dm, &req);
}

/* ---------------------------------------------------------------- invisible I/O, punch, user requests */

/* One READ_INVIS of at most DM_IO_MAX bytes: bytes read, or -errno. */
static ssize_t dm__read_chunk(cxdm_t *dm, const struct cxdm_handle *h, uint64_t off,
			      uint8_t *buf, size_t len)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep;
	ssize_t rc;
	size_t n;

	dm__set_handle(&req, DM_OP_READ_INVIS, h);
	dm__set_range(&req, off, len);
	rc = dm__call(dm, &req, &rep);
	if (rc < 0)
		goto out;
	n = rep->has_data ? rep->data.len : 0;
	if (n > len) {
		rc = -EPROTO;
		goto out;
	}
	if (n > 0)
		memcpy(buf, rep->data.data, n);
	rc = (ssize_t)n;
out:
	dm__free(rep);
	return rc;
}

/* One WRITE_INVIS of at most DM_IO_MAX bytes: bytes written, or -errno. */
static ssize_t dm__write_chunk(cxdm_t *dm, const struct cxdm_handle *h, uint64_t off,
			       const uint8_t *buf, size_t len)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep;
	ssize_t rc;

	dm__set_handle(&req, DM_OP_WRITE_INVIS, h);
	req.has_off = true;
	req.off = off;
	req.has_data = true;
	req.data.data = (uint8_t *)buf;
	req.data.len = len;
	rc = dm__call(dm, &req, &rep);
	if (rc < 0)
		goto out;
	/* A reply without a count wrote the whole chunk (err 0). */
	if (rep->has_count && rep->count > len) {
		rc = -EPROTO;
		goto out;
	}
	rc = rep->has_count ? (ssize_t)rep->count : (ssize_t)len;
out:
	dm__free(rep);
	return rc;
}

/*
 * Invisible I/O of @len bytes at @off in requests of at most DM_IO_MAX.
 * A short chunk ends it (EOF for a read; a full volume for a write, as
 * write(2)); an error after some bytes returns the bytes done.
 */
static ssize_t dm__io(cxdm_t *dm, const struct cxdm_handle *h, uint64_t off, uint8_t *buf,
		      size_t len, bool write)
{
	size_t done = 0;

	if (!h || (!buf && len > 0))
		return -EINVAL;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (len > UINT64_MAX - off)
		return -EINVAL;
	while (done < len) {
		size_t want = len - done < DM_IO_MAX ? len - done : DM_IO_MAX;
		ssize_t n = write ? dm__write_chunk(dm, h, off + done, buf + done, want)
				  : dm__read_chunk(dm, h, off + done, buf + done, want);

		if (n < 0)
			return done ? (ssize_t)done : n;
		done += (size_t)n;
		if ((size_t)n < want)
			break;
	}
	return (ssize_t)done;
}

ssize_t cxdm_read_invis(cxdm_t *dm, const struct cxdm_handle *h, uint64_t off, void *buf,
			size_t len)
{
	return dm__io(dm, h, off, buf, len, false);
}

ssize_t cxdm_write_invis(cxdm_t *dm, const struct cxdm_handle *h, uint64_t off,
			 const void *buf, size_t len)
{
	/* dm__io only reads the buffer of a write. */
	return dm__io(dm, h, off, (uint8_t *)buf, len, true);
}

int cxdm_punch_hole(cxdm_t *dm, const struct cxdm_handle *h, uint64_t off, uint64_t len)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;

	if (!dm__set_handle(&req, DM_OP_PUNCH, h))
		return -EINVAL;
	dm__set_range(&req, off, len);
	return dm__call_err(dm, &req);
}

int cxdm_send_user(cxdm_t *dm, const struct cxdm_handle *h, uint32_t code)
{
	Cxfs__DmRequest req = CXFS__DM_REQUEST__INIT;
	Cxfs__DmReply *rep;
	int rc;

	if (!dm__set_handle(&req, DM_OP_USER, h))
		return -EINVAL;
	req.has_type = true;
	req.type = CXDM_EV_USER;
	req.has_code = true;
	req.code = code;
	rc = dm__call(dm, &req, &rep);
	/* The daemon answers within about 2 s; until the HSM has, ask again. */
	while (rc == -EINPROGRESS) {
		Cxfs__DmRequest wait = CXFS__DM_REQUEST__INIT;

		if (!rep->has_token) {
			rc = -EPROTO;
			break;
		}
		wait.op = DM_OP_WAIT;
		wait.has_token = true;
		wait.token = rep->token;
		dm__free(rep);
		rc = dm__call(dm, &wait, &rep);
	}
	dm__free(rep);
	return rc;
}

const char *cxdm_event_name(enum cxdm_event_type type)
{
	static const char *const names[] = {
		[CXDM_EV_READ] = "read",
		[CXDM_EV_WRITE] = "write",
		[CXDM_EV_TRUNCATE] = "truncate",
		[CXDM_EV_DESTROY] = "destroy",
		[CXDM_EV_ATTRIBUTE] = "attribute",
		[CXDM_EV_CREATE] = "create",
		[CXDM_EV_REMOVE] = "remove",
		[CXDM_EV_RENAME] = "rename",
		[CXDM_EV_USER] = "user",
	};

	if ((unsigned)type >= sizeof(names) / sizeof(names[0]))
		return "?";
	return names[type];
}
