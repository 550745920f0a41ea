#!/usr/bin/env python3
"""fsops.py: file-system workloads the integration tests run through a mount.

Subcommands (each exits 0 on success, 1 with messages on stderr otherwise):

  bigdir-create DIR N       create N empty files f000000.. in DIR
  bigdir-count DIR N        DIR holds exactly those N names (listing and count)
  bigdir-stat DIR N K       stat K names spread over the N (regular, size 0)
  bigdir-unlink DIR N       unlink all N names; DIR is empty afterwards
  parallel-worker ROOT ID ITERS SEED
                            one of the t_parallel workers (see worker())
  crash-writer ROOT SUB MANIFEST SEED
                            write and fsync files in ROOT/SUB until killed; a
                            file's path (relative to ROOT), size and sha256 go
                            to MANIFEST only after the file and its directory
                            were fsync'ed
  crash-verify ROOT MANIFEST
                            every file in MANIFEST (paths relative to ROOT)
                            holds exactly its recorded bytes

Each phase prints its duration on stderr, so the logs show where time went.
"""
import hashlib
import os
import random
import sys
import time


def phase(name, t0, n=None):
    dt = time.monotonic() - t0
    rate = f", {n / dt:.0f}/s" if n and dt > 0 else ""
    print(f"  {name}: {dt:.2f}s{rate}", file=sys.stderr)


def names(n):
    return [f"f{i:06d}" for i in range(n)]


def bigdir_create(d, n):
    t0 = time.monotonic()
    os.makedirs(d, exist_ok=True)
    for name in names(n):
        os.close(os.open(os.path.join(d, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    phase(f"create {n}", t0, n)
    return 0


def bigdir_count(d, n):
    t0 = time.monotonic()
    got = os.listdir(d)
    phase(f"list {len(got)}", t0, len(got))
    want = set(names(n))
    gotset = set(got)
    bad = 0
    if len(got) != len(gotset):
        print(f"listing has {len(got) - len(gotset)} duplicate names", file=sys.stderr)
        bad = 1
    missing = want - gotset
    extra = gotset - want
    if missing or extra:
        print(f"{len(missing)} names missing (e.g. {sorted(missing)[:3]}), "
              f"{len(extra)} unexpected (e.g. {sorted(extra)[:3]})", file=sys.stderr)
        bad = 1
    return bad


def bigdir_stat(d, n, k):
    t0 = time.monotonic()
    bad = 0
    step = max(1, n // k)
    count = 0
    for i in range(0, n, step):
        p = os.path.join(d, f"f{i:06d}")
        try:
            st = os.lstat(p)
        except OSError as e:
            print(f"stat {p}: {e}", file=sys.stderr)
            bad = 1
            continue
        count += 1
        if not (st.st_mode & 0o170000 == 0o100000 and st.st_size == 0 and st.st_nlink == 1):
            print(f"{p}: mode {st.st_mode:o} size {st.st_size} nlink {st.st_nlink}",
                  file=sys.stderr)
            bad = 1
    # Names that must not exist.
    for i in (n, n + 1, n * 2):
        if os.path.lexists(os.path.join(d, f"f{i:06d}")):
            print(f"f{i:06d} exists but was never created", file=sys.stderr)
            bad = 1
    phase(f"stat {count}", t0, count)
    return bad


def bigdir_unlink(d, n):
    t0 = time.monotonic()
    bad = 0
    for name in names(n):
        try:
            os.unlink(os.path.join(d, name))
        except OSError as e:
            print(f"unlink {name}: {e}", file=sys.stderr)
            bad = 1
    phase(f"unlink {n}", t0, n)
    left = os.listdir(d)
    if left:
        print(f"{len(left)} entries left after unlinking all", file=sys.stderr)
        bad = 1
    return bad


def pattern(seed, size):
    """Reproducible bytes for (seed, size), cheap to regenerate."""
    r = random.Random(seed)
    block = r.randbytes(min(size, 65536) or 1)
    reps = size // len(block) + 1
    # Rotate each repetition so misplaced blocks are caught.
    out = bytearray()
    for i in range(reps):
        k = (i * 977) % len(block)
        out += block[k:] + block[:k]
    return bytes(out[:size])


def write_file(path, data, do_fsync):
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
    try:
        view = memoryview(data)
        while view:
            w = os.write(fd, view[:1 << 20])
            view = view[w:]
        if do_fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def worker(root, wid, iters, seed):
    """Create, write, read-verify, rename and unlink files in the worker's own
    directory and in a directory shared by all workers; write a disjoint
    region of one shared file.  At the end, verify every surviving file."""
    r = random.Random(seed * 1000 + wid)
    own = os.path.join(root, f"own{wid:02d}")
    shared = os.path.join(root, "shared")
    os.makedirs(own, exist_ok=True)
    os.makedirs(shared, exist_ok=True)
    live = {}  # path -> (seed, size)
    errors = 0

    def err(msg):
        nonlocal errors
        errors += 1
        print(f"worker {wid}: {msg}", file=sys.stderr)

    def verify(path, s, size):
        try:
            got = read_file(path)
        except OSError as e:
            err(f"read {path}: {e}")
            return
        if got != pattern(s, size):
            first = next((i for i, (a, b) in enumerate(zip(got, pattern(s, size))) if a != b),
                         min(len(got), size))
            err(f"{path}: content differs (size {len(got)} want {size}, first bad byte {first})")

    for it in range(iters):
        d = own if r.random() < 0.5 else shared
        name = os.path.join(d, f"w{wid:02d}-{it:05d}")
        size = r.choice([0, 1, 4095, 4096, 4097, 65536, 100000, 1 << 20, r.randrange(1 << 21)])
        s = r.randrange(1 << 30)
        try:
            write_file(name, pattern(s, size), r.random() < 0.2)
        except OSError as e:
            err(f"write {name}: {e}")
            continue
        verify(name, s, size)
        live[name] = (s, size)
        op = r.random()
        if op < 0.3:
            new = os.path.join(shared if d == own else own, f"w{wid:02d}-{it:05d}-mv")
            try:
                os.rename(name, new)
                del live[name]
                live[new] = (s, size)
                verify(new, s, size)
                if os.path.lexists(name):
                    err(f"{name} still exists after rename")
            except OSError as e:
                err(f"rename {name}: {e}")
        elif op < 0.55 and live:
            victim = r.choice(sorted(live))
            try:
                os.unlink(victim)
                del live[victim]
                if os.path.lexists(victim):
                    err(f"{victim} still exists after unlink")
            except OSError as e:
                err(f"unlink {victim}: {e}")
        elif op < 0.65:
            # Overwrite in place (same size, new bytes).
            target = r.choice(sorted(live))
            s2 = r.randrange(1 << 30)
            try:
                write_file(target, pattern(s2, live[target][1]), False)
                live[target] = (s2, live[target][1])
            except OSError as e:
                err(f"overwrite {target}: {e}")

    # The shared file: each worker owns 256 KiB at wid * 256 KiB.
    sf = os.path.join(shared, "common")
    region = pattern(seed + wid, 256 * 1024)
    try:
        fd = os.open(sf, os.O_CREAT | os.O_RDWR, 0o644)
        os.pwrite(fd, region, wid * 256 * 1024)
        os.fsync(fd)
        os.close(fd)
    except OSError as e:
        err(f"shared file: {e}")

    for path, (s, size) in sorted(live.items()):
        verify(path, s, size)
    # Every name this worker owns that is present must be in live.
    for d in (own, shared):
        for n in os.listdir(d):
            p = os.path.join(d, n)
            if n.startswith(f"w{wid:02d}-") and p not in live:
                err(f"{p} listed but should not exist")
    for p in live:
        if os.path.basename(p) not in os.listdir(os.path.dirname(p)):
            err(f"{p} missing from its directory listing")
    with open(os.path.join(root, f"live{wid:02d}"), "w") as f:
        for p, (s, size) in sorted(live.items()):
            f.write(f"{p} {s} {size}\n")
    print(f"worker {wid}: {iters} iterations, {len(live)} files live, {errors} errors",
          file=sys.stderr)
    return 1 if errors else 0


def crash_writer(root, sub, manifest, seed):
    r = random.Random(seed)
    d = os.path.join(root, sub)
    os.makedirs(d, exist_ok=True)
    pfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(pfd)
    os.close(pfd)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    m = open(manifest, "a", buffering=1)
    i = 0
    while True:
        i += 1
        name = f"c{seed}-{i:05d}"
        path = os.path.join(d, name)
        size = r.choice([1, 4096, 12345, 65536, 300000, 1 << 20])
        data = r.randbytes(size)
        write_file(path, data, True)
        os.fsync(dfd)
        m.write(f"{sub}/{name} {size} {hashlib.sha256(data).hexdigest()}\n")
        # Non-durable noise: an unsynced file and an overwrite, to leave
        # dirty state behind at the moment of the kill.
        with open(path + ".tmp", "wb") as f:
            f.write(r.randbytes(r.randrange(1 << 18)))
        if i % 3 == 0:
            os.unlink(path + ".tmp")


def crash_verify(root, manifest):
    bad = n = 0
    with open(manifest) as m:
        for line in m:
            parts = line.split()
            if len(parts) != 3:
                continue   # a torn last line from the killed writer
            rel, size, digest = parts[0], int(parts[1]), parts[2]
            n += 1
            p = os.path.join(root, rel)
            try:
                data = read_file(p)
            except OSError as e:
                print(f"{rel}: {e}", file=sys.stderr)
                bad += 1
                continue
            if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
                print(f"{rel}: size {len(data)} (want {size}), content "
                      f"{'matches' if hashlib.sha256(data).hexdigest() == digest else 'differs'}",
                      file=sys.stderr)
                bad += 1
    print(f"  verified {n} fsync'ed files, {bad} bad", file=sys.stderr)
    return 1 if bad else 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, a = argv[1], argv[2:]
    if cmd == "bigdir-create":
        return bigdir_create(a[0], int(a[1]))
    if cmd == "bigdir-count":
        return bigdir_count(a[0], int(a[1]))
    if cmd == "bigdir-stat":
        return bigdir_stat(a[0], int(a[1]), int(a[2]))
    if cmd == "bigdir-unlink":
        return bigdir_unlink(a[0], int(a[1]))
    if cmd == "parallel-worker":
        return worker(a[0], int(a[1]), int(a[2]), int(a[3]))
    if cmd == "crash-writer":
        try:
            crash_writer(a[0], a[1], a[2], int(a[3]))
        except OSError as e:
            # Expected: the daemon was killed under us.
            print(f"  writer stopped: {e}", file=sys.stderr)
        return 0
    if cmd == "crash-verify":
        return crash_verify(a[0], a[1])
    print(f"unknown subcommand {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
