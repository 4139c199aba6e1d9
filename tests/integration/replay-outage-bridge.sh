#!/usr/bin/env bash
# The stop-mode outage holder on a bridge: with the VM and its tap gone, the bridged peer's
# frames for the guest's MAC are held by the holder's bridge table; frames for the guest's MAC
# but another IP (a foreign frame) are refused by the holder's validation and counted; the
# handover returns exactly the guest's frames, which replay unchanged. No table, no file and
# no process is left.
source "$(dirname "$0")/replay-lib.sh"
bridge_topo
FOREIGN_IP=10.77.9.7 # resolves to the guest's MAC, but is not one of its addresses
ip -n "$NS_P" neigh replace "$FOREIGN_IP" lladdr "$GUEST_MAC" dev pv nud permanent
STATE=$TMP/state
mkdir -p "$STATE"
T="$(hx "$GATECTL" table-name dom-ob)_hold"
N=40
rc() { hx "$REPLAYCTL" "$@"; }

out=$(rc outage-start "$STATE" dom-ob --tap "$TAP=$GUEST_MAC" --ip "$GUEST_IP" --image-id img-b) ||
    fail "outage-start: $(cat "$STATE"/hold/*.log)"
HPID=$(sed -n 's/^holding pid=//p' <<<"$out")
HOLDERS+=("$HPID")
grep -q "ether daddr $GUEST_MAC .*log group" <<<"$(hx nft list table bridge "$T")" || fail "no bridge hold rule"
px $CHECK send "$GUEST_IP" $N --size 300
px $CHECK send "$FOREIGN_IP" 10 --size 300 --start 1000
seen() { (($(sed -n 's/.* seen=\([0-9]*\).*/\1/p' <<<"$(rc outage-status "$STATE" dom-ob)") >= N + 10)); }
wait_for 100 seen || fail "the holder did not see $((N + 10)) frames: $(rc outage-status "$STATE" dom-ob)"
st=$(rc outage-status "$STATE" dom-ob)
echo "$st"
[[ $(kv <(echo "$st") status frames) == "$N" && $(kv <(echo "$st") status rejected) == 10 ]] ||
    fail "the foreign frames were not refused by the holder's validation"
ok "bridge hold: $N frames kept, the 10 for a foreign IP refused"

bridge_tap
out=$(rc outage-handover "$STATE" dom-ob --tap "$TAP=$GUEST_MAC" --image-id img-b --pcap "$TMP/outage.pcap")
echo "$out"
[[ $(kv <(echo "$out") handover frames) == "$N" && $(kv <(echo "$out") handover rejected) == 10 ]] ||
    fail "handover counts"
wait_for 50 pid_gone "$HPID" || fail "the holder did not exit"
! hx nft list table bridge "$T" >/dev/null 2>&1 || fail "bridge hold table left"
! hx nft list table inet "$T" >/dev/null 2>&1 || fail "inet hold table left"
[[ -z $(ls -A "$STATE/hold" | grep -v '\.log$') ]] || fail "holder files left"
start_tapcap "$TMP/got.pcap" $((N + 1)) 60
rc send "$TAP" --mac "$GUEST_MAC" --ip "$GUEST_IP" "$TMP/outage.pcap" >"$TMP/send.out" || fail "send"
expect_replayed $N "$PEER_MAC" 64
ok "handed over and replayed unchanged, in order; nothing left behind"
echo PASS
