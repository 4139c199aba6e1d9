#!/usr/bin/env bash
# Held-traffic replay on a real tap: the gate copies every frame sent to the guest to an nflog
# group before dropping it; after the lift the frames kept (the guest's MAC and IP only) are
# replayed into the tap and reach the guest's end (tapcap) byte-exact and in order, and frames
# for another MAC or IP never do. Then a pcap with hostile frames added is replayed (the
# restore path): only the domain's frames go out.
source "$(dirname "$0")/replay-lib.sh"
topo
N=200
start_tapcap "$TMP/got.pcap" $((N + 1)) 60
# The capture starts with the gate, before the socket image tells the guest's IPs: it checks
# the MAC and the headers only; the replay checks the IPs too.
start_hold "$TMP/hold.out" hold dom-r "$TAP" --mac "$GUEST_MAC" --ip "$GUEST_IP" \
    --capture-any-ip --pcap "$TMP/held.pcap"
# Every 10th datagram also goes to the stranger behind the same tap (20 of those), and to an
# address that is not the guest's but resolves to the guest's MAC (20 more).
hx ip neigh replace 10.77.9.6 lladdr "$GUEST_MAC" dev "$TAP" nud permanent
px $CHECK send "$GUEST_IP" $N --size 100 --other "$OTHER_IP" --every 10
px $CHECK send 10.77.9.6 20 --size 100
arrived() { (($(gate_to_guest dom-r) >= N + 40)); }
wait_for 100 arrived || fail "the gate counted $(gate_to_guest dom-r) frames, want $((N + 40))"
# The capture rule sits in the egress chain once, however often it is added.
group=$(sed -n 's/^held group=//p' "$TMP/hold.out")
hx "$REPLAYCTL" capture-add dom-r "$group" "$TAP" || fail "capture-add (again)"
hx "$REPLAYCTL" capture-add dom-r "$group" "$TAP" || fail "capture-add (again)"
chain=$(hx nft list chain netdev "$(hx "$GATECTL" table-name dom-r)" "to_guest_$TAP")
[[ $(grep -c "log group $group" <<<"$chain") == 1 ]] || fail "capture rule not idempotent: $chain"
hx "$REPLAYCTL" capture-add no-such-dom "$group" "$TAP" 2>/dev/null && fail "capture-add without a gate"
ok "the capture rule is added once, and only to an installed gate"
kill -USR1 "$HOLD_PID"
wait "$HOLD_PID" || fail "replayctl hold failed: $(cat "$TMP/hold.out")"
cat "$TMP/hold.out"
[[ $(kv "$TMP/hold.out" captured kept) == $((N + 20)) ]] || fail "kept != $N + 20"
[[ $(kv "$TMP/hold.out" captured rejected) == 20 ]] || fail "the stranger's 20 frames were not rejected"
[[ $(kv "$TMP/hold.out" captured dropped) == 0 ]] || fail "drops under the limit"
[[ $(kv "$TMP/hold.out" replayed sent) == "$N" ]] || fail "replayed != $N"
[[ $(kv "$TMP/hold.out" replayed refused) == 20 ]] || fail "frames for an IP not the guest's were not refused"
ok "captured at the gate's egress hook: the stranger's MAC rejected, a foreign IP refused at replay"

# The gate is gone: a marker goes straight through and must come after every replayed frame.
px $CHECK marker "$GUEST_IP"
wait "$TAPCAP_PID" || fail "tapcap failed"
cat "$TMP/tapcap.out"
[[ $(sed -n 's/^received=//p' "$TMP/tapcap.out") == $((N + 1)) ]] || fail "the guest end got the wrong number of frames"
$CHECK same "$TMP/held.pcap" "$TMP/got.pcap" $N --dst "$GUEST_IP" || fail "replayed frames differ from the held ones"
seqs=$($CHECK seqs "$TMP/got.pcap")
[[ $(head -n $N <<<"$seqs" | tr '\n' ' ') == "$(seq 0 $((N - 1)) | tr '\n' ' ')" ]] || fail "not in order: $seqs"
[[ $(tail -n 1 <<<"$seqs") == marker ]] || fail "the marker is not last"
! grep -q stranger <<<"$seqs" || fail "a stranger's frame reached the guest"
# The peer's stack left the UDP checksum to offload (veth); the replayed frame must carry a
# complete one, or the guest's stack drops it.
$CHECK csum "$TMP/got.pcap" || fail "a replayed frame has a bad checksum"
ok "replayed into the tap: byte-exact, in order, before live traffic, nothing for the stranger"

# Restore path: frames from a bundle's pcap, with hostile ones injected, replayed by send.
$CHECK inject "$TMP/held.pcap" "$TMP/hostile.pcap" "$OTHER_MAC" "$OTHER_IP"
"$REPLAYCTL" check --mac "$GUEST_MAC" --ip "$GUEST_IP" "$TMP/hostile.pcap" | sed -n '3,6p' >"$TMP/verdicts"
cat "$TMP/verdicts"
[[ $(cut -d' ' -f3 "$TMP/verdicts" | tr '\n' ' ') == "not-the-domain-mac not-the-domain-ip vlan-tagged truncated " ]] ||
    fail "hostile frames not classified"
# A domain with two NICs: the second tap (another MAC and IP of the same domain) must get
# none of the first NIC's frames, and the hostile ones go nowhere.
hx ip tuntap add dev nctap1 mode tap
hx ip link set nctap1 up
start_in "$NS_H" "$TAPCAP" nctap1 "$TMP/got-tap1.pcap" 1000 3 >"$TMP/tapcap1.out"
TAPCAP1_PID=$STARTED
wait_for 100 grep -q attached "$TMP/tapcap1.out" || fail "tapcap on nctap1 did not attach"
start_tapcap "$TMP/got2.pcap" $((N + 1)) 60
hx "$REPLAYCTL" send-taps --mac "$GUEST_MAC" --mac 02:00:00:00:09:04 --ip "$GUEST_IP" \
    --ip 10.77.9.4 --tap "$TAP=$GUEST_MAC" --tap nctap1=02:00:00:00:09:04 --burst 32 \
    --pace-us 100 "$TMP/hostile.pcap" >"$TMP/send.out" || fail "send failed"
cat "$TMP/send.out"
[[ $(kv "$TMP/send.out" loaded rejected) == 24 ]] || fail "the reader kept hostile frames (4 injected, 20 for a foreign IP)"
[[ $(kv "$TMP/send.out" replayed sent) == "$N" ]] || fail "send count"
[[ $(kv "$TMP/send.out" replayed other) == 0 ]] || fail "frames went to no tap"
px $CHECK marker "$GUEST_IP"
wait "$TAPCAP_PID" || fail "tapcap failed"
wait "$TAPCAP1_PID" || fail "tapcap on nctap1 failed"
[[ $(sed -n 's/^received=//p' "$TMP/tapcap1.out") == 0 ]] || fail "the second NIC's tap got frames"
$CHECK same "$TMP/held.pcap" "$TMP/got2.pcap" $N --dst "$GUEST_IP" || fail "frames replayed from the pcap differ"
[[ $($CHECK seqs "$TMP/got2.pcap" | tail -n 1) == marker ]] || fail "a hostile frame reached the guest"
ok "a pcap with hostile frames replays only the domain's frames, each on its NIC's tap"

# A truncated pcap is refused as a whole and nothing is sent.
head -c $(($(stat -c %s "$TMP/held.pcap") - 7)) "$TMP/held.pcap" >"$TMP/cut.pcap"
if hx "$REPLAYCTL" send "$TAP" --mac "$GUEST_MAC" --ip "$GUEST_IP" "$TMP/cut.pcap" >"$TMP/cut.out" 2>&1; then
    fail "a truncated pcap was accepted"
fi
grep -q "file ends first" "$TMP/cut.out" || fail "no clear error: $(cat "$TMP/cut.out")"
ok "a truncated pcap is refused with a clear error"
echo PASS
