/*
 * dm_sock.c - a node's DMAPI socket (see dm_sock.h): an accepting thread and
 * one thread per connection reading frames (dm_op.h: a 4-byte little-endian
 * length, then a packed DmRequest), each answered with one DmReply frame.
 * A frame that is too long or does not decode closes its connection.
 *
 * Lock order: dm_sock.mu only (a leaf); exec runs without it.
 */
#include "dmapi/dm_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cx_util.h"
#include "dmapi/dm_op.h"

struct dm_conn {
	struct dm_conn *next;           /* under dm_sock.mu */
	struct dm_sock *s;
	int fd;
	uint64_t id;
};

struct dm_sock {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int lfd;                        /* listening socket */
	int stop_pipe[2];               /* a byte here stops the acceptor */
	dm_sock_exec_fn exec;
	dm_sock_gone_fn gone;
	void *arg;
	pthread_t acceptor;
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* a connection thread ended */
	struct dm_conn *conns;          /* live connections */
	uint64_t next_id;
};

static int serve_one(struct dm_conn *c)
{
	uint8_t hdr[4], *in = NULL, *out = NULL;
	Cxfs__DmRequest *req;
	size_t olen = 0;
	uint32_t len;
	int rc;

	rc = cx_read_full(c->fd, hdr, 4);
	if (rc)
		return rc;
	len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
	      (uint32_t)hdr[3] << 24;
	if (len > DM_FRAME_MAX)
		return -EMSGSIZE;
	in = malloc(len ? len : 1);
	if (!in)
		return -ENOMEM;
	rc = cx_read_full(c->fd, in, len);
	if (rc)
		goto out;
	req = cxfs__dm_request__unpack(NULL, len, in);
	if (!req) {
		rc = -EBADMSG;
		goto out;
	}
	rc = c->s->exec(c->s->arg, c->id, req, &out, &olen);
	cxfs__dm_request__free_unpacked(req, NULL);
	if (rc)
		goto out;
	hdr[0] = (uint8_t)olen;
	hdr[1] = (uint8_t)(olen >> 8);
	hdr[2] = (uint8_t)(olen >> 16);
	hdr[3] = (uint8_t)(olen >> 24);
	rc = cx_write_full(c->fd, hdr, 4);
	if (!rc)
		rc = cx_write_full(c->fd, out, olen);
out:
	free(out);
	free(in);
	return rc;
}

static void *conn_thread(void *arg)
{
	struct dm_conn *c = arg, **pp;
	struct dm_sock *s = c->s;
	int rc;

	while ((rc = serve_one(c)) == 0)
		;
	if (rc != -ECONNRESET && rc != -EPIPE && rc != -EBADF)
		fprintf(stderr, "cxfsd: DMAPI socket: closing a connection: %s\n", strerror(-rc));
	s->gone(s->arg, c->id);
	pthread_mutex_lock(&s->mu);
	for (pp = &s->conns; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	close(c->fd);
	free(c);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void *acceptor(void *arg)
{
	struct dm_sock *s = arg;
	struct pollfd p[2] = { { s->lfd, POLLIN, 0 }, { s->stop_pipe[0], POLLIN, 0 } };

	for (;;) {
		struct dm_conn *c;
		pthread_attr_t at;
		pthread_t t;
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->s = s;
		c->fd = fd;
		pthread_mutex_lock(&s->mu);
		c->id = ++s->next_id;
		c->next = s->conns;
		s->conns = c;
		pthread_mutex_unlock(&s->mu);
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, conn_thread, c)) {
			struct dm_conn **pp;

			pthread_mutex_lock(&s->mu);
			for (pp = &s->conns; *pp != c; pp = &(*pp)->next)
				;
			*pp = c->next;
			pthread_mutex_unlock(&s->mu);
			close(fd);
			free(c);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

int dm_sock_start(const char *path, dm_sock_exec_fn exec, dm_sock_gone_fn gone, void *arg,
		  struct dm_sock **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct dm_sock *s;
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "DMAPI socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->exec = exec;
	s->gone = gone;
	s->arg = arg;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create the DMAPI socket: %s", strerror(-rc));
		goto out_free;
	}
	memcpy(sa.sun_path, path, strlen(path));
	unlink(path);
	if (bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
	    listen(s->lfd, 16) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen at %s: %s", path, strerror(-rc));
		goto out_free;
	}
	rc = -pthread_create(&s->acceptor, NULL, acceptor, s);
	if (rc) {
		snprintf(err, errlen, "cannot start the DMAPI socket's thread: %s", strerror(-rc));
		unlink(path);
		goto out_free;
	}
	*out = s;
	return 0;
out_free:
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->stop_pipe[0] >= 0) {
		close(s->stop_pipe[0]);
		close(s->stop_pipe[1]);
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return rc;
}

void dm_sock_stop(struct dm_sock *s)
{
	if (!s)
		return;
	(void)!write(s->stop_pipe[1], "x", 1);
	pthread_join(s->acceptor, NULL);
	close(s->lfd);
	unlink(s->path);
	pthread_mutex_lock(&s->mu);
	for (struct dm_conn *c = s->conns; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	while (s->conns)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
