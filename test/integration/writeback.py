#!/usr/bin/env python3
"""writeback.py: the file I/O of t_writeback.sh (a client node's data cache).

  write PATH SIZE SEED --end fsync|close|open FLAG
      write SIZE pseudo-random bytes (SEED) in chunks of random sizes (1 B
      to 1 MiB), then fsync (and stay), close, or stay open; print the
      data's sha256 and create FLAG; with fsync/open, stay until FLAG is
      removed (at most 60 s), then close
  sha PATH
      print the sha256 of the file
  model PATH LOCAL OPS SEED
      OPS random operations (pwrite and pread of 1 B to 256 KiB at random
      offsets of a 6 MiB window, sequential runs, an append, a truncate,
      fsync) on PATH and on a local file LOCAL alike: every read must
      return the local file's bytes; prints "ok ..." or "FAIL ..." lines
"""
import hashlib
import os
import random
import sys
import time


def data_of(size, seed):
    r = random.Random(seed)
    return r.randbytes(size)


def cmd_write(path, size, seed, end, flag):
    data = data_of(size, seed)
    r = random.Random(seed + 1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    pos = 0
    while pos < size:
        n = min(size - pos, r.randint(1, 1 << 20))
        os.write(fd, data[pos:pos + n])
        pos += n
    if end == "fsync":
        os.fsync(fd)
    if end == "close":
        os.close(fd)
    print(hashlib.sha256(data).hexdigest(), flush=True)
    with open(flag, "w"):
        pass
    if end != "close":
        t = time.monotonic() + 60
        while os.path.exists(flag) and time.monotonic() < t:
            time.sleep(0.05)
        os.close(fd)


def cmd_sha(path):
    with open(path, "rb") as f:
        print(hashlib.sha256(f.read()).hexdigest())


def cmd_model(path, local, ops, seed):
    r = random.Random(seed)
    window = 6 << 20
    fa = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    fb = os.open(local, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    bad = 0
    reads = 0
    seq = 0
    for i in range(ops):
        k = r.random()
        if k < 0.40:
            off = seq if r.random() < 0.3 else r.randrange(window)
            n = r.choice([1, 17, 512, 4096, 4096, 65536, 131072, r.randint(1, 262144)])
            buf = r.randbytes(n)
            os.pwrite(fa, buf, off)
            os.pwrite(fb, buf, off)
            seq = off + n
        elif k < 0.85:
            off = seq if r.random() < 0.3 else r.randrange(window + 65536)
            n = r.choice([1, 4096, 65536, 131072, r.randint(1, 262144)])
            a = os.pread(fa, n, off)
            b = os.pread(fb, n, off)
            reads += 1
            seq = off + n
            if a != b:
                bad += 1
                if bad <= 5:
                    print("FAIL op %d: pread(%d, %d) differs from the local file "
                          "(%d vs %d bytes)" % (i, off, n, len(a), len(b)))
        elif k < 0.90:
            buf = r.randbytes(r.randint(1, 10000))
            for fd in (fa, fb):
                os.lseek(fd, 0, os.SEEK_END)
                os.write(fd, buf)
        elif k < 0.93:
            size = r.randrange(window)
            os.ftruncate(fa, size)
            os.ftruncate(fb, size)
        elif k < 0.96:
            os.fsync(fa)
        else:
            if os.fstat(fa).st_size != os.fstat(fb).st_size:
                bad += 1
                print("FAIL op %d: size %d, local %d" % (i, os.fstat(fa).st_size,
                                                          os.fstat(fb).st_size))
    os.fsync(fa)
    size = os.fstat(fb).st_size
    a = os.pread(fa, size + 1, 0)
    b = os.pread(fb, size + 1, 0)
    os.close(fa)
    os.close(fb)
    ok = bad == 0
    print("%s %d mixed operations (%d reads) match a local file" % ("ok  " if ok else "FAIL",
                                                                  ops, reads))
    print("%s the whole file (%d bytes) matches at the end" % ("ok  " if a == b else "FAIL",
                                                               size))
    with open(path, "rb") as f:
        c = f.read()
    print("%s a new open reads the same" % ("ok  " if c == b else "FAIL"))


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == "write" and len(a) == 7 and a[4] == "--end":
        return cmd_write(a[1], int(a[2]), int(a[3]), a[5], a[6])
    if a[0] == "sha" and len(a) == 2:
        return cmd_sha(a[1])
    if a[0] == "model" and len(a) == 5:
        return cmd_model(a[1], a[2], int(a[3]), int(a[4]))
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
