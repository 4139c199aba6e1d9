#!/usr/bin/env bash
# host/peer-probe on real kernel sockets (docs/rollback.md). Namespaces G (the "guest") and P
# (the peer) routed through H (the "host", where netckpt runs), IPv4 and IPv6. G rolls a
# connection back behind its peer (both sides moved on after the "checkpoint") and destroys it
# with sock_diag, as guest-net-reset-stale does. Then:
#   * control: the peer, blocked in recv(), has no error (the guest's RST is below its window);
#   * the probe, sent from H: the peer's recv() fails with ECONNRESET.
set -euo pipefail
BUILD=${NETCKPT_BUILD_DIR:?}
SRC=${NETCKPT_SOURCE_DIR:?}
PROBE=$BUILD/tests/integration/peer-probe
PY=$SRC/tests/integration/rollback-probe.py
G=nckrbg$$ H=nckrbh$$ P=nckrbp$$
TMP=$(mktemp -d /tmp/netckpt-rollback-probe.XXXXXX)
PIDS=()
cleanup() {
  local rc=$? pid
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  ip netns del "$G" 2>/dev/null
  ip netns del "$H" 2>/dev/null
  ip netns del "$P" 2>/dev/null
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() { echo "ok - $*"; }
wait_file() { # FILE TENTHS
  local t=0
  until [[ -e $1 ]]; do
    ((t < $2)) || return 1
    sleep 0.1
    t=$((t + 1))
  done
}

for ns in "$G" "$H" "$P"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip link add rbg$$ netns "$G" type veth peer name rbhg$$ netns "$H"
ip link add rbp$$ netns "$P" type veth peer name rbhp$$ netns "$H"
ip -n "$G" addr add 10.79.1.2/24 dev rbg$$
ip -n "$G" addr add fd79:1::2/64 dev rbg$$ nodad
ip -n "$H" addr add 10.79.1.1/24 dev rbhg$$
ip -n "$H" addr add fd79:1::1/64 dev rbhg$$ nodad
ip -n "$H" addr add 10.79.2.1/24 dev rbhp$$
ip -n "$H" addr add fd79:2::1/64 dev rbhp$$ nodad
ip -n "$P" addr add 10.79.2.2/24 dev rbp$$
ip -n "$P" addr add fd79:2::2/64 dev rbp$$ nodad
for l in "$G rbg$$" "$H rbhg$$" "$H rbhp$$" "$P rbp$$"; do
  set -- $l
  ip -n "$1" link set "$2" up
done
ip -n "$G" route add default via 10.79.1.1
ip -n "$G" -6 route add default via fd79:1::1
ip -n "$P" route add default via 10.79.2.1
ip -n "$P" -6 route add default via fd79:2::1
ip netns exec "$H" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

# run_case NAME PEER-ADDR PORT PROBE(0|1)
run_case() {
  local d=$TMP/$1 addr=$2 port=$3 probe=$4
  mkdir -p "$d"
  ip netns exec "$P" python3 "$PY" peer "$d" "$addr" "$port" >"$d/peer.log" 2>&1 &
  PIDS+=($!)
  wait_file "$d/listening" 100 || fail "$1: the peer does not listen: $(cat "$d/peer.log")"
  ip netns exec "$G" python3 "$PY" guest "$d" "$addr" "$port" >"$d/guest.log" 2>&1 &
  PIDS+=($!)
  wait_file "$d/image.json" 100 || fail "$1: no rollback in the guest: $(cat "$d/guest.log")"
  if ((probe)); then
    ip netns exec "$H" "$PROBE" "$d/image.json" || fail "$1: peer-probe failed"
    wait_file "$d/peer-error" 50 || fail "$1: the peer got no error after the probe"
    [[ $(cat "$d/peer-error") == ECONNRESET ]] || fail "$1: the peer got $(cat "$d/peer-error")"
  else
    # The guest's own RST (below the peer's window) changes nothing for the peer.
    sleep 1
    [[ ! -e $d/peer-error ]] || fail "$1: the peer got $(cat "$d/peer-error") without a probe"
  fi
}

run_case v4-control 10.79.2.2 5000 0
ok "IPv4: a destroyed rolled-back socket's own RST does not reach the peer that moved on"
run_case v4 10.79.2.2 5001 1
ok "IPv4: after the probe the peer's recv() fails with ECONNRESET"
run_case v6 fd79:2::2 5002 1
ok "IPv6: after the probe the peer's recv() fails with ECONNRESET"
