#!/usr/bin/env bash
# The transaction's flow through struct replay_session on a real tap, twice: a checkpoint
# (gate, capture with any IP, lift, held frames written as the bundle's pcap) and a restore
# (gate, capture, lift, then replay of the bundle's frames followed by the restore window's,
# checked against the socket image's addresses). The guest end gets the checkpoint's frames,
# then the restore's, in order; frames for an address the image does not hold are refused.
source "$(dirname "$0")/replay-lib.sh"
topo
N=30
cat >"$TMP/image.json" <<JSON
{"connections":[{"local":{"addr":"$GUEST_IP","port":40000},"remote":{"addr":"10.77.2.2","port":5000}},
                {"local":{"addr":"0.0.0.0","port":1},"remote":{"addr":"10.77.2.2","port":2}}]}
JSON
hx ip neigh replace 10.77.9.6 lladdr "$GUEST_MAC" dev "$TAP" nud permanent
start_tapcap "$TMP/got.pcap" $((2 * N + 1)) 60

# checkpoint (stop mode): held frames go to the bundle's pcap, nothing is replayed
start_hold "$TMP/ckpt.out" session dom-s --tap "$TAP=$GUEST_MAC" --pcap "$TMP/bundle-held.pcap"
px $CHECK send "$GUEST_IP" $N --size 80
px $CHECK send 10.77.9.6 5 --size 80 # the guest's MAC, an IP the image does not hold
arrived() { (($(gate_to_guest dom-s) >= N + 5)); }
wait_for 100 arrived || fail "the gate counted $(gate_to_guest dom-s), want $((N + 5))"
kill -USR1 "$HOLD_PID"
wait "$HOLD_PID" || fail "checkpoint session failed: $(cat "$TMP/ckpt.out")"
cat "$TMP/ckpt.out"
[[ $(kv "$TMP/ckpt.out" captured kept) == $((N + 5)) ]] || fail "checkpoint kept"
! grep -q '^replayed' "$TMP/ckpt.out" || fail "the checkpoint replayed"
ok "checkpoint: $((N + 5)) frames held for the bundle"

# restore: the bundle's frames first, then the restore window's
start_hold "$TMP/rest.out" session dom-s --tap "$TAP=$GUEST_MAC" --image "$TMP/image.json" \
    --prior "$TMP/bundle-held.pcap"
px $CHECK send "$GUEST_IP" $N --size 80 --start 100
arrived2() { (($(gate_to_guest dom-s) >= N)); }
wait_for 100 arrived2 || fail "the gate counted $(gate_to_guest dom-s), want $N"
kill -USR1 "$HOLD_PID"
wait "$HOLD_PID" || fail "restore session failed: $(cat "$TMP/rest.out")"
cat "$TMP/rest.out"
[[ $(kv "$TMP/rest.out" replayed sent) == $((2 * N)) ]] || fail "replayed count"
[[ $(kv "$TMP/rest.out" replayed refused) == 5 ]] || fail "frames for an IP not in the image were not refused"
px $CHECK marker "$GUEST_IP"
wait "$TAPCAP_PID" || fail "tapcap failed"
want="$(seq 0 $((N - 1)) | tr '\n' ' ')$(seq 100 $((100 + N - 1)) | tr '\n' ' ')marker "
seqs=$($CHECK seqs "$TMP/got.pcap" | tr '\n' ' ')
[[ $seqs == "$want" ]] || fail "order: $seqs"
$CHECK csum "$TMP/got.pcap" || fail "bad checksums"
ok "restore: the bundle's frames, then the restore window's, in order; the image's IPs only"
echo PASS
