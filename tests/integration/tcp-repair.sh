#!/usr/bin/env bash
# tcp-repair: freeze, dump, thaw and rebuild real TCP connections (guest/tcp-repair.c).
#
# Topology, all in namespaces made here:  guest --veth-- router --veth-- peer
# The peer is routed, so a drop (an nft netdev ingress+egress table on the router's veth
# toward the guest, as the host gate sits on the tap) makes the peer really retransmit.
#
# Usage: tcp-repair.sh [live|rebuild|many|all]   (default all)
set -euo pipefail
what=${1:-all}
build=${NETCKPT_BUILD_DIR:?}
driver=$build/tests/integration/tcp-repair-driver
[[ -x $driver ]] || { echo "missing $driver" >&2; exit 1; }

pfx=ncktr$$
. "$(dirname "$0")/netns-lib.sh"
netns_routed_begin $pfx 77

port=20000
rc=0
run() { # family mode conns bytes cases
  echo "== $2 $1 x$3: $5"
  if ! inns "$G" "$driver" run --peer-ns "$P" --router-ns "$R" --gate-dev ${pfx}b \
    --addr4 10.77.1.2,10.77.2.2 --addr6 fd77:1::2,fd77:2::2 --port $port \
    --family "$1" --mode "$2" --conns "$3" --bytes "$4" --case "$5"; then
    rc=1
  fi
  port=$((port + 100))
}

half=fin_wait1,fin_wait2,close_wait,last_ack,closing
if [[ $what == live || $what == all ]]; then
  run v4 live 4 262144 established,fullrecv,big,keepalive,$half
  run v6 live 2 262144 established,fullrecv,$half
  run mapped live 2 262144 established,$half
fi
if [[ $what == rebuild || $what == all ]]; then
  echo "== loopback rebuild"
  inns "$G" "$driver" loopback || rc=1
  run v4 rebuild 4 262144 established,fullrecv,big,keepalive,$half
  run v6 rebuild 2 262144 established,big,$half
  run mapped rebuild 2 262144 established,close_wait,fin_wait2,closing
fi
if [[ $what == many || $what == all ]]; then
  run v4 live 1000 65536 established
  run v4 rebuild 1000 65536 established
fi
exit $rc
