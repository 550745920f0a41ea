/*
 * test_vnlock.c - unit tests of the lock manager (src/vnode/vn_lock.c):
 * POSIX merge/split, upgrade/downgrade in place, F_GETLK reporting,
 * non-blocking conflicts, blocking waits with real threads (granted on
 * release, interrupted, deadlock across inodes), flock semantics and its
 * independence from POSIX locks, releasing an owner's locks, and dropping
 * every lock of a cluster node that left (waking who waits for them).
 *
 * A waiting thread's @interrupted callback doubles as the signal that it
 * really waits: the manager calls it only once the waiter is registered.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vnode/vn_lock.h"

#define EOF_ UINT64_MAX

static int setup(void **state)
{
	struct vn_lockmgr *m;

	if (vn_lockmgr_create(&m))
		return -1;
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	vn_lockmgr_destroy(*state);
	return 0;
}

static struct vn_flock px(short type, uint64_t start, uint64_t end, uint64_t owner)
{
	return (struct vn_flock){ .type = type, .start = start, .end = end, .owner = owner,
				  .pid = (pid_t)(1000 + owner) };
}

static struct vn_flock fl(short type, uint64_t owner)
{
	return (struct vn_flock){ .type = type, .owner = owner, .pid = (pid_t)(1000 + owner),
				  .is_flock = 1 };
}

static int set(struct vn_lockmgr *m, uint64_t ino, struct vn_flock lk)
{
	return vn_lock_set(m, ino, &lk, 0, NULL, NULL);
}

/* F_GETLK as @owner for @type on [start, end]; returns the reported lock. */
static struct vn_flock getlk(struct vn_lockmgr *m, uint64_t ino, short type, uint64_t start,
			     uint64_t end, uint64_t owner)
{
	struct vn_flock lk = px(type, start, end, owner);

	assert_int_equal(vn_lock_test(m, ino, &lk), 0);
	return lk;
}

static void assert_reports(struct vn_flock lk, short type, uint64_t start, uint64_t end)
{
	assert_int_equal(lk.type, type);
	if (type != F_UNLCK) {
		assert_true(lk.start == start);
		assert_true(lk.end == end);
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------------- */
/* POSIX semantics, single thread                                          */
/* ---------------------------------------------------------------------- */

static void test_posix_merge_split(void **state)
{
	struct vn_lockmgr *m = *state;

	/* Adjacent locks of one owner and type coalesce. */
	assert_int_equal(set(m, 1, px(F_WRLCK, 0, 9, 1)), 0);
	assert_int_equal(set(m, 1, px(F_WRLCK, 10, 19, 1)), 0);
	assert_int_equal(vn_lock_count(m, 1), 1);
	assert_reports(getlk(m, 1, F_RDLCK, 0, 0, 2), F_WRLCK, 0, 19);

	/* Unlocking the middle splits it. */
	assert_int_equal(set(m, 1, px(F_UNLCK, 5, 14, 1)), 0);
	assert_int_equal(vn_lock_count(m, 1), 2);
	assert_reports(getlk(m, 1, F_WRLCK, 5, 14, 2), F_UNLCK, 0, 0);
	assert_reports(getlk(m, 1, F_WRLCK, 14, 100, 2), F_WRLCK, 15, 19);

	/* A read lock in the hole stays separate (other type) ... */
	assert_int_equal(set(m, 1, px(F_RDLCK, 5, 14, 1)), 0);
	assert_int_equal(vn_lock_count(m, 1), 3);
	assert_reports(getlk(m, 1, F_WRLCK, 5, 5, 2), F_RDLCK, 5, 14);
	/* ... and upgrading it joins all three. */
	assert_int_equal(set(m, 1, px(F_WRLCK, 5, 14, 1)), 0);
	assert_int_equal(vn_lock_count(m, 1), 1);
	assert_reports(getlk(m, 1, F_RDLCK, 7, 7, 2), F_WRLCK, 0, 19);

	/* Downgrading one byte in the middle: three locks. */
	assert_int_equal(set(m, 1, px(F_RDLCK, 3, 3, 1)), 0);
	assert_int_equal(vn_lock_count(m, 1), 3);
	assert_reports(getlk(m, 1, F_RDLCK, 3, 3, 2), F_UNLCK, 0, 0);
	assert_reports(getlk(m, 1, F_WRLCK, 3, 3, 2), F_RDLCK, 3, 3);

	/* Overlapping unlock of the head and tail of two locks. */
	assert_int_equal(set(m, 1, px(F_UNLCK, 2, 10, 1)), 0);
	assert_int_equal(vn_lock_count(m, 1), 2);
	assert_reports(getlk(m, 1, F_RDLCK, 0, 100, 2), F_WRLCK, 0, 1);
	assert_reports(getlk(m, 1, F_RDLCK, 2, 100, 2), F_WRLCK, 11, 19);

	/* Unlock everything; the record goes. */
	assert_int_equal(set(m, 1, px(F_UNLCK, 0, EOF_, 1)), 0);
	assert_int_equal(vn_lock_count(m, 1), 0);
	/* Unlocking what is not locked is fine. */
	assert_int_equal(set(m, 1, px(F_UNLCK, 0, EOF_, 1)), 0);
}

static void test_posix_to_eof(void **state)
{
	struct vn_lockmgr *m = *state;

	assert_int_equal(set(m, 1, px(F_WRLCK, 100, EOF_, 1)), 0);
	assert_reports(getlk(m, 1, F_RDLCK, 1u << 30, 1u << 30, 2), F_WRLCK, 100, EOF_);
	assert_int_equal(set(m, 1, px(F_UNLCK, 200, EOF_, 1)), 0);
	assert_reports(getlk(m, 1, F_RDLCK, 0, EOF_, 2), F_WRLCK, 100, 199);
	/* A lock to EOF touching one that ends at EOF - 1 merges. */
	assert_int_equal(set(m, 1, px(F_WRLCK, 200, EOF_, 1)), 0);
	assert_int_equal(vn_lock_count(m, 1), 1);
	assert_reports(getlk(m, 1, F_RDLCK, 0, EOF_, 2), F_WRLCK, 100, EOF_);
	assert_int_equal(set(m, 1, px(F_WRLCK, EOF_, EOF_, 2)), -EAGAIN);
	vn_lock_release(m, 1, 1, 0);
}

static void test_posix_upgrade_conflict(void **state)
{
	struct vn_lockmgr *m = *state;

	assert_int_equal(set(m, 1, px(F_RDLCK, 0, 9, 1)), 0);
	assert_int_equal(set(m, 1, px(F_RDLCK, 0, 9, 2)), 0);
	assert_int_equal(vn_lock_count(m, 1), 2);
	/* Another reader: the upgrade fails and the read lock stays. */
	assert_int_equal(set(m, 1, px(F_WRLCK, 5, 5, 1)), -EAGAIN);
	assert_int_equal(vn_lock_count(m, 1), 2);
	assert_reports(getlk(m, 1, F_WRLCK, 0, 9, 3), F_RDLCK, 0, 9);
	/* Once the other reader goes, the upgrade is in place. */
	assert_int_equal(set(m, 1, px(F_UNLCK, 0, EOF_, 2)), 0);
	assert_int_equal(set(m, 1, px(F_WRLCK, 0, 9, 1)), 0);
	assert_int_equal(vn_lock_count(m, 1), 1);
	assert_reports(getlk(m, 1, F_RDLCK, 0, 9, 3), F_WRLCK, 0, 9);
	vn_lock_release(m, 1, 1, 0);
}

static void test_getlk_reporting(void **state)
{
	struct vn_lockmgr *m = *state;
	struct vn_flock lk;

	assert_int_equal(set(m, 1, px(F_RDLCK, 50, 59, 1)), 0);
	assert_int_equal(set(m, 1, px(F_WRLCK, 10, 19, 2)), 0);
	/* The first conflicting lock, with its owner's pid. */
	lk = getlk(m, 1, F_WRLCK, 0, 100, 3);
	assert_reports(lk, F_WRLCK, 10, 19);
	assert_int_equal(lk.pid, 1002);
	lk = getlk(m, 1, F_WRLCK, 20, 100, 3);
	assert_reports(lk, F_RDLCK, 50, 59);
	assert_int_equal(lk.pid, 1001);
	/* Read against read: no conflict. */
	assert_reports(getlk(m, 1, F_RDLCK, 50, 59, 3), F_UNLCK, 0, 0);
	/* One's own locks never conflict. */
	assert_reports(getlk(m, 1, F_WRLCK, 0, 100, 2), F_RDLCK, 50, 59);
	assert_reports(getlk(m, 1, F_WRLCK, 10, 19, 2), F_UNLCK, 0, 0);
	/* Another inode is free. */
	assert_reports(getlk(m, 2, F_WRLCK, 0, EOF_, 3), F_UNLCK, 0, 0);
	/* Invalid requests. */
	lk = px(F_UNLCK, 0, 1, 3);
	assert_int_equal(vn_lock_test(m, 1, &lk), -EINVAL);
	lk = px(F_WRLCK, 9, 1, 3);
	assert_int_equal(vn_lock_test(m, 1, &lk), -EINVAL);
	vn_lock_release(m, 1, 1, 0);
	vn_lock_release(m, 1, 2, 0);
}

static void test_nonblocking_eagain(void **state)
{
	struct vn_lockmgr *m = *state;
	struct vn_flock bad = px(7, 0, 1, 1);

	assert_int_equal(set(m, 1, px(F_WRLCK, 10, 19, 1)), 0);
	assert_int_equal(set(m, 1, px(F_RDLCK, 19, 30, 2)), -EAGAIN);
	assert_int_equal(set(m, 1, px(F_WRLCK, 0, 10, 2)), -EAGAIN);
	assert_int_equal(set(m, 1, px(F_WRLCK, 0, 9, 2)), 0);
	assert_int_equal(set(m, 1, px(F_WRLCK, 20, 20, 2)), 0);
	assert_int_equal(set(m, 1, px(F_WRLCK, 5, 1, 2)), -EINVAL);
	assert_int_equal(vn_lock_set(m, 1, &bad, 0, NULL, NULL), -EINVAL);
	assert_int_equal(vn_lock_count(m, 1), 3);
	vn_lock_release(m, 1, 1, 0);
	vn_lock_release(m, 1, 2, 0);
	assert_int_equal(vn_lock_count(m, 1), 0);
}

static void test_flock_semantics(void **state)
{
	struct vn_lockmgr *m = *state;
	struct vn_flock lk = fl(F_WRLCK, 3);

	/* flock and POSIX locks ignore each other. */
	assert_int_equal(set(m, 1, fl(F_WRLCK, 1)), 0);
	assert_int_equal(set(m, 1, px(F_WRLCK, 0, EOF_, 2)), 0);
	assert_int_equal(set(m, 1, fl(F_RDLCK, 2)), -EWOULDBLOCK);
	assert_int_equal(vn_lock_test(m, 1, &lk), 0);
	assert_int_equal(lk.type, F_WRLCK);
	assert_int_equal(lk.pid, 1001);

	/* Same type again is a no-op; downgrade in place. */
	assert_int_equal(set(m, 1, fl(F_WRLCK, 1)), 0);
	assert_int_equal(set(m, 1, fl(F_RDLCK, 1)), 0);
	assert_int_equal(set(m, 1, fl(F_RDLCK, 2)), 0);
	assert_int_equal(vn_lock_count(m, 1), 3);

	/* An upgrade blocked by another sharer fails and, as on Linux, has dropped the shared lock. */
	assert_int_equal(set(m, 1, fl(F_WRLCK, 1)), -EWOULDBLOCK);
	assert_int_equal(vn_lock_count(m, 1), 2);

	/* Unlock; the POSIX lock of owner 2 remains. */
	assert_int_equal(set(m, 1, fl(F_UNLCK, 2)), 0);
	assert_int_equal(set(m, 1, fl(F_WRLCK, 1)), 0);
	assert_int_equal(vn_lock_count(m, 1), 2);
	vn_lock_release(m, 1, 1, 1);
	vn_lock_release(m, 1, 2, 0);
	assert_int_equal(vn_lock_count(m, 1), 0);
}

static void test_release_owner(void **state)
{
	struct vn_lockmgr *m = *state;

	assert_int_equal(set(m, 1, px(F_WRLCK, 0, 9, 1)), 0);
	assert_int_equal(set(m, 1, px(F_RDLCK, 20, 29, 1)), 0);
	assert_int_equal(set(m, 1, px(F_WRLCK, 40, EOF_, 1)), 0);
	assert_int_equal(set(m, 1, px(F_RDLCK, 20, 29, 2)), 0);
	assert_int_equal(set(m, 1, fl(F_WRLCK, 1)), 0);
	assert_int_equal(set(m, 2, px(F_WRLCK, 0, 9, 1)), 0);
	assert_int_equal(vn_lock_count(m, 1), 5);

	vn_lock_release(m, 1, 1, 0);
	assert_int_equal(vn_lock_count(m, 1), 2);
	assert_reports(getlk(m, 1, F_WRLCK, 0, 9, 3), F_UNLCK, 0, 0);
	assert_int_equal(vn_lock_count(m, 2), 1);   /* other inodes untouched */
	vn_lock_release(m, 1, 1, 1);
	assert_int_equal(vn_lock_count(m, 1), 1);
	vn_lock_release(m, 1, 2, 0);
	vn_lock_release(m, 2, 1, 0);
	assert_int_equal(vn_lock_count(m, 1), 0);
	assert_int_equal(vn_lock_count(m, 2), 0);
	/* Releasing an inode that has no record. */
	vn_lock_release(m, 99, 1, 0);
}

/* @lk as held by cluster node @node. */
static struct vn_flock on_node(struct vn_flock lk, uint32_t node)
{
	lk.node = node;
	return lk;
}

struct seen {
	size_t n;
	uint32_t nodes[8];
};

static int export_cb(void *arg, uint64_t ino, const struct vn_flock *lk)
{
	struct seen *s = arg;

	(void)ino;
	if (s->n < 8)
		s->nodes[s->n] = lk->node;
	s->n++;
	return 0;
}

/* A node that left loses every lock it held, of both kinds, on every inode. */
static void test_release_node(void **state)
{
	struct vn_lockmgr *m = *state;
	struct seen seen = { 0 };

	/* Node 2: a POSIX lock split in two by an unlock, a flock lock, a lock on inode 7. */
	assert_int_equal(set(m, 1, on_node(px(F_WRLCK, 0, 99, 21), 2)), 0);
	assert_int_equal(set(m, 1, on_node(px(F_UNLCK, 40, 59, 21), 2)), 0);
	assert_int_equal(set(m, 1, on_node(fl(F_RDLCK, 22), 2)), 0);
	assert_int_equal(set(m, 7, on_node(px(F_RDLCK, 0, EOF_, 21), 2)), 0);
	/* Node 3 shares the flock and holds a range node 2 left free. */
	assert_int_equal(set(m, 1, on_node(fl(F_RDLCK, 31), 3)), 0);
	assert_int_equal(set(m, 1, on_node(px(F_WRLCK, 45, 50, 31), 3)), 0);
	assert_int_equal(vn_lock_count(m, 1), 5);

	/* Relocation carries the node with each lock. */
	assert_int_equal(vn_lock_export(m, export_cb, &seen), 0);
	assert_int_equal(seen.n, 6);
	for (size_t i = 0; i < seen.n; i++)
		assert_true(seen.nodes[i] == 2 || seen.nodes[i] == 3);

	assert_int_equal(vn_lock_release_node(m, 2), 4);
	assert_int_equal(vn_lock_count(m, 1), 2);
	assert_int_equal(vn_lock_count(m, 7), 0);
	assert_reports(getlk(m, 1, F_WRLCK, 0, 44, 99), F_UNLCK, 0, 0);
	assert_reports(getlk(m, 1, F_WRLCK, 0, EOF_, 99), F_WRLCK, 45, 50);
	assert_int_equal(set(m, 1, on_node(fl(F_WRLCK, 11), 1)), -EWOULDBLOCK);
	/* Nothing left of node 2; node 4 never held anything. */
	assert_int_equal(vn_lock_release_node(m, 2), 0);
	assert_int_equal(vn_lock_release_node(m, 4), 0);
	assert_int_equal(vn_lock_release_node(m, 3), 2);
	assert_int_equal(vn_lock_count(m, 1), 0);
}

/* ---------------------------------------------------------------------- */
/* Blocking waits with real threads                                        */
/* ---------------------------------------------------------------------- */

struct waiter {
	struct vn_lockmgr *m;
	uint64_t ino;
	struct vn_flock lk;
	atomic_int polls;            /* calls of the interrupted callback */
	int interrupt_after;         /* answer "interrupted" from this poll on; 0: never */
	atomic_int rc;               /* 1 while waiting, then the result */
	pthread_t th;
};

static int poll_cb(void *arg)
{
	struct waiter *w = arg;
	int n = atomic_fetch_add(&w->polls, 1) + 1;

	return w->interrupt_after && n >= w->interrupt_after;
}

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->rc = vn_lock_set(w->m, w->ino, &w->lk, 1, poll_cb, w);
	return NULL;
}

static void waiter_start(struct waiter *w, struct vn_lockmgr *m, uint64_t ino, struct vn_flock lk)
{
	w->m = m;
	w->ino = ino;
	w->lk = lk;
	atomic_store(&w->polls, 0);
	w->rc = 1;
	assert_int_equal(pthread_create(&w->th, NULL, waiter_main, w), 0);
}

/* Until the waiter is registered and sleeping. */
static void waiter_until_waiting(struct waiter *w)
{
	while (atomic_load(&w->polls) == 0)
		sleep_ms(1);
}

static void test_blocking_granted_after_release(void **state)
{
	struct vn_lockmgr *m = *state;
	struct waiter w = { 0 };

	assert_int_equal(set(m, 1, px(F_WRLCK, 0, 9, 1)), 0);
	waiter_start(&w, m, 1, px(F_WRLCK, 5, 5, 2));
	waiter_until_waiting(&w);
	sleep_ms(60);
	assert_int_equal(w.rc, 1);   /* still waiting */

	/* Unlocking a different part does not grant it; splitting around it does. */
	assert_int_equal(set(m, 1, px(F_UNLCK, 0, 2, 1)), 0);
	sleep_ms(20);
	assert_int_equal(w.rc, 1);
	assert_int_equal(set(m, 1, px(F_UNLCK, 4, 6, 1)), 0);
	pthread_join(w.th, NULL);
	assert_int_equal(w.rc, 0);
	assert_int_equal(vn_lock_count(m, 1), 3);
	assert_reports(getlk(m, 1, F_RDLCK, 5, 5, 3), F_WRLCK, 5, 5);
	vn_lock_release(m, 1, 1, 0);
	vn_lock_release(m, 1, 2, 0);
}

static void test_blocking_flock(void **state)
{
	struct vn_lockmgr *m = *state;
	struct waiter w = { 0 };

	assert_int_equal(set(m, 1, fl(F_RDLCK, 1)), 0);
	waiter_start(&w, m, 1, fl(F_WRLCK, 2));
	waiter_until_waiting(&w);
	/* A POSIX lock changes nothing for the flock waiter. */
	assert_int_equal(set(m, 1, px(F_WRLCK, 0, EOF_, 3)), 0);
	vn_lock_release(m, 1, 3, 0);
	assert_int_equal(w.rc, 1);
	vn_lock_release(m, 1, 1, 1);
	pthread_join(w.th, NULL);
	assert_int_equal(w.rc, 0);
	vn_lock_release(m, 1, 2, 1);
	assert_int_equal(vn_lock_count(m, 1), 0);
}

/* A waiter for a lock of a node that leaves gets it at once. */
static void test_release_node_wakes(void **state)
{
	struct vn_lockmgr *m = *state;
	struct waiter w = { 0 }, v = { 0 };

	assert_int_equal(set(m, 1, on_node(fl(F_WRLCK, 21), 2)), 0);
	assert_int_equal(set(m, 1, on_node(px(F_WRLCK, 0, 9, 21), 2)), 0);
	waiter_start(&w, m, 1, on_node(fl(F_WRLCK, 11), 1));
	waiter_start(&v, m, 1, on_node(px(F_RDLCK, 5, 5, 12), 1));
	waiter_until_waiting(&w);
	waiter_until_waiting(&v);
	assert_int_equal(vn_lock_release_node(m, 2), 2);
	pthread_join(w.th, NULL);
	pthread_join(v.th, NULL);
	assert_int_equal(w.rc, 0);
	assert_int_equal(v.rc, 0);
	assert_int_equal(vn_lock_release_node(m, 1), 2);
	assert_int_equal(vn_lock_count(m, 1), 0);
}

/*
 * A blocking upgrade from shared to exclusive waits without its shared lock
 * (flock(2): not atomic), so the other sharer can upgrade meanwhile; the
 * waiter gets the exclusive lock once that one unlocks.
 */
static void test_flock_upgrade_waits(void **state)
{
	struct vn_lockmgr *m = *state;
	struct waiter w = { 0 };

	assert_int_equal(set(m, 1, fl(F_RDLCK, 1)), 0);
	assert_int_equal(set(m, 1, fl(F_RDLCK, 2)), 0);
	waiter_start(&w, m, 1, fl(F_WRLCK, 1));
	waiter_until_waiting(&w);
	assert_int_equal(vn_lock_count(m, 1), 1);
	assert_int_equal(set(m, 1, fl(F_WRLCK, 2)), 0);
	assert_int_equal(w.rc, 1);
	assert_int_equal(set(m, 1, fl(F_UNLCK, 2)), 0);
	pthread_join(w.th, NULL);
	assert_int_equal(w.rc, 0);
	assert_int_equal(set(m, 1, fl(F_RDLCK, 2)), -EWOULDBLOCK);
	/* Downgrading in place lets a sharer in at once. */
	assert_int_equal(set(m, 1, fl(F_RDLCK, 1)), 0);
	assert_int_equal(set(m, 1, fl(F_RDLCK, 2)), 0);
	vn_lock_release(m, 1, 1, 1);
	vn_lock_release(m, 1, 2, 1);
	assert_int_equal(vn_lock_count(m, 1), 0);
}

static void test_interrupt_eintr(void **state)
{
	struct vn_lockmgr *m = *state;
	struct waiter w = { .interrupt_after = 3 };
	struct timespec t0, t1;
	long ms;

	assert_int_equal(set(m, 1, px(F_WRLCK, 0, EOF_, 1)), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	waiter_start(&w, m, 1, px(F_RDLCK, 0, 0, 2));
	pthread_join(w.th, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;

	assert_int_equal(w.rc, -EINTR);
	assert_int_equal(atomic_load(&w.polls), 3);
	/* Two sleeps of about 50 ms between the three polls. */
	assert_true(ms >= 90);
	assert_int_equal(vn_lock_count(m, 1), 1);
	vn_lock_release(m, 1, 1, 0);
	assert_int_equal(vn_lock_count(m, 1), 0);
}

static void test_deadlock_edeadlk(void **state)
{
	struct vn_lockmgr *m = *state;
	struct waiter a = { 0 };
	struct vn_flock lk = px(F_WRLCK, 0, 0, 2);

	/* A holds inode 1, B holds inode 2. */
	assert_int_equal(set(m, 1, px(F_WRLCK, 0, 0, 1)), 0);
	assert_int_equal(set(m, 2, px(F_WRLCK, 0, 0, 2)), 0);
	/* A waits for B ... */
	waiter_start(&a, m, 2, px(F_WRLCK, 0, 0, 1));
	waiter_until_waiting(&a);
	/* ... so B waiting for A would close the cycle. */
	assert_int_equal(vn_lock_set(m, 1, &lk, 1, NULL, NULL), -EDEADLK);
	/* A third owner waiting for A is no cycle: non-blocking to keep it short. */
	assert_int_equal(set(m, 1, px(F_WRLCK, 0, 0, 3)), -EAGAIN);

	/* B gives up inode 2: A gets it. */
	vn_lock_release(m, 2, 2, 0);
	pthread_join(a.th, NULL);
	assert_int_equal(a.rc, 0);
	assert_reports(getlk(m, 2, F_WRLCK, 0, 0, 2), F_WRLCK, 0, 0);
	vn_lock_release(m, 1, 1, 0);
	vn_lock_release(m, 2, 1, 0);
}

/* A three-owner cycle over three inodes. */
static void test_deadlock_three_owners(void **state)
{
	struct vn_lockmgr *m = *state;
	struct waiter a = { 0 }, b = { 0 };
	struct vn_flock lk = px(F_WRLCK, 0, 0, 3);

	for (uint64_t o = 1; o <= 3; o++)
		assert_int_equal(set(m, o, px(F_WRLCK, 0, 0, o)), 0);
	waiter_start(&a, m, 2, px(F_WRLCK, 0, 0, 1));   /* 1 waits for 2 */
	waiter_start(&b, m, 3, px(F_WRLCK, 0, 0, 2));   /* 2 waits for 3 */
	waiter_until_waiting(&a);
	waiter_until_waiting(&b);
	assert_int_equal(vn_lock_set(m, 1, &lk, 1, NULL, NULL), -EDEADLK);   /* 3 for 1 */

	vn_lock_release(m, 3, 3, 0);
	pthread_join(b.th, NULL);
	assert_int_equal(b.rc, 0);
	vn_lock_release(m, 2, 2, 0);
	pthread_join(a.th, NULL);
	assert_int_equal(a.rc, 0);
	for (uint64_t ino = 1; ino <= 3; ino++)
		for (uint64_t o = 1; o <= 3; o++)
			vn_lock_release(m, ino, o, 0);
}

/* Several waiters for one lock: each release wakes them, all get it in turn. */
static void test_many_waiters(void **state)
{
	struct vn_lockmgr *m = *state;
	enum { N = 6 };
	struct waiter w[N];
	int granted;

	assert_int_equal(set(m, 1, px(F_WRLCK, 0, 99, 100)), 0);
	for (int i = 0; i < N; i++) {
		w[i] = (struct waiter){ 0 };
		waiter_start(&w[i], m, 1, px(F_WRLCK, 0, 99, (uint64_t)i + 1));
	}
	for (int i = 0; i < N; i++)
		waiter_until_waiting(&w[i]);
	vn_lock_release(m, 1, 100, 0);
	for (granted = 0; granted < N;) {
		int holder = -1;

		for (int i = 0; i < N; i++) {
			if (w[i].rc == 1 || w[i].rc == 2)
				continue;
			holder = i;
		}
		if (holder < 0) {
			sleep_ms(1);
			continue;
		}
		pthread_join(w[holder].th, NULL);
		assert_int_equal(w[holder].rc, 0);
		w[holder].rc = 2;
		granted++;
		assert_int_equal(vn_lock_count(m, 1), 1);
		vn_lock_release(m, 1, (uint64_t)holder + 1, 0);
	}
	assert_int_equal(vn_lock_count(m, 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_posix_merge_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_posix_to_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_posix_upgrade_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_getlk_reporting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nonblocking_eagain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flock_semantics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocking_granted_after_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocking_flock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_node_wakes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flock_upgrade_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupt_eintr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadlock_edeadlk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadlock_three_owners, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_waiters, setup, teardown),
	};

	alarm(240);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
