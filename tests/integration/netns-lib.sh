# netns-lib.sh: the routed three-namespace topology that thaw-kick.sh and tcp-repair.sh share.
# Sourced, not run.
#
#   guest ${pfx}a --veth-- ${pfx}b router ${pfx}c --veth-- ${pfx}d peer
#   10.N.1.2 / fdN:1::2     .1 / ::1       10.N.2.1 / fdN:2::1   10.N.2.2 / fdN:2::2
#
# netns_routed_begin PFX N: sets G R P (namespace names PFX{g,r,p}), defines inns and
# netns_cleanup, traps EXIT to netns_cleanup, creates the namespaces, links, addresses and
# default routes, and turns on forwarding in the router. N (the second octet, also used in
# the IPv6 prefix) keeps two tests' addresses apart.
inns() { ip netns exec "$@"; }

netns_cleanup() {
  for ns in "$G" "$R" "$P"; do ip netns del "$ns" 2>/dev/null || true; done
}

netns_routed_begin() {
  local pfx=$1 n=$2
  G=${pfx}g R=${pfx}r P=${pfx}p
  trap netns_cleanup EXIT
  for ns in "$G" "$R" "$P"; do ip netns add "$ns"; done
  ip link add ${pfx}a netns "$G" type veth peer name ${pfx}b netns "$R"
  ip link add ${pfx}c netns "$R" type veth peer name ${pfx}d netns "$P"
  for ns in "$G" "$R" "$P"; do inns "$ns" ip link set lo up; done
  inns "$G" ip link set ${pfx}a up
  inns "$R" ip link set ${pfx}b up
  inns "$R" ip link set ${pfx}c up
  inns "$P" ip link set ${pfx}d up
  inns "$G" ip addr add 10.$n.1.2/24 dev ${pfx}a
  inns "$R" ip addr add 10.$n.1.1/24 dev ${pfx}b
  inns "$R" ip addr add 10.$n.2.1/24 dev ${pfx}c
  inns "$P" ip addr add 10.$n.2.2/24 dev ${pfx}d
  inns "$G" ip -6 addr add fd$n:1::2/64 dev ${pfx}a nodad
  inns "$R" ip -6 addr add fd$n:1::1/64 dev ${pfx}b nodad
  inns "$R" ip -6 addr add fd$n:2::1/64 dev ${pfx}c nodad
  inns "$P" ip -6 addr add fd$n:2::2/64 dev ${pfx}d nodad
  inns "$G" ip route add default via 10.$n.1.1
  inns "$P" ip route add default via 10.$n.2.1
  inns "$G" ip -6 route add default via fd$n:1::1
  inns "$P" ip -6 route add default via fd$n:2::1
  inns "$R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
}
