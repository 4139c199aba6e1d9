# Sourced by the gate-*.sh integration tests: namespaces, a routed topology, cleanup.
#
# The "guest" is a network namespace behind a veth pair; the gate goes on the host-side veth,
# which stands in for the VM's tap (netdev ingress/egress hooks work on any device; gate-tap.sh
# proves they attach to a real tap too). The peer sits in its own namespace, routed through
# the host namespace, so a drop at the gate makes the peer retransmit for real.
#
#   guest ns G  gv 10.77.1.2 --- hv 10.77.1.1  host ns H  10.77.2.1 hp --- pv 10.77.2.2  peer ns P
#   guest ns G2 gv 10.77.3.2 --- hv2 10.77.3.1 (only with topo_routed 2)
set -euo pipefail

: "${NETCKPT_BUILD_DIR:?run through ctest, or set NETCKPT_BUILD_DIR}"
GATECTL=$NETCKPT_BUILD_DIR/tests/tools/gatectl
TAPIO=$NETCKPT_BUILD_DIR/tests/tools/tapio
NS_H=ncgate-h-$$
NS_G=ncgate-g-$$
NS_G2=ncgate-g2-$$
NS_P=ncgate-p-$$
TMP=$(mktemp -d /tmp/ncgate-XXXXXX)
# Process groups we started (each through setsid, so its pid is its group id).
GROUPS_STARTED=()

gate_cleanup() {
    local rc=$?
    set +e
    for g in "${GROUPS_STARTED[@]}"; do
        kill -9 -- "-$g" 2>/dev/null
    done
    for g in "${GROUPS_STARTED[@]}"; do
        wait "$g" 2>/dev/null
    done
    # Deleting a namespace also removes its veths, taps and nft tables.
    for ns in "$NS_H" "$NS_G" "$NS_G2" "$NS_P"; do
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$TMP"
    if ((rc)); then
        echo "FAIL (rc=$rc)" >&2
    fi
    exit $rc
}
trap gate_cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }

hx() { ip netns exec "$NS_H" "$@"; }
gx() { ip netns exec "$NS_G" "$@"; }
g2x() { ip netns exec "$NS_G2" "$@"; }
px() { ip netns exec "$NS_P" "$@"; }
gatectl() { hx "$GATECTL" "$@"; }

# Start a command in namespace $1 as its own process group; its pid lands in $STARTED.
start_in() {
    local ns=$1
    shift
    setsid ip netns exec "$ns" "$@" &
    STARTED=$!
    GROUPS_STARTED+=("$STARTED")
}

# Stop one group we started, by its id.
stop_group() {
    kill -9 -- "-$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

ns_base() { # ns: loopback up, no IPv6 chatter in the counters
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

topo_routed() { # [n_guests (1 or 2)]
    local n=${1:-1}
    ns_base "$NS_H"
    ns_base "$NS_G"
    ns_base "$NS_P"
    hx sysctl -qw net.ipv4.ip_forward=1
    ip -n "$NS_H" link add hv type veth peer name gv netns "$NS_G"
    ip -n "$NS_H" link add hp type veth peer name pv netns "$NS_P"
    ip -n "$NS_H" addr add 10.77.1.1/24 dev hv
    ip -n "$NS_H" addr add 10.77.2.1/24 dev hp
    ip -n "$NS_G" addr add 10.77.1.2/24 dev gv
    ip -n "$NS_P" addr add 10.77.2.2/24 dev pv
    ip -n "$NS_H" link set hv up
    ip -n "$NS_H" link set hp up
    ip -n "$NS_G" link set gv up
    ip -n "$NS_P" link set pv up
    ip -n "$NS_G" route add default via 10.77.1.1
    ip -n "$NS_P" route add default via 10.77.2.1
    if ((n == 2)); then
        ns_base "$NS_G2"
        ip -n "$NS_H" link add hv2 type veth peer name gv netns "$NS_G2"
        ip -n "$NS_H" addr add 10.77.3.1/24 dev hv2
        ip -n "$NS_G2" addr add 10.77.3.2/24 dev gv
        ip -n "$NS_H" link set hv2 up
        ip -n "$NS_G2" link set gv up
        ip -n "$NS_G2" route add default via 10.77.3.1
    fi
}

# ping from namespace $1 to $2: succeeds when any of a few echoes comes back. A gated path
# must fail this; an open one can lose a round on a loaded machine, so "up" retries.
ping_ok() { ip netns exec "$1" busybox ping -c 3 -i 0.2 -W 1 "$2" >/dev/null 2>&1; }
ping_up() {
    local i
    for i in 1 2 3 4 5; do
        ping_ok "$1" "$2" && return 0
    done
    return 1
}

# Wait (bounded) until a command succeeds; this is a deadline for a hang, not a timing assert.
wait_for() { # tries(0.1 s each) cmd...
    local n=$1
    shift
    for ((i = 0; i < n; i++)); do
        if "$@"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Value of key=N in the output of gatectl counters.
counter() { # domain key
    gatectl counters "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
