#!/usr/bin/env bash
# The policy condition "defer while more than N connections are retransmitting", for real:
#  * guest namespace G (a real netckpt-agent, unix-listen), a router R, a peer P (agent-lib.sh);
#  * a connection G -> P streams; nft drops everything R forwards (the peer blackholed), so the
#    guest's sender really retransmits: guest-net-status reports retransmitting >= 1 (and a
#    connection inside G, over loopback, is not counted);
#  * netckptd (in G, with a libvirt test-driver domain whose agent channel is that agent's
#    socket) runs a policy with <retransmitting max="0"/>: the domain is deferred (event,
#    metric, job outcome); once the path is back the count drops to 0 and the next run is not
#    deferred.
source "$(dirname "$0")/agent-lib.sh"
source "$(dirname "$0")/daemon-lib.sh"
D=$NETCKPT_BUILD_DIR/host/netckptd
CALL=$NETCKPT_BUILD_DIR/tests/tools/daemon-call

topo
start_agent

# Traffic: a sink in P reads slowly, a sender in G keeps data in flight.
start_in "$NS_P" python3 "$PEER" sink --listen 10.78.2.2 --port 7400 --out "$TMP/sink.json" \
  --rate 200000
for _ in $(seq 100); do
  px ss -ltn 2>/dev/null | grep -q ':7400 ' && break
  sleep 0.05
done
start_in "$NS_G" python3 "$PEER" sender --connect 10.78.2.2 --port 7400 --bytes 50000000 \
  --out "$TMP/sender.json"
# An intra-guest connection (loopback) that must not count.
start_in "$NS_G" python3 -c '
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 7401)); l.listen(1)
c = socket.create_connection(("127.0.0.1", 7401)); s, _ = l.accept()
time.sleep(600)'

st=
# (a probe or segment in flight at the instant of the dump is answered within a round trip: poll)
for _ in $(seq 100); do
  st=$(qga guest-net-status)
  [[ $(jget "$st" '.connections // 0') -ge 1 && $(jget "$st" '.retransmitting') == 0 ]] && break
  sleep 0.1
done
[[ $(jget "$st" .connections) == 1 ]] || fail "expected 1 external connection: $st"
[[ $(jget "$st" .retransmitting) == 0 ]] || fail "retransmitting before the blackhole: $st"
ok "guest-net-status: 1 external connection (loopback left out), none retransmitting"

gate_on # R drops what it forwards: the sender's data (or window probes) never acknowledged
t0=$(date +%s%N)
for _ in $(seq 200); do
  st=$(qga guest-net-status)
  [[ $(jget "$st" .retransmitting) -ge 1 ]] && break
  sleep 0.1
done
[[ $(jget "$st" .retransmitting) == 1 ]] || fail "no retransmitting connection reported: $st"
ok "peer blackholed: guest-net-status reports 1 retransmitting connection after $((($(date +%s%N) - t0) / 1000000)) ms (probing $(jget "$st" .probing))"

# netckptd in G, a test-driver domain whose agent is this agent.
ip -n "$NS_G" tuntap add dev ncrt0 mode tap
daemon_node_xml "$TMP/node.xml" rvm 6695eb01-f6a4-8304-79aa-97f2502e1940 ncrt0 "$SOCK"
mkdir -p "$TMP/pol"
cat >"$TMP/pol/r.xml" <<XML
<policy><name>quiet</name><domains><domain>rvm</domain></domains>
<schedule><interval unit="h">24</interval></schedule><mode>stop</mode>
<bundles dir="$TMP/bundles"/>
<conditions><retransmitting max="0" retry="3600" giveUp="86400"/></conditions>
<freezeTimeout>5</freezeTimeout>
</policy>
XML
S=$TMP/netckptd.sock
start_in "$NS_G" "$D" -c "test://$TMP/node.xml" -s "$S" -d "$TMP/state" -p "$TMP/pol" \
  -m "$TMP/metrics.prom"
daemon_wait_up "$CALL" "$S"

out=$("$CALL" "$S" policy-run '{"name":"quiet","wait":true}') || fail "policy-run: $out"
jq -e '.results[0].outcome == "deferred"' <<<"$out" >/dev/null || fail "not deferred: $out"
jq -e '.results[0].message | test("1 connections retransmitting \\(more than 0\\)")' <<<"$out" \
  >/dev/null || fail "deferral message: $out"
"$CALL" "$S" events '{"max":1000}' | jq -e '[.events[] | select(.kind == "job-deferred")] | length == 1' \
  >/dev/null || fail "no job-deferred event"
grep -q '^netckptd_policy_runs_deferred_total 1$' "$TMP/metrics.prom" || fail "deferred metric"
ok "netckptd defers the domain while 1 > 0 connections retransmit (event, metric)"

gate_off
for _ in $(seq 200); do
  st=$(qga guest-net-status)
  [[ $(jget "$st" .retransmitting) == 0 ]] && break
  sleep 0.1
done
[[ $(jget "$st" .retransmitting) == 0 ]] || fail "still retransmitting after the path came back: $st"
out=$("$CALL" "$S" policy-run '{"name":"quiet","wait":true}') || fail "policy-run 2: $out"
jq -e '.results[0].outcome != "deferred" and .results[0].outcome != "skipped"' <<<"$out" \
  >/dev/null || fail "deferred again: $out"
ok "path back: retransmitting 0, the next run is not deferred ($(jq -r '.results[0].outcome' <<<"$out"))"
echo "daemon-retrans: all passed"
