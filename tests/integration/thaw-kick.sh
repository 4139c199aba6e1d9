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
. "$(dirname "$0")/netns-lib.sh"
netns_routed_begin $pfx 76
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
