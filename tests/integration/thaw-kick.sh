#!/usr/bin/env bash
# thaw-kick: the thaw kick (guest/thaw-kick.c) moves a thawed connection's own lost data
# before its backed-off RTO could fire, on real sockets (IPv4, IPv6, v4-mapped).
#
# Topology, all in namespaces made here:  guest --veth-- router --veth-- peer
# The gate is an nft netdev ingress+egress drop on the router's veth toward the guest (as the
# host gate sits on the tap), so the guest's segments are lost outside its own stack and its
# RTO really backs off. Neighbours are permanent: nothing sends ICMP on its own. The driver
# (thaw-kick-driver.c) holds a kicked connection against an identical unkicked control.
set -euo pipefail
build=${NETCKPT_BUILD_DIR:?}
driver=$build/tests/integration/thaw-kick-driver
[[ -x $driver ]] || { echo "missing $driver" >&2; exit 1; }

pfx=nckk$$
G=${pfx}g R=${pfx}r P=${pfx}p
cleanup() {
  for ns in "$G" "$R" "$P"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

for ns in "$G" "$R" "$P"; do ip netns add "$ns"; done
ip link add ${pfx}a netns "$G" type veth peer name ${pfx}b netns "$R"
ip link add ${pfx}c netns "$R" type veth peer name ${pfx}d netns "$P"
inns() { ip netns exec "$@"; }
for ns in "$G" "$R" "$P"; do inns "$ns" ip link set lo up; done
inns "$G" ip link set ${pfx}a up
inns "$R" ip link set ${pfx}b up
inns "$R" ip link set ${pfx}c up
inns "$P" ip link set ${pfx}d up
inns "$G" ip addr add 10.76.1.2/24 dev ${pfx}a
inns "$R" ip addr add 10.76.1.1/24 dev ${pfx}b
inns "$R" ip addr add 10.76.2.1/24 dev ${pfx}c
inns "$P" ip addr add 10.76.2.2/24 dev ${pfx}d
inns "$G" ip -6 addr add fd76:1::2/64 dev ${pfx}a nodad
inns "$R" ip -6 addr add fd76:1::1/64 dev ${pfx}b nodad
inns "$R" ip -6 addr add fd76:2::1/64 dev ${pfx}c nodad
inns "$P" ip -6 addr add fd76:2::2/64 dev ${pfx}d nodad
inns "$G" ip route add default via 10.76.1.1
inns "$P" ip route add default via 10.76.2.1
inns "$G" ip -6 route add default via fd76:1::1
inns "$P" ip -6 route add default via fd76:2::1
inns "$R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
mac() { inns "$1" cat /sys/class/net/$2/address; }
neigh() { inns "$1" ip neigh replace "$2" lladdr "$3" nud permanent dev "$4"; }
neigh "$G" 10.76.1.1 "$(mac "$R" ${pfx}b)" ${pfx}a
neigh "$G" fd76:1::1 "$(mac "$R" ${pfx}b)" ${pfx}a
neigh "$R" 10.76.1.2 "$(mac "$G" ${pfx}a)" ${pfx}b
neigh "$R" fd76:1::2 "$(mac "$G" ${pfx}a)" ${pfx}b
neigh "$R" 10.76.2.2 "$(mac "$P" ${pfx}d)" ${pfx}c
neigh "$R" fd76:2::2 "$(mac "$P" ${pfx}d)" ${pfx}c
neigh "$P" 10.76.2.1 "$(mac "$R" ${pfx}c)" ${pfx}d
neigh "$P" fd76:2::1 "$(mac "$R" ${pfx}c)" ${pfx}d

gate_on="ip netns exec $R nft -f - <<'NFT'
add table netdev nckk_gate
add chain netdev nckk_gate in { type filter hook ingress device \"${pfx}b\" priority 0; policy drop; }
add chain netdev nckk_gate out { type filter hook egress device \"${pfx}b\" priority 0; policy drop; }
NFT"
gate_off="ip netns exec $R nft delete table netdev nckk_gate"

rc=0
port=21000
for pair in 10.76.1.2,10.76.2.2 fd76:1::2,fd76:2::2 ::ffff:10.76.1.2,::ffff:10.76.2.2; do
  echo "== ${pair#*,}"
  if ! inns "$G" "$driver" --peer-ns "$P" --local "${pair%,*}" --peer "${pair#*,}" \
    --port $port --gate-on "$gate_on" --gate-off "$gate_off"; then
    rc=1
    inns "$R" nft delete table netdev nckk_gate 2>/dev/null || true
  fi
  port=$((port + 1))
done
exit $rc
