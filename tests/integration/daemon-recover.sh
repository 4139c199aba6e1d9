#!/usr/bin/env bash
# netckptd start-up recovery against real gates on a real tap in a private network namespace:
#  * a SIGKILLed holder's gate (journal entry, dead pid) is lifted and its entry removed;
#  * a live holder's gate is left alone;
#  * an interrupted bundle (an old ".NAME.partial" dir in a policy's bundle dir, no journal
#    entry) is marked failed (renamed ".NAME.failed"), and a young one is left alone (it may be
#    a netckpt that has not written its journal entry yet);
#  * the events and the metrics report it.
# The daemon runs in the root namespace: the journal names the gate's namespace and recovery
# lifts it there.
set -euo pipefail
B=${NETCKPT_BUILD_DIR:?}
D=$B/host/netckptd
CALL=$B/tests/tools/daemon-call
GATECTL=$B/tests/tools/gatectl
tmp=$(mktemp -d /tmp/nc-daemon-r-XXXXXX)
ns=ncdrec$$
tap=ncdr$$
pids=()
source "$(dirname "$0")/daemon-lib.sh"
trap daemon_cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  [[ -f $tmp/log ]] && tail -30 "$tmp/log" >&2
  exit 1
}
ok() { echo "ok - $*"; }
in_ns() { ip netns exec "$ns" "$@"; }
installed() { in_ns "$GATECTL" installed "$1" >/dev/null 2>&1; }
wait_installed() {
  for _ in $(seq 100); do installed "$1" && return 0; sleep 0.05; done
  return 1
}
STATE=$tmp/state
daemon_ns_tap "$ns" "$tap"

# A holder that dies with its gate up, and one that stays alive.
ip netns exec "$ns" "$GATECTL" hold "$STATE" dom-dead "$tap" &
pids+=($!)
dead=$!
wait_installed dom-dead || fail "holder did not gate"
kill -KILL "$dead"
wait "$dead" 2>/dev/null || true
ip netns exec "$ns" "$GATECTL" hold "$STATE" dom-live "$tap" &
pids+=($!)
wait_installed dom-live || fail "live holder did not gate"
ip netns exec "$ns" "$GATECTL" hold "$STATE" dom-live2 "$tap" &
pids+=($!)
wait_installed dom-live2 || fail "second live holder did not gate"
[[ $(ls -A "$STATE/journal" | wc -l) == 3 ]] || fail "expected three journal entries"

# Interrupted bundles in a policy's bundle dir.
mkdir -p "$tmp/pol" "$tmp/bundles/vm1/.20261203T010000Z.partial" \
  "$tmp/bundles/vm1/.20261203T020000Z.partial"
echo half >"$tmp/bundles/vm1/.20261203T010000Z.partial/vm.state"
touch -d '2 hours ago' "$tmp/bundles/vm1/.20261203T010000Z.partial"
cat >"$tmp/pol/p.xml" <<XML
<policy><name>p</name><domains><domain>vm1</domain></domains>
<schedule><interval unit="h">6</interval></schedule><bundles dir="$tmp/bundles"/></policy>
XML

S=$tmp/netckptd.sock
"$D" -c test:///default -s "$S" -d "$STATE" -p "$tmp/pol" -m "$tmp/metrics.prom" >"$tmp/log" 2>&1 &
pids+=($!)
main=$!
daemon_wait_up "$CALL" "$S" "$main"

! installed dom-dead || fail "the dead holder's gate is still up"
installed dom-live || fail "the live holder's gate was lifted"
[[ $(ls -A "$STATE/journal" | wc -l) == 2 ]] || fail "journal: $(ls -A "$STATE/journal")"
ok "journal replay at start: a stale gate on a real tap lifted, a live holder's left alone"

[[ -d $tmp/bundles/vm1/.20261203T010000Z.failed ]] || fail "old partial not marked failed"
[[ ! -e $tmp/bundles/vm1/.20261203T010000Z.partial ]] || fail "old partial still there"
[[ -d $tmp/bundles/vm1/.20261203T020000Z.partial ]] || fail "young partial touched"
ok "an interrupted bundle is marked failed; a young partial one is left alone"

ev=$("$CALL" "$S" events '{"max":1000}')
jq -e '[.events[] | select(.kind == "recovery" and .domain == "dom-dead")] | length == 1' \
  <<<"$ev" >/dev/null || fail "no recovery event: $ev"
jq -e '[.events[] | select(.kind == "bundle-failed")] | length == 1' <<<"$ev" >/dev/null ||
  fail "no bundle-failed event"
"$CALL" "$S" status | jq -e '.counters.recovered == 1' >/dev/null || fail "status counter"
grep -q '^netckptd_journal_recovered_total 1$' "$tmp/metrics.prom" || fail "metrics"
ok "recovery reported in events, status and metrics"

# unblock through the daemon refuses a live holder, --force lifts it.
set +e
out=$("$CALL" "$S" unblock '{"domain":"dom-live"}')
rc=$?
set -e
[[ $rc == 1 ]] && jq -e '.error.class == "Busy"' <<<"$out" >/dev/null || fail "unblock live: $out"
out=$("$CALL" "$S" unblock '{"domain":"dom-live","force":true}') || fail "unblock --force: $out"
jq -e '.journal == true and .gate_was_installed == true and (.actions | index("gate-lifted"))' \
  <<<"$out" >/dev/null || fail "unblock --force: $out"
# The daemon runs in the root namespace; the gate is in $ns, where the journal says it is.
! installed dom-live || fail "unblock left the gate up in the journal's namespace"
[[ $(ls -A "$STATE/journal" | wc -l) == 1 ]] || fail "journal entry left after a forced unblock"
ok "unblock over the socket: Busy for a live holder; force lifts its gate in the journal's netns"

# The same through the standalone CLI, run in the root namespace.
NETCKPT_STATE_DIR=$STATE "$B/host/netckpt" --no-daemon -c test:///default --json \
  unblock dom-live2 --force >"$tmp/ub.json" 2>"$tmp/ub.err" || fail "netckpt unblock: $(cat "$tmp/ub.err")"
jq -e '.gate_was_installed == true' "$tmp/ub.json" >/dev/null || fail "cli unblock: $(cat "$tmp/ub.json")"
! installed dom-live2 || fail "netckpt unblock left the gate up in the journal's namespace"
[[ $(ls -A "$STATE/journal" | wc -l) == 0 ]] || fail "journal entry left after netckpt unblock"
ok "netckpt unblock from another namespace lifts the gate where the journal recorded it"

kill -TERM "$main"
wait "$main" || fail "exit status"
echo "daemon-recover: all passed"
