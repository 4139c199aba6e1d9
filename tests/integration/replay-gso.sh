#!/usr/bin/env bash
# Super-frames (GSO/GRO) replayed into a real tap: a TCP frame longer than the tap's MTU is cut
# in software into MTU-sized segments that reach the guest's end (tapcap) with right checksums,
# advancing sequence numbers, the options on each, FIN/PSH on the last and CWR on the first, and
# payloads that put together are the super-frame's byte for byte; IPv4 and IPv6 (the IPv6 one
# with its checksum left to offload). A UDP frame over the MTU is dropped and counted, one with
# a bad TCP checksum is refused, the small frames around them go through in order.
source "$(dirname "$0")/replay-lib.sh"
topo
GUEST_IP6=fd00:77::9:2

$CHECK superframes "$TMP/super.pcap" "$GUEST_MAC" "$GUEST_IP" "$GUEST_IP6" 8000 5000
for mtu in 1500 1000; do
    hx ip link set "$TAP" mtu "$mtu"
    # frames for the guest: 2 small UDP + the TCP segments of 8000 and 5000 payload bytes
    n4=$(((8000 + mtu - 20 - 32 - 1) / (mtu - 20 - 32)))
    n6=$(((5000 + mtu - 40 - 32 - 1) / (mtu - 40 - 32)))
    want=$((2 + n4 + n6))
    start_tapcap "$TMP/got-$mtu.pcap" "$want" 30
    hx "$REPLAYCTL" send "$TAP" --mac "$GUEST_MAC" --ip "$GUEST_IP" --ip "$GUEST_IP6" \
        "$TMP/super.pcap" >"$TMP/send-$mtu.out" || fail "send failed: $(cat "$TMP/send-$mtu.out")"
    cat "$TMP/send-$mtu.out"
    [[ $(kv "$TMP/send-$mtu.out" replayed segmented) == 2 ]] || fail "MTU $mtu: 2 super-frames not split"
    [[ $(kv "$TMP/send-$mtu.out" replayed segments) == $((n4 + n6)) ]] || fail "MTU $mtu: segments != $((n4 + n6))"
    [[ $(kv "$TMP/send-$mtu.out" replayed sent) == "$want" ]] || fail "MTU $mtu: sent != $want"
    [[ $(kv "$TMP/send-$mtu.out" replayed oversize) == 1 ]] || fail "MTU $mtu: the UDP super-frame not dropped"
    [[ $(kv "$TMP/send-$mtu.out" replayed refused) == 1 ]] || fail "MTU $mtu: the corrupt super-frame not refused"
    [[ $(kv "$TMP/send-$mtu.out" replayed errors) == 0 ]] || fail "MTU $mtu: send errors"
    wait "$TAPCAP_PID" || fail "tapcap failed"
    [[ $(sed -n 's/^received=//p' "$TMP/tapcap.out") == "$want" ]] || fail "MTU $mtu: the guest end got the wrong number of frames"
    $CHECK segments "$TMP/got-$mtu.pcap" "$TMP/super.pcap" "$mtu" || fail "MTU $mtu: bad segments"
    seqs=$($CHECK seqs "$TMP/got-$mtu.pcap")
    [[ $(head -n 1 <<<"$seqs") == 0 && $(tail -n 1 <<<"$seqs") == 1 ]] || fail "MTU $mtu: order: $seqs"
    ok "MTU $mtu: $n4 + $n6 segments, byte-exact, right checksums and flags; UDP over the MTU dropped; corrupt refused"
done
echo PASS
