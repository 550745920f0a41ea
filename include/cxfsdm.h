/*
 * cxfsdm.h - libcxfsdm: the DMAPI of cxfs for hierarchical storage managers,
 * in the spirit of DMAPI/XDSM (dm_create_session, dm_get_events,
 * dm_respond_event, dm_set_region, dm_set_dmattr, dm_punch_hole,
 * dm_read_invis, dm_write_invis, dm_path_to_handle, ...).
 *
 * A program talks to the cxfsd of its node through that daemon's DMAPI
 * socket (cxfsd --dm-socket; default /run/cxfs/dm.sock, or $CXFS_DM_SOCKET).
 * Whatever node it runs on, every request is served by the filesystem's
 * metadata server (MDS): a node that is not the MDS forwards it.  Sessions,
 * event queues, event lists, managed regions and DM attributes live there,
 * so an HSM sees the events of every node together, and an event raised on
 * one range of a file by several nodes at once is delivered once.
 *
 * Files are named by handles (inode number and generation).  A handle whose
 * file is gone, or whose number now names a newer file, gives -ESTALE.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure; -ENOTCONN: the daemon is not reachable; -EOPNOTSUPP: the
 * filesystem was not made with DMAPI (mkfs.cxfs --dmapi).  A connection is
 * for one thread at a time; open one per thread.
 */
#ifndef CXFSDM_H
#define CXFSDM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CXDM_DEFAULT_SOCKET "/run/cxfs/dm.sock"
#define CXDM_IO_MAX (512u * 1024)   /* bytes per invisible read/write request (split above) */
#define CXDM_MAX_REGIONS 16
#define CXDM_NAME_MAX 63            /* session and DM attribute names, bytes */
#define CXDM_ATTR_MAX 65536         /* DM attribute value, bytes */

/* Event types (the numbers of src/dmapi/dm.h). */
enum cxdm_event_type {
	CXDM_EV_READ = 0,       /* data read of a managed region (synchronous) */
	CXDM_EV_WRITE = 1,      /* data write (synchronous) */
	CXDM_EV_TRUNCATE = 2,   /* truncate; range [new size, EOF) (synchronous) */
	CXDM_EV_DESTROY = 3,    /* the file is gone (asynchronous: no response) */
	CXDM_EV_ATTRIBUTE = 4,
	CXDM_EV_CREATE = 5,
	CXDM_EV_REMOVE = 6,
	CXDM_EV_RENAME = 7,
	CXDM_EV_USER = 8,       /* a user's request (cxdm_send_user); code says what */
};
#define CXDM_EV_BIT(e) (1u << (e))
#define CXDM_EV_DATA (CXDM_EV_BIT(CXDM_EV_READ) | CXDM_EV_BIT(CXDM_EV_WRITE) | \
		      CXDM_EV_BIT(CXDM_EV_TRUNCATE))

/* A file. */
struct cxdm_handle {
	uint64_t ino;
	uint64_t gen;
};

/* A managed region: [off, off + len), len 0 = to the end of the file. */
struct cxdm_region {
	uint64_t off;
	uint64_t len;
	uint32_t events;        /* CXDM_EV_DATA bits */
};

/* An event to answer (synchronous ones) with cxdm_respond(). */
struct cxdm_event {
	uint64_t token;
	struct cxdm_handle h;   /* for DESTROY: the file that was */
	enum cxdm_event_type type;
	uint64_t off, len;      /* the range; len 0 = to EOF */
	uint32_t waiters;       /* threads (on any node) waiting for the answer */
	uint32_t code;          /* CXDM_EV_USER: the request code */
};

/* What an HSM sees of a file. */
struct cxdm_stat {
	struct cxdm_handle h;
	uint32_t mode, nlink;
	uint64_t size;
	uint64_t blocks;        /* 512-byte units allocated on the volume */
	struct timespec atime, mtime, ctime;
};

struct cxdm_session_info {
	uint64_t id;
	char name[CXDM_NAME_MAX + 1];
	uint64_t queued;        /* events not yet handed out */
	uint64_t delivered;     /* handed out, not answered */
	bool attached;          /* a connection owns it (false: its process died) */
	uint32_t disposition;   /* event types it receives */
};

struct cxdm_info {
	bool is_server;         /* the node of this daemon is the MDS */
	bool dmapi;             /* the filesystem has DMAPI */
	char node[64];          /* this daemon's node */
	char server[64];        /* the MDS's node ("" if none known) */
	char fs[64];            /* the filesystem's name */
	uint64_t total_bytes;   /* data space of the volume */
	uint64_t free_bytes;
	uint32_t block_size;
};

typedef struct cxdm cxdm_t;

/* Connect to the daemon at @socket (NULL: $CXFS_DM_SOCKET or the default). */
int cxdm_open(const char *socket, cxdm_t **out);
void cxdm_close(cxdm_t *dm);
/* The daemon, its node, the MDS and the volume's space (answered locally). */
int cxdm_info(cxdm_t *dm, struct cxdm_info *out);

/* Handles. */
int cxdm_path_to_handle(cxdm_t *dm, const char *path, struct cxdm_handle *out);
int cxdm_stat(cxdm_t *dm, const struct cxdm_handle *h, struct cxdm_stat *out);
/*
 * The regular files of the filesystem, in inode order, from *@cursor (start
 * with 0); fills up to @max and moves *@cursor on.  Returns how many (0: no
 * more files).  After the last batch *@cursor is UINT64_MAX, with which a
 * call returns 0 at once (the daemon's end mark 0 would start over).
 */
int cxdm_bulkstat(cxdm_t *dm, uint64_t *cursor, struct cxdm_stat *out, size_t max);

/* Sessions.  Names are 1..CXDM_NAME_MAX bytes. */
int cxdm_create_session(cxdm_t *dm, const char *name, uint64_t *sid);
/*
 * Take over the session @name after its process died: its queued events and
 * those delivered to the old owner but not answered are handed out again.
 */
int cxdm_assume_session(cxdm_t *dm, const char *name, uint64_t *sid);
/* -EBUSY while events are outstanding, unless @force (they get @error: 0 or -errno). */
int cxdm_destroy_session(cxdm_t *dm, uint64_t sid, bool force, int error);
/* The session receives the event types @events (bits) of the filesystem. */
int cxdm_set_disposition(cxdm_t *dm, uint64_t sid, uint32_t events);
/* Fill up to @max; returns the number of sessions. */
int cxdm_list_sessions(cxdm_t *dm, struct cxdm_session_info *out, size_t max);

/*
 * Up to @max events of session @sid, waiting up to @timeout_ms (0: forever)
 * for the first.  Returns how many (>= 1), or -ETIMEDOUT.
 */
int cxdm_get_events(cxdm_t *dm, uint64_t sid, struct cxdm_event *out, size_t max,
		    unsigned timeout_ms);
/* Answer a synchronous event: 0 continue, or a negative errno the operation fails with. */
int cxdm_respond(cxdm_t *dm, uint64_t sid, uint64_t token, int response);

/* Per-file event list (file-wide events, e.g. DESTROY) and managed regions. */
int cxdm_set_eventlist(cxdm_t *dm, const struct cxdm_handle *h, uint32_t events);
int cxdm_get_eventlist(cxdm_t *dm, const struct cxdm_handle *h, uint32_t *events);
/* Replace all regions (n 0 removes them); -E2BIG, -EINVAL (overlap, bad bits). */
int cxdm_set_regions(cxdm_t *dm, const struct cxdm_handle *h, const struct cxdm_region *r,
		     size_t n);
/* Copy up to @max; returns how many the file has. */
int cxdm_get_regions(cxdm_t *dm, const struct cxdm_handle *h, struct cxdm_region *out,
		     size_t max);

/* DM attributes: an HSM's own data about a file, kept with the inode. */
int cxdm_set_dmattr(cxdm_t *dm, const struct cxdm_handle *h, const char *name,
		    const void *value, size_t len);
/* Returns the value's length (copied up to @size; @buf may be NULL if 0); -ENODATA if absent. */
ssize_t cxdm_get_dmattr(cxdm_t *dm, const struct cxdm_handle *h, const char *name, void *buf,
			size_t size);
int cxdm_remove_dmattr(cxdm_t *dm, const struct cxdm_handle *h, const char *name);

/*
 * Data, without DMAPI events and without changing any time stamp; a write
 * past the end grows the size.  Reads return fewer bytes at EOF.
 */
ssize_t cxdm_read_invis(cxdm_t *dm, const struct cxdm_handle *h, uint64_t off, void *buf,
			size_t len);
ssize_t cxdm_write_invis(cxdm_t *dm, const struct cxdm_handle *h, uint64_t off,
			 const void *buf, size_t len);
/* Release the blocks of [off, off + len) (len 0: to EOF), keeping the size; no time change. */
int cxdm_punch_hole(cxdm_t *dm, const struct cxdm_handle *h, uint64_t off, uint64_t len);

/*
 * A user's request to the HSM (a CXDM_EV_USER event with @code on the file):
 * waits until the session that receives user events answers, and returns
 * its answer.
 */
int cxdm_send_user(cxdm_t *dm, const struct cxdm_handle *h, uint32_t code);

const char *cxdm_event_name(enum cxdm_event_type type);  /* "read", ... */

#ifdef __cplusplus
}
#endif

#endif
