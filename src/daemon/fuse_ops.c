/*
 * fuse_ops.c - the FUSE low-level glue: each handler turns one kernel
 * request into one vnode operation (vn_call) and makes exactly one
 * fuse_reply_* call.  Handlers run on libfuse's worker threads and may block.
 *
 * Node ids are inode numbers (the same on every node of a cluster).  Every
 * entry the kernel is given (lookup, create, mknod, mkdir, symlink, link,
 * readdirplus) holds one reference on its vnode; FORGET drops them.
 *
 * Permission checks are the kernel's (default_permissions, as on ext4: the
 * mode bits, supplementary groups, sticky directories); the daemon adds the
 * rules only a filesystem can apply (set-group-ID inheritance, which xattr
 * namespaces exist).
 *
 * Locks: POSIX locks on every node and, in a cluster, flock(2) go to the
 * lock manager; the section "flock" orders a flock request after the flock
 * releases the kernel queued before it.
 *
 * Interrupts: in a cluster every vnode operation runs with the thread's
 * interrupt armed (common/cx_intr.h) and raised by the kernel's
 * FUSE_INTERRUPT, so its waits on other nodes end with EINTR (or EIO, no
 * server): see call_ino and docs/ARCHITECTURE.md, "Interrupts".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cl.h"
#include "common/cx_intr.h"
#include "daemon/cxfsd.h"
#include "vnode/vn.h"

#define CXFSD_MAX_GROUPS 256

static struct cxfsd *D(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The caller's identity; @groups (CXFSD_MAX_GROUPS) is filled if @want_groups. */
static void req_cred(fuse_req_t req, struct vn_cred *cred, uint32_t *groups, int want_groups)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	cred->uid = ctx->uid;
	cred->gid = ctx->gid;
	cred->pid = ctx->pid;
	cred->ngroups = 0;
	cred->groups = groups;
	if (want_groups) {
		gid_t list[CXFSD_MAX_GROUPS];
		int n = fuse_req_getgroups(req, CXFSD_MAX_GROUPS, list);

		if (n > CXFSD_MAX_GROUPS)
			n = CXFSD_MAX_GROUPS;
		for (int i = 0; i < n; i++)
			groups[i] = list[i];
		cred->ngroups = n > 0 ? n : 0;
	}
}

/*
 * libfuse's interrupt callback: the kernel interrupted @req (the process
 * got a signal).  Runs on the thread that read the INTERRUPT, under the
 * request's lock, which fuse_req_interrupt_func() takes too: once the
 * handler has unregistered it, it no longer runs.
 */
static void req_interrupt(fuse_req_t req, void *arg)
{
	(void)req;
	cx_intr_raise(arg);
}

/*
 * Run @c on the vnode of @ino.  The request's waits on the cluster end when
 * the kernel interrupts it (-EINTR) or when no metadata server answered
 * for the server wait (-EIO): see docs/ARCHITECTURE.md, "Interrupts".
 */
static int call_ino(fuse_req_t req, fuse_ino_t ino, struct vn_call *c)
{
	struct vn_cred cred;
	uint32_t groups[CXFSD_MAX_GROUPS];
	struct vnode *vn;
	int rc;

	if (!c->cred) {
		/* Groups cost a read of /proc: only set-group-ID creation needs them. */
		req_cred(req, &cred, groups,
			 c->op == VN_OP_MKNOD && (c->u.mknod.mode & S_ISGID) && !S_ISDIR(c->u.mknod.mode));
		c->cred = &cred;
	}
	rc = vn_get(D(req)->vt, ino, &vn);
	if (rc)
		return rc;
	c->node = D(req)->node_id;
	if (D(req)->cl) {
		fuse_req_interrupt_func(req, req_interrupt,
					cx_intr_arm(cl_request_bound, D(req)->cl));
		rc = vn_call(vn, c);
		fuse_req_interrupt_func(req, NULL, NULL);
		cx_intr_disarm();
	} else {
		rc = vn_call(vn, c);
	}
	vn_put(vn, 1);
	c->cred = NULL;
	return rc;
}

static void attr_to_stat(const struct vn_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	if (S_ISDIR(a->mode)) {
		/* Directories live in the store; report one block, as a small ext4 directory. */
		st->st_size = 4096;
		st->st_blocks = 8;
	}
	st->st_blksize = 4096;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

/*
 * How long the kernel may keep attributes @a.  In a cluster only what a
 * lookup or getattr returned is covered by tokens this node holds (whose
 * recall makes the kernel forget it); what a change returned is fresh but
 * not covered, so the kernel asks again next time.
 */
static double attr_ttl(fuse_req_t req, int covered)
{
	return D(req)->cl && !covered ? 0 : D(req)->attr_timeout;
}

/* How an entry reply may be kept by the kernel (make_entry, reply_entry). */
#define ENTRY_COVERED  1u   /* the attributes are covered by this node's tokens */
#define ENTRY_UNCACHED 2u   /* the name may not be kept (vn_call.uncached) */

/* ENTRY_UNCACHED if the behavior said so for @c. */
static unsigned entry_how(const struct vn_call *c)
{
	return c->uncached ? ENTRY_UNCACHED : 0;
}

/* Fill @e for @a and take the reference the kernel's entry will hold. */
static int make_entry(fuse_req_t req, const struct vn_attr *a, unsigned how,
		      struct fuse_entry_param *e)
{
	struct vnode *vn;
	int rc = vn_get(D(req)->vt, a->ino, &vn);

	if (rc)
		return rc;
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	e->generation = a->gen;
	e->attr_timeout = attr_ttl(req, (how & ENTRY_COVERED) != 0);
	e->entry_timeout = (how & ENTRY_UNCACHED) ? 0 : D(req)->entry_timeout;
	attr_to_stat(a, &e->attr);
	return 0;
}

/* Reply with an entry; if the kernel did not take it, drop its reference. */
static void reply_entry(fuse_req_t req, int rc, const struct vn_attr *a, unsigned how)
{
	struct fuse_entry_param e;

	if (!rc)
		rc = make_entry(req, a, how, &e);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fuse_reply_entry(req, &e) == -ENOENT) {
		struct vnode *vn;

		if (!vn_get(D(req)->vt, a->ino, &vn))
			vn_put(vn, 2);
	}
}

/* ---- handlers ------------------------------------------------------------ */

/* Drop the reference of a vnode a call handed over (vn_call.made), if any. */
static void made_put(struct vnode *made)
{
	if (made)
		vn_put(made, 1);
}

/* Valid replies: fuse_reply_entry, fuse_reply_err. */
static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vn_attr a;
	struct vn_call c = { .op = VN_OP_LOOKUP, .u.lookup = { name, &a } };
	int rc = call_ino(req, parent, &c);

	if (rc == -ENOENT) {
		/* A negative entry: the kernel remembers the name is absent. */
		struct fuse_entry_param e = { .ino = 0,
					      .entry_timeout = c.uncached ? 0 : D(req)->entry_timeout };

		fuse_reply_entry(req, &e);
	} else {
		reply_entry(req, rc, &a, ENTRY_COVERED | entry_how(&c));
	}
	made_put(c.made);
}

/* Valid replies: fuse_reply_none. */
static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct vnode *vn;

	if (!vn_get(D(req)->vt, ino, &vn))
		vn_put(vn, nlookup + 1);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct vnode *vn;

	for (size_t i = 0; i < count; i++)
		if (!vn_get(D(req)->vt, forgets[i].ino, &vn))
			vn_put(vn, forgets[i].nlookup + 1);
	fuse_reply_none(req);
}

static void reply_attr(fuse_req_t req, int rc, const struct vn_attr *a, int covered)
{
	struct stat st;

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	attr_to_stat(a, &st);
	fuse_reply_attr(req, &st, attr_ttl(req, covered));
}

/* Valid replies: fuse_reply_attr, fuse_reply_err. */
static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vn_attr a;
	struct vn_call c = { .op = VN_OP_GETATTR, .u.getattr = { &a } };
	int rc = call_ino(req, ino, &c);

	reply_attr(req, rc, &a, !c.uncached);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct vn_attr in = { 0 }, out;
	struct vn_call c = { .op = VN_OP_SETATTR };
	int mask = 0;

	if (to_set & FUSE_SET_ATTR_MODE)
		mask |= VN_SET_MODE, in.mode = attr->st_mode;
	if (to_set & FUSE_SET_ATTR_UID)
		mask |= VN_SET_UID, in.uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		mask |= VN_SET_GID, in.gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size < 0) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		mask |= VN_SET_SIZE, in.size = (uint64_t)attr->st_size;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		mask |= VN_SET_ATIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		mask |= VN_SET_ATIME, in.atime = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		mask |= VN_SET_MTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		mask |= VN_SET_MTIME, in.mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_CTIME)
		mask |= VN_SET_CTIME, in.ctime = attr->st_ctim;
	c.u.setattr.in = &in;
	c.u.setattr.mask = mask;
	c.u.setattr.attr = &out;
	reply_attr(req, call_ino(req, ino, &c), &out, 0);
}

/*
 * A new name; *@how says how the kernel may keep it, and *@made is the new
 * vnode with a reference to drop (made_put) once the reply is sent, or NULL.
 */
static int do_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev,
		    const char *target, struct vn_attr *a, unsigned *how, struct vnode **made)
{
	struct vn_call c = { .op = VN_OP_MKNOD,
			     .u.mknod = { name, (uint32_t)mode, (uint64_t)rdev, target, a } };
	int rc = call_ino(req, parent, &c);

	*how = entry_how(&c);
	*made = c.made;
	return rc;
}

/* Valid replies: fuse_reply_entry, fuse_reply_err. */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct vn_attr a;
	struct vnode *made;
	unsigned how;
	int rc;

	if (!S_ISREG(mode) && !S_ISCHR(mode) && !S_ISBLK(mode) && !S_ISFIFO(mode) &&
	    !S_ISSOCK(mode)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = do_mknod(req, parent, name, mode, rdev, NULL, &a, &how, &made);
	reply_entry(req, rc, &a, how);
	made_put(made);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct vn_attr a;
	struct vnode *made;
	unsigned how;
	int rc = do_mknod(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL, &a, &how, &made);

	reply_entry(req, rc, &a, how);
	made_put(made);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct vn_attr a;
	struct vnode *made;
	unsigned how;
	int rc = do_mknod(req, parent, name, S_IFLNK | 0777, 0, link, &a, &how, &made);

	reply_entry(req, rc, &a, how);
	made_put(made);
}

static void op_unlink_common(fuse_req_t req, fuse_ino_t parent, const char *name, int is_dir)
{
	struct vn_call c = { .op = VN_OP_UNLINK, .u.unlink = { name, is_dir } };

	fuse_reply_err(req, -call_ino(req, parent, &c));
}

/* Valid replies: fuse_reply_err. */
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	op_unlink_common(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	op_unlink_common(req, parent, name, 1);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct vn_call c = { .op = VN_OP_RENAME,
			     .u.rename = { name, newparent, newname, flags } };

	fuse_reply_err(req, -call_ino(req, parent, &c));
}

/* Valid replies: fuse_reply_entry, fuse_reply_err. */
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct vn_attr a;
	struct vn_call c = { .op = VN_OP_LINK, .u.link = { ino, newname, &a } };
	int rc = call_ino(req, newparent, &c);

	reply_entry(req, rc, &a, entry_how(&c));
}

/* Valid replies: fuse_reply_readlink, fuse_reply_err. */
static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[4097];
	struct vn_call c = { .op = VN_OP_READLINK, .u.readlink = { buf, sizeof(buf) } };
	int rc = call_ino(req, ino, &c);

	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, buf);
}

static void set_open_flags(fuse_req_t req, struct fuse_file_info *fi)
{
	/*
	 * Single machine: this node is the only writer, so what the kernel
	 * cached stays valid.  In a cluster the daemon drops what another
	 * node made stale before it answers the getattr the kernel sends
	 * before each read.
	 */
	fi->keep_cache = 1;
	fi->noflush = 0;
	/*
	 * In a cluster every read(2) and write(2) reaches the daemon whole
	 * (up to 1 MiB), where tokens make it atomic against other nodes: the
	 * kernel's page cache would let a read mix pages from before and after
	 * another node's write, and splits a write at a partly written page
	 * it does not cache (an O_APPEND record could be split by another
	 * node's).  The page cache still serves shared maps (cxfsd.c).
	 */
	if (D(req)->cl)
		fi->direct_io = 1;
}

/* ---- record locks of an open file description ------------------------
 *
 * Open file description locks (F_OFD_SETLK) reach the daemon as record
 * locks whose owner is the description; after the description's last
 * close only its RELEASE comes, which names no owner (only a flock's
 * does), so nothing dropped them: they stayed until the file was forgotten
 * (found by lockmodel.py --ofd).  Each description therefore has a handle
 * (fi->fh, made at open) listing the owners that set record locks through
 * it.  Every close(2) sends a FLUSH through the description it closes,
 * with the closing process's owner, which drops that process's POSIX
 * locks (op_flush) and leaves the list; a description is released only
 * after every descriptor of it was closed, so the owners still listed at
 * its RELEASE are owners that never closed it: descriptions, whose OFD
 * locks go now.  A process's POSIX locks are never dropped there: the
 * RELEASE comes after close() returned, when the process may hold a new
 * lock through its next descriptor (a lost locked increment in
 * t_recover_kill showed it).
 */
struct cxfsd_fh {
	pthread_mutex_t mu;             /* protects the fields below */
	size_t n, cap;
	uint64_t *owner;                /* owners that set record locks through it */
};

static struct cxfsd_fh *fh_of(uint64_t fh)
{
	return (struct cxfsd_fh *)(uintptr_t)fh;
}

bool cxfsd_fh_locked(uint64_t fh)
{
	struct cxfsd_fh *h = fh_of(fh);
	bool locked = false;

	if (h) {
		pthread_mutex_lock(&h->mu);
		locked = h->n > 0;
		pthread_mutex_unlock(&h->mu);
	}
	return locked;
}

/* Give an opened file its handle; 0 or -ENOMEM. */
static int fh_open(struct fuse_file_info *fi)
{
	struct cxfsd_fh *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->mu, NULL);
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
}

static void fh_free(struct fuse_file_info *fi)
{
	struct cxfsd_fh *h = fh_of(fi->fh);

	if (h) {
		pthread_mutex_destroy(&h->mu);
		free(h->owner);
		free(h);
	}
	fi->fh = 0;
}

/* @fi's owner sets a record lock through it: list it; 0 or -ENOMEM. */
static int fh_note_owner(struct fuse_file_info *fi)
{
	struct cxfsd_fh *h = fh_of(fi->fh);
	int rc = 0;

	if (!h)
		return 0;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->n; i++)
		if (h->owner[i] == fi->lock_owner)
			goto out;
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 2;
		uint64_t *v = realloc(h->owner, cap * sizeof(*v));

		if (!v) {
			rc = -ENOMEM;
			goto out;
		}
		h->owner = v;
		h->cap = cap;
	}
	h->owner[h->n++] = fi->lock_owner;
out:
	pthread_mutex_unlock(&h->mu);
	return rc;
}

/* A process closes a descriptor of @fi (FLUSH, with its owner): it leaves the list. */
static void fh_owner_closed(struct fuse_file_info *fi)
{
	struct cxfsd_fh *h = fh_of(fi->fh);

	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->n; i++)
		if (h->owner[i] == fi->lock_owner) {
			h->owner[i] = h->owner[--h->n];
			break;
		}
	pthread_mutex_unlock(&h->mu);
}

/* @fi's description ends: its own owners' record locks on @ino go. */
static void fh_release_owners(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cxfsd_fh *h = fh_of(fi->fh);

	for (size_t i = 0; h && i < h->n; i++) {
		struct vn_call c = { .op = VN_OP_RELEASE, .u.release = { h->owner[i], 0 } };

		(void)call_ino(req, ino, &c);   /* the kernel ignores RELEASE's answer */
	}
}

/*
 * Valid replies: fuse_reply_open, fuse_reply_err.  With atomic O_TRUNC (which
 * libfuse asks for) the kernel leaves the truncation to open; it has already
 * checked write permission.
 */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vn_call c = { .op = VN_OP_OPEN, .u.open = { fi->flags } };
	int rc = call_ino(req, ino, &c);

	if (!rc && (fi->flags & O_TRUNC)) {
		struct vn_attr in = { .size = 0 }, out;
		struct vn_call t = { .op = VN_OP_SETATTR,
				     .u.setattr = { &in, VN_SET_SIZE | VN_SET_MTIME_NOW, &out } };

		rc = call_ino(req, ino, &t);
	}

	if (!rc)
		rc = fh_open(fi);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	set_open_flags(req, fi);
	/* Interrupted meanwhile: no RELEASE will come. */
	if (fuse_reply_open(req, fi) == -ENOENT)
		fh_free(fi);
}

/* Valid replies: fuse_reply_create, fuse_reply_err. */
/*
 * open(O_CREAT) without O_EXCL of a name that exists after all (another
 * node created it after this kernel learned it was absent): open the
 * existing file, as ext4 would.  The kernel takes the reply for a creation
 * and checks no permission on the file, so the check is done here (only
 * the owner, group and other bits; supplementary groups are not looked at,
 * which can only refuse more).
 */
static int create_existing(fuse_req_t req, fuse_ino_t parent, const char *name,
			   struct fuse_file_info *fi, struct vn_attr *a)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct vn_call c = { .op = VN_OP_LOOKUP, .u.lookup = { name, a } };
	int acc = fi->flags & O_ACCMODE, need = 0, bits, rc;

	rc = call_ino(req, parent, &c);
	made_put(c.made);   /* the open and the reply's entry take their own */
	if (rc)
		return rc == -ENOENT ? -EEXIST : rc;
	if (S_ISDIR(a->mode))
		return -EISDIR;
	if (!S_ISREG(a->mode))
		return -EEXIST;
	if (acc != O_WRONLY)
		need |= 4;
	if (acc != O_RDONLY || (fi->flags & O_TRUNC))
		need |= 2;
	bits = ctx->uid == a->uid ? (int)(a->mode >> 6) : ctx->gid == a->gid ? (int)(a->mode >> 3)
									    : (int)a->mode;
	if (ctx->uid != 0 && (bits & need) != need)
		return -EACCES;
	{
		struct vn_call o = { .op = VN_OP_OPEN, .u.open = { fi->flags } };

		rc = call_ino(req, a->ino, &o);
	}
	if (!rc && (fi->flags & O_TRUNC)) {
		struct vn_attr in = { .size = 0 };
		struct vn_call t = { .op = VN_OP_SETATTR,
				     .u.setattr = { &in, VN_SET_SIZE | VN_SET_MTIME_NOW, a } };

		rc = call_ino(req, a->ino, &t);
	}
	return rc;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct vn_attr a;
	struct vnode *made;
	unsigned how;
	int rc = do_mknod(req, parent, name, S_IFREG | (mode & 07777), 0, NULL, &a, &how, &made);

	if (rc == -EEXIST && !(fi->flags & O_EXCL))
		rc = create_existing(req, parent, name, fi, &a);
	if (!rc)
		rc = make_entry(req, &a, how, &e);
	if (!rc)
		rc = fh_open(fi);
	if (rc) {
		fuse_reply_err(req, -rc);
		made_put(made);
		return;
	}
	set_open_flags(req, fi);
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		struct vnode *vn;

		fh_free(fi);
		if (!vn_get(D(req)->vt, a.ino, &vn))
			vn_put(vn, 2);
	}
	made_put(made);
}

/* Valid replies: fuse_reply_buf, fuse_reply_err. */
static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char *buf = malloc(size ? size : 1);
	struct vn_call c = { .op = VN_OP_READ, .u.read = { buf, size, (uint64_t)off, fi->flags } };
	int rc;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = off < 0 ? -EINVAL : call_ino(req, ino, &c);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, (size_t)rc);
	free(buf);
}

/* Valid replies: fuse_reply_write, fuse_reply_err. */
/*
 * A write by someone without CAP_FSETID clears set-user-ID, and
 * set-group-ID on a group-executable file, as the kernel does before a
 * write through its page cache; a cluster's writes bypass that path.
 */
static int kill_suid(fuse_req_t req, fuse_ino_t ino)
{
	struct vn_attr a, in = { 0 }, out;
	struct vn_call g = { .op = VN_OP_GETATTR, .u.getattr = { &a } };
	struct vn_call s = { .op = VN_OP_SETATTR, .u.setattr = { &in, VN_SET_MODE, &out } };
	uint32_t kill;
	int rc;

	if (fuse_req_ctx(req)->uid == 0)
		return 0;
	rc = call_ino(req, ino, &g);
	if (rc)
		return rc;
	kill = (a.mode & S_ISUID) | ((a.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) ? S_ISGID : 0);
	if (!kill || !S_ISREG(a.mode))
		return 0;
	in.mode = a.mode & ~kill;
	return call_ino(req, ino, &s);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	/* Page writeback (mmap) writes where the pages are, never at the end. */
	int flags = fi->writepage ? (fi->flags & ~O_APPEND) | VN_IO_PAGES : fi->flags;
	struct vn_call c = { .op = VN_OP_WRITE, .u.write = { buf, size, (uint64_t)off, flags } };
	int rc = off < 0 ? -EINVAL : 0;

	if (!rc && D(req)->cl && !fi->writepage)
		rc = kill_suid(req, ino);
	if (!rc)
		rc = call_ino(req, ino, &c);

	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, (size_t)rc);
}

/* Valid replies: fuse_reply_err.  Drops the closing process's POSIX locks. */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vn_call c = { .op = VN_OP_RELEASE, .u.release = { fi->lock_owner, 0 } };

	fh_owner_closed(fi);
	fuse_reply_err(req, -call_ino(req, ino, &c));
}

static void lock_release_done(struct cxfsd *d);
static uint64_t lock_releases_done(struct cxfsd *d);
static int lock_releases_settle(fuse_req_t req, uint64_t done0);
static int lock_call(fuse_req_t req, fuse_ino_t ino, struct vn_call *c);

/*
 * Valid replies: fuse_reply_err.  The last close of an open file
 * description: if it used flock(2) (cluster mode), its lock goes now, and
 * so do the record locks of its own owners, OFD locks (above).
 */
static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vn_call c = { .op = VN_OP_RELEASE, .u.release = { fi->lock_owner, 1 } };
	bool flock = D(req)->cl && fi->flock_release;
	bool counted = flock || cxfsd_fh_locked(fi->fh);   /* as cxfsd_dev_read counted it */

	if (flock)
		(void)call_ino(req, ino, &c);   /* the kernel ignores RELEASE's answer */
	fh_release_owners(req, ino, fi);
	if (counted)
		lock_release_done(D(req));
	fh_free(fi);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct vn_call c = { .op = VN_OP_FSYNC, .u.fsync = { datasync } };

	fuse_reply_err(req, -call_ino(req, ino, &c));
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vn_attr a;
	struct vn_call c = { .op = VN_OP_GETATTR, .u.getattr = { &a } };
	int rc = call_ino(req, ino, &c);

	if (!rc && !S_ISDIR(a.mode))
		rc = -ENOTDIR;
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

struct dir_fill {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	int plus;
};

static int dir_fill(void *ctx, const char *name, const struct vn_attr *a, int64_t next_off)
{
	struct dir_fill *f = ctx;
	struct stat st;
	size_t need;

	attr_to_stat(a, &st);
	if (!f->plus) {
		need = fuse_add_direntry(f->req, NULL, 0, name, NULL, 0);
		if (f->used + need > f->size)
			return 1;
		fuse_add_direntry(f->req, f->buf + f->used, f->size - f->used, name, &st, next_off);
		f->used += need;
		return 0;
	}
	need = fuse_add_direntry_plus(f->req, NULL, 0, name, NULL, 0);
	if (f->used + need > f->size)
		return 1;
	struct fuse_entry_param e = { 0 };

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		/* The kernel takes no reference on these. */
		e.attr = st;
	} else if (make_entry(f->req, a, 0, &e)) {
		return 1;
	}
	fuse_add_direntry_plus(f->req, f->buf + f->used, f->size - f->used, name, &e, next_off);
	f->used += need;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct dir_fill f = { req, malloc(size ? size : 1), size, 0, plus };
	struct vn_call c = { .op = VN_OP_READDIR, .u.readdir = { off, plus, dir_fill, &f } };
	int rc;

	if (!f.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = call_ino(req, ino, &c);
	if (rc && f.used == 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, f.buf, f.used);
	free(f.buf);
}

/* Valid replies: fuse_reply_buf, fuse_reply_data, fuse_reply_err. */
static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, 1);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	op_fsync(req, ino, datasync, fi);
}

/* Valid replies: fuse_reply_statfs, fuse_reply_err. */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	struct vn_call c = { .op = VN_OP_STATFS, .u.statfs = { &sv } };
	int rc = call_ino(req, FUSE_ROOT_ID, &c);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_statfs(req, &sv);
}

/*
 * The xattr namespaces this filesystem stores: user.* (on regular files and
 * directories only, as ext4), trusted.* and security.*.  POSIX ACLs are not
 * supported (as ext4 mounted with noacl).
 */
static int xattr_allowed(fuse_req_t req, fuse_ino_t ino, const char *name, int writing)
{
	if (strncmp(name, "user.", 5) == 0) {
		struct vn_attr a;
		struct vn_call c = { .op = VN_OP_GETATTR, .u.getattr = { &a } };
		int rc = call_ino(req, ino, &c);

		if (rc)
			return rc;
		if (!S_ISREG(a.mode) && !S_ISDIR(a.mode))
			return writing ? -EPERM : -ENODATA;
		return name[5] ? 0 : -EINVAL;
	}
	if (strncmp(name, "trusted.", 8) == 0 || strncmp(name, "security.", 9) == 0)
		return 0;
	return -EOPNOTSUPP;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct vn_call c = { .op = VN_OP_SETXATTR, .u.setxattr = { name, value, size, flags } };
	int rc = xattr_allowed(req, ino, name, 1);

	if (!rc)
		rc = call_ino(req, ino, &c);
	fuse_reply_err(req, -rc);
}

/*
 * Reply to getxattr/listxattr with result @rc: the size when asked with
 * @size 0, else the bytes in @buf, which this frees.  Valid replies:
 * fuse_reply_buf, fuse_reply_xattr, fuse_reply_err.
 */
static void reply_xattr(fuse_req_t req, int rc, char *buf, size_t size)
{
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)rc);
	else
		fuse_reply_buf(req, buf, (size_t)rc);
	free(buf);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	struct vn_call c = { .op = VN_OP_GETXATTR, .u.getxattr = { name, buf, size } };
	int rc = (size && !buf) ? -ENOMEM : xattr_allowed(req, ino, name, 0);

	if (!rc)
		rc = call_ino(req, ino, &c);
	reply_xattr(req, rc, buf, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	struct vn_call c = { .op = VN_OP_LISTXATTR, .u.listxattr = { buf, size } };

	reply_xattr(req, (size && !buf) ? -ENOMEM : call_ino(req, ino, &c), buf, size);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct vn_call c = { .op = VN_OP_REMOVEXATTR, .u.removexattr = { name } };
	int rc = xattr_allowed(req, ino, name, 1);

	if (!rc)
		rc = call_ino(req, ino, &c);
	fuse_reply_err(req, -rc);
}

/* Valid replies: fuse_reply_err.  The same rules as the kernel's generic_permission(). */
static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	uint32_t groups[CXFSD_MAX_GROUPS];
	struct vn_cred cred;
	struct vn_attr a;
	struct vn_call c = { .op = VN_OP_GETATTR, .u.getattr = { &a } };
	int rc = call_ino(req, ino, &c);
	uint32_t bits;

	if (rc || mask == F_OK) {
		fuse_reply_err(req, -rc);
		return;
	}
	req_cred(req, &cred, groups, 1);
	if (cred.uid == 0) {
		/* Root may do anything, but execute only where some x bit is set. */
		rc = (mask & X_OK) && !S_ISDIR(a.mode) && !(a.mode & 0111) ? -EACCES : 0;
		fuse_reply_err(req, -rc);
		return;
	}
	if (cred.uid == a.uid)
		bits = (a.mode >> 6) & 7;
	else if (vn_cred_in_group(&cred, a.gid))
		bits = (a.mode >> 3) & 7;
	else
		bits = a.mode & 7;
	fuse_reply_err(req, ((uint32_t)mask & ~bits & 7) ? EACCES : 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct vn_call c = { .op = VN_OP_FALLOCATE,
			     .u.fallocate = { mode, (uint64_t)off, (uint64_t)len } };

	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	fuse_reply_err(req, -call_ino(req, ino, &c));
}

/* Valid replies: fuse_reply_lseek, fuse_reply_err. */
static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct vn_call c = { .op = VN_OP_LSEEK, .u.lseek = { (uint64_t)off, whence, 0 } };
	int rc = off < 0 ? -ENXIO : call_ino(req, ino, &c);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_lseek(req, (off_t)c.u.lseek.result);
}

static void flock_from_posix(const struct flock *fl, struct fuse_file_info *fi, struct vn_flock *lk)
{
	lk->type = fl->l_type;
	lk->start = (uint64_t)fl->l_start;
	lk->end = fl->l_len == 0 ? UINT64_MAX : (uint64_t)(fl->l_start + fl->l_len - 1);
	lk->owner = fi->lock_owner;
	lk->pid = fl->l_pid;
	lk->is_flock = 0;
}

/* Valid replies: fuse_reply_lock, fuse_reply_err. */
static void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *fl)
{
	struct vn_flock lk;
	struct vn_call c = { .op = VN_OP_GETLK, .u.getlk = { &lk } };
	uint64_t done0;
	int rc;

	flock_from_posix(fl, fi, &lk);
	done0 = lock_releases_done(D(req));
	rc = call_ino(req, ino, &c);
	/* A lock in the way may be one a RELEASE queued before is dropping. */
	if (!rc && lk.type != F_UNLCK && lock_releases_settle(req, done0)) {
		flock_from_posix(fl, fi, &lk);
		rc = call_ino(req, ino, &c);
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fl->l_type = lk.type;
	if (lk.type != F_UNLCK) {
		fl->l_whence = SEEK_SET;
		fl->l_start = (off_t)lk.start;
		fl->l_len = lk.end == UINT64_MAX ? 0 : (off_t)(lk.end - lk.start + 1);
		fl->l_pid = lk.pid;
	}
	fuse_reply_lock(req, fl);
}

static int req_interrupted(void *arg)
{
	return fuse_req_interrupted(arg);
}

/* Valid replies: fuse_reply_err. */
static void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *fl,
		     int sleep)
{
	struct vn_flock lk;
	struct vn_call c = { .op = VN_OP_SETLK,
			     .u.setlk = { &lk, sleep, req_interrupted, req } };
	int rc = 0;

	flock_from_posix(fl, fi, &lk);
	if (lk.type != F_UNLCK)
		rc = fh_note_owner(fi);
	fuse_reply_err(req, -(rc ? rc : lock_call(req, ino, &c)));
}

/* ---- flock ---------------------------------------------------------------
 *
 * In cluster mode flock(2) goes to the lock manager of the MDS as POSIX locks
 * do (op_init says why not on a single node).  The kernel sends FUSE_SETLK or
 * FUSE_SETLKW with FUSE_LK_FLOCK, owned by the open file description (so
 * dup'ed and inherited descriptors share the lock), and drops the lock at the
 * description's last close with a RELEASE carrying FUSE_RELEASE_FLOCK_UNLOCK.
 * That RELEASE is asynchronous: close() does not wait for it, but the kernel
 * queues it before close() returns, so it is numbered and read before every
 * request made after that close.  The daemon handles requests on many
 * threads, though, so a later flock could reach the MDS first and be refused
 * because of the lock that close released.  Therefore:
 *   - the /dev/fuse read function reports every request read
 *     (cxfsd_dev_read): it counts the RELEASEs that drop locks (a flock, or
 *     an open file description's record locks, above) and keeps which
 *     request numbers were read;
 *   - op_release counts its RELEASE done once the MDS dropped the locks;
 *   - a flock refused with EWOULDBLOCK (and a record lock refused with
 *     EAGAIN, or F_GETLK that finds one in the way) waits until every
 *     request numbered below it was read (its reader may not have run yet),
 *     then until the lock RELEASEs counted by then are done, and asks once
 *     more if one of them finished meanwhile.
 * docs/ARCHITECTURE.md ("Locks") states the resulting guarantee.
 */
#define CXFSD_FLK_ID_STEP 2      /* requests are numbered 2, 4, 6, ...; bit 0 marks an INTERRUPT */
#define CXFSD_FLK_WINDOW 64      /* numbers tracked past seen_below: one read further ahead
				    takes those it skips as read */
#define CXFSD_FLK_SEEN_MS 20     /* longest wait for the requests before: a request aborted
				    before it was read leaves a gap until the window passes it */
#define CXFSD_FLK_WAIT_MS 1000   /* longest wait for their releases */

/* The number of the request this thread handles: libfuse's workers handle what they read. */
static _Thread_local uint64_t cxfsd_req_unique;

void cxfsd_dev_read(struct cxfsd *d, uint64_t unique, int lock_release)
{
	struct cxfsd_flk *f = &d->flk;
	uint64_t i;

	cxfsd_req_unique = unique;
	if (unique % CXFSD_FLK_ID_STEP)
		return;
	pthread_mutex_lock(&f->mu);
	if (lock_release)
		f->read++;
	if (!f->seen_below)
		f->seen_below = unique;
	if (unique >= f->seen_below) {
		i = (unique - f->seen_below) / CXFSD_FLK_ID_STEP;
		if (i >= CXFSD_FLK_WINDOW) {
			uint64_t shift = i - (CXFSD_FLK_WINDOW - 1);

			f->seen_ahead = shift >= CXFSD_FLK_WINDOW ? 0 : f->seen_ahead >> shift;
			f->seen_below += shift * CXFSD_FLK_ID_STEP;
			i = CXFSD_FLK_WINDOW - 1;
		}
		f->seen_ahead |= UINT64_C(1) << i;
		while (f->seen_ahead & 1) {
			f->seen_ahead >>= 1;
			f->seen_below += CXFSD_FLK_ID_STEP;
		}
	}
	pthread_mutex_unlock(&f->mu);
}

static void lock_release_done(struct cxfsd *d)
{
	pthread_mutex_lock(&d->flk.mu);
	if (d->flk.done < d->flk.read) {
		d->flk.done++;
		pthread_cond_broadcast(&d->flk.cv);
	}
	pthread_mutex_unlock(&d->flk.mu);
}

static uint64_t lock_releases_done(struct cxfsd *d)
{
	uint64_t n;

	pthread_mutex_lock(&d->flk.mu);
	n = d->flk.done;
	pthread_mutex_unlock(&d->flk.mu);
	return n;
}

/* Sleep on the flock condition for @ms; caller holds its mutex. */
static void flock_wait_ms(struct cxfsd_flk *f, long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(&f->cv, &f->mu, &until);
}

/*
 * After a refusal of this thread's flock request: wait (boundedly, and not
 * past an interruption) until every request before it was read and every
 * flock RELEASE counted then is done.  Returns 1 if some release finished
 * since @done0 (the request may now be granted), else 0.
 */
static int lock_releases_settle(fuse_req_t req, uint64_t done0)
{
	struct cxfsd_flk *f = &D(req)->flk;
	uint64_t self = cxfsd_req_unique, target;
	int again;

	pthread_mutex_lock(&f->mu);
	for (int ms = 0; self && f->seen_below <= self && ms < CXFSD_FLK_SEEN_MS; ms++) {
		if (fuse_req_interrupted(req))
			break;
		flock_wait_ms(f, 1);   /* a poll: nobody signals a read */
	}
	target = f->read;
	for (int ms = 0; f->done < target && ms < CXFSD_FLK_WAIT_MS; ms += 10) {
		if (fuse_req_interrupted(req))
			break;
		flock_wait_ms(f, 10);
	}
	again = f->done > done0;
	pthread_mutex_unlock(&f->mu);
	return again;
}

/*
 * A lock request @c (flock or record lock); refused (EAGAIN, which is
 * EWOULDBLOCK) because of a lock a RELEASE queued before it is dropping,
 * it waits for those releases and asks once more.
 */
static int lock_call(fuse_req_t req, fuse_ino_t ino, struct vn_call *c)
{
	uint64_t done0 = lock_releases_done(D(req));
	int rc = call_ino(req, ino, c);

	if (rc == -EAGAIN && lock_releases_settle(req, done0))
		rc = call_ino(req, ino, c);
	return rc;
}

/*
 * Valid replies: fuse_reply_err.  LOCK_SH, LOCK_EX (converting the
 * description's lock, not atomically, as Linux) or LOCK_UN; without LOCK_NB
 * the wait ends with EINTR when the kernel interrupts the request.
 */
static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	struct vn_flock lk = { .start = 0, .end = UINT64_MAX, .owner = fi->lock_owner,
			       .pid = fuse_req_ctx(req)->pid, .is_flock = 1 };
	struct vn_call c = { .op = VN_OP_SETLK,
			     .u.setlk = { &lk, !(op & LOCK_NB), req_interrupted, req } };
	switch (op & ~LOCK_NB) {
	case LOCK_SH:
		lk.type = F_RDLCK;
		break;
	case LOCK_EX:
		lk.type = F_WRLCK;
		break;
	case LOCK_UN:
		lk.type = F_UNLCK;
		break;
	default:
		fuse_reply_err(req, EINVAL);
		return;
	}
	fuse_reply_err(req, -lock_call(req, ino, &c));
}

/* Ask the kernel for what makes a filesystem fast and ext4-like. */
static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct cxfsd *d = userdata;

	/*
	 * POSIX locks go through the daemon's lock manager on every node; FLUSH,
	 * inside close(), drops them.  flock(2) does too in a cluster, where
	 * only the MDS can make it exclude across nodes (see "flock" above).  On
	 * a single node flock stays with the kernel, which behaves exactly as
	 * ext4: it drops the lock inside the last close(), whereas the daemon
	 * would hear of it only through RELEASE, after close() has returned, so
	 * another descriptor could still find the lock held for a moment; and
	 * on one node there is nothing for the daemon to arbitrate.
	 */
	if (d->cl)
		conn->want |= conn->capable & FUSE_CAP_FLOCK_LOCKS;
	else
		conn->want &= ~(unsigned)FUSE_CAP_FLOCK_LOCKS;
	conn->want |= conn->capable & (FUSE_CAP_POSIX_LOCKS | FUSE_CAP_READDIRPLUS | FUSE_CAP_PARALLEL_DIROPS |
				       FUSE_CAP_EXPORT_SUPPORT | FUSE_CAP_ASYNC_DIO |
				       FUSE_CAP_ASYNC_READ);
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	/*
	 * In a cluster the kernel asks for attributes before every read (they
	 * never stay valid: timeouts of 0), and the daemon drops the pages
	 * another node's write made stale before it answers.
	 */
	if (d->cl) {
		conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS | FUSE_CAP_WRITEBACK_CACHE);
		conn->want |= conn->capable & FUSE_CAP_AUTO_INVAL_DATA;
	} else if (d->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	conn->max_write = 1024 * 1024;
	conn->max_readahead = 1024 * 1024;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1;
}

const struct fuse_lowlevel_ops cxfsd_fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.access = op_access,
	.create = op_create,
	.getlk = op_getlk,
	.setlk = op_setlk,
	.flock = op_flock,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
};
