#!/usr/bin/env python3
"""A file-data exerciser in the manner of fsx: random operations on one
file, through one or several mounts of it (the nodes of a cluster), each
checked against a model of the file's bytes.

  fsx.py [--ops N] [--seed S] [--maxlen L] [--size MAX] [--no-mmap] FILE [FILE ...]

Every FILE is the same file seen through another mount (node); each
operation picks one of them at random, so what one node wrote the next
operation may read on another.  Operations: buffered write, read, O_DIRECT
read and write of whole blocks, truncate (up and down), fallocate (allocate, keep
size, punch a hole, zero a range), copy_file_range within the file, read
and write through a shared map, fsync; the size is checked after each.  A
mismatch prints the operation log's tail and the first differing byte,
and exits 1.  Prints "N ops" at the end.
"""
import argparse
import ctypes
import errno
import mmap
import os
import random
import sys

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
BS = 4096

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Fsx:
    def __init__(self, paths, args):
        self.paths = paths
        self.rnd = random.Random(args.seed)
        self.maxlen = args.maxlen
        self.maxsize = args.size
        self.mmap = not args.no_mmap
        self.model = bytearray()
        self.log = []
        for p in paths[:1]:
            with open(p, "wb"):
                pass
        self.fds = [os.open(p, os.O_RDWR) for p in paths]

    def fail(self, what):
        print(f"fsx: {what}", file=sys.stderr)
        print("fsx: the last operations:", file=sys.stderr)
        for line in self.log[-20:]:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)

    def compare(self, got, off, what):
        want = bytes(self.model[off:off + len(got)])
        if got != want:
            i = next(i for i in range(len(got)) if got[i] != want[i])
            self.fail(f"{what}: byte {off + i} is {got[i]:#x}, the model has {want[i]:#x} "
                      f"(read {len(got)} bytes at {off}, size {len(self.model)})")

    def pick(self):
        n = self.rnd.randrange(len(self.fds))
        return n, self.fds[n]

    def span(self, limit=None):
        """An offset below LIMIT (the largest size) and a length, within the largest size
        when no LIMIT is given."""
        off = self.rnd.randrange(max(1, self.maxsize if limit is None else limit))
        length = self.rnd.randrange(1, self.maxlen + 1)
        if limit is None:
            length = max(1, min(length, self.maxsize - off))
        return off, length

    def op_write(self, fd):
        off, length = self.span()
        data = self.rnd.randbytes(length)
        self.log.append(f"write {off}+{length}")
        if os.pwrite(fd, data, off) != length:
            self.fail("short write")
        if off > len(self.model):
            self.model.extend(b"\0" * (off - len(self.model)))
        self.model[off:off + length] = data

    def op_read(self, fd):
        off, length = self.span(len(self.model) + self.maxlen)
        self.log.append(f"read {off}+{length}")
        got = os.pread(fd, length, off)
        want = max(0, min(length, len(self.model) - off))
        if len(got) != want:
            self.fail(f"read {off}+{length} gave {len(got)} bytes, the model {want}")
        self.compare(got, off, "read")

    def op_dread(self, n):
        if not self.model:
            return
        blocks = (len(self.model) + BS - 1) // BS
        b = self.rnd.randrange(blocks)
        nb = self.rnd.randrange(1, min(blocks - b, 16) + 1)
        self.log.append(f"direct read blocks {b}+{nb}")
        fd = os.open(self.paths[n], os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, nb * BS)
        try:
            got = os.preadv(fd, [buf], b * BS)
        finally:
            os.close(fd)
        want = max(0, min(nb * BS, len(self.model) - b * BS))
        if got != want:
            self.fail(f"direct read of blocks {b}+{nb} gave {got} bytes, the model {want}")
        self.compare(bytes(buf[:got]), b * BS, "direct read")

    def op_dwrite(self, n):
        b = self.rnd.randrange(self.maxsize // BS)
        nb = self.rnd.randrange(1, min(self.maxsize // BS - b, 16) + 1)
        data = self.rnd.randbytes(nb * BS)
        self.log.append(f"direct write blocks {b}+{nb}")
        fd = os.open(self.paths[n], os.O_WRONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, nb * BS)
        buf[:] = data
        try:
            done = os.pwritev(fd, [buf], b * BS)
        finally:
            os.close(fd)
        if done != nb * BS:
            self.fail(f"direct write of blocks {b}+{nb} wrote {done} bytes")
        off = b * BS
        if off > len(self.model):
            self.model.extend(b"\0" * (off - len(self.model)))
        self.model[off:off + nb * BS] = data

    def op_truncate(self, fd):
        size = self.rnd.randrange(self.maxsize + 1)
        if self.rnd.random() < 0.5:
            size = self.rnd.randrange(len(self.model) + 1)
        self.log.append(f"truncate {size}")
        os.ftruncate(fd, size)
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(b"\0" * (size - len(self.model)))

    def op_fallocate(self, fd):
        off, length = self.span()
        mode = self.rnd.choice([0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE])
        self.log.append(f"fallocate mode {mode:#x} {off}+{length}")
        try:
            fallocate(fd, mode, off, length)
        except OSError as e:
            if e.errno == errno.EOPNOTSUPP:
                self.log[-1] += " (not supported)"
                return
            self.fail(f"fallocate mode {mode:#x} {off}+{length}: {e}")
        end = off + length
        if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
            upto = min(end, len(self.model))
            if off < upto:
                self.model[off:upto] = b"\0" * (upto - off)
        if not mode & FALLOC_FL_KEEP_SIZE and end > len(self.model):
            self.model.extend(b"\0" * (end - len(self.model)))

    def op_copy(self, fd):
        if len(self.model) < 2:
            return
        src = self.rnd.randrange(len(self.model))
        length = self.rnd.randrange(1, min(self.maxlen, len(self.model) - src) + 1)
        dst = self.rnd.randrange(self.maxsize - length + 1)
        if src < dst + length and dst < src + length:
            return  # overlapping ranges of one file are EINVAL
        self.log.append(f"copy_file_range {src}+{length} -> {dst}")
        # The kernel cuts the copy at the size it last saw, which another
        # node's write may have moved; a stat tells it (docs/ARCHITECTURE.md,
        # "FUSE").
        os.fstat(fd)
        done = 0
        while done < length:
            got = os.copy_file_range(fd, fd, length - done, src + done, dst + done)
            if got <= 0:
                self.fail(f"copy_file_range stopped after {done} of {length} bytes")
            done += got
        data = bytes(self.model[src:src + length])
        if dst > len(self.model):
            self.model.extend(b"\0" * (dst - len(self.model)))
        self.model[dst:dst + length] = data

    def op_mapread(self, fd):
        if not self.model:
            return
        off, length = self.span(len(self.model))
        length = min(length, len(self.model) - off)
        self.log.append(f"map read {off}+{length}")
        base = off - off % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(fd, off + length - base, mmap.MAP_SHARED, mmap.PROT_READ,
                       offset=base) as m:
            got = m[off - base:off - base + length]
        self.compare(got, off, "map read")

    def op_mapwrite(self, fd):
        if not self.model:
            return
        off, length = self.span(len(self.model))
        length = min(length, len(self.model) - off)
        data = self.rnd.randbytes(length)
        self.log.append(f"map write {off}+{length}")
        base = off - off % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(fd, off + length - base, mmap.MAP_SHARED,
                       mmap.PROT_READ | mmap.PROT_WRITE, offset=base) as m:
            m[off - base:off - base + length] = data
            m.flush()
        self.model[off:off + length] = data

    def run(self, ops):
        table = [(self.op_write, 30), (self.op_read, 25), (self.op_truncate, 6),
                 (self.op_fallocate, 8), (self.op_copy, 5), (None, 6)]
        if self.mmap:
            table += [(self.op_mapread, 6), (self.op_mapwrite, 6)]
        funcs = [f for f, w in table for _ in range(w)]
        for i in range(ops):
            n, fd = self.pick()
            f = self.rnd.choice(funcs)
            self.log.append(f"#{i} node {n + 1}:")
            if f is None:
                r = self.rnd.random()
                if r < 0.35:
                    self.op_dread(n)
                elif r < 0.7:
                    self.op_dwrite(n)
                else:
                    self.log.append("fsync")
                    os.fsync(fd)
            else:
                f(fd)
            st = os.fstat(self.fds[self.rnd.randrange(len(self.fds))])
            if st.st_size != len(self.model):
                self.fail(f"size is {st.st_size}, the model has {len(self.model)}")
        for n, fd in enumerate(self.fds):
            self.log.append(f"final read, node {n + 1}")
            os.fsync(fd)
            got = os.pread(fd, len(self.model) + 1, 0)
            if len(got) != len(self.model):
                self.fail(f"node {n + 1} reads {len(got)} bytes at the end, the model has "
                          f"{len(self.model)}")
            self.compare(got, 0, f"final read on node {n + 1}")
        for fd in self.fds:
            os.close(fd)
        print(f"{ops} ops")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--maxlen", type=int, default=65536)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--no-mmap", action="store_true")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    Fsx(args.files, args).run(args.ops)


if __name__ == "__main__":
    main()
