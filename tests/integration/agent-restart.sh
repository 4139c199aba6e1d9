#!/usr/bin/env bash
# The agent dies while frozen. SIGKILL: ptrace releases the owners at once (tracer exit), but
# their sockets stay in TCP_REPAIR; the next agent reads the state file, finds the sockets by
# inode through their owners and thaws them. SIGTERM: the agent thaws before it exits.
source "$(dirname "$0")/agent-lib.sh"

topo

traffic() { # PORT: start server+client (tolerant of repair-mode errors), wait until flowing
    local port=$1
    start_in "$NS_P" python3 "$PEER" server --listen 10.78.2.2 --port "$port" --conns 3 \
        --bytes $((2 << 20)) --rate $((1 << 20)) --out "$TMP/s$port.json" --ready "$TMP/s$port.ready"
    SRV=$STARTED
    wait_file "$TMP/s$port.ready"
    start_in "$NS_G" python3 "$PEER" client --connect 10.78.2.2 --port "$port" --conns 3 \
        --bytes $((2 << 20)) --rate $((1 << 20)) --out "$TMP/c$port.json" --ready "$TMP/c$port.ready" \
        --tolerate-repair
    CLI=$STARTED
    wait_file "$TMP/c$port.ready"
}

# --- SIGKILL of the agent alone: its sentinel thaws at once, before any restart
start_agent
traffic 5000
gate_on
qga guest-net-freeze >/dev/null
sent=$(jget "$(qga guest-net-status)" .sentinel_pid)
[ "$sent" -gt 0 ] 2>/dev/null || fail "no sentinel while frozen"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
for i in $(seq 1 100); do kill -0 "$sent" 2>/dev/null || break; sleep 0.05; done
grep -q 'sentinel: the agent died while frozen; thawed 3 of 3 sockets' "$TMP/agent.log" ||
    fail "sentinel did not thaw"
[ ! -e "$STATE" ] || fail "sentinel left the state file"
! is_traced "$CLI" || fail "owner still stopped after its tracer died"
gate_off
wait_pid "$CLI" || fail "client failed"
wait_pid "$SRV" || fail "server failed"
compare_streams "$TMP/c5000.json" "$TMP/s5000.json" || fail "streams differ after the sentinel's thaw"
ok "SIGKILL: the sentinel thawed every socket at once; streams byte-exact"

# --- SIGKILL of the sentinel and the agent: a new agent thaws from the state file
start_agent
traffic 5001
gate_on
qga guest-net-freeze >"$TMP/img.json"
validate_image "$TMP/img.json"
[ "$(jq -r .frozen "$STATE")" = true ] && [ "$(jq -r .complete "$STATE")" = true ] ||
    fail "state file does not record the freeze: $(head -c 300 "$STATE")"
[ "$(jq '.sockets | length' "$STATE")" = 3 ] || fail "state file sockets"
is_traced "$CLI" || fail "client not quiesced"
kill -9 "$(jget "$(qga guest-net-status)" .sentinel_pid)"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
# Tracer exit detaches: the owner runs again without anyone resuming it.
for i in $(seq 1 50); do is_traced "$CLI" || break; sleep 0.1; done
! is_traced "$CLI" || fail "owner still stopped after its tracer died"
grep -q '^TracerPid:[[:space:]]*0$' /proc/"$CLI"/status || fail "owner still has a tracer"
ok "SIGKILL: owners released by the kernel"
start_agent
st=$(qga guest-net-status)
[ "$(jget "$st" .frozen)" = false ] || fail "restarted agent: $st"
[ "$(jget "$st" .recovery.thawed)" = 3 ] && [ "$(jget "$st" .recovery.failed)" = 0 ] ||
    fail "recovery: $(jget "$st" .recovery)"
[ "$(jget "$st" .recovery.image_id)" = "$(jq -r .image_id "$TMP/img.json")" ] || fail "recovery id"
[ ! -e "$STATE" ] || fail "state file left after recovery"
gate_off
wait_pid "$CLI" || fail "client failed"
wait_pid "$SRV" || fail "server failed"
compare_streams "$TMP/c5001.json" "$TMP/s5001.json" || fail "streams differ after recovery"
ok "restart after SIGKILL (sentinel killed too): state file recovery thawed 3 sockets; streams byte-exact"

# --- a stuck agent (SIGSTOP): the sentinel thaws the sockets after the watchdog deadline plus
# its grace; the owners stay stopped until the agent runs again and its watchdog releases them.
kill -TERM "$AGENT_PID"; wait_pid "$AGENT_PID" || fail "agent exit"
start_agent --freeze-timeout 1
traffic 5004
gate_on
qga guest-net-freeze >/dev/null
kill -STOP "$AGENT_PID"
for i in $(seq 1 300); do
    grep -q 'sentinel: the agent did not thaw by the watchdog deadline' "$TMP/agent.log" && break
    sleep 0.1
done
grep -q 'sentinel: the agent did not thaw by the watchdog deadline while frozen; thawed 3 of 3' \
    "$TMP/agent.log" || fail "sentinel did not act on a stuck agent"
is_traced "$CLI" || fail "the sentinel cannot release owners; they should still be stopped"
kill -CONT "$AGENT_PID"
for i in $(seq 1 100); do is_traced "$CLI" || break; sleep 0.1; done
! is_traced "$CLI" || fail "owner not released after the agent resumed"
st=$(qga guest-net-status)
[ "$(jget "$st" .last_thaw.reason)" = watchdog ] || fail "after SIGCONT: $st"
gate_off
wait_pid "$CLI" || fail "client failed"
wait_pid "$SRV" || fail "server failed"
compare_streams "$TMP/c5004.json" "$TMP/s5004.json" || fail "streams differ (stuck agent)"
ok "stuck agent: the sentinel thawed the sockets, the agent released the owners on resuming"

# --- SIGTERM while frozen: thaw, then exit 0
traffic 5002
gate_on
qga guest-net-freeze >/dev/null
is_traced "$CLI" || fail "client not quiesced"
kill -TERM "$AGENT_PID"
wait_pid "$AGENT_PID" || fail "agent exit status after SIGTERM"
! is_traced "$CLI" || fail "owner still stopped after SIGTERM"
[ ! -e "$STATE" ] || fail "state file left after SIGTERM"
grep -qE 'thawed 3 connections \(0 failed[,)].*\(signal\)' "$TMP/agent.log" || fail "no signal thaw logged"
gate_off
wait_pid "$CLI" || fail "client failed"
wait_pid "$SRV" || fail "server failed"
compare_streams "$TMP/c5002.json" "$TMP/s5002.json" || fail "streams differ after SIGTERM"
ok "SIGTERM while frozen: thawed first, exit 0; streams byte-exact"

# --- a stale or corrupt state file is harmless
echo '{"version":1,"frozen":true,"boot_id":"00000000-0000-0000-0000-000000000000","sockets":[]}' >"$STATE"
start_agent
[ ! -e "$STATE" ] || fail "stale state file (other boot) kept"
kill -TERM "$AGENT_PID"; wait_pid "$AGENT_PID" || true
echo 'garbage{' >"$STATE"
start_agent
[ "$(jget "$(qga guest-net-status)" .frozen)" = false ] || fail "corrupt state file"
ok "stale and corrupt state files ignored"

# --- two agents in one guest share the state file (org.netckpt.agent.0 and
# org.qemu.guest_agent.0): a second agent starting, or freezing, leaves the first's freeze alone.
kill -TERM "$AGENT_PID"; wait_pid "$AGENT_PID" || true
rm -f "$STATE"
traffic 5003
start_agent
first=$AGENT_PID
gate_on
qga guest-net-freeze >/dev/null
SOCK1=$SOCK
SOCK=$TMP/agent2.sock
start_agent
second=$AGENT_PID
st=$(qga guest-net-status)
[ "$(jget "$st" .recovery)" = null ] || fail "second agent recovered the first's live freeze: $st"
is_traced "$CLI" || fail "second agent's start released the first's freeze"
[ "$(qga_err guest-net-freeze)" = Busy ] || fail "second agent froze over the first"
[ "$(jq -r .agent_pid "$STATE")" = "$first" ] || fail "state file overwritten"
SOCK=$SOCK1
[ "$(jget "$(qga guest-net-thaw)" .thawed)" = 3 ] || fail "first agent's thaw"
gate_off
wait_pid "$CLI" || fail "client failed"
wait_pid "$SRV" || fail "server failed"
compare_streams "$TMP/c5003.json" "$TMP/s5003.json" || fail "streams differ (two agents)"
ok "two agents sharing a state file: the second neither recovers nor overrides a live freeze"
