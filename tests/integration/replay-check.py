#!/usr/bin/env python3
"""Helpers for the replay-*.sh tests: a UDP sender for the peer and pcap checks.

  send DST N [--size B] [--other DST2 --every K] [--start S]
      N datagrams "rseq=NNNNNN" (from S) to DST:9999 (every K-th one also to DST2); used in
      the peer namespace
  marker DST                                         one datagram "marker" to DST:9999
  seqs PCAP                                          the rseq numbers of the UDP frames, in order
  same PCAP_A PCAP_B N [--dst IP]                    the first N frames of both are byte-equal
                                                     (--dst: of A, only the IPv4 frames to IP)
  inject IN OUT MAC_OTHER IP_OTHER                   OUT = IN plus a frame for another MAC, one for
                                                     another IP, a VLAN-tagged and a cut one
  routed PCAP SRC_MAC DST_MAC TTL                   every frame: those MACs, that TTL, valid IPv4
                                                     header and UDP checksums
  csum PCAP                                          every IPv4 frame: valid header and UDP/TCP
                                                     checksums (what the guest's stack checks)
"""
import socket
import struct
import sys


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    out, off = [], 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        out.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return data[:24], out


def write_pcap(path, header, frames):
    endian = "<" if struct.unpack("<I", header[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    with open(path, "wb") as f:
        f.write(header)
        for i, fr in enumerate(frames):
            f.write(struct.pack(endian + "IIII", 1700000000, i, len(fr), len(fr)) + fr)


def udp_payload(frame):
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[14 + 9] != 17:
        return None
    tot = struct.unpack(">H", frame[16:18])[0]
    return frame[14 + ihl + 8:14 + tot]


def csum(b):
    s = 0
    for i in range(0, len(b) - 1, 2):
        s += (b[i] << 8) | b[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def l4_ok(fr):
    ihl = (fr[14] & 0x0F) * 4
    if csum(fr[14:14 + ihl]) != 0:
        return False
    proto = fr[14 + 9]
    tot = struct.unpack(">H", fr[16:18])[0]
    l4 = fr[14 + ihl:14 + tot]
    if proto not in (6, 17) or (proto == 17 and l4[6:8] == b"\0\0"):
        return True
    pseudo = fr[26:34] + bytes([0, proto]) + struct.pack(">H", len(l4))
    return csum(pseudo + l4 + (b"\0" if len(l4) % 2 else b"")) == 0


def main(a):
    cmd = a[0]
    if cmd == "send":
        dst, n = a[1], int(a[2])
        size, other, every, start = 64, None, 0, 0
        i = 3
        while i < len(a):
            if a[i] == "--size":
                size = int(a[i + 1])
            elif a[i] == "--other":
                other = a[i + 1]
            elif a[i] == "--every":
                every = int(a[i + 1])
            elif a[i] == "--start":
                start = int(a[i + 1])
            i += 2
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for k in range(n):
            msg = ("rseq=%06d" % (start + k)).encode().ljust(size, b".")
            s.sendto(msg, (dst, 9999))
            if other and every and k % every == 0:
                s.sendto(b"stranger" + msg, (other, 9999))
        return 0
    if cmd == "marker":
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"marker", (a[1], 9999))
        return 0
    if cmd == "seqs":
        _, frames = read_pcap(a[1])
        for fr in frames:
            p = udp_payload(fr)
            if p is None:
                print("other")
            elif p.startswith(b"rseq="):
                print(int(p[5:11]))
            else:
                print(p[:8].decode(errors="replace"))
        return 0
    if cmd == "same":
        _, fa = read_pcap(a[1])
        _, fb = read_pcap(a[2])
        n = int(a[3])
        if len(a) > 5 and a[4] == "--dst":
            ip = socket.inet_aton(a[5])
            fa = [f for f in fa if f[12:14] == b"\x08\x00" and f[30:34] == ip]
        if len(fa) < n or len(fb) < n:
            print("too few frames: %d and %d, want %d" % (len(fa), len(fb), n))
            return 1
        for i in range(n):
            if fa[i] != fb[i]:
                print("frame %d differs:\n %s\n %s" % (i, fa[i].hex(), fb[i].hex()))
                return 1
        return 0
    if cmd == "inject":
        header, frames = read_pcap(a[1])
        good = frames[0]
        other_mac = bytes(int(x, 16) for x in a[3].split(":"))
        other_ip = socket.inet_aton(a[4])
        f_mac = other_mac + good[6:]
        ip = bytearray(good)
        ip[14 + 16:14 + 20] = other_ip
        f_ip = bytes(ip)
        f_vlan = good[:12] + b"\x81\x00\x00\x05" + good[12:]
        f_cut = good[:14 + 24]  # the IP header says more than is there
        frames = frames[:2] + [f_mac, f_ip, f_vlan, f_cut] + frames[2:]
        write_pcap(a[2], header, frames)
        return 0
    if cmd == "routed":
        _, frames = read_pcap(a[1])
        src = bytes(int(x, 16) for x in a[2].split(":"))
        dst = bytes(int(x, 16) for x in a[3].split(":"))
        ttl = int(a[4])
        for i, fr in enumerate(frames):
            ihl = (fr[14] & 0x0F) * 4
            if fr[:6] != dst or fr[6:12] != src or fr[14 + 8] != ttl or not l4_ok(fr):
                print("frame %d: dst %s src %s ttl %d csum %04x" %
                      (i, fr[:6].hex(), fr[6:12].hex(), fr[22], csum(fr[14:14 + ihl])))
                return 1
        return 0
    if cmd == "csum":
        _, frames = read_pcap(a[1])
        for i, fr in enumerate(frames):
            if fr[12:14] == b"\x08\x00" and not l4_ok(fr):
                print("frame %d: bad checksum: %s" % (i, fr.hex()))
                return 1
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
