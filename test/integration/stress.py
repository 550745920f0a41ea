#!/usr/bin/env python3
"""stress.py: concurrent POSIX operations from every node on one small tree.

Usage: stress.py --seed S [--seconds T] [--workers W] [--limit L]
                 [--cluster DIR] [--work DIR] [--keep] [--active I,J]
                 MNT1 MNT2 [MNT3...]

The MNTi show one filesystem through different nodes (or, to check the
checker, one local directory given several times).  Through MNT1 it makes
stress.s<S>/ with three directories d0 d1 d2; then W worker processes per
mount point (4 by default), all at once for T seconds (60), do a random mix
of operations on the names dK/nJ (J < 8) and, below those that are
directories, dK/nJ/cM (M < 2), so that the workers collide all the time:

  create    open(O_CREAT|O_EXCL), 1-3 records, close
  write     open(O_RDWR) an existing file: a record at a random slot, or
            ftruncate, or a record and fsync; sometimes read the slot back
  read      the whole file, every record checked
  stat, listdir, mkdir, rmdir, unlink, link, chmod, utime, truncate
  rename    within and across directories, over existing names, with
            RENAME_NOREPLACE and RENAME_EXCHANGE (renameat2)
  setxattr, removexattr, getxattr   user.k0-user.k2 (XATTR_CREATE/REPLACE too)

A file's content is a sequence of 64-byte slots, each all zeros or a
record: magic, run, worker, sequence number, the inode number of the file
the writer's descriptor was on (fstat), its offset, and a CRC.  Writes and
truncates keep sizes multiples of 64 (truncates to 0, 4 KiB or 8 KiB).

Checked while running: every failing call's errno must be one POSIX allows
for some state of the tree (EEXIST for an O_EXCL create, ENOTEMPTY for
rmdir, EINVAL for a directory renamed under itself, ENOTDIR/ENOENT when a
path's parent slot is a file or missing, ...; never EIO, EXDEV,
ENOTCONN...), calls on an open descriptor never fail, stat shows a regular
file or a directory with a known mode and a size multiple of 64, listings
hold only names of the tree, and every record read is intact and in the
file and at the offset it was written to.  ESTALE is counted apart: the
kernel answers it when a directory another node moved still has its old
alias here and this node holds the rename lock (docs/ARCHITECTURE.md,
"Kernel locks"); more than one call in STALE_MAX fails the seed.

After the workers stop: every node's view of the tree (names, types, modes,
link counts, sizes, inode numbers, contents, user.* attributes, mtimes) must
be the same, and consistent with what the workers did: every record intact,
in its file and at its offset, written by a write that succeeded, and found
once; link counts equal to the names found (2 + subdirectories for a
directory); every attribute value one that a setxattr set on that name.
Then the tree is removed through the last mount and seen gone on all.

Every call that can touch a mount runs in a child process under the
watchdog of hangwatch.py: an operation that takes longer than L seconds
(30) dumps the cluster's state (--cluster DIR: a scripts/local-cluster
directory), aborts the FUSE connections and kills the children.

--active I,J puts workers on those mounts only (every mount still takes
part in the final comparison); --keep keeps the tree.

Prints "ok WHAT" / "FAIL WHAT: DETAIL" lines, the operation counts and the
errno histogram per operation.  Exit 0 all passed, 1 a check failed, 3 the
watchdog fired (hangwatch.EXIT_HANG), 2 usage.
"""
import argparse
import atexit
import collections
import ctypes
import errno
import hashlib
import json
import os
import random
import re
import shutil
import stat
import struct
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hangwatch  # noqa: E402

NDIRS, NNAMES, NCHILD = 3, 8, 2
REC = 64                        # record size; every size is a multiple
MAX_SLOTS = 128                 # records at offsets below 8 KiB
TRUNC_SIZES = (0, 4096, 8192)   # whole pages: a truncate never tears a record
MAGIC = b"CXST"
FILE_MODES = (0o600, 0o640, 0o644, 0o664, 0o700, 0o755, 0o775)
XNAMES = ("user.k0", "user.k1", "user.k2")
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
XATTR_CREATE, XATTR_REPLACE = os.XATTR_CREATE, os.XATTR_REPLACE

WEIGHTS = {
    "create": 12, "write": 14, "read": 10, "stat": 6, "listdir": 5, "mkdir": 2,
    "rmdir": 5, "unlink": 8, "rename": 12, "link": 5, "chmod": 3, "utime": 3,
    "setxattr": 5, "removexattr": 3, "getxattr": 3, "truncate": 4,
}

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
AT_FDCWD = -100


def renameat2(a, b, flags):
    if flags == 0:
        return os.rename(a, b)
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 missing from libc")
    if _renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), ctypes.c_uint(flags)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a, None, b)


def ename(e):
    return errno.errorcode.get(e, str(e))


# ---------------------------------------------------------------------------
# Records.
# ---------------------------------------------------------------------------

_REC = struct.Struct("<4sIHHQQQ24s")      # 60 bytes, then a CRC32


def make_rec(run, w, seq, ino, off):
    body = _REC.pack(MAGIC, run, w, 0, seq, ino, off, bytes(24))
    return body + struct.pack("<I", zlib.crc32(body))


def check_records(data, ino, run, base=0):
    """(records [(w, seq, off)], problems [str]) of a file's bytes (that
    begin at offset base)."""
    recs, probs = [], []
    if len(data) % REC:
        probs.append(f"size {len(data)} is not a multiple of {REC}")
    zero = bytes(REC)
    for i in range(0, len(data) - len(data) % REC, REC):
        r, off = data[i:i + REC], base + i
        if r == zero:
            continue
        body, (crc,) = r[:60], struct.unpack("<I", r[60:])
        if zlib.crc32(body) != crc:
            probs.append(f"torn or foreign record at offset {off}: {r[:24].hex()}...")
            continue
        magic, rrun, w, _, seq, rino, roff, _ = _REC.unpack(body)
        if magic != MAGIC or rrun != run:
            probs.append(f"record at offset {off} is not of this run")
        elif rino != ino or roff != off:
            probs.append(f"record at offset {off} (worker {w} #{seq}) was written to inode "
                         f"{rino} offset {roff}, found in inode {ino}")
        else:
            recs.append((w, seq, off))
    return recs, probs


# ---------------------------------------------------------------------------
# Workers.
# ---------------------------------------------------------------------------

class Expected(Exception):
    def __init__(self, e):
        self.errno = e


class Violation(Exception):
    pass


class Stale(Exception):
    pass


STALE_MAX = 1000   # at most one ESTALE per this many calls


def depth(rel):
    return rel.count("/") + 1


def prefix(a, b):
    return b.startswith(a + "/") or a.startswith(b + "/")


class Worker:
    def __init__(self, slot, a, mnt, node, idx, wid, run, deadline, out):
        self.slot, self.mnt, self.node, self.wid = slot, mnt, node, wid
        self.base = os.path.join(mnt, a.basename)
        self.rng = random.Random(a.seed * 1000003 + wid)
        self.run, self.deadline, self.out = run, deadline, out
        self.seq = 0
        self.counts = collections.defaultdict(collections.Counter)
        self.violations = []
        self.nviol = 0
        self.nstale = 0
        self.writes = []
        self.xsets = []
        self.ops = [op for op in WEIGHTS]
        self.weights = [WEIGHTS[op] for op in self.ops]
        self.op = ""

    # -- paths --------------------------------------------------------------

    def top(self):
        return f"d{self.rng.randrange(NDIRS)}/n{self.rng.randrange(NNAMES)}"

    def anypath(self):
        if self.rng.random() < 0.25:
            return f"{self.top()}/c{self.rng.randrange(NCHILD)}"
        return self.top()

    def abs(self, rel):
        return os.path.join(self.base, rel)

    @staticmethod
    def res(*rels):
        """Errors of resolving a path whose parent is a name slot (that may be
        a file or missing)."""
        return {errno.ENOENT, errno.ENOTDIR} if any(depth(r) >= 3 for r in rels) else set()

    # -- calls --------------------------------------------------------------

    def sc(self, what, allowed, fn, *args):
        """One system call under the watchdog; an allowed errno raises
        Expected, any other error Violation."""
        self.slot.begin(f"{what} (worker {self.wid}, node{self.node})")
        try:
            return fn(*args)
        except OSError as e:
            if e.errno in allowed:
                raise Expected(e.errno)
            if e.errno == errno.ESTALE:
                raise Stale(f"{what}: ESTALE")
            raise Violation(f"{what}: {ename(e.errno)} ({e.strerror})")
        finally:
            self.slot.end()

    def bad(self, msg):
        raise Violation(msg)

    def next_seq(self):
        self.seq += 1
        return self.seq

    def put_record(self, fd, rel, ino, k):
        seq = self.next_seq()
        off = k * REC
        what = f"pwrite {rel} (inode {ino}) @{off}"     # the inode: for print_tokens
        n = self.sc(what, (), os.pwrite, fd, make_rec(self.run, self.wid, seq, ino, off), off)
        if n != REC:
            self.bad(f"{what} wrote {n} of {REC} bytes")
        self.writes.append(seq)

    def check_read(self, rel, data, ino, base=0):
        _, probs = check_records(data, ino, self.run, base)
        if probs:
            self.bad(f"read {rel} (inode {ino}): {probs[0]}")

    def close(self, fd, rel):
        self.sc(f"close {rel}", (), os.close, fd)

    # -- operations ---------------------------------------------------------

    def op_create(self):
        rel = self.anypath()
        fd = self.sc(f"create {rel}", {errno.EEXIST} | self.res(rel), os.open, self.abs(rel),
                     os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            st = self.sc(f"fstat {rel}", (), os.fstat, fd)
            if not stat.S_ISREG(st.st_mode):
                self.bad(f"create {rel}: fstat says mode {st.st_mode:o}")
            for k in range(self.rng.randint(1, 3)):
                self.put_record(fd, rel, st.st_ino, k)
        finally:
            self.close(fd, rel)

    def op_write(self):
        rel = self.anypath()
        fd = self.sc(f"open(O_RDWR) {rel}", {errno.ENOENT, errno.EISDIR} | self.res(rel),
                     os.open, self.abs(rel), os.O_RDWR)
        try:
            ino = self.sc(f"fstat {rel}", (), os.fstat, fd).st_ino
            r = self.rng.random()
            if r < 0.15:
                size = self.rng.choice(TRUNC_SIZES)
                self.sc(f"ftruncate {rel} {size}", (), os.ftruncate, fd, size)
                return
            k = self.rng.randrange(MAX_SLOTS)
            self.put_record(fd, rel, ino, k)
            if r > 0.85:
                self.sc(f"fsync {rel}", (), os.fsync, fd)
            if self.rng.random() < 0.3:
                data = self.sc(f"pread {rel} @{k * REC}", (), os.pread, fd, REC, k * REC)
                if len(data) not in (0, REC):     # 0: truncated meanwhile
                    self.bad(f"pread {rel} @{k * REC}: {len(data)} bytes")
                self.check_read(rel, data, ino, k * REC)
        finally:
            self.close(fd, rel)

    def op_read(self):
        rel = self.anypath()
        fd = self.sc(f"open(O_RDONLY) {rel}", {errno.ENOENT} | self.res(rel), os.open,
                     self.abs(rel), os.O_RDONLY)
        try:
            st = self.sc(f"fstat {rel}", (), os.fstat, fd)
            if stat.S_ISDIR(st.st_mode):
                self.sc(f"read {rel} (a directory)", {errno.EISDIR}, os.read, fd, 4096)
                self.bad(f"read of directory {rel} succeeded")
            chunks = []
            while True:
                b = self.sc(f"read {rel}", (), os.read, fd, 1 << 16)
                if not b:
                    break
                chunks.append(b)
            self.check_read(rel, b"".join(chunks), st.st_ino)
        finally:
            self.close(fd, rel)

    def check_stat(self, rel, st):
        if stat.S_ISREG(st.st_mode):
            if st.st_size % REC or st.st_size > MAX_SLOTS * REC:
                self.bad(f"stat {rel}: size {st.st_size}")
        elif not stat.S_ISDIR(st.st_mode):
            self.bad(f"stat {rel}: mode {st.st_mode:o} is neither a file nor a directory")
        if stat.S_IMODE(st.st_mode) not in FILE_MODES:
            self.bad(f"stat {rel}: permissions {stat.S_IMODE(st.st_mode):o}")

    def op_stat(self):
        rel = self.anypath()
        st = self.sc(f"lstat {rel}", {errno.ENOENT} | self.res(rel), os.lstat, self.abs(rel))
        self.check_stat(rel, st)

    def op_listdir(self):
        if self.rng.random() < 0.5:
            rel, pat, allowed = f"d{self.rng.randrange(NDIRS)}", "n", set()
        else:
            rel, pat, allowed = self.top(), "c", {errno.ENOENT, errno.ENOTDIR}
        names = self.sc(f"listdir {rel}", allowed, os.listdir, self.abs(rel))
        n = NNAMES if pat == "n" else NCHILD
        for x in names:
            if x[:1] != pat or not x[1:].isdigit() or int(x[1:]) >= n:
                self.bad(f"listdir {rel}: unknown name {x!r}")

    def op_mkdir(self):
        rel = self.top()
        self.sc(f"mkdir {rel}", {errno.EEXIST}, os.mkdir, self.abs(rel), 0o755)

    def op_rmdir(self):
        rel = self.anypath()
        self.sc(f"rmdir {rel}", {errno.ENOENT, errno.ENOTDIR, errno.ENOTEMPTY, errno.EEXIST}
                | self.res(rel), os.rmdir, self.abs(rel))

    def op_unlink(self):
        rel = self.anypath()
        self.sc(f"unlink {rel}", {errno.ENOENT, errno.EISDIR} | self.res(rel), os.unlink,
                self.abs(rel))

    def two(self):
        while True:
            a, b = self.anypath(), self.anypath()
            if a != b:
                return a, b

    def op_rename(self):
        r = self.rng.random()
        flags = 0 if r < 0.7 else (RENAME_NOREPLACE if r < 0.85 else RENAME_EXCHANGE)
        while True:
            a, b = self.two()
            # A directory can only reach a child slot (dK/nJ/cM) by a rename;
            # rarely, so that the tree stays shallow.
            down = (depth(a) < depth(b) or
                    (flags == RENAME_EXCHANGE and depth(a) != depth(b)))
            if not down or self.rng.random() < 0.05:
                break
        allowed = {errno.ENOENT} | self.res(a, b)
        if flags == 0:
            allowed |= {errno.EISDIR, errno.ENOTDIR, errno.ENOTEMPTY, errno.EEXIST}
        elif flags == RENAME_NOREPLACE:
            allowed |= {errno.EEXIST}
        if prefix(a, b) or depth(a) >= 3 or depth(b) >= 3:
            # One is (or, a parent slot being a directory that moves
            # meanwhile, becomes) an ancestor of the other.
            allowed |= {errno.EINVAL, errno.ENOTEMPTY}
        name = {0: "rename", RENAME_NOREPLACE: "rename(NOREPLACE)",
                RENAME_EXCHANGE: "rename(EXCHANGE)"}[flags]
        self.op = name
        self.sc(f"{name} {a} {b}", allowed, renameat2, self.abs(a), self.abs(b), flags)

    def op_link(self):
        a, b = self.two()
        self.sc(f"link {a} {b}", {errno.ENOENT, errno.EEXIST, errno.EPERM} | self.res(a, b),
                os.link, self.abs(a), self.abs(b))

    def op_chmod(self):
        rel = self.anypath()
        mode = self.rng.choice(FILE_MODES)
        self.sc(f"chmod {rel} {mode:o}", {errno.ENOENT} | self.res(rel), os.chmod,
                self.abs(rel), mode)

    def op_utime(self):
        rel = self.anypath()
        t = (1_600_000_000 + self.rng.randrange(10**8)) * 10**9 + self.rng.randrange(10**9)
        self.sc(f"utime {rel}", {errno.ENOENT} | self.res(rel),
                lambda p: os.utime(p, ns=(t, t)), self.abs(rel))

    def op_setxattr(self):
        rel = self.anypath()
        name = self.rng.choice(XNAMES)
        seq = self.next_seq()
        r = self.rng.random()
        flags = 0 if r < 0.6 else (XATTR_CREATE if r < 0.8 else XATTR_REPLACE)
        allowed = {errno.ENOENT} | self.res(rel)
        allowed |= {XATTR_CREATE: {errno.EEXIST}, XATTR_REPLACE: {errno.ENODATA}}.get(flags, set())
        self.sc(f"setxattr {rel} {name}", allowed, os.setxattr, self.abs(rel), name,
                f"w{self.wid}.s{seq}".encode(), flags)
        self.xsets.append([seq, name])

    def op_removexattr(self):
        rel = self.anypath()
        name = self.rng.choice(XNAMES)
        self.sc(f"removexattr {rel} {name}", {errno.ENOENT, errno.ENODATA} | self.res(rel),
                os.removexattr, self.abs(rel), name)

    def op_getxattr(self):
        rel = self.anypath()
        allowed = {errno.ENOENT, errno.ENODATA} | self.res(rel)
        names = self.sc(f"listxattr {rel}", allowed, os.listxattr, self.abs(rel))
        for name in names:
            if not name.startswith("user."):
                continue
            if name not in XNAMES:
                self.bad(f"listxattr {rel}: unknown attribute {name}")
            try:
                v = self.sc(f"getxattr {rel} {name}", allowed, os.getxattr, self.abs(rel), name)
            except Expected:
                continue
            if not parse_xval(v):
                self.bad(f"getxattr {rel} {name}: value {v!r}")

    def op_truncate(self):
        rel = self.anypath()
        size = self.rng.choice(TRUNC_SIZES)
        self.sc(f"truncate {rel} {size}", {errno.ENOENT, errno.EISDIR} | self.res(rel),
                os.truncate, self.abs(rel), size)

    # -- the loop -----------------------------------------------------------

    def loop(self):
        os.umask(0o022)
        n = 0
        while time.monotonic() < self.deadline:
            op = self.rng.choices(self.ops, self.weights)[0]
            self.op = op
            try:
                getattr(self, "op_" + op)()
                self.counts[self.op]["ok"] += 1
            except Expected as e:
                self.counts[self.op][ename(e.errno)] += 1
            except Stale:
                self.counts[self.op]["ESTALE"] += 1
                self.nstale += 1
            except Violation as v:
                self.counts[self.op]["VIOLATION"] += 1
                self.nviol += 1
                if len(self.violations) < 50:
                    self.violations.append(f"node{self.node} worker {self.wid}: {v}")
            n += 1
        with open(self.out, "w") as f:
            json.dump({"wid": self.wid, "node": self.node, "ops": n,
                       "counts": {k: dict(v) for k, v in self.counts.items()},
                       "violations": self.violations, "nviol": self.nviol, "nstale": self.nstale,
                       "writes": self.writes, "xsets": self.xsets}, f)


def parse_xval(v):
    try:
        w, s = v.decode().split(".")
        if w[0] == "w" and s[0] == "s":
            return int(w[1:]), int(s[1:])
    except (ValueError, IndexError, UnicodeDecodeError):
        pass
    return None


def worker_main(slot, a, mnt, node, idx, wid, run, deadline, out):
    Worker(slot, a, mnt, node, idx, wid, run, deadline, out).loop()


# ---------------------------------------------------------------------------
# Setup, the final walk, removal (each in a watched child).
# ---------------------------------------------------------------------------

def guarded(slot, what, fn, *args):
    slot.begin(what)
    try:
        return fn(*args)
    finally:
        slot.end()


def setup_main(slot, base, out):
    inos = []
    guarded(slot, f"mkdir {base}", os.mkdir, base, 0o755)
    inos.append(guarded(slot, f"stat {base}", os.stat, base).st_ino)
    for k in range(NDIRS):
        d = os.path.join(base, f"d{k}")
        guarded(slot, f"mkdir {d}", os.mkdir, d, 0o755)
        inos.append(guarded(slot, f"stat {d}", os.stat, d).st_ino)
    json.dump({"inos": inos}, open(out, "w"))


WALK_RETRY_S = 3.0  # how long the walk retries an ESTALE or a vanished name


def walk_main(slot, base, node, out):
    """Every entry below base as seen through this mount.

    The workers have stopped, but a node may still be forgetting, in the
    background, names and directory aliases that recalls told its kernel to
    forget: a lookup may meet such a stale alias (ESTALE) or a name the
    listing just showed may not be found yet (ENOENT).  Like the kernel's own
    retry of ESTALE, the walk tries such a call again, for WALK_RETRY_S at
    most; the retries are counted in the result, and one that never succeeds
    fails the walk with the call, the path and the errno on one line."""
    tree = {}
    retries = 0

    def call(what, fn, *args):
        nonlocal retries
        deadline = time.monotonic() + WALK_RETRY_S
        while True:
            try:
                return guarded(slot, what, fn, *args)
            except OSError as e:
                if e.errno not in (errno.ESTALE, errno.ENOENT) or time.monotonic() > deadline:
                    print(f"walk node{node}: {what}: {errno.errorcode.get(e.errno, e.errno)} "
                          f"after {retries} retries", flush=True)
                    raise
                retries += 1
                time.sleep(0.05)

    def read_all(p):
        with open(p, "rb", buffering=0) as f:
            return f.read()

    def visit(rel):
        p = os.path.join(base, rel) if rel else base
        st = call(f"lstat {rel or '.'} (node{node})", os.lstat, p)
        e = {"type": "d" if stat.S_ISDIR(st.st_mode) else
             ("f" if stat.S_ISREG(st.st_mode) else f"?{st.st_mode:o}"),
             "mode": stat.S_IMODE(st.st_mode), "nlink": st.st_nlink, "size": st.st_size,
             "ino": st.st_ino, "uid": st.st_uid, "gid": st.st_gid, "mtime": st.st_mtime_ns}
        names = call(f"listxattr {rel or '.'} (node{node})", os.listxattr, p)
        e["xattrs"] = {n: call(f"getxattr {rel} {n} (node{node})", os.getxattr, p, n).hex()
                       for n in sorted(names) if n.startswith("user.")}
        if e["type"] == "f":
            data = call(f"read {rel} (node{node})", read_all, p)
            e["sha256"] = hashlib.sha256(data).hexdigest()
            e["data"] = data.hex()
        if e["type"] == "d":
            names = sorted(call(f"listdir {rel or '.'} (node{node})", os.listdir, p))
            e["names"] = names
            tree[rel] = e
            for n in names:
                visit(os.path.join(rel, n) if rel else n)
        else:
            tree[rel] = e

    visit("")
    if retries:
        print(f"walk node{node}: {retries} calls retried after ESTALE or ENOENT", flush=True)
    json.dump(tree, open(out, "w"))


def remove_main(slot, base):
    def onerror(fn, path, exc):
        raise exc[1]
    slot.begin(f"rm -r {base}")
    shutil.rmtree(base, onerror=onerror)
    slot.end()


def gone_main(slot, parent, name, node, out):
    names = guarded(slot, f"listdir {parent} (node{node})", os.listdir, parent)
    json.dump({"present": name in names}, open(out, "w"))


# ---------------------------------------------------------------------------
# Checks of the final views.
# ---------------------------------------------------------------------------

def compare_views(views):
    """Differences between the nodes' views: [str]."""
    diffs = []
    paths = sorted(set().union(*[set(v) for v in views]))
    for p in paths:
        es = [v.get(p) for v in views]
        if all(e == es[0] for e in es):
            continue
        fields = sorted(set().union(*[set(e) for e in es if e]))
        parts = []
        for k in fields:
            vals = [(e or {}).get(k, "(absent)") if e else "(no entry)" for e in es]
            if any(x != vals[0] for x in vals):
                if k == "data":
                    continue
                parts.append(f"{k}: " + " | ".join(f"node{i + 1} {x}" for i, x in enumerate(vals)))
        diffs.append(f"{p or '.'}: " + "; ".join(parts))
    return diffs


def check_model(tree, run, writes, xsets):
    """Problems of one (agreed) view against what the workers did."""
    probs = []
    by_ino = collections.defaultdict(list)
    seen = {}
    for rel, e in tree.items():
        if rel:
            parts = rel.split("/")
            ok = parts[0] in [f"d{k}" for k in range(NDIRS)]
            if len(parts) >= 2:
                ok = ok and parts[1] in [f"n{j}" for j in range(NNAMES)]
            for c in parts[2:]:
                ok = ok and c in [f"c{m}" for m in range(NCHILD)]
            if not ok:
                probs.append(f"{rel}: a name the workers never used")
        if e["type"] not in ("f", "d"):
            probs.append(f"{rel}: type {e['type']}")
            continue
        if e["mode"] not in FILE_MODES:
            probs.append(f"{rel}: permissions {e['mode']:o}")
        by_ino[e["ino"]].append(rel)
        if e["type"] == "d":
            subdirs = sum(1 for n in e["names"]
                          if tree.get(os.path.join(rel, n) if rel else n, {}).get("type") == "d")
            if e["nlink"] != 2 + subdirs:
                probs.append(f"{rel or '.'}: directory nlink {e['nlink']}, has {subdirs} "
                             "subdirectories")
        for name, hexval in e["xattrs"].items():
            v = parse_xval(bytes.fromhex(hexval))
            if name not in XNAMES or v is None:
                probs.append(f"{rel}: attribute {name}={bytes.fromhex(hexval)!r}")
            elif (v[1], name) not in xsets.get(v[0], ()):
                probs.append(f"{rel}: attribute {name}=w{v[0]}.s{v[1]} was never set")
    for ino, rels in by_ino.items():
        e = tree[rels[0]]
        if e["type"] == "d":
            if len(rels) > 1:
                probs.append(f"directory inode {ino} under several names: {rels}")
            continue
        if e["nlink"] != len(rels):
            probs.append(f"inode {ino}: nlink {e['nlink']} but {len(rels)} names: {rels}")
        data = bytes.fromhex(e["data"])
        if len(data) != e["size"]:
            probs.append(f"{rels[0]}: read {len(data)} bytes, size {e['size']}")
        recs, rp = check_records(data, ino, run)
        probs += [f"{rels[0]}: {p}" for p in rp]
        for w, seq, off in recs:
            if seq not in writes.get(w, ()):
                probs.append(f"{rels[0]} @{off}: record of worker {w} #{seq}, a write that "
                             "never succeeded")
            if (w, seq) in seen:
                probs.append(f"record of worker {w} #{seq} both in {seen[(w, seq)]} and in "
                             f"{rels[0]} @{off}")
            seen[(w, seq)] = f"{rels[0]} @{off}"
    return probs


# ---------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------

class Run:
    def __init__(self, a):
        self.a = a
        self.cluster = hangwatch.Cluster(a.cluster) if a.cluster else None
        self.work = a.work
        if not self.work:
            self.work = tempfile.mkdtemp(prefix="stress.")
            atexit.register(shutil.rmtree, self.work, True)
        os.makedirs(self.work, exist_ok=True)
        self.inos = []
        self.failed = 0
        self.passed = 0
        self.watch = None

    def walk_views(self, mounts, basename, tag=""):
        """Every node's view of the tree ([dict] in mount order), or None."""
        w = self.new_watch(len(mounts))
        vouts = []
        for n, mnt in enumerate(mounts):
            out = os.path.join(self.work, f"view{tag}.{n + 1}.json")
            vouts.append(out)
            w.spawn(f"walk node{n + 1}", n + 1, walk_main, os.path.join(mnt, basename), n + 1, out)
        if not self.settle(w, "walking the tree on every node"):
            return None
        return [json.load(open(o)) for o in vouts]

    def explain_diffs(self, views, diffs, mounts, basename):
        """For the next diagnosis of views that differ (@diffs, from
        compare_views): whether they still differ a few seconds later (a late
        invalidation) or stay so, and every node's tokens of the first
        differing entries and of their directories."""
        time.sleep(3)
        again = self.walk_views(mounts, basename, ".again")
        left = compare_views(again) if again is not None else None
        print("    3 s later: " + ("the walk failed" if left is None else
                                   "the views agree (a late invalidation)" if not left else
                                   f"{len(left)} entries still differ"), flush=True)
        inos = set()
        for d in diffs[:5]:
            p = d.split(": ", 1)[0]
            p = "" if p == "." else p      # compare_views names the top "."
            for q in {p, os.path.dirname(p)}:
                inos.update(v[q]["ino"] for v in views if v.get(q, {}).get("ino"))
        self.print_tokens(inos, len(mounts))

    def print_tokens(self, inos, nnodes):
        """Every node's tokens of @inos (what each holds, and at the metadata
        server who holds what), for the diagnosis of a failure."""
        if not self.cluster:
            return
        for i in range(1, nnodes + 1):
            for ino in sorted(inos):
                try:
                    ans = hangwatch.admin(self.cluster.sock(i), f"tokens {ino}", 5.0).strip()
                except OSError as ex:
                    ans = f"({ex})"
                print(f"    node{i} tokens {ino}: {ans}", flush=True)

    def new_watch(self, nslots):
        w = hangwatch.Watch(nslots, self.a.limit, self.cluster, self.inos, self.a.mounts)
        self.watch = w
        return w

    def ok(self, what):
        self.passed += 1
        print(f"ok   {what}", flush=True)

    def fail(self, what):
        self.failed += 1
        print(f"FAIL {what}", flush=True)

    def settle(self, w, what):
        """Wait for the children of w; exits on a hang."""
        r = w.wait()
        if r in ("hang", "deadline"):
            self.fail(f"seed {self.a.seed}: {what}: the watchdog fired (an operation took over "
                      f"{self.a.limit:.0f} s); the FUSE connections were aborted")
            print(f"{self.passed} passed, {self.failed} failed", flush=True)
            sys.exit(hangwatch.EXIT_HANG)
        return r == "ok"

    def main(self):
        a = self.a
        mounts = a.mounts
        run = (a.seed * 2654435761 + os.getpid()) & 0xFFFFFFFF
        t_start = time.monotonic()

        # Setup through the first mount.
        w = self.new_watch(1)
        out = os.path.join(self.work, "setup.json")
        w.spawn("setup", 1, setup_main, os.path.join(mounts[0], a.basename), out)
        if not self.settle(w, "setup"):
            self.fail(f"seed {a.seed}: setup of {a.basename} failed")
            return 1
        self.inos = json.load(open(out))["inos"]

        # The workers, all at once.
        active = [n for n in range(len(mounts)) if a.active is None or n + 1 in a.active]
        nw = a.workers * len(active)
        w = self.new_watch(nw)
        deadline = time.monotonic() + a.seconds
        outs = []
        for n, mnt in enumerate(mounts):
            if n not in active:
                continue
            for k in range(a.workers):
                wid = n * a.workers + k + 1
                out = os.path.join(self.work, f"worker.{wid}.json")
                outs.append(out)
                w.spawn(f"worker {wid}", n + 1, worker_main, a, mnt, n + 1, k, wid, run,
                        deadline, out)
        print(f"[{time.strftime('%H:%M:%S')}] seed {a.seed}: {nw} workers ({a.workers} on each "
              f"of mounts {[n + 1 for n in active]}) for {a.seconds:.0f} s, watchdog "
              f"{a.limit:.0f} s per operation", flush=True)
        complete = self.settle(w, "workers")
        results = []
        for out in outs:
            try:
                results.append(json.load(open(out)))
            except (OSError, ValueError):
                self.fail(f"seed {a.seed}: a worker left no result ({out})")
        self.report(results, time.monotonic() - (deadline - a.seconds))

        # Every node's view.
        views = self.walk_views(mounts, a.basename)
        if views is None:
            self.fail(f"seed {a.seed}: walking the final tree failed on some node")
            return 1
        nfiles = sum(1 for e in views[0].values() if e["type"] == "f")
        ndirs = sum(1 for e in views[0].values() if e["type"] == "d")
        diffs = compare_views(views)
        if diffs:
            self.fail(f"seed {a.seed}: the nodes see different trees ({len(diffs)} entries "
                      "differ):")
            for d in diffs[:25]:
                print(f"    {d}")
            self.explain_diffs(views, diffs, mounts, a.basename)
        else:
            self.ok(f"seed {a.seed}: every node sees the same tree ({nfiles} files, {ndirs} "
                    "directories: names, types, modes, link counts, sizes, contents, "
                    "attributes, mtimes)")
        writes = {r["wid"]: set(r["writes"]) for r in results}
        xsets = {r["wid"]: {(s, n) for s, n in r["xsets"]} for r in results}
        for n, v in enumerate(views if complete and len(results) == nw else []):
            probs = check_model(v, run, writes, xsets)
            if probs:
                self.fail(f"seed {a.seed}: node{n + 1}'s tree does not match what the workers "
                          f"did ({len(probs)} problems):")
                for p in probs[:25]:
                    print(f"    {p}")
            elif n == 0 or diffs:
                nrec = sum(len(check_records(bytes.fromhex(e["data"]), e["ino"], run)[0])
                           for e in v.values() if e["type"] == "f")
                self.ok(f"seed {a.seed}: node{n + 1}'s tree is consistent with the operations "
                        f"({nrec} records, each intact, in place, written once by a write that "
                        "succeeded; link counts; attributes)")

        # Remove the tree through the last mount; gone everywhere.
        if not a.keep:
            w = self.new_watch(1)
            w.spawn("remove", len(mounts), remove_main, os.path.join(mounts[-1], a.basename))
            if not self.settle(w, "removing the tree"):
                self.fail(f"seed {a.seed}: removing {a.basename} failed")
            else:
                w = self.new_watch(len(mounts))
                gouts = []
                for n, mnt in enumerate(mounts):
                    out = os.path.join(self.work, f"gone.{n + 1}.json")
                    gouts.append(out)
                    w.spawn(f"gone node{n + 1}", n + 1, gone_main, mnt, a.basename, n + 1, out)
                if self.settle(w, "listing after the removal"):
                    still = [n + 1 for n, o in enumerate(gouts) if json.load(open(o))["present"]]
                    if still:
                        self.fail(f"seed {a.seed}: removed through node{len(mounts)}, still "
                                  f"listed on node{still}")
                    else:
                        self.ok(f"seed {a.seed}: the tree, removed through node{len(mounts)}, "
                                "is gone on every node")
                else:
                    self.fail(f"seed {a.seed}: listing after the removal failed")
        print(f"[{time.strftime('%H:%M:%S')}] seed {a.seed}: {time.monotonic() - t_start:.0f} s "
              "in all", flush=True)
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0

    def report(self, results, secs):
        a = self.a
        counts = collections.defaultdict(collections.Counter)
        per_node = collections.Counter()
        nviol = nstale = 0
        viols = []
        for r in results:
            per_node[r["node"]] += r["ops"]
            nviol += r["nviol"]
            nstale += r["nstale"]
            viols += r["violations"]
            for op, c in r["counts"].items():
                counts[op].update(c)
        total = sum(per_node.values())
        print(f"    {total} operations in {secs:.1f} s ({total / secs:.0f}/s); per node: "
              + ", ".join(f"node{n} {c}" for n, c in sorted(per_node.items())))
        print(f"    {'operation':18} {'calls':>7} {'ok':>7}  errno histogram")
        for op in sorted(counts):
            c = counts[op]
            rest = ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])
                             if k != "ok")
            print(f"    {op:18} {sum(c.values()):7d} {c.get('ok', 0):7d}  {rest}")
        never = [op for op in WEIGHTS if not any(k.startswith(op) and v.get("ok")
                                                 for k, v in counts.items())]
        if nviol:
            self.fail(f"seed {a.seed}: {nviol} calls broke POSIX (an errno no state of the tree "
                      "allows, or a wrong result):")
            for v in viols[:30]:
                print(f"    {v}")
            self.print_tokens({int(m) for v in viols[:5] for m in re.findall(r"\(inode (\d+)\)", v)},
                              len(a.mounts))
        else:
            self.ok(f"seed {a.seed}: {total} operations, every result one POSIX allows")
        stale = (f"seed {a.seed}: {nstale} ESTALE (a directory another node moved, whose old "
                 f"alias the kernel could not move here); at most 1 in {STALE_MAX} calls")
        if nstale * STALE_MAX > total:
            self.fail(stale)
        else:
            self.ok(stale)
        if never and total > 20 * len(WEIGHTS):
            self.fail(f"seed {a.seed}: operations that never succeeded: {', '.join(never)}")


def main():
    ap = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1].strip())
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--workers", type=int, default=4, help="workers per mount")
    ap.add_argument("--limit", type=float, default=hangwatch.LIMIT)
    ap.add_argument("--cluster", help="the scripts/local-cluster directory (for the dump)")
    ap.add_argument("--work", help="where the children leave their results")
    ap.add_argument("--keep", action="store_true", help="keep the tree")
    ap.add_argument("--active", type=lambda v: [int(x) for x in v.split(",")],
                    help="workers only on these mounts (1-based, e.g. 2,3); all see the end")
    ap.add_argument("mounts", nargs="+")
    a = ap.parse_args()
    a.basename = f"stress.s{a.seed}"
    return Run(a).main()


if __name__ == "__main__":
    sys.exit(main())
