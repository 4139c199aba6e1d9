#!/usr/bin/env bash
# The gate on a real tap device: the ingress and egress hooks attach to a tap and drop frames
# both ways. tapio is the guest end: it attaches to the tap (carrier up), writes frames into the
# host (ingress) and counts what the host sends it (egress: here ARP for 10.77.9.2).
source "$(dirname "$0")/gate-lib.sh"
ns_base "$NS_H"
hx ip tuntap add dev nctap0 mode tap
hx ip addr add 10.77.9.1/24 dev nctap0
hx ip link set nctap0 up

gatectl install dom-t nctap0
listing=$(hx nft list table netdev "$(gatectl table-name dom-t)")
echo "$listing"
grep -q 'hook ingress device "nctap0"' <<<"$listing" || fail "no ingress hook on the tap"
grep -q 'hook egress device "nctap0"' <<<"$listing" || fail "no egress hook on the tap"
grep -qx 2 <<<"$(grep -c 'policy drop' <<<"$listing")" || fail "chains are not policy drop"

# The tap's carrier is up once tapio has attached.
attached() { ! grep -q NO-CARRIER <<<"$(ip -n "$NS_H" link show nctap0)"; }
# One exchange: tapio writes 5 frames, then listens 2 s while the host pings the far side.
exchange() { # output file name
    start_in "$NS_H" "$TAPIO" nctap0 5 2 >"$TMP/$1"
    local tp=$STARTED
    wait_for 50 attached || fail "tapio did not attach"
    hx busybox ping -c 3 -W 1 10.77.9.2 >/dev/null 2>&1 || true
    wait "$tp" || fail "tapio failed"
}

# The layout takes held-traffic capture (issue 5) as one more egress rule before the policy
# drop, on an installed gate, without touching anything else.
t=$(gatectl table-name dom-t)
hx nft add rule netdev "$t" to_guest_nctap0 log group 7 || fail "egress chain refused a log rule"
grep -q 'log group 7' <<<"$(hx nft list chain netdev "$t" to_guest_nctap0)" || fail "log rule missing"

exchange gated.out
cat "$TMP/gated.out"
grep -qx 'received=0' "$TMP/gated.out" || fail "frames reached the tap's guest end through the gate"
gatectl counters dom-t
from=$(counter dom-t from_guest_pkts)
to=$(counter dom-t to_guest_pkts)
((from >= 5)) || fail "ingress counter $from < 5 frames written"
((to >= 1)) || fail "egress counter $to: no host frame was counted"
ok "ingress and egress hooks on a tap drop and count"

[[ $(gatectl lift dom-t) == lifted ]] || fail "lift"
exchange open.out
cat "$TMP/open.out"
n=$(sed -n 's/^received=//p' "$TMP/open.out")
((n >= 1)) || fail "nothing reached the tap after the lift"
ok "frames reach the tap after the lift"
# A tap gated before it exists (the restore case): the hooks attach when it appears.
gatectl install --allow-missing dom-late nctap1
hx ip tuntap add dev nctap1 mode tap
hx ip link set nctap1 up
start_in "$NS_H" "$TAPIO" nctap1 4 0 >"$TMP/late.out"
wait "$STARTED" || fail "tapio on nctap1 failed"
late=$(counter dom-late from_guest_pkts)
((late >= 4)) || fail "a tap created after the gate was not gated ($late frames counted)"
[[ $(gatectl lift dom-late) == lifted ]] || fail "lift dom-late"
ok "a tap created after the gate is gated from its first frame"
echo PASS
