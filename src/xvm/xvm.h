/*
 * xvm.h - the volume layer (XVM): one logical volume over one or more LUNs,
 * between the block layer (src/block, one LUN) and the store (src/meta).
 *
 * A volume is a tree.  Its leaves are LUNs (a struct blk_dev each, opened by
 * URI: a file path or iscsi://HOST[:PORT]/IQN/LUN); its inner nodes are
 * concat (the children one after the other), stripe (the children
 * interleaved in stripe units) and mirror (2 or 3 legs holding the same
 * bytes), nested in any way, e.g. the seed's figure 9:
 *
 *     mirror(concat(0,1),mirror(stripe:64k(2,3,4),stripe:64k(5,6,7)))
 *
 * (the layout grammar, see xvm_create(); numbers index the LUN list).
 *
 * The layout lives on the LUNs: each carries a label (two copies) in a
 * reserved area at its start (XVM_RESERVED bytes; the filesystem's bytes
 * follow), naming the volume, the LUN's place in the tree, the whole tree and
 * the mirror leg states, so that every node assembles the same volume from
 * the LUNs it is given, and refuses a missing, foreign or stale piece.  A
 * single LUN without a label is a legacy volume: the filesystem starts at
 * its byte 0, every call passes straight to the block layer.
 *
 * The I/O calls mirror blk.h (same arguments, same errors, thread-safe,
 * synchronous for the caller), so the upper layers use a volume exactly as
 * they used a LUN.  A request is split along the tree and its pieces are
 * issued in parallel; a request that maps to one piece is issued inline.
 *
 * Mirrors: a write goes to every healthy leg (and to a reviving leg below
 * its revive point); reads are spread over the active legs.  A leg whose I/O
 * fails is marked out (in memory and in the labels) through the cluster ops
 * (struct xvm_cluster_ops, NULL: this node decides alone) and the request is
 * served from the other legs with no error; only a mirror left with no active
 * leg returns the error.  A fence (BLK_EFENCED) is never a leg failure.
 *
 * Errors are negative errno values; the calls that take @err also write a
 * human-readable reason there (naming the LUN at fault).
 */
#ifndef CXFS_XVM_H
#define CXFS_XVM_H

#include <stddef.h>
#include <stdint.h>

#include "block/blk.h"

struct xvm_vol;

/*
 * The reserved area at the start of every labelled LUN: the label's primary
 * copy at 0, its secondary copy at XVM_LABEL_SIZE, and from XVM_DRL_OFF to
 * XVM_RESERVED room kept free for a per-node dirty-region bitmap (the
 * cluster's dirty-region log).  The volume's bytes on a LUN start at
 * XVM_RESERVED.
 */
#define XVM_LABEL_SIZE 8192u
#define XVM_DRL_OFF (64u << 10)
#define XVM_RESERVED (1u << 20)
#define XVM_MAX_NODES 64          /* nodes in a tree, leaves included */
#define XVM_MAX_LEAVES 32         /* LUNs in a volume */
#define XVM_MAX_CHILDREN 16       /* children of a concat or stripe */
#define XVM_MAX_LEGS 3            /* legs of a mirror */
#define XVM_NAME_MAX 63           /* volume name length */
#define XVM_STRIPE_UNIT_DEFAULT (64u << 10)

/* A mirror leg's state (recorded in the labels). */
enum xvm_leg_state {
	XVM_LEG_ACTIVE = 0,       /* holds the mirror's bytes; written and read */
	XVM_LEG_OUT = 1,          /* failed or detached: neither written nor read */
	XVM_LEG_REVIVING = 2,     /* being copied: written below the revive point, never read */
	XVM_LEG_DETACHED = 3,     /* detached while in use: never written, read or revived; its
	                           * LUNs left the volume; the node stays in the tree until an
	                           * offline change (cxfs-volume detach) removes it */
};

/*
 * The cluster's say over mirrors.  NULL ops: single-node behaviour (this
 * node marks the leg out and writes the labels itself).  A cluster routes the
 * decision through its mirror master; the callback runs in the thread whose
 * I/O failed, with no lock of this layer held, and returns once the leg is
 * out everywhere (0) or the error to give the caller.
 */
/*
 * A mirror's state as a revive changes it: its legs' states, the revive
 * point, the range being copied.  The node that revives (in a cluster the
 * mirror master) hands it to the others, which must write a reviving leg
 * below the point and wait while they write over the busy range.
 */
#define XVM_REPAIR_MAX 256        /* chunks a revive copies ahead for reads, per mirror */
struct xvm_mirror_state {
	unsigned mirror;              /* the mirror's node index */
	unsigned nlegs;               /* its children */
	uint8_t leg_state[XVM_MAX_LEGS]; /* enum xvm_leg_state, by leg */
	uint64_t revive_point;        /* first byte not yet copied to reviving legs */
	uint64_t busy_lo, busy_hi;    /* being copied now (lo == hi: none) */
	uint64_t generation;          /* of the labels */
	/*
	 * The 1 MiB chunks above the revive point copied (or being copied, the
	 * busy range) ahead of order for reads: writes there reach the
	 * reviving legs too, as below the point.  Chunk numbers, any order.
	 */
	unsigned nahead;
	uint32_t ahead[XVM_REPAIR_MAX];
};

struct xvm_cluster_ops {
	/* Leg @leg of mirror @mirror (a node index, see xvm_show) failed I/O. */
	int (*leg_failed)(void *arg, struct xvm_vol *vol, unsigned mirror, unsigned leg);
	/*
	 * The revive running on this node changed a mirror's state: return once
	 * every other node has it (0), or an error, which stops the revive
	 * (the legs stay reviving).  A copy starts only after the nodes hold
	 * its range busy.  NULL: no other node uses the volume.
	 */
	int (*mirror_state)(void *arg, struct xvm_vol *vol, const struct xvm_mirror_state *st);
	/*
	 * A read of this node met chunk @off (1 MiB aligned) of mirror @mirror
	 * above its revive point, and no revive runs here: hint the node that
	 * revives (xvm_read_hint there).  Never waits.  NULL: hints are dropped.
	 */
	void (*read_hint)(void *arg, struct xvm_vol *vol, unsigned mirror, uint64_t off);
};

/*
 * A cluster's mirror master (struct xvm_cluster_ops): mark leg @leg of mirror
 * @mirror out here and in the labels, *@generation (may be NULL) gets the
 * labels' generation.  0 if the leg is out (now or before), -EIO if it is
 * its mirror's last active leg (left as it is), -EINVAL if @mirror/@leg name
 * no mirror leg, or the error of writing the labels.
 */
int xvm_leg_out_commit(struct xvm_vol *vol, unsigned mirror, unsigned leg, uint64_t *generation);
/*
 * Every other node, told by the master: mark the leg out in memory only (the
 * master wrote the labels, at @generation).  Never waits for I/O.  0, -EIO
 * (the last active leg here: left as it is), -EINVAL.
 */
int xvm_leg_out_told(struct xvm_vol *vol, unsigned mirror, unsigned leg, uint64_t generation);

/*
 * Every other node, told by the reviving node: take mirror state @st (checked
 * against this node's tree: -EINVAL if it does not fit), then wait until no
 * write of this node through the mirror is in flight over its busy range
 * (bounded by that I/O).
 */
int xvm_mirror_state_apply(struct xvm_vol *vol, const struct xvm_mirror_state *st);
/*
 * The node that revives: another node's read met chunk @off of mirror
 * @mirror not revived yet; the revive copies it next if it runs here (it is
 * dropped otherwise, or when XVM_REPAIR_MAX chunks were copied ahead).
 * Never waits for I/O.
 */
void xvm_read_hint(struct xvm_vol *vol, unsigned mirror, uint64_t off);
/* How many mirror legs are reviving (a revive was started and has not ended). */
unsigned xvm_reviving(struct xvm_vol *vol);
/* The reviving node is gone: forget the busy ranges it gave (legs and points stay). */
void xvm_mirror_unbusy(struct xvm_vol *vol);

/* Options for xvm_open(); zero-initialize and set what you need. */
struct xvm_open_opts {
	uint64_t create_size;     /* one file LUN: create it (legacy volume) if missing */
	const char *initiator;    /* iSCSI initiator IQN; NULL: derived from the host name */
	int read_only;            /* open without write access (labels are not repaired) */
	const struct xvm_cluster_ops *cluster_ops; /* NULL: single node */
	void *cluster_arg;        /* their argument */
};

/*
 * Split a comma-separated list of LUN URIs (the form cxfsd --volume and
 * fstab take) into *@uris (*@n entries).  Caller must free with
 * xvm_free_list().  -EINVAL for an empty entry, -ENOMEM.
 */
int xvm_split_list(const char *list, char ***uris, size_t *n);
void xvm_free_list(char **uris, size_t n);
/*
 * xvm_open() for command-line arguments: each of the @nargs @args is a LUN
 * URI or a comma-separated list of them; together they are the volume's LUNs.
 */
int xvm_open_args(const char *const *args, size_t nargs, const struct xvm_open_opts *opts,
		  struct xvm_vol **out, char *err, size_t errlen);

/*
 * Open and assemble the volume whose LUNs are @uris (any order).  Caller
 * must xvm_close() *@out.  -ENOENT/-EIO/... from the block layer for a LUN
 * that cannot be opened, -EINVAL for a refused assembly (missing, foreign,
 * duplicate or stale LUN, corrupted label), with the reason in @err.
 */
int xvm_open(const char *const *uris, size_t n, const struct xvm_open_opts *opts,
	     struct xvm_vol **out, char *err, size_t errlen);
void xvm_close(struct xvm_vol *vol);

int xvm_read(struct xvm_vol *vol, void *buf, size_t len, uint64_t off);
int xvm_write(struct xvm_vol *vol, const void *buf, size_t len, uint64_t off);
int xvm_write_padded(struct xvm_vol *vol, uint64_t off, size_t span, const void *data, size_t at,
		     size_t len);
int xvm_flush(struct xvm_vol *vol);                /* every LUN */

uint64_t xvm_size(const struct xvm_vol *vol);
uint32_t xvm_sector_size(const struct xvm_vol *vol);
/* The LUN URIs joined by commas (what xvm_split_list() takes back). */
const char *xvm_uri(const struct xvm_vol *vol);
int xvm_is_iscsi(const struct xvm_vol *vol);       /* any LUN is an iSCSI LUN */
int xvm_is_legacy(const struct xvm_vol *vol);      /* one unlabelled LUN */
/* The volume's uuid as 32 hex digits ("" for a legacy volume). */
void xvm_uuid(const struct xvm_vol *vol, char out[33]);
void xvm_get_stats(const struct xvm_vol *vol, struct blk_stats *out); /* summed over LUNs */

/*
 * Persistent reservations (blk.h), applied to every open LUN in turn; the
 * first error is returned.  xvm_fenced() is true if any LUN is fenced; the
 * fence callback runs when a LUN becomes fenced (under the rules of
 * blk_set_fence_cb(), possibly once per LUN).
 */
int xvm_pr_register(struct xvm_vol *vol, uint64_t key);
int xvm_pr_reserve(struct xvm_vol *vol);
int xvm_pr_preempt(struct xvm_vol *vol, uint64_t victim_key);
int xvm_pr_unregister(struct xvm_vol *vol);
int xvm_pr_rejoin(struct xvm_vol *vol, uint64_t key);
int xvm_fenced(const struct xvm_vol *vol);
/*
 * 1 if a LUN of @vol lists registered reservation keys: nodes of a cluster
 * use the volume (a node registers at its join and unregisters at an
 * orderly leave; a crashed node's key stays until the cluster preempts it).
 * @err names the first such LUN and its keys.  0 if no LUN lists a key or
 * the LUNs take no reservations (files), -errno if a LUN could not be asked.
 */
int xvm_in_use(struct xvm_vol *vol, char *err, size_t errlen);
typedef void xvm_fence_fn(struct xvm_vol *vol, void *arg);
void xvm_set_fence_cb(struct xvm_vol *vol, xvm_fence_fn *fn, void *arg);

/*
 * Administration (cxfs-volume).  Every layout change writes the labels in
 * two phases over all reachable LUNs: the new generation as "prepared" to
 * every one, then "committed" to every one.  The next assembly finishes a
 * change whose prepare reached every LUN, and undoes one whose did not.
 */

/* Options of xvm_create(). */
struct xvm_create_opts {
	const char *layout;       /* layout grammar; NULL: concat of all the LUNs */
	const char *name;         /* volume name; NULL: "xvm" */
	uint32_t stripe_unit;     /* default stripe unit (bytes), 0: XVM_STRIPE_UNIT_DEFAULT */
	const char *initiator;    /* iSCSI initiator IQN, or NULL */
};
/*
 * Label @uris as a new volume of layout @opts->layout.  The grammar:
 *     node   := LUN | kind [ ':' SIZE ] '(' node { ',' node } ')'
 *     kind   := "concat" | "stripe" | "mirror"
 * where LUN is an index into @uris (each used exactly once) and SIZE a
 * stripe unit such as 64k (stripe only).  A mirror has 2 or 3 legs.  LUNs
 * that carry a label of a volume are refused.
 */
int xvm_create(const char *const *uris, size_t n, const struct xvm_create_opts *opts, char *err,
	       size_t errlen);

/* Attach @uri as a new leg of mirror @mirror (state reviving: run xvm_revive()). */
int xvm_attach(struct xvm_vol *vol, unsigned mirror, const char *uri, char *err, size_t errlen);
/* Detach leg @leg of mirror @mirror (not its last active leg); its label is wiped. */
int xvm_detach(struct xvm_vol *vol, unsigned mirror, unsigned leg, char *err, size_t errlen);
/*
 * Append @uri to the top-level concat (a volume whose root is a LUN becomes
 * a concat, unless @online: see xvm_grow_lun()).
 */
int xvm_grow(struct xvm_vol *vol, const char *uri, int online, char *err, size_t errlen);

/*
 * Online layout changes: on a volume in use, while I/O goes on (in a
 * cluster the config server drives every node through them, cl_mirror.c).
 * Only changes that append to the tree are made online: a mirror leg
 * attached (reviving from 0, so no I/O reaches it before a revive) and a
 * LUN appended to a top-level concat.  No existing node changes its number,
 * its kind or its LUN, so I/O mapped before the change goes on unchanged.
 *
 * xvm_lun_open: open @uri as LUN number @leaf (-1: the lowest free one; the
 * number in *@out), outside the tree until a change takes it; refused if it
 * carries another volume's label or is too small.  @pr_key (0: none): on an
 * iSCSI LUN, register it and make sure of the cluster's reservation, as the
 * node's other LUNs.  xvm_lun_close: give it up (no change took it).
 */
int xvm_lun_open(struct xvm_vol *vol, const char *uri, int leaf, uint64_t pr_key, unsigned *out,
		 char *err, size_t errlen);
void xvm_lun_close(struct xvm_vol *vol, unsigned leaf);
/*
 * The changes, with a LUN opened by xvm_lun_open: attach it to mirror
 * @mirror, or append it to the top-level concat (@online: refuse a volume
 * of one LUN, whose every node would change its number).  The labels are
 * written (two phases) and the tree is this node's at once.
 */
int xvm_attach_lun(struct xvm_vol *vol, unsigned mirror, unsigned leaf, char *err, size_t errlen);
int xvm_grow_lun(struct xvm_vol *vol, unsigned leaf, int online, char *err, size_t errlen);
/*
 * Online detach of leg @leg of mirror @mirror, in steps that never let a
 * node read a leg another node stopped writing:
 *   xvm_detach_begin (the config server): refused (-EBUSY, -EINVAL, with
 *     @err) if the leg is its mirror's last active one or another leg of
 *     the mirror is reviving; an active leg becomes write-only (reviving,
 *     revive point at the end: written everywhere, read nowhere) here and,
 *     through the cluster ops' mirror_state, on every node;
 *   xvm_detach_commit: the leg is detached here and in the labels
 *     (*@generation);
 *   xvm_detach_told: every other node: detached in memory (it stops
 *     writing the leg), its reservation key dropped from the leg's LUNs;
 *   xvm_detach_finish (the config server, after every node took it): the
 *     leg's LUNs' labels wiped, this node's key dropped there.
 * A single machine calls begin, commit and finish.
 */
int xvm_detach_begin(struct xvm_vol *vol, unsigned mirror, unsigned leg, char *err, size_t errlen);
int xvm_detach_commit(struct xvm_vol *vol, unsigned mirror, unsigned leg, uint64_t *generation,
		      char *err, size_t errlen);
int xvm_detach_told(struct xvm_vol *vol, unsigned mirror, unsigned leg, uint64_t generation);
void xvm_detach_finish(struct xvm_vol *vol, unsigned mirror, unsigned leg);
/* The committed label as the config server sends it to the others (XVM_LABEL_SIZE bytes). */
int xvm_label_image(struct xvm_vol *vol, unsigned char buf[XVM_LABEL_SIZE]);
/*
 * Every other node: take the layout of label image @img (@len bytes) made
 * by the config server, whose new LUNs this node opened (xvm_lun_open with
 * the same numbers).  Refused (-EINVAL, the reason in @err) unless it only
 * appends to this node's tree; leg states and revive points stay this
 * node's (they come by LEG_OUT and MIRROR_STATE).
 */
int xvm_adopt(struct xvm_vol *vol, const unsigned char *img, size_t len, char *err, size_t errlen);
/*
 * Mark every out leg whose LUNs all answer as reviving, then copy every
 * reviving leg from an active one in chunks, while I/O goes on.  @progress
 * (may be NULL) is called after each chunk with the bytes done and the total;
 * a nonzero return from it stops the revive (the leg stays reviving, the
 * next revive starts it again).  Returns the number of legs revived, or an
 * error.
 */
typedef int xvm_progress_fn(void *arg, unsigned mirror, unsigned leg, uint64_t done,
			    uint64_t total);
int xvm_revive(struct xvm_vol *vol, xvm_progress_fn *progress, void *arg, char *err, size_t errlen);

/*
 * The dirty-region log (docs/ARCHITECTURE.md, "The dirty-region log"): a
 * bitmap per node on the LUNs of the regions of the volume's mirrors that
 * node may be writing, so that after it dies only those are copied between
 * the legs.
 *
 * xvm_drl_start: from now on this node logs its writes in slot @slot (its
 * cluster node number less one; 0 on a single machine).  Returns how many
 * regions the slot holds from the node's last run (they stay logged until
 * xvm_drl_resynced()), 0 for a volume without mirrors or opened read-only,
 * or -errno.  Call it before the first write.
 */
int xvm_drl_start(struct xvm_vol *vol, unsigned slot, char *err, size_t errlen);
/*
 * Copy every region that slot @slot says dirty (as the LUNs hold it) from
 * the leg reads use to the other legs, each held busy on every node
 * (xvm_cluster_ops.mirror_state) as a revive's chunk.  Only one node does
 * this at a time: the single node, or the cluster's mirror master.
 * *@regions: regions copied, *@total: regions of the volume's mirrors.
 * @progress (may be NULL; mirror, 0, regions done, total) stops it by
 * returning nonzero (-EINTR).
 */
int xvm_drl_resync(struct xvm_vol *vol, unsigned slot, xvm_progress_fn *progress, void *arg,
		   unsigned *regions, unsigned *total, char *err, size_t errlen);
/* This node's regions left from its last run were resynced: they leave its slot. */
void xvm_drl_resynced(struct xvm_vol *vol);
/* The slots (bit per slot) that hold dirty regions on the LUNs now. */
uint64_t xvm_drl_dirty_slots(struct xvm_vol *vol);
/*
 * Stop logging (before an orderly stop takes the node's access to the LUNs
 * away; xvm_close() does it otherwise): once the LUNs are flushed the slot
 * keeps only the regions still to be resynced.
 */
void xvm_drl_stop(struct xvm_vol *vol);

/*
 * Describe the volume: its tree with sizes, the LUN of each leaf, each
 * mirror leg's state and revive point, as indented text or as JSON (@json).
 * Returns a string the caller must free(), or NULL on ENOMEM.
 */
char *xvm_show(struct xvm_vol *vol, int json);

#endif
