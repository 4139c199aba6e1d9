#!/usr/bin/env python3
"""TCP stream endpoints for the netckpt-agent integration tests.

Both ends send BYTES of random data on every connection, paced, then shut their write side,
and read until EOF, hashing what they sent and what they received. Each writes a JSON result
keyed by the client's port: {"PORT": {"sent": n, "sent_sha": .., "recv": n, "recv_sha": ..}}.
Comparing the client's sent_sha with the server's recv_sha (and back) proves a stream was
byte-exact across a freeze.

  agent-peer.py server --listen ADDR --port P --conns K --bytes N --out FILE [--rate BPS]
  agent-peer.py client --connect ADDR --port P --conns K --bytes N --out FILE [--rate BPS]
                       [--ready FILE] [--share] [--tolerate-repair] [--loopback-pair FILE]
  agent-peer.py sender --connect ADDR --port P --bytes N --out FILE   (send once, then sleep)
  agent-peer.py sink --listen ADDR --port P --out FILE [--rate BPS]   (read one conn to EOF)
"""
import argparse
import errno
import hashlib
import json
import os
import selectors
import signal
import socket
import sys
import time

CHUNK = 16384


class Conn:
    def __init__(self, sock, key, total, rate):
        self.sock = sock
        self.key = key
        self.total = total
        self.rate = rate
        self.sent = 0
        self.recv = 0
        self.sent_sha = hashlib.sha256()
        self.recv_sha = hashlib.sha256()
        self.pending = b""
        self.wr_closed = False
        self.eof = False
        self.start = time.monotonic()

    def budget(self):
        if not self.rate:
            return self.total
        return int((time.monotonic() - self.start) * self.rate) + CHUNK

    def result(self):
        return {"sent": self.sent, "sent_sha": self.sent_sha.hexdigest(),
                "recv": self.recv, "recv_sha": self.recv_sha.hexdigest()}


def transient(e, tolerate):
    if isinstance(e, (BlockingIOError, InterruptedError)):
        return True
    # A socket still in TCP_REPAIR (the agent was killed while frozen) refuses calls with
    # EPERM/EINVAL until the next agent thaws it: with --tolerate-repair, try again later.
    return tolerate and isinstance(e, OSError) and e.errno in (errno.EPERM, errno.EINVAL)


def desired(c):
    ev = 0 if c.eof else selectors.EVENT_READ
    if not c.wr_closed and (c.pending or c.sent >= c.total or c.budget() > c.sent):
        ev |= selectors.EVENT_WRITE
    return ev


def pump(conns, tolerate=False, on_progress=None):
    """Run every connection to completion (both directions done)."""
    sel = selectors.DefaultSelector()
    registered = {}
    while True:
        live = 0
        for c in conns:
            if c.eof and c.wr_closed:
                if c in registered:
                    sel.unregister(c.sock)
                    del registered[c]
                continue
            live += 1
            ev = desired(c)
            old = registered.get(c)
            if ev == old:
                continue
            if old is not None and ev:
                sel.modify(c.sock, ev, c)
            elif old is not None:
                sel.unregister(c.sock)
            elif ev:
                sel.register(c.sock, ev, c)
            if ev:
                registered[c] = ev
            else:
                registered.pop(c, None)
        if not live:
            break
        for key, mask in sel.select(timeout=0.02):
            c = key.data
            if mask & selectors.EVENT_READ and not c.eof:
                try:
                    data = c.sock.recv(65536)
                    if data:
                        c.recv += len(data)
                        c.recv_sha.update(data)
                    else:
                        c.eof = True
                except OSError as e:
                    if not transient(e, tolerate):
                        raise
                    time.sleep(0.01)
            if mask & selectors.EVENT_WRITE and not c.wr_closed:
                if not c.pending and c.sent < c.total:
                    n = min(CHUNK, c.total - c.sent, c.budget() - c.sent)
                    if n > 0:
                        c.pending = os.urandom(n)
                try:
                    if c.pending:
                        n = c.sock.send(c.pending)
                        c.sent_sha.update(c.pending[:n])
                        c.sent += n
                        c.pending = c.pending[n:]
                    if c.sent >= c.total and not c.pending:
                        c.sock.shutdown(socket.SHUT_WR)
                        c.wr_closed = True
                except OSError as e:
                    if not transient(e, tolerate):
                        raise
                    time.sleep(0.01)
        if on_progress:
            on_progress(conns)
    sel.close()


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def cmd_server(a):
    ls = socket.socket(family_of(a.listen), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family_of(a.listen) == socket.AF_INET6 and a.dual:
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.bind((a.listen, a.port))
    ls.listen(4096)
    if a.ready:
        open(a.ready, "w").close()
    conns = []
    while len(conns) < a.conns:
        s, peer = ls.accept()
        s.setblocking(False)
        conns.append(Conn(s, str(peer[1]), a.bytes, a.rate))
    pump(conns)
    write_json(a.out, {c.key: c.result() for c in conns})


def cmd_client(a):
    conns = []
    for i in range(a.conns):
        s = socket.create_connection((a.connect, a.port))
        s.setblocking(False)
        conns.append(Conn(s, str(s.getsockname()[1]), a.bytes, a.rate))
    child = 0
    if a.share:
        # Both processes hold every socket; only the parent uses them.
        child = os.fork()
        if child == 0:
            signal.pause()
            os._exit(0)
        with open(a.share, "w") as f:
            f.write(str(child))
    lb = []
    if a.loopback_pair:
        l = socket.socket()
        l.bind(("127.0.0.1", 0))
        l.listen(1)
        c1 = socket.create_connection(l.getsockname())
        c2, _ = l.accept()
        lb = [l, c1, c2]
        c1.sendall(b"hello over loopback")
        with open(a.loopback_pair, "w") as f:
            json.dump({"port": l.getsockname()[1]}, f)
    ready = [False]

    def progress(cs):
        if not ready[0] and a.ready and all(c.sent > 0 and c.recv > 0 for c in cs):
            open(a.ready, "w").close()
            ready[0] = True

    pump(conns, tolerate=a.tolerate_repair, on_progress=progress)
    if lb:
        got = lb[2].recv(100)
        assert got == b"hello over loopback", got
    write_json(a.out, {c.key: c.result() for c in conns})
    if child:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def cmd_sender(a):
    s = socket.create_connection((a.connect, a.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    data = os.urandom(a.bytes)
    write_json(a.out, {"sent": len(data), "sent_sha": hashlib.sha256(data).hexdigest()})
    s.sendall(data)
    if a.ready:
        open(a.ready, "w").close()
    signal.pause()


def cmd_sink(a):
    ls = socket.socket(family_of(a.listen), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    ls.bind((a.listen, a.port))
    ls.listen(1)
    if a.ready:
        open(a.ready, "w").close()
    s, _ = ls.accept()
    h = hashlib.sha256()
    n = 0
    t0 = time.monotonic()
    while True:
        if a.rate and n > (time.monotonic() - t0) * a.rate:
            time.sleep(0.01)
            continue
        d = s.recv(8192)
        if not d:
            break
        n += len(d)
        h.update(d)
    write_json(a.out, {"recv": n, "recv_sha": h.hexdigest()})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["server", "client", "sender", "sink"])
    p.add_argument("--listen")
    p.add_argument("--connect")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--rate", type=int, default=0, help="bytes/s per connection, 0 = unpaced")
    p.add_argument("--out", required=True)
    p.add_argument("--ready")
    p.add_argument("--share", help="fork a child that shares the sockets; write its pid here")
    p.add_argument("--dual", action="store_true", help="IPv6 listener accepting v4-mapped")
    p.add_argument("--tolerate-repair", action="store_true")
    p.add_argument("--loopback-pair", help="also hold a loopback pair; write its port here")
    a = p.parse_args()
    {"server": cmd_server, "client": cmd_client, "sender": cmd_sender, "sink": cmd_sink}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
