/*
 * tok.h - tokens: the cluster's coherence protocol for the data and metadata
 * of each file, as a state machine independent of any transport.
 *
 * Every file has eleven tokens (enum tok_id), each held at one of three
 * levels: READ, SHARED_WRITE (TOK_SWRITE) or WRITE.  Different levels
 * conflict with each other and WRITE also conflicts with WRITE; READ/READ
 * and SWRITE/SWRITE are compatible.  The token server (one per filesystem,
 * on its metadata server) records which holder has which level; the token
 * client (one per node and filesystem) caches the tokens its node was
 * granted, counts the references its operations put on them, and gives them
 * back when the server recalls them, after doing each token's return duty
 * (flush, discard, invalidate, send back timestamps or size; see
 * tok_duties()).  The RPC layer carries the messages: it implements the
 * callbacks below and calls the matching entry points on the other side.
 *
 *   node                               metadata server
 *   tok_client_acquire --ops.obtain--> tok_server_acquire (may recall others)
 *   tok_client_recall <--ops.recall--- (a conflicting request waits)
 *        \--ops.give_back----------->  tok_server_returned
 *   (conditional recall refused: -EBUSY) tok_server_refused
 *
 * Message order: each node's give_back and obtain messages must reach the
 * server in the order the client made them (one ordered channel).
 *
 * Rules for users of a token client (they keep both sides deadlock free):
 *   - An operation acquires every token it needs on one inode in one call,
 *     and does not acquire more tokens on that inode while it holds
 *     references there; across inodes it acquires in ascending inode order.
 *   - To ask the server to change what one of its held READ tokens protects,
 *     a node lends that READ token to the server's operation
 *     (tok_client_lend, tok_server_op_begin) rather than releasing it.
 *   - A node never waits for the server while it holds ordinary references
 *     that another server request could need recalled, except on the inode
 *     of its own request (a write asking for allocation), where its IO
 *     token keeps every other node's references away.  Lent references do
 *     not count: a recall does not wait for them.
 *
 * Results are 0 or negative errno; -TOK_EEARLY is the internal result of a
 * wait cut short by tok_*_interrupt_all() (relocation, recovery): the caller
 * gets what it already had and retries later.  It never reaches an
 * application.
 */
#ifndef CXFS_TOK_H
#define CXFS_TOK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Internal result: a wait was interrupted (same number as VN_EEARLY). */
#define TOK_EEARLY 4102

/* The eleven tokens of a file. */
enum tok_id {
	TOK_EXIST,       /* the node has the inode at all; recalled conditionally */
	TOK_IOEXCL,      /* I/O-exclusive state: READ by every node doing I/O */
	TOK_IO,          /* read/write atomicity: READ buffered reads, WRITE buffered writes */
	TOK_PAGE_DIRTY,  /* right to keep modified file data cached */
	TOK_PAGE_CLEAN,  /* right to keep unmodified file data cached */
	TOK_NAME,        /* right to cache lookups in a directory */
	TOK_ATTR,        /* ownership, mode, xattrs and other small fields */
	TOK_TIMES,       /* timestamps; SWRITE: update them locally */
	TOK_SIZE,        /* file size and block count */
	TOK_EXTENT,      /* the extent map */
	TOK_DMAPI,       /* the DMAPI event mask */
	TOK_NTOKENS
};

/* Levels; TOK_NONE means "not held" / "not wanted". */
enum tok_level {
	TOK_NONE = 0,
	TOK_READ = 1,
	TOK_SWRITE = 2,  /* shared write */
	TOK_WRITE = 3,
	TOK_NLEVELS
};

/* A set of (token, level) pairs for one inode: level[t] == TOK_NONE if absent. */
struct tok_set {
	uint8_t level[TOK_NTOKENS];  /* enum tok_level per token */
};

/* Return duties, in the order a client runs them (flush before discard). */
enum tok_duty {
	TOK_DUTY_FLUSH,          /* write modified cached file data to disk */
	TOK_DUTY_DISCARD,        /* drop cached file data */
	TOK_DUTY_TIMES,          /* fill tok_state.atime/mtime/ctime with the node's times */
	TOK_DUTY_SIZE,           /* fill tok_state.size/blocks with the node's size */
	TOK_DUTY_INVAL_NAMES,    /* drop cached lookups in the directory */
	TOK_DUTY_INVAL_ATTR,     /* drop cached attributes and xattrs (after TIMES/SIZE read them) */
	TOK_DUTY_INVAL_EXTENTS,  /* drop the cached extent map */
	TOK_NDUTIES
};
#define TOK_DUTY_BIT(d) (1u << (d))

/* Valid bits of struct tok_state. */
#define TOK_ST_TIMES  0x1u
#define TOK_ST_SIZE   0x2u
#define TOK_ST_IOEXCL 0x4u

/*
 * State that travels with tokens: returned by a node with TIMES or SIZE,
 * merged on the server, handed to the next holder with its grant.
 */
struct tok_state {
	unsigned valid;                       /* TOK_ST_* bits: which fields are meaningful */
	struct timespec atime, mtime, ctime;  /* with TOK_ST_TIMES */
	uint64_t size;                        /* bytes, with TOK_ST_SIZE */
	uint64_t blocks;                      /* 512-byte units, with TOK_ST_SIZE */
	bool ioexcl;                          /* with TOK_ST_IOEXCL: the grantee is the only I/O node */
};

/* ---- token sets and the token table (tok_table.c) ---------------------- */

void tok_set_clear(struct tok_set *set);
/* Add (or replace) @tok at @level. */
void tok_set_add(struct tok_set *set, enum tok_id tok, enum tok_level level);
bool tok_set_empty(const struct tok_set *set);
/* Raise each token of @set to its level in @by where that is higher. */
void tok_set_raise(struct tok_set *set, const struct tok_set *by);
/* Do holders of levels @a and @b (both not TOK_NONE) conflict? */
bool tok_level_conflicts(enum tok_level a, enum tok_level b);
/* Does a node holding @held have the rights of @want?  (WRITE covers all.) */
bool tok_level_covers(enum tok_level held, enum tok_level want);
const char *tok_name(enum tok_id tok);            /* "exist", "ioexcl", ... */
const char *tok_level_name(enum tok_level level);  /* "none", "read", "swrite", "write" */
/* TOK_DUTY_BIT() mask of what returning @tok held at @level requires. */
unsigned tok_duties(enum tok_id tok, enum tok_level level);

/* ---- token server (tok_server.c) --------------------------------------- */

struct tok_server;
struct tok_op;

/*
 * What the server needs from its surroundings.  None of these runs under the
 * server's mutex except @merged and @last_exist, which must not call into the
 * token server.
 */
struct tok_server_ops {
	/*
	 * Ask @node to give back @tokens of @ino (conditionally: the node may
	 * refuse while it uses the file).  Must not wait for the answer, which
	 * comes as tok_server_returned() or tok_server_refused().
	 */
	void (*recall)(void *arg, uint32_t node, uint64_t ino, const struct tok_set *tokens,
		       bool conditional);
	/*
	 * Tell @node, the only node holding IOEXCL READ, its I/O-exclusive
	 * state: @excl false before a second node gets a copy (granted only
	 * after this returns), true when the other copies came back.  The
	 * server calls it for one holder at a time, so the two arrive in order.
	 */
	void (*ioexcl_tell)(void *arg, uint32_t node, uint64_t ino, bool excl);
	/* Optional: returned timestamps or size were merged into @st. */
	void (*merged)(void *arg, uint64_t ino, const struct tok_state *st);
	/*
	 * Optional: the last EXIST token of @ino, whose existence was
	 * recalled and refused (tok_server_recall_exist() gave -EBUSY),
	 * came back: the file may be removed now.
	 */
	void (*last_exist)(void *arg, uint64_t ino);
};

struct tok_server_stats {
	uint64_t grants;     /* requests granted */
	uint64_t recalls;    /* recall messages sent */
	uint64_t returns;    /* tok_server_returned() calls */
	uint64_t refusals;   /* conditional recalls refused */
	uint64_t resent;     /* recalls sent again, unanswered for a second */
	uint64_t ioexcl_tells; /* nodes told their I/O-exclusive state changed */
	uint64_t early;      /* waits ended by tok_server_interrupt_all() */
	uint64_t waiting;    /* requests waiting now */
	uint64_t inodes;     /* inodes with grants or waiters now */
};

/* @ops and @arg must outlive the server.  0 or -ENOMEM. */
int tok_server_create(const struct tok_server_ops *ops, void *arg, struct tok_server **out);
/* No thread may be inside the server or call it again. */
void tok_server_destroy(struct tok_server *s);

/*
 * Grant @want on @ino to @node, atomically, once no other holder has a
 * conflicting level: recalls them first and waits behind earlier
 * conflicting requests (FIFO per inode).  A level @node already holds of a
 * wanted token is converted in place.  @in (may be NULL) is the node's state
 * of tokens it converts (SWRITE times, size).  On success @got = @want and
 * @out (may be NULL) carries the merged times/size and the I/O-exclusive
 * state.  Errors: -TOK_EEARLY (interrupted; @got holds the wanted tokens the
 * node already had), -ENOTCONN (@node went down meanwhile), -EINVAL; and on
 * a thread serving an application's request (common/cx_intr.h), -EINTR
 * once it is interrupted (recalls already sent stay out).
 */
int tok_server_acquire(struct tok_server *s, uint32_t node, uint64_t ino,
		       const struct tok_set *want, const struct tok_state *in,
		       struct tok_set *got, struct tok_state *out);

/* @node gave back @tokens of @ino with @st (may be NULL).  Stale levels are ignored. */
void tok_server_returned(struct tok_server *s, uint32_t node, uint64_t ino,
			 const struct tok_set *tokens, const struct tok_state *st);
/* @node refused a conditional recall of @tokens of @ino. */
void tok_server_refused(struct tok_server *s, uint32_t node, uint64_t ino,
			const struct tok_set *tokens);

/*
 * @ino lost its last name: recall EXIST conditionally from every node and
 * wait for the answers.  0: nobody holds it any more, and nobody is granted
 * it until tok_server_freed(@ino) (the caller frees the file, then calls
 * it: a node that asked for the file meanwhile finds it gone instead of
 * opening a file that is being freed); -EBUSY: some node still uses the
 * file (ops.last_exist fires when its EXIST comes back); -TOK_EEARLY;
 * -ENOMEM.
 */
int tok_server_recall_exist(struct tok_server *s, uint64_t ino);
/* The file a tok_server_recall_exist() that gave 0 found unheld is freed (or stays). */
void tok_server_freed(struct tok_server *s, uint64_t ino);

/*
 * A server operation on behalf of node @lender, which lends it the READ
 * tokens in @lent (may be NULL): the operation's requests do not recall
 * those from the lender (others' are recalled as usual).  The operation is a
 * holder of its own; tok_server_op_end() releases what it holds and ends
 * the lend.  0 or -ENOMEM.
 */
int tok_server_op_begin(struct tok_server *s, uint32_t lender, const struct tok_set *lent,
			struct tok_op **out);
/* Like tok_server_acquire() for the operation. */
int tok_server_op_acquire(struct tok_op *op, uint64_t ino, const struct tok_set *want,
			  struct tok_set *got, struct tok_state *out);
void tok_server_op_end(struct tok_op *op);

/* @node left the cluster: drop all it holds, fail its waiting requests (-ENOTCONN). */
void tok_server_node_down(struct tok_server *s, uint32_t node);
/* Every wait in progress ends with -TOK_EEARLY; unanswered recalls are sent again on retry. */
void tok_server_interrupt_all(struct tok_server *s);
/*
 * Relocation: call @fn for every node's grant (not operations'), under the
 * server's mutex (@fn must not call the server); non-zero stops.  And put
 * a grant into a new server (replacing what @node held of @ino).
 */
int tok_server_export(struct tok_server *s,
		      int (*fn)(void *arg, uint32_t node, uint64_t ino, const struct tok_set *held),
		      void *arg);
int tok_server_import(struct tok_server *s, uint32_t node, uint64_t ino, const struct tok_set *held);
/*
 * Recovery: clear from @returning (levels of @ino that @node's return was
 * carrying to a server that died) each level another node's grant here
 * conflicts with.  That grant can only have been made after the old server
 * took the return, so the return, and the state it carries, is stale.
 */
void tok_server_taken(struct tok_server *s, uint32_t node, uint64_t ino, struct tok_set *returning);

/* What @node holds of @ino (`cxfsctl tokens`, the level a returned size had). */
void tok_server_held(struct tok_server *s, uint32_t node, uint64_t ino, struct tok_set *held);
void tok_server_stats(struct tok_server *s, struct tok_server_stats *st);

/*
 * Waits, for diagnostics (a watchdog's log line, `cxfsctl status`): every
 * request that had to wait, with what stands in its way.  Who waits or
 * holds, as the server knows it:
 */
enum tok_who_kind {
	TOK_WHO_NODE,    /* node @node */
	TOK_WHO_OP,      /* a server operation on behalf of node @node (tok_server_op_begin) */
	TOK_WHO_SERVER,  /* the server's existence check (tok_server_recall_exist) */
};

struct tok_who {
	enum tok_who_kind kind;
	uint32_t node;   /* the node, or the node the operation works for (0 for SERVER) */
	uint64_t op;     /* TOK_WHO_OP: the operation's number, which tells two apart */
};

enum tok_obstacle_kind {
	TOK_OBST_GRANT,   /* @who holds @levels, which conflict with the wanted ones */
	TOK_OBST_QUEUED,  /* @who asked earlier for @levels, which conflict: it goes first */
	TOK_OBST_IOEXCL,  /* @who, the only I/O node, is being told it no longer is */
	TOK_OBST_FREEING, /* @who (SERVER) frees the file: EXIST waits (tok_server_freed) */
};

struct tok_obstacle {
	enum tok_obstacle_kind kind;
	struct tok_who who;
	struct tok_set levels;     /* GRANT: conflicting levels held; QUEUED: conflicting levels
				    * asked for; IOEXCL: ioexcl at READ; FREEING: EXIST wanted */
	struct tok_set recalled;   /* GRANT: those of @levels recalled, not yet answered */
	uint64_t recall_age_ms;    /* since the first of the unanswered recalls was sent */
};

#define TOK_WAIT_OBSTACLES 8   /* obstacles one wait record carries at most */

struct tok_server_wait {
	uint64_t ino;
	struct tok_who who;        /* who waits */
	struct tok_set want;       /* the levels it asks for (SERVER: exist at WRITE, as nobody
				    * else may have the file) */
	uint64_t age_ms;           /* since it began to wait */
	unsigned nobstacles;       /* entries of obstacles[] */
	unsigned more;             /* obstacles left out of obstacles[] */
	struct tok_obstacle obstacles[TOK_WAIT_OBSTACLES];
};

/*
 * Call @fn for every request waiting now, oldest first, under the server's
 * mutex (@fn must not call the server; @w is valid during the call only).
 * Costs nothing beyond the mutex when nobody waits.  A request that was
 * granted at once never appears.
 */
void tok_server_waits(struct tok_server *s,
		      void (*fn)(void *arg, const struct tok_server_wait *w), void *arg);

/* ---- token client (tok_client.c) --------------------------------------- */

struct tok_client;

/*
 * What the client needs from its surroundings.  None runs under the client's
 * mutex; each may block (they do I/O or send messages) and may call
 * tok_client_cached(), tok_client_ioexcl() and tok_client_lent(), but not
 * acquire or release tokens.
 */
struct tok_client_ops {
	/*
	 * Ask the server for @want on @ino (tok_server_acquire on the other
	 * side), sending @in along (the node's state of converted tokens).
	 * Fills @got and @out; 0, -TOK_EEARLY or -errno.
	 */
	int (*obtain)(void *arg, uint64_t ino, const struct tok_set *want,
		      const struct tok_state *in, struct tok_set *got, struct tok_state *out);
	/* Send @tokens of @ino back with @st (tok_server_returned on the other side). */
	void (*give_back)(void *arg, uint64_t ino, const struct tok_set *tokens,
			  const struct tok_state *st);
	/*
	 * Do one return duty for @ino: 0 or -errno.  TOK_DUTY_TIMES and
	 * TOK_DUTY_SIZE fill their fields of @st (the client sets the valid
	 * bit when they succeed).  A failed duty is counted and the token goes
	 * back anyway: the server cannot wait for ever, and a lost write is
	 * reported by the data path (fsync, close).
	 */
	int (*duty)(void *arg, uint64_t ino, enum tok_duty duty, struct tok_state *st);
};

struct tok_client_stats {
	uint64_t acquires_cached;  /* acquires served without a message */
	uint64_t acquires_server;  /* acquires that asked the server */
	uint64_t recalls;          /* recalls answered with a return */
	uint64_t refusals;         /* conditional recalls refused */
	uint64_t duty_errors;      /* duties that failed */
	uint64_t early;            /* waits ended by tok_client_interrupt_all() */
	uint64_t draining;         /* recalls waiting for references to go now */
	uint64_t inodes;           /* inodes with cached tokens now */
};

/* @ops and @arg must outlive the client.  0 or -ENOMEM. */
int tok_client_create(const struct tok_client_ops *ops, void *arg, struct tok_client **out);
void tok_client_destroy(struct tok_client *c);

/*
 * Put a reference on each token of @want on @ino, from the cache when it
 * holds a level that covers it, otherwise from the server.  @out (may be
 * NULL) gets the state the server sent (valid == 0 if none was asked).
 * 0, -TOK_EEARLY (no reference taken), or -errno from obtain.  On a thread
 * serving an application's request (common/cx_intr.h) a wait for another
 * call's obtain also ends, with cx_intr_check()'s error (-EINTR, -EIO); an
 * obtain so given up may still be granted by the server, which then
 * believes the node holds more than it does: a recall of a level the node
 * does not have is answered at once, without duties.
 */
int tok_client_acquire(struct tok_client *c, uint64_t ino, const struct tok_set *want,
		       struct tok_state *out);
/*
 * Lend @want (READ levels) on @ino to an operation the server performs for
 * this node (the operation names them, see tok_server_op_begin): like
 * tok_client_acquire, but a recall does not wait for these references; it
 * gives the tokens back at once.  *@gen is for tok_client_unlend().
 */
int tok_client_lend(struct tok_client *c, uint64_t ino, const struct tok_set *want, uint64_t *gen);
/*
 * The operation @want was lent to (with @gen) answered.  true: the tokens
 * stayed with this node all along, and the lent references are ordinary
 * ones now (cache what the answer says, then tok_client_release); false:
 * they were given back meanwhile, nothing is held and nothing may be cached
 * under them.
 */
bool tok_client_unlend(struct tok_client *c, uint64_t ino, const struct tok_set *want, uint64_t gen);
/*
 * Creations: a node that asks the server to create a file gets tokens on
 * it with the answer (tok_server_acquire on its behalf, before the answer).
 * Between the two calls below, a conditional recall of EXIST of a file the
 * node does not hold is refused, and a recall of a level it does not hold
 * waits (the answer making it the holder may still be on its way).
 * tok_client_adopt() records levels the server granted with an answer, and
 * puts one reference on each (release as usual).
 */
void tok_client_creating(struct tok_client *c, int delta);
/* Are references of @ino lent to server operations now (tok_client_lend)? */
bool tok_client_lent(struct tok_client *c, uint64_t ino);
int tok_client_adopt(struct tok_client *c, uint64_t ino, const struct tok_set *granted);
/*
 * tok_client_acquire() only if the cache answers at once (held at those
 * levels, none of them being given back or converted): 0, or -EWOULDBLOCK
 * with nothing taken.  For a caller that holds references on another inode
 * and so may not wait for the server (docs/ARCHITECTURE.md, rule 4).
 */
int tok_client_try(struct tok_client *c, uint64_t ino, const struct tok_set *want);
/* Drop the references of a successful tok_client_acquire() with the same @want. */
void tok_client_release(struct tok_client *c, uint64_t ino, const struct tok_set *want);

/*
 * The server recalls @tokens of @ino.  Waits until their references are
 * dropped, does their duties and gives them back (ops.give_back).  A
 * conditional recall gives back every token of @ino, or is refused with
 * -EBUSY while the file is in use (the caller tells the server).  0,
 * -EBUSY or -TOK_EEARLY (nothing given back).  Runs on its own thread.
 */
int tok_client_recall(struct tok_client *c, uint64_t ino, const struct tok_set *tokens,
		      bool conditional);
/* The node is done with @ino: give every token back.  0 or -EBUSY if in use. */
int tok_client_forget(struct tok_client *c, uint64_t ino);

/*
 * I/O-exclusive state.  A node takes IOEXCL READ with the tokens of its
 * I/O (the caller's token sets carry it) and keeps it until it is done with the file
 * (tok_client_give_io, or forgetting it); a recall of IO leaves it.  The
 * server answers the state with every grant to a node that holds it, and
 * tells the holder when it changes (ioexcl_tell), so a state missed is
 * corrected by the next request the node sends anyway.
 */
/* The server says @ino's I/O-exclusive state is @excl. */
void tok_client_ioexcl_set(struct tok_client *c, uint64_t ino, bool excl);
/*
 * Is this node the only one doing I/O on @ino (may cache more
 * aggressively)?  *@held (may be NULL): whether it holds IOEXCL at all.
 */
bool tok_client_ioexcl(struct tok_client *c, uint64_t ino, bool *held);
/*
 * Give back IOEXCL and IO (if held) of @ino if this node holds IOEXCL with
 * the state false and neither is in use, asked for or being given back (a
 * node done with I/O on a shared file: the other node may learn it is
 * alone).  true if they went.
 */
bool tok_client_give_io(struct tok_client *c, uint64_t ino);

/* The levels cached for @ino. */
void tok_client_cached(struct tok_client *c, uint64_t ino, struct tok_set *held);
/* Every wait in progress ends with -TOK_EEARLY. */
void tok_client_interrupt_all(struct tok_client *c);
/*
 * The node was cut off from the cluster: the server has dropped (or will,
 * once the node is fenced) every token it held, so they are gone here too,
 * without duties and without telling the server; references in use stay
 * counted until released, every wait ends with -TOK_EEARLY, and a lender
 * learns its tokens went (the record's generation moves).  Returns the
 * inodes that held tokens.
 */
size_t tok_client_lose_all(struct tok_client *c);
/*
 * Call @fn for every inode of which this node holds tokens (those whose
 * return is still on its way count as held, and are @returning too: the
 * server that died may have taken them), under the client's mutex (@fn
 * must not call the client); non-zero stops.  A recovery's survivor
 * reports them to the new server.
 */
int tok_client_export(struct tok_client *c,
		      int (*fn)(void *arg, uint64_t ino, const struct tok_set *held,
				const struct tok_set *returning),
		      void *arg);
/*
 * Relocation: reach the server through @ops from now on (the node became or
 * stopped being the metadata server); what the client holds stays.  No
 * thread may be inside an ops call.
 */
void tok_client_set_ops(struct tok_client *c, const struct tok_client_ops *ops, void *arg);
void tok_client_stats(struct tok_client *c, struct tok_client_stats *st);
/*
 * How long the acquires that the cache could not answer at once took, to
 * their grant (a wait behind another call, a request to the server and its
 * recalls); lock-free.
 */
struct cx_hist_snap;
void tok_client_wait_hist(struct tok_client *c, struct cx_hist_snap *out);

/* Waits of a token client, for diagnostics: which kind of call waits... */
enum tok_cwait_kind {
	TOK_CW_ACQUIRE,  /* tok_client_acquire */
	TOK_CW_LEND,     /* tok_client_lend */
	TOK_CW_RECALL,   /* tok_client_recall: the server wants tokens back */
	TOK_CW_FORGET,   /* tok_client_forget */
	TOK_CW_NKINDS
};

/* ...and for what. */
enum tok_cwait_for {
	TOK_CW_SERVER,   /* acquire: the server's answer to its request (and, before it is
			  * sent, the duties of the levels the request converts) */
	TOK_CW_OBTAIN,   /* acquire: this node's request for the inode in flight (one at a time) */
	TOK_CW_GIVING,   /* acquire: a give-back of tokens it wants (a recall) */
	TOK_CW_BROKEN,   /* acquire: tokens given back while lent, until the lenders are done */
	TOK_CW_CONVERT,  /* acquire: a conversion, until this node's references on the old level go */
	TOK_CW_DRAIN,    /* give-back: until the references on the tokens go */
	TOK_CW_DUTIES,   /* give-back: the return duties (flush, invalidate, ...) running */
	TOK_CW_SEND,     /* give-back: sending the tokens back to the server */
	TOK_CW_LATER,    /* give-back: tokens another give-back or the request in flight has */
	TOK_CW_NFOR
};

struct tok_client_wait {
	uint64_t ino;
	enum tok_cwait_kind kind;
	enum tok_cwait_for what;
	struct tok_set want;          /* acquire: the levels wanted; give-back: the levels to give */
	uint64_t age_ms;              /* acquire: since it began to wait; give-back: since it came */
	uint32_t refs[TOK_NTOKENS];   /* DRAIN, CONVERT: this node's references in the way */
};

/*
 * Call @fn for every wait of the client now, oldest first, under the
 * client's mutex (@fn must not call the client; @w is valid during the call
 * only): acquires and lends that could not be served from the cache at once,
 * and every give-back in progress.  Costs nothing beyond the mutex when
 * nobody waits.
 */
void tok_client_waits(struct tok_client *c,
		      void (*fn)(void *arg, const struct tok_client_wait *w), void *arg);

#endif
