#!/usr/bin/env python3
"""relocbench.py: helpers of bench/relocate.sh.

  relocbench.py populate DIR N     N empty files in DIR/dNNNN, 1,000 a directory
  relocbench.py warm DIR           stat every file under DIR (the node caches them)
  relocbench.py probe MNT TAG STOP until STOP exists: stat, 1-byte pwrite and
                                   read of MNT/probe.TAG; prints one JSON line
                                   {"ops", "errors", "max_ms"} (the longest op)
"""
import json
import os
import sys
import time


def populate(d, n):
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        sub = os.path.join(d, "d%04d" % (i // 1000))
        if i % 1000 == 0:
            os.makedirs(sub, exist_ok=True)
        os.close(os.open(os.path.join(sub, "f%d" % i), os.O_CREAT | os.O_WRONLY, 0o644))


def warm(d):
    for root, dirs, files in os.walk(d):
        for f in files:
            os.stat(os.path.join(root, f))


def probe(mnt, tag, stop):
    path = os.path.join(mnt, "probe." + tag)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    ops = errors = 0
    worst = 0.0
    while not os.path.exists(stop):
        t = time.monotonic()
        try:
            os.stat(path)
            os.pwrite(fd, b"x", ops % 4096)
            os.pread(fd, 1, ops % 4096)
        except OSError:
            errors += 1
        worst = max(worst, time.monotonic() - t)
        ops += 1
        time.sleep(0.001)
    os.close(fd)
    print(json.dumps({"ops": ops, "errors": errors, "max_ms": worst * 1000}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "populate":
        populate(sys.argv[2], int(sys.argv[3]))
    elif cmd == "warm":
        warm(sys.argv[2])
    elif cmd == "probe":
        probe(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("relocbench.py: unknown command " + cmd)
