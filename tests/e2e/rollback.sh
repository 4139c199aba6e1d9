#!/usr/bin/env bash
# e2e: rollback safety on a real TCG VM (issue 5, docs/rollback.md). One VM boot:
#  1. checkpoint --continue, then traffic both ways on the peer's connections (both sides move
#     on), then restore the bundle (--stale=auto, the default): the host detects the rollback
#     from the domain's history, resets every connection of the image, and each PEER socket,
#     blocked in recv(), gets ECONNRESET within 1 s of the restore command's end (measured on
#     the peer side and printed);
#  2. the same with a second connection set and --stale=keep: detected, nothing reset, the
#     peer sockets stay open and get no error for a few seconds;
#  3. a stop-mode bundle restored twice: the first restore is not a rollback, the second is.
# The peer helper (python, written below) holds N connections to the guest's echo server and
# logs, per connection, the wall-clock time and errno of the first error its recv() returns.
set -euo pipefail
VM_DIAL=" " # no guest-dialled connections: the helper opens all of them
source "${NETCKPT_SOURCE_DIR:?}/tests/e2e/lib/vm-env.sh"
vm_e2e_begin rollback

ECHO_PORT=$((VM_WORKLOAD_PORT + 1))
stop_vm() { # a one-shot virsh on the embedded driver can race its reconnect to QEMU: retry
  for _ in $(seq 20); do
    vm_virsh destroy "$VM_NAME" >/dev/null 2>&1 || true
    [[ $(state) == "shut off" ]] && return 0
    sleep 0.5
  done
  fail "cannot stop the VM"
}
wait_file() { # FILE SECONDS
  local t=0
  until [[ -e $1 ]]; do
    ((t < $2 * 10)) || return 1
    sleep 0.1
    t=$((t + 1))
  done
}

cat >"$VM_WORK/rb-peer.py" <<'EOF'
# rb-peer.py ADDR PORT N DIR: N connections to the guest's echo server. Each sends and reads
# back 64 bytes; DIR/ready. When DIR/traffic appears, each moves 8 KiB both ways; DIR/moved.
# Then each blocks in recv() and appends "i <time> <errno name>" to DIR/errors at its first
# error or EOF (EOF is logged as "EOF"). Ends when every connection ended or DIR/stop appears.
import errno, os, socket, sys, threading, time
addr, port, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
def log(i, what):
    with lock, open(os.path.join(d, "errors"), "a") as f:
        f.write("%d %.6f %s\n" % (i, time.time(), what))
def wait(name):
    while not os.path.exists(os.path.join(d, name)):
        time.sleep(0.05)
def exact(s, k):
    got = b""
    while len(got) < k:
        b = s.recv(k - len(got))
        if not b:
            raise EOFError
        got += b
    return got
socks = [socket.create_connection((addr, port), timeout=30) for _ in range(n)]
for s in socks:
    s.sendall(b"r" * 64)
    exact(s, 64)
open(os.path.join(d, "ready"), "w").close()
wait("traffic")
for s in socks:
    s.sendall(b"m" * 8192)
    exact(s, 8192)
open(os.path.join(d, "moved"), "w").close()
def hold(i, s):
    s.settimeout(0.05) # poll the stop file; a timeout is no error
    while not os.path.exists(os.path.join(d, "stop")):
        try:
            if not s.recv(65536):
                log(i, "EOF")
                return
        except socket.timeout:
            continue
        except OSError as e:
            log(i, errno.errorcode.get(e.errno, str(e.errno)))
            return
ts = [threading.Thread(target=hold, args=(i, s)) for i, s in enumerate(socks)]
for t in ts:
    t.start()
for t in ts:
    t.join()
EOF

# peer_set NAME N: start the helper with N connections; waits until they are up.
peer_set() {
  local dir=$VM_WORK/peer-$1
  mkdir -p "$dir"
  vm_bg_peer "$dir/log" python3 "$VM_WORK/rb-peer.py" "$VM_GUEST_IP" "$ECHO_PORT" "$2" "$dir"
  wait_file "$dir/ready" 60 || fail "peer set $1 did not connect: $(cat "$dir/log")"
}
peer_traffic() {
  touch "$VM_WORK/peer-$1/traffic"
  wait_file "$VM_WORK/peer-$1/moved" 30 || fail "peer set $1: no traffic: $(cat "$VM_WORK/peer-$1/log")"
}
history_events() { jq -r '[.events[].event] | join(",")' "$NETCKPT_STATE_DIR"/history/*.json; }

# 1. --continue, both sides move on, restore (--stale=auto): detected, reset, the peer hears it.
peer_set a 2
nc_json "$VM_WORK/cpa.json" checkpoint "$VM_NAME" --dir "$VM_WORK/ba" --continue ||
  fail "checkpoint --continue: rc $?: $(cat "$VM_WORK/cpa.json" "$VM_WORK/cpa.json.err")"
[[ $(history_events) == continued ]] || fail "history after --continue: $(history_events)"
peer_traffic a
stop_vm
t_start=$(vm_now)
nc_json "$VM_WORK/ra.json" restore "$VM_WORK/ba" ||
  fail "restore: rc $?: $(cat "$VM_WORK/ra.json" "$VM_WORK/ra.json.err")"
t_end=$(vm_now)
jq -c '.rollback' "$VM_WORK/ra.json"
jq -e '.outcome == "ok" and .rollback.detected and .rollback.from_history and .rollback.reset
  and .rollback.connections_reset == 2 and .rollback.peers_probed == 2 and .replay.skipped
  == .replay.enabled and (.rollback.reason | contains("ran on after this --continue checkpoint"))' \
  "$VM_WORK/ra.json" >/dev/null || fail "restore json: $(cat "$VM_WORK/ra.json")"
jq -c '.report.connections[]? | {id, result, reset_because}' "$VM_WORK/ra.json"
jq -e '[.report.connections[] | select(.result != "reset")] | length == 0' \
  "$VM_WORK/ra.json" >/dev/null || fail "not every connection reported reset: $(jq -c .report "$VM_WORK/ra.json")"
# The peer: both sockets must have ECONNRESET no later than 1 s after the command ended.
for _ in $(seq 30); do
  [[ $(wc -l 2>/dev/null <"$VM_WORK/peer-a/errors" || echo 0) -ge 2 ]] && break
  sleep 0.1
done
cat "$VM_WORK/peer-a/errors" 2>/dev/null || true
[[ $(wc -l 2>/dev/null <"$VM_WORK/peer-a/errors" || echo 0) == 2 ]] ||
  fail "the peer did not see both connections fail: $(cat "$VM_WORK/peer-a/errors" 2>/dev/null)"
while read -r i t what; do
  [[ $what == ECONNRESET ]] || fail "peer connection $i ended with $what, not ECONNRESET"
  awk -v t="$t" -v s="$t_start" -v e="$t_end" -v i="$i" 'BEGIN {
    printf "peer connection %d: ECONNRESET %.0f ms after the restore began, %+.0f ms from its end\n",
      i, (t - s) * 1000, (t - e) * 1000; exit !(t - e <= 1.0) }' ||
    fail "peer connection $i got its reset more than 1 s after the restore ended"
done <"$VM_WORK/peer-a/errors"
ok "rollback (--continue, both sides moved on): detected from the history, 2 connections reset, the peer got ECONNRESET within 1 s"

# 2. The same with --stale=keep: detected, nothing reset, the peer sockets stay open.
peer_set b 2
nc_json "$VM_WORK/cpb.json" checkpoint "$VM_NAME" --dir "$VM_WORK/bb" --continue ||
  fail "checkpoint --continue (b): rc $?: $(cat "$VM_WORK/cpb.json" "$VM_WORK/cpb.json.err")"
peer_traffic b
stop_vm
nc_json "$VM_WORK/rb.json" restore "$VM_WORK/bb" --stale=keep ||
  fail "restore --stale=keep: rc $?: $(cat "$VM_WORK/rb.json" "$VM_WORK/rb.json.err")"
jq -c '.rollback' "$VM_WORK/rb.json"
jq -e '.outcome == "ok" and .rollback.detected and (.rollback.reset | not) and
  .rollback.connections_reset == 0 and .report.reset == 0' "$VM_WORK/rb.json" >/dev/null ||
  fail "restore --stale=keep json: $(cat "$VM_WORK/rb.json")"
sleep 3
[[ ! -s $VM_WORK/peer-b/errors ]] || fail "--stale=keep: the peer saw: $(cat "$VM_WORK/peer-b/errors")"
ok "rollback with --stale=keep: detected, nothing reset, the peer sockets still open after 3 s"
touch "$VM_WORK/peer-b/stop"

# 3. A stop-mode bundle restored twice: the second restore is a rollback.
nc_json "$VM_WORK/cpc.json" checkpoint "$VM_NAME" --dir "$VM_WORK/bc" ||
  fail "checkpoint (stop): rc $?: $(cat "$VM_WORK/cpc.json" "$VM_WORK/cpc.json.err")"
# (in text mode: the report's one rollback line)
vm_host "$NC" -c "$VM_URI" restore "$VM_WORK/bc" >"$VM_WORK/rc1.txt" 2>&1 ||
  fail "restore (stop, 1st): rc $?: $(cat "$VM_WORK/rc1.txt")"
grep "rollback:" "$VM_WORK/rc1.txt" || true
grep -q "rollback: no (the domain stopped at this checkpoint" "$VM_WORK/rc1.txt" ||
  fail "first restore of a stop-mode bundle: $(cat "$VM_WORK/rc1.txt")"
stop_vm
nc_json "$VM_WORK/rc2.json" restore "$VM_WORK/bc" ||
  fail "restore (stop, 2nd): rc $?: $(cat "$VM_WORK/rc2.json" "$VM_WORK/rc2.json.err")"
jq -c '.rollback' "$VM_WORK/rc2.json"
jq -e '.outcome == "ok" and .rollback.detected and (.rollback.reason | contains("restored before"))' \
  "$VM_WORK/rc2.json" >/dev/null || fail "second restore of a stop-mode bundle: $(cat "$VM_WORK/rc2.json")"
echo "history: $(history_events)"
[[ $(history_events) == continued,restored,continued,restored,stopped,restored,restored ]] ||
  fail "history: $(history_events)"
ok "a stop-mode bundle: the first restore is no rollback, the second is"
echo "rollback e2e: all passed"
