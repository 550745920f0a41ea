/*
 * cl_local.c - the client behavior of the metadata server's own node: its
 * applications go through a token client like every other node's, so a
 * read on the MDS node recalls a remote writer's tokens (which publishes its
 * writes) and a write there recalls remote readers' cached pages and
 * attributes.  The store is this node's cache, so the behavior only takes
 * the tokens an operation needs, passes the call on (server -> meta), and
 * lets them go; changes take their tokens in the server behavior below.
 *
 * Also the token sets of reads and writes, which every node's client
 * behavior uses; the writers' hold IOEXCL at READ (cl_ioexcl.c).
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cl_read_set(struct tok_set *s, bool direct)
{
	tok_set_clear(s);
	tok_set_add(s, TOK_IO, TOK_READ);
	if (!direct)
		tok_set_add(s, TOK_PAGE_CLEAN, TOK_READ);
	tok_set_add(s, TOK_PAGE_DIRTY, TOK_READ);
	tok_set_add(s, TOK_EXTENT, TOK_READ);
	tok_set_add(s, TOK_SIZE, TOK_READ);
}

/*
 * A writer is alone on the file: it keeps the size and time stamps itself
 * and publishes its extents lazily.  The MDS node allocates in the store
 * directly, so it needs the extent token at WRITE; other nodes allocate
 * through the MDS and lend it their READ copy.
 */
void cl_write_set(struct tok_set *s, bool direct, bool local)
{
	(void)direct;
	tok_set_clear(s);
	tok_set_add(s, TOK_IOEXCL, TOK_READ);
	tok_set_add(s, TOK_IO, TOK_WRITE);
	tok_set_add(s, TOK_PAGE_CLEAN, TOK_WRITE);
	tok_set_add(s, TOK_PAGE_DIRTY, TOK_WRITE);
	tok_set_add(s, TOK_EXTENT, local ? TOK_WRITE : TOK_READ);
	tok_set_add(s, TOK_SIZE, TOK_WRITE);
	tok_set_add(s, TOK_TIMES, TOK_WRITE);
}

bool cl_write_shares(const struct vn_call *c, uint32_t bs)
{
	return (c->u.write.flags & O_DIRECT) && !(c->u.write.flags & O_APPEND) &&
	       c->u.write.size > 0 && c->u.write.off % bs == 0 && c->u.write.size % bs == 0;
}

/*
 * Several nodes write the file at once: each keeps the size and time
 * stamps of its own writes (the largest wins when they come back) and
 * caches nothing.  Writing only blocks that have data, it neither
 * allocates nor converts extents, so the map stays as every node caches
 * it (EXTENT at READ).
 */
void cl_swrite_set(struct tok_set *s)
{
	tok_set_clear(s);
	tok_set_add(s, TOK_IOEXCL, TOK_READ);
	tok_set_add(s, TOK_IO, TOK_READ);
	tok_set_add(s, TOK_PAGE_CLEAN, TOK_SWRITE);
	tok_set_add(s, TOK_PAGE_DIRTY, TOK_SWRITE);
	tok_set_add(s, TOK_EXTENT, TOK_READ);
	tok_set_add(s, TOK_SIZE, TOK_SWRITE);
	tok_set_add(s, TOK_TIMES, TOK_SWRITE);
}

static void attr_set(struct tok_set *s)
{
	tok_set_clear(s);
	tok_set_add(s, TOK_ATTR, TOK_READ);
	tok_set_add(s, TOK_TIMES, TOK_READ);
	tok_set_add(s, TOK_SIZE, TOK_READ);
}

/* Our place on a vnode's chain; holds the inode state while the vnode lives. */
struct cl_lbhv {
	struct vn_bhv bhv;
	struct cl_ctx *cx;
	struct cl_inode *ci;
};

static struct cl_lbhv *lb_of(struct vn_bhv *b)
{
	return (struct cl_lbhv *)b;
}

/*
 * A wait below cut short because the MDS moves away from this node (the
 * token server's waits are interrupted): the operation starts again on the
 * chain this vnode gets.
 */
static int moved(struct cl_ctx *cx, int rc)
{
	return rc == -VN_EEARLY && atomic_load(&cx->relocating) ? -VN_EMIGRATING : rc;
}

/* Take @want on the vnode, pass the call on, let the tokens go. */
static int with_tokens(struct vn_bhv *self, struct vnode *vn, struct vn_call *c,
		       const struct tok_set *want)
{
	struct cl_ctx *cx = lb_of(self)->cx;
	uint64_t ino = vn_ino(vn);
	int rc = cl_acquire(cx, ino, want);

	if (rc)
		return rc;
	rc = vn_next(self, vn, c);
	tok_client_release(cx->tc, ino, want);
	return moved(cx, rc);
}

static int l_getattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_ctx *cx = lb_of(self)->cx;
	struct tok_set want;

	cl_pages_check(cx, vn_ino(vn));
	attr_set(&want);
	return with_tokens(self, vn, c, &want);
}

/* A read or write: counted in progress while it waits for its tokens. */
static int with_io_tokens(struct vn_bhv *self, struct vnode *vn, struct vn_call *c,
			  const struct tok_set *want)
{
	struct cl_inode *ci = lb_of(self)->ci;
	int rc;

	cl_io_begin(ci);
	rc = with_tokens(self, vn, c, want);
	cl_io_end(lb_of(self)->cx, ci);
	return rc;
}

/*
 * 1 if file blocks [@b0, @b1) of @ino all have data in the store (a write
 * there allocates and converts nothing), 0 if not, or -errno.
 */
static int store_all_data(struct cl_ctx *cx, uint64_t ino, uint64_t b0, uint64_t b1)
{
	struct meta_map runs[16];

	while (b0 < b1) {
		int n = meta_map_read(cx->st, ino, b0, b1 - b0, runs, 16);

		if (n <= 0)
			return n < 0 ? n : -EIO;
		for (int i = 0; i < n; i++)
			if (runs[i].state != META_MAP_DATA)
				return 0;
		b0 = runs[n - 1].fblk + runs[n - 1].nblk;
	}
	return 1;
}

/*
 * An I/O by byte ranges among other nodes' (cl_range.c): a direct write
 * (cl_write_shares), or a buffered write or a read of a node that shares
 * the file.  It goes on under the file's shared tokens only where that
 * keeps every node's view: a write only into blocks that have data (it
 * allocates and converts nothing), a read only within the size the store
 * has (other sharers' larger sizes come back only when SIZE is recalled).
 * The bytes, -errno, or 0: it takes the exclusive or reader's tokens then.
 */
static int l_shared(struct vn_bhv *self, struct vnode *vn, struct vn_call *c,
		    enum cl_range_use use)
{
	struct cl_lbhv *lb = lb_of(self);
	uint64_t ino = vn_ino(vn), bs = lb->cx->bs;
	bool read = use == CL_RANGE_READ;
	uint64_t off = read ? c->u.read.off : c->u.write.off;
	uint64_t end = off + (read ? c->u.read.size : c->u.write.size);
	struct cl_range_hold rh;
	struct tok_set want;
	struct vn_attr a;
	int rc;

	cl_swrite_set(&want);
	cl_io_begin(lb->ci);
	rc = cl_acquire(lb->cx, ino, &want);
	if (rc) {
		cl_io_end(lb->cx, lb->ci);
		return moved(lb->cx, rc);
	}
	if (read) {
		rc = meta_getattr(lb->cx->st, ino, &a);
		if (rc == 0)
			rc = end <= a.size;
	} else {
		rc = store_all_data(lb->cx, ino, off / bs, (end + bs - 1) / bs);
	}
	if (rc == 1) {
		rc = cl_range_acquire(lb->cx, lb->ci, off, end, use, &rh);
		if (!rc) {
			rc = vn_next(self, vn, c);
			cl_range_release(lb->cx, &rh);
		}
	}
	tok_client_release(lb->cx->tc, ino, &want);
	cl_io_end(lb->cx, lb->ci);
	return moved(lb->cx, rc);
}

static int l_read(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_lbhv *lb = lb_of(self);
	struct tok_set want;

	if (c->u.read.size > 0 && cl_range_reads(lb->cx, lb->ci)) {
		int rc = l_shared(self, vn, c, CL_RANGE_READ);

		if (rc)
			return rc;
	}
	cl_read_set(&want, c->u.read.flags & O_DIRECT);
	return with_io_tokens(self, vn, c, &want);
}

/*
 * The kernel puts an O_APPEND write at the end it knows, which another
 * node may have moved: with the size token held, the store knows the end.
 */
static int l_write(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_lbhv *lb = lb_of(self);
	struct tok_set want;
	int rc;

	if (cl_write_shares(c, lb->cx->bs) || cl_range_wanted(lb->cx, lb->ci, c)) {
		rc = l_shared(self, vn, c, c->u.write.flags & O_DIRECT ? CL_RANGE_DIRECT :
									 CL_RANGE_WRITE);
		if (rc)
			return rc;
	}
	cl_write_set(&want, c->u.write.flags & O_DIRECT, true);
	if (!(c->u.write.flags & O_APPEND))
		return with_io_tokens(self, vn, c, &want);
	cl_io_begin(lb->ci);
	rc = cl_acquire(lb->cx, vn_ino(vn), &want);
	if (rc) {
		cl_io_end(lb->cx, lb->ci);
		return rc;
	}
	{
		struct vn_attr a;
		struct vn_call g = { .op = VN_OP_GETATTR, .cred = c->cred, .node = c->node,
				     .u.getattr = { &a } };

		rc = vn_next(self, vn, &g);
		if (!rc && a.size != c->u.write.off) {
			c->u.write.off = a.size;
			pthread_mutex_lock(&lb->ci->mu);
			lb->ci->stale_pages = true;   /* the kernel put the data elsewhere */
			pthread_mutex_unlock(&lb->ci->mu);
		}
	}
	if (!rc)
		rc = vn_next(self, vn, c);
	tok_client_release(lb->cx->tc, vn_ino(vn), &want);
	cl_io_end(lb->cx, lb->ci);
	return moved(lb->cx, rc);
}

/*
 * The kernel learns @name in directory @dir (@ino of type @mode; 0: absent):
 * remember it, or if other nodes keep changing the directory, tell the
 * kernel not to keep it (@c->uncached).  A rename (@c NULL) moves an alias the kernel keeps as
 * it was: always remember it.
 */
static void note_name(struct cl_ctx *cx, uint64_t dir, const char *name, uint64_t ino,
		      uint32_t mode, struct vn_call *c)
{
	struct cl_inode *ci = cl_inode_get(cx, dir, false);

	if (!ci)
		return;
	pthread_mutex_lock(&ci->mu);
	/* A directory's alias must go when it moves, whatever its time-out (cl_client.c). */
	if (c)
		c->uncached = cl_names_busy(ci) && !S_ISDIR(mode);
	cl_dent_tell(ci, name, ino, !c || !c->uncached);
	pthread_mutex_unlock(&ci->mu);
	cl_inode_put(cx, ci);
}

static void name_set(struct tok_set *s)
{
	tok_set_clear(s);
	tok_set_add(s, TOK_NAME, TOK_READ);
}

/*
 * Lookups hold the directory's name token, so a change made from another
 * node recalls it and the kernel forgets the names it learned here.
 */
static int l_lookup(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_ctx *cx = lb_of(self)->cx;
	struct tok_set want;
	int rc;

	name_set(&want);
	rc = cl_acquire(cx, vn_ino(vn), &want);
	if (rc)
		return rc;
	rc = vn_next(self, vn, c);
	if (rc == 0 || rc == -ENOENT)
		note_name(cx, vn_ino(vn), c->u.lookup.name, rc ? 0 : c->u.lookup.attr->ino,
			  rc ? 0 : c->u.lookup.attr->mode, c);
	tok_client_release(cx->tc, vn_ino(vn), &want);
	/*
	 * A relocation blocks the shaping of new vnodes while it rewrites
	 * this one's chain: do not wait for the child's under our head lock.
	 */
	if (rc == 0 && atomic_load(&cx->relocating))
		return -VN_EMIGRATING;
	if (rc == 0 && strcmp(c->u.lookup.name, ".") != 0) {
		/*
		 * The kernel keeps the attributes a lookup returns: take them
		 * under the child's tokens, as getattr does (another node may
		 * be writing it, with the size and times of its own).
		 */
		struct vnode *child;
		struct vn_call g = { .op = VN_OP_GETATTR, .cred = c->cred, .node = c->node,
				     .u.getattr = { c->u.lookup.attr } };

		rc = vn_get(cx->vt, c->u.lookup.attr->ino, &child);
		if (!rc) {
			rc = vn_call_nested(child, &g);
			vn_put(child, 1);
		}
		if (!rc && S_ISDIR(c->u.lookup.attr->mode))
			cl_names_settle(cx, c->u.lookup.attr->ino, CL_SETTLE_MS);
	}
	return moved(cx, rc);
}

/*
 * A namespace change lends the server behavior this node's name tokens on
 * the directories (taken in inode order), so they are not recalled from the
 * node that asks, whose kernel holds the directories locked meanwhile.
 */
static int l_names(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_ctx *cx = lb_of(self)->cx;
	uint64_t dir = vn_ino(vn), other = c->op == VN_OP_RENAME ? c->u.rename.newdir : dir;
	uint64_t first = dir < other ? dir : other, second = dir < other ? other : dir;
	const char *name = c->op == VN_OP_MKNOD ? c->u.mknod.name :
			   c->op == VN_OP_LINK ? c->u.link.name :
			   c->op == VN_OP_UNLINK ? c->u.unlink.name : c->u.rename.newname;
	struct tok_set lent;
	uint64_t gen1, gen2 = 0;
	bool kept1, kept2;
	int rc;

	/* Lent as a remote client lends them: this node's getattrs keep their tokens. */
	attr_set(&lent);
	tok_set_add(&lent, TOK_NAME, TOK_READ);
	rc = cl_lend(cx, first, &lent, &gen1);
	if (!rc && second != first && (rc = cl_lend(cx, second, &lent, &gen2)))
		cl_lend_drop(cx, first, &lent, gen1);
	if (rc)
		return rc;
	c->lent = &lent;
	rc = vn_next(self, vn, c);
	c->lent = NULL;
	kept1 = tok_client_unlend(cx->tc, first, &lent, gen1);
	kept2 = second == first ? kept1 : tok_client_unlend(cx->tc, second, &lent, gen2);
	/* The name the kernel learns lives in @other (the new name of a rename). */
	if (rc == 0 && !(other == first ? kept1 : kept2)) {
		c->uncached = 1;
		cl_names_forget(cx, other, name, NULL);
	} else if (rc == 0 && c->op != VN_OP_UNLINK) {
		note_name(cx, other, name, CL_DENT_UNKNOWN,
			  c->op == VN_OP_MKNOD ? c->u.mknod.mode : 0, c->op == VN_OP_RENAME ? NULL : c);
	}
	if (rc == 0 && c->op == VN_OP_RENAME && !(dir == first ? kept1 : kept2))
		cl_names_forget(cx, dir, c->u.rename.name, NULL);
	if (second != first && kept2)
		tok_client_release(cx->tc, second, &lent);
	if (kept1)
		tok_client_release(cx->tc, first, &lent);
	return moved(cx, rc);
}

/* A lock wait on the MDS node ends when the MDS moves away (the wait goes on there). */
struct cl_lkwait {
	struct cl_ctx *cx;
	int (*interrupted)(void *arg);
	void *arg;
};

static int lk_interrupted(void *p)
{
	struct cl_lkwait *w = p;

	if (atomic_load(&w->cx->relocating))
		return 1;
	return w->interrupted ? w->interrupted(w->arg) : 0;
}

/*
 * Lock owners carry this node's mark, as a client's do (cl_lock_owner), so a
 * lock taken while this node serves is released after it moved away.
 */
static int l_setlk(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_lbhv *lb = lb_of(self);
	struct cl_lkwait w = { lb->cx, c->u.setlk.interrupted, c->u.setlk.arg };
	const struct vn_flock *orig = c->u.setlk.lk;
	struct vn_flock lk = *orig;
	int rc;

	lk.owner = cl_lock_owner(lb->cx, lk.owner);
	pthread_mutex_lock(&lb->ci->mu);
	lb->ci->locks_used = true;
	pthread_mutex_unlock(&lb->ci->mu);
	c->u.setlk.lk = &lk;
	if (c->u.setlk.sleep) {
		c->u.setlk.interrupted = lk_interrupted;
		c->u.setlk.arg = &w;
	}
	rc = moved(lb->cx, vn_next(self, vn, c));
	if (rc == 0)
		cl_locks_note_set(lb->cx, lb->ci->ino, &lk);
	c->u.setlk.lk = orig;
	c->u.setlk.interrupted = w.interrupted;
	c->u.setlk.arg = w.arg;
	if (rc == -EINTR && c->u.setlk.sleep && atomic_load(&w.cx->relocating) &&
	    !(w.interrupted && w.interrupted(w.arg)))
		rc = -VN_EMIGRATING;
	return rc;
}

static int l_getlk(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	uint64_t owner = c->u.getlk.lk->owner;
	int rc;

	c->u.getlk.lk->owner = cl_lock_owner(lb_of(self)->cx, owner);
	rc = vn_next(self, vn, c);
	c->u.getlk.lk->owner = owner;
	return rc;
}

static int l_release(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	uint64_t owner = c->u.release.lock_owner;
	int rc;

	c->u.release.lock_owner = cl_lock_owner(lb_of(self)->cx, owner);
	rc = vn_next(self, vn, c);
	cl_locks_note_release(lb_of(self)->cx, vn_ino(vn), c->u.release.lock_owner,
			      c->u.release.flock_release);
	c->u.release.lock_owner = owner;
	return rc;
}

static void l_destroy(struct vn_bhv *self, struct vnode *vn)
{
	struct cl_lbhv *lb = lb_of(self);

	(void)vn;
	cl_inode_put(lb->cx, lb->ci);
	free(lb);
}

static const struct vn_ops cl_local_ops = {
	.name = "local-client",
	.position = VN_POS_CLIENT,
	.op = {
		[VN_OP_GETATTR] = l_getattr,
		[VN_OP_OPEN] = l_getattr,
		[VN_OP_LOOKUP] = l_lookup,
		[VN_OP_MKNOD] = l_names,
		[VN_OP_LINK] = l_names,
		[VN_OP_UNLINK] = l_names,
		[VN_OP_RENAME] = l_names,
		[VN_OP_READ] = l_read,
		[VN_OP_WRITE] = l_write,
		[VN_OP_SETLK] = l_setlk,
		[VN_OP_GETLK] = l_getlk,
		[VN_OP_RELEASE] = l_release,
	},
	.destroy = l_destroy,
};

int cl_local_shape(struct cl_ctx *cx, struct vnode *vn)
{
	struct cl_lbhv *lb = calloc(1, sizeof(*lb));
	int rc;

	if (!lb)
		return -ENOMEM;
	lb->cx = cx;
	lb->ci = cl_inode_get(cx, vn_ino(vn), true);
	if (!lb->ci) {
		free(lb);
		return -ENOMEM;
	}
	lb->bhv.ops = &cl_local_ops;
	lb->bhv.priv = lb;
	rc = vn_bhv_insert(vn, &lb->bhv);
	if (rc)
		l_destroy(&lb->bhv, vn);
	return rc;
}
