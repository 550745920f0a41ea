#!/usr/bin/env python3
"""clusterbench.py: the parsing and reporting half of `bench.sh --cluster`.

  clusterbench.py fio KEY RW < fio.json
      fio's JSON output (one or more jobs that ran at once) to result lines:
      KEY.mbs, KEY.iops, KEY.ios (sums over the jobs) and KEY.JOB.mbs,
      KEY.JOB.iops (each job); a one-line summary goes to stderr.
  clusterbench.py counters PHASE DIR
      the difference between DIR/before.nodeI.json and DIR/after.nodeI.json
      (`cxfsctl status --json` of each node) as lines ctr:PHASE:nodeI:NAME.
  clusterbench.py report RESULTS [--repeat N --size MB --runtime S
                                  --meta-files N --quick 0|1 --commit C
                                  --built T]
      medians of the result lines, the tables and ratios, and the same
      tables in markdown for docs/PERFORMANCE.md.

Result lines are "KEY VALUE", one per measurement; a key measured in every
repeat appears once per repeat.
"""
import argparse
import datetime
import json
import statistics
import sys
from collections import defaultdict

NODES = ("node1", "node2", "node3")
CLIENTS = ("node2", "node3")   # node1 is the MDS: it counts forwards too

# fio jobs: key, label, metric, unit, the raw LUN reference.
JOBS = (("seqwrite", "seq write 1 MiB", "mbs", "MB/s", "raw.seqw.mbs"),
        ("seqread", "seq read 1 MiB", "mbs", "MB/s", "raw.seq.mbs"),
        ("randread", "rand read 4 KiB", "iops", "IOPS", "raw.rand.iops"),
        ("randwrite", "rand write 4 KiB", "iops", "IOPS", "raw.randw.iops"))
CONFIGS = (("one", "one client"),
           ("two", "two clients, two files"),
           ("shared", "two clients, one file"))
META_OPS = ("create", "stat", "rename", "unlink")
META_SHAPES = (("one", "1 dir"), ("many", "100 dirs"))

TARGET_WRITE = 0.80   # two writers on two files / raw LUN sequential write
TARGET_META = 0.50    # client metadata rate / MDS node metadata rate


# ---------------------------------------------------------------------------
# fio
# ---------------------------------------------------------------------------

def cmd_fio(key, rw):
    text = sys.stdin.read()
    jobs = json.loads(text[text.index("{"):])["jobs"]
    side = "write" if "write" in rw else "read"
    mbs = iops = ios = 0.0
    parts = []
    for job in jobs:
        s = job[side]
        j_mbs, j_iops = s["bw_bytes"] / 1e6, s["iops"]
        mbs, iops, ios = mbs + j_mbs, iops + j_iops, ios + s["total_ios"]
        print(f"{key}.{job['jobname']}.mbs {j_mbs:.1f}")
        print(f"{key}.{job['jobname']}.iops {j_iops:.0f}")
        parts.append(f"{job['jobname']} {j_mbs:.1f} MB/s {j_iops:.0f} IOPS")
    print(f"{key}.mbs {mbs:.1f}")
    print(f"{key}.iops {iops:.0f}")
    print(f"{key}.ios {ios:.0f}")
    now = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{now}] fio {key}: {mbs:.1f} MB/s, {iops:.0f} IOPS"
          + (f" ({'; '.join(parts)})" if len(parts) > 1 else ""), file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------
# counters
# ---------------------------------------------------------------------------

# The counters worth a difference: section path -> names (None: all numbers).
COUNTERS = (("device", None),
            ("cluster.messages", ("sent", "received", "calls", "timeouts")),
            ("cluster.token_client", None),
            ("cluster.token_server", None),
            ("cluster.cache", None))


def flat(status):
    out = {}
    for path, names in COUNTERS:
        d = status
        for part in path.split("."):
            d = d.get(part, {}) if isinstance(d, dict) else {}
        for k, v in d.items():
            if isinstance(v, (int, float)) and (names is None or k in names):
                out[f"{path.split('.')[-1]}.{k}"] = v
    return out


def cmd_counters(phase, cdir):
    for node in NODES:
        try:
            a = flat(json.load(open(f"{cdir}/before.{node}.json")))
            b = flat(json.load(open(f"{cdir}/after.{node}.json")))
        except (OSError, ValueError):
            continue
        for k in sorted(b):
            print(f"ctr:{phase}:{node}:{k} {b[k] - a.get(k, 0)}")
    return 0


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit in ("IOPS", "ops/s") or v >= 100:
        return f"{v:,.0f} {unit}"
    return f"{v:.1f} {unit}"


def missed(got, target):
    pts = round((target - got) * 100)
    return f"missed by {pts} point{'s' if pts != 1 else ''}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


class Results:
    def __init__(self, path):
        vals = defaultdict(list)
        for line in open(path):
            k, v = line.split()
            vals[k].append(float(v))
        self.vals = vals
        self.med = {k: statistics.median(v) for k, v in vals.items()}

    def g(self, k):
        return self.med.get(k)

    def per_repeat(self, num, den):
        """num/den within each repeat (the i-th value of each), if both were
        measured in every repeat; else an empty list."""
        a, b = self.vals.get(num, []), self.vals.get(den, [])
        if not a or len(a) != len(b) or not all(b):
            return []
        return [x / y for x, y in zip(a, b)]

    def spread(self, num, den):
        """ ' (per repeat X-Y)' for a ratio, or '' if there is one repeat."""
        rs = self.per_repeat(num, den)
        return f" (per repeat {min(rs):.2f}-{max(rs):.2f})" if len(rs) > 1 else ""

    def ctr(self, phase, name, nodes=NODES):
        """The median of a counter's difference over a phase, summed over nodes."""
        vs = [self.med.get(f"ctr:{phase}:{n}:{name}") for n in nodes]
        vs = [v for v in vs if v is not None]
        return sum(vs) if vs else None


def tables(r, a):
    """The report as (title, header, rows) tables; cells are strings."""
    out = []

    rows = [["seq read 256 KiB x16 (iscsi-perf)", fmt(r.g("raw.seq.mbs"), "MB/s")],
            ["rand read 4 KiB x16 (iscsi-perf)", fmt(r.g("raw.rand.iops"), "IOPS")],
            ["seq write 256 KiB x16 (cxfs-blkperf)", fmt(r.g("raw.seqw.mbs"), "MB/s")],
            ["rand write 4 KiB x16 (cxfs-blkperf)", fmt(r.g("raw.randw.iops"), "IOPS")],
            ["seq write 256 KiB x16, two sessions at once (sum)",
             fmt(r.g("raw.seqw2.mbs"), "MB/s")]]
    out.append(("Raw LUN (scratch tgtd, same size, random data)",
                ["measurement", "raw LUN"], rows))

    rows = []
    for job, label, metric, unit, ref in JOBS:
        row = [f"fio {label}, O_DIRECT, qd16", fmt(r.g(ref), unit)]
        for cfg, _ in CONFIGS:
            v = r.g(f"{cfg}.{job}.{metric}")
            cell = fmt(v, unit)
            n2, n3 = r.g(f"{cfg}.{job}.n2.{metric}"), r.g(f"{cfg}.{job}.n3.{metric}")
            if n2 is not None and n3 is not None:
                cell += f" ({n2:,.0f} + {n3:,.0f})"
            row += [cell, ratio(v, r.g(ref))]
        rows.append(row)
    out.append(("fio: one client (node2); two clients at once (node2 + node3) on two "
                "files and on one file; sums, per-node split in parentheses",
                ["measurement", "raw LUN", "one client", "/raw",
                 "two clients, two files", "/raw", "two clients, one file", "/raw"], rows))

    rows = []
    for shape, slabel in META_SHAPES:
        for op in META_OPS:
            c, m = r.g(f"client.meta.{shape}.{op}"), r.g(f"mds.meta.{shape}.{op}")
            rows.append([f"metadata {op}, {slabel}", fmt(c, "ops/s"), fmt(m, "ops/s"),
                         ratio(c, m)])
    out.append((f"Metadata ({a.meta_files} empty files): client node2 vs MDS node1",
                ["measurement", "client (node2)", "MDS node (node1)", "client/MDS"], rows))

    rows = []
    w, raw = r.g("two.seqwrite.mbs"), r.g("raw.seqw.mbs")
    if w is not None and raw:
        verdict = "met" if w / raw >= TARGET_WRITE else \
            missed(w / raw, TARGET_WRITE)
    else:
        verdict = "n/a"
    rows.append([f"two writers on two files, seq write sum >= {TARGET_WRITE:.2f}x raw LUN "
                 "seq write", f"{fmt(w, 'MB/s')} / {fmt(raw, 'MB/s')} = {ratio(w, raw)}"
                 + r.spread("two.seqwrite.mbs", "raw.seqw.mbs"), verdict])
    raw2 = r.g("raw.seqw2.mbs")
    rows.append(["(no target) the same against two raw writers at once",
                 f"{fmt(w, 'MB/s')} / {fmt(raw2, 'MB/s')} = {ratio(w, raw2)}"
                 + r.spread("two.seqwrite.mbs", "raw.seqw2.mbs"), ""])
    for op in META_OPS:
        rs = []
        for shape, slabel in META_SHAPES:
            c, m = r.g(f"client.meta.{shape}.{op}"), r.g(f"mds.meta.{shape}.{op}")
            if c is not None and m:
                rs.append((c / m, r.spread(f"client.meta.{shape}.{op}",
                                           f"mds.meta.{shape}.{op}"), slabel))
        txt = ", ".join(f"{lab} {x:.2f}x{sp}" for x, sp, lab in rs) or "n/a"
        worst = min((x for x, *_ in rs), default=None)
        verdict = "n/a" if worst is None else "met" if worst >= TARGET_META else \
            missed(worst, TARGET_META) + " (worst)"
        rows.append([f"client {op} >= {TARGET_META:.2f}x MDS node", txt, verdict])
    out.append(("Against the targets", ["target", "result", "verdict"], rows))

    rows = []
    phases = [(f"{cfg}.{job}", f"fio {cfg} {job}", r.g(f"{cfg}.{job}.ios"))
              for cfg, _ in CONFIGS for job, *_ in JOBS]
    phases += [(f"meta.{t}.{shape}", f"metadata {t} {slabel}", 4 * a.meta_files)
               for t in ("client", "mds") for shape, slabel in META_SHAPES]

    def c(v):
        return "n/a" if v is None else f"{v:,.0f}"

    for phase, label, ops in phases:
        sent = r.ctr(phase, "messages.sent")
        per = f"{sent / ops:.2f}" if sent is not None and ops else "n/a"
        rows.append([label, c(ops), c(sent), per,
                     c(r.ctr(phase, "token_client.acquires_server")),
                     c(r.ctr(phase, "token_client.acquires_cached")),
                     c(r.ctr(phase, "token_server.recalls")),
                     c(r.ctr(phase, "cache.forwards", CLIENTS)),
                     c(r.ctr(phase, "cache.allocs", CLIENTS)),
                     c(r.ctr(phase, "cache.write_dones", CLIENTS)),
                     c(r.ctr(phase, "cache.map_fetches", CLIENTS)),
                     c(r.ctr(phase, "cache.page_invals", CLIENTS))])
    out.append(("Cluster counters per phase (median over the repeats of each phase's "
                "difference; ops = fio I/Os, or 4 x files for metadata; messages and token "
                "acquisitions summed over the three nodes, recalls as the token server "
                "(node1) counts them, the rest as the client nodes (node2, node3) count them)",
                ["phase", "ops", "msgs sent", "msgs/op", "tok acq server",
                 "tok acq cached", "recalls", "forwards", "allocs", "write_dones",
                 "map_fetches", "page_invals"], rows))
    return out


def cmd_report(a):
    r = Results(a.results)
    today = datetime.date.today().isoformat()
    head = (f"cxfs cluster benchmark, {today}, commit {a.commit} (cxfsd built {a.built}): "
            f"3 nodes on one box (node1 MDS), tgtd on loopback; median of {a.repeat} "
            f"run(s); fio libaio iodepth 16 O_DIRECT, {a.size} MiB files, {a.runtime} s "
            f"per job; metadata {a.meta_files} files{' (quick)' if a.quick == '1' else ''}")
    load = r.vals.get("load.1min")
    if load:
        head += (f"; 1-min load average after the phases: median {statistics.median(load):.1f},"
                 f" max {max(load):.1f}")
    ts = tables(r, a)
    print()
    print(head)
    for title, hdr, rows in ts:
        widths = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)]
        print()
        print(title)
        line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                         for i, (h, w) in enumerate(zip(hdr, widths)))
        print(line)
        print("-" * len(line))
        for row in rows:
            print("  ".join(x.ljust(w) if i == 0 else x.rjust(w)
                            for i, (x, w) in enumerate(zip(row, widths))))
    print()
    print("## Markdown (for docs/PERFORMANCE.md)")
    print()
    print(head + ".")
    for title, hdr, rows in ts:
        print()
        print(f"**{title}**")
        print()
        print("| " + " | ".join(hdr) + " |")
        print("|---" + "|---:" * (len(hdr) - 1) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "fio" and len(args) == 2:
        return cmd_fio(*args)
    if cmd == "counters" and len(args) == 2:
        return cmd_counters(*args)
    if cmd == "report":
        p = argparse.ArgumentParser(prog="clusterbench.py report")
        p.add_argument("results")
        p.add_argument("--repeat", default="?")
        p.add_argument("--size", default="?")
        p.add_argument("--runtime", default="?")
        p.add_argument("--meta-files", type=int, default=0)
        p.add_argument("--quick", default="0")
        p.add_argument("--commit", default="unknown")
        p.add_argument("--built", default="unknown")
        return cmd_report(p.parse_args(args))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
