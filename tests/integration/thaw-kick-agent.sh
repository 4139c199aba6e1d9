#!/usr/bin/env bash
# thaw-kick-agent: guest-net-thaw's "kick" through a real netckpt-agent. Guest streams are
# frozen behind the gate long enough for the guest's RTO to back off; a thaw with kick true
# reports the RTO revert on the connections that had lost data ("kick":"rto-revert", with the
# backoff found), a second freeze thawed with kick false does exactly what it did before (no
# kick fields, kicked 0), and every stream is byte-exact. The kernel effect itself
# (data moving before the backed-off RTO) is thaw-kick.sh's.
source "$(dirname "$0")/agent-lib.sh"

topo
start_agent

# Two guest->peer streams paced at 100 KB/s (the peer only reads): the guest always has
# data in flight when the gate goes up, and nothing from the peer clocks its recovery, so its
# own backed-off RTO is what would hold it after the thaw. They stop by themselves after 14 s.
cat >"$TMP/ticker.py" <<'PY'
import hashlib, json, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
h, n, i = hashlib.sha256(), 0, 0
open(sys.argv[4], "w").close()
end = time.monotonic() + 14
while time.monotonic() < end:
    d = bytes((i * 13 + k) & 0xFF for k in range(1000))
    s.sendall(d)
    h.update(d)
    n, i = n + len(d), i + 1
    time.sleep(0.01)
s.close()
json.dump({"sent": n, "sent_sha": h.hexdigest()}, open(sys.argv[3], "w"))
PY
for k in 1 2; do
    start_in "$NS_P" python3 "$PEER" sink --listen 10.78.2.2 --port 520$k --out "$TMP/k$k.json" \
        --ready "$TMP/k$k.ready"
    eval "sink$k=\$STARTED"
    wait_file "$TMP/k$k.ready"
    start_in "$NS_G" python3 "$TMP/ticker.py" 10.78.2.2 520$k "$TMP/t$k.json" "$TMP/t$k.ready"
    eval "tick$k=\$STARTED"
    wait_file "$TMP/t$k.ready"
done

# hold KICK: freeze behind the gate for 3.5 s (the guest's RTO backs off 3-4 times), lift,
# thaw with {"kick": KICK}; the reply is in $T.
hold() {
    sleep 0.3
    gate_on
    sleep 0.2 # the guest keeps sending into the gate: it has lost data now
    qga guest-net-freeze >"$TMP/img.json"
    [ "$(jq '.connections | length' "$TMP/img.json")" = 2 ] || fail "expected 2 frozen connections"
    sleep 3.5
    gate_off
    T=$(qga guest-net-thaw "{\"kick\":$1}")
    [ "$(jget "$T" .thawed)" = 2 ] && [ "$(jget "$T" .failed)" = 0 ] || fail "thaw: $T"
}

hold true
echo "$T" | jq -c '[.connections[] | {state, kick, backoff, rto_ms}]'
[ "$(jget "$T" '[.connections[] | select(.kick == "rto-revert" and .backoff >= 1)] | length')" -ge 1 ] ||
    fail "kick true: no connection reported an RTO revert: $T"
[ "$(jget "$T" '[.connections[] | select(.kick == null or (.kick | IN("rto-revert","not-needed") | not))] | length')" = 0 ] ||
    fail "kick true: a connection without a kick verdict, or a failed kick: $T"
[ "$(jget "$T" .kicked)" = "$(jget "$T" '[.connections[] | select(.kick == "rto-revert")] | length')" ] ||
    fail "kick true: 'kicked' does not count the reverts: $T"
ok "kick true: $(jget "$T" .kicked) connection(s) had their backed-off RTO reverted"

hold false
[ "$(jget "$T" .kicked)" = 0 ] && [ "$(jget "$T" '[.connections[] | select(.kick != null)] | length')" = 0 ] ||
    fail "kick false must not kick: $T"
ok "kick false: window probe off, nothing kicked"

for k in 1 2; do
    eval "wait_pid \$tick$k" || fail "guest stream $k failed"
    eval "wait_pid \$sink$k" || fail "peer sink $k failed"
    jq -e -s '.[0].sent == .[1].recv and .[0].sent_sha == .[1].recv_sha' "$TMP/t$k.json" \
        "$TMP/k$k.json" >/dev/null || fail "stream $k differs: $(cat "$TMP/t$k.json" "$TMP/k$k.json")"
done
ok "both streams byte-exact after two kicked/unkicked freezes"
stop_agent
