/*
 * cms.h - cell membership: which nodes of the cluster are together, under
 * which epoch, with quorum or not.
 *
 * Every node sends a heartbeat datagram to every other node every heartbeat
 * interval, on a UDP socket of its own (the node's address and port, the
 * same number as its TCP port), apart from the cluster messages, so that a
 * node busy with requests is still heard.  Datagrams carry an HMAC-SHA-256
 * keyed by the cluster secret, the sender's incarnation (its start time)
 * and a sequence number: a forged, replayed or older datagram is refused
 * and counted.  A heartbeat tells which nodes its sender hears (its
 * *reach*), its epoch, its state and its protocol levels.
 *
 * The leader (cms_view_leader(): the member the longest in the membership
 * that may serve, the lowest number on a tie) proposes the largest set of
 * nodes that all reach each other (cms_view_clique()) as the next
 * membership, with the epoch one above any it has seen: PROPOSE to each node
 * of the set, which promises not to accept an older proposal and answers
 * ACK; with every ACK the leader sends COMMIT, and the membership is
 * delivered on every node.  The leader admits new nodes only when every
 * member has applied the current epoch (a recovery that runs in the
 * callback holds joins back), and removes a node that is no longer heard
 * at once.  A set without quorum (cms_view_quorum()) is never proposed: a
 * node that cannot reach a quorum delivers its own view without quorum, and
 * its user stops serving and writing.  A node that withdraws (cms_leave())
 * says so in its heartbeats and is removed marked as *withdrawn*, so that
 * nobody fences or recovers it.
 *
 * States, as the seed names them: NASCENT (not a member yet), FOLLOWER (a
 * member applying a new membership), LEADER (the member that runs the
 * protocol), STABLE (a member, membership applied), DEAD (no quorum within
 * reach), SHUTDOWN (withdrawing).
 *
 * Threads: one thread owns the socket and runs the protocol (never blocks
 * but in poll()); a second delivers memberships to the user's callback,
 * which may block (it fences and recovers); the protocol thread goes on
 * meanwhile, and the node reports the epoch it applied in its heartbeats.
 *
 * Lock order: cms.mu only (a leaf; the callback runs without it).
 */
#ifndef CXFS_CMS_H
#define CXFS_CMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "membership/cms_config.h"
#include "membership/cms_view.h"

struct cms;

enum cms_state {
	CMS_NASCENT,
	CMS_FOLLOWER,
	CMS_LEADER,
	CMS_STABLE,
	CMS_DEAD,
	CMS_SHUTDOWN,
};

/* The subsystems that speak a protocol level of their own. */
enum cms_subsys {
	CMS_SUB_MESSAGES,
	CMS_SUB_TOKENS,
	CMS_SUB_DMAPI,
	CMS_SUB_RELOCATION,
	CMS_SUB_MEMBERSHIP,
	CMS_NSUBSYS
};

/* A node's protocol levels: the range it speaks, per subsystem. */
struct cms_levels {
	uint16_t min[CMS_NSUBSYS];
	uint16_t max[CMS_NSUBSYS];
};

/* A membership, as delivered. */
struct cms_view {
	uint64_t epoch;                      /* grows by one with each change; 0: none yet */
	/*
	 * The epoch of the last change that removed a node: messages between
	 * nodes carry it and older ones are refused, so a node cut off (and
	 * anything it sent before) is not heard until it rejoins; joins do not
	 * raise it, so they disturb no connection.
	 */
	uint64_t floor;
	uint64_t members;                    /* node index bits */
	uint64_t withdrawn;                  /* left since the previous view by their own will */
	uint64_t removed;                    /* members of the previous view that are not now */
	uint64_t gone;                       /* withdrew in order, not back: quorum counts without them */
	int leader;                          /* node index, -1 if none */
	bool quorum;                         /* false: this node is cut off, serve nothing */
	bool member;                         /* this node is in @members */
	uint64_t incarnation[CMS_MAX_NODES]; /* each member's incarnation */
	uint16_t level[CMS_NSUBSYS];         /* the levels every member speaks (the lowest max) */
};

struct cms_ops {
	/*
	 * A new membership (or the loss of quorum); on the delivery thread, may
	 * block.  The next one is delivered after it returns; the node tells the
	 * others it applied @v only then.
	 */
	void (*view)(void *arg, const struct cms_view *v);
	/*
	 * Exactly half of the nodes that may serve are together (@others, the
	 * other half, are not): race for the shared disk (preempt their keys).
	 * 1 if this node won, 0 if it lost, negative errno if it could not try.
	 * On the protocol thread: must be bounded (a few hundred ms).
	 */
	int (*tie_break)(void *arg, uint64_t others);
	/*
	 * Every member has applied the current membership, whose floor is
	 * @floor: messages carrying less may be refused now (every member sends
	 * at least that).  On the protocol thread: must not block.
	 */
	void (*settled)(void *arg, uint64_t floor);
};

struct cms_opts {
	const struct cms_config *cfg;
	const struct cms_node *self;
	const struct cms_ops *ops;
	void *arg;
	struct cms_levels levels;            /* this node's; zeros: the current ones */
	void (*log)(void *arg, const char *line);  /* one line per change and refusal */
};

/* The levels of this build. */
void cms_levels_current(struct cms_levels *out);
/*
 * This build's levels with some replaced: "SUBSYS=MIN-MAX[,...]" (e.g.
 * "messages=1-1", to run a node as an older one would).  0 or -EINVAL.
 */
int cms_levels_parse(const char *spec, struct cms_levels *out);

/*
 * Bind the node's UDP port and start the threads.  0 or -errno (-EADDRINUSE,
 * -EINVAL for more than CMS_MAX_NODES nodes).
 */
int cms_start(const struct cms_opts *o, struct cms **out);
/*
 * Withdraw in order: heartbeats say SHUTDOWN until the others' membership
 * no longer holds this node (or @wait_ms passed).  Returns 0 when they saw it.
 */
int cms_leave(struct cms *m, unsigned wait_ms);
void cms_stop(struct cms *m);
/*
 * This node lost its standing (it found itself fenced): it reports itself
 * dead until the leader commits a new membership with it, which its user
 * takes as being taken back (it registers again).
 */
void cms_rejoin(struct cms *m);

/* The membership delivered last (epoch 0 before the first). */
void cms_view_get(struct cms *m, struct cms_view *out);
/*
 * Wait until this node is a member with quorum, up to @ms; 0, -ETIMEDOUT,
 * or -EPROTO when a member's levels and ours share none (logged).
 */
int cms_wait_member(struct cms *m, unsigned ms);
enum cms_state cms_state_get(struct cms *m);
const char *cms_state_name(enum cms_state s);
const char *cms_subsys_name(enum cms_subsys s);

/* The membership, states and counters as a JSON object; bytes or -ENOSPC. */
int cms_status_json(struct cms *m, char *buf, size_t size);

#endif
