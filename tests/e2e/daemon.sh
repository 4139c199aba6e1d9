#!/usr/bin/env bash
# e2e: netckptd driving a real TCG VM (tests/e2e/lib/vm-env.sh) with live checksummed streams.
#  1. a policy run (continue mode) through the socket: the VM keeps running, the bundle is
#     complete, the connections are reported kept, three runs with <keep>2</keep> leave two
#     bundles;
#  2. while a checkpoint job runs, a second one on the same domain gets Busy; the netckpt CLI
#     run against the daemon checkpoints through it (its job, events, metrics), and gets
#     exit 7 while the daemon is busy with the domain;
#  3. SIGKILL of the daemon mid-save, restart: the journal replay lifts the gate, brings the VM
#     back running with its agent thawed, removes the partial bundle; no bundle is taken for
#     complete;
#  4. SIGTERM of the daemon mid-save: the job rolls back before the daemon exits 0;
#  5. the streams end byte-exact in both directions.
# Only the daemon talks to libvirt while it runs (a second process on the embedded root would
# fight it for QEMU's monitor): states come from the daemon's status.
set -euo pipefail
source "${NETCKPT_SOURCE_DIR:?}/tests/e2e/lib/vm-env.sh"
vm_e2e_begin daemon

D=$VM_BUILD/host/netckptd
CALL=$VM_BUILD/tests/tools/daemon-call
WL=$(vm_workload_bin)
STATE=$VM_WORK/state
SOCK=$VM_RUN/d.sock
fail() {
  echo "FAIL: $*" >&2
  tail -40 "$VM_WORK"/daemon*.log >&2 2>/dev/null || true
  exit 1
}
call() { "$CALL" "$SOCK" "$@"; }
dstate() { call status "{\"domain\":\"$VM_NAME\"}" | jq -r .state; }
start_daemon() { # log
  vm_bg_host "$1" "$D" -c "$VM_URI" -s "$SOCK" -d "$STATE" -p "$VM_WORK/pol" \
    -m "$VM_WORK/metrics.prom"
  DPID=$VM_LAST_PID
  for _ in $(seq 600); do
    [[ -S $SOCK ]] && call status >/dev/null 2>&1 && return 0
    kill -0 "$DPID" 2>/dev/null || fail "netckptd exited at start"
    sleep 0.05
  done
  fail "netckptd did not come up"
}

mkdir -p "$VM_WORK/pol"
cat >"$VM_WORK/pol/e2e.xml" <<XML
<policy>
  <name>e2e</name>
  <domains><domain>nck-daemon-*</domain></domains>
  <schedule><interval unit="h">12</interval></schedule>
  <mode>continue</mode>
  <bundles dir="$VM_WORK/bundles"/>
  <retention><keep>2</keep></retention>
  <conditions><agent timeout="10"/></conditions>
</policy>
XML

vm_bg_peer "$VM_WORK/stream.log" "$WL" stream --connect "$VM_GUEST_IP:$VM_WORKLOAD_PORT" \
  --mode both --conns 2 --rate 2000000 --seconds 0 --finish-timeout 60 \
  --ready-file "$VM_WORK/stream.ready" --json "$VM_WORK/stream.json"
streams=$VM_LAST_PID
for _ in $(seq 100); do [[ -e $VM_WORK/stream.ready ]] && break; sleep 0.2; done
[[ -e $VM_WORK/stream.ready ]] || fail "the streams did not start"

start_daemon "$VM_WORK/daemon1.log"
sleep 1

# 1. Policy runs.
for i in 1 2 3; do
  out=$(call policy-run '{"name":"e2e","wait":true}') || fail "policy-run: $out"
  jq -e '.results | length == 1 and .[0].ok and .[0].result.outcome == "ok" and
    .[0].result.vm_after == "running" and .[0].result.gate_left == false' <<<"$out" >/dev/null ||
    fail "policy run $i: $out"
  echo "run $i: $(jq -c '.results[0].result | {bundle, total_ms: (.total_ms | floor),
    connections: .manifest.connections, survived: .report.survived}' <<<"$out")"
  sleep 1.1 # bundle names have one-second resolution
done
[[ $(dstate) == running ]] || fail "the VM is $(dstate)"
[[ $(gate_count) == 0 ]] || fail "a gate is left"
n=$(find "$VM_WORK/bundles/$VM_NAME" -mindepth 1 -maxdepth 1 -name '2*' | wc -l)
[[ $n == 2 ]] || fail "retention left $n bundles: $(ls -a "$VM_WORK/bundles/$VM_NAME")"
for b in "$VM_WORK/bundles/$VM_NAME"/2*; do
  vm_host "$VM_BUILD/host/netckpt" verify "$b" >/dev/null || fail "bundle $b does not verify"
done
grep -q '^netckptd_checkpoints_total{result="ok"} 3$' "$VM_WORK/metrics.prom" || fail "metrics ok"
kept=$(awk '$1 == "netckptd_connections_kept_total" {print $2}' "$VM_WORK/metrics.prom")
gate_s=$(awk '$1 == "netckptd_last_checkpoint_gate_seconds" {print $2}' "$VM_WORK/metrics.prom")
((kept >= 6)) || fail "metrics: $kept connections kept"
awk -v g="$gate_s" 'BEGIN { exit !(g > 0) }' || fail "metrics: gate time $gate_s"
grep -q '^netckptd_bundles_pruned_total 1$' "$VM_WORK/metrics.prom" || fail "metrics pruned"
echo "metrics: $kept connections kept, last gate time ${gate_s} s"
ok "three policy runs (continue mode): VM running, no gate, bundles verify, retention kept 2"

# 2. Busy.
out=$(call checkpoint "{\"domain\":\"$VM_NAME\",\"continue\":true,\"wait\":false,\"dir\":\"$VM_WORK/b-busy\"}") ||
  fail "checkpoint: $out"
job=$(jq .job <<<"$out")
set +e
out2=$(call checkpoint "{\"domain\":\"$VM_NAME\",\"dir\":\"$VM_WORK/b-busy2\"}")
rc=$?
set -e
[[ $rc == 1 ]] && jq -e '.error.class == "Busy" and (.error.desc | test("is busy"))' <<<"$out2" \
  >/dev/null || fail "second checkpoint: $rc $out2"
for _ in $(seq 600); do
  [[ $(call status "{\"job\":$job}" | jq -r .state) == done ]] && break
  sleep 0.1
done
call status "{\"job\":$job}" | jq -e '.ok and .result.outcome == "ok"' >/dev/null ||
  fail "job $job: $(call status "{\"job\":$job}")"
[[ ! -e $VM_WORK/b-busy2 ]] || fail "the refused checkpoint made a bundle"
ok "a second checkpoint of a busy domain is refused with Busy; the first completes"

# 2b. The netckpt CLI while netckptd runs: it goes through the daemon (which holds the
# embedded driver; alone it would exit 7 naming the holder) with the standalone output.
NC=("$VM_BUILD/host/netckpt" -c "$VM_URI" --daemon-socket "$SOCK")
since=$(call events '{"max":1000}' | jq .next)
set +e
vm_host "${NC[@]}" -v checkpoint "$VM_NAME" --continue --dir "$VM_WORK/b-cli" \
  >"$VM_WORK/cli.out" 2>"$VM_WORK/cli.err"
rc=$?
set -e
[[ $rc == 0 ]] || fail "netckpt checkpoint through the daemon: exit $rc: $(cat "$VM_WORK/cli.err")"
grep -q "^checkpoint of $VM_NAME complete: $VM_WORK/b-cli\$" "$VM_WORK/cli.out" ||
  fail "CLI output: $(cat "$VM_WORK/cli.out")"
grep -Eq "connections: [0-9]+ survived" "$VM_WORK/cli.out" || fail "CLI report: $(cat "$VM_WORK/cli.out")"
grep -q "via netckptd at $SOCK" "$VM_WORK/cli.err" || fail "the CLI did not use the daemon"
cat "$VM_WORK/cli.out"
ev=$(call events "{\"since\":$since,\"max\":1000}")
jq -e --arg b "$VM_WORK/b-cli" '[.events[] | select(.kind == "job-done" and
  (.message | contains($b)))] | length == 1' <<<"$ev" >/dev/null || fail "no daemon job: $ev"
grep -q '^netckptd_checkpoints_total{result="ok"} 5$' "$VM_WORK/metrics.prom" ||
  fail "metrics: $(grep checkpoints_total "$VM_WORK/metrics.prom")"
vm_host "$VM_BUILD/host/netckpt" verify "$VM_WORK/b-cli" >/dev/null || fail "b-cli does not verify"
vm_host "${NC[@]}" --json status "$VM_NAME" >"$VM_WORK/cli-status.json" || fail "CLI status"
jq -e --arg b "$VM_WORK/b-cli" '.state == "running" and .gate.installed == false and
  .agent.reachable and .last_checkpoint.bundle == $b' "$VM_WORK/cli-status.json" >/dev/null ||
  fail "CLI status: $(cat "$VM_WORK/cli-status.json")"
# Busy through the CLI: exit 7 with the daemon's message.
out=$(call checkpoint "{\"domain\":\"$VM_NAME\",\"continue\":true,\"wait\":false,\"dir\":\"$VM_WORK/b-busy3\"}") ||
  fail "checkpoint: $out"
job=$(jq .job <<<"$out")
set +e
vm_host "${NC[@]}" checkpoint "$VM_NAME" --continue --dir "$VM_WORK/b-cli2" 2>"$VM_WORK/cli2.err"
rc=$?
set -e
[[ $rc == 7 ]] && grep -q "is busy: a checkpoint (job $job)" "$VM_WORK/cli2.err" ||
  fail "CLI on a busy domain: exit $rc: $(cat "$VM_WORK/cli2.err")"
for _ in $(seq 600); do
  [[ $(call status "{\"job\":$job}" | jq -r .state) == done ]] && break
  sleep 0.1
done
call status "{\"job\":$job}" | jq -e '.ok' >/dev/null || fail "job $job failed"
ok "netckpt checkpoint while netckptd runs: the daemon's job (event, metrics), same output; busy: exit 7"

# 3. SIGKILL mid-save.
call checkpoint "{\"domain\":\"$VM_NAME\",\"wait\":false,\"dir\":\"$VM_WORK/b-kill\"}" >/dev/null
for _ in $(seq 500); do
  grep -qs '"step": *"saving"' "$STATE"/journal/*.json && break
  sleep 0.02
done
grep -qs '"step": *"saving"' "$STATE"/journal/*.json || fail "the job never reached the save"
sleep 0.3
kill -KILL "$DPID"
wait "$DPID" 2>/dev/null || true
[[ $(gate_count) == 1 ]] || fail "SIGKILL should leave the gate for the restart to find"
rm -f "$SOCK"
start_daemon "$VM_WORK/daemon2.log"
grep -q "journal recovery: 1 domain" "$VM_WORK/daemon2.log" || fail "no recovery logged"
[[ $(gate_count) == 0 ]] || fail "a gate is left after the restart"
[[ ! -e $VM_WORK/b-kill && ! -e $VM_WORK/.b-kill.partial ]] || fail "a bundle of the killed job is left"
st=$(call status "{\"domain\":\"$VM_NAME\"}")
jq -e '.state == "running" and .gate.installed == false and .journal == null and
  .agent.reachable and .agent.status.frozen == false' <<<"$st" >/dev/null ||
  fail "after recovery: $st"
ok "SIGKILL of the daemon mid-save: the restart lifts the gate, resumes and thaws, no bundle"

grep -q '^netckptd_journal_recovered_total 1$' "$VM_WORK/metrics.prom" || fail "metrics"

# 4. SIGTERM mid-save: the daemon rolls the running job back, then exits 0.
call checkpoint "{\"domain\":\"$VM_NAME\",\"wait\":false,\"dir\":\"$VM_WORK/b-term\"}" >/dev/null
for _ in $(seq 500); do
  grep -qs '"step": *"saving"' "$STATE"/journal/*.json && break
  sleep 0.02
done
grep -qs '"step": *"saving"' "$STATE"/journal/*.json || fail "the job never reached the save"
sleep 0.3
kill -TERM "$DPID"
wait "$DPID" || fail "netckptd exit status after SIGTERM mid-save"
[[ $(gate_count) == 0 ]] || fail "a gate is left after SIGTERM"
[[ -z $(ls -A "$STATE/journal" 2>/dev/null) ]] || fail "a journal entry is left after SIGTERM"
[[ ! -e $VM_WORK/b-term && ! -e $VM_WORK/.b-term.partial ]] || fail "a bundle is left after SIGTERM"
grep -q "rollback" "$VM_WORK/daemon2.log" || fail "no rollback logged"
start_daemon "$VM_WORK/daemon3.log"
st=$(call status "{\"domain\":\"$VM_NAME\"}")
jq -e '.state == "running" and .gate.installed == false and .agent.status.frozen == false' \
  <<<"$st" >/dev/null || fail "after SIGTERM: $st"
grep -q "journal recovery" "$VM_WORK/daemon3.log" && fail "SIGTERM left something to recover"
ok "SIGTERM mid-save: the job rolls back (VM running, agent thawed, no gate, no bundle), exit 0"

# 5. Streams.
kill -TERM "$DPID"
wait "$DPID" || fail "netckptd exit status"
sleep 1
kill -INT "$streams" 2>/dev/null || fail "the streams ended early"
wait "$streams" || fail "streams: $(cat "$VM_WORK/stream.json" "$VM_WORK/stream.log")"
jq -e '.summary.ok == 2 and .summary.failed == 0' "$VM_WORK/stream.json" >/dev/null ||
  fail "stream report: $(cat "$VM_WORK/stream.json")"
jq -c '.connections[] | {id, ok, tx_match: .tx.match, rx_match: .rx.match,
  max_stall_ms: ([.tx.max_stall_ms, .rx.max_stall_ms] | max | floor)}' "$VM_WORK/stream.json"
ok "the streams survived every daemon checkpoint and the SIGKILL byte-exact"
echo "daemon e2e: all passed"
