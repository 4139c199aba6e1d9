#!/usr/bin/env python3
"""Connection holders for bench/agent-freeze.

  holder.py peer  --listen ADDR --port P --conns N --queue BYTES --ready FILE
      accepts N connections and writes BYTES on each (they sit in the guest's receive queue,
      since the guest side never reads), then holds them.
  holder.py guest --connect ADDR --port P --conns N --ready FILE
      opens N connections and holds them without reading.
"""
import argparse
import os
import socket
import time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["peer", "guest"])
    ap.add_argument("--listen")
    ap.add_argument("--connect")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--queue", type=int, default=0)
    ap.add_argument("--ready", required=True)
    a = ap.parse_args()
    socks = []
    if a.role == "peer":
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((a.listen, a.port))
        ls.listen(4096)
        payload = os.urandom(a.queue)
        while len(socks) < a.conns:
            s, _ = ls.accept()
            if a.queue:
                s.sendall(payload)
            socks.append(s)
    else:
        for _ in range(a.conns):
            s = socket.create_connection((a.connect, a.port))
            socks.append(s)
    open(a.ready, "w").close()
    while True:
        time.sleep(3600)

if __name__ == "__main__":
    main()
