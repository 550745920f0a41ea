/*
 * vn.h - vnodes and their behavior chains.
 *
 * A vnode is the in-memory object for one file, named by its inode number
 * (the same number on every node).  Its head holds a reader-writer lock and
 * the first behavior of a chain; a behavior is an ops table, private data and
 * a pointer to the next behavior.  Every operation enters at the head with
 * the head lock held for reading, and each behavior does its part and passes
 * the call on with vn_next().  The chain is the only place where the shape of
 * the cluster shows: on a single node it is `meta` alone; on a metadata
 * server `server -> meta`; on a client `client`; with DMAPI a `dmapi`
 * behavior heads it.
 *
 * Pushing, removing and replacing behaviors takes the head lock for writing,
 * so a rewrite is atomic with respect to every operation.  A thread that is
 * inside the chain and blocked for a long time must not hold a rewrite off:
 * the layer it waits in returns the internal result -VN_EMIGRATING once a
 * rewrite has been announced (vn_rewrite_begin).  vn_next() then drops the
 * head lock, waits until the rewrite is over (vn_rewrite_end), takes the lock
 * again and calls the next behavior of the *new* chain after the caller.  If
 * the caller itself was removed from the chain, the operation restarts at
 * the new head.  The application sees only a delay.
 *
 * Lock order: vnode head (read or write) -> behavior-private locks
 *             (e.g. the meta behavior's I/O lock) -> store mutex.
 * Two vnodes (rename, link) are entered one after the other, never nested in
 * the head lock of each other: a namespace operation enters at the head of
 * the directory vnode only.
 */
#ifndef CXFS_VN_H
#define CXFS_VN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/statvfs.h>
#include <time.h>

/* Internal results; never returned to an application. */
#define VN_EMIGRATING 4101   /* the chain is being rewritten: retry on the new chain */
#define VN_EEARLY     4102   /* a wait was interrupted; the caller handles a partial result */

struct vnode;
struct vn_table;
struct vn_bhv;
struct tok_set;

/* Inode attributes as the store and every node see them. */
struct vn_attr {
	uint64_t ino;               /* inode number == FUSE node id */
	uint64_t gen;               /* generation, so a reused number names a new file */
	uint32_t mode;              /* type and permission bits */
	uint32_t nlink;
	uint32_t uid, gid;
	uint64_t rdev;
	uint64_t size;              /* bytes */
	uint64_t blocks;            /* 512-byte units allocated */
	struct timespec atime, mtime, ctime, btime;
};

/* Who asks. */
struct vn_cred {
	uint32_t uid, gid;
	pid_t pid;
	int ngroups;                /* supplementary groups, or -1 if not fetched */
	const uint32_t *groups;
};

/* Is @gid the caller's group or one of its supplementary groups? */
static inline int vn_cred_in_group(const struct vn_cred *cred, uint32_t gid)
{
	if (cred->gid == gid)
		return 1;
	for (int i = 0; i < cred->ngroups; i++)
		if (cred->groups[i] == gid)
			return 1;
	return 0;
}

/* setattr mask bits */
#define VN_SET_MODE      0x001
#define VN_SET_UID       0x002
#define VN_SET_GID       0x004
#define VN_SET_SIZE      0x008
#define VN_SET_ATIME     0x010
#define VN_SET_MTIME     0x020
#define VN_SET_ATIME_NOW 0x040
#define VN_SET_MTIME_NOW 0x080
#define VN_SET_CTIME     0x100

/*
 * Read/write flags and fallocate mode bit of DMAPI's invisible I/O: no time
 * stamp moves (a write past the end still grows the size).
 */
#define VN_IO_INVISIBLE 0x40000000
/*
 * Write flag: the write-back of pages the kernel cached (writeback cache,
 * shared maps), which no read of the daemon has to see whole.
 */
#define VN_IO_PAGES 0x20000000

/* A byte-range or whole-file lock (POSIX record locks and flock). */
struct vn_flock {
	short type;                 /* F_RDLCK, F_WRLCK, F_UNLCK */
	uint64_t start, end;        /* inclusive byte range; end == UINT64_MAX: to EOF */
	uint64_t owner;             /* lock owner (FUSE lock_owner) */
	pid_t pid;
	int is_flock;               /* flock(2) semantics rather than fcntl */
	uint32_t node;              /* cluster node holding it (0 on a single node); the
				       meta behavior sets it from the call's origin */
};

/* Directory entry callback of VN_OP_READDIR: returns non-zero when full. */
typedef int (*vn_fill_fn)(void *ctx, const char *name, const struct vn_attr *attr, int64_t next_off);

enum vn_opcode {
	VN_OP_GETATTR,
	VN_OP_SETATTR,
	VN_OP_LOOKUP,      /* vn: the directory */
	VN_OP_MKNOD,       /* vn: the directory; regular files, devices, fifos, sockets, dirs, symlinks */
	VN_OP_LINK,        /* vn: the new parent directory */
	VN_OP_UNLINK,      /* vn: the directory; rmdir too */
	VN_OP_RENAME,      /* vn: the source directory */
	VN_OP_READLINK,
	VN_OP_OPEN,
	VN_OP_RELEASE,
	VN_OP_READ,
	VN_OP_WRITE,
	VN_OP_FSYNC,
	VN_OP_READDIR,     /* vn: the directory */
	VN_OP_STATFS,
	VN_OP_SETXATTR,
	VN_OP_GETXATTR,
	VN_OP_LISTXATTR,
	VN_OP_REMOVEXATTR,
	VN_OP_FALLOCATE,
	VN_OP_LSEEK,
	VN_OP_GETLK,
	VN_OP_SETLK,
	VN_OP_INACTIVE,    /* the last reference is going: free the inode if it has no links */
	VN_OP__COUNT
};

/*
 * One call down the chain.  The operation's arguments and results live in the
 * union member named after it; every operation returns 0 (or a byte count for
 * read, write, getxattr and listxattr) or a negative errno.
 */
struct vn_call {
	enum vn_opcode op;
	const struct vn_cred *cred;
	uint32_t node;               /* cluster node the operation comes from (0 on a single node) */
	const struct tok_set *lent;  /* READ tokens that node lends the operation, or NULL */
	/*
	 * Namespace operations in a cluster: where the directory's attributes
	 * after the change go (NULL: not wanted), and whether they were set.
	 */
	struct vn_attr *dir_attr;
	int dir_attr_set;
	/* unlink, rename: inodes (0: none) whose tokens the lent set covers too */
	uint64_t lent_inos[2];
	/*
	 * Set by a behavior: the kernel must not keep the name this answer
	 * gives it (a lookup, a create, a link), or the attributes (a
	 * getattr), beyond this request, since no token of this node will
	 * tell it when they change.
	 */
	int uncached;
	/*
	 * Set by a behavior on a mknod or a lookup: the (new) file's vnode,
	 * with one reference its caller drops once the kernel has its own (a
	 * client holds the file from the server's answer on, and keeps what it
	 * learnt of it for the kernel's entry, see cl_client.c).
	 */
	struct vnode *made;
	/*
	 * A cluster client's earlier attempt of this call went to a server
	 * that died before it answered (its request id; 0: none).  Restarted
	 * on this node as the new server, the call is answered from the
	 * store's row if that attempt was applied, not applied twice.
	 */
	uint64_t prior_reqid;
	union {
		struct { struct vn_attr *attr; } getattr;
		struct { const struct vn_attr *in; int mask; struct vn_attr *attr; } setattr;
		struct { const char *name; struct vn_attr *attr; } lookup;
		struct { const char *name; uint32_t mode; uint64_t rdev; const char *target;
			 struct vn_attr *attr; } mknod;
		struct { uint64_t ino; const char *name; struct vn_attr *attr; } link;
		struct { const char *name; int is_dir; } unlink;
		struct { const char *name; uint64_t newdir; const char *newname;
			 unsigned int flags; } rename;
		struct { char *buf; size_t size; } readlink;   /* NUL-terminated, truncated to size */
		struct { int flags; } open;
		/*
		 * close(): drop @lock_owner's POSIX locks (FLUSH, every close); with
		 * @flock_release the last close of an open file description that
		 * used flock(2) (RELEASE): @lock_owner names the description, whose
		 * flock lock goes too.
		 */
		struct { uint64_t lock_owner; int flock_release; } release;
		struct { void *buf; size_t size; uint64_t off; int flags; } read;    /* flags: open(2)'s */
		struct { const void *buf; size_t size; uint64_t off; int flags; } write;
		struct { int datasync; } fsync;
		/* @bucket: only the names of that name bucket (a cluster's token key; 0: all) */
		struct { int64_t off; int plus; vn_fill_fn fill; void *ctx; uint64_t bucket; } readdir;
		struct { struct statvfs *st; } statfs;
		struct { const char *name; const void *value; size_t size; int flags; } setxattr;
		struct { const char *name; void *buf; size_t size; } getxattr;
		struct { char *buf; size_t size; } listxattr;
		struct { const char *name; } removexattr;
		struct { int mode; uint64_t off, len; } fallocate;
		struct { uint64_t off; int whence; uint64_t result; } lseek;
		struct { struct vn_flock *lk; } getlk;
		struct { const struct vn_flock *lk; int sleep;
			 int (*interrupted)(void *arg); void *arg; } setlk;   /* poll while waiting */
	} u;
};

/*
 * A behavior's operation.  It runs with the head lock held for reading; it
 * may block (on I/O, tokens, RPC replies, DMAPI events).  A NULL entry in an
 * ops table passes the call on to the next behavior unchanged.
 */
typedef int (*vn_bhv_fn)(struct vn_bhv *self, struct vnode *vn, struct vn_call *c);

/* Chain positions: higher sits nearer the head. */
enum vn_position {
	VN_POS_META = 10,      /* the metadata store: bottom of a server's chain */
	VN_POS_SERVER = 20,    /* server side of a shared vnode (dsvn) */
	VN_POS_CLIENT = 30,    /* client side: forwards to the server (dcvn) */
	VN_POS_DMAPI = 40,     /* DMAPI events: heads the chain */
	VN_POS_TEST_TOP = 50,  /* free for tests */
};

struct vn_ops {
	const char *name;
	enum vn_position position;
	vn_bhv_fn op[VN_OP__COUNT];
	/* Called when the vnode is freed with this behavior still on the chain. */
	void (*destroy)(struct vn_bhv *self, struct vnode *vn);
};

struct vn_bhv {
	const struct vn_ops *ops;   /* set by the owner; constant while on a chain */
	void *priv;                 /* the behavior's private data */
	struct vn_bhv *next;        /* protected by the head lock */
};

/* Enter an operation at the head of @vn's chain. */
int vn_call(struct vnode *vn, struct vn_call *c);
/*
 * The same from inside an operation on another vnode (whose head the caller
 * holds): a rewrite of @vn announced or under way gives -VN_EMIGRATING at
 * once, for the outer operation to restart once it let its head go.
 */
int vn_call_nested(struct vnode *vn, struct vn_call *c);
/*
 * The calling thread is the one that announced the rewrites under way and
 * has finished editing the chains (@on), or no longer (!@on): its own
 * operations enter the new chains instead of waiting for the rewrites'
 * end, which it alone brings (a new server applies requests before it
 * lets anyone else in).
 */
void vn_rewriter(bool on);
bool vn_is_rewriter(void);   /* (shaping new vnodes is not blocked for it either) */
/*
 * Is this thread inside an operation (holding a vnode's head)?  Then it
 * must not wait for anything a rewrite waits for (shaping a new vnode
 * while shaping is blocked): -VN_EMIGRATING goes back instead.
 */
bool vn_in_call(void);

/*
 * Enter an operation at the first behavior of @vn's chain whose position is
 * below @pos (a metadata server runs a remote node's request from below its
 * own client behavior).  -EOPNOTSUPP if there is none.
 */
int vn_call_below(struct vnode *vn, enum vn_position pos, struct vn_call *c);

/*
 * Pass @c on from behavior @self to the next one.  Handles -VN_EMIGRATING
 * from below as described at the top of this file.  Returns -EOPNOTSUPP if
 * no behavior below has the operation (EOPNOTSUPP rather than the "no
 * such function" errno, which FUSE takes as "never send this request
 * again" for the whole mount, while a chain of another shape may have it).  Must be called from inside an
 * operation (head lock held for reading).
 */
int vn_next(struct vn_bhv *self, struct vnode *vn, struct vn_call *c);

/* Chain edits; each takes the head lock for writing.  -EEXIST / -ENOENT. */
int vn_bhv_insert(struct vnode *vn, struct vn_bhv *b);   /* by ops->position */
int vn_bhv_remove(struct vnode *vn, struct vn_bhv *b);
int vn_bhv_replace(struct vnode *vn, struct vn_bhv *old, struct vn_bhv *b);
/* The behavior at @pos, or NULL; takes the head lock for reading. */
struct vn_bhv *vn_bhv_find(struct vnode *vn, enum vn_position pos);

/*
 * Announce and finish a rewrite.  Between the two, threads that receive
 * -VN_EMIGRATING, and operations that enter the vnode, wait (without the
 * head lock) instead of running.
 * vn_rewrite_begin() does not take the head lock; the edits in between do.
 */
void vn_rewrite_begin(struct vnode *vn);
void vn_rewrite_end(struct vnode *vn);
int vn_rewrite_pending(struct vnode *vn);

/* The vnode table: one per mounted filesystem. */

/* Builds the initial chain of a new vnode (e.g. pushes the meta behavior). */
typedef int (*vn_shape_fn)(void *arg, struct vnode *vn);

int vn_table_create(vn_shape_fn shape, void *arg, struct vn_table **out);
/* Every vnode must have been put; frees the table. */
void vn_table_destroy(struct vn_table *t);

/* Take a reference on the vnode of @ino, creating it (and its chain) if needed. */
int vn_get(struct vn_table *t, uint64_t ino, struct vnode **out);
/* Take another reference on a vnode already held. */
void vn_hold(struct vnode *vn);
/*
 * Drop @n references.  When the last goes, VN_OP_INACTIVE runs down the chain,
 * every behavior's destroy() is called and the vnode is freed.
 */
void vn_put(struct vnode *vn, uint64_t n);
uint64_t vn_ino(const struct vnode *vn);
/*
 * Drop every reference on every vnode (unmount: the kernel's lookup counts
 * end with the session).  Nothing else may use the table meanwhile.
 */
void vn_table_purge(struct vn_table *t);
/* Number of vnodes in the table. */
size_t vn_table_count(struct vn_table *t);
/*
 * Call @fn on every vnode, each held for the duration of its call
 * (relocation walks the table with it).
 */
void vn_table_walk(struct vn_table *t, void (*fn)(struct vnode *vn, void *arg), void *arg);

#endif
