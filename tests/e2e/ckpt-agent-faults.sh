#!/usr/bin/env bash
# e2e (issue 4, case 5): the guest agent fails on the real VM, with live checksummed streams.
# The guest's test knobs (guest/image/init) inject the faults:
#  1. netckpt.agentenv: the agent's first start carries NETCKPT_AGENT_FAULT_FREEZE_AT=1 and
#     NETCKPT_AGENT_FAULT_CRASH=1, so it SIGKILLs itself in the middle of the first freeze
#     (state file written, first socket in repair mode). busybox init respawns it without the
#     hook. netckpt (stop mode) must roll back: exit 4, VM running, no gate, agent thawed.
#  2. netckpt.agenthang=SECS@2: at the second freeze a guest-side watcher SIGSTOPs the agent
#     for SECS, then SIGCONTs it. netckpt (--continue) must give up on the hung agent
#     (NETCKPT_AGENT_TIMEOUT_MS) and roll back: exit 4, VM running, network open; once the
#     agent runs again its watchdog (--freeze-timeout) thaws the sockets.
#  3. The streams carry on through both, byte-exact both ways; only the connection in repair
#     mode at the crash may be lost (its owner can meet EINVAL before the respawned agent
#     recovers it).
set -euo pipefail
source "${NETCKPT_SOURCE_DIR:?}/tests/e2e/lib/vm-env.sh"
HANG_S=${NETCKPT_E2E_HANG:-12}
VM_CMDLINE_EXTRA="netckpt.agentenv=NETCKPT_AGENT_FAULT_FREEZE_AT=1,NETCKPT_AGENT_FAULT_CRASH=1 netckpt.agenthang=$HANG_S@2"
vm_e2e_begin ckagent

# A hung agent must not cost the default 30 s per call.
export NETCKPT_AGENT_TIMEOUT_MS=4000
T0=$SECONDS
ok() { echo "ok - $* [t=$((SECONDS - T0))s]"; }
# after_rollback NAME: the promise after a failed checkpoint: VM running, no gate, no journal
# entry, no bundle left.
after_rollback() {
  [[ $(state) == running ]] || fail "$1: the VM is '$(state)'"
  [[ $(gate_count) == 0 ]] || fail "$1: a gate is left"
  [[ -z $(ls -A "$NETCKPT_STATE_DIR/journal" 2>/dev/null) ]] || fail "$1: a journal entry is left"
  [[ ! -e $VM_WORK/$1 && ! -e $VM_WORK/.$1.partial ]] || fail "$1: a bundle is left"
}
# wait_thawed S: the agent answers and is not frozen, within S seconds.
wait_thawed() {
  local i
  for ((i = 0; i < $1 * 2; i++)); do
    if nc_json "$VM_WORK/st.json" status "$VM_NAME" &&
      jq -e '.agent.reachable and .agent.frozen == false' "$VM_WORK/st.json" >/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  return 1
}

vm_stream_start in to-guest both 2
vm_stream_start out from-guest both 2
vm_stream_start idle-in to-guest idle 1
for s in in out idle-in; do vm_stream_wait_ready "$s" || fail "stream $s did not start"; done
sleep 2
grep -q 'test hook: the dump of socket 1 will kill the agent' "$VM_SERIAL" ||
  fail "the agent did not start with the fault hook (netckpt.agentenv)"

# 1. The agent kills itself mid-freeze.
rc=0
nc_json "$VM_WORK/c1.json" checkpoint "$VM_NAME" --dir "$VM_WORK/c1" --freeze-timeout 5 || rc=$?
cat "$VM_WORK/c1.json.err" >&2
[[ $rc == 4 ]] || fail "agent killed mid-freeze: exit $rc, not 4: $(cat "$VM_WORK/c1.json")"
jq -e '.outcome == "rolled-back" and .failed_step == "freeze" and .rolled_back and .vm_after == "running" and .gate_left == false and .bundle_committed == false' \
  "$VM_WORK/c1.json" >/dev/null || fail "json: $(cat "$VM_WORK/c1.json")"
after_rollback c1
wait_thawed 20 || fail "the agent is not back and thawed: $(cat "$VM_WORK/st.json")"
jq -c '{error, rollback_errors, warnings}' "$VM_WORK/c1.json"
ok "agent SIGKILLed mid-freeze: netckpt rolled back (exit 4), VM running, no gate, respawned agent not frozen"
sleep 2

# 2. The agent hangs (SIGSTOP) at the next freeze.
rc=0
nc_json "$VM_WORK/c2.json" checkpoint "$VM_NAME" --dir "$VM_WORK/c2" --continue --freeze-timeout 5 || rc=$?
cat "$VM_WORK/c2.json.err" >&2
grep -q 'agenthang: SIGSTOP' "$VM_SERIAL" || fail "the guest never stopped the agent"
[[ $rc == 4 ]] || fail "agent hung: exit $rc, not 4: $(cat "$VM_WORK/c2.json")"
jq -e '.outcome == "rolled-back" and .rolled_back and .vm_after == "running" and .gate_left == false' \
  "$VM_WORK/c2.json" >/dev/null || fail "json: $(cat "$VM_WORK/c2.json")"
step=$(jq -r .failed_step "$VM_WORK/c2.json")
after_rollback c2
jq -c '{failed_step, error, rollback_errors, warnings}' "$VM_WORK/c2.json"
ok "agent hung at step $step: netckpt rolled back (exit 4), VM running, no gate"
wait_thawed $((HANG_S + 30)) || fail "the agent never thawed after the hang: $(cat "$VM_WORK/st.json")"
grep -q 'agenthang: SIGCONT' "$VM_SERIAL" || fail "no SIGCONT on the serial console"
jq -c '.agent.status.last_thaw // .agent.status' "$VM_WORK/st.json"
ok "the agent ran again and its watchdog thawed"

# 3. The streams survived both faults, where the guest state allows: the agent died before
# its sentinel existed (that is forked once a freeze completes), so the socket the hook had
# put in repair mode stays there until the respawned agent recovers it; its owner, released
# at once by the tracer's death, may meet EINVAL meanwhile and close it (docs/netckpt-agent.md,
# Safety). That one connection may be lost; every other must survive byte-exact.
sleep 3
lost=0
for s in in out idle-in; do
  vm_stream_stop "$s" || true
  [[ -s $VM_WORK/stream-$s.json ]] || fail "stream $s wrote no report: $(cat "$VM_WORK/stream-$s.log")"
  jq -e '[.connections[] | select(.ok) | .tx.match != false and .rx.match != false] | all' \
    "$VM_WORK/stream-$s.json" >/dev/null || fail "stream $s: a verified connection mismatches: $(cat "$VM_WORK/stream-$s.json")"
  lost=$((lost + $(jq '.summary.failed' "$VM_WORK/stream-$s.json")))
  jq -c '.connections[] | select(.ok | not) | {stream: "'"$s"'", local, remote, error}' "$VM_WORK/stream-$s.json"
  echo "stream $s: $(vm_stream_summary "$s")"
done
if ((lost > 0)); then
  ((lost == 1)) || fail "$lost connections lost; only the one in repair mode at the crash may be"
  grep -q 'workload: info: .*FAILED.*Invalid argument' "$VM_SERIAL" ||
    fail "a connection was lost, but not by an owner that met repair mode (EINVAL)"
  echo "note: the connection in repair mode when the agent died was lost (its owner got EINVAL)"
fi
ok "the connections survived the crash and the hang byte-exact ($lost lost to the crash window)"
echo "ckpt-agent-faults e2e: all passed in $((SECONDS - T0)) s after boot (boot ${VM_BOOT_SECONDS}s)"
