# Sourced by the replay-*.sh integration tests: namespaces, a real tap, a routed peer, cleanup.
#
#   host ns H: tap nctap0 10.77.9.1/24 (the guest's end is tapcap, a process reading the tap)
#              static neighbours 10.77.9.2 -> GUEST_MAC (the guest), 10.77.9.3 -> OTHER_MAC
#              (a stranger behind the same tap), so no ARP runs and frames are plain unicast;
#              hp 10.77.2.1 --- pv 10.77.2.2 in peer ns P (routed through H: real forwarding)
set -euo pipefail

: "${NETCKPT_BUILD_DIR:?run through ctest, or set NETCKPT_BUILD_DIR}"
: "${NETCKPT_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
REPLAYCTL=$NETCKPT_BUILD_DIR/tests/tools/replayctl
TAPCAP=$NETCKPT_BUILD_DIR/tests/tools/tapcap
GATECTL=$NETCKPT_BUILD_DIR/tests/tools/gatectl
CHECK="python3 $NETCKPT_SOURCE_DIR/tests/integration/replay-check.py"
NS_H=ncrpl-h-$$
NS_P=ncrpl-p-$$
TMP=$(mktemp -d /tmp/ncrpl-XXXXXX)
GUEST_IP=10.77.9.2
GUEST_MAC=02:00:00:00:09:02
OTHER_IP=10.77.9.3
OTHER_MAC=02:00:00:00:09:03
TAP=nctap0
PIDS_STARTED=()
HOLDERS=() # outage holders (detached: their own session), killed by PID

replay_cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS_STARTED[@]}"; do
        kill -9 -- "-$p" 2>/dev/null
    done
    for p in "${HOLDERS[@]}"; do
        # only if that PID is still a holder (its argv[1]), never a stranger that reused it
        { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q __netckpt-hold && kill -9 "$p"
    done
    for p in "${PIDS_STARTED[@]}"; do
        wait "$p" 2>/dev/null
    done
    # Deleting a namespace removes its taps, veths and nft tables.
    ip netns del "$NS_H" 2>/dev/null
    ip netns del "$NS_P" 2>/dev/null
    # KEEP_TMP=1: keep the pcaps and outputs in /tmp/replay-keep-PID for a look.
    [ -n "${KEEP_TMP:-}" ] && cp -r "$TMP" "/tmp/replay-keep-$$"
    rm -rf "$TMP"
    ((rc)) && echo "FAIL (rc=$rc)" >&2
    exit $rc
}
trap replay_cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }
hx() { ip netns exec "$NS_H" "$@"; }
px() { ip netns exec "$NS_P" "$@"; }

# Start a command in namespace $1 as its own process group; its pid lands in $STARTED.
start_in() {
    local ns=$1
    shift
    setsid ip netns exec "$ns" "$@" &
    STARTED=$!
    PIDS_STARTED+=("$STARTED")
}

wait_for() { # tries (0.1 s each) cmd...: a deadline against hangs, not a timing assert
    local n=$1
    shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

ns_base() {
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

make_tap() {
    hx ip tuntap add dev "$TAP" mode tap
    hx ip addr add 10.77.9.1/24 dev "$TAP"
    hx ip link set "$TAP" up
    hx ip neigh replace "$GUEST_IP" lladdr "$GUEST_MAC" dev "$TAP" nud permanent
    hx ip neigh replace "$OTHER_IP" lladdr "$OTHER_MAC" dev "$TAP" nud permanent
}

topo() {
    ns_base "$NS_H"
    ns_base "$NS_P"
    hx sysctl -qw net.ipv4.ip_forward=1
    ip -n "$NS_H" link add hp type veth peer name pv netns "$NS_P"
    ip -n "$NS_H" addr add 10.77.2.1/24 dev hp
    ip -n "$NS_P" addr add 10.77.2.2/24 dev pv
    ip -n "$NS_H" link set hp up
    ip -n "$NS_P" link set pv up
    ip -n "$NS_P" route add default via 10.77.2.1
    make_tap
}

tap_mac() { hx cat "/sys/class/net/$TAP/address" 2>/dev/null || ip -n "$NS_H" -o link show "$TAP" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }

# Start tapcap on the tap; waits until it is attached (carrier up).
start_tapcap() { # out.pcap max seconds
    start_in "$NS_H" "$TAPCAP" "$TAP" "$1" "$2" "$3" >"$TMP/tapcap.out"
    TAPCAP_PID=$STARTED
    wait_for 100 grep -q attached "$TMP/tapcap.out" || fail "tapcap did not attach"
}

# Start a replayctl hold (or hold-forward) in H; waits for "held".
start_hold() { # out-file args...
    local out=$1
    shift
    start_in "$NS_H" "$REPLAYCTL" "$@" >"$out"
    HOLD_PID=$STARTED
    wait_for 100 grep -q '^held ' "$out" || fail "replayctl did not hold: $(cat "$out")"
}

# key=N from the line of file starting with word.
kv() { # file word key
    sed -n "s/^$2 .*\b$3=\([0-9]*\).*/\1/p" "$1" | head -1
}

gate_to_guest() { hx "$GATECTL" counters "$1" | tr ' ' '\n' | sed -n 's/^to_guest_pkts=//p'; }

# The bridged topology: H has br0 with the peer's veth hpb as a port; the peer pv 10.77.9.5
# sits on the guest's L2 segment with a static neighbour for the guest (a warm ARP cache).
# Sets PEER_MAC. bridge_tap (re)creates the guest's tap as a bridge port.
bridge_topo() {
    ns_base "$NS_H"
    ns_base "$NS_P"
    hx ip link add br0 type bridge
    hx ip link set br0 up
    ip -n "$NS_H" link add hpb type veth peer name pv netns "$NS_P"
    hx ip link set hpb master br0
    hx ip link set hpb up
    ip -n "$NS_P" addr add 10.77.9.5/24 dev pv
    ip -n "$NS_P" link set pv up
    ip -n "$NS_P" neigh replace "$GUEST_IP" lladdr "$GUEST_MAC" dev pv nud permanent
    PEER_MAC=$(ip -n "$NS_P" -o link show pv | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
}

bridge_tap() {
    hx ip tuntap add dev "$TAP" mode tap
    hx ip link set "$TAP" master br0
    hx ip link set "$TAP" up
}

pid_gone() { [[ ! -e /proc/$1 ]] || grep -q '^[^)]*) [ZX]' "/proc/$1/stat" 2>/dev/null; }

# After a replay into the tap (tapcap started with start_tapcap "$TMP/got.pcap"): the peer's
# marker ends the capture, which must hold frames 0..n-1 in order then the marker, each with
# src_mac as source and the given TTL.
expect_replayed() { # n src_mac ttl
    px $CHECK marker "$GUEST_IP"
    wait "$TAPCAP_PID" || fail "tapcap failed"
    local seqs
    seqs=$($CHECK seqs "$TMP/got.pcap" | tr '\n' ' ')
    [[ $seqs == "$(seq 0 $(($1 - 1)) | tr '\n' ' ')marker " ]] || fail "order or strangers: $seqs"
    $CHECK routed "$TMP/got.pcap" "$2" "$GUEST_MAC" "$3" || fail "not delivered as expected (source $2, TTL $3)"
}
