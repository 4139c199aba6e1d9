#!/usr/bin/env bash
# Two owner cases: sockets shared by two processes (frozen once, both owners quiesced), and an
# owner that is killed while frozen (our duplicate keeps the socket; the thaw closes it the
# way the owner's exit would have, and the peer still gets every queued byte, then EOF).
source "$(dirname "$0")/agent-lib.sh"

topo
start_agent

# --- shared by two processes
BYTES=$((2 << 20))
start_in "$NS_P" python3 "$PEER" server --listen 10.78.2.2 --port 5001 --conns 2 \
    --bytes $BYTES --rate $((1 << 20)) --out "$TMP/s.json" --ready "$TMP/s.ready"
srv=$STARTED
wait_file "$TMP/s.ready"
start_in "$NS_G" python3 "$PEER" client --connect 10.78.2.2 --port 5001 --conns 2 \
    --bytes $BYTES --rate $((1 << 20)) --out "$TMP/c.json" --ready "$TMP/c.ready" \
    --share "$TMP/child.pid"
cli=$STARTED
wait_file "$TMP/c.ready"
child=$(cat "$TMP/child.pid")
gate_on
qga guest-net-freeze >"$TMP/img.json"
validate_image "$TMP/img.json"
[ "$(jq '.connections | length' "$TMP/img.json")" = 2 ] || fail "shared sockets frozen more than once"
jq -e --argjson a "$cli" --argjson b "$child" \
    'all(.connections[]; ([.owners[].pid] | sort) == ([$a, $b] | sort))' "$TMP/img.json" \
    >/dev/null || fail "owners: $(jq -c '[.connections[].owners]' "$TMP/img.json")"
is_traced "$cli" && is_traced "$child" || fail "both owners should be quiesced"
st=$(qga guest-net-status)
[ "$(jget "$st" .processes)" = 2 ] || fail "status: $st"
sleep 0.5
t=$(qga guest-net-thaw)
[ "$(jget "$t" .thawed)" = 2 ] || fail "thaw: $t"
! is_traced "$cli" && ! is_traced "$child" || fail "owners still quiesced"
gate_off
wait_pid "$cli" || fail "client failed"
wait_pid "$srv" || fail "server failed"
compare_streams "$TMP/c.json" "$TMP/s.json" || fail "shared-socket streams differ"
ok "socket shared by two processes: frozen once, both quiesced, streams byte-exact"

# --- owner killed while frozen
start_in "$NS_P" python3 "$PEER" sink --listen 10.78.2.2 --port 5002 --rate $((256 << 10)) \
    --out "$TMP/sink.json" --ready "$TMP/sink.ready"
sink=$STARTED
wait_file "$TMP/sink.ready"
start_in "$NS_G" python3 "$PEER" sender --connect 10.78.2.2 --port 5002 --bytes $((1 << 20)) \
    --out "$TMP/sender.json" --ready "$TMP/sender.ready"
snd=$STARTED
wait_file "$TMP/sender.ready"
gate_on
qga guest-net-freeze >"$TMP/img2.json"
validate_image "$TMP/img2.json"
[ "$(jq '.connections | length' "$TMP/img2.json")" = 1 ] || fail "sender not frozen"
q=$(jq '.connections[0] | .unacked.len + .unsent.len' "$TMP/img2.json")
[ "$q" -gt 0 ] || fail "nothing queued on the sender's side"
kill -9 "$snd"
# The killed owner is a zombie only its tracer (the agent) can reap; give the kernel a moment.
sleep 0.3
st=$(qga guest-net-status)
[ "$(jget "$st" .frozen)" = true ] || fail "agent lost the freeze when the owner died: $st"
v=$(qga guest-net-verify "{\"image_id\":\"$(jq -r .image_id "$TMP/img2.json")\"}")
[ "$(jget "$v" .match)" = true ] || fail "verify after owner death: $v"
t=$(qga guest-net-thaw)
[ "$(jget "$t" .thawed)" = 1 ] && [ "$(jget "$t" '.connections[0].owners_alive')" = 0 ] ||
    fail "thaw after owner death: $t"
gate_off
wait "$snd" 2>/dev/null || true
wait_pid "$sink" || fail "sink failed"
[ "$(jq -r .recv_sha "$TMP/sink.json")" = "$(jq -r .sent_sha "$TMP/sender.json")" ] ||
    fail "peer did not get the dead owner's queued bytes: $(cat "$TMP/sink.json")"
ok "owner killed while frozen ($q bytes queued): thawed, peer got every byte and EOF"
stop_agent
