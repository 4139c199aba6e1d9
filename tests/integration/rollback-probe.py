# rollback-probe.py guest|peer DIR ...: the two ends of tests/integration/rollback-probe.sh.
#   peer DIR ADDR PORT: accept one connection; answer 64 bytes, then 1000 after DIR/moveon;
#     then block in recv() and write "<errno name>" to DIR/peer-error at the first error/EOF.
#   guest DIR ADDR PORT: connect; 64 bytes each way; "checkpoint" (sequence numbers read in
#     TCP_REPAIR); 1000 bytes each way (both sides move on); rebuild the socket at the
#     checkpoint's sequence numbers (a rollback: repair-mode close, new socket in repair mode,
#     no window probe), destroy it with `ss -K` (sock_diag, the kernel sends its RST), write
#     DIR/image.json (the socket image fields host/peer-probe reads), then sleep until killed.
import json, os, socket, struct, subprocess, sys, time
TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ = 19, 20, 21
RECV_Q, SEND_Q = 1, 2
role, d, addr, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET

def exact(s, n):
    got = b""
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            raise EOFError
        got += b
    return got

def wait(name):
    while not os.path.exists(os.path.join(d, name)):
        time.sleep(0.02)

if role == "peer":
    l = socket.socket(fam)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, port))
    l.listen(1)
    open(os.path.join(d, "listening"), "w").close()
    c, _ = l.accept()
    exact(c, 64)
    c.sendall(b"p" * 64)
    wait("moveon")
    exact(c, 1000)
    c.sendall(b"q" * 1000)
    try:
        what = "EOF" if not c.recv(1 << 16) else "DATA"
    except OSError as e:
        import errno
        what = errno.errorcode.get(e.errno, str(e.errno))
    with open(os.path.join(d, "peer-error"), "w") as f:
        f.write(what + "\n")
    sys.exit(0)

s = socket.create_connection((addr, port), timeout=10)
s.sendall(b"g" * 64)
exact(s, 64)
def seqs(k):
    k.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    k.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, SEND_Q)
    snd = struct.unpack("I", k.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
    k.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, RECV_Q)
    rcv = struct.unpack("I", k.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
    k.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, -1)  # off without a window probe
    return snd, rcv
time.sleep(0.2)  # everything acknowledged: nothing queued at the "checkpoint"
snd, rcv = seqs(s)
local, remote = s.getsockname()[:2], s.getpeername()[:2]
open(os.path.join(d, "moveon"), "w").close()
s.sendall(b"h" * 1000)
exact(s, 1000)
time.sleep(0.2)
# the rollback: close silently (repair mode), rebuild at the checkpoint's sequence numbers
s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
s.close()
n = socket.socket(fam)
n.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
n.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
n.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, SEND_Q)
n.setsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, struct.pack("I", snd))
n.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, RECV_Q)
n.setsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, struct.pack("I", rcv))
n.bind(local)
n.connect(remote)
n.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, -1)
dst = "[%s]" % remote[0] if fam == socket.AF_INET6 else remote[0]
subprocess.run(["ss", "-K", "-t", "dst", dst, "dport", "=", str(remote[1])],
               stdout=subprocess.DEVNULL, check=True)
img = {"connections": [{"local": {"addr": local[0], "port": local[1]},
                        "remote": {"addr": remote[0], "port": remote[1]},
                        "snd_seq": snd, "rcv_seq": rcv,
                        "unacked": {"len": 0}, "unsent": {"len": 0}}]}
with open(os.path.join(d, "image.json.tmp"), "w") as f:
    json.dump(img, f)
os.rename(os.path.join(d, "image.json.tmp"), os.path.join(d, "image.json"))
time.sleep(600)
