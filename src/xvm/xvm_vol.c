/*
 * xvm_vol.c - a volume's life: assembly from its LUNs (xvm_open), the
 * blk.h-like calls, the two-phase label commit, leg failure, and the
 * administration (create, attach, detach, grow, revive, show).
 *
 * Assembly (xvm_open).  One LUN without a label is a legacy volume.
 * Otherwise every LUN must carry a valid label (primary or secondary copy)
 * of the same volume uuid.  Let Gmax be the highest generation seen:
 *   - if a LUN holds Gmax committed, or every LUN the Gmax label was written
 *     to (its "written" set) holds Gmax, the change is kept (roll forward:
 *     its prepare phase reached every LUN, so no node can still use the old
 *     layout);
 *   - otherwise the prepare phase was cut short and the change is undone
 *     (roll back): the tree is the one of the highest committed generation
 *     below Gmax, which the LUNs not yet prepared still carry.
 * Then each LUN must be a leaf of that tree (else: a foreign or detached
 * LUN), no LUN number twice, no LUN older than the tree's generation unless
 * it is under a mirror leg that is out or reviving (a stale piece), and no
 * leaf missing unless it is under such a leg (a degraded mirror).  Refusals
 * name the LUN.  If the labels disagree (a resolved change, an out leg's
 * old label) and the volume is writable, the resolved tree is written again
 * as a new generation.
 *
 * Locks: vol->label_lock -> vol->lock (xvm_i.h); xvm_io.c's pool lock is
 * never taken with them.  The fence callback (xvm__on_fenced) takes
 * vol->lock on the thread of a refused I/O: no I/O is issued with it held.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "xvm/xvm_i.h"

#define XVM__POOL_MAX 16

static const char *const xvm__leg_name[] = { "active", "out", "reviving", "detached" };

static int xvm__leg_in(const struct xvm_vol *vol, unsigned m, unsigned st);

int xvm_split_list(const char *list, char ***uris, size_t *n)
{
	char **v = NULL, *copy, *tok, *save = NULL;
	size_t k = 0;

	*uris = NULL;
	*n = 0;
	copy = strdup(list ? list : "");
	if (!copy)
		return -ENOMEM;
	if (!*copy || copy[0] == ',' || copy[strlen(copy) - 1] == ',' || strstr(copy, ",,")) {
		free(copy);
		return -EINVAL;
	}
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char **nv = realloc(v, (k + 1) * sizeof(*v));

		if (!nv || !(nv[k] = strdup(tok))) {
			xvm_free_list(nv ? nv : v, k);
			free(copy);
			return -ENOMEM;
		}
		v = nv;
		k++;
	}
	free(copy);
	*uris = v;
	*n = k;
	return 0;
}

void xvm_free_list(char **uris, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(uris[i]);
	free(uris);
}

int xvm_open_args(const char *const *args, size_t nargs, const struct xvm_open_opts *opts,
		  struct xvm_vol **out, char *err, size_t errlen)
{
	char **all = NULL, **one;
	size_t n = 0, k, i;
	int rc = 0;

	for (i = 0; i < nargs && !rc; i++) {
		rc = xvm_split_list(args[i], &one, &k);
		if (rc) {
			snprintf(err, errlen, "bad LUN list \"%s\"", args[i]);
			break;
		}
		char **nall = realloc(all, (n + k) * sizeof(*all));

		if (!nall) {
			xvm_free_list(one, k);
			rc = -ENOMEM;
			break;
		}
		all = nall;
		memcpy(all + n, one, k * sizeof(*one));
		n += k;
		free(one);
	}
	if (!rc)
		rc = xvm_open((const char *const *)all, n, opts, out, err, errlen);
	xvm_free_list(all, n);
	return rc;
}

/* A volume with nothing open (locks ready). */
static struct xvm_vol *xvm__alloc(void)
{
	struct xvm_vol *vol = calloc(1, sizeof(*vol));

	if (!vol)
		return NULL;
	pthread_mutex_init(&vol->copy_mu, NULL);
	pthread_mutex_init(&vol->label_lock, NULL);
	pthread_mutex_init(&vol->lock, NULL);
	pthread_cond_init(&vol->cond, NULL);
	return vol;
}

void xvm_close(struct xvm_vol *vol)
{
	unsigned i;

	if (!vol)
		return;
	xvm_drl_stop(vol);
	xvm__pool_stop(vol->pool);
	for (i = 0; i < XVM_MAX_LEAVES; i++) {
		if (vol->dev[i])
			blk_close(vol->dev[i]);
		free(vol->lun_uri[i]);
	}
	pthread_cond_destroy(&vol->cond);
	pthread_mutex_destroy(&vol->lock);
	pthread_mutex_destroy(&vol->label_lock);
	pthread_mutex_destroy(&vol->copy_mu);
	for (i = 0; i < XVM_MAX_NODES; i++)
		free(vol->ahead[i]);
	free(vol->uri);
	free(vol->initiator);
	free(vol);
}

static char *xvm__join(const char *const *uris, size_t n)
{
	size_t len = 1, i;
	char *s;

	for (i = 0; i < n; i++)
		len += strlen(uris[i]) + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	*s = 0;
	for (i = 0; i < n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, uris[i]);
	}
	return s;
}

/* The volume's name for messages. */
static const char *xvm__name(const struct xvm__label *l)
{
	return l->name[0] ? l->name : "(unnamed)";
}

/* Bit mask of the LUN numbers that are open and not under an inactive leg. */
static uint64_t xvm__uptodate(const struct xvm_vol *vol)
{
	const struct xvm__tree *t = &vol->label.tree;
	uint64_t m = 0;
	unsigned i;

	for (i = 0; i < t->n; i++)
		if (t->node[i].kind == XVM__LEAF && vol->dev[t->node[i].leaf] &&
		    !xvm__tree_under_inactive(t, i))
			m |= 1ull << t->node[i].leaf;
	return m;
}

int xvm__label_commit(struct xvm_vol *vol, char *err, size_t errlen)
{
	static const uint32_t phases[] = { XVM__PREPARED, XVM__COMMITTED };
	struct xvm__label l;
	unsigned attempt, p, leaf;
	int rc = 0, leg;

	for (attempt = 0; attempt <= XVM_MAX_LEAVES; attempt++) {
		int failed = -1;

		pthread_mutex_lock(&vol->lock);
		l = vol->label;
		l.written = xvm__uptodate(vol);
		pthread_mutex_unlock(&vol->lock);
		l.generation++;
		for (p = 0; p < 2 && failed < 0; p++) {
			l.state = phases[p];
			for (leaf = 0; leaf < XVM_MAX_LEAVES; leaf++) {
				int node = xvm__tree_leaf(&l.tree, leaf);

				/* A detached leg's LUNs left the volume: their labels stay wiped. */
				if (!vol->dev[leaf] || node < 0 || xvm__under_detached(&l.tree, (unsigned)node))
					continue;
				l.leaf = leaf;
				rc = xvm__label_write(vol->dev[leaf], &l);
				if (rc && (l.written >> leaf & 1)) {
					failed = (int)leaf;
					break;
				}
			}
		}
		if (failed < 0) {
			pthread_mutex_lock(&vol->lock);
			vol->label.generation = l.generation;
			pthread_mutex_unlock(&vol->lock);
			return 0;
		}
		/* A LUN that takes no label is a failed LUN: its leg goes out, or the change fails. */
		pthread_mutex_lock(&vol->lock);
		leg = xvm__absorbing_leg(vol, (unsigned)xvm__tree_leaf(&vol->label.tree, (uint32_t)failed));
		if (leg > 0)
			vol->label.tree.node[leg].leg_state = XVM_LEG_OUT;
		pthread_mutex_unlock(&vol->lock);
		if (leg <= 0) {
			snprintf(err, errlen, "cannot write the label of LUN %s: %s", vol->lun_uri[failed],
				 strerror(-rc));
			return rc;
		}
		fprintf(stderr, "cxfs xvm: volume %s: LUN %s takes no label (%s): its mirror leg is "
			"marked out\n", xvm__name(&vol->label), vol->lun_uri[failed], strerror(-rc));
	}
	snprintf(err, errlen, "the labels could not be written");
	return -EIO;
}

/* The position of node @n among its parent's children. */
static unsigned xvm__leg_index(const struct xvm__tree *t, unsigned n)
{
	const struct xvm__node *p = &t->node[t->node[n].parent];
	unsigned c;

	for (c = 0; c < p->nchild && p->child[c] != n; c++)
		;
	return c;
}

/*
 * Mark leg @n (a node index) out in memory, unless it is the last active leg
 * of its mirror.  1 if it was active or reviving and is out now, 0 if it was
 * out already, -EIO if it is the last active leg.  vol->lock held.
 */
static int xvm__mark_out(struct xvm_vol *vol, unsigned n)
{
	struct xvm__node *p = &vol->label.tree.node[vol->label.tree.node[n].parent];
	unsigned c, others = 0;

	for (c = 0; c < p->nchild; c++)
		if (p->child[c] != n && vol->label.tree.node[p->child[c]].leg_state == XVM_LEG_ACTIVE)
			others++;
	if (vol->label.tree.node[n].leg_state == XVM_LEG_OUT ||
	    vol->label.tree.node[n].leg_state == XVM_LEG_DETACHED)
		return 0;
	if (vol->label.tree.node[n].leg_state == XVM_LEG_ACTIVE && others == 0)
		return -EIO;
	vol->label.tree.node[n].leg_state = XVM_LEG_OUT;
	pthread_cond_broadcast(&vol->cond);
	return 1;
}

/*
 * Mark leg @n out and write the labels (what a single node, or a cluster's
 * mirror master, decides); *@generation (may be NULL) gets the labels'
 * generation.  No lock held.
 */
static int xvm__leg_out(struct xvm_vol *vol, unsigned n, uint64_t *generation)
{
	char err[256];
	unsigned mirror, c;
	int rc;

	pthread_mutex_lock(&vol->label_lock);
	pthread_mutex_lock(&vol->lock);
	rc = xvm__mark_out(vol, n);
	mirror = vol->label.tree.node[n].parent;
	c = xvm__leg_index(&vol->label.tree, n);
	pthread_mutex_unlock(&vol->lock);
	if (rc == 1) {
		fprintf(stderr, "cxfs xvm: volume %s: leg %u of mirror %u failed I/O: marked out\n",
			xvm__name(&vol->label), c, mirror);
		rc = vol->read_only ? 0 : xvm__label_commit(vol, err, sizeof(err));
		if (rc)
			fprintf(stderr, "cxfs xvm: volume %s: %s\n", xvm__name(&vol->label), err);
	}
	if (generation) {
		pthread_mutex_lock(&vol->lock);
		*generation = vol->label.generation;
		pthread_mutex_unlock(&vol->lock);
	}
	pthread_mutex_unlock(&vol->label_lock);
	return rc;
}

int xvm__leg_failed(struct xvm_vol *vol, unsigned n)
{
	unsigned mirror, c;

	if (vol->cops && vol->cops->leg_failed) {
		pthread_mutex_lock(&vol->lock);
		mirror = vol->label.tree.node[n].parent;
		c = xvm__leg_index(&vol->label.tree, n);
		pthread_mutex_unlock(&vol->lock);
		return vol->cops->leg_failed(vol->cops_arg, vol, mirror, c);
	}
	return xvm__leg_out(vol, n, NULL);
}

/* The node index of leg @leg of mirror @mirror, or -EINVAL (vol->lock held). */
static int xvm__leg_node(const struct xvm_vol *vol, unsigned mirror, unsigned leg)
{
	const struct xvm__tree *t = &vol->label.tree;

	if (vol->legacy || mirror >= t->n || t->node[mirror].kind != XVM__MIRROR ||
	    leg >= t->node[mirror].nchild)
		return -EINVAL;
	return (int)t->node[mirror].child[leg];
}

int xvm_leg_out_commit(struct xvm_vol *vol, unsigned mirror, unsigned leg, uint64_t *generation)
{
	int n;

	pthread_mutex_lock(&vol->lock);
	n = xvm__leg_node(vol, mirror, leg);
	pthread_mutex_unlock(&vol->lock);
	if (n < 0)
		return n;
	return xvm__leg_out(vol, (unsigned)n, generation);
}

int xvm_leg_out_told(struct xvm_vol *vol, unsigned mirror, unsigned leg, uint64_t generation)
{
	int n, rc;

	pthread_mutex_lock(&vol->lock);
	n = xvm__leg_node(vol, mirror, leg);
	rc = n < 0 ? n : xvm__mark_out(vol, (unsigned)n);
	/* Never below a generation the labels carry: a later commit here must go above it. */
	if (rc >= 0 && generation > vol->label.generation)
		vol->label.generation = generation;
	pthread_mutex_unlock(&vol->lock);
	if (rc == 1)
		fprintf(stderr, "cxfs xvm: volume %s: leg %u of mirror %u marked out (mirror master)\n",
			xvm__name(&vol->label), leg, mirror);
	return rc < 0 ? rc : 0;
}

/* Assembly of a labelled volume from @n LUNs (some may be NULL: could not be opened). */
static int xvm__assemble(struct xvm_vol *vol, struct blk_dev **devs, const char *const *uris,
			 size_t n, int *open_rc, char *err, size_t errlen)
{
	struct xvm__label *lab = calloc(n, sizeof(*lab));
	uint64_t gmax = 0, gres = 0;
	size_t i, ref = n, res = n;
	int rc = -EINVAL, forward, uniform = 1;
	char why[300];
	unsigned k;

	if (!lab)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (!devs[i])
			continue;
		rc = xvm__label_read(devs[i], &lab[i], why, sizeof(why));
		if (rc && rc != -ENODATA && rc != -EINVAL) {
			/* A LUN that answers no read is as good as missing (see below). */
			fprintf(stderr, "cxfs xvm: LUN %s: %s\n", uris[i], why);
			blk_close(devs[i]);
			devs[i] = NULL;
			open_rc[i] = rc;
			continue;
		}
		if (rc == -ENODATA) {
			snprintf(err, errlen, "LUN %s has no volume label (a LUN detached from the "
				 "volume: take it out of the list; a new volume: cxfs-volume create)",
				 uris[i]);
			rc = -EINVAL;
			goto out_free;
		}
		if (rc) {
			snprintf(err, errlen, "LUN %s: %s", uris[i], why);
			goto out_free;
		}
		if (ref == n || lab[i].generation > gmax) {
			ref = i;
			gmax = lab[i].generation;
		}
	}
	rc = -EINVAL;
	if (ref == n) {
		for (i = 0; i < n && !open_rc[i]; i++)
			;
		snprintf(err, errlen, "no LUN of the volume could be opened (%s: %s)", uris[i],
			 strerror(-open_rc[i]));
		rc = open_rc[i];
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		if (devs[i] && memcmp(lab[i].uuid, lab[ref].uuid, 16) != 0) {
			snprintf(err, errlen, "LUN %s belongs to volume %s, not to volume %s", uris[i],
				 xvm__name(&lab[i]), xvm__name(&lab[ref]));
			goto out_free;
		}
	}
	/* Roll forward or back (see the top of the file). */
	forward = 1;
	for (i = 0; i < n; i++)
		if (devs[i] && lab[i].generation == gmax && lab[i].state == XVM__COMMITTED)
			break;
	if (i == n) {
		for (k = 0; k < XVM_MAX_LEAVES; k++) {
			if (!(lab[ref].written >> k & 1))
				continue;
			for (i = 0; i < n; i++)
				if (devs[i] && lab[i].leaf == k && lab[i].generation == gmax)
					break;
			if (i == n)
				forward = 0;
		}
	}
	if (forward) {
		res = ref;
	} else {
		for (i = 0; i < n; i++)
			if (devs[i] && lab[i].generation < gmax && lab[i].state == XVM__COMMITTED &&
			    (res == n || lab[i].generation > lab[res].generation))
				res = i;
		if (res == n) {
			snprintf(err, errlen, "volume %s: an interrupted layout change (generation %llu) "
				 "cannot be undone: no LUN holds the previous layout",
				 xvm__name(&lab[ref]), (unsigned long long)gmax);
			goto out_free;
		}
		fprintf(stderr, "cxfs xvm: volume %s: generation %llu was prepared on some LUNs only: "
			"undone\n", xvm__name(&lab[ref]), (unsigned long long)gmax);
	}
	gres = lab[res].generation;
	vol->label = lab[res];
	for (i = 0; i < n; i++) {
		int node;

		if (!devs[i])
			continue;
		node = xvm__tree_leaf(&vol->label.tree, lab[i].leaf);
		if (node < 0) {
			snprintf(err, errlen, "LUN %s is not part of volume %s (detached, or added by a "
				 "change that was undone)", uris[i], xvm__name(&vol->label));
			goto out_free;
		}
		if (vol->dev[lab[i].leaf]) {
			snprintf(err, errlen, "LUNs %s and %s both claim place %u of volume %s",
				 vol->lun_uri[lab[i].leaf], uris[i], lab[i].leaf, xvm__name(&vol->label));
			goto out_free;
		}
		if (lab[i].generation < gres && !xvm__tree_under_inactive(&vol->label.tree, (unsigned)node)) {
			snprintf(err, errlen, "LUN %s is stale: its label is at generation %llu, volume "
				 "%s at %llu (an old copy of the LUN?)", uris[i],
				 (unsigned long long)lab[i].generation, xvm__name(&vol->label),
				 (unsigned long long)gres);
			goto out_free;
		}
		if (blk_size(devs[i]) < XVM_RESERVED + vol->label.tree.node[node].leaf_size) {
			snprintf(err, errlen, "LUN %s is smaller than its label says", uris[i]);
			goto out_free;
		}
		if (lab[i].generation != gres || lab[i].state != XVM__COMMITTED)
			uniform = 0;
		vol->dev[lab[i].leaf] = devs[i];
		vol->lun_uri[lab[i].leaf] = strdup(uris[i]);
		devs[i] = NULL;
		vol->nlun++;
	}
	for (k = 0; k < vol->label.tree.n; k++) {
		const struct xvm__node *nd = &vol->label.tree.node[k];

		/*
		 * A LUN under a leg that is not active (out, reviving, detached)
		 * may be missing, and rewriting the labels cannot reach it: no
		 * reason to write them (a joining cluster node would, before it
		 * registered its reservation key).
		 */
		if (nd->kind != XVM__LEAF || vol->dev[nd->leaf] ||
		    xvm__tree_under_inactive(&vol->label.tree, k))
			continue;
		for (i = 0; i < n && !open_rc[i]; i++)
			;
		if (i < n)
			snprintf(err, errlen, "LUN %u of volume %s is missing (%s cannot be opened: %s)",
				 nd->leaf, xvm__name(&vol->label), uris[i], strerror(-open_rc[i]));
		else
			snprintf(err, errlen, "LUN %u of volume %s is missing (give every LUN of the "
				 "volume)", nd->leaf, xvm__name(&vol->label));
		goto out_free;
	}
	vol->label.state = XVM__COMMITTED;
	/* Written again above every generation seen, so an undone one is never reused. */
	vol->label.generation = gmax;
	rc = 0;
	if (!uniform && !vol->read_only)
		rc = xvm__label_commit(vol, err, errlen);
out_free:
	free(lab);
	return rc;
}

int xvm_open(const char *const *uris, size_t n, const struct xvm_open_opts *opts,
	     struct xvm_vol **out, char *err, size_t errlen)
{
	static const struct xvm_open_opts no_opts;
	struct blk_open_opts bo = { 0 };
	struct blk_dev *devs[XVM_MAX_LEAVES] = { 0 };
	int open_rc[XVM_MAX_LEAVES] = { 0 };
	struct xvm_vol *vol;
	struct xvm__label l;
	char why[300];
	size_t i;
	int rc;

	*out = NULL;
	if (!opts)
		opts = &no_opts;
	if (n == 0 || n > XVM_MAX_LEAVES) {
		snprintf(err, errlen, "a volume takes 1 to %d LUNs (%zu given)", XVM_MAX_LEAVES, n);
		return -EINVAL;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot initialise");
		return -EIO;
	}
	vol = xvm__alloc();
	if (!vol)
		return -ENOMEM;
	vol->read_only = opts->read_only;
	vol->cops = opts->cluster_ops;
	vol->cops_arg = opts->cluster_arg;
	vol->uri = xvm__join(uris, n);
	vol->initiator = opts->initiator ? strdup(opts->initiator) : NULL;
	if (!vol->uri || (opts->initiator && !vol->initiator)) {
		rc = -ENOMEM;
		goto out_close;
	}
	bo.initiator = opts->initiator;
	bo.read_only = opts->read_only;
	bo.create_size = n == 1 ? opts->create_size : 0;
	for (i = 0; i < n; i++) {
		open_rc[i] = blk_open(uris[i], &bo, &devs[i]);
		if (open_rc[i] && n == 1) {
			snprintf(err, errlen, "cannot open %s: %s", uris[0], strerror(-open_rc[0]));
			rc = open_rc[0];
			goto out_close;
		}
	}
	if (n == 1) {
		rc = xvm__label_read(devs[0], &l, why, sizeof(why));
		if (rc == -ENODATA) {
			/* A legacy volume: the LUN itself, from byte 0. */
			vol->legacy = 1;
			vol->nlun = 1;
			vol->dev[0] = devs[0];
			devs[0] = NULL;
			vol->lun_uri[0] = strdup(uris[0]);
			vol->sector_size = blk_sector_size(vol->dev[0]);
			*out = vol;
			return 0;
		}
		if (rc) {
			snprintf(err, errlen, "LUN %s: %s", uris[0], why);
			goto out_close_devs;
		}
	}
	rc = xvm__assemble(vol, devs, uris, n, open_rc, err, errlen);
	if (rc)
		goto out_close_devs;
	atomic_store(&vol->size, vol->label.tree.node[0].size);
	/*
	 * A leg left reviving: how far a revive running elsewhere got is told
	 * by its next MIRROR_STATE.  Until then this node writes the reviving
	 * legs everywhere (always safe: a revive only copies more), so a write
	 * below that revive's point never misses them.
	 */
	for (i = 0; i < vol->label.tree.n; i++)
		if (vol->label.tree.node[i].kind == XVM__MIRROR &&
		    xvm__leg_in(vol, (unsigned)i, XVM_LEG_REVIVING) >= 0)
			vol->label.tree.node[i].revive_point = vol->label.tree.node[i].size;
	for (i = 0; i < XVM_MAX_LEAVES; i++)
		if (vol->dev[i] && blk_sector_size(vol->dev[i]) > vol->sector_size)
			vol->sector_size = blk_sector_size(vol->dev[i]);
	if (vol->nlun > 1) {
		rc = xvm__pool_start(vol, vol->nlun * 2 < XVM__POOL_MAX ? vol->nlun * 2 : XVM__POOL_MAX,
				     &vol->pool);
		if (rc) {
			snprintf(err, errlen, "cannot start the volume's threads");
			goto out_close;
		}
	}
	*out = vol;
	return 0;

out_close_devs:
	for (i = 0; i < n; i++)
		if (devs[i])
			blk_close(devs[i]);
out_close:
	xvm_close(vol);
	return rc;
}

int xvm_read(struct xvm_vol *vol, void *buf, size_t len, uint64_t off)
{
	struct xvm__plan pl = { .op = XVM__READ, .buf = buf };
	int rc;

	if (vol->legacy)
		return blk_read(vol->dev[0], buf, len, off);
	if (off > xvm_size(vol) || len > xvm_size(vol) - off)
		return -EINVAL;
	if (len == 0)
		return 0;
	rc = xvm__run(vol, 0, off, len, &pl);
	xvm__plan_free(&pl);
	return rc;
}

int xvm_write(struct xvm_vol *vol, const void *buf, size_t len, uint64_t off)
{
	struct xvm__plan pl = { .op = XVM__WRITE, .buf = (char *)buf };
	int rc;

	if (vol->legacy)
		return blk_write(vol->dev[0], buf, len, off);
	if (vol->read_only)
		return -EROFS;
	if (off > xvm_size(vol) || len > xvm_size(vol) - off)
		return -ENOSPC;
	if (len == 0)
		return 0;
	rc = xvm__run(vol, 0, off, len, &pl);
	xvm__plan_free(&pl);
	return rc;
}

int xvm_write_padded(struct xvm_vol *vol, uint64_t off, size_t span, const void *data, size_t at,
		     size_t len)
{
	struct xvm__plan pl = { .op = XVM__PADDED, .data = data, .at = at, .dlen = len };
	int rc;

	if (vol->legacy)
		return blk_write_padded(vol->dev[0], off, span, data, at, len);
	if (at > span || len > span - at)
		return -EINVAL;
	if (vol->read_only)
		return -EROFS;
	if (off > xvm_size(vol) || span > xvm_size(vol) - off)
		return -ENOSPC;
	if (span == 0)
		return 0;
	rc = xvm__run(vol, 0, off, span, &pl);
	xvm__plan_free(&pl);
	return rc;
}

int xvm_flush(struct xvm_vol *vol)
{
	if (vol->legacy)
		return blk_flush(vol->dev[0]);
	return xvm__flush(vol);
}

uint64_t xvm_size(const struct xvm_vol *vol)
{
	return vol->legacy ? blk_size(vol->dev[0]) : atomic_load(&vol->size);
}

uint32_t xvm_sector_size(const struct xvm_vol *vol)
{
	return vol->sector_size;
}

const char *xvm_uri(const struct xvm_vol *vol)
{
	return vol->uri;
}

int xvm_is_iscsi(const struct xvm_vol *vol)
{
	for (unsigned i = 0; i < XVM_MAX_LEAVES; i++)
		if (vol->dev[i] && blk_is_iscsi(vol->dev[i]))
			return 1;
	return 0;
}

int xvm_is_legacy(const struct xvm_vol *vol)
{
	return vol->legacy;
}

void xvm_uuid(const struct xvm_vol *vol, char out[33])
{
	out[0] = 0;
	if (!vol->legacy)
		sodium_bin2hex(out, 33, vol->label.uuid, sizeof(vol->label.uuid));
}

void xvm_get_stats(const struct xvm_vol *vol, struct blk_stats *out)
{
	struct blk_stats s;

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < XVM_MAX_LEAVES; i++) {
		if (!vol->dev[i])
			continue;
		blk_get_stats(vol->dev[i], &s);
		out->reads += s.reads;
		out->writes += s.writes;
		out->flushes += s.flushes;
		out->bytes_read += s.bytes_read;
		out->bytes_written += s.bytes_written;
		out->reconnects += s.reconnects;
		out->errors += s.errors;
		out->reservation_conflicts += s.reservation_conflicts;
	}
}

/* The persistent-reservation calls, applied by xvm__pr() to every open LUN. */
enum xvm__pr_op { XVM__PR_REGISTER, XVM__PR_RESERVE, XVM__PR_PREEMPT, XVM__PR_UNREGISTER,
		  XVM__PR_REJOIN };

/* @op on every open LUN in turn; the first error stops it (unregister goes on: a leave). */
static int xvm__pr(struct xvm_vol *vol, enum xvm__pr_op op, uint64_t key)
{
	int rc = 0, r = 0;

	for (unsigned i = 0; i < XVM_MAX_LEAVES && (!rc || op == XVM__PR_UNREGISTER); i++) {
		if (!vol->dev[i])
			continue;
		switch (op) {
		case XVM__PR_REGISTER: r = blk_pr_register(vol->dev[i], key); break;
		case XVM__PR_RESERVE: r = blk_pr_reserve(vol->dev[i]); break;
		case XVM__PR_PREEMPT: r = blk_pr_preempt(vol->dev[i], key); break;
		case XVM__PR_UNREGISTER: r = blk_pr_unregister(vol->dev[i]); break;
		case XVM__PR_REJOIN: r = blk_pr_rejoin(vol->dev[i], key); break;
		}
		if (r && !rc)
			rc = r;
	}
	return rc;
}

int xvm_pr_register(struct xvm_vol *vol, uint64_t key)
{
	return xvm__pr(vol, XVM__PR_REGISTER, key);
}

int xvm_pr_reserve(struct xvm_vol *vol)
{
	return xvm__pr(vol, XVM__PR_RESERVE, 0);
}

int xvm_pr_preempt(struct xvm_vol *vol, uint64_t victim)
{
	return xvm__pr(vol, XVM__PR_PREEMPT, victim);
}

int xvm_pr_unregister(struct xvm_vol *vol)
{
	return xvm__pr(vol, XVM__PR_UNREGISTER, 0);
}

int xvm_pr_rejoin(struct xvm_vol *vol, uint64_t key)
{
	return xvm__pr(vol, XVM__PR_REJOIN, key);
}

int xvm_fenced(const struct xvm_vol *vol)
{
	for (unsigned i = 0; i < XVM_MAX_LEAVES; i++)
		if (vol->dev[i] && blk_fenced(vol->dev[i]))
			return 1;
	return 0;
}

int xvm_in_use(struct xvm_vol *vol, char *err, size_t errlen)
{
	struct blk_pr_state *st = malloc(sizeof(*st));
	int rc = 0;

	if (!st)
		return -ENOMEM;
	for (unsigned i = 0; i < XVM_MAX_LEAVES && rc == 0; i++) {
		if (!vol->dev[i] || !blk_is_iscsi(vol->dev[i]))
			continue;
		rc = blk_pr_read(vol->dev[i], st);
		if (rc) {
			snprintf(err, errlen, "cannot read the reservation keys of LUN %s: %s",
				 vol->lun_uri[i], strerror(-rc));
		} else if (st->n_keys) {
			size_t len = (size_t)snprintf(err, errlen, "LUN %s has %u registered key%s",
						      vol->lun_uri[i], st->n_keys,
						      st->n_keys == 1 ? "" : "s");

			for (unsigned k = 0; k < st->n_keys && k < BLK_PR_MAX_KEYS && len < errlen; k++)
				len += (size_t)snprintf(err + len, errlen - len, "%s%016llx",
							k ? ", " : " (", (unsigned long long)st->keys[k]);
			if (len < errlen)
				snprintf(err + len, errlen - len, ")");
			rc = 1;
		}
	}
	free(st);
	return rc;
}

static void xvm__on_fenced(struct blk_dev *dev, void *arg)
{
	struct xvm_vol *vol = arg;
	bool detached = false;

	/*
	 * A LUN of a leg detached while a write was on its way to it refuses
	 * this node (it dropped its key there, xvm__leave_luns): that is no
	 * fence, and the write is absorbed (xvm__absorb).
	 */
	pthread_mutex_lock(&vol->lock);
	for (unsigned k = 0; k < XVM_MAX_LEAVES; k++) {
		int node = vol->dev[k] == dev ? xvm__tree_leaf(&vol->label.tree, k) : -1;

		if (node >= 0)
			detached = xvm__under_detached(&vol->label.tree, (unsigned)node);
	}
	pthread_mutex_unlock(&vol->lock);
	if (!detached && vol->fence_fn)
		vol->fence_fn(vol, vol->fence_arg);
}

void xvm_set_fence_cb(struct xvm_vol *vol, xvm_fence_fn *fn, void *arg)
{
	vol->fence_fn = fn;
	vol->fence_arg = arg;
	for (unsigned i = 0; i < XVM_MAX_LEAVES; i++)
		if (vol->dev[i])
			blk_set_fence_cb(vol->dev[i], fn ? xvm__on_fenced : NULL, vol);
}

/*
 * Refuse @dev for a new place in a volume if it carries a volume label, except
 * a leftover of volume @uuid (a LUN its tree no longer holds).
 */
static int xvm__check_blank(struct blk_dev *dev, const char *uri, const struct xvm__tree *t,
			    const uint8_t *uuid, char *err, size_t errlen)
{
	struct xvm__label l;
	char why[300];
	int rc = xvm__label_read(dev, &l, why, sizeof(why));

	if (rc == -ENODATA)
		return 0;
	if (rc == 0 && uuid && memcmp(l.uuid, uuid, 16) == 0 && xvm__tree_leaf(t, l.leaf) < 0)
		return 0;
	if (rc == 0)
		snprintf(err, errlen, "LUN %s already belongs to volume %s", uri, xvm__name(&l));
	else
		snprintf(err, errlen, "LUN %s carries a damaged volume label (%s)", uri, why);
	return -EEXIST;
}

int xvm_create(const char *const *uris, size_t n, const struct xvm_create_opts *opts, char *err,
	       size_t errlen)
{
	struct blk_open_opts bo = { .initiator = opts->initiator };
	uint64_t sizes[XVM_MAX_LEAVES];
	struct xvm_vol *vol;
	char def[4 * XVM_MAX_LEAVES + 16];
	const char *layout = opts->layout;
	size_t i;
	int rc;

	if (n == 0 || n > XVM_MAX_LEAVES) {
		snprintf(err, errlen, "a volume takes 1 to %d LUNs (%zu given)", XVM_MAX_LEAVES, n);
		return -EINVAL;
	}
	if (opts->name && strlen(opts->name) > XVM_NAME_MAX) {
		snprintf(err, errlen, "volume name longer than %d characters", XVM_NAME_MAX);
		return -EINVAL;
	}
	if (sodium_init() < 0)
		return -EIO;
	vol = xvm__alloc();
	if (!vol)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		rc = blk_open(uris[i], &bo, &vol->dev[i]);
		if (rc) {
			snprintf(err, errlen, "cannot open %s: %s", uris[i], strerror(-rc));
			goto out_close;
		}
		vol->lun_uri[i] = strdup(uris[i]);
		rc = xvm__check_blank(vol->dev[i], uris[i], &vol->label.tree, NULL, err, errlen);
		if (rc)
			goto out_close;
		if (blk_size(vol->dev[i]) <= XVM_RESERVED) {
			snprintf(err, errlen, "LUN %s is too small (%llu bytes; the label area alone "
				 "takes %u)", uris[i], (unsigned long long)blk_size(vol->dev[i]),
				 XVM_RESERVED);
			rc = -ENOSPC;
			goto out_close;
		}
		sizes[i] = (blk_size(vol->dev[i]) - XVM_RESERVED) & ~(uint64_t)4095;
	}
	if (!layout) {
		snprintf(def, sizeof(def), "concat(");
		for (i = 0; i < n; i++)
			snprintf(def + strlen(def), sizeof(def) - strlen(def), "%s%zu", i ? "," : "", i);
		strcat(def, ")");
		layout = def;
	}
	rc = xvm__layout_parse(layout, n, sizes, opts->stripe_unit ? opts->stripe_unit
				   : XVM_STRIPE_UNIT_DEFAULT, &vol->label.tree, err, errlen);
	if (rc)
		goto out_close;
	randombytes_buf(vol->label.uuid, sizeof(vol->label.uuid));
	snprintf(vol->label.name, sizeof(vol->label.name), "%s", opts->name ? opts->name : "xvm");
	rc = xvm__label_commit(vol, err, errlen);
out_close:
	xvm_close(vol);
	return rc;
}

/* Leaves of subtree @i into @leaves (bitmap). */
static uint64_t xvm__leaves_of(const struct xvm__tree *t, unsigned i)
{
	uint64_t m = t->node[i].kind == XVM__LEAF ? 1ull << t->node[i].leaf : 0;

	for (unsigned c = 0; c < t->node[i].nchild; c++)
		m |= xvm__leaves_of(t, t->node[i].child[c]);
	return m;
}

/*
 * Open @uri as LUN number @leaf of @vol (-1: the lowest free one), not in
 * the tree yet; *@out gets the number.  label_lock held.
 */
static int xvm__new_lun(struct xvm_vol *vol, const char *uri, int leaf, unsigned *out, char *err,
			size_t errlen)
{
	struct blk_open_opts bo = { .initiator = vol->initiator };
	uint32_t k;
	int rc;

	if (leaf >= 0) {
		k = (uint32_t)leaf;
		if (k >= XVM_MAX_LEAVES || vol->dev[k] || xvm__tree_leaf(&vol->label.tree, k) >= 0) {
			snprintf(err, errlen, "LUN number %d of volume %s is taken here", leaf,
				 xvm__name(&vol->label));
			return -EEXIST;
		}
	} else {
		for (k = 0; k < XVM_MAX_LEAVES && (vol->dev[k] || xvm__tree_leaf(&vol->label.tree, k) >= 0);
		     k++)
			;
	}
	if (k == XVM_MAX_LEAVES || vol->label.tree.n + 2 > XVM_MAX_NODES) {
		snprintf(err, errlen, "volume %s has no room for another LUN", xvm__name(&vol->label));
		return -ENOSPC;
	}
	rc = blk_open(uri, &bo, &vol->dev[k]);
	if (rc) {
		snprintf(err, errlen, "cannot open %s: %s", uri, strerror(-rc));
		return rc;
	}
	rc = xvm__check_blank(vol->dev[k], uri, &vol->label.tree, vol->label.uuid, err, errlen);
	if (!rc && blk_size(vol->dev[k]) <= XVM_RESERVED) {
		snprintf(err, errlen, "LUN %s is too small", uri);
		rc = -ENOSPC;
	}
	if (rc) {
		blk_close(vol->dev[k]);
		vol->dev[k] = NULL;
		return rc;
	}
	vol->lun_uri[k] = strdup(uri);
	vol->nlun++;
	*out = k;
	return 0;
}

static void xvm__drop_lun(struct xvm_vol *vol, uint32_t leaf)
{
	blk_close(vol->dev[leaf]);
	vol->dev[leaf] = NULL;
	free(vol->lun_uri[leaf]);
	vol->lun_uri[leaf] = NULL;
	vol->nlun--;
}

/*
 * Make @t the tree (vol->lock held).  Only the nodes that differ are
 * written: I/O in flight reads its own leaves' nodes without the lock
 * (xvm_io.c), and an online change never touches them.
 */
static void xvm__tree_install(struct xvm_vol *vol, const struct xvm__tree *t)
{
#define XVM__SET(f) do { if (d->f != o->f) d->f = o->f; } while (0)
	for (unsigned i = 0; i < t->n; i++) {
		struct xvm__node *d = &vol->label.tree.node[i];
		const struct xvm__node *o = &t->node[i];

		if (i >= vol->label.tree.n) {
			*d = *o;
			continue;
		}
		XVM__SET(kind);
		XVM__SET(nchild);
		XVM__SET(leg_state);
		XVM__SET(parent);
		for (unsigned c = 0; c < XVM_MAX_CHILDREN; c++)
			XVM__SET(child[c]);
		XVM__SET(stripe_unit);
		XVM__SET(leaf);
		XVM__SET(leaf_size);
		XVM__SET(revive_point);
		XVM__SET(size);
	}
#undef XVM__SET
	if (vol->label.tree.n != t->n)
		vol->label.tree.n = t->n;
	atomic_store(&vol->size, t->node[0].size);
}

/* Apply a checked edit of the tree in @t and commit it; on failure nothing changes. */
static int xvm__change(struct xvm_vol *vol, struct xvm__tree *t, char *err, size_t errlen)
{
	struct xvm__tree old = vol->label.tree;
	int rc;

	rc = xvm__tree_check(t, err, errlen);
	if (rc)
		return rc;
	if (t->node[0].size < old.node[0].size) {
		snprintf(err, errlen, "the change would shrink the volume");
		return -EINVAL;
	}
	pthread_mutex_lock(&vol->lock);
	xvm__tree_install(vol, t);
	pthread_mutex_unlock(&vol->lock);
	rc = xvm__label_commit(vol, err, errlen);
	if (rc) {
		pthread_mutex_lock(&vol->lock);
		xvm__tree_install(vol, &old);
		pthread_mutex_unlock(&vol->lock);
	}
	return rc;
}

static int xvm__refuse_legacy(struct xvm_vol *vol, char *err, size_t errlen)
{
	if (!vol->legacy)
		return 0;
	snprintf(err, errlen, "%s is a legacy volume (one LUN without a label): its layout cannot "
		 "change", vol->uri);
	return -EINVAL;
}

int xvm_lun_open(struct xvm_vol *vol, const char *uri, int leaf, uint64_t pr_key, unsigned *out,
		 char *err, size_t errlen)
{
	int rc = xvm__refuse_legacy(vol, err, errlen);

	if (rc)
		return rc;
	pthread_mutex_lock(&vol->label_lock);
	rc = xvm__new_lun(vol, uri, leaf, out, err, errlen);
	if (!rc && pr_key && blk_is_iscsi(vol->dev[*out])) {
		/* As the node's other LUNs (cl_register): its key, the shared reservation. */
		rc = blk_pr_register(vol->dev[*out], pr_key);
		if (!rc)
			rc = blk_pr_reserve(vol->dev[*out]);
		if (rc) {
			snprintf(err, errlen, "cannot register this node's reservation key on %s: %s",
				 uri, strerror(-rc));
			xvm__drop_lun(vol, *out);
		} else if (vol->fence_fn) {
			blk_set_fence_cb(vol->dev[*out], xvm__on_fenced, vol);
		}
	}
	pthread_mutex_unlock(&vol->label_lock);
	return rc;
}

void xvm_lun_close(struct xvm_vol *vol, unsigned leaf)
{
	pthread_mutex_lock(&vol->label_lock);
	if (leaf < XVM_MAX_LEAVES && vol->dev[leaf] && xvm__tree_leaf(&vol->label.tree, leaf) < 0)
		xvm__drop_lun(vol, leaf);
	pthread_mutex_unlock(&vol->label_lock);
}

/* A leaf node for LUN @leaf (open), in leg state @state. */
static void xvm__leaf_tree(const struct xvm_vol *vol, unsigned leaf, unsigned state,
			   struct xvm__tree *sub)
{
	memset(sub, 0, sizeof(*sub));
	sub->n = 1;
	sub->node[0].kind = XVM__LEAF;
	sub->node[0].leaf = leaf;
	sub->node[0].leaf_size = (blk_size(vol->dev[leaf]) - XVM_RESERVED) & ~(uint64_t)4095;
	sub->node[0].leg_state = (uint8_t)state;
}

/* LUN @leaf opened by xvm_lun_open and still outside the tree?  (label_lock held) */
static int xvm__pending_lun(const struct xvm_vol *vol, unsigned leaf, char *err, size_t errlen)
{
	if (leaf < XVM_MAX_LEAVES && vol->dev[leaf] && xvm__tree_leaf(&vol->label.tree, leaf) < 0)
		return 0;
	snprintf(err, errlen, "LUN number %u is not a LUN opened for a change", leaf);
	return -EINVAL;
}

int xvm_attach_lun(struct xvm_vol *vol, unsigned mirror, unsigned leaf, char *err, size_t errlen)
{
	struct xvm__tree t, sub;
	unsigned c;
	int rc;

	pthread_mutex_lock(&vol->label_lock);
	t = vol->label.tree;
	rc = xvm__pending_lun(vol, leaf, err, errlen);
	if (rc)
		goto out_unlock;
	if (mirror >= t.n || t.node[mirror].kind != XVM__MIRROR || t.node[mirror].nchild >= XVM_MAX_LEGS) {
		snprintf(err, errlen, "node %u is not a mirror with room for a leg", mirror);
		rc = -EINVAL;
		goto out_unlock;
	}
	for (c = 0; c < t.node[mirror].nchild; c++)
		if (t.node[t.node[mirror].child[c]].leg_state == XVM_LEG_REVIVING) {
			snprintf(err, errlen, "mirror %u is reviving a leg: finish it first", mirror);
			rc = -EBUSY;
			goto out_unlock;
		}
	xvm__leaf_tree(vol, leaf, XVM_LEG_REVIVING, &sub);
	if (sub.node[0].leaf_size < t.node[mirror].size) {
		snprintf(err, errlen, "LUN %s is smaller than mirror %u's %llu bytes",
			 vol->lun_uri[leaf], mirror, (unsigned long long)t.node[mirror].size);
		rc = -ENOSPC;
		goto out_unlock;
	}
	rc = xvm__tree_add_child(&t, mirror, &sub);
	if (!rc) {
		t.node[mirror].revive_point = 0;
		rc = xvm__change(vol, &t, err, errlen);
	}
out_unlock:
	pthread_mutex_unlock(&vol->label_lock);
	return rc;
}

/* Open @uri and attach it to mirror @mirror (@grow: append it, @online). */
static int xvm__add_uri(struct xvm_vol *vol, int grow, unsigned mirror, const char *uri,
			int online, char *err, size_t errlen)
{
	unsigned leaf;
	int rc = xvm_lun_open(vol, uri, -1, 0, &leaf, err, errlen);

	if (rc)
		return rc;
	rc = grow ? xvm_grow_lun(vol, leaf, online, err, errlen)
		  : xvm_attach_lun(vol, mirror, leaf, err, errlen);
	if (rc)
		xvm_lun_close(vol, leaf);
	return rc;
}

int xvm_attach(struct xvm_vol *vol, unsigned mirror, const char *uri, char *err, size_t errlen)
{
	return xvm__add_uri(vol, 0, mirror, uri, 0, err, errlen);
}

int xvm_detach(struct xvm_vol *vol, unsigned mirror, unsigned leg, char *err, size_t errlen)
{
	static const unsigned char zero[2 * XVM_LABEL_SIZE];
	struct xvm__tree t;
	uint64_t gone;
	unsigned c, n, others = 0;
	int rc = xvm__refuse_legacy(vol, err, errlen);

	if (rc)
		return rc;
	pthread_mutex_lock(&vol->label_lock);
	t = vol->label.tree;
	if (mirror >= t.n || t.node[mirror].kind != XVM__MIRROR || leg >= t.node[mirror].nchild) {
		snprintf(err, errlen, "mirror %u has no leg %u", mirror, leg);
		rc = -EINVAL;
		goto out_unlock;
	}
	n = t.node[mirror].child[leg];
	for (c = 0; c < t.node[mirror].nchild; c++)
		if (c != leg && t.node[t.node[mirror].child[c]].leg_state == XVM_LEG_ACTIVE)
			others++;
	if (!others) {
		snprintf(err, errlen, "leg %u is mirror %u's last active leg", leg, mirror);
		rc = -EBUSY;
		goto out_unlock;
	}
	gone = xvm__leaves_of(&t, n);
	xvm__tree_remove(&t, n);
	rc = xvm__change(vol, &t, err, errlen);
	if (rc)
		goto out_unlock;
	for (c = 0; c < XVM_MAX_LEAVES; c++) {
		if (!(gone >> c & 1) || !vol->dev[c])
			continue;
		(void)blk_write(vol->dev[c], zero, sizeof(zero), 0);
		(void)blk_flush(vol->dev[c]);
		xvm__drop_lun(vol, c);
	}
out_unlock:
	pthread_mutex_unlock(&vol->label_lock);
	return rc;
}

int xvm_detach_begin(struct xvm_vol *vol, unsigned mirror, unsigned leg, char *err, size_t errlen)
{
	struct xvm__tree *t = &vol->label.tree;
	unsigned c, others = 0, reviving = 0;
	int n, rc = 0, write_only = 0;

	pthread_mutex_lock(&vol->label_lock);
	pthread_mutex_lock(&vol->lock);
	n = xvm__leg_node(vol, mirror, leg);
	if (n < 0) {
		snprintf(err, errlen, "mirror %u has no leg %u", mirror, leg);
		rc = -EINVAL;
		goto out_unlock;
	}
	for (c = 0; c < t->node[mirror].nchild; c++) {
		unsigned st = t->node[t->node[mirror].child[c]].leg_state;

		others += c != leg && st == XVM_LEG_ACTIVE;
		reviving += c != leg && st == XVM_LEG_REVIVING;
	}
	if (t->node[n].leg_state == XVM_LEG_DETACHED) {
		snprintf(err, errlen, "leg %u of mirror %u is detached already", leg, mirror);
		rc = -EALREADY;
	} else if (t->node[n].leg_state == XVM_LEG_ACTIVE && !others) {
		snprintf(err, errlen, "leg %u is mirror %u's last active leg", leg, mirror);
		rc = -EBUSY;
	} else if (reviving) {
		snprintf(err, errlen, "mirror %u is reviving another leg: finish or stop the revive "
			 "first", mirror);
		rc = -EBUSY;
	} else if (t->node[n].leg_state == XVM_LEG_ACTIVE) {
		/* Write-only: every node writes it (revive point at the end), none reads it. */
		t->node[n].leg_state = XVM_LEG_REVIVING;
		t->node[mirror].revive_point = t->node[mirror].size;
		write_only = 1;
	}
out_unlock:
	pthread_mutex_unlock(&vol->lock);
	pthread_mutex_unlock(&vol->label_lock);
	if (write_only && (rc = xvm__publish(vol, mirror)))
		snprintf(err, errlen, "mirror %u: the other nodes did not stop reading leg %u (%s)",
			 mirror, leg, strerror(-rc));
	return rc;
}

int xvm_detach_commit(struct xvm_vol *vol, unsigned mirror, unsigned leg, uint64_t *generation,
		      char *err, size_t errlen)
{
	int n, rc = 0;

	pthread_mutex_lock(&vol->label_lock);
	pthread_mutex_lock(&vol->lock);
	n = xvm__leg_node(vol, mirror, leg);
	if (n < 0 || vol->label.tree.node[n].leg_state == XVM_LEG_ACTIVE) {
		snprintf(err, errlen, "leg %u of mirror %u is not ready to detach", leg, mirror);
		rc = -EINVAL;
	} else {
		vol->label.tree.node[n].leg_state = XVM_LEG_DETACHED;
		pthread_cond_broadcast(&vol->cond);
	}
	pthread_mutex_unlock(&vol->lock);
	if (!rc)
		rc = xvm__label_commit(vol, err, errlen);
	pthread_mutex_lock(&vol->lock);
	*generation = vol->label.generation;
	pthread_mutex_unlock(&vol->lock);
	pthread_mutex_unlock(&vol->label_lock);
	return rc;
}

/* Drop this node's reservation key from the LUNs under node @n (vol->lock not held). */
static void xvm__leave_luns(struct xvm_vol *vol, unsigned n, int wipe)
{
	static const unsigned char zero[2 * XVM_LABEL_SIZE];
	uint64_t luns;

	pthread_mutex_lock(&vol->lock);
	luns = xvm__leaves_of(&vol->label.tree, n);
	pthread_mutex_unlock(&vol->lock);
	for (unsigned k = 0; k < XVM_MAX_LEAVES; k++) {
		if (!(luns >> k & 1) || !vol->dev[k])
			continue;
		if (wipe) {
			(void)blk_write(vol->dev[k], zero, sizeof(zero), 0);
			(void)blk_flush(vol->dev[k]);
		}
		if (blk_is_iscsi(vol->dev[k]))
			(void)blk_pr_unregister(vol->dev[k]);
	}
}

int xvm_detach_told(struct xvm_vol *vol, unsigned mirror, unsigned leg, uint64_t generation)
{
	int n;

	pthread_mutex_lock(&vol->lock);
	n = xvm__leg_node(vol, mirror, leg);
	if (n >= 0) {
		vol->label.tree.node[n].leg_state = XVM_LEG_DETACHED;
		if (generation > vol->label.generation)
			vol->label.generation = generation;
		pthread_cond_broadcast(&vol->cond);
	}
	pthread_mutex_unlock(&vol->lock);
	if (n < 0)
		return n;
	xvm__leave_luns(vol, (unsigned)n, 0);
	fprintf(stderr, "cxfs xvm: volume %s: leg %u of mirror %u detached (config server)\n",
		xvm__name(&vol->label), leg, mirror);
	return 0;
}

void xvm_detach_finish(struct xvm_vol *vol, unsigned mirror, unsigned leg)
{
	int n;

	pthread_mutex_lock(&vol->lock);
	n = xvm__leg_node(vol, mirror, leg);
	pthread_mutex_unlock(&vol->lock);
	if (n >= 0)
		xvm__leave_luns(vol, (unsigned)n, 1);
}

int xvm_grow_lun(struct xvm_vol *vol, unsigned leaf, int online, char *err, size_t errlen)
{
	struct xvm__tree t, sub;
	int rc;

	pthread_mutex_lock(&vol->label_lock);
	t = vol->label.tree;
	rc = xvm__pending_lun(vol, leaf, err, errlen);
	if (rc)
		goto out_unlock;
	if (t.node[0].kind != XVM__CONCAT && (t.node[0].kind != XVM__LEAF || online)) {
		snprintf(err, errlen, "volume %s is not a concat: nothing to append to%s",
			 xvm__name(&vol->label), t.node[0].kind == XVM__LEAF
			 ? " (a volume of one LUN grows into a concat only while unmounted: "
			   "cxfs-volume grow)" : "");
		rc = -EINVAL;
		goto out_unlock;
	}
	if (t.node[0].kind == XVM__LEAF) {
		/* One LUN becomes concat(LUN): every node's number changes, so only offline. */
		t.node[t.n] = t.node[0];
		memset(&t.node[0], 0, sizeof(t.node[0]));
		t.node[0].kind = XVM__CONCAT;
		t.node[0].nchild = 1;
		t.node[0].child[0] = (uint8_t)t.n++;
	}
	xvm__leaf_tree(vol, leaf, XVM_LEG_ACTIVE, &sub);
	rc = xvm__tree_add_child(&t, 0, &sub);
	if (!rc)
		rc = xvm__change(vol, &t, err, errlen);
	if (!rc && !vol->pool)
		rc = xvm__pool_start(vol, 4, &vol->pool);
out_unlock:
	pthread_mutex_unlock(&vol->label_lock);
	return rc;
}

int xvm_grow(struct xvm_vol *vol, const char *uri, int online, char *err, size_t errlen)
{
	return xvm__add_uri(vol, 1, 0, uri, online, err, errlen);
}

int xvm_label_image(struct xvm_vol *vol, unsigned char buf[XVM_LABEL_SIZE])
{
	struct xvm__label l;

	if (vol->legacy)
		return -EINVAL;
	pthread_mutex_lock(&vol->lock);
	l = vol->label;
	pthread_mutex_unlock(&vol->lock);
	l.state = XVM__COMMITTED;
	/* As the label of its first LUN (the decoder wants a LUN of the tree). */
	for (unsigned i = 0; i < l.tree.n; i++)
		if (l.tree.node[i].kind == XVM__LEAF) {
			l.leaf = l.tree.node[i].leaf;
			break;
		}
	xvm__label_encode(&l, buf);
	return 0;
}

int xvm_adopt(struct xvm_vol *vol, const unsigned char *img, size_t len, char *err, size_t errlen)
{
	struct xvm__label *l = malloc(sizeof(*l));
	struct xvm__tree t;
	char why[256];
	unsigned i, c;
	int rc;

	if (!l)
		return -ENOMEM;
	if (vol->legacy || len != XVM_LABEL_SIZE) {
		snprintf(err, errlen, "the layout given is not a label of this volume");
		rc = -EINVAL;
		goto out_free;
	}
	rc = xvm__label_decode(img, l, why, sizeof(why));
	if (rc) {
		snprintf(err, errlen, "the layout given does not decode: %s", why);
		goto out_free;
	}
	pthread_mutex_lock(&vol->label_lock);
	t = vol->label.tree;
	rc = -EINVAL;
	if (memcmp(l->uuid, vol->label.uuid, 16) != 0) {
		snprintf(err, errlen, "the layout given is of another volume");
		goto out_unlock;
	}
	/* Only appended nodes and children: every node keeps its number and kind. */
	for (i = 0; i < t.n; i++) {
		const struct xvm__node *o = &t.node[i], *nw = &l->tree.node[i];

		if (i >= l->tree.n || o->kind != nw->kind ||
		    (o->kind == XVM__LEAF && o->leaf != nw->leaf) || nw->nchild < o->nchild ||
		    memcmp(o->child, nw->child, o->nchild * sizeof(o->child[0])) != 0) {
			snprintf(err, errlen, "the layout given does not keep this node's node %u "
				 "(restart this node to assemble the volume again)", i);
			goto out_unlock;
		}
	}
	for (i = t.n; i < l->tree.n; i++)
		if (l->tree.node[i].kind == XVM__LEAF && !vol->dev[l->tree.node[i].leaf]) {
			snprintf(err, errlen, "LUN number %u of the layout given is not open here",
				 l->tree.node[i].leaf);
			goto out_unlock;
		}
	/* The structure from the label; the states and revive points stay this node's. */
	for (i = 0; i < t.n; i++) {
		struct xvm__node *o = &t.node[i];
		const struct xvm__node *nw = &l->tree.node[i];

		if (nw->nchild != o->nchild && o->kind == XVM__MIRROR)
			o->revive_point = nw->revive_point;
		for (c = o->nchild; c < nw->nchild; c++)
			o->child[c] = nw->child[c];
		o->nchild = nw->nchild;
		o->size = nw->size;
	}
	for (i = t.n; i < l->tree.n; i++)
		t.node[i] = l->tree.node[i];
	t.n = l->tree.n;
	rc = xvm__tree_check(&t, err, errlen);
	if (rc)
		goto out_unlock;
	pthread_mutex_lock(&vol->lock);
	xvm__tree_install(vol, &t);
	if (l->generation > vol->label.generation)
		vol->label.generation = l->generation;
	pthread_mutex_unlock(&vol->lock);
	if (!vol->pool)
		rc = xvm__pool_start(vol, 4, &vol->pool);
out_unlock:
	pthread_mutex_unlock(&vol->label_lock);
out_free:
	free(l);
	return rc;
}

/* ---- read-repair: chunks copied ahead for reads ------------------------- */

bool xvm__ahead(const struct xvm_vol *vol, unsigned m, uint64_t off)
{
	uint64_t c = off / XVM__REVIVE_CHUNK;

	return vol->ahead[m] && off < vol->label.tree.node[m].size && (vol->ahead[m][c / 8] >> (c % 8) & 1);
}

/* Set (@on) or clear chunk @c of mirror @m's ahead set (vol->lock held); -ENOMEM. */
static int xvm__ahead_mark(struct xvm_vol *vol, unsigned m, uint64_t c, int on)
{
	uint64_t nchunks = (vol->label.tree.node[m].size + XVM__REVIVE_CHUNK - 1) / XVM__REVIVE_CHUNK;
	uint8_t bit = (uint8_t)(1u << (c % 8));

	if (!vol->ahead[m] && !on)
		return 0;
	if (!vol->ahead[m] && !(vol->ahead[m] = calloc((size_t)(nchunks + 7) / 8, 1)))
		return -ENOMEM;
	if (on && !(vol->ahead[m][c / 8] & bit)) {
		vol->ahead[m][c / 8] |= bit;
		vol->nahead[m]++;
	} else if (!on && (vol->ahead[m][c / 8] & bit)) {
		vol->ahead[m][c / 8] &= (uint8_t)~bit;
		vol->nahead[m]--;
	}
	return 0;
}

/* Make mirror @m's ahead set the @n chunks @c (checked; vol->lock held). */
static int xvm__ahead_set(struct xvm_vol *vol, unsigned m, const uint32_t *c, unsigned n)
{
	free(vol->ahead[m]);
	vol->ahead[m] = NULL;
	vol->nahead[m] = 0;
	for (unsigned k = 0; k < n; k++)
		if (xvm__ahead_mark(vol, m, c[k], 1))
			return -ENOMEM;
	return 0;
}

/* Queue chunk @off of mirror @m for this node's revive, once (vol->lock held). */
static void xvm__hint_queue(struct xvm_vol *vol, unsigned m, uint64_t off)
{
	uint32_t chunk = (uint32_t)(off / XVM__REVIVE_CHUNK);

	for (unsigned k = 0; k < vol->nhint; k++)
		if (vol->hint[k].m == m && vol->hint[k].chunk == chunk)
			return;
	if (vol->nhint < XVM__HINTS) {
		vol->hint[vol->nhint].m = (uint16_t)m;
		vol->hint[vol->nhint++].chunk = chunk;
	}
}

void xvm__hint(struct xvm_vol *vol, unsigned m, uint64_t off)
{
	uint32_t chunk = (uint32_t)(off / XVM__REVIVE_CHUNK);
	int send = 1;

	pthread_mutex_lock(&vol->lock);
	if (vol->revive_here[m]) {
		xvm__hint_queue(vol, m, off);
		send = 0;
	} else {
		/* To the node that revives, once among the last XVM__HINTS sent. */
		for (unsigned k = 0; k < vol->nhint && send; k++)
			send = vol->hint[k].m != m || vol->hint[k].chunk != chunk;
		if (send) {
			vol->hint[vol->hint_next].m = (uint16_t)m;
			vol->hint[vol->hint_next].chunk = chunk;
			vol->hint_next = (vol->hint_next + 1) % XVM__HINTS;
			if (vol->nhint < XVM__HINTS)
				vol->nhint++;
		}
	}
	pthread_mutex_unlock(&vol->lock);
	if (send && vol->cops && vol->cops->read_hint)
		vol->cops->read_hint(vol->cops_arg, vol, m, off - off % XVM__REVIVE_CHUNK);
}

void xvm_read_hint(struct xvm_vol *vol, unsigned m, uint64_t off)
{
	pthread_mutex_lock(&vol->lock);
	if (!vol->legacy && m < vol->label.tree.n && vol->label.tree.node[m].kind == XVM__MIRROR &&
	    off < vol->label.tree.node[m].size && vol->revive_here[m])
		xvm__hint_queue(vol, m, off);
	pthread_mutex_unlock(&vol->lock);
}

/*
 * The next chunk of mirror @m to copy ahead for reads: a hint at least a
 * chunk above @pos, not copied yet, while fewer than XVM_REPAIR_MAX were.
 * Its bit is set now (writes there reach the reviving legs from the copy
 * on).  1 with *@at, or 0.
 */
static int xvm__next_ahead(struct xvm_vol *vol, unsigned m, uint64_t pos, uint64_t *at)
{
	int found = 0;
	unsigned k = 0;

	pthread_mutex_lock(&vol->lock);
	while (k < vol->nhint && !found) {
		uint64_t off = (uint64_t)vol->hint[k].chunk * XVM__REVIVE_CHUNK;

		if (vol->hint[k].m != m) {
			k++;
			continue;
		}
		vol->hint[k] = vol->hint[--vol->nhint];
		if (off >= pos + XVM__REVIVE_CHUNK && off < vol->label.tree.node[m].size &&
		    !xvm__ahead(vol, m, off) && vol->nahead[m] < XVM_REPAIR_MAX &&
		    xvm__ahead_mark(vol, m, off / XVM__REVIVE_CHUNK, 1) == 0) {
			*at = off;
			found = 1;
		}
	}
	pthread_mutex_unlock(&vol->lock);
	return found;
}

/* 1 if a write in flight through mirror @m covers [lo, hi) (vol->lock held). */
static int xvm__overlapping_write(const struct xvm_vol *vol, unsigned m, uint64_t lo, uint64_t hi)
{
	for (const struct xvm__plan *pl = vol->active; pl; pl = pl->next)
		for (size_t k = 0; k < pl->nw; k++)
			if (pl->w[k].mirror == m && pl->w[k].lo < hi && lo < pl->w[k].hi)
				return 1;
	return 0;
}

/* The first leg of mirror @m in state @st, or -1 (vol->lock held). */
static int xvm__leg_in(const struct xvm_vol *vol, unsigned m, unsigned st)
{
	const struct xvm__node *nd = &vol->label.tree.node[m];

	for (unsigned c = 0; c < nd->nchild; c++)
		if (vol->label.tree.node[nd->child[c]].leg_state == st)
			return (int)c;
	return -1;
}

/* Mirror @m's state now (vol->lock held). */
static void xvm__mirror_state(const struct xvm_vol *vol, unsigned m, struct xvm_mirror_state *st)
{
	const struct xvm__node *nd = &vol->label.tree.node[m];

	memset(st, 0, sizeof(*st));
	st->mirror = m;
	st->nlegs = nd->nchild;
	for (unsigned c = 0; c < nd->nchild && c < XVM_MAX_LEGS; c++)
		st->leg_state[c] = vol->label.tree.node[nd->child[c]].leg_state;
	st->revive_point = nd->revive_point;
	st->busy_lo = vol->busy_lo[m];
	st->busy_hi = vol->busy_hi[m];
	st->generation = vol->label.generation;
	for (uint64_t off = 0; vol->ahead[m] && off < nd->size && st->nahead < vol->nahead[m];
	     off += XVM__REVIVE_CHUNK)
		if (xvm__ahead(vol, m, off))
			st->ahead[st->nahead++] = (uint32_t)(off / XVM__REVIVE_CHUNK);
}

int xvm__publish(struct xvm_vol *vol, unsigned m)
{
	struct xvm_mirror_state st;

	if (!vol->cops || !vol->cops->mirror_state)
		return 0;
	pthread_mutex_lock(&vol->lock);
	xvm__mirror_state(vol, m, &st);
	pthread_mutex_unlock(&vol->lock);
	return vol->cops->mirror_state(vol->cops_arg, vol, &st);
}

int xvm__busy_begin(struct xvm_vol *vol, unsigned m, uint64_t lo, uint64_t hi)
{
	int rc;

	pthread_mutex_lock(&vol->copy_mu);
	pthread_mutex_lock(&vol->lock);
	vol->busy_lo[m] = lo;
	vol->busy_hi[m] = hi;
	vol->busy_told[m] = 0;
	while (xvm__overlapping_write(vol, m, lo, hi))
		pthread_cond_wait(&vol->cond, &vol->lock);
	pthread_mutex_unlock(&vol->lock);
	rc = xvm__publish(vol, m);
	if (rc)
		xvm__busy_end(vol, m);
	return rc;
}

void xvm__busy_end(struct xvm_vol *vol, unsigned m)
{
	pthread_mutex_lock(&vol->lock);
	vol->busy_lo[m] = vol->busy_hi[m] = 0;
	pthread_cond_broadcast(&vol->cond);
	pthread_mutex_unlock(&vol->lock);
	pthread_mutex_unlock(&vol->copy_mu);
}

int xvm_mirror_state_apply(struct xvm_vol *vol, const struct xvm_mirror_state *st)
{
	struct xvm__tree *t = &vol->label.tree;
	struct xvm__node *nd;
	unsigned m = st->mirror, c;

	pthread_mutex_lock(&vol->lock);
	if (vol->legacy || m >= t->n || t->node[m].kind != XVM__MIRROR ||
	    st->nlegs != t->node[m].nchild || st->busy_lo > st->busy_hi ||
	    st->busy_hi > t->node[m].size || st->revive_point > t->node[m].size)
		goto invalid;
	nd = &t->node[m];
	for (c = 0; c < nd->nchild; c++)
		if (st->leg_state[c] > XVM_LEG_DETACHED)
			goto invalid;
	if (st->nahead > XVM_REPAIR_MAX)
		goto invalid;
	for (c = 0; c < st->nahead; c++)
		if ((uint64_t)st->ahead[c] * XVM__REVIVE_CHUNK >= nd->size)
			goto invalid;
	if (xvm__ahead_set(vol, m, st->ahead, st->nahead)) {
		pthread_mutex_unlock(&vol->lock);
		return -ENOMEM;
	}
	for (c = 0; c < nd->nchild; c++)
		t->node[nd->child[c]].leg_state = st->leg_state[c];
	nd->revive_point = st->revive_point;
	vol->busy_lo[m] = st->busy_lo;
	vol->busy_hi[m] = st->busy_hi;
	vol->busy_told[m] = st->busy_lo < st->busy_hi;
	if (st->generation > vol->label.generation)
		vol->label.generation = st->generation;
	pthread_cond_broadcast(&vol->cond);
	while (vol->busy_lo[m] < vol->busy_hi[m] &&
	       xvm__overlapping_write(vol, m, vol->busy_lo[m], vol->busy_hi[m]))
		pthread_cond_wait(&vol->cond, &vol->lock);
	pthread_mutex_unlock(&vol->lock);
	return 0;
invalid:
	pthread_mutex_unlock(&vol->lock);
	return -EINVAL;
}

unsigned xvm_reviving(struct xvm_vol *vol)
{
	unsigned n = 0;

	pthread_mutex_lock(&vol->lock);
	for (unsigned i = 1; i < vol->label.tree.n; i++)
		n += vol->label.tree.node[vol->label.tree.node[i].parent].kind == XVM__MIRROR &&
		     vol->label.tree.node[i].leg_state == XVM_LEG_REVIVING;
	pthread_mutex_unlock(&vol->lock);
	return n;
}

void xvm_mirror_unbusy(struct xvm_vol *vol)
{
	pthread_mutex_lock(&vol->lock);
	for (unsigned m = 0; m < XVM_MAX_NODES; m++)
		if (vol->busy_told[m]) {
			vol->busy_lo[m] = vol->busy_hi[m] = 0;
			vol->busy_told[m] = 0;
		}
	pthread_cond_broadcast(&vol->cond);
	pthread_mutex_unlock(&vol->lock);
}

/*
 * Copy [lo, lo + n) of mirror @m from an active leg to its reviving legs,
 * the range held busy on every node (with @buf, a chunk).  @in_order: the
 * chunk at the revive point, which moves past it; otherwise a chunk copied
 * ahead for reads.  *@dst gets the first reviving leg.  0 copied, 1 copy it
 * again (its source leg went out), 2 no reviving leg left, or -errno with
 * @err.
 */
static int xvm__copy_chunk(struct xvm_vol *vol, unsigned m, uint64_t lo, uint64_t n, char *buf,
			   int in_order, int *dst, char *err, size_t errlen)
{
	const struct xvm__node *nd = &vol->label.tree.node[m];
	struct xvm__plan rd = { .op = XVM__READ, .buf = buf };
	unsigned targets[XVM_MAX_LEGS], nt, c;
	int rc, src;

	/* Every node holds the range busy, with its writes there done. */
	rc = xvm__busy_begin(vol, m, lo, lo + n);
	if (rc) {
		snprintf(err, errlen, "mirror %u: the other nodes did not take the revive's state "
			 "(%s)", m, strerror(-rc));
		return rc;
	}
	/* The legs as they are now that the copy runs alone. */
	pthread_mutex_lock(&vol->lock);
	*dst = xvm__leg_in(vol, m, XVM_LEG_REVIVING);
	src = xvm__leg_in(vol, m, XVM_LEG_ACTIVE);
	for (c = 0, nt = 0; c < nd->nchild; c++)
		if (vol->label.tree.node[nd->child[c]].leg_state == XVM_LEG_REVIVING)
			targets[nt++] = nd->child[c];
	pthread_mutex_unlock(&vol->lock);
	if (*dst < 0 || src < 0) {
		/* Every reviving leg went out again, or no leg is left to copy from. */
		xvm__busy_end(vol, m);
		if (src < 0 && *dst >= 0) {
			snprintf(err, errlen, "mirror %u: no active leg left to copy from", m);
			return -EIO;
		}
		return 2;
	}
	rc = xvm__run(vol, nd->child[src], lo, n, &rd);
	xvm__plan_free(&rd);
	for (c = 0; !rc && c < nt; c++) {
		struct xvm__plan wr = { .op = XVM__WRITE, .buf = buf };

		rc = xvm__run(vol, targets[c], lo, n, &wr);
		xvm__plan_free(&wr);
	}
	pthread_mutex_lock(&vol->lock);
	if (!rc && in_order)
		vol->label.tree.node[m].revive_point = lo + n;
	src = xvm__leg_in(vol, m, XVM_LEG_ACTIVE);
	pthread_mutex_unlock(&vol->lock);
	xvm__busy_end(vol, m);
	if (rc && src >= 0)
		return 1;   /* the source leg went out: copy the chunk again from another */
	if (rc) {
		snprintf(err, errlen, "mirror %u: no active leg left to copy from", m);
		return rc;
	}
	return 0;
}

/*
 * Copy mirror @m's active data to its reviving legs, chunk by chunk from
 * the revive point; a chunk above it that a read met is copied next, ahead
 * of order, and skipped when the revive point reaches it.
 */
static int xvm__revive_mirror(struct xvm_vol *vol, unsigned m, xvm_progress_fn *progress,
			      void *arg, char *err, size_t errlen)
{
	const struct xvm__node *nd = &vol->label.tree.node[m];
	uint64_t total = nd->size, pos = 0, n, at;
	char *buf = malloc(XVM__REVIVE_CHUNK);
	int rc = 0, dst = 0, ahead, skip;

	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&vol->lock);
	vol->revive_here[m] = 1;
	vol->nhint = 0;
	pthread_mutex_unlock(&vol->lock);
	while (pos < total) {
		ahead = xvm__next_ahead(vol, m, pos, &at);
		if (ahead) {
			n = total - at < XVM__REVIVE_CHUNK ? total - at : XVM__REVIVE_CHUNK;
			rc = xvm__copy_chunk(vol, m, at, n, buf, 0, &dst, err, errlen);
			pthread_mutex_lock(&vol->lock);
			if (rc)   /* not copied: the chunk is copied in order */
				(void)xvm__ahead_mark(vol, m, at / XVM__REVIVE_CHUNK, 0);
			pthread_mutex_unlock(&vol->lock);
			if (rc == 0)
				atomic_fetch_add(&vol->read_repairs, 1);
			if (rc == 0 || rc == 1)
				continue;
			if (rc == 2)
				rc = 0;
			break;
		}
		n = total - pos < XVM__REVIVE_CHUNK ? total - pos : XVM__REVIVE_CHUNK;
		pthread_mutex_lock(&vol->lock);
		skip = xvm__ahead(vol, m, pos);
		if (skip)
			vol->label.tree.node[m].revive_point = pos + n;
		pthread_mutex_unlock(&vol->lock);
		rc = skip ? 0 : xvm__copy_chunk(vol, m, pos, n, buf, 1, &dst, err, errlen);
		if (rc == 1)
			continue;
		if (rc) {
			if (rc == 2)
				rc = 0;
			break;
		}
		pos += n;
		if (progress && progress(arg, m, (unsigned)(dst < 0 ? 0 : dst), pos, total)) {
			rc = -EINTR;
			snprintf(err, errlen, "revive of mirror %u stopped at %llu of %llu bytes", m,
				 (unsigned long long)pos, (unsigned long long)total);
			break;
		}
	}
	free(buf);
	/*
	 * The copies ahead end with the revive: a revive started later copies
	 * everything from the revive point (nodes that restart meanwhile know
	 * no ahead set).
	 */
	pthread_mutex_lock(&vol->lock);
	vol->revive_here[m] = 0;
	vol->nhint = 0;
	(void)xvm__ahead_set(vol, m, NULL, 0);
	pthread_mutex_unlock(&vol->lock);
	/* Where it stopped, nothing busy (best effort after a failure: the error is told). */
	if (xvm__publish(vol, m) && !rc) {
		snprintf(err, errlen, "mirror %u: the other nodes did not take the revive's end", m);
		rc = -EIO;
	}
	return rc;
}

int xvm_revive(struct xvm_vol *vol, xvm_progress_fn *progress, void *arg, char *err, size_t errlen)
{
	struct xvm__tree *t = &vol->label.tree;
	unsigned i, d, c, k, nmir, revived = 0, mir[XVM_MAX_NODES], depth[XVM_MAX_NODES];
	int rc = 0, changed = 0;
	uint64_t have = 0;
	char probe[4096];

	if (vol->legacy)
		return 0;
	if (vol->read_only) {
		snprintf(err, errlen, "the volume is open read-only");
		return -EROFS;
	}
	/* The LUNs that answer a read now. */
	for (c = 0; c < XVM_MAX_LEAVES; c++)
		if (vol->dev[c] && blk_read(vol->dev[c], probe, sizeof(probe), 0) == 0)
			have |= 1ull << c;
	pthread_mutex_lock(&vol->label_lock);
	pthread_mutex_lock(&vol->lock);
	for (i = 1; i < t->n; i++) {
		uint64_t need = xvm__leaves_of(t, i);

		if (t->node[t->node[i].parent].kind != XVM__MIRROR || t->node[i].leg_state != XVM_LEG_OUT)
			continue;
		if ((need & have) != need)
			continue;
		t->node[i].leg_state = XVM_LEG_REVIVING;
		t->node[t->node[i].parent].revive_point = 0;
		changed = 1;
	}
	pthread_mutex_unlock(&vol->lock);
	if (changed)
		rc = xvm__label_commit(vol, err, errlen);
	pthread_mutex_unlock(&vol->label_lock);
	/* The mirrors and their depths (an online change may append to the tree meanwhile). */
	pthread_mutex_lock(&vol->lock);
	for (i = 0, nmir = 0; i < t->n; i++)
		if (t->node[i].kind == XVM__MIRROR) {
			mir[nmir] = i;
			depth[nmir++] = xvm__tree_depth(t, i);
		}
	pthread_mutex_unlock(&vol->lock);
	/* The other nodes write reviving legs below their revive points from now on. */
	for (k = 0; k < nmir && changed && !rc; k++)
		if ((rc = xvm__publish(vol, mir[k])))
			snprintf(err, errlen, "mirror %u: the other nodes did not take its reviving "
				 "legs (%s)", mir[k], strerror(-rc));
	/* Outer mirrors first: an inner mirror's active leg must hold the bytes before it is copied. */
	for (d = 0; d < XVM_MAX_NODES && !rc; d++) {
		for (k = 0; k < nmir && !rc; k++) {
			if (depth[k] != d)
				continue;
			i = mir[k];
			pthread_mutex_lock(&vol->lock);
			c = xvm__leg_in(vol, i, XVM_LEG_REVIVING) >= 0;
			pthread_mutex_unlock(&vol->lock);
			if (!c)
				continue;
			rc = xvm__revive_mirror(vol, i, progress, arg, err, errlen);
			if (rc)
				break;
			pthread_mutex_lock(&vol->label_lock);
			pthread_mutex_lock(&vol->lock);
			for (c = 0; c < t->node[i].nchild; c++) {
				if (t->node[t->node[i].child[c]].leg_state == XVM_LEG_REVIVING) {
					t->node[t->node[i].child[c]].leg_state = XVM_LEG_ACTIVE;
					revived++;
				}
			}
			t->node[i].revive_point = 0;
			pthread_mutex_unlock(&vol->lock);
			rc = xvm__label_commit(vol, err, errlen);
			pthread_mutex_unlock(&vol->label_lock);
			if (!rc && (rc = xvm__publish(vol, i)))
				snprintf(err, errlen, "mirror %u: the other nodes did not take its "
					 "revived legs (%s)", i, strerror(-rc));
		}
	}
	return rc ? rc : (int)revived;
}

/* Append printf output to a growing string. */
struct xvm__out {
	char *s;                          /* the text, NUL-terminated */
	size_t len, cap;                  /* used (without NUL), allocated */
	int oom;                          /* an allocation failed */
};

__attribute__((format(printf, 2, 3))) static void xvm__put(struct xvm__out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->s ? o->s + o->len : NULL, o->s ? o->cap - o->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->oom = 1;
			return;
		}
		if (o->s && o->len + (size_t)n < o->cap) {
			o->len += (size_t)n;
			return;
		}
		size_t cap = (o->cap + (size_t)n + 1) * 2;
		char *s = realloc(o->s, cap);

		if (!s) {
			o->oom = 1;
			return;
		}
		o->s = s;
		o->cap = cap;
	}
}

/* JSON string escaping for URIs and names (quotes, backslashes, control characters). */
static void xvm__put_str(struct xvm__out *o, const char *s)
{
	xvm__put(o, "\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			xvm__put(o, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			xvm__put(o, "\\u%04x", *s);
		else
			xvm__put(o, "%c", *s);
	}
	xvm__put(o, "\"");
}

static void xvm__show_node(const struct xvm_vol *vol, unsigned i, unsigned depth, int json,
			   struct xvm__out *o)
{
	static const char *const kinds[] = { "", "lun", "concat", "stripe", "mirror" };
	const struct xvm__tree *t = &vol->label.tree;
	const struct xvm__node *nd = &t->node[i];
	int leg = i != 0 && t->node[nd->parent].kind == XVM__MIRROR;
	unsigned c;

	if (json) {
		xvm__put(o, "{\"id\":%u,\"kind\":\"%s\",\"size\":%llu", i, kinds[nd->kind],
			 (unsigned long long)nd->size);
		if (leg)
			xvm__put(o, ",\"leg\":%u,\"state\":\"%s\"", xvm__leg_index(t, i),
				 xvm__leg_name[nd->leg_state]);
		if (nd->kind == XVM__STRIPE)
			xvm__put(o, ",\"stripe_unit\":%u", nd->stripe_unit);
		if (nd->kind == XVM__MIRROR)
			xvm__put(o, ",\"revive_point\":%llu,\"ahead\":%u",
				 (unsigned long long)nd->revive_point, vol->nahead[i]);
		if (nd->kind == XVM__LEAF) {
			xvm__put(o, ",\"lun\":%u,\"uri\":", nd->leaf);
			xvm__put_str(o, vol->lun_uri[nd->leaf] ? vol->lun_uri[nd->leaf] : "");
			xvm__put(o, ",\"present\":%s", vol->dev[nd->leaf] ? "true" : "false");
		}
		xvm__put(o, ",\"children\":[");
		for (c = 0; c < nd->nchild; c++) {
			if (c)
				xvm__put(o, ",");
			xvm__show_node(vol, nd->child[c], depth + 1, json, o);
		}
		xvm__put(o, "]}");
		return;
	}
	xvm__put(o, "%*s", (int)(2 * depth + 2), "");
	if (leg)
		xvm__put(o, "leg %u %s: ", xvm__leg_index(t, i), xvm__leg_name[nd->leg_state]);
	if (nd->kind == XVM__LEAF)
		xvm__put(o, "lun %u %s %llu bytes%s\n", nd->leaf,
			 vol->lun_uri[nd->leaf] ? vol->lun_uri[nd->leaf] : "?",
			 (unsigned long long)nd->size, vol->dev[nd->leaf] ? "" : " (missing)");
	else if (nd->kind == XVM__STRIPE)
		xvm__put(o, "stripe #%u unit %u, %llu bytes\n", i, nd->stripe_unit,
			 (unsigned long long)nd->size);
	else if (nd->kind == XVM__MIRROR && xvm__leg_in(vol, i, XVM_LEG_REVIVING) >= 0)
		xvm__put(o, "mirror #%u %llu bytes, revived %llu of %llu (%.1f%%)\n", i,
			 (unsigned long long)nd->size, (unsigned long long)nd->revive_point,
			 (unsigned long long)nd->size, 100.0 * (double)nd->revive_point / (double)nd->size);
	else
		xvm__put(o, "%s #%u %llu bytes\n", kinds[nd->kind], i, (unsigned long long)nd->size);
	for (c = 0; c < nd->nchild; c++)
		xvm__show_node(vol, nd->child[c], depth + 1, json, o);
}

char *xvm_show(struct xvm_vol *vol, int json)
{
	struct xvm__out o = { 0 };
	char uuid[33], layout[1024];
	struct xvm__drl_fig fig;
	int drl;

	if (vol->legacy) {
		if (json) {
			xvm__put(&o, "{\"legacy\":true,\"size\":%llu,\"uri\":",
				 (unsigned long long)xvm_size(vol));
			xvm__put_str(&o, vol->uri);
			xvm__put(&o, "}\n");
		} else {
			xvm__put(&o, "%s: legacy volume (one LUN without a label), %llu bytes\n",
				 vol->uri, (unsigned long long)xvm_size(vol));
		}
		goto out;
	}
	drl = xvm__drl_figures(vol, &fig) == 0;
	pthread_mutex_lock(&vol->lock);
	xvm_uuid(vol, uuid);
	xvm__layout_format(&vol->label.tree, 0, layout, sizeof(layout));
	if (json) {
		xvm__put(&o, "{\"legacy\":false,\"name\":");
		xvm__put_str(&o, vol->label.name);
		xvm__put(&o, ",\"uuid\":\"%s\",\"generation\":%llu,\"size\":%llu,\"layout\":\"%s\","
			 "\"tree\":", uuid, (unsigned long long)vol->label.generation,
			 (unsigned long long)xvm_size(vol), layout);
		xvm__show_node(vol, 0, 0, 1, &o);
		if (drl)
			xvm__put(&o, ",\"drl\":{\"slot\":%u,\"region\":%llu,\"regions\":%u,"
				 "\"dirty\":%u,\"inherited\":%u}", fig.slot,
				 (unsigned long long)fig.region, fig.regions, fig.dirty, fig.inherited);
		xvm__put(&o, ",\"read_repairs\":%llu}\n",
			 (unsigned long long)atomic_load(&vol->read_repairs));
	} else {
		xvm__put(&o, "volume %s uuid %s generation %llu, %llu bytes\n  layout %s\n",
			 vol->label.name, uuid, (unsigned long long)vol->label.generation,
			 (unsigned long long)xvm_size(vol), layout);
		xvm__show_node(vol, 0, 0, 0, &o);
		if (drl)
			xvm__put(&o, "  dirty-region log: slot %u, %u regions of %llu KiB, %u dirty "
				 "(%u from the last run, to resync)\n", fig.slot, fig.regions,
				 (unsigned long long)(fig.region >> 10), fig.dirty,
				 fig.inherited);
		if (atomic_load(&vol->read_repairs))
			xvm__put(&o, "  read-repair: %llu chunks copied ahead of the revive for reads "
				 "(revives run here)\n",
				 (unsigned long long)atomic_load(&vol->read_repairs));
	}
	pthread_mutex_unlock(&vol->lock);
out:
	if (o.oom) {
		free(o.s);
		return NULL;
	}
	return o.s;
}
