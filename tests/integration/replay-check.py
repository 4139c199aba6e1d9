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
  superframes OUT GUEST_MAC IP4 IP6 N4 N6            OUT: a UDP datagram rseq=0, an IPv4 TCP
                                                     super-frame (N4 bytes of payload), a UDP one
                                                     over the MTU, an IPv6 TCP one (N6, checksum
                                                     left to offload), one with a bad checksum,
                                                     a UDP datagram rseq=1
  segments GOT ORIG MTU                              the TCP frames of GOT are ORIG's TCP
                                                     super-frames cut into MTU-sized segments:
                                                     checksums, seq, flags, options, byte-exact
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


def sum16(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(">%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


TCP_OPTS = bytes([1, 1, 8, 10, 0, 0, 0, 42, 0, 0, 0, 7])


def tcp_super(mac, src, dst, v6, n, flags, partial):
    """An Ethernet frame holding one TCP packet with n bytes of payload (i*7+3)."""
    pay = bytes((i * 7 + 3) & 0xFF for i in range(n))
    th = struct.pack(">HHIIBBHHH", 40000, 8080, 0xFFFFFF00, 0x12345678, (20 + len(TCP_OPTS)) // 4 << 4,
                     flags, 502, 0, 0) + TCP_OPTS
    l4 = th + pay
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    s, d = socket.inet_pton(fam, src), socket.inet_pton(fam, dst)
    pseudo = s + d + (struct.pack(">IxxxB", len(l4), 6) if v6 else struct.pack(">xBH", 6, len(l4)))
    c = sum16(pseudo) if partial else (~sum16(pseudo + l4)) & 0xFFFF
    l4 = l4[:16] + struct.pack(">H", c) + l4[18:]
    if v6:
        ip = struct.pack(">IHBB", 0x60000000, len(l4), 6, 64) + s + d
        et = b"\x86\xdd"
    else:
        ip = struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(l4), 0x1234, 0x4000, 64, 6, 0) + s + d
        ip = ip[:10] + struct.pack(">H", (~sum16(ip)) & 0xFFFF) + ip[12:]
        et = b"\x08\x00"
    return mac + bytes.fromhex("020000000001") + et + ip + l4


def udp_frame(mac, src, dst, payload):
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    udp = struct.pack(">HHHH", 5555, 9999, 8 + len(payload), 0) + payload
    c = (~sum16(s + d + struct.pack(">xBH", 17, len(udp)) + udp)) & 0xFFFF
    udp = udp[:6] + struct.pack(">H", c or 0xFFFF) + udp[8:]
    ip = struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(udp), 7, 0, 64, 17, 0) + s + d
    ip = ip[:10] + struct.pack(">H", (~sum16(ip)) & 0xFFFF) + ip[12:]
    return mac + bytes.fromhex("020000000001") + b"\x08\x00" + ip + udp


def tcp_view(fr):
    """(v6, ip header, tcp header, payload) of a TCP frame, or None."""
    if fr[12:14] == b"\x08\x00" and fr[23] == 6:
        ihl = (fr[14] & 0x0F) * 4
        tot = struct.unpack(">H", fr[16:18])[0]
        ip, l4 = fr[14:14 + ihl], fr[14 + ihl:14 + tot]
        v6 = False
    elif fr[12:14] == b"\x86\xdd" and fr[20] == 6:
        plen = struct.unpack(">H", fr[18:20])[0]
        ip, l4 = fr[14:54], fr[54:54 + plen]
        v6 = True
    else:
        return None
    thl = (l4[12] >> 4) * 4
    return v6, ip, l4[:thl], l4[thl:]


def tcp_pseudo(v6, ip, n):
    if v6:
        return ip[8:40] + struct.pack(">IxxxB", n, 6)
    return ip[12:20] + struct.pack(">xBH", 6, n)


def tcp_csum_ok(v6, ip, l4, partial_ok=False):
    pseudo = tcp_pseudo(v6, ip, len(l4))
    if partial_ok and struct.unpack(">H", l4[16:18])[0] == sum16(pseudo):
        return True
    return sum16(pseudo + l4) == 0xFFFF


def check_segments(got, orig, mtu):
    # the super-frames a correct replay splits: those with a right (or offloaded) checksum
    sup = [s for s in map(tcp_view, orig) if s and tcp_csum_ok(s[0], s[1], s[2] + s[3], True)]
    segs = [tcp_view(f) for f in got]
    lens = [len(f) for f, s in zip(got, segs) if s]
    segs = [s for s in segs if s]
    for v6, ip, th, pay in sup:
        mine = [s for s in segs if s[0] == v6]
        seq0 = struct.unpack(">I", th[4:8])[0]
        joined = b""
        for i, (_, sip, sth, spay) in enumerate(mine):
            last = i == len(mine) - 1
            seq = struct.unpack(">I", sth[4:8])[0]
            if seq != (seq0 + len(joined)) & 0xFFFFFFFF:
                return "v6=%s segment %d: seq %d, want %d" % (v6, i, seq, seq0 + len(joined))
            if not tcp_csum_ok(v6, sip, sth + spay):
                return "v6=%s segment %d: bad TCP checksum" % (v6, i)
            if not v6 and sum16(sip) != 0xFFFF:
                return "segment %d: bad IPv4 header checksum" % i
            if len(sip) + len(sth) + len(spay) > mtu:
                return "v6=%s segment %d: %d bytes over the MTU" % (v6, i, len(sip) + len(sth) + len(spay))
            want = th[13] if last else th[13] & ~0x09
            if i:
                want &= ~0x80
            if sth[13] != want or sth[20:] != th[20:] or sth[8:12] != th[8:12] or sth[14:16] != th[14:16]:
                return "v6=%s segment %d: flags/options/ack/window changed" % (v6, i)
            if not v6 and struct.unpack(">H", sip[4:6])[0] != (struct.unpack(">H", ip[4:6])[0] + i) & 0xFFFF:
                return "segment %d: IPv4 ID not incremented" % i
            joined += spay
        if joined != pay:
            return "v6=%s: %d segments, payload %d bytes, want %d byte-exact" % (v6, len(mine), len(joined), len(pay))
        print("v6=%s: %d bytes in %d segments, largest frame %d" % (v6, len(pay), len(mine), max(lens)))
    return None


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
    if cmd == "superframes":
        mac = bytes(int(x, 16) for x in a[2].split(":"))
        ip4, ip6, n4, n6 = a[3], a[4], int(a[5]), int(a[6])
        bad = bytearray(tcp_super(mac, "10.77.2.2", ip4, False, 3000, 0x10, False))
        bad[-1] ^= 0x40
        frames = [udp_frame(mac, "10.77.2.2", ip4, b"rseq=000000"),
                  tcp_super(mac, "10.77.2.2", ip4, False, n4, 0x80 | 0x10 | 0x08 | 0x01, False),
                  udp_frame(mac, "10.77.2.2", ip4, b"big".ljust(3000, b".")),
                  tcp_super(mac, "fd00:77::2", ip6, True, n6, 0x10 | 0x08, True),
                  bytes(bad),
                  udp_frame(mac, "10.77.2.2", ip4, b"rseq=000001")]
        write_pcap(a[1], struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1), frames)
        return 0
    if cmd == "segments":
        _, got = read_pcap(a[1])
        _, orig = read_pcap(a[2])
        err = check_segments(got, orig, int(a[3]))
        if err:
            print(err)
            return 1
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
