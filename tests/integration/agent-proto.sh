#!/usr/bin/env bash
# Every command through a real unix-listen netckpt-agent, plus the protocol's hard cases:
# refusals while frozen, sync-delimited resync after garbage, oversized and deeply nested
# input, a host that disconnects mid-message and reconnects, --help/--version.
source "$(dirname "$0")/agent-lib.sh"

topo
start_agent

"$AGENT" --version | grep -q '^netckpt-agent ' || fail "--version"
"$AGENT" --help | grep -q -- '--freeze-timeout' || fail "--help"
rc=0
"$AGENT" --method carrier-pigeon 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "bad --method should exit 2, got $rc"
rc=0
err=$(gx "$AGENT" --method virtio-serial --port-name org.netckpt.nonexistent.0 --state-file '' 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q 'no virtio-serial port named org.netckpt.nonexistent.0' <<<"$err" ||
    fail "missing virtio port: rc=$rc $err"
# virtio-serial on a device path (a raw pty stands in for the port): answers, and a host that
# hangs up is waited for without spinning.
python3 - "$AGENT" <<'PY' || fail "virtio-serial over a pty"
import os, pty, select, subprocess, sys, time, tty
m, s = pty.openpty()
tty.setraw(s)
ag = subprocess.Popen([sys.argv[1], "--method", "virtio-serial", "--path", os.ttyname(s),
                       "--state-file", ""], stderr=subprocess.DEVNULL)
os.write(m, b'{"execute":"guest-sync","arguments":{"id":31}}')
r, _, _ = select.select([m], [], [], 30)
assert r and os.read(m, 100) == b'{"return":31}\n'
os.close(m)
time.sleep(1)
assert ag.poll() is None, "agent exited on hangup"
ag.terminate()
assert ag.wait() == 0
PY

# guest-sync / guest-ping / guest-info
[ "$(qga guest-sync '{"id":4242}')" = 4242 ] || fail "guest-sync"
[ "$(qga guest-ping)" = "{}" ] || fail "guest-ping"
info=$(qga guest-info)
[ "$(jget "$info" '.supported_commands | length')" -ge 9 ] || fail "guest-info lists $info"
for c in guest-sync guest-sync-delimited guest-ping guest-info guest-net-freeze guest-net-thaw \
    guest-net-status guest-net-verify guest-net-reset-stale; do
    [ "$(jget "$info" ".supported_commands[] | select(.name==\"$c\") | .enabled")" = true ] ||
        fail "guest-info: $c not listed as enabled"
done
jget "$info" .version | grep -q . || fail "guest-info has no version"
ok "sync, ping, info"

# Unknown command and bad arguments.
[ "$(qga_err guest-frobnicate)" = CommandNotFound ] || fail "unknown command"
[ "$(qga_err guest-net-freeze '{"timeout":0}')" = InvalidParameter ] || fail "timeout 0"
[ "$(qga_err guest-net-freeze '{"bogus":1}')" = InvalidParameter ] || fail "unknown argument"
[ "$(qga_err guest-net-verify '{}')" = InvalidParameter ] || fail "verify without image"
[ "$(qga_err guest-net-reset-stale '{}')" = InvalidParameter ] || fail "reset-stale without list"
[ "$(qga_err guest-net-reset-stale '{"connections":[{"local":{"addr":"x","port":1}}]}')" = \
    InvalidParameter ] || fail "reset-stale with a bad address"
ok "errors: CommandNotFound, InvalidParameter"

# A freeze with nothing external: an empty, valid image; loopback and listeners are recorded.
start_in "$NS_G" python3 -c '
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
g = socket.socket(); g.bind(("10.78.1.2", 0)); g.listen(1)
gc = socket.create_connection(g.getsockname()); gs, _ = g.accept()
open("'"$TMP"'/lo.ready", "w").close(); time.sleep(600)'
wait_file "$TMP/lo.ready"
st=$(qga guest-net-status)
[ "$(jget "$st" .frozen)" = false ] || fail "status before freeze: $st"
qga guest-net-freeze '{"timeout":60}' >"$TMP/img0.json"
validate_image "$TMP/img0.json"
[ "$(jq '.connections | length' "$TMP/img0.json")" = 0 ] || fail "loopback pair was frozen"
[ "$(jq '[.skipped[] | select(.reason=="loopback")] | length' "$TMP/img0.json")" = 2 ] ||
    fail "loopback pair not recorded: $(jq -c .skipped "$TMP/img0.json")"
[ "$(jq '[.skipped[] | select(.reason=="intra-guest")] | length' "$TMP/img0.json")" = 2 ] ||
    fail "intra-guest pair (own address) not recorded: $(jq -c .skipped "$TMP/img0.json")"
[ "$(jq '[.skipped[] | select(.reason=="listen")] | length' "$TMP/img0.json")" -ge 2 ] ||
    fail "listeners not recorded"
id=$(jq -r .image_id "$TMP/img0.json")
ok "freeze: empty image validates, loopback, intra-guest and listen recorded"

# While frozen: only sync, ping, info, status, thaw (and verify, which needs the freeze).
st=$(qga guest-net-status)
[ "$(jget "$st" .frozen)" = true ] && [ "$(jget "$st" .image_id)" = "$id" ] || fail "status: $st"
[ "$(qga_err guest-net-freeze)" = CommandDisabled ] || fail "freeze while frozen"
[ "$(qga_err guest-net-reset-stale '{"connections":[]}')" = CommandDisabled ] ||
    fail "reset-stale while frozen"
desc=$("$QGA_CALL" "$SOCK" guest-net-freeze || true)
jget "$desc" .error.desc | grep -qi frozen || fail "refusal does not say why: $desc"
[ "$(qga guest-ping)" = "{}" ] || fail "ping while frozen"
info=$(qga guest-info)
[ "$(jget "$info" '.supported_commands[] | select(.name=="guest-net-freeze") | .enabled')" = \
    false ] || fail "guest-info while frozen should show freeze disabled"
v=$(qga guest-net-verify "{\"image_id\":\"$id\"}")
[ "$(jget "$v" .match)" = true ] || fail "verify by id: $v"
v=$(qga guest-net-verify "{\"image\":$(cat "$TMP/img0.json")}")
[ "$(jget "$v" .match)" = true ] || fail "verify by image: $v"
v=$(qga guest-net-verify '{"image_id":"00000000000000000000000000000000"}')
[ "$(jget "$v" .match)" = false ] || fail "verify with a wrong id matched: $v"
ok "refused while frozen; verify while frozen"

t=$(qga guest-net-thaw)
[ "$(jget "$t" .was_frozen)" = true ] || fail "thaw: $t"
t=$(qga guest-net-thaw '{"kick":false}')
[ "$(jget "$t" .was_frozen)" = false ] || fail "second thaw not idempotent: $t"
t=$(qga guest-net-thaw "{\"host_time_ns\":$(date +%s%N)}")
jget "$t" .clock.step_ns | grep -qE '^-?[0-9]+$' || fail "thaw clock report: $t"
[ "$(jget "$t" .clock.applied)" = false ] || fail "--no-clock-step stepped the clock"
st=$(qga guest-net-status)
[ "$(jget "$st" .frozen)" = false ] && [ "$(jget "$st" .last_thaw.reason)" = command ] ||
    fail "status after thaw: $st"
r=$(qga guest-net-reset-stale '{"connections":[{"local":{"addr":"10.78.1.2","port":1},"remote":{"addr":"10.78.2.2","port":2}}]}')
[ "$(jget "$r" '.connections[0].result')" = not-found ] || fail "reset-stale: $r"
[ "$(qga_err guest-net-reset-stale '{"image_id":"00000000000000000000000000000000"}')" = \
    NotFound ] || fail "reset-stale by unknown image id"
r=$(qga guest-net-reset-stale "{\"image_id\":\"$id\"}")
[ "$(jget "$r" .reset)" = 0 ] || fail "reset-stale by id: $r"
ok "thaw idempotent, clock report, status, reset-stale"

# Raw protocol cases, over our own socket.
python3 - "$SOCK" <<'EOF' || fail "raw protocol cases"
import json, socket, sys, time

path = sys.argv[1]

def conn():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.settimeout(30)
    return s

def replies(s, want):
    """Read until `want` complete JSON replies (newline-terminated) arrived."""
    buf = b""
    while buf.count(b"\n") < want:
        d = s.recv(65536)
        if not d:
            raise SystemExit("agent closed the connection")
        buf += d
    return buf

def call(s, cmd, args=None, want_ff=False):
    req = {"execute": cmd}
    if args is not None:
        req["arguments"] = args
    s.sendall(json.dumps(req).encode())
    raw = replies(s, 1)
    if want_ff:
        assert raw[0] == 0xFF, raw[:20]
        raw = raw[1:]
    return json.loads(raw)

s = conn()
# Garbage, then 0xFF and sync-delimited: the reply comes after a 0xFF we can cut at.
s.sendall(b"this is not json }}}] {\"execute\": \"guest-pi")
s.sendall(b"\xff" + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": 77}}).encode())
buf = b""
while b"\xff" not in buf or not buf.split(b"\xff")[-1].endswith(b"\n"):
    buf += s.recv(65536)
after = buf.split(b"\xff")[-1]
assert json.loads(after) == {"return": 77}, buf
assert call(s, "guest-ping") == {"return": {}}
print("ok: resync after garbage")

# Optional id echoed.
s.sendall(b'{"execute":"guest-ping","id":"abc"}')
assert json.loads(replies(s, 1)) == {"return": {}, "id": "abc"}

# Oversized: 17 MiB request -> one error, then the stream works.
big = b'{"execute":"guest-ping","arguments":{"pad":"' + b"x" * (17 << 20) + b'"}}'
s.sendall(big)
r = json.loads(replies(s, 1))
assert "error" in r, r
assert call(s, "guest-ping") == {"return": {}}
print("ok: oversized request refused, stream resynchronised")

# Deeply nested: 5000 levels -> one error, then the stream works.
s.sendall(b'{"execute":"guest-ping","arguments":{"a":' + b"[" * 5000 + b"]" * 5000 + b"}}")
r = json.loads(replies(s, 1))
assert "error" in r, r
assert call(s, "guest-ping") == {"return": {}}
print("ok: deep nesting refused, stream resynchronised")

# Several requests in one write, newlines as whitespace.
s.sendall(b'{"execute":"guest-ping"}\n\n{"execute":"guest-sync","arguments":{"id":5}}  ')
out = replies(s, 2).split(b"\n")
assert json.loads(out[0]) == {"return": {}} and json.loads(out[1]) == {"return": 5}, out
s.close()

# A host that disconnects mid-message; the next connection starts clean.
s = conn()
s.sendall(b'{"execute":"guest-sync","arguments":{"id"')
s.close()
time.sleep(0.1)
s = conn()
assert call(s, "guest-sync", {"id": 9}) == {"return": 9}
s.close()
# ... and again, mid-reply: send a request and hang up before reading.
for _ in range(20):
    s = conn()
    s.sendall(b'{"execute":"guest-info"}')
    s.close()
s = conn()
assert call(s, "guest-ping") == {"return": {}}
s.close()
print("ok: disconnect mid-message and mid-reply, reconnect")
EOF

# reset-stale on live connections: by image id (the last freeze), and by endpoints.
start_in "$NS_P" python3 -c '
import socket, time
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("10.78.2.2", 5009)); l.listen(8)
open("'"$TMP"'/rs.ready", "w").close()
cs = [l.accept()[0] for _ in range(2)]
time.sleep(600)'
wait_file "$TMP/rs.ready"
start_in "$NS_G" python3 -c '
import socket, sys
cs = [socket.create_connection(("10.78.2.2", 5009)) for _ in range(2)]
open("'"$TMP"'/rc.ready", "w").close()
for i, c in enumerate(cs):
    try:
        c.recv(10)
        r = "eof"
    except OSError as e:
        r = e.__class__.__name__
    open("'"$TMP"'/rc.%d" % i, "w").write(r)'
rcli=$STARTED
wait_file "$TMP/rc.ready"
# "include" picks connections by remote endpoint; the rest are neither frozen nor recorded.
i=$(qga guest-net-freeze '{"include":[{"port":1},{"addr":"10.78.2.3"}]}')
[ "$(jget "$i" '.connections | length')" = 0 ] || fail "include matched nothing, froze some"
qga guest-net-thaw >/dev/null
[ "$(qga_err guest-net-freeze '{"include":[{"addr":"not-an-ip"}]}')" = InvalidParameter ] ||
    fail "include with a bad address"
qga guest-net-freeze '{"include":[{"addr":"10.78.2.2","port":5009}]}' >"$TMP/img1.json"
validate_image "$TMP/img1.json"
[ "$(jq '.connections | length' "$TMP/img1.json")" = 2 ] || fail "reset-stale setup"
qga guest-net-thaw >/dev/null
c0=$(jq -c '.connections[0] | {local, remote}' "$TMP/img1.json")
r=$(qga guest-net-reset-stale "{\"connections\":[$c0]}")
[ "$(jget "$r" .reset)" = 1 ] && [ "$(jget "$r" '.connections[0].result')" = reset ] ||
    fail "reset-stale by endpoints: $r"
r=$(qga guest-net-reset-stale "{\"image_id\":\"$(jq -r .image_id "$TMP/img1.json")\"}")
[ "$(jget "$r" .reset)" = 1 ] || fail "reset-stale by image id (one left): $r"
wait_pid "$rcli" || fail "reset client"
for i in 0 1; do
    grep -qE 'ConnectionAbortedError|ConnectionResetError' "$TMP/rc.$i" ||
        fail "connection $i was not aborted: $(cat "$TMP/rc.$i")"
done
ok "reset-stale: live connections aborted by endpoints and by image id"

kill -0 "$AGENT_PID" || fail "agent died"
kill -TERM "$AGENT_PID"
wait_pid "$AGENT_PID" || fail "agent exit status on SIGTERM"
[ ! -e "$SOCK" ] || fail "socket left behind"
ok "SIGTERM: clean exit"
