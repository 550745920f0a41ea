/*
 * pr_check.c: the block layer's fencing against a real iSCSI target, as two
 * cluster nodes see it.  t_fence_blk.sh runs it against a tgtd of its own:
 *
 *   cxfs-pr-check --drop CMD URI
 *
 * Three devices are opened on the LUN with different initiator names: nodes
 * A and B (each registers a key) and R, which never registers.  The scenario,
 * one step after the other: both register and share the WRITE EXCLUSIVE -
 * REGISTRANTS ONLY reservation and write; R may read but not write; A may not
 * preempt itself; A preempts B: B's next write fails with BLK_EFENCED, B is
 * fenced (conflict counter, callback) and can still read, A still writes;
 * B's iSCSI connection is cut (/bin/sh runs "CMD IQN", IQN B's initiator) and
 * B, reconnected, stays fenced; A's connection is cut and A, reconnected,
 * registers again and writes; B rejoins and writes; A preempts B again before
 * B does any I/O, B's connection is cut, and B finds on reconnecting that its
 * key is gone and becomes fenced without registering again; B rejoins, and
 * A and B preempt each other (as a two-node tie-breaker would): the second
 * finds its own key gone and is fenced; B rejoins and leaves (unregisters);
 * B rejoins and A leaves; B preempts A's leftover registration, leaves (the
 * holder's leave releases the reservation), rejoins and takes it again.  The
 * target's view (READ KEYS, READ RESERVATION) is printed after each step
 * that changes it.
 *
 * Every check prints "ok   <what>" or "FAIL <what>: ..."; the last line is
 * "N passed, M failed".  Exit status 1 if a check failed, 2 on a usage or
 * setup error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block/blk.h"

#define KEY_A 0xc0f5000100000001ULL /* as a cluster might derive: cluster id, node number */
#define KEY_B 0xc0f5000100000002ULL
#define BLOCK 4096
#define RECONNECT_WAIT_S 60         /* safety bound on waiting for a reconnect */

/* One node: a device and what its fence callback saw. */
struct node {
	const char *initiator;            /* its iSCSI initiator name */
	uint64_t key;                     /* its reservation key, 0 for R */
	struct blk_dev *dev;
	atomic_int fence_calls;           /* times the fence callback ran (from the I/O thread) */
};

static unsigned n_passed, n_failed;
static const char *drop_cmd;

static void expect(int good, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void expect(int good, const char *what, const char *fmt, ...)
{
	va_list ap;

	if (good) {
		n_passed++;
		printf("ok   %s\n", what);
		return;
	}
	n_failed++;
	printf("FAIL %s: ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Check that a call returned @want. */
static void expect_rc(const char *what, int got, int want)
{
	expect(got == want, what, "expected %d (%s), got %d (%s)", want, strerror(-want), got,
	       strerror(-got));
}

static void on_fence(struct blk_dev *dev, void *arg)
{
	struct node *n = arg;

	(void)dev;
	atomic_fetch_add(&n->fence_calls, 1);
}

static uint64_t conflicts(const struct node *n)
{
	struct blk_stats st;

	blk_get_stats(n->dev, &st);
	return st.reservation_conflicts;
}

static uint64_t reconnects(const struct node *n)
{
	struct blk_stats st;

	blk_get_stats(n->dev, &st);
	return st.reconnects;
}

static unsigned count_key(const struct blk_pr_state *st, uint64_t key)
{
	unsigned i, c = 0;

	for (i = 0; i < st->n_keys && i < BLK_PR_MAX_KEYS; i++)
		c += st->keys[i] == key;
	return c;
}

/* Print the target's persistent-reservation state, as @via reads it. */
static void show_target(struct node *via, struct blk_pr_state *st, const char *when)
{
	unsigned i;
	int rc = blk_pr_read(via->dev, st);

	if (rc < 0) {
		expect_rc("PERSISTENT RESERVE IN answers", rc, 0);
		return;
	}
	printf("     target after %s: PRgeneration %" PRIu32 ", %u registration(s):", when,
	       st->generation, st->n_keys);
	for (i = 0; i < st->n_keys && i < BLK_PR_MAX_KEYS; i++)
		printf(" %#" PRIx64 "%s", st->keys[i],
		       st->keys[i] == KEY_A ? " (A)" : st->keys[i] == KEY_B ? " (B)" : "");
	if (st->reserved)
		printf("; reservation type %d held by %#" PRIx64 "\n", st->type, st->holder);
	else
		printf("; no reservation\n");
}

/* Fill a block with a pattern naming its writer. */
static void fill(char *buf, int tag)
{
	memset(buf, tag, BLOCK);
}

/* Cut @n's iSCSI connection at the target and wait until @n has logged in again. */
static int drop_and_wait(struct node *n)
{
	uint64_t before = reconnects(n);
	struct timespec nap = { 0, 20 * 1000 * 1000 };
	char cmd[4096];
	pid_t pid;
	int status, i;

	/* The initiator name goes in as $1, never through the shell's parser. */
	snprintf(cmd, sizeof(cmd), "%s \"$1\"", drop_cmd);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, "sh", n->initiator, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EIO;
	for (i = 0; i < RECONNECT_WAIT_S * 50; i++) {
		if (reconnects(n) > before)
			return 0;
		nanosleep(&nap, NULL);
	}
	return -ETIMEDOUT;
}

static int open_node(const char *uri, struct node *n)
{
	struct blk_open_opts o = { .initiator = n->initiator };
	int rc = blk_open(uri, &o, &n->dev);

	if (rc < 0) {
		fprintf(stderr, "cannot open %s as %s: %s\n", uri, n->initiator, strerror(-rc));
		return rc;
	}
	blk_set_fence_cb(n->dev, on_fence, n);
	return 0;
}

static void scenario(struct node *a, struct node *b, struct node *r)
{
	static char wa[BLOCK], wb[BLOCK], rd[BLOCK];
	struct blk_pr_state st;
	uint64_t c;

	fill(wa, 'a');
	fill(wb, 'b');
	show_target(a, &st, "open");

	printf("-- both nodes register and share the WE-RO reservation\n");
	expect_rc("A registers its key", blk_pr_register(a->dev, a->key), 0);
	expect_rc("B registers its key", blk_pr_register(b->dev, b->key), 0);
	expect_rc("A registers again with the same key (a restart)", blk_pr_register(a->dev, a->key), 0);
	expect_rc("A takes the WE-RO reservation", blk_pr_reserve(a->dev), 0);
	expect_rc("B's reserve finds it held and shares it", blk_pr_reserve(b->dev), 0);
	show_target(a, &st, "register + reserve");
	expect(st.reserved && st.type == BLK_PR_TYPE_WE_RO, "the LUN carries a type 5 (WE-RO) reservation",
	       "reserved %d type %d", st.reserved, st.type);
	expect(count_key(&st, a->key) >= 1 && count_key(&st, b->key) == 1, "both keys are registered",
	       "A %u, B %u", count_key(&st, a->key), count_key(&st, b->key));
	expect_rc("A writes", blk_write(a->dev, wa, BLOCK, 0), 0);
	expect_rc("B writes", blk_write(b->dev, wb, BLOCK, BLOCK), 0);

	printf("-- an unregistered initiator (R) may read, not write\n");
	expect_rc("R reads", blk_read(r->dev, rd, BLOCK, 0), 0);
	expect(memcmp(rd, wa, BLOCK) == 0, "R reads what A wrote", "data differs");
	expect_rc("R's write fails with BLK_EFENCED", blk_write(r->dev, rd, BLOCK, 2 * BLOCK), BLK_EFENCED);

	printf("-- a node never preempts itself\n");
	expect_rc("A's preempt of its own key is refused", blk_pr_preempt(a->dev, a->key), -EINVAL);
	expect_rc("a preempt of key 0 is refused", blk_pr_preempt(a->dev, 0), -EINVAL);
	expect(!blk_fenced(a->dev), "A is not fenced", "A is fenced");

	printf("-- A fences B\n");
	expect_rc("A preempts B", blk_pr_preempt(a->dev, b->key), 0);
	show_target(a, &st, "A preempts B");
	expect(count_key(&st, b->key) == 0, "B's key is gone at the target", "listed %u times",
	       count_key(&st, b->key));
	expect(!blk_fenced(b->dev), "B does not know yet", "B already fenced");
	expect_rc("B's next write fails with BLK_EFENCED", blk_write(b->dev, wb, BLOCK, BLOCK), BLK_EFENCED);
	expect(blk_fenced(b->dev), "blk_fenced(B)", "B is not fenced");
	c = conflicts(b);
	expect(c >= 1, "B counted the reservation conflict", "reservation_conflicts %" PRIu64, c);
	expect(atomic_load(&b->fence_calls) == 1, "B's fence callback ran once", "ran %d times",
	       atomic_load(&b->fence_calls));
	expect_rc("B's flush fails with BLK_EFENCED", blk_flush(b->dev), BLK_EFENCED);
	expect_rc("B's next write fails at once", blk_write(b->dev, wb, BLOCK, BLOCK), BLK_EFENCED);
	expect(conflicts(b) == c, "without reaching the target", "reservation_conflicts %" PRIu64, conflicts(b));
	expect_rc("A still writes", blk_write(a->dev, wa, BLOCK, BLOCK), 0);
	expect_rc("fenced B still reads", blk_read(b->dev, rd, BLOCK, BLOCK), 0);
	expect(memcmp(rd, wa, BLOCK) == 0, "B reads what A wrote over its block", "data differs");
	expect_rc("B may not register on its own", blk_pr_register(b->dev, b->key), BLK_EFENCED);
	expect_rc("B may not preempt A", blk_pr_preempt(b->dev, a->key), BLK_EFENCED);

	printf("-- B's connection is cut: B logs in again and stays fenced\n");
	expect_rc("B reconnects", drop_and_wait(b), 0);
	expect(blk_fenced(b->dev), "B is still fenced", "B is no longer fenced");
	expect_rc("B's write still fails", blk_write(b->dev, wb, BLOCK, BLOCK), BLK_EFENCED);
	show_target(a, &st, "B's reconnect");
	expect(count_key(&st, b->key) == 0, "B did not register again", "B's key listed %u times",
	       count_key(&st, b->key));

	printf("-- A's connection is cut: A registers again on its new session\n");
	expect_rc("A reconnects", drop_and_wait(a), 0);
	expect_rc("A writes after its reconnect", blk_write(a->dev, wa, BLOCK, 0), 0);
	expect(!blk_fenced(a->dev), "A is not fenced", "A is fenced");
	show_target(a, &st, "A's reconnect (tgtd keeps the old session's registration)");
	expect(count_key(&st, a->key) >= 1, "A's key is registered", "not listed");

	printf("-- B rejoins (the membership admitted it again)\n");
	expect_rc("B rejoins", blk_pr_rejoin(b->dev, b->key), 0);
	expect(!blk_fenced(b->dev), "B is no longer fenced", "B is fenced");
	expect_rc("B writes again", blk_write(b->dev, wb, BLOCK, BLOCK), 0);
	expect_rc("B flushes", blk_flush(b->dev), 0);
	show_target(a, &st, "B rejoins");

	printf("-- A fences B again; B, idle, loses its connection and finds its key gone\n");
	c = conflicts(b);
	expect_rc("A preempts B", blk_pr_preempt(a->dev, b->key), 0);
	expect_rc("B reconnects", drop_and_wait(b), 0);
	expect(blk_fenced(b->dev), "B is fenced by its reconnect", "B is not fenced");
	expect(conflicts(b) == c, "without any refused write", "reservation_conflicts %" PRIu64, conflicts(b));
	expect(atomic_load(&b->fence_calls) == 2, "B's fence callback ran once more", "ran %d times in all",
	       atomic_load(&b->fence_calls));
	show_target(a, &st, "B's reconnect");
	expect(count_key(&st, b->key) == 0, "B did not undo the fence", "B's key listed %u times",
	       count_key(&st, b->key));
	expect_rc("B's write fails", blk_write(b->dev, wb, BLOCK, BLOCK), BLK_EFENCED);

	printf("-- B rejoins; A and B race to preempt each other: the loser is fenced\n");
	expect_rc("B rejoins", blk_pr_rejoin(b->dev, b->key), 0);
	expect_rc("B writes", blk_write(b->dev, wb, BLOCK, BLOCK), 0);
	expect_rc("A preempts B first", blk_pr_preempt(a->dev, b->key), 0);
	expect_rc("B's preempt of A, second, fails with BLK_EFENCED", blk_pr_preempt(b->dev, a->key),
		  BLK_EFENCED);
	expect(blk_fenced(b->dev), "B knows it is fenced", "B is not fenced");
	expect(atomic_load(&b->fence_calls) == 3, "B's fence callback ran once more", "ran %d times in all",
	       atomic_load(&b->fence_calls));
	show_target(a, &st, "the race");
	expect(count_key(&st, a->key) >= 1, "A's key survived", "A's key is gone");

	printf("-- B rejoins, then leaves in order\n");
	expect_rc("B rejoins", blk_pr_rejoin(b->dev, b->key), 0);
	expect_rc("B writes", blk_write(b->dev, wb, BLOCK, BLOCK), 0);
	expect_rc("B unregisters", blk_pr_unregister(b->dev), 0);
	show_target(a, &st, "B leaves");
	expect(count_key(&st, b->key) == 0, "B's key is gone", "listed %u times", count_key(&st, b->key));
	expect(st.reserved && st.type == BLK_PR_TYPE_WE_RO, "the reservation stays (A holds it)",
	       "reserved %d type %d", st.reserved, st.type);
	expect_rc("B, gone, may no longer write", blk_write(b->dev, wb, BLOCK, BLOCK), BLK_EFENCED);
	expect_rc("A writes", blk_write(a->dev, wa, BLOCK, 0), 0);

	printf("-- A leaves; its first session's registration, kept by tgtd, holds the reservation\n");
	expect_rc("B rejoins", blk_pr_rejoin(b->dev, b->key), 0);
	expect_rc("A unregisters", blk_pr_unregister(a->dev), 0);
	expect_rc("A, gone, may no longer write", blk_write(a->dev, wa, BLOCK, 0), BLK_EFENCED);
	show_target(b, &st, "A leaves");
	expect_rc("B preempts A's leftover registration", blk_pr_preempt(b->dev, a->key), 0);
	show_target(b, &st, "B's preempt");
	expect(st.reserved && st.holder == b->key && count_key(&st, a->key) == 0,
	       "B holds the reservation, A's key is gone", "reserved %d holder %#" PRIx64 ", A listed %u",
	       st.reserved, st.holder, count_key(&st, a->key));

	printf("-- the holder leaves: the reservation goes; the next node takes it again\n");
	expect_rc("B unregisters", blk_pr_unregister(b->dev), 0);
	show_target(b, &st, "B leaves");
	expect(!st.reserved && st.n_keys == 0, "no reservation, no key", "reserved %d, %u keys", st.reserved,
	       st.n_keys);
	expect_rc("B rejoins", blk_pr_rejoin(b->dev, b->key), 0);
	expect_rc("B's reserve takes the reservation", blk_pr_reserve(b->dev), 0);
	show_target(b, &st, "B's reserve");
	expect(st.reserved && st.type == BLK_PR_TYPE_WE_RO && st.holder == b->key, "B holds the WE-RO reservation",
	       "reserved %d type %d holder %#" PRIx64, st.reserved, st.type, st.holder);
	expect_rc("B writes", blk_write(b->dev, wb, BLOCK, BLOCK), 0);
}

int main(int argc, char **argv)
{
	struct node a = { "iqn.2026-11.org.cxfs.test:fence-a", KEY_A, NULL, 0 };
	struct node b = { "iqn.2026-11.org.cxfs.test:fence-b", KEY_B, NULL, 0 };
	struct node r = { "iqn.2026-11.org.cxfs.test:fence-r", 0, NULL, 0 };
	const char *uri;

	if (argc != 4 || strcmp(argv[1], "--drop") != 0) {
		fprintf(stderr, "usage: cxfs-pr-check --drop CMD iscsi://HOST:PORT/IQN/LUN\n"
				"  CMD cuts the iSCSI connection of the initiator named by $1\n");
		return 2;
	}
	drop_cmd = argv[2];
	uri = argv[3];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (open_node(uri, &a) < 0 || open_node(uri, &b) < 0 || open_node(uri, &r) < 0)
		return 2;
	scenario(&a, &b, &r);
	blk_close(r.dev);
	blk_close(b.dev);
	blk_close(a.dev);
	printf("%u passed, %u failed\n", n_passed, n_failed);
	return n_failed ? 1 : 0;
}
