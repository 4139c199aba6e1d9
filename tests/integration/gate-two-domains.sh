#!/usr/bin/env bash
# Two domains, each with its own tap stand-in, are gated and lifted independently; a domain
# re-installed with another tap set is rebuilt atomically to exactly that set.
source "$(dirname "$0")/gate-lib.sh"
topo_routed 2

check_one() { # address up|down name
    if [[ $2 == up ]]; then
        ping_up "$NS_P" "$1" || fail "$3 unreachable, want up"
    else
        ! ping_ok "$NS_P" "$1" || fail "$3 reachable through its gate"
    fi
}
reach() { # state of guest 1, state of guest 2 (up|down)
    check_one 10.77.1.2 "$1" guest1
    check_one 10.77.3.2 "$2" guest2
}

reach up up
ta=$(gatectl table-name dom-a)
tb=$(gatectl table-name dom-b)
[[ $ta != "$tb" ]] || fail "two domains share table $ta"

gatectl install dom-a hv
reach down up
ok "dom-a gated, dom-b untouched"
gatectl install dom-b hv2
reach down down
ok "both gated"
[[ $(hx nft list tables netdev | grep -c 'nc_dom_') == 2 ]] || fail "expected two tables"

[[ $(gatectl lift dom-a) == lifted ]] || fail "lift dom-a"
reach up down
ok "dom-a lifted, dom-b still gated"
gatectl counters dom-b >/dev/null || fail "dom-b counters"
if gatectl counters dom-a 2>/dev/null; then
    fail "counters of a lifted gate"
fi

# Re-install dom-a on both taps: one transaction rebuilds it to exactly {hv, hv2}.
gatectl install dom-a hv hv2
reach down down
grep -q 'egress device "hv2"' <<<"$(hx nft list table netdev "$ta")" || fail "dom-a lacks hv2"
[[ $(gatectl lift dom-a) == lifted ]] || fail "lift dom-a again"
reach up down
gatectl install dom-a hv
grep -q 'device "hv2"' <<<"$(hx nft list table netdev "$ta")" && fail "dom-a still on hv2 after shrink"
reach down down
ok "re-install with another tap set rebuilds the table"

gatectl lift dom-a >/dev/null
gatectl lift dom-b >/dev/null
reach up up
[[ -z $(hx nft list tables netdev) ]] || fail "tables left behind"
ok "both lifted, nothing left"
echo PASS
