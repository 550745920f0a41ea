#!/usr/bin/env python3
"""member_victim.py DIR READY: what a node is doing when it dies, for the
membership tests.  In DIR (on the node's mount) it takes a POSIX write lock
on DIR/lk and a flock on DIR/fl, writes DIR/synced (256 KiB, fsync'ed; its
SHA-256 goes into READY.sha), keeps writing DIR/unsynced without fsync (so
the node holds WRITE tokens and written data not yet published), and holds
DIR/unlinked open after unlinking it (1 MiB: an existence reference).  Then
it creates READY and sleeps until killed."""
import fcntl
import hashlib
import os
import sys
import time

d, ready = sys.argv[1], sys.argv[2]
lk = os.open(os.path.join(d, "lk"), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(lk, fcntl.LOCK_EX)
fl = os.open(os.path.join(d, "fl"), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fl, fcntl.LOCK_EX)
data = os.urandom(256 * 1024)
fd = os.open(os.path.join(d, "synced"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data)
os.fsync(fd)
os.close(fd)
with open(ready + ".sha", "w") as f:
    f.write(hashlib.sha256(data).hexdigest() + "\n")
un = os.open(os.path.join(d, "unlinked"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(un, os.urandom(1 << 20))
os.fsync(un)
os.unlink(os.path.join(d, "unlinked"))
w = os.open(os.path.join(d, "unsynced"), os.O_WRONLY | os.O_CREAT, 0o644)
os.write(w, os.urandom(128 * 1024))
open(ready, "w").close()
while True:
    os.pwrite(w, os.urandom(4096), 4096 * (int(time.time() * 10) % 32))
    time.sleep(0.05)
