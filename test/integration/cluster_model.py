#!/usr/bin/env python3
"""cluster_model.py: a randomized multi-node test of one cxfs filesystem.

Usage: cluster_model.py --seed S --ops N [--strict] [--keep] [--check-after-close] [-v]
                        MNT1 MNT2 [MNT3...]

The mount points show the same filesystem from different nodes.  The test
makes a private directory (model.s<SEED>.<PID>) through MNT1, keeps a model
of everything in it (path -> file bytes, mode and user.* attributes, or
directory), and does N random operations, each through a randomly chosen
node's mount point:

  create    a file with random content
  pwrite    overwrite a random range (possibly past the end: a hole)
  append    write at the end (O_APPEND)
  truncate  to a shorter or a longer size
  read      the whole file, compared with the model
  stat      size, type and mode, compared with the model
  rename    a file or a directory, within and across directories, sometimes
            over an existing file
  unlink    a file
  mkdir     a directory (at most 3 levels deep)
  rmdir     an empty directory
  listdir   names of a directory, compared with the model
  chmod     a new mode, checked on another node
  xattr     setxattr user.* (or removexattr), checked with getxattr on
            another node
  odirect   O_DIRECT write of 4096-aligned blocks (buffers from mmap), read
            back with O_DIRECT on another node
  mmap      write through a shared mapping and msync, read on another node

Every change is checked right after it returns, through a *different*
mount point than the one that made it (when there are several), while the
writer still holds its file open (and mapped, for mmap): a node must see
another node's write without waiting for its close.  --check-after-close
checks only after the close instead (to tell the two kinds of bug apart).  At the
end every entry is checked through every mount point, the private
directory is removed (unless --keep) and the counts per operation are
printed; exit 0.  On the first mismatch (or unexpected error) it prints the
seed, the operation number, the node, the operation and expected/actual
(the first differing offset for contents) and exits 1; the private
directory is kept for a post-mortem.

The run is deterministic for a seed (given the same number of mounts and
the same probe results).  It also works on plain local directories, e.g.
`cluster_model.py --seed 1 --ops 2000 /tmp/x /tmp/x /tmp/x`: O_DIRECT,
shared writable mmap and user.* attributes are probed first, and an
operation the filesystem does not support (O_DIRECT on tmpfs) is skipped
and reported, unless --strict makes that a failure (use it on cxfs).
"""
import argparse
import contextlib
import errno
import mmap
import os
import random
import shutil
import stat
import sys

ALIGN = 4096
MAX_FILES = 150            # above this, unlink is favoured
MAX_DIRS = 25
MAX_DEPTH = 3              # levels of directories below the private one
FILE_MODES = [0o600, 0o640, 0o644, 0o664, 0o700, 0o750, 0o755]
DIR_MODES = [0o700, 0o750, 0o755, 0o775]

# Operation -> weight.
WEIGHTS = {
    "create": 10, "pwrite": 12, "append": 6, "truncate": 6, "read": 8, "stat": 5,
    "rename": 8, "unlink": 5, "mkdir": 3, "rmdir": 2, "listdir": 5, "chmod": 4,
    "xattr": 5, "odirect": 5, "mmap": 5,
}


class Mismatch(Exception):
    """A check failed: what was expected and what was found."""


class Entry:
    """What the model knows of one file or directory."""

    def __init__(self, kind, mode, data=None):
        self.kind = kind                      # "f" or "d"
        self.mode = mode                      # permission bits
        self.data = data                      # bytearray for a file
        self.xattrs = {}                      # name -> bytes


def first_diff(a, b):
    """First offset where a and b differ (or the shorter length), or -1."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return -1 if len(a) == len(b) else n
    lo, hi = 0, n          # a[:lo] == b[:lo]; they differ before hi
    while hi - lo > 64:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    for i in range(lo, hi):
        if a[i] != b[i]:
            return i
    return hi


def snippet(buf, off):
    return bytes(buf[off:off + 16]).hex() or "(end)"


def compare_bytes(what, expected, actual):
    d = first_diff(expected, actual)
    if d >= 0:
        raise Mismatch(f"{what}: contents differ at offset {d}: expected {len(expected)} bytes "
                       f"({snippet(expected, d)} at {d}), got {len(actual)} bytes "
                       f"({snippet(actual, d)} at {d})")


def write_all(fd, buf, off=None):
    view = memoryview(buf)
    done = 0
    while done < len(view):
        if off is None:
            n = os.write(fd, view[done:])
        else:
            n = os.pwrite(fd, view[done:], off + done)
        if n <= 0:
            raise OSError(errno.EIO, f"write returned {n}")
        done += n


def read_all(path):
    with open(path, "rb", buffering=0) as f:
        chunks = []
        while True:
            b = f.read(1 << 20)
            if not b:
                return b"".join(chunks)
            chunks.append(b)


def aligned_buffer(size):
    """A page-aligned anonymous mapping of size bytes (for O_DIRECT)."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


class Model:
    def __init__(self, seed, mounts, strict, verbose, after_close=False):
        self.rng = random.Random(seed)
        self.seed = seed
        self.mounts = mounts
        self.strict = strict
        self.verbose = verbose
        self.base = f"model.s{seed}.{os.getpid()}"
        self.tree = {"": Entry("d", 0o755)}   # relative path -> Entry; "" is the private dir
        self.counter = 0
        self.counts = {op: 0 for op in WEIGHTS}
        self.skipped = {}                      # op -> reason it is skipped
        self.opno = 0
        self.op = "setup"
        self.w = 0                              # node of the current change
        self.desc = ""
        self.after_close = after_close          # check only after the writer closed
        self.pending_close = None               # the writer's fd, open during the check
        self.mapping = None                     # the writer's mapping, likewise

    # -- paths and choices -------------------------------------------------

    def path(self, node, rel):
        p = os.path.join(self.mounts[node], self.base)
        return os.path.join(p, rel) if rel else p

    def other(self, node):
        """A node other than @node (the same one if there is only one)."""
        if len(self.mounts) == 1:
            return node
        r = self.rng.randrange(len(self.mounts) - 1)
        return r if r < node else r + 1

    def new_name(self, prefix):
        self.counter += 1
        return f"{prefix}{self.counter}"

    def files(self):
        return sorted(p for p, e in self.tree.items() if e.kind == "f")

    def dirs(self):
        return sorted(p for p, e in self.tree.items() if e.kind == "d")

    def children(self, rel):
        pre = rel + "/" if rel else ""
        return sorted(p[len(pre):] for p in self.tree
                      if p and p.startswith(pre) and "/" not in p[len(pre):])

    def depth(self, rel):
        return 0 if not rel else rel.count("/") + 1

    def rand_data(self, n):
        return bytearray(self.rng.randbytes(n))

    def rand_size(self):
        r = self.rng.random()
        if r < 0.1:
            return 0
        if r < 0.6:
            return self.rng.randint(1, 4096)
        if r < 0.95:
            return self.rng.randint(4097, 128 << 10)
        return self.rng.randint(128 << 10, 1 << 20)

    def log(self, msg):
        if self.verbose:
            print(f"#{self.opno} node{self.w + 1} {msg}", file=sys.stderr)

    # -- checks (through another node) ---------------------------------------

    def check_file(self, node, rel, what="read"):
        e = self.tree[rel]
        p = self.path(node, rel)
        try:
            st = os.stat(p)
        except OSError as ex:
            raise Mismatch(f"{what} on node{node + 1}: stat {rel}: expected a file of "
                           f"{len(e.data)} bytes, got {ex.strerror}")
        if not stat.S_ISREG(st.st_mode):
            raise Mismatch(f"{what} on node{node + 1}: {rel}: expected a regular file, "
                           f"got mode {st.st_mode:o}")
        if st.st_size != len(e.data):
            raise Mismatch(f"{what} on node{node + 1}: {rel}: expected size {len(e.data)}, "
                           f"got {st.st_size}")
        compare_bytes(f"{what} on node{node + 1}: {rel}", e.data, read_all(p))

    def check_gone(self, node, rel):
        if os.path.lexists(self.path(node, rel)):
            raise Mismatch(f"on node{node + 1}: {rel}: expected no such entry, but it exists")

    def check_dir(self, node, rel):
        try:
            st = os.stat(self.path(node, rel))
        except OSError as ex:
            raise Mismatch(f"on node{node + 1}: stat {rel or '.'}: expected a directory, "
                           f"got {ex.strerror}")
        if not stat.S_ISDIR(st.st_mode):
            raise Mismatch(f"on node{node + 1}: {rel}: expected a directory, got mode "
                           f"{st.st_mode:o}")

    def check_list(self, node, rel):
        want = self.children(rel)
        got = sorted(os.listdir(self.path(node, rel)))
        if want != got:
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            raise Mismatch(f"listdir {rel or '.'} on node{node + 1}: expected {len(want)} "
                           f"names, got {len(got)}; missing {missing[:10]}, unexpected "
                           f"{extra[:10]}")

    def check_mode(self, node, rel):
        e = self.tree[rel]
        got = stat.S_IMODE(os.stat(self.path(node, rel)).st_mode)
        if got != e.mode:
            raise Mismatch(f"mode of {rel} on node{node + 1}: expected {e.mode:04o}, "
                           f"got {got:04o}")

    def check_xattrs(self, node, rel, names):
        e = self.tree[rel]
        p = self.path(node, rel)
        for name in names:
            try:
                got = os.getxattr(p, name)
            except OSError as ex:
                if ex.errno == errno.ENODATA and name not in e.xattrs:
                    continue
                raise Mismatch(f"getxattr {rel} {name} on node{node + 1}: expected "
                               f"{'no attribute' if name not in e.xattrs else repr(e.xattrs[name][:16])}"
                               f", got {ex.strerror}")
            if name not in e.xattrs:
                raise Mismatch(f"getxattr {rel} {name} on node{node + 1}: expected no attribute,"
                               f" got {len(got)} bytes")
            compare_bytes(f"getxattr {rel} {name} on node{node + 1}", e.xattrs[name], got)

    # -- probes --------------------------------------------------------------

    def probe(self):
        """Find which optional operations every mount point supports."""
        seen = set()
        for i, m in enumerate(self.mounts):
            real = os.path.realpath(m)
            if real in seen:
                continue
            seen.add(real)
            p = os.path.join(self.path(i, ""), f".probe{i}")
            with open(p, "wb") as f:
                f.write(b"\0" * ALIGN)
            try:
                self.probe_one(i, p)
            finally:
                os.unlink(p)
        for op, why in self.skipped.items():
            msg = f"cluster_model: {op} is not supported here ({why})"
            if self.strict:
                raise Mismatch(msg + " and --strict is given")
            print(msg + ": skipping it", file=sys.stderr)

    def probe_one(self, i, p):
        where = f"node{i + 1} {self.mounts[i]}"
        try:
            fd = os.open(p, os.O_RDWR | os.O_DIRECT)
            try:
                buf = aligned_buffer(ALIGN)
                os.pwrite(fd, buf, 0)
                os.preadv(fd, [buf], 0)
            finally:
                os.close(fd)
        except OSError as ex:
            if ex.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
            self.skipped.setdefault("odirect", f"O_DIRECT: {ex.strerror} on {where}")
        try:
            fd = os.open(p, os.O_RDWR)
            try:
                m = mmap.mmap(fd, ALIGN, flags=mmap.MAP_SHARED)
                m[0:1] = b"\0"
                m.flush()
                m.close()
            finally:
                os.close(fd)
        except OSError as ex:
            if ex.errno not in (errno.ENODEV, errno.EINVAL, errno.EACCES, errno.EOPNOTSUPP):
                raise
            self.skipped.setdefault("mmap", f"shared writable mmap: {ex.strerror} on {where}")
        try:
            os.setxattr(p, "user.cxfs_probe", b"1")
        except OSError as ex:
            if ex.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                raise
            self.skipped.setdefault("xattr", f"user.* attributes: {ex.strerror} on {where}")

    # -- operations ----------------------------------------------------------

    def op_create(self):
        d = self.rng.choice([x for x in self.dirs()])
        rel = os.path.join(d, self.new_name("f")) if d else self.new_name("f")
        data = self.rand_data(self.rand_size())
        self.desc = f"create {rel} ({len(data)} bytes)"
        fd = os.open(self.path(self.w, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.tree[rel] = Entry("f", 0o644, data)
        with self.writer(fd):
            write_all(fd, data)
        self.check_file(self.other(self.w), rel)
        return True

    def op_pwrite(self):
        rel = self.pick_file()
        if rel is None:
            return False
        e = self.tree[rel]
        size = len(e.data)
        off = self.rng.randrange(0, size + 8192)
        n = self.rng.choice([self.rng.randint(1, 512), self.rng.randint(1, 64 << 10)])
        data = self.rand_data(n)
        self.desc = f"pwrite {rel} off={off} len={n} (size {size})"
        if off > size:
            e.data.extend(b"\0" * (off - size))
        e.data[off:off + n] = data
        fd = os.open(self.path(self.w, rel), os.O_WRONLY)
        with self.writer(fd):
            write_all(fd, data, off)
        self.check_file(self.other(self.w), rel)
        return True

    def op_append(self):
        rel = self.pick_file()
        if rel is None:
            return False
        e = self.tree[rel]
        data = self.rand_data(self.rng.randint(1, 16 << 10))
        self.desc = f"append {rel} len={len(data)} (size {len(e.data)})"
        e.data.extend(data)
        fd = os.open(self.path(self.w, rel), os.O_WRONLY | os.O_APPEND)
        with self.writer(fd):
            write_all(fd, data)
        self.check_file(self.other(self.w), rel)
        return True

    def op_truncate(self):
        rel = self.pick_file()
        if rel is None:
            return False
        e = self.tree[rel]
        size = len(e.data)
        if size and self.rng.random() < 0.5:
            new = self.rng.randrange(0, size)
        else:
            new = size + self.rng.randint(1, 200000)
        self.desc = f"truncate {rel} {size} -> {new}"
        os.truncate(self.path(self.w, rel), new)
        if new < size:
            del e.data[new:]
        else:
            e.data.extend(b"\0" * (new - size))
        self.check_file(self.other(self.w), rel)
        return True

    def op_read(self):
        rel = self.pick_file()
        if rel is None:
            return False
        self.desc = f"read {rel}"
        self.check_file(self.w, rel)
        return True

    def op_stat(self):
        rel = self.rng.choice(sorted(self.tree))
        e = self.tree[rel]
        self.desc = f"stat {rel or '.'}"
        st = os.stat(self.path(self.w, rel))
        want = stat.S_IFREG if e.kind == "f" else stat.S_IFDIR
        if stat.S_IFMT(st.st_mode) != want:
            raise Mismatch(f"stat {rel} on node{self.w + 1}: expected type {want:o}, got "
                           f"{stat.S_IFMT(st.st_mode):o}")
        if e.kind == "f" and st.st_size != len(e.data):
            raise Mismatch(f"stat {rel} on node{self.w + 1}: expected size {len(e.data)}, got "
                           f"{st.st_size}")
        if stat.S_IMODE(st.st_mode) != e.mode:
            raise Mismatch(f"stat {rel} on node{self.w + 1}: expected mode {e.mode:04o}, got "
                           f"{stat.S_IMODE(st.st_mode):04o}")
        return True

    def op_rename(self):
        dirs_ = [d for d in self.dirs() if d]
        move_dir = dirs_ and self.rng.random() < 0.2
        if move_dir:
            src = self.rng.choice(dirs_)
            # Not into itself or below it, and not too deep afterwards.
            sub = max(self.depth(p) - self.depth(src) for p in self.tree
                      if p == src or p.startswith(src + "/"))
            cands = [d for d in self.dirs() if d != src and not d.startswith(src + "/")
                     and self.depth(d) + 1 + sub <= MAX_DEPTH]
            if not cands:
                return False
            dst_dir = self.rng.choice(cands)
            dst = os.path.join(dst_dir, self.new_name("d")) if dst_dir else self.new_name("d")
        else:
            src = self.pick_file()
            if src is None:
                return False
            others = [f for f in self.files() if f != src]
            if others and self.rng.random() < 0.25:
                dst = self.rng.choice(others)          # replaces an existing file
            else:
                dst_dir = self.rng.choice(self.dirs())
                dst = os.path.join(dst_dir, self.new_name("f")) if dst_dir else self.new_name("f")
        self.desc = f"rename {src} -> {dst}" + (" (over an existing file)" if dst in self.tree else "")
        os.rename(self.path(self.w, src), self.path(self.w, dst))
        moved = {p: e for p, e in self.tree.items() if p == src or p.startswith(src + "/")}
        for p in moved:
            del self.tree[p]
        for p, e in moved.items():
            self.tree[dst + p[len(src):]] = e
        r = self.other(self.w)
        self.check_gone(r, src)
        if move_dir:
            self.check_dir(r, dst)
            self.check_list(r, dst)
        else:
            self.check_file(r, dst)
        self.check_list(r, os.path.dirname(src))
        if os.path.dirname(dst) != os.path.dirname(src):
            self.check_list(r, os.path.dirname(dst))
        return True

    def op_unlink(self):
        rel = self.pick_file()
        if rel is None:
            return False
        self.desc = f"unlink {rel}"
        os.unlink(self.path(self.w, rel))
        del self.tree[rel]
        self.check_gone(self.other(self.w), rel)
        return True

    def op_mkdir(self):
        cands = [d for d in self.dirs() if self.depth(d) < MAX_DEPTH]
        if not cands or len(self.dirs()) > MAX_DIRS:
            return False
        parent = self.rng.choice(cands)
        rel = os.path.join(parent, self.new_name("d")) if parent else self.new_name("d")
        self.desc = f"mkdir {rel}"
        os.mkdir(self.path(self.w, rel), 0o755)
        self.tree[rel] = Entry("d", 0o755)
        r = self.other(self.w)
        self.check_dir(r, rel)
        self.check_list(r, rel)
        self.check_list(r, parent)
        return True

    def op_rmdir(self):
        cands = [d for d in self.dirs() if d and not self.children(d)]
        if not cands:
            return False
        rel = self.rng.choice(cands)
        self.desc = f"rmdir {rel}"
        os.rmdir(self.path(self.w, rel))
        del self.tree[rel]
        self.check_gone(self.other(self.w), rel)
        return True

    def op_listdir(self):
        rel = self.rng.choice(self.dirs())
        self.desc = f"listdir {rel or '.'}"
        self.check_list(self.w, rel)
        return True

    def op_chmod(self):
        rel = self.rng.choice(sorted(self.tree))
        e = self.tree[rel]
        mode = self.rng.choice(FILE_MODES if e.kind == "f" else DIR_MODES)
        self.desc = f"chmod {rel or '.'} {e.mode:04o} -> {mode:04o}"
        os.chmod(self.path(self.w, rel), mode)
        e.mode = mode
        self.check_mode(self.other(self.w), rel)
        return True

    def op_xattr(self):
        rel = self.rng.choice(sorted(self.tree))
        e = self.tree[rel]
        p = self.path(self.w, rel)
        if e.xattrs and self.rng.random() < 0.25:
            name = self.rng.choice(sorted(e.xattrs))
            self.desc = f"removexattr {rel or '.'} {name}"
            os.removexattr(p, name)
            del e.xattrs[name]
        else:
            name = f"user.k{self.rng.randrange(6)}"
            value = bytes(self.rand_data(self.rng.randint(1, 300)))
            self.desc = f"setxattr {rel or '.'} {name} ({len(value)} bytes)"
            os.setxattr(p, name, value)
            e.xattrs[name] = value
        self.check_xattrs(self.other(self.w), rel, [name])
        return True

    def op_odirect(self):
        rel = self.pick_file()
        if rel is None:
            return False
        e = self.tree[rel]
        size = len(e.data)
        off = ALIGN * self.rng.randrange(0, size // ALIGN + 3)
        n = ALIGN * self.rng.randint(1, 16)
        data = self.rand_data(n)
        self.desc = f"O_DIRECT pwrite {rel} off={off} len={n} (size {size})"
        if off > size:
            e.data.extend(b"\0" * (off - size))
        e.data[off:off + n] = data
        buf = aligned_buffer(n)
        buf[:] = data
        fd = os.open(self.path(self.w, rel), os.O_WRONLY | os.O_DIRECT)
        with self.writer(fd):
            got = os.pwrite(fd, buf, off)
            buf.close()
            if got != n:
                raise Mismatch(f"O_DIRECT pwrite of {n} bytes on node{self.w + 1} wrote {got}")
        # Read the written blocks back with O_DIRECT on another node.
        r = self.other(self.w)
        buf = aligned_buffer(n)
        fd = os.open(self.path(r, rel), os.O_RDONLY | os.O_DIRECT)
        try:
            got = os.preadv(fd, [buf], off)
        finally:
            os.close(fd)
        actual = bytes(buf[:got])
        buf.close()
        compare_bytes(f"O_DIRECT pread {rel} off={off} len={n} on node{r + 1}",
                      bytes(e.data[off:off + n]), actual)
        return True

    def op_mmap(self):
        cands = [f for f in self.files() if self.tree[f].data]
        if not cands:
            return False
        rel = self.rng.choice(cands)
        e = self.tree[rel]
        size = len(e.data)
        off = self.rng.randrange(0, size)
        n = self.rng.randint(1, min(size - off, 64 << 10))
        data = self.rand_data(n)
        self.desc = f"mmap write {rel} off={off} len={n} (size {size}) + msync"
        e.data[off:off + n] = data
        fd = os.open(self.path(self.w, rel), os.O_RDWR)
        with self.writer(fd):
            m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
            self.mapping = m
            m[off:off + n] = data
            m.flush()          # msync(MS_SYNC)
        self.check_file(self.other(self.w), rel)
        return True

    @contextlib.contextmanager
    def writer(self, fd):
        """Around the writes of an operation on @fd: the checks that follow
        run while @fd (and self.mapping, if set) is still open, unless
        --check-after-close; both are closed on any exit."""
        self.mapping = None
        try:
            yield
        except BaseException:
            self.close_writer(fd)
            raise
        if self.after_close:
            self.close_writer(fd)
        else:
            self.pending_close = fd

    def close_writer(self, fd):
        if self.mapping is not None:
            self.mapping.close()
            self.mapping = None
        os.close(fd)

    def pick_file(self):
        f = self.files()
        return self.rng.choice(f) if f else None

    # -- the run -------------------------------------------------------------

    def choose_op(self):
        ops = [op for op in WEIGHTS if op not in self.skipped]
        weights = [WEIGHTS[op] for op in ops]
        nfiles = len(self.files())
        if nfiles > MAX_FILES:
            weights[ops.index("unlink")] *= 6
            weights[ops.index("create")] = 1
        return self.rng.choices(ops, weights)[0]

    def setup(self):
        self.desc = f"mkdir {self.base} and probe O_DIRECT, mmap, user.* attributes"
        os.umask(0o022)
        os.mkdir(self.path(0, ""), 0o755)
        self.check_dir(self.other(0), "")
        self.probe()

    def step(self):
        self.w = self.rng.randrange(len(self.mounts))
        op = self.choose_op()
        self.op = op
        self.desc = op
        try:
            if not getattr(self, "op_" + op)():
                # Nothing to do it on (no file yet, no empty directory...).
                self.op = "create"
                self.desc = "create"
                self.op_create()
        finally:
            # The writer's file stayed open through the check; close it now.
            if self.pending_close is not None:
                fd, self.pending_close = self.pending_close, None
                self.close_writer(fd)
        self.counts[self.op] += 1
        self.log(self.desc)

    def final_sweep(self):
        """Every entry, through every mount point."""
        self.op = "final check"
        for i in range(len(self.mounts)):
            self.w = i
            for rel in sorted(self.tree):
                e = self.tree[rel]
                self.desc = f"final check of {rel or '.'} on node{i + 1}"
                if e.kind == "f":
                    self.check_file(i, rel, "final check")
                else:
                    self.check_dir(i, rel)
                    self.check_list(i, rel)
                self.check_mode(i, rel)
                if "xattr" not in self.skipped:
                    self.check_xattrs(i, rel, sorted(set(e.xattrs) | {f"user.k{k}" for k in range(6)}))

    def cleanup(self):
        self.op = "cleanup"
        self.w = 0
        self.desc = f"remove {self.base}"
        shutil.rmtree(self.path(0, ""))
        self.check_gone(self.other(0), "")

    def report(self, what):
        node = self.mounts[self.w] if self.w < len(self.mounts) else "?"
        when = f"op=#{self.opno}" if self.opno else "during setup"
        print(f"cluster_model: FAILED seed={self.seed} {when} node{self.w + 1} ({node}) "
              f"operation: {self.desc or self.op}", file=sys.stderr)
        print(f"  {what}", file=sys.stderr)
        print(f"  private directory kept: {self.path(0, '')}", file=sys.stderr)
        print(f"  rerun: cluster_model.py --seed {self.seed} --ops {self.opno} -v "
              f"{' '.join(self.mounts)}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(
        description="Randomized multi-node operations on one filesystem seen through "
                    "several mount points, checked against a model.")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--ops", type=int, required=True, help="number of operations")
    ap.add_argument("--strict", action="store_true",
                    help="fail if O_DIRECT, shared mmap or user.* attributes are unsupported")
    ap.add_argument("--keep", action="store_true", help="keep the private directory")
    ap.add_argument("--check-after-close", action="store_true",
                    help="check a write only after the writer closed its file (default: "
                         "while it is still open, right after the write returned)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every operation")
    ap.add_argument("mounts", nargs="+", metavar="MNT")
    args = ap.parse_args()
    if len(args.mounts) < 2:
        ap.error("give at least two mount points (the same directory twice for a self-test)")
    for m in args.mounts:
        if not os.path.isdir(m):
            ap.error(f"{m} is not a directory")

    md = Model(args.seed, [os.path.abspath(m) for m in args.mounts], args.strict, args.verbose,
               args.check_after_close)
    print(f"cluster_model: seed {args.seed}, {args.ops} operations over {len(md.mounts)} "
          f"mount points, in {md.base}")
    try:
        md.setup()
        for md.opno in range(1, args.ops + 1):
            md.step()
        md.opno = args.ops
        md.final_sweep()
        if not args.keep:
            md.cleanup()
    except Mismatch as ex:
        md.report(str(ex))
        return 1
    except OSError as ex:
        md.report(f"unexpected error: {ex}")
        return 1
    done = sum(md.counts.values())
    print(f"cluster_model: {done} operations passed (seed {args.seed}):")
    for op in WEIGHTS:
        note = f"  (skipped: {md.skipped[op]})" if op in md.skipped else ""
        print(f"  {op:9s} {md.counts[op]:6d}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
