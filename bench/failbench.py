#!/usr/bin/env python3
"""failbench.py: the measuring half of bench/failover.sh.

  failbench.py run --cluster DIR --local-cluster SCRIPT --repeat N
      on a 3-node local cluster at DIR: node3 writes a shared file, node1
      and node2 probe it; kill -9 node3's cxfsd N times (restarting it in
      between) and print "DETECT ms | RESUME ms" (medians).
"""
import argparse
import fcntl
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
import hangwatch  # noqa: E402


def membership(cl, i):
    """Node i's membership from its admin socket (no cxfsctl process per
    poll: that would add its start-up to the detection time), or None."""
    st = hangwatch.status_json(os.path.join(cl, f"node{i}", "admin.sock"), timeout=5)
    try:
        return st["cluster"]["membership"]
    except (TypeError, KeyError):
        return None


def holder(path, stop):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
    while not stop.is_set():
        try:
            os.pwrite(fd, b"h" * 512, 4096)
        except OSError:
            pass
        time.sleep(0.02)


def probe(path, q, stop):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    spans = []
    while not stop.is_set():
        t0 = time.time()
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
            os.pwrite(fd, b"p" * 512, 0)
            os.fstat(fd)
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, 0)
        except OSError:
            pass
        spans.append((t0, time.time()))
        time.sleep(0.005)
    q.put(spans)


def one_kill(a):
    cl = a.cluster
    path = lambda i: os.path.join(cl, f"node{i}", "mnt", "failover.dat")
    stop = mp.Event()
    h = mp.Process(target=holder, args=(path(3), stop))
    h.start()
    time.sleep(0.5)
    q = mp.Queue()
    probes = [mp.Process(target=probe, args=(path(i), q, stop)) for i in (1, 2)]
    for p in probes:
        p.start()
    time.sleep(1.0)
    pid = int(open(os.path.join(cl, "node3", "pid")).read())
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    detect = None
    while time.time() - t_kill < 30:
        ms = [membership(cl, i) for i in (1, 2)]
        if all(m and not [n for n in m["nodes"] if n["name"] == "node3"][0]["member"] for m in ms):
            detect = time.time() - t_kill
            break
        time.sleep(0.01)
    time.sleep(1.5)
    stop.set()
    spans = [q.get() for _ in probes]
    for p in probes:
        p.join(timeout=30)
    h.kill()
    h.join()
    # Each survivor resumes at the end of its first operation to end after the kill.
    resume = max(min((e for s, e in sp if e > t_kill), default=t_kill) for sp in spans) - t_kill
    subprocess.run([a.local_cluster, "restart", "--dir", cl, "3"], capture_output=True, check=True)
    return detect, resume


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--cluster", required=True)
    r.add_argument("--local-cluster", required=True)
    r.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    det, res = [], []
    for k in range(a.repeat):
        d, s = one_kill(a)
        print(f"    kill {k + 1}: detection {d * 1000 if d else float('nan'):.0f} ms, "
              f"resume {s * 1000:.0f} ms", file=sys.stderr, flush=True)
        if d is not None:
            det.append(d)
        res.append(s)
    md = f"{statistics.median(det) * 1000:,.0f} ms" if det else "not detected"
    print(f"{md} | {statistics.median(res) * 1000:,.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
