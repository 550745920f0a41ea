#!/usr/bin/env python3
"""shareddirbench.py: the python half of bench/shareddir.sh.

  shareddirbench.py phase --cluster DIR --nodes I[,J...] --layout shared|separate
                          --files N --name NAME --repeat R --out RESULTS
                          [--limit S] [--dump FILE]
      One measurement: through node 1's mount, NAME/ (shared) or
      NAME/node<I>/ for each node (separate); then one process per node,
      the processes in step, does four steps on N empty files of its own
      (names n<I>.<k>, never shared), each step started on every node at
      once once all nodes have finished the one before:
        create  open(O_CREAT|O_EXCL|O_WRONLY) + close
        stat    lstat
        rename  to <name>.r in the same directory
        unlink
      Per step: ops/s in aggregate (all nodes' operations over the time from
      the first node's start to the last node's end) and the messages the
      cluster sent (the difference of `status json`'s
      cluster.messages.sent, summed over every node of the cluster, read
      just before the step starts and just after the last node ends) per
      operation.  Appends one JSON line per step to RESULTS.  Under
      hangwatch.py's watchdog: an operation that takes longer than S
      seconds (30) dumps the cluster's state (to FILE with --dump), aborts
      the FUSE connections, appends "hung" lines and exits 3 (the cluster
      must then be restarted).
  shareddirbench.py report RESULTS [--files N --repeat R --commit C --built T]
      Medians over the repeats, as a markdown table.
"""
import argparse
import atexit
import collections
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
import hangwatch  # noqa: E402
from shared_dir import dir_of, setup_main  # noqa: E402  (the test's: same directories)

STEPS = ("create", "stat", "rename", "unlink")
LAYOUTS = ("shared", "separate")


def teardown_main(slot, base, layout, nodes):
    for n in nodes if layout == "separate" else ():
        d = dir_of(base, layout, n)
        slot.begin(f"rmdir {d}")
        os.rmdir(d)
    slot.begin(f"rmdir {base}")
    os.rmdir(base)
    slot.end()


def worker_main(slot, d, node, n, gos, dones, out):
    paths = [os.path.join(d, f"n{node}.{k:06d}") for k in range(n)]
    renamed = [p + ".r" for p in paths]
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    times = {}
    for s, step in enumerate(STEPS):
        gos[s].wait()
        t0 = time.monotonic()
        if step == "create":
            for p in paths:
                slot.begin(f"create {p}")
                os.close(os.open(p, flags, 0o644))
                slot.end()
        elif step == "stat":
            for p in paths:
                slot.begin(f"lstat {p}")
                os.lstat(p)
                slot.end()
        elif step == "rename":
            for p, q in zip(paths, renamed):
                slot.begin(f"rename {p} {q}")
                os.rename(p, q)
                slot.end()
        else:
            for q in renamed:
                slot.begin(f"unlink {q}")
                os.unlink(q)
                slot.end()
        times[step] = [t0, time.monotonic()]
        dones[s].set()
    json.dump(times, open(out, "w"))


def messages_sent(cl):
    """Sum over the cluster's nodes of cluster.messages.sent, and of its
    counts by message type (None if a node does not answer)."""
    total, by_type = 0, {}
    for i in cl.nodes:
        st = hangwatch.status_json(cl.sock(i))
        try:
            m = st["cluster"]["messages"]
            total += m["sent"]
            for k, v in m.get("sent_by_type", {}).items():
                by_type[k] = by_type.get(k, 0) + v
        except (TypeError, KeyError):
            return None
    return total, by_type


def msgs_delta(m0, m1):
    """Messages sent between two messages_sent() readings: (total, {type: n})."""
    if m0 is None or m1 is None:
        return None, {}
    return m1[0] - m0[0], {k: v - m0[1].get(k, 0) for k, v in m1[1].items() if v - m0[1].get(k, 0)}


def phase(a):
    cl = hangwatch.Cluster(a.cluster)
    work = tempfile.mkdtemp(prefix="shareddirbench.")
    atexit.register(shutil.rmtree, work, True)
    nodes = a.nodes
    what = f"{a.layout}, {len(nodes)} node{'s' if len(nodes) > 1 else ''} (node{','.join(map(str, nodes))})"
    base_rec = {"repeat": a.repeat, "layout": a.layout, "nodes": nodes, "files": a.files}

    def record(**kw):
        with open(a.out, "a") as f:
            f.write(json.dumps({**base_rec, **kw, "load": os.getloadavg()[0]}) + "\n")

    def hung(step, status="hung"):
        if status == "hung":
            print(f"  {what}: HUNG in {step} (watchdog: an operation took over {a.limit:.0f} s)",
                  flush=True)
        else:
            print(f"  {what}: FAILED in {step}", flush=True)
        for s in STEPS[STEPS.index(step):] if step in STEPS else STEPS:
            record(step=s, status=status)
        return hangwatch.EXIT_HANG if status == "hung" else 1

    base = os.path.join(cl.mnt(1), a.name)
    w = hangwatch.Watch(1, a.limit, cl, dump_to=a.dump)
    out = os.path.join(work, "setup.json")
    w.spawn("setup", 1, setup_main, base, a.layout, nodes, out)
    r = w.wait()
    if r in ("hang", "deadline"):
        return hung("setup")
    if r != "ok":
        return hung("setup", "failed")
    inos = json.load(open(out))["inos"]

    w = hangwatch.Watch(len(nodes), a.limit, cl, inos, dump_to=a.dump)
    gos = [hangwatch.CTX.Event() for _ in STEPS]
    dones = {n: [hangwatch.CTX.Event() for _ in STEPS] for n in nodes}
    outs = {}
    for n in nodes:
        d = dir_of(os.path.join(cl.mnt(n), a.name), a.layout, n)
        outs[n] = os.path.join(work, f"times.{n}.json")
        w.spawn(f"node{n}", n, worker_main, d, n, a.files, gos, dones[n], outs[n])
    msgs = {}
    for s, step in enumerate(STEPS):
        m0 = messages_sent(cl)
        gos[s].set()
        while not all(dones[n][s].is_set() for n in nodes):
            if w.poll():
                return hung(step)
            if any(p.exitcode not in (None, 0) for p, _, _ in w.procs):
                w.kill_all()
                return hung(step, "failed")
            time.sleep(0.05)
        msgs[step] = msgs_delta(m0, messages_sent(cl))
    if w.wait() != "ok":
        return hung("unlink", "failed")
    times = {n: json.load(open(outs[n])) for n in nodes}
    parts, kinds = [], []
    for step in STEPS:
        t0 = min(times[n][step][0] for n in nodes)
        t1 = max(times[n][step][1] for n in nodes)
        ops = a.files * len(nodes)
        rate = ops / (t1 - t0)
        total, by_type = msgs[step]
        mpo = total / ops if total is not None else None
        record(step=step, status="ok", ops=ops, secs=t1 - t0, rate=rate, msgs=total,
               msgs_per_op=mpo, msgs_by_type=by_type)
        parts.append(f"{step} {rate:,.0f}/s" + (f" ({mpo:.2f} msgs/op)" if mpo is not None else ""))
        # The message types that make up most of a step's cost, per operation.
        top = sorted(by_type.items(), key=lambda kv: -kv[1])[:4]
        kinds.append(f"    {step}: " + (", ".join(f"{k} {v / ops:.2f}" for k, v in top
                                                   if v / ops >= 0.01) or "none"))
    print(f"  {what}: " + ", ".join(parts), flush=True)
    print("\n".join(kinds), flush=True)

    w = hangwatch.Watch(1, a.limit, cl, inos, dump_to=a.dump)
    w.spawn("teardown", 1, teardown_main, base, a.layout, nodes)
    r = w.wait()
    if r in ("hang", "deadline"):
        print(f"  {what}: HUNG removing the directories", flush=True)
        return hangwatch.EXIT_HANG
    return 0 if r == "ok" else 1


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

def fmt_rate(v):
    return f"{v:,.0f}" if v is not None else "n/a"


def fmt_mpo(v):
    return f"{v:.2f}" if v is not None else "n/a"


def report(a):
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    ok = collections.defaultdict(list)          # (layout, k, step) -> [row]
    bad = collections.Counter()                 # (layout, k, step) -> hung/failed runs
    sets = {}
    for r in rows:
        k = len(r["nodes"])
        sets[k] = ",".join(f"node{n}" for n in r["nodes"])
        key = (r["layout"], k, r["step"])
        if r["status"] == "ok":
            ok[key].append(r)
        else:
            bad[key] += 1

    def med(key, field):
        vs = [r[field] for r in ok.get(key, []) if r.get(field) is not None]
        return statistics.median(vs) if vs else None

    def cell(key, field, f):
        v = med(key, field)
        s = f(v) if v is not None else ""
        if bad[key]:
            s += (" " if s else "") + (f"(hung or failed {bad[key]} of "
                                       f"{bad[key] + len(ok.get(key, []))})")
        return s or "n/a"

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"cxfs shared vs separate directories ({now}; commit {a.commit}, cxfsd built "
          f"{a.built}; {a.files} files per node, median of {a.repeat} repeat(s), "
          f"{os.cpu_count()} CPUs)")
    loads = [r["load"] for r in rows if "load" in r]
    if loads:
        print(f"1-minute load average at the end of each step: median {statistics.median(loads):.1f}, "
              f"max {max(loads):.1f} (the run itself accounts for part of it)")
    print()
    print("nodes: " + "; ".join(f"{k} = {v}" for k, v in sorted(sets.items())))
    print()
    print("| operation | nodes | shared dir, ops/s | separate dirs, ops/s | shared/separate "
          "| shared, msgs/op | separate, msgs/op |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for step in STEPS:
        for k in sorted(sets):
            s, p = ("shared", k, step), ("separate", k, step)
            rs, rp = med(s, "rate"), med(p, "rate")
            ratio = f"{rs / rp:.2f}x" if rs and rp else "n/a"
            print(f"| {step} | {k} | {cell(s, 'rate', fmt_rate)} | {cell(p, 'rate', fmt_rate)} "
                  f"| {ratio} | {cell(s, 'msgs_per_op', fmt_mpo)} "
                  f"| {cell(p, 'msgs_per_op', fmt_mpo)} |")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("phase")
    p.add_argument("--cluster", required=True)
    p.add_argument("--nodes", required=True, type=lambda v: [int(x) for x in v.split(",")])
    p.add_argument("--layout", required=True, choices=LAYOUTS)
    p.add_argument("--files", type=int, default=10000)
    p.add_argument("--name", required=True)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=float, default=hangwatch.LIMIT)
    p.add_argument("--dump")
    r = sub.add_parser("report")
    r.add_argument("results")
    r.add_argument("--files", type=int, default=0)
    r.add_argument("--repeat", type=int, default=0)
    r.add_argument("--commit", default="unknown")
    r.add_argument("--built", default="unknown")
    a = ap.parse_args()
    return phase(a) if a.cmd == "phase" else report(a)


if __name__ == "__main__":
    sys.exit(main())
