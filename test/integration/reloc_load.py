#!/usr/bin/env python3
"""reloc_load.py: a mixed workload on one node's mount that checks every byte,
for the relocation tests (t_relocate.sh).

    reloc_load.py --mnt MNT --tag TAG --stop FILE [--seed N]

Until FILE exists it loops over: create a file of random bytes (written in
pieces, sometimes fsync'ed) and read it back; rename one of its own files
(also over another) and read it under the new name; append a record to the
shared O_APPEND log; increment the shared counter under a POSIX lock; stat
and list its directory; unlink a file.  Every failure of a system call and
every wrong byte is an error.  At the end it prints one JSON line:
{"tag":..., "ops":..., "errors":..., "first_errors":[...], "appends":N,
 "increments":N} and exits 0 (the caller judges).
"""
import argparse
import errno
import fcntl
import hashlib
import json
import os
import random
import struct
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnt", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--stop", required=True)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    mydir = os.path.join(a.mnt, "load", a.tag)
    os.makedirs(mydir, exist_ok=True)
    applog = os.path.join(a.mnt, "load", "append.log")
    counter = os.path.join(a.mnt, "load", "counter")
    files = {}      # name -> sha256 of its content
    ops = errors = appends = increments = 0
    first = []
    serial = 0

    def err(what):
        nonlocal errors
        errors += 1
        if len(first) < 20:
            first.append("%s %.3f: %s" % (a.tag, time.time(), what))

    def content_ok(path, want):
        with open(path, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != want:
            err("wrong bytes in %s" % path)

    while not os.path.exists(a.stop):
        op = rnd.random()
        ops += 1
        kind = "?"
        try:
            if op < 0.30 or not files:
                kind = "create"

                serial += 1
                name = "f%06d" % serial
                size = rnd.choice([0, 1, 100, 4096, 65536, 200000])
                data = rnd.randbytes(size)
                path = os.path.join(mydir, name)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    off = 0
                    while off < size:
                        n = min(size - off, rnd.choice([1000, 4096, 65536]))
                        if os.pwrite(fd, data[off:off + n], off) != n:
                            err("short write to %s" % path)
                        off += n
                    if rnd.random() < 0.2:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                files[name] = hashlib.sha256(data).hexdigest()
                content_ok(path, files[name])
            elif op < 0.45:
                kind = "rename"
                old = rnd.choice(list(files))
                serial += 1
                new = rnd.choice(list(files)) if rnd.random() < 0.2 else "r%06d" % serial
                os.rename(os.path.join(mydir, old), os.path.join(mydir, new))
                files[new] = files.pop(old)
                content_ok(os.path.join(mydir, new), files[new])
            elif op < 0.60:
                kind = "append"
                rec = ("%s %d\n" % (a.tag, appends)).encode()
                fd = os.open(applog, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    if os.write(fd, rec) != len(rec):
                        err("short append")
                finally:
                    os.close(fd)
                appends += 1
            elif op < 0.72:
                kind = "increment"
                fd = os.open(counter, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX)
                    raw = os.pread(fd, 8, 0)
                    v = struct.unpack("<Q", raw)[0] if len(raw) == 8 else 0
                    os.pwrite(fd, struct.pack("<Q", v + 1), 0)
                    fcntl.lockf(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)
                increments += 1
            elif op < 0.85:
                kind = "list"
                names = set(os.listdir(mydir))
                if names != set(files):
                    err("listdir differs: extra %s, missing %s" %
                        (sorted(names - set(files))[:3], sorted(set(files) - names)[:3]))
                name = rnd.choice(list(files))
                os.stat(os.path.join(mydir, name))
                content_ok(os.path.join(mydir, name), files[name])
            else:
                kind = "unlink"
                name = rnd.choice(list(files))
                os.unlink(os.path.join(mydir, name))
                del files[name]
        except OSError as e:
            err("%s: %s: %s" % (kind, errno.errorcode.get(e.errno, e.errno), e))
    # The files this node kept must still hold their bytes.
    for name, want in files.items():
        try:
            content_ok(os.path.join(mydir, name), want)
        except OSError as e:
            err("final read of %s: %s" % (name, e))
    print(json.dumps({"tag": a.tag, "ops": ops, "errors": errors, "first_errors": first,
                      "appends": appends, "increments": increments}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
