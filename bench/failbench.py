#!/usr/bin/env python3
"""failbench.py: the measuring half of bench/failover.sh.

  failbench.py run --cluster DIR --local-cluster SCRIPT --repeat N
      on a 3-node local cluster at DIR: node3 writes a shared file, node1
      and node2 probe it; kill -9 node3's cxfsd N times (restarting it in
      between) and print "DETECT ms | RESUME ms" (medians).
  failbench.py mds --cluster DIR --local-cluster SCRIPT --repeat N --vnodes V
      on a 3-node local cluster at DIR: V files are created once and stat'ed
      on both survivors before each kill (so each caches about V vnodes);
      a probe on each survivor creates, writes and closes a new small file
      every 5 ms (each needs the metadata server); kill -9 of the serving
      node's cxfsd N times (restarted in between, so the server moves).
      Per kill, from the kill: detection (every survivor's membership has
      left the node out), serving (one survivor says it serves and the
      other names it), first operation (the first probe operation started
      after the kill completes on a survivor: min over the survivors; both
      survivors: max), and the phases of the new server's recovery as its
      status records them (cluster.recovery.history, last entry).  Prints
      one table row of medians and the per-kill figures on stderr.
"""
import argparse
import fcntl
import json
import multiprocessing as mp
import os
import re
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


def status(cl, i, timeout=5):
    return hangwatch.status_json(os.path.join(cl, f"node{i}", "admin.sock"), timeout=timeout)


def cluster_of(st):
    return st.get("cluster", {}) if isinstance(st, dict) and isinstance(st.get("cluster"), dict) else {}


def server_now(cl):
    """The one node that says it serves (exits if there is not one)."""
    srv = [i for i in (1, 2, 3) if cluster_of(status(cl, i, 2)).get("is_server")]
    if len(srv) != 1:
        raise SystemExit(f"failbench: not exactly one node serves: {srv}")
    return srv[0]


def history_ids(cl, nodes):
    """(node, id) of every recovery each node's history holds."""
    out = set()
    for i in nodes:
        rec = cluster_of(status(cl, i)).get("recovery")
        for h in (rec.get("history") or []) if isinstance(rec, dict) else []:
            if isinstance(h, dict):
                out.add((i, h.get("id")))
    return out


def make_files(top, n):
    """n empty files under top in directories of 1000 (created once)."""
    done = os.path.join(top, f".made.{n}")
    if os.path.exists(done):
        return
    for k in range(n):
        d = os.path.join(top, f"d{k // 1000:03d}")
        if k % 1000 == 0:
            os.makedirs(d, exist_ok=True)
        fd = os.open(os.path.join(d, f"f{k:06d}"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
        if k and k % 20000 == 0:
            print(f"    {k} files made", file=sys.stderr, flush=True)
    open(done, "w").close()


def stat_files(top, n):
    for k in range(n):
        os.stat(os.path.join(top, f"d{k // 1000:03d}", f"f{k:06d}"))


def mds_probe(d, tag, q, stop):
    """Create, write, close a new file every 5 ms: (start, end, ok) spans."""
    os.makedirs(d, exist_ok=True)
    spans = []
    k = 0
    while not stop.is_set():
        t0 = time.time()
        ok = True
        try:
            fd = os.open(os.path.join(d, f"{tag}.{k}"), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            os.write(fd, b"p" * 512)
            os.close(fd)
        except OSError as e:
            ok = False
            print(f"    probe {tag}: {e}", file=sys.stderr, flush=True)
        spans.append((t0, time.time(), ok))
        k += 1
        time.sleep(0.005)
    q.put(spans)


def phases_of(cl, nodes, since, old=frozenset()):
    """The recovery's passes (name -> ms) as the node that led it records
    them (cluster.recovery.history: the last entry with "led", its "ms":
    celldown, gather, reconstruct, retarget, total), and the fencing, from
    the elected node's log line "recovery N: this node serves ... (fenced in
    X ms, store opened and rebuilt in Y ms)"."""
    out = {}
    for i in nodes:
        rec = cluster_of(status(cl, i)).get("recovery")
        hist = rec.get("history") if isinstance(rec, dict) else None
        for h in reversed(hist or []):
            if isinstance(h, dict) and h.get("led") and isinstance(h.get("ms"), dict) \
                    and (i, h.get("id")) not in old:
                out.update({k: float(v) for k, v in h["ms"].items()})
                out["attempts"] = h.get("attempts")
                break
        try:
            with open(os.path.join(cl, f"node{i}", "log"), "rb") as f:
                f.seek(since)
                for line in f.read().decode(errors="replace").splitlines():
                    m = re.search(r"recovery \d+: this node serves .*fenced in ([0-9.]+) ms, "
                                  r"store opened and rebuilt in ([0-9.]+) ms", line)
                    if m:
                        out["fence"] = float(m.group(1))
                        out["store+rebuild"] = float(m.group(2))
        except OSError:
            pass
    return out


def mds_kill(a, k):
    cl = a.cluster
    mnt = lambda i: os.path.join(cl, f"node{i}", "mnt")
    s = server_now(cl)
    surv = [i for i in (1, 2, 3) if i != s]
    # The probes' directories exist (and are fsync'ed) before the caches
    # are filled: seconds before the kill.
    for i in surv:
        d = os.path.join(mnt(i), "probe", f"k{k}", f"n{i}")
        os.makedirs(d, exist_ok=True)
        for p in (d, os.path.dirname(d), os.path.dirname(os.path.dirname(d))):
            fd = os.open(p, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    t0 = time.time()
    for i in surv:
        stat_files(os.path.join(mnt(i), "cache"), a.vnodes)
    vn = [(status(cl, i) or {}).get("vnodes") for i in surv]
    cache_s = time.time() - t0
    stop = mp.Event()
    q = mp.Queue()
    probes = [mp.Process(target=mds_probe, args=(os.path.join(mnt(i), "probe", f"k{k}", f"n{i}"), f"n{i}", q, stop))
              for i in surv]
    for p in probes:
        p.start()
    time.sleep(1.0)
    pid = int(open(os.path.join(cl, f"node{s}", "pid")).read())
    logpos = {i: os.path.getsize(os.path.join(cl, f"node{i}", "log")) for i in surv}
    old = history_ids(cl, surv)
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    detect = serving = None
    while time.time() - t_kill < 60 and (detect is None or serving is None):
        sts = [status(cl, i, 2) for i in surv]
        cs = [cluster_of(st) for st in sts]
        now = time.time() - t_kill
        if detect is None and all(c.get("membership") and not [n for n in c["membership"]["nodes"]
                                  if n["name"] == f"node{s}"][0]["member"] for c in cs):
            detect = now
        srv = [i for i, c in zip(surv, cs) if c.get("is_server")]
        if serving is None and len(srv) == 1 and all(c.get("server") == f"node{srv[0]}" for c in cs):
            serving = now
            new = srv[0]
        time.sleep(0.01)
    time.sleep(1.5)
    stop.set()
    spans = [q.get(timeout=120) for _ in probes]
    for p in probes:
        p.join(timeout=30)
    firsts = []
    for sp in spans:
        after = [e for b, e, ok in sp if b >= t_kill and ok]
        firsts.append(min(after) - t_kill if after else None)
    errors = sum(1 for sp in spans for _, _, ok in sp if not ok)
    phases = {}
    for i in surv:
        for kk, v in phases_of(cl, [i], logpos[i], old).items():
            phases.setdefault(kk, v)
    if not a.no_restart:
        subprocess.run([a.local_cluster, "restart", "--dir", cl, str(s)], capture_output=True, check=True)
        srv = [i for i in (1, 2, 3) if cluster_of(status(cl, i, 2)).get("is_server")]
        if len(srv) != 1:
            raise SystemExit(f"failbench: after node{s} restarted, the nodes that say they serve: {srv}")
    first = min((f for f in firsts if f is not None), default=None)
    both = max(firsts) if all(f is not None for f in firsts) else None
    print(f"    kill {k + 1} (node{s}; vnodes cached on the survivors {vn}, stat'ed in {cache_s:.1f} s): "
          f"detection {ms(detect)}, serving {ms(serving)}, first operation {ms(first)}, "
          f"both survivors {ms(both)}, probe errors {errors}, phases {phases}",
          file=sys.stderr, flush=True)
    return {"detect": detect, "serving": serving, "first": first, "both": both,
            "errors": errors, "phases": phases}


def ms(x):
    return f"{x * 1000:,.0f} ms" if x is not None else "-"


def mds(a):
    t0 = time.time()
    make_files(os.path.join(a.cluster, f"node{server_now(a.cluster)}", "mnt", "cache"),
               max(a.vnodes, a.make))
    print(f"    {max(a.vnodes, a.make):,} files there ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    rows = [mds_kill(a, k) for k in range(a.repeat)]
    if a.record:
        with open(a.record, "a") as f:
            for r in rows:
                f.write(json.dumps(dict(r, vnodes=a.vnodes)) + "\n")
    print(table_row(a.vnodes, rows))


def table(a):
    """One row per vnodes count of the kills recorded in --record."""
    rows = {}
    for line in open(a.record):
        r = json.loads(line)
        rows.setdefault(r["vnodes"], []).append(r)
    for v in sorted(rows):
        print(table_row(v, rows[v]))


def table_row(vnodes, rows):
    def med(key):
        v = [r[key] for r in rows if r[key] is not None]
        return ms(statistics.median(v)) if v else "-"
    names = []
    for r in rows:
        names += [n for n in r["phases"] if n not in names]
    ph = []
    for n in names:
        v = [r["phases"][n] for r in rows if isinstance(r["phases"].get(n), (int, float))]
        if v and n != "attempts":
            ph.append(f"{n} {statistics.median(v):,.1f} ms")
    return (f"{vnodes:,} | {med('detect')} | {med('serving')} | {'; '.join(ph) or '(no recovery history)'} | "
            f"{med('first')} | {med('both')} | {sum(r['errors'] for r in rows)} | {len(rows)}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mds")
    m.add_argument("--cluster", required=True)
    m.add_argument("--local-cluster", required=True)
    m.add_argument("--repeat", type=int, default=5)
    m.add_argument("--vnodes", type=int, default=1)
    m.add_argument("--make", type=int, default=0, help="create this many files (at least --vnodes)")
    m.add_argument("--no-restart", action="store_true", help="leave the killed node dead (one kill per cluster)")
    m.add_argument("--record", help="append each kill's figures to this file (JSON lines)")
    t = sub.add_parser("table")
    t.add_argument("--record", required=True)
    r = sub.add_parser("run")
    r.add_argument("--cluster", required=True)
    r.add_argument("--local-cluster", required=True)
    r.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    if a.cmd == "mds":
        return mds(a)
    if a.cmd == "table":
        return table(a)
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
