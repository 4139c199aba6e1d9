#!/usr/bin/env bash
# The netckpt CLI as a front end of a running netckptd (host/cli-daemon.c):
#  * list and status (--json and text) through the daemon print byte for byte what the
#    standalone CLI (--no-daemon) prints, with the same exit codes (also for an absent domain);
#  * a checkpoint through the CLI is run by the daemon (its job, events and metrics show it) on
#    a libvirt test-driver domain whose agent is a real netckpt-agent (unix-listen) and whose
#    tap is real, in a private network namespace: gate up, freeze, save, commit, exit 0, and
#    the bundle verifies;
#  * a domain the daemon is busy with: the CLI exits 7 with the daemon's message;
#  * SIGINT to the CLI cancels the daemon's job: it rolls back, the CLI exits 6;
#  * restore of a bundle that is not there: exit 1 and the same message as alone; a migrate
#    (which the test driver cannot do: rolled back, exit 4) prints the same as alone;
#  * unblock and policy list/run through the daemon;
#  * --no-daemon, NETCKPT_NO_DAEMON=1 and another -c URI work alone; an explicit
#    --daemon-socket that does not answer is an error (exit 1).
set -euo pipefail
B=${NETCKPT_BUILD_DIR:?}
D=$B/host/netckptd
NC=$B/host/netckpt
AGENT=$B/guest/netckpt-agent
CALL=$B/tests/tools/daemon-call
tmp=$(mktemp -d /tmp/nc-dcli-XXXXXX)
ns=ncdcli$$
tap=ncdc$$
pids=()
source "$(dirname "$0")/daemon-lib.sh"
trap daemon_cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.log "$tmp"/err* "$tmp"/out*; do [[ -f $f ]] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}
ok() { echo "ok - $*"; }
in_ns() { ip netns exec "$ns" "$@"; }

daemon_ns_tap "$ns" "$tap"

# A test-driver "host" with one running domain: a real tap, an agent channel on a UNIX socket.
daemon_node_xml "$tmp/node.xml" tvm 6695eb01-f6a4-8304-79aa-97f2502e193f "$tap" "$tmp/agent.sock" \
  52:54:00:12:34:56
URI="test://$tmp/node.xml"
ip netns exec "$ns" "$AGENT" --method unix-listen --path "$tmp/agent.sock" \
  --state-file "$tmp/agent.state" >"$tmp/agent.log" 2>&1 &
pids+=($!)
agent=$!

mkdir -p "$tmp/pol"
cat >"$tmp/pol/p.xml" <<XML
<policy><name>nightly</name><domains><domain>nomatch*</domain></domains>
<schedule><interval unit="h">6</interval></schedule><bundles dir="$tmp/pb"/></policy>
XML
S=$tmp/netckptd.sock
export NETCKPT_STATE_DIR=$tmp/state NETCKPTD_SOCKET=$S
# A stopped agent must not hold the jobs for long.
NETCKPT_AGENT_TIMEOUT_MS=20000 ip netns exec "$ns" "$D" -c "$URI" -s "$S" -d "$tmp/state" -p "$tmp/pol" \
  -m "$tmp/metrics.prom" >"$tmp/daemon.log" 2>&1 &
pids+=($!)
main=$!
daemon_wait_up "$CALL" "$S" "$main"
for _ in $(seq 100); do [[ -S $tmp/agent.sock ]] && break; sleep 0.05; done

nc() { in_ns "$NC" -c "$URI" "$@"; }
rc() { set +e; "$@" >"$tmp/out" 2>"$tmp/err"; echo $? >"$tmp/rc"; set -e; cat "$tmp/rc"; }
same() { # what: the command through the daemon and alone print the same, with the same code
  local what=$1
  shift
  local r1 r2
  r1=$(rc nc "$@")
  cp "$tmp/out" "$tmp/out.d"
  cp "$tmp/err" "$tmp/err.d"
  r2=$(rc nc --no-daemon "$@")
  [[ $r1 == "$r2" ]] || fail "$what: exit $r1 through the daemon, $r2 alone"
  diff -u "$tmp/out" "$tmp/out.d" >&2 || fail "$what: stdout differs"
  # The transaction's own log lines ("netckpt: error: ...") go to the daemon's log instead.
  diff -u <(grep -Ev '^netckpt: (debug|info|warning|error): ' "$tmp/err") "$tmp/err.d" >&2 ||
    fail "$what: stderr differs"
}

nc -v list >/dev/null 2>"$tmp/err.v"
grep -q "via netckptd at $S" "$tmp/err.v" || fail "list did not go through the daemon"
same "list --json" --json list
same "list" list
same "list --all" list --all
same "status --json" --json status tvm
same "status" status tvm
same "status of an absent domain" --json status nope
[[ $(cat "$tmp/rc") == 1 ]] || fail "status nope: exit $(cat "$tmp/rc")"
same "unblock" unblock tvm
same "restore of a missing bundle" restore "$tmp/none"
[[ $(cat "$tmp/rc") == 1 ]] || fail "restore of a missing bundle: exit $(cat "$tmp/rc")"
same "usage error" checkpoint tvm --dir "$tmp/x" --freeze-timeout 0
[[ $(cat "$tmp/rc") == 2 ]] || fail "usage: exit $(cat "$tmp/rc")"
# --replay-limit and --no-kick are forwarded (the daemon takes them as replay-limit, no-kick)
# and refused the same way.
same "restore --replay-limit --no-kick" restore "$tmp/none" --replay-limit 1M --no-kick --no-replay
[[ $(cat "$tmp/rc") == 1 ]] || fail "restore --replay-limit: exit $(cat "$tmp/rc")"
same "--replay-limit usage error" checkpoint tvm --dir "$tmp/x" --replay-limit 1G
[[ $(cat "$tmp/rc") == 2 ]] || fail "--replay-limit 1G: exit $(cat "$tmp/rc")"
set +e
out=$("$CALL" "$S" restore "{\"bundle\":\"$tmp/none\",\"replay-limit\":1024}")
r=$?
set -e
[[ $r == 1 ]] && jq -e '.error.class == "InvalidParameter" and (.error.desc | contains("replay-limit"))' \
  <<<"$out" >/dev/null || fail "the daemon took replay-limit 1024: $out"
set +e
out=$("$CALL" "$S" restore "{\"bundle\":\"$tmp/none\",\"no-kick\":true,\"replay-limit\":65536}")
r=$?
set -e
grep -q InvalidParameter <<<"$out" && fail "the daemon refused no-kick/replay-limit: $out"
# migrate: the test driver cannot migrate peer to peer, so both roll back at the switchover.
same "migrate" migrate tvm test:///default
[[ $(cat "$tmp/rc") == 4 ]] || fail "migrate: exit $(cat "$tmp/rc")"
grep -q "rolled back: the VM runs on the source" "$tmp/err.d" || fail "migrate: $(cat "$tmp/err.d")"
r1=$(rc nc --json migrate tvm test:///default --watch 0)
jq -S 'del(.times)' "$tmp/out" >"$tmp/m.d"
r2=$(rc nc --no-daemon --json migrate tvm test:///default --watch 0)
[[ $r1 == 4 && $r2 == 4 ]] || fail "migrate --json: exit $r1 through the daemon, $r2 alone"
diff -u <(jq -S 'del(.times)' "$tmp/out") "$tmp/m.d" >&2 || fail "migrate --json differs"
ok "list, status, unblock, restore (also --replay-limit, --no-kick), migrate and usage errors: same output and exit codes as alone"

# Busy: the agent is stopped, so the daemon's first checkpoint waits on it.
kill -STOP "$agent"
ip netns exec "$ns" "$NC" -c "$URI" checkpoint tvm --dir "$tmp/b-int" >"$tmp/out.int" \
  2>"$tmp/err.int" &
pids+=($!)
cli=$!
for _ in $(seq 200); do
  "$CALL" "$S" status | jq -e '.running == 1' >/dev/null && break
  sleep 0.05
done
"$CALL" "$S" status | jq -e '.running == 1' >/dev/null || fail "no job running: $("$CALL" "$S" status)"
[[ $(rc nc checkpoint tvm --dir "$tmp/b-busy") == 7 ]] || fail "busy: exit $(cat "$tmp/rc")"
grep -q "domain tvm is busy: a checkpoint (job" "$tmp/err" || fail "busy message: $(cat "$tmp/err")"
[[ $(rc nc --json checkpoint tvm --dir "$tmp/b-busy") == 7 ]] || fail "busy --json"
jq -e '.error.code == 7 and .error.name == "busy"' "$tmp/out" >/dev/null ||
  fail "busy --json: $(cat "$tmp/out")"
ok "a domain the daemon is busy with: exit 7, the daemon's message"

# SIGINT to that CLI: it cancels the job; once the agent answers, the job rolls back.
kill -INT "$cli"
for _ in $(seq 200); do
  "$CALL" "$S" events '{"max":1000}' | jq -e '[.events[] | select(.kind == "job-cancel")] | length == 1' \
    >/dev/null && break
  sleep 0.05
done
kill -CONT "$agent"
set +e
wait "$cli"
crc=$?
set -e
[[ $crc == 6 ]] || fail "interrupted CLI: exit $crc: $(cat "$tmp/err.int")"
grep -q "interrupted" "$tmp/err.int" || fail "interrupted message: $(cat "$tmp/err.int")"
[[ ! -e $tmp/b-int ]] || fail "an interrupted checkpoint left its bundle"
"$CALL" "$S" status '{"domain":"tvm"}' | jq -e '.gate.installed == false and .state == "running"' \
  >/dev/null || fail "after the cancel: $("$CALL" "$S" status '{"domain":"tvm"}')"
ok "SIGINT to the CLI cancels the daemon's job: rolled back, exit 6"

# A real checkpoint through the daemon (stop mode: the test driver cannot restore paused).
[[ $(rc nc -v checkpoint tvm --dir "$tmp/b1" --freeze-timeout 5) == 0 ]] ||
  fail "checkpoint: exit $(cat "$tmp/rc"): $(cat "$tmp/err")"
grep -q "^checkpoint of tvm complete: $tmp/b1\$" "$tmp/out" || fail "checkpoint output: $(cat "$tmp/out")"
grep -q "gate dropped" "$tmp/out" || fail "checkpoint output: $(cat "$tmp/out")"
grep -q "netckptd runs the checkpoint as job" "$tmp/err" || fail "not the daemon's job"
ev=$("$CALL" "$S" events '{"max":1000}')
jq -e '[.events[] | select(.kind == "job-done" and .domain == "tvm")] | length == 1' <<<"$ev" \
  >/dev/null || fail "no job-done event: $ev"
grep -q '^netckptd_checkpoints_total{result="ok"} 1$' "$tmp/metrics.prom" || fail "metrics"
[[ $(rc nc verify "$tmp/b1") == 0 ]] || fail "the bundle does not verify: $(cat "$tmp/err")"
nc --json status tvm >"$tmp/st.json" || true
jq -e --arg b "$tmp/b1" '.state == "shut off" and .last_checkpoint.bundle == $b' "$tmp/st.json" \
  >/dev/null || fail "status after: $(cat "$tmp/st.json")"
ok "checkpoint through the CLI was the daemon's job (events, metrics); the bundle verifies"

# Policies: only through the daemon.
[[ $(rc nc policy) == 0 ]] && grep -q nightly "$tmp/out" || fail "policy list: $(cat "$tmp/err")"
[[ $(rc nc --json policy list) == 0 ]] && jq -e '.policies[0].name == "nightly"' "$tmp/out" \
  >/dev/null || fail "policy list --json"
[[ $(rc nc policy run nightly) == 0 ]] && grep -q "policy nightly: 0 jobs started" "$tmp/out" ||
  fail "policy run: $(cat "$tmp/out") $(cat "$tmp/err")"
[[ $(rc nc policy run nosuch) == 1 ]] && grep -q "nosuch" "$tmp/err" || fail "policy run nosuch"
[[ $(rc nc --no-daemon policy) == 1 ]] && grep -q "policies are netckptd's" "$tmp/err" ||
  fail "policy alone"
ok "policy list and run through the daemon; alone it says why not"

# Working alone.
NETCKPT_NO_DAEMON=1 in_ns "$NC" -v -c "$URI" list >/dev/null 2>"$tmp/err.v"
! grep -q "via netckptd" "$tmp/err.v" || fail "NETCKPT_NO_DAEMON=1 still used the daemon"
in_ns "$NC" -v -c test:///default --json list >"$tmp/out" 2>"$tmp/err.v"
! grep -q "via netckptd" "$tmp/err.v" || fail "another URI used the daemon"
jq -e '.domains[0].name == "test"' "$tmp/out" >/dev/null || fail "another URI: $(cat "$tmp/out")"
[[ $(rc nc --daemon-socket "$tmp/nothing.sock" list) == 1 ]] &&
  grep -q "cannot reach netckptd at $tmp/nothing.sock" "$tmp/err" || fail "explicit socket"
ok "--no-daemon, NETCKPT_NO_DAEMON=1 and another URI work alone; a dead explicit socket fails"

kill -TERM "$main"
wait "$main" || fail "netckptd exit status"
echo "daemon-cli: all passed"
