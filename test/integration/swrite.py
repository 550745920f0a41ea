#!/usr/bin/env python3
"""Several nodes writing one file at once: with O_DIRECT (t_swrite.sh) or
buffered, by byte-range tokens (t_rwrite.sh).

The file is cut into chunks; writer I of N owns the chunks k with
k % N == I and writes each of them, in a shuffled order, once per pass,
with bytes that depend only on (seed, pass, chunk).  The model is the last
pass's bytes of every chunk (and, past the laid-out part, chunks written
beyond the end of the file).

  swrite.py layout PATH SIZE SEED         write SIZE bytes, fsync
  swrite.py writer PATH I N CHUNK FROM TO PASSES SEED
                                          O_DIRECT writes of the owned chunks
                                          of bytes [FROM, TO); prints the count
  swrite.py bwriter PATH I N CHUNK FROM TO PASSES SEED
                                          the same with buffered writes (any
                                          CHUNK), fsync at the end
  swrite.py model SIZE CHUNK FROM TO PASSES SEED [LAYOUT_SEED]
                                          the sha256 the file must have
  swrite.py sha PATH                      sha256 of the file, read with O_DIRECT
  swrite.py bsha PATH                     the same, buffered reads of 1 MiB
  swrite.py areader PATH CHUNK FROM TO PASSES SEED LAYOUT_SEED SECONDS
                                          buffered reads of whole chunks for
                                          SECONDS: each holds one pass's bytes
                                          (or the layout's), never a mix;
                                          prints the count
  swrite.py flip PATH OFF LEN SECONDS     buffered writes of LEN bytes at OFF
                                          for SECONDS, each all one byte value,
                                          a new value each time; prints the count
  swrite.py flipread PATH OFF LEN SECONDS reads of those LEN bytes for SECONDS:
                                          each all one value, never a mix (one
                                          node's own reads and writes); prints
                                          the count
"""
import hashlib
import mmap
import os
import random
import sys


def chunk_bytes(seed, pas, k, n):
    return random.Random(seed * 1000003 + pas * 10007 + k).randbytes(n)


def layout_bytes(seed, size):
    return random.Random(seed).randbytes(size)


def cmd_layout(path, size, seed):
    with open(path, "wb") as f:
        f.write(layout_bytes(seed, size))
        f.flush()
        os.fsync(f.fileno())


def cmd_writer(path, me, n, chunk, lo, hi, passes, seed, direct=True):
    fd = os.open(path, os.O_WRONLY | (os.O_DIRECT if direct else 0))
    buf = mmap.mmap(-1, chunk)          # page-aligned, as O_DIRECT wants
    mine = [k for k in range(lo // chunk, hi // chunk) if k % n == me]
    rnd = random.Random(seed * 31 + me)
    writes = 0
    for pas in range(passes):
        rnd.shuffle(mine)
        for k in mine:
            buf.seek(0)
            buf.write(chunk_bytes(seed, pas, k, chunk))
            done = os.pwritev(fd, [buf], k * chunk)
            if done != chunk:
                print(f"short write at chunk {k}: {done}", file=sys.stderr)
                sys.exit(1)
            writes += 1
    if not direct:
        os.fsync(fd)
    os.close(fd)
    print(writes)


def cmd_model(size, chunk, lo, hi, passes, seed, layout_seed):
    data = bytearray(layout_bytes(layout_seed, size) if layout_seed is not None else b"\0" * size)
    if hi > len(data):
        data.extend(b"\0" * (hi - len(data)))
    for k in range(lo // chunk, hi // chunk):
        data[k * chunk:(k + 1) * chunk] = chunk_bytes(seed, passes - 1, k, chunk)
    print(hashlib.sha256(data).hexdigest())


def cmd_sha(path, direct=True):
    h = hashlib.sha256()
    size = os.stat(path).st_size
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    buf = mmap.mmap(-1, 1 << 20)
    off = 0
    while off < size:
        got = os.preadv(fd, [buf], off)
        if got <= 0:
            break
        h.update(buf[:min(got, size - off)])
        off += got
    os.close(fd)
    print(h.hexdigest())


def for_seconds(path, flags, seconds, step):
    """Call step(fd, count) on PATH opened with FLAGS for SECONDS; print the count."""
    import time
    fd = os.open(path, flags)
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        step(fd, count)
        count += 1
    os.close(fd)
    print(count)


def cmd_areader(path, chunk, lo, hi, passes, seed, layout_seed, seconds):
    lay = layout_bytes(layout_seed, hi)
    rnd = random.Random(seed)

    def step(fd, _):
        k = rnd.randrange(lo // chunk, hi // chunk)
        got = os.pread(fd, chunk, k * chunk)
        if got != lay[k * chunk:(k + 1) * chunk] and \
                not any(got == chunk_bytes(seed, p, k, chunk) for p in range(passes)):
            print(f"chunk {k} read torn (mixes two writes)", file=sys.stderr)
            sys.exit(1)
    for_seconds(path, os.O_RDONLY, seconds, step)


def cmd_flip(path, off, n, seconds):
    def step(fd, count):
        if os.pwrite(fd, bytes([count % 251 + 1]) * n, off) != n:
            print("short write", file=sys.stderr)
            sys.exit(1)
    for_seconds(path, os.O_WRONLY, seconds, step)


def cmd_flipread(path, off, n, seconds):
    def step(fd, count):
        got = os.pread(fd, n, off)
        if len(got) != n or got.count(got[0]) != n:
            i = next((i for i in range(len(got)) if got[i] != got[0]), len(got))
            print(f"read {count} mixes two writes: byte {got[0]} up to {i}, then "
                  f"{got[i] if i < len(got) else 'nothing'} ({len(got)} bytes)", file=sys.stderr)
            sys.exit(1)
    for_seconds(path, os.O_RDONLY, seconds, step)


def main():
    a = sys.argv[1:]
    if a[0] == "layout":
        cmd_layout(a[1], int(a[2]), int(a[3]))
    elif a[0] == "writer":
        cmd_writer(a[1], *map(int, a[2:9]))
    elif a[0] == "model":
        cmd_model(*map(int, a[1:7]), int(a[7]) if len(a) > 7 else None)
    elif a[0] == "bwriter":
        cmd_writer(a[1], *map(int, a[2:9]), direct=False)
    elif a[0] == "sha":
        cmd_sha(a[1])
    elif a[0] == "flip":
        cmd_flip(a[1], *map(int, a[2:5]))
    elif a[0] == "flipread":
        cmd_flipread(a[1], *map(int, a[2:5]))
    elif a[0] == "areader":
        cmd_areader(a[1], *map(int, a[2:9]))
    elif a[0] == "bsha":
        cmd_sha(a[1], direct=False)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
