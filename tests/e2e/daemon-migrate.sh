#!/usr/bin/env bash
# e2e: netckptd migrates a real VM live between two libvirt instances standing for two hosts
# (tests/e2e/lib/two-hosts.sh), from a migration policy (<mode>migrate</mode>): the daemon on
# host A runs the policy, its job is host/migrate.h's transaction (the guest's connections
# quiesced at the switchover), with live checksummed streams to the routed peer.
#  1. policy-run --wait: the job's result is netckpt's --json migrate report: ok, quiesced,
#     switched over, every frozen connection verified on B; the VM runs on B and is gone from
#     A; no gate on either side, no journal; the daemon's events and metrics say so;
#  2. the streams end byte-exact both ways (no reset).
set -euo pipefail
source "${NETCKPT_SOURCE_DIR:?}/tests/e2e/lib/vm-env.sh"
source "$NETCKPT_SOURCE_DIR/tests/e2e/lib/two-hosts.sh"
vm_env_init dmig
th_init
vm_image_build
((VM_HAS_AGENT && VM_HAS_WORKLOAD)) || vm_die "the guest image needs the static agent and workload"
th_net_up
th_hosts_up
th_vm_start
vm_wait_ready

D=$VM_BUILD/host/netckptd
CALL=$VM_BUILD/tests/tools/daemon-call
STATE=$VM_WORK/state
SOCK=$VM_RUN/d.sock
fail() {
  echo "FAIL: $*" >&2
  tail -30 "$VM_WORK/daemon.log" >&2 2>/dev/null || true
  exit 1
}
ok() { echo "ok - $*"; }
call() { "$CALL" "$SOCK" "$@"; }
state() { th_virsh "$1" domstate "$VM_NAME" 2>/dev/null | head -n1 || true; }
no_gates() { [[ -z $(th_tables "$VM_NS_HOST") && -z $(th_tables "$TH_NS_B") ]]; }
no_journal() { [[ -z $(find "$STATE" -name '*.json' -path '*journal*' 2>/dev/null) ]]; }

mkdir -p "$VM_WORK/pol"
cat >"$VM_WORK/pol/move.xml" <<XML
<policy>
  <name>move-to-b</name>
  <domains><domain>$VM_NAME</domain></domains>
  <schedule><interval unit="d">1</interval></schedule>
  <mode>migrate</mode>
  <migrate uri="$TH_URI_B" streamUri="tcp://10.0.9.2:49152" listenAddress="10.0.9.2"
           destNetns="$TH_NS_B" destXml="$VM_WORK/domain-b.xml"
           switchoverHook="ip -n $VM_NS_PEER route replace $VM_GUEST_IP/32 via 10.0.4.1"/>
  <conditions><agent timeout="10"/></conditions>
</policy>
XML

vm_stream_start in to-guest both 2
vm_stream_start out from-guest both 1
vm_stream_wait_ready in
vm_stream_wait_ready out

# The daemon on host A, driving A's libvirtd.
vm_bg_host "$VM_WORK/daemon.log" "$D" -c "$TH_URI_A" -s "$SOCK" -d "$STATE" -p "$VM_WORK/pol" \
  -m "$VM_WORK/metrics.prom"
DPID=$VM_LAST_PID
for _ in $(seq 600); do
  [[ -S $SOCK ]] && call status >/dev/null 2>&1 && break
  kill -0 "$DPID" 2>/dev/null || fail "netckptd exited at start"
  sleep 0.05
done
call policy-list | jq -e '.policies[0] | .mode == "migrate"' >/dev/null ||
  fail "policy: $(call policy-list)"
sleep 2

vm_stream_mark in out
out=$(call policy-run '{"name":"move-to-b","wait":true}') || fail "policy-run: $out"
jq '.results[0].result' <<<"$out" >"$VM_WORK/m.json"
jq -e '.results | length == 1 and .[0].kind == "migrate" and .[0].ok' <<<"$out" >/dev/null ||
  fail "migration job: $out"
jq -e '.command == "migrate" and .outcome == "ok" and .switched_over and .quiesced and
  .dest_gate_left == false and .source_gate_left == false' "$VM_WORK/m.json" >/dev/null ||
  fail "migrate report: $(cat "$VM_WORK/m.json")"
conns=$(jq '.connections' "$VM_WORK/m.json")
((conns >= 3)) || fail "only $conns connections frozen"
[[ $(state b) == running ]] || fail "the VM is '$(state b)' on B"
[[ -z $(state a) ]] || fail "A still has the domain: $(state a)"
no_gates || fail "a gate is left: A[$(th_tables "$VM_NS_HOST")] B[$(th_tables "$TH_NS_B")]"
no_journal || fail "a journal entry is left"
call events '{"max":1000}' | jq -e '[.events[] | select(.kind == "job-done" and
  (.message | test("migrated to")))] | length == 1' >/dev/null || fail "no job-done event"
grep -q '^netckptd_migrations_total{result="ok"} 1$' "$VM_WORK/metrics.prom" ||
  fail "metrics: $(grep migrations "$VM_WORK/metrics.prom")"
jq -r '"daemon migrate: \(.connections) connections; times (ms): " + (.times | to_entries
  | map("\(.key | sub("_ms$"; ""))=\(.value | floor)") | join(" ")) +
  "; worst stall on the taps: \([.report.connections[]?.stall_ms // empty] | max // "none") ms"' \
  "$VM_WORK/m.json"
ok "a migration policy run by netckptd moved the VM to B: quiesced, $conns connections verified"

kill -TERM "$DPID"
wait "$DPID" || fail "netckptd exit status"
sleep 3
for s in in out; do
  vm_stream_stop "$s" || fail "stream $s failed: $(tail -n 5 "$VM_WORK/stream-$s.log")"
  echo "stream $s: $(vm_stream_summary "$s")"
done
ok "every connection byte-exact both ways across the daemon's migration (no reset)"
echo "daemon-migrate e2e: all passed"
