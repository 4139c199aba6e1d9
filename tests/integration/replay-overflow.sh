#!/usr/bin/env bash
# The per-domain bound: more than the limit arrives while the gate holds; the first frames up
# to the limit are kept, the excess is dropped and counted (TCP would retransmit it), and what
# was kept is replayed intact and in order.
source "$(dirname "$0")/replay-lib.sh"
topo
N=100
LIMIT=3000 # bytes of frames; each datagram here is a 142-byte frame, so 21 fit
KEEP=$((LIMIT / 142))
start_tapcap "$TMP/got.pcap" $((KEEP + 1)) 60
start_hold "$TMP/hold.out" hold dom-o "$TAP" --mac "$GUEST_MAC" --ip "$GUEST_IP" \
    --limit $LIMIT --pcap "$TMP/held.pcap"
px $CHECK send "$GUEST_IP" $N --size 100
arrived() { (($(gate_to_guest dom-o) >= N)); }
wait_for 100 arrived || fail "the gate counted $(gate_to_guest dom-o) frames, want $N"
kill -USR1 "$HOLD_PID"
wait "$HOLD_PID" || fail "replayctl hold failed: $(cat "$TMP/hold.out")"
cat "$TMP/hold.out"
kept=$(kv "$TMP/hold.out" captured kept)
dropped=$(kv "$TMP/hold.out" captured dropped)
bytes=$(kv "$TMP/hold.out" captured bytes)
((kept == KEEP)) || fail "kept $kept, want $KEEP"
((dropped == N - KEEP)) || fail "dropped $dropped, want $((N - KEEP))"
((bytes <= LIMIT)) || fail "kept $bytes bytes over the $LIMIT limit"
[[ $(kv "$TMP/hold.out" replayed sent) == "$KEEP" ]] || fail "replayed count"
ok "bounded: $kept kept, $dropped dropped and counted"
(($(stat -c %s "$TMP/held.pcap") == 24 + KEEP * (16 + 142))) || fail "pcap size"

px $CHECK marker "$GUEST_IP"
wait "$TAPCAP_PID" || fail "tapcap failed"
$CHECK same "$TMP/held.pcap" "$TMP/got.pcap" $KEEP || fail "replayed frames differ"
seqs=$($CHECK seqs "$TMP/got.pcap" | tr '\n' ' ')
[[ $seqs == "$(seq 0 $((KEEP - 1)) | tr '\n' ' ')marker " ]] || fail "order: $seqs"
ok "the kept frames replay in order, byte-exact"
echo PASS
