#!/usr/bin/env python3
"""member_load.py: a verified workload for the membership tests.

Usage:
  member_load.py run --dir DIR --tag T --seconds S --out FILE [--procs P]
      P processes (default 2) loop for S seconds in DIR (a directory on one
      node's mount): create a file of random size (1-64 KiB) under a name of
      their own, write it, fsync it, close it, and record its name and
      SHA-256 in FILE (one JSON line per acknowledged file); every fourth
      round they read back a file acknowledged earlier and compare.  Every
      error is counted; the longest single operation is measured.  Prints
      "ok"/"FAIL" lines and the figures.
  member_load.py verify --dir DIR --ack FILE...
      every file recorded in the FILEs reads back, through DIR (maybe
      another node's mount), with its recorded content.
"""
import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import sys
import time


def worker(d, tag, k, seconds, q):
    rnd = random.Random(f"{tag}.{k}.{os.getpid()}")
    acked, errors, longest, n = [], [], 0.0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        name = f"{tag}.{k}.{n}"
        data = rnd.randbytes(rnd.randint(1, 64) * 1024)
        t0 = time.monotonic()
        try:
            fd = os.open(os.path.join(d, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            acked.append((name, hashlib.sha256(data).hexdigest(), len(data)))
        except OSError as e:
            errors.append(f"{name}: {e}")
        longest = max(longest, time.monotonic() - t0)
        if n % 4 == 3 and acked:
            old = rnd.choice(acked)
            t0 = time.monotonic()
            try:
                with open(os.path.join(d, old[0]), "rb") as f:
                    got = f.read()
                if hashlib.sha256(got).hexdigest() != old[1]:
                    errors.append(f"{old[0]}: read back {len(got)} bytes, not what was written")
            except OSError as e:
                errors.append(f"{old[0]}: read back: {e}")
            longest = max(longest, time.monotonic() - t0)
        n += 1
    q.put((acked, errors, longest))


def run(a):
    os.makedirs(a.dir, exist_ok=True)
    q = mp.Queue()
    procs = [mp.Process(target=worker, args=(a.dir, a.tag, k, a.seconds, q)) for k in range(a.procs)]
    for p in procs:
        p.start()
    res = [q.get() for _ in procs]
    for p in procs:
        p.join()
    acked = [x for r in res for x in r[0]]
    errors = [x for r in res for x in r[1]]
    longest = max(r[2] for r in res)
    with open(a.out, "w") as f:
        for name, digest, size in acked:
            f.write(json.dumps({"name": name, "sha256": digest, "size": size}) + "\n")
    if errors:
        print(f"FAIL {a.tag}: {len(errors)} error(s) in {len(acked)} acknowledged files; first: {errors[0]}")
    else:
        print(f"ok   {a.tag}: {len(acked)} files written, fsync'ed and read back with no error")
    print(f"    {a.tag}: longest single operation {longest * 1000:.0f} ms")
    return 1 if errors else 0


def verify(a):
    bad, n = [], 0
    for ack in a.ack:
        for line in open(ack):
            r = json.loads(line)
            n += 1
            try:
                with open(os.path.join(a.dir, r["name"]), "rb") as f:
                    got = f.read()
                if hashlib.sha256(got).hexdigest() != r["sha256"]:
                    bad.append(f"{r['name']}: {len(got)} bytes, want {r['size']} as written")
            except OSError as e:
                bad.append(f"{r['name']}: {e}")
    if bad:
        print(f"FAIL {len(bad)} of {n} acknowledged files differ through {a.dir}; first: {bad[0]}")
        return 1
    print(f"ok   all {n} acknowledged files read back right through {a.dir}")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dir", required=True)
    r.add_argument("--tag", required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--procs", type=int, default=2)
    v = sub.add_parser("verify")
    v.add_argument("--dir", required=True)
    v.add_argument("--ack", nargs="+", required=True)
    a = ap.parse_args()
    return run(a) if a.cmd == "run" else verify(a)


if __name__ == "__main__":
    sys.exit(main())
