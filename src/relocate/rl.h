/*
 * rl.h - what the engines that move a filesystem's metadata server need
 * from the rest of the node: relocation on purpose (KORE, kore.c) and
 * recovery after the server died (CORPSE, corpse.c).  Both engines call
 * the cluster layer only through the tables below, which it gives them
 * (src/cluster/cl_role.c): this layer includes nothing of src/cluster, so
 * the layer picture has no circle.
 *
 * A move carries the server's state in a *bag*: every node's tokens and
 * levels, the POSIX and flock locks, and (recovery) the requests the dead
 * server answered before they were durable.  In a relocation the source
 * fills it from its server state; in a recovery every survivor adds its
 * own share (its tokens, its locks, its requests) and the new server
 * rebuilds from all of them.
 *
 * The seed's callouts: each subsystem (name service and chains, requests,
 * tokens, locks, DMAPI, relocation) has a table with the phases it takes
 * part in; an engine calls them in table order (lowest layer first).
 */
#ifndef CXFS_RL_H
#define CXFS_RL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/cxfs.pb-c.h"
#include "token/tok.h"
#include "vnode/vn.h"

struct cms_config;
struct cms_fs;
struct cms_node;
struct rpc_ctx;
struct rpc_chan;

#define RL_MAX_NODES 256           /* node ids are below this */

struct rl_grant {
	uint32_t node;
	uint64_t ino;
	struct tok_set held;
	struct tok_set returning;      /* of held, those only on their way back */
};

struct rl_lock {
	uint64_t ino;
	struct vn_flock lk;
};

/* A server's state between nodes (see the head of this file). */
struct rl_bag {
	struct rl_grant *g;
	size_t ng, gcap;
	struct rl_lock *l;
	size_t nl, lcap;
	Cxfs__UnsafeReq **u;            /* owned: each unpacked by protobuf-c (rl_bag_unsafe) */
	size_t nu, ucap;
};

/* @returning (NULL: none): of @held, the levels only on their way back. */
int rl_bag_grant(struct rl_bag *b, uint32_t node, uint64_t ino, const struct tok_set *held,
		 const struct tok_set *returning);
int rl_bag_lock(struct rl_bag *b, uint64_t ino, const struct vn_flock *lk);
/* Add a copy of @u (the bag's own). */
int rl_bag_unsafe(struct rl_bag *b, const Cxfs__UnsafeReq *u);
void rl_bag_clear(struct rl_bag *b);
/* Add the parts of a bag message (grants, locks, requests); -EINVAL on nonsense. */
int rl_bag_take(struct rl_bag *b, const Cxfs__RelocReq *m);
/*
 * Send @b to node @to over @ch as messages of phase @part, the last one of
 * phase @last (each message carries @fill's other fields); 0 or -errno.
 */
int rl_bag_send(struct rpc_chan *ch, const struct rl_bag *b, const Cxfs__RelocReq *fill,
		uint32_t part, uint32_t last, unsigned timeout_ms);

enum rl_gate {
	RL_GATE_OPEN,       /* requests go to the server */
	RL_GATE_CLOSED,     /* new requests to the server wait */
	RL_GATE_MIGRATE,    /* this node becomes the server: they restart on the new chains */
};

/*
 * The node (cl_role.c).  Every callout runs with no lock of either layer
 * held and may block unless said otherwise.
 */
struct rl_node_ops {
	/* The configuration (names, addresses, server order); constant. */
	const struct cms_config *(*config)(void *arg);
	const struct cms_fs *(*fs)(void *arg);
	struct rpc_ctx *(*rpc)(void *arg);
	uint32_t (*self)(void *arg);
	uint32_t (*server)(void *arg);           /* the server this node knows (0: none) */
	bool (*serving)(void *arg);
	bool (*connected)(void *arg, uint32_t node);  /* server: @node has a channel to it */
	bool (*member)(void *arg, uint32_t node);     /* in the current membership */
	void (*gate)(void *arg, enum rl_gate g);
	void (*moving)(void *arg, bool on);     /* the server moves: requests get "early" */
	/* Could this node serve (it reads the volume's superblock)? */
	int (*can_serve)(void *arg, char *err, size_t errlen);
	/* Announce a rewrite of every vnode (operations entering one wait); end them. */
	void (*announce)(void *arg);
	void (*release)(void *arg);
	/* Server: wake every wait, drain the handlers, stop the reclaimer. */
	void (*quiesce)(void *arg);
	/* Server, a move given up before unshape: stop waking waits, reclaim again. */
	void (*resume)(void *arg);
	/* Server: the chains take the client shape and no return is taken any more. */
	int (*unshape)(void *arg);
	/* Server, after the gather: the server's state and store go (committed). */
	void (*drop_server)(void *arg);
	/* A server another node replaced: its store writes nothing more, ever. */
	void (*abandon)(void *arg);
	/* Register this node's key on the volume again (it was fenced); 0 or -errno. */
	int (*reregister)(void *arg);
	/* Preempt @node's reservation key on the volume (it writes no more). */
	int (*fence)(void *arg, uint32_t node);
	/* Open the store (its log replayed) and start an empty token server. */
	int (*open_store)(void *arg, char *err, size_t errlen);
	/*
	 * Serve (DMAPI, in-process tokens, server chains), before the
	 * reconstruction: the requests replayed run on the server chains.
	 */
	int (*serve)(void *arg, char *err, size_t errlen);
	/*
	 * After the reconstruction: this node's own client state (the runs it
	 * wrote, the size and times it kept) goes into the store, and files
	 * that lost their last name may be freed from now on.
	 */
	void (*settle)(void *arg);
	/* Undo open_store (and serve): this node does not serve after all. */
	void (*unserve)(void *arg);
	/*
	 * The server is @node, reached over @ch (NULL on the server itself);
	 * calls still waiting on the old one end at once if it died (@old_dead).
	 */
	void (*set_server)(void *arg, uint32_t node, struct rpc_chan *ch, bool old_dead);
	/*
	 * A recovery elected @node to serve (this node sends it its share):
	 * until set_server, token returns go there, as the new server's
	 * settle may wait for them before this node is told it serves.
	 */
	void (*elected)(void *arg, uint32_t node);
	/* Close this node's channels to @node: calls waiting on it end early. */
	void (*cut)(void *arg, uint32_t node);
	/* Empty the store's log while serving (a later close is quick). */
	void (*checkpoint)(void *arg);
	/* Cut off (no quorum, or taken back and not yet sure of its role)? */
	bool (*cut_off)(void *arg);
	/* Taken back and sure of its role: requests go again. */
	void (*uncut)(void *arg);
	/*
	 * Who the other members say serves: 0 and *@server (another node if
	 * one names one, else this node if named, else 0), or -EAGAIN while
	 * one of them recovers.
	 */
	int (*ask_server)(void *arg, uint32_t *server);
	/* A call to the server through the gate (cl_mds_call); 0 or -errno. */
	int (*server_call)(void *arg, Cxfs__MsgType type, ProtobufCMessage *req,
			   Cxfs__MsgType *reply_type, ProtobufCMessage **reply);
};

/* A subsystem's part in a move: the seed's callouts (NULL: nothing to do). */
struct rl_callout {
	const char *name;
	/* Every survivor: the nodes @dead died; what they held here goes. */
	void (*celldown)(void *arg, uint64_t dead);
	/*
	 * Add to @b the subsystem's state: the server's whole state (@server,
	 * a relocation's source) or this node's own share (a survivor).
	 */
	int (*gather)(void *arg, struct rl_bag *b, bool server);
	/*
	 * The new server, after serve and before settle, with the rewrites
	 * still announced (nobody else enters a vnode): rebuild from @b.
	 */
	int (*reconstruct)(void *arg, const struct rl_bag *b);
	/* Every node: the server is @server now (the new server's requests are durable). */
	void (*retarget)(void *arg, uint32_t server);
};

struct rl_env {
	const struct rl_node_ops *node;
	const struct rl_callout *const *subs;   /* lowest layer first */
	size_t nsubs;
	void *arg;
};

/* Shared by both engines (kore.c). */
const struct cms_node *rl_node(const struct rl_env *env, uint32_t id);   /* NULL: none */
/*
 * Become the server with @bag: open the store, serve, each subsystem
 * rebuilds from @bag (table order), settle; on failure nothing of it
 * stays.  The rewrites of every vnode are announced by the caller.
 */
int rl_become_server(const struct rl_env *env, const struct rl_bag *bag, char *err,
		     size_t errlen);
/* Every subsystem adds its state to @bag (see rl_callout.gather). */
int rl_gather(const struct rl_env *env, struct rl_bag *bag, bool server);
/*
 * Connect to the new server @target and JOIN (it learns our channel); it is
 * ours now (calls waiting on the old one end if it died: @old_dead).
 */
int rl_join(const struct rl_env *env, uint32_t target, bool old_dead);
/* Milliseconds since @t0 (cx_intr_now_ns). */
double rl_ms_since(int64_t t0);

#endif
