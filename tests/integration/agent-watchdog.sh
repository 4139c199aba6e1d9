#!/usr/bin/env bash
# The watchdog: a freeze that nobody thaws is thawed by the agent itself, both with the
# per-freeze "timeout" and with --freeze-timeout; the streams still end byte-exact.
source "$(dirname "$0")/agent-lib.sh"

topo

# run_case NAME PORT FREEZE-ARGS: traffic, freeze, wait for the watchdog, check the streams.
run_case() {
    local name=$1 port=$2 args=$3
    start_in "$NS_P" python3 "$PEER" server --listen 10.78.2.2 --port "$port" --conns 2 \
        --bytes $((2 << 20)) --rate $((1 << 20)) --out "$TMP/s$port.json" --ready "$TMP/s$port.ready"
    local srv=$STARTED
    wait_file "$TMP/s$port.ready"
    start_in "$NS_G" python3 "$PEER" client --connect 10.78.2.2 --port "$port" --conns 2 \
        --bytes $((2 << 20)) --rate $((1 << 20)) --out "$TMP/c$port.json" --ready "$TMP/c$port.ready"
    local cli=$STARTED
    wait_file "$TMP/c$port.ready"
    gate_on
    qga guest-net-freeze "$args" >"$TMP/img$port.json"
    validate_image "$TMP/img$port.json"
    # (No is_traced check here: with a short timeout the watchdog may already have fired.)
    local st i
    for i in $(seq 1 600); do
        st=$(qga guest-net-status)
        [ "$(jget "$st" .frozen)" = false ] && break
        sleep 0.1
    done
    [ "$(jget "$st" .frozen)" = false ] || fail "$name: watchdog never fired: $st"
    [ "$(jget "$st" .last_thaw.reason)" = watchdog ] || fail "$name: last thaw: $st"
    [ "$(jget "$st" .last_thaw.thawed)" = 2 ] || fail "$name: last thaw: $st"
    ! is_traced "$cli" || fail "$name: client still quiesced after the watchdog"
    [ ! -e "$STATE" ] || fail "$name: state file left behind"
    # A thaw after the watchdog is a harmless no-op.
    [ "$(jget "$(qga guest-net-thaw)" .was_frozen)" = false ] || fail "$name: late thaw"
    gate_off
    wait_pid "$cli" || fail "$name: client failed"
    wait_pid "$srv" || fail "$name: server failed"
    compare_streams "$TMP/c$port.json" "$TMP/s$port.json" || fail "$name: streams differ"
    ok "$name: watchdog thawed by itself; streams byte-exact"
}

start_agent
st=$(qga guest-net-status)
[ "$(jget "$st" .freeze_timeout_ms)" = 30000 ] || fail "default --freeze-timeout: $st"
run_case "per-freeze timeout" 5001 '{"timeout":2}'
kill -TERM "$AGENT_PID"
wait_pid "$AGENT_PID" || fail "agent exit"

start_agent --freeze-timeout 2
run_case "--freeze-timeout 2" 5002 '{}'
