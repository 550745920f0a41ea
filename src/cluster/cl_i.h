/*
 * cl_i.h - internals shared by the files of src/cluster: the cluster
 * context, the per-inode client state, and the entry points each file
 * offers the others.
 *
 * Lock order: (shaping blocked) -> vnode head -> cl_inode.io -> cl_inode.flush_mu -> cl_inode.mu
 *             -> cl_ctx.imu -> cl_ctx.mu; the data cache's mutex (cl_pcache.h)
 *             is a leaf, taken under cl_inode.mu or under a write-back's
 *             job mutex (cl_client.c, struct wb_job; taken under flush_mu,
 *             never with cl_inode.mu); cl_ctx.gate_mu, cl_ctx.nmu and
 *             cl_ctx.reach_mu are leaves; the token client's and server's
 *             mutexes are never held across a call into this layer
 *             (tok.h), and the store mutex, the ledger's (cl_runs.h) and
 *             the unsafe state's two (cl_unsafe.h) are leaves.  cl_ctx.wmu -> token server mutex
 *             (the watchdog reads the server's waits; cl_wait.c), taken
 *             with no other lock of this layer held.  cl_ctx.store_mu -> the
 *             store's commit and store mutexes (a backup against a role
 *             change) and the token server's (a status against a role
 *             change), cl_ctx.dm_mu -> DMAPI's mutex (a metrics scrape
 *             against one); both taken with no other lock of this layer held.
 *             The helper threads' mutex (cl_spawn, cl_node.c) and
 *             cl_ctx.io_mu (cl_ioexcl.c) are leaves.
 */
#ifndef CXFS_CL_I_H
#define CXFS_CL_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster/cl.h"
#include "cluster/cl_pcache.h"
#include "cluster/cl_runs.h"
#include "cluster/cl_unsafe.h"
#include "dmapi/dm.h"
#include "dmapi/dm_bhv.h"
#include "meta/meta_store.h"
#include "relocate/rl.h"
#include "rpc/rpc.h"
#include "token/tok.h"
#include "vnode/vn.h"

/*
 * Token and metadata calls wait as long as the connection lives: the MDS may
 * wait on other nodes' recalls.  Only an application's request gives a call
 * up (its interrupt or bound, common/cx_intr.h), and what the two sides may
 * then disagree on is settled as docs/ARCHITECTURE.md, "Interrupts", says.
 */
#define CL_CALL_TIMEOUT_MS (24u * 3600 * 1000)
#define CL_MAX_NODES 256
/*
 * Blocks preallocated ahead: none at a file's first allocation (small files
 * take what they write), then 64 KiB doubling per allocation up to 64 MiB,
 * so the unused tail stays below the size written.
 */
#define CL_PREALLOC_MIN 16
#define CL_PREALLOC_MAX 16384
#define CL_PREALLOC_EXCL_MAX 65536      /* ... up to 256 MiB for a node alone on the file (cl_ioexcl.c) */
#define CL_PREALLOC_SHARE 32            /* preallocation: at most 1/32 of the free blocks */
#define CL_MAP_AHEAD 16384           /* blocks of extent map fetched beyond what is needed */
/* The data cache (cl_client.c): read-ahead, write-back runs, the flusher. */
#define CL_RA_MIN 32                 /* blocks read ahead at a reader's second sequential read */
#define CL_RA_MAX 1024               /* ... doubling up to this */
#define CL_WB_RUN_BLOCKS 1024        /* the longest run written back at once */
#define CL_WB_THREADS 4              /* runs of one file written back at once */
#define CL_WB_AGE_MS 1000            /* dirty pages are written back at the latest after this */
#define CL_WB_FILES 64               /* files the flusher takes at each round */
#define CL_WT_BYTES (1u << 20)       /* buffered writes of whole blocks this large are written through */

/*
 * A directory entry this node told its kernel about; ino 0: the name is known
 * not to exist; CL_DENT_UNKNOWN: the kernel has it, its inode is not cached.
 */
#define CL_DENT_UNKNOWN UINT64_MAX
/* A directory up to this many entries is read whole at its first miss. */
#define CL_DIR_WHOLE_MAX 8192
/* Tokens (at READ) a node that creates a file holds from the answer on (cl_server.c s_names). */
/* Asynchronous creates: numbers a node asks for at a time, the most one grant gives, a batch's size. */
#define CL_INO_GRANT 1024
#define CL_INO_GRANT_MAX 4096
#define CL_BATCH_MAX 256
/* What the creator of a file it made itself holds at WRITE (an unlink of it changes them). */
#define CL_OWN_WRITE_TOKS ((1u << TOK_ATTR) | (1u << TOK_TIMES))
/*
 * The fallocate(2) modes a node may ask the metadata server for
 * (meta_fallocate's, but VN_IO_INVISIBLE); a client refuses others itself
 * (EOPNOTSUPP, as the store does), the server refuses them from the network.
 */
#define CL_FALLOC_REMOTE (FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)
#define CL_RET_SIZE 1u
#define CL_RET_TIMES 2u
#define CL_CREATE_TOKS ((1u << TOK_EXIST) | (1u << TOK_ATTR) | (1u << TOK_TIMES) | (1u << TOK_SIZE))
#define CL_SETTLE_MS 2000                /* a directory's lookup waits at most this for its old names to go */
#define CL_WHOLE_REST_NS 1000000000LL    /* a directory is read whole only after NAME rested this long */
#define CL_QUIET_NS 100000000LL          /* a busy directory whose ctime stays this long rests */
enum { CL_TOLD_NOT, CL_TOLD_SHOWN, CL_TOLD_KEPT };
struct cl_dent {
	uint64_t ino;
	uint8_t told;                   /* the kernel has it: CL_TOLD_* (a NAME recall makes it forget) */
	struct cl_dent *next;           /* every entry of the directory */
	struct cl_dent *hnext;          /* same hash bucket */
	uint32_t hash;
	char name[];
};

/* A cached extended attribute: its value, or err < 0 (-ENODATA: absent). */
struct cl_xattr {
	struct cl_xattr *next;
	int err;
	uint32_t len;
	char *value;
	char name[];
};

/*
 * What a node knows of one inode beyond its tokens: on a client, caches
 * valid while the covering tokens are held; on every node, whether the
 * kernel's pages of the file went stale.
 */
struct cl_inode {
	uint64_t ino;                   /* constant */
	unsigned refs;                  /* under cl_ctx.imu */
	struct cl_inode *hnext;         /* under cl_ctx.imu */
	/*
	 * This node's reads and writes of the file's data against each other,
	 * by the bytes they touch (cx_rlock.h): a read sees a buffered write
	 * whole or not at all, though it lets cl_inode.mu go while it reads
	 * the volume.  Taken once every token and range the call needs is
	 * held, never across a wait for one (cl_client.c, c_read and c_write).
	 */
	struct cx_rlock *io;
	pthread_mutex_t flush_mu;       /* serializes writing back cached data and publishing runs */
	pthread_mutex_t mu;             /* protects everything below */
	bool has_exist;                 /* holds a reference on its EXIST token */
	bool exist_refused;             /* kept the file after its last name went */
	bool attr_valid;                /* attr is current (ATTR, TIMES, SIZE held) */
	bool size_valid;                /* attr.size is current (SIZE held) */
	bool size_dirty, times_dirty;   /* attr's size/times are this node's own (WRITE held) */
	bool unpublished;               /* written here since the MDS last heard */
	/*
	 * This node becomes the server, and the old one took its return of
	 * SIZE (CL_RET_SIZE) or TIMES (CL_RET_TIMES) before keep_state kept
	 * the state it carried: keep_state drops it.  Settle clears it.
	 */
	uint8_t ret_taken;
	struct vn_attr attr;
	struct cl_xattr *xattrs;        /* current while ATTR is held */
	struct cl_dent *dents;
	size_t ndents;
	struct cl_dent **dhash;         /* index of dents by name */
	size_t dhash_size;
	bool names_whole;               /* dents hold every name (NAME held) */
	uint64_t *bkts;                 /* shared directory: buckets whose names dents hold
					   (their keys; NAME at SWRITE and the bucket held) */
	size_t nbkts, bkts_cap;
	bool lend_lost;                 /* a change lent this directory's tokens and was given
					   up: nothing is cached under them (dir_uncached) until
					   NAME goes back once (cl_client.c, dir_forget) */
	bool whole_tried;               /* the directory was too large to read whole */
	int64_t names_dropped_ns;       /* when NAME last went back: busy, and not read whole,
					   for CL_WHOLE_REST_NS after (busy_seen moves it back
					   once the directory is seen to rest) */
	uint32_t hint_hash;             /* a busy directory's last name looked up (its hash) */
	uint64_t hint_ino;              /* and its inode, a guess to lend by (0: none) */
	struct timespec quiet_ctime;    /* a busy directory's ctime last seen (busy_seen) */
	int64_t quiet_since_ns;         /* since when it has been that (0: not watching) */
	unsigned unaliasing;            /* kernel invalidations of names of it in flight; cl_ctx.nmu */
	bool map_valid;                 /* map covers [0, map_end) (EXTENT held) */
	uint64_t map_epoch;             /* cl_ctx.map_epoch when the map was fetched */
	struct meta_map *map;           /* runs in file order, without gaps */
	size_t nmap, map_cap;
	uint64_t map_end;               /* file blocks covered */
	struct meta_map *pend;          /* runs written here, still unwritten at the MDS */
	size_t npend, pend_cap;
	uint64_t prealloc;              /* blocks to preallocate ahead next time */
	bool stale_pages;               /* the kernel's pages must be dropped */
	bool inval_running;             /* a helper thread is dropping them */
	unsigned inflight;              /* reads and writes of this node in progress */
	struct cl_pcf *pcf;             /* cached data (cl_pcache.h), made at first use; freed with it */
	int wb_err;                     /* a write-back failed: told by the next fsync or close */
	uint64_t ra_next;               /* where a sequential reader reads next */
	uint64_t ra_blocks;             /* blocks it reads ahead (0: not sequential) */
	bool locks_used;                /* POSIX locks were set from this node */
	int64_t shared_until_ns;        /* IO at WRITE was recalled: writes share until then
					   (CLOCK_MONOTONIC; cl_range.c) */
	atomic_int_fast64_t io_last_ns; /* when its last read or write here ended */
	bool io_listed;                 /* on cl_ctx.io_inos; cl_ctx.io_mu */
	uint64_t *ranges;               /* range tokens taken here, their numbers ascending */
	size_t nranges, ranges_cap;
	/* Client: the event list and regions of the last DMAPI token grant. */
	bool dm_valid;                  /* they are known (else ask while holding the token) */
	dm_eventset_t dm_events;
	struct dm_region dm_regions[DM_MAX_REGIONS];
	size_t dm_nregions;
};

struct cl_stats {
	atomic_uint_fast64_t attr_hits, attr_misses, name_hits, name_misses, map_fetches;
	atomic_uint_fast64_t allocs, write_dones, forwards, recalls_in, invals;
	atomic_uint_fast64_t io_given;  /* I/O tokens given back by a node done with a shared file */
};

struct cl_ctx {
	struct cms_config *cfg;         /* constant */
	const struct cms_node *self;    /* constant */
	const struct cms_fs *fs;        /* constant */
	uint32_t self_id;               /* cms_node_index + 1; constant */
	struct rpc_ctx *rpc;            /* constant after cl_start */
	int (*inval)(void *arg, uint64_t ino);
	int (*inval_entry)(void *arg, uint64_t dir, const char *name);
	int (*inval_attr)(void *arg, uint64_t ino);
	void *inval_arg;
	void (*serving)(void *arg);     /* cl_opts.serving; constant */
	void *serving_arg;

	pthread_mutex_t mu;             /* protects the fields up to `ready`, and mds */
	uint32_t server_id;             /* node serving the filesystem (0: none known) */
	struct rpc_chan *node_chan[CL_MAX_NODES];  /* MDS: each node's incoming channel */
	struct rpc_chan *out_chan[CL_MAX_NODES];   /* MDS: ours to a node whose own broke */
	atomic_bool ready;              /* attached: serves requests */
	/*
	 * The node's role.  It changes only in a relocation (src/relocate),
	 * with the gate closed, every vnode's rewrite announced and
	 * shaping blocked.
	 */
	atomic_bool is_server;

	struct rpc_chan *mds;           /* client: the channel to the MDS (see cl_mds_chan) */
	uint64_t members;               /* the membership's nodes (index bits); under mu */
	atomic_uint msg_level;          /* the messages level of the last view (cl_member.c) */
	uint64_t fenced;                /* MDS: nodes fenced and not back since; under mu */
	struct cms *cms;                /* the membership; constant after cl_start */

	/*
	 * The gate: while closed, new requests to the MDS wait (a relocation
	 * is moving it); with gate_emigrate, they return -VN_EMIGRATING
	 * instead (this node becomes the MDS: its chains are being rewritten).
	 */
	pthread_mutex_t gate_mu;
	pthread_cond_t gate_cv;
	bool gate_closed, gate_emigrate;     /* under gate_mu */
	bool cut_off;                   /* no quorum / not a member: wait too; under gate_mu */
	atomic_bool relocating;         /* MDS: a relocation moves it away */
	atomic_bool drl_left;           /* the dirty-region log holds regions of the last run */
	atomic_bool stopping;           /* cl_stop() runs: a refused write no longer cuts off */
	/*
	 * MDS: its token state is being bagged (a server moving away), or not
	 * yet rebuilt (a new one, from serve until settle): take no return.
	 */
	atomic_bool bagging;
	atomic_uint elected;            /* the node a recovery elected to serve, another
					 * than this one (0: none; until set_server):
					 * returns go there */
	atomic_uint handlers;           /* requests of other nodes being handled */
	/*
	 * New vnodes are shaped for the current role: a relocation blocks
	 * shaping (from any thread, ended by another) while the role changes.
	 */
	pthread_mutex_t shape_mu;
	pthread_cond_t shape_cv;
	bool shape_blocked;             /* under shape_mu */
	unsigned shaping;               /* shapes in progress; under shape_mu */
	struct meta_store_opts store_opts;   /* how to open the store as MDS */
	struct kore *kore;              /* relocation state (src/relocate) */
	struct corpse *corpse;          /* recovery state (src/relocate) */
	struct cl_role *role;           /* rewrites of the role (cl_role.c) */
	struct rl_env rl;               /* what the engines may call; constant after cl_start */
	/*
	 * This node's own POSIX and flock locks as the server granted them,
	 * whatever its role: a recovery's survivor reports them (cl_role.c).
	 */
	pthread_mutex_t held_mu;        /* a leaf: protects held */
	pthread_mutex_t leg_mu;         /* the mirror master's decisions, one at a time (cl_mirror.c) */
	struct vn_lockmgr *held;
	struct xvm_vol *dev;            /* constant after cl_attach */
	uint32_t bs;
	uint64_t data_off;
	uint64_t data_blocks;           /* blocks of the data region; constant after cl_attach */
	struct meta_store *st;          /* MDS only; cleared under store_mu before it closes */
	/* Keeps the MDS's store open for cxfsctl backup while a role change would close it. */
	pthread_mutex_t store_mu;
	/* Keeps dmfs alive for a metrics scrape while a role change would destroy it. */
	pthread_mutex_t dm_mu;
	struct cl_ledger *ledger;       /* MDS: runs handed to nodes, unpublished (cl_runs.h) */
	struct vn_meta_fs *mfs;         /* MDS only */
	struct vn_table *vt;

	struct tok_client *tc;          /* every node */
	struct tok_server *ts;          /* MDS only */

	/*
	 * Counts the changes of server.  A new server writes its own
	 * unpublished runs into the store without recalling EXTENT (the
	 * nodes are not its clients yet), so a map cached before the change
	 * may show them unwritten: map_cover fetches it again.
	 */
	atomic_uint_fast64_t map_epoch;
	pthread_mutex_t imu;            /* protects the inode hash */
	struct cl_inode *ihash[4096];

	pthread_mutex_t nmu;            /* a leaf: protects every cl_inode.unaliasing */
	pthread_cond_t ncv;             /* with nmu: a name invalidation ended */

	pthread_mutex_t rmu;            /* reclaim queue (MDS) */
	pthread_cond_t rcv;
	uint64_t *rq;
	size_t nrq, rq_cap;
	bool rstop;
	pthread_t reclaimer;
	bool reclaimer_started;

	bool dm_enabled;                /* DMAPI filesystem; constant after cl_attach */
	struct dm_port dm_port;         /* the dmapi behavior's port; constant */
	struct dm_fs *dmfs;             /* MDS with DMAPI: events, sessions, lists; set and
					 * cleared under dm_mu */
	unsigned dm_timeout_s;          /* an event unanswered this long fails (0: never) */

	atomic_uint threads;            /* recall threads running */
	atomic_uint returns;            /* token returns on their way (cl_client.c, keep_state) */
	struct cl_stats stats;
	struct cl_pc *pc;               /* client data cache; constant after cl_attach */
	struct cl_async *as;            /* own creates (cl_async.c); constant after cl_attach */
	pthread_t flusher;              /* writes dirty cached data back (cl_client.c) */
	bool flusher_started;
	/* Files shared for I/O, to give their I/O tokens back once idle (cl_ioexcl.c). */
	pthread_mutex_t io_mu;          /* protects the fields below */
	pthread_cond_t io_cv;           /* a file was listed, or stop */
	uint64_t *io_inos;
	size_t io_n, io_cap;
	bool io_stop, io_started;
	pthread_t io_thread;
	struct cl_unsafe *un;           /* requests kept until durable (cl_unsafe.c); constant */

	/* The watchdog of token waits (cl_wait.c). */
	pthread_mutex_t wmu;            /* protects wts, wstop, wstarted; -> token server mutex */
	pthread_cond_t wcv;             /* CLOCK_MONOTONIC; signalled to stop the watchdog */
	struct tok_server *wts;         /* the token server while it serves (see cl_waits_server) */
	bool wstop, wstarted;
	pthread_t watchdog;
	atomic_uint wait_log_ms;        /* a wait this old is logged (0: never) */

	/* Whether the MDS is there (cl_reach.c). */
	unsigned server_wait_ms;        /* requests give up after this without a sign of life; constant */
	atomic_int_fast64_t reach_seen_ns;    /* CLOCK_MONOTONIC: the MDS last answered a probe */
	atomic_int_fast64_t reach_wanted_ns;  /* a request last waited for the MDS */
	pthread_mutex_t reach_mu;       /* a leaf: the prober sleeps on reach_cv with it */
	pthread_cond_t reach_cv;
	atomic_bool reach_stop;
	bool reach_started;             /* the prober runs; changed only by start and stop */
	pthread_t reacher;
};

/* ---- cl_node.c --------------------------------------------------------- */

/* The inode state of @ino, created if @create; referenced: put it. */
struct cl_inode *cl_inode_get(struct cl_ctx *cx, uint64_t ino, bool create);
void cl_inode_put(struct cl_ctx *cx, struct cl_inode *ci);
/* Forget the cached extended attributes of @ci (ci->mu held). */
void cl_xattrs_free(struct cl_inode *ci);
/* The hash of a name that indexes a directory's cached names. */
uint32_t cl_name_hash(const char *name);
/* Forget the cached names of directory @ci (ci->mu held). */
void cl_dents_free(struct cl_inode *ci);
/* The cached entry @name of directory @ci, or NULL; set it (ci->mu held). */
struct cl_dent *cl_dent_find(struct cl_inode *ci, const char *name);
void cl_dent_set(struct cl_inode *ci, const char *name, uint64_t ino);
/*
 * Set it and remember that the kernel has it (ci->mu held): to keep
 * (@kept), or with a time-out of 0 (it uses it only after asking again, but
 * keeps the alias of a directory, which must go when another node moves it).
 */
void cl_dent_tell(struct cl_inode *ci, const char *name, uint64_t ino, bool kept);
/*
 * Do other nodes keep changing directory @ci (its NAME went back less than
 * CL_WHOLE_REST_NS ago; ci->mu held)?  Then the kernel is not let keep its
 * names (vn_call.uncached): a recall would have to wait for the kernel to
 * forget them, while this node's own change there holds the directory.
 */
bool cl_names_busy(const struct cl_inode *ci);
/*
 * A lookup found directory @ino: wait (at most @ms) until the kernel forgot
 * the names of it that recalls asked it to forget: a directory another node
 * moved keeps its old alias until then, and the kernel, which cannot move
 * an alias while another thread holds the rename lock or the old parent,
 * would answer ESTALE.
 */
void cl_names_settle(struct cl_ctx *cx, uint64_t ino, unsigned ms);
/* NAME duty: forget directory @dir's names here and in the kernel. */
void cl_names_drop(struct cl_ctx *cx, uint64_t dir);
/* A bucket's NAME duty: forget the names of bucket @key of directory @dir, and the bucket. */
void cl_names_drop_bucket(struct cl_ctx *cx, uint64_t dir, uint64_t key);
/* Does @ci's dents hold every name of bucket @key (ci->mu held)?  Note that it does. */
bool cl_bucket_filled(const struct cl_inode *ci, uint64_t key);
int cl_bucket_note(struct cl_inode *ci, uint64_t key);
/*
 * The kernel is about to learn names @name and @name2 (either may be NULL)
 * of directory @dir from a change whose lent NAME token went back
 * meanwhile: make it forget them once it is done (on a helper thread).
 */
void cl_names_forget(struct cl_ctx *cx, uint64_t dir, const char *name, const char *name2);
/* The kernel's pages of @ino are stale: mark, and try to drop them now (bounded wait). */
void cl_pages_stale(struct cl_ctx *cx, uint64_t ino);
/* ATTR, TIMES or SIZE went back: the kernel must ask for @ino's attributes again. */
void cl_attr_stale(struct cl_ctx *cx, uint64_t ino);
/* Drop the kernel's pages of @ino if they went stale (before getattr/open answers). */
void cl_pages_check(struct cl_ctx *cx, uint64_t ino);
/* A read or write of @ci starts or ends on this node (see cl_pages_stale). */
void cl_io_begin(struct cl_inode *ci);
/* The read or write ended (a shared file's I/O is noted: cl_io_note). */
void cl_io_end(struct cl_ctx *cx, struct cl_inode *ci);
/* Acquire @want on @ino; interrupted waits are retried (0 or -errno). */
int cl_acquire(struct cl_ctx *cx, uint64_t ino, const struct tok_set *want);
/* Lend @want on @ino (tok_client_lend); interrupted waits are retried. */
int cl_lend(struct cl_ctx *cx, uint64_t ino, const struct tok_set *want, uint64_t *gen);
/* End a lend whose answer caches nothing: drop whatever is still held. */
void cl_lend_drop(struct cl_ctx *cx, uint64_t ino, const struct tok_set *want, uint64_t gen);
/* Run @fn(@arg) on a helper thread of its own (an idle one, or a new one); -errno. */
int cl_spawn(struct cl_ctx *cx, void (*fn)(void *), void *arg);
/* Node id of the peer of @ch, or 0 if it is not a node of the configuration. */
uint32_t cl_peer_id(struct cl_ctx *cx, struct rpc_chan *ch);

/*
 * A reference to the current MDS channel (NULL on the MDS); put it.
 */
struct rpc_chan *cl_mds_chan(struct cl_ctx *cx);
/* MDS: a held channel to node @node (its own to us, else ours to it), or NULL. */
struct rpc_chan *cl_node_chan(struct cl_ctx *cx, uint32_t node);
/*
 * Wait while the gate is closed: 0, or -VN_EMIGRATING (see gate_emigrate);
 * for an application's request also -EINTR or -EIO (cx_intr.h).
 */
int cl_gate_wait(struct cl_ctx *cx);
/*
 * Pause before sending a request to the MDS again (it was moving or could
 * not be reached): 0, or for an application's request -EINTR or -EIO
 * (cl_request_bound) to return instead.
 */
int cl_mds_pause(struct cl_ctx *cx);
/*
 * rpc_call() to the current MDS through the gate; a request the MDS could
 * not take (it was moving: an "early" error reply or a lost connection) is
 * sent again once the gate opens, with the same request id (cl_unsafe_call
 * sets it in @req if the message has one).  An application's request gives
 * up with -EINTR or -EIO (docs/ARCHITECTURE.md, "Interrupts").  On an
 * error *@reply is NULL (rpc_msg_free of it is a no-op).
 */
int cl_mds_call(struct cl_ctx *cx, Cxfs__MsgType type, ProtobufCMessage *req,
		Cxfs__MsgType *reply_type, ProtobufCMessage **reply);
/* Did a call to the MDS fail because the MDS was moving (send it again)? */
bool cl_mds_moved(int rc, Cxfs__MsgType rt, ProtobufCMessage *rep);
/* Close or open the gate. */
void cl_gate_close(struct cl_ctx *cx, bool emigrate);
void cl_gate_open(struct cl_ctx *cx);
/* Build @vn's chain for the node's current role (shaping blocked by the caller). */
int cl_shape_role(struct cl_ctx *cx, struct vnode *vn);
/* Block new shapes (waits for those in progress) and let them go again. */
void cl_shape_block(struct cl_ctx *cx);
void cl_shape_unblock(struct cl_ctx *cx);
/* The node of @id in the configuration, or NULL. */
const struct cms_node *cl_node_by_id(struct cl_ctx *cx, uint32_t id);
/*
 * Ask the other members who serves: 0 with *@server the first one named
 * other than this node (else this node if named, else 0), or -EAGAIN if
 * one recovers its server (ask again).
 */
int cl_name_ask(struct cl_ctx *cx, uint32_t *server);
/* Node @id's name, or "an unknown node" (for logs; cl_wait.c). */
const char *cl_peer_name(struct cl_ctx *cx, uint32_t id);

/* ---- cl_wait.c (token waits: watchdog, status) --------------------------- */

/* In cl_start: the watchdog's lock and defaults.  0 or -errno. */
int cl_waits_init(struct cl_ctx *cx);
/* In cl_stop: stop the watchdog if it runs, and free what cl_waits_init made. */
void cl_waits_fini(struct cl_ctx *cx);
/*
 * The token server whose waits are shown (NULL: none, this node does not
 * serve).  Its start sets it, its stop clears it before the server can go.
 */
void cl_waits_server(struct cl_ctx *cx, struct tok_server *ts);
/* Start (once the token client exists) and stop the watchdog thread. */
int cl_watchdog_start(struct cl_ctx *cx);
void cl_watchdog_stop(struct cl_ctx *cx);
/*
 * Append `"waits":{"server":[...],"client":[...],"left_out":N}` (server only
 * on the MDS) for the waits on @ino (0: all) to @buf at *@len, keeping
 * @reserve bytes free: waits that do not fit are left out and counted.
 * *@len counts on past @size like snprintf.  0 or -ENOSPC.
 */
int cl_waits_json(struct cl_ctx *cx, uint64_t ino, char *buf, size_t size, size_t *len,
		  size_t reserve);

/* ---- cl_reach.c (is the MDS there?) -------------------------------------- */

/* Start (in cl_attach) and stop (first in cl_stop) the prober thread. */
int cl_reach_start(struct cl_ctx *cx);
void cl_reach_stop(struct cl_ctx *cx);
/*
 * How long ago the MDS last answered a probe (or the node attached): it is
 * probed only while requests wait, so a large figure on an idle node is no
 * alarm.  For `cxfsctl status` (cluster.server_reach).
 */
int64_t cl_reach_heard_ms(struct cl_ctx *cx);

/* ---- cl_role.c (the role, for src/relocate) ------------------------------- */

int cl_role_init(struct cl_ctx *cx);     /* in cl_start, before any vnode */
void cl_role_fini(struct cl_ctx *cx);
/* The server granted lock @lk (or an unlock) on @ino to this node; a release drops them. */
void cl_locks_note_set(struct cl_ctx *cx, uint64_t ino, const struct vn_flock *lk);
void cl_locks_note_release(struct cl_ctx *cx, uint64_t ino, uint64_t owner, bool flock);

/* ---- cl_server.c (MDS) ------------------------------------------------- */

/* The token server (and, if @reclaim, the reclaimer of unlinked files). */
int cl_server_start(struct cl_ctx *cx, bool reclaim);
/*
 * Set cx->ts (a server's start, NULL at its end) under cl_ctx.store_mu,
 * which readers from other threads than the role change's (the status)
 * hold while they use it.
 */
void cl_server_publish(struct cl_ctx *cx, struct tok_server *ts);
/*
 * MDS: @node is out of the cluster (withdrew, or left and was fenced): its
 * tokens, POSIX and flock locks go, so no recall waits for it and other
 * nodes get its locks; files it held open after their last unlink are
 * freed, and so are the blocks it allocated and never published (still
 * unwritten: what it published stays).  @why goes to the log.
 */
void cl_server_node_lost(struct cl_ctx *cx, uint32_t node, const char *why);

/* ---- membership (cl_member.c) ---- */
struct cms_levels;
/* Start the membership and wait (cluster.conf quorum_wait) to be a member with quorum. */
int cl_member_start(struct cl_ctx *cx, const struct cms_levels *levels, char *err,
		    size_t errlen);
void cl_member_leave(struct cl_ctx *cx);   /* orderly: withdraw, nobody recovers us */
/* Stop the membership's threads (before the rpc context goes: they call into it). */
void cl_member_stop(struct cl_ctx *cx);
/* After the last write of an orderly stop: this node's key leaves the LUN. */
void cl_member_unregister(struct cl_ctx *cx);
bool cl_member_up(struct cl_ctx *cx, uint32_t node);   /* in the current membership */
bool cl_cut_off(struct cl_ctx *cx);      /* requests wait for quorum (or a server taken back) */
int cl_reregister(struct cl_ctx *cx);    /* this node's key on the volume again (it was fenced) */
void cl_uncut(struct cl_ctx *cx);        /* requests go again */
/* Preempt @node's key on the volume (it writes no more); 0 or -errno. */
int cl_fence(struct cl_ctx *cx, uint32_t node);
/* The node's SCSI-3 reservation key: one per node and cluster, never 0. */
uint64_t cl_pr_key(const struct cms_config *cfg, uint32_t node_id);
/* Stop the reclaimer (the token server stays); start it again. */
void cl_server_stop(struct cl_ctx *cx);
int cl_reclaimer_start(struct cl_ctx *cx);
int cl_server_shape(struct cl_ctx *cx, struct vnode *vn);
/* Token and data requests of remote nodes; -EOPNOTSUPP for other types. */
int cl_server_handle(struct cl_ctx *cx, uint32_t node, struct rpc_req *req, Cxfs__MsgType type,
		     const ProtobufCMessage *msg);
/*
 * Request @msg of @node was applied before and is answered again from the
 * store (cl_unsafe.c): what its first handling did to the tokens, again,
 * for a server that may not have seen it (a new one, after a recovery).  A
 * return gives back the levels the node still has here (not its state,
 * applied with the change); a create of @ino grants the tokens its answer
 * brings.  Either way the node waits for this answer with its give-back or
 * its create, so it holds no newer grant of those tokens.
 */
void cl_server_again(struct cl_ctx *cx, uint32_t node, Cxfs__MsgType type,
		     const ProtobufCMessage *msg, uint64_t ino);
/* The local client's transport (in-process). */
extern const struct tok_client_ops cl_local_tok_ops;

/* ---- cl_local.c (MDS) -------------------------------------------------- */

int cl_local_shape(struct cl_ctx *cx, struct vnode *vn);

/* ---- cl_client.c (other nodes) ----------------------------------------- */

extern const struct tok_client_ops cl_remote_tok_ops;
int cl_client_shape(struct cl_ctx *cx, struct vnode *vn);
/*
 * Relocation: this node becomes the MDS (@server: the runs it wrote and the
 * size and times it kept go into the store it opened) or stops being it;
 * either way every client cache is dropped.
 */
void cl_client_to_store(struct cl_ctx *cx, bool server);
/*
 * Recovery, on the node that becomes the server: its return of @taken (of
 * @ino) to the server that died was taken there (another node holds them
 * now): the size and times it carried are not this node's to keep.
 */
void cl_client_return_taken(struct cl_ctx *cx, uint64_t ino, const struct tok_set *taken);
/*
 * The data cache's flusher thread: started in cl_attach, stopped in
 * cl_stop after writing back every dirty page.
 */
/* Asynchronous creates (cl_async.c). */
int cl_async_start(struct cl_ctx *cx);
void cl_async_stop(struct cl_ctx *cx);
/* Send every queued create and wait for the server's answers (before anything else goes there). */
int cl_async_drain(struct cl_ctx *cx);
/*
 * Before a return of tokens of @ino: cl_async_drain, except while a
 * recovery elects a new server (cl_ctx.elected), when only a queue that
 * touches @ino is drained.  The rest cannot be sent until the new server
 * settles, and its settle may wait for this return.
 */
int cl_async_drain_return(struct cl_ctx *cx, uint64_t ino);
/* This node became the server: apply its queue here (its role change settles, the gate still closed). */
void cl_async_settle(struct cl_ctx *cx);
/* A number reserved for this node's next own create (asks the server for more when out). */
int cl_async_ino(struct cl_ctx *cx, uint64_t *ino, uint64_t *gen);
/* Queue an own create made here; 0 or -ENOMEM. */
int cl_async_queue(struct cl_ctx *cx, uint64_t dir, const char *name, uint32_t mode,
		   const struct vn_cred *cred, uint64_t ino, uint64_t gen, int64_t time_ns);
/* Queue an own unlink of file @ino made here; 0 or -ENOMEM. */
int cl_async_queue_unlink(struct cl_ctx *cx, uint64_t dir, const char *name,
			  const struct vn_cred *cred, uint64_t ino, int64_t time_ns);
/* Queue an own rename of file @ino within @dir made here; 0 or -ENOMEM. */
int cl_async_queue_rename(struct cl_ctx *cx, uint64_t dir, const char *name, const char *newname,
			  const struct vn_cred *cred, uint64_t ino, int64_t time_ns);
/* Is the queue at its bound?  (The creator then drains it.) */
bool cl_async_full(struct cl_ctx *cx);
void cl_async_counts(struct cl_ctx *cx, uint64_t *creates, uint64_t *unlinks, uint64_t *renames,
		     uint64_t *batches, uint64_t *failed, uint64_t *queued);
int cl_wb_start(struct cl_ctx *cx);
void cl_wb_stop(struct cl_ctx *cx);
/* This node is cut off: forget @ino's cached data, dirty too (its tokens went). */
void cl_client_drop_data(struct cl_ctx *cx, uint64_t ino);
/* A POSIX lock owner as the MDS knows it: the same from this node whatever its role. */
uint64_t cl_lock_owner(struct cl_ctx *cx, uint64_t owner);
/* Token duty for a remote client's caches. */
int cl_client_duty(struct cl_ctx *cx, uint64_t ino, enum tok_duty duty, struct tok_state *st);

/* ---- cl_dm.c (DMAPI) --------------------------------------------------- */

/* Set DMAPI up for a filesystem that has it (@enabled); on the MDS load its lists. */
int cl_dm_attach(struct cl_ctx *cx, bool enabled);
void cl_dm_detach(struct cl_ctx *cx);
/* Push the dmapi behavior on @vn (DMAPI filesystems). */
int cl_dm_shape(struct cl_ctx *cx, struct vnode *vn);
/* MDS: put @ino's event list and regions into grant @g (arrays of DM_MAX_REGIONS). */
void cl_dm_grant(struct cl_ctx *cx, uint64_t ino, Cxfs__TokenGrant *g, Cxfs__DmRegion *regs,
		 Cxfs__DmRegion **ptrs);
/* Client: keep what grant @g says of @ino's event list and regions. */
void cl_dm_granted(struct cl_ctx *cx, uint64_t ino, const Cxfs__TokenGrant *g);
/* MDS: a DMAPI request of another node (DM_REQUEST). */
int cl_dm_handle(struct cl_ctx *cx, struct rpc_req *req, const Cxfs__DmRequest *m);
/* MDS: run @fn(@arg) with @ino's DMAPI token at WRITE, recalled from every node. */
int cl_server_dmapi_excl(struct cl_ctx *cx, uint64_t ino, int (*fn)(void *arg), void *arg);

/* ---- token sets ------------------------------------------------------- */

/* The tokens a read or write needs (direct: O_DIRECT). */
void cl_read_set(struct tok_set *s, bool direct);
void cl_write_set(struct tok_set *s, bool direct, bool local);
/*
 * A write that may share the file with other nodes' writers (O_DIRECT,
 * whole blocks of @bs, not O_APPEND), and the tokens it takes then; it
 * goes on at SHARED_WRITE only if every block it writes has data already
 * (docs/ARCHITECTURE.md, "Shared direct writers"), else with cl_write_set.
 */
bool cl_write_shares(const struct vn_call *c, uint32_t bs);
void cl_swrite_set(struct tok_set *s);

/* ---- byte-range tokens (cl_range.c) ---- */

#define CL_RANGE_SHIFT 22                 /* ranges of 4 MiB */
#define CL_RANGE_SHARE_NS 5000000000LL    /* writes share a file this long after IO WRITE went */

/* What range tokens are taken for: a buffered write, an O_DIRECT write, a read. */
enum cl_range_use { CL_RANGE_WRITE, CL_RANGE_DIRECT, CL_RANGE_READ };

/* The range tokens an I/O holds: ranges [first, next) of inode ino. */
struct cl_range_hold {
	uint64_t ino, first, next;
	enum cl_range_use use;
};

/* Is token key @key a byte range?  Then its inode and bytes [@off, @end). */
bool cl_range_of(uint64_t key, uint64_t *ino, uint64_t *off, uint64_t *end);
/* The token key of @name's bucket in directory @dir (NAME only), or 0 (cl_range.c). */
uint64_t cl_bucket_key(uint64_t dir, const char *name);
/* A directory read by bucket: @fill(@ctx) is given only the names of bucket @key of @dir. */
struct cl_bucket_filter {
	vn_fill_fn fill;
	void *ctx;
	uint64_t dir, key;
};
int cl_bucket_fill(void *ctx, const char *name, const struct vn_attr *a, int64_t next_off);
/*
 * The tokens a directory is shared by (docs/ARCHITECTURE.md, "Shared
 * directories"): times and size at SHARED_WRITE, attributes at READ and,
 * with @names, NAME at SHARED_WRITE.
 */
void cl_shared_dir_set(struct tok_set *s, bool names);
/* Should buffered write @c share the file (the file's tokens at SWRITE, ranges at WRITE)? */
bool cl_range_wanted(struct cl_ctx *cx, struct cl_inode *ci, const struct vn_call *c);
/* Does this node share @ci by ranges now (a read there takes its ranges at READ)? */
bool cl_range_reads(struct cl_ctx *cx, struct cl_inode *ci);
/*
 * Take the range tokens of bytes [@off, @end) of @ci for @use, in
 * ascending order, holding the file's tokens at the shared levels: 0 or
 * -errno (nothing held then).
 */
int cl_range_acquire(struct cl_ctx *cx, struct cl_inode *ci, uint64_t off, uint64_t end,
		     enum cl_range_use use, struct cl_range_hold *h);
void cl_range_release(struct cl_ctx *cx, const struct cl_range_hold *h);
/* Give @ci's range tokens back (on a helper thread): it writes with the exclusive set. */
void cl_range_forget(struct cl_ctx *cx, struct cl_inode *ci);

/* ---- I/O-exclusive state (cl_ioexcl.c) ---- */

/* Is this node the only one writing @ci (the MDS says so)? */
bool cl_io_alone(struct cl_ctx *cx, struct cl_inode *ci);
/* Blocks preallocated ahead at most for @ci. */
uint64_t cl_prealloc_max(struct cl_ctx *cx, struct cl_inode *ci);
/* A read or write of @ci holds its tokens: note it (a shared file's last I/O). */
void cl_io_note(struct cl_ctx *cx, struct cl_inode *ci);
/* The MDS told this node its I/O-exclusive state of @ino (IOEXCL_STATE). */
void cl_io_told(struct cl_ctx *cx, uint64_t ino, bool excl);
int cl_io_start(struct cl_ctx *cx);
void cl_io_stop(struct cl_ctx *cx);
/* This node gave @tokens of @ino back (every give-back, range keys too). */
void cl_range_returned(struct cl_ctx *cx, uint64_t ino, const struct tok_set *tokens);

/* ---- mirrors of the volume (cl_mirror.c) ---- */

/* The mirror master (the MDS): a node's I/O to a leg failed (LEG_FAILED). */
int cl_mirror_leg_failed(struct cl_ctx *cx, uint32_t node, struct rpc_req *req,
			 const Cxfs__LegFailed *m);
/* Any node: the master marked a leg out (LEG_OUT, answers lane: never waits). */
int cl_mirror_leg_out(struct cl_ctx *cx, struct rpc_req *req, const Cxfs__LegOut *m);
/* Any node: the master's revive changed a mirror's state (MIRROR_STATE, requests lane). */
int cl_mirror_state(struct cl_ctx *cx, struct rpc_req *req, const Cxfs__MirrorState *m);
/* The mirror master: a node's read met a chunk not revived yet (REPAIR_HINT, one-way). */
int cl_mirror_repair_hint(struct cl_ctx *cx, const Cxfs__RepairHint *m);
/* The server changed: forget the busy ranges of the old one's revive. */
void cl_mirror_unbusy(struct cl_ctx *cx);
/*
 * The dirty-region log (cl_mirror.c).  cl_mirror_drl_start: this node logs
 * its mirror writes to @dev in its slot (before its first write).  Once
 * attached, cl_mirror_attached: a server sweeps, a client asks the server
 * (DRL_RESYNC) for what its own last run left.  cl_mirror_sweep: the
 * server resyncs the slots with regions of the nodes that are not members
 * (and its own last run's); when it starts serving and after it fenced a
 * node.  Each spawns the work.
 */
int cl_mirror_drl_start(struct cl_ctx *cx, struct xvm_vol *dev, char *err, size_t errlen);
void cl_mirror_attached(struct cl_ctx *cx);
void cl_mirror_sweep(struct cl_ctx *cx);
/* The mirror master: node @node asks for the resync of its slot (DRL_RESYNC). */
int cl_mirror_drl_resync(struct cl_ctx *cx, uint32_t node, struct rpc_req *req,
			 const Cxfs__DrlResync *m);
/* Any node: a step of the config server's layout change (VOL_CHANGE, requests lane). */
int cl_mirror_vol_change(struct cl_ctx *cx, struct rpc_req *req, const Cxfs__VolChange *m);

#endif
