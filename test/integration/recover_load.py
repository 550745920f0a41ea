#!/usr/bin/env python3
"""recover_load.py: a verified workload for the MDS recovery tests
(t_recover_kill.sh, t_recover_more.sh): it runs on the surviving nodes,
through their real mounts, while the metadata server dies, moves or is cut
off, and checks itself against a model of what the applications were told.

    recover_load.py --mnt N=PATH [--mnt N=PATH ...] --dir REL --state DIR
                    [--stop FILE | --seconds S] [--seed K] [--procs P]
                    [--cluster DIR] [--limit SECS] [--tag TAG] [--same-node]

Every --mnt is one node (its number and its mount point); the workload
runs in REL under each mount (the same directory of the filesystem through
every node).  P worker processes per node (default 2), each with its own
seeded random stream (seed K, node, worker: deterministic choices), loop
until FILE exists (a path outside the filesystem) or for S seconds over:

  create    a file written in pieces (pwrite, sizes 0..200000), closed, then
            read back and compared through ANOTHER node's mount
  fsync     a file written, fsync'ed and closed in its worker's s/ directory:
            recorded only once fsync returned; every one must be there at
            the end, byte for byte
  rename    one of its files to a new name or over another of its files,
            then stat'ed and read through another node's mount
  append    one record to the shared O_APPEND log REL/append.log (one
            write(2); "TAG SEQ PAD CRC32", so a torn or interleaved record
            is seen); acknowledged when write returned its whole length
  count     the shared counter REL/counter incremented under a POSIX lock
            of the whole file (fcntl F_SETLKW); the value it reads never goes
            back below what this worker wrote last (a record of 32 bytes: the
            value, little-endian, then who wrote it and when, which an error
            names)
  unlinkopen  a file written, kept open, and unlinked (through this node or
            another); reads through the open descriptor keep working while it
            stays open (up to 3 at a time, so they span the failure)
  reread    one of its files read through another node's mount, and the
            listing of its directory there compared with the model
  unlink    one of its files

With --same-node every read-back goes through the writer's own mount (the
final verification still reads through another node): to tell apart a
problem of cross-node lookups.

Every failed system call (any errno) and every wrong byte is an error,
printed with the operation, the path and the errno.  Each system call is
timed: the longest one is the longest pause an application saw.  Every call
is announced to hangwatch.py's watchdog (LIMIT seconds, default 30): a call
that does not return in time dumps every node's state (with --cluster),
aborts the FUSE connections and ends the run (exit 3).

When the workers have stopped, one verifier (also under the watchdog) checks
through a node other than the writer's: every file the model holds (its
bytes, and the listing of every worker's directories), every fsync'ed file,
the shared log (every line whole with a right checksum; every record a
write acknowledged there exactly once, in each worker's order, and nothing
else), and the counter (the number of acknowledged increments).

It prints "ok ..."/"FAIL ..." lines, then one line of JSON:
{"tag", "ops", "errors", "max_pause_ms", "max_pause_op", "max_pause_at",
 "checks": {name: "ok"|"FAIL ..."}, "first_errors": [...], "appends",
 "increments", "files", "synced", "unlinked_open"}
Exit 0: no error and every check passed; 1: errors or failed checks; 3: the
watchdog fired; 2: usage.

Helpers of lib_recover.sh (they ask the admin sockets of DIR's live nodes):
    recover_load.py servers --cluster DIR          the nodes that say they serve
    recover_load.py wait-server --cluster DIR --old N --secs S --nodes N...
        until exactly one of the nodes serves, it is not N, and all name it
    recover_load.py sample --cluster DIR --stop FILE
        sample until FILE exists: never two nodes that say they serve
    recover_load.py catch --cluster DIR --nodes N... --words W... --ready F
                    [--secs S] [--sigstop [--stop-node K]]
        the first new log line of those nodes with every word (and SIGSTOP
        of that node's cxfsd, or node K's, at once)
"""
import argparse
import errno
import fcntl
import hashlib
import json
import os
import random
import signal
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hangwatch  # noqa: E402


class OpFailed(Exception):
    """A system call failed; the error is recorded already."""


# The shared counter's record: its value, the tag of the worker that wrote it, when.
COUNT_REC = struct.Struct("<Q16sd")


def sha(b):
    return hashlib.sha256(b).hexdigest()


def clock(t):
    """Wall clock time @t (seconds) as HH:MM:SS.mmm; "-" for none."""
    if not t:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) and e.errno else type(e).__name__


# ---------------------------------------------------------------------------
# A worker: one process on one node.
# ---------------------------------------------------------------------------

class Worker:
    MIX = [("create", 0.22), ("fsync", 0.12), ("rename", 0.10), ("append", 0.16),
           ("count", 0.12), ("unlinkopen", 0.06), ("reread", 0.12), ("unlink", 0.10)]

    def __init__(self, slot, a, node, k, mnts):
        self.slot, self.a, self.node, self.k = slot, a, node, k
        self.mnts = mnts                       # node -> mount point
        others = [n for n in sorted(mnts) if n != node]
        self.other = others[k % len(others)] if others and not a.same_node else node
        self.rnd = random.Random(f"{a.seed}.{node}.{k}")
        self.tag = f"{a.tag}.n{node}w{k}"
        self.wrel = os.path.join(a.dir, f"n{node}w{k}")     # its directory, relative
        self.files = {}                        # name -> sha256 (in wrel)
        self.synced = {}                       # name -> sha256 (in wrel/s)
        self.open_unlinked = []                # (fd, bytes, path)
        self.appends = self.increments = self.unlinked_open = 0
        self.append_times = []                 # when each append was acknowledged
        self.last_count, self.last_count_at = 0, 0.0
        self.ops = 0
        self.errors = 0
        self.first = []
        self.max_lat = 0.0
        self.max_op = ""
        self.max_at = 0.0
        self.serial = 0
        self.op = ""

    def path(self, node, *rel):
        return os.path.join(self.mnts[node], *rel)

    def err(self, what):
        self.errors += 1
        if len(self.first) < 20:
            self.first.append(f"{time.strftime('%H:%M:%S')} node{self.node} {self.tag}: {what}")

    def sys(self, call, path, fn, *args):
        """fn(*args) timed and announced to the watchdog; an OSError is
        recorded (operation, call, path, errno) and raised as OpFailed."""
        what = f"{self.op}: {call} {path} (a worker of node{self.node})"
        self.slot.begin(what)
        t0 = time.monotonic()
        w0 = time.time()
        try:
            return fn(*args)
        except OSError as e:
            self.err(f"{self.op}: {call} {path}: {ename(e)} ({e.strerror})")
            raise OpFailed() from None
        finally:
            dt = time.monotonic() - t0
            self.slot.end()
            if dt > self.max_lat:
                self.max_lat, self.max_op, self.max_at = dt, what, w0

    def read_all(self, node, rel):
        p = self.path(node, rel)
        fd = self.sys("open", p, os.open, p, os.O_RDONLY)
        try:
            chunks = []
            while True:
                b = self.sys("read", p, os.read, fd, 1 << 20)
                if not b:
                    return b"".join(chunks)
                chunks.append(b)
        finally:
            self.sys("close", p, os.close, fd)

    def expect(self, node, rel, want):
        got = self.read_all(node, rel)
        if sha(got) != want:
            self.err(f"{self.op}: {self.path(node, rel)}: {len(got)} bytes read on node{node}, "
                     "not what was written")

    def write_pieces(self, p, fd, data):
        off = 0
        pieces = []
        while off < len(data):
            n = min(len(data) - off, self.rnd.choice([1000, 4096, 65536]))
            pieces.append((off, n))
            off += n
        if self.rnd.random() < 0.3:
            self.rnd.shuffle(pieces)           # out of order, with holes for a while
        for off, n in pieces:
            got = self.sys("pwrite", p, os.pwrite, fd, data[off:off + n], off)
            if got != n:
                self.err(f"{self.op}: pwrite {p}: {got} of {n} bytes at {off}")

    def new_name(self, prefix):
        self.serial += 1
        return f"{prefix}{self.serial:06d}"

    # --- the operations ---

    def op_create(self):
        name = self.new_name("f")
        data = self.rnd.randbytes(self.rnd.choice([0, 1, 100, 4096, 5000, 65536, 200000]))
        rel = os.path.join(self.wrel, name)
        p = self.path(self.node, rel)
        fd = self.sys("open", p, os.open, p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            self.write_pieces(p, fd, data)
        finally:
            self.sys("close", p, os.close, fd)
        self.files[name] = sha(data)
        self.expect(self.other, rel, self.files[name])

    def op_fsync(self):
        name = self.new_name("s")
        data = self.rnd.randbytes(self.rnd.choice([1, 4096, 30000, 131072]))
        p = self.path(self.node, self.wrel, "s", name)
        fd = self.sys("open", p, os.open, p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            self.write_pieces(p, fd, data)
            self.sys("fsync", p, os.fsync, fd)
            self.synced[name] = sha(data)      # acknowledged: it must all be there
        finally:
            self.sys("close", p, os.close, fd)

    def op_rename(self):
        if not self.files:
            return self.op_create()
        old = self.rnd.choice(sorted(self.files))
        if self.rnd.random() < 0.25 and len(self.files) > 1:
            new = self.rnd.choice(sorted(n for n in self.files if n != old))
        else:
            new = self.new_name("r")
        po, pn = self.path(self.node, self.wrel, old), self.path(self.node, self.wrel, new)
        self.sys("rename", f"{po} -> {pn}", os.rename, po, pn)
        self.files[new] = self.files.pop(old)
        rel = os.path.join(self.wrel, new)
        self.sys("stat", self.path(self.other, rel), os.stat, self.path(self.other, rel))
        self.expect(self.other, rel, self.files[new])

    def op_append(self):
        pad = "x" * self.rnd.choice([0, 10, 100, 300, 4200])
        body = f"{self.tag} {self.appends} {pad}"
        rec = f"{body} {zlib.crc32(body.encode()):08x}\n".encode()
        p = self.path(self.node, self.a.dir, "append.log")
        fd = self.sys("open", p, os.open, p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            n = self.sys("write", p, os.write, fd, rec)
            if n != len(rec):
                self.err(f"append: write {p}: {n} of {len(rec)} bytes")
            else:
                self.appends += 1              # acknowledged: exactly once in the log
                self.append_times.append(time.time())
        finally:
            self.sys("close", p, os.close, fd)

    def op_count(self):
        p = self.path(self.node, self.a.dir, "counter")
        fd = self.sys("open", p, os.open, p, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self.sys("F_SETLKW", p, fcntl.lockf, fd, fcntl.LOCK_EX)
            raw = self.sys("pread", p, os.pread, fd, COUNT_REC.size, 0)
            v, who, at = COUNT_REC.unpack(raw) if len(raw) == COUNT_REC.size else (0, b"", 0)
            if len(raw) not in (0, COUNT_REC.size):
                self.err(f"count: {p} holds {len(raw)} bytes")
            if v < self.last_count:
                self.err(f"count: {p} reads {v} under the lock (written by "
                         f"{who.decode(errors='replace').strip()} at {clock(at)}), below the "
                         f"{self.last_count} this worker wrote at {clock(self.last_count_at)}")
            now = time.time()
            rec = COUNT_REC.pack(v + 1, f"{self.tag:16.16}".encode(), now)
            if self.sys("pwrite", p, os.pwrite, fd, rec, 0) == len(rec):
                self.increments += 1
                self.last_count, self.last_count_at = v + 1, now
            self.sys("F_UNLCK", p, fcntl.lockf, fd, fcntl.LOCK_UN)
        finally:
            self.sys("close", p, os.close, fd)

    def check_open(self, fd, data, p):
        got = self.sys("pread", p + " (unlinked, open)", os.pread, fd, len(data) + 1, 0)
        if got != data:
            self.err(f"{self.op}: {p} (unlinked, open): {len(got)} bytes read, not what was written")
        st = self.sys("fstat", p + " (unlinked, open)", os.fstat, fd)
        if st.st_size != len(data):
            self.err(f"{self.op}: {p} (unlinked, open): fstat size {st.st_size}, want {len(data)}")

    def op_unlinkopen(self):
        name = self.new_name("u")
        data = self.rnd.randbytes(self.rnd.choice([100, 4096, 70000]))
        p = self.path(self.node, self.wrel, name)
        fd = self.sys("open", p, os.open, p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        self.open_unlinked.append((fd, data, p))
        self.write_pieces(p, fd, data)
        via = self.other if self.rnd.random() < 0.5 else self.node
        pu = self.path(via, self.wrel, name)
        self.sys("unlink", pu, os.unlink, pu)
        self.unlinked_open += 1
        self.check_open(fd, data, p)
        while len(self.open_unlinked) > 3:
            fd, data, p = self.open_unlinked.pop(0)
            try:
                self.check_open(fd, data, p)
            finally:
                self.sys("close", p, os.close, fd)

    def op_reread(self):
        for fd, data, p in list(self.open_unlinked):
            self.check_open(fd, data, p)
        if not self.files:
            return
        name = self.rnd.choice(sorted(self.files))
        self.expect(self.other, os.path.join(self.wrel, name), self.files[name])
        d = self.path(self.other, self.wrel)
        names = set(self.sys("listdir", d, os.listdir, d)) - {"s"}
        if names != set(self.files):
            self.err(f"reread: listdir {d} on node{self.other}: {len(names - set(self.files))} "
                     f"extra, {len(set(self.files) - names)} missing "
                     f"(e.g. {sorted(names ^ set(self.files))[:3]})")

    def op_unlink(self):
        if not self.files:
            return self.op_create()
        name = self.rnd.choice(sorted(self.files))
        p = self.path(self.node, self.wrel, name)
        self.sys("unlink", p, os.unlink, p)
        del self.files[name]

    # --- the loop ---

    def run(self):
        self.op = "setup"
        for rel in (self.wrel, os.path.join(self.wrel, "s")):
            p = self.path(self.node, rel)
            try:
                self.sys("mkdir", p, os.mkdir, p, 0o755)
            except OpFailed:
                pass
        names = [n for n, _ in self.MIX]
        weights = [w for _, w in self.MIX]
        end = time.monotonic() + self.a.seconds if self.a.seconds else None
        while not (self.a.stop and os.path.exists(self.a.stop)) and \
                not (end and time.monotonic() >= end):
            self.op = self.rnd.choices(names, weights)[0]
            self.ops += 1
            try:
                getattr(self, "op_" + self.op)()
            except OpFailed:
                pass
            except Exception as e:     # any other exception is a failure too
                self.err(f"{self.op}: {type(e).__name__}: {e}")
        self.op = "finish"
        while self.open_unlinked:
            fd, data, p = self.open_unlinked.pop(0)
            try:
                self.check_open(fd, data, p)
            except OpFailed:
                pass
            try:
                self.sys("close", p, os.close, fd)
            except OpFailed:
                pass
        return {"tag": self.tag, "node": self.node, "wrel": self.wrel, "files": self.files,
                "synced": self.synced, "appends": self.appends,
                "append_times": self.append_times, "increments": self.increments,
                "unlinked_open": self.unlinked_open, "ops": self.ops, "errors": self.errors,
                "first_errors": self.first, "max_ms": self.max_lat * 1000, "max_op": self.max_op,
                "max_at": self.max_at}


def worker_main(slot, a, node, k, mnts, out):
    r = Worker(slot, a, node, k, mnts).run()
    with open(out + ".tmp", "w") as f:
        json.dump(r, f)
    os.rename(out + ".tmp", out)


# ---------------------------------------------------------------------------
# The verifier.
# ---------------------------------------------------------------------------

def around(recs, tag, seq):
    """Where record @seq of @tag should be: the log from its writer's record before it."""
    i = next((k for k, r in enumerate(recs) if r[0] == tag and r[1] == seq - 1), None)
    if i is None:
        return f"no record {seq - 1} of {tag} either; the log holds {len(recs)} records"
    after = ", ".join(f"{t} {s} ({n} bytes)" for t, s, _, n in recs[i + 1:i + 4]) or "nothing"
    return (f"{tag} {seq - 1} ends at byte {recs[i][2] + recs[i][3]} of "
            f"{recs[-1][2] + recs[-1][3]}; then {after}")


def parse_log(raw, acked, times=None):
    """Checks of the shared log's bytes: (problems, records per tag)."""
    problems, seen, recs, at = [], {}, [], 0
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    else:
        problems.append(f"the log does not end with a whole record ({len(lines[-1]) if lines else 0} "
                        "bytes after the last newline)")
        lines = lines[:-1]
    for n, line in enumerate(lines):
        try:
            body, crc = line.rsplit(b" ", 1)
            tag, seq, _ = body.split(b" ", 2)
            ok = int(crc, 16) == zlib.crc32(body)
        except ValueError:
            ok = False
        if not ok:
            at += len(line) + 1
            if len(problems) < 10:
                problems.append(f"line {n + 1} is torn or mixed: {line[:80]!r}...")
            continue
        seen.setdefault(tag.decode(), []).append(int(seq))
        recs.append((tag.decode(), int(seq), at, len(line) + 1))
        at += len(line) + 1
    for tag, count in acked.items():
        got = seen.get(tag, [])
        if got != list(range(count)):
            dup = len(got) - len(set(got))
            miss = sorted(set(range(count)) - set(got))
            extra = len(set(got) - set(range(count)))
            problems.append(f"{tag}: {len(got)} records for {count} acknowledged "
                            f"({len(miss)} missing, {dup} doubled, {extra} never acknowledged, "
                            f"in order: {got == sorted(got)})")
            for s in miss[:3]:
                when = clock(times[tag][s]) if times else "?"
                problems.append(f"{tag} {s} (acknowledged {when}) missing: {around(recs, tag, s)}")
    for tag in set(seen) - set(acked):
        problems.append(f"{len(seen[tag])} records of {tag}, a writer that is not in this run")
    return problems, seen


def verify_main(slot, a, mnts, results, out):
    checks = {}
    nodes = sorted(mnts)

    def via(node):
        """A mount other than node's (the next one), or node's own."""
        others = [n for n in nodes if n != node]
        return others[0] if others else node

    def timed(what, fn, *args):
        slot.begin(f"verify: {what}")
        try:
            return fn(*args)
        finally:
            slot.end()

    def read(p):
        return timed(f"read {p}", lambda: open(p, "rb").read())

    def judge(name, problems, n):
        checks[name] = "ok" if not problems else "FAIL " + "; ".join(problems[:5]) + \
            (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        checks[name + ".n"] = n

    files_bad, files_n, sync_bad, sync_n, list_bad = [], 0, [], 0, []
    for r in results:
        v = via(r["node"])
        base = os.path.join(mnts[v], r["wrel"])
        for kind, model, sub, bad in (("file", r["files"], "", files_bad),
                                      ("fsync'ed file", r["synced"], "s", sync_bad)):
            d = os.path.join(base, sub) if sub else base
            try:
                names = set(timed(f"listdir {d}", os.listdir, d)) - ({"s"} if not sub else set())
                if names != set(model):
                    list_bad.append(f"{d} on node{v}: {sorted(set(model) - names)[:3]} missing, "
                                    f"{sorted(names - set(model))[:3]} extra")
            except OSError as e:
                list_bad.append(f"listdir {d}: {ename(e)}")
            for name, want in sorted(model.items()):
                p = os.path.join(d, name)
                if sub:
                    sync_n += 1
                else:
                    files_n += 1
                try:
                    got = read(p)
                    if sha(got) != want:
                        bad.append(f"{kind} {p} (written on node{r['node']}, read on node{v}): "
                                   f"{len(got)} bytes, not what was written")
                except OSError as e:
                    bad.append(f"{kind} {p} (written on node{r['node']}, read on node{v}): {ename(e)}")
    judge("files", files_bad, files_n)
    judge("fsynced", sync_bad, sync_n)
    judge("listings", list_bad, len(results))

    acked = {r["tag"]: r["appends"] for r in results}
    p = os.path.join(mnts[nodes[0]], a.dir, "append.log")
    try:
        raw = read(p) if os.path.exists(p) or any(acked.values()) else b""
        problems, _ = parse_log(raw, acked, {r["tag"]: r["append_times"] for r in results})
    except OSError as e:
        problems = [f"read {p}: {ename(e)}"]
    judge("append_log", problems, sum(acked.values()))

    want = sum(r["increments"] for r in results)
    p = os.path.join(mnts[nodes[-1]], a.dir, "counter")
    try:
        raw = read(p) if want else b"\0" * COUNT_REC.size
        got = COUNT_REC.unpack(raw)[0] if len(raw) == COUNT_REC.size else None
        problems = [] if got == want else [f"{p} holds {got}, {want} increments were acknowledged"]
    except OSError as e:
        problems = [f"read {p}: {ename(e)}"]
    judge("counter", problems, want)
    with open(out + ".tmp", "w") as f:
        json.dump(checks, f)
    os.rename(out + ".tmp", out)


# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Who serves: the helpers of the shell tests (lib_recover.sh).
# ---------------------------------------------------------------------------

def node_alive(cl, i):
    pid = cl.pid(i)
    try:
        st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except (OSError, TypeError, IndexError):
        return False
    return st != "Z"


def statuses(cl, timeout=2.0):
    """node -> its status JSON, for the live nodes that answer."""
    out = {}
    for i in cl.nodes:
        if node_alive(cl, i):
            st = hangwatch.status_json(cl.sock(i), timeout)
            if st is not None:
                out[i] = st
    return out


def cluster_of(st):
    c = st.get("cluster")
    return c if isinstance(c, dict) else {}


def serving(sts):
    return sorted(i for i, st in sts.items() if cluster_of(st).get("is_server"))


def cmd_servers(a):
    print(" ".join(map(str, serving(statuses(hangwatch.Cluster(a.cluster))))))
    return 0


def cmd_wait_server(a):
    """Until exactly one of the nodes serves, it is not --old, and each of
    them names it: print its number."""
    cl = hangwatch.Cluster(a.cluster)
    end = time.monotonic() + a.secs
    last = None
    while time.monotonic() < end:
        sts = {i: st for i, st in statuses(cl).items() if i in a.nodes}
        s = serving(sts)
        names = {cluster_of(st).get("server") for st in sts.values()}
        last = (s, names, sorted(sts))
        if len(s) == 1 and s[0] != a.old and names == {f"node{s[0]}"} and len(sts) == len(a.nodes):
            print(s[0])
            return 0
        time.sleep(0.05)
    print(f"no single new server within {a.secs} s: serving {last[0] if last else '?'}, "
          f"named {last[1] if last else '?'}, answering {last[2] if last else '?'}", file=sys.stderr)
    return 1


def cmd_sample(a):
    """Every live node's status, 10 times a second until --stop exists:
    never two nodes that say they serve.  Prints "ok ..." or a FAIL line."""
    cl = hangwatch.Cluster(a.cluster)
    n = 0
    bad = []
    seen = set()
    while not os.path.exists(a.stop):
        t = time.strftime("%H:%M:%S")
        sts = statuses(cl, timeout=1.0)
        s = serving(sts)
        seen.update(s)
        n += 1
        if len(s) > 1:
            bad.append(f"{t}: nodes {s} all say they serve "
                       + "; ".join(f"node{i}: {json.dumps(cluster_of(sts[i]).get('membership', {}).get('quorum'))} quorum"
                                   for i in s))
        time.sleep(0.1)
    if bad:
        print(f"FAIL {len(bad)} of {n} samples show two servers: " + " | ".join(bad[:5]))
        return 1
    print(f"ok never two servers in {n} samples of every live node's status "
          f"(servers seen: {', '.join(f'node{i}' for i in sorted(seen)) or 'none'})")
    return 0


def cmd_catch(a):
    """The first new line of the nodes' logs (after the start) that holds
    every one of --words: SIGSTOP that node's cxfsd (or --stop-node's) at
    once (with --sigstop, so what it was doing is not finished before the
    test kills it), print
    "N line" and exit 0; exit 1 if none within --secs.  --ready FILE is
    made once the logs' ends are recorded."""
    cl = hangwatch.Cluster(a.cluster)
    offs = {}
    for i in a.nodes:
        try:
            offs[i] = os.path.getsize(cl.log(i))
        except OSError:
            offs[i] = 0
    open(a.ready, "w").close()
    words = [w.lower() for w in a.words]
    end = time.monotonic() + a.secs
    while time.monotonic() < end:
        for i in a.nodes:
            try:
                with open(cl.log(i), "rb") as f:
                    f.seek(offs[i])
                    chunk = f.read()
            except OSError:
                continue
            done = chunk[:chunk.rfind(b"\n") + 1]
            offs[i] += len(done)
            for line in done.decode(errors="replace").splitlines():
                if all(w in line.lower() for w in words):
                    victim = a.stop_node or i
                    if a.sigstop and cl.pid(victim):
                        os.kill(cl.pid(victim), signal.SIGSTOP)
                    print(i, line.strip(), flush=True)
                    return 0
        time.sleep(0.002)
    print(f"no line with {a.words} in the logs of nodes {a.nodes} within {a.secs} s", file=sys.stderr)
    return 1


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("servers", "wait-server", "sample", "catch"):
        ap = argparse.ArgumentParser(prog="recover_load.py " + sys.argv[1])
        ap.add_argument("--cluster", required=True)
        ap.add_argument("--old", type=int, default=0)
        ap.add_argument("--secs", type=float, default=30)
        ap.add_argument("--nodes", type=int, nargs="*", default=[])
        ap.add_argument("--stop")
        ap.add_argument("--words", nargs="*", default=[])
        ap.add_argument("--sigstop", action="store_true")
        ap.add_argument("--stop-node", type=int, default=0)
        ap.add_argument("--ready")
        a = ap.parse_args(sys.argv[2:])
        return {"servers": cmd_servers, "wait-server": cmd_wait_server,
                "sample": cmd_sample, "catch": cmd_catch}[sys.argv[1]](a)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mnt", action="append", required=True, help="N=PATH: node N's mount point")
    ap.add_argument("--dir", required=True, help="the workload's directory, relative to the mounts")
    ap.add_argument("--state", required=True, help="a directory outside the filesystem for results")
    ap.add_argument("--stop", help="stop when this file exists")
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--cluster", help="the scripts/local-cluster directory (for the watchdog's dump)")
    ap.add_argument("--limit", type=float, default=hangwatch.LIMIT)
    ap.add_argument("--tag", default="rl")
    ap.add_argument("--same-node", action="store_true",
                    help="read back through the writer's own mount (to tell a cross-node problem apart)")
    a = ap.parse_args()
    if not a.stop and not a.seconds:
        ap.error("give --stop FILE or --seconds S")
    mnts = {}
    for m in a.mnt:
        n, _, p = m.partition("=")
        if not n.isdigit() or not p:
            ap.error(f"--mnt {m}: want N=PATH")
        mnts[int(n)] = p
    os.makedirs(a.state, exist_ok=True)
    cl = hangwatch.Cluster(a.cluster) if a.cluster else None
    w = hangwatch.Watch(max(1, len(mnts) * a.procs), a.limit, cl, mounts=list(mnts.values()))
    t_start = time.monotonic()

    def setup(slot):
        d = os.path.join(mnts[min(mnts)], a.dir)
        slot.begin(f"setup: makedirs {d}")
        os.makedirs(d, exist_ok=True)
        slot.end()

    def report(status, checks, results):
        errs = sum(r["errors"] for r in results)
        first = [e for r in results for e in r["first_errors"]][:20]
        top = max(results, key=lambda r: r["max_ms"], default=None)
        failed = [k for k, v in checks.items() if isinstance(v, str) and v != "ok"]
        for e in first:
            print(f"    {e}")
        ok = status == "ok" and not errs and not failed
        n_ops = sum(r["ops"] for r in results)
        line = (f"{a.tag}: {n_ops} operations on nodes {','.join(map(str, sorted(mnts)))}, "
                f"{errs} application errors, longest call "
                f"{top['max_ms'] if top else 0:.0f} ms ({top['max_op'] if top else '-'})")
        print(("ok   " if not errs and status == "ok" else "FAIL ") + line)
        for k, v in checks.items():
            if isinstance(v, str):
                print(f"{'ok  ' if v == 'ok' else 'FAIL'} {a.tag}: check {k} "
                      f"({checks.get(k + '.n', '?')}){'' if v == 'ok' else ': ' + v[5:]}")
        if status != "ok":
            print(f"FAIL {a.tag}: {status}")
        print(json.dumps({
            "tag": a.tag, "status": status, "ops": n_ops, "errors": errs,
            "max_pause_ms": round(top["max_ms"], 1) if top else 0,
            "max_pause_op": top["max_op"] if top else "", "max_pause_at": top["max_at"] if top else 0,
            "checks": {k: v for k, v in checks.items() if isinstance(v, str)},
            "first_errors": first,
            "appends": sum(r["appends"] for r in results),
            "increments": sum(r["increments"] for r in results),
            "files": sum(len(r["files"]) for r in results),
            "synced": sum(len(r["synced"]) for r in results),
            "unlinked_open": sum(r["unlinked_open"] for r in results),
            "seconds": round(time.monotonic() - t_start, 2)}), flush=True)
        return 0 if ok else (3 if status in ("hang", "deadline") else 1)

    w.spawn("setup", min(mnts), setup)
    st = w.wait(time.monotonic() + a.limit)
    if st != "ok":
        return report(f"setup {st}", {}, [])
    outs = []
    for n in sorted(mnts):
        for k in range(a.procs):
            out = os.path.join(a.state, f"{a.tag}.n{n}w{k}.json")
            if os.path.exists(out):
                os.unlink(out)
            outs.append(out)
            w.spawn(f"node{n}.w{k}", n, worker_main, a, n, k, mnts, out)
    deadline = time.monotonic() + a.seconds + 4 * a.limit if a.seconds else None
    st = w.wait(deadline)
    results = []
    for out in outs:
        try:
            results.append(json.load(open(out)))
        except (OSError, ValueError):
            if st == "ok":
                st = f"a worker left no result ({os.path.basename(out)})"
    if st != "ok":
        return report(st, {}, results)
    vout = os.path.join(a.state, f"{a.tag}.verify.json")
    w.spawn("verify", min(mnts), verify_main, a, mnts, results, vout)
    st = w.wait(time.monotonic() + 10 * a.limit)
    try:
        checks = json.load(open(vout))
    except (OSError, ValueError):
        checks = {}
        if st == "ok":
            st = "the verifier left no result"
    return report(st if st == "ok" else f"verify: {st}", checks, results)


if __name__ == "__main__":
    sys.exit(main())
