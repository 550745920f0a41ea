/*
 * cl_client.c - the client behavior (dcvn) of a node that is not the
 * metadata server: it caches what its tokens cover and forwards the rest to
 * the MDS, and it reads and writes file data on the volume itself.
 *
 * Caches (struct cl_inode), each valid while the tokens under it are held:
 *   - attributes: ATTR, TIMES and SIZE at READ (or better); a node writing
 *     holds SIZE and TIMES at WRITE and keeps size and mtime itself, giving
 *     them back when they are recalled (the MDS keeps the largest times);
 *   - directory entries, positive and negative: NAME;
 *   - the extent map: EXTENT.
 * A token's recall runs its duty here (cl_client_duty): publish written
 * extents, drop caches, mark the kernel's pages stale.  Operations that
 * change metadata are forwarded (cl_wire.c); a namespace operation lends
 * the directory tokens it holds so the MDS does not recall them from the
 * asker, which updates its own cached names.  In a directory whose tokens
 * it holds at WRITE, a node creates regular files, and unlinks and renames
 * the ones it made, itself (async_create, own_pin) and queues the changes
 * for the MDS (cl_async.c; docs/ARCHITECTURE.md, "Asynchronous creates").
 * In a directory other nodes change at the same time it does the same under
 * the directory's tokens at SHARED_WRITE and the name buckets of the names
 * it changes (shared_pin; "Shared directories"), whose names it reads once
 * and then answers lookups of itself.
 *
 * Data: reads map file blocks through the cached extent map and read the
 * volume (holes and unwritten extents read as zeros).  Writes into blocks
 * that hold data go straight to the volume; a hole is first allocated by
 * the MDS as unwritten extents (ALLOC, with the extent token lent, and more
 * blocks preallocated ahead each time, doubling up to 64 MiB, or 256 MiB
 * for a node alone on the file: cl_ioexcl.c), written whole
 * (zero-padded), and marked written here; the MDS learns of it (WRITE_DONE)
 * when the writer's page-dirty token is recalled, at fsync and at close.
 * Until then no other node can read the range (it would need page-dirty at
 * READ), so nobody ever reads another file's old blocks or misses data.
 *
 * The data cache (cl_pcache.h; docs/ARCHITECTURE.md, "Data cache"): under
 * page-dirty at WRITE a buffered write only allocates its holes (ALLOC, as
 * above) and puts its bytes into dirty pages that record their volume
 * blocks; the flusher thread, fsync, close, a truncate and the recall of
 * page-dirty (its FLUSH duty) write them back in merged runs (wb_flush),
 * with no call to the MDS, and mark the blocks written for WRITE_DONE.
 * Under page-clean reads keep what they read from the volume (and read
 * ahead for a sequential reader); the DISCARD duty drops it.  O_DIRECT
 * writes and reads write the file's dirty pages back first and bypass the
 * cache.
 *
 * Lock order: see cl_i.h.
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "xvm/xvm.h"
#include "cluster/cl_wire.h"
#include "common/cx_intr.h"
#include "common/cx_rlock.h"

#define B(t) (1u << (t))
/* A change this node does not make itself (async_create, own_pin): the server makes it. */
#define ASK_SERVER 1
/* What a node that creates and unlinks in a directory itself holds of it at WRITE. */
#define DIR_WRITE_TOKS (B(TOK_NAME) | B(TOK_ATTR) | B(TOK_TIMES) | B(TOK_SIZE))

/* ---- helpers ------------------------------------------------------------- */

static int early(int rc)
{
	/* A wait cut short (relocation, recovery): the caller retries. */
	return rc == -TOK_EEARLY || rc == -RPC_EEARLY ? -EAGAIN : rc;
}

static void set_at(struct tok_set *s, unsigned mask, enum tok_level level)
{
	tok_set_clear(s);
	for (int t = 0; t < TOK_NTOKENS; t++)
		if (mask & B(t))
			tok_set_add(s, (enum tok_id)t, level);
}

static void set_of(struct tok_set *s, unsigned mask)
{
	set_at(s, mask, TOK_READ);
}


static struct timespec now_ts(void)
{
	int64_t ns = meta_now_ns();

	return (struct timespec){ (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
}

/* Take in @a, a fresh copy from the MDS, keeping what this node keeps itself. */
static void attr_merge(struct cl_inode *ci, const struct vn_attr *a)
{
	struct vn_attr keep = ci->attr;

	ci->attr = *a;
	if (ci->size_dirty) {
		ci->attr.size = keep.size;
		ci->attr.blocks = keep.blocks > a->blocks ? keep.blocks : a->blocks;
	}
	if (ci->times_dirty) {
		ci->attr.mtime = keep.mtime;
		ci->attr.ctime = keep.ctime;
	}
}

/* ---- the token client's transport ---------------------------------------- */

static int r_obtain(void *arg, uint64_t ino, const struct tok_set *want,
		    const struct tok_state *in, struct tok_set *got, struct tok_state *out)
{
	struct cl_ctx *cx = arg;
	Cxfs__TokenAcquire m = CXFS__TOKEN_ACQUIRE__INIT;
	Cxfs__TokenState buf[TOK_NTOKENS], *ptrs[TOK_NTOKENS];
	Cxfs__Timespec at, mt, ct;
	ProtobufCMessage *rep = NULL;
	Cxfs__MsgType rt;
	int rc;

	m.ino = ino;
	m.n_want = clw_toks_to_pb(want, buf, ptrs);
	m.want = ptrs;
	if (in->valid & TOK_ST_TIMES) {
		clw_ts_to_pb(&in->atime, &at);
		clw_ts_to_pb(&in->mtime, &mt);
		clw_ts_to_pb(&in->ctime, &ct);
		m.atime = &at;
		m.mtime = &mt;
		m.ctime = &ct;
	}
	if (in->valid & TOK_ST_SIZE) {
		m.has_size = 1;
		m.size = in->size;
	}
	rc = cl_mds_call(cx, CXFS__MSG_TYPE__TOKEN_ACQUIRE, &m.base, &rt, &rep);
	if (rc)
		return rc == -RPC_EEARLY ? -TOK_EEARLY : rc;
	if (rt == CXFS__MSG_TYPE__ERROR_REPLY) {
		rc = ((Cxfs__ErrorReply *)rep)->err;
		goto out;
	}
	{
		const Cxfs__TokenGrant *g = (const Cxfs__TokenGrant *)rep;

		rc = g->err;
		if (!rc)
			rc = clw_toks_from_pb(g->granted, g->n_granted, got);
		if (rc)
			goto out;
		memset(out, 0, sizeof(*out));
		if (g->has_ioexcl) {
			out->valid |= TOK_ST_IOEXCL;
			out->ioexcl = g->ioexcl;
		}
		if (got->level[TOK_DMAPI])
			cl_dm_granted(cx, ino, g);
		if (g->attr) {
			struct cl_inode *ci = cl_inode_get(cx, ino, true);
			struct tok_set held;
			struct vn_attr a;

			clw_attr_from_pb(g->attr, &a);
			tok_client_cached(cx->tc, ino, &held);
			tok_set_raise(&held, got);
			if (ci) {
				pthread_mutex_lock(&ci->mu);
				attr_merge(ci, &a);
				ci->attr_valid = held.level[TOK_ATTR] && held.level[TOK_TIMES] &&
						 held.level[TOK_SIZE];
				pthread_mutex_unlock(&ci->mu);
				cl_inode_put(cx, ci);
			}
		}
	}
out:
	rpc_msg_free(rep);
	return rc;
}

/*
 * A return whose server went while it was on its way, and this node serves
 * now: the size and times it carried are this node's client state again,
 * which settle puts into the store after the requests are replayed (it
 * waits for such returns: cl_ctx.returns).  Given back to the local token
 * server, they would be lost.  Unless the old server had taken the return:
 * then another node holds the tokens now and knows a newer state
 * (cl_client_return_taken, before or after this).
 */
void cl_client_return_taken(struct cl_ctx *cx, uint64_t ino, const struct tok_set *taken)
{
	uint8_t bits = (taken->level[TOK_SIZE] ? CL_RET_SIZE : 0) |
		       (taken->level[TOK_TIMES] ? CL_RET_TIMES : 0);
	struct cl_inode *ci;

	if (!bits)
		return;
	ci = cl_inode_get(cx, ino, false);
	if (!ci)
		return;
	pthread_mutex_lock(&ci->mu);
	/*
	 * r_give_back cleared them and nothing writes them while the return
	 * is on its way: set, they are keep_state's, which came first.
	 */
	if ((bits & CL_RET_SIZE) && ci->size_dirty) {
		ci->size_dirty = false;
		bits &= (uint8_t)~CL_RET_SIZE;
	}
	if ((bits & CL_RET_TIMES) && ci->times_dirty) {
		ci->times_dirty = false;
		bits &= (uint8_t)~CL_RET_TIMES;
	}
	ci->ret_taken |= bits;
	pthread_mutex_unlock(&ci->mu);
	cl_inode_put(cx, ci);
}

static void keep_state(struct cl_ctx *cx, uint64_t ino, const struct tok_state *st)
{
	struct cl_inode *ci;

	if (!st || !(st->valid & (TOK_ST_SIZE | TOK_ST_TIMES)))
		return;
	ci = cl_inode_get(cx, ino, false);
	if (!ci)
		return;
	pthread_mutex_lock(&ci->mu);
	if ((st->valid & TOK_ST_SIZE) && !ci->size_dirty && !(ci->ret_taken & CL_RET_SIZE)) {
		ci->attr.size = st->size;
		ci->size_dirty = true;
	}
	if ((st->valid & TOK_ST_TIMES) && !ci->times_dirty && !(ci->ret_taken & CL_RET_TIMES)) {
		ci->attr.mtime = st->mtime;
		ci->attr.ctime = st->ctime;
		ci->times_dirty = true;
	}
	pthread_mutex_unlock(&ci->mu);
	cl_inode_put(cx, ci);
}

/*
 * Send return @m to the MDS.  A call, not a notice: the server must have
 * taken the return before this node can ask for the same tokens again
 * (requests are handled on several threads there, so only the reply orders
 * them).  A return the MDS could not take because it was moving goes to
 * the new one (which has the grant); if this node became the MDS, the
 * return is taken here (true).
 */
static bool return_call(struct cl_ctx *cx, uint64_t ino, const struct tok_set *tokens,
			const struct tok_state *st, Cxfs__TokenReturn *m)
{
	/* Never given up by an application's interrupt: the server waits for it. */
	bool armed = cx_intr_hold(), local = false;
	struct cl_ureq u = { 0 };      /* one id across the resends */

	atomic_fetch_add(&cx->returns, 1);
	(void)cl_async_drain_return(cx, ino);   /* the creates these tokens covered first */
	for (;;) {
		ProtobufCMessage *rep = NULL;
		uint32_t elected = atomic_load(&cx->elected);
		Cxfs__MsgType rt = 0;
		struct rpc_chan *ch;
		bool again;
		int rc;

		if (cx->is_server) {
			keep_state(cx, ino, st);
			cl_local_tok_ops.give_back(cx, ino, tokens, st);
			local = true;
			break;
		}
		/*
		 * A recovery's new server takes it once its grants are rebuilt,
		 * before this node is told that it serves (its settle may wait
		 * for this very return).
		 */
		ch = elected ? cl_node_chan(cx, elected) : cl_mds_chan(cx);
		if (!ch && elected) {
			usleep(5 * 1000);   /* not reached yet: again, or the server it names */
			continue;
		}
		if (!ch)
			break;
		rc = cl_unsafe_call(cx, &u, ch, CXFS__MSG_TYPE__TOKEN_RETURN, &m->base,
				    CL_CALL_TIMEOUT_MS, &rt, &rep);
		rpc_chan_put(ch);
		again = cl_mds_moved(rc, rt, rep);
		if (rc == 0)
			rpc_msg_free(rep);
		if (!again)
			break;
		usleep(5 * 1000);
	}
	cl_ureq_end(cx, &u);
	atomic_fetch_sub(&cx->returns, 1);
	cx_intr_resume(armed);
	return local;
}

static void r_give_back(void *arg, uint64_t ino, const struct tok_set *tokens,
			const struct tok_state *st)
{
	struct cl_ctx *cx = arg;
	Cxfs__TokenReturn m = CXFS__TOKEN_RETURN__INIT;
	Cxfs__TokenState buf[TOK_NTOKENS], *ptrs[TOK_NTOKENS];
	Cxfs__Timespec at, mt, ct;
	struct cl_inode *ci;

	m.ino = ino;
	m.n_held = clw_toks_to_pb(tokens, buf, ptrs);
	m.held = ptrs;
	if (st && (st->valid & TOK_ST_TIMES)) {
		clw_ts_to_pb(&st->atime, &at);
		clw_ts_to_pb(&st->mtime, &mt);
		clw_ts_to_pb(&st->ctime, &ct);
		m.atime = &at;
		m.mtime = &mt;
		m.ctime = &ct;
	}
	if (st && (st->valid & TOK_ST_SIZE)) {
		m.has_size = 1;
		m.size = st->size;
	}
	ci = cl_inode_get(cx, ino, false);
	if (ci) {
		pthread_mutex_lock(&ci->mu);
		if (tokens->level[TOK_SIZE])
			ci->size_dirty = false;
		if (tokens->level[TOK_TIMES])
			ci->times_dirty = false;
		pthread_mutex_unlock(&ci->mu);
		cl_inode_put(cx, ci);
	}
	/* Taken by this node's own token server: its give-back saw to the ranges. */
	if (!return_call(cx, ino, tokens, st, &m))
		cl_range_returned(cx, ino, tokens);
}

/* ---- extent map ---------------------------------------------------------- */

static int map_reserve(struct meta_map **v, size_t *cap, size_t need)
{
	struct meta_map *n;
	size_t c = *cap ? *cap : 16;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	n = realloc(*v, c * sizeof(*n));
	if (!n)
		return -ENOMEM;
	*v = n;
	*cap = c;
	return 0;
}

/* The first run of the map that ends after file block @fblk (nmap if none). */
static size_t map_index(const struct cl_inode *ci, uint64_t fblk)
{
	size_t lo = 0, hi = ci->nmap;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ci->map[mid].fblk + ci->map[mid].nblk <= fblk)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Runs @i and @i + 1 become one if they continue each other. */
static void map_join(struct cl_inode *ci, size_t i)
{
	struct meta_map *a = &ci->map[i], *b = a + 1;

	if (i + 1 >= ci->nmap || a->state != b->state || a->fblk + a->nblk != b->fblk ||
	    (a->state != META_MAP_HOLE && a->pblk + a->nblk != b->pblk))
		return;
	a->nblk += b->nblk;
	memmove(b, b + 1, (ci->nmap - i - 2) * sizeof(*b));
	ci->nmap--;
}

/*
 * File blocks [@fblk, @fblk + @nblk) are at @pblk in @state: the runs
 * they overlap are cut, in place (a write-back marks runs written one by
 * one, so the map of a file written at random grows long).
 */
static int map_set(struct cl_inode *ci, uint64_t fblk, uint64_t nblk, uint64_t pblk,
		   enum meta_map_state state)
{
	uint64_t end = fblk + nblk;
	size_t i = map_index(ci, fblk), j = i, k = 0;
	struct meta_map ins[3];
	int rc;

	while (j < ci->nmap && ci->map[j].fblk < end)
		j++;
	if (i < j && ci->map[i].fblk < fblk) {
		ins[k] = ci->map[i];
		ins[k++].nblk = fblk - ci->map[i].fblk;
	}
	ins[k++] = (struct meta_map){ fblk, nblk, pblk, state };
	if (i < j && ci->map[j - 1].fblk + ci->map[j - 1].nblk > end) {
		struct meta_map t = ci->map[j - 1];

		t.nblk = t.fblk + t.nblk - end;
		if (t.state != META_MAP_HOLE)
			t.pblk += end - t.fblk;
		t.fblk = end;
		ins[k++] = t;
	}
	rc = map_reserve(&ci->map, &ci->map_cap, ci->nmap - (j - i) + k);
	if (rc)
		return rc;
	memmove(&ci->map[i + k], &ci->map[j], (ci->nmap - j) * sizeof(*ci->map));
	memcpy(&ci->map[i], ins, k * sizeof(*ins));
	ci->nmap = ci->nmap - (j - i) + k;
	for (size_t at = i + k; at-- > (i ? i - 1 : 0);)
		map_join(ci, at);
	if (end > ci->map_end)
		ci->map_end = end;
	return 0;
}

/* Runs written here but not yet published are data, whatever the MDS says. */
static int map_overlay_pending(struct cl_inode *ci)
{
	for (size_t i = 0; i < ci->npend; i++) {
		int rc = map_set(ci, ci->pend[i].fblk, ci->pend[i].nblk, ci->pend[i].pblk,
				 META_MAP_DATA);

		if (rc)
			return rc;
	}
	return 0;
}

static int pend_add(struct cl_inode *ci, uint64_t fblk, uint64_t nblk, uint64_t pblk)
{
	struct meta_map *last = ci->npend ? &ci->pend[ci->npend - 1] : NULL;
	int rc;

	if (last && last->fblk + last->nblk == fblk && last->pblk + last->nblk == pblk) {
		last->nblk += nblk;
		return 0;
	}
	rc = map_reserve(&ci->pend, &ci->pend_cap, ci->npend + 1);
	if (rc)
		return rc;
	ci->pend[ci->npend++] = (struct meta_map){ fblk, nblk, pblk, META_MAP_DATA };
	return 0;
}

static void runs_from_pb(Cxfs__Extent *const *v, size_t n, struct meta_map *out)
{
	for (size_t i = 0; i < n; i++) {
		out[i].fblk = v[i]->file_block;
		out[i].nblk = v[i]->count;
		out[i].pblk = v[i]->volume_block;
		out[i].state = v[i]->state == CXFS__EXTENT_STATE__EXTENT_DATA ? META_MAP_DATA :
			       v[i]->state == CXFS__EXTENT_STATE__EXTENT_UNWRITTEN ?
								     META_MAP_UNWRITTEN : META_MAP_HOLE;
	}
}

/*
 * Runs of inode @ino the MDS sent, asked from file block @from: in order,
 * without gaps, and no I/O outside the data region (refused with -EIO and
 * a log line; see cl_runs_check).
 */
static int runs_check(const struct cl_ctx *cx, uint64_t ino, const struct meta_map *r, size_t n,
		      uint64_t from)
{
	int rc = cl_runs_check(r, n, from, cx->data_blocks);

	if (rc)
		fprintf(stderr, "cxfsd: refused the extent map of inode %llu from the metadata server: %s\n",
			(unsigned long long)ino, rc == -EIO ? "blocks outside the data region"
							    : "runs out of order");
	return rc;
}

/*
 * The cached map must cover file blocks [0, @end): fetch what is missing.
 * Called with EXTENT and SIZE held and ci->mu held.
 */
static int map_cover(struct cl_ctx *cx, struct cl_inode *ci, uint64_t end)
{
	uint64_t epoch = atomic_load(&cx->map_epoch);
	bool fetched = false;

	if (!ci->map_valid || ci->map_epoch != epoch) {
		ci->map_valid = false;
		ci->map_epoch = epoch;
		ci->nmap = 0;
		ci->map_end = 0;
	}
	while (!ci->map_valid || ci->map_end < end) {
		Cxfs__ExtentMapReq m = CXFS__EXTENT_MAP_REQ__INIT;
		const Cxfs__ExtentMapReply *r;
		ProtobufCMessage *rep = NULL;
		struct meta_map *runs;
		Cxfs__MsgType rt;
		int rc;

		m.ino = ci->ino;
		m.file_block = ci->map_end;
		/* Ahead too: a growing file would otherwise ask at every write. */
		m.count = (end > ci->map_end ? end - ci->map_end : 0) + CL_MAP_AHEAD;
		atomic_fetch_add(&cx->stats.map_fetches, 1);
		rc = cl_mds_call(cx, CXFS__MSG_TYPE__EXTENT_MAP_REQ, &m.base, &rt, &rep);
		if (rc)
			return early(rc);
		if (rt == CXFS__MSG_TYPE__ERROR_REPLY) {
			rc = ((Cxfs__ErrorReply *)rep)->err;
			rpc_msg_free(rep);
			return rc;
		}
		r = (const Cxfs__ExtentMapReply *)rep;
		if (r->err || r->n_extents == 0) {
			rc = r->err ? r->err : -EPROTO;
			rpc_msg_free(rep);
			return rc;
		}
		runs = calloc(r->n_extents, sizeof(*runs));
		if (!runs) {
			rpc_msg_free(rep);
			return -ENOMEM;
		}
		runs_from_pb(r->extents, r->n_extents, runs);
		rc = runs_check(cx, ci->ino, runs, r->n_extents, ci->map_end);
		if (!rc && !ci->size_dirty && r->has_size)
			ci->attr.size = r->size;
		for (size_t i = 0; !rc && i < r->n_extents; i++)
			rc = map_set(ci, runs[i].fblk, runs[i].nblk, runs[i].pblk, runs[i].state);
		free(runs);
		rpc_msg_free(rep);
		if (rc)
			return rc;
		ci->map_valid = true;
		if (!ci->size_dirty)
			ci->size_valid = true;
		fetched = true;
	}
	/* The runs written here since are in the map already, not in what came. */
	return fetched ? map_overlay_pending(ci) : 0;
}

/* The run holding file block @fblk (the map covers it). */
static const struct meta_map *map_find(const struct cl_inode *ci, uint64_t fblk)
{
	size_t i = map_index(ci, fblk);

	return i < ci->nmap && ci->map[i].fblk <= fblk ? &ci->map[i] : NULL;
}

static int wb_flush(struct cl_ctx *cx, struct cl_inode *ci);
static int wb_sync(struct cl_ctx *cx, struct cl_inode *ci);
static void pages_drop(struct cl_ctx *cx, struct cl_inode *ci, uint64_t from, uint64_t to);

/* ---- the role changes (relocation) ----------------------------------------- */

/*
 * Forget what @ci caches as a client (ci->mu held); its tokens say nothing
 * now.  The names stay: they are what the kernel was told, and the NAME
 * duty must still find them to make the kernel forget them (a negative
 * entry kept there would make an O_CREAT open fail with EEXIST).
 */
static void forget_caches(struct cl_inode *ci)
{
	ci->attr_valid = ci->size_valid = false;
	ci->map_valid = false;
	ci->nmap = 0;
	ci->map_end = 0;
	ci->dm_valid = false;
	ci->names_whole = ci->whole_tried = false;
	cl_xattrs_free(ci);
}

void cl_client_to_store(struct cl_ctx *cx, bool server)
{
	size_t nb = sizeof(cx->ihash) / sizeof(cx->ihash[0]);

	for (size_t b = 0; b < nb; b++) {
		struct cl_inode *list[64];
		size_t n = 0;

		pthread_mutex_lock(&cx->imu);
		for (struct cl_inode *ci = cx->ihash[b]; ci && n < 64; ci = ci->hnext) {
			ci->refs++;
			list[n++] = ci;
		}
		pthread_mutex_unlock(&cx->imu);
		for (size_t i = 0; i < n; i++) {
			struct cl_inode *ci = list[i];

			/* Cached dirty data goes to the volume first: its runs join the others. */
			(void)wb_flush(cx, ci);
			pages_drop(cx, ci, 0, UINT64_MAX);
			pthread_mutex_lock(&ci->flush_mu);
			pthread_mutex_lock(&ci->mu);
			/* What a client kept for the MDS goes into the store it now serves. */
			for (size_t k = 0; server && k < ci->npend; k++)
				(void)meta_map_write(cx->st, ci->ino, ci->pend[k].fblk, ci->pend[k].nblk,
						     ci->pend[k].pblk, 0);
			if (server && (ci->size_dirty || ci->times_dirty)) {
				struct tok_set held;

				tok_client_cached(cx->tc, ci->ino, &held);
				(void)meta_apply_state(cx->st, ci->ino, NULL,
						       ci->times_dirty ? &ci->attr.mtime : NULL,
						       ci->times_dirty ? &ci->attr.mtime : NULL,
						       ci->size_dirty ? &ci->attr.size : NULL,
						       held.level[TOK_SIZE] == TOK_SWRITE);
			}
			if (server) {
				free(ci->pend);
				ci->pend = NULL;
				ci->npend = ci->pend_cap = 0;
				ci->size_dirty = ci->times_dirty = ci->unpublished = false;
				ci->ret_taken = 0;
			}
			forget_caches(ci);
			pthread_mutex_unlock(&ci->mu);
			pthread_mutex_unlock(&ci->flush_mu);
			cl_inode_put(cx, ci);
		}
	}
}

/* ---- publishing written extents -------------------------------------------- */

static int publish(struct cl_ctx *cx, struct cl_inode *ci)
{
	Cxfs__WriteDone m = CXFS__WRITE_DONE__INIT;
	Cxfs__Extent *ext = NULL, **ptrs = NULL;
	Cxfs__Timespec mt;
	struct meta_map *pend;
	ProtobufCMessage *rep = NULL;
	Cxfs__MsgType rt;
	size_t n;
	int rc = 0;

	pthread_mutex_lock(&ci->flush_mu);
	pthread_mutex_lock(&ci->mu);
	n = ci->npend;
	pend = ci->pend;
	/* The size and time stamps this node keeps go too, once per change. */
	if (n == 0 && !(ci->unpublished && (ci->size_dirty || ci->times_dirty))) {
		pthread_mutex_unlock(&ci->mu);
		goto out;
	}
	ci->pend = NULL;
	ci->npend = ci->pend_cap = 0;
	ci->unpublished = false;
	m.ino = ci->ino;
	if (ci->size_dirty) {
		m.has_size = 1;
		m.size = ci->attr.size;
	}
	if (ci->times_dirty) {
		clw_ts_to_pb(&ci->attr.mtime, &mt);
		m.mtime = &mt;
	}
	pthread_mutex_unlock(&ci->mu);
	ext = calloc(n ? n : 1, sizeof(*ext));
	ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (!ext || !ptrs) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		cxfs__extent__init(&ext[i]);
		ext[i].file_block = pend[i].fblk;
		ext[i].volume_block = pend[i].pblk;
		ext[i].count = pend[i].nblk;
		ext[i].state = CXFS__EXTENT_STATE__EXTENT_DATA;
		ptrs[i] = &ext[i];
	}
	m.n_written = n;
	m.written = ptrs;
	atomic_fetch_add(&cx->stats.write_dones, 1);
	rc = cl_mds_call(cx, CXFS__MSG_TYPE__WRITE_DONE, &m.base, &rt, &rep);
	if (!rc)
		rc = rt == CXFS__MSG_TYPE__ERROR_REPLY ? ((Cxfs__ErrorReply *)rep)->err :
							 ((Cxfs__AttrReply *)rep)->err;
	rpc_msg_free(rep);
	if (rc)
		goto fail;
	free(pend);
	goto out;
fail:
	/* Keep the runs: they are published on the next try (or here, if we become the server). */
	if (rc != -VN_EMIGRATING)
		fprintf(stderr, "cxfsd: publishing writes of inode %llu: %s\n",
			(unsigned long long)ci->ino, strerror(-early(rc)));
	pthread_mutex_lock(&ci->mu);
	ci->unpublished = true;
	for (size_t i = 0; i < n; i++)
		(void)pend_add(ci, pend[i].fblk, pend[i].nblk, pend[i].pblk);
	pthread_mutex_unlock(&ci->mu);
	free(pend);
out:
	pthread_mutex_unlock(&ci->flush_mu);
	free(ext);
	free(ptrs);
	return early(rc);
}

/*
 * The FLUSH duty: write @ino's cached dirty data back, publish its runs,
 * and drop its pages.  FLUSH is page-clean's only duty at WRITE, so a node
 * that read the file since it last wrote (page-dirty at READ, whose return
 * has no duty) loses its clean pages here.
 */
static int flush_ino(struct cl_ctx *cx, uint64_t ino)
{
	struct cl_inode *ci = cl_inode_get(cx, ino, false);
	int rc;

	if (!ci)
		return 0;
	(void)wb_flush(cx, ci);   /* an error stays for fsync and close (wb_err) */
	rc = publish(cx, ci);
	pages_drop(cx, ci, 0, UINT64_MAX);
	cl_inode_put(cx, ci);
	return rc;
}

/*
 * The DISCARD duty: the pages go.  It follows FLUSH when page-dirty goes
 * back, and a page-clean recall finds nothing dirty; should anything be,
 * it is written back (not published) rather than lost.
 */
static void discard_ino(struct cl_ctx *cx, uint64_t ino)
{
	struct cl_inode *ci = cl_inode_get(cx, ino, false);

	if (!ci)
		return;
	(void)wb_flush(cx, ci);
	pages_drop(cx, ci, 0, UINT64_MAX);
	cl_inode_put(cx, ci);
}

void cl_client_drop_data(struct cl_ctx *cx, uint64_t ino)
{
	struct cl_inode *ci = cl_inode_get(cx, ino, false);

	if (!ci)
		return;
	pages_drop(cx, ci, 0, UINT64_MAX);
	cl_inode_put(cx, ci);
}

/* ---- duties -------------------------------------------------------------- */

/*
 * A byte range's duties (cl_range.c), all at DISCARD, which every return
 * of a range has (a range's page tokens go together: page-dirty at WRITE
 * or SHARED_WRITE, or page-clean at READ, carry it; FLUSH comes with it at
 * the writing levels, and doing both would write back, scan the pages and
 * invalidate the kernel's twice): its cached data is written back (the
 * file's, all at once: one write-back at a time) and its clean pages go.
 * Pages dirty again after the write-back were written under the file's
 * exclusive tokens (nobody takes a range that is being given back), which
 * cover them: they stay.  Its runs need no publishing: a shared write
 * converts no extent.
 */
static int range_duty(struct cl_ctx *cx, uint64_t ino, uint64_t off, uint64_t end,
		      enum tok_duty duty)
{
	struct cl_inode *ci;

	if (duty != TOK_DUTY_DISCARD)
		return 0;
	ci = cl_inode_get(cx, ino, false);
	if (!ci)
		return 0;
	(void)wb_flush(cx, ci);   /* an error stays for fsync and close (wb_err) */
	pthread_mutex_lock(&ci->mu);
	if (ci->pcf)
		cl_pc_drop_clean(cx->pc, ci->pcf, off / cx->bs, (end + cx->bs - 1) / cx->bs);
	pthread_mutex_unlock(&ci->mu);
	cl_inode_put(cx, ci);
	cl_pages_stale(cx, ino);
	return 0;
}

int cl_client_duty(struct cl_ctx *cx, uint64_t ino, enum tok_duty duty, struct tok_state *st)
{
	struct cl_inode *ci;
	uint64_t file, off, end;
	int rc = 0;

	if (cl_range_of(ino, &file, &off, &end)) {
		/* Only a directory's bucket carries NAME (cl_bucket_key). */
		if (duty == TOK_DUTY_INVAL_NAMES)
			cl_names_drop_bucket(cx, file, ino);
		else
			rc = range_duty(cx, file, off, end, duty);
		return rc;
	}
	switch (duty) {
	case TOK_DUTY_FLUSH:
		rc = flush_ino(cx, ino);
		cl_pages_stale(cx, ino);
		return rc;
	case TOK_DUTY_DISCARD:
		discard_ino(cx, ino);
		cl_pages_stale(cx, ino);
		return 0;
	case TOK_DUTY_INVAL_NAMES:
		cl_names_drop(cx, ino);
		break;
	case TOK_DUTY_INVAL_ATTR:
		/* The daemon's copy goes below, the kernel's here. */
		cl_attr_stale(cx, ino);
		break;
	default:
		break;
	}
	ci = cl_inode_get(cx, ino, false);
	if (!ci)
		return duty == TOK_DUTY_TIMES || duty == TOK_DUTY_SIZE ? -ENODATA : 0;
	pthread_mutex_lock(&ci->mu);
	switch (duty) {
	case TOK_DUTY_TIMES:
		if (ci->times_dirty || ci->attr_valid) {
			st->atime = ci->attr.atime;
			st->mtime = ci->attr.mtime;
			st->ctime = ci->attr.ctime;
		} else {
			rc = -ENODATA;
		}
		break;
	case TOK_DUTY_SIZE:
		if (ci->size_dirty || ci->size_valid) {
			st->size = ci->attr.size;
			st->blocks = ci->attr.blocks;
		} else {
			rc = -ENODATA;
		}
		break;
	case TOK_DUTY_INVAL_NAMES:
		ci->lend_lost = false;   /* NAME went back: the next copy is the server's anew */
		break;
	case TOK_DUTY_INVAL_ATTR:
		ci->attr_valid = false;
		ci->size_valid = false;
		cl_xattrs_free(ci);
		break;
	case TOK_DUTY_INVAL_EXTENTS:
		ci->map_valid = false;
		ci->nmap = 0;
		ci->map_end = 0;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&ci->mu);
	cl_inode_put(cx, ci);
	return rc;
}

static int r_duty(void *arg, uint64_t ino, enum tok_duty duty, struct tok_state *st)
{
	return cl_client_duty(arg, ino, duty, st);
}

const struct tok_client_ops cl_remote_tok_ops = {
	.obtain = r_obtain,
	.give_back = r_give_back,
	.duty = r_duty,
};

/* ---- the behavior ---------------------------------------------------------- */

struct cl_cbhv {
	struct vn_bhv bhv;
	struct cl_ctx *cx;
	struct cl_inode *ci;
};

static struct cl_cbhv *cb_of(struct vn_bhv *b)
{
	return (struct cl_cbhv *)b;
}

/*
 * Acquire (or, with @lend_gen, lend: cl_lend) @want on the vnode's inode;
 * the first acquire also takes the EXIST token, whose reference the node
 * keeps while it has the vnode (an ordinary one: a lent reference holds
 * nothing against a recall).
 */
static int c_take(struct cl_cbhv *cb, const struct tok_set *want, uint64_t *lend_gen)
{
	struct cl_inode *ci = cb->ci;
	struct tok_set w = *want, ex;
	bool first;
	int rc;

	tok_set_clear(&ex);
	tok_set_add(&ex, TOK_EXIST, TOK_READ);
	pthread_mutex_lock(&ci->mu);
	first = !ci->has_exist;
	pthread_mutex_unlock(&ci->mu);
	if (first && lend_gen) {
		rc = c_take(cb, &ex, NULL);
		if (rc)
			return rc;
		first = false;
	}
	if (first)
		tok_set_add(&w, TOK_EXIST, TOK_READ);
	rc = lend_gen ? cl_lend(cb->cx, ci->ino, &w, lend_gen) : cl_acquire(cb->cx, ci->ino, &w);
	if (rc)
		return early(rc);
	if (first) {
		pthread_mutex_lock(&ci->mu);
		first = !ci->has_exist;
		ci->has_exist = true;
		pthread_mutex_unlock(&ci->mu);
		if (!first)
			tok_client_release(cb->cx->tc, ci->ino, &ex);
	}
	return 0;
}

static int c_acquire(struct cl_cbhv *cb, const struct tok_set *want)
{
	return c_take(cb, want, NULL);
}

static void c_release_toks(struct cl_cbhv *cb, const struct tok_set *want)
{
	tok_client_release(cb->cx->tc, cb->ci->ino, want);
}

/*
 * A change to which this node lent its tokens of directory @ino was given
 * up (interrupted, or no server) after it may have reached the MDS, which
 * may still make it without recalling them: forget the directory's names
 * and attributes, here and in the kernel, and cache nothing under those
 * tokens until NAME has gone back once (lend_lost; a request for it then
 * queues behind the change at the server): docs/ARCHITECTURE.md,
 * "Interrupts".
 */
static void dir_forget(struct cl_ctx *cx, uint64_t ino)
{
	struct cl_inode *ci = cl_inode_get(cx, ino, false);

	if (ci) {
		pthread_mutex_lock(&ci->mu);
		ci->attr_valid = ci->size_valid = false;
		ci->lend_lost = true;
		pthread_mutex_unlock(&ci->mu);
		cl_inode_put(cx, ci);
	}
	cl_names_drop(cx, ino);
	cl_attr_stale(cx, ino);
}

/* One forwarded operation's calls (clw_call_fn): its id across the resends. */
struct fwd_call {
	struct cl_ctx *cx;
	struct cl_ureq u;
};

static int fwd_call(void *arg, struct rpc_chan *ch, Cxfs__MsgType type, ProtobufCMessage *msg,
		    unsigned timeout_ms, Cxfs__MsgType *reply_type, ProtobufCMessage **reply)
{
	struct fwd_call *fc = arg;

	return cl_unsafe_call(fc->cx, &fc->u, ch, type, msg, timeout_ms, reply_type, reply);
}

/* Forward @c to the MDS. */
static int forward(struct cl_ctx *cx, uint64_t ino, struct vn_call *c, const struct tok_set *lent)
{
	struct fwd_call fc = { .cx = cx };
	struct vn_call f = *c;
	int rc;

	f.lent = lent;
	atomic_fetch_add(&cx->stats.forwards, 1);
	/* This node's own changes reach the server first. */
	rc = cl_async_drain(cx);
	if (rc)
		return rc;
	/* Interrupted before it was sent (a frozen channel): send it again. */
	for (;;) {
		struct rpc_chan *ch;

		rc = cl_gate_wait(cx);
		ch = rc ? NULL : cl_mds_chan(cx);
		if (!ch) {
			/*
			 * Not sent this time: nothing to settle (the list holds fc.u no
			 * longer).  This node becomes the server: the call restarts on
			 * it, which knows whether an earlier attempt was applied.
			 */
			if (rc == -VN_EMIGRATING && fc.u.reqid)
				c->prior_reqid = fc.u.reqid;
			cl_ureq_end(cx, &fc.u);
			return rc ? rc : -ENOTCONN;
		}
		rc = clw_forward(ch, ino, &f, CL_CALL_TIMEOUT_MS, fwd_call, &fc);
		rpc_chan_put(ch);
		if (rc != -RPC_EEARLY && rc != -ECONNRESET && rc != -ENOTCONN && rc != -ECONNREFUSED)
			break;
		rc = cl_mds_pause(cx);
		if (rc)
			break;
	}
	cl_ureq_end(cx, &fc.u);
	if (rc == -EINTR || rc == -EIO) {
		/* Given up by the application's request (cx_intr.h): nothing it answered is kept. */
		if (lent) {
			dir_forget(cx, ino);
			if (c->op == VN_OP_RENAME && c->u.rename.newdir != ino)
				dir_forget(cx, c->u.rename.newdir);
		}
		return rc;
	}
	c->u = f.u;
	c->dir_attr_set = f.dir_attr_set;
	return early(rc);
}

/*
 * Other nodes keep changing this directory and this node holds none of the
 * tokens @absent (B() bits) on it: work without the directory's tokens
 * (forward lookups and
 * changes, lend nothing, cache nothing, let the kernel keep nothing) rather
 * than take tokens the next change elsewhere recalls at once; then changes
 * from several nodes recall nothing from each other.  The directory is
 * cached again once NAME rests (cl_names_busy).  Also while a change that
 * lent its tokens was given up (lend_lost, see dir_forget), whatever is held:
 * the first change from here, lending nothing, recalls NAME and ends it.
 */
static bool dir_uncached(struct cl_cbhv *cb, unsigned absent)
{
	struct tok_set held;
	bool busy, lost;

	pthread_mutex_lock(&cb->ci->mu);
	busy = cl_names_busy(cb->ci);
	lost = cb->ci->lend_lost;
	pthread_mutex_unlock(&cb->ci->mu);
	if (lost)
		return true;
	if (!busy)
		return false;
	tok_client_cached(cb->cx->tc, cb->ci->ino, &held);
	for (int t = 0; t < TOK_NTOKENS; t++)
		if ((absent & B(t)) && held.level[t] != TOK_NONE)
			return false;
	return true;
}

/*
 * Shared directories (docs/ARCHITECTURE.md, "Shared directories"): nodes
 * that change names in one directory at once each hold its NAME, TIMES and
 * SIZE at SHARED_WRITE (its ATTR at READ) and, below them, the buckets of
 * the names they change at WRITE (of those they look up, at READ): a node
 * knows every name of a bucket it holds (read once, bucket_names) and makes
 * its changes there itself, as a lone node does (async_create), and the
 * directory's times it shows are its own view of them, merged by the
 * server when they go back.  Is @cb's directory shared here now?
 */
static bool names_shared(struct cl_cbhv *cb)
{
	struct tok_set held;

	tok_client_cached(cb->cx->tc, cb->ci->ino, &held);
	return held.level[TOK_NAME] == TOK_SWRITE;
}

/*
 * A busy directory's attributes @a, fresh from the server: once its ctime,
 * which every change of a name moves, stays the same for CL_QUIET_NS of
 * this node's clock, nobody changes it any more and it rests now, without
 * waiting out the rest of CL_WHOLE_REST_NS (cl_names_busy): a node that
 * reads a directory right after other nodes filled it caches it again
 * after a tenth of a second.  Only a guess that costs speed if wrong: a
 * change after it recalls NAME as any change does.
 */
static void busy_seen(struct cl_inode *ci, const struct vn_attr *a)
{
	int64_t now = meta_now_ns();

	pthread_mutex_lock(&ci->mu);
	if (!ci->quiet_since_ns || a->ctime.tv_sec != ci->quiet_ctime.tv_sec ||
	    a->ctime.tv_nsec != ci->quiet_ctime.tv_nsec) {
		ci->quiet_ctime = a->ctime;
		ci->quiet_since_ns = now;
	} else if (now - ci->quiet_since_ns >= CL_QUIET_NS) {
		ci->names_dropped_ns = now - CL_WHOLE_REST_NS - 1;
		ci->quiet_since_ns = 0;
	}
	pthread_mutex_unlock(&ci->mu);
}

static int c_getattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	struct cl_ctx *cx = cb->cx;
	struct cl_inode *ci = cb->ci;
	struct tok_set want;
	struct vn_attr a;
	int rc;

	cl_pages_check(cx, ci->ino);
	set_of(&want, B(TOK_ATTR) | B(TOK_TIMES) | B(TOK_SIZE));
	if (names_shared(cb)) {
		cl_shared_dir_set(&want, false);   /* this node's own view of its times */
	} else if (c->op == VN_OP_GETATTR && dir_uncached(cb, B(TOK_NAME) | B(TOK_ATTR))) {
		/* A busy directory's attributes change with every name: ask, keep nothing. */
		c->uncached = 1;
		atomic_fetch_add(&cx->stats.attr_misses, 1);
		rc = forward(cx, ci->ino, c, NULL);
		if (rc == 0)
			busy_seen(ci, c->u.getattr.attr);
		return rc;
	}
	rc = c_acquire(cb, &want);
	if (rc)
		return rc;
	pthread_mutex_lock(&ci->mu);
	if (ci->attr_valid) {
		a = ci->attr;
		pthread_mutex_unlock(&ci->mu);
		atomic_fetch_add(&cx->stats.attr_hits, 1);
	} else {
		struct vn_call g = { .op = VN_OP_GETATTR, .cred = c->cred, .u.getattr = { &a } };

		pthread_mutex_unlock(&ci->mu);
		atomic_fetch_add(&cx->stats.attr_misses, 1);
		rc = forward(cx, ci->ino, &g, &want);
		if (!rc) {
			pthread_mutex_lock(&ci->mu);
			attr_merge(ci, &a);
			ci->attr_valid = ci->size_valid = true;
			a = ci->attr;
			pthread_mutex_unlock(&ci->mu);
		}
	}
	c_release_toks(cb, &want);
	if (!rc) {
		if (c->op == VN_OP_GETATTR)
			*c->u.getattr.attr = a;
		else if (c->op == VN_OP_OPEN && S_ISDIR(a.mode) && (c->u.open.flags & O_ACCMODE) != O_RDONLY)
			rc = -EISDIR;
	}
	return rc;
}

/*
 * The attributes of @ino, which lookup @c found: its vnode goes to the
 * caller with them (vn_call.made), so that it lives, with what it caches,
 * until the kernel's entry holds it, rather than being torn down and built
 * again for the reply.
 */
static int child_attr(struct cl_ctx *cx, uint64_t ino, struct vn_call *c)
{
	struct vn_call g = { .op = VN_OP_GETATTR, .cred = c->cred, .node = cx->self_id,
			     .u.getattr = { c->u.lookup.attr } };
	struct vnode *v;
	int rc = vn_get(cx->vt, ino, &v);

	if (rc)
		return rc;
	rc = vn_call_nested(v, &g);
	if (rc)
		vn_put(v, 1);
	else
		c->made = v;
	return rc;
}

static bool cacheable(const char *name)
{
	return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* The names of a directory read whole, in a list of struct cl_dent. */
struct cl_whole {
	struct cl_dent *list;
	size_t n;
	bool too_many;
};

static int whole_fill(void *ctx, const char *name, const struct vn_attr *a, int64_t next_off)
{
	struct cl_whole *w = ctx;
	size_t len = strlen(name);
	struct cl_dent *d;

	(void)next_off;
	if (!cacheable(name))
		return 0;
	if (w->n >= CL_DIR_WHOLE_MAX || !(d = malloc(sizeof(*d) + len + 1))) {
		w->too_many = true;
		return 1;
	}
	d->ino = a->ino;
	memcpy(d->name, name, len + 1);
	d->next = w->list;
	w->list = d;
	w->n++;
	return 0;
}

/*
 * Read a directory whole at its first miss (with NAME held, which any
 * change there recalls): from then on a name it lacks is known absent, and
 * a create costs one message instead of two.  Large directories are left to
 * lookups one by one.
 */
static void read_whole(struct cl_cbhv *cb, const struct vn_cred *cred)
{
	struct cl_inode *ci = cb->ci;
	struct cl_whole w = { NULL, 0, false };
	struct vn_call r = { .op = VN_OP_READDIR, .cred = cred,
			     .u.readdir = { 0, 0, whole_fill, &w } };
	int rc = forward(cb->cx, ci->ino, &r, NULL);

	pthread_mutex_lock(&ci->mu);
	ci->whole_tried = true;
	if (!rc && !w.too_many) {
		for (struct cl_dent *d = w.list; d; d = d->next)
			if (!cl_dent_find(ci, d->name) || cl_dent_find(ci, d->name)->ino == CL_DENT_UNKNOWN)
				cl_dent_set(ci, d->name, d->ino);
		ci->names_whole = true;
	}
	pthread_mutex_unlock(&ci->mu);
	while (w.list) {
		struct cl_dent *d = w.list;

		w.list = d->next;
		free(d);
	}
}

/*
 * Learn every name of bucket @key of @cb's directory, which this node holds
 * (and NAME at SWRITE or better) with references: asked of the server,
 * which recalls the bucket from a node that changes names there (their
 * changes come first).  Held with references across the call, as a range
 * is (docs/ARCHITECTURE.md, "Shared directories": the server's read lends
 * them, so they stand in no one's way).  0 or -errno (ASK_SERVER: too many).
 */
static int bucket_names(struct cl_cbhv *cb, uint64_t key, const struct vn_cred *cred)
{
	struct cl_inode *ci = cb->ci;
	struct cl_whole w = { NULL, 0, false };
	/* Filtered here too: a server older than buckets answers with every name. */
	struct cl_bucket_filter f = { whole_fill, &w, ci->ino, key };
	struct vn_call r = { .op = VN_OP_READDIR, .cred = cred,
			     .u.readdir = { 0, 0, cl_bucket_fill, &f, key } };
	int rc = forward(cb->cx, ci->ino, &r, NULL);

	if (!rc && w.too_many)
		rc = ASK_SERVER;
	pthread_mutex_lock(&ci->mu);
	if (!rc) {
		for (struct cl_dent *d = w.list; d; d = d->next)
			cl_dent_set(ci, d->name, d->ino);
		rc = cl_bucket_note(ci, key);
	}
	pthread_mutex_unlock(&ci->mu);
	while (w.list) {
		struct cl_dent *d = w.list;

		w.list = d->next;
		free(d);
	}
	return rc;
}

/* What a shared directory's change or lookup holds: the directory's tokens and its buckets'. */
struct shared_pin {
	struct tok_set dir, bkt;
	uint64_t keys[2];
	int nkeys;
};

static void shared_unpin(struct cl_cbhv *cb, struct shared_pin *p)
{
	for (int i = 0; i < p->nkeys; i++)
		tok_client_release(cb->cx->tc, p->keys[i], &p->bkt);
	c_release_toks(cb, &p->dir);
}

/*
 * Hold a shared directory's tokens (@change: to change names, else to look
 * one up) and the buckets of @names at WRITE (@change) or READ, in
 * ascending order of keys after the directory's, each bucket's names
 * known; a change also needs the directory's attributes (a removed
 * directory must refuse).  0, ASK_SERVER (nothing held), or -errno.
 */
static int shared_pin(struct cl_cbhv *cb, const char *const *names, int n, bool change,
		      const struct vn_cred *cred, struct shared_pin *p)
{
	struct cl_ctx *cx = cb->cx;
	struct cl_inode *ci = cb->ci;
	bool filled, valid;
	int rc, held = 0;

	p->nkeys = 0;
	for (int i = 0; i < n; i++) {
		uint64_t k = cl_bucket_key(ci->ino, names[i]);

		if (!k)
			return ASK_SERVER;
		if (p->nkeys && p->keys[0] == k)
			continue;
		p->keys[p->nkeys++] = k;
	}
	if (p->nkeys == 2 && p->keys[1] < p->keys[0]) {
		uint64_t k = p->keys[0];

		p->keys[0] = p->keys[1];
		p->keys[1] = k;
	}
	if (change) {
		cl_shared_dir_set(&p->dir, true);
	} else {
		tok_set_clear(&p->dir);
		tok_set_add(&p->dir, TOK_NAME, TOK_SWRITE);
	}
	tok_set_clear(&p->bkt);
	tok_set_add(&p->bkt, TOK_NAME, change ? TOK_WRITE : TOK_READ);
	rc = c_acquire(cb, &p->dir);
	if (rc)
		return rc;
	for (; held < p->nkeys; held++)
		if ((rc = cl_acquire(cx, p->keys[held], &p->bkt)))
			goto fail;
	for (int i = 0; i < p->nkeys; i++) {
		pthread_mutex_lock(&ci->mu);
		filled = cl_bucket_filled(ci, p->keys[i]);
		pthread_mutex_unlock(&ci->mu);
		if (!filled && (rc = bucket_names(cb, p->keys[i], cred)))
			goto fail;
	}
	if (change) {
		pthread_mutex_lock(&ci->mu);
		valid = ci->attr_valid;
		pthread_mutex_unlock(&ci->mu);
		if (!valid) {
			struct vn_attr a;
			struct vn_call g = { .op = VN_OP_GETATTR, .cred = cred, .u.getattr = { &a } };

			if ((rc = forward(cx, ci->ino, &g, NULL)))
				goto fail;
			pthread_mutex_lock(&ci->mu);
			attr_merge(ci, &a);
			ci->attr_valid = ci->size_valid = true;
			pthread_mutex_unlock(&ci->mu);
		}
	}
	return 0;
fail:
	p->nkeys = held;
	shared_unpin(cb, p);
	return rc;
}

/* Is @name of a shared directory absent, by what this node knows (ci->mu held)? */
static bool shared_absent(struct cl_inode *ci, const char *name)
{
	struct cl_dent *d = cl_dent_find(ci, name);

	return d ? d->ino == 0 : cl_bucket_filled(ci, cl_bucket_key(ci->ino, name));
}

/*
 * A directory's name is always given to the kernel to keep, and forgotten
 * when NAME is recalled, busy or not: the kernel keeps the alias of a
 * directory whatever its time-out, and a directory another node moved must
 * lose its old alias here (the kernel cannot move an alias while it holds
 * the rename lock, and fails with ESTALE).
 */
static void dir_kept(struct cl_ctx *cx, struct cl_inode *ci, struct vn_call *c, const char *name,
		     uint64_t ino)
{
	bool kept = false;

	if (!cacheable(name))
		return;
	pthread_mutex_lock(&ci->mu);
	if (cl_dent_find(ci, name)) {
		cl_dent_tell(ci, name, ino, true);
		kept = true;
	}
	pthread_mutex_unlock(&ci->mu);
	/* NAME went back meanwhile: nothing will tell the kernel to forget it later. */
	if (kept)
		c->uncached = 0;
	else
		cl_names_forget(cx, ci->ino, name, NULL);
}

/*
 * Look @c's name up in a shared directory, by its bucket (held at READ or
 * better, its names known): 0 with *@ino (found), -ENOENT, -errno, or
 * ASK_SERVER (the caller asks the server, as in a busy directory).  The
 * kernel keeps the answer: the bucket's recall makes it forget it.
 */
static int shared_lookup(struct cl_cbhv *cb, struct vn_call *c, uint64_t *ino)
{
	struct cl_inode *ci = cb->ci;
	const char *name = c->u.lookup.name;
	struct shared_pin sp;
	struct cl_dent *d;
	int rc;

	if (!cacheable(name))
		return ASK_SERVER;
	rc = shared_pin(cb, &name, 1, false, c->cred, &sp);
	if (rc)
		return rc;
	pthread_mutex_lock(&ci->mu);
	d = cl_dent_find(ci, name);
	*ino = d ? d->ino : 0;
	if (*ino != CL_DENT_UNKNOWN)
		cl_dent_tell(ci, name, *ino, true);
	pthread_mutex_unlock(&ci->mu);
	shared_unpin(cb, &sp);
	if (*ino == CL_DENT_UNKNOWN)
		return ASK_SERVER;
	atomic_fetch_add(&cb->cx->stats.name_hits, 1);
	c->uncached = 0;
	return *ino ? 0 : -ENOENT;
}

static int c_lookup(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	struct cl_ctx *cx = cb->cx;
	struct cl_inode *ci = cb->ci;
	const char *name = c->u.lookup.name;
	struct tok_set want;
	struct cl_dent *d;
	uint64_t ino = 0;
	bool shared;
	int rc, found = 0;

	if (strlen(name) > META_NAME_MAX)
		return -ENAMETOOLONG;
	shared = names_shared(cb);
	if (shared) {
		rc = shared_lookup(cb, c, &ino);
		if (rc <= 0) {
			if (rc)
				return rc;
			goto found;
		}
	}
	if (shared || dir_uncached(cb, B(TOK_NAME))) {
		struct vn_attr a;
		struct vn_call l = { .op = VN_OP_LOOKUP, .cred = c->cred, .u.lookup = { name, &a } };

		atomic_fetch_add(&cx->stats.name_misses, 1);
		c->uncached = 1;
		rc = forward(cx, ci->ino, &l, NULL);
		if (!rc) {
			/* Only a guess for an unlink's lend (busy_obj_lend), never an answer. */
			pthread_mutex_lock(&ci->mu);
			ci->hint_hash = cl_name_hash(name);
			ci->hint_ino = a.ino;
			pthread_mutex_unlock(&ci->mu);
			rc = child_attr(cx, a.ino, c);
		}
		if (!rc && S_ISDIR(c->u.lookup.attr->mode)) {
			/* No token will tell the kernel to forget this alias: it goes now. */
			cl_names_forget(cx, ci->ino, name, NULL);
			cl_names_settle(cx, a.ino, CL_SETTLE_MS);
		}
		return rc;
	}
	set_of(&want, B(TOK_NAME));
	rc = c_acquire(cb, &want);
	if (rc)
		return rc;
	for (int pass = 0; pass < 2 && !found; pass++) {
		bool read_it;

		pthread_mutex_lock(&ci->mu);
		d = cacheable(name) ? cl_dent_find(ci, name) : NULL;
		if (d && d->ino != CL_DENT_UNKNOWN) {
			ino = d->ino;
			found = 1;
		} else if (!d && ci->names_whole && cacheable(name)) {
			cl_dent_set(ci, name, 0);
			found = 1;
		}
		if (found) {
			c->uncached = cl_names_busy(ci);
			cl_dent_tell(ci, name, ino, !c->uncached);   /* as absent if 0 */
		}
		/* Not while other nodes keep changing it: each change would cost a whole read. */
		read_it = !found && !ci->whole_tried && cacheable(name) &&
			  meta_now_ns() - ci->names_dropped_ns > CL_WHOLE_REST_NS;
		pthread_mutex_unlock(&ci->mu);
		if (!read_it)
			break;
		read_whole(cb, c->cred);
	}
	if (found) {
		atomic_fetch_add(&cx->stats.name_hits, 1);
		rc = ino ? 0 : -ENOENT;
	} else {
		struct vn_attr a;
		struct vn_call l = { .op = VN_OP_LOOKUP, .cred = c->cred,
				     .u.lookup = { name, &a } };

		atomic_fetch_add(&cx->stats.name_misses, 1);
		rc = forward(cx, ci->ino, &l, &want);
		pthread_mutex_lock(&ci->mu);
		c->uncached = cl_names_busy(ci);
		if ((rc == 0 || rc == -ENOENT) && cacheable(name))
			cl_dent_tell(ci, name, rc ? 0 : a.ino, !c->uncached);
		pthread_mutex_unlock(&ci->mu);
		ino = rc ? 0 : a.ino;
	}
	c_release_toks(cb, &want);
	if (rc)
		return rc;
found:
	rc = child_attr(cx, ino, c);
	if (!rc && S_ISDIR(c->u.lookup.attr->mode)) {
		if (c->uncached)
			dir_kept(cx, ci, c, name, ino);
		cl_names_settle(cx, ino, CL_SETTLE_MS);
	}
	return rc;
}

/* Lend the directory's tokens to a namespace change; 0 or -errno. */
static int dir_lend(struct cl_cbhv *cb, struct tok_set *lent, uint64_t *gen)
{
	set_of(lent, B(TOK_NAME) | B(TOK_ATTR) | B(TOK_TIMES) | B(TOK_SIZE));
	return c_take(cb, lent, gen);
}

/*
 * The change the directory's tokens were lent to answered: true if they
 * stayed here all along (held now as ordinary references: update the
 * cached names, then c_release_toks).  If they went back meanwhile, the
 * kernel must not keep what the answer tells it about @name and @name2.
 */
static bool dir_unlend(struct cl_cbhv *cb, const struct tok_set *lent, uint64_t gen, int rc,
		       const char *name, const char *name2)
{
	if (tok_client_unlend(cb->cx->tc, cb->ci->ino, lent, gen))
		return true;
	if (rc == 0)
		cl_names_forget(cb->cx, cb->ci->ino, name, name2);
	return false;
}

/*
 * After a change in the directory: its attributes changed at the MDS, which
 * sent them along (@dattr, or NULL) while this node's lent tokens cover them.
 */
static void dir_changed(struct cl_inode *ci, const char *gone, const char *name, uint64_t ino,
			const struct vn_attr *dattr, int told)
{
	pthread_mutex_lock(&ci->mu);
	if (dattr) {
		attr_merge(ci, dattr);
		ci->attr_valid = ci->size_valid = true;
	} else {
		ci->attr_valid = false;
	}
	if (gone && cacheable(gone))
		cl_dent_set(ci, gone, 0);
	if (name && cacheable(name) && told != CL_TOLD_NOT)
		cl_dent_tell(ci, name, ino ? ino : CL_DENT_UNKNOWN, told == CL_TOLD_KEPT);
	else if (name && cacheable(name))
		cl_dent_set(ci, name, ino ? ino : CL_DENT_UNKNOWN);
	pthread_mutex_unlock(&ci->mu);
}

/* ATTR and TIMES of an inode a namespace change links or unlinks, lent to it. */
struct cl_olend {
	uint64_t ino;         /* 0: nothing lent */
	struct tok_set set;
	uint64_t gen;         /* for tok_client_unlend */
};

/*
 * Lend the MDS this node's ATTR and TIMES of inode @ino (0: none), if it
 * holds them, so the change does not recall them from the asker (which
 * forgets its copy afterwards, obj_lent_done).  Returns the inode lent
 * (also in @ol->ino), or 0.
 */
static uint64_t obj_lend_ino(struct cl_ctx *cx, uint64_t ino, struct cl_olend *ol)
{
	struct tok_set held;

	ol->ino = 0;
	if (!ino)
		return 0;
	/*
	 * Only READ copies: the server ignores a lender's READ level only (a
	 * WRITE it would recall, and the recall would wait for this very
	 * reference).
	 */
	tok_client_cached(cx->tc, ino, &held);
	if (held.level[TOK_ATTR] != TOK_READ || held.level[TOK_TIMES] != TOK_READ)
		return 0;
	set_of(&ol->set, B(TOK_ATTR) | B(TOK_TIMES));
	if (cl_lend(cx, ino, &ol->set, &ol->gen))
		return 0;
	ol->ino = ino;
	return ino;
}

/* obj_lend_ino() of the inode @name names in directory @dir, if this node knows it. */
static uint64_t obj_lend(struct cl_ctx *cx, struct cl_inode *dir, const char *name,
			 struct cl_olend *ol)
{
	struct cl_dent *d;
	uint64_t ino = 0;

	pthread_mutex_lock(&dir->mu);
	d = cacheable(name) ? cl_dent_find(dir, name) : NULL;
	if (d && d->ino != CL_DENT_UNKNOWN)
		ino = d->ino;
	pthread_mutex_unlock(&dir->mu);
	return obj_lend_ino(cx, ino, ol);
}

/*
 * An unlink in a busy directory (nothing of the directory cached): lend the
 * inode the kernel's lookup of @name just found, by the last name looked up
 * there, so the server need not recall its attribute tokens from this node.
 * Only a guess: the server lends only what matches the inode it finds at
 * the name, and recalls otherwise.  Not while this node holds the
 * directory's attr or times (the lend would spare those from the change's
 * recall too).
 */
static uint64_t busy_obj_lend(struct cl_cbhv *cb, const char *name, struct cl_olend *ol)
{
	struct cl_inode *ci = cb->ci;
	struct tok_set held;
	uint64_t ino = 0;

	ol->ino = 0;
	tok_client_cached(cb->cx->tc, ci->ino, &held);
	if (held.level[TOK_ATTR] != TOK_NONE || held.level[TOK_TIMES] != TOK_NONE)
		return 0;
	pthread_mutex_lock(&ci->mu);
	if (ci->hint_ino && ci->hint_hash == cl_name_hash(name))
		ino = ci->hint_ino;
	pthread_mutex_unlock(&ci->mu);
	return obj_lend_ino(cb->cx, ino, ol);
}

static void obj_lent_done(struct cl_ctx *cx, const struct cl_olend *ol)
{
	uint64_t ino = ol->ino;
	struct cl_inode *ci;

	if (!ino)
		return;
	ci = cl_inode_get(cx, ino, false);
	if (ci) {
		pthread_mutex_lock(&ci->mu);
		ci->attr_valid = ci->size_valid = false;
		cl_xattrs_free(ci);
		pthread_mutex_unlock(&ci->mu);
		cl_inode_put(cx, ci);
	}
	cl_attr_stale(cx, ino);
	cl_lend_drop(cx, ino, &ol->set, ol->gen);
}

/* What a namespace change in this directory did to its cached names. */
static void names_after(struct cl_inode *ci, const struct vn_call *c, int rc)
{
	const struct vn_attr *d = rc == 0 && c->dir_attr_set ? c->dir_attr : NULL;

	switch (c->op) {
	case VN_OP_MKNOD:
		if (rc == 0 || rc == -EEXIST)
			dir_changed(ci, NULL, c->u.mknod.name, rc ? 0 : c->u.mknod.attr->ino, d,
				    rc ? CL_TOLD_NOT : c->uncached ? CL_TOLD_SHOWN : CL_TOLD_KEPT);
		break;
	case VN_OP_LINK:
		if (rc == 0 || rc == -EEXIST)
			dir_changed(ci, NULL, c->u.link.name, rc ? 0 : c->u.link.ino, d,
				    rc ? CL_TOLD_NOT : c->uncached ? CL_TOLD_SHOWN : CL_TOLD_KEPT);
		break;
	case VN_OP_UNLINK:
		if (rc == 0 || rc == -ENOENT)
			dir_changed(ci, c->u.unlink.name, NULL, 0, d, CL_TOLD_NOT);
		break;
	default:
		break;
	}
}

/*
 * The file this node just created, with attributes @a: it holds its EXIST
 * token from the server's answer on (granted with it, see s_names), and
 * gives the vnode that reference, so that an unlink of the name, from this
 * node or another, cannot free the file before the kernel has it; the
 * attribute tokens granted with it cover @a, the first attributes cached
 * (for a file made here, @own, those an unlink changes at WRITE).
 * NULL if out of memory (the kernel then takes the vnode as after a lookup).
 */
static struct vnode *created(struct cl_ctx *cx, const struct vn_attr *a, bool own)
{
	struct tok_set granted;
	struct cl_cbhv *cb;
	struct vnode *v = NULL;
	bool had = true;

	set_of(&granted, CL_CREATE_TOKS);
	if (own) {
		struct tok_set w;

		set_at(&w, CL_OWN_WRITE_TOKS, TOK_WRITE);
		tok_set_raise(&granted, &w);
	}
	if (tok_client_adopt(cx->tc, a->ino, &granted))
		return NULL;
	/*
	 * A relocation blocks the shaping of new vnodes while it waits for the
	 * head lock this operation holds: leave the vnode to the kernel's
	 * reply then (the tokens stay cached, the file unheld for a moment).
	 */
	if (!atomic_load(&cx->relocating) && vn_get(cx->vt, a->ino, &v) == 0 &&
	    (cb = (struct cl_cbhv *)vn_bhv_find(v, VN_POS_CLIENT))) {
		pthread_mutex_lock(&cb->ci->mu);
		had = cb->ci->has_exist;
		cb->ci->has_exist = true;
		attr_merge(cb->ci, a);
		cb->ci->attr_valid = cb->ci->size_valid = true;
		pthread_mutex_unlock(&cb->ci->mu);
	}
	/* The vnode keeps the EXIST reference, unless it had one already. */
	if (!had)
		granted.level[TOK_EXIST] = TOK_NONE;
	tok_client_release(cx->tc, a->ino, &granted);
	return v;
}

/* May this node change @name of @cb's directory itself (async_create, own_pin)? */
static bool async_may(struct cl_cbhv *cb, const char *name)
{
	struct cl_ctx *cx = cb->cx;
	bool lost;

	if (cx->dm_enabled || atomic_load(&cx->is_server) || !cx->as || !cacheable(name))
		return false;
	pthread_mutex_lock(&cb->ci->mu);
	lost = cb->ci->lend_lost;
	pthread_mutex_unlock(&cb->ci->mu);
	return !lost;
}

/*
 * Should a change here take @cb's directory shared (by buckets) rather than
 * alone?  While another node changes it too (busy) or this node shares it
 * already, unless it holds NAME at WRITE (alone after all).
 */
static bool shared_wanted(struct cl_cbhv *cb)
{
	struct tok_set held;
	bool busy;

	tok_client_cached(cb->cx->tc, cb->ci->ino, &held);
	if (held.level[TOK_NAME] == TOK_WRITE)
		return false;
	if (held.level[TOK_NAME] == TOK_SWRITE)
		return true;
	pthread_mutex_lock(&cb->ci->mu);
	busy = cl_names_busy(cb->ci);
	pthread_mutex_unlock(&cb->ci->mu);
	return busy;
}

/*
 * Create regular file @c->u.mknod.name here, without the server, if this
 * node may (docs/ARCHITECTURE.md, "Asynchronous creates"): a client of a
 * filesystem without DMAPI, holding the directory's name, attr, times and
 * size tokens at WRITE (asked for once, while no other node changes the
 * directory) and knowing the name absent.  The file gets a number reserved
 * for this node and the attributes the server would give it, this node
 * adopts its tokens, and the create is queued (cl_async.c).  0 (made: the
 * call's attributes and vnode set), ASK_SERVER (not here: the caller asks
 * the server), or -errno (-EAGAIN: the server moved, the call restarts).
 */
static int async_create(struct cl_cbhv *cb, struct vn_call *c)
{
	struct cl_ctx *cx = cb->cx;
	struct cl_inode *ci = cb->ci;
	const char *name = c->u.mknod.name;
	struct vn_attr *a = c->u.mknod.attr;
	uint32_t mode = c->u.mknod.mode, gid = c->cred->gid;
	struct cl_dent *d;
	struct shared_pin sp = { .nkeys = 0 };
	uint64_t ino, gen;
	int64_t now;
	bool absent, shared;
	int rc;

	if (!S_ISREG(mode) || c->u.mknod.target || !async_may(cb, name) || !a)
		return ASK_SERVER;
	shared = shared_wanted(cb);
	if (shared) {
		rc = shared_pin(cb, &name, 1, true, c->cred, &sp);
	} else {
		set_at(&sp.dir, DIR_WRITE_TOKS, TOK_WRITE);
		rc = c_acquire(cb, &sp.dir);
	}
	if (rc)
		return rc;
	pthread_mutex_lock(&ci->mu);
	d = cl_dent_find(ci, name);
	/* A directory removed meanwhile (its tokens can still be had): the server says ENOENT. */
	absent = ci->attr_valid && ci->attr.nlink > 0 &&
		 (shared ? shared_absent(ci, name) : d ? d->ino == 0 : ci->names_whole);
	pthread_mutex_unlock(&ci->mu);
	rc = absent ? cl_async_ino(cx, &ino, &gen) : ASK_SERVER;
	if (rc) {
		shared_unpin(cb, &sp);
		/* No numbers (the metadata region nearly full): ask the server. */
		return rc == -ENOSPC ? ASK_SERVER : early(rc);
	}
	now = meta_now_ns();
	pthread_mutex_lock(&ci->mu);
	/* Group ownership and S_ISGID as the store gives them (meta_mknod). */
	if (ci->attr.mode & S_ISGID)
		gid = ci->attr.gid;
	if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && c->cred->uid != 0 &&
	    !vn_cred_in_group(c->cred, gid))
		mode &= ~(uint32_t)S_ISGID;
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->gen = gen;
	a->mode = mode;
	a->nlink = 1;
	a->uid = c->cred->uid;
	a->gid = gid;
	a->atime.tv_sec = now / 1000000000;
	a->atime.tv_nsec = now % 1000000000;
	a->mtime = a->ctime = a->btime = a->atime;
	ci->attr.mtime = ci->attr.ctime = a->atime;
	cl_dent_tell(ci, name, ino, true);
	pthread_mutex_unlock(&ci->mu);
	rc = cl_async_queue(cx, ci->ino, name, c->u.mknod.mode, c->cred, ino, gen, now);
	if (rc) {
		/* Nothing queued: the number stays unused, the name absent. */
		pthread_mutex_lock(&ci->mu);
		cl_dent_set(ci, name, 0);
		pthread_mutex_unlock(&ci->mu);
		shared_unpin(cb, &sp);
		return rc;
	}
	c->uncached = 0;
	c->made = created(cx, a, true);
	shared_unpin(cb, &sp);
	if (cl_async_full(cx))
		(void)cl_async_drain(cx);
	return 0;
}

/* @ino's tokens @mask all held here at WRITE? */
static bool held_write(struct cl_ctx *cx, uint64_t ino, unsigned mask)
{
	struct tok_set held;

	tok_client_cached(cx->tc, ino, &held);
	for (int t = 0; t < TOK_NTOKENS; t++)
		if ((mask & B(t)) && held.level[t] != TOK_WRITE)
			return false;
	return true;
}

/* What a change made here holds: the directory's tokens (and buckets) and the file's. */
struct own_pin {
	struct shared_pin dir;
	struct tok_set file;
	bool shared;                    /* the directory is shared: @newname known absent */
	uint64_t ino;                   /* the file @name names */
	struct cl_inode *fci;           /* its state here */
};

/*
 * Pin what an unlink or a rename of @name made here changes (as
 * async_create, without the server): the directory's tokens, held at WRITE
 * already, and @name's file's attr and times, held at WRITE too (a file
 * this node made itself, CL_OWN_WRITE_TOKS), so nobody else caches
 * anything the change touches; the file must not be a directory.  0,
 * ASK_SERVER with nothing held (the caller asks the server), or -errno.
 */
static int own_pin(struct cl_cbhv *cb, const struct vn_call *c, const char *name,
		   const char *newname, struct own_pin *p)
{
	struct cl_ctx *cx = cb->cx;
	struct cl_inode *ci = cb->ci;
	const char *names[2] = { name, newname };
	struct cl_dent *d;
	bool ok = false, asked = false;

	int rc;

	if (!async_may(cb, name) || (newname && !cacheable(newname)))
		return ASK_SERVER;
again:
	p->shared = !held_write(cx, ci->ino, DIR_WRITE_TOKS);
	if (p->shared && !shared_wanted(cb))
		return ASK_SERVER;
	set_at(&p->file, CL_OWN_WRITE_TOKS, TOK_WRITE);
	p->dir.nkeys = 0;
	if (p->shared) {
		rc = shared_pin(cb, names, newname ? 2 : 1, true, c->cred, &p->dir);
	} else {
		set_at(&p->dir.dir, DIR_WRITE_TOKS, TOK_WRITE);
		rc = c_acquire(cb, &p->dir.dir);
	}
	if (rc)
		return rc;
	p->ino = 0;
	pthread_mutex_lock(&ci->mu);
	d = cl_dent_find(ci, name);
	if (d && d->ino != CL_DENT_UNKNOWN && ci->attr_valid && ci->attr.nlink > 0)
		p->ino = d->ino;
	pthread_mutex_unlock(&ci->mu);
	/* Only from the cache: a wait for the server here would hold the directory's references. */
	if (!p->ino || tok_client_try(cx->tc, p->ino, &p->file)) {
		uint64_t ino = p->ino;

		shared_unpin(cb, &p->dir);
		/*
		 * A file this node made through the server (before it shared
		 * the directory) has only READ copies: ask for the rest with
		 * nothing held, then once more.  Sending the change instead
		 * would take the directory at WRITE and recall every sharer.
		 */
		if (!ino || asked || cl_acquire(cx, ino, &p->file))
			return ASK_SERVER;
		tok_client_release(cx->tc, ino, &p->file);
		asked = true;
		goto again;
	}
	p->fci = cl_inode_get(cx, p->ino, true);
	if (p->fci) {
		struct vn_attr a;
		struct vn_call g = { .op = VN_OP_GETATTR, .cred = c->cred, .u.getattr = { &a } };
		bool known;

		pthread_mutex_lock(&p->fci->mu);
		known = p->fci->attr_valid;
		ok = known && !S_ISDIR(p->fci->attr.mode) && p->fci->attr.nlink > 0;
		pthread_mutex_unlock(&p->fci->mu);
		/*
		 * Its attributes went back (another node looked at it): what it
		 * is, asked (a getattr waits for no token).
		 */
		if (!known && forward(cx, p->ino, &g, NULL) == 0)
			ok = !S_ISDIR(a.mode) && a.nlink > 0;
	}
	if (!ok) {
		if (p->fci)
			cl_inode_put(cx, p->fci);
		tok_client_release(cx->tc, p->ino, &p->file);
		shared_unpin(cb, &p->dir);
		return ASK_SERVER;
	}
	return 0;
}

/* The change is made (@time_ns, the file's link count less @unlinked) or not (@time_ns 0). */
static void own_unpin(struct cl_cbhv *cb, struct own_pin *p, int64_t time_ns, bool unlinked)
{
	struct cl_ctx *cx = cb->cx;

	if (time_ns) {
		struct timespec ts = { time_ns / 1000000000, time_ns % 1000000000 };

		pthread_mutex_lock(&p->fci->mu);
		if (p->fci->attr_valid) {   /* else the server's answer will have them */
			if (unlinked)
				p->fci->attr.nlink--;
			p->fci->attr.ctime = ts;
		}
		pthread_mutex_unlock(&p->fci->mu);
		pthread_mutex_lock(&cb->ci->mu);
		cb->ci->attr.mtime = cb->ci->attr.ctime = ts;
		pthread_mutex_unlock(&cb->ci->mu);
	}
	cl_inode_put(cx, p->fci);
	tok_client_release(cx->tc, p->ino, &p->file);
	shared_unpin(cb, &p->dir);
	if (time_ns && cl_async_full(cx))
		(void)cl_async_drain(cx);
}

/* Unlink @c->u.unlink.name here if this node may (own_pin); 0, ASK_SERVER or -errno. */
static int async_unlink(struct cl_cbhv *cb, struct vn_call *c)
{
	const char *name = c->u.unlink.name;
	struct own_pin p;
	int64_t now;
	int rc;

	if (c->u.unlink.is_dir)
		return ASK_SERVER;
	rc = own_pin(cb, c, name, NULL, &p);
	if (rc)
		return rc;
	now = meta_now_ns();
	rc = cl_async_queue_unlink(cb->cx, cb->ci->ino, name, c->cred, p.ino, now);
	if (!rc) {
		pthread_mutex_lock(&cb->ci->mu);
		cl_dent_set(cb->ci, name, 0);
		pthread_mutex_unlock(&cb->ci->mu);
		c->uncached = 0;
	}
	own_unpin(cb, &p, rc ? 0 : now, true);
	return rc;
}

/*
 * Rename @c's file to a name known absent in the same directory here, if
 * this node may (own_pin); 0, ASK_SERVER or -errno.
 */
static int async_rename(struct cl_cbhv *cb, struct vn_call *c)
{
	const char *name = c->u.rename.name, *newname = c->u.rename.newname;
	struct cl_inode *ci = cb->ci;
	struct own_pin p;
	struct cl_dent *d;
	bool absent;
	int64_t now;
	int rc;

	if (c->u.rename.newdir != ci->ino || c->u.rename.flags || !cacheable(newname) ||
	    strcmp(name, newname) == 0)
		return ASK_SERVER;
	rc = own_pin(cb, c, name, newname, &p);
	if (rc)
		return rc;
	pthread_mutex_lock(&ci->mu);
	d = cl_dent_find(ci, newname);
	absent = p.shared ? shared_absent(ci, newname) : d ? d->ino == 0 : ci->names_whole;
	pthread_mutex_unlock(&ci->mu);
	now = meta_now_ns();
	rc = absent ? cl_async_queue_rename(cb->cx, ci->ino, name, newname, c->cred, p.ino, now) :
		      ASK_SERVER;
	if (!rc) {
		pthread_mutex_lock(&ci->mu);
		cl_dent_set(ci, name, 0);
		cl_dent_tell(ci, newname, p.ino, true);
		pthread_mutex_unlock(&ci->mu);
	}
	own_unpin(cb, &p, rc ? 0 : now, false);
	return rc;
}

/* mknod, link, unlink: lend the directory's tokens, keep its names current. */
static int c_names(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	const char *name = c->op == VN_OP_MKNOD ? c->u.mknod.name :
			   c->op == VN_OP_LINK ? c->u.link.name : c->u.unlink.name;
	struct cl_olend ol = { 0 };
	struct vn_attr dattr;
	struct tok_set lent;
	uint64_t gen;
	bool lend;
	int rc;

	if (c->op != VN_OP_LINK) {
		rc = c->op == VN_OP_MKNOD ? async_create(cb, c) : async_unlink(cb, c);
		if (rc != ASK_SERVER)
			return rc;
	}
	/* A shared directory's other changes go to the server as a busy one's do. */
	lend = !names_shared(cb) && !dir_uncached(cb, B(TOK_NAME));
	if (lend) {
		rc = dir_lend(cb, &lent, &gen);
		if (rc)
			return rc;
	}
	if (c->op == VN_OP_UNLINK)
		c->lent_inos[0] = lend ? obj_lend(cb->cx, cb->ci, name, &ol) :
					 busy_obj_lend(cb, name, &ol);
	c->dir_attr = &dattr;
	c->dir_attr_set = 0;
	if (c->op == VN_OP_MKNOD)
		tok_client_creating(cb->cx->tc, 1);
	rc = forward(cb->cx, cb->ci->ino, c, lend ? &lent : ol.ino ? &ol.set : NULL);
	if (c->op == VN_OP_MKNOD) {
		if (rc == 0)
			c->made = created(cb->cx, c->u.mknod.attr, false);
		tok_client_creating(cb->cx->tc, -1);
	}
	c->uncached = 1;
	if (!lend) {
		/*
		 * The kernel keeps a new file's name no longer than the time-out
		 * of 0 it is answered with, and drops an unlinked name itself;
		 * only a new directory's alias stays whatever its time-out
		 * (dir_kept), and must go now.
		 */
		if (rc == 0 && c->op == VN_OP_MKNOD && S_ISDIR(c->u.mknod.mode))
			cl_names_forget(cb->cx, cb->ci->ino, name, NULL);
	} else if (dir_unlend(cb, &lent, gen, rc, name, NULL)) {
		pthread_mutex_lock(&cb->ci->mu);
		c->uncached = cl_names_busy(cb->ci) &&
			      !(c->op == VN_OP_MKNOD && S_ISDIR(c->u.mknod.mode));
		pthread_mutex_unlock(&cb->ci->mu);
		names_after(cb->ci, c, rc);
		c_release_toks(cb, &lent);
	}
	c->dir_attr = NULL;
	c->lent_inos[0] = 0;
	obj_lent_done(cb->cx, &ol);
	return rc;
}

/* A rename lends both directories' tokens, taken in inode order. */
static int c_rename(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	struct cl_ctx *cx = cb->cx;
	uint64_t dst = c->u.rename.newdir;
	const char *name = c->u.rename.name, *newname = c->u.rename.newname;
	struct cl_cbhv *other = NULL;
	struct cl_olend ol[2] = { { 0 }, { 0 } };
	struct vnode *ov = NULL;
	struct tok_set lent;
	uint64_t gen = 0, ogen = 0;
	bool kept = false, okept = false;
	int rc;

	if (dst == cb->ci->ino) {
		rc = async_rename(cb, c);
		if (rc != ASK_SERVER)
			return rc;
	}
	if (dst != cb->ci->ino) {
		rc = vn_get(cx->vt, dst, &ov);
		if (rc)
			return rc;
		other = (struct cl_cbhv *)vn_bhv_find(ov, VN_POS_CLIENT);
	}
	if (dir_uncached(cb, B(TOK_NAME)) || (other && dir_uncached(other, B(TOK_NAME))) ||
	    names_shared(cb) || (other && names_shared(other))) {
		/* Busy: lend nothing, cache nothing (dir_uncached). */
		rc = forward(cx, cb->ci->ino, c, NULL);
		if (rc == 0) {
			cl_names_forget(cx, cb->ci->ino, name, other ? NULL : newname);
			if (other)
				cl_names_forget(cx, other->ci->ino, newname, NULL);
		}
		goto out;
	}
	if (other && dst < cb->ci->ino) {
		rc = dir_lend(other, &lent, &ogen);
		if (!rc && (rc = dir_lend(cb, &lent, &gen)))
			cl_lend_drop(cx, other->ci->ino, &lent, ogen);
	} else {
		rc = dir_lend(cb, &lent, &gen);
		if (!rc && other && (rc = dir_lend(other, &lent, &ogen)))
			cl_lend_drop(cx, cb->ci->ino, &lent, gen);
	}
	if (rc)
		goto out;
	{
		struct vn_attr dattr;
		const struct vn_attr *d;
		uint64_t moved = obj_lend(cx, cb->ci, name, &ol[0]);
		uint64_t victim = obj_lend(cx, other ? other->ci : cb->ci, newname, &ol[1]);

		if (victim == moved) {
			obj_lent_done(cx, &ol[1]);
			ol[1].ino = victim = 0;
		}
		c->lent_inos[0] = moved;
		c->lent_inos[1] = victim;
		c->dir_attr = &dattr;
		c->dir_attr_set = 0;
		rc = forward(cx, cb->ci->ino, c, &lent);
		d = rc == 0 && c->dir_attr_set ? &dattr : NULL;
		c->dir_attr = NULL;
		c->lent_inos[0] = c->lent_inos[1] = 0;
		obj_lent_done(cx, &ol[0]);
		obj_lent_done(cx, &ol[1]);
		kept = dir_unlend(cb, &lent, gen, rc, name, other ? NULL : newname);
		okept = other ? dir_unlend(other, &lent, ogen, rc, newname, NULL) : kept;
		if (rc == 0 || rc == -ENOENT) {
			/* After an exchange both names exist (with each other's inode). */
			const char *gone = (c->u.rename.flags & RENAME_EXCHANGE) ? NULL : name;

			/* The new name is the moved inode; after an exchange the old one is the victim. */
			uint64_t at_new = rc == 0 ? moved : 0, at_old = rc == 0 ? victim : 0;
			int told = rc == 0 ? CL_TOLD_KEPT : CL_TOLD_NOT;

			if (kept)
				dir_changed(cb->ci, gone, other ? NULL : newname, at_new, d, told);
			if (kept && gone == NULL)
				dir_changed(cb->ci, NULL, name, at_old, d, told);
			if (other && okept)
				dir_changed(other->ci, NULL, newname, at_new, NULL, told);
		}
	}
	if (other && okept)
		c_release_toks(other, &lent);
	if (kept)
		c_release_toks(cb, &lent);
out:
	if (ov)
		vn_put(ov, 1);
	return rc;
}

/* Operations the MDS does in full: no cache here, nothing lent. */
static int c_forward(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);

	return forward(cb->cx, cb->ci->ino, c, NULL);
}

/* Answer a getxattr from cached @x: its size, or the value into @c's buffer. */
static int xattr_answer(const struct cl_xattr *x, struct vn_call *c)
{
	if (x->err)
		return x->err;
	if (c->u.getxattr.size == 0)
		return (int)x->len;
	if (c->u.getxattr.size < x->len)
		return -ERANGE;
	memcpy(c->u.getxattr.buf, x->value, x->len);
	return (int)x->len;
}

/*
 * Extended attributes are cached under ATTR, absent ones too: the kernel
 * asks for security.capability before every write.
 */
static int c_getxattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	struct cl_inode *ci = cb->ci;
	const char *name = c->u.getxattr.name;
	struct cl_xattr *x;
	struct tok_set want;
	char *buf;
	int rc;

	set_of(&want, B(TOK_ATTR));
	rc = c_acquire(cb, &want);
	if (rc)
		return rc;
	pthread_mutex_lock(&ci->mu);
	for (x = ci->xattrs; x && strcmp(x->name, name) != 0; x = x->next)
		;
	if (x) {
		rc = xattr_answer(x, c);
		pthread_mutex_unlock(&ci->mu);
		goto out;
	}
	pthread_mutex_unlock(&ci->mu);
	buf = malloc(CLW_XATTR_SIZE_MAX);
	x = calloc(1, sizeof(*x) + strlen(name) + 1);
	if (!buf || !x) {
		free(buf);
		free(x);
		rc = -ENOMEM;
		goto out;
	}
	{
		struct vn_call g = { .op = VN_OP_GETXATTR, .cred = c->cred,
				     .u.getxattr = { name, buf, CLW_XATTR_SIZE_MAX } };

		rc = forward(cb->cx, ci->ino, &g, &want);
	}
	strcpy(x->name, name);
	x->err = rc < 0 ? rc : 0;
	x->len = rc > 0 ? (uint32_t)rc : 0;
	/* Keep only what the value needs. */
	x->value = malloc(x->len ? x->len : 1);
	if (x->value)
		memcpy(x->value, buf, x->len);
	free(buf);
	if (!x->value) {
		free(x);
		rc = -ENOMEM;
		goto out;
	}
	if (rc < 0 && rc != -ENODATA) {
		free(x->value);
		free(x);
		goto out;
	}
	pthread_mutex_lock(&ci->mu);
	x->next = ci->xattrs;
	ci->xattrs = x;
	rc = xattr_answer(x, c);
	pthread_mutex_unlock(&ci->mu);
out:
	c_release_toks(cb, &want);
	return rc;
}

static int c_fsync(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	int rc = wb_sync(cb->cx, cb->ci), prc = publish(cb->cx, cb->ci);

	if (!rc)
		rc = prc;
	if (!rc)
		rc = xvm_flush(cb->cx->dev);
	if (!rc)
		rc = forward(cb->cx, cb->ci->ino, c, NULL);
	return rc;
}

static int c_getlk(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	uint64_t owner = c->u.getlk.lk->owner;
	int rc;

	c->u.getlk.lk->owner = cl_lock_owner(cb->cx, owner);
	rc = forward(cb->cx, cb->ci->ino, c, NULL);
	c->u.getlk.lk->owner = owner;
	return rc;
}

/* Blocking locks are retried here: the MDS never sleeps on a lock. */
static int c_setlk(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	struct vn_flock lk = *c->u.setlk.lk;
	struct vn_call s = *c;
	unsigned delay_us = 1000;
	int rc;

	lk.owner = cl_lock_owner(cb->cx, lk.owner);
	s.u.setlk.lk = &lk;
	s.u.setlk.sleep = 0;
	pthread_mutex_lock(&cb->ci->mu);
	cb->ci->locks_used = true;
	pthread_mutex_unlock(&cb->ci->mu);
	for (;;) {
		rc = forward(cb->cx, cb->ci->ino, &s, NULL);
		if (rc == 0)
			cl_locks_note_set(cb->cx, cb->ci->ino, &lk);
		if (rc != -EAGAIN || !c->u.setlk.sleep)
			break;
		if (c->u.setlk.interrupted && c->u.setlk.interrupted(c->u.setlk.arg))
			return -EINTR;
		usleep(delay_us);
		if (delay_us < 50000)
			delay_us *= 2;
	}
	return rc;
}

/*
 * close(): write this node's cached data back and publish its writes (a
 * failed write-back since the last fsync or close is its error), drop its
 * POSIX locks.
 */
static int c_release(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	bool locks;
	int rc = wb_sync(cb->cx, cb->ci), prc = publish(cb->cx, cb->ci);

	if (!rc)
		rc = prc;

	pthread_mutex_lock(&cb->ci->mu);
	locks = cb->ci->locks_used;
	pthread_mutex_unlock(&cb->ci->mu);
	if (locks) {
		struct vn_call r = *c;
		int lrc;

		r.u.release.lock_owner = cl_lock_owner(cb->cx, c->u.release.lock_owner);
		lrc = forward(cb->cx, cb->ci->ino, &r, NULL);
		cl_locks_note_release(cb->cx, cb->ci->ino, r.u.release.lock_owner,
				      r.u.release.flock_release);
		if (!rc)
			rc = lrc;
	}
	return rc;
}

static int c_setattr(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	int rc;

	/*
	 * A truncate recalls this node's tokens: write cached data back and
	 * publish first, cheaply; cached pages go (their tail may be cut).
	 */
	if (c->u.setattr.mask & VN_SET_SIZE) {
		(void)wb_flush(cb->cx, cb->ci);
		pages_drop(cb->cx, cb->ci, 0, UINT64_MAX);
		rc = publish(cb->cx, cb->ci);
		if (rc)
			return rc;
	}
	return forward(cb->cx, cb->ci->ino, c, NULL);
}

static int c_fallocate(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	int rc;

	if (c->u.fallocate.mode & ~CL_FALLOC_REMOTE)
		return -EOPNOTSUPP;
	(void)wb_flush(cb->cx, cb->ci);
	pages_drop(cb->cx, cb->ci, 0, UINT64_MAX);   /* a punched range reads as zeros */
	rc = publish(cb->cx, cb->ci);

	return rc ? rc : forward(cb->cx, cb->ci->ino, c, NULL);
}

/* ---- data ---------------------------------------------------------------- */

static uint64_t vol_off(const struct cl_ctx *cx, uint64_t pblk)
{
	return cx->data_off + pblk * cx->bs;
}

/* Is the file size known here (ci->mu held)? */
static bool size_known(const struct cl_inode *ci)
{
	return ci->size_dirty || ci->size_valid || ci->attr_valid;
}

/*
 * relatime, as on ext4: the first read after a change moves atime (at the
 * MDS; ctime stays).  Best effort: the data was read whatever happens here.
 */
static void touch_atime(struct cl_cbhv *cb, const struct vn_cred *cred)
{
	struct cl_inode *ci = cb->ci;
	struct vn_attr in = { 0 }, out;
	struct vn_call c = { .op = VN_OP_SETATTR, .cred = cred,
			     .u.setattr = { &in, VN_SET_ATIME_NOW | VN_SET_CTIME, &out } };
	bool due;

	pthread_mutex_lock(&ci->mu);
	due = ci->attr_valid && meta_atime_due(&ci->attr);
	in.ctime = ci->attr.ctime;
	pthread_mutex_unlock(&ci->mu);
	if (due)
		(void)forward(cb->cx, ci->ino, &c, NULL);
}

/*
 * Read file bytes [@off, @end) from the volume into @buf through the
 * cached map, which covers them (ci->mu held, dropped while the volume is
 * read): holes and unwritten blocks read as zeros.
 */
static int vol_read(struct cl_ctx *cx, struct cl_inode *ci, char *buf, uint64_t off, uint64_t end)
{
	int rc = 0;

	for (uint64_t pos = off; pos < end;) {
		const struct meta_map *m = map_find(ci, pos / cx->bs);
		uint64_t rend, chunk;

		if (!m)
			return -EIO;
		rend = (m->fblk + m->nblk) * cx->bs;
		chunk = (rend < end ? rend : end) - pos;
		if (m->state == META_MAP_DATA) {
			uint64_t at = vol_off(cx, m->pblk) + (pos - m->fblk * cx->bs);

			/* The map may change while the volume is read: copy the run. */
			pthread_mutex_unlock(&ci->mu);
			rc = xvm_read(cx->dev, buf + (pos - off), (size_t)chunk, at);
			pthread_mutex_lock(&ci->mu);
			if (rc)
				return rc;
		} else {
			memset(buf + (pos - off), 0, (size_t)chunk);
		}
		pos += chunk;
	}
	return 0;
}

/* @ci's pages (ci->mu held), made at first use; NULL: no memory. */
static struct cl_pcf *pcf_of(struct cl_ctx *cx, struct cl_inode *ci)
{
	if (!ci->pcf)
		ci->pcf = cl_pcf_create(cx->pc, ci->ino);
	return ci->pcf;
}

/* Forget @ci's cached blocks [@from, @to), dirty ones too. */
static void pages_drop(struct cl_ctx *cx, struct cl_inode *ci, uint64_t from, uint64_t to)
{
	pthread_mutex_lock(&ci->mu);
	if (ci->pcf)
		cl_pc_drop(cx->pc, ci->pcf, from, to);
	pthread_mutex_unlock(&ci->mu);
}

/*
 * Blocks to read ahead of a sequential reader: from CL_RA_MIN, doubling
 * at each sequential read up to CL_RA_MAX (ci->mu held).
 */
static uint64_t ra_window(struct cl_inode *ci, uint64_t off, uint64_t end)
{
	if (off != ci->ra_next)
		ci->ra_blocks = 0;
	else if (ci->ra_blocks < CL_RA_MAX)
		ci->ra_blocks = ci->ra_blocks ? ci->ra_blocks * 2 : CL_RA_MIN;
	ci->ra_next = end;
	return ci->ra_blocks;
}

/*
 * Read file bytes [@off, @end) (within the size; the map covers them)
 * through the cache (ci->mu held, dropped while the volume is read):
 * cached blocks are copied, missing ones read from the volume with those
 * ahead of a sequential reader, and kept clean if the cache reads.  A file
 * larger than the read cache would only evict itself: its missing blocks
 * go from the volume straight into @buf, neither kept nor read ahead.
 * Nothing is read ahead past block @ra_end (the ranges a shared read holds).
 */
static int cached_read(struct cl_ctx *cx, struct cl_inode *ci, char *buf, uint64_t off,
		       uint64_t end, uint64_t ra_end)
{
	struct cl_pcf *f = pcf_of(cx, ci);
	uint64_t bs = cx->bs, ahead = ra_window(ci, off, end);
	uint64_t last = (end + bs - 1) / bs, eof = (ci->attr.size + bs - 1) / bs;
	bool keep = cl_pc_holds(cx->pc, ci->attr.size);
	char *tmp = NULL;
	int rc = 0;

	if (!f)
		return vol_read(cx, ci, buf, off, end);
	for (uint64_t pos = off; pos < end;) {
		uint64_t b = pos / bs, e, lim, gen, upto;
		size_t in = (size_t)((end < (b + 1) * bs ? end : (b + 1) * bs) - pos);

		if (cl_pc_get(cx->pc, f, b, (size_t)(pos - b * bs), in, buf + (pos - off))) {
			pos += in;
			continue;
		}
		/* A miss: the blocks up to the next cached one, and ahead. */
		lim = last + (keep ? ahead : 0);
		if (lim > eof)
			lim = eof;
		if (lim > ra_end)
			lim = ra_end;
		e = b + cl_pc_absent(cx->pc, f, b, (size_t)(lim - b));
		if (e == b)
			e = b + 1;
		if (!keep) {
			upto = end < e * bs ? end : e * bs;
			rc = vol_read(cx, ci, buf + (pos - off), pos, upto);
			if (rc)
				break;
			pos = upto;
			continue;
		}
		if (e > last) {
			rc = map_cover(cx, ci, e);
			if (rc)
				break;
		}
		free(tmp);
		tmp = malloc((size_t)((e - b) * bs));
		if (!tmp) {
			rc = -ENOMEM;
			break;
		}
		gen = cl_pc_gen(cx->pc, f);
		rc = vol_read(cx, ci, tmp, b * bs, e * bs);
		if (rc)
			break;
		cl_pc_fill(cx->pc, f, b, (size_t)(e - b), tmp, gen);
		upto = end < e * bs ? end : e * bs;
		memcpy(buf + (pos - off), tmp + (pos - b * bs), (size_t)(upto - pos));
		pos = upto;
	}
	free(tmp);
	return rc;
}

static int c_read(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	struct cl_ctx *cx = cb->cx;
	struct cl_inode *ci = cb->ci;
	uint64_t off = c->u.read.off, end;
	size_t len = c->u.read.size;
	bool direct = c->u.read.flags & O_DIRECT;
	/* A node that shares the file by ranges reads by ranges (cl_range.c). */
	bool shared = len > 0 && cl_range_reads(cx, ci);
	struct cl_range_hold rh = { 0 };
	struct cx_rlock_hold ioh;
	uint64_t ra_end = UINT64_MAX;
	struct tok_set want;
	int rc;

	cl_io_begin(ci);
again:
	if (shared)
		cl_swrite_set(&want);
	else
		cl_read_set(&want, direct);
	rc = c_acquire(cb, &want);
	if (rc) {
		cl_io_end(cx, ci);
		return rc;
	}
	/* A direct read sees this node's cached writes on the volume. */
	if (direct)
		(void)wb_flush(cx, ci);
	if (shared) {
		/*
		 * Only within the size this node knows: a shared file only
		 * grows (a truncate recalls the shared levels), and other
		 * nodes' sizes come back only when SIZE is recalled.  Not
		 * with conversions unpublished (cl_range.c).
		 */
		bool inside;

		pthread_mutex_lock(&ci->mu);
		inside = size_known(ci) && off + len <= ci->attr.size && !ci->npend;
		pthread_mutex_unlock(&ci->mu);
		rc = inside ? cl_range_acquire(cx, ci, off, off + len, CL_RANGE_READ, &rh) : 0;
		if (rc || !inside) {
			c_release_toks(cb, &want);
			if (rc) {
				cl_io_end(cx, ci);
				return early(rc);
			}
			shared = false;
			goto again;
		}
		ra_end = (rh.next << CL_RANGE_SHIFT) / cx->bs;
	}
	/* This node's buffered writes of these bytes wait: the read sees each whole or not at all. */
	cx_rlock_lock(ci->io, &ioh, off, off + len, false);
	pthread_mutex_lock(&ci->mu);
	if (S_ISDIR(ci->attr.mode) && ci->attr_valid) {
		rc = -EISDIR;
		goto out_unlock;
	}
	if (!size_known(ci))
		ci->map_valid = false;   /* the map fetch brings the size */
	rc = map_cover(cx, ci, 0);
	if (rc)
		goto out_unlock;
	if (off >= ci->attr.size) {
		rc = 0;
		goto out_unlock;
	}
	if (len > ci->attr.size - off)
		len = (size_t)(ci->attr.size - off);
	end = off + len;
	rc = map_cover(cx, ci, (end + cx->bs - 1) / cx->bs);
	if (rc)
		goto out_unlock;
	rc = direct ? vol_read(cx, ci, c->u.read.buf, off, end) :
		      cached_read(cx, ci, c->u.read.buf, off, end, ra_end);
	if (!rc)
		rc = (int)len;
out_unlock:
	pthread_mutex_unlock(&ci->mu);
	cx_rlock_unlock(ci->io, &ioh);
	cl_range_release(cx, &rh);
	c_release_toks(cb, &want);
	cl_io_end(cx, ci);
	if (rc > 0)
		touch_atime(cb, c->cred);
	return rc;
}

/* How many of file blocks [fblk, fblk+n) the cached map has as holes. */
static uint64_t map_holes(const struct cl_inode *ci, uint64_t fblk, uint64_t n)
{
	uint64_t end = fblk + n, holes = 0;

	for (size_t i = 0; i < ci->nmap; i++) {
		const struct meta_map *m = &ci->map[i];
		uint64_t s = m->fblk > fblk ? m->fblk : fblk;
		uint64_t e = m->fblk + m->nblk < end ? m->fblk + m->nblk : end;

		if (m->state == META_MAP_HOLE && s < e)
			holes += e - s;
	}
	if (ci->map_end < end)
		holes += end - (ci->map_end > fblk ? ci->map_end : fblk);
	return holes;
}

/* Ask the MDS for unwritten blocks at [fblk, fblk+count) and some ahead (ci->mu held). */
static int alloc(struct cl_ctx *cx, struct cl_inode *ci, uint64_t fblk, uint64_t count)
{
	Cxfs__AllocReq m = CXFS__ALLOC_REQ__INIT;
	Cxfs__TokenState lent_s, *lent_p = &lent_s;
	const Cxfs__AllocReply *r;
	ProtobufCMessage *rep = NULL;
	struct meta_map *runs;
	Cxfs__MsgType rt;
	uint64_t max;
	int rc;

	cxfs__token_state__init(&lent_s);
	lent_s.token = TOK_EXTENT;
	lent_s.level = CXFS__TOKEN_LEVEL__TOKEN_READ;
	m.ino = ci->ino;
	m.file_block = fblk;
	m.count = count;
	m.has_prealloc = 1;
	m.prealloc = ci->prealloc;
	m.n_lent = 1;
	m.lent = &lent_p;
	atomic_fetch_add(&cx->stats.allocs, 1);
	rc = cl_mds_call(cx, CXFS__MSG_TYPE__ALLOC_REQ, &m.base, &rt, &rep);
	if (rc == -EINTR || rc == -EIO) {
		/* Given up: the MDS may still allocate under the lent EXTENT (no recall). */
		ci->map_valid = false;
		return rc;
	}
	if (rc)
		return early(rc);
	if (rt == CXFS__MSG_TYPE__ERROR_REPLY) {
		rc = ((Cxfs__ErrorReply *)rep)->err;
		goto out;
	}
	r = (const Cxfs__AllocReply *)rep;
	rc = r->err;
	if (rc)
		goto out;
	runs = calloc(r->n_extents ? r->n_extents : 1, sizeof(*runs));
	if (!runs) {
		rc = -ENOMEM;
		goto out;
	}
	runs_from_pb(r->extents, r->n_extents, runs);
	rc = runs_check(cx, ci->ino, runs, r->n_extents, fblk);
	/* Blocks that were holes here are the file's new blocks (st_blocks). */
	for (size_t i = 0; !rc && i < r->n_extents; i++)
		if (runs[i].state != META_MAP_HOLE)
			ci->attr.blocks += map_holes(ci, runs[i].fblk, runs[i].nblk) * (cx->bs / 512);
	for (size_t i = 0; !rc && i < r->n_extents; i++)
		rc = map_set(ci, runs[i].fblk, runs[i].nblk, runs[i].pblk, runs[i].state);
	free(runs);
	if (!rc)
		rc = map_overlay_pending(ci);
	max = cl_prealloc_max(cx, ci);
	ci->prealloc = ci->prealloc ? ci->prealloc * 2 : CL_PREALLOC_MIN;
	if (ci->prealloc > max)
		ci->prealloc = max;
out:
	rpc_msg_free(rep);
	return rc;
}

/*
 * The body of a write, ci->mu held (dropped while whole blocks go to the
 * volume); *@done: bytes written from @off on.
 */
static int write_locked(struct cl_ctx *cx, struct cl_inode *ci, const char *buf, uint64_t off,
			size_t len, size_t *done)
{
	uint64_t end = off + len, pos = off;
	int rc;

	rc = map_cover(cx, ci, (end + cx->bs - 1) / cx->bs);
	while (!rc && pos < end) {
		const struct meta_map *m = map_find(ci, pos / cx->bs);
		uint64_t rend, chunk, b0, b1;
		const char *src = buf + (pos - off);

		if (!m) {
			rc = -EIO;
			break;
		}
		rend = (m->fblk + m->nblk) * cx->bs;
		chunk = (rend < end ? rend : end) - pos;
		b0 = pos / cx->bs;
		b1 = (pos + chunk + cx->bs - 1) / cx->bs;
		if (m->state == META_MAP_DATA) {
			uint64_t at = vol_off(cx, m->pblk) + (pos - m->fblk * cx->bs);

			/*
			 * Blocks with data stay where they are while this node
			 * holds its tokens: other writers of the file here may
			 * go on meanwhile (parallel direct I/O).
			 */
			pthread_mutex_unlock(&ci->mu);
			rc = xvm_write(cx->dev, src, (size_t)chunk, at);
			pthread_mutex_lock(&ci->mu);
		} else if (m->state == META_MAP_UNWRITTEN) {
			uint64_t p0 = m->pblk + (b0 - m->fblk);
			bool whole = pos == b0 * cx->bs && chunk == (b1 - b0) * cx->bs;

			/* Whole blocks need no padding, so nothing here can clobber them. */
			if (whole)
				pthread_mutex_unlock(&ci->mu);
			rc = xvm_write_padded(cx->dev, vol_off(cx, p0), (size_t)((b1 - b0) * cx->bs),
					      src, (size_t)(pos - b0 * cx->bs), (size_t)chunk);
			if (whole)
				pthread_mutex_lock(&ci->mu);
			if (!rc)
				rc = pend_add(ci, b0, b1 - b0, p0);
			if (!rc)
				rc = map_set(ci, b0, b1 - b0, p0, META_MAP_DATA);
		} else {
			rc = alloc(cx, ci, b0, b1 - b0);
			continue;   /* the map changed: look again */
		}
		if (!rc)
			pos += chunk;
	}
	/* Fenced: the target refuses this node's writes; the application sees EIO. */
	if (rc == BLK_EFENCED)
		rc = -EIO;
	*done = (size_t)(pos - off);
	return rc;
}

/* 1 if file blocks [@b0, @b1) all have data, 0 if not, or -errno (ci->mu held). */
static int all_data(struct cl_ctx *cx, struct cl_inode *ci, uint64_t b0, uint64_t b1)
{
	int rc = map_cover(cx, ci, b1);

	for (uint64_t b = b0; !rc && b < b1;) {
		const struct meta_map *m = map_find(ci, b);

		if (!m || m->state != META_MAP_DATA)
			return 0;
		b = m->fblk + m->nblk;
	}
	return rc ? rc : 1;
}

/*
 * Blocks [@b0, @b1) of the file all get volume blocks: holes are allocated
 * by the MDS, unwritten (ci->mu held).
 */
static int map_alloc(struct cl_ctx *cx, struct cl_inode *ci, uint64_t b0, uint64_t b1)
{
	int rc = map_cover(cx, ci, b1);

	for (uint64_t b = b0; !rc && b < b1;) {
		const struct meta_map *m = map_find(ci, b);
		uint64_t e;

		if (!m)
			return -EIO;
		e = m->fblk + m->nblk < b1 ? m->fblk + m->nblk : b1;
		if (m->state == META_MAP_HOLE)
			rc = alloc(cx, ci, b, e - b);   /* the map changed: look again */
		else
			b = e;
	}
	return rc;
}

/*
 * A buffered write under page-dirty at WRITE (ci->mu held): its blocks are
 * allocated, its bytes go into dirty pages that say where they belong on
 * the volume (a partly written block not cached is read first, or zeros if
 * unwritten).  *@done: bytes cached from @off on.
 */
static int wb_put(struct cl_ctx *cx, struct cl_inode *ci, const char *buf, uint64_t off,
		  size_t len, size_t *done)
{
	uint64_t bs = cx->bs, end = off + len, b0 = off / bs, b1 = (end + bs - 1) / bs;
	struct cl_pcf *f = pcf_of(cx, ci);
	char *base = NULL;
	int rc;

	*done = 0;
	if (!f)
		return -ENOMEM;
	rc = map_alloc(cx, ci, b0, b1);
	for (uint64_t b = b0; !rc && b < b1; b++) {
		const struct meta_map *m = map_find(ci, b);
		uint64_t s = off > b * bs ? off : b * bs, e = end < (b + 1) * bs ? end : (b + 1) * bs;
		uint64_t pblk;
		bool unw;

		if (!m || m->state == META_MAP_HOLE) {
			rc = -EIO;
			break;
		}
		unw = m->state == META_MAP_UNWRITTEN;
		pblk = m->pblk + (b - m->fblk);
		rc = cl_pc_put(cx->pc, f, b, (size_t)(s - b * bs), buf + (s - off), (size_t)(e - s),
			       pblk, unw, NULL);
		if (rc == -ENOENT) {
			if (!base)
				base = malloc(bs);
			if (!base) {
				rc = -ENOMEM;
				break;
			}
			memset(base, 0, bs);
			rc = unw ? 0 : xvm_read(cx->dev, base, bs, vol_off(cx, pblk));
			if (!rc)
				rc = cl_pc_put(cx->pc, f, b, (size_t)(s - b * bs), buf + (s - off),
					       (size_t)(e - s), pblk, unw, base);
		}
		if (!rc)
			*done = (size_t)(e - off);
	}
	free(base);
	return rc;
}

/* One write-back of a file, shared by its writers (wb_flush). */
struct wb_job {
	struct cl_ctx *cx;
	struct cl_inode *ci;
	struct cl_pcf *f;
	pthread_mutex_t mu;             /* protects the fields below */
	const uint64_t *blks;           /* the dirty blocks when it started, ascending */
	size_t n, next;                 /* their number; the first not yet taken */
	int rc;                         /* the first error */
};

/* Take runs of @j and write them until none is left; 0 or -errno. */
static int wb_runs(struct wb_job *j)
{
	struct cl_ctx *cx = j->cx;
	struct cl_inode *ci = j->ci;
	char *buf = malloc((size_t)CL_WB_RUN_BLOCKS * cx->bs);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		uint64_t blk0, pblk, ticket;
		size_t used, nb;
		bool unw;
		int wrc;

		pthread_mutex_lock(&j->mu);
		nb = 0;
		while (!nb && j->next < j->n) {
			nb = cl_pc_run(cx->pc, j->f, j->blks + j->next, j->n - j->next,
				       CL_WB_RUN_BLOCKS, buf, &used, &blk0, &pblk, &unw, &ticket);
			j->next += used;
		}
		pthread_mutex_unlock(&j->mu);
		if (!nb)
			break;
		wrc = xvm_write(cx->dev, buf, nb * cx->bs, vol_off(cx, pblk));
		if (wrc == BLK_EFENCED)
			wrc = -EIO;
		if (!wrc && unw) {
			pthread_mutex_lock(&ci->mu);
			wrc = pend_add(ci, blk0, nb, pblk);
			if (!wrc)
				wrc = map_set(ci, blk0, nb, pblk, META_MAP_DATA);
			pthread_mutex_unlock(&ci->mu);
		}
		cl_pc_written(cx->pc, j->f, blk0, nb, ticket, wrc);
		if (wrc) {
			fprintf(stderr, "cxfsd: writing back %zu block(s) of inode %llu: %s\n", nb,
				(unsigned long long)ci->ino, strerror(-wrc));
			pthread_mutex_lock(&ci->mu);
			if (!ci->wb_err)
				ci->wb_err = wrc;
			pthread_mutex_unlock(&ci->mu);
			if (!rc)
				rc = wrc;
		}
	}
	free(buf);
	return rc;
}

static void *wb_helper(void *arg)
{
	struct wb_job *j = arg;
	int rc = wb_runs(j);

	pthread_mutex_lock(&j->mu);
	if (!j->rc)
		j->rc = rc;
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/*
 * Write @ci's dirty pages back in runs of up to CL_WB_RUN_BLOCKS, one
 * write-back of the file at a time (flush_mu) but up to CL_WB_THREADS runs
 * at once (the block layer queues their commands together), with no call
 * to the MDS: their blocks were allocated when written.  Blocks written
 * unwritten become data here and are published later (pend).  0, or the
 * first error, which also stays in wb_err for the next fsync or close (the
 * pages of a failed run go).
 */
static int wb_flush(struct cl_ctx *cx, struct cl_inode *ci)
{
	struct wb_job j = { .cx = cx, .ci = ci };
	pthread_t helpers[CL_WB_THREADS - 1];
	uint64_t *blks = NULL;
	size_t nh = 0;
	int rc;

	pthread_mutex_lock(&ci->flush_mu);
	pthread_mutex_lock(&ci->mu);
	j.f = ci->pcf;
	pthread_mutex_unlock(&ci->mu);
	j.n = j.f ? cl_pc_dirty_list(cx->pc, j.f, &blks) : 0;
	j.blks = blks;
	pthread_mutex_init(&j.mu, NULL);
	/* Helpers only where there is more than one run's worth. */
	while (nh < CL_WB_THREADS - 1 && j.n > (nh + 1) * CL_WB_RUN_BLOCKS / 4 &&
	       pthread_create(&helpers[nh], NULL, wb_helper, &j) == 0)
		nh++;
	rc = j.n ? wb_runs(&j) : 0;
	for (size_t i = 0; i < nh; i++)
		pthread_join(helpers[i], NULL);
	if (!rc)
		rc = j.rc;
	pthread_mutex_destroy(&j.mu);
	pthread_mutex_unlock(&ci->flush_mu);
	free(blks);
	return rc;
}

/* Write @ci's dirty pages back: 0, or the first error since the last call (fsync, close). */
static int wb_sync(struct cl_ctx *cx, struct cl_inode *ci)
{
	int rc;

	(void)wb_flush(cx, ci);
	pthread_mutex_lock(&ci->mu);
	rc = ci->wb_err;
	ci->wb_err = 0;
	pthread_mutex_unlock(&ci->mu);
	return rc;
}

/*
 * Hold @c's bytes in @ci's I/O lock, with every token and range the write
 * needs held already: as a writer, so that this node's reads see the write
 * whole or not at all (they let cl_inode.mu go while they read the volume,
 * and the write-back of what the write caches can reach the volume
 * meanwhile); as a reader for O_DIRECT, whose writers go on in parallel
 * (as XFS's), and for the write-back of a shared map's pages
 * (VN_IO_PAGES).  An O_APPEND write, whose place is known only later,
 * holds the whole file.  true.
 */
static bool io_lock(struct cl_inode *ci, const struct vn_call *c, struct cx_rlock_hold *h)
{
	uint64_t off = c->u.write.off, end = off + c->u.write.size;

	if (c->u.write.flags & O_APPEND)
		off = 0, end = UINT64_MAX;
	cx_rlock_lock(ci->io, h, off, end, !(c->u.write.flags & (O_DIRECT | VN_IO_PAGES)));
	return true;
}

static int c_write(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	struct cl_ctx *cx = cb->cx;
	struct cl_inode *ci = cb->ci;
	uint64_t off = c->u.write.off, b0, b1;
	size_t len = c->u.write.size, done = 0;
	/* Large whole-block writes gain nothing from a copy: they are written through. */
	bool whole = len >= CL_WT_BYTES && off % cx->bs == 0 && len % cx->bs == 0 &&
		     !(c->u.write.flags & O_APPEND);
	bool behind = cl_pc_writes_back(cx->pc) && !(c->u.write.flags & O_DIRECT) && !whole;
	/* Sharing the file with other nodes' writers: direct, or buffered by byte ranges. */
	bool shared = cl_write_shares(c, cx->bs) || cl_range_wanted(cx, ci, c);
	struct cl_range_hold rh = { 0 };
	struct cx_rlock_hold ioh;
	struct tok_set want;
	bool iolk = false;
	int rc;

	if (len == 0)
		return 0;
	/* Room in the cache first, holding nothing a flush or a recall needs. */
	if (behind) {
		rc = cl_pc_reserve(cx->pc, len);
		if (rc)
			return rc;
	}
	cl_io_begin(ci);
again:
	if (shared)
		cl_swrite_set(&want);
	else
		cl_write_set(&want, c->u.write.flags & O_DIRECT, false);
	rc = c_acquire(cb, &want);
	if (rc) {
		cl_io_end(cx, ci);
		return rc;
	}
	/* Alone on the file: its ranges go (cl_range.c). */
	if (!shared)
		cl_range_forget(cx, ci);
	/* Written through: cached writes of the file go first (they are older). */
	if (!behind)
		(void)wb_flush(cx, ci);
	if (!shared)
		iolk = io_lock(ci, c, &ioh);
	pthread_mutex_lock(&ci->mu);
	if (!size_known(ci)) {
		ci->map_valid = false;
		rc = map_cover(cx, ci, 0);
		if (rc)
			goto out;
	}
	if (shared) {
		/*
		 * Blocks to allocate or convert, or conversions not yet
		 * published (a WRITE_DONE that converts waits for every
		 * node's EXTENT, which a sharer holds while it waits for a
		 * range): alone on the file (cl_range.c).
		 */
		rc = ci->npend ? 0 : all_data(cx, ci, off / cx->bs, (off + len + cx->bs - 1) / cx->bs);
		pthread_mutex_unlock(&ci->mu);
		if (rc > 0)
			rc = cl_range_acquire(cx, ci, off, off + len,
					      c->u.write.flags & O_DIRECT ? CL_RANGE_DIRECT :
									    CL_RANGE_WRITE,
					      &rh);
		else if (rc == 0)
			shared = false;
		if (rc || !shared) {
			c_release_toks(cb, &want);
			if (rc) {
				cl_io_end(cx, ci);
				return early(rc);
			}
			goto again;
		}
		iolk = io_lock(ci, c, &ioh);
		pthread_mutex_lock(&ci->mu);
	}
	if (c->u.write.flags & O_APPEND) {
		if (off != ci->attr.size)
			ci->stale_pages = true;   /* the kernel put the data elsewhere */
		off = ci->attr.size;
	}
	if (off >= META_MAX_FILE_SIZE) {
		rc = -EFBIG;
		goto out;
	}
	if (len > META_MAX_FILE_SIZE - off)
		len = (size_t)(META_MAX_FILE_SIZE - off);
	b0 = off / cx->bs;
	b1 = (off + len + cx->bs - 1) / cx->bs;
	if (behind) {
		rc = wb_put(cx, ci, c->u.write.buf, off, len, &done);
	} else {
		/* Cached copies go before (none is read meanwhile) and after (none read before stays). */
		if (ci->pcf)
			cl_pc_drop(cx->pc, ci->pcf, b0, b1);
		rc = write_locked(cx, ci, c->u.write.buf, off, len, &done);
		if (ci->pcf)
			cl_pc_drop(cx->pc, ci->pcf, b0, b1);
	}
	if (done) {
		struct timespec now = now_ts();

		if (off + done > ci->attr.size)
			ci->attr.size = off + done;
		ci->attr.mtime = ci->attr.ctime = now;
		ci->size_dirty = ci->times_dirty = ci->unpublished = true;
		/*
		 * Cut short because this node becomes the MDS: the whole write
		 * starts again on the new chain, at the offset chosen here (the
		 * part already written is written again with the same bytes),
		 * never as a short write.
		 */
		if (rc == -VN_EMIGRATING) {
			c->u.write.off = off;
			c->u.write.flags &= ~O_APPEND;
		} else {
			rc = (int)done;
		}
	}
out:
	pthread_mutex_unlock(&ci->mu);
	if (iolk)
		cx_rlock_unlock(ci->io, &ioh);
	cl_range_release(cx, &rh);
	c_release_toks(cb, &want);
	cl_io_end(cx, ci);
	return rc;
}

/* ---- the flusher ---------------------------------------------------------- */

/*
 * Write dirty pages back in the background: when a quarter of the bound
 * is dirty, a writer waits for room, or CL_WB_AGE_MS passed with something
 * dirty.  It holds no token: a recall's FLUSH duty waits for it on the
 * inode's flush_mu before the tokens go back.
 */
static void *flusher(void *arg)
{
	struct cl_ctx *cx = arg;
	uint64_t inos[CL_WB_FILES];

	while (cl_pc_flusher_wait(cx->pc, CL_WB_AGE_MS)) {
		size_t n = cl_pc_dirty_files(cx->pc, inos, CL_WB_FILES);

		for (size_t i = 0; i < n; i++) {
			struct cl_inode *ci = cl_inode_get(cx, inos[i], false);

			if (ci)
				(void)wb_flush(cx, ci);
			cl_inode_put(cx, ci);
		}
	}
	return NULL;
}

int cl_wb_start(struct cl_ctx *cx)
{
	int rc = -pthread_create(&cx->flusher, NULL, flusher, cx);

	cx->flusher_started = rc == 0;
	return rc;
}

void cl_wb_stop(struct cl_ctx *cx)
{
	uint64_t inos[CL_WB_FILES];
	size_t n;

	if (!cx->flusher_started)
		return;
	/*
	 * An orderly stop: every cached write reaches the volume (files still
	 * open then keep their runs unpublished, as written-through ones do:
	 * the MDS may be gone, and the stop must not wait for it).
	 */
	while (!cx->is_server && (n = cl_pc_dirty_files(cx->pc, inos, CL_WB_FILES)) > 0) {
		size_t left = n;

		for (size_t i = 0; i < n; i++) {
			struct cl_inode *ci = cl_inode_get(cx, inos[i], false);

			if (ci && wb_flush(cx, ci) == 0)
				left--;
			cl_inode_put(cx, ci);
		}
		if (left == n)
			break;   /* no progress (the volume fails): the log said why */
	}
	cl_pc_stop(cx->pc);
	pthread_join(cx->flusher, NULL);
	cx->flusher_started = false;
}

static int c_inactive(struct vn_bhv *self, struct vnode *vn, struct vn_call *c)
{
	struct cl_cbhv *cb = cb_of(self);
	struct cl_inode *ci = cb->ci;
	bool had, refused;

	(void)wb_flush(cb->cx, ci);
	(void)publish(cb->cx, ci);
	pthread_mutex_lock(&ci->mu);
	had = ci->has_exist;
	ci->has_exist = false;
	refused = ci->exist_refused;
	pthread_mutex_unlock(&ci->mu);
	if (had) {
		struct tok_set ex;

		tok_set_clear(&ex);
		tok_set_add(&ex, TOK_EXIST, TOK_READ);
		tok_client_release(cb->cx->tc, ci->ino, &ex);
	}
	/*
	 * Tokens stay cached until the MDS recalls them (a vnode also goes and
	 * comes back between a lookup and the kernel's reference, and what the
	 * kernel keeps must stay covered), except for a file that lost its
	 * last name while this node used it: the MDS frees it when they come.
	 */
	if (refused)
		(void)tok_client_forget(cb->cx->tc, ci->ino);
	return 0;
}

static void c_destroy(struct vn_bhv *self, struct vnode *vn)
{
	struct cl_cbhv *cb = cb_of(self);

	(void)vn;
	cl_inode_put(cb->cx, cb->ci);
	free(cb);
}

static const struct vn_ops cl_client_ops = {
	.name = "client",
	.position = VN_POS_CLIENT,
	.op = {
		[VN_OP_GETATTR] = c_getattr,
		[VN_OP_OPEN] = c_getattr,
		[VN_OP_SETATTR] = c_setattr,
		[VN_OP_LOOKUP] = c_lookup,
		[VN_OP_MKNOD] = c_names,
		[VN_OP_LINK] = c_names,
		[VN_OP_UNLINK] = c_names,
		[VN_OP_RENAME] = c_rename,
		[VN_OP_READLINK] = c_forward,
		[VN_OP_RELEASE] = c_release,
		[VN_OP_READ] = c_read,
		[VN_OP_WRITE] = c_write,
		[VN_OP_FSYNC] = c_fsync,
		[VN_OP_READDIR] = c_forward,
		[VN_OP_STATFS] = c_forward,
		[VN_OP_SETXATTR] = c_forward,
		[VN_OP_GETXATTR] = c_getxattr,
		[VN_OP_LISTXATTR] = c_forward,
		[VN_OP_REMOVEXATTR] = c_forward,
		[VN_OP_FALLOCATE] = c_fallocate,
		[VN_OP_LSEEK] = c_forward,
		[VN_OP_GETLK] = c_getlk,
		[VN_OP_SETLK] = c_setlk,
		[VN_OP_INACTIVE] = c_inactive,
	},
	.destroy = c_destroy,
};

int cl_client_shape(struct cl_ctx *cx, struct vnode *vn)
{
	struct cl_cbhv *cb = calloc(1, sizeof(*cb));
	int rc;

	if (!cb)
		return -ENOMEM;
	cb->cx = cx;
	cb->ci = cl_inode_get(cx, vn_ino(vn), true);
	if (!cb->ci) {
		free(cb);
		return -ENOMEM;
	}
	cb->bhv.ops = &cl_client_ops;
	cb->bhv.priv = cb;
	rc = vn_bhv_insert(vn, &cb->bhv);
	if (rc)
		c_destroy(&cb->bhv, vn);
	return rc;
}
