/*
 * cl.h - a cxfsd in a cluster: the configuration, the node's RPC endpoint,
 * the name service (who serves the filesystem), the token client every node
 * runs and the token server the metadata server (MDS) runs, and the vnode
 * behaviors that give each node its shape:
 *
 *   MDS node:    local client -> server -> meta      (src/cluster/cl_local.c,
 *                                                      cl_server.c, vnode/vn_meta.c)
 *   other nodes: client                               (cl_client.c)
 *
 * A remote node's request enters the MDS's vnode below the local client
 * (vn_call_below), so every change, from whichever node, passes the server
 * behavior, which takes the tokens it needs from the token server (recalling
 * them from every node that caches them) before the store changes.
 *
 * The daemon calls, in order: cl_start() (before opening the volume: the
 * configuration names it), cl_attach() (once the volume, and on the MDS the
 * store, are open), vn_table_create(cl_shape, ctx) and cl_set_table(), and
 * at the end cl_quiesce(), vn_table_purge() and cl_stop().
 */
#ifndef CXFS_CL_H
#define CXFS_CL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cl_pcache.h"
#include "common/cx_hist.h"
#include "dmapi/dm.h"
#include "proto/cxfs.pb-c.h"
#include "relocate/kore.h"
#include "rpc/rpc.h"
#include "token/tok.h"

struct xvm_vol;
struct meta_store;
struct vn_meta_fs;
struct vn_table;
struct vnode;
struct cl_ctx;
struct kore;

struct cms_levels;

struct cl_opts {
	const char *config;          /* cluster.conf */
	const char *node;            /* this node's name in it */
	const char *fs;              /* filesystem name, or NULL: the first */
	/*
	 * Drop the kernel's cached pages (and attributes) of @ino; called
	 * from token duties and before answering getattr/open of a file whose
	 * pages went stale.  May block on the kernel's page locks.
	 */
	int (*inval)(void *arg, uint64_t ino);
	/* Drop the kernel's entry @name of directory @dir (same rules). */
	int (*inval_entry)(void *arg, uint64_t dir, const char *name);
	/* Drop the kernel's cached attributes of @ino only; never blocks. */
	int (*inval_attr)(void *arg, uint64_t ino);
	void *inval_arg;
	/* The protocol levels this node advertises (NULL: this build's); for tests of old peers. */
	const struct cms_levels *levels;
	/*
	 * An application's request that waits for a metadata server that
	 * shows no sign of life (refused, stopped, cut off) fails with EIO
	 * after this long; 0: CL_SERVER_WAIT_MS_DEFAULT.
	 */
	unsigned server_wait_ms;
	/*
	 * This node took over serving the filesystem (a relocation or a
	 * recovery settled here); called on the engine's thread, must not
	 * block.  The daemon goes on with a revive of the volume's mirrors
	 * that the old server (the mirror master) left unfinished.  May be NULL.
	 */
	void (*serving)(void *arg);
	void *serving_arg;
};

#define CL_SERVER_WAIT_MS_DEFAULT 60000

/*
 * Load the configuration (errors name the file and line), start the RPC
 * endpoint on the node's port and find the MDS: the node that already
 * serves the filesystem, else the first up node of its server order.  On
 * failure @err says why.
 */
int cl_start(const struct cl_opts *o, struct cl_ctx **out, char *err, size_t errlen);
/* The node's relocation engine (relocate/kore.h: cxfsctl relocate, an orderly stop). */
struct kore *cl_kore(struct cl_ctx *cx);
/*
 * Register this node's reservation key on the volume @dev and make sure of
 * the cluster's Write Exclusive - Registrants Only reservation, before
 * anything is written (a file volume: nothing to do).  @dev is watched from
 * then on: a write refused by the target (this node was fenced) cuts the
 * node off.  0 or -errno with @err.
 */
struct xvm_vol;
int cl_register(struct cl_ctx *cx, struct xvm_vol *dev, char *err, size_t errlen);
bool cl_is_server(const struct cl_ctx *cx);
/* The filesystem's volume lines: the LUNs of its volume (xvm_open()). */
size_t cl_volume_count(const struct cl_ctx *cx);
const char *cl_volume(const struct cl_ctx *cx, size_t i);
/*
 * The cluster's say over the volume's mirrors (xvm_open(), argument: the
 * cl_ctx): a leg that failed I/O here is marked out by the mirror master (the
 * metadata server) in the labels and on every node before the I/O goes on
 * without it (cl_mirror.c).
 */
extern const struct xvm_cluster_ops cl_xvm_ops;
/*
 * The config server (the metadata server, as for the mirrors): change the
 * volume's layout while every node uses it.  @uri is opened on every
 * member (each must have a path to it, or nothing changes), then attached
 * as a reviving leg of mirror @mirror (>= 0) or appended to the top-level
 * concat (-1), in the labels (two phases) and on every member.  -EAGAIN
 * on a node that does not serve; errors name the node at fault in @err.
 */
int cl_volume_change(struct cl_ctx *cx, int mirror, const char *uri, char *err, size_t errlen);
/*
 * The config server: detach leg @leg of mirror @mirror while every node
 * uses the volume (xvm_detach_begin .. xvm_detach_finish on every node).
 */
int cl_volume_detach(struct cl_ctx *cx, unsigned mirror, unsigned leg, char *err, size_t errlen);
const char *cl_initiator(const struct cl_ctx *cx);  /* this node's iSCSI initiator name */
const char *cl_node_name(const struct cl_ctx *cx);
const char *cl_fs_name(const struct cl_ctx *cx);
uint32_t cl_node_id(const struct cl_ctx *cx);       /* the node's number, from 1 */
/* Where this node serves its metrics per the configuration (ADDR:PORT), or NULL. */
const char *cl_metrics_addr(const struct cl_ctx *cx);

/*
 * The volume is open (@dev, whose superblock says where data lies); on the
 * MDS also the store and the meta behaviors' state, which the cluster owns
 * from now on (a relocation closes them and opens them on another node; the
 * last holder closes them in cl_stop).  Starts serving.
 */
int cl_attach(struct cl_ctx *cx, struct xvm_vol *dev, struct meta_store *st,
	      struct vn_meta_fs *mfs, char *err, size_t errlen);
/* vn_shape_fn: @arg is the struct cl_ctx. */
int cl_shape(void *arg, struct vnode *vn);
void cl_set_table(struct cl_ctx *cx, struct vn_table *vt);
/*
 * The bound of an application's request (common/cx_intr.h, @arg the
 * struct cl_ctx): -EIO once the MDS has not been heard from for the server
 * wait since the request started or since it last answered, whichever is
 * later; 0 otherwise, and always on the MDS.
 */
int cl_request_bound(void *arg, int64_t since_ns);
/* Stop answering other nodes (before the vnode table is purged). */
void cl_quiesce(struct cl_ctx *cx);
/* Stop serving and leave; every vnode must be gone (vn_table_purge). */
void cl_stop(struct cl_ctx *cx);

/*
 * A request of this node's DMAPI socket (dm_op.h) from local connection
 * @conn: INFO is answered here, the rest by the MDS (this node or another).
 * The packed DmReply goes to a new buffer *@buf (free it).  0 or -ENOMEM.
 */
int cl_dm_request(struct cl_ctx *cx, uint64_t conn, const Cxfs__DmRequest *req,
		  uint8_t **buf, size_t *len);
/* Local connection @conn closed (its HSM sessions have no process now). */
void cl_dm_conn_gone(struct cl_ctx *cx, uint64_t conn);
/* How a node that becomes the MDS opens the store (relocation). */
struct meta_store_opts;
void cl_set_store_opts(struct cl_ctx *cx, const struct meta_store_opts *so);
/* A DMAPI event unanswered for @seconds fails its operation with EIO (0: wait forever). */
void cl_dm_set_timeout(struct cl_ctx *cx, unsigned seconds);
/*
 * A token wait older than @seconds is logged, once, and again at 6, 24 and
 * every 120 times that age (default 5; 0: never).
 */
void cl_set_wait_log(struct cl_ctx *cx, unsigned seconds);

/* `cxfsctl status --json`: the cluster part, a JSON object, into @buf. */
int cl_status_json(struct cl_ctx *cx, char *buf, size_t size);
/*
 * The node's figures for its metrics (src/daemon/metrics_node.c), read
 * from each layer's own counters; no lock of the caller's is needed.
 */
#define CL_METRICS_NODES 64
struct cl_metrics {
	bool is_server;                 /* serves the metadata now (and is not cut off) */
	bool cut_off;                   /* no quorum, or not a member */
	uint64_t epoch;                 /* the membership's, as delivered here */
	bool quorum;
	size_t nnodes;                  /* nodes of the configuration (at most CL_METRICS_NODES) */
	struct {
		const char *name;       /* constant while the context lives */
		bool up;                /* in the membership (this node's view) */
		bool serves;            /* the metadata server this node knows */
	} node[CL_METRICS_NODES];
	struct rpc_stats rpc;
	struct tok_client_stats tc;
	struct cx_hist_snap tok_wait;   /* tok_client_wait_hist */
	bool has_ts;                    /* the token server's figures (the MDS) */
	struct tok_server_stats ts;
	bool has_dm;                    /* DMAPI's (an MDS of a DMAPI filesystem) */
	struct dm_stats dm;
	struct kore_stats reloc;        /* relocations this node was the source of */
	uint64_t attr_hits, attr_misses;  /* attributes answered from this node's cache, or not */
	uint64_t name_hits, name_misses;  /* names (lookups) likewise */
	bool has_pc;                    /* the data cache's figures (a client node) */
	struct cl_pc_counts pc;
	uint64_t recoveries;            /* recoveries this node took part in */
};
/* Fill @m (a large struct: allocate it).  Caller frees nothing. */
void cl_metrics_get(struct cl_ctx *cx, struct cl_metrics *m);
/* rpc_ctx_call_hist of the node's RPC context. */
void cl_call_hist(struct cl_ctx *cx, Cxfs__MsgType type, struct cx_hist_snap *out);

/*
 * `cxfsctl backup FILE` on the metadata server: meta_store_backup of the
 * store.  On another node -EREMOTE with @err naming the server.
 */
int cl_store_backup(struct cl_ctx *cx, const char *path, char *err, size_t errlen);

/* `cxfsctl tokens PATH`: what this node caches of @ino, and on the MDS every node's grants. */
int cl_tokens_json(struct cl_ctx *cx, uint64_t ino, char *buf, size_t size);

#endif
