/*
 * meta_store.c - the metadata store: schema, transactions with group commit,
 * and every metadata operation of the filesystem, on SQLite over the volume.
 *
 * Sections:
 *   1. schema and prepared statements
 *   2. transactions: enter/leave, savepoints per operation, the commit thread
 *   3. format, open, close
 *   4. attributes and namespace operations
 *   5. extended attributes
 *   6. data mapping, allocation, fallocate and seek
 *
 * Lock order: commit mutex -> store mutex -> (nothing).  Everything in
 * struct meta_store below `mu` is protected by it, except the fields marked
 * constant (and `durable`, written under it and read without it).
 */
#include "meta/meta_store.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "xvm/xvm.h"
#include "meta/meta_alloc.h"
#include "meta/meta_vfs.h"

/* ---- 1. schema and prepared statements -------------------------------- */

/*
 * The requests of cluster nodes applied (struct meta_req): what a duplicate
 * must be answered, committed with the change.  Created at open too, for
 * volumes formatted before it existed.
 */
#define META_REQDONE_DDL \
	"CREATE TABLE IF NOT EXISTS reqdone(node INTEGER NOT NULL, reqid INTEGER NOT NULL," \
	" ino INTEGER NOT NULL, gen INTEGER NOT NULL, txn INTEGER NOT NULL, seq INTEGER NOT NULL," \
	" PRIMARY KEY(node, reqid)) WITHOUT ROWID;"
/* A request whose id is a multiple of this prunes its node's older rows. */
#define META_REQ_PRUNE_EVERY 64

static const char meta_schema[] =
	"CREATE TABLE fsinfo(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE inode(ino INTEGER PRIMARY KEY, gen INTEGER NOT NULL, mode INTEGER NOT NULL,"
	" nlink INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
	" rdev INTEGER NOT NULL DEFAULT 0, size INTEGER NOT NULL DEFAULT 0,"
	" nblocks INTEGER NOT NULL DEFAULT 0, atime INTEGER NOT NULL, mtime INTEGER NOT NULL,"
	" ctime INTEGER NOT NULL, btime INTEGER NOT NULL, parent INTEGER NOT NULL DEFAULT 0,"
	" target BLOB);"
	"CREATE TABLE dirent(parent INTEGER NOT NULL, cookie INTEGER NOT NULL, name BLOB NOT NULL,"
	" ino INTEGER NOT NULL, type INTEGER NOT NULL, PRIMARY KEY(parent, cookie)) WITHOUT ROWID;"
	"CREATE UNIQUE INDEX dirent_name ON dirent(parent, name);"
	"CREATE TABLE extent(ino INTEGER NOT NULL, fblk INTEGER NOT NULL, nblk INTEGER NOT NULL,"
	" pblk INTEGER NOT NULL, unwritten INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(ino, fblk)) WITHOUT ROWID;"
	"CREATE TABLE freemap(ag INTEGER PRIMARY KEY, bits BLOB NOT NULL);"
	"CREATE TABLE xattr(ino INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,"
	" PRIMARY KEY(ino, name)) WITHOUT ROWID;"
	"CREATE TABLE dmattr(ino INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,"
	" PRIMARY KEY(ino, name)) WITHOUT ROWID;"
	"CREATE TABLE orphan(ino INTEGER PRIMARY KEY);"
	META_REQDONE_DDL;

/* How much an operation may grow the store (st_enter). */
enum { ST_GROW_NONE, ST_GROW_DATA, ST_GROW_NAME };

enum meta_stmt {
	S_BEGIN, S_COMMIT, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
	S_INODE_GET, S_INODE_INSERT, S_INODE_SET, S_INODE_NLINK, S_INODE_TIMES_MC,
	S_INODE_DELETE, S_INODE_SIZE, S_INODE_NBLOCKS, S_INODE_ATIME,
	S_DIRENT_GET, S_DIRENT_INSERT, S_DIRENT_DELETE, S_DIRENT_ANY, S_DIRENT_LIST,
	S_DIRENT_LIST_PLUS, S_DIRENT_SET_INO, S_DIRENT_PARENT_OF, S_INODE_SET_PARENT,
	S_EXT_BEFORE, S_EXT_RANGE, S_EXT_INSERT, S_EXT_DELETE, S_EXT_UPDATE,
	S_EXT_LAST,
	S_XATTR_GET, S_XATTR_PUT, S_XATTR_DELETE, S_XATTR_LIST, S_XATTR_DELETE_ALL,
	S_DMATTR_DELETE_ALL, S_DMATTR_GET, S_DMATTR_PUT, S_DMATTR_DELETE, S_DMATTR_SCAN,
	S_INODE_BULK,
	S_PAGE_COUNT, S_FREELIST_COUNT,
	S_FREEMAP_PUT, S_FSINFO_PUT, S_ORPHAN_DEL, S_ORPHAN_IF_UNLINKED,
	S_REQ_PUT, S_REQ_GET, S_REQ_PRUNE, S_REQ_DROP_NODE,
	S__COUNT
};

static const char *const meta_sql[S__COUNT] = {
	[S_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_SAVEPOINT] = "SAVEPOINT op",
	[S_RELEASE] = "RELEASE op",
	[S_ROLLBACK_TO] = "ROLLBACK TO op",
	[S_INODE_GET] = "SELECT ino,gen,mode,nlink,uid,gid,rdev,size,nblocks,atime,mtime,ctime,btime"
			" FROM inode WHERE ino=?1",
	[S_INODE_INSERT] = "INSERT INTO inode(ino,gen,mode,nlink,uid,gid,rdev,size,nblocks,atime,"
			   "mtime,ctime,btime,target,parent)"
			   " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,0,?9,?9,?9,?9,?10,?11)",
	[S_INODE_SET] = "UPDATE inode SET mode=?2,uid=?3,gid=?4,size=?5,atime=?6,mtime=?7,ctime=?8"
			" WHERE ino=?1",
	[S_INODE_NLINK] = "UPDATE inode SET nlink=nlink+?2, ctime=?3 WHERE ino=?1",
	[S_INODE_TIMES_MC] = "UPDATE inode SET mtime=?2, ctime=?2 WHERE ino=?1",
	[S_INODE_DELETE] = "DELETE FROM inode WHERE ino=?1",
	[S_INODE_SIZE] = "UPDATE inode SET size=max(size,?2), mtime=?3, ctime=?3 WHERE ino=?1",
	[S_INODE_NBLOCKS] = "UPDATE inode SET nblocks=nblocks+?2 WHERE ino=?1",
	[S_INODE_ATIME] = "UPDATE inode SET atime=?2 WHERE ino=?1",
	[S_DIRENT_GET] = "SELECT ino,type,cookie FROM dirent WHERE parent=?1 AND name=?2",
	[S_DIRENT_INSERT] = "INSERT INTO dirent(parent,cookie,name,ino,type) VALUES(?1,?2,?3,?4,?5)",
	[S_DIRENT_DELETE] = "DELETE FROM dirent WHERE parent=?1 AND name=?2",
	[S_DIRENT_ANY] = "SELECT 1 FROM dirent WHERE parent=?1 LIMIT 1",
	[S_DIRENT_LIST] = "SELECT cookie,name,ino,type FROM dirent WHERE parent=?1 AND cookie>?2"
			  " ORDER BY cookie",
	[S_DIRENT_LIST_PLUS] = "SELECT d.cookie,d.name,i.ino,i.gen,i.mode,i.nlink,i.uid,i.gid,i.rdev,"
			       "i.size,i.nblocks,i.atime,i.mtime,i.ctime,i.btime FROM dirent d"
			       " JOIN inode i ON i.ino=d.ino WHERE d.parent=?1 AND d.cookie>?2"
			       " ORDER BY d.cookie",
	[S_DIRENT_SET_INO] = "UPDATE dirent SET ino=?3, type=?4 WHERE parent=?1 AND name=?2",
	/* A directory's one parent is kept in its inode: ".." without a scan. */
	[S_DIRENT_PARENT_OF] = "SELECT parent FROM inode WHERE ino=?1 AND parent!=0",
	[S_INODE_SET_PARENT] = "UPDATE inode SET parent=?2 WHERE ino=?1",
	[S_EXT_BEFORE] = "SELECT fblk,nblk,pblk,unwritten FROM extent WHERE ino=?1 AND fblk<=?2"
			 " ORDER BY fblk DESC LIMIT 1",
	[S_EXT_RANGE] = "SELECT fblk,nblk,pblk,unwritten FROM extent WHERE ino=?1 AND fblk>?2"
			" AND fblk<?3 ORDER BY fblk",
	[S_EXT_INSERT] = "INSERT INTO extent(ino,fblk,nblk,pblk,unwritten) VALUES(?1,?2,?3,?4,?5)",
	[S_EXT_DELETE] = "DELETE FROM extent WHERE ino=?1 AND fblk=?2",
	[S_EXT_UPDATE] = "UPDATE extent SET nblk=?3 WHERE ino=?1 AND fblk=?2",
	[S_EXT_LAST] = "SELECT fblk,nblk,pblk,unwritten FROM extent WHERE ino=?1 AND fblk<?2"
		       " ORDER BY fblk DESC LIMIT 1",
	[S_XATTR_GET] = "SELECT value FROM xattr WHERE ino=?1 AND name=?2",
	[S_XATTR_PUT] = "INSERT OR REPLACE INTO xattr(ino,name,value) VALUES(?1,?2,?3)",
	[S_XATTR_DELETE] = "DELETE FROM xattr WHERE ino=?1 AND name=?2",
	[S_XATTR_LIST] = "SELECT name FROM xattr WHERE ino=?1 ORDER BY name",
	[S_XATTR_DELETE_ALL] = "DELETE FROM xattr WHERE ino=?1",
	[S_DMATTR_DELETE_ALL] = "DELETE FROM dmattr WHERE ino=?1",
	[S_DMATTR_GET] = "SELECT value FROM dmattr WHERE ino=?1 AND name=?2",
	[S_DMATTR_PUT] = "INSERT OR REPLACE INTO dmattr(ino,name,value) VALUES(?1,?2,?3)",
	[S_DMATTR_DELETE] = "DELETE FROM dmattr WHERE ino=?1 AND name=?2",
	[S_DMATTR_SCAN] = "SELECT ino,value FROM dmattr WHERE name=?1",
	[S_INODE_BULK] = "SELECT ino,gen,mode,nlink,uid,gid,rdev,size,nblocks,atime,mtime,ctime,btime"
			 " FROM inode WHERE ino>=?1 AND (mode & 61440)=32768 ORDER BY ino LIMIT ?2",
	[S_PAGE_COUNT] = "PRAGMA page_count",
	[S_FREELIST_COUNT] = "PRAGMA freelist_count",
	[S_FREEMAP_PUT] = "INSERT OR REPLACE INTO freemap(ag,bits) VALUES(?1,?2)",
	[S_FSINFO_PUT] = "INSERT OR REPLACE INTO fsinfo(key,value) VALUES(?1,?2)",
	[S_ORPHAN_DEL] = "DELETE FROM orphan WHERE ino=?1",
	[S_ORPHAN_IF_UNLINKED] = "INSERT OR IGNORE INTO orphan SELECT ino FROM inode WHERE ino=?1"
				 " AND nlink<=0",
	[S_REQ_PUT] = "INSERT OR REPLACE INTO reqdone(node,reqid,ino,gen,txn,seq)"
		       " VALUES(?1,?2,?3,?4,?5,?6)",
	[S_REQ_GET] = "SELECT ino,gen,txn,seq FROM reqdone WHERE node=?1 AND reqid=?2",
	[S_REQ_PRUNE] = "DELETE FROM reqdone WHERE node=?1 AND reqid<?2",
	[S_REQ_DROP_NODE] = "DELETE FROM reqdone WHERE node=?1",
};

struct meta_store {
	struct xvm_vol *dev;          /* constant */
	struct meta_sb sb;            /* constant */
	struct meta_vfs *vfs;         /* constant */
	uint32_t bshift;              /* constant: log2 of the block size */
	struct meta_store_opts opts;  /* constant */
	pthread_t committer;          /* constant */
	pthread_mutex_t commit_mu;    /* one commit at a time; taken before mu */

	pthread_mutex_t mu;
	pthread_cond_t commit_cv;     /* wakes the commit thread */
	sqlite3 *db;
	sqlite3_stmt *stmt[S__COUNT];
	struct meta_alloc *alloc;
	int in_txn;                   /* a transaction is open */
	int stopping;                 /* the commit thread must exit */
	int dead;                     /* a commit failed: everything gives -EIO */
	int alloc_touched;            /* the current operation changed the allocator */
	uint64_t txn_ops;             /* operations in the open transaction */
	struct timespec txn_start;    /* when the open transaction began */
	uint64_t next_ino;            /* next inode number to hand out */
	uint64_t next_cookie;         /* next directory cookie */
	uint64_t mount_gen;           /* generation given to new inodes */
	uint64_t txn_at_open;         /* constant: the last transaction committed before the open */
	uint64_t txn_open;            /* number of the open (or next) transaction */
	_Atomic uint64_t durable;     /* last transaction whose flush completed (read without mu) */
	uint64_t next_seq;            /* order of the changes of nodes' requests */
	_Atomic uint64_t local_txn;   /* last transaction with a change no node's request made */
	int op_changes0;              /* sqlite3_total_changes() when the operation began */
	bool op_losable;              /* no node can depend on its change: not local_txn */
	struct meta_store_stats stats;
};

/* The request of a cluster node this thread applies (meta_req_set), or NULL. */
static _Thread_local struct meta_req *meta_cur_req;

static sqlite3_stmt *stmt_get(struct meta_store *st, enum meta_stmt s)
{
	sqlite3_stmt *q = st->stmt[s];

	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return q;
}

/* Map an SQLite result to a negative errno. */
static int sql_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_TOOBIG:
		return -E2BIG;
	default:
		return -EIO;
	}
}

/* Run a statement that returns no rows. */
static int step_done(sqlite3_stmt *q)
{
	int rc = sqlite3_step(q);

	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : sql_errno(rc);
}

int64_t meta_now_ns(void)
{
	struct timespec ts;

	/* The kernel's file time stamps tick with the coarse clock too. */
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec ns_to_ts(int64_t ns)
{
	struct timespec ts;

	ts.tv_sec = ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += 1000000000;
		ts.tv_sec--;
	}
	return ts;
}

static int64_t ts_to_ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint32_t mode_type(uint32_t mode)
{
	return (mode & S_IFMT) >> 12;
}

/* Read inode columns starting at @col into @a. */
static void attr_from_row(sqlite3_stmt *q, int col, struct vn_attr *a)
{
	a->ino = (uint64_t)sqlite3_column_int64(q, col + 0);
	a->gen = (uint64_t)sqlite3_column_int64(q, col + 1);
	a->mode = (uint32_t)sqlite3_column_int64(q, col + 2);
	a->nlink = (uint32_t)sqlite3_column_int64(q, col + 3);
	a->uid = (uint32_t)sqlite3_column_int64(q, col + 4);
	a->gid = (uint32_t)sqlite3_column_int64(q, col + 5);
	a->rdev = (uint64_t)sqlite3_column_int64(q, col + 6);
	a->size = (uint64_t)sqlite3_column_int64(q, col + 7);
	a->blocks = (uint64_t)sqlite3_column_int64(q, col + 8) * 8;
	a->atime = ns_to_ts(sqlite3_column_int64(q, col + 9));
	a->mtime = ns_to_ts(sqlite3_column_int64(q, col + 10));
	a->ctime = ns_to_ts(sqlite3_column_int64(q, col + 11));
	a->btime = ns_to_ts(sqlite3_column_int64(q, col + 12));
}

static int inode_get(struct meta_store *st, uint64_t ino, struct vn_attr *a)
{
	sqlite3_stmt *q = stmt_get(st, S_INODE_GET);
	int rc;

	sqlite3_bind_int64(q, 1, (int64_t)ino);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		attr_from_row(q, 0, a);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : sql_errno(rc);
	}
	sqlite3_reset(q);
	return rc;
}

static int inode_put(struct meta_store *st, const struct vn_attr *a)
{
	sqlite3_stmt *q = stmt_get(st, S_INODE_SET);

	sqlite3_bind_int64(q, 1, (int64_t)a->ino);
	sqlite3_bind_int64(q, 2, a->mode);
	sqlite3_bind_int64(q, 3, a->uid);
	sqlite3_bind_int64(q, 4, a->gid);
	sqlite3_bind_int64(q, 5, (int64_t)a->size);
	sqlite3_bind_int64(q, 6, ts_to_ns(a->atime));
	sqlite3_bind_int64(q, 7, ts_to_ns(a->mtime));
	sqlite3_bind_int64(q, 8, ts_to_ns(a->ctime));
	return step_done(q);
}

static int inode_nlink(struct meta_store *st, uint64_t ino, int delta, int64_t now)
{
	sqlite3_stmt *q = stmt_get(st, S_INODE_NLINK);

	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, delta);
	sqlite3_bind_int64(q, 3, now);
	return step_done(q);
}

static int inode_set_parent(struct meta_store *st, uint64_t ino, uint64_t parent)
{
	sqlite3_stmt *q = stmt_get(st, S_INODE_SET_PARENT);

	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, (int64_t)parent);
	return step_done(q);
}

static int inode_touch_mc(struct meta_store *st, uint64_t ino, int64_t now)
{
	sqlite3_stmt *q = stmt_get(st, S_INODE_TIMES_MC);

	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, now);
	return step_done(q);
}

static int inode_nblocks(struct meta_store *st, uint64_t ino, int64_t delta)
{
	sqlite3_stmt *q = stmt_get(st, S_INODE_NBLOCKS);

	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, delta);
	return step_done(q);
}

static int check_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		return -ENOENT;
	if (len > META_NAME_MAX)
		return -ENAMETOOLONG;
	if (strchr(name, '/'))
		return -EINVAL;
	return 0;
}

static int is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* Look a name up: *ino, *type; -ENOENT if absent. */
static int dirent_get(struct meta_store *st, uint64_t dir, const char *name, uint64_t *ino,
		      uint32_t *type)
{
	sqlite3_stmt *q = stmt_get(st, S_DIRENT_GET);
	int rc;

	sqlite3_bind_int64(q, 1, (int64_t)dir);
	sqlite3_bind_blob(q, 2, name, (int)strlen(name), SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*ino = (uint64_t)sqlite3_column_int64(q, 0);
		if (type)
			*type = (uint32_t)sqlite3_column_int64(q, 1);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : sql_errno(rc);
	}
	sqlite3_reset(q);
	return rc;
}

static int dirent_insert(struct meta_store *st, uint64_t dir, const char *name, uint64_t ino,
			 uint32_t type)
{
	sqlite3_stmt *q = stmt_get(st, S_DIRENT_INSERT);

	sqlite3_bind_int64(q, 1, (int64_t)dir);
	sqlite3_bind_int64(q, 2, (int64_t)st->next_cookie++);
	sqlite3_bind_blob(q, 3, name, (int)strlen(name), SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, (int64_t)ino);
	sqlite3_bind_int64(q, 5, type);
	return step_done(q);
}

static int dirent_delete(struct meta_store *st, uint64_t dir, const char *name)
{
	sqlite3_stmt *q = stmt_get(st, S_DIRENT_DELETE);

	sqlite3_bind_int64(q, 1, (int64_t)dir);
	sqlite3_bind_blob(q, 2, name, (int)strlen(name), SQLITE_STATIC);
	return step_done(q);
}

static int dir_is_empty(struct meta_store *st, uint64_t dir)
{
	sqlite3_stmt *q = stmt_get(st, S_DIRENT_ANY);
	int rc;

	sqlite3_bind_int64(q, 1, (int64_t)dir);
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc == SQLITE_DONE)
		return 1;
	return rc == SQLITE_ROW ? 0 : sql_errno(rc);
}

/* ---- 2. transactions ---------------------------------------------------- */

/*
 * Is there room in the database region for an operation that grows the
 * store by @grows (ST_GROW_*)?  The check keeps a margin free so that a
 * commit or checkpoint never runs out of room, which would be fatal:
 * namespace growth stops first, data mapping (recording extents of data
 * already written) gets half the margin more.  Caller holds the mutex.
 */
static int st_room(struct meta_store *st, int grows)
{
	uint64_t cap = st->sb.meta_db.len - META_REGION_HDR, used, margin;
	sqlite3_stmt *q;

	if (grows == ST_GROW_NONE)
		return 0;
	q = stmt_get(st, S_PAGE_COUNT);
	used = sqlite3_step(q) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(q, 0) : 0;
	sqlite3_reset(q);
	q = stmt_get(st, S_FREELIST_COUNT);
	if (sqlite3_step(q) == SQLITE_ROW)
		used -= (uint64_t)sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	used *= 4096;
	margin = (1u << 20) + cap / 32;
	if (grows == ST_GROW_DATA)
		margin /= 2;
	return used + margin > cap ? -ENOSPC : 0;
}

/* Take the mutex and join (or open) the transaction, inside a savepoint. */
static int st_enter(struct meta_store *st, int grows)
{
	int rc;

	pthread_mutex_lock(&st->mu);
	if (st->dead) {
		rc = -EIO;
		goto out_unlock;
	}
	rc = st_room(st, grows);
	if (rc)
		goto out_unlock;
	if (!st->in_txn) {
		rc = step_done(stmt_get(st, S_BEGIN));
		if (rc)
			goto out_unlock;
		st->in_txn = 1;
		st->txn_ops = 0;
		clock_gettime(CLOCK_MONOTONIC, &st->txn_start);
		pthread_cond_signal(&st->commit_cv);
	}
	rc = step_done(stmt_get(st, S_SAVEPOINT));
	if (rc)
		goto out_unlock;
	st->op_changes0 = sqlite3_total_changes(st->db);
	st->op_losable = false;
	return 0;
out_unlock:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/*
 * The operation changed the store for this thread's current request: note
 * it in the request, and record the request in the same savepoint, so the
 * row commits exactly when the change does.  Now and then the node's rows
 * below its oldest unanswered request go with it.  Caller holds the mutex.
 */
static int st_note_req(struct meta_store *st, struct meta_req *r)
{
	sqlite3_stmt *q;
	int rc;

	r->txn = st->txn_open;
	r->seq = ++st->next_seq;
	if (r->record) {
		q = stmt_get(st, S_REQ_PUT);
		sqlite3_bind_int64(q, 1, r->node);
		sqlite3_bind_int64(q, 2, (int64_t)r->reqid);
		sqlite3_bind_int64(q, 3, (int64_t)r->ino);
		sqlite3_bind_int64(q, 4, (int64_t)r->gen);
		sqlite3_bind_int64(q, 5, (int64_t)r->txn);
		sqlite3_bind_int64(q, 6, (int64_t)r->seq);
		rc = step_done(q);
		if (rc)
			return rc;
		if (r->reqid % META_REQ_PRUNE_EVERY == 0 && r->oldest) {
			q = stmt_get(st, S_REQ_PRUNE);
			sqlite3_bind_int64(q, 1, r->node);
			sqlite3_bind_int64(q, 2, (int64_t)r->oldest);
			rc = step_done(q);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Keep (@rc >= 0) or undo (@rc < 0) the operation's changes; drop the mutex. */
static int st_leave(struct meta_store *st, int rc)
{
	struct meta_req *r = meta_cur_req;

	if (rc >= 0 && sqlite3_total_changes(st->db) != st->op_changes0) {
		int nrc = r ? st_note_req(st, r) : 0;

		if (nrc)
			rc = nrc;
		/* A change no node can apply again (meta_store_local_pending). */
		if ((!r || r->local) && !st->op_losable)
			atomic_store(&st->local_txn, st->txn_open);
	}
	if (rc < 0)
		step_done(stmt_get(st, S_ROLLBACK_TO));
	if (rc < 0 && st->alloc_touched) {
		/* The allocator cannot be rolled back with the savepoint: stop here
		 * rather than let free space and extents disagree. */
		fprintf(stderr, "cxfs: metadata update failed after allocation (%s): the store is"
			" now read-only; unmount and run cxfs-check\n", strerror(-rc));
		st->dead = 1;
	}
	st->alloc_touched = 0;
	if (step_done(stmt_get(st, S_RELEASE)) && rc >= 0)
		rc = -EIO;
	st->txn_ops++;
	st->stats.ops++;
	if (st->txn_ops >= st->opts.commit_ops)
		pthread_cond_signal(&st->commit_cv);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

static int put_fsinfo(struct meta_store *st, const char *key, uint64_t value)
{
	sqlite3_stmt *q = stmt_get(st, S_FSINFO_PUT);

	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, (int64_t)value);
	return step_done(q);
}

/*
 * Commit the open transaction and make it durable.  The caller holds the
 * commit mutex (one commit at a time) but not the store mutex: SQLite writes
 * the log under the store mutex (synchronous=NORMAL, so COMMIT does not
 * sync), and the device flush runs outside it, so operations go on while
 * the log reaches stable storage.  Blocks freed by the transaction become
 * allocatable only once the flush is done, so a crash can never leave a
 * deleted file's extent on blocks that already hold another file's data.
 * A failure here is fatal for the store.
 */
static int st_commit(struct meta_store *st)
{
	struct timespec t0, t1;
	const void *bits;
	uint64_t txn;
	size_t mark;
	uint32_t ag;
	int rc = 0;

	pthread_mutex_lock(&st->mu);
	if (st->dead) {
		pthread_mutex_unlock(&st->mu);
		return -EIO;
	}
	if (!st->in_txn) {
		pthread_mutex_unlock(&st->mu);
		return xvm_flush(st->dev);      /* data writes may still need it */
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (meta_alloc_take_dirty(st->alloc, &ag, &bits)) {
		sqlite3_stmt *q = stmt_get(st, S_FREEMAP_PUT);

		sqlite3_bind_int64(q, 1, ag);
		sqlite3_bind_blob(q, 2, bits, META_AG_BYTES, SQLITE_STATIC);
		rc = step_done(q);
		if (rc)
			goto out_dead;
	}
	rc = put_fsinfo(st, "next_ino", st->next_ino);
	if (!rc)
		rc = put_fsinfo(st, "next_cookie", st->next_cookie);
	if (!rc)
		rc = put_fsinfo(st, "txn", st->txn_open);
	if (!rc)
		rc = put_fsinfo(st, "req_seq", st->next_seq);
	if (!rc)
		rc = step_done(stmt_get(st, S_COMMIT));
	/* COMMIT did not sync (synchronous=NORMAL): put the log on the volume now. */
	if (!rc)
		rc = meta_vfs_write_out(st->vfs);
	if (rc)
		goto out_dead;
	st->in_txn = 0;
	txn = st->txn_open++;
	mark = meta_alloc_seal(st->alloc);
	pthread_mutex_unlock(&st->mu);

	rc = xvm_flush(st->dev);

	pthread_mutex_lock(&st->mu);
	if (rc)
		goto out_dead;
	meta_alloc_release_sealed(st->alloc, mark);
	/* Commits are serialized (commit mutex): numbers become durable in order. */
	st->durable = txn;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	st->stats.commits++;
	st->stats.commit_usec += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
					    (t1.tv_nsec - t0.tv_nsec) / 1000);
	pthread_mutex_unlock(&st->mu);
	return 0;
out_dead:
	fprintf(stderr, "cxfs: metadata commit failed (%s): the store is now read-only;"
		" unmount and run cxfs-check\n", rc == -EIO ? "I/O error" : sqlite3_errmsg(st->db));
	st->dead = 1;
	pthread_mutex_unlock(&st->mu);
	return -EIO;
}

static void *st_commit_thread(void *arg)
{
	struct meta_store *st = arg;

	pthread_mutex_lock(&st->mu);
	while (!st->stopping) {
		if (!st->in_txn || st->dead) {
			pthread_cond_wait(&st->commit_cv, &st->mu);
			continue;
		}
		struct timespec due = st->txn_start;

		due.tv_sec += st->opts.commit_ms / 1000;
		due.tv_nsec += (long)(st->opts.commit_ms % 1000) * 1000000;
		if (due.tv_nsec >= 1000000000) {
			due.tv_sec++;
			due.tv_nsec -= 1000000000;
		}
		if (st->txn_ops < st->opts.commit_ops &&
		    pthread_cond_timedwait(&st->commit_cv, &st->mu, &due) != ETIMEDOUT)
			continue;
		pthread_mutex_unlock(&st->mu);
		pthread_mutex_lock(&st->commit_mu);
		st_commit(st);
		pthread_mutex_unlock(&st->commit_mu);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

int meta_store_sync(struct meta_store *st)
{
	int rc;

	pthread_mutex_lock(&st->commit_mu);
	rc = st_commit(st);
	pthread_mutex_unlock(&st->commit_mu);
	return rc;
}

bool meta_store_local_pending(struct meta_store *st)
{
	return atomic_load(&st->local_txn) > atomic_load(&st->durable);
}

void meta_store_txns(struct meta_store *st, uint64_t *open, uint64_t *durable)
{
	/* Every reply to a node carries durable: it does not wait for a commit's log write. */
	if (durable)
		*durable = atomic_load(&st->durable);
	if (open) {
		pthread_mutex_lock(&st->mu);
		*open = st->txn_open;
		pthread_mutex_unlock(&st->mu);
	}
}

uint64_t meta_store_txn_at_open(const struct meta_store *st)
{
	return st->txn_at_open;
}

uint64_t meta_store_avail_blocks(struct meta_store *st)
{
	uint64_t n;

	pthread_mutex_lock(&st->mu);
	n = meta_alloc_available(st->alloc);
	pthread_mutex_unlock(&st->mu);
	return n;
}

void meta_req_set(struct meta_req *r)
{
	meta_cur_req = r;
}

int meta_req_find(struct meta_store *st, uint32_t node, uint64_t reqid, struct meta_req *out)
{
	sqlite3_stmt *q;
	int rc;

	pthread_mutex_lock(&st->mu);
	if (st->dead) {
		rc = -EIO;
		goto out_unlock;
	}
	q = stmt_get(st, S_REQ_GET);
	sqlite3_bind_int64(q, 1, node);
	sqlite3_bind_int64(q, 2, (int64_t)reqid);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		out->ino = (uint64_t)sqlite3_column_int64(q, 0);
		out->gen = (uint64_t)sqlite3_column_int64(q, 1);
		out->txn = (uint64_t)sqlite3_column_int64(q, 2);
		out->seq = (uint64_t)sqlite3_column_int64(q, 3);
		rc = 1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : sql_errno(rc);
	}
	sqlite3_reset(q);
out_unlock:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int meta_req_drop_node(struct meta_store *st, uint32_t node)
{
	struct meta_req *saved = meta_cur_req;
	sqlite3_stmt *q;
	int rc;

	meta_cur_req = NULL;        /* not a change of the request this thread applies */
	rc = st_enter(st, ST_GROW_NONE);
	if (!rc) {
		q = stmt_get(st, S_REQ_DROP_NODE);
		sqlite3_bind_int64(q, 1, node);
		rc = st_leave(st, step_done(q));
	}
	meta_cur_req = saved;
	return rc;
}

void meta_store_get_stats(struct meta_store *st, struct meta_store_stats *out)
{
	pthread_mutex_lock(&st->mu);
	*out = st->stats;
	pthread_mutex_unlock(&st->mu);
}

/* ---- 3. format, open, close --------------------------------------------- */

static int db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "metadata store: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return sql_errno(rc) ? sql_errno(rc) : -EIO;
	}
	return 0;
}

static int db_open(struct meta_vfs *vfs, sqlite3 **db, char *err, size_t errlen)
{
	int rc = sqlite3_open_v2("cxfs.db", db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX, meta_vfs_name(vfs));

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the metadata store: %s (its region on the volume"
			 " is damaged or unformatted; run cxfs-check)",
			 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		sqlite3_close(*db);
		*db = NULL;
		return -EIO;
	}
	/* Exclusive locking first: WAL then needs no shared-memory file. */
	return db_exec(*db, "PRAGMA locking_mode=EXCLUSIVE; PRAGMA page_size=4096;"
		       " PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		       " PRAGMA temp_store=MEMORY; PRAGMA cache_size=-65536;"
		       " PRAGMA foreign_keys=OFF;", err, errlen);
}

int meta_store_format(struct xvm_vol *dev, const char *name, uint32_t flags, uint32_t uid,
		      uint32_t gid, char *err, size_t errlen)
{
	struct meta_vfs *vfs = NULL;
	struct meta_sb sb;
	sqlite3 *db = NULL;
	char sql[512];
	int rc;

	rc = meta_sb_layout(xvm_size(dev), name ? name : "cxfs", flags, &sb);
	if (rc) {
		snprintf(err, errlen, "volume of %llu bytes is too small for cxfs (64 MiB at least)",
			 (unsigned long long)xvm_size(dev));
		return rc;
	}
	rc = meta_vfs_format(dev, &sb);
	if (rc) {
		snprintf(err, errlen, "cannot write the metadata regions: %s", strerror(-rc));
		return rc;
	}
	rc = meta_vfs_register(dev, &sb, &vfs);
	if (rc) {
		snprintf(err, errlen, "cannot set up the metadata VFS: %s", strerror(-rc));
		return rc;
	}
	rc = db_open(vfs, &db, err, errlen);
	if (rc)
		goto out_close;
	rc = db_exec(db, "BEGIN", err, errlen);
	if (!rc)
		rc = db_exec(db, meta_schema, err, errlen);
	if (rc)
		goto out_close;
	int64_t now = meta_now_ns();
	snprintf(sql, sizeof(sql),
		 "INSERT INTO inode(ino,gen,mode,nlink,uid,gid,atime,mtime,ctime,btime,parent)"
		 " VALUES(%d,1,%u,2,%u,%u,%lld,%lld,%lld,%lld,1);"
		 "INSERT INTO fsinfo VALUES('next_ino',%d),('next_cookie',1),('mount_gen',1),"
		 "('format',%u);",
		 META_ROOT_INO, (unsigned)(S_IFDIR | 0755), uid, gid, (long long)now,
		 (long long)now, (long long)now, (long long)now, META_ROOT_INO + 1,
		 META_SB_VERSION);
	rc = db_exec(db, sql, err, errlen);
	if (rc)
		goto out_close;
	/* Every AG starts empty; an all-zero bitmap row per AG. */
	{
		uint64_t nblocks = sb.data.len / sb.block_size;
		uint32_t nag = (uint32_t)((nblocks + META_AG_BLOCKS - 1) / META_AG_BLOCKS);
		sqlite3_stmt *q = NULL;
		void *zero = calloc(1, META_AG_BYTES);

		rc = zero ? sqlite3_prepare_v2(db, "INSERT INTO freemap(ag,bits) VALUES(?1,?2)", -1,
					       &q, NULL) : SQLITE_NOMEM;
		for (uint32_t ag = 0; rc == SQLITE_OK && ag < nag; ag++) {
			sqlite3_bind_int64(q, 1, ag);
			sqlite3_bind_blob(q, 2, zero, META_AG_BYTES, SQLITE_STATIC);
			rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
			sqlite3_reset(q);
		}
		sqlite3_finalize(q);
		free(zero);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "cannot write the free-space map: %s", sqlite3_errmsg(db));
			rc = -EIO;
			goto out_close;
		}
	}
	rc = db_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);", err, errlen);
	if (rc)
		goto out_close;
	/* The superblock goes last: a volume is formatted once it has one. */
	rc = meta_sb_write(dev, &sb);
	if (rc)
		snprintf(err, errlen, "cannot write the superblock: %s", strerror(-rc));
out_close:
	sqlite3_close(db);
	meta_vfs_unregister(vfs);
	return rc;
}

static int load_counters(struct meta_store *st, char *err, size_t errlen)
{
	sqlite3_stmt *q = NULL;
	int rc;

	rc = sqlite3_prepare_v2(st->db,
		"SELECT (SELECT value FROM fsinfo WHERE key='next_ino'),"
		" (SELECT max(ino) FROM inode), (SELECT value FROM fsinfo WHERE key='next_cookie'),"
		" (SELECT max(cookie) FROM dirent), (SELECT value FROM fsinfo WHERE key='mount_gen'),"
		" (SELECT value FROM fsinfo WHERE key='txn'),"
		" (SELECT value FROM fsinfo WHERE key='req_seq')",
		-1, &q, NULL);
	if (rc != SQLITE_OK || sqlite3_step(q) != SQLITE_ROW) {
		snprintf(err, errlen, "metadata store has no filesystem information: %s",
			 sqlite3_errmsg(st->db));
		sqlite3_finalize(q);
		return -EBADMSG;
	}
	uint64_t a = (uint64_t)sqlite3_column_int64(q, 0), b = (uint64_t)sqlite3_column_int64(q, 1);
	uint64_t c = (uint64_t)sqlite3_column_int64(q, 2), d = (uint64_t)sqlite3_column_int64(q, 3);

	st->next_ino = a > b + 1 ? a : b + 1;
	st->next_cookie = c > d + 1 ? c : d + 1;
	st->mount_gen = (uint64_t)sqlite3_column_int64(q, 4) + 1;
	/* What was committed before is durable: the log was flushed, or replayed. */
	st->durable = (uint64_t)sqlite3_column_int64(q, 5);
	st->txn_at_open = st->durable;
	st->txn_open = st->durable + 1;
	st->next_seq = (uint64_t)sqlite3_column_int64(q, 6);
	sqlite3_finalize(q);
	return 0;
}

static int load_freemap(struct meta_store *st, char *err, size_t errlen)
{
	uint64_t nblocks = st->sb.data.len / st->sb.block_size;
	sqlite3_stmt *q = NULL;
	int rc;

	rc = meta_alloc_create(nblocks, &st->alloc);
	if (rc)
		return rc;
	if (sqlite3_prepare_v2(st->db, "SELECT ag, bits FROM freemap", -1, &q, NULL) != SQLITE_OK)
		goto out_bad;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t ag = sqlite3_column_int64(q, 0);
		const void *bits = sqlite3_column_blob(q, 1);
		int len = sqlite3_column_bytes(q, 1);

		if (ag < 0 || ag >= meta_alloc_ag_count(st->alloc) ||
		    meta_alloc_load(st->alloc, (uint32_t)ag, bits, (size_t)len)) {
			snprintf(err, errlen, "free-space map row for AG %lld is damaged;"
				 " run cxfs-check", (long long)ag);
			sqlite3_finalize(q);
			return -EBADMSG;
		}
	}
	sqlite3_finalize(q);
	if (rc == SQLITE_DONE)
		return 0;
out_bad:
	snprintf(err, errlen, "cannot read the free-space map: %s", sqlite3_errmsg(st->db));
	return -EIO;
}

/* Free every inode that was unlinked while open when the volume was last used. */
static int reclaim_orphans(struct meta_store *st)
{
	sqlite3_stmt *q = NULL;
	uint64_t *inos = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (sqlite3_prepare_v2(st->db, "SELECT ino FROM orphan", -1, &q, NULL) != SQLITE_OK)
		return -EIO;
	while (sqlite3_step(q) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			uint64_t *p = realloc(inos, cap * sizeof(*p));

			if (!p) {
				rc = -ENOMEM;
				break;
			}
			inos = p;
		}
		inos[n++] = (uint64_t)sqlite3_column_int64(q, 0);
	}
	sqlite3_finalize(q);
	for (size_t i = 0; !rc && i < n; i++)
		rc = meta_reclaim(st, inos[i]);
	free(inos);
	return rc;
}

int meta_store_open(struct xvm_vol *dev, const struct meta_store_opts *opts,
		    struct meta_store **out, char *err, size_t errlen)
{
	struct meta_store *st;
	int rc;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->dev = dev;
	st->opts.commit_ms = opts && opts->commit_ms ? opts->commit_ms : 1000;
	st->opts.commit_ops = opts && opts->commit_ops ? opts->commit_ops : 4096;
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->commit_mu, NULL);
	{
		/* Deadlines are computed on the monotonic clock. */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&st->commit_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	rc = meta_sb_read(dev, &st->sb, err, errlen);
	if (rc)
		goto out_free;
	st->bshift = (uint32_t)__builtin_ctz(st->sb.block_size);
	rc = meta_vfs_register(dev, &st->sb, &st->vfs);
	if (rc) {
		snprintf(err, errlen, "cannot set up the metadata VFS: %s", strerror(-rc));
		goto out_free;
	}
	rc = db_open(st->vfs, &st->db, err, errlen);
	if (rc)
		goto out_unregister;
	rc = db_exec(st->db, META_REQDONE_DDL, err, errlen);
	if (rc)
		goto out_close_db;
	for (int i = 0; i < S__COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, meta_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &st->stmt[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "metadata store schema is damaged or of another"
				 " version (%s); run cxfs-check", sqlite3_errmsg(st->db));
			rc = -EBADMSG;
			goto out_close_db;
		}
	}
	rc = load_counters(st, err, errlen);
	if (!rc)
		rc = load_freemap(st, err, errlen);
	if (rc)
		goto out_close_db;
	pthread_mutex_lock(&st->mu);
	rc = step_done(stmt_get(st, S_BEGIN));
	if (!rc) {
		st->in_txn = 1;
		clock_gettime(CLOCK_MONOTONIC, &st->txn_start);
		rc = put_fsinfo(st, "mount_gen", st->mount_gen);
	}
	pthread_mutex_unlock(&st->mu);
	if (!rc && !(opts && opts->keep_orphans))
		rc = reclaim_orphans(st);
	if (!rc)
		rc = meta_store_sync(st);
	if (rc) {
		snprintf(err, errlen, "cannot update the metadata store: %s", strerror(-rc));
		goto out_close_db;
	}
	if (pthread_create(&st->committer, NULL, st_commit_thread, st)) {
		rc = -EAGAIN;
		snprintf(err, errlen, "cannot start the commit thread");
		goto out_close_db;
	}
	*out = st;
	return 0;
out_close_db:
	for (int i = 0; i < S__COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	meta_alloc_destroy(st->alloc);
out_unregister:
	meta_vfs_unregister(st->vfs);
out_free:
	pthread_mutex_destroy(&st->mu);
	pthread_mutex_destroy(&st->commit_mu);
	pthread_cond_destroy(&st->commit_cv);
	free(st);
	return rc;
}

void meta_store_close(struct meta_store *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->mu);
	st->stopping = 1;
	pthread_cond_signal(&st->commit_cv);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->committer, NULL);
	meta_store_sync(st);
	for (int i = 0; i < S__COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (!st->dead)
		sqlite3_exec(st->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	sqlite3_close(st->db);
	meta_vfs_unregister(st->vfs);
	meta_alloc_destroy(st->alloc);
	pthread_mutex_destroy(&st->mu);
	pthread_mutex_destroy(&st->commit_mu);
	pthread_cond_destroy(&st->commit_cv);
	free(st);
}

void meta_store_abandon(struct meta_store *st)
{
	pthread_mutex_lock(&st->mu);
	st->dead = 1;
	pthread_mutex_unlock(&st->mu);
}

int meta_store_checkpoint(struct meta_store *st)
{
	int rc = meta_store_sync(st);

	if (rc)
		return rc;
	pthread_mutex_lock(&st->mu);
	/* An operation that began since the commit keeps its log: skip, it is short. */
	if (!st->in_txn && !st->dead &&
	    sqlite3_exec(st->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) != SQLITE_OK)
		rc = -EIO;
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/*
 * Copy the committed store into @dst (store mutex held, no transaction
 * open), and describe the volume it came from in the copy's table
 * cxfs_backup, so that it can be checked on its own.
 */
static int backup_copy(struct meta_store *st, sqlite3 *dst, char *err, size_t errlen)
{
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", st->db, "main");
	int rc;

	if (!b) {
		snprintf(err, errlen, "cannot start the copy: %s", sqlite3_errmsg(dst));
		return -EIO;
	}
	rc = sqlite3_backup_step(b, -1);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "cannot copy the store: %s", sqlite3_errstr(rc));
		return sql_errno(rc) ? sql_errno(rc) : -EIO;
	}
	return 0;
}

static int backup_describe(struct meta_store *st, sqlite3 *dst, uint64_t txn, char *err,
			   size_t errlen)
{
	char uuid[37], *sql;
	int rc;

	meta_uuid_str(st->sb.uuid, uuid);
	sql = sqlite3_mprintf("PRAGMA journal_mode=DELETE;"
			      "CREATE TABLE cxfs_backup(key TEXT PRIMARY KEY, value);"
			      "INSERT INTO cxfs_backup VALUES('name', %Q), ('uuid', %Q),"
			      " ('block_size', %u), ('data_bytes', %llu), ('txn', %llu),"
			      " ('taken', %lld);",
			      st->sb.name, uuid, st->sb.block_size,
			      (unsigned long long)st->sb.data.len, (unsigned long long)txn,
			      (long long)time(NULL));
	if (!sql) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = db_exec(dst, sql, err, errlen);
	sqlite3_free(sql);
	return rc;
}

/* Make @path's data and its name durable. */
static int backup_fsync(const char *tmp, const char *path)
{
	char dir[4096], *slash;
	int fd, rc = 0;

	fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd))
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc)
		return rc;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

int meta_store_backup(struct meta_store *st, const char *path, char *err, size_t errlen)
{
	char tmp[4096];
	sqlite3 *dst = NULL;
	uint64_t txn = 0;
	int rc, tries;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp)) {
		snprintf(err, errlen, "path too long");
		return -ENAMETOOLONG;
	}
	unlink(tmp);
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "cannot create %s: %s", tmp,
			 dst ? sqlite3_errmsg(dst) : "out of memory");
		rc = -EIO;
		goto out_close;
	}
	/*
	 * Copy committed state only: commit, then copy under the store mutex
	 * once no transaction is open (an operation that slipped in between
	 * opened one: commit again).  Operations wait while the copy runs.
	 */
	for (tries = 0;; tries++) {
		rc = meta_store_sync(st);
		if (rc) {
			snprintf(err, errlen, "cannot commit the store: %s", strerror(-rc));
			goto out_close;
		}
		pthread_mutex_lock(&st->mu);
		if (!st->in_txn || st->dead)
			break;
		pthread_mutex_unlock(&st->mu);
		if (tries == 100) {
			snprintf(err, errlen, "the store never paused between commits; try again");
			rc = -EBUSY;
			goto out_close;
		}
	}
	if (st->dead) {
		snprintf(err, errlen, "the store is read-only after a failed commit");
		rc = -EIO;
	} else {
		txn = st->txn_open - 1;
		rc = backup_copy(st, dst, err, errlen);
	}
	pthread_mutex_unlock(&st->mu);
	if (!rc)
		rc = backup_describe(st, dst, txn, err, errlen);
	if (sqlite3_close(dst) != SQLITE_OK && !rc) {
		snprintf(err, errlen, "cannot close %s", tmp);
		rc = -EIO;
	}
	dst = NULL;
	if (!rc) {
		rc = backup_fsync(tmp, path);
		if (rc)
			snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
	}
out_close:
	sqlite3_close(dst);
	if (rc)
		unlink(tmp);
	return rc;
}

const struct meta_sb *meta_store_sb(const struct meta_store *st)
{
	return &st->sb;
}

struct xvm_vol *meta_store_dev(const struct meta_store *st)
{
	return st->dev;
}

/* ---- 4. attributes and namespace ---------------------------------------- */

int meta_getattr(struct meta_store *st, uint64_t ino, struct vn_attr *out)
{
	int rc;

	pthread_mutex_lock(&st->mu);
	rc = st->dead ? -EIO : inode_get(st, ino, out);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

static int free_blocks_from(struct meta_store *st, uint64_t ino, uint64_t fblk);

int meta_setattr(struct meta_store *st, uint64_t ino, const struct vn_attr *in, int mask,
		 struct vn_attr *out)
{
	struct vn_attr a;
	int64_t now = meta_now_ns();
	int rc;

	rc = st_enter(st, ST_GROW_NONE);
	if (rc)
		return rc;
	rc = inode_get(st, ino, &a);
	if (rc)
		goto out;
	if (mask & VN_SET_MODE)
		a.mode = (a.mode & S_IFMT) | (in->mode & 07777);
	if (mask & VN_SET_UID)
		a.uid = in->uid;
	if (mask & VN_SET_GID)
		a.gid = in->gid;
	if (mask & VN_SET_SIZE) {
		if (S_ISDIR(a.mode)) {
			rc = -EISDIR;
			goto out;
		}
		if (!S_ISREG(a.mode)) {
			rc = -EINVAL;
			goto out;
		}
		if (in->size > META_MAX_FILE_SIZE) {
			rc = -EFBIG;
			goto out;
		}
		if (in->size < a.size) {
			st->alloc_touched = 1;
			rc = free_blocks_from(st, ino,
					      (in->size + st->sb.block_size - 1) >> st->bshift);
			if (rc)
				goto out;
		}
		a.size = in->size;
		a.mtime = ns_to_ts(now);
	}
	if (mask & VN_SET_ATIME_NOW)
		a.atime = ns_to_ts(now);
	else if (mask & VN_SET_ATIME)
		a.atime = in->atime;
	if (mask & VN_SET_MTIME_NOW)
		a.mtime = ns_to_ts(now);
	else if (mask & VN_SET_MTIME)
		a.mtime = in->mtime;
	a.ctime = (mask & VN_SET_CTIME) ? in->ctime : ns_to_ts(now);
	rc = inode_put(st, &a);
	if (!rc)
		rc = inode_get(st, ino, out);
out:
	return st_leave(st, rc);
}

int meta_lookup(struct meta_store *st, uint64_t dir, const char *name, struct vn_attr *out)
{
	uint64_t ino;
	int rc;

	if (strlen(name) > META_NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&st->mu);
	if (st->dead) {
		rc = -EIO;
		goto out;
	}
	if (strcmp(name, ".") == 0) {
		ino = dir;
	} else if (strcmp(name, "..") == 0) {
		sqlite3_stmt *q = stmt_get(st, S_DIRENT_PARENT_OF);

		sqlite3_bind_int64(q, 1, (int64_t)dir);
		ino = sqlite3_step(q) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(q, 0)
						    : META_ROOT_INO;
		sqlite3_reset(q);
	} else {
		rc = dirent_get(st, dir, name, &ino, NULL);
		if (rc)
			goto out;
	}
	rc = inode_get(st, ino, out);
out:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int meta_mknod(struct meta_store *st, uint64_t dir, const char *name, uint32_t mode, uint64_t rdev,
	       const char *target, const struct vn_cred *cred, struct vn_attr *out)
{
	struct vn_attr parent;
	uint64_t ino, gen, existing;
	uint32_t gid = cred->gid;
	int64_t now = meta_now_ns();
	sqlite3_stmt *q;
	int rc;

	rc = check_name(name);
	if (rc)
		return rc;
	if (is_dot(name))
		return -EEXIST;
	if (target && strlen(target) > META_SYMLINK_MAX)
		return -ENAMETOOLONG;
	rc = st_enter(st, ST_GROW_NAME);
	if (rc)
		return rc;
	rc = inode_get(st, dir, &parent);
	if (rc)
		goto out;
	if (!S_ISDIR(parent.mode) || parent.nlink == 0) {
		rc = S_ISDIR(parent.mode) ? -ENOENT : -ENOTDIR;
		goto out;
	}
	rc = dirent_get(st, dir, name, &existing, NULL);
	if (rc != -ENOENT) {
		rc = rc ? rc : -EEXIST;
		goto out;
	}
	/* Group ownership and S_ISGID as ext4's inode_init_owner() gives them. */
	if (parent.mode & S_ISGID) {
		gid = parent.gid;
		if (S_ISDIR(mode))
			mode |= S_ISGID;
	}
	if (!S_ISDIR(mode) && (mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) &&
	    cred->uid != 0 && !vn_cred_in_group(cred, gid))
		mode &= ~(uint32_t)S_ISGID;
	if (meta_cur_req && meta_cur_req->force_ino) {
		/*
		 * A replayed create (the number the lost transaction gave it, free
		 * now) or a node's own (a number reserved for it).
		 */
		ino = meta_cur_req->force_ino;
		gen = meta_cur_req->force_gen;
		if (st->next_ino <= ino)
			st->next_ino = ino + 1;
		if (meta_cur_req->force_now)
			now = meta_cur_req->force_now;
	} else {
		ino = st->next_ino++;
		gen = st->mount_gen;
	}
	q = stmt_get(st, S_INODE_INSERT);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, (int64_t)gen);
	sqlite3_bind_int64(q, 3, mode);
	sqlite3_bind_int64(q, 4, S_ISDIR(mode) ? 2 : 1);
	sqlite3_bind_int64(q, 5, cred->uid);
	sqlite3_bind_int64(q, 6, gid);
	sqlite3_bind_int64(q, 7, (int64_t)rdev);
	sqlite3_bind_int64(q, 8, target ? (int64_t)strlen(target) : 0);
	sqlite3_bind_int64(q, 9, now);
	if (target)
		sqlite3_bind_blob(q, 10, target, (int)strlen(target), SQLITE_STATIC);
	sqlite3_bind_int64(q, 11, S_ISDIR(mode) ? (int64_t)dir : 0);
	rc = step_done(q);
	if (!rc)
		rc = dirent_insert(st, dir, name, ino, mode_type(mode));
	if (!rc && S_ISDIR(mode))
		rc = inode_nlink(st, dir, 1, now);
	if (!rc)
		rc = inode_touch_mc(st, dir, now);
	if (!rc)
		rc = inode_get(st, ino, out);
	if (!rc && meta_cur_req) {
		meta_cur_req->ino = ino;
		meta_cur_req->gen = gen;
	}
out:
	return st_leave(st, rc);
}

int meta_ino_reserve(struct meta_store *st, uint32_t n, uint64_t *first, uint64_t *gen)
{
	int rc = st_enter(st, ST_GROW_NAME);

	if (rc)
		return rc;
	*first = st->next_ino;
	*gen = st->mount_gen;
	st->next_ino += n;
	rc = st_leave(st, 0);
	return rc ? rc : meta_store_sync(st);
}

bool meta_ino_reserved(struct meta_store *st, uint64_t ino)
{
	bool yes;

	pthread_mutex_lock(&st->mu);
	yes = ino > META_ROOT_INO && ino < st->next_ino;
	pthread_mutex_unlock(&st->mu);
	return yes;
}

int meta_link(struct meta_store *st, uint64_t ino, uint64_t newdir, const char *newname,
	      struct vn_attr *out)
{
	struct vn_attr a, parent;
	uint64_t existing;
	int64_t now = meta_now_ns();
	int rc;

	rc = check_name(newname);
	if (rc)
		return rc;
	if (is_dot(newname))
		return -EEXIST;
	rc = st_enter(st, ST_GROW_NAME);
	if (rc)
		return rc;
	rc = inode_get(st, ino, &a);
	if (!rc)
		rc = inode_get(st, newdir, &parent);
	if (rc)
		goto out;
	if (S_ISDIR(a.mode)) {
		rc = -EPERM;
		goto out;
	}
	if (!S_ISDIR(parent.mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	if (a.nlink == 0 || parent.nlink == 0) {
		rc = -ENOENT;
		goto out;
	}
	if (a.nlink >= 65000) {
		rc = -EMLINK;
		goto out;
	}
	rc = dirent_get(st, newdir, newname, &existing, NULL);
	if (rc != -ENOENT) {
		rc = rc ? rc : -EEXIST;
		goto out;
	}
	rc = dirent_insert(st, newdir, newname, ino, mode_type(a.mode));
	if (!rc)
		rc = inode_nlink(st, ino, 1, now);
	if (!rc)
		rc = inode_touch_mc(st, newdir, now);
	if (!rc)
		rc = inode_get(st, ino, out);
out:
	return st_leave(st, rc);
}

/*
 * Drop one name of @ino (a directory loses both its links).  An inode left
 * without links goes on the orphan list until its last user lets go of it
 * (meta_reclaim), so a crash in between frees it at the next mount.
 */
static int drop_link(struct meta_store *st, uint64_t dir, uint64_t ino, int is_dir, int64_t now)
{
	sqlite3_stmt *q;
	int rc = inode_nlink(st, ino, is_dir ? -2 : -1, now);

	if (!rc && is_dir)
		rc = inode_nlink(st, dir, -1, now);
	if (rc)
		return rc;
	q = stmt_get(st, S_ORPHAN_IF_UNLINKED);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	return step_done(q);
}

/*
 * Remove the entry @name of @dir, which names @ino (a directory if
 * @ino_dir), for an operation that expects a directory exactly when
 * @want_dir (rmdir, or rename of a directory over it): the checks of
 * unlink/rmdir and of rename over an existing name, then the link drop.
 */
static int remove_entry(struct meta_store *st, uint64_t dir, const char *name, uint64_t ino,
			int ino_dir, int want_dir, int64_t now)
{
	int rc;

	if (want_dir && !ino_dir)
		return -ENOTDIR;
	if (!want_dir && ino_dir)
		return -EISDIR;
	if (ino_dir) {
		rc = dir_is_empty(st, ino);
		if (rc <= 0)
			return rc ? rc : -ENOTEMPTY;
	}
	rc = dirent_delete(st, dir, name);
	if (!rc)
		rc = drop_link(st, dir, ino, ino_dir, now);
	return rc;
}

int meta_unlink(struct meta_store *st, uint64_t dir, const char *name, int is_dir, uint64_t *victim)
{
	uint64_t ino;
	uint32_t type;
	int64_t now = meta_now_ns();
	int rc;

	*victim = 0;
	if (meta_cur_req && meta_cur_req->force_now)
		now = meta_cur_req->force_now;     /* a node's own unlink: its clock */
	if (strlen(name) > META_NAME_MAX)
		return -ENAMETOOLONG;
	if (is_dir && strcmp(name, ".") == 0)
		return -EINVAL;
	if (is_dir && strcmp(name, "..") == 0)
		return -ENOTEMPTY;
	rc = st_enter(st, ST_GROW_NONE);
	if (rc)
		return rc;
	rc = dirent_get(st, dir, name, &ino, &type);
	if (rc)
		goto out;
	rc = remove_entry(st, dir, name, ino, type == mode_type(S_IFDIR), is_dir, now);
	if (!rc)
		rc = inode_touch_mc(st, dir, now);
	if (!rc)
		*victim = ino;
out:
	return st_leave(st, rc);
}

/* Is @anc an ancestor of (or equal to) directory @dir? */
static int is_ancestor(struct meta_store *st, uint64_t anc, uint64_t dir)
{
	for (int depth = 0; depth < 4096; depth++) {
		if (dir == anc)
			return 1;
		if (dir == META_ROOT_INO)
			return 0;
		sqlite3_stmt *q = stmt_get(st, S_DIRENT_PARENT_OF);

		sqlite3_bind_int64(q, 1, (int64_t)dir);
		if (sqlite3_step(q) != SQLITE_ROW) {
			sqlite3_reset(q);
			return 0;
		}
		dir = (uint64_t)sqlite3_column_int64(q, 0);
		sqlite3_reset(q);
	}
	return 1;
}

int meta_rename(struct meta_store *st, uint64_t dir, const char *name, uint64_t newdir,
		const char *newname, unsigned int flags, uint64_t *victim)
{
	uint64_t ino, dst = 0;
	uint32_t type, dtype = 0;
	int64_t now = meta_now_ns();
	int rc, src_dir, exists;

	*victim = 0;
	if (meta_cur_req && meta_cur_req->force_now)
		now = meta_cur_req->force_now;     /* a node's own rename: its clock */
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	rc = check_name(newname);
	if (rc)
		return rc;
	if (strlen(name) > META_NAME_MAX)
		return -ENAMETOOLONG;
	if (is_dot(name) || is_dot(newname))
		return -EBUSY;
	rc = st_enter(st, ST_GROW_NAME);
	if (rc)
		return rc;
	rc = dirent_get(st, dir, name, &ino, &type);
	if (rc)
		goto out;
	rc = dirent_get(st, newdir, newname, &dst, &dtype);
	if (rc && rc != -ENOENT)
		goto out;
	exists = rc == 0;
	rc = 0;
	src_dir = type == mode_type(S_IFDIR);
	if (exists && dst == ino) {
		/* Two names of one file: POSIX says do nothing. */
		goto out;
	}
	if (flags & RENAME_EXCHANGE) {
		int dst_dir = dtype == mode_type(S_IFDIR);

		if (!exists) {
			rc = -ENOENT;
			goto out;
		}
		if ((src_dir && is_ancestor(st, ino, newdir)) ||
		    (dst_dir && is_ancestor(st, dst, dir))) {
			rc = -EINVAL;
			goto out;
		}
		sqlite3_stmt *q = stmt_get(st, S_DIRENT_SET_INO);

		sqlite3_bind_int64(q, 1, (int64_t)dir);
		sqlite3_bind_blob(q, 2, name, (int)strlen(name), SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, (int64_t)dst);
		sqlite3_bind_int64(q, 4, dtype);
		rc = step_done(q);
		if (rc)
			goto out;
		q = stmt_get(st, S_DIRENT_SET_INO);
		sqlite3_bind_int64(q, 1, (int64_t)newdir);
		sqlite3_bind_blob(q, 2, newname, (int)strlen(newname), SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, (int64_t)ino);
		sqlite3_bind_int64(q, 4, type);
		rc = step_done(q);
		if (!rc && dir != newdir && src_dir != dst_dir) {
			rc = inode_nlink(st, dir, src_dir ? -1 : 1, now);
			if (!rc)
				rc = inode_nlink(st, newdir, src_dir ? 1 : -1, now);
		}
		if (!rc && src_dir)
			rc = inode_set_parent(st, ino, newdir);
		if (!rc && dst_dir)
			rc = inode_set_parent(st, dst, dir);
		if (!rc)
			rc = inode_nlink(st, ino, 0, now);
		if (!rc)
			rc = inode_nlink(st, dst, 0, now);
		goto out_touch;
	}
	if (exists && (flags & RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto out;
	}
	if (src_dir && is_ancestor(st, ino, newdir)) {
		rc = -EINVAL;
		goto out;
	}
	if (exists) {
		rc = remove_entry(st, newdir, newname, dst, dtype == mode_type(S_IFDIR), src_dir,
				  now);
		if (rc)
			goto out;
		*victim = dst;
	}
	rc = dirent_delete(st, dir, name);
	if (!rc)
		rc = dirent_insert(st, newdir, newname, ino, type);
	if (!rc && src_dir && dir != newdir) {
		rc = inode_nlink(st, dir, -1, now);
		if (!rc)
			rc = inode_nlink(st, newdir, 1, now);
		if (!rc)
			rc = inode_set_parent(st, ino, newdir);
	}
	/* The moved inode's ctime changes, as on ext4. */
	if (!rc)
		rc = inode_nlink(st, ino, 0, now);
out_touch:
	if (!rc)
		rc = inode_touch_mc(st, dir, now);
	if (!rc && newdir != dir)
		rc = inode_touch_mc(st, newdir, now);
out:
	if (rc)
		*victim = 0;
	return st_leave(st, rc);
}

int meta_readlink(struct meta_store *st, uint64_t ino, char *buf, size_t size)
{
	sqlite3_stmt *q = NULL;
	int rc;

	pthread_mutex_lock(&st->mu);
	if (st->dead) {
		rc = -EIO;
		goto out;
	}
	rc = sqlite3_prepare_v3(st->db, "SELECT mode, target FROM inode WHERE ino=?1", -1, 0, &q,
				NULL);
	if (rc != SQLITE_OK) {
		rc = -EIO;
		goto out;
	}
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	if (sqlite3_step(q) != SQLITE_ROW) {
		rc = -ENOENT;
		goto out;
	}
	if (!S_ISLNK((uint32_t)sqlite3_column_int64(q, 0))) {
		rc = -EINVAL;
		goto out;
	}
	size_t len = (size_t)sqlite3_column_bytes(q, 1);
	const void *t = sqlite3_column_blob(q, 1);

	if (size == 0) {
		rc = -ERANGE;
		goto out;
	}
	if (len >= size)
		len = size - 1;
	if (len)
		memcpy(buf, t, len);
	buf[len] = '\0';
	rc = (int)len;
out:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* Offsets: 1 after ".", 2 after "..", cookie + 2 after an entry. */
int meta_readdir(struct meta_store *st, uint64_t dir, int64_t off, int plus, vn_fill_fn fill,
		 void *ctx)
{
	struct vn_attr a, self;
	sqlite3_stmt *q;
	char name[META_NAME_MAX + 1];
	int rc;

	pthread_mutex_lock(&st->mu);
	rc = st->dead ? -EIO : inode_get(st, dir, &self);
	if (rc)
		goto out;
	if (!S_ISDIR(self.mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	if (off < 1 && fill(ctx, ".", &self, 1))
		goto out;
	if (off < 2) {
		sqlite3_stmt *p = stmt_get(st, S_DIRENT_PARENT_OF);
		uint64_t parent = META_ROOT_INO;

		sqlite3_bind_int64(p, 1, (int64_t)dir);
		if (sqlite3_step(p) == SQLITE_ROW)
			parent = (uint64_t)sqlite3_column_int64(p, 0);
		sqlite3_reset(p);
		rc = inode_get(st, parent, &a);
		if (rc)
			goto out;
		if (fill(ctx, "..", &a, 2))
			goto out;
	}
	q = stmt_get(st, plus ? S_DIRENT_LIST_PLUS : S_DIRENT_LIST);
	sqlite3_bind_int64(q, 1, (int64_t)dir);
	sqlite3_bind_int64(q, 2, off > 2 ? off - 2 : 0);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t cookie = sqlite3_column_int64(q, 0);
		int len = sqlite3_column_bytes(q, 1);

		if (len > META_NAME_MAX)
			len = META_NAME_MAX;
		memcpy(name, sqlite3_column_blob(q, 1), (size_t)len);
		name[len] = '\0';
		if (plus) {
			attr_from_row(q, 2, &a);
		} else {
			memset(&a, 0, sizeof(a));
			a.ino = (uint64_t)sqlite3_column_int64(q, 2);
			a.mode = (uint32_t)sqlite3_column_int64(q, 3) << 12;
		}
		if (fill(ctx, name, &a, cookie + 2))
			break;
	}
	rc = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0 : sql_errno(rc);
	sqlite3_reset(q);
out:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int meta_statfs(struct meta_store *st, struct statvfs *out)
{
	pthread_mutex_lock(&st->mu);
	memset(out, 0, sizeof(*out));
	out->f_bsize = st->sb.block_size;
	out->f_frsize = st->sb.block_size;
	out->f_blocks = meta_alloc_total(st->alloc);
	out->f_bfree = meta_alloc_available(st->alloc);
	out->f_bavail = out->f_bfree;
	/*
	 * Inodes cost rows in the database region, not fixed slots: report the
	 * room left there at about 256 bytes (inode, entry, index) a file.
	 */
	{
		uint64_t cap = st->sb.meta_db.len - META_REGION_HDR, used = 0;
		sqlite3_stmt *q = stmt_get(st, S_PAGE_COUNT);

		if (sqlite3_step(q) == SQLITE_ROW)
			used = (uint64_t)sqlite3_column_int64(q, 0);
		sqlite3_reset(q);
		q = stmt_get(st, S_FREELIST_COUNT);
		if (sqlite3_step(q) == SQLITE_ROW)
			used -= (uint64_t)sqlite3_column_int64(q, 0);
		sqlite3_reset(q);
		used *= 4096;
		out->f_files = cap / 256;
		out->f_ffree = used < cap ? (cap - used) / 256 : 0;
		out->f_favail = out->f_ffree;
	}
	out->f_namemax = META_NAME_MAX;
	out->f_fsid = (unsigned long)meta_crc32c(0, st->sb.uuid, sizeof(st->sb.uuid));
	pthread_mutex_unlock(&st->mu);
	return 0;
}

int meta_reclaim(struct meta_store *st, uint64_t ino)
{
	struct vn_attr a;
	sqlite3_stmt *q;
	int rc = st_enter(st, ST_GROW_NONE);

	if (rc)
		return rc;
	/*
	 * Nothing another node's request can come to depend on: inode numbers
	 * are never handed out twice, and freed blocks stay pending until this
	 * transaction is durable (meta_alloc.h).  Lost with this server, the
	 * orphan row stays, and whoever frees orphans next does it again
	 * (meta_store_open).  So a reclaim need not be durable before the next
	 * node's request is answered (meta_store_local_pending): that cost a
	 * commit and a device flush per file a client unlinked.
	 */
	st->op_losable = true;
	rc = inode_get(st, ino, &a);
	if (rc == -ENOENT) {
		rc = 0;
		goto out_orphan;
	}
	if (rc || a.nlink > 0)
		goto out_orphan;
	st->alloc_touched = 1;
	rc = free_blocks_from(st, ino, 0);
	if (rc)
		goto out;
	q = stmt_get(st, S_XATTR_DELETE_ALL);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	rc = step_done(q);
	if (rc)
		goto out;
	q = stmt_get(st, S_DMATTR_DELETE_ALL);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	rc = step_done(q);
	if (rc)
		goto out;
	q = stmt_get(st, S_INODE_DELETE);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	rc = step_done(q);
	if (rc)
		goto out;
out_orphan:
	q = stmt_get(st, S_ORPHAN_DEL);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	if (!rc)
		rc = step_done(q);
out:
	return st_leave(st, rc);
}

/* ---- 5. extended attributes ---------------------------------------------- */

int meta_setxattr(struct meta_store *st, uint64_t ino, const char *name, const void *value,
		  size_t size, int flags)
{
	sqlite3_stmt *q;
	int rc, exists;

	if (strlen(name) > XATTR_NAME_MAX || name[0] == '\0')
		return strlen(name) ? -ERANGE : -EINVAL;
	if (size > META_XATTR_SIZE_MAX)
		return -E2BIG;
	rc = st_enter(st, ST_GROW_NAME);
	if (rc)
		return rc;
	q = stmt_get(st, S_XATTR_GET);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	exists = sqlite3_step(q) == SQLITE_ROW;
	sqlite3_reset(q);
	if ((flags & XATTR_CREATE) && exists) {
		rc = -EEXIST;
		goto out;
	}
	if ((flags & XATTR_REPLACE) && !exists) {
		rc = -ENODATA;
		goto out;
	}
	q = stmt_get(st, S_XATTR_PUT);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, 3, size ? value : "", (int)size, SQLITE_STATIC);
	rc = step_done(q);
	if (!rc)
		rc = inode_nlink(st, ino, 0, meta_now_ns());
out:
	return st_leave(st, rc);
}

/* The value of @name in table @which (an xattr or a DM attribute): getxattr(2)'s rules. */
static int kv_get(struct meta_store *st, enum meta_stmt which, uint64_t ino, const char *name,
		  void *buf, size_t size)
{
	sqlite3_stmt *q;
	int rc;

	pthread_mutex_lock(&st->mu);
	q = stmt_get(st, which);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		int len = sqlite3_column_bytes(q, 0);

		if (size == 0) {
			rc = len;
		} else if ((size_t)len > size) {
			rc = -ERANGE;
		} else {
			if (len)
				memcpy(buf, sqlite3_column_blob(q, 0), (size_t)len);
			rc = len;
		}
	} else {
		rc = rc == SQLITE_DONE ? -ENODATA : sql_errno(rc);
	}
	sqlite3_reset(q);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int meta_getxattr(struct meta_store *st, uint64_t ino, const char *name, void *buf, size_t size)
{
	return kv_get(st, S_XATTR_GET, ino, name, buf, size);
}

int meta_listxattr(struct meta_store *st, uint64_t ino, char *buf, size_t size)
{
	sqlite3_stmt *q;
	size_t total = 0;
	int rc;

	pthread_mutex_lock(&st->mu);
	q = stmt_get(st, S_XATTR_LIST);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(q, 0) + 1;

		if (size && total + len > size) {
			rc = SQLITE_TOOBIG;
			break;
		}
		if (size)
			memcpy(buf + total, sqlite3_column_text(q, 0), len);
		total += len;
	}
	sqlite3_reset(q);
	pthread_mutex_unlock(&st->mu);
	if (rc == SQLITE_TOOBIG)
		return -ERANGE;
	return rc == SQLITE_DONE ? (int)total : sql_errno(rc);
}

/*
 * Remove @name from table @which (an xattr or a DM attribute); -ENODATA if
 * absent.  @touch: the change moves ctime (an xattr does, a DM attribute
 * does not).
 */
static int kv_remove(struct meta_store *st, enum meta_stmt which, uint64_t ino, const char *name,
		     int touch)
{
	sqlite3_stmt *q;
	int rc = st_enter(st, ST_GROW_NONE);

	if (rc)
		return rc;
	q = stmt_get(st, which);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	rc = step_done(q);
	if (!rc && sqlite3_changes(st->db) == 0)
		rc = -ENODATA;
	if (!rc && touch)
		rc = inode_nlink(st, ino, 0, meta_now_ns());
	return st_leave(st, rc);
}

int meta_removexattr(struct meta_store *st, uint64_t ino, const char *name)
{
	return kv_remove(st, S_XATTR_DELETE, ino, name, 1);
}

/* ---- DMAPI attributes: no time stamp moves ----------------------------- */

int meta_dmattr_set(struct meta_store *st, uint64_t ino, const char *name, const void *value,
		    size_t size)
{
	struct vn_attr a;
	sqlite3_stmt *q;
	int rc;

	if (name[0] == '\0' || strlen(name) > META_DMATTR_NAME_MAX)
		return -EINVAL;
	if (size > META_XATTR_SIZE_MAX)
		return -E2BIG;
	rc = st_enter(st, ST_GROW_NAME);
	if (rc)
		return rc;
	rc = inode_get(st, ino, &a);
	if (rc)
		goto out;
	q = stmt_get(st, S_DMATTR_PUT);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, 3, size ? value : "", (int)size, SQLITE_STATIC);
	rc = step_done(q);
out:
	return st_leave(st, rc);
}

int meta_dmattr_get(struct meta_store *st, uint64_t ino, const char *name, void *buf, size_t size)
{
	return kv_get(st, S_DMATTR_GET, ino, name, buf, size);
}

int meta_dmattr_remove(struct meta_store *st, uint64_t ino, const char *name)
{
	return kv_remove(st, S_DMATTR_DELETE, ino, name, 0);
}

int meta_dmattr_scan(struct meta_store *st, const char *name,
		     int (*fn)(void *arg, uint64_t ino, const void *value, size_t len), void *arg)
{
	sqlite3_stmt *q;
	int rc;

	pthread_mutex_lock(&st->mu);
	q = stmt_get(st, S_DMATTR_SCAN);
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int stop = fn(arg, (uint64_t)sqlite3_column_int64(q, 0), sqlite3_column_blob(q, 1),
			      (size_t)sqlite3_column_bytes(q, 1));

		if (stop) {
			rc = stop < 0 ? stop : 0;
			goto out;
		}
	}
	rc = rc == SQLITE_DONE ? 0 : sql_errno(rc);
out:
	sqlite3_reset(q);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int meta_bulkstat(struct meta_store *st, uint64_t from, struct vn_attr *out, int max)
{
	sqlite3_stmt *q;
	int rc, n = 0;

	pthread_mutex_lock(&st->mu);
	q = stmt_get(st, S_INODE_BULK);
	sqlite3_bind_int64(q, 1, (int64_t)from);
	sqlite3_bind_int64(q, 2, max);
	while (n < max && (rc = sqlite3_step(q)) == SQLITE_ROW)
		attr_from_row(q, 0, &out[n++]);
	if (n < max)
		rc = rc == SQLITE_DONE ? n : sql_errno(rc);
	else
		rc = n;
	sqlite3_reset(q);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* ---- 6. data mapping ------------------------------------------------------ */

struct meta_ext {
	uint64_t fblk, nblk, pblk;
	int unwritten;
};

static void ext_from_row(sqlite3_stmt *q, struct meta_ext *e)
{
	e->fblk = (uint64_t)sqlite3_column_int64(q, 0);
	e->nblk = (uint64_t)sqlite3_column_int64(q, 1);
	e->pblk = (uint64_t)sqlite3_column_int64(q, 2);
	e->unwritten = (int)sqlite3_column_int64(q, 3);
}

/*
 * Call @fn for every extent of @ino overlapping [fblk, end), in order.  A
 * non-zero return from @fn stops the walk and is returned.  The extents are
 * collected first, so @fn may change the extent table.
 */
static int ext_walk(struct meta_store *st, uint64_t ino, uint64_t fblk, uint64_t end,
		    int (*fn)(struct meta_store *st, uint64_t ino, const struct meta_ext *e,
			      void *arg), void *arg)
{
	struct meta_ext *v = NULL, e;
	size_t n = 0, cap = 0;
	sqlite3_stmt *q;
	int rc = 0;

	q = stmt_get(st, S_EXT_BEFORE);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, (int64_t)fblk);
	if (sqlite3_step(q) == SQLITE_ROW) {
		ext_from_row(q, &e);
		if (e.fblk + e.nblk > fblk) {
			v = malloc(sizeof(*v) * 16);
			if (!v) {
				sqlite3_reset(q);
				return -ENOMEM;
			}
			cap = 16;
			v[n++] = e;
		}
	}
	sqlite3_reset(q);
	/* A small I/O inside one extent (the common case) needs no range scan. */
	if (n == 1 && v[0].fblk + v[0].nblk >= end)
		goto out_call;
	q = stmt_get(st, S_EXT_RANGE);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, (int64_t)fblk);
	sqlite3_bind_int64(q, 3, end > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)end);
	while (sqlite3_step(q) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			struct meta_ext *p = realloc(v, cap * sizeof(*p));

			if (!p) {
				rc = -ENOMEM;
				break;
			}
			v = p;
		}
		ext_from_row(q, &v[n++]);
	}
	sqlite3_reset(q);
out_call:
	for (size_t i = 0; !rc && i < n; i++)
		rc = fn(st, ino, &v[i], arg);
	free(v);
	return rc;
}

static int ext_insert(struct meta_store *st, uint64_t ino, uint64_t fblk, uint64_t nblk,
		      uint64_t pblk, int unwritten)
{
	sqlite3_stmt *q = stmt_get(st, S_EXT_INSERT);

	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, (int64_t)fblk);
	sqlite3_bind_int64(q, 3, (int64_t)nblk);
	sqlite3_bind_int64(q, 4, (int64_t)pblk);
	sqlite3_bind_int64(q, 5, unwritten);
	return step_done(q);
}

static int ext_delete(struct meta_store *st, uint64_t ino, uint64_t fblk)
{
	sqlite3_stmt *q = stmt_get(st, S_EXT_DELETE);

	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, (int64_t)fblk);
	return step_done(q);
}

static int ext_set_len(struct meta_store *st, uint64_t ino, uint64_t fblk, uint64_t nblk)
{
	sqlite3_stmt *q = stmt_get(st, S_EXT_UPDATE);

	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, (int64_t)fblk);
	sqlite3_bind_int64(q, 3, (int64_t)nblk);
	return step_done(q);
}

/*
 * Cut [from, to) out of extent @e: the pieces outside stay, the blocks
 * inside are freed (@free_blocks) or left to the caller.
 */
static int ext_cut(struct meta_store *st, uint64_t ino, const struct meta_ext *e, uint64_t from,
		   uint64_t to, int free_blocks)
{
	uint64_t s = from > e->fblk ? from : e->fblk;
	uint64_t t = to < e->fblk + e->nblk ? to : e->fblk + e->nblk;
	int rc;

	if (s >= t)
		return 0;
	if (s == e->fblk)
		rc = ext_delete(st, ino, e->fblk);
	else
		rc = ext_set_len(st, ino, e->fblk, s - e->fblk);
	if (!rc && t < e->fblk + e->nblk)
		rc = ext_insert(st, ino, t, e->fblk + e->nblk - t, e->pblk + (t - e->fblk),
				e->unwritten);
	if (!rc && free_blocks) {
		rc = inode_nblocks(st, ino, -(int64_t)(t - s));
		if (!rc)
			meta_alloc_free(st->alloc, e->pblk + (s - e->fblk), t - s);
	}
	return rc;
}

struct cut_args {
	uint64_t from, to;
};

static int cut_cb(struct meta_store *st, uint64_t ino, const struct meta_ext *e, void *arg)
{
	struct cut_args *c = arg;

	return ext_cut(st, ino, e, c->from, c->to, 1);
}

static int free_blocks_from(struct meta_store *st, uint64_t ino, uint64_t fblk)
{
	struct cut_args c = { fblk, UINT64_MAX };

	return ext_walk(st, ino, fblk, UINT64_MAX, cut_cb, &c);
}

struct map_args {
	struct meta_map *maps;
	int max, n;
	uint64_t pos, end;
};

static int map_cb(struct meta_store *st, uint64_t ino, const struct meta_ext *e, void *arg)
{
	struct map_args *m = arg;
	uint64_t s = e->fblk > m->pos ? e->fblk : m->pos;
	uint64_t t = e->fblk + e->nblk < m->end ? e->fblk + e->nblk : m->end;

	if (s > m->pos) {
		if (m->n == m->max)
			return 1;
		m->maps[m->n++] = (struct meta_map){ m->pos, s - m->pos, 0, META_MAP_HOLE };
		m->pos = s;
	}
	if (s >= t)
		return 0;
	if (m->n == m->max)
		return 1;
	m->maps[m->n++] = (struct meta_map){ s, t - s, e->pblk + (s - e->fblk),
					     e->unwritten ? META_MAP_UNWRITTEN : META_MAP_DATA };
	m->pos = t;
	return 0;
}

int meta_map_read(struct meta_store *st, uint64_t ino, uint64_t fblk, uint64_t nblk,
		  struct meta_map *maps, int max)
{
	struct map_args m = { maps, max, 0, fblk, fblk + nblk };
	int rc;

	if (max <= 0 || nblk == 0)
		return -EINVAL;
	pthread_mutex_lock(&st->mu);
	rc = st->dead ? -EIO : ext_walk(st, ino, fblk, fblk + nblk, map_cb, &m);
	pthread_mutex_unlock(&st->mu);
	if (rc < 0)
		return rc;
	if (m.pos < m.end && m.n < m.max)
		maps[m.n++] = (struct meta_map){ m.pos, m.end - m.pos, 0, META_MAP_HOLE };
	return m.n;
}

/* Reserve a run for file blocks from @fblk of @ino; caller holds the mutex. */
static int reserve_locked(struct meta_store *st, uint64_t ino, uint64_t fblk, uint64_t nblk,
			  uint64_t goal, uint64_t *pblk, uint64_t *got)
{
	sqlite3_stmt *q;

	if (goal != META_GOAL_ANY)
		return meta_alloc_reserve(st->alloc, goal, nblk, pblk, got);
	/* Place the run right after the file's previous extent when we can. */
	q = stmt_get(st, S_EXT_LAST);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, (int64_t)fblk);
	if (sqlite3_step(q) == SQLITE_ROW) {
		struct meta_ext e;

		ext_from_row(q, &e);
		goal = e.pblk + e.nblk + (fblk - (e.fblk + e.nblk));
	} else {
		/* Spread new files over the region by inode number. */
		goal = (ino * 2654435761u) % meta_alloc_total(st->alloc);
		goal -= goal % 256;
	}
	sqlite3_reset(q);
	return meta_alloc_reserve(st->alloc, goal, nblk, pblk, got);
}

int meta_store_reserve(struct meta_store *st, uint64_t ino, uint64_t fblk, uint64_t nblk,
		       uint64_t goal, uint64_t *pblk, uint64_t *got)
{
	int rc, pending;

	pthread_mutex_lock(&st->mu);
	rc = st->dead ? -EIO : reserve_locked(st, ino, fblk, nblk, goal, pblk, got);
	pending = rc == -ENOSPC && meta_alloc_seal(st->alloc) > 0;
	pthread_mutex_unlock(&st->mu);
	/* Freed blocks wait for a durable commit: force one rather than fail (as ext4). */
	if (pending && meta_store_sync(st) == 0) {
		pthread_mutex_lock(&st->mu);
		rc = st->dead ? -EIO : reserve_locked(st, ino, fblk, nblk, goal, pblk, got);
		pthread_mutex_unlock(&st->mu);
	}
	return rc;
}

void meta_store_unreserve(struct meta_store *st, uint64_t pblk, uint64_t nblk)
{
	pthread_mutex_lock(&st->mu);
	meta_alloc_unreserve(st->alloc, pblk, nblk);
	pthread_mutex_unlock(&st->mu);
}

/* Mark written the part of unwritten extent @e inside [from, to). */
struct written_args {
	uint64_t from, to;
};

static int written_cb(struct meta_store *st, uint64_t ino, const struct meta_ext *e, void *arg)
{
	struct written_args *w = arg;
	uint64_t s = e->fblk > w->from ? e->fblk : w->from;
	uint64_t t = e->fblk + e->nblk < w->to ? e->fblk + e->nblk : w->to;
	int rc;

	if (!e->unwritten || s >= t)
		return 0;
	rc = ext_cut(st, ino, e, s, t, 0);
	if (!rc)
		rc = ext_insert(st, ino, s, t - s, e->pblk + (s - e->fblk), 0);
	return rc;
}

int meta_map_write(struct meta_store *st, uint64_t ino, uint64_t fblk, uint64_t nblk,
		   uint64_t pblk, int was_reserved)
{
	struct meta_ext prev;
	int rc = st_enter(st, ST_GROW_DATA), have_prev = 0;
	sqlite3_stmt *q;

	if (rc)
		return rc;
	if (!was_reserved) {
		struct written_args w = { fblk, fblk + nblk };

		rc = ext_walk(st, ino, fblk, fblk + nblk, written_cb, &w);
		goto out;
	}
	st->alloc_touched = 1;
	q = stmt_get(st, S_EXT_LAST);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, (int64_t)fblk);
	if (sqlite3_step(q) == SQLITE_ROW) {
		ext_from_row(q, &prev);
		have_prev = 1;
	}
	sqlite3_reset(q);
	/* Extend the previous extent when the new run continues it on disk. */
	if (have_prev && !prev.unwritten && prev.fblk + prev.nblk == fblk &&
	    prev.pblk + prev.nblk == pblk)
		rc = ext_set_len(st, ino, prev.fblk, prev.nblk + nblk);
	else
		rc = ext_insert(st, ino, fblk, nblk, pblk, 0);
	if (!rc)
		rc = inode_nblocks(st, ino, (int64_t)nblk);
	if (!rc)
		meta_alloc_use_reserved(st->alloc, pblk, nblk);
out:
	return st_leave(st, rc);
}

static int ts_cmp(struct timespec a, struct timespec b)
{
	return a.tv_sec != b.tv_sec ? (a.tv_sec < b.tv_sec ? -1 : 1)
				    : (a.tv_nsec < b.tv_nsec ? -1 : a.tv_nsec > b.tv_nsec);
}

int meta_atime_due(const struct vn_attr *a)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME_COARSE, &now);
	return ts_cmp(a->atime, a->mtime) <= 0 || ts_cmp(a->atime, a->ctime) <= 0 ||
	       now.tv_sec - a->atime.tv_sec >= 24 * 3600;
}

int meta_touch_atime(struct meta_store *st, uint64_t ino)
{
	sqlite3_stmt *q;
	int rc = st_enter(st, ST_GROW_NONE);

	if (rc)
		return rc;
	q = stmt_get(st, S_INODE_ATIME);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, meta_now_ns());
	rc = step_done(q);
	return st_leave(st, rc);
}

int meta_note_write(struct meta_store *st, uint64_t ino, uint64_t size, struct vn_attr *out)
{
	sqlite3_stmt *q;
	int rc = st_enter(st, ST_GROW_DATA);

	if (rc)
		return rc;
	q = stmt_get(st, S_INODE_SIZE);
	sqlite3_bind_int64(q, 1, (int64_t)ino);
	sqlite3_bind_int64(q, 2, (int64_t)size);
	sqlite3_bind_int64(q, 3, meta_now_ns());
	rc = step_done(q);
	if (!rc && out)
		rc = inode_get(st, ino, out);
	return st_leave(st, rc);
}

static void ts_raise(struct timespec *dst, const struct timespec *src)
{
	if (src && ts_cmp(*dst, *src) < 0)
		*dst = *src;
}

int meta_apply_state(struct meta_store *st, uint64_t ino, const struct timespec *atime,
		     const struct timespec *mtime, const struct timespec *ctime,
		     const uint64_t *size, bool size_grow)
{
	struct vn_attr a;
	int rc = st_enter(st, ST_GROW_NONE);

	if (rc)
		return rc;
	rc = inode_get(st, ino, &a);
	if (rc)
		goto out;
	ts_raise(&a.atime, atime);
	ts_raise(&a.mtime, mtime);
	ts_raise(&a.ctime, ctime);
	if (size && S_ISREG(a.mode) && *size <= META_MAX_FILE_SIZE && (!size_grow || *size > a.size))
		a.size = *size;
	rc = inode_put(st, &a);
out:
	return st_leave(st, rc);
}

/*
 * Holes of [from, to): count them (HOLES_COUNT), check that the blocks a
 * replayed allocation must take there are free (HOLES_CHECK_FORCED), or fill
 * them with unwritten extents (HOLES_FILL).
 */
enum { HOLES_COUNT, HOLES_CHECK_FORCED, HOLES_FILL };

struct hole_args {
	uint64_t pos, end, holes;
	int alloc;                    /* HOLES_* */
};

/*
 * A replayed allocation takes exactly the blocks its reply named (the node
 * wrote data there; freed blocks become allocatable only once durable, so
 * they are free in the committed state): 0 with *@pblk, *@got if this
 * thread's request names blocks for file block @fblk, 1 if it names none,
 * -EEXIST if they are not free.  Caller holds the mutex.
 */
static int forced_reserve(struct meta_store *st, uint64_t fblk, uint64_t nblk, uint64_t *pblk,
			  uint64_t *got)
{
	const struct meta_req *r = meta_cur_req;

	for (size_t i = 0; r && i < r->nforce; i++) {
		const struct meta_map *m = &r->force_runs[i];
		uint64_t want, at;
		int rc;

		if (m->state == META_MAP_HOLE || fblk < m->fblk || fblk - m->fblk >= m->nblk)
			continue;
		want = m->nblk - (fblk - m->fblk);
		if (want > nblk)
			want = nblk;
		at = m->pblk + (fblk - m->fblk);
		rc = meta_alloc_reserve(st->alloc, at, want, pblk, got);
		if (rc)
			return rc == -ENOSPC ? -EEXIST : rc;
		if (*pblk != at || *got != want) {
			meta_alloc_unreserve(st->alloc, *pblk, *got);
			return -EEXIST;
		}
		return 0;
	}
	return 1;
}

static int fill_range(struct meta_store *st, uint64_t ino, struct hole_args *h, uint64_t to)
{
	while (h->pos < to) {
		uint64_t pblk, got;
		int rc;

		if (h->alloc == HOLES_COUNT) {
			h->holes += to - h->pos;
			h->pos = to;
			return 0;
		}
		rc = forced_reserve(st, h->pos, to - h->pos, &pblk, &got);
		if (h->alloc == HOLES_CHECK_FORCED) {
			if (rc == 1) {
				h->pos = to;
				continue;
			}
			if (rc)
				return rc;
			meta_alloc_unreserve(st->alloc, pblk, got);
			h->pos += got;
			continue;
		}
		if (rc == 1)
			rc = reserve_locked(st, ino, h->pos, to - h->pos, META_GOAL_ANY, &pblk, &got);
		if (rc)
			return rc;
		rc = ext_insert(st, ino, h->pos, got, pblk, 1);
		if (!rc)
			rc = inode_nblocks(st, ino, (int64_t)got);
		if (rc) {
			meta_alloc_unreserve(st->alloc, pblk, got);
			return rc;
		}
		meta_alloc_use_reserved(st->alloc, pblk, got);
		h->pos += got;
	}
	return 0;
}

static int hole_cb(struct meta_store *st, uint64_t ino, const struct meta_ext *e, void *arg)
{
	struct hole_args *h = arg;
	int rc = 0;

	if (e->fblk > h->pos)
		rc = fill_range(st, ino, h, e->fblk);
	if (!rc && e->fblk + e->nblk > h->pos)
		h->pos = e->fblk + e->nblk;
	return rc;
}

static int walk_holes(struct meta_store *st, uint64_t ino, uint64_t from, uint64_t to, int alloc,
		      uint64_t *holes)
{
	struct hole_args h = { from, to, 0, alloc };
	int rc = ext_walk(st, ino, from, to, hole_cb, &h);

	if (!rc && h.pos < to)
		rc = fill_range(st, ino, &h, to);
	*holes = h.holes;
	return rc;
}

int meta_fallocate(struct meta_store *st, uint64_t ino, int mode, uint64_t off, uint64_t len)
{
	uint64_t bs = st->sb.block_size, end = off + len, holes;
	struct vn_attr a;
	int rc;

	if (len == 0 || end < off)
		return -EINVAL;
	if (end > META_MAX_FILE_SIZE)
		return -EFBIG;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE |
		     VN_IO_INVISIBLE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE))
		return -EINVAL;
	rc = st_enter(st, ST_GROW_DATA);
	if (rc)
		return rc;
	rc = inode_get(st, ino, &a);
	if (rc)
		goto out;
	if (!S_ISREG(a.mode)) {
		rc = S_ISDIR(a.mode) ? -EISDIR : -ENODEV;
		goto out;
	}
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		/*
		 * Whole blocks only: the caller zeroes the partial ends.  A
		 * zeroed range's blocks are allocated again below, unwritten
		 * (they read as zeros), as ext4 does.
		 */
		struct cut_args c = { (off + bs - 1) / bs, end / bs };

		if (c.from < c.to) {
			st->alloc_touched = 1;
			rc = ext_walk(st, ino, c.from, c.to, cut_cb, &c);
		}
		if (!rc && !(mode & VN_IO_INVISIBLE))
			rc = inode_touch_mc(st, ino, meta_now_ns());
		if (rc || (mode & FALLOC_FL_PUNCH_HOLE))
			goto out;
	}
	rc = walk_holes(st, ino, off / bs, (end + bs - 1) / bs, HOLES_COUNT, &holes);
	if (rc)
		goto out;
	if (holes > meta_alloc_available(st->alloc)) {
		rc = -ENOSPC;
		goto out;
	}
	/* Refuse a replayed allocation before the allocator changes (no undo there). */
	if (meta_cur_req && meta_cur_req->nforce)
		rc = walk_holes(st, ino, off / bs, (end + bs - 1) / bs, HOLES_CHECK_FORCED, &holes);
	if (rc)
		goto out;
	st->alloc_touched = 1;
	rc = walk_holes(st, ino, off / bs, (end + bs - 1) / bs, HOLES_FILL, &holes);
	if (!rc && !(mode & FALLOC_FL_KEEP_SIZE) && end > a.size) {
		sqlite3_stmt *q = stmt_get(st, S_INODE_SIZE);

		sqlite3_bind_int64(q, 1, (int64_t)ino);
		sqlite3_bind_int64(q, 2, (int64_t)end);
		sqlite3_bind_int64(q, 3, meta_now_ns());
		rc = step_done(q);
	} else if (!rc && !(mode & FALLOC_FL_ZERO_RANGE)) {
		rc = inode_nlink(st, ino, 0, meta_now_ns());
	}
out:
	return st_leave(st, rc);
}

struct seek_args {
	uint64_t pos;     /* in blocks: SEEK_HOLE's candidate, SEEK_DATA's result */
	int whence, found;
};

static int seek_cb(struct meta_store *st, uint64_t ino, const struct meta_ext *e, void *arg)
{
	struct seek_args *s = arg;

	if (e->unwritten)
		return 0;
	if (s->whence == SEEK_DATA) {
		if (e->fblk > s->pos)
			s->pos = e->fblk;
		s->found = 1;
		return 1;
	}
	if (e->fblk > s->pos)
		return 1;           /* a hole before this extent */
	s->pos = e->fblk + e->nblk;
	return 0;
}

int meta_seek(struct meta_store *st, uint64_t ino, uint64_t off, int whence, uint64_t *result)
{
	uint64_t bs = st->sb.block_size;
	struct seek_args s = { off / bs, whence, 0 };
	struct vn_attr a;
	int rc;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	pthread_mutex_lock(&st->mu);
	rc = st->dead ? -EIO : inode_get(st, ino, &a);
	if (rc)
		goto out;
	if (off >= a.size) {
		rc = -ENXIO;
		goto out;
	}
	rc = ext_walk(st, ino, off / bs, UINT64_MAX, seek_cb, &s);
	if (rc < 0)
		goto out;
	rc = 0;
	if (whence == SEEK_DATA) {
		uint64_t pos = s.pos * bs > off ? s.pos * bs : off;

		if (!s.found || pos >= a.size)
			rc = -ENXIO;
		else
			*result = pos;
	} else {
		uint64_t pos = s.pos * bs > off ? s.pos * bs : off;

		*result = pos < a.size ? pos : a.size;
	}
out:
	pthread_mutex_unlock(&st->mu);
	return rc;
}
