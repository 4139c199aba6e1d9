#!/usr/bin/env bash
# Stop mode: the VM and its tap are gone, yet the routed peer's frames still reach the host
# namespace. The hold tables (prerouting, inet + bridge) copy the guest's frames to nflog and
# drop them; the other addresses are untouched. When the tap is back, the held frames replay
# into it as forwarding would have delivered them: the guest's MAC, the tap's MAC as source,
# the TTL lowered by one with a valid checksum, the payload exact and in order.
source "$(dirname "$0")/replay-lib.sh"
topo
N=50
start_hold "$TMP/hold.out" hold-forward dom-f --mac "$GUEST_MAC" --ip "$GUEST_IP" \
    --pcap "$TMP/held.pcap"
T="$(hx "$GATECTL" table-name dom-f)_hold"
# (here-strings, not pipes into grep -q: with pipefail, nft's SIGPIPE would fail the pipe)
inet=$(hx nft list table inet "$T")
bridge=$(hx nft list table bridge "$T")
grep -q "ip daddr $GUEST_IP .*log group" <<<"$inet" || fail "no inet hold rule: $inet"
grep -q "ether daddr $GUEST_MAC .*log group" <<<"$bridge" || fail "no bridge hold rule: $bridge"
hx ip link del "$TAP" # the VM stopped: libvirt removed its tap
px $CHECK send "$GUEST_IP" $N --size 200 --other "$OTHER_IP" --every 10
held_count() { hx nft list table inet "$T" | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }
arrived() { (($(held_count) >= N)); }
wait_for 100 arrived || fail "the hold rule counted $(held_count), want $N"
kill -USR1 "$HOLD_PID"
wait "$HOLD_PID" || fail "replayctl hold-forward failed: $(cat "$TMP/hold.out")"
cat "$TMP/hold.out"
[[ $(kv "$TMP/hold.out" captured kept) == "$N" ]] || fail "kept != $N"
[[ $(kv "$TMP/hold.out" captured seen) == "$N" ]] || fail "frames for other addresses were logged"
! hx nft list table inet "$T" >/dev/null 2>&1 || fail "inet hold table left behind"
! hx nft list table bridge "$T" >/dev/null 2>&1 || fail "bridge hold table left behind"
ok "held $N frames on the prerouting path while the tap was gone; tables removed"

make_tap # the VM is restored: a new tap
start_tapcap "$TMP/got.pcap" $((N + 1)) 60
hx "$REPLAYCTL" send "$TAP" --mac "$GUEST_MAC" --ip "$GUEST_IP" "$TMP/held.pcap" >"$TMP/send.out" ||
    fail "send: $(cat "$TMP/send.out")"
cat "$TMP/send.out"
[[ $(kv "$TMP/send.out" replayed sent) == "$N" ]] || fail "replayed count"
expect_replayed $N "$(tap_mac)" 63
ok "replayed after the tap came back: the tap's MAC as source, TTL 63, valid checksum, in order"
echo PASS
