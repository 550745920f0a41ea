#!/usr/bin/env python3
"""flock_check.py: flock(2) across the nodes of a cluster (t_cluster_flock.sh).

Usage: flock_check.py PATH1 PATH2 PATH3

The three paths name one existing file through node1 (the MDS), node2 and
node3.  Each check prints "ok WHAT" or "FAIL WHAT: DETAIL", as cluster_io.py
does.

Each actor is a forked agent process working on one node's path: it opens
descriptors by name, dups them, forks a child that keeps them, and calls
flock(2) on them, answering each command with the result and the time
(CLOCK_MONOTONIC, the same clock in every process) at which the call
returned.  A probe from another node always unlocks (LOCK_UN) before it
closes its descriptor, so that no check depends on the asynchronous
release at close (docs/ARCHITECTURE.md, "Locks").
"""
import errno
import fcntl
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_io import Agent, fail, ok  # noqa: E402  (one copy of the agent plumbing)

OPS = {"sh": fcntl.LOCK_SH, "ex": fcntl.LOCK_EX, "un": fcntl.LOCK_UN}


def expect(what, cond, detail):
    if cond:
        ok(what)
    else:
        fail(what, str(detail))


class Interrupted(Exception):
    pass


def on_alarm(signum, frame):
    raise Interrupted()


class FlockAgent(Agent):
    """cluster_io's agent process, running flock commands on one node's path."""

    def _serve(self, rr, cw):
        fds = {}
        signal.signal(signal.SIGALRM, on_alarm)
        for line in os.fdopen(rr, "r"):
            cmd = line.split()
            try:
                res = self._run(cmd, fds)
            except Exception as e:  # the agent must answer, and never leave _serve
                res = f"error {e}"
            if res is None:
                break
            os.write(cw, (res + "\n").encode())

    def _run(self, cmd, fds):
        if cmd[0] == "open":
            fds[cmd[1]] = os.open(self.path, os.O_RDWR)
            return "0"
        if cmd[0] == "dup":
            fds[cmd[1]] = os.dup(fds[cmd[2]])
            return "0"
        if cmd[0] == "close":
            os.close(fds.pop(cmd[1]))
            return f"0 {time.monotonic()}"
        if cmd[0] == "fork":
            # A child that keeps every descriptor and only waits.
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                while True:
                    time.sleep(3600)
            return str(pid)
        if cmd[0] == "alarm":
            signal.setitimer(signal.ITIMER_REAL, float(cmd[1]))
            return "0"
        if cmd[0] == "lock":
            op = OPS[cmd[2]] | (fcntl.LOCK_NB if "nb" in cmd[3:] else 0)
            try:
                fcntl.flock(fds[cmd[1]], op)
                return f"0 {time.monotonic()}"
            except Interrupted:
                return f"EINTR {time.monotonic()}"
            except OSError as e:
                # EWOULDBLOCK, as flock(2) names it (the same value as EAGAIN).
                name = ("EWOULDBLOCK" if e.errno == errno.EWOULDBLOCK else
                        errno.errorcode.get(e.errno, str(e.errno)))
                return f"{name} {time.monotonic()}"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        if cmd[0] == "exit":
            return None
        return "badcmd"


def kill_timed(agent):
    """SIGKILL @agent; seconds until it was reaped."""
    t0 = time.monotonic()
    agent.kill()
    return time.monotonic() - t0


def code(r):
    return r.split()[0] if r else "none"


def when(r):
    parts = r.split() if r else []
    return float(parts[1]) if len(parts) > 1 else 0.0


def probe(agent, kind):
    """flock(kind | LOCK_NB) on a fresh descriptor; unlock, close, return the code."""
    agent.do("open p")
    r = code(agent.do(f"lock p {kind} nb"))
    agent.do("lock p un")
    agent.do("close p")
    return r


def at(fn):
    """A release for check_wakes: runs fn() and returns the time it began."""
    def run():
        t = time.monotonic()
        fn()
        return t
    return run


def check_wakes(what, waiter, release, settle=0.5):
    """@waiter has a blocking lock outstanding: it must still wait after
    @settle seconds, and return 0 after release() (which returns the time
    the release began)."""
    early = waiter.ready(settle)
    if early:
        fail(what, f"the wait ended before the release: {waiter.reply(1)}")
        release()
        return
    t_rel = release()
    r = waiter.reply(20)
    if r is None:
        fail(what, "still waiting 20 s after the release")
    elif code(r) != "0":
        fail(what, f"the wait failed: {r}")
    elif when(r) < t_rel:
        fail(what, f"granted at {when(r):.3f}, before the release at {t_rel:.3f}")
    else:
        ok(f"{what} ({(when(r) - t_rel) * 1000:.0f} ms after the release began)")


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    paths = sys.argv[1:]
    A, B, C = (FlockAgent(p, f"node{i + 1}") for i, p in enumerate(paths))
    spare, pids = [], []
    try:
        for g in (A, B, C):
            g.do("open f")

        # 1. exclusive excludes every other node
        r = B.do("lock f ex nb")
        expect("node2: LOCK_EX|LOCK_NB granted", code(r) == "0", r)
        for g in (C, A):
            for kind in ("ex", "sh"):
                r = probe(g, kind)
                expect(f"node2 holds LOCK_EX: LOCK_{kind.upper()}|LOCK_NB on {g.label} "
                       "fails with EWOULDBLOCK", r == "EWOULDBLOCK", r)
        B.do("lock f un")
        r = probe(C, "ex")
        expect("after node2's LOCK_UN, node3 gets LOCK_EX|LOCK_NB", r == "0", r)

        # 2. shared locks share across nodes
        r = [B.do("lock f sh nb"), C.do("lock f sh nb")]
        expect("LOCK_SH on node2 and on node3 both granted", all(code(x) == "0" for x in r), r)
        r = probe(A, "ex")
        expect("node2 and node3 share: LOCK_EX|LOCK_NB on node1 fails", r == "EWOULDBLOCK", r)
        r = probe(A, "sh")
        expect("node2 and node3 share: LOCK_SH|LOCK_NB on node1 is granted", r == "0", r)

        # 3. conversion (not atomic, as flock(2) says and Linux does)
        r = B.do("lock f ex nb")
        expect("node2 upgrading to LOCK_EX|LOCK_NB while node3 shares fails",
               code(r) == "EWOULDBLOCK", r)
        r = C.do("lock f ex nb")
        expect("node2's failed upgrade dropped its LOCK_SH: node3 upgrades to LOCK_EX",
               code(r) == "0", r)
        r = B.do("lock f sh nb")
        expect("node3 holds LOCK_EX: node2's LOCK_SH|LOCK_NB fails", code(r) == "EWOULDBLOCK", r)
        r = C.do("lock f sh nb")
        expect("node3 downgrades to LOCK_SH", code(r) == "0", r)
        r = B.do("lock f sh nb")
        expect("after node3's downgrade node2's LOCK_SH is granted", code(r) == "0", r)
        B.send("lock f ex")
        check_wakes("node2's blocking upgrade to LOCK_EX waits while node3 shares and is "
                    "granted after node3's LOCK_UN", B, at(lambda: C.do("lock f un")))
        r = probe(A, "sh")
        expect("node2 holds the upgraded LOCK_EX: LOCK_SH|LOCK_NB on node1 fails",
               r == "EWOULDBLOCK", r)
        B.do("lock f un")

        # 4. blocking wait released by close
        B.do("lock f ex")
        C.send("lock f ex")
        check_wakes("node3's blocking LOCK_EX waits while node2 holds LOCK_EX and is granted "
                    "after node2 closes its descriptor", C, at(lambda: B.do("close f")))
        C.do("lock f un")
        B.do("open f")

        # 5. dup'ed descriptors share the lock; it goes with the last close
        B.do("open d1")
        B.do("lock d1 ex nb")
        B.do("dup d2 d1")
        B.do("close d1")
        r = probe(C, "ex")
        expect("node2 closed one of two dup'ed descriptors: its LOCK_EX still holds on node3",
               r == "EWOULDBLOCK", r)
        C.send("lock f ex")
        check_wakes("node3's blocking LOCK_EX is granted when node2 closes the last dup",
                    C, at(lambda: B.do("close d2")))
        C.do("lock f un")

        # 6. a forked child shares the lock; it goes when the child exits
        B.do("open k")
        B.do("lock k ex nb")
        child = int(B.do("fork"))
        pids.append(child)
        B.do("close k")
        r = probe(C, "ex")
        expect("node2 closed its descriptor after fork: the child's copy keeps LOCK_EX "
               "(node3 refused)", r == "EWOULDBLOCK", r)
        C.send("lock f ex")
        check_wakes("node3's blocking LOCK_EX is granted when node2's forked child, the last "
                    "holder of the description, is killed", C,
                    at(lambda: os.kill(child, signal.SIGKILL)))
        C.do("lock f un")

        # 7. killing the holder releases its lock
        B.do("lock f ex nb")
        C.send("lock f ex")
        check_wakes("node3's blocking LOCK_EX is granted when node2's holder is killed (-9)",
                    C, at(B.kill))
        C.do("lock f un")
        B = FlockAgent(paths[1], "node2")
        B.do("open f")

        # 8. a blocked flock answers a signal promptly, on a client and on the MDS node
        B.do("lock f ex nb")
        for g in (C, A):
            g.do("alarm 0.5")
            t0 = time.monotonic()
            r = g.do("lock f ex", timeout=10)
            dt = when(r) - t0 if code(r) == "EINTR" else -1
            expect(f"{g.label}: a blocked LOCK_EX interrupted by a signal (handler, no "
                   f"SA_RESTART) returns EINTR within 1 s of it ({dt * 1000:.0f} ms after the "
                   "call, the signal at 500 ms)", code(r) == "EINTR" and dt < 1.5, r)
        for lbl, path in (("node3", paths[2]), ("node1", paths[0])):
            g = FlockAgent(path, lbl)
            g.do("open f")
            g.send("lock f ex")
            time.sleep(0.3)
            dt = kill_timed(g)
            expect(f"{lbl}: a process blocked in LOCK_EX is gone within 1 s of SIGKILL "
                   f"({dt * 1000:.0f} ms)", dt < 1.0, f"{dt:.3f} s")
        B.do("lock f un")
        time.sleep(0.2)
        r = probe(A, "ex")
        expect("the interrupted and killed waiters were left holding nothing (node1 gets "
               "LOCK_EX|LOCK_NB)", r == "0", r)

        # 9. on one node, a lock released by close is gone for the next flock
        for holder_path, lbl in ((paths[1], "node2"), (paths[0], "node1")):
            g, h = FlockAgent(holder_path, lbl), FlockAgent(holder_path, lbl)
            spare += [g, h]
            bad = []
            for i in range(20):
                g.do("open x")
                r1 = g.do("lock x ex nb")
                g.do("close x")
                r2 = probe(h, "ex")
                if code(r1) != "0" or r2 != "0":
                    bad.append(f"round {i}: {r1} / {r2}")
            expect(f"{lbl}: 20 times, a LOCK_EX released by close() is free for another "
                   "process's LOCK_EX|LOCK_NB on the same node right after close returns",
                   not bad, "; ".join(bad[:3]))
    finally:
        for g in [A, B, C] + spare:
            try:
                g.kill()
            except ChildProcessError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
