#!/usr/bin/env python3
"""hangwatch.py: the watchdog of the multi-node stress tests and benchmarks.

A driver (stress.py, shared_dir.py, bench/shareddirbench.py) never touches a
cxfs mount itself: everything that does runs in a child process forked by
Watch.spawn, which announces each operation in a slot of shared memory
(slot.begin("create d0/n3 on node2") ... slot.end()).  The driver's own
process polls the slots (Watch.wait); an operation that has not returned
after LIMIT seconds (30 by default) is a hang, and then, in this order:

  1. dump    what every node is doing, while the hang is still there:
             the operations in flight (worker, node, seconds) and the kernel
             stack of each of their processes; every node's
             `status json` from its admin socket (in full, and its token
             server's and client's counters), its `waits` section if the
             daemon has one (and its answer to a "waits" request, if it
             understands one), `tokens INO` of the watched inodes (the
             shared directories) on every node, the requests in flight on
             each FUSE connection, the cxfsd threads' stacks (gdb, if
             installed) grouped by stack, and the last lines of each log;
  2. abort   every node's FUSE connection (/sys/fs/fuse/connections/N/abort,
             mounting fusectl if needed): each process stuck in
             request_wait_answer, or on a directory lock behind one, returns
             ECONNABORTED/ENOTCONN;
  3. kill    the children (SIGKILL, by PID) and reap them.

so the test always ends, and its cleanup (scripts/local-cluster down) can
unmount the dead mounts.  The admin socket is asked with a time-out, gdb has
one too: the dump itself cannot hang.

Also a command line, for the shell tests' fallbacks:

  hangwatch.py dump  --cluster DIR [--ino N ...]   the dump above
  hangwatch.py abort --cluster DIR                 abort every node's connection
  hangwatch.py abort-stuck --cluster DIR [--secs S]
        abort only if some node's FUSE connection has had requests waiting
        for S seconds (default 3) in a row; for the cleanup of a test, run
        when none of its processes should still use the mounts.  Exit 0
        nothing was stuck, 3 something was (and was aborted).
"""
import argparse
import contextlib
import ctypes
import glob
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

LIMIT = 30.0              # seconds one operation may take
FUSECTL = "/sys/fs/fuse/connections"
EXIT_HANG = 3             # a driver's exit status when the watchdog fired
CTX = mp.get_context("fork")   # children share the slots and the driver's state


def say(*a):
    print(time.strftime("[%H:%M:%S]"), *a, flush=True)


# ---------------------------------------------------------------------------
# The cluster (a scripts/local-cluster directory).
# ---------------------------------------------------------------------------

class Cluster:
    """DIR/node<i>/{mnt,admin.sock,log,pid} of scripts/local-cluster."""

    def __init__(self, cdir):
        self.dir = cdir
        nodes = []
        for d in glob.glob(os.path.join(cdir, "node*")):
            m = re.fullmatch(r"node(\d+)", os.path.basename(d))
            if m and os.path.isdir(d):
                nodes.append(int(m.group(1)))
        self.nodes = sorted(nodes)

    def mnt(self, i):
        return os.path.join(self.dir, f"node{i}", "mnt")

    def sock(self, i):
        return os.path.join(self.dir, f"node{i}", "admin.sock")

    def log(self, i):
        return os.path.join(self.dir, f"node{i}", "log")

    def pid(self, i):
        try:
            return int(open(os.path.join(self.dir, f"node{i}", "pid")).read().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def admin(sock, req, timeout=10.0):
    """The daemon's whole answer to one request line (raises OSError)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        s.sendall(req.encode() + b"\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode(errors="replace")
    finally:
        s.close()


def status_json(sock, timeout=10.0):
    """A node's `status json` as a dict, or None."""
    try:
        return json.loads(admin(sock, "status json", timeout))
    except (OSError, ValueError):
        return None


def fuse_conns(mounts):
    """mount point -> its FUSE connection's number (the name of its
    directory under /sys/fs/fuse/connections: the kernel's dev_t of the
    superblock), read from /proc/self/mountinfo: never stats the mount."""
    # abspath, not realpath: realpath lstat()s the mount point, which asks
    # the FUSE daemon and hangs with it.
    want = {os.path.normpath(os.path.abspath(m)): m for m in mounts}
    out = {}
    try:
        lines = open("/proc/self/mountinfo").read().splitlines()
    except OSError:
        return out
    for line in lines:
        f = line.split()
        if len(f) < 5:
            continue
        mp_ = f[4].replace("\\040", " ")
        if mp_ in want:
            major, minor = (int(x) for x in f[2].split(":"))
            out[want[mp_]] = (major << 20) | minor
    return out


# ---------------------------------------------------------------------------
# Slots: what each child is doing.
# ---------------------------------------------------------------------------

class Slot(ctypes.Structure):
    _fields_ = [("t0", ctypes.c_double),       # CLOCK_MONOTONIC at begin, 0 idle
                ("pid", ctypes.c_int),
                ("node", ctypes.c_int),
                ("done", ctypes.c_long),          # operations completed
                ("what", ctypes.c_char * 240)]

    def begin(self, what):
        self.what = what.encode()[:239]
        self.t0 = time.monotonic()

    def end(self):
        self.t0 = 0.0
        self.done += 1


class Watch:
    """Children with slots, and the watchdog over them."""

    def __init__(self, nslots, limit=LIMIT, cluster=None, inos=(), mounts=(), dump_to=None):
        self.slots = CTX.Array(Slot, nslots, lock=False)
        self.limit = limit
        self.cluster = cluster
        self.inos = list(inos)
        self.procs = []          # (Process, slot index, name)
        self.next_slot = 0
        mounts = list(mounts) or ([cluster.mnt(i) for i in cluster.nodes] if cluster else [])
        self.conns = fuse_conns(mounts)   # recorded while the mounts are sound
        self.fired = False
        self.dump_to = dump_to   # a file for the dump (default: standard output)

    def spawn(self, name, node, target, *args):
        """Fork a child running target(slot, *args); its slot says node."""
        i = self.next_slot
        self.next_slot += 1
        slot = self.slots[i]
        slot.node = node
        slot.t0 = 0.0
        slot.done = 0
        slot.what = b""

        def run():
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            slot.pid = os.getpid()
            try:
                target(slot, *args)
            except BaseException:
                import traceback
                traceback.print_exc()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(1)
            sys.stdout.flush()
            os._exit(0)

        p = CTX.Process(target=run, name=name, daemon=False)
        p.start()
        self.procs.append((p, i, name))
        return p

    def in_flight(self):
        now = time.monotonic()
        out = []
        for p, i, name in self.procs:
            s = self.slots[i]
            t0 = s.t0
            if t0 > 0 and p.exitcode is None:
                out.append((now - t0, name, s.node, p.pid, s.what.decode(errors="replace")))
        return sorted(out, reverse=True)

    def poll(self, deadline=None):
        """None while nothing is wrong; "hang" once an operation has passed
        the limit, "deadline" at DEADLINE (a time.monotonic() value): the
        watchdog has then fired."""
        if any(f[0] > self.limit for f in self.in_flight()):
            self.fire(f"an operation did not return in {self.limit:.0f} s")
            return "hang"
        if deadline is not None and time.monotonic() > deadline:
            self.fire("the run did not end by its deadline")
            return "deadline"
        return None

    def wait(self, deadline=None):
        """Wait until every child has ended: "ok" (all exited 0), "failed"
        (some exited non-zero), or what poll() said ("hang", "deadline")."""
        while True:
            alive = [p for p, _, _ in self.procs if p.exitcode is None]
            if not alive:
                break
            r = self.poll(deadline)
            if r:
                return r
            time.sleep(0.25)
        bad = [(name, p.exitcode) for p, _, name in self.procs if p.exitcode != 0]
        for p, _, _ in self.procs:
            p.join()
        self.procs = []
        self.next_slot = 0
        if bad:
            say("children that failed: " + ", ".join(f"{n} (exit {c})" for n, c in bad))
            return "failed"
        return "ok"

    def fire(self, why):
        self.fired = True
        flight = self.in_flight()
        say(f"WATCHDOG: {why}")
        for secs, name, node, pid, what in flight:
            say(f"WATCHDOG:   {secs:6.1f} s  {name} (pid {pid}, node{node}): {what}")
        say("WATCHDOG: calls completed before: " + ", ".join(
            f"{name} {self.slots[i].done}" for _, i, name in self.procs))
        if self.dump_to:
            say(f"WATCHDOG: the dump goes to {self.dump_to}")
            with open(self.dump_to, "a") as out, contextlib.redirect_stdout(out):
                say(f"WATCHDOG: {why}")
                dump(self.cluster, self.inos, [f[3] for f in flight], self.conns)
        else:
            dump(self.cluster, self.inos, [f[3] for f in flight], self.conns)
        abort(self.cluster, self.conns)
        self.kill_all()

    def kill_all(self):
        for p, _, _ in self.procs:
            if p.exitcode is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except OSError:
                    pass
        t_end = time.monotonic() + 30
        for p, _, name in self.procs:
            p.join(max(0.1, t_end - time.monotonic()))
            if p.exitcode is None:
                say(f"WATCHDOG: {name} (pid {p.pid}) survives SIGKILL 30 s after the abort: "
                    f"{proc_state(p.pid)}")
        self.procs = []
        self.next_slot = 0


# ---------------------------------------------------------------------------
# The dump.
# ---------------------------------------------------------------------------

def proc_state(pid):
    try:
        st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
    try:
        wchan = open(f"/proc/{pid}/wchan").read().strip() or "-"
    except OSError:
        wchan = "?"
    return f"state {st}, wchan {wchan}"


def kernel_stack(pid, tid=None):
    path = f"/proc/{pid}/task/{tid}/stack" if tid else f"/proc/{pid}/stack"
    try:
        frames = [l.split()[1].split("+")[0] for l in open(path) if l.strip()]
    except (OSError, IndexError):
        return "(no /proc stack)"
    frames = [f for f in frames if not f.startswith(("entry_SYSCALL", "do_syscall"))]
    return " < ".join(frames[:10]) or "(user space)"


def find_waits(obj, path=""):
    """(path, value) of every key with "wait" in its name whose value is a
    list or an object: the daemon's waits section, wherever it puts it."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{path}.{k}" if path else k
            if "wait" in k.lower() and isinstance(v, (list, dict)):
                out.append((p, v))
            elif isinstance(v, (dict, list)):
                out.extend(find_waits(v, p))
    elif isinstance(obj, list):
        for n, v in enumerate(obj):
            out.extend(find_waits(v, f"{path}[{n}]"))
    return out


def task_states(pid):
    """cxfsd's threads: [(tid, name, state, wchan, kernel stack)]."""
    out = []
    for t in sorted(glob.glob(f"/proc/{pid}/task/*"), key=lambda p: int(p.rsplit("/", 1)[1])):
        tid = int(t.rsplit("/", 1)[1])
        try:
            raw = open(f"{t}/stat").read()
            name = raw[raw.index("(") + 1:raw.rindex(")")]
            st = raw.rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            continue
        wchan = read_small(f"{t}/wchan") or "-"
        out.append((tid, name, st, wchan, kernel_stack(pid, tid) if st == "D" else ""))
    return out


def gdb_threads(pid, timeout=20):
    """cxfsd's threads grouped by stack (the functions of cxfs's own
    sources, innermost first), busiest first; None without gdb."""
    gdb = shutil.which("gdb")
    if not gdb:
        return None
    try:
        out = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx", "-ex", "set pagination off",
                              "-ex", "thread apply all bt 16"], capture_output=True, text=True,
                             timeout=timeout).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        # gdb waits for every thread to stop, and a thread in D state does
        # not; killed, gdb may leave the daemon stopped: wake it.
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass
        return [f"(gdb failed: {e})"]
    stacks, cur = [], None
    for line in out.splitlines():
        if line.startswith("Thread "):
            if cur is not None:
                stacks.append(cur)
            cur = []
        elif cur is not None and line.startswith("#") and "/src/" in line:
            m = re.match(r"#\d+\s+(?:0x[0-9a-f]+ in )?([A-Za-z_][A-Za-z_0-9]*) \((.*)\) at (\S+)", line)
            if m:
                fn, args, where = m.groups()
                ino = re.search(r"\bino=(?:ino@entry=)?(\d+)", args)
                loc = where.rsplit("/src/", 1)[-1]
                cur.append(fn + (f"[ino {ino.group(1)}]" if ino else "") + f" ({loc})")
    if cur is not None:
        stacks.append(cur)
    groups = {}
    for s in stacks:
        key = " < ".join(s[:9]) or "(no cxfs frames)"
        groups[key] = groups.get(key, 0) + 1
    return [f"{n:3d} x {k}" for k, n in sorted(groups.items(), key=lambda kv: -kv[1])]


def tail(path, n):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            return f.read().decode(errors="replace").splitlines()[-n:]
    except OSError as e:
        return [f"({path}: {e})"]


def dump(cluster, inos=(), pids=(), conns=None, log_lines=30):
    if cluster is None:
        say("DUMP: no cluster directory was given: nothing to ask")
        return
    say(f"DUMP: the cluster of {cluster.dir}, nodes {cluster.nodes}")
    for pid in pids:
        say(f"DUMP: process {pid}: {proc_state(pid)}; kernel stack: {kernel_stack(pid)}")
    for i in cluster.nodes:
        sock = cluster.sock(i)
        t0 = time.monotonic()
        try:
            raw = admin(sock, "status json")
            st = json.loads(raw)
        except (OSError, ValueError) as e:
            say(f"DUMP node{i}: status json: no answer ({e!r}) after {time.monotonic() - t0:.1f} s")
            st = None
        if st is not None:
            c = st.get("cluster", {}) if isinstance(st.get("cluster"), dict) else {}
            say(f"DUMP node{i}: server {c.get('server')}, this node serves: {c.get('is_server')}; "
                f"vnodes {st.get('vnodes')}")
            for k in ("token_server", "token_client", "messages"):
                if isinstance(c.get(k), dict):
                    v = {kk: vv for kk, vv in c[k].items() if not isinstance(vv, dict)}
                    say(f"DUMP node{i}: {k} {json.dumps(v)}")
            waits = find_waits(st)
            if waits:
                for p, v in waits:
                    say(f"DUMP node{i}: {p}: {json.dumps(v)}")
            else:
                say(f"DUMP node{i}: status json has no waits section")
            say(f"DUMP node{i}: status json: {json.dumps(st, separators=(',', ':'))}")
        for req in ("waits json", "waits"):
            try:
                ans = admin(sock, req, 5.0).strip()
            except OSError as e:
                ans = f"error: {e!r}"
            if ans and not ans.startswith("error") and '"error"' not in ans[:40]:
                for line in ans.splitlines()[:200]:
                    say(f"DUMP node{i}: {req}: {line}")
                break
        for ino in inos:
            try:
                ans = admin(sock, f"tokens {ino}", 5.0).strip()
            except OSError as e:
                ans = f"no answer ({e!r})"
            say(f"DUMP node{i}: tokens {ino}: {ans}")
    in_d = set()
    if conns:
        for mnt, c in conns.items():
            w = read_small(os.path.join(FUSECTL, str(c), "waiting"))
            say(f"DUMP FUSE connection {c} ({mnt}): requests waiting: {w if w is not None else '?'}")
    for i in cluster.nodes:
        pid = cluster.pid(i)
        if pid is None:
            continue
        tasks = task_states(pid)
        states = {}
        for _, _, st, wchan, _ in tasks:
            k = f"{st} {wchan}"
            states[k] = states.get(k, 0) + 1
        say(f"DUMP node{i}: cxfsd (pid {pid}) {len(tasks)} threads, by state and wait channel: "
            + ", ".join(f"{n} {k}" for k, n in sorted(states.items(), key=lambda kv: -kv[1])))
        for tid, name, st, wchan, stack in tasks:
            if st == "D":
                say(f"DUMP node{i}:   thread {tid} ({name}) in D state, kernel stack: {stack}")
                in_d.add(i)
    for i in cluster.nodes:
        pid = cluster.pid(i)
        if pid is None:
            continue
        if i in in_d:
            say(f"DUMP node{i}: cxfsd thread stacks: not asked of gdb (it would wait for the "
                "threads in D state)")
            continue
        t0 = time.monotonic()
        groups = gdb_threads(pid)
        if groups is None:
            say(f"DUMP node{i}: cxfsd thread stacks: gdb is not installed")
            break
        say(f"DUMP node{i}: cxfsd (pid {pid}) threads by stack ({time.monotonic() - t0:.1f} s):")
        for g in groups:
            say(f"DUMP node{i}:   {g}")
    for i in cluster.nodes:
        say(f"DUMP node{i}: last lines of {cluster.log(i)}:")
        for line in tail(cluster.log(i), log_lines):
            print(f"    {line}")
    sys.stdout.flush()


def read_small(path):
    try:
        return open(path).read().strip()
    except OSError:
        return None


# ---------------------------------------------------------------------------
# Abort.
# ---------------------------------------------------------------------------

def fusectl_mounted():
    try:
        return any(l.split()[1] == FUSECTL for l in open("/proc/self/mounts"))
    except (OSError, IndexError):
        return False


def ensure_fusectl():
    """Mount fusectl if it is not; True if this call mounted it."""
    if fusectl_mounted():
        return False
    r = subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL],
                       capture_output=True, text=True)
    if r.returncode != 0:
        say(f"cannot mount fusectl on {FUSECTL}: {r.stderr.strip()}")
        return False
    return True


def abort(cluster, conns=None):
    """Abort the FUSE connection of every node's mount."""
    if conns is None:
        conns = fuse_conns([cluster.mnt(i) for i in cluster.nodes]) if cluster else {}
    if not conns:
        say("ABORT: no FUSE connection known for the mounts")
        return
    mounted = ensure_fusectl()
    for mnt, c in sorted(conns.items(), key=lambda kv: kv[1]):
        path = os.path.join(FUSECTL, str(c), "abort")
        try:
            with open(path, "w") as f:
                f.write("1")
            say(f"ABORT: FUSE connection {c} ({mnt}) aborted")
        except OSError as e:
            say(f"ABORT: {path}: {e}")
    if mounted:
        subprocess.run(["umount", FUSECTL], capture_output=True)


def abort_stuck(cluster, secs):
    """Abort the connections if some has had requests waiting SECS seconds
    in a row (nothing of the test should use the mounts any more)."""
    conns = fuse_conns([cluster.mnt(i) for i in cluster.nodes])
    if not conns:
        return 0
    mounted = ensure_fusectl()
    stuck = {}
    try:
        for _ in range(int(secs * 4) + 1):
            stuck = {}
            for mnt, c in conns.items():
                w = read_small(os.path.join(FUSECTL, str(c), "waiting"))
                if w not in (None, "0"):
                    stuck[mnt] = w
            if not stuck:
                return 0
            time.sleep(0.25)
    finally:
        if mounted:
            subprocess.run(["umount", FUSECTL], capture_output=True)
    say("requests still waiting on FUSE connections after the test: "
        + ", ".join(f"{m}: {w}" for m, w in stuck.items()))
    dump(cluster, (), (), conns)
    abort(cluster, conns)
    return EXIT_HANG


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", choices=("dump", "abort", "abort-stuck"))
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--ino", type=int, action="append", default=[])
    ap.add_argument("--secs", type=float, default=3.0)
    a = ap.parse_args()
    cl = Cluster(a.cluster)
    if a.cmd == "dump":
        dump(cl, a.ino, (), fuse_conns([cl.mnt(i) for i in cl.nodes]))
        return 0
    if a.cmd == "abort":
        abort(cl)
        return 0
    return abort_stuck(cl, a.secs)


if __name__ == "__main__":
    sys.exit(main())
