#!/usr/bin/env python3
"""badframe.py: send hostile frames to a cxfs node's TCP port and check that
the node refuses them.

Usage:
  badframe.py --host 127.0.0.1 --port P --secret FILE --cluster NAME
              [--node NAME] [--epoch N] [--timeout S] [--only a,b,...]
              [--max-per-addr N] [--ino INO]
  badframe.py --self-test

The wire format is that of src/rpc/rpc_i.h (protocol version 2; version 1,
case V, has no nonces, no HELLO_DONE and no sequence numbers): a 32-byte
little-endian header (magic "CXFS" 0x53465843, version u16 = 2, type u16,
flags u16 (1 request, 2 reply, 4 one-way), reserved u16 = 0, payload length
u32, request id u64, epoch u64), the protobuf payload, and a MAC:
HMAC-SHA-256(key, seq || header || payload), seq being the frame's sequence
number as 8 little-endian bytes.  The handshake: our HELLO (type 1, payload
Hello {version, cluster, node, epoch, nonce = 32 random bytes}) under the
cluster secret (all the bytes of the secret file) with seq 0; the node's
HELLO_REPLY (type 2: its own values, its nonce Ns and ours echoed) under the
secret, seq 0; then our HELLO_DONE (type 4, one-way, empty) under the
connection key Kcs, seq 1.  After it our frames use Kcs with seq 2, 3, ...
and the node's use Ksc with seq 1, 2, ..., where PRK = HMAC(secret,
"cxfs rpc connection v2" || Nc || Ns), Kcs = HMAC(PRK, "client to server"),
Ksc = HMAC(PRK, "server to client").

Cases, each on a new connection:
  a  a valid handshake, then a NAME_QUERY answered by a NAME_REPLY under the
     connection's key (the positive control: if it fails, the other cases
     are not run)
  b  HELLO with a wrong MAC
  c  a header announcing a 64 MiB payload
  d  4 KiB of random garbage
  e  wrong magic (valid MAC)
  f  wrong protocol version (valid MAC)
  g  a valid handshake, then a frame of the unknown type 999
  h  half of a valid HELLO frame, then our side closes (shutdown)
  i  HELLO naming another cluster (valid MAC)
  j  a HELLO_REPLY before any HELLO (valid MAC)
  k  a header with a nonzero reserved field and two flags (valid MAC)
  l  a valid handshake, then a second HELLO
  m  a replayed handshake: the bytes of case a's session (HELLO, HELLO_DONE,
     NAME_QUERY) sent again on a new connection: the node answers the HELLO
     with a nonce of its own, then closes without answering the request
  n  a valid handshake, then a request of an epoch below the node's floor
     (--floor - 1)
  o  a header announcing 64 KiB before the handshake (more than a HELLO)
  p  too many connections in their handshake from our address: after
     --max-per-addr (default 8) of them, one more is closed at once
  q  a valid handshake and a NAME_QUERY answered, then the same frame again
     (replayed within the connection: its sequence number is wrong)
  r  a HELLO answered, then a request instead of the HELLO_DONE
  z  a valid handshake again, after all the above: the node still answers
Only when --only names it:
  V  a version 1 handshake (no nonces, the secret's MAC without sequence
     number) and a NAME_QUERY, answered in version 1: the positive case of
     a node whose cluster's messages level is 1 (an older member)
With --ino INO, as a member node (--node must name one that is not
running, and the node must be the metadata server), the values the server
must clamp, each answered with an error:
  F  FALLOCATE of INO with mode PUNCH_HOLE|KEEP_SIZE|VN_IO_INVISIBLE (an
     internal flag from the network)
  W  WRITE_DONEs of INO for blocks never handed to us: file blocks 0-1 at
     1000 blocks past where they are (asked with EXTENT_MAP_REQ), file block
     0 at data block 2^40 (outside the volume), and file block 10^6 (a
     hole) at the place of file block 0
For b to r the node must close the connection (reading gives EOF or
ECONNRESET) within --timeout seconds (default 5) without sending any frame
(after the frames the case expects).  One line per case, "ok" or "FAIL";
exit 0 if every case behaved, 1 otherwise, 2 for usage errors.

--node and --epoch are what our frames say (default "badframe", a name no
node has, so the node never takes the connection for a cluster member's;
and epoch 1, the first membership epoch).  A node refuses frames whose
epoch is below its floor ("stale epoch"): the epoch of the last removal
from the membership once every member applied it, not the current epoch
(a join raises the epoch, not the floor); --floor (default --epoch) is the
node's floor, `cluster.membership.floor` of `cxfsctl status --json`.

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
VERSION = 2
HDR = struct.Struct("<IHHHHIQQ")      # magic version type flags reserved len id epoch
SEQ = struct.Struct("<Q")             # a frame's sequence number, first in its MAC
MAC_SIZE = 32
NONCE_SIZE = 32
F_REQUEST, F_REPLY, F_ONEWAY = 1, 2, 4
T_HELLO, T_HELLO_REPLY, T_ERROR_REPLY, T_HELLO_DONE = 1, 2, 3, 4
T_FALLOCATE_REQ, T_ATTR_REPLY, T_NAME_QUERY, T_NAME_REPLY = 26, 41, 70, 71
T_EXTENT_MAP_REQ, T_EXTENT_MAP_REPLY, T_WRITE_DONE = 80, 81, 84
MAX_PAYLOAD = 16 << 20                 # the most any node accepts (RPC_MAX_PAYLOAD_LIMIT)
HELLO_MAX = 1024                       # payload bytes a node accepts before the handshake
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, VN_IO_INVISIBLE = 0x1, 0x2, 0x40000000
EXTENT_DATA = 1
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


def hello_payload(cluster, node, epoch, version=VERSION, nonce=None, peer_nonce=None):
    """Hello {version = 1; cluster = 2; node = 3; epoch = 4; nonce = 5} (HelloReply
    alike, with peer_nonce = 6)."""
    p = pb_uint(1, version) + pb_bytes(2, cluster) + pb_bytes(3, node) + pb_uint(4, epoch)
    if nonce is not None:
        p += pb_bytes(5, nonce)
    if peer_nonce is not None:
        p += pb_bytes(6, peer_nonce)
    return p


def name_query_payload(fs):
    """NameQuery {fs = 1}."""
    return pb_bytes(1, fs)


def cred_payload():
    """Cred {uid = 1; gid = 2; pid = 3} of root."""
    return pb_uint(1, 0) + pb_uint(2, 0) + pb_uint(3, 1)


def fallocate_payload(ino, mode, off, length):
    """FallocateReq {ino = 1; cred = 2; mode = 3; off = 4; len = 5}."""
    return (pb_uint(1, ino) + pb_bytes(2, cred_payload()) + pb_uint(3, mode) + pb_uint(4, off) +
            pb_uint(5, length))


def write_done_payload(ino, extents):
    """WriteDone {ino = 1; written = 2 (Extent {file_block, volume_block, count, state})}."""
    p = pb_uint(1, ino)
    for fblk, vblk, count in extents:
        p += pb_bytes(2, pb_uint(1, fblk) + pb_uint(2, vblk) + pb_uint(3, count) +
                      pb_uint(4, EXTENT_DATA))
    return p


def extent_map_req_payload(ino, fblk, count):
    """ExtentMapReq {ino = 1; file_block = 2; count = 3}."""
    return pb_uint(1, ino) + pb_uint(2, fblk) + pb_uint(3, count)


def extent_map_runs(payload):
    """(file_block, volume_block, count, state) of each run of an ExtentMapReply."""
    runs = []
    for e in pb_decode(payload).get(2, []):
        f = pb_decode(e)
        runs.append(tuple(f.get(k, [0])[-1] for k in (1, 2, 3, 4)))
    return runs


def reply_err(payload):
    """The err (field 1, int32) of a reply."""
    f = pb_decode(payload)
    if 1 not in f:
        raise ValueError("no err field")
    e = f[1][-1]
    return e - (1 << 64) if e >= 1 << 63 else e


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
    """(version, cluster, node, epoch, nonce, peer_nonce) of a Hello or HelloReply."""
    f = pb_decode(payload)
    for k in (1, 2, 3, 4):
        if k not in f:
            raise ValueError(f"required field {k} missing")
    return (f[1][-1], f[2][-1].decode(), f[3][-1].decode(), f[4][-1], f.get(5, [None])[-1],
            f.get(6, [None])[-1])


# ---------------------------------------------------------------------------
# Frames and keys.
# ---------------------------------------------------------------------------


def mac_of(key, seq, data):
    """The MAC of frame @seq (None: a version 1 frame, without sequence number)."""
    return hmac.new(key, (b"" if seq is None else SEQ.pack(seq)) + data, hashlib.sha256).digest()


def conn_keys(secret, nc, ns):
    """(Kcs, Ksc): the connection's keys from the secret and both nonces."""
    prk = hmac.new(secret, b"cxfs rpc connection v2" + nc + ns, hashlib.sha256).digest()
    return (hmac.new(prk, b"client to server", hashlib.sha256).digest(),
            hmac.new(prk, b"server to client", hashlib.sha256).digest())


def frame(key, seq, mtype, flags, payload=b"", rid=1, epoch=0, magic=MAGIC, version=VERSION,
          reserved=0, length=None, bad_mac=False):
    """A whole frame number @seq under @key; @length overrides the announced length."""
    hdr = HDR.pack(magic, version, mtype, flags, reserved,
                   len(payload) if length is None else length, rid, epoch)
    mac = mac_of(key, seq, hdr + payload)
    if bad_mac:
        mac = bytes([mac[0] ^ 0x01]) + mac[1:]
    return hdr + payload + mac


class Frame:
    """A decoded frame, its MAC checked under @key as frame @seq."""

    def __init__(self, key, seq, data):
        if len(data) < HDR.size + MAC_SIZE:
            raise ValueError("shorter than a header and a MAC")
        (self.magic, self.version, self.type, self.flags, self.reserved, self.len, self.id,
         self.epoch) = HDR.unpack_from(data)
        if len(data) != HDR.size + self.len + MAC_SIZE:
            raise ValueError(f"{len(data)} bytes, header says {self.len} of payload")
        self.payload = bytes(data[HDR.size:HDR.size + self.len])
        self.mac = bytes(data[HDR.size + self.len:])
        self.mac_ok = key is not None and hmac.compare_digest(
            self.mac, mac_of(key, seq, bytes(data[:HDR.size + self.len])))

    def __str__(self):
        return (f"frame type {self.type} flags {self.flags} id {self.id} epoch {self.epoch} "
                f"len {self.len} MAC {'good' if self.mac_ok else 'BAD'}")


class Conn:
    """One TCP connection to the node, with deadline-bound reads; what we
    sent is kept (sent), as someone recording the session would."""

    def __init__(self, host, port, timeout):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = None            # why the connection ended, once it did
        self.sent = bytearray()

    def send(self, data):
        """Send; False if the node already closed (which ends sending)."""
        try:
            self.sock.sendall(data)
            self.sent += data
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

    def read_frame(self, key, seq):
        """The next frame (MAC checked as frame @seq under @key), or None
        (see self.eof: None means time-out)."""
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
        return Frame(key, seq, data)

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


class Session:
    """Our side of one connection's handshake and the frames after it."""

    def __init__(self, t, c):
        self.t, self.c = t, c
        self.nonce = os.urandom(NONCE_SIZE)
        self.ns = None             # the node's nonce
        self.kcs = self.ksc = None
        self.tx = self.rx = 1      # sequence numbers of the next frames, once keyed

    def hello(self, rid=1):
        """Send our HELLO, check the node's HELLO_REPLY, make the keys;
        returns a description of the reply."""
        t, c = self.t, self.c
        c.send(t.hello(rid=rid, nonce=self.nonce))
        f = c.read_frame(t.secret, 0)
        if f is None:
            raise CaseFailed("no reply to a valid HELLO (" +
                             (f"connection closed: {c.eof}" if c.eof else
                              f"nothing within {t.timeout:g} s") +
                             f"); check --secret and --cluster, and that the node's "
                             f"membership epoch is not above --epoch {t.epoch}")
        if not f.mac_ok:
            raise CaseFailed(f"the reply to HELLO has a bad MAC ({f})")
        if f.magic != MAGIC or f.version != VERSION:
            raise CaseFailed(f"the reply has magic {f.magic:#x} version {f.version}")
        if f.type != T_HELLO_REPLY or f.flags != F_REPLY or f.id != rid:
            raise CaseFailed(f"expected HELLO_REPLY (type 2, flags 2, id {rid}), got {f}")
        try:
            version, cluster, node, epoch, ns, echo = decode_hello(f.payload)
        except (ValueError, UnicodeDecodeError) as ex:
            raise CaseFailed(f"the HELLO_REPLY does not decode: {ex}")
        if version != VERSION or cluster != t.cluster:
            raise CaseFailed(f"the HELLO_REPLY says version {version}, cluster {cluster!r}")
        if ns is None or len(ns) != NONCE_SIZE or echo != self.nonce:
            raise CaseFailed("the HELLO_REPLY lacks a nonce or does not echo ours")
        self.ns = ns
        self.kcs, self.ksc = conn_keys(t.secret, self.nonce, ns)
        return f"HELLO_REPLY from node {node!r} (epoch {epoch}, MAC good, nonces good)"

    def done(self):
        self.send(T_HELLO_DONE, F_ONEWAY, b"", rid=0)

    def handshake(self):
        what = self.hello()
        self.done()
        return what

    def frame(self, mtype, flags, payload, rid, epoch=None):
        """Our next frame under the connection's key (not sent)."""
        f = frame(self.kcs, self.tx, mtype, flags, payload, rid=rid,
                  epoch=self.t.epoch if epoch is None else epoch)
        self.tx += 1
        return f

    def send(self, mtype, flags, payload, rid, epoch=None):
        return self.c.send(self.frame(mtype, flags, payload, rid, epoch))

    def read(self):
        """The node's next frame; CaseFailed unless it comes with a good MAC."""
        f = self.c.read_frame(self.ksc, self.rx)
        if f is None:
            raise CaseFailed("no answer (" + (f"connection closed: {self.c.eof}" if self.c.eof
                                              else f"nothing within {self.t.timeout:g} s") + ")")
        self.rx += 1
        if not f.mac_ok:
            raise CaseFailed(f"the node's frame has a bad MAC under the connection's key ({f})")
        return f

    def call(self, mtype, payload, want, rid):
        """A request answered by a reply of type @want (or ERROR_REPLY); its err."""
        self.send(mtype, F_REQUEST, payload, rid)
        f = self.read()
        if f.flags != F_REPLY or f.id != rid or f.type not in (want, T_ERROR_REPLY):
            raise CaseFailed(f"expected a reply (type {want}) to request {rid}, got {f}")
        try:
            return reply_err(f.payload)
        except ValueError as ex:
            raise CaseFailed(f"the reply does not decode: {ex}")

    def name_query(self, rid):
        err = self.call(T_NAME_QUERY, name_query_payload(self.t.fs), T_NAME_REPLY, rid)
        return f"NAME_QUERY answered (err {err}) under the connection's key"


# ---------------------------------------------------------------------------
# The cases.
# ---------------------------------------------------------------------------


class Target:
    def __init__(self, host, port, secret, cluster, node, epoch, timeout, max_per_addr=8, ino=None,
                 fs="shared", floor=None):
        self.host, self.port, self.secret = host, port, secret
        self.cluster, self.node, self.epoch, self.timeout = cluster, node, epoch, timeout
        self.floor = epoch if floor is None else floor
        self.max_per_addr, self.ino, self.fs = max_per_addr, ino, fs
        self.recorded = None       # case a's bytes, for case m
        self.recorded_ns = None    # and the node's nonce then

    def connect(self):
        return Conn(self.host, self.port, self.timeout)

    def wait_served(self):
        """Wait (at most the time-out) until a new connection's HELLO is answered
        again: the node has seen our connections of case p close."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                c = self.connect()
                try:
                    c.send(self.hello())
                    if c.read_frame(self.secret, 0):
                        return
                finally:
                    c.close()
            except OSError:
                pass
            time.sleep(0.05)

    def hello(self, rid=1, nonce=None, **kw):
        p = hello_payload(kw.pop("cluster", self.cluster), self.node, self.epoch,
                          nonce=os.urandom(NONCE_SIZE) if nonce is None else nonce)
        return frame(self.secret, 0, T_HELLO, F_REQUEST, p, rid=rid, epoch=self.epoch, **kw)


class CaseFailed(Exception):
    pass


def must_close(c):
    why = c.expect_closed()
    if why:
        raise CaseFailed(why)
    return f"closed ({c.eof}), no frame"


def case_a(t, c):
    s = Session(t, c)
    what = s.handshake()
    what += "; " + s.name_query(2)
    t.recorded, t.recorded_ns = bytes(c.sent), s.ns
    return what


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
    c.send(t.hello(version=VERSION - 1))       # an older node's
    return must_close(c)


def case_g(t, c):
    s = Session(t, c)
    s.handshake()
    s.send(999, F_REQUEST, b"", 2)
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
    p = hello_payload(t.cluster, t.node, t.epoch, nonce=os.urandom(NONCE_SIZE),
                      peer_nonce=os.urandom(NONCE_SIZE))
    c.send(frame(t.secret, 0, T_HELLO_REPLY, F_REPLY, p, rid=1, epoch=t.epoch))
    return must_close(c)


def case_k(t, c):
    p = hello_payload(t.cluster, t.node, t.epoch, nonce=os.urandom(NONCE_SIZE))
    c.send(frame(t.secret, 0, T_HELLO, F_REQUEST | F_REPLY, p, reserved=7, epoch=t.epoch))
    return must_close(c)


def case_l(t, c):
    s = Session(t, c)
    s.handshake()
    s.send(T_HELLO, F_REQUEST, hello_payload(t.cluster, t.node, t.epoch, nonce=s.nonce), 2)
    return "after the handshake: " + must_close(c)


def case_m(t, c):
    if not t.recorded:
        raise CaseFailed("no session of case a to replay (run a first)")
    c.send(t.recorded)
    f = c.read_frame(t.secret, 0)
    if f is None or not f.mac_ok or f.type != T_HELLO_REPLY:
        raise CaseFailed(f"the replayed HELLO was not answered by a HELLO_REPLY ({f or c.eof})")
    if decode_hello(f.payload)[4] == t.recorded_ns:
        raise CaseFailed("the node answered the replayed HELLO with the nonce it gave before")
    return "HELLO answered with a fresh nonce, then " + must_close(c)


def case_n(t, c):
    s = Session(t, c)
    s.handshake()
    old = max(t.floor, 1) - 1   # the node refuses below max(floor, 1)
    s.send(T_NAME_QUERY, F_REQUEST, name_query_payload(t.fs), 2, epoch=old)
    return f"a request of epoch {old}: " + must_close(c)


def case_o(t, c):
    c.send(HDR.pack(MAGIC, VERSION, T_HELLO, F_REQUEST, 0, 64 << 10, 1, t.epoch))
    return must_close(c)


def case_p(t, c):
    held = [c]
    try:
        # Our connections in their handshake: each HELLO answered, no HELLO_DONE.
        for k in range(t.max_per_addr + 1):
            if k:
                held.append(t.connect())
            held[-1].send(t.hello())
            f = held[-1].read_frame(t.secret, 0)
            if f is None:
                if k == 0:
                    raise CaseFailed(f"the first connection was refused ({held[-1].eof})")
                if not held[-1].eof:
                    raise CaseFailed(f"connection {k + 1}: no answer, not closed either")
                return (f"connection {k + 1} from our address closed at once ({held[-1].eof}), "
                        f"{k} in their handshake")
        raise CaseFailed(f"{t.max_per_addr + 1} connections in their handshake were all served")
    finally:
        for h in held[1:]:
            h.close()
        held[0].close()
        t.wait_served()


def case_q(t, c):
    s = Session(t, c)
    s.handshake()
    f = s.frame(T_NAME_QUERY, F_REQUEST, name_query_payload(t.fs), 2)
    c.send(f)
    s.read()
    c.send(f)
    return "answered once, then " + must_close(c)


def case_r(t, c):
    s = Session(t, c)
    s.hello()
    s.send(T_NAME_QUERY, F_REQUEST, name_query_payload(t.fs), 2)
    return "a request instead of HELLO_DONE: " + must_close(c)


def case_V(t, c):
    p = hello_payload(t.cluster, t.node, t.epoch, version=1)
    c.send(frame(t.secret, None, T_HELLO, F_REQUEST, p, rid=1, epoch=t.epoch, version=1))
    f = c.read_frame(t.secret, None)
    if f is None or not f.mac_ok or f.version != 1 or f.type != T_HELLO_REPLY:
        raise CaseFailed(f"no version 1 HELLO_REPLY ({f or c.eof})")
    c.send(frame(t.secret, None, T_NAME_QUERY, F_REQUEST, name_query_payload(t.fs), rid=2,
                 epoch=t.epoch, version=1))
    f = c.read_frame(t.secret, None)
    if f is None or not f.mac_ok or f.version != 1 or f.type != T_NAME_REPLY or f.id != 2:
        raise CaseFailed(f"no version 1 NAME_REPLY ({f or c.eof})")
    return "a version 1 handshake and NAME_QUERY answered in version 1"


def case_F(t, c):
    s = Session(t, c)
    s.handshake()
    mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE | VN_IO_INVISIBLE
    err = s.call(T_FALLOCATE_REQ, fallocate_payload(t.ino, mode, 0, 1 << 30), T_ATTR_REPLY, 2)
    if err >= 0:
        raise CaseFailed(f"FALLOCATE mode {mode:#x} accepted (err {err})")
    return f"FALLOCATE mode {mode:#x} refused (err {err})"


def case_W(t, c):
    s = Session(t, c)
    s.handshake()
    # Where the file's first blocks are: the WRITE_DONE names other blocks.
    s.send(T_EXTENT_MAP_REQ, F_REQUEST, extent_map_req_payload(t.ino, 0, 2), 2)
    f = s.read()
    if f.type != T_EXTENT_MAP_REPLY or reply_err(f.payload):
        raise CaseFailed(f"no extent map of inode {t.ino} ({f})")
    runs = extent_map_runs(f.payload)
    at = runs[0][1] if runs and runs[0][3] == EXTENT_DATA else 0
    out = []
    for rid, ext in enumerate([[(0, at + 1000, 2)], [(0, 1 << 40, 1)], [(1000000, at, 1)]],
                              start=3):
        err = s.call(T_WRITE_DONE, write_done_payload(t.ino, ext), T_ATTR_REPLY, rid)
        if err >= 0:
            raise CaseFailed(f"WRITE_DONE of {ext} accepted (err {err})")
        out.append(f"{ext} err {err}")
    return "WRITE_DONEs refused: " + ", ".join(out)


CASES = [
    ("a", "valid handshake and a request answered", case_a),
    ("b", "HELLO with a wrong MAC", case_b),
    ("c", "header announcing a 64 MiB payload", case_c),
    ("d", "4 KiB of random garbage", case_d),
    ("e", "wrong magic", case_e),
    ("f", "older protocol version", case_f),
    ("g", "unknown message type 999 after the handshake", case_g),
    ("h", "truncated frame, then our side closes", case_h),
    ("i", "HELLO naming another cluster", case_i),
    ("j", "HELLO_REPLY before any HELLO", case_j),
    ("k", "nonzero reserved field and two flags", case_k),
    ("l", "second HELLO on a connection", case_l),
    ("m", "replayed handshake (case a's bytes again)", case_m),
    ("n", "request of an epoch below the floor", case_n),
    ("o", "64 KiB payload announced before the handshake", case_o),
    ("p", "too many connections in their handshake from one address", case_p),
    ("q", "a frame replayed within its connection", case_q),
    ("r", "request instead of HELLO_DONE", case_r),
    ("V", "version 1 handshake served (at a cluster level of 1)", case_V),
    ("F", "FALLOCATE with an internal mode flag", case_F),
    ("W", "WRITE_DONE of blocks never handed to us", case_W),
    ("z", "valid handshake still answered afterwards", case_a),
]
CLAMPS = "FW"                 # run only with --ino
ONLY_ASKED = "V"              # run only when --only names them


def run_cases(t, only=None, out=sys.stdout):
    """Run the cases; returns the number that misbehaved."""
    bad = 0
    control_ok = True
    for key, title, fn in CASES:
        if only and key not in only:
            continue
        if (key in CLAMPS and t.ino is None) or (key in ONLY_ASKED and not (only and key in only)):
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

    KNOWN = {T_HELLO: F_REQUEST, T_HELLO_REPLY: F_REPLY, T_ERROR_REPLY: F_REPLY,
             T_HELLO_DONE: F_ONEWAY, T_NAME_QUERY: F_REQUEST, T_FALLOCATE_REQ: F_REQUEST,
             T_WRITE_DONE: F_REQUEST | F_ONEWAY, T_EXTENT_MAP_REQ: F_REQUEST}
    REPLY = {T_NAME_QUERY: T_NAME_REPLY, T_FALLOCATE_REQ: T_ATTR_REPLY, T_WRITE_DONE: T_ATTR_REPLY,
             T_EXTENT_MAP_REQ: T_EXTENT_MAP_REPLY}
    EPOCH = 1
    MAX_PER_ADDR = 8

    def __init__(self, secret, cluster, strict):
        self.secret, self.cluster, self.strict = secret, cluster, strict
        self.ls = socket.create_server(("127.0.0.1", 0))
        self.port = self.ls.getsockname()[1]
        self.stop = False
        self.drops = {}
        self.mu = threading.Lock()
        self.unauth = 0            # connections in their handshake
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.stop:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            with self.mu:
                over = self.strict and self.unauth >= self.MAX_PER_ADDR
                if not over:
                    self.unauth += 1
            if over:
                self.drops["conns"] = self.drops.get("conns", 0) + 1
                s.close()
                continue
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
        st = {"state": "hello", "keys": None, "rx": 1, "tx": 1}
        try:
            self.serve_frames(s, st)
        except OSError:
            s.close()
        finally:
            if st["state"] != "ready":
                with self.mu:
                    self.unauth -= 1

    def ready(self, st):
        with self.mu:
            self.unauth -= 1
        st["state"] = "ready"

    def serve_frames(self, s, st):
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
                if n > (1 << 20 if st["state"] == "ready" else HELLO_MAX):
                    return self.drop(s, "oversize")
            body = self.recv_exact(s, n + MAC_SIZE)
            if body is None or len(body) < n + MAC_SIZE:
                return self.drop(s, "truncated")
            keyed = st["keys"] is not None
            f = Frame(st["keys"][0] if keyed else self.secret, st["rx"] if keyed else 0,
                      hdr + body)
            if keyed:
                st["rx"] += 1
            if self.strict:
                if not f.mac_ok:
                    return self.drop(s, "replay" if st["state"] == "keyed" else "mac")
                if not self.KNOWN.get(ty, 0) & fl:
                    return self.drop(s, "type")
                if ep < self.EPOCH:
                    return self.drop(s, "epoch")
            if st["state"] == "hello" or (not self.strict and ty == T_HELLO):
                try:
                    version, cluster, node, epoch, nc, _ = decode_hello(f.payload)
                except (ValueError, UnicodeDecodeError):
                    return self.drop(s, "decode")
                if self.strict and (ty != T_HELLO or cluster != self.cluster or
                                    not nc or len(nc) != NONCE_SIZE):
                    return self.drop(s, "handshake")
                ns = os.urandom(NONCE_SIZE)
                p = hello_payload(self.cluster, "mini", self.EPOCH, nonce=ns, peer_nonce=nc)
                s.sendall(frame(self.secret, 0, T_HELLO_REPLY, F_REPLY, p, rid=rid,
                                epoch=self.EPOCH))
                st["keys"] = conn_keys(self.secret, nc or b"", ns)
                st["state"], st["rx"], st["tx"] = "keyed", 1, 1
                continue
            if st["state"] == "keyed" and ty == T_HELLO_DONE:
                self.ready(st)
                continue
            if self.strict and st["state"] == "keyed":
                return self.drop(s, "handshake")
            if self.strict and ty in (T_HELLO, T_HELLO_DONE):
                return self.drop(s, "second hello")
            if fl != F_REQUEST:
                continue
            err, extra = 0, b""
            if ty == T_EXTENT_MAP_REQ:
                extra = pb_bytes(2, pb_uint(1, 0) + pb_uint(2, 500) + pb_uint(3, 2) +
                                 pb_uint(4, EXTENT_DATA))
            elif self.strict and ty == T_FALLOCATE_REQ:
                err = -95 if pb_decode(f.payload)[3][-1] & ~3 else 0
            elif self.strict and ty == T_WRITE_DONE:
                err = -1
            s.sendall(frame(st["keys"][1], st["tx"], self.REPLY.get(ty, T_NAME_REPLY), F_REPLY,
                            pb_uint(1, err) + extra, rid=rid, epoch=self.EPOCH))
            st["tx"] += 1

    def close(self):
        self.stop = True
        self.ls.close()


def self_test():
    fails = []

    def check(what, cond):
        if not cond:
            fails.append(what)
            print(f"FAIL self-test: {what}")

    # Known answers: protobuf's documented varint of 300, RFC 4231 test case 2,
    # and the connection keys of test/unit/test_rpc.c (test_conn_keys).
    check("varint(300) == ac 02", varint(300) == b"\xac\x02")
    check("varint(1) == 01", varint(1) == b"\x01")
    check("varint(2**64-1) is 10 bytes", len(varint((1 << 64) - 1)) == 10)
    check("pb_uint(1, 150) == 08 96 01", pb_uint(1, 150) == b"\x08\x96\x01")
    check("pb_bytes(2, 'testing') == 12 07 74 65 73 74 69 6e 67",
          pb_bytes(2, "testing") == bytes.fromhex("120774657374696e67"))
    check("HMAC-SHA-256 (RFC 4231 case 2)",
          hmac.new(b"Jefe", b"what do ya want for nothing?", hashlib.sha256).hexdigest() ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    kcs, ksc = conn_keys(b"0123456789abcdef0123456789abcdef", b"\x01" * 32, b"\x02" * 32)
    check("connection keys (test_rpc's known answers)",
          mac_of(kcs, 1, bytes(32)).hex() ==
          "7ce9161092c7754775aaf9f1982b7f45bdaa6c9f30668da314615ee52e711645" and
          mac_of(ksc, 1, bytes(32)).hex() ==
          "86d2055d72c06338f21a04bc041db11d6a52cd4e8b400a2c8a2a85ce8a63201b")
    # The header layout, byte for byte.
    h = HDR.pack(MAGIC, 1, 2, 4, 0, 0x01020304, 0x1122334455667788, 0x99)
    check("header bytes", h == bytes.fromhex(
        "43584653" "0100" "0200" "0400" "0000" "04030201" "8877665544332211" "9900000000000000"))
    check("magic reads 'CXFS'", h[:4] == b"CXFS")

    # Round trips through our own decoder.
    secret = os.urandom(64)
    nonce = os.urandom(NONCE_SIZE)
    p = hello_payload("local", "node7", 12345678901, nonce=nonce)
    check("Hello decodes", decode_hello(p) == (VERSION, "local", "node7", 12345678901, nonce, None))
    f = Frame(secret, 0, frame(secret, 0, T_HELLO, F_REQUEST, p, rid=9, epoch=3))
    check("HELLO frame: header fields", (f.magic, f.version, f.type, f.flags, f.reserved, f.len,
                                         f.id, f.epoch) == (MAGIC, VERSION, 1, 1, 0, len(p), 9, 3))
    check("HELLO frame: MAC verifies", f.mac_ok)
    check("HELLO frame: payload", f.payload == p)
    check("wrong MAC does not verify",
          not Frame(secret, 0, frame(secret, 0, T_HELLO, F_REQUEST, p, bad_mac=True)).mac_ok)
    check("another secret does not verify",
          not Frame(os.urandom(64), 0, frame(secret, 0, T_HELLO, F_REQUEST, p)).mac_ok)
    check("another sequence number does not verify",
          not Frame(secret, 3, frame(secret, 2, T_HELLO, F_REQUEST, p)).mac_ok)
    f = Frame(secret, 0, frame(secret, 0, T_HELLO, F_REQUEST, p, magic=0x53465844, version=1))
    check("wrong magic/version frames still carry a valid MAC",
          f.mac_ok and f.magic == 0x53465844 and f.version == 1)
    check("decoder refuses a truncated payload", _raises(lambda: decode_hello(p[:-3])))
    check("decoder refuses a missing field", _raises(lambda: decode_hello(pb_uint(1, 1))))
    check("reply_err reads a negative errno", reply_err(pb_uint(1, -95)) == -95)

    # The cases against a strict and a lax in-process server.
    for strict in (True, False):
        node = MiniNode(secret, "local", strict)
        t = Target("127.0.0.1", node.port, secret, "local", "badframe", 1,
                   timeout=2.0 if strict else 0.5, max_per_addr=MiniNode.MAX_PER_ADDR, ino=5)
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
            if key in ONLY_ASKED:
                continue
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
                                                  "truncated", "replay", "epoch", "conns")))
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
    ap.add_argument("--floor", type=int,
                    help="the node's message floor, below which case n's request goes "
                         "(default --epoch)")
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="seconds the node has to reply or close (default 5)")
    ap.add_argument("--only", help="comma-separated case letters to run (default all)")
    ap.add_argument("--max-per-addr", type=int, default=8,
                    help="the node's limit of connections in their handshake from one address "
                         "(default 8)")
    ap.add_argument("--ino", type=int,
                    help="an inode of the filesystem for the clamp cases F and W (with --node "
                         "naming a member that is not running, at the metadata server's port)")
    ap.add_argument("--fs", default="shared", help="a filesystem name for NAME_QUERY")
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
    t = Target(args.host, args.port, secret, args.cluster, args.node, args.epoch, args.timeout,
               max_per_addr=args.max_per_addr, ino=args.ino, fs=args.fs, floor=args.floor)
    bad = run_cases(t, only)
    print(f"badframe: {args.host}:{args.port}: " +
          (f"{bad} case(s) misbehaved" if bad else "every case behaved"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
