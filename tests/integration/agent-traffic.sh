#!/usr/bin/env bash
# Freeze while traffic flows both ways (IPv4, IPv6 and v4-mapped connections, plus a loopback
# pair), verify, hold the freeze behind the gate, thaw, and check every stream byte-exact in
# both directions with sha256. The image validates against the schema.
source "$(dirname "$0")/agent-lib.sh"

topo
start_agent

BYTES=$((3 << 20))
RATE=$((1 << 20))
start_in "$NS_P" python3 "$PEER" server --listen 10.78.2.2 --port 5001 --conns 3 \
    --bytes $BYTES --rate $RATE --out "$TMP/s4.json" --ready "$TMP/s4.ready"
s4=$STARTED
start_in "$NS_P" python3 "$PEER" server --listen fd78:2::2 --port 5002 --conns 2 \
    --bytes $BYTES --rate $RATE --out "$TMP/s6.json" --ready "$TMP/s6.ready"
s6=$STARTED
# Half-closed: the peer finishes first (guest in CLOSE_WAIT), the guest finishes first
# (guest in FIN_WAIT2); the other direction keeps streaming through the freeze.
start_in "$NS_P" python3 "$PEER" server --listen 10.78.2.2 --port 5003 --conns 1 \
    --bytes 1000 --out "$TMP/shc.json" --ready "$TMP/shc.ready"
shc=$STARTED
start_in "$NS_P" python3 "$PEER" server --listen 10.78.2.2 --port 5004 --conns 1 \
    --bytes $BYTES --rate $RATE --out "$TMP/shf.json" --ready "$TMP/shf.ready"
shf=$STARTED
for f in s4 s6 shc shf; do wait_file "$TMP/$f.ready"; done
start_in "$NS_G" python3 "$PEER" client --connect 10.78.2.2 --port 5001 --conns 2 \
    --bytes $BYTES --rate $RATE --out "$TMP/c4.json" --ready "$TMP/c4.ready" \
    --loopback-pair "$TMP/lo.json"
c4=$STARTED
start_in "$NS_G" python3 "$PEER" client --connect ::ffff:10.78.2.2 --port 5001 --conns 1 \
    --bytes $BYTES --rate $RATE --out "$TMP/cm.json" --ready "$TMP/cm.ready"
cm=$STARTED
start_in "$NS_G" python3 "$PEER" client --connect fd78:2::2 --port 5002 --conns 2 \
    --bytes $BYTES --rate $RATE --out "$TMP/c6.json" --ready "$TMP/c6.ready"
c6=$STARTED
start_in "$NS_G" python3 "$PEER" client --connect 10.78.2.2 --port 5003 --conns 1 \
    --bytes $BYTES --rate $RATE --out "$TMP/chc.json" --ready "$TMP/chc.ready"
chc=$STARTED
start_in "$NS_G" python3 "$PEER" client --connect 10.78.2.2 --port 5004 --conns 1 \
    --bytes 1000 --out "$TMP/chf.json" --ready "$TMP/chf.ready"
chf=$STARTED
for f in c4 cm c6 chc chf; do wait_file "$TMP/$f.ready"; done
sleep 0.3

gate_on
sleep 0.2 # the guest keeps sending into the gate: its send queues cannot be empty now
qga guest-net-freeze >"$TMP/img.json"
validate_image "$TMP/img.json"
n=$(jq '.connections | length' "$TMP/img.json")
[ "$n" = 7 ] || fail "expected 7 frozen connections, got $n"
states=$(jq -r '[.connections[].state] | sort | unique | join(",")' "$TMP/img.json")
# (FIN_WAIT1 only if the peer's ACK of our FIN is slow on a loaded machine)
[[ "$states" =~ ^CLOSE_WAIT,ESTABLISHED,FIN_WAIT[12]$ ]] || fail "states: $states"
[ "$(jq '[.connections[] | select(.family=="ipv6")] | length' "$TMP/img.json")" = 3 ] ||
    fail "expected 3 AF_INET6 sockets (2 IPv6, 1 v4-mapped)"
[ "$(jq '[.connections[] | select(.family=="ipv6" and (.remote.addr|test("10\\.78\\.2\\.2")))] | length' "$TMP/img.json")" = 1 ] ||
    fail "v4-mapped connection missing: $(jq -c '[.connections[] | [.family, .remote]]' "$TMP/img.json")"
[ "$(jq '[.skipped[] | select(.reason=="loopback")] | length' "$TMP/img.json")" = 2 ] ||
    fail "loopback pair not recorded as skipped"
jq -e '[.connections[] | .unacked.len + .unsent.len + .recv.len] | add > 0' "$TMP/img.json" \
    >/dev/null || fail "no queued data in the image: traffic was not flowing"
for p in $c4 $cm $c6 $chc $chf; do is_traced "$p" || fail "owner $p not quiesced"; done
id=$(jq -r .image_id "$TMP/img.json")
ok "frozen: $n connections, $(jq '[.connections[] | .unacked.len + .unsent.len + .recv.len] | add' "$TMP/img.json") queued bytes"

# Held frozen behind the gate: the peers retransmit into it.
sleep 1.5
v=$(qga guest-net-verify "{\"image_id\":\"$id\"}")
[ "$(jget "$v" .match)" = true ] || fail "verify by id: $v"
jq '{image: .}' "$TMP/img.json" >"$TMP/verify-args.json"
v=$(qga guest-net-verify "@$TMP/verify-args.json")
[ "$(jget "$v" .match)" = true ] || fail "verify by image: $v"
# A tampered image is refused with its differences listed.
jq '.connections[0].snd_seq = ((.connections[0].snd_seq + 1) % 4294967296)' "$TMP/img.json" \
    >"$TMP/bad.json"
jq '{image: .}' "$TMP/bad.json" >"$TMP/verify-args.json"
v=$(qga guest-net-verify "@$TMP/verify-args.json")
[ "$(jget "$v" .match)" = false ] && [ "$(jget "$v" '.differences | length')" -ge 1 ] ||
    fail "tampered image matched: $v"
st=$(qga guest-net-status)
[ "$(jget "$st" .sockets)" = 7 ] && [ "$(jget "$st" .processes)" = 5 ] || fail "status: $st"
ok "verify (id, image, tampered image), status"

t=$(qga guest-net-thaw '{"kick":true}')
[ "$(jget "$t" .thawed)" = 7 ] && [ "$(jget "$t" .failed)" = 0 ] || fail "thaw: $t"
for p in $c4 $cm $c6 $chc $chf; do ! is_traced "$p" || fail "owner $p still quiesced after thaw"; done
[ ! -e "$STATE" ] || fail "state file left after thaw"
gate_off

for p in $c4 $cm $c6 $chc $chf $s4 $s6 $shc $shf; do wait_pid "$p" || fail "peer $p failed"; done
compare_streams "$TMP/chc.json" "$TMP/shc.json" || fail "CLOSE_WAIT stream differs"
compare_streams "$TMP/chf.json" "$TMP/shf.json" || fail "FIN_WAIT2 stream differs"
python3 - "$TMP" <<'EOF' || fail "streams differ"
import json, sys, os
t = sys.argv[1]
def load(*names):
    d = {}
    for n in names:
        d.update(json.load(open(os.path.join(t, n))))
    return d
c4, s4 = load("c4.json", "cm.json"), load("s4.json")
c6, s6 = load("c6.json"), load("s6.json")
bad = 0
for c, s in ((c4, s4), (c6, s6)):
    assert set(c) == set(s), (sorted(c), sorted(s))
    for k in c:
        if (c[k]["sent_sha"], c[k]["sent"]) != (s[k]["recv_sha"], s[k]["recv"]): bad += 1
        if (s[k]["sent_sha"], s[k]["sent"]) != (c[k]["recv_sha"], c[k]["recv"]): bad += 1
        assert c[k]["sent"] == c[k]["recv"] == 3 << 20
sys.exit(1 if bad else 0)
EOF
ok "all 7 streams (ESTABLISHED, CLOSE_WAIT, FIN_WAIT2) byte-exact both ways (sha256) after freeze, gate and thaw"
stop_agent
