#!/usr/bin/env python3
"""bench/resume/kick-lab.py: which thaw kick moves the GUEST's unacknowledged data at once.

Namespaces made here: guest --veth-- router --veth-- peer (routed peer, permanent neighbours
so nothing sends ICMP on its own). The guest streams to the peer. The gate (an nft netdev
ingress+egress drop on the router's veth toward the guest, as the host gate on the tap) goes
up, more data is written (it is lost into the gate), the socket is frozen with TCP_REPAIR,
and while frozen its RTO keeps firing and backing off. After OUTAGE seconds the gate lifts and
the socket is thawed with one kick; the stall is from the thaw to the peer's first new byte.
Byte counts are checked at the end (nothing lost or duplicated).

  kick-lab.py [--outage S] [--reps N] [--kicks none,probe,...]      (root)

Kicks: none (TCP_REPAIR_OFF_NO_WP), probe (TCP_REPAIR_OFF), probes3 (three repair on/off
cycles), dupack (3 pure duplicate ACKs injected on lo), rtomin (route rto_min 5ms around the
thaw), window (TCP_REPAIR_WINDOW rewritten before the thaw), icmp (ICMP host-unreachable for
snd_una injected on lo: RFC 6069 RTO revert, once per backoff step).
This is a lab, not a test: numbers are printed, never asserted.
"""
import argparse
import ctypes
import os
import socket
import struct
import subprocess
import sys
import threading
import time

TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ, TCP_REPAIR_WINDOW = 19, 20, 21, 29
TCP_RECV_QUEUE, TCP_SEND_QUEUE = 1, 2
SIOCOUTQ, SIOCINQ = 0x5411, 0x541B
libc = ctypes.CDLL(None, use_errno=True)
PFX = "kl%d" % os.getpid()
G, R, P = PFX + "g", PFX + "r", PFX + "p"
GA, PA = "10.79.1.2", "10.79.2.2"


def sh(*a, check=True):
    return subprocess.run(a, check=check, capture_output=True, text=True).stdout


def ns(n, *a, check=True):
    return sh("ip", "netns", "exec", n, *a, check=check)


def setns(name):
    fd = os.open("/run/netns/" + name, os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)


def topo():
    for n in (G, R, P):
        sh("ip", "netns", "add", n)
        ns(n, "ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", PFX + "a", "netns", G, "type", "veth", "peer", "name", PFX + "b",
       "netns", R)
    sh("ip", "link", "add", PFX + "c", "netns", R, "type", "veth", "peer", "name", PFX + "d",
       "netns", P)
    for n, d, a in ((G, "a", GA + "/24"), (R, "b", "10.79.1.1/24"), (R, "c", "10.79.2.1/24"),
                    (P, "d", PA + "/24")):
        ns(n, "ip", "link", "set", PFX + d, "up")
        ns(n, "ip", "addr", "add", a, "dev", PFX + d)
    ns(G, "ip", "route", "add", "default", "via", "10.79.1.1")
    ns(P, "ip", "route", "add", "default", "via", "10.79.2.1")
    ns(R, "sysctl", "-qw", "net.ipv4.ip_forward=1")

    def mac(n, d):
        return ns(n, "cat", "/sys/class/net/%s%s/address" % (PFX, d)).strip()
    ns(G, "ip", "neigh", "replace", "10.79.1.1", "lladdr", mac(R, "b"), "nud", "permanent",
       "dev", PFX + "a")
    ns(R, "ip", "neigh", "replace", GA, "lladdr", mac(G, "a"), "nud", "permanent", "dev",
       PFX + "b")
    ns(R, "ip", "neigh", "replace", PA, "lladdr", mac(P, "d"), "nud", "permanent", "dev",
       PFX + "c")
    ns(P, "ip", "neigh", "replace", "10.79.2.1", "lladdr", mac(R, "c"), "nud", "permanent",
       "dev", PFX + "d")


def gate(on):
    if on:
        subprocess.run(["ip", "netns", "exec", R, "nft", "-f", "-"], check=True, text=True,
                       input="add table netdev klgate\n"
                       "add chain netdev klgate i { type filter hook ingress device \"%sb\" "
                       "priority 0; policy drop; }\n"
                       "add chain netdev klgate e { type filter hook egress device \"%sb\" "
                       "priority 0; policy drop; }\n" % (PFX, PFX))
    else:
        ns(R, "nft", "delete", "table", "netdev", "klgate")


def tcp_info(s):
    b = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    st, ca, retr, probes, backoff = struct.unpack_from("5B", b, 0)
    rto, = struct.unpack_from("I", b, 8)
    return {"ca": ca, "retransmits": retr, "backoff": backoff, "rto_ms": rto // 1000}


def ioctl_int(s, req):
    buf = ctypes.c_int(0)
    if libc.ioctl(s.fileno(), req, ctypes.byref(buf)) != 0:
        raise OSError(ctypes.get_errno(), "ioctl")
    return buf.value


def seqs(s):
    """snd_una, rcv_nxt of a socket in repair mode."""
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
    wseq = struct.unpack("I", s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
    rseq = struct.unpack("I", s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, 0)
    return (wseq - ioctl_int(s, SIOCOUTQ)) & 0xffffffff, rseq


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def iphdr(src, dst, proto, plen):
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + plen, 0, 0, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))


def raw_send(pkt, dst):
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    r.sendto(pkt, (dst, 0))
    r.close()


def inject_dupack(gport, pport, seq, ack, win):
    """A pure ACK from the peer: nothing new acknowledged, no data, no SACK, no timestamp."""
    th = struct.pack("!HHIIBBHHH", pport, gport, seq, ack, 5 << 4, 0x10, win, 0, 0)
    pseudo = socket.inet_aton(PA) + socket.inet_aton(GA) + struct.pack("!BBH", 0, 6, len(th))
    th = th[:16] + struct.pack("!H", csum(pseudo + th)) + th[18:]
    raw_send(iphdr(PA, GA, 6, len(th)) + th, GA)


def inject_icmp(gport, pport, snd_una):
    """ICMP host unreachable from the peer's address about our segment at snd_una."""
    inner_tcp = struct.pack("!HHIIBBHHH", gport, pport, snd_una, 0, 5 << 4, 0x10, 0, 0, 0)
    inner = iphdr(GA, PA, 6, len(inner_tcp)) + inner_tcp
    icmp = struct.pack("!BBHI", 3, 1, 0, 0) + inner
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    raw_send(iphdr(PA, GA, 1, len(icmp)) + icmp, GA)


class Peer(threading.Thread):
    def __init__(self, conn):
        super().__init__(daemon=True)
        self.conn, self.total, self.events, self.stop = conn, 0, [], False

    def run(self):
        self.conn.settimeout(0.2)
        while not self.stop:
            try:
                b = self.conn.recv(65536)
            except socket.timeout:
                continue
            if not b:
                return
            self.total += len(b)
            self.events.append((time.monotonic(), self.total))


def trial(kick, outage, port):
    setns(P)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((PA, port))
    ls.listen(1)
    setns(G)
    g = socket.create_connection((PA, port))
    g.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn, _ = ls.accept()
    ls.close()
    peer = Peer(conn)
    peer.start()
    written = 0
    chunk = b"x" * 1000
    for _ in range(25):  # warm up: an RTT estimate and a stream
        written += g.send(chunk)
        time.sleep(0.01)
    gate(True)
    for _ in range(4):  # lost into the gate: the guest's own unacked data
        written += g.send(chunk)
    time.sleep(0.05)
    g.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    time.sleep(outage)
    before = tcp_info(g)
    una, rnxt = seqs(g)
    win = struct.unpack("5I", g.getsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW, 20))
    got_before = peer.total
    if kick == "rtomin":
        ns(G, "ip", "route", "change", "default", "via", "10.79.1.1", "rto_min", "5ms")
    if kick == "window":
        w = g.getsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW, 20)
        g.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW, w)
    gate(False)
    t0 = time.monotonic()
    g.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, -1 if kick == "none" else 0)
    if kick == "probes3":
        for _ in range(2):
            time.sleep(0.005)
            g.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
            g.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
    elif kick == "dupack":
        w = win
        # snd_wnd is already scaled; the peer's scale is in tcp_info's wscale byte
        b = g.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        snd_wscale = b[6] & 0x0f
        time.sleep(0.01)  # after the probe's answer, so these count as duplicates
        for _ in range(3):
            inject_dupack(g.getsockname()[1], port, rnxt, una, w[1] >> snd_wscale)
    elif kick == "icmp":
        for _ in range(before["backoff"] + 1):
            inject_icmp(g.getsockname()[1], port, una)
    after = tcp_info(g)
    deadline = t0 + max(30.0, before["rto_ms"] / 1000.0 * 2 + 5)
    moved = None
    while time.monotonic() < deadline:
        ev = [e for e in peer.events if e[0] >= t0 and e[1] > got_before]
        if ev:
            moved = ev[0][0]
            break
        time.sleep(0.002)
    if kick == "rtomin":
        ns(G, "ip", "route", "change", "default", "via", "10.79.1.1")
    written += g.send(chunk)
    end = time.monotonic() + 5
    while peer.total < written and time.monotonic() < end:
        time.sleep(0.01)
    ok = peer.total == written
    peer.stop = True
    peer.join()
    g.close()
    conn.close()
    stall = (moved - t0) * 1000 if moved else None
    print("kick=%-8s outage=%4.1fs backoff=%d rto=%5dms (after kick: backoff=%d rto=%dms) "
          "stall_ms=%s bytes_ok=%s" % (kick, outage, before["backoff"], before["rto_ms"],
                                       after["backoff"], after["rto_ms"],
                                       "%.0f" % stall if stall is not None else "none", ok),
          flush=True)
    return stall, ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--outage", type=float, default=4.0)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--kicks", default="none,probe,probes3,dupack,rtomin,window,icmp")
    a = ap.parse_args()
    try:
        topo()
        port = 30000
        for _ in range(a.reps):
            for k in a.kicks.split(","):
                trial(k, a.outage, port)
                port += 1
    finally:
        for n in (G, R, P):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
