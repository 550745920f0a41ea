#!/usr/bin/env python3
"""badframe.py: send hostile frames to a cxfs node's TCP port and check that
the node refuses them.

Usage:
  badframe.py --host 127.0.0.1 --port P --secret FILE --cluster NAME
              [--node NAME] [--epoch N] [--timeout S] [--only a,b,...]
  badframe.py --self-test

The wire format is that of src/rpc/rpc_i.h: a 32-byte little-endian header
(magic "CXFS" 0x53465843, version u16 = 1, type u16, flags u16 (1 request,
2 reply, 4 one-way), reserved u16 = 0, payload length u32, request id u64,
epoch u64), the protobuf payload, and an HMAC-SHA-256 over header and
payload keyed by all the bytes of the cluster secret file.  The first frame
on a connection must be a HELLO (type 1) whose payload is
Hello {version = 1, cluster, node, epoch}; the node answers HELLO_REPLY
(type 2).

Cases, each on a new connection:
  a  a valid HELLO is answered by a HELLO_REPLY with a valid MAC (the
     positive control: if it fails, the other cases are not run)
  b  HELLO with a wrong MAC
  c  a header announcing a 64 MiB payload
  d  4 KiB of random garbage
  e  wrong magic (valid MAC)
  f  wrong protocol version (valid MAC)
  g  a valid HELLO, its reply, then a frame of the unknown type 999
  h  half of a valid HELLO frame, then our side closes (shutdown)
  i  HELLO naming another cluster (valid MAC)
  j  a HELLO_REPLY before any HELLO (valid MAC)
  k  a header with a nonzero reserved field and two flags (valid MAC)
  l  a valid HELLO, its reply, then a second HELLO
  z  a valid HELLO again, after all the above: the node still answers
For b to l the node must close the connection (reading gives EOF or
ECONNRESET) within --timeout seconds (default 5) without sending any frame
(after the reply to the valid HELLO, in g and l).  One line per case, "ok"
or "FAIL"; exit 0 if every case behaved, 1 otherwise, 2 for usage errors.

--node and --epoch are what our frames say (default "badframe", a name no
node has, so the node never takes the connection for a cluster member's;
and epoch 1, the first membership epoch).  A node refuses frames whose
epoch is below its own ("stale epoch"): pass its current epoch.

--self-test needs no node: it checks the encoder with known answers and by
decoding its own frames, then runs every case against two small in-process
servers, one that checks frames as the rpc layer does (every case must pass)
and one that accepts anything (every hostile case must be reported).
"""
import argparse
import hashlib
import hmac
import os
import random
import socket
import struct
import sys
import threading
import time

MAGIC = 0x53465843
VERSION = 1
HDR = struct.Struct("<IHHHHIQQ")      # magic version type flags reserved len id epoch
MAC_SIZE = 32
F_REQUEST, F_REPLY, F_ONEWAY = 1, 2, 4
T_HELLO, T_HELLO_REPLY = 1, 2
MAX_PAYLOAD = 16 << 20                 # the most any node accepts (RPC_MAX_PAYLOAD_LIMIT)
assert HDR.size == 32

# ---------------------------------------------------------------------------
# Protobuf, by hand (varints and length-delimited fields).
# ---------------------------------------------------------------------------


def varint(n):
    if n < 0:
        n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_uint(field, n):
    return varint(field << 3 | 0) + varint(n)


def pb_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(field << 3 | 2) + varint(len(b)) + b


def hello_payload(cluster, node, epoch, version=VERSION):
    """Hello {version = 1; cluster = 2; node = 3; epoch = 4} (HelloReply alike)."""
    return pb_uint(1, version) + pb_bytes(2, cluster) + pb_bytes(3, node) + pb_uint(4, epoch)


def read_varint(buf, i):
    n = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def pb_decode(buf):
    """Field number -> list of values (int for varints, bytes otherwise)."""
    out = {}
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            if i + n > len(buf):
                raise ValueError("length-delimited field past the end")
            v, i = bytes(buf[i:i + n]), i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        if field == 0 or i > len(buf):
            raise ValueError("bad field")
        out.setdefault(field, []).append(v)
    return out


def decode_hello(payload):
    """(version, cluster, node, epoch) of a Hello or HelloReply payload."""
    f = pb_decode(payload)
    for k in (1, 2, 3, 4):
        if k not in f:
            raise ValueError(f"required field {k} missing")
    return f[1][-1], f[2][-1].decode(), f[3][-1].decode(), f[4][-1]


# ---------------------------------------------------------------------------
# Frames.
# ---------------------------------------------------------------------------


def mac_of(secret, data):
    return hmac.new(secret, data, hashlib.sha256).digest()


def frame(secret, mtype, flags, payload=b"", rid=1, epoch=0, magic=MAGIC, version=VERSION,
          reserved=0, length=None, bad_mac=False):
    """A whole frame; @length overrides the announced payload length."""
    hdr = HDR.pack(magic, version, mtype, flags, reserved,
                   len(payload) if length is None else length, rid, epoch)
    mac = mac_of(secret, hdr + payload)
    if bad_mac:
        mac = bytes([mac[0] ^ 0x01]) + mac[1:]
    return hdr + payload + mac


class Frame:
    """A decoded frame."""

    def __init__(self, secret, data):
        if len(data) < HDR.size + MAC_SIZE:
            raise ValueError("shorter than a header and a MAC")
        (self.magic, self.version, self.type, self.flags, self.reserved, self.len, self.id,
         self.epoch) = HDR.unpack_from(data)
        if len(data) != HDR.size + self.len + MAC_SIZE:
            raise ValueError(f"{len(data)} bytes, header says {self.len} of payload")
        self.payload = bytes(data[HDR.size:HDR.size + self.len])
        self.mac = bytes(data[HDR.size + self.len:])
        self.mac_ok = secret is not None and hmac.compare_digest(
            self.mac, mac_of(secret, bytes(data[:HDR.size + self.len])))

    def __str__(self):
        return (f"frame type {self.type} flags {self.flags} id {self.id} epoch {self.epoch} "
                f"len {self.len} MAC {'good' if self.mac_ok else 'BAD'}")


class Conn:
    """One TCP connection to the node, with deadline-bound reads."""

    def __init__(self, host, port, timeout):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = None            # why the connection ended, once it did

    def send(self, data):
        """Send; False if the node already closed (which ends sending)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError) as ex:
            self.eof = type(ex).__name__
            return False

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _fill(self, deadline):
        """Read more into buf; False at EOF/RST (self.eof says) or deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            b = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.eof = "ECONNRESET"
            return False
        if not b:
            self.eof = "EOF"
            return False
        self.buf += b
        return True

    def read_frame(self, secret):
        """The next frame, or None (see self.eof: None means time-out)."""
        deadline = time.monotonic() + self.timeout
        while len(self.buf) < HDR.size:
            if not self._fill(deadline):
                return None
        n = HDR.unpack_from(self.buf)[5]
        if n > MAX_PAYLOAD:
            raise ValueError(f"the node sent a header announcing {n} bytes")
        need = HDR.size + n + MAC_SIZE
        while len(self.buf) < need:
            if not self._fill(deadline):
                return None
        data, self.buf = bytes(self.buf[:need]), self.buf[need:]
        return Frame(secret, data)

    def expect_closed(self):
        """None if the node closes within the time-out without sending a
        byte; otherwise what went wrong."""
        deadline = time.monotonic() + self.timeout
        while self._fill(deadline):
            pass
        if self.buf:
            what = f"{len(self.buf)} bytes"
            if len(self.buf) >= HDR.size:
                m, v, t, fl = HDR.unpack_from(self.buf)[:4]
                if m == MAGIC:
                    what = f"a frame (type {t}, flags {fl}; {len(self.buf)} bytes)"
            return f"the node sent {what} instead of closing"
        if not self.eof:
            return f"the connection is still open after {self.timeout:g} s"
        return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# The cases.
# ---------------------------------------------------------------------------


class Target:
    def __init__(self, host, port, secret, cluster, node, epoch, timeout):
        self.host, self.port, self.secret = host, port, secret
        self.cluster, self.node, self.epoch, self.timeout = cluster, node, epoch, timeout

    def connect(self):
        return Conn(self.host, self.port, self.timeout)

    def hello(self, rid=1, **kw):
        p = hello_payload(kw.pop("cluster", self.cluster), self.node, self.epoch)
        return frame(self.secret, T_HELLO, F_REQUEST, p, rid=rid, epoch=self.epoch, **kw)

    def handshake(self, c):
        """Send a valid HELLO and check its reply; returns a description."""
        c.send(self.hello(rid=1))
        f = c.read_frame(self.secret)
        if f is None:
            raise CaseFailed("no reply to a valid HELLO (" +
                             (f"connection closed: {c.eof}" if c.eof else
                              f"nothing within {self.timeout:g} s") +
                             f"); check --secret and --cluster, and that the node's "
                             f"membership epoch is not above --epoch {self.epoch}")
        if not f.mac_ok:
            raise CaseFailed(f"the reply to HELLO has a bad MAC ({f})")
        if f.magic != MAGIC or f.version != VERSION:
            raise CaseFailed(f"the reply has magic {f.magic:#x} version {f.version}")
        if f.type != T_HELLO_REPLY or f.flags != F_REPLY or f.id != 1:
            raise CaseFailed(f"expected HELLO_REPLY (type 2, flags 2, id 1), got {f}")
        try:
            version, cluster, node, epoch = decode_hello(f.payload)
        except (ValueError, UnicodeDecodeError) as ex:
            raise CaseFailed(f"the HELLO_REPLY does not decode: {ex}")
        if version != VERSION or cluster != self.cluster:
            raise CaseFailed(f"the HELLO_REPLY says version {version}, cluster {cluster!r}")
        return f"HELLO_REPLY from node {node!r} (epoch {epoch}, MAC good)"


class CaseFailed(Exception):
    pass


def must_close(c):
    why = c.expect_closed()
    if why:
        raise CaseFailed(why)
    return f"closed ({c.eof}), no frame"


def case_a(t, c):
    return t.handshake(c)


def case_b(t, c):
    c.send(t.hello(bad_mac=True))
    return must_close(c)


def case_c(t, c):
    hdr = HDR.pack(MAGIC, VERSION, T_HELLO, F_REQUEST, 0, 64 << 20, 1, t.epoch)
    c.send(hdr)
    return must_close(c)


def case_d(t, c):
    junk = bytearray(random.Random(0xBAD).randbytes(4096))
    if junk[:4] == struct.pack("<I", MAGIC):
        junk[0] ^= 0xFF
    c.send(bytes(junk))
    return must_close(c)


def case_e(t, c):
    c.send(t.hello(magic=0x53465844))          # "DXFS"
    return must_close(c)


def case_f(t, c):
    c.send(t.hello(version=VERSION + 1))
    return must_close(c)


def case_g(t, c):
    t.handshake(c)
    c.send(frame(t.secret, 999, F_REQUEST, b"", rid=2, epoch=t.epoch))
    return "after the handshake: " + must_close(c)


def case_h(t, c):
    f = t.hello()
    c.send(f[:HDR.size + (len(f) - HDR.size) // 2])
    c.shutdown_write()
    return must_close(c)


def case_i(t, c):
    c.send(t.hello(cluster=t.cluster + "-other"))
    return must_close(c)


def case_j(t, c):
    p = hello_payload(t.cluster, t.node, t.epoch)
    c.send(frame(t.secret, T_HELLO_REPLY, F_REPLY, p, rid=1, epoch=t.epoch))
    return must_close(c)


def case_k(t, c):
    p = hello_payload(t.cluster, t.node, t.epoch)
    c.send(frame(t.secret, T_HELLO, F_REQUEST | F_REPLY, p, reserved=7, epoch=t.epoch))
    return must_close(c)


def case_l(t, c):
    t.handshake(c)
    c.send(t.hello(rid=2))
    return "after the handshake: " + must_close(c)


CASES = [
    ("a", "valid HELLO is answered", case_a),
    ("b", "HELLO with a wrong MAC", case_b),
    ("c", "header announcing a 64 MiB payload", case_c),
    ("d", "4 KiB of random garbage", case_d),
    ("e", "wrong magic", case_e),
    ("f", "wrong protocol version", case_f),
    ("g", "unknown message type 999 after HELLO", case_g),
    ("h", "truncated frame, then our side closes", case_h),
    ("i", "HELLO naming another cluster", case_i),
    ("j", "HELLO_REPLY before any HELLO", case_j),
    ("k", "nonzero reserved field and two flags", case_k),
    ("l", "second HELLO on a connection", case_l),
    ("z", "valid HELLO still answered afterwards", case_a),
]


def run_cases(t, only=None, out=sys.stdout):
    """Run the cases; returns the number that misbehaved."""
    bad = 0
    control_ok = True
    for key, title, fn in CASES:
        if only and key not in only:
            continue
        if not control_ok:
            print(f"FAIL ({key}) {title}: not run (the positive control (a) failed)", file=out)
            bad += 1
            continue
        c = None
        try:
            c = t.connect()
            msg = fn(t, c)
            print(f"ok   ({key}) {title}: {msg}", file=out)
        except CaseFailed as ex:
            print(f"FAIL ({key}) {title}: {ex}", file=out)
            bad += 1
            if key == "a":
                control_ok = False
        except (OSError, ValueError) as ex:
            print(f"FAIL ({key}) {title}: {type(ex).__name__}: {ex}", file=out)
            bad += 1
            if key == "a":
                control_ok = False
        finally:
            if c:
                c.close()
        out.flush()
    return bad


# ---------------------------------------------------------------------------
# Self-test: known answers, round trips, and two in-process servers.
# ---------------------------------------------------------------------------


class MiniNode:
    """A listener that checks frames in the rpc layer's order (strict), or
    one that answers anything (lax), for testing this script."""

    KNOWN = {T_HELLO: F_REQUEST, T_HELLO_REPLY: F_REPLY, 3: F_REPLY}

    def __init__(self, secret, cluster, strict):
        self.secret, self.cluster, self.strict = secret, cluster, strict
        self.ls = socket.create_server(("127.0.0.1", 0))
        self.port = self.ls.getsockname()[1]
        self.stop = False
        self.drops = {}
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.stop:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def recv_exact(self, s, n):
        b = bytearray()
        while len(b) < n:
            x = s.recv(n - len(b))
            if not x:
                return None if not b else bytes(b)
            b += x
        return bytes(b)

    def drop(self, s, why):
        self.drops[why] = self.drops.get(why, 0) + 1
        if not self.strict:
            # The lax server keeps even a half-closed connection open.
            time.sleep(3)
        s.close()

    def serve(self, s):
        s.settimeout(10)
        hello_done = False
        try:
            while True:
                hdr = self.recv_exact(s, HDR.size)
                if hdr is None:
                    return s.close()
                if len(hdr) < HDR.size:
                    return self.drop(s, "truncated")
                m, v, ty, fl, res, n, rid, ep = HDR.unpack(hdr)
                if self.strict:
                    if m != MAGIC:
                        return self.drop(s, "magic")
                    if v != VERSION:
                        return self.drop(s, "version")
                    if res or fl not in (F_REQUEST, F_REPLY, F_ONEWAY):
                        return self.drop(s, "header")
                    if n > (1 << 20):
                        return self.drop(s, "oversize")
                body = self.recv_exact(s, n + MAC_SIZE)
                if body is None or len(body) < n + MAC_SIZE:
                    return self.drop(s, "truncated")
                f = Frame(self.secret, hdr + body)
                if self.strict:
                    if not f.mac_ok:
                        return self.drop(s, "mac")
                    if not self.KNOWN.get(ty, 0) & fl:
                        return self.drop(s, "type")
                    try:
                        version, cluster, node, epoch = decode_hello(f.payload)
                    except (ValueError, UnicodeDecodeError):
                        return self.drop(s, "decode")
                    if hello_done and ty == T_HELLO:
                        return self.drop(s, "second hello")
                    if not hello_done and (ty != T_HELLO or cluster != self.cluster):
                        return self.drop(s, "handshake")
                hello_done = True
                p = hello_payload(self.cluster, "mini", 0)
                s.sendall(frame(self.secret, T_HELLO_REPLY, F_REPLY, p, rid=rid))
        except OSError:
            s.close()

    def close(self):
        self.stop = True
        self.ls.close()


def self_test():
    fails = []

    def check(what, cond):
        if not cond:
            fails.append(what)
            print(f"FAIL self-test: {what}")

    # Known answers: protobuf's documented varint of 300, and RFC 4231 test case 2.
    check("varint(300) == ac 02", varint(300) == b"\xac\x02")
    check("varint(1) == 01", varint(1) == b"\x01")
    check("varint(2**64-1) is 10 bytes", len(varint((1 << 64) - 1)) == 10)
    check("pb_uint(1, 150) == 08 96 01", pb_uint(1, 150) == b"\x08\x96\x01")
    check("pb_bytes(2, 'testing') == 12 07 74 65 73 74 69 6e 67",
          pb_bytes(2, "testing") == bytes.fromhex("120774657374696e67"))
    check("HMAC-SHA-256 (RFC 4231 case 2)",
          mac_of(b"Jefe", b"what do ya want for nothing?").hex() ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    # The header layout, byte for byte.
    h = HDR.pack(MAGIC, 1, 2, 4, 0, 0x01020304, 0x1122334455667788, 0x99)
    check("header bytes", h == bytes.fromhex(
        "43584653" "0100" "0200" "0400" "0000" "04030201" "8877665544332211" "9900000000000000"))
    check("magic reads 'CXFS'", h[:4] == b"CXFS")

    # Round trips through our own decoder.
    secret = os.urandom(64)
    p = hello_payload("local", "node7", 12345678901)
    check("Hello decodes", decode_hello(p) == (1, "local", "node7", 12345678901))
    f = Frame(secret, frame(secret, T_HELLO, F_REQUEST, p, rid=9, epoch=3))
    check("HELLO frame: header fields", (f.magic, f.version, f.type, f.flags, f.reserved, f.len,
                                         f.id, f.epoch) == (MAGIC, 1, 1, 1, 0, len(p), 9, 3))
    check("HELLO frame: MAC verifies", f.mac_ok)
    check("HELLO frame: payload", f.payload == p)
    check("wrong MAC does not verify",
          not Frame(secret, frame(secret, T_HELLO, F_REQUEST, p, bad_mac=True)).mac_ok)
    check("another secret does not verify",
          not Frame(os.urandom(64), frame(secret, T_HELLO, F_REQUEST, p)).mac_ok)
    f = Frame(secret, frame(secret, T_HELLO, F_REQUEST, p, magic=0x53465844, version=2))
    check("wrong magic/version frames still carry a valid MAC",
          f.mac_ok and f.magic == 0x53465844 and f.version == 2)
    check("decoder refuses a truncated payload", _raises(lambda: decode_hello(p[:-3])))
    check("decoder refuses a missing field", _raises(lambda: decode_hello(pb_uint(1, 1))))

    # The cases against a strict and a lax in-process server.
    for strict in (True, False):
        node = MiniNode(secret, "local", strict)
        t = Target("127.0.0.1", node.port, secret, "local", "badframe", 0,
                   timeout=2.0 if strict else 0.5)
        lines = []

        class Out:
            def write(self, s):
                lines.append(s)

            def flush(self):
                pass

        run_cases(t, out=Out())
        node.close()
        text = "".join(lines)
        for key, title, _ in CASES:
            ok = f"ok   ({key})" in text
            if strict:
                check(f"strict server: case ({key}) {title} passes", ok)
            elif key in ("a", "z"):
                check(f"lax server: case ({key}) {title} passes", ok)
            else:
                check(f"lax server: case ({key}) {title} is reported", not ok)
        if strict:
            check("strict server dropped each kind of bad frame",
                  all(node.drops.get(k) for k in ("magic", "version", "header", "oversize", "mac",
                                                  "type", "handshake", "second hello",
                                                  "truncated")))
    if fails:
        print(f"self-test: {len(fails)} check(s) failed")
        return 1
    print("self-test: encoder, decoder and every case behave (strict and lax servers)")
    return 0


def _raises(fn):
    try:
        fn()
    except ValueError:
        return True
    return False


def main():
    ap = argparse.ArgumentParser(description="Send hostile frames to a cxfs node's port.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--secret", help="the cluster secret file")
    ap.add_argument("--cluster", help="the cluster's name")
    ap.add_argument("--node", default="badframe", help="node name our HELLOs give")
    ap.add_argument("--epoch", type=int, default=1,
                    help="membership epoch our frames carry (default 1; at least the node's)")
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="seconds the node has to reply or close (default 5)")
    ap.add_argument("--only", help="comma-separated case letters to run (default all)")
    ap.add_argument("--self-test", action="store_true",
                    help="check the encoder and the cases without a node")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.port or not args.secret or not args.cluster:
        ap.error("--port, --secret and --cluster are required (or --self-test)")
    try:
        with open(args.secret, "rb") as f:
            secret = f.read()
    except OSError as ex:
        ap.error(f"secret file: {ex}")
    if not secret:
        ap.error(f"secret file {args.secret} is empty")
    only = set(args.only.split(",")) if args.only else None
    t = Target(args.host, args.port, secret, args.cluster, args.node, args.epoch, args.timeout)
    bad = run_cases(t, only)
    print(f"badframe: {args.host}:{args.port}: " +
          (f"{bad} case(s) misbehaved" if bad else "every case behaved"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
