#!/usr/bin/env python3
"""shared_dir.py: every node creates files at once, in one shared directory
or each in its own (the case of issue 11), under hangwatch.py's watchdog.

  shared_dir.py run --cluster DIR --nodes I,J[,K] --layout shared|separate
                    --name NAME [--files N] [--limit L] [--work W]
                    [--results FILE]
  shared_dir.py report FILE

run: through node 1's mount, makes NAME/ (shared) or NAME/node<I>/ for each
creating node (separate).  Then one process per node in --nodes, all
started together, creates N files (2,000 by default): open(O_CREAT|O_EXCL),
write 4 KiB, close; names are node<I>.<k>, never shared between nodes, in
NAME/ (shared) or NAME/node<I>/ (separate).  Each file's 4 KiB are the
SHA-256 of its name, 128 times.  Then every node of the cluster (all of
them, not only the creators) lists the directories, which must hold
exactly the files created, and reads files back: every file (shared), or
the files of one other node's directory (separate: each file is read by
at least one node that did not create it).  Prints "ok ..." or
"FAIL ..." lines and the rates: files/s in aggregate (all files over the
time from the first start to the last end) and per node; appends one JSON
line to --results.  An operation that takes longer than L seconds (30) is a
hang: the watchdog dumps every node's state, aborts the FUSE connections
and the run exits 3.  Exit 0 passed, 1 failed, 3 hang.

report: a table of the results lines in FILE: aggregate files/s of each
layout and node count, and shared/separate.
"""
import argparse
import atexit
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hangwatch  # noqa: E402

SIZE = 4096


def content(name):
    return hashlib.sha256(name.encode()).digest() * (SIZE // 32)


def dir_of(base, layout, node):
    return base if layout == "shared" else os.path.join(base, f"node{node}")


def setup_main(slot, base, layout, nodes, out):
    inos = []
    slot.begin(f"mkdir {base}")
    os.mkdir(base, 0o755)
    inos.append(os.stat(base).st_ino)
    if layout == "separate":
        for n in nodes:
            d = dir_of(base, layout, n)
            slot.begin(f"mkdir {d}")
            os.mkdir(d, 0o755)
            inos.append(os.stat(d).st_ino)
    slot.end()
    json.dump({"inos": inos}, open(out, "w"))


def create_main(slot, d, node, nfiles, go, out):
    go.wait()
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    res = {"node": node, "done": 0, "error": None}
    t0 = time.monotonic()
    try:
        for k in range(nfiles):
            name = f"node{node}.{k:05d}"
            p = os.path.join(d, name)
            data = content(name)
            slot.begin(f"create {p}")
            fd = os.open(p, flags, 0o644)
            slot.begin(f"write 4 KiB to {p}")
            n = os.write(fd, data)
            slot.begin(f"close {p}")
            os.close(fd)
            slot.end()
            if n != SIZE:
                raise OSError(0, f"short write: {n} of {SIZE} bytes", p)
            res["done"] = k + 1
    except OSError as e:
        res["error"] = f"{e}"
    res["t0"], res["t1"] = t0, time.monotonic()
    json.dump(res, open(out, "w"))


def verify_main(slot, mnt, rels, reads, expect, node, out):
    """List each directory (rel -> expected names) and read the files of those in reads."""
    probs = []
    nread = 0
    for rel in rels:
        d = os.path.join(mnt, rel)
        slot.begin(f"listdir {d} (node{node})")
        names = set(os.listdir(d))
        slot.end()
        want = set(expect[rel])
        if names != want:
            missing, extra = sorted(want - names), sorted(names - want)
            probs.append(f"{rel}: {len(missing)} files missing {missing[:5]}, "
                         f"{len(extra)} unexpected {extra[:5]}")
        for name in sorted(names & want) if rel in reads else []:
            p = os.path.join(d, name)
            slot.begin(f"read {p} (node{node})")
            with open(p, "rb", buffering=0) as f:
                data = f.read(SIZE + 1)
            slot.end()
            nread += 1
            if data != content(name):
                probs.append(f"{rel}/{name}: {len(data)} bytes, not the content written")
    json.dump({"probs": probs, "read": nread}, open(out, "w"))


def run(a):
    cl = hangwatch.Cluster(a.cluster)
    work = a.work
    if not work:
        work = tempfile.mkdtemp(prefix="shared_dir.")
        atexit.register(shutil.rmtree, work, True)
    os.makedirs(work, exist_ok=True)
    nodes = a.nodes
    what = f"{a.layout} directory, {len(nodes)} nodes (node{','.join(map(str, nodes))})"
    failed = 0

    def report(ok, msg):
        nonlocal failed
        if not ok:
            failed += 1
        print(("ok   " if ok else "FAIL ") + msg, flush=True)

    def settle(w, step):
        r = w.wait()
        if r in ("hang", "deadline"):
            report(False, f"{what}: {step}: the watchdog fired (an operation took over "
                   f"{a.limit:.0f} s); the FUSE connections were aborted")
            sys.exit(hangwatch.EXIT_HANG)
        return r == "ok"

    base = os.path.join(cl.mnt(1), a.name)
    w = hangwatch.Watch(1, a.limit, cl)
    out = os.path.join(work, f"{a.name}.setup.json")
    w.spawn("setup", 1, setup_main, base, a.layout, nodes, out)
    if not settle(w, "setup"):
        report(False, f"{what}: setup of {a.name} failed")
        return 1
    inos = json.load(open(out))["inos"]

    # The creators, started together.
    w = hangwatch.Watch(len(nodes), a.limit, cl, inos)
    go = hangwatch.CTX.Event()
    outs = []
    for n in nodes:
        d = dir_of(os.path.join(cl.mnt(n), a.name), a.layout, n)
        out = os.path.join(work, f"{a.name}.create.{n}.json")
        outs.append(out)
        w.spawn(f"creator node{n}", n, create_main, d, n, a.files, go, out)
    hangwatch.say(f"{what}: {a.files} files per node")
    go.set()
    settle(w, "creating")
    res = [json.load(open(o)) for o in outs]
    errs = [f"node{r['node']}: {r['error']} after {r['done']} files" for r in res if r["error"]]
    report(not errs, f"{what}: every node created its {a.files} files (O_EXCL, 4 KiB, close)"
           + (": " + "; ".join(errs) if errs else ""))
    span = max(r["t1"] for r in res) - min(r["t0"] for r in res)
    total = sum(r["done"] for r in res)
    agg = total / span if span > 0 else 0.0
    per = {r["node"]: r["done"] / (r["t1"] - r["t0"]) if r["t1"] > r["t0"] else 0.0 for r in res}
    print(f"    rate: {what}: {total} files in {span:.2f} s = {agg:,.0f} files/s aggregate ("
          + ", ".join(f"node{n} {v:,.0f}/s" for n, v in sorted(per.items())) + ")", flush=True)
    if a.results:
        with open(a.results, "a") as f:
            f.write(json.dumps({"layout": a.layout, "nodes": nodes, "files": total,
                                "secs": span, "rate": agg, "per_node": per}) + "\n")

    # Every node lists and reads everything.
    expect = {}
    for r in res:
        rel = a.name if a.layout == "shared" else os.path.join(a.name, f"node{r['node']}")
        expect.setdefault(rel, []).extend(f"node{r['node']}.{k:05d}" for k in range(r["done"]))
    rels = sorted(expect)
    w = hangwatch.Watch(len(cl.nodes), a.limit, cl, inos)
    vouts = []
    for i, n in enumerate(cl.nodes):
        reads = rels
        if a.layout == "separate":
            others = [r for r in rels if r != os.path.join(a.name, f"node{n}")]
            reads = [others[i % len(others)]]
        out = os.path.join(work, f"{a.name}.verify.{n}.json")
        vouts.append((n, out))
        w.spawn(f"verify node{n}", n, verify_main, cl.mnt(n), rels, reads, expect, n, out)
    t0 = time.monotonic()
    if not settle(w, "reading back"):
        report(False, f"{what}: reading back failed on some node")
        return 1
    for n, out in vouts:
        v = json.load(open(out))
        report(not v["probs"], f"{what}: node{n} lists the {total} files and reads "
               f"{v['read']} of them right" + (": " + "; ".join(v["probs"][:5]) if v["probs"] else ""))
    hangwatch.say(f"{what}: read back on {len(cl.nodes)} nodes in {time.monotonic() - t0:.1f} s")
    return 1 if failed else 0


def report_table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    by = {(r["layout"], len(r["nodes"])): r for r in rows}
    print("    | nodes | shared directory | separate directories | shared/separate |")
    print("    |---:|---:|---:|---:|")
    for k in sorted({len(r["nodes"]) for r in rows}):
        s, p = by.get(("shared", k)), by.get(("separate", k))
        cell = lambda r: f"{r['rate']:,.0f} files/s" if r else "n/a"  # noqa: E731
        ratio = f"{s['rate'] / p['rate']:.2f}x" if s and p and p["rate"] else "n/a"
        print(f"    | {k} | {cell(s)} | {cell(p)} | {ratio} |")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--cluster", required=True)
    r.add_argument("--nodes", required=True, type=lambda v: [int(x) for x in v.split(",")])
    r.add_argument("--layout", required=True, choices=("shared", "separate"))
    r.add_argument("--name", required=True)
    r.add_argument("--files", type=int, default=2000)
    r.add_argument("--limit", type=float, default=hangwatch.LIMIT)
    r.add_argument("--work")
    r.add_argument("--results")
    p = sub.add_parser("report")
    p.add_argument("file")
    a = ap.parse_args()
    if a.cmd == "report":
        return report_table(a.file)
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
