#!/usr/bin/env bash
# e2e: netckpt checkpoint and restore on a real TCG VM booted by libvirt's embedded driver,
# with live TCP streams (both directions, checksummed by netckpt-workload) to a routed peer.
#  1. stop mode: the VM is saved and off, the bundle verifies, nothing stays gated;
#     after an outage, restore: every connection survives, the streams go on;
#  2. --continue: the VM keeps running, the connections carry on, the bundle is complete;
#  3. the streams end with both directions verified byte-exact (sha256);
#  4. a later restore of the --continue bundle on a stopped VM works (its connections are
#     gone on the peer by then, so they are reported reset, not left hanging).
# NETCKPT_E2E_OUTAGE (seconds, default 2) sets the outage of step 1.
set -euo pipefail
source "${NETCKPT_SOURCE_DIR:?}/tests/e2e/lib/vm-env.sh"
vm_e2e_begin ckpt

WL=$(vm_workload_bin)
OUTAGE=${NETCKPT_E2E_OUTAGE:-2}
nc() { vm_host "$NC" -c "$VM_URI" "$@"; }

# Streams from the peer: two in both directions at a steady rate, one idle.
vm_bg_peer "$VM_WORK/stream.log" "$WL" stream --connect "$VM_GUEST_IP:$VM_WORKLOAD_PORT" \
  --mode both --conns 2 --rate 2000000 --seconds 0 --finish-timeout 60 \
  --ready-file "$VM_WORK/stream.ready" --json "$VM_WORK/stream.json"
streams=$VM_LAST_PID
vm_bg_peer "$VM_WORK/idle.log" "$WL" stream --connect "$VM_GUEST_IP:$VM_WORKLOAD_PORT" \
  --mode idle --conns 1 --seconds 0 --finish-timeout 60 \
  --ready-file "$VM_WORK/idle.ready" --json "$VM_WORK/idle.json"
idle=$VM_LAST_PID
for _ in $(seq 100); do
  [[ -e $VM_WORK/stream.ready && -e $VM_WORK/idle.ready ]] && break
  sleep 0.2
done
[[ -e $VM_WORK/stream.ready && -e $VM_WORK/idle.ready ]] || fail "the streams did not start"
sleep 2

# 0. From outside the tap's network namespace: refused at discover, nothing touched.
rc=0
"$NC" -c "$VM_URI" --json checkpoint "$VM_NAME" --dir "$VM_WORK/b0" >"$VM_WORK/cp0.json" \
  2>"$VM_WORK/cp0.err" || rc=$?
[[ $rc == 1 ]] || fail "checkpoint from the wrong netns: rc $rc: $(cat "$VM_WORK/cp0.json")"
jq -e '.failed_step == "discover" and (.error | contains("network namespace"))' "$VM_WORK/cp0.json" \
  >/dev/null || fail "wrong-netns json: $(cat "$VM_WORK/cp0.json")"
[[ $(state) == running && ! -e $VM_WORK/b0 ]] || fail "the wrong-netns checkpoint touched something"
ok "a checkpoint from outside the tap's namespace is refused at discover"

# 1. Stop mode.
nc_json "$VM_WORK/cp1.json" checkpoint "$VM_NAME" --dir "$VM_WORK/b1" ||
  fail "checkpoint (stop): rc $?: $(cat "$VM_WORK/cp1.json.err")"
jq -e '.outcome == "ok" and .bundle_committed and .gate_left == false' "$VM_WORK/cp1.json" \
  >/dev/null || fail "checkpoint json: $(cat "$VM_WORK/cp1.json")"
conns=$(jq '.manifest.connections' "$VM_WORK/cp1.json")
((conns >= 3)) || fail "only $conns connections frozen"
[[ $(state) == "shut off" ]] || fail "the VM is '$(state)' after a stop-mode checkpoint"
[[ $(gate_count) == 0 ]] || fail "a gate is left after a stop-mode checkpoint"
nc verify "$VM_WORK/b1" >/dev/null || fail "the bundle does not verify"
drops=$(jq '.manifest.gate_counters | .to_guest_pkts + .from_guest_pkts' "$VM_WORK/cp1.json")
echo "checkpoint: $conns connections, $drops packets dropped by the gate," \
  "$(jq '.total_ms | floor' "$VM_WORK/cp1.json") ms"
ok "stop-mode checkpoint: VM saved and off, bundle complete, nothing gated"

sleep "$OUTAGE"
nc_json "$VM_WORK/r1.json" restore "$VM_WORK/b1" ||
  fail "restore: rc $?: $(cat "$VM_WORK/r1.json" "$VM_WORK/r1.json.err")"
jq -e '.outcome == "ok" and .vm_after == "running" and .gate_left == false' "$VM_WORK/r1.json" \
  >/dev/null || fail "restore json: $(cat "$VM_WORK/r1.json")"
[[ $(state) == running ]] || fail "the VM is '$(state)' after restore"
[[ $(gate_count) == 0 ]] || fail "a gate is left after restore"
jq -c '.report.connections[] | {id, result, stall_ms, answer_ms}' "$VM_WORK/r1.json"
survived=$(jq '.report.survived' "$VM_WORK/r1.json")
[[ $survived == "$conns" ]] || fail "$survived of $conns connections survived: $(jq -c .report "$VM_WORK/r1.json")"
ok "restore after ${OUTAGE}s: $survived/$conns connections survived"
nc_json "$VM_WORK/st1.json" status "$VM_NAME" || fail "status"
jq -e '.agent.reachable and .agent.frozen == false and .gate.installed == false' \
  "$VM_WORK/st1.json" >/dev/null || fail "status after restore: $(cat "$VM_WORK/st1.json")"
ok "status: agent thawed, no gate"
sleep 3

# 2. Checkpoint and continue.
nc_json "$VM_WORK/cp2.json" checkpoint "$VM_NAME" --dir "$VM_WORK/b2" --continue ||
  fail "checkpoint --continue: rc $?: $(cat "$VM_WORK/cp2.json" "$VM_WORK/cp2.json.err")"
jq -e '.outcome == "ok" and .vm_after == "running" and .manifest.mode == "continue"' \
  "$VM_WORK/cp2.json" >/dev/null || fail "checkpoint --continue json: $(cat "$VM_WORK/cp2.json")"
[[ $(state) == running ]] || fail "the VM is '$(state)' after --continue"
[[ $(gate_count) == 0 ]] || fail "a gate is left after --continue"
nc verify "$VM_WORK/b2" >/dev/null || fail "the --continue bundle does not verify"
jq -c '.report.connections[]? | {id, result, stall_ms}' "$VM_WORK/cp2.json"
ok "checkpoint --continue: VM running, bundle complete"
sleep 3

# 3. The streams end verified in both directions.
kill -INT "$streams" "$idle" 2>/dev/null || fail "the streams ended before we stopped them"
wait "$streams" || fail "streams: $(cat "$VM_WORK/stream.json" "$VM_WORK/stream.log")"
wait "$idle" || fail "idle stream: $(cat "$VM_WORK/idle.json" "$VM_WORK/idle.log")"
jq -e '.summary.ok == 2 and .summary.failed == 0' "$VM_WORK/stream.json" >/dev/null ||
  fail "stream report: $(cat "$VM_WORK/stream.json")"
jq -c '.connections[] | {id, ok, tx_bytes: .tx.bytes, rx_bytes: .rx.bytes, tx_match: .tx.match, rx_match: .rx.match, max_stall_ms: ([.tx.max_stall_ms, .rx.max_stall_ms] | max | floor)}' \
  "$VM_WORK/stream.json"
ok "every stream finished with both directions verified (sha256)"

# 4. A later restore of the --continue bundle on a stopped VM.
# (a one-shot virsh on the embedded driver can race its reconnect to QEMU: retry)
for _ in $(seq 20); do
  vm_virsh destroy "$VM_NAME" >/dev/null 2>&1 || true
  [[ $(state) == "shut off" ]] && break
  sleep 0.5
done
[[ $(state) == "shut off" ]] || fail "cannot stop the VM"
# A wrong image (the stop-mode checkpoint's) with this VM state: refused, nothing escapes.
rc=0
nc_json "$VM_WORK/rw.json" restore "$VM_WORK/b2" --image "$VM_WORK/b1/socket-image.json" || rc=$?
[[ $rc == 3 ]] || fail "restore with a wrong image: rc $rc: $(cat "$VM_WORK/rw.json" "$VM_WORK/rw.json.err")"
jq -e '.outcome == "refused" and .failed_step == "verify" and .gate_left and (.verify_differences | length) > 0' \
  "$VM_WORK/rw.json" >/dev/null || fail "refused json: $(cat "$VM_WORK/rw.json")"
[[ $(state) == paused ]] || fail "the VM is '$(state)' after a refused restore"
[[ $(gate_count) == 1 ]] || fail "the gate is not kept after a refused restore"
nc_json "$VM_WORK/rws.json" status "$VM_NAME" || fail "status"
jq -e '.gate.installed and .journal == null' "$VM_WORK/rws.json" >/dev/null ||
  fail "status after refusal: $(cat "$VM_WORK/rws.json")"
ok "a wrong image is refused (3): VM paused, gate kept, $(jq '.verify_differences | length' "$VM_WORK/rw.json") differences"
nc unblock "$VM_NAME" >/dev/null || fail "unblock after the refusal"
[[ $(state) == running && $(gate_count) == 0 ]] || fail "unblock: VM '$(state)', $(gate_count) gates"
ok "unblock releases it"
for _ in $(seq 20); do
  vm_virsh destroy "$VM_NAME" >/dev/null 2>&1 || true
  [[ $(state) == "shut off" ]] && break
  sleep 0.5
done

nc_json "$VM_WORK/r2.json" restore "$VM_WORK/b2" ||
  fail "restore of the --continue bundle: rc $?: $(cat "$VM_WORK/r2.json" "$VM_WORK/r2.json.err")"
jq -e '.outcome == "ok" and .vm_after == "running"' "$VM_WORK/r2.json" >/dev/null ||
  fail "restore json: $(cat "$VM_WORK/r2.json")"
jq -c '.report | {survived, stale, reset, stalled}' "$VM_WORK/r2.json"
[[ $(gate_count) == 0 ]] || fail "a gate is left"
ok "the --continue bundle restores on a stopped VM"
echo "checkpoint e2e: all passed"
