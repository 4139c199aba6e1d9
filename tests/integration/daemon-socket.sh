#!/usr/bin/env bash
# netckptd on a temp socket and state dir with libvirt's test driver (-c test:///default):
#  * list/status/unblock/checkpoint over the socket (daemon-call, i.e. host/daemon-client.c);
#  * malformed, oversized and too deeply nested requests get an error and the connection
#    stays usable;
#  * socket mode 0600; a non-root client (nobody, via setpriv) is refused by the mode, and by
#    the SO_PEERCRED check when the mode is opened up; with --group the group gets in;
#  * policies: a run whose agent does not answer is skipped and reported, one without the
#    condition fails cleanly at discovery (the test domain has no tap); metrics count them;
#  * SIGHUP reload with a bad policy file: refused with line and reason, the valid ones stay,
#    the daemon keeps running; SIGTERM stops it and removes the socket.
set -euo pipefail
B=${NETCKPT_BUILD_DIR:?}
D=$B/host/netckptd
CALL=$B/tests/tools/daemon-call
tmp=$(mktemp -d /tmp/nc-daemon-s-XXXXXX)
chmod 0755 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/log*; do echo "--- $f" >&2; tail -30 "$f" >&2; done
  exit 1
}
ok() { echo "ok - $*"; }

mkdir -p "$tmp/pol" "$tmp/run" "$tmp/bundles"
chmod 0755 "$tmp/run"
cat >"$tmp/pol/10-agent.xml" <<XML
<policy>
  <name>needs-agent</name>
  <domains><domain>te*</domain></domains>
  <schedule><interval unit="h">1</interval></schedule>
  <bundles dir="$tmp/bundles"/>
  <conditions><agent timeout="1"/></conditions>
</policy>
XML
cat >"$tmp/pol/20-plain.xml" <<XML
<policy>
  <name>plain</name>
  <domains><domain>test</domain></domains>
  <schedule><calendar timezone="utc"><time>03:00</time></calendar></schedule>
  <mode>stop</mode>
  <bundles dir="$tmp/bundles"/>
  <retention><keep>2</keep></retention>
</policy>
XML

S=$tmp/run/netckptd.sock
start_daemon() { # socket log [extra options]
  local sock=$1 log=$2
  shift 2
  "$D" -c test:///default -s "$sock" -d "$tmp/state" -p "$tmp/pol" -m "$tmp/metrics.prom" "$@" \
    >"$log" 2>&1 &
  pids+=($!)
  DPID=$!
  for _ in $(seq 200); do
    [[ -S $sock ]] && "$CALL" "$sock" status >/dev/null 2>&1 && return 0
    kill -0 "$DPID" 2>/dev/null || fail "netckptd exited at start"
    sleep 0.05
  done
  fail "netckptd did not come up on $sock"
}
call() { "$CALL" "$S" "$@"; }

start_daemon "$S" "$tmp/log1"
main=$DPID
[[ $(stat -c %a "$S") == 600 ]] || fail "socket mode $(stat -c %a "$S")"
call list | jq -e '.domains | map(.name) | index("test") != null' >/dev/null || fail "list"
call status | jq -e '.running == 0 and .policies == 2 and .policies_refused == 0' >/dev/null ||
  fail "status: $(call status)"
call status '{"domain":"test"}' |
  jq -e '.state == "running" and .gate.installed == false and .agent.reachable == false' \
    >/dev/null || fail "status test: $(call status '{"domain":"test"}')"
call status '{"domain":"no-such"}' | jq -e '.state == "absent"' >/dev/null || fail "status absent"
ok "list and status over the socket"

set +e
out=$(call checkpoint '{"domain":"no-such"}')
rc=$?
set -e
[[ $rc == 1 ]] && jq -e '.error.class == "NotFound"' <<<"$out" >/dev/null ||
  fail "checkpoint of a missing domain: $rc $out"
out=$(call checkpoint "{\"domain\":\"test\",\"dir\":\"$tmp/b1\"}") || fail "checkpoint call: $out"
jq -e '.state == "done" and .ok == false and .result.outcome == "failed" and
       .result.failed_step == "discover"' <<<"$out" >/dev/null || fail "checkpoint of test: $out"
[[ ! -e $tmp/b1 ]] || fail "a failed checkpoint left $tmp/b1"
call unblock '{"domain":"test"}' | jq -e '.gate_was_installed == false' >/dev/null ||
  fail "unblock"
set +e
out=$(call checkpoint '{"domain":"test","bogus":1}')
rc=$?
set -e
[[ $rc == 1 ]] && jq -e '.error.class == "InvalidParameter"' <<<"$out" >/dev/null ||
  fail "unknown argument: $out"
ok "checkpoint of a domain without a tap fails cleanly at discover; unknown arguments refused"

# Raw protocol: malformed, oversized and deep requests; the connection stays usable.
python3 - "$S" <<'PY' || fail "raw protocol checks"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rb")
def send(b): s.sendall(b)
def reply():
    line = f.readline()
    assert line, "EOF"
    return json.loads(line.lstrip(b"\xff"))
send(b'{"execute":"list"} ')
assert "return" in reply()
send(b'hello {"execute":"list","id":1}')
r = reply(); assert "error" in r and "id" not in r, r
r = reply(); assert r.get("id") == 1 and "return" in r, r
send(b'{"execute": nope}\n')
r = reply(); assert r["error"]["class"] == "GenericError", r
big = b'{"execute":"list","arguments":{"pad":"' + b"x" * 100000 + b'"}}'
send(big)
r = reply(); assert "larger than 65536" in r["error"]["desc"], r
send(b'[' * 40 + b']' * 40)
r = reply(); assert "deeper" in r["error"]["desc"], r
send(b'{"execute":"status","id":"after"}')
r = reply(); assert r.get("id") == "after" and "return" in r, r
# a half request, then the 0xFF resync, then a good one
send(b'{"execute":"li' + b'\xff' + b'{"execute":"guest-sync-delimited","arguments":{"id":77}}')
raw = b""
while not raw.endswith(b"\n"):
    raw += s.recv(1)
assert raw.startswith(b"\xff") and json.loads(raw[1:])["return"] == 77, raw
s.close()
PY
kill -0 "$main" || fail "the daemon died on bad input"
ok "malformed, oversized (100 KB > 64 KiB) and deep requests refused; the connection survives"

# Non-root clients.
[[ -x $CALL ]] && setpriv --reuid=nobody --regid=nogroup --clear-groups "$CALL" "$S" list \
  >"$tmp/nobody.out" 2>&1 && fail "nobody got through a 0600 socket: $(cat "$tmp/nobody.out")"
grep -q "Permission denied" "$tmp/nobody.out" || fail "nobody: $(cat "$tmp/nobody.out")"
S2=$tmp/run/open.sock
start_daemon "$S2" "$tmp/log2" --socket-mode 0666
open=$DPID
set +e
setpriv --reuid=nobody --regid=nogroup --clear-groups "$CALL" "$S2" list >"$tmp/nobody2.out" 2>&1
rc=$?
set -e
[[ $rc != 0 ]] || fail "nobody got through the peer check: $(cat "$tmp/nobody2.out")"
grep -q "refused uid 65534" "$tmp/log2" || fail "no refusal logged: $(cat "$tmp/nobody2.out")"
kill -TERM "$open"
wait "$open" || fail "second daemon exit status"
S3=$tmp/run/group.sock
start_daemon "$S3" "$tmp/log3" --group nogroup
grp=$DPID
[[ $(stat -c '%a %G' "$S3") == "660 nogroup" ]] || fail "group socket: $(stat -c '%a %G' "$S3")"
setpriv --reuid=nobody --regid=nogroup --clear-groups "$CALL" "$S3" list >"$tmp/nobody3.out" ||
  fail "a member of --group refused: $(cat "$tmp/nobody3.out")"
kill -TERM "$grp"
wait "$grp" || fail "third daemon exit status"
ok "non-root refused (socket mode, and SO_PEERCRED with an open mode); --group lets its members in"

# Policies.
call policy-list | jq -e '(.policies | map(.name)) == ["needs-agent","plain"] and
  (.refused | length) == 0 and (.policies[0].next_run_ns > 0)' >/dev/null ||
  fail "policy-list: $(call policy-list)"
out=$(call policy-run '{"name":"needs-agent","wait":true}') || fail "policy-run: $out"
jq -e '.results | length == 1 and .[0].outcome == "skipped" and
       (.[0].message | test("agent did not answer"))' <<<"$out" >/dev/null ||
  fail "agent condition: $out"
out=$(call policy-run '{"name":"plain","wait":true}') || fail "policy-run plain: $out"
jq -e '.results | length == 1 and .[0].outcome == "failed" and .[0].result.failed_step == "discover"' \
  <<<"$out" >/dev/null || fail "plain policy run: $out"
set +e
out=$(call policy-run '{"name":"nope"}')
rc=$?
set -e
[[ $rc == 1 ]] && jq -e '.error.class == "NotFound"' <<<"$out" >/dev/null || fail "unknown policy"
call events | jq -e '[.events[].kind] | index("job-skipped") != null and
  index("job-failed") != null' >/dev/null || fail "events: $(call events)"
grep -q '^netckptd_checkpoints_total{result="failed"} 2$' "$tmp/metrics.prom" ||
  fail "metrics: $(cat "$tmp/metrics.prom")"
grep -q '^netckptd_policy_runs_skipped_total 1$' "$tmp/metrics.prom" || fail "metrics skipped"
ok "policy runs: a silent agent skips (reported), a failure is reported; metrics count both"

# SIGHUP with a bad policy file: refused with its line, the others stay, the daemon runs on.
cat >"$tmp/pol/15-bad.xml" <<XML
<policy>
  <name>broken</name>
  <mode>sometimes</mode>
  <domains><domain>test</domain></domains>
  <schedule><interval>60</interval></schedule>
  <bundles dir="$tmp/bundles"/>
</policy>
XML
cat >"$tmp/pol/30-new.xml" <<XML
<policy enabled="no"><name>new</name><domains><domain>*</domain></domains>
<schedule><interval>60</interval></schedule><bundles dir="$tmp/bundles"/></policy>
XML
cat >"$tmp/pol/40-move.xml" <<XML
<policy><name>move</name><domains><domain>test</domain></domains>
<schedule><interval unit="h">24</interval></schedule><mode>migrate</mode>
<migrate uri="test:///default" listenAddress="127.0.0.1"/></policy>
XML
since=$(call events '{"max":1000}' | jq .next)
kill -HUP "$main"
for _ in $(seq 100); do
  call events "{\"since\":$since}" | jq -e '[.events[].kind] | index("policy-load") != null' \
    >/dev/null && break
  sleep 0.05
done
out=$(call policy-list)
jq -e '(.policies | map(.name)) == ["needs-agent","plain","new","move"] and (.refused | length) == 1 and
  (.refused[0].file | endswith("15-bad.xml")) and .refused[0].line == 3 and
  (.refused[0].reason | test("policy.rng"))' <<<"$out" >/dev/null || fail "after SIGHUP: $out"
call events "{\"since\":$since}" | jq -e '.events | map(select(.kind == "policy-refused")) |
  length == 1 and (.[0].message | test("15-bad.xml:3"))' >/dev/null || fail "refusal event"
kill -0 "$main" || fail "daemon died on SIGHUP"
call status | jq -e '.policies == 4 and .policies_refused == 1' >/dev/null || fail "status"
grep -q 'netckptd_policies{state="refused"} 1' "$tmp/metrics.prom" || fail "metrics refused"
ok "SIGHUP reload: bad file refused with line and reason, valid ones loaded, daemon alive"

# Live migration: the migrate command and a migration policy run host/migrate.h's transaction
# as daemon jobs (here it stops cleanly at discover: the test domain has no agent channel).
call policy-list | jq -e '.policies[3] | .mode == "migrate" and .destination == "test:///default"
  and .bundle_dir == null' >/dev/null || fail "migrate policy listed: $(call policy-list)"
out=$(call migrate '{"domain":"test","dest-uri":"test:///default"}') || fail "migrate: $out"
jq -e '.kind == "migrate" and .state == "done" and .ok == false and
       .result.command == "migrate" and .result.outcome == "failed" and
       .result.failed_step == "discover" and .result.destination == "test:///default"' \
  <<<"$out" >/dev/null || fail "migrate job: $out"
out=$(call policy-run '{"name":"move","wait":true}') || fail "policy-run move: $out"
jq -e '.results | length == 1 and .[0].kind == "migrate" and .[0].result.command == "migrate"' \
  <<<"$out" >/dev/null || fail "migrate policy run: $out"
for bad in '{"domain":"test"}' '{"domain":"test","dest-uri":"x\u0001y"}' \
  '{"domain":"test","dest-uri":"test:///default","stale":"never"}'; do
  set +e
  out=$(call migrate "$bad")
  rc=$?
  set -e
  [[ $rc == 1 ]] && jq -e '.error.class == "InvalidParameter"' <<<"$out" >/dev/null ||
    fail "migrate $bad: $out"
done
grep -q '^netckptd_migrations_total{result="failed"} 2$' "$tmp/metrics.prom" ||
  fail "migration metrics: $(grep migrations "$tmp/metrics.prom")"
ok "migrate command and migration policy run as jobs; bad arguments refused; metrics"

# A second daemon on the same socket is refused; SIGTERM stops cleanly.
set +e
"$D" -c test:///default -s "$S" -d "$tmp/state2" -p "$tmp/pol" -m none >"$tmp/log4" 2>&1
rc=$?
set -e
[[ $rc == 1 ]] && grep -q "another netckptd is listening" "$tmp/log4" || fail "second daemon: $rc"
kill -TERM "$main"
wait "$main" || fail "exit status after SIGTERM"
[[ ! -e $S ]] || fail "socket left behind"
ok "one daemon per socket; SIGTERM exits 0 and removes the socket"
echo "daemon-socket: all passed"
