#!/usr/bin/env python3
"""POSIX record locks against a model, across the nodes of a cluster.

  lockmodel.py [--ops N] [--seed S] [--owners K] [--ofd] FILE [FILE ...]

Every FILE is one file seen through another mount (node).  K processes per
FILE each open it there and own their locks.  One operation at a time, a
random owner does F_SETLK (read, write or unlock of a random byte range in
the first 64 bytes, or to the end of the file), F_GETLK, or closes and
opens its descriptor again (which drops all its locks).  Each result is
checked against a model of every owner's locks (POSIX: an owner's locks
never conflict with its own, a new lock replaces the overlapped part of
its other locks, a refused F_SETLK changes nothing): a refusal exactly when
another owner holds a conflicting lock, and F_GETLK naming one of them.
With --ofd the locks are open file description locks (F_OFD_SETLK,
F_OFD_GETLK), which follow the same rules per descriptor.  Prints "N ops"
and exits 0, or the mismatch, the last operations, and 1.
"""
import argparse
import errno
import fcntl
import multiprocessing as mp
import os
import random
import struct
import sys

INF = 1 << 62
FLOCK = "@hhqqi4x"    # struct flock on Linux x86-64/aarch64: type, whence, start, len, pid
NAMES = {fcntl.F_RDLCK: "read", fcntl.F_WRLCK: "write", fcntl.F_UNLCK: "unlock"}


def owner(path, conn, ofd):
    setlk, getlk = (fcntl.F_OFD_SETLK, fcntl.F_OFD_GETLK) if ofd else (fcntl.F_SETLK, fcntl.F_GETLK)
    fd = os.open(path, os.O_RDWR)
    while True:
        cmd = conn.recv()
        if cmd[0] == "quit":
            os.close(fd)
            conn.send(None)
            return
        if cmd[0] == "reopen":
            os.close(fd)
            fd = os.open(path, os.O_RDWR)
            conn.send(0)
            continue
        op, typ, start, length = cmd
        arg = struct.pack(FLOCK, typ, os.SEEK_SET, start, length, 0)
        try:
            out = fcntl.fcntl(fd, setlk if op == "set" else getlk, arg)
        except OSError as e:
            conn.send(("err", e.errno))
            continue
        t, _, s, n, _ = struct.unpack(FLOCK, out)
        conn.send(("ok", t, s, n))


def end_of(start, length):
    return INF if length == 0 else start + length


class Model:
    """Each owner's locks: a list of [start, end, type], disjoint."""

    def __init__(self, owners):
        self.locks = {o: [] for o in range(owners)}

    def conflicts(self, o, typ, s, e):
        return [(p, a, b, t) for p, ls in self.locks.items() if p != o for a, b, t in ls
                if a < e and s < b and (t == fcntl.F_WRLCK or typ == fcntl.F_WRLCK)]

    def apply(self, o, typ, s, e):
        kept = []
        for a, b, t in self.locks[o]:
            if b <= s or e <= a:
                kept.append([a, b, t])
                continue
            if a < s:
                kept.append([a, s, t])
            if e < b:
                kept.append([e, b, t])
        if typ != fcntl.F_UNLCK:
            kept.append([s, e, typ])
        kept.sort()
        merged = []
        for a, b, t in kept:        # adjacent or overlapping locks of one type are one
            if merged and merged[-1][2] == t and merged[-1][1] >= a:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b, t])
        self.locks[o] = merged


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--owners", type=int, default=2)
    ap.add_argument("--ofd", action="store_true")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    with open(a.files[0], "ab"):
        pass
    ctx = mp.get_context("fork")
    conns, procs, where = [], [], []
    for n, path in enumerate(a.files):
        for _ in range(a.owners):
            mine, theirs = ctx.Pipe()
            p = ctx.Process(target=owner, args=(path, theirs, a.ofd))
            p.start()
            conns.append(mine)
            procs.append(p)
            where.append(n + 1)
    model = Model(len(conns))
    log = []

    def fail(what):
        print(f"lockmodel: {what}", file=sys.stderr)
        for line in log[-15:]:
            print(f"  {line}", file=sys.stderr)
        for o, ls in model.locks.items():
            print(f"  model, owner {o} (node {where[o]}): {ls}", file=sys.stderr)
        for c in conns:
            c.send(("quit",))
        sys.exit(1)

    for i in range(a.ops):
        o = rnd.randrange(len(conns))
        start = rnd.randrange(64)
        length = 0 if rnd.random() < 0.1 else rnd.randrange(1, 17)
        s, e = start, end_of(start, length)
        r = rnd.random()
        who = f"#{i} owner {o} (node {where[o]})"
        if r < 0.05:
            log.append(f"{who}: close and open again")
            conns[o].send(("reopen",))
            conns[o].recv()
            model.apply(o, fcntl.F_UNLCK, 0, INF)
            continue
        if r < 0.3:
            typ = rnd.choice([fcntl.F_RDLCK, fcntl.F_WRLCK])
            log.append(f"{who}: F_GETLK {NAMES[typ]} {start}+{length}")
            conns[o].send(("get", typ, start, length))
            res = conns[o].recv()
            if res[0] != "ok":
                fail(f"F_GETLK failed: {os.strerror(res[1])}")
            want = model.conflicts(o, typ, s, e)
            _, t, gs, gn = res
            if not want:
                if t != fcntl.F_UNLCK:
                    fail(f"F_GETLK reports a {NAMES.get(t, t)} lock {gs}+{gn}; the model has none")
                continue
            if t == fcntl.F_UNLCK:
                fail(f"F_GETLK reports no lock; the model has {want}")
            ge = end_of(gs, gn)
            if not any(t == wt and a0 <= gs and ge <= b0 for _, a0, b0, wt in want):
                fail(f"F_GETLK reports a {NAMES.get(t, t)} lock {gs}+{gn}, "
                     f"not within one the model has in the way: {want}")
            continue
        typ = rnd.choice([fcntl.F_RDLCK, fcntl.F_WRLCK, fcntl.F_UNLCK])
        log.append(f"{who}: F_SETLK {NAMES[typ]} {start}+{length}")
        conns[o].send(("set", typ, start, length))
        res = conns[o].recv()
        want = model.conflicts(o, typ, s, e) if typ != fcntl.F_UNLCK else []
        if res[0] == "err":
            if res[1] not in (errno.EAGAIN, errno.EACCES):
                fail(f"F_SETLK failed: {os.strerror(res[1])}")
            if not want:
                fail("F_SETLK refused; the model has no lock in the way")
            log[-1] += " (refused)"
            continue
        if want:
            fail(f"F_SETLK granted; the model has these in the way: {want}")
        model.apply(o, typ, s, e)
    for c in conns:
        c.send(("quit",))
        c.recv()
    for p in procs:
        p.join()
    print(f"{a.ops} ops")


if __name__ == "__main__":
    main()
