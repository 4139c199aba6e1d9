#!/usr/bin/env bash
# e2e: netckptd checkpoints two real TCG VMs at the same time (one worker thread each, on the
# one shared libvirt connection), both in continue mode with live checksummed streams: both
# jobs succeed, both VMs keep running with no gate left, both bundles verify, every stream
# ends byte-exact. How much the two jobs overlapped is reported (measured, not asserted: the
# unit test test-daemon-jobs proves the parallelism deterministically).
# The second VM shares the first one's libvirt root, host namespace and peer, on its own tap
# and subnet (10.0.4.0/24).
set -euo pipefail
source "${NETCKPT_SOURCE_DIR:?}/tests/e2e/lib/vm-env.sh"
vm_env_init twovm
vm_image_build
((VM_HAS_AGENT && VM_HAS_WORKLOAD)) || vm_die "the guest image needs the static agent and workload"
vm_net_up
vm_start

D=$VM_BUILD/host/netckptd
CALL=$VM_BUILD/tests/tools/daemon-call
WL=$(vm_workload_bin)
STATE=$VM_WORK/state
SOCK=$VM_RUN/d.sock
B_NAME=$VM_NAME-b
B_TAP=nckb$$
B_IP=10.0.4.15
B_GW=10.0.4.1
B_SERIAL=$VM_WORK/serial-b.log
B_STARTED=0
DPID=
cleanup() {
  local rc=$?
  set +e
  [[ -n $DPID ]] && kill -KILL "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  if ((B_STARTED)); then
    timeout 20 ip netns exec "$VM_NS_HOST" virsh -q -c "$VM_URI" destroy "$B_NAME" >/dev/null 2>&1
    timeout 20 ip netns exec "$VM_NS_HOST" virsh -q -c "$VM_URI" undefine "$B_NAME" \
      --managed-save >/dev/null 2>&1
  fi
  (exit $rc)
  vm_env_teardown
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -40 "$VM_WORK"/daemon.log >&2 2>/dev/null || true
  exit 1
}
ok() { echo "ok - $*"; }
call() { "$CALL" "$SOCK" "$@"; }
gate_count() { vm_host nft -j list tables netdev 2>/dev/null | jq '[.nftables[] | select(.table)] | length'; }

# The second VM: the harness's domain XML with B's names and addresses.
vm_host ip tuntap add dev "$B_TAP" mode tap
vm_host ip addr add "$B_GW/24" dev "$B_TAP"
vm_host ip link set "$B_TAP" up
(
  VM_NAME=$B_NAME VM_TAP=$B_TAP VM_GUEST_IP=$B_IP VM_GW_IP=$B_GW VM_SERIAL=$B_SERIAL
  VM_AGENT_SOCK=$VM_RUN/agent-b.sock VM_QGA_SOCK=$VM_RUN/qga-b.sock VM_DIAL=
  VM_MAC=$(printf '52:54:01:%02x:%02x:%02x' $(($$ >> 16 & 255)) $(($$ >> 8 & 255)) $(($$ & 255)))
  vm_domain_xml
) >"$VM_WORK/domain-b.xml"
: >"$B_SERIAL"
vm_virsh define "$VM_WORK/domain-b.xml" >/dev/null || fail "define B"
B_STARTED=1
vm_virsh start "$B_NAME" >/dev/null || fail "start B"
vm_wait_ready || fail "VM A did not boot"
VM_SERIAL=$B_SERIAL vm_wait_serial 'netckpt-guest: ready' || fail "VM B did not boot"
vm_wait_tcp "$B_IP" $((VM_WORKLOAD_PORT + 1)) 30 || fail "VM B's workload does not answer"

streams=()
for ip in "$VM_GUEST_IP" "$B_IP"; do
  vm_bg_peer "$VM_WORK/stream-$ip.log" "$WL" stream --connect "$ip:$VM_WORKLOAD_PORT" \
    --mode both --conns 2 --rate 2000000 --seconds 0 --finish-timeout 60 \
    --ready-file "$VM_WORK/stream-$ip.ready" --json "$VM_WORK/stream-$ip.json"
  streams+=("$VM_LAST_PID")
done
for _ in $(seq 100); do
  [[ -e $VM_WORK/stream-$VM_GUEST_IP.ready && -e $VM_WORK/stream-$B_IP.ready ]] && break
  sleep 0.2
done
[[ -e $VM_WORK/stream-$VM_GUEST_IP.ready && -e $VM_WORK/stream-$B_IP.ready ]] ||
  fail "the streams did not start"

vm_bg_host "$VM_WORK/daemon.log" "$D" -c "$VM_URI" -s "$SOCK" -d "$STATE" -p "$VM_WORK/pol" \
  -m "$VM_WORK/metrics.prom"
DPID=$VM_LAST_PID
for _ in $(seq 600); do
  [[ -S $SOCK ]] && call status >/dev/null 2>&1 && break
  kill -0 "$DPID" 2>/dev/null || fail "netckptd exited at start"
  sleep 0.05
done
for dom in "$VM_NAME" "$B_NAME"; do
  for _ in $(seq 100); do
    call status "{\"domain\":\"$dom\"}" | jq -e '.agent.reachable' >/dev/null && break
    sleep 0.2
  done
done
sleep 1

ja=$(call checkpoint "{\"domain\":\"$VM_NAME\",\"continue\":true,\"wait\":false,\"dir\":\"$VM_WORK/ba\"}" | jq .job)
jb=$(call checkpoint "{\"domain\":\"$B_NAME\",\"continue\":true,\"wait\":false,\"dir\":\"$VM_WORK/bb\"}" | jq .job)
[[ $ja =~ ^[0-9]+$ && $jb =~ ^[0-9]+$ ]] || fail "the checkpoints did not start: $ja $jb"
for j in "$ja" "$jb"; do
  for _ in $(seq 1200); do
    [[ $(call status "{\"job\":$j}" | jq -r .state) == done ]] && break
    sleep 0.1
  done
done
call status "{\"job\":$ja}" >"$VM_WORK/ja.json"
call status "{\"job\":$jb}" >"$VM_WORK/jb.json"
for f in "$VM_WORK/ja.json" "$VM_WORK/jb.json"; do
  jq -e '.ok and .result.outcome == "ok" and .result.vm_after == "running" and
    .result.gate_left == false and .result.bundle_committed' "$f" >/dev/null ||
    fail "job: $(cat "$f")"
  jq -c '{domain, ms: ((.finished_ns - .started_ns) / 1e6 | floor),
    connections: .result.manifest.connections, survived: .result.report.survived}' "$f"
done
overlap=$(jq -s '([.[0].finished_ns, .[1].finished_ns] | min) - ([.[0].started_ns, .[1].started_ns] | max) | . / 1e6 | floor' \
  "$VM_WORK/ja.json" "$VM_WORK/jb.json")
echo "the two jobs ran side by side for $overlap ms"
[[ $(gate_count) == 0 ]] || fail "a gate is left"
call list | jq -e --arg a "$VM_NAME" --arg b "$B_NAME" \
  '[.domains[] | select(.name == $a or .name == $b) | .state] == ["running","running"]' \
  >/dev/null || fail "states: $(call list)"
for b in "$VM_WORK/ba" "$VM_WORK/bb"; do
  vm_host "$VM_BUILD/host/netckpt" verify "$b" >/dev/null || fail "$b does not verify"
done
ok "two VMs checkpointed concurrently: both ok, both running, no gate, both bundles verify"

kill -TERM "$DPID"
wait "$DPID" || fail "netckptd exit status"
DPID=
sleep 1
for i in 0 1; do
  kill -INT "${streams[$i]}" 2>/dev/null || fail "a stream ended early"
  wait "${streams[$i]}" || fail "streams $i"
done
for ip in "$VM_GUEST_IP" "$B_IP"; do
  jq -e '.summary.ok == 2 and .summary.failed == 0' "$VM_WORK/stream-$ip.json" >/dev/null ||
    fail "streams of $ip: $(cat "$VM_WORK/stream-$ip.json")"
done
ok "the streams of both VMs ended byte-exact"
echo "daemon two-VM e2e: all passed"
