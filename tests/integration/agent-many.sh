#!/usr/bin/env bash
# 1,000 connections with traffic both ways: one freeze, verify, thaw, every stream byte-exact.
# Prints the agent's own freeze and thaw times and the image size (measured, not asserted).
source "$(dirname "$0")/agent-lib.sh"
N=${AGENT_MANY_CONNS:-1000}
ulimit -n 16384

topo
start_agent
start_in "$NS_P" python3 "$PEER" server --listen 10.78.2.2 --port 5001 --conns "$N" \
    --bytes $((96 << 10)) --rate $((32 << 10)) --out "$TMP/s.json" --ready "$TMP/s.ready"
srv=$STARTED
wait_file "$TMP/s.ready"
start_in "$NS_G" python3 "$PEER" client --connect 10.78.2.2 --port 5001 --conns "$N" \
    --bytes $((96 << 10)) --rate $((32 << 10)) --out "$TMP/c.json" --ready "$TMP/c.ready"
cli=$STARTED
wait_file "$TMP/c.ready" 1200

gate_on
qga guest-net-freeze >"$TMP/img.json"
validate_image "$TMP/img.json"
n=$(jq '.connections | length' "$TMP/img.json")
[ "$n" = "$N" ] || fail "froze $n of $N connections"
v=$(qga guest-net-verify "{\"image_id\":\"$(jq -r .image_id "$TMP/img.json")\"}")
[ "$(jget "$v" .match)" = true ] && [ "$(jget "$v" .checked)" = "$N" ] || fail "verify: $(jget "$v" -c .differences | head -c 1500)"
t=$(qga guest-net-thaw)
[ "$(jget "$t" .thawed)" = "$N" ] && [ "$(jget "$t" .failed)" = 0 ] || fail "thaw failed"
gate_off
wait_pid "$cli" 3000 || fail "client failed"
wait_pid "$srv" 3000 || fail "server failed"
compare_streams "$TMP/c.json" "$TMP/s.json" || fail "streams differ"
echo "measured: $(grep -o 'frozen [0-9]* connections.* in [0-9.]* ms' "$TMP/agent.log" | tail -1)"
echo "measured: $(grep -o "freeze phases.*" "$TMP/agent.log" | tail -1)"
grep -o 'discover: .*' "$TMP/agent.log" | sed 's/^/measured: /' || true
echo "measured: $(grep -o 'thawed [0-9]* connections.*' "$TMP/agent.log" | tail -1)"
echo "measured: image $(stat -c %s "$TMP/img.json") bytes, $(jq '[.connections[] | .unacked.len + .unsent.len + .recv.len] | add' "$TMP/img.json") queued bytes"
ok "$N connections frozen, verified, thawed; all streams byte-exact both ways"
stop_agent
