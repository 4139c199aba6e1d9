#!/usr/bin/env bash
# e2e: netckpt interrupted on a real VM, with live checksummed streams.
#  1. SIGINT mid-save: the save job is aborted and the checkpoint rolls back: exit 6, VM
#     running, no gate, agent thawed, no bundle, no journal;
#  2. SIGKILL mid-save: the journal stays; the next netckpt start (here: status) lifts the
#     gate, brings the VM back, thaws the agent and removes the partial bundle;
#  3. the streams end verified byte-exact in both directions.
set -euo pipefail
source "${NETCKPT_SOURCE_DIR:?}/tests/e2e/lib/vm-env.sh"
vm_e2e_begin ckfault

WL=$(vm_workload_bin)
journal_step() { # wait until the journal shows step $1
  for _ in $(seq 500); do
    grep -qs "\"step\": *\"$1\"" "$NETCKPT_STATE_DIR"/journal/*.json && return 0
    sleep 0.02
  done
  return 1
}

vm_bg_peer "$VM_WORK/stream.log" "$WL" stream --connect "$VM_GUEST_IP:$VM_WORKLOAD_PORT" \
  --mode both --conns 2 --rate 2000000 --seconds 0 --finish-timeout 60 \
  --ready-file "$VM_WORK/stream.ready" --json "$VM_WORK/stream.json"
streams=$VM_LAST_PID
for _ in $(seq 100); do [[ -e $VM_WORK/stream.ready ]] && break; sleep 0.2; done
[[ -e $VM_WORK/stream.ready ]] || fail "the streams did not start"
sleep 2

# netckpt itself must get the signal: exec it through ip netns exec, not a shell function.
start_checkpoint() { # name
  ip netns exec "$VM_NS_HOST" "$NC" -c "$VM_URI" --json checkpoint "$VM_NAME" \
    --dir "$VM_WORK/$1" >"$VM_WORK/$1.json" 2>"$VM_WORK/$1.err" &
  CK=$!
}

# 1. SIGINT mid-save.
start_checkpoint b-int
journal_step saving || fail "the checkpoint never reached the save: $(cat "$VM_WORK/b-int.err")"
sleep 0.3
kill -INT "$CK"
set +e
wait "$CK"
rc=$?
set -e
[[ $rc == 6 ]] || fail "SIGINT mid-save: exit $rc, not 6: $(cat "$VM_WORK/b-int.json" "$VM_WORK/b-int.err")"
jq -e '.outcome == "interrupted" and .interrupted and .rolled_back and .vm_after == "running" and .gate_left == false and .bundle_committed == false' \
  "$VM_WORK/b-int.json" >/dev/null || fail "json: $(cat "$VM_WORK/b-int.json")"
[[ $(state) == running ]] || fail "the VM is '$(state)'"
[[ $(gate_count) == 0 ]] || fail "a gate is left"
[[ ! -e $VM_WORK/b-int && ! -e $VM_WORK/.b-int.partial ]] || fail "a bundle is left"
[[ -z $(ls -A "$NETCKPT_STATE_DIR/journal" 2>/dev/null) ]] || fail "a journal entry is left"
vm_host "$NC" -c "$VM_URI" --json status "$VM_NAME" >"$VM_WORK/st1.json"
jq -e '.agent.reachable and .agent.frozen == false' "$VM_WORK/st1.json" >/dev/null ||
  fail "agent after SIGINT: $(cat "$VM_WORK/st1.json")"
ok "SIGINT mid-save rolls back (exit 6): VM running, no gate, agent thawed, nothing left"
sleep 2

# 2. SIGKILL mid-save.
start_checkpoint b-kill
journal_step saving || fail "the checkpoint never reached the save: $(cat "$VM_WORK/b-kill.err")"
sleep 0.3
kill -KILL "$CK"
wait "$CK" 2>/dev/null || true
[[ $(gate_count) == 1 ]] || fail "SIGKILL should leave the gate for recovery to find"
vm_host "$NC" -c "$VM_URI" --json status "$VM_NAME" >"$VM_WORK/st2.json" 2>"$VM_WORK/st2.err" ||
  fail "status after SIGKILL: $(cat "$VM_WORK/st2.err")"
grep -q 'recovered domain' "$VM_WORK/st2.err" || fail "no recovery: $(cat "$VM_WORK/st2.err")"
jq -e '.state == "running" and .gate.installed == false and .journal == null and .agent.frozen == false' \
  "$VM_WORK/st2.json" >/dev/null || fail "after recovery: $(cat "$VM_WORK/st2.json" "$VM_WORK/st2.err")"
[[ $(gate_count) == 0 ]] || fail "a gate is left after recovery"
[[ ! -e $VM_WORK/.b-kill.partial ]] || fail "the partial bundle is left after recovery"
ok "SIGKILL mid-save: the next netckpt start lifts the gate, resumes and thaws"
sleep 2

# 3. The streams survived both.
kill -INT "$streams" 2>/dev/null || fail "the streams ended early"
wait "$streams" || fail "streams: $(cat "$VM_WORK/stream.json" "$VM_WORK/stream.log")"
jq -e '.summary.ok == 2 and .summary.failed == 0' "$VM_WORK/stream.json" >/dev/null ||
  fail "stream report: $(cat "$VM_WORK/stream.json")"
jq -c '.connections[] | {id, ok, tx_match: .tx.match, rx_match: .rx.match, max_stall_ms: ([.tx.max_stall_ms, .rx.max_stall_ms] | max | floor)}' \
  "$VM_WORK/stream.json"
ok "the streams survived both interruptions byte-exact"
echo "checkpoint-faults e2e: all passed"
