#!/usr/bin/env bash
# The gate stops traffic both ways (ping and a TCP stream in each direction), counts what it
# drops in both directions, lifts, and the same TCP connections carry on with no byte lost or
# duplicated. The gate sits on the host-side veth, the tap's stand-in (see gate-lib.sh).
source "$(dirname "$0")/gate-lib.sh"
topo_routed 1

ping_up "$NS_G" 10.77.2.2 || fail "no baseline guest->peer connectivity"
ping_up "$NS_P" 10.77.1.2 || fail "no baseline peer->guest connectivity"
ok "baseline pings"

# Two numbered line streams: guest -> peer (port 5001) and peer -> guest (port 5002).
start_in "$NS_P" socat -u TCP-LISTEN:5001,reuseaddr "OPEN:$TMP/at_peer,creat,trunc"
start_in "$NS_G" socat -u TCP-LISTEN:5002,reuseaddr "OPEN:$TMP/at_guest,creat,trunc"
WRITER='i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done'
start_in "$NS_G" bash -c "$WRITER | socat -u - TCP:10.77.2.2:5001,retry=100,interval=0.1"
W_G=$STARTED
start_in "$NS_P" bash -c "$WRITER | socat -u - TCP:10.77.1.2:5002,retry=100,interval=0.1"
W_P=$STARTED

# Bytes the receiving socket took in, from the kernel (ss), so a slow socat cannot fake it.
rx() { # ns port
    local v
    v=$(ip netns exec "$1" ss -tinH state established "( sport = :$2 )" |
        grep -o 'bytes_received:[0-9]*' | head -n1 | cut -d: -f2)
    echo "${v:-0}"
}

flowing() { (($(rx "$NS_P" 5001) >= 300 && $(rx "$NS_G" 5002) >= 300)); }
wait_for 300 flowing || fail "streams did not start"
ok "streams flowing both ways"


gatectl install dom-a hv || fail "install"
gatectl installed dom-a >/dev/null || fail "installed says no"
# Whatever crossed hv before the gate is received within microseconds; wait a little anyway.
sleep 0.5
p1=$(rx "$NS_P" 5001) g1=$(rx "$NS_G" 5002)
sleep 2
p2=$(rx "$NS_P" 5001) g2=$(rx "$NS_G" 5002)
((p1 > 0 && g1 > 0)) || fail "no receiving sockets found ($p1, $g1)"
[[ $p1 == "$p2" ]] || fail "guest->peer stream moved through the gate ($p1 -> $p2 bytes)"
[[ $g1 == "$g2" ]] || fail "peer->guest stream moved through the gate ($g1 -> $g2 bytes)"
ok "TCP streams stopped both ways ($p2 and $g2 bytes received before the gate)"
! ping_ok "$NS_G" 10.77.2.2 || fail "guest->peer ping passed the gate"
! ping_ok "$NS_P" 10.77.1.2 || fail "peer->guest ping passed the gate"
ok "pings stopped both ways"

gatectl counters dom-a
for k in to_guest_pkts to_guest_bytes from_guest_pkts from_guest_bytes; do
    v=$(counter dom-a "$k")
    [[ $v =~ ^[0-9]+$ && $v -gt 0 ]] || fail "counter $k is '$v'"
done
ok "counters count in both directions"

# Installing again with the same tap changes nothing, counters included.
before=$(counter dom-a from_guest_pkts)
gatectl install dom-a hv || fail "second install"
after=$(counter dom-a from_guest_pkts)
((after >= before)) || fail "re-install reset the counters ($before -> $after)"
ok "install is idempotent"

[[ $(gatectl lift dom-a) == lifted ]] || fail "lift"
[[ $(gatectl lift dom-a) == absent ]] || fail "second lift"
! gatectl installed dom-a >/dev/null || fail "table still there after lift"
ok "gate lifted (and lift is idempotent)"

ping_up "$NS_G" 10.77.2.2 || fail "guest->peer ping after lift"
ping_up "$NS_P" 10.77.1.2 || fail "peer->guest ping after lift"
ok "pings resume"
moved() { (($(rx "$NS_P" 5001) > p2 && $(rx "$NS_G" 5002) > g2)); }
# Retransmission backoff decides when; 60 s bounds a hang only.
wait_for 600 moved || fail "streams did not resume after lift"
sleep 0.5
kill -0 "$W_G" && kill -0 "$W_P" || fail "a stream writer died"
# Same connections, in order, nothing lost or doubled: lines are 1..N (last one may be partial).
for f in at_peer at_guest; do
    head -n -1 "$TMP/$f" | awk 'NR != $1 { print "line " NR " is " $1; bad = 1 } END { exit bad }' ||
        fail "$f stream is not 1..N"
    echo "$f: $(head -n -1 "$TMP/$f" | wc -l) lines in order"
done
ok "TCP streams resumed on the same connections, in order"
echo PASS
