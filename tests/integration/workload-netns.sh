#!/usr/bin/env bash
# netckpt-workload over a veth pair between two namespaces of our own: every mode verifies
# byte-exact both ways, the dialer answers a listening controller, markers are reported, a
# dropped path (nft on the server side) shows up as a stall but loses nothing, and a server
# killed mid-stream is reported as a failure (exit 1), never as a pass.
set -euo pipefail
W=${NETCKPT_BUILD_DIR:?}/guest/workload/netckpt-workload
[ -x "$W" ] || { echo "workload-netns: $W not built" >&2; exit 1; }
A=nckwa-$$ B=nckwb-$$
work=$(mktemp -d)
pids=()
cleanup() {
  local rc=$? p
  set +e
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  ip netns del "$A" 2>/dev/null
  ip netns del "$B" 2>/dev/null
  ((rc == 0)) || { echo "workload-netns: FAILED; logs:" >&2; tail -n 20 "$work"/*.log >&2; }
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
fail() { echo "workload-netns: FAIL: $*" >&2; exit 1; }

ip netns add "$A"
ip netns add "$B"
ip link add nckwa$$ netns "$A" type veth peer name nckwb$$ netns "$B"
ip -n "$A" addr add 10.9.0.1/24 dev nckwa$$
ip -n "$B" addr add 10.9.0.2/24 dev nckwb$$
for n in "$A" "$B"; do ip -n "$n" link set lo up; done
ip -n "$A" link set nckwa$$ up
ip -n "$B" link set nckwb$$ up

ip netns exec "$A" "$W" serve --port 7000 2>"$work/serve.log" &
pids+=($!)
serve_pid=$!
ip netns exec "$A" "$W" dial --connect 10.9.0.2:7100 --conns 2 2>"$work/dial.log" &
pids+=($!)

# Every mode, a few connections each, rate-limited and not.
for mode in out in both idle; do
  ip netns exec "$B" "$W" stream --connect 10.9.0.1:7000 --mode "$mode" --seconds 1 \
    --conns 3 --rate 2000000 >"$work/$mode.json" 2>"$work/$mode.log" ||
    fail "mode $mode: $(cat "$work/$mode.log")"
  jq -e '.summary.ok == 3 and all(.connections[]; .ok and .tx.match and .rx.match)' \
    "$work/$mode.json" >/dev/null || fail "mode $mode report: $(cat "$work/$mode.json")"
done
ip netns exec "$B" "$W" stream --connect 10.9.0.1:7000 --mode both --seconds 1 \
  >"$work/fast.json" 2>"$work/fast.log" || fail "unlimited rate"
jq -e '.connections[0].tx.bytes > 0 and .connections[0].rx.bytes > 0' "$work/fast.json" \
  >/dev/null || fail "no bytes moved"

# A run longer than the connect deadline, without --ready-file, ends when --seconds says and
# not with a false "not established in time" (regression: the deadline kept counting).
ip netns exec "$B" "$W" stream --connect 10.9.0.1:7000 --mode both --seconds 3 --conns 2 \
  --connect-timeout 1 --rate 1000000 >"$work/long.json" 2>"$work/long.log" ||
  fail "run past the connect deadline: $(cat "$work/long.log")"
jq -e '.summary.ok == 2' "$work/long.json" >/dev/null || fail "long run: $(cat "$work/long.json")"
! grep -q "established in time" "$work/long.log" || fail "false deadline: $(cat "$work/long.log")"

# The guest side's dialer answers a listening controller; a marker is reported per direction.
ip netns exec "$B" "$W" stream --listen 10.9.0.2:7100 --mode both --seconds 0 --conns 2 \
  --rate 1000000 --ready-file "$work/ready" >"$work/listen.json" 2>"$work/listen.log" &
ctl=$!
pids+=($ctl)
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
[ -s "$work/ready" ] || fail "dialer never connected"
# A path drop on the server side: data is held, then flows again with nothing lost.
ip netns exec "$A" nft -f - <<EOF
table inet nckw$$ {
  chain input_drop {
    type filter hook input priority 0; policy accept;
    tcp sport 7100 drop
  }
}
EOF
sleep 1
ip netns exec "$A" nft delete table inet nckw$$
kill -USR1 $ctl
sleep 1
kill -INT $ctl
wait $ctl || fail "listen/dial session: $(cat "$work/listen.json")"
jq -e '.summary.ok == 2 and (.summary.markers | length) == 1
  and all(.connections[]; (.tx.stall_after_marker_ms | length) == 1)
  and .summary.max_stall_ms >= 500' "$work/listen.json" >/dev/null ||
  fail "listen report: $(cat "$work/listen.json")"

# A server that dies mid-stream must fail the run.
ip netns exec "$B" "$W" stream --connect 10.9.0.1:7000 --mode both --seconds 10 \
  >"$work/killed.json" 2>"$work/killed.log" &
victim=$!
pids+=($victim)
sleep 1
kill -9 $serve_pid
rc=0
wait $victim || rc=$?
((rc == 1)) || fail "a killed server gave exit $rc"
jq -e '.summary.failed == 1 and (.connections[0].error | length) > 0' "$work/killed.json" \
  >/dev/null || fail "killed report: $(cat "$work/killed.json")"

# Bad usage is refused clearly.
rc=0
"$W" stream --mode sideways --connect 127.0.0.1:1 2>/dev/null || rc=$?
((rc == 2)) || fail "bad mode gave exit $rc"
echo "workload-netns: PASS"
