/*
 * blk_iscsi.c - the iSCSI backend of the block device layer: one libiscsi
 * session per device, driven by a dedicated I/O thread.
 *
 * Divisions of this file:
 *   1. URI parsing and the session (connect, log in, a command run
 *      synchronously on a fresh session, READ CAPACITY(16)).
 *   2. Commands: what a caller queues, how the I/O thread issues one
 *      (READ(16), WRITE(16), SYNCHRONIZE CACHE(16), PERSISTENT RESERVE OUT
 *      and IN) and how its completion is classified.
 *   3. The I/O thread: libiscsi's event loop, reconnection, and the
 *      re-registration of our reservation key on a new session.
 *   4. The caller side and the ops table.
 *
 * A caller splits its request into commands of at most 256 KiB (tgtd
 * negotiates MaxBurstLength 256 KiB; larger commands are several times
 * slower), queues them on is->submit, wakes the I/O thread through an
 * eventfd and sleeps on a condition variable of its own until all of them
 * complete.  Only the I/O thread touches the libiscsi context once the
 * device is open, so libiscsi needs no locking.
 *
 * Reconnection does not rely on libiscsi's automatic reconnect (which is
 * switched off): when the connection fails the I/O thread destroys the
 * context, which cancels every command in flight; the cancelled commands go
 * back on its retry list, and after a new login with the same ISID they are
 * issued again.  A write is acknowledged to its caller only on GOOD status
 * from the target, so no acknowledged write is lost; an unacknowledged one
 * may be executed twice, which is harmless for a write of fixed data.
 *
 * Persistent reservations and reconnection.  The same ISID does not keep a
 * registration alive everywhere: tgtd ties each registration to the session
 * (its TSIH), so a new session is an unregistered I_T nexus (its writes meet
 * RESERVATION CONFLICT) while the old registration stays listed.  So before
 * the retry list is reissued on a new session of a registered device, the
 * I/O thread checks READ KEYS and registers our key again only if it is
 * still listed (blk.h, "Re-registration after a reconnect").
 *
 * A data command that ends in RESERVATION CONFLICT is not retried: it fails
 * with BLK_EFENCED and fences the device, and a fenced device's writes and
 * flushes still queued are failed the same way instead of being issued.
 *
 * Lock order: is->lock is the only lock here and is never held across a
 * libiscsi call.  Each caller's wait.cond is used with is->lock.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "block/blk_i.h"

#define BLK__ISCSI_PORT 3260
#define BLK__ISCSI_CHUNK (256u * 1024)      /* bytes per READ(16)/WRITE(16) */
#define BLK__ISCSI_STACK_CMDS 4             /* requests up to 1 MiB need no malloc */
#define BLK__ISCSI_RETRIES 8                /* reissues after UNIT ATTENTION or BUSY */
#define BLK__ISCSI_GIVEUP_MS 60000          /* fail queued commands after this long down */
#define BLK__ISCSI_POLL_MS 1000             /* idle wake-up to let libiscsi run timers */
#define BLK__ISCSI_SYNC_MS 10000            /* bound of a command run by blk__iscsi_run_sync() */
#define BLK__ISCSI_INITIATOR_PREFIX "iqn.2026-11.org.cxfs:"

/* ------------------------------------------------------------------ */
/* 1. URI parsing and the session                                      */
/* ------------------------------------------------------------------ */

enum blk__iscsi_op {
	BLK__ISCSI_READ,
	BLK__ISCSI_WRITE,
	BLK__ISCSI_FLUSH,
	BLK__ISCSI_PR_OUT,
	BLK__ISCSI_PR_IN,
};

_Static_assert((int)BLK__PR_RESERVE == (int)SCSI_PERSISTENT_RESERVE_RESERVE &&
	       (int)BLK__PR_PREEMPT == (int)SCSI_PERSISTENT_RESERVE_PREEMPT &&
	       (int)BLK__PR_REGISTER_IGNORE ==
		       (int)SCSI_PERSISTENT_RESERVE_REGISTER_AND_IGNORE_EXISTING_KEY &&
	       BLK_PR_TYPE_WE_RO == SCSI_PERSISTENT_RESERVE_TYPE_WRITE_EXCLUSIVE_REGISTRANTS_ONLY,
	       "SPC-3 numbers in blk_i.h and blk.h match libiscsi's");

struct blk__iscsi;

/* What a caller waits for: a group of commands, usually one request. */
struct blk__iscsi_wait {
	pthread_cond_t cond;              /* signalled when pending drops to 0 */
	unsigned pending;                 /* commands not complete; protected by is->lock */
	int err;                          /* first error of the group; protected by is->lock */
};

/*
 * One SCSI command.  It lives in its caller's memory until the caller's
 * wait completes.  The caller fills in the request fields before queueing;
 * after that only the I/O thread touches the command.
 */
struct blk__iscsi_cmd {
	enum blk__iscsi_op op;            /* what to issue */
	uint64_t lba;                     /* first logical block (READ/WRITE) */
	struct scsi_iovec iov;            /* the caller's data buffer (READ/WRITE) */
	struct blk__pr_out pr_req;        /* PERSISTENT RESERVE OUT: what to send */
	int pr_in_sa;                     /* PERSISTENT RESERVE IN service action */
	struct blk_pr_state *pr_state;    /* PERSISTENT RESERVE IN: decoded into this */
	struct blk__iscsi_wait *wait;     /* the caller waiting for this command */
	struct blk__iscsi *is;            /* the device, for the completion callback */
	int retries;                      /* reissues so far after UA/BUSY; I/O thread */
	struct scsi_task *task;           /* the libiscsi task in flight, or NULL; I/O thread */
	struct blk__iscsi_cmd *prev, *next; /* in is->submit (is->lock) or in is->inflight
	                                     * or is->retry (I/O thread only) */
};

/* A singly linked FIFO of commands, linked through next. */
struct blk__iscsi_queue {
	struct blk__iscsi_cmd *head, *tail;
};

struct blk__iscsi {
	struct blk_dev *dev;              /* owner, for sizes and statistics */
	char *host;                       /* host name or address, without brackets */
	int port;                         /* TCP port */
	char *portal;                     /* "HOST:PORT" for libiscsi */
	char *target;                     /* target IQN */
	int lun;                          /* LUN number */
	char *initiator;                  /* our initiator IQN */
	uint32_t isid;                    /* random ISID qualifier, the same for every login */
	int eventfd;                      /* callers write it to wake the I/O thread */
	pthread_t thread;                 /* the I/O thread */

	pthread_mutex_t lock;             /* protects the fields down to the blank line */
	struct blk__iscsi_queue submit;   /* commands queued by callers */
	int wake_pending;                 /* eventfd written and not yet drained */
	int stopping;                     /* blk_close() asked the thread to exit */

	/* The I/O thread's own state; nobody else touches it after open. */
	struct iscsi_context *ctx;        /* the session, NULL while disconnected */
	struct blk__iscsi_cmd *inflight;  /* issued, not completed (doubly linked) */
	struct blk__iscsi_queue retry;    /* to be issued before new commands */
	int broken;                       /* the connection failed: reconnect first */
	struct blk_pr_state pr_before, pr_after; /* READ KEYS around a re-registration */
	struct scsi_task *sync_task;      /* the command blk__iscsi_run_sync() waits for */
	int sync_done;                    /* its completion was seen */
	int sync_abandoned;               /* given up: its cancellation by
	                                   * iscsi_destroy_context() frees it */
};

static void blk__iscsi_queue_push(struct blk__iscsi_queue *q, struct blk__iscsi_cmd *c)
{
	c->next = NULL;
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
}

static struct blk__iscsi_cmd *blk__iscsi_queue_pop(struct blk__iscsi_queue *q)
{
	struct blk__iscsi_cmd *c = q->head;

	if (c) {
		q->head = c->next;
		if (!q->head)
			q->tail = NULL;
	}
	return c;
}

/* Append all of @from to @to, leaving @from empty. */
static void blk__iscsi_queue_splice(struct blk__iscsi_queue *to, struct blk__iscsi_queue *from)
{
	if (!from->head)
		return;
	if (to->tail)
		to->tail->next = from->head;
	else
		to->head = from->head;
	to->tail = from->tail;
	from->head = from->tail = NULL;
}

/* Parse a decimal number in [0, max] spanning [s, e). */
static int blk__iscsi_parse_num(const char *s, const char *e, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (s == e)
		return -EINVAL;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/*
 * Parse "iscsi://HOST[:PORT]/TARGET-IQN/LUN" (HOST may be "[v6-address]")
 * into is->portal, is->target and is->lun.
 */
static int blk__iscsi_parse_uri(struct blk__iscsi *is, const char *uri)
{
	const char *host = uri + strlen("iscsi://");
	const char *slash, *last, *hend, *colon = NULL;
	unsigned long port = BLK__ISCSI_PORT, lun;
	int n;

	slash = strchr(host, '/');
	last = strrchr(host, '/');
	if (!slash || slash == host || last == slash || last == slash + 1)
		return -EINVAL;
	if (host[0] == '[') {
		hend = memchr(host, ']', (size_t)(slash - host));
		if (!hend)
			return -EINVAL;
		hend++;
		if (hend != slash && *hend != ':')
			return -EINVAL;
		if (hend != slash)
			colon = hend;
	} else {
		colon = memchr(host, ':', (size_t)(slash - host));
		hend = colon ? colon : slash;
	}
	if (hend == host)
		return -EINVAL;
	if (colon && (blk__iscsi_parse_num(colon + 1, slash, 65535, &port) < 0 || port == 0))
		return -EINVAL;
	if (blk__iscsi_parse_num(last + 1, last + strlen(last), 16383, &lun) < 0)
		return -EINVAL;

	n = (int)(hend - host);
	if (asprintf(&is->portal, "%.*s:%lu", n, host, port) < 0) {
		is->portal = NULL;
		return -ENOMEM;
	}
	if (host[0] == '[')
		is->host = strndup(host + 1, (size_t)n - 2);
	else
		is->host = strndup(host, (size_t)n);
	if (!is->host)
		return -ENOMEM;
	is->port = (int)port;
	is->target = strndup(slash + 1, (size_t)(last - slash - 1));
	if (!is->target)
		return -ENOMEM;
	is->lun = (int)lun;
	return 0;
}

/* Our initiator name: @given, or the default derived from the host name. */
static int blk__iscsi_set_initiator(struct blk__iscsi *is, const char *given)
{
	char host[256];

	if (given) {
		is->initiator = strdup(given);
	} else {
		if (gethostname(host, sizeof(host)) < 0)
			return -errno;
		host[sizeof(host) - 1] = '\0';
		if (asprintf(&is->initiator, "%s%s", BLK__ISCSI_INITIATOR_PREFIX, host) < 0)
			is->initiator = NULL;
	}
	return is->initiator ? 0 : -ENOMEM;
}

/*
 * Classify a failed login.  libiscsi's message does not keep the errno of
 * the TCP connect, so try a plain TCP connection to the portal: refused or
 * unreachable is the network's answer; if it connects, the login failed.
 */
static int blk__iscsi_connect_errno(const struct blk__iscsi *is)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	char port[8];
	int fd, rc = -EIO;

	snprintf(port, sizeof(port), "%d", is->port);
	if (getaddrinfo(is->host, port, &hints, &ai) != 0)
		return -EHOSTUNREACH;
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd >= 0) {
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			if (errno == ECONNREFUSED)
				rc = -ECONNREFUSED;
			else if (errno == EHOSTUNREACH || errno == ENETUNREACH || errno == ETIMEDOUT)
				rc = -EHOSTUNREACH;
		}
		close(fd);
	}
	freeaddrinfo(ai);
	return rc;
}

/*
 * Connect and log in to the LUN.  Returns the context or NULL with *@err
 * set; logs the reason if @verbose.
 */
static struct iscsi_context *blk__iscsi_connect(struct blk__iscsi *is, int verbose, int *err)
{
	struct iscsi_context *ctx;

	ctx = iscsi_create_context(is->initiator);
	if (!ctx) {
		*err = -ENOMEM;
		return NULL;
	}
	iscsi_set_noautoreconnect(ctx, 1);
	/* TCP options are applied when the socket is created. */
	iscsi_set_tcp_syncnt(ctx, 3);
	iscsi_set_tcp_keepidle(ctx, 10);
	iscsi_set_tcp_keepcnt(ctx, 3);
	iscsi_set_tcp_keepintvl(ctx, 3);
	if (iscsi_set_targetname(ctx, is->target) < 0 ||
	    iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL) < 0 ||
	    iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C) < 0 ||
	    iscsi_set_isid_random(ctx, is->isid, 0) < 0 ||
	    iscsi_full_connect_sync(ctx, is->portal, is->lun) < 0) {
		if (verbose)
			fprintf(stderr, "cxfs blk: cannot log in to %s on %s lun %d: %s\n",
				is->target, is->portal, is->lun, iscsi_get_error(ctx));
		iscsi_destroy_context(ctx);
		*err = verbose ? blk__iscsi_connect_errno(is) : -EIO;
		return NULL;
	}
	return ctx;
}

static uint64_t blk__iscsi_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void blk__iscsi_sync_cb(struct iscsi_context *ctx, int status, void *command_data, void *private_data)
{
	struct blk__iscsi *is = private_data;

	(void)ctx;
	(void)command_data;
	if (is->sync_abandoned) {
		scsi_free_scsi_task(is->sync_task);
		is->sync_task = NULL;
		return;
	}
	is->sync_task->status = status;
	is->sync_done = 1;
}

/*
 * Issue @task on @ctx and wait for it, at most BLK__ISCSI_SYNC_MS, serving
 * @ctx ourselves: for a fresh session on which nothing else is in flight (in
 * blk_open() before the I/O thread runs, or in the I/O thread while it logs
 * in again).  libiscsi's *_sync calls are not used: when their session fails
 * they return with the command still queued, pointing at their dead stack
 * frame, which iscsi_destroy_context() then writes to; our wait state lives
 * in @is.  Returns the completed task (status set; the caller frees it), or
 * NULL if @task is NULL, the session failed or the time ran out: then the
 * caller must destroy @ctx, which frees the task.
 */
static struct scsi_task *blk__iscsi_run_sync(struct blk__iscsi *is, struct iscsi_context *ctx,
					     struct scsi_task *task)
{
	uint64_t deadline = blk__iscsi_now_ms() + BLK__ISCSI_SYNC_MS;
	struct pollfd pfd;

	if (!task)
		return NULL;
	is->sync_task = task;
	is->sync_done = 0;
	is->sync_abandoned = 0;
	if (iscsi_scsi_command_async(ctx, is->lun, task, blk__iscsi_sync_cb, NULL, is) < 0) {
		scsi_free_scsi_task(task);
		return NULL;
	}
	while (!is->sync_done) {
		pfd.fd = iscsi_get_fd(ctx);
		pfd.events = (short)iscsi_which_events(ctx);
		pfd.revents = 0;
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			pfd.revents = POLLERR;
		if (blk__iscsi_now_ms() > deadline || iscsi_service(ctx, pfd.revents) < 0) {
			is->sync_abandoned = 1;
			return NULL;
		}
	}
	return task;
}

/* READ CAPACITY(16) on a fresh session, before the I/O thread runs. */
static int blk__iscsi_read_capacity(struct blk__iscsi *is)
{
	struct scsi_readcapacity16 *rc16;
	struct scsi_task *task = NULL;
	int tries, rc = -EIO;

	for (tries = 0; tries < BLK__ISCSI_RETRIES; tries++) {
		task = blk__iscsi_run_sync(is, is->ctx, scsi_cdb_readcapacity16());
		if (!task || task->status != SCSI_STATUS_CHECK_CONDITION ||
		    task->sense.key != SCSI_SENSE_UNIT_ATTENTION)
			break;
		scsi_free_scsi_task(task);
		task = NULL;
	}
	if (!task || task->status != SCSI_STATUS_GOOD) {
		fprintf(stderr, "cxfs blk: READ CAPACITY(16) failed on %s: %s\n",
			is->dev->uri, iscsi_get_error(is->ctx));
		goto out_free_task;
	}
	rc16 = scsi_datain_unmarshall(task);
	if (!rc16 || rc16->block_length == 0 ||
	    (rc16->block_length & (rc16->block_length - 1)) != 0) {
		fprintf(stderr, "cxfs blk: bad READ CAPACITY(16) data from %s\n", is->dev->uri);
		goto out_free_task;
	}
	is->dev->sector_size = rc16->block_length;
	is->dev->size = (rc16->returned_lba + 1) * rc16->block_length;
	rc = 0;
out_free_task:
	if (task)
		scsi_free_scsi_task(task);
	return rc;
}

/* ------------------------------------------------------------------ */
/* 2. Commands                                                         */
/* ------------------------------------------------------------------ */

static void blk__iscsi_inflight_remove(struct blk__iscsi *is, struct blk__iscsi_cmd *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		is->inflight = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

/* Complete @c with @rc and wake its caller if it was the last of its group. */
static void blk__iscsi_complete(struct blk__iscsi *is, struct blk__iscsi_cmd *c, int rc)
{
	struct blk__iscsi_wait *w = c->wait;

	pthread_mutex_lock(&is->lock);
	if (rc < 0 && w->err == 0)
		w->err = rc;
	/* Signal under the lock: once it is dropped, w may be gone. */
	if (--w->pending == 0)
		pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&is->lock);
}

/* Fail every command the I/O thread holds or callers have queued. */
static void blk__iscsi_fail_queued(struct blk__iscsi *is, int rc)
{
	struct blk__iscsi_cmd *c;

	pthread_mutex_lock(&is->lock);
	blk__iscsi_queue_splice(&is->retry, &is->submit);
	pthread_mutex_unlock(&is->lock);
	while ((c = blk__iscsi_queue_pop(&is->retry)))
		blk__iscsi_complete(is, c, rc);
}

/*
 * The errno for a command @op that finished with a SCSI status other than
 * GOOD after @retries reissues, or 1 if it should be issued again.  A
 * reservation conflict is final: retrying cannot change the target's mind.
 */
static int blk__iscsi_classify(enum blk__iscsi_op op, int retries, const struct scsi_task *task)
{
	switch (task->status) {
	case SCSI_STATUS_BUSY:
	case SCSI_STATUS_TASK_SET_FULL:
		return retries < BLK__ISCSI_RETRIES ? 1 : -EIO;
	case SCSI_STATUS_RESERVATION_CONFLICT:
		return BLK_EFENCED;
	case SCSI_STATUS_CHECK_CONDITION:
		if (task->sense.key == SCSI_SENSE_UNIT_ATTENTION)
			return retries < BLK__ISCSI_RETRIES ? 1 : -EIO;
		if (task->sense.key == SCSI_SENSE_ILLEGAL_REQUEST &&
		    task->sense.ascq == SCSI_SENSE_ASCQ_LBA_OUT_OF_RANGE)
			return op == BLK__ISCSI_WRITE ? -ENOSPC : -EINVAL;
		return -EIO;
	default:
		return -EIO;
	}
}

/* A data command (not a persistent-reservation one): a conflict fences. */
static int blk__iscsi_is_data(enum blk__iscsi_op op)
{
	return op == BLK__ISCSI_READ || op == BLK__ISCSI_WRITE || op == BLK__ISCSI_FLUSH;
}

/* Decode a GOOD PERSISTENT RESERVE IN answer into @st. */
static int blk__iscsi_pr_in_decode(int sa, const struct scsi_task *task, struct blk_pr_state *st)
{
	const unsigned char *d = task->datain.data;
	size_t len = task->datain.size > 0 ? (size_t)task->datain.size : 0;

	if (!d)
		len = 0;
	if (sa == SCSI_PERSISTENT_RESERVE_READ_KEYS)
		return blk__pr_parse_keys(d, len, st);
	return blk__pr_parse_reservation(d, len, st);
}

struct scsi_task *blk__iscsi_pr_out_task(const struct blk__pr_out *req)
{
	struct scsi_persistent_reserve_out_basic pr = {
		.reservation_key = req->key,
		.service_action_reservation_key = req->sa_key,
	};

	/* libiscsi copies the parameter list into the task. */
	return scsi_cdb_persistent_reserve_out((enum scsi_persistent_out_sa)req->sa,
					       SCSI_PERSISTENT_RESERVE_SCOPE_LU,
					       (enum scsi_persistent_out_type)req->type, &pr);
}

/* libiscsi's completion callback for every command; runs in the I/O thread. */
static void blk__iscsi_cb(struct iscsi_context *ctx, int status, void *command_data, void *private_data)
{
	struct blk__iscsi_cmd *c = private_data;
	struct blk__iscsi *is = c->is;
	struct scsi_task *task = c->task;
	int rc;

	blk__iscsi_inflight_remove(is, c);
	c->task = NULL;
	switch (status) {
	case SCSI_STATUS_CANCELLED:
	case SCSI_STATUS_ERROR:
	case SCSI_STATUS_TIMEOUT:
		/* The transport failed, not the command: issue it again on a
		 * new connection. */
		is->broken = 1;
		blk__iscsi_queue_push(&is->retry, c);
		scsi_free_scsi_task(task);
		return;
	case SCSI_STATUS_GOOD:
		rc = 0;
		if (c->op == BLK__ISCSI_READ && task->residual_status == SCSI_RESIDUAL_UNDERFLOW &&
		    task->residual > 0)
			rc = -EIO;
		else if (c->op == BLK__ISCSI_PR_OUT)
			blk__pr_done(is->dev, &c->pr_req);
		else if (c->op == BLK__ISCSI_PR_IN)
			rc = blk__iscsi_pr_in_decode(c->pr_in_sa, task, c->pr_state);
		break;
	default:
		rc = blk__iscsi_classify(c->op, c->retries, task);
		if (rc == 1) {
			c->retries++;
			blk__iscsi_queue_push(&is->retry, c);
			scsi_free_scsi_task(task);
			return;
		}
		if (rc == BLK_EFENCED && blk__iscsi_is_data(c->op)) {
			atomic_fetch_add_explicit(&is->dev->n_conflicts, 1, memory_order_relaxed);
			blk__fence(is->dev, "the target answered RESERVATION CONFLICT");
		} else if (rc != BLK_EFENCED) {
			fprintf(stderr, "cxfs blk: %s: SCSI command 0x%02x failed: %s\n",
				is->dev->uri, task->cdb[0], iscsi_get_error(ctx));
		}
		break;
	}
	scsi_free_scsi_task(task);
	blk__iscsi_complete(is, c, rc);
}

/* Issue @c on the current session (I/O thread). */
static void blk__iscsi_issue(struct blk__iscsi *is, struct blk__iscsi_cmd *c)
{
	uint32_t ss = is->dev->sector_size, len = (uint32_t)c->iov.iov_len;
	struct scsi_task *task = NULL;

	if ((c->op == BLK__ISCSI_WRITE || c->op == BLK__ISCSI_FLUSH) && blk_fenced(is->dev)) {
		blk__iscsi_complete(is, c, BLK_EFENCED);
		return;
	}
	switch (c->op) {
	case BLK__ISCSI_READ:
		task = iscsi_read16_iov_task(is->ctx, is->lun, c->lba, len, (int)ss, 0, 0, 0, 0, 0,
					     blk__iscsi_cb, c, &c->iov, 1);
		break;
	case BLK__ISCSI_WRITE:
		task = iscsi_write16_iov_task(is->ctx, is->lun, c->lba, NULL, len, (int)ss, 0, 0, 0, 0, 0,
					      blk__iscsi_cb, c, &c->iov, 1);
		break;
	case BLK__ISCSI_FLUSH:
		task = iscsi_synchronizecache16_task(is->ctx, is->lun, 0, 0, 0, 0, blk__iscsi_cb, c);
		break;
	case BLK__ISCSI_PR_OUT:
		task = blk__iscsi_pr_out_task(&c->pr_req);
		if (task && iscsi_scsi_command_async(is->ctx, is->lun, task, blk__iscsi_cb, NULL, c) < 0) {
			scsi_free_scsi_task(task);
			task = NULL;
		}
		break;
	case BLK__ISCSI_PR_IN:
		task = iscsi_persistent_reserve_in_task(is->ctx, is->lun, c->pr_in_sa, BLK__PR_IN_LEN,
							blk__iscsi_cb, c);
		break;
	}
	if (!task) {
		fprintf(stderr, "cxfs blk: %s: cannot queue a SCSI command: %s\n",
			is->dev->uri, iscsi_get_error(is->ctx));
		blk__iscsi_complete(is, c, -EIO);
		return;
	}
	c->task = task;
	c->prev = NULL;
	c->next = is->inflight;
	if (is->inflight)
		is->inflight->prev = c;
	is->inflight = c;
}

/* ------------------------------------------------------------------ */
/* 3. The I/O thread                                                   */
/* ------------------------------------------------------------------ */

static void blk__iscsi_drain_eventfd(struct blk__iscsi *is)
{
	uint64_t v;

	if (read(is->eventfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		fprintf(stderr, "cxfs blk: eventfd read: %s\n", strerror(errno));
}

/* Sleep up to @ms or until a caller wakes us; returns 1 if closing. */
static int blk__iscsi_nap(struct blk__iscsi *is, int ms)
{
	struct pollfd pfd = { .fd = is->eventfd, .events = POLLIN };
	int stopping;

	if (poll(&pfd, 1, ms) > 0)
		blk__iscsi_drain_eventfd(is);
	pthread_mutex_lock(&is->lock);
	is->wake_pending = 0;
	stopping = is->stopping;
	pthread_mutex_unlock(&is->lock);
	return stopping;
}

/*
 * One persistent-reservation command on the fresh session @ctx, run by the
 * I/O thread before anything is reissued: PERSISTENT RESERVE OUT @out, or if
 * @out is NULL PERSISTENT RESERVE IN @in_sa decoded into @st.  Returns 0,
 * BLK_EFENCED on RESERVATION CONFLICT, -EPIPE if the session failed or did
 * not answer in time (destroy it and log in again), -EIO otherwise.
 */
static int blk__iscsi_pr_sync(struct blk__iscsi *is, struct iscsi_context *ctx, int in_sa,
			      const struct blk__pr_out *out, struct blk_pr_state *st)
{
	struct scsi_task *task;
	int retries, rc;

	for (retries = 0;; retries++) {
		if (out)
			task = blk__iscsi_pr_out_task(out);
		else
			task = scsi_cdb_persistent_reserve_in((enum scsi_persistent_in_sa)in_sa,
							      BLK__PR_IN_LEN);
		task = blk__iscsi_run_sync(is, ctx, task);
		if (!task)
			return -EPIPE;
		switch (task->status) {
		case SCSI_STATUS_GOOD:
			rc = out ? 0 : blk__iscsi_pr_in_decode(in_sa, task, st);
			break;
		case SCSI_STATUS_CANCELLED:
		case SCSI_STATUS_ERROR:
		case SCSI_STATUS_TIMEOUT:
			rc = -EPIPE;
			break;
		default:
			rc = blk__iscsi_classify(out ? BLK__ISCSI_PR_OUT : BLK__ISCSI_PR_IN, retries, task);
			break;
		}
		scsi_free_scsi_task(task);
		if (rc != 1)
			return rc;
	}
}

/*
 * On a new session @ctx of a registered device, before anything is
 * reissued: register our key again if the target still lists it, fence the
 * device if not (blk.h, "Re-registration after a reconnect").  Returns
 * -EPIPE if the session failed meanwhile (log in again), else 0.
 */
static int blk__iscsi_reregister(struct blk__iscsi *is, struct iscsi_context *ctx)
{
	struct blk__pr_out reg = { .sa = BLK__PR_REGISTER_IGNORE };
	const char *why = NULL;
	int rc;

	reg.sa_key = atomic_load(&is->dev->pr_key);
	if (reg.sa_key == 0 || blk_fenced(is->dev))
		return 0;
	rc = blk__iscsi_pr_sync(is, ctx, SCSI_PERSISTENT_RESERVE_READ_KEYS, NULL, &is->pr_before);
	if (rc == 0 && blk__pr_count(&is->pr_before, reg.sa_key) == 0) {
		why = "our reservation key is gone after a reconnect (preempted, or the target lost it)";
		goto out;
	}
	if (rc == 0)
		rc = blk__iscsi_pr_sync(is, ctx, 0, &reg, NULL);
	if (rc == 0)
		rc = blk__iscsi_pr_sync(is, ctx, SCSI_PERSISTENT_RESERVE_READ_KEYS, NULL, &is->pr_after);
	if (rc == 0 && !blk__pr_reregistered(reg.sa_key, &is->pr_before, &is->pr_after)) {
		/* Fenced first: nothing is issued until we return anyway. */
		blk__fence(is->dev, "preempted while registering again after a reconnect");
		reg.sa_key = 0;
		rc = blk__iscsi_pr_sync(is, ctx, 0, &reg, NULL);
	} else if (rc == 0) {
		fprintf(stderr, "cxfs blk: %s: reservation key registered again on the new session\n",
			is->dev->uri);
	}
	if (rc < 0 && rc != -EPIPE)
		why = "cannot register our reservation key again after a reconnect";
out:
	if (why)
		blk__fence(is->dev, why);
	return rc == -EPIPE ? rc : 0;
}

/*
 * Tear down the failed session, putting every command in flight back on the
 * retry list, and log in again (registering our key again on the new
 * session), retrying until it works or the device is closed.  Commands
 * queued for longer than BLK__ISCSI_GIVEUP_MS of failed attempts are failed
 * with -EIO (none of them was acknowledged).
 */
static void blk__iscsi_reconnect(struct blk__iscsi *is)
{
	uint64_t down_since = blk__iscsi_now_ms();
	struct blk__iscsi_cmd *c;
	struct iscsi_context *ctx;
	int delay_ms = 20, attempt, err;

	fprintf(stderr, "cxfs blk: %s: connection lost, reconnecting\n", is->dev->uri);
	if (is->ctx) {
		/* Cancels every PDU: blk__iscsi_cb moves its command to retry. */
		iscsi_destroy_context(is->ctx);
		is->ctx = NULL;
	}
	while ((c = is->inflight)) {
		blk__iscsi_inflight_remove(is, c);
		scsi_free_scsi_task(c->task);
		c->task = NULL;
		blk__iscsi_queue_push(&is->retry, c);
	}
	for (attempt = 0;; attempt++) {
		ctx = blk__iscsi_connect(is, attempt == 0, &err);
		if (ctx && blk__iscsi_reregister(is, ctx) < 0) {
			iscsi_destroy_context(ctx);
			ctx = NULL;
		}
		if (ctx)
			break;
		if (blk__iscsi_now_ms() - down_since > BLK__ISCSI_GIVEUP_MS)
			blk__iscsi_fail_queued(is, -EIO);
		if (blk__iscsi_nap(is, delay_ms))
			return;
		delay_ms = delay_ms * 2 > 1000 ? 1000 : delay_ms * 2;
	}
	is->ctx = ctx;
	is->broken = 0;
	atomic_fetch_add_explicit(&is->dev->n_reconnects, 1, memory_order_relaxed);
	fprintf(stderr, "cxfs blk: %s: reconnected after %d failed attempts\n", is->dev->uri, attempt);
}

static void *blk__iscsi_thread(void *arg)
{
	struct blk__iscsi *is = arg;
	struct pollfd pfd[2];
	struct blk__iscsi_cmd *c;
	int stopping, n;

	for (;;) {
		pthread_mutex_lock(&is->lock);
		blk__iscsi_queue_splice(&is->retry, &is->submit);
		is->wake_pending = 0;
		stopping = is->stopping;
		pthread_mutex_unlock(&is->lock);
		if (stopping)
			break;
		if (is->broken) {
			blk__iscsi_reconnect(is);
			continue;
		}
		while ((c = blk__iscsi_queue_pop(&is->retry)))
			blk__iscsi_issue(is, c);

		pfd[0].fd = iscsi_get_fd(is->ctx);
		pfd[0].events = (short)iscsi_which_events(is->ctx);
		pfd[0].revents = 0;
		pfd[1].fd = is->eventfd;
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		n = poll(pfd, 2, BLK__ISCSI_POLL_MS);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "cxfs blk: poll: %s\n", strerror(errno));
			is->broken = 1;
			continue;
		}
		if (pfd[1].revents)
			blk__iscsi_drain_eventfd(is);
		/* With revents 0 this only runs libiscsi's timeout processing. */
		if (iscsi_service(is->ctx, pfd[0].revents) < 0)
			is->broken = 1;
	}

	if (is->ctx) {
		if (!is->broken && !is->inflight)
			iscsi_logout_sync(is->ctx);
		iscsi_destroy_context(is->ctx);
		is->ctx = NULL;
	}
	/* blk_close() is called with no I/O in flight; fail any stragglers
	 * rather than leave a caller asleep forever. */
	while ((c = is->inflight)) {
		blk__iscsi_inflight_remove(is, c);
		scsi_free_scsi_task(c->task);
		c->task = NULL;
		blk__iscsi_queue_push(&is->retry, c);
	}
	blk__iscsi_fail_queued(is, -EIO);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* 4. The caller side and the ops table                                */
/* ------------------------------------------------------------------ */

/* Queue @n commands and wait for all of them; the first error wins. */
static int blk__iscsi_run(struct blk__iscsi *is, struct blk__iscsi_cmd *cmds, unsigned n)
{
	struct blk__iscsi_wait w = { .pending = n, .err = 0 };
	uint64_t one = 1;
	unsigned i;

	pthread_cond_init(&w.cond, NULL);
	pthread_mutex_lock(&is->lock);
	for (i = 0; i < n; i++) {
		cmds[i].wait = &w;
		cmds[i].is = is;
		blk__iscsi_queue_push(&is->submit, &cmds[i]);
	}
	if (!is->wake_pending) {
		is->wake_pending = 1;
		if (write(is->eventfd, &one, sizeof(one)) < 0)
			fprintf(stderr, "cxfs blk: eventfd write: %s\n", strerror(errno));
	}
	while (w.pending)
		pthread_cond_wait(&w.cond, &is->lock);
	pthread_mutex_unlock(&is->lock);
	pthread_cond_destroy(&w.cond);
	return w.err;
}

/* READ(16) or WRITE(16) of whole sectors, in commands of at most 256 KiB. */
static int blk__iscsi_rw(struct blk_dev *dev, enum blk__iscsi_op op, void *buf, size_t len, uint64_t off)
{
	struct blk__iscsi_cmd stack_cmds[BLK__ISCSI_STACK_CMDS], *cmds = stack_cmds;
	size_t n = (len + BLK__ISCSI_CHUNK - 1) / BLK__ISCSI_CHUNK, i, done;
	int rc;

	if (n > BLK__ISCSI_STACK_CMDS) {
		cmds = calloc(n, sizeof(*cmds));
		if (!cmds)
			return -ENOMEM;
	} else {
		memset(stack_cmds, 0, sizeof(stack_cmds));
	}
	for (i = 0, done = 0; i < n; i++, done += BLK__ISCSI_CHUNK) {
		cmds[i].op = op;
		cmds[i].lba = (off + done) / dev->sector_size;
		cmds[i].iov.iov_base = (char *)buf + done;
		cmds[i].iov.iov_len = len - done < BLK__ISCSI_CHUNK ? len - done : BLK__ISCSI_CHUNK;
	}
	rc = blk__iscsi_run(dev->be.iscsi, cmds, (unsigned)n);
	if (cmds != stack_cmds)
		free(cmds);
	return rc;
}

static int blk__iscsi_read(struct blk_dev *dev, void *buf, size_t len, uint64_t off)
{
	return blk__iscsi_rw(dev, BLK__ISCSI_READ, buf, len, off);
}

static int blk__iscsi_write(struct blk_dev *dev, const void *buf, size_t len, uint64_t off)
{
	/* libiscsi only reads a WRITE's buffer; its iovec type is not const. */
	return blk__iscsi_rw(dev, BLK__ISCSI_WRITE, (void *)buf, len, off);
}

static int blk__iscsi_flush(struct blk_dev *dev)
{
	struct blk__iscsi_cmd c = { .op = BLK__ISCSI_FLUSH };

	return blk__iscsi_run(dev->be.iscsi, &c, 1);
}

static int blk__iscsi_pr_out(struct blk_dev *dev, const struct blk__pr_out *req)
{
	struct blk__iscsi_cmd c = { .op = BLK__ISCSI_PR_OUT, .pr_req = *req };

	return blk__iscsi_run(dev->be.iscsi, &c, 1);
}

/* READ KEYS and READ RESERVATION, both decoded into @out. */
static int blk__iscsi_pr_in(struct blk_dev *dev, struct blk_pr_state *out)
{
	struct blk__iscsi_cmd c[2] = {
		{ .op = BLK__ISCSI_PR_IN, .pr_in_sa = SCSI_PERSISTENT_RESERVE_READ_KEYS, .pr_state = out },
		{ .op = BLK__ISCSI_PR_IN, .pr_in_sa = SCSI_PERSISTENT_RESERVE_READ_RESERVATION,
		  .pr_state = out },
	};

	return blk__iscsi_run(dev->be.iscsi, c, 2);
}

static void blk__iscsi_free(struct blk__iscsi *is)
{
	free(is->host);
	free(is->portal);
	free(is->target);
	free(is->initiator);
	free(is);
}

static int blk__iscsi_open(struct blk_dev *dev, const char *uri, const struct blk_open_opts *opts)
{
	struct blk__iscsi *is;
	int rc;

	is = calloc(1, sizeof(*is));
	if (!is)
		return -ENOMEM;
	is->dev = dev;
	rc = blk__iscsi_parse_uri(is, uri);
	if (rc == -EINVAL)
		fprintf(stderr, "cxfs blk: malformed iSCSI URI %s (want iscsi://HOST[:PORT]/IQN/LUN)\n", uri);
	if (rc < 0)
		goto out_free;
	rc = blk__iscsi_set_initiator(is, opts->initiator);
	if (rc < 0)
		goto out_free;
	if (getrandom(&is->isid, sizeof(is->isid), 0) != sizeof(is->isid))
		is->isid = (uint32_t)getpid() ^ (uint32_t)blk__iscsi_now_ms();
	is->isid &= 0xffffff; /* the ISID's random field is 24 bits */

	is->ctx = blk__iscsi_connect(is, 1, &rc);
	if (!is->ctx)
		goto out_free;
	rc = blk__iscsi_read_capacity(is);
	if (rc < 0)
		goto out_destroy_ctx;
	is->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (is->eventfd < 0) {
		rc = -errno;
		goto out_destroy_ctx;
	}
	pthread_mutex_init(&is->lock, NULL);
	dev->be.iscsi = is;
	rc = -pthread_create(&is->thread, NULL, blk__iscsi_thread, is);
	if (rc < 0)
		goto out_destroy_lock;
	return 0;

out_destroy_lock:
	dev->be.iscsi = NULL;
	pthread_mutex_destroy(&is->lock);
	close(is->eventfd);
out_destroy_ctx:
	iscsi_logout_sync(is->ctx);
	iscsi_destroy_context(is->ctx);
out_free:
	blk__iscsi_free(is);
	return rc;
}

static void blk__iscsi_close(struct blk_dev *dev)
{
	struct blk__iscsi *is = dev->be.iscsi;
	uint64_t one = 1;

	pthread_mutex_lock(&is->lock);
	is->stopping = 1;
	if (write(is->eventfd, &one, sizeof(one)) < 0)
		fprintf(stderr, "cxfs blk: eventfd write: %s\n", strerror(errno));
	pthread_mutex_unlock(&is->lock);
	pthread_join(is->thread, NULL);
	pthread_mutex_destroy(&is->lock);
	close(is->eventfd);
	blk__iscsi_free(is);
	dev->be.iscsi = NULL;
}

const struct blk__ops blk__iscsi_ops = {
	.open = blk__iscsi_open,
	.close = blk__iscsi_close,
	.read = blk__iscsi_read,
	.write = blk__iscsi_write,
	.flush = blk__iscsi_flush,
	.pr_out = blk__iscsi_pr_out,
	.pr_in = blk__iscsi_pr_in,
};
