#!/usr/bin/env python3
"""metabench.py: time metadata operations on empty files in a directory.

  metabench.py DIR N NDIRS

Creates N empty files (O_CREAT|O_EXCL, close), stats them all, renames each
within its directory, and unlinks them, the files spread over NDIRS
subdirectories of DIR (NDIRS=1: one directory holds all N).  Prints one JSON
object: {"create": ops/s, "stat": ops/s, "rename": ops/s, "unlink": ops/s}.
The directories are created before and removed after the timed phases.
"""
import json
import os
import sys
import time


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    root, n, ndirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    dirs = [os.path.join(root, f"d{i:03d}") for i in range(ndirs)]
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    paths = [os.path.join(dirs[i % ndirs], f"file{i:07d}") for i in range(n)]
    renamed = [p + ".r" for p in paths]
    rates = {}

    t0 = time.perf_counter()
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    for p in paths:
        os.close(os.open(p, flags, 0o644))
    rates["create"] = n / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for p in paths:
        os.lstat(p)
    rates["stat"] = n / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for p, q in zip(paths, renamed):
        os.rename(p, q)
    rates["rename"] = n / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for q in renamed:
        os.unlink(q)
    rates["unlink"] = n / (time.perf_counter() - t0)

    for d in dirs:
        os.rmdir(d)
    print(json.dumps({k: round(v, 1) for k, v in rates.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
