/*
 * dm_bhv.c - the `dmapi` vnode behavior (see dm_bhv.h): hold the DMAPI
 * token across data operations, and raise the events their managed regions
 * ask for before running them.
 *
 * Locks: runs under the vnode's head lock (read); the port's token hold is
 * taken after it and let go before the head lock, and never across the wait
 * for the HSM's answer.
 */
#include "dmapi/dm_bhv.h"

#include <errno.h>
#include <linux/falloc.h>
#include <stdlib.h>

#include "vnode/vn.h"

static const struct dm_port *port_of(struct vn_bhv *self)
{
	return self->priv;
}

/*
 * Run @c below us once @ev on [@off, @off + @len) needs no event (any more).
 * After an answer the regions are checked again: an HSM that brought back
 * only part of the range (it answered a joined event for a smaller one) is
 * asked again.  A second "continue" for a range that still asks lets the
 * operation go on, as DMAPI's continue response does.
 */
#define DM_BHV_ASKS 2

static int with_events(struct vn_bhv *self, struct vnode *vn, struct vn_call *c,
		       enum dm_event ev, uint64_t off, uint64_t len)
{
	const struct dm_port *p = port_of(self);
	uint64_t ino = vn_ino(vn);
	int rc, asked = 0;

	for (;;) {
		rc = p->hold(p->arg, ino, ev, off, len);
		if (rc < 0)
			return rc;
		if (rc == 0 || asked++ == DM_BHV_ASKS)
			break;
		p->unhold(p->arg, ino);
		rc = p->raise(p->arg, ino, ev, off, len);
		if (rc)
			return rc;
	}
	rc = vn_next(self, vn, c);
	p->unhold(p->arg, ino);
	return rc;
}

static int d_read(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	if (c->u.read.flags & VN_IO_INVISIBLE)
		return vn_next(self, vn, c);
	return with_events(self, vn, c, DM_EV_READ, c->u.read.off, c->u.read.size ? c->u.read.size : 1);
}

static int d_write(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	if (c->u.write.flags & VN_IO_INVISIBLE)
		return vn_next(self, vn, c);
	return with_events(self, vn, c, DM_EV_WRITE, c->u.write.off,
			   c->u.write.size ? c->u.write.size : 1);
}

static int d_setattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	if (!(c->u.setattr.mask & VN_SET_SIZE))
		return vn_next(self, vn, c);
	return with_events(self, vn, c, DM_EV_TRUNCATE, c->u.setattr.in->size, 0);
}

static int d_fallocate(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	if (c->u.fallocate.mode & VN_IO_INVISIBLE)
		return vn_next(self, vn, c);
	return with_events(self, vn, c, DM_EV_WRITE, c->u.fallocate.off, c->u.fallocate.len);
}

static int d_inactive(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	const struct dm_port *p = port_of(self);
	uint64_t cookie;
	int rc;

	if (!p->inactive)
		return vn_next(self, vn, c);
	cookie = p->inactive(p->arg, vn_ino(vn), 0, 0);
	rc = vn_next(self, vn, c);
	if (cookie)
		(void)p->inactive(p->arg, vn_ino(vn), 1, cookie);
	return rc;
}

static void d_destroy(struct vn_bhv *self, struct vnode *vn)
{
	(void)vn;
	free(self);
}

static const struct vn_ops dm_bhv_ops = {
	.name = "dmapi",
	.position = VN_POS_DMAPI,
	.op = {
		[VN_OP_READ] = d_read,
		[VN_OP_WRITE] = d_write,
		[VN_OP_SETATTR] = d_setattr,
		[VN_OP_FALLOCATE] = d_fallocate,
		[VN_OP_INACTIVE] = d_inactive,
	},
	.destroy = d_destroy,
};

int dm_bhv_push(struct vnode *vn, const struct dm_port *port)
{
	struct vn_bhv *b = calloc(1, sizeof(*b));
	int rc;

	if (!b)
		return -ENOMEM;
	b->ops = &dm_bhv_ops;
	b->priv = (void *)port;
	rc = vn_bhv_insert(vn, b);
	if (rc)
		free(b);
	return rc;
}
