#!/usr/bin/env bash
# A freeze that fails half-way undoes everything: an injected dump failure after two sockets
# are already in repair mode (test hook NETCKPT_AGENT_FAULT_FREEZE_AT), an owner that cannot
# be quiesced (another agent already traces it), and an agent killed half-way through a
# freeze (its incomplete state file lets the next agent take the sockets out of repair).
# Streams stay byte-exact.
source "$(dirname "$0")/agent-lib.sh"

topo
traffic() { # PORT [CLIENT-ARGS...]
    local port=$1
    shift
    start_in "$NS_P" python3 "$PEER" server --listen 10.78.2.2 --port "$port" --conns 4 \
        --bytes $((2 << 20)) --rate $((1 << 20)) --out "$TMP/s$port.json" --ready "$TMP/s$port.ready"
    SRV=$STARTED
    wait_file "$TMP/s$port.ready"
    start_in "$NS_G" python3 "$PEER" client --connect 10.78.2.2 --port "$port" --conns 4 \
        --bytes $((2 << 20)) --rate $((1 << 20)) --out "$TMP/c$port.json" --ready "$TMP/c$port.ready" "$@"
    CLI=$STARTED
    wait_file "$TMP/c$port.ready"
}
finish() { # PORT
    wait_pid "$CLI" || fail "client failed"
    wait_pid "$SRV" || fail "server failed"
    compare_streams "$TMP/c$1.json" "$TMP/s$1.json" || fail "streams differ"
}

# --- the third socket's dump fails
NETCKPT_AGENT_FAULT_FREEZE_AT=3 start_agent
traffic 5001
gate_on
out=$("$QGA_CALL" "$SOCK" guest-net-freeze || true)
[ "$(jget "$out" .error.class)" = GenericError ] || fail "injected failure: $out"
jget "$out" .error.desc | grep -q 'freezing connection 10.78.1.2:' || fail "error does not name the connection: $out"
st=$(qga guest-net-status)
[ "$(jget "$st" .frozen)" = false ] && [ "$(jget "$st" .last_thaw.reason)" = rollback ] ||
    fail "status after a failed freeze: $st"
! is_traced "$CLI" || fail "owner left quiesced after a failed freeze"
[ ! -e "$STATE" ] || fail "state file left after a failed freeze"
gate_off
finish 5001
stop_agent
ok "dump failure on the 3rd socket: rolled back (2 sockets thawed, owner released); streams byte-exact"

# --- an owner that cannot be quiesced: another agent (own state file) holds it
start_agent
first=$AGENT_PID
traffic 5002
gate_on
qga guest-net-freeze >"$TMP/img.json"
SOCK1=$SOCK STATE1=$STATE
SOCK=$TMP/agent2.sock STATE=$TMP/agent2.state
start_agent
out=$("$QGA_CALL" "$SOCK" guest-net-freeze || true)
[ "$(jget "$out" .error.class)" = GenericError ] || fail "second agent's freeze: $out"
jget "$out" .error.desc | grep -q "quiescing pid $CLI" || fail "error does not name the owner: $out"
[ ! -e "$STATE" ] || fail "second agent left a state file"
stop_agent
SOCK=$SOCK1 STATE=$STATE1
is_traced "$CLI" || fail "the failed second freeze released the first agent's owner"
v=$(qga guest-net-verify "{\"image_id\":\"$(jq -r .image_id "$TMP/img.json")\"}")
[ "$(jget "$v" .match)" = true ] || fail "first freeze disturbed: $v"
[ "$(jget "$(qga guest-net-thaw)" .thawed)" = 4 ] || fail "thaw"
gate_off
finish 5002
ok "owner already traced elsewhere: freeze refused, nothing touched; the other freeze intact"
AGENT_PID=$first
stop_agent

# --- the agent dies half-way through a freeze (3rd socket in repair, 4th untouched)
NETCKPT_AGENT_FAULT_FREEZE_AT=3 NETCKPT_AGENT_FAULT_CRASH=1 start_agent
traffic 5003 --tolerate-repair
gate_on
rc=0
"$QGA_CALL" "$SOCK" guest-net-freeze >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || fail "freeze with a crash: qga-call rc=$rc"
wait "$AGENT_PID" 2>/dev/null || true
[ "$(jq -r .complete "$STATE")" = false ] && [ "$(jq '.sockets | length' "$STATE")" = 4 ] ||
    fail "incomplete state file: $(head -c 300 "$STATE")"
! is_traced "$CLI" || fail "owner still stopped after the agent died"
start_agent
st=$(qga guest-net-status)
[ "$(jget "$st" .recovery.complete)" = false ] && [ "$(jget "$st" .recovery.thawed)" = 3 ] &&
    [ "$(jget "$st" .recovery.not_frozen)" = 1 ] || fail "recovery: $(jget "$st" -c .recovery)"
[ ! -e "$STATE" ] || fail "state file left after recovery"
gate_off
finish 5003
stop_agent
ok "agent killed half-way through a freeze: the next agent took 3 sockets out of repair, left 1 alone; streams byte-exact"
