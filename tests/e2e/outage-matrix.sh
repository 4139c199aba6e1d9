#!/usr/bin/env bash
# e2e (issue 5, "Tests, on the real VM"): the stop-mode outage matrix, one VM boot, several
# checkpoint / outage / restore cycles in a row. Each cycle starts fresh workload streams
# (the peer streaming into the guest, the guest streaming out, one idle connection opened by
# each side), takes a stop-mode checkpoint, keeps the VM off for T seconds, restores, and:
#   * requires every connection to survive and both directions byte-exact (sha256);
#   * prints a per-connection stall table: the restore report's stall_ms / answer_ms (tap,
#     from the thaw) and the workload's stall after a marker set just before the restore;
#   * prints the replay counts of the checkpoint and the restore (--json "replay");
#   * measures the guest clock's skew with guest-get-time over the agent channel (the reply
#     against the midpoint of the call's round trip): |skew| < 1 s with the resync, more than
#     T - 10 s behind with --clock=keep.
# Cycle kinds (NETCKPT_E2E_MATRIX, one cycle per line, key=value words):
#   t=SECONDS replay=on|off neigh=dynamic|static clock=sync|keep|ahead flood=N
#   clock=ahead: the guest clock is first set 60 s ahead, so the resync steps it backwards and
#   the thaw report must say so (clock.backwards). flood=N: N x 1400-byte UDP datagrams from
#   the peer during the checkpoint's gate window, more than the 4 MiB replay bound: the
#   excess is dropped and counted, and the streams stay byte-exact.
# NETCKPT_E2E_SYN=1 (default) also runs ckpt-outage's case: a peer SYN inside a --continue
# gate window is dropped silently, retransmitted and connects after the lift. Over the whole
# run no RST may reach the peer (tcpdump on the host end of the peer link).
set -euo pipefail
# One dialer per port: from-guest streams take exactly one connection each.
export VM_DIAL=${VM_DIAL:-7100/1,7101/1}
source "${NETCKPT_SOURCE_DIR:?}/tests/e2e/lib/vm-env.sh"
vm_e2e_begin outmx

QGA=$VM_BUILD/tests/tools/qga-call
export NETCKPT_NO_DAEMON=1 # this test's own transactions, even if some netckptd runs
# A stop-mode checkpoint leaves a holder process (host/hold.h) that ends when its record file
# goes: remove the records before the harness' teardown, so a failed run (whose work directory
# is kept) leaves no holder behind either.
trap 'rc=$?; rm -f "$NETCKPT_STATE_DIR"/hold/*.json 2>/dev/null; (exit $rc); vm_env_teardown' EXIT
T0=$SECONDS
DEFAULT_MATRIX='t=0 replay=on neigh=dynamic clock=sync
t=0 replay=off neigh=dynamic clock=ahead
t=30 replay=on neigh=static clock=sync
t=30 replay=off neigh=static clock=keep
t=0 replay=on neigh=static clock=sync flood=4500'
MATRIX=${NETCKPT_E2E_MATRIX:-$DEFAULT_MATRIX}
ok() { echo "ok - $* [t=$((SECONDS - T0))s]"; }
# forget_pid PID: a background process we reaped ourselves; teardown must not signal its PID.
forget_pid() {
  local i
  for i in "${!VM_PIDS[@]}"; do [[ ${VM_PIDS[$i]} == "$1" ]] && unset "VM_PIDS[$i]"; done
  return 0
}

# The guest clock's skew over the agent channel: guest-sync-delimited first (the stream may
# hold a half-read request), then guest-get-time a few times; the sample with the shortest
# round trip is kept and compared with the middle of that round trip.
cat >"$VM_WORK/skew.py" <<'EOF'
import json, random, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
buf = b""
def reply(want):
    global buf
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.lstrip(b"\xff").strip()
            if not line:
                continue
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("id") == want or o.get("return") == want:
                return o
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("agent channel closed")
        buf += chunk
sync = random.randrange(1, 1 << 30)
s.sendall(b"\xff" + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": sync}}).encode() + b"\n")
reply(sync)
best = None
for i in range(7):
    rid = sync + 1 + i
    req = json.dumps({"execute": "guest-get-time", "id": rid}).encode() + b"\n"
    t0 = time.time_ns()
    s.sendall(req)
    o = reply(rid)
    t1 = time.time_ns()
    if "return" not in o:
        raise SystemExit("guest-get-time: %s" % o)
    rtt = t1 - t0
    skew = o["return"] - (t0 + t1) // 2
    if best is None or rtt < best[0]:
        best = (rtt, skew)
print(json.dumps({"skew_ms": best[1] / 1e6, "rtt_ms": best[0] / 1e6}))
EOF
skew_measure() { python3 "$VM_WORK/skew.py" "$VM_AGENT_SOCK"; }

# UDP datagrams from the peer to the guest, paced so that the veth backlog keeps them.
cat >"$VM_WORK/flood.py" <<'EOF'
import socket, sys, time
n = int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"\xa5" * 1400
for i in range(n):
    s.sendto(payload, (sys.argv[1], 9))
    if i % 200 == 199:
        time.sleep(0.004)
print("sent %d datagrams" % n)
EOF
# flood_in_gate N: in the background, wait for the checkpoint's gate, then flood.
flood_in_gate() {
  local n=$1
  (
    for _ in $(seq 1200); do
      [[ $(gate_count) == 1 ]] && break
      sleep 0.05
    done
    [[ $(gate_count) == 1 ]] || { echo "never saw the gate"; exit 1; }
    sleep 0.3 # the capture rule follows the gate
    vm_peer python3 "$VM_WORK/flood.py" "$VM_GUEST_IP" "$n"
  ) >"$VM_WORK/flood.log" 2>&1 &
  FLOOD=$!
  VM_PIDS+=("$FLOOD")
}

# Every SYN, FIN and RST on the host side of the peer link, and ICMP, for the whole test.
PCAP=$VM_WORK/peer-link.pcap
vm_bg_host "$VM_WORK/tcpdump.log" tcpdump -i "$VM_VETH_HOST" -n -U -s 128 -w "$PCAP" \
  'icmp or (tcp and (tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0))'
TCPDUMP=$VM_LAST_PID
for _ in $(seq 50); do grep -q listening "$VM_WORK/tcpdump.log" && break; sleep 0.1; done

# The streams of one cycle: name kind direction mode.
STREAMS=(p2g to-guest out "peer->guest" g2p from-guest in "guest->peer"
  idle-p to-guest idle "idle (peer opened)" idle-g from-guest idle "idle (guest opened)")

# print_table C: the per-connection stall table of cycle C (restore report joined with the
# workload's reports on the guest and peer ports).
print_table() {
  local c=$1 i name
  local wl=()
  for ((i = 0; i < ${#STREAMS[@]}; i += 4)); do
    name=${STREAMS[i]}
    wl+=("$VM_WORK/c$c-stream-$name.json")
  done
  jq -r -n --slurpfile r "$VM_WORK/c$c-restore.json" --argjson pre "$(cut -d' ' -f1 "$VM_WORK/c$c-offset")" '
    def port(s): s | split(":") | last | tonumber;
    [inputs | .name = (input_filename | sub(".*-stream-"; "") | sub("\\.json$"; ""))
     | .name as $n | .connections[] | . + {stream: $n}] as $wl
    | ($r[0].report.connections // []) as $rc
    | def ms(x): if x == null then "-" else (x | floor | tostring) end;
      def fromthaw(x): if x == null then "-" else ((x - $pre) | floor | tostring) end;
    ["stream", "direction", "result", "stall_ms", "answer_ms", "wl_p2g_ms", "wl_g2p_ms",
     "~thaw_p2g", "~thaw_g2p", "sha256"],
    ($wl[] | . as $w
      | ($rc | map(select(.remote.port == port($w.local) and .local.port == port($w.remote)))
        | first) as $g
      | [$w.stream, $w.direction, ($g.result // "?"), ms($g.stall_ms), ms($g.answer_ms),
         ms($w.tx.stall_after_marker_ms[0]), ms($w.rx.stall_after_marker_ms[0]),
         fromthaw($w.tx.stall_after_marker_ms[0]), fromthaw($w.rx.stall_after_marker_ms[0]),
         (if ($w.tx.match and $w.rx.match) then "ok" else "MISMATCH" end)])
    | @tsv' "${wl[@]}" | column -t -s $'\t' | sed 's/^/    /'
}

declare -A SUMMARY=()
STARTUP_MS=0
run_cycle() { # C SPEC
  local c=$1 spec=$2 t=0 replay=on neigh=dynamic clock=sync flood=0 kv i name
  for kv in $spec; do
    case ${kv%%=*} in
    t | replay | neigh | clock | flood) printf -v "${kv%%=*}" %s "${kv#*=}" ;;
    *) fail "cycle $c: unknown key in '$spec'" ;;
    esac
  done
  echo "== cycle $c: outage ${t}s, replay $replay, neighbour $neigh, clock $clock$( ((flood)) && echo ", UDP flood $flood x 1400 B")"
  vm_neigh "$neigh"
  local rflag=()
  [[ $replay == off ]] && rflag=(--no-replay)
  for ((i = 0; i < ${#STREAMS[@]}; i += 4)); do
    vm_stream_start "c$c-${STREAMS[i]}" "${STREAMS[i + 1]}" "${STREAMS[i + 2]}" 1
  done
  for ((i = 0; i < ${#STREAMS[@]}; i += 4)); do
    vm_stream_wait_ready "c$c-${STREAMS[i]}" || fail "cycle $c: stream ${STREAMS[i]} did not start"
  done
  sleep 2
  if [[ $clock == ahead ]]; then
    # guest-net-thaw with nothing frozen only steps the clock: 60 s ahead of the host.
    local ahead
    ahead=$(vm_host "$QGA" --timeout 5000 "$VM_AGENT_SOCK" guest-net-thaw \
      "{\"host_time_ns\":$(($(date +%s%N) + 60000000000))}") || fail "cycle $c: cannot step the guest clock: $ahead"
    echo "  guest clock set 60 s ahead: skew $(skew_measure | jq -r '.skew_ms | floor') ms"
  fi

  ((flood > 0)) && flood_in_gate "$flood"
  nc_json "$VM_WORK/c$c-checkpoint.json" checkpoint "$VM_NAME" --dir "$VM_WORK/c$c-bundle" "${rflag[@]}" ||
    fail "cycle $c: checkpoint: rc $?: $(cat "$VM_WORK/c$c-checkpoint.json" "$VM_WORK/c$c-checkpoint.json.err")"
  local down_at=$SECONDS
  jq -e '.outcome == "ok" and .bundle_committed and .gate_left == false' "$VM_WORK/c$c-checkpoint.json" \
    >/dev/null || fail "cycle $c: checkpoint json: $(cat "$VM_WORK/c$c-checkpoint.json")"
  local conns
  conns=$(jq '.manifest.connections' "$VM_WORK/c$c-checkpoint.json")
  ((conns >= 4)) || fail "cycle $c: only $conns connections frozen"
  [[ $(state) == "shut off" ]] || fail "cycle $c: the VM is '$(state)' after a stop-mode checkpoint"
  if ((flood > 0)); then
    local frc=0
    wait "$FLOOD" || frc=$?
    forget_pid "$FLOOD"
    ((frc == 0)) || fail "cycle $c: flood: $(cat "$VM_WORK/flood.log")"
    jq -e '.replay.dropped > 0' "$VM_WORK/c$c-checkpoint.json" >/dev/null ||
      fail "cycle $c: more than the bound was sent, but the checkpoint dropped nothing: $(jq -c .replay "$VM_WORK/c$c-checkpoint.json") ($(cat "$VM_WORK/flood.log"))"
  fi
  vm_host "$NC" -c "$VM_URI" verify "$VM_WORK/c$c-bundle" >/dev/null || fail "cycle $c: the bundle does not verify"
  local jto jfrom xto xfrom
  read -r jto jfrom < <(jq -r '.manifest.gate_counters | "\(.to_guest_pkts) \(.from_guest_pkts)"' "$VM_WORK/c$c-checkpoint.json")
  xto=$(xmllint --xpath 'string(/checkpoint/gate/dropped[@direction="to-guest"]/@packets)' "$VM_WORK/c$c-bundle/manifest.xml")
  xfrom=$(xmllint --xpath 'string(/checkpoint/gate/dropped[@direction="from-guest"]/@packets)' "$VM_WORK/c$c-bundle/manifest.xml")
  [[ $jto == "$xto" && $jfrom == "$xfrom" ]] ||
    fail "cycle $c: --json gate counters ($jto/$jfrom) differ from manifest.xml ($xto/$xfrom)"
  ((xto > 0)) || fail "cycle $c: the gate dropped no frame toward the guest although the peer streams into it"
  echo "  checkpoint: $conns connections, $(jq '.total_ms | floor' "$VM_WORK/c$c-checkpoint.json") ms, gate dropped $(jq -c '.manifest.gate_counters | [.to_guest_pkts, .from_guest_pkts]' "$VM_WORK/c$c-checkpoint.json") (to, from the guest), replay $(jq -c '.replay | {enabled, held, dropped, rejected}' "$VM_WORK/c$c-checkpoint.json")"

  if ((t >= 10)); then
    # Informational: what a peer that connects while the VM is off meets (nothing holds its
    # SYN unless a stop-mode hold is in place).
    local probe
    probe=$( (vm_peer timeout 5 bash -c "exec 3<>/dev/tcp/$VM_GUEST_IP/$((VM_WORKLOAD_PORT + 1))" &&
      echo connected) 2>&1 | tail -n1 || true)
    echo "  a peer connecting during the outage: ${probe:-timed out}"
  fi
  local left=$((t - (SECONDS - down_at)))
  ((left <= 0)) || sleep "$left"
  local cflag=()
  [[ $clock == keep ]] && cflag=(--clock=keep)
  for ((i = 0; i < ${#STREAMS[@]}; i += 4)); do vm_stream_mark "c$c-${STREAMS[i]}"; done
  local m0 m1
  m0=$(date +%s%N)
  nc_json "$VM_WORK/c$c-restore.json" restore "$VM_WORK/c$c-bundle" "${rflag[@]}" "${cflag[@]}" ||
    fail "cycle $c: restore: rc $?: $(cat "$VM_WORK/c$c-restore.json" "$VM_WORK/c$c-restore.json.err")"
  m1=$(date +%s%N)
  local skew
  skew=$(skew_measure) || fail "cycle $c: guest-get-time over the agent channel failed"
  local r=$VM_WORK/c$c-restore.json
  jq -e '.outcome == "ok" and .vm_after == "running" and .gate_left == false' "$r" >/dev/null ||
    fail "cycle $c: restore json: $(cat "$r")"
  [[ $(gate_count) == 0 ]] || fail "cycle $c: a gate is left after restore"
  local survived
  survived=$(jq '.report.survived' "$r")
  # From the marker to the start of the thaw: exact when the thaw carried the host's time
  # (clock.host_time_ns); otherwise the steps before the thaw plus the process start-up that
  # the last such cycle measured.
  local before thaw_ns
  before=$(jq '[.manifest.steps as $s | ($s | map(.name) | index("thaw")) as $k
    | $s[:($k // 0)][] | .ms] | add // 0 | floor' "$r")
  thaw_ns=$(jq '.thaw.clock.host_time_ns // 0' "$r")
  if ((thaw_ns > m0)); then
    STARTUP_MS=$(((thaw_ns - m0) / 1000000 - before))
    echo "$(((thaw_ns - m0) / 1000000)) ms (exact: the thaw's host_time_ns)" >"$VM_WORK/c$c-offset"
  else
    echo "$((before + STARTUP_MS)) ms (estimated: steps before the thaw plus ${STARTUP_MS} ms start-up)" >"$VM_WORK/c$c-offset"
  fi
  echo "  restore: $(jq '.total_ms | floor' "$r") ms (steps $(jq -r '[.manifest.steps[] | "\(.name) \(.ms | floor)"] | join(", ")' "$r")), $survived/$conns survived, replay $(jq -c '.replay | {enabled, held, replayed, dropped, rejected, failed, segmented}' "$r")"

  # The clock.
  local skew_ms
  skew_ms=$(jq -r '.skew_ms' <<<"$skew")
  local cl
  cl=$(jq -c '.thaw.clock // null' "$r")
  case $clock in
  sync | ahead)
    [[ $cl != null ]] || fail "cycle $c: the thaw did not step the clock: $(jq -c .thaw "$r")"
    jq -e '.applied and ((.step_ns < 0) == .backwards)' <<<"$cl" >/dev/null ||
      fail "cycle $c: thaw clock report inconsistent: $cl"
    awk -v s="$skew_ms" 'BEGIN { exit !(s < 1000 && s > -1000) }' ||
      fail "cycle $c: guest clock skew ${skew_ms} ms after the resync (limit 1 s)"
    ;;
  keep)
    [[ $cl == null ]] || fail "cycle $c: --clock=keep, but the thaw stepped the clock: $cl"
    awk -v s="$skew_ms" -v t="$t" 'BEGIN { exit !(t < 30 || s < -(t - 10) * 1000 || s > (t - 10) * 1000) }' ||
      fail "cycle $c: --clock=keep after ${t} s: skew only ${skew_ms} ms"
    ;;
  esac
  if [[ $clock == ahead ]]; then
    jq -e '.backwards == true and .step_ns < -30000000000' <<<"$cl" >/dev/null ||
      fail "cycle $c: the guest was 60 s ahead, but the thaw does not report a backwards step: $cl"
  fi
  echo "  guest clock: skew $(printf '%.1f' "$skew_ms") ms after the restore (agent round trip $(jq -r '.rtt_ms | . * 100 | floor / 100' <<<"$skew") ms), thaw step $(jq -r 'if . == null then "none (--clock=keep)" else "\(.step_ns / 1e6 | floor) ms, backwards \(.backwards)" end' <<<"$cl")"
  [[ $survived == "$conns" ]] || echo "  NOTE: the tap watch saw $survived/$conns survive: $(jq -c '[.report.connections[] | {id, result}]' "$r")"

  sleep 2
  for ((i = 0; i < ${#STREAMS[@]}; i += 4)); do
    name=c$c-${STREAMS[i]}
    vm_stream_stop "$name" || fail "cycle $c: stream ${STREAMS[i]}: $(cat "$VM_WORK/stream-$name.json" "$VM_WORK/stream-$name.log")"
    jq -e '.summary.failed == 0 and ([.connections[] | .tx.match and .rx.match] | all)' \
      "$VM_WORK/stream-$name.json" >/dev/null || fail "cycle $c: stream ${STREAMS[i]} report: $(cat "$VM_WORK/stream-$name.json")"
    jq --arg m "${STREAMS[i + 3]}" '.connections[] += {direction: $m}' "$VM_WORK/stream-$name.json" \
      >"$VM_WORK/c$c-stream-${STREAMS[i]}.json"
  done
  echo "  per connection (stall_ms/answer_ms: restore report, from the thaw, tap-measured; wl_*: workload, from a marker just before 'netckpt restore' started; ~thaw_*: wl_* from the start of the thaw, $(cat "$VM_WORK/c$c-offset") after the marker):"
  print_table "$c"
  local wlmax
  wlmax=$(jq -s --argjson off "$(cut -d' ' -f1 "$VM_WORK/c$c-offset")" \
    '[.[].connections[] | .tx.stall_after_marker_ms[0], .rx.stall_after_marker_ms[0] | values] | max // null | if . == null then "-" else (. - $off | floor) end' \
    "$VM_WORK"/c$c-stream-*.json)
  SUMMARY[$c]="t=${t}s replay=$replay neigh=$neigh clock=$clock flood=$flood: $survived/$conns survived (tap), worst stall: report $(jq '[.report.connections[].stall_ms // empty] | max // "-"' "$r") ms, workload ~${wlmax} ms from the thaw; skew $(printf '%.1f' "$skew_ms") ms, replay held/replayed/dropped $(jq -r '.replay | "\(.held)/\(.replayed)/\(.dropped)"' "$r")"
  ok "cycle $c: every connection byte-exact both ways after a ${t}s outage (replay $replay, clock $clock)"
}

c=0
while IFS= read -r spec; do
  [[ -z ${spec// /} ]] && continue
  c=$((c + 1))
  run_cycle "$c" "$spec"
done <<<"$MATRIX"

# ckpt-outage's SYN case: a peer SYN inside a --continue gate window.
sport=""
if [[ ${NETCKPT_E2E_SYN:-1} == 1 ]]; then
  vm_neigh dynamic
  ip netns exec "$VM_NS_HOST" "$NC" -c "$VM_URI" --json checkpoint "$VM_NAME" --dir "$VM_WORK/b-syn" \
    --continue >"$VM_WORK/cp-syn.json" 2>"$VM_WORK/cp-syn.json.err" &
  CK=$!
  VM_PIDS+=("$CK")
  for _ in $(seq 1000); do
    [[ $(gate_count) == 1 ]] && break
    kill -0 "$CK" 2>/dev/null || break
    sleep 0.02
  done
  [[ $(gate_count) == 1 ]] || fail "never saw the gate of the --continue checkpoint"
  vm_stream_start syn to-guest both 1
  set +e
  wait "$CK"
  rc=$?
  set -e
  forget_pid "$CK"
  ((rc == 0)) || fail "checkpoint --continue: rc $rc: $(cat "$VM_WORK/cp-syn.json" "$VM_WORK/cp-syn.json.err")"
  jq -e '.outcome == "ok" and .vm_after == "running" and .gate_left == false' "$VM_WORK/cp-syn.json" \
    >/dev/null || fail "checkpoint --continue json: $(cat "$VM_WORK/cp-syn.json")"
  vm_stream_wait_ready syn 60 || fail "the connection opened during the gate window never came up"
  sleep 2
  vm_stream_stop syn || fail "the connection opened during the gate window: $(cat "$VM_WORK/stream-syn.json")"
  sport=$(jq -r '.connections[0].local' "$VM_WORK/stream-syn.json" | sed 's/.*://')
  [[ $sport =~ ^[0-9]+$ ]] || fail "no local port in the report: $(cat "$VM_WORK/stream-syn.json")"
  ok "checkpoint --continue: the connection opened in the gate window works (port $sport), $(vm_stream_summary syn)"
fi

sleep 0.5
kill -INT "$TCPDUMP"
wait "$TCPDUMP" 2>/dev/null || true
forget_pid "$TCPDUMP"
tcpdump -n -r "$PCAP" >"$VM_WORK/peer-link.txt" 2>/dev/null
rst=$(tcpdump -n -r "$PCAP" "dst host $VM_PEER_IP and tcp[tcpflags] & tcp-rst != 0" 2>/dev/null | wc -l)
((rst == 0)) || fail "$rst RST toward the peer: $(grep -F 'R' "$VM_WORK/peer-link.txt" | head)"
if [[ -n $sport ]]; then
  syns=$(tcpdump -n -r "$PCAP" "src host $VM_PEER_IP and src port $sport and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn" 2>/dev/null | wc -l)
  ((syns >= 2)) || fail "the gated connection sent $syns SYN (expected a retransmission): $(grep "\.$sport " "$VM_WORK/peer-link.txt")"
  synack=$(tcpdump -n -r "$PCAP" "dst host $VM_PEER_IP and dst port $sport and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)" 2>/dev/null | wc -l)
  ((synack >= 1)) || fail "no SYN-ACK for the gated connection"
  ok "the gated SYN was sent $syns times and answered after the lift"
fi
ok "no RST toward the peer in the whole run ($(tcpdump -n -r "$PCAP" icmp 2>/dev/null | wc -l) ICMP seen on the peer link)"

echo "== outage matrix summary"
for ((i = 1; i <= c; i++)); do echo "  cycle $i: ${SUMMARY[$i]}"; done
echo "outage-matrix e2e: all passed in $((SECONDS - T0)) s after boot (boot ${VM_BOOT_SECONDS}s)"
