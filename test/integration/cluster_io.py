#!/usr/bin/env python3
"""cluster_io.py: multi-node coherence checks for the t_cluster_*.sh tests.

Usage: cluster_io.py CHECK [options] PATH1 PATH2 [PATH3...]

Every PATHi names the same file (or directory) through a different node's
mount point (PATH1 through node 1, ...); the checks act on one node and look
on the others.  Each check prints one line per result, "ok WHAT" or
"FAIL WHAT: DETAIL" (the shell turns them into pass/fail), and indented
lines with figures; exit 0 if nothing failed, 1 otherwise, 2 on usage.

  open-rw --mode M --rounds N   the file stays open (and mapped, for mmap) on
                                every node; each round one node writes random
                                bytes at a random place (often at the end:
                                the file grows from empty, except for mmap)
                                and the next two nodes read the whole file (in
                                mode M and with a plain read()) and fstat it,
                                rotating over the nodes.
                                M: buffered, direct (O_DIRECT, aligned
                                buffers from mmap), mmap (MAP_SHARED store +
                                msync; read through a mapping that stays
                                mapped, and through read())
  after-close --mode M --rounds N   the same, but the writer opens, writes,
                                closes, and each reader opens, reads, closes
  torn --seconds S              PATH1 is the writer: it rewrites a 64 KiB
                                region, all bytes = k, k increasing; PATH2...
                                are read by P processes each (--procs P,
                                default 2; file kept open) that pread the
                                region in one call: every read must be one
                                value (not torn) and not older than the last
                                write completed before it began
  meta DIR1 DIR2 DIR3           rename, unlink, chmod, user.* xattrs, mkdir,
                                rmdir and directory renames across
                                directories, each acting node in turn, seen at
                                once (caches warmed first) on the others
  times                         writes at 1 MiB on one node, then at 0 on
                                another: every node sees the same size and
                                mtime (the later writer's), while open and
                                after close
  append --records N            one O_APPEND writer process per path, N
                                records each: every record is there once,
                                intact, in each writer's order
  locks                         POSIX record locks across nodes (F_SETLK,
                                F_GETLK, F_SETLKW, unlock, close, exit)
  lockcount --rounds N --procs P [--reopen]
                                P processes per node, each N times:
                                F_SETLKW, read the counter, write counter+1,
                                unlock (with --reopen: open before, close
                                after, as most programs do); the final
                                counter is the total and every value was
                                written exactly once
  statloop --stats N --reads M  (one path) N stat() calls and M whole-file
                                re-reads; prints the time taken
"""
import argparse
import ctypes
import errno
import fcntl
import mmap
import os
import random
import re
import select
import signal
import stat
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_model import first_diff  # noqa: E402  (one copy of the helper)

ALIGN = 4096
FAILS = 0


def ok(what):
    print(f"ok   {what}", flush=True)


def fail(what, detail=""):
    global FAILS
    FAILS += 1
    print(f"FAIL {what}{': ' + detail if detail else ''}", flush=True)


def info(msg):
    print(f"     {msg}", flush=True)


def node_of(i):
    return f"node{i + 1}"


def diff_text(expected, actual):
    d = first_diff(expected, actual)
    if d < 0:
        return None
    end = d
    while end < min(len(expected), len(actual)) and expected[end] != actual[end]:
        end += 1
    return (f"first difference at offset {d} (differs for {end - d} bytes): expected "
            f"{bytes(expected[d:d + 8]).hex() or '(end)'}, got {bytes(actual[d:d + 8]).hex() or '(end)'}"
            f"; expected length {len(expected)}, got {len(actual)}")


def write_all(fd, buf, off):
    view = memoryview(buf)
    done = 0
    while done < len(view):
        n = os.pwrite(fd, view[done:], off + done)
        if n <= 0:
            raise OSError(errno.EIO, f"pwrite returned {n}")
        done += n


def pread_all(fd, size, off=0):
    out = bytearray()
    while len(out) < size:
        b = os.pread(fd, size - len(out), off + len(out))
        if not b:
            break
        out += b
    return bytes(out)


def aligned_buffer(size):
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def direct_read(fd, size, off=0):
    buf = aligned_buffer(size)
    n = os.preadv(fd, [buf], off)
    data = bytes(buf[:n])
    buf.close()
    return data


def direct_write(fd, data, off):
    buf = aligned_buffer(len(data))
    buf[:] = data
    n = os.pwrite(fd, buf, off)
    buf.close()
    if n != len(data):
        raise OSError(errno.EIO, f"O_DIRECT pwrite wrote {n} of {len(data)}")


def coarse_ns():
    return time.clock_gettime_ns(getattr(time, "CLOCK_REALTIME_COARSE", 5))


# ---------------------------------------------------------------------------
# open-rw and after-close: data written on one node, read on the others.
# ---------------------------------------------------------------------------

FILE_SIZE = 256 << 10


def choose_range(rng, mode, size=None):
    """A random range to write; when @size (the file's size) is given, one
    time in three the range starts at the end of the file (the file grows)."""
    if size is not None and size < FILE_SIZE and rng.randrange(3) == 0:
        off = size
    else:
        off = rng.randrange(FILE_SIZE)
    if mode == "direct":
        nblk = FILE_SIZE // ALIGN
        b = min(off // ALIGN, nblk - 1)
        if size is not None and off == size:
            b = (size + ALIGN - 1) // ALIGN if size % ALIGN else size // ALIGN
            b = min(b, nblk - 1)
        n = rng.randint(1, min(16, nblk - b))
        return b * ALIGN, n * ALIGN
    n = rng.randint(1, min(65536, FILE_SIZE - off))
    return off, n


def start_file(path, mode):
    """Create the file empty (it grows) or, for mmap, at its fixed size;
    returns (grows, model)."""
    grow = mode != "mmap"
    fd0 = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    if not grow:
        os.ftruncate(fd0, FILE_SIZE)
    os.close(fd0)
    return grow, bytearray(0 if grow else FILE_SIZE)


def check_open_rw(paths, mode, rounds, seed):
    """The file starts empty and grows (buffered, direct) or has a fixed size
    (mmap); every node keeps it open (and mapped) for all the rounds."""
    rng = random.Random(seed)
    n = len(paths)
    what = f"{mode} I/O with the file open on {n} nodes"
    grow, model = start_file(paths[0], mode)
    fds, plain, maps = [], [], []
    try:
        for p in paths:
            plain.append(os.open(p, os.O_RDWR))
            if mode == "direct":
                fds.append(os.open(p, os.O_RDWR | os.O_DIRECT))
            elif mode == "mmap":
                fds.append(plain[-1])
                maps.append(mmap.mmap(plain[-1], FILE_SIZE))
            else:
                fds.append(plain[-1])
        # Read once everywhere: each node caches the (empty or zero) contents.
        for i in range(n):
            if pread_all(plain[i], FILE_SIZE + ALIGN) != bytes(model):
                fail(what, f"{node_of(i)} does not read the new file as {len(model)} zeros")
                return
        for r in range(rounds):
            w = r % n
            off, length = choose_range(rng, mode, len(model) if grow else None)
            data = rng.randbytes(length)
            if mode == "buffered":
                write_all(fds[w], data, off)
            elif mode == "direct":
                direct_write(fds[w], data, off)
            else:
                maps[w][off:off + length] = data
                maps[w].flush()
            if off + length > len(model):
                model.extend(bytes(off + length - len(model)))
            model[off:off + length] = data
            exp = bytes(model)
            for k in range(1, n):
                rd = (w + k) % n
                views = []
                if mode == "direct":
                    views.append(("O_DIRECT pread", direct_read(fds[rd], FILE_SIZE + ALIGN)))
                elif mode == "mmap":
                    views.append(("its mapping", bytes(maps[rd][:])))
                views.append(("pread", pread_all(plain[rd], FILE_SIZE + ALIGN)))
                views.append(("fstat", None))
                for how, got in views:
                    if how == "fstat":
                        sz = os.fstat(plain[rd]).st_size
                        d = None if sz == len(exp) else f"size {sz}, expected {len(exp)}"
                    else:
                        d = diff_text(exp, got)
                    if d:
                        fail(what, f"round {r}: {node_of(w)} wrote {length} bytes at {off}; "
                             f"{node_of(rd)} reading through {how}: {d}")
                        return
        ok(f"{what}: {rounds} rounds (writer rotating, the other nodes read at once"
           f"{'; the file grows from empty' if grow else ''})")
    finally:
        for m in maps:
            m.close()
        for fd in set(fds + plain):
            os.close(fd)


def check_after_close(paths, mode, rounds, seed):
    rng = random.Random(seed)
    n = len(paths)
    what = f"{mode} I/O read on other nodes after the writer closed"
    grow, model = start_file(paths[0], mode)
    flags = os.O_DIRECT if mode == "direct" else 0
    for r in range(rounds):
        w = r % n
        off, length = choose_range(rng, mode, len(model) if grow else None)
        data = rng.randbytes(length)
        fd = os.open(paths[w], os.O_RDWR | flags)
        try:
            if mode == "buffered":
                write_all(fd, data, off)
            elif mode == "direct":
                direct_write(fd, data, off)
            else:
                with mmap.mmap(fd, FILE_SIZE) as m:
                    m[off:off + length] = data
                    m.flush()
        finally:
            os.close(fd)
        if off + length > len(model):
            model.extend(bytes(off + length - len(model)))
        model[off:off + length] = data
        exp = bytes(model)
        for k in range(1, n):
            rd = (w + k) % n
            fd = os.open(paths[rd], os.O_RDONLY | flags)
            try:
                if mode == "direct":
                    got, how = direct_read(fd, FILE_SIZE + ALIGN), "O_DIRECT pread"
                elif mode == "mmap":
                    with mmap.mmap(fd, FILE_SIZE, prot=mmap.PROT_READ) as m:
                        got, how = bytes(m[:]), "a new mapping"
                else:
                    got, how = pread_all(fd, FILE_SIZE + ALIGN), "pread"
            finally:
                os.close(fd)
            d = diff_text(exp, got)
            if d:
                fail(what, f"round {r}: {node_of(w)} wrote {length} bytes at {off} and closed; "
                     f"{node_of(rd)} reading through {how}: {d}")
                return
    ok(f"{what}: {rounds} rounds{'; the file grows from empty' if grow else ''}")


# ---------------------------------------------------------------------------
# torn: one 64 KiB pread never mixes two writes.
# ---------------------------------------------------------------------------

REGION = 64 << 10


def check_torn(paths, seconds, per_path=1):
    writer, readers = paths[0], [p for p in paths[1:] for _ in range(per_path)]
    shm = mmap.mmap(-1, 4096)                 # MAP_SHARED: seen by the children
    published = ctypes.c_int64.from_buffer(shm, 0)   # last k whose pwrite returned
    stop = ctypes.c_int64.from_buffer(shm, 8)
    fd = os.open(writer, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    write_all(fd, bytes(REGION), 0)
    os.close(fd)
    pipes, pids = [], []
    for ri, rpath in enumerate(readers):
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            reads = torn = stale = unchecked = 0
            first = first_stale = ""
            try:
                fd = os.open(rpath, os.O_RDONLY)
                while not stop.value:
                    pb = published.value
                    data = os.pread(fd, REGION, 0)
                    pa = published.value
                    reads += 1
                    if len(data) != REGION or data.count(data[0]) != REGION:
                        torn += 1
                        if not first:
                            vals = sorted(set(data))
                            cut = next((i for i in range(len(data)) if data[i] != data[0]), len(data))
                            first = (f"read {reads}: {len(data)} bytes, values {vals[:8]}, "
                                     f"byte 0 = {data[0] if data else None}, first other value at "
                                     f"offset {cut}")
                        continue
                    v = data[0]
                    if pa + 1 - pb >= 255:
                        unchecked += 1
                        continue
                    vtrue = pb + ((v - pb) & 255)
                    if vtrue > pa + 1:
                        stale += 1
                        if not first_stale:
                            first_stale = (f"read {reads}: value {v}, but write {pb} (byte {pb & 255}) "
                                     f"had returned before the read began")
                os.close(fd)
                msg = f"{reads} {torn} {stale} {unchecked} {first}\t{first_stale}\n"
            except OSError as e:
                msg = f"-1 0 0 0 {e}\t\n"
            os.write(wfd, msg.encode())
            os._exit(0)
        os.close(wfd)
        pipes.append(rfd)
        pids.append(pid)
    fd = os.open(writer, os.O_RDWR)
    k = 0
    t_end = time.monotonic() + seconds
    werr = None
    try:
        while time.monotonic() < t_end:
            k += 1
            write_all(fd, bytes([k & 255]) * REGION, 0)
            published.value = k
    except OSError as e:
        werr = e
    finally:
        os.close(fd)
        stop.value = 1
    results = []
    for rfd, pid in zip(pipes, pids):
        buf = b""
        while True:
            b = os.read(rfd, 4096)
            if not b:
                break
            buf += b
        os.close(rfd)
        os.waitpid(pid, 0)
        results.append(buf.decode().rstrip("\n"))
    info(f"writer on {writer}: {k} writes of {REGION} bytes in {seconds} s")
    if werr:
        fail("torn-read writer", f"write {k}: {werr}")
    all_ok = True
    for rpath, res in zip(readers, results):
        parts = res.split(" ", 4)
        reads, torn, stale, unchecked = (int(x) for x in parts[:4])
        first, first_stale = (parts[4] if len(parts) > 4 else "\t").split("\t", 1)
        if reads < 0:
            fail(f"torn-read reader {rpath}", first)
            all_ok = False
            continue
        info(f"reader on {rpath}: {reads} reads, {torn} torn, {stale} stale, {unchecked} unchecked for staleness")
        if torn:
            fail(f"64 KiB preads on {rpath} are never torn by the writer",
                 f"{torn} of {reads} reads torn; first: {first}")
            all_ok = False
        elif reads < 10:
            fail(f"64 KiB preads on {rpath} are never torn by the writer", f"only {reads} reads done")
            all_ok = False
        if stale:
            fail(f"64 KiB preads on {rpath} never return data older than a completed write",
                 f"{stale} of {reads} reads stale; first: {first_stale}")
            all_ok = False
    if all_ok:
        ok(f"64 KiB preads never torn nor stale ({len(readers)} readers, {k} writes, {seconds} s)")


# ---------------------------------------------------------------------------
# meta: namespace and attribute changes seen at once on the other nodes.
# ---------------------------------------------------------------------------

UNLINKED_OPEN = ("a file one node unlinks stays usable on the nodes that have it open "
                 "(new blocks written, read back)")


def lst(d):
    try:
        return sorted(os.listdir(d))
    except OSError as e:
        return f"listdir error {errno.errorcode.get(e.errno, e.errno)}"


def exists_ino(p):
    try:
        return os.stat(p).st_ino
    except FileNotFoundError:
        return None


def getx(p, name):
    try:
        return os.getxattr(p, name)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


class MetaCheck:
    def __init__(self, dirs):
        self.dirs = dirs
        self.n = len(dirs)
        self.bad = {}

    def p(self, node, rel):
        return os.path.join(self.dirs[node], rel)

    def others(self, a):
        return [i for i in range(self.n) if i != a]

    def expect(self, group, cond, detail):
        if not cond:
            self.bad.setdefault(group, []).append(detail)

    def warm(self, rels):
        """Every node looks up, stats, lists and reads attributes: their caches hold it."""
        for i in range(self.n):
            for rel in rels:
                p = self.p(i, rel)
                try:
                    os.stat(p)
                    os.listxattr(p)
                    getx(p, "user.k")
                except OSError:
                    pass
                try:
                    os.listdir(os.path.dirname(p))
                except OSError:
                    pass

    def run(self):
        for a in range(self.n):
            self.round(a)
        self.dir_rename()
        groups = ["create", "rename", "rename over an existing file", "unlink", UNLINKED_OPEN, "chmod",
                  "setxattr", "replace xattr", "removexattr", "mkdir", "rmdir",
                  "directory rename across directories"]
        for g in groups:
            what = g if g == UNLINKED_OPEN else f"{g} on one node is seen at once on the others"
            if g in self.bad:
                fail(what, f"{len(self.bad[g])} mismatch(es); first: {self.bad[g][0]}")
                for m in self.bad[g][1:5]:
                    info(f"also: {m}")
            else:
                ok(f"{what} (each node acting in turn)")

    def round(self, a):
        A = node_of(a)
        f, g, h = f"f{a}", f"g{a}", f"h{a}"
        # create
        for i in range(self.n):
            self.expect("create", exists_ino(self.p(i, f)) is None, f"{node_of(i)}: {f} exists before")
        with open(self.p(a, f), "wb") as fo:
            fo.write(b"data of " + f.encode())
        ino = os.stat(self.p(a, f)).st_ino
        for o in self.others(a):
            self.expect("create", exists_ino(self.p(o, f)) == ino,
                        f"{A} created {f} (ino {ino}); {node_of(o)} stat gives ino {exists_ino(self.p(o, f))}")
            self.expect("create", f in lst(self.dirs[o]), f"{A} created {f}; not in {node_of(o)}'s listdir")
        with open(self.p(a, h), "wb") as fo:
            fo.write(b"the victim")
        ino_h = os.stat(self.p(a, h)).st_ino
        self.warm([f, g, h])
        # rename
        os.rename(self.p(a, f), self.p(a, g))
        for o in self.others(a):
            O = node_of(o)
            self.expect("rename", exists_ino(self.p(o, f)) is None,
                        f"{A} renamed {f} -> {g}; {O} still stats {f}")
            self.expect("rename", exists_ino(self.p(o, g)) == ino,
                        f"{A} renamed {f} -> {g}; {O} stats {g} as ino {exists_ino(self.p(o, g))}, expected {ino}")
            ls = lst(self.dirs[o])
            self.expect("rename", isinstance(ls, list) and g in ls and f not in ls,
                        f"{A} renamed {f} -> {g}; {O} lists {ls}")
        self.warm([f, g, h])
        # rename over an existing file
        os.rename(self.p(a, g), self.p(a, h))
        for o in self.others(a):
            O = node_of(o)
            got = exists_ino(self.p(o, h))
            self.expect("rename over an existing file", got == ino,
                        f"{A} renamed {g} over {h} (ino {ino_h}); {O} stats {h} as ino {got}, expected {ino}")
            self.expect("rename over an existing file", exists_ino(self.p(o, g)) is None,
                        f"{A} renamed {g} over {h}; {O} still stats {g}")
            try:
                with open(self.p(o, h), "rb") as fi:
                    c = fi.read()
            except OSError as e:
                c = str(e)
            self.expect("rename over an existing file", c == b"data of " + f.encode(),
                        f"{A} renamed {g} over {h}; {O} reads {h} as {c[:30]!r}")
        self.warm([h])
        # chmod
        for mode in (0o600, 0o751, 0o640):
            os.chmod(self.p(a, h), mode)
            for o in self.others(a):
                got = stat.S_IMODE(os.stat(self.p(o, h)).st_mode)
                self.expect("chmod", got == mode,
                            f"{A} chmod {h} {mode:o}; {node_of(o)} sees {got:o}")
        # xattrs
        os.setxattr(self.p(a, h), "user.k", b"v1-" + A.encode())
        for o in self.others(a):
            got = getx(self.p(o, h), "user.k")
            self.expect("setxattr", got == b"v1-" + A.encode(),
                        f"{A} set user.k; {node_of(o)} getxattr gives {got!r}")
            lx = os.listxattr(self.p(o, h))
            self.expect("setxattr", "user.k" in lx, f"{A} set user.k; {node_of(o)} listxattr gives {lx}")
        b = self.others(a)[0]
        os.setxattr(self.p(b, h), "user.k", b"v2-" + node_of(b).encode() + b"x" * 100)
        for o in self.others(b):
            got = getx(self.p(o, h), "user.k")
            self.expect("replace xattr", got == b"v2-" + node_of(b).encode() + b"x" * 100,
                        f"{node_of(b)} replaced user.k; {node_of(o)} getxattr gives {got!r:.40}")
        c = self.others(a)[-1]
        os.removexattr(self.p(c, h), "user.k")
        for o in self.others(c):
            got = getx(self.p(o, h), "user.k")
            self.expect("removexattr", got == "ENODATA",
                        f"{node_of(c)} removed user.k; {node_of(o)} getxattr gives {got!r:.40}")
        # unlink, while the other nodes have the file open
        self.warm([h])
        held = {o: os.open(self.p(o, h), os.O_RDWR) for o in self.others(a)}
        os.unlink(self.p(a, h))
        for o in self.others(a):
            O = node_of(o)
            self.expect("unlink", exists_ino(self.p(o, h)) is None, f"{A} unlinked {h}; {O} still stats it")
            ls = lst(self.dirs[o])
            self.expect("unlink", isinstance(ls, list) and h not in ls, f"{A} unlinked {h}; {O} lists {ls}")
            try:
                open(self.p(o, h), "rb").close()
                self.expect("unlink", False, f"{A} unlinked {h}; {O} can still open it")
            except FileNotFoundError:
                pass
        # They go on using it: new blocks (an allocation at the MDS), read back.
        for o, fd in held.items():
            O = node_of(o)
            data = f"{O} writes after {A}'s unlink ".encode() * 800
            off = (1 << 20) * (o + 1)
            try:
                nlink = os.fstat(fd).st_nlink
                n = os.pwrite(fd, data, off)
                back = os.pread(fd, len(data), off)
                self.expect(UNLINKED_OPEN, nlink == 0 and n == len(data)
                            and back == data, f"{A} unlinked {h}; {O}, which has it open, sees nlink {nlink}, "
                            f"wrote {n} of {len(data)} bytes, read back {'the same' if back == data else 'other'} bytes")
            except OSError as e:
                self.expect(UNLINKED_OPEN, False,
                            f"{A} unlinked {h}; {O}, which has it open, fails: {e}")
            finally:
                os.close(fd)
        # mkdir / rmdir
        dn = f"d{a}"
        self.warm([dn])
        os.mkdir(self.p(a, dn))
        for o in self.others(a):
            st = None
            try:
                st = os.stat(self.p(o, dn))
            except OSError:
                pass
            self.expect("mkdir", st is not None and stat.S_ISDIR(st.st_mode),
                        f"{A} made {dn}; {node_of(o)} stat gives {st}")
            self.expect("mkdir", lst(self.p(o, dn)) == [], f"{A} made {dn}; {node_of(o)} lists {lst(self.p(o, dn))}")
        self.warm([dn])
        os.rmdir(self.p(a, dn))
        for o in self.others(a):
            self.expect("rmdir", exists_ino(self.p(o, dn)) is None, f"{A} removed {dn}; {node_of(o)} still stats it")
            self.expect("rmdir", dn not in lst(self.dirs[o]), f"{A} removed {dn}; {node_of(o)} still lists it")

    def dir_rename(self):
        G = "directory rename across directories"
        n = self.n
        os.mkdir(self.p(0, "top1"))
        os.mkdir(self.p(0, "top2"))
        os.mkdir(self.p(0, "top1/sub"))
        with open(self.p(0, "top1/sub/file"), "wb") as fo:
            fo.write(b"inside sub")
        ino_sub = os.stat(self.p(0, "top1/sub")).st_ino
        ino_t1 = os.stat(self.p(0, "top1")).st_ino
        ino_t2 = os.stat(self.p(0, "top2")).st_ino
        # Each step: (actor, old, new, top dir of new); the others check and use it.
        steps = [(0, "top1/sub", "top2/sub2", ino_t2), (1, "top2/sub2", "top1/sub3", ino_t1),
                 (n - 1, "top1/sub3", "top2/sub4", ino_t2), (1, "top2/sub4", "sub5", None)]
        files = {"file": b"inside sub"}
        cur = "top1/sub"
        for step, (a, old, new, parent_ino) in enumerate(steps):
            self.warm([cur + "/" + x for x in files] + [cur])
            for i in range(n):
                lst(self.p(i, cur))
            os.rename(self.p(a, old), self.p(a, new))
            cur = new
            for o in range(n):
                if o == a:
                    continue
                O = node_of(o)
                self.expect(G, exists_ino(self.p(o, old)) is None,
                            f"step {step}: {node_of(a)} renamed {old} -> {new}; {O} still stats {old}")
                self.expect(G, exists_ino(self.p(o, new)) == ino_sub,
                            f"step {step}: {node_of(a)} renamed {old} -> {new}; {O} stats {new} as "
                            f"ino {exists_ino(self.p(o, new))}, expected {ino_sub}")
                oldparent = os.path.dirname(old)
                newparent = os.path.dirname(new)
                lo, ln = lst(self.p(o, oldparent)), lst(self.p(o, newparent))
                self.expect(G, os.path.basename(old) not in lo,
                            f"step {step}: {O} lists {oldparent or '.'} as {lo} after the rename of {old}")
                self.expect(G, os.path.basename(new) in ln,
                            f"step {step}: {O} lists {newparent or '.'} as {ln} after the rename to {new}")
                dotdot = exists_ino(self.p(o, new + "/.."))
                want = parent_ino if parent_ino is not None else os.stat(self.dirs[o]).st_ino
                self.expect(G, dotdot == want,
                            f"step {step}: {O} stats {new}/.. as ino {dotdot}, expected {want}")
                ls = lst(self.p(o, new))
                self.expect(G, ls == sorted(files),
                            f"step {step}: {O} lists {new} as {ls}, expected {sorted(files)}")
                for name, content in files.items():
                    try:
                        with open(self.p(o, new + "/" + name), "rb") as fi:
                            c = fi.read()
                    except OSError as e:
                        c = f"error {e}"
                    self.expect(G, c == content,
                                f"step {step}: {O} reads {new}/{name} as {c!r:.40}")
            # Another node uses the moved directory: creates a file in it,
            # which every node (the actor too) then sees.
            u = (a + 1) % n
            name = f"made-by-{node_of(u)}-{step}"
            try:
                with open(self.p(u, new + "/" + name), "wb") as fo:
                    fo.write(name.encode())
                files[name] = name.encode()
            except OSError as e:
                self.expect(G, False, f"step {step}: {node_of(u)} cannot create {new}/{name}: {e}")
                continue
            for o in range(n):
                ls = lst(self.p(o, new))
                self.expect(G, ls == sorted(files),
                            f"step {step}: {node_of(u)} created {new}/{name}; {node_of(o)} lists {ls}")


# ---------------------------------------------------------------------------
# times: size and mtime merge across writers.
# ---------------------------------------------------------------------------

def check_times(paths):
    n = len(paths)
    fd = os.open(paths[0], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.close(fd)
    fds = [os.open(p, os.O_RDWR) for p in paths]
    bad_open, bad_close, bad_data, bad_ctime = [], [], [], []
    model = bytearray()
    rng = random.Random(4)
    try:
        for case in range(n):
            a, b = case, (case + 1) % n
            big_off = (case + 1) << 20
            da = rng.randbytes(1000)
            db = rng.randbytes(100)
            for fd in fds:
                os.fstat(fd)
            write_all(fds[a], da, big_off)
            time.sleep(0.05)
            t_before = coarse_ns()
            write_all(fds[b], db, 0)
            if len(model) < big_off + len(da):
                model.extend(bytes(big_off + len(da) - len(model)))
            model[big_off:big_off + len(da)] = da
            model[0:len(db)] = db
            want = len(model)
            what = (f"case {case}: {node_of(a)} wrote 1000 bytes at {big_off}, then {node_of(b)} "
                    f"100 bytes at 0")
            sts = [(os.stat(p), os.fstat(fd)) for p, fd in zip(paths, fds)]
            sizes = [(s.st_size, t.st_size) for s, t in sts]
            mtimes = [(s.st_mtime_ns, t.st_mtime_ns) for s, t in sts]
            ctimes = [(s.st_ctime_ns, t.st_ctime_ns) for s, t in sts]
            flat_m = {m for pair in mtimes for m in pair}
            flat_c = {c for pair in ctimes for c in pair}
            if any(x != want for pair in sizes for x in pair):
                bad_open.append(f"{what}: sizes (stat, fstat) per node {sizes}, expected {want}")
            if len(flat_m) != 1:
                bad_open.append(f"{what}: mtimes (stat, fstat) per node differ: {mtimes}")
            elif min(flat_m) < t_before:
                bad_open.append(f"{what}: mtime {min(flat_m)} is before the last write began ({t_before}, "
                                f"{(t_before - min(flat_m)) / 1e6:.1f} ms earlier)")
            if len(flat_c) != 1:
                bad_ctime.append(f"{what}: ctimes (stat, fstat) per node differ: {ctimes}")
            for i in range(n):
                got = pread_all(fds[i], want + 10)
                d = diff_text(bytes(model), got)
                if d:
                    bad_data.append(f"{what}: {node_of(i)} reads: {d}")
                    break
            last_m = mtimes[0][0]
        for fd in fds:
            os.close(fd)
        fds = []
        sts = [os.stat(p) for p in paths]
        after = [(s.st_size, s.st_mtime_ns) for s in sts]
        if any(x != (len(model), last_m) for x in after):
            bad_close.append(f"after every node closed: (size, mtime) per node {after}, "
                             f"expected ({len(model)}, {last_m})")
    finally:
        for fd in fds:
            os.close(fd)
    for lst_, what in ((bad_open, "size and mtime agree on every node (the later writer's mtime), file open"),
                       (bad_ctime, "ctime agrees on every node, file open"),
                       (bad_data, "contents merge (write at 1 MiB on one node, at 0 on another)"),
                       (bad_close, "size and mtime unchanged by close, on every node")):
        if lst_:
            fail(what, "; ".join(lst_[:3]))
        else:
            ok(what)


# ---------------------------------------------------------------------------
# append: O_APPEND writers on several nodes.
# ---------------------------------------------------------------------------

def record(w, i):
    body = f"w{w}:{i:06d}:"
    fill = chr(ord("a") + w) * (10 + 7 * w)
    return (body + fill + "\n").encode()


def check_append(paths, records):
    n = len(paths)
    fd = os.open(paths[0], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.close(fd)
    for p in paths:
        os.stat(p)
    go_r, go_w = os.pipe()
    pids = []
    for w, p in enumerate(paths):
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            rc = 0
            try:
                fd = os.open(p, os.O_WRONLY | os.O_APPEND)
                os.read(go_r, 1)
                for i in range(records):
                    r = record(w, i)
                    if os.write(fd, r) != len(r):
                        rc = 3
                        break
                os.close(fd)
            except OSError as e:
                print(f"     writer {w}: {e}", flush=True)
                rc = 4
            os._exit(rc)
        pids.append(pid)
    os.close(go_r)
    time.sleep(0.2)
    t0 = time.monotonic()
    os.write(go_w, b"x" * n)
    os.close(go_w)
    rcs = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    dt = time.monotonic() - t0
    what = f"{n} O_APPEND writers on {n} nodes, {records} records each"
    if any(rcs):
        fail(what, f"writer exit codes {rcs}")
        return
    want_size = sum(len(record(w, i)) for w in range(n) for i in range(records))
    info(f"{n * records} appends in {dt:.1f} s")
    for rd, p in enumerate(paths):
        with open(p, "rb") as fi:
            data = fi.read()
        problems = []
        if len(data) != want_size:
            problems.append(f"size {len(data)}, expected {want_size}")
        nexti = [0] * n
        bad = 0
        first_bad = ""
        for ln, line in enumerate(data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")):
            m = re.fullmatch(rb"w(\d):(\d{6}):([a-z]*)", line)
            ok_ = False
            if m:
                w, i = int(m.group(1)), int(m.group(2))
                if w < n and line + b"\n" == record(w, i) and i == nexti[w]:
                    nexti[w] += 1
                    ok_ = True
            if not ok_:
                bad += 1
                if not first_bad:
                    first_bad = f"line {ln}: {line[:60]!r}"
        if rd == 0:
            who = re.findall(rb"^w(\d):", data, re.M)
            switches = sum(1 for x, y in zip(who, who[1:]) if x != y)
            info(f"the writers interleave: {switches} changes of writer along the file")
        if bad:
            problems.append(f"{bad} bad, lost or out-of-order lines (first {first_bad})")
        if nexti != [records] * n:
            problems.append(f"records found in order per writer: {nexti}, expected {records} each")
        if problems:
            fail(f"{what}: read on {node_of(rd)}", "; ".join(problems))
        else:
            ok(f"{what}: every record intact, once, in order (read on {node_of(rd)})")


# ---------------------------------------------------------------------------
# locks: POSIX record locks across nodes.
# ---------------------------------------------------------------------------

FLOCK_FMT = "hhqqi4x"


def flock(typ, start=0, length=0):
    return struct.pack(FLOCK_FMT, typ, os.SEEK_SET, start, length, 0)


class Agent:
    """A child process that runs lock commands on one node's path."""

    def __init__(self, path, label):
        self.path, self.label = path, label
        self.cr, cw = os.pipe()
        rr, self.rw = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.cr)
            os.close(self.rw)
            self._serve(rr, cw)
            os._exit(0)
        os.close(rr)
        os.close(cw)

    def _serve(self, rr, cw):
        fd = None
        rf = os.fdopen(rr, "r")
        for line in rf:
            cmd = line.split()
            try:
                if cmd[0] == "open":
                    fd = os.open(self.path, os.O_RDWR)
                    res = "0"
                elif cmd[0] == "close":
                    os.close(fd)
                    fd = None
                    res = "0"
                elif cmd[0] in ("setlk", "setlkw"):
                    typ = {"wr": fcntl.F_WRLCK, "rd": fcntl.F_RDLCK, "un": fcntl.F_UNLCK}[cmd[1]]
                    op = fcntl.F_SETLK if cmd[0] == "setlk" else fcntl.F_SETLKW
                    try:
                        fcntl.fcntl(fd, op, flock(typ, int(cmd[2]), int(cmd[3])))
                        res = f"0 {time.monotonic()}"
                    except OSError as e:
                        res = f"{errno.errorcode.get(e.errno, e.errno)} {time.monotonic()}"
                elif cmd[0] == "getlk":
                    typ = {"wr": fcntl.F_WRLCK, "rd": fcntl.F_RDLCK}[cmd[1]]
                    r = fcntl.fcntl(fd, fcntl.F_GETLK, flock(typ, int(cmd[2]), int(cmd[3])))
                    t, _, st, ln, pid = struct.unpack(FLOCK_FMT, r)
                    name = {fcntl.F_WRLCK: "wr", fcntl.F_RDLCK: "rd", fcntl.F_UNLCK: "un"}.get(t, str(t))
                    res = f"{name} {st} {ln} {pid}"
                elif cmd[0] == "exit":
                    os._exit(0)
                else:
                    res = "badcmd"
            except OSError as e:
                res = f"error {e}"
            os.write(cw, (res + "\n").encode())

    def send(self, cmd):
        os.write(self.rw, (cmd + "\n").encode())

    def reply(self, timeout=30):
        buf = b""
        t_end = time.monotonic() + timeout
        while not buf.endswith(b"\n"):
            left = t_end - time.monotonic()
            if left <= 0 or not select.select([self.cr], [], [], left)[0]:
                return None
            b = os.read(self.cr, 4096)
            if not b:
                return "EOF"
            buf += b
        return buf.decode().strip()

    def ready(self, timeout=0):
        return bool(select.select([self.cr], [], [], timeout)[0])

    def do(self, cmd, timeout=30):
        self.send(cmd)
        r = self.reply(timeout)
        return r if r is not None else f"TIMEOUT after {timeout} s"

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)

    def exit(self):
        self.send("exit")
        os.waitpid(self.pid, 0)


def check_locks(paths):
    n = len(paths)
    fd = os.open(paths[0], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"x" * 1000)
    os.close(fd)
    agents = [Agent(p, node_of(i)) for i, p in enumerate(paths)]
    A, B = agents[0], agents[1]
    C = agents[2] if n > 2 else agents[1]

    def expect(what, cond, detail):
        if cond:
            ok(what)
        else:
            fail(what, detail)

    def refused(r):
        return r is not None and r.split()[0] in ("EAGAIN", "EACCES")

    try:
        for g in agents:
            g.do("open")
        for a, b in ((A, B), (B, C), (C, A)):
            tag = f"{a.label} holds a write lock"
            r = a.do("setlk wr 0 0")
            expect(f"{a.label}: F_SETLK write lock on the whole file", r.startswith("0"), r)
            r = b.do("setlk wr 0 0")
            expect(f"{tag}: F_SETLK write lock from {b.label} fails with EAGAIN/EACCES", refused(r), r)
            r = b.do("setlk rd 10 5")
            expect(f"{tag}: F_SETLK read lock from {b.label} fails with EAGAIN/EACCES", refused(r), r)
            r = b.do("getlk wr 0 0")
            expect(f"{tag}: F_GETLK on {b.label} reports the conflicting write lock",
                   r.split()[0] == "wr", r)
            r = a.do("setlk un 0 0")
            expect(f"{a.label}: unlock", r.startswith("0"), r)
            r = b.do("getlk wr 0 0")
            expect(f"after {a.label} unlocked: F_GETLK on {b.label} reports no lock", r.split()[0] == "un", r)
            r = b.do("setlk wr 0 0")
            expect(f"after {a.label} unlocked: {b.label} gets the write lock", r.startswith("0"), r)
            b.do("setlk un 0 0")
        # byte ranges
        r = A.do("setlk wr 0 100")
        r2 = B.do("setlk wr 100 100")
        expect("write locks on disjoint ranges ([0,100) on node1, [100,200) on node2) both granted",
               r.startswith("0") and r2.startswith("0"), f"{r} / {r2}")
        r = C.do("setlk wr 50 100")
        expect(f"a write lock on [50,150) from {C.label} overlapping both is refused", refused(r), r)
        r = C.do("getlk wr 150 10")
        expect(f"F_GETLK on [150,160) from {C.label} reports node2's range",
               r.split()[0] == "wr" and r.split()[1] == "100" and r.split()[2] == "100", r)
        r = C.do("setlk wr 200 0")
        expect(f"a write lock on [200,EOF) from {C.label} is granted", r.startswith("0"), r)
        for g in agents:
            g.do("setlk un 0 0")
        # read locks share
        r = [g.do("setlk rd 0 0") for g in (A, B)]
        expect("read locks on node1 and node2 are both granted", all(x.startswith("0") for x in r), str(r))
        r = C.do("setlk wr 0 0")
        expect(f"a write lock from {C.label} is refused while they hold read locks", refused(r), r)
        A.do("setlk un 0 0")
        r = C.do("setlk wr 0 0")
        expect(f"... still refused when only node2 holds its read lock", refused(r), r)
        B.do("setlk un 0 0")
        r = C.do("setlk wr 0 0")
        expect(f"... granted once both unlocked", r.startswith("0"), r)
        C.do("setlk un 0 0")
        # close releases
        A.do("setlk wr 0 0")
        A.do("close")
        r = B.do("setlk wr 0 0")
        expect("after node1 closes its descriptor, node2 gets the write lock at once", r.startswith("0"), r)
        B.do("setlk un 0 0")
        A.do("open")
        # blocking waits: released by unlock, by close, by the holder's exit
        for how in ("unlock", "close", "exit"):
            holder, waiter = (A, B) if how != "close" else (C, A)
            r = holder.do("setlk wr 0 0")
            waiter.send("setlkw wr 0 0")
            time.sleep(1.0)
            early = waiter.ready()
            t_rel = time.monotonic()
            if how == "unlock":
                holder.do("setlk un 0 0")
            elif how == "close":
                holder.do("close")
            else:
                holder.kill()
            r = waiter.reply(20)
            what = (f"F_SETLKW on {waiter.label} waits while {holder.label} holds the lock and "
                    f"returns after {holder.label}'s {how}")
            if early:
                fail(what, f"F_SETLKW returned before the release: {r}")
            elif r is None:
                fail(what, "F_SETLKW still blocked 20 s after the release")
            else:
                parts = r.split()
                t_acq = float(parts[1]) if len(parts) > 1 else 0
                if parts[0] != "0":
                    fail(what, f"F_SETLKW failed: {r}")
                elif t_acq < t_rel:
                    fail(what, f"returned at {t_acq:.3f}, before the release at {t_rel:.3f}")
                else:
                    ok(f"{what} ({(t_acq - t_rel) * 1000:.0f} ms after the release began)")
            waiter.do("setlk un 0 0")
            if how == "close":
                holder.do("open")
            if how == "exit":
                A = agents[0] = Agent(paths[0], node_of(0))
                A.do("open")
    finally:
        for g in agents:
            try:
                g.kill()
            except ChildProcessError:
                pass


def check_lockcount(paths, rounds, procs, reopen):
    n = len(paths)
    fd = os.open(paths[0], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    write_all(fd, b"%15d\n" % 0, 0)
    os.close(fd)
    go_r, go_w = os.pipe()
    children = []
    for w in range(n * procs):
        p = paths[w % n]
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            os.close(rfd)
            seen = []
            err = ""
            try:
                fd = os.open(p, os.O_RDWR)
                os.read(go_r, 1)
                for _ in range(rounds):
                    if reopen:
                        os.close(fd)
                        fd = os.open(p, os.O_RDWR)
                    fcntl.lockf(fd, fcntl.LOCK_EX)
                    v = int(os.pread(fd, 16, 0))
                    write_all(fd, b"%15d\n" % (v + 1), 0)
                    seen.append(v + 1)
                    fcntl.lockf(fd, fcntl.LOCK_UN)
                os.close(fd)
            except (OSError, ValueError) as e:
                err = f"{type(e).__name__}: {e}"
            out = (" ".join(map(str, seen)) + "|" + err).encode()
            while out:
                k = os.write(wfd, out)
                out = out[k:]
            os._exit(0)
        os.close(wfd)
        children.append((pid, rfd))
    os.close(go_r)
    time.sleep(0.3)
    t0 = time.monotonic()
    os.write(go_w, b"x" * (n * procs))
    os.close(go_w)
    values, errs = [], []
    for pid, rfd in children:
        buf = b""
        while True:
            b = os.read(rfd, 1 << 16)
            if not b:
                break
            buf += b
        os.close(rfd)
        os.waitpid(pid, 0)
        s, e = buf.decode().split("|", 1)
        values += [int(x) for x in s.split()]
        if e:
            errs.append(e)
    dt = time.monotonic() - t0
    total = n * procs * rounds
    info(f"{n * procs} processes x {rounds} locked increments in {dt:.1f} s")
    what = (f"lock counter: {n * procs} processes on {n} nodes, {rounds} locked increments each"
            + (", each opening and closing the file" if reopen else ""))
    finals = []
    for p in paths:
        with open(p, "rb") as fi:
            finals.append(fi.read().strip().decode())
    if errs:
        fail(what, f"errors in workers: {errs[:3]}")
    dup = len(values) - len(set(values))
    if finals != [str(total)] * n or sorted(values) != list(range(1, total + 1)):
        fail(what, f"final counter per node {finals}, expected {total}; {len(values)} increments done, "
             f"{dup} values written twice (a lost update)")
    else:
        ok(f"{what}: final counter {total} on every node, every value written once")


def check_statloop(path, stats, reads):
    os.stat(path)
    with open(path, "rb") as fi:
        want = fi.read()
    t0 = time.monotonic()
    for _ in range(stats):
        os.stat(path)
    t1 = time.monotonic()
    bad = 0
    for _ in range(reads):
        with open(path, "rb") as fi:
            if fi.read() != want:
                bad += 1
    t2 = time.monotonic()
    info(f"{stats} stats in {t1 - t0:.2f} s, {reads} re-reads of {len(want)} bytes in {t2 - t1:.2f} s")
    if bad:
        fail(f"re-reads of {path} return the same bytes", f"{bad} of {reads} differ")
    else:
        ok(f"{stats} stats and {reads} re-reads of {path} (the same bytes each time)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("check", choices=["open-rw", "after-close", "torn", "meta", "times", "append",
                                      "locks", "lockcount", "statloop"])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--mode", choices=["buffered", "direct", "mmap"], default="buffered")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--reopen", action="store_true")
    ap.add_argument("--stats", type=int, default=10000)
    ap.add_argument("--reads", type=int, default=100)
    a = ap.parse_args()
    c = a.check
    try:
        if c == "open-rw":
            check_open_rw(a.paths, a.mode, a.rounds, a.seed)
        elif c == "after-close":
            check_after_close(a.paths, a.mode, a.rounds, a.seed)
        elif c == "torn":
            check_torn(a.paths, a.seconds, a.procs)
        elif c == "meta":
            MetaCheck(a.paths).run()
        elif c == "times":
            check_times(a.paths)
        elif c == "append":
            check_append(a.paths, a.records)
        elif c == "locks":
            check_locks(a.paths)
        elif c == "lockcount":
            check_lockcount(a.paths, a.rounds, a.procs, a.reopen)
        elif c == "statloop":
            check_statloop(a.paths[0], a.stats, a.reads)
    except OSError as e:
        fail(f"{c}", f"unexpected error: {e!r}")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
