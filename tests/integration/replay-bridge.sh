#!/usr/bin/env bash
# Stop mode on a bridge: the guest's tap is a bridge port and the peer sits on the same L2
# segment (a static neighbour entry, as a bridged peer with a warm ARP cache has). With the VM
# and its tap gone, the peer's frames for the guest's MAC still enter the bridge; the hold
# table of the bridge family copies them to nflog (layer-2 header included) and drops them.
# After the tap is back they replay unchanged: the peer's own MAC as source, TTL untouched.
source "$(dirname "$0")/replay-lib.sh"
ns_base "$NS_H"
ns_base "$NS_P"
hx ip link add br0 type bridge
hx ip link set br0 up
ip -n "$NS_H" link add hpb type veth peer name pv netns "$NS_P"
hx ip link set hpb master br0
hx ip link set hpb up
ip -n "$NS_P" addr add 10.77.9.5/24 dev pv
ip -n "$NS_P" link set pv up
ip -n "$NS_P" neigh replace "$GUEST_IP" lladdr "$GUEST_MAC" dev pv nud permanent
PEER_MAC=$(ip -n "$NS_P" -o link show pv | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
bridge_tap() {
    hx ip tuntap add dev "$TAP" mode tap
    hx ip link set "$TAP" master br0
    hx ip link set "$TAP" up
}
bridge_tap
N=40
start_hold "$TMP/hold.out" hold-forward dom-b --mac "$GUEST_MAC" --ip "$GUEST_IP" \
    --pcap "$TMP/held.pcap"
T="$(hx "$GATECTL" table-name dom-b)_hold"
hx ip link del "$TAP" # the VM stopped
px $CHECK send "$GUEST_IP" $N --size 300
held_count() { hx nft list table bridge "$T" | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }
arrived() { (($(held_count) >= N)); }
wait_for 100 arrived || fail "the bridge hold rule counted $(held_count), want $N"
kill -USR1 "$HOLD_PID"
wait "$HOLD_PID" || fail "replayctl hold-forward failed: $(cat "$TMP/hold.out")"
cat "$TMP/hold.out"
[[ $(kv "$TMP/hold.out" captured kept) == "$N" ]] || fail "kept != $N"
ok "held $N bridged frames while the tap was gone"

bridge_tap
start_tapcap "$TMP/got.pcap" $((N + 1)) 60
hx "$REPLAYCTL" send "$TAP" --mac "$GUEST_MAC" --ip "$GUEST_IP" "$TMP/held.pcap" >"$TMP/send.out" ||
    fail "send: $(cat "$TMP/send.out")"
cat "$TMP/send.out"
px $CHECK marker "$GUEST_IP"
wait "$TAPCAP_PID" || fail "tapcap failed"
seqs=$($CHECK seqs "$TMP/got.pcap" | tr '\n' ' ')
[[ $seqs == "$(seq 0 $((N - 1)) | tr '\n' ' ')marker " ]] || fail "order: $seqs"
$CHECK routed "$TMP/got.pcap" "$PEER_MAC" "$GUEST_MAC" 64 || fail "bridged frames changed"
$CHECK same "$TMP/held.pcap" "$TMP/got.pcap" $N || fail "replayed frames differ from the held ones"
ok "bridged frames replayed unchanged and in order"
echo PASS
