/*
 * dm.h - DMAPI on the metadata server, first piece: event types, per-file
 * event lists and managed regions, HSM sessions, each session's queue of
 * synchronous events and their tokens, as an in-memory, thread-safe module
 * independent of any transport and of the metadata store (issue 5).
 *
 *   I/O path (any node, via the MDS)          HSM (cxfs-hsmd)
 *   dm_check() / dm_match(): event needed?
 *   dm_event_post() -> token  (new or joined)
 *   dm_event_wait(token)  ...blocks...        dm_get_events() -> tokens
 *                                             (recall the data)
 *        <--- woken with the response ------- dm_respond(token, 0 or -errno)
 *
 * Joining: a post for the same inode and event type whose range overlaps an
 * event of the same session that is outstanding (queued or delivered, not
 * answered) joins it: same token, one delivery to the HSM, and one response
 * wakes every joined waiter.  While the event is still queued its range
 * grows to cover the joiner; once delivered it keeps the range the HSM saw,
 * so a joiner whose range reaches further re-checks its regions after the
 * answer (as every caller should: the answer only says "go on").
 *
 * Every successful dm_event_post() must be followed by exactly one
 * dm_event_wait() on its token, which ends that caller's join whatever it
 * returns.  An event stays (answerable by the HSM) until it is answered, even
 * when every waiter gave up; it is freed once answered and without joins.
 *
 * Ranges are [off, off + len); len 0 means "to the end of the file"; a range
 * whose end does not fit in 64 bits is refused (-EINVAL).
 *
 * Results are 0 or negative errno.  -DM_EEARLY and -DM_EMIGRATING are the
 * internal results of a wait cut short by the caller's interrupted() poll or
 * by dm_interrupt_all(): the caller retries later (posting again joins the
 * same, still outstanding event).  They never reach an application.
 */
#ifndef CXFS_DM_H
#define CXFS_DM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Internal results (same numbers as VN_EMIGRATING and VN_EEARLY). */
#define DM_EMIGRATING 4101  /* the chain is being rewritten: retry on the new chain */
#define DM_EEARLY     4102  /* a wait was interrupted */

/* Event types. */
enum dm_event {
	DM_EV_READ,       /* data: read of a range */
	DM_EV_WRITE,      /* data: write of a range */
	DM_EV_TRUNCATE,   /* data: truncate; the range is [new size, EOF) */
	DM_EV_DESTROY,    /* the file went away (asynchronous); @off carries its generation */
	DM_EV_ATTRIBUTE,  /* attributes changed (mode, owner, times) */
	DM_EV_CREATE,     /* namespace: a name was created in a directory */
	DM_EV_REMOVE,     /* namespace: a name was removed */
	DM_EV_RENAME,     /* namespace: a name was renamed */
	DM_EV_USER,       /* a user's request to the HSM; @off carries its code, @len is 1 */
	DM_EV_NEVENTS
};

/* A set of event types: DM_EV_BIT(e) per member. */
typedef uint32_t dm_eventset_t;
#define DM_EV_BIT(e)  ((dm_eventset_t)1u << (e))
#define DM_EV_ALL     (DM_EV_BIT(DM_EV_NEVENTS) - 1u)
/* The only events a managed region may carry. */
#define DM_EV_DATA    (DM_EV_BIT(DM_EV_READ) | DM_EV_BIT(DM_EV_WRITE) | DM_EV_BIT(DM_EV_TRUNCATE))

/* A managed region of a file. */
struct dm_region {
	uint64_t off;          /* first byte */
	uint64_t len;          /* bytes; 0 = to the end of the file */
	dm_eventset_t events;  /* DM_EV_DATA bits an access of the region raises */
};

#define DM_MAX_REGIONS 16  /* managed regions per file */
#define DM_NAME_MAX    64  /* session name bytes, with the terminating NUL */

const char *dm_event_name(enum dm_event ev);  /* "read", "write", ... or "?" */

/* ---- event lists and managed regions (pure functions) -------------------- */

/*
 * 0 if @regions[0..@n) is a valid region array: @n <= DM_MAX_REGIONS, each
 * range fits in 64 bits, events are DM_EV_DATA bits only and no two regions
 * overlap.  -E2BIG (too many), -EINVAL otherwise.
 */
int dm_regions_validate(const struct dm_region *regions, size_t n);

/*
 * Does an access of [@off, @off + @len) (len 0: to EOF; a range past 2^64 is
 * taken as to EOF) for @ev need an event: is @ev in the file-wide
 * @file_events, or does any of @regions that overlaps the access carry @ev?
 */
bool dm_match(const struct dm_region *regions, size_t n, dm_eventset_t file_events,
	      enum dm_event ev, uint64_t off, uint64_t len);

/* ---- the DMAPI context of one filesystem --------------------------------- */

struct dm_ctx;

/* 0 or -ENOMEM. */
int dm_ctx_create(struct dm_ctx **out);
/*
 * The tokens given out from now on are above @floor.  A waiter may carry a
 * token of an earlier context (an MDS that moved or died) to this one: it
 * must find no event of this context under it (see dm_fs_create).
 */
void dm_set_token_floor(struct dm_ctx *ctx, uint64_t floor);
/* No thread may be inside the context or call it again; frees everything. */
void dm_ctx_destroy(struct dm_ctx *ctx);

/* ---- per-file event lists and regions (in memory until the store has them) */

/* Replace @ino's file-wide event list.  -EINVAL (bits outside DM_EV_ALL), -ENOMEM. */
int dm_set_eventlist(struct dm_ctx *ctx, uint64_t ino, dm_eventset_t events);
/* @ino's file-wide event list (0 if none). */
dm_eventset_t dm_get_eventlist(struct dm_ctx *ctx, uint64_t ino);
/*
 * Replace @ino's whole region array with @regions[0..@n) (n 0 removes
 * them).  Errors of dm_regions_validate(), -ENOMEM.
 */
int dm_set_regions(struct dm_ctx *ctx, uint64_t ino, const struct dm_region *regions, size_t n);
/*
 * Copy up to @max of @ino's regions to @out; returns how many it has
 * (which may exceed @max: call again with a larger array).
 */
size_t dm_get_regions(struct dm_ctx *ctx, uint64_t ino, struct dm_region *out, size_t max);
/* dm_match() on @ino's stored event list and regions. */
bool dm_check(struct dm_ctx *ctx, uint64_t ino, enum dm_event ev, uint64_t off, uint64_t len);

/* ---- sessions ------------------------------------------------------------ */

struct dm_session_info {
	uint64_t id;                /* session id */
	char name[DM_NAME_MAX];     /* its name */
	size_t queued;              /* events waiting for dm_get_events() */
	size_t delivered;           /* events delivered and not answered */
	dm_eventset_t disp;         /* event types it receives (dm_set_disposition) */
};

/*
 * Create a session named @name (unique among live sessions); @id receives
 * its id (never 0).  -EINVAL (empty name), -ENAMETOOLONG, -EEXIST, -ENOMEM.
 */
int dm_session_create(struct dm_ctx *ctx, const char *name, uint64_t *id);
/*
 * A restarted HSM takes over the live session named @name: @id receives
 * its id, its queue and outstanding events are kept, and events delivered
 * to the old owner but not answered are queued again (in their order), so
 * the new owner gets each of them once.  -ENOENT.
 */
int dm_session_assume(struct dm_ctx *ctx, const char *name, uint64_t *id);
/*
 * Destroy session @id.  While it has outstanding events: -EBUSY, unless
 * @force, in which case each is answered with @error (0 or a negative errno)
 * first.  A thread in dm_get_events() on it returns -ESRCH.  -ESRCH (no
 * such session), -EINVAL (bad @error).
 */
int dm_session_destroy(struct dm_ctx *ctx, uint64_t id, bool force, int error);
/*
 * Session @session receives the event types @events from now on (taken
 * from any other session that had them).  -ESRCH, -EINVAL.
 */
int dm_set_disposition(struct dm_ctx *ctx, uint64_t session, dm_eventset_t events);
/* The session that receives @ev, or 0 if none. */
uint64_t dm_disposition(struct dm_ctx *ctx, enum dm_event ev);
/* Fill up to @max of @out (oldest session first); returns the number of sessions. */
size_t dm_session_list(struct dm_ctx *ctx, struct dm_session_info *out, size_t max);

/* ---- synchronous events -------------------------------------------------- */

/* An event as handed to the HSM. */
struct dm_event_msg {
	uint64_t token;      /* answer with dm_respond() */
	uint64_t ino;        /* the file */
	enum dm_event ev;    /* what happened */
	uint64_t off, len;   /* the range (len 0: to EOF) */
	uint32_t waiters;    /* joins when it was delivered */
};

/*
 * Post @ev on [@off, @off + @len) of @ino to session @session, or join its
 * outstanding event (see the top); @token receives the token to wait on.
 * -ESRCH (no such session), -EINVAL (bad event or range), -ENOMEM.
 */
int dm_event_post(struct dm_ctx *ctx, uint64_t session, uint64_t ino, enum dm_event ev,
		  uint64_t off, uint64_t len, uint64_t *token);
/*
 * An asynchronous event (DESTROY): queued like a synchronous one but never
 * joined or answered; it is gone once dm_get_events() hands it out.
 * -ESRCH, -EINVAL, -ENOMEM.
 */
int dm_event_post_async(struct dm_ctx *ctx, uint64_t session, uint64_t ino, enum dm_event ev,
			uint64_t off, uint64_t len);
/*
 * Wait for the answer to @token and end the caller's join.  @timeout_ms 0
 * waits forever.  @interrupted (may be NULL) is polled every few
 * milliseconds without any lock held, with @arg; non-zero ends the wait.
 * Returns the response (0: continue, -errno: abort), -DM_EEARLY
 * (@interrupted, or dm_interrupt_all(DM_EEARLY)), -DM_EMIGRATING
 * (dm_interrupt_all(DM_EMIGRATING)), -ETIMEDOUT, or -ENOENT (no join on
 * @token).  An answer that came first wins over an interruption.
 */
int dm_event_wait(struct dm_ctx *ctx, uint64_t token, unsigned timeout_ms,
		  int (*interrupted)(void *arg), void *arg);
/*
 * dm_event_wait() without @interrupted that keeps the caller's join when
 * the time-out ends it (-ETIMEDOUT): the caller (a node asking the MDS in
 * bounded slices) must wait again on @token later.
 */
int dm_event_wait_slice(struct dm_ctx *ctx, uint64_t token, unsigned timeout_ms);
/*
 * Hand up to @max queued events of @session to the HSM, oldest first, each
 * once (they become delivered).  Waits up to @timeout_ms (0: forever) for
 * the first.  Returns how many (>= 1), -ETIMEDOUT, -ESRCH (no such session,
 * or destroyed meanwhile), -EINVAL (@max 0).
 */
int dm_get_events(struct dm_ctx *ctx, uint64_t session, size_t max, struct dm_event_msg *out,
		  unsigned timeout_ms);
/*
 * Answer delivered event @token of @session with @response (0: continue, or
 * a negative errno: abort): every joined waiter wakes with it.  -ESRCH (no
 * such session), -ENOENT (no such outstanding event in the session),
 * -EINVAL (not delivered yet, or a bad @response).
 */
int dm_respond(struct dm_ctx *ctx, uint64_t session, uint64_t token, int response);
/*
 * Every thread waiting in dm_event_wait() now returns -@code (DM_EEARLY or
 * DM_EMIGRATING), and dm_get_events() waiters -ETIMEDOUT; events stay answerable.  Threads that enter a wait
 * later are not affected: a caller that must stop them all stops new posts
 * first.  0 or -EINVAL.
 */
int dm_interrupt_all(struct dm_ctx *ctx, int code);

struct dm_stats {
	uint64_t posted;     /* new events */
	uint64_t joined;     /* posts that joined an outstanding event */
	uint64_t delivered;  /* events handed out by dm_get_events() */
	uint64_t responded;  /* dm_respond() answers */
	uint64_t forced;     /* events answered by a forced session destroy */
	uint64_t early;      /* waits ended by an interruption (either code) */
	uint64_t timeouts;   /* waits ended by their timeout */
	uint64_t waiting;    /* joins not yet ended by dm_event_wait() now */
};

void dm_get_stats(struct dm_ctx *ctx, struct dm_stats *st);

#endif
