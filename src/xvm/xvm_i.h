/*
 * xvm_i.h - private header of the volume layer: the tree (struct xvm__tree,
 * a flat array of nodes in preorder, shared by the label codec, the layout
 * parser and the I/O path), the label codec, the layout grammar, the
 * mapping of a volume range to LUN pieces, and struct xvm_vol.  Nothing
 * outside src/xvm and its unit tests includes this file.
 */
#ifndef CXFS_XVM_I_H
#define CXFS_XVM_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xvm/xvm.h"

enum xvm__kind {
	XVM__LEAF = 1,
	XVM__CONCAT = 2,
	XVM__STRIPE = 3,
	XVM__MIRROR = 4,
};

/* One node of the tree.  Children are node indices; node 0 is the root. */
struct xvm__node {
	uint8_t kind;                     /* enum xvm__kind */
	uint8_t nchild;                   /* children (0 for a leaf) */
	uint8_t leg_state;                /* enum xvm_leg_state, as a leg of a parent mirror */
	uint8_t parent;                   /* index of the parent; 0xff for the root */
	uint8_t child[XVM_MAX_CHILDREN];  /* children's indices */
	uint32_t stripe_unit;             /* stripe: bytes per unit */
	uint32_t leaf;                    /* leaf: LUN number (stable across generations) */
	uint64_t leaf_size;               /* leaf: bytes of the LUN the volume uses; mirror:
	                                   * its size, fixed at creation (legs may be larger) */
	uint64_t revive_point;            /* mirror: first byte not yet revived (for reviving legs) */
	uint64_t size;                    /* bytes addressable (derived, not stored) */
};

struct xvm__tree {
	unsigned n;                       /* nodes used; node 0 is the root */
	struct xvm__node node[XVM_MAX_NODES]; /* nodes */
};

/* Compute every node's size and parent; -EINVAL (with @err) for a malformed tree. */
int xvm__tree_check(struct xvm__tree *t, char *err, size_t errlen);
/* Index of the node of leaf (LUN number) @leaf, or -1. */
int xvm__tree_leaf(const struct xvm__tree *t, uint32_t leaf);
/* Highest LUN number in the tree plus one. */
uint32_t xvm__tree_nleaves(const struct xvm__tree *t);
/* Depth of node @i (the root is 0). */
unsigned xvm__tree_depth(const struct xvm__tree *t, unsigned i);
/* 1 if some mirror leg on the path from node @i up to the root is not active. */
int xvm__tree_under_inactive(const struct xvm__tree *t, unsigned i);
/* 1 if node @i is, or is under, a detached leg (its LUNs left the volume). */
int xvm__under_detached(const struct xvm__tree *t, unsigned i);
/* Append a subtree @sub as the last child of node @parent; -ENOSPC. */
int xvm__tree_add_child(struct xvm__tree *t, unsigned parent, const struct xvm__tree *sub);
/* Remove the subtree rooted at @i (not the root), renumbering the nodes after it. */
void xvm__tree_remove(struct xvm__tree *t, unsigned i);

/*
 * The layout grammar (xvm_create()).  Parse @spec into @t over @nluns LUNs
 * whose usable sizes are @sizes; leaves get LUN numbers as written.
 */
int xvm__layout_parse(const char *spec, size_t nluns, const uint64_t *sizes,
		      uint32_t default_unit, struct xvm__tree *t, char *err, size_t errlen);
/* Write the layout of subtree @i in the grammar into @out (@outlen bytes, truncated). */
void xvm__layout_format(const struct xvm__tree *t, unsigned i, char *out, size_t outlen);

/*
 * The label (one copy, XVM_LABEL_SIZE bytes, little-endian):
 *      0  magic "CXFSXVM\0"          8
 *      8  format version (1)         u32
 *     12  label size                 u32
 *     16  volume uuid                16
 *     32  volume name, NUL-padded    64
 *     96  generation                 u64
 *    104  state (0 committed, 1 prepared)  u32
 *    108  this LUN's number          u32
 *    112  number of tree nodes       u32
 *    116  reserved (0)               u32
 *    120  LUN numbers written in this generation (bitmap)  u64
 *    128  checksum: crypto_generichash (BLAKE2b, 16 bytes) of the label
 *         with this field zeroed     16
 *    144  nodes, 48 bytes each: kind u8, nchild u8, leg_state u8, 0 u8,
 *         stripe unit u32, leaf u32, reserved u32, leaf (or mirror) size u64,
 *         revive point u64, child node indices 16 x u8
 */
#define XVM__LABEL_MAGIC "CXFSXVM"
#define XVM__LABEL_VERSION 1u
#define XVM__LABEL_HDR 144u
#define XVM__LABEL_NODE 48u
_Static_assert(XVM__LABEL_HDR + XVM_MAX_NODES * XVM__LABEL_NODE <= XVM_LABEL_SIZE,
	       "the label holds a full tree");
_Static_assert(2 * XVM_LABEL_SIZE <= XVM_DRL_OFF, "two label copies before the dirty-region area");

enum xvm__label_state {
	XVM__COMMITTED = 0,
	XVM__PREPARED = 1,
};

struct xvm__label {
	uint8_t uuid[16];                 /* volume identity */
	char name[XVM_NAME_MAX + 1];      /* volume name */
	uint64_t generation;              /* bumped by every label change */
	uint32_t state;                   /* enum xvm__label_state */
	uint32_t leaf;                    /* this LUN's number in the tree */
	uint64_t written;                 /* bit per LUN number written in this generation */
	struct xvm__tree tree;            /* the whole volume */
};

void xvm__label_encode(const struct xvm__label *l, unsigned char buf[XVM_LABEL_SIZE]);
/* Set the checksum of an encoded label (xvm__label_encode() does; the unit test forges fields). */
void xvm__label_seal(unsigned char buf[XVM_LABEL_SIZE]);
/*
 * Decode one copy.  -ENODATA if it carries no label magic (a LUN that was
 * never labelled); -EINVAL with the reason in @err for anything wrong in a
 * copy that has the magic (version, size, checksum, tree).
 */
int xvm__label_decode(const unsigned char buf[XVM_LABEL_SIZE], struct xvm__label *l, char *err,
		      size_t errlen);
/*
 * Read both copies of @dev's label; the primary wins if valid, else the
 * secondary.  -ENODATA if neither copy has the magic; -EINVAL (reasons of
 * both copies in @err) if copies have the magic but none is valid.
 */
int xvm__label_read(struct blk_dev *dev, struct xvm__label *l, char *err, size_t errlen);
/* Write both copies (primary, flush, secondary, flush). */
int xvm__label_write(struct blk_dev *dev, const struct xvm__label *l);

/* One piece of a request: bytes of one LUN. */
struct xvm__piece {
	unsigned node;                    /* the leaf's node index */
	uint64_t off;                     /* offset on the LUN (reserved area included) */
	size_t len;                       /* bytes */
	size_t rpos;                      /* where its bytes are in the request (nseg == 0) */
	size_t seg0, nseg;                /* else: its parts of the request, plan->s[seg0..+nseg) */
	int rc;                           /* result */
};

/* A part of the request that a gathered piece reads or writes (xvm__coalesce). */
struct xvm__seg {
	size_t rpos, len;                 /* where in the request, bytes */
};

/* A mirror range a write covers (for the revive's overlap check). */
struct xvm__wrange {
	unsigned mirror;                  /* node index */
	uint64_t lo, hi;                  /* mirror-local byte range */
};

/* What a request does with its pieces. */
enum xvm__op {
	XVM__READ,
	XVM__WRITE,
	XVM__PADDED,                      /* write_padded: zeros around the data */
	XVM__FLUSH,
};

/* A request: the caller's arguments and its pieces. */
struct xvm__plan {
	enum xvm__op op;                  /* what to do */
	char *buf;                        /* READ/WRITE: the caller's buffer */
	const char *data;                 /* PADDED: the data bytes */
	size_t at, dlen;                  /* PADDED: where they are in the request */
	struct xvm__piece *p;             /* pieces */
	size_t n, cap;                    /* used, allocated */
	struct xvm__seg *s;               /* the parts of gathered pieces */
	size_t ns, caps;                  /* used, allocated */
	struct xvm__wrange *w;            /* mirror ranges written (writes only) */
	size_t nw, capw;                  /* used, allocated */
	struct xvm__plan *prev, *next;    /* in vol->active while its writes are in flight; vol->lock */
	unsigned hint;                    /* READ: 1 + a mirror read above its revive point, 0: none */
	uint64_t hint_off;                /* the chunk read there (its offset in the mirror) */
};

/*
 * Map [off, off + len) of node @i of @vol's tree (leg states as they are;
 * vol->lock held) into pieces appended to @pl; @rpos is where that range
 * starts in the request.  -ENOMEM, or -EAGAIN if a write overlaps a range
 * being revived (the caller waits on vol->cond and maps again).
 */
int xvm__map(const struct xvm_vol *vol, unsigned i, uint64_t off, uint64_t len, size_t rpos,
	     struct xvm__plan *pl);
/*
 * Map and run @pl over [off, off + len) of node @i (the root for a request),
 * absorbing LUN failures into mirrors: a failed leg is marked out and a read
 * is mapped again.  0, or the error no mirror could absorb.
 */
int xvm__run(struct xvm_vol *vol, unsigned i, uint64_t off, uint64_t len, struct xvm__plan *pl);
void xvm__plan_free(struct xvm__plan *pl);
/* Flush every LUN not under an inactive leg (failures absorbed like writes'). */
int xvm__flush(struct xvm_vol *vol);

/*
 * Write @len bytes of @buf at byte @lunoff of every LUN in use (not under an
 * inactive leg), in parallel; 0 if at least one LUN took them, else the
 * first error.  Failures mark no leg out (the data's own I/O does that).
 */
int xvm__write_leaves(struct xvm_vol *vol, const void *buf, size_t len, uint64_t lunoff);

/* The per-volume worker threads that issue pieces in parallel (xvm_io.c). */
struct xvm__pool;
int xvm__pool_start(struct xvm_vol *vol, unsigned nthreads, struct xvm__pool **out);
void xvm__pool_stop(struct xvm__pool *pool);

/*
 * The dirty-region log (xvm_drl.c).  The layout of the log for tree @t: the
 * region size (1 << *@shift bytes), each mirror's first bit in @base (by
 * node index), the bits used and a hash of it all, which a slot carries so
 * that a slot of another layout is never read as this one's.  0 if the tree
 * has no mirror (no log), 1 if it has.
 */
int xvm__drl_geometry(const struct xvm__tree *t, unsigned *shift, unsigned base[XVM_MAX_NODES],
		      unsigned *nbits, uint64_t *geo);
#define XVM__DRL_SLOT 12288u              /* bytes of one node's slot */
#define XVM__DRL_SLOTS 64u                /* slots: one per cluster node */
#define XVM__DRL_HDR 128u                 /* header bytes before the bitmap */
#define XVM__DRL_BITS ((XVM__DRL_SLOT - XVM__DRL_HDR) * 8u)
_Static_assert(XVM_DRL_OFF + XVM__DRL_SLOTS * XVM__DRL_SLOT <= XVM_RESERVED,
	       "the dirty-region slots fit in the reserved area");
/* Encode slot @slot of volume @uuid with the first @nbits bits of @bits. */
void xvm__drl_encode(unsigned char img[XVM__DRL_SLOT], const uint8_t uuid[16], unsigned slot,
		     unsigned shift, unsigned nbits, uint64_t geo, uint64_t seq, const uint8_t *bits);
/*
 * Decode slot image @img expected to be slot @slot of volume @uuid with
 * geometry @shift/@nbits/@geo, OR-ing its bits into @bits.  0: decoded (or
 * never written, or written for another volume: nothing to OR); -EINVAL: a
 * damaged slot, -ESTALE: a slot of another layout (the caller takes every
 * region as dirty).
 */
int xvm__drl_decode(const unsigned char img[XVM__DRL_SLOT], const uint8_t uuid[16], unsigned slot,
		    unsigned shift, unsigned nbits, uint64_t geo, uint8_t *bits);
/* Before issuing write @pl: its mirror regions are in this node's log (on the LUNs). */
int xvm__drl_mark(struct xvm_vol *vol, const struct xvm__plan *pl);
/* After @pl's I/O: its regions may be cleared once idle (lazily). */
void xvm__drl_unmark(struct xvm_vol *vol, const struct xvm__plan *pl);

/* This node's log as cxfsctl volume shows it. */
struct xvm__drl_fig {
	unsigned slot;                    /* its slot */
	uint64_t region;                  /* bytes a region */
	unsigned regions;                 /* regions of the mirrors */
	unsigned dirty;                   /* set in its slot */
	unsigned inherited;               /* left by the last run, not resynced yet */
};
/* 0 and @f, or -ENOENT when this node logs nothing. */
int xvm__drl_figures(struct xvm_vol *vol, struct xvm__drl_fig *f);

/*
 * Hold [lo, hi) of mirror @m busy for a copy (the revive's chunk, a dirty
 * region): no write of this node goes there and, through the cluster ops,
 * none of another node's, once the writes in flight there are done.  Copies
 * run one at a time (vol->copy_mu, held until xvm__busy_end()).  0, or the
 * cluster's error (nothing held then).
 */
int xvm__busy_begin(struct xvm_vol *vol, unsigned m, uint64_t lo, uint64_t hi);
void xvm__busy_end(struct xvm_vol *vol, unsigned m);
/*
 * Hand mirror @m's state (legs, revive point, busy range) to the other
 * nodes through the cluster ops; 0 without them.  No lock held.
 */
int xvm__publish(struct xvm_vol *vol, unsigned m);

/*
 * Read-repair.  A revive copies in chunks of XVM__REVIVE_CHUNK; a read that
 * meets a chunk of a reviving mirror above the revive point hints it
 * (xvm__hint, after the read is mapped), and the revive copies it next,
 * ahead of order (at most XVM_REPAIR_MAX a mirror), then skips it in order.
 */
#define XVM__REVIVE_CHUNK (1u << 20)
#define XVM__HINTS 64
/* Chunk @off of mirror @m copied (or being copied) ahead?  vol->lock held. */
bool xvm__ahead(const struct xvm_vol *vol, unsigned m, uint64_t off);
/* A read of this node met chunk @off of mirror @m not revived yet.  No lock held. */
void xvm__hint(struct xvm_vol *vol, unsigned m, uint64_t off);

/* 1 if @rc from a LUN is a failure of that LUN (marks a leg out), not a fence or a bad request. */
bool xvm__is_leg_error(int rc);

/*
 * The volume.
 *
 * Locks: vol->copy_mu -> vol->label_lock -> vol->lock.  copy_mu serializes
 * the copies of a revive and a resync (held across their I/O); label_lock
 * serializes label writes (layout changes, leg state changes, revive steps);
 * lock protects the tree's leg states and revive points, the busy ranges
 * and the in-flight list, and is never held across I/O.  The dirty-region
 * log's own lock (xvm_drl.c) is never held with any of them.
 */
struct xvm_vol {
	char *uri;                        /* the LUN URIs joined by commas */
	unsigned nlun;                    /* LUNs opened (= leaves present) */
	struct blk_dev *dev[XVM_MAX_LEAVES]; /* by LUN number; NULL if missing */
	char *lun_uri[XVM_MAX_LEAVES];    /* by LUN number */
	char *initiator;                  /* iSCSI initiator IQN for LUNs opened later, or NULL */
	int legacy;                       /* one unlabelled LUN at offset 0 */
	int read_only;                    /* opened read-only */
	uint32_t sector_size;             /* largest of the LUNs' */
	struct xvm__label label;          /* committed label (tree, generation); lock */
	_Atomic uint64_t size;            /* the tree's root size (xvm_size, read without the lock) */
	const struct xvm_cluster_ops *cops; /* NULL: single node */
	void *cops_arg;                   /* their argument */
	struct xvm__pool *pool;           /* worker threads; NULL for one LUN */

	struct xvm__drl *drl;             /* this node's dirty-region log; NULL: none */
	pthread_mutex_t copy_mu;          /* one copy (revive chunk, resync region) at a time */
	_Atomic uint64_t flush_started;   /* flushes begun (each takes the next number) */
	_Atomic uint64_t flush_done;      /* the highest number of a flush that completed */
	pthread_mutex_t label_lock;       /* serializes label writes */
	pthread_mutex_t lock;             /* see above */
	pthread_cond_t cond;              /* broadcast when a busy range or in-flight write ends */
	uint64_t busy_lo[XVM_MAX_NODES];  /* per mirror: range being revived; lock */
	uint64_t busy_hi[XVM_MAX_NODES];  /* (lo == hi: none); lock */
	uint8_t busy_told[XVM_MAX_NODES]; /* the range was given by another node's revive; lock */
	/*
	 * Read-repair (xvm_vol.c, "copied ahead"): per mirror, the revive chunks
	 * above the revive point that a revive copies or copied ahead for reads
	 * (bitmap; writes there reach the reviving legs as below the point);
	 * the reads' hints waiting for this node's revive, or (no revive here)
	 * the last ones sent to the mirror master.  All under lock.
	 */
	uint8_t *ahead[XVM_MAX_NODES];
	unsigned nahead[XVM_MAX_NODES];   /* bits set */
	uint8_t revive_here[XVM_MAX_NODES]; /* a revive of the mirror runs on this node */
	struct { uint16_t m; uint32_t chunk; } hint[XVM__HINTS];
	unsigned nhint;                   /* used (a queue here, a ring of recent sends) */
	unsigned hint_next;               /* the ring's next slot */
	_Atomic uint64_t read_repairs;    /* chunks copied ahead for reads (xvm_show) */
	struct xvm__plan *active;         /* write plans in flight; lock */

	xvm_fence_fn *fence_fn;           /* set before the first write */
	void *fence_arg;                  /* its argument */
};

/* Write @vol->label with a new generation to every reachable LUN, two-phase (label_lock held). */
int xvm__label_commit(struct xvm_vol *vol, char *err, size_t errlen);
/*
 * Leg @n (a node index) of its parent mirror failed: through the cluster ops,
 * or locally (mark it out, write the labels).  No lock held.
 */
int xvm__leg_failed(struct xvm_vol *vol, unsigned n);
/*
 * The mirror leg to mark out for a failure of LUN node @leaf: the lowest leg
 * above it whose mirror keeps another active leg (or that is reviving).
 * Returns its node index, 0 if the LUN's data no longer matters (it is under
 * a leg already out), or -1 if no mirror can absorb it.  vol->lock held.
 */
int xvm__absorbing_leg(const struct xvm_vol *vol, unsigned leaf);

#endif
