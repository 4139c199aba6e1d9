#!/usr/bin/env bash
# Stop mode on a bridge: the guest's tap is a bridge port and the peer sits on the same L2
# segment (a static neighbour entry, as a bridged peer with a warm ARP cache has). With the VM
# and its tap gone, the peer's frames for the guest's MAC still enter the bridge; the hold
# table of the bridge family copies them to nflog (layer-2 header included) and drops them.
# After the tap is back they replay unchanged: the peer's own MAC as source, TTL untouched.
source "$(dirname "$0")/replay-lib.sh"
bridge_topo
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
expect_replayed $N "$PEER_MAC" 64
$CHECK same "$TMP/held.pcap" "$TMP/got.pcap" $N || fail "replayed frames differ from the held ones"
ok "bridged frames replayed unchanged and in order"
echo PASS
