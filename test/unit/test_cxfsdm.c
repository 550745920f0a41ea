/*
 * test_cxfsdm.c - unit tests of libcxfsdm (src/libcxfsdm) against a fake
 * daemon in the test: a thread that listens on a unix socket in a mkdtemp
 * directory, reads frames, unpacks each DmRequest, records what it got and
 * answers a canned DmReply per op.  Covered: open (env, long path, no
 * daemon), info (with strings longer than the caller's arrays),
 * path_to_handle (the ino sent is the file's), bulkstat's end, client-side
 * name checks, regions both ways (copying bounded by max), DM attributes,
 * events (waiting on across the daemon's own time-outs), invisible reads and writes split into DM_IO_MAX requests,
 * send_user looping on -EINPROGRESS, and a daemon that misbehaves: a reply
 * frame above DM_FRAME_MAX, a reply that does not decode, a closed
 * connection before and after the request.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cx_util.h"
#include "cxfsdm.h"
#include "dmapi/dm_op.h"
#include "proto/cxfs.pb-c.h"

#define FAKE_GEN 7                      /* generation the fake answers for every file */
#define FAKE_FILE_SIZE (2 * DM_IO_MAX + 1000)  /* what READ_INVIS sees */
#define FAKE_REGIONS 5                  /* regions GET_REGIONS answers */
#define FAKE_USER_TOKEN 42
#define FAKE_USER_WAITS 2               /* -EINPROGRESS answers before the result */
#define MAX_CHUNKS 16

/* How the fake answers the next request. */
enum fake_mode {
	FAKE_NORMAL,
	FAKE_OVERSIZE,          /* a reply frame longer than DM_FRAME_MAX */
	FAKE_GARBAGE,           /* a reply that does not decode */
	FAKE_CLOSE,             /* close the connection instead of answering */
	FAKE_CLOSE_AT_ACCEPT,   /* close each connection at once */
};

static struct fake {
	char dir[64];
	char path[96];
	int lfd;
	pthread_t thread;
	atomic_bool stop;
	atomic_int mode;                /* enum fake_mode */
	atomic_int closed;              /* connections the fake closed */
	pthread_mutex_t mu;
	/* What the fake saw (mu). */
	uint32_t last_op;
	uint64_t last_ino, last_gen;
	bool last_has_gen;
	size_t nregions;
	struct cxdm_region regions[CXDM_MAX_REGIONS];
	size_t nchunks;
	uint64_t chunk_off[MAX_CHUNKS], chunk_len[MAX_CHUNKS];
	bool chunk_data_ok;             /* WRITE_INVIS data had the pattern */
	int user_calls, wait_calls;
	int get_timeouts;               /* GET_EVENTS answers -ETIMEDOUT so often (-1: always) */
	int get_calls;
	uint32_t get_timeout_ms;        /* the last GET_EVENTS' timeout_ms */
} fk;

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 31 + (off >> 9));
}

/* ------------------------------------------------------------------ */
/* The fake daemon                                                      */
/* ------------------------------------------------------------------ */

/* Wait for the next frame of @fd: false if the test is over. */
static bool frame_ready(int fd)
{
	while (!atomic_load(&fk.stop)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 20) > 0)
			return true;
	}
	return false;
}

static int send_reply(int fd, const Cxfs__DmReply *rep)
{
	size_t len = cxfs__dm_reply__get_packed_size(rep);
	uint8_t *buf = malloc(4 + len);
	int rc;

	assert_non_null(buf);
	buf[0] = (uint8_t)len;
	buf[1] = (uint8_t)(len >> 8);
	buf[2] = (uint8_t)(len >> 16);
	buf[3] = (uint8_t)(len >> 24);
	cxfs__dm_reply__pack(rep, buf + 4);
	rc = cx_write_full(fd, buf, 4 + len);
	free(buf);
	return rc;
}

/* Answer one normal request; the reply's buffers live until it is sent. */
static int fake_answer(int fd, const Cxfs__DmRequest *req)
{
	Cxfs__DmReply rep = CXFS__DM_REPLY__INIT;
	Cxfs__DmStat st = CXFS__DM_STAT__INIT;
	Cxfs__DmStat *stp = &st;
	Cxfs__Timespec ts = CXFS__TIMESPEC__INIT;
	Cxfs__DmRegion reg[FAKE_REGIONS], *regp[FAKE_REGIONS];
	Cxfs__DmEventMsg ev = CXFS__DM_EVENT_MSG__INIT, *evp = &ev;
	uint8_t *data = NULL;
	size_t i;
	int rc;

	pthread_mutex_lock(&fk.mu);
	fk.last_op = req->op;
	fk.last_ino = req->ino;
	fk.last_gen = req->gen;
	fk.last_has_gen = req->has_gen;
	switch (req->op) {
	case DM_OP_INFO:
		rep.has_is_server = true;
		rep.is_server = true;
		rep.has_dmapi = true;
		rep.dmapi = true;
		rep.node = "a-node-name-that-is-much-longer-than-the-sixty-four-bytes-of-the-array";
		rep.server = "mds";
		rep.fs = "cxfs";
		rep.has_total_bytes = true;
		rep.total_bytes = 1u << 30;
		rep.has_block_size = true;
		rep.block_size = 4096;
		break;
	case DM_OP_STAT:
		st.ino = req->ino;
		st.gen = FAKE_GEN;
		st.mode = 0100644;
		st.nlink = 1;
		st.size = 12345;
		ts.sec = 1700000000;
		ts.nsec = 5;
		st.atime = st.mtime = st.ctime = &ts;
		rep.n_stat = 1;
		rep.stat = &stp;
		break;
	case DM_OP_BULKSTAT:
		/* Two files, and "no more" in the same reply. */
		st.ino = 10;
		st.gen = FAKE_GEN;
		st.atime = st.mtime = st.ctime = &ts;
		rep.n_stat = 1;
		rep.stat = &stp;
		rep.has_cursor = true;
		rep.cursor = 0;
		break;
	case DM_OP_SESSION_CREATE:
		rep.has_session = true;
		rep.session = 3;
		break;
	case DM_OP_GET_EVENTS:
		fk.get_calls++;
		fk.get_timeout_ms = req->timeout_ms;
		if (fk.get_timeouts != 0) {
			/* As the daemon does when its slice of waiting is over. */
			if (fk.get_timeouts > 0)
				fk.get_timeouts--;
			rep.err = -ETIMEDOUT;
			break;
		}
		ev.token = 99;
		ev.ino = 12;
		ev.gen = FAKE_GEN;
		ev.type = CXDM_EV_USER;
		ev.off = 0;
		ev.len = 1;
		ev.has_code = true;
		ev.code = 77;
		ev.has_waiters = true;
		ev.waiters = 2;
		rep.n_ev = 1;
		rep.ev = &evp;
		break;
	case DM_OP_SET_REGIONS:
		fk.nregions = req->n_regions;
		for (i = 0; i < req->n_regions && i < CXDM_MAX_REGIONS; i++) {
			fk.regions[i].off = req->regions[i]->off;
			fk.regions[i].len = req->regions[i]->len;
			fk.regions[i].events = req->regions[i]->events;
		}
		break;
	case DM_OP_GET_REGIONS:
		for (i = 0; i < FAKE_REGIONS; i++) {
			cxfs__dm_region__init(&reg[i]);
			reg[i].off = i * 1000;
			reg[i].len = 100;
			reg[i].events = CXDM_EV_BIT(CXDM_EV_READ);
			regp[i] = &reg[i];
		}
		rep.n_regions = FAKE_REGIONS;
		rep.regions = regp;
		rep.has_count = true;
		rep.count = FAKE_REGIONS;
		break;
	case DM_OP_GET_DMATTR:
		if (!req->name || strcmp(req->name, "hsm")) {
			rep.err = -ENODATA;
			break;
		}
		rep.has_data = true;
		rep.data.data = (uint8_t *)"0123456789";
		rep.data.len = 10;
		break;
	case DM_OP_READ_INVIS:
	case DM_OP_WRITE_INVIS:
		if (fk.nchunks < MAX_CHUNKS) {
			fk.chunk_off[fk.nchunks] = req->off;
			fk.chunk_len[fk.nchunks] = req->op == DM_OP_READ_INVIS ? req->len
									       : req->data.len;
			fk.nchunks++;
		}
		if (req->op == DM_OP_WRITE_INVIS) {
			for (i = 0; i < req->data.len; i++)
				if (req->data.data[i] != pattern(req->off + i))
					fk.chunk_data_ok = false;
			rep.has_count = true;
			rep.count = req->data.len;
			break;
		}
		if (req->len > DM_IO_MAX) {
			rep.err = -EINVAL;
			break;
		}
		rep.has_data = true;
		rep.data.len = req->off >= FAKE_FILE_SIZE ? 0
			: (FAKE_FILE_SIZE - req->off < req->len ? FAKE_FILE_SIZE - req->off : req->len);
		data = malloc(rep.data.len + 1);
		assert_non_null(data);
		for (i = 0; i < rep.data.len; i++)
			data[i] = pattern(req->off + i);
		rep.data.data = data;
		break;
	case DM_OP_USER:
		fk.user_calls++;
		rep.err = -EINPROGRESS;
		rep.has_token = true;
		rep.token = FAKE_USER_TOKEN;
		break;
	case DM_OP_WAIT:
		fk.wait_calls++;
		if (req->token != FAKE_USER_TOKEN) {
			rep.err = -ENOENT;
		} else if (fk.wait_calls < FAKE_USER_WAITS) {
			rep.err = -EINPROGRESS;
			rep.has_token = true;
			rep.token = FAKE_USER_TOKEN;
		}
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&fk.mu);
	rc = send_reply(fd, &rep);
	free(data);
	return rc;
}

/* Serve one connection until it closes (or the mode says to close it). */
static void fake_serve(int fd)
{
	for (;;) {
		Cxfs__DmRequest *req;
		uint8_t hdr[4], *buf;
		uint32_t len;
		int mode;

		if (!frame_ready(fd) || cx_read_full(fd, hdr, 4) < 0)
			return;
		len = hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (uint32_t)hdr[3] << 24;
		if (len > DM_FRAME_MAX)
			return;
		buf = malloc(len ? len : 1);
		assert_non_null(buf);
		if (cx_read_full(fd, buf, len) < 0) {
			free(buf);
			return;
		}
		req = cxfs__dm_request__unpack(NULL, len, buf);
		free(buf);
		if (!req)
			return;
		mode = atomic_load(&fk.mode);
		if (mode == FAKE_OVERSIZE) {
			uint32_t big = DM_FRAME_MAX + 1;
			uint8_t h[4] = { (uint8_t)big, (uint8_t)(big >> 8), (uint8_t)(big >> 16),
					 (uint8_t)(big >> 24) };

			cx_write_full(fd, h, 4);
		} else if (mode == FAKE_GARBAGE) {
			uint8_t g[7] = { 3, 0, 0, 0, 0xff, 0xff, 0xff };

			cx_write_full(fd, g, sizeof(g));
		} else if (mode == FAKE_NORMAL) {
			if (fake_answer(fd, req) < 0) {
				cxfs__dm_request__free_unpacked(req, NULL);
				return;
			}
		}
		cxfs__dm_request__free_unpacked(req, NULL);
		if (mode == FAKE_CLOSE)
			return;
	}
}

static void *fake_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&fk.stop)) {
		struct pollfd p = { .fd = fk.lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 20) <= 0)
			continue;
		fd = accept4(fk.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (atomic_load(&fk.mode) != FAKE_CLOSE_AT_ACCEPT)
			fake_serve(fd);
		close(fd);
		atomic_fetch_add(&fk.closed, 1);
	}
	return NULL;
}

static int setup(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	(void)state;
	memset(&fk, 0, sizeof(fk));
	/* mkdtemp's template: the prefix and six X. */
	strcpy(fk.dir, "/tmp/cxdmtest.");
	memset(fk.dir + strlen(fk.dir), 'X', 6);
	if (!mkdtemp(fk.dir))
		return -1;
	snprintf(fk.path, sizeof(fk.path), "%s/dm.sock", fk.dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fk.path);
	fk.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fk.lfd < 0 || bind(fk.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fk.lfd, 8) < 0)
		return -1;
	pthread_mutex_init(&fk.mu, NULL);
	fk.chunk_data_ok = true;
	return pthread_create(&fk.thread, NULL, fake_main, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	char file[160];

	(void)state;
	atomic_store(&fk.stop, true);
	pthread_join(fk.thread, NULL);
	close(fk.lfd);
	pthread_mutex_destroy(&fk.mu);
	unlink(fk.path);
	snprintf(file, sizeof(file), "%s/file", fk.dir);
	unlink(file);
	rmdir(fk.dir);
	return 0;
}

static cxdm_t *connect_fake(void)
{
	cxdm_t *dm = NULL;

	assert_int_equal(cxdm_open(fk.path, &dm), 0);
	assert_non_null(dm);
	return dm;
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

static void test_open(void **state)
{
	char longpath[200];
	struct cxdm_info in;
	cxdm_t *dm = NULL;

	(void)state;
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(cxdm_open(longpath, &dm), -ENAMETOOLONG);
	assert_null(dm);
	assert_int_equal(cxdm_open("/nonexistent/cxfs-dm.sock", &dm), -ENOTCONN);
	assert_null(dm);

	/* NULL: the environment's socket. */
	setenv("CXFS_DM_SOCKET", fk.path, 1);
	assert_int_equal(cxdm_open(NULL, &dm), 0);
	unsetenv("CXFS_DM_SOCKET");
	assert_int_equal(cxdm_info(dm, &in), 0);
	cxdm_close(dm);
}

static void test_info(void **state)
{
	struct cxdm_info in;
	cxdm_t *dm = connect_fake();

	(void)state;
	memset(&in, 0xaa, sizeof(in));
	assert_int_equal(cxdm_info(dm, &in), 0);
	assert_true(in.is_server);
	assert_true(in.dmapi);
	assert_int_equal(strlen(in.node), sizeof(in.node) - 1);   /* truncated */
	assert_memory_equal(in.node, "a-node-name", 11);
	assert_string_equal(in.server, "mds");
	assert_string_equal(in.fs, "cxfs");
	assert_int_equal(in.total_bytes, 1u << 30);
	assert_int_equal(in.free_bytes, 0);
	assert_int_equal(in.block_size, 4096);
	assert_int_equal(fk.last_op, DM_OP_INFO);
	cxdm_close(dm);
}

static void test_path_to_handle(void **state)
{
	char file[160];
	struct cxdm_handle h;
	struct cxdm_stat st;
	struct stat sb;
	FILE *f;
	cxdm_t *dm = connect_fake();

	(void)state;
	snprintf(file, sizeof(file), "%s/file", fk.dir);
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(stat(file, &sb), 0);

	assert_int_equal(cxdm_path_to_handle(dm, file, &h), 0);
	assert_int_equal(fk.last_op, DM_OP_STAT);
	assert_int_equal(fk.last_ino, sb.st_ino);
	assert_int_equal(fk.last_gen, 0);
	assert_int_equal(h.ino, sb.st_ino);
	assert_int_equal(h.gen, FAKE_GEN);
	assert_int_equal(cxdm_path_to_handle(dm, "/nonexistent/file", &h), -ENOENT);

	assert_int_equal(cxdm_stat(dm, &h, &st), 0);
	assert_true(fk.last_has_gen);
	assert_int_equal(fk.last_gen, FAKE_GEN);
	assert_int_equal(st.size, 12345);
	assert_int_equal(st.mode, 0100644);
	assert_int_equal(st.mtime.tv_sec, 1700000000);
	assert_int_equal(st.mtime.tv_nsec, 5);
	cxdm_close(dm);
}

static void test_bulkstat_and_sessions(void **state)
{
	struct cxdm_stat st[4];
	struct cxdm_event ev[2];
	char name[CXDM_NAME_MAX + 2];
	uint64_t cursor = 0, sid = 0;
	cxdm_t *dm = connect_fake();

	(void)state;
	/* A last batch with files: the next call says "no more" without asking. */
	assert_int_equal(cxdm_bulkstat(dm, &cursor, st, 4), 1);
	assert_int_equal(st[0].h.ino, 10);
	fk.last_op = 0;
	assert_int_equal(cxdm_bulkstat(dm, &cursor, st, 4), 0);
	assert_int_equal(fk.last_op, 0);

	assert_int_equal(cxdm_create_session(dm, "", &sid), -EINVAL);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(cxdm_create_session(dm, name, &sid), -ENAMETOOLONG);
	assert_int_equal(fk.last_op, 0);                /* refused before sending */
	name[CXDM_NAME_MAX] = '\0';
	assert_int_equal(cxdm_create_session(dm, name, &sid), 0);
	assert_int_equal(sid, 3);

	assert_int_equal(cxdm_get_events(dm, sid, ev, 2, 100), 1);
	assert_int_equal(ev[0].token, 99);
	assert_int_equal(ev[0].type, CXDM_EV_USER);
	assert_int_equal(ev[0].code, 77);
	assert_int_equal(ev[0].waiters, 2);
	assert_int_equal(ev[0].h.ino, 12);
	assert_string_equal(cxdm_event_name(ev[0].type), "user");
	assert_string_equal(cxdm_event_name(CXDM_EV_TRUNCATE), "truncate");
	assert_string_equal(cxdm_event_name((enum cxdm_event_type)42), "?");
	cxdm_close(dm);
}

static void test_get_events_waits_on(void **state)
{
	struct timespec t0, t1;
	struct cxdm_event ev[4];
	long ms;
	cxdm_t *dm = connect_fake();

	(void)state;
	/* 0 waits for ever: the daemon's time-outs are asked again. */
	fk.get_timeouts = 3;
	assert_int_equal(cxdm_get_events(dm, 3, ev, 4, 0), 1);
	assert_int_equal(fk.get_calls, 4);
	assert_int_equal(fk.get_timeout_ms, 0);

	/* A finite wait ends with -ETIMEDOUT once it is over, not before. */
	fk.get_timeouts = -1;
	fk.get_calls = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(cxdm_get_events(dm, 3, ev, 4, 30), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 29);
	assert_true(fk.get_calls >= 1);
	assert_true(fk.get_timeout_ms <= 30);
	cxdm_close(dm);
}

static void test_regions_and_dmattr(void **state)
{
	const struct cxdm_handle h = { .ino = 12, .gen = FAKE_GEN };
	const struct cxdm_region set[2] = {
		{ .off = 0, .len = 4096, .events = CXDM_EV_BIT(CXDM_EV_READ) },
		{ .off = 8192, .len = 0, .events = CXDM_EV_DATA },
	};
	struct cxdm_region r[CXDM_MAX_REGIONS + 1];
	char buf[4];
	int i;
	cxdm_t *dm = connect_fake();

	(void)state;
	assert_int_equal(cxdm_set_regions(dm, &h, set, 2), 0);
	assert_int_equal(fk.last_op, DM_OP_SET_REGIONS);
	assert_int_equal(fk.last_ino, 12);
	assert_int_equal(fk.nregions, 2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(fk.regions[i].off, set[i].off);
		assert_int_equal(fk.regions[i].len, set[i].len);
		assert_int_equal(fk.regions[i].events, set[i].events);
	}
	assert_int_equal(cxdm_set_regions(dm, &h, r, CXDM_MAX_REGIONS + 1), -E2BIG);

	/* The file has 5; only 2 are copied. */
	memset(r, 0xee, sizeof(r));
	assert_int_equal(cxdm_get_regions(dm, &h, r, 2), FAKE_REGIONS);
	assert_int_equal(r[1].off, 1000);
	assert_int_equal(r[1].len, 100);
	assert_int_equal(r[2].off, 0xeeeeeeeeeeeeeeeeull);
	assert_int_equal(cxdm_get_regions(dm, &h, NULL, 0), FAKE_REGIONS);

	/* A value of 10 bytes into a buffer of 4. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(cxdm_get_dmattr(dm, &h, "hsm", buf, sizeof(buf)), 10);
	assert_memory_equal(buf, "0123", 4);
	assert_int_equal(cxdm_get_dmattr(dm, &h, "hsm", NULL, 0), 10);
	assert_int_equal(cxdm_get_dmattr(dm, &h, "other", buf, sizeof(buf)), -ENODATA);
	cxdm_close(dm);
}

static void test_read_invis_split(void **state)
{
	const struct cxdm_handle h = { .ino = 12, .gen = FAKE_GEN };
	size_t len = 3 * DM_IO_MAX, i;
	uint8_t *buf = malloc(len);
	cxdm_t *dm = connect_fake();

	(void)state;
	assert_non_null(buf);
	assert_int_equal(cxdm_read_invis(dm, &h, 0, buf, len), FAKE_FILE_SIZE);
	/* Two full chunks, then a short one that ends the read. */
	assert_int_equal(fk.nchunks, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(fk.chunk_off[i], i * DM_IO_MAX);
		assert_int_equal(fk.chunk_len[i], DM_IO_MAX);
	}
	for (i = 0; i < FAKE_FILE_SIZE; i++)
		if (buf[i] != pattern(i))
			fail_msg("byte %zu differs", i);

	/* Past the end: 0. */
	assert_int_equal(cxdm_read_invis(dm, &h, FAKE_FILE_SIZE, buf, 10), 0);
	free(buf);
	cxdm_close(dm);
}

static void test_write_invis_split(void **state)
{
	const struct cxdm_handle h = { .ino = 12, .gen = FAKE_GEN };
	const uint64_t off = 100;
	size_t len = 2 * DM_IO_MAX + 123, i;
	uint8_t *buf = malloc(len);
	cxdm_t *dm = connect_fake();

	(void)state;
	assert_non_null(buf);
	for (i = 0; i < len; i++)
		buf[i] = pattern(off + i);
	assert_int_equal(cxdm_write_invis(dm, &h, off, buf, len), len);
	assert_int_equal(fk.nchunks, 3);
	assert_int_equal(fk.chunk_off[0], off);
	assert_int_equal(fk.chunk_len[0], DM_IO_MAX);
	assert_int_equal(fk.chunk_off[1], off + DM_IO_MAX);
	assert_int_equal(fk.chunk_len[1], DM_IO_MAX);
	assert_int_equal(fk.chunk_off[2], off + 2 * DM_IO_MAX);
	assert_int_equal(fk.chunk_len[2], 123);
	assert_true(fk.chunk_data_ok);
	free(buf);
	cxdm_close(dm);
}

static void test_send_user_waits(void **state)
{
	const struct cxdm_handle h = { .ino = 12, .gen = FAKE_GEN };
	cxdm_t *dm = connect_fake();

	(void)state;
	assert_int_equal(cxdm_send_user(dm, &h, 5), 0);
	assert_int_equal(fk.user_calls, 1);
	assert_int_equal(fk.wait_calls, FAKE_USER_WAITS);
	cxdm_close(dm);
}

/* A reply that breaks the framing: -EPROTO, then the connection is gone. */
static void check_broken_reply(enum fake_mode mode)
{
	struct cxdm_info in;
	cxdm_t *dm = connect_fake();

	atomic_store(&fk.mode, mode);
	assert_int_equal(cxdm_info(dm, &in), -EPROTO);
	atomic_store(&fk.mode, FAKE_NORMAL);
	assert_int_equal(cxdm_info(dm, &in), -ENOTCONN);
	cxdm_close(dm);
}

static void test_oversize_reply(void **state)
{
	(void)state;
	check_broken_reply(FAKE_OVERSIZE);
}

static void test_garbage_reply(void **state)
{
	(void)state;
	check_broken_reply(FAKE_GARBAGE);
}

static void test_daemon_closes(void **state)
{
	struct timespec ms = { .tv_nsec = 1000000 };
	struct cxdm_info in;
	cxdm_t *dm = connect_fake();

	(void)state;
	/* After reading the request. */
	atomic_store(&fk.mode, FAKE_CLOSE);
	assert_int_equal(cxdm_info(dm, &in), -ENOTCONN);
	atomic_store(&fk.mode, FAKE_NORMAL);
	assert_int_equal(cxdm_info(dm, &in), -ENOTCONN);
	cxdm_close(dm);

	/* Before the request is sent: a send to a closed peer, without SIGPIPE. */
	while (atomic_load(&fk.closed) < 1)
		nanosleep(&ms, NULL);
	atomic_store(&fk.mode, FAKE_CLOSE_AT_ACCEPT);
	dm = connect_fake();
	while (atomic_load(&fk.closed) < 2)
		nanosleep(&ms, NULL);
	assert_int_equal(cxdm_set_disposition(dm, 1, CXDM_EV_DATA), -ENOTCONN);
	assert_int_equal(cxdm_info(dm, &in), -ENOTCONN);
	cxdm_close(dm);
	atomic_store(&fk.mode, FAKE_NORMAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_to_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulkstat_and_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_events_waits_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_regions_and_dmattr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_invis_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_invis_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_user_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_closes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
