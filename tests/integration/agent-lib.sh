# Sourced by the agent-*.sh integration tests: a routed topology, a real netckpt-agent
# (--method unix-listen) in the "guest" namespace, the gate, helpers, cleanup.
#
#   guest ns G  g0 10.78.1.2 fd78:1::2 --- r0 .1  router ns R  r1 10.78.2.1 --- p0 10.78.2.2 peer ns P
#                                                              fd78:2::1        fd78:2::2
# The agent freezes every external TCP socket of its namespace, so it only ever runs inside G.
# The gate (an nft forward drop in R) stands in for the host's tap gate: the peer retransmits
# for real while it holds.
set -euo pipefail

: "${NETCKPT_BUILD_DIR:?run through ctest, or set NETCKPT_BUILD_DIR}"
: "${NETCKPT_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
AGENT=${NETCKPT_AGENT:-$NETCKPT_BUILD_DIR/guest/netckpt-agent}
QGA_CALL=$NETCKPT_BUILD_DIR/tests/tools/qga-call
PEER=$NETCKPT_SOURCE_DIR/tests/integration/agent-peer.py
VALIDATE=$NETCKPT_SOURCE_DIR/tests/tools/validate-json-schema.py
IMAGE_SCHEMA=$NETCKPT_SOURCE_DIR/schemas/socket-image.schema.json
NS_G=ncagent-g-$$
NS_R=ncagent-r-$$
NS_P=ncagent-p-$$
TMP=$(mktemp -d /tmp/ncagent-XXXXXX)
SOCK=$TMP/agent.sock
STATE=$TMP/agent.state
PIDS_STARTED=()
AGENT_PID=

agent_cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS_STARTED[@]}"; do
        kill -9 "$p" 2>/dev/null
    done
    for p in "${PIDS_STARTED[@]}"; do
        wait "$p" 2>/dev/null
    done
    for ns in "$NS_G" "$NS_R" "$NS_P"; do
        ip netns del "$ns" 2>/dev/null
    done
    if ((rc)) && [ -f "$TMP/agent.log" ]; then
        echo "--- agent log (tail)" >&2
        tail -n 40 "$TMP/agent.log" >&2
    fi
    rm -rf "$TMP"
    ((rc)) && echo "FAIL (rc=$rc)" >&2
    exit $rc
}
trap agent_cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }

gx() { ip netns exec "$NS_G" "$@"; }
rx() { ip netns exec "$NS_R" "$@"; }
px() { ip netns exec "$NS_P" "$@"; }

# start NS CMD...: run in a namespace, in the background; pid in $STARTED.
start_in() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@" &
    STARTED=$!
    PIDS_STARTED+=("$STARTED")
}

topo() {
    ip netns add "$NS_G"
    ip netns add "$NS_R"
    ip netns add "$NS_P"
    for ns in "$NS_G" "$NS_R" "$NS_P"; do
        ip -n "$ns" link set lo up
    done
    ip -n "$NS_G" link add g0 type veth peer name r0 netns "$NS_R"
    ip -n "$NS_R" link add r1 type veth peer name p0 netns "$NS_P"
    rx sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    for ns in "$NS_G" "$NS_P"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    rx sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    ip -n "$NS_G" addr add 10.78.1.2/24 dev g0
    ip -n "$NS_G" addr add fd78:1::2/64 dev g0 nodad
    ip -n "$NS_R" addr add 10.78.1.1/24 dev r0
    ip -n "$NS_R" addr add fd78:1::1/64 dev r0 nodad
    ip -n "$NS_R" addr add 10.78.2.1/24 dev r1
    ip -n "$NS_R" addr add fd78:2::1/64 dev r1 nodad
    ip -n "$NS_P" addr add 10.78.2.2/24 dev p0
    ip -n "$NS_P" addr add fd78:2::2/64 dev p0 nodad
    ip -n "$NS_G" link set g0 up
    ip -n "$NS_R" link set r0 up
    ip -n "$NS_R" link set r1 up
    ip -n "$NS_P" link set p0 up
    ip -n "$NS_G" route add default via 10.78.1.1
    ip -n "$NS_G" -6 route add default via fd78:1::1
    ip -n "$NS_P" route add default via 10.78.2.1
    ip -n "$NS_P" -6 route add default via fd78:2::1
}

# The gate: silent drops both ways in the router, like the host's tap gate.
gate_on() {
    rx nft -f - <<'EOF'
table inet ncagent_gate {
    chain hold {
        type filter hook forward priority -10; policy accept;
        counter drop
    }
}
EOF
}
gate_off() { rx nft delete table inet ncagent_gate; }

# start_agent [ARGS...]: a fresh agent on $SOCK with $STATE; waits until it answers.
start_agent() {
    rm -f "$SOCK"
    start_in "$NS_G" "$AGENT" --method unix-listen --path "$SOCK" --state-file "$STATE" \
        --no-clock-step --verbose "$@" 2>>"$TMP/agent.log"
    AGENT_PID=$STARTED
    local i
    for i in $(seq 1 200); do
        [ -S "$SOCK" ] && "$QGA_CALL" --timeout 2000 "$SOCK" guest-ping >/dev/null 2>&1 && return 0
        kill -0 "$AGENT_PID" 2>/dev/null || fail "agent exited at start"
        sleep 0.05
    done
    fail "agent did not come up"
}

# qga CMD [JSON]: run a command, print the return value; fails the test on any error.
qga() {
    local out
    out=$("$QGA_CALL" "$SOCK" "$@") || fail "qga $1 failed: $out"
    printf '%s\n' "$out"
}
# qga_err CMD [JSON]: expect an error reply; prints its class.
qga_err() {
    local out rc=0
    out=$("$QGA_CALL" "$SOCK" "$@") || rc=$?
    [ "$rc" = 1 ] || fail "qga $1: expected an error reply, got rc=$rc: $out"
    printf '%s\n' "$out" | jq -r .error.class
}

# jget JSON FILTER
jget() { printf '%s\n' "$1" | jq -r "${@:2}"; }

validate_image() { # FILE...
    python3 "$VALIDATE" "$IMAGE_SCHEMA" "$@" >/dev/null || {
        python3 "$VALIDATE" "$IMAGE_SCHEMA" "$@" >&2 || true
        fail "image does not validate against socket-image.schema.json"
    }
}

wait_file() { # FILE [TRIES of 0.05 s]
    local i
    for i in $(seq 1 "${2:-600}"); do
        [ -e "$1" ] && return 0
        sleep 0.05
    done
    fail "timed out waiting for $1"
}

wait_pid() { # PID [TRIES of 0.1 s]: wait for a background child to exit, return its status
    local i
    for i in $(seq 1 "${2:-1200}"); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$1" 2>/dev/null && fail "pid $1 did not finish"
    wait "$1"
}

# is_traced PID: true if any thread of PID is in a ptrace stop
is_traced() {
    local t
    for t in /proc/"$1"/task/*; do
        grep -q '^State:.*t (tracing stop)' "$t/status" 2>/dev/null && return 0
    done
    return 1
}

# compare_streams CLIENT.json SERVER.json: every connection byte-exact both ways
compare_streams() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1])); s = json.load(open(sys.argv[2]))
assert set(c) == set(s), ("connection sets differ", sorted(set(c) ^ set(s))[:5])
bad = 0
for k in c:
    a, b = c[k], s[k]
    if a["sent"] != b["recv"] or a["sent_sha"] != b["recv_sha"]:
        print("guest->peer differs on", k, a["sent"], b["recv"]); bad += 1
    if b["sent"] != a["recv"] or b["sent_sha"] != a["recv_sha"]:
        print("peer->guest differs on", k, b["sent"], a["recv"]); bad += 1
sys.exit(1 if bad else 0)
EOF
}

# stop_agent: SIGTERM and require exit 0 (under ASan this is also the leak check).
stop_agent() {
    kill -TERM "$AGENT_PID"
    wait_pid "$AGENT_PID" || fail "agent exited with status $? (see the log)"
}
