#!/usr/bin/env bash
# A gate holder that is SIGKILLed leaves its journal entry and its gate; the next recover
# lifts the gate, calls the thaw/resume callback and removes the entry. A live holder is never
# touched, and a holder that exits cleanly leaves nothing behind.
source "$(dirname "$0")/gate-lib.sh"
topo_routed 1
STATE=$TMP/state
JDIR=$STATE/journal

installed() { gatectl installed "$1" >/dev/null 2>&1; }
jcount() { find "$JDIR" -name '*.json' 2>/dev/null | wc -l; }

ping_up "$NS_P" 10.77.1.2 || fail "no baseline connectivity"

# Clean path: SIGTERM makes the holder lift and remove its entry.
start_in "$NS_H" "$GATECTL" hold "$STATE" dom-r hv
holder=$STARTED
wait_for 100 installed dom-r || fail "holder did not gate"
[[ $(jcount) == 1 ]] || fail "no journal entry while held"
kill -TERM "$holder"
wait "$holder" || fail "holder exited with an error"
! installed dom-r || fail "gate left after a clean exit"
[[ $(jcount) == 0 ]] || fail "journal left after a clean exit"
ok "clean exit lifts and forgets"

# Crash path.
start_in "$NS_H" "$GATECTL" hold "$STATE" dom-r hv
holder=$STARTED
wait_for 100 installed dom-r || fail "holder did not gate"
! ping_ok "$NS_P" 10.77.1.2 || fail "gate does not hold"

out=$(gatectl recover "$STATE")
echo "$out"
[[ $out == *"recovered=0 callbacks=0"* ]] || fail "recover touched a live holder"
installed dom-r || fail "recover lifted a live holder's gate"
grep -q 'domain=dom-r step=gated .*alive=1' <<<"$(gatectl journal-list "$STATE")" ||
    fail "journal does not show the live holder"
ok "live holder left alone"

kill -KILL "$holder"
wait "$holder" 2>/dev/null || true
installed dom-r || fail "gate vanished with the holder (it must outlive it)"
[[ $(jcount) == 1 ]] || fail "SIGKILL left no journal entry"
grep -q 'domain=dom-r .*alive=0' <<<"$(gatectl journal-list "$STATE")" || fail "holder not seen dead"
! ping_ok "$NS_P" 10.77.1.2 || fail "traffic passes with a stale gate"
ok "killed holder left its gate and journal"

out=$(gatectl recover "$STATE")
echo "$out"
[[ $out == *"recover-callback domain=dom-r step=gated"* ]] || fail "callback not called"
[[ $out == *"recovered=1 callbacks=1"* ]] || fail "recover did not recover one entry"
! installed dom-r || fail "recover left the gate"
[[ $(jcount) == 0 ]] || fail "recover left the journal entry"
ping_up "$NS_P" 10.77.1.2 || fail "traffic does not pass after recover"
ping_up "$NS_G" 10.77.2.2 || fail "guest traffic does not pass after recover"
ok "recover lifted the stale gate"

out=$(gatectl recover "$STATE")
[[ $out == *"recovered=0"* ]] || fail "second recover found something"
ok "recover is idempotent"
# Recovery run from another namespace lifts the gate where it lives: found under /run/netns ...
start_in "$NS_H" "$GATECTL" hold "$STATE" dom-r hv
holder=$STARTED
wait_for 100 installed dom-r || fail "holder did not gate"
kill -KILL "$holder"
wait "$holder" 2>/dev/null || true
out=$(px "$GATECTL" recover "$STATE" 2>&1)
echo "$out"
[[ $out == *"recovered=1 callbacks=1"* ]] || fail "recover from the peer namespace failed"
! installed dom-r || fail "recover from another namespace left the gate"
[[ -z $(px nft list ruleset) ]] || fail "recover touched the namespace it ran in"
ping_up "$NS_P" 10.77.1.2 || fail "traffic does not pass after the cross-namespace recover"
ok "recover from another namespace (named) lifted the gate"

# ... or as the namespace of a process only (QEMU keeps the tap's), with no name at all.
start_in "$NS_H" unshare --net sh -c "ip tuntap add dev nctapu0 mode tap &&
    '$GATECTL' hold '$STATE' dom-u nctapu0 >'$TMP/hold-u.out' & exec sleep 600"
keeper=$STARTED
held() { grep -q '^held pid=' "$TMP/hold-u.out" 2>/dev/null; }
wait_for 100 held || fail "unnamed-namespace holder did not gate"
hpid=$(sed -n 's/^held pid=//p' "$TMP/hold-u.out")
kill -KILL "$hpid"
# Its parent is sleep, which never reaps it: dead means gone or a zombie.
dead() { [[ ! -e /proc/$hpid ]] || [[ $(awk '{ print $3 }' "/proc/$hpid/stat") == Z ]]; }
wait_for 50 dead || fail "holder did not die"
grep -q . <<<"$(nsenter -t "$keeper" -n nft list tables netdev)" || fail "no gate in the unnamed namespace"
out=$(px "$GATECTL" recover "$STATE" 2>&1)
echo "$out"
[[ $out == *"recovered=1 callbacks=1"* ]] || fail "recover of the unnamed namespace failed"
[[ -z $(nsenter -t "$keeper" -n nft list ruleset) ]] || fail "gate left in the unnamed namespace"
ok "recover found an unnamed namespace through a process in it"
stop_group "$keeper"
echo PASS
