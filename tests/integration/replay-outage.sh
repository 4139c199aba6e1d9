#!/usr/bin/env bash
# The stop-mode outage holder (host/hold.h), routed: while the VM is off (its tap deleted),
# a detached holder process (its own session, exec'd from the caller's binary) holds the
# peer's frames for the guest on the prerouting path; the restore's handover gets exactly
# those frames (the stranger's are never held) and they replay into the new tap as forwarding
# would have delivered them. The holder leaves no nft table and no file behind when it hands
# over, when it is SIGKILLed (the owner-flagged tables go with it), when its lifetime ends,
# when the tap runs again without a netckpt transaction, and a handover for another
# checkpoint's image gets nothing. netckpt's and netckptd's binaries can be the holder, and
# netckpt unblock stops it.
source "$(dirname "$0")/replay-lib.sh"
topo
STATE=$TMP/state
mkdir -p "$STATE"
T="$(hx "$GATECTL" table-name dom-o)_hold"
N=30
rc() { hx "$REPLAYCTL" "$@"; }
tables_gone() { ! hx nft list table inet "$T" >/dev/null 2>&1 && ! hx nft list table bridge "$T" >/dev/null 2>&1; }
files_gone() { [[ -z $(ls -A "$STATE/hold" 2>/dev/null | grep -v '\.log$') ]]; }
holder_log() { cat "$STATE"/hold/*.log 2>/dev/null; }
start_holder() { # args for outage-start after STATE DOMAIN
    local out
    out=$(rc outage-start "$STATE" dom-o "$@") || fail "outage-start: $(holder_log)"
    HPID=$(sed -n 's/^holding pid=//p' <<<"$out")
    [[ $HPID =~ ^[0-9]+$ ]] || fail "no holder pid: $out"
    HOLDERS+=("$HPID")
}
status() { rc outage-status "$STATE" dom-o; }
frames() { sed -n 's/.* frames=\([0-9]*\).*/\1/p' <<<"$(status)"; }

hx ip link del "$TAP" # the VM is saved and off: libvirt removed its tap
start_holder --tap "$TAP=$GUEST_MAC" --ip "$GUEST_IP" --image-id img-1
[[ $(ps -o sid= -p "$HPID" | tr -d ' ') != $(ps -o sid= -p $$ | tr -d ' ') ]] || fail "holder not detached"
inet=$(hx nft list table inet "$T")
grep -q "flags owner" <<<"$inet" || fail "hold table not owner-flagged: $inet"
grep -q "ip daddr $GUEST_IP .*log group" <<<"$inet" || fail "no hold rule: $inet"
ok "holder $HPID detached, owner-flagged hold tables in place"

px $CHECK send "$GUEST_IP" $N --size 200 --other "$OTHER_IP" --every 10
got_all() { (($(frames) >= N)); }
wait_for 100 got_all || fail "the holder has $(frames) frames, want $N"
status
make_tap # the restore brings a new tap (QEMU paused: no reader yet)
out=$(rc outage-handover "$STATE" dom-o --tap "$TAP=$GUEST_MAC" --image-id img-1 --pcap "$TMP/outage.pcap") ||
    fail "handover: $(holder_log)"
echo "$out"
[[ $(kv <(echo "$out") handover found) == 1 && $(kv <(echo "$out") handover frames) == "$N" ]] ||
    fail "handover did not return the $N frames"
[[ $(kv <(echo "$out") handover rejected) == 0 && $(kv <(echo "$out") handover mismatch) == 0 ]] || fail "handover counts"
wait_for 50 pid_gone "$HPID" || fail "the holder did not exit after the handover"
tables_gone || fail "hold tables left after the handover"
files_gone || fail "holder files left: $(ls "$STATE/hold")"
ok "handover: $N frames, the holder exited, no table, no file"

start_tapcap "$TMP/got.pcap" $((N + 1)) 60
rc send "$TAP" --mac "$GUEST_MAC" --ip "$GUEST_IP" "$TMP/outage.pcap" >"$TMP/send.out" ||
    fail "send: $(cat "$TMP/send.out")"
expect_replayed $N "$(tap_mac)" 63
ok "the outage frames replay into the new tap in order, as forwarding would have delivered them"

# Killed: the kernel removes the owner-flagged tables with the holder's netlink socket.
hx ip link del "$TAP"
start_holder --tap "$TAP=$GUEST_MAC" --ip "$GUEST_IP"
kill -9 "$HPID"
wait_for 50 pid_gone "$HPID" || fail "the killed holder is still there"
wait_for 50 tables_gone || fail "a SIGKILLed holder left its tables"
[[ $(rc outage-handover "$STATE" dom-o --tap "$TAP=$GUEST_MAC" --image-id test-image) == *"found=0 "*"frames=0 "* ]] ||
    fail "handover from a dead holder"
files_gone || fail "a dead holder's files were not cleaned"
ok "SIGKILLed holder: no table left; its files cleaned at the handover"

# Lifetime over.
start_holder --tap "$TAP=$GUEST_MAC" --ip "$GUEST_IP" --lifetime 1
wait_for 100 pid_gone "$HPID" || fail "the holder outlived its lifetime"
tables_gone || fail "tables left after the lifetime"
files_gone || fail "files left after the lifetime"
[[ $(rc outage-stop "$STATE" dom-o) == stopped=0 ]] || fail "stop found something"
ok "lifetime over: the holder exits and removes everything"

# The VM runs again without netckpt (no journal entry): its tap comes up, the holder quits.
make_tap
start_holder --tap "$TAP=$GUEST_MAC" --ip "$GUEST_IP"
start_tapcap "$TMP/back.pcap" 1 10
wait_for 100 pid_gone "$HPID" || fail "the holder kept holding a running VM"
tables_gone || fail "tables left when the VM came back"
kill "$TAPCAP_PID" 2>/dev/null
wait "$TAPCAP_PID" 2>/dev/null || true
ok "a tap running again outside a netckpt transaction ends the hold"
hx ip link del "$TAP"

# Another checkpoint's restore: nothing handed over, the holder stops all the same.
start_holder --tap "$TAP=$GUEST_MAC" --ip "$GUEST_IP" --image-id img-A
px $CHECK send "$GUEST_IP" 5 --size 100
five() { (($(frames) >= 5)); }
wait_for 100 five || fail "no frames held"
out=$(rc outage-handover "$STATE" dom-o --tap "$TAP=$GUEST_MAC" --image-id img-B)
[[ $(kv <(echo "$out") handover mismatch) == 1 && $(kv <(echo "$out") handover frames) == 0 ]] ||
    fail "frames of another checkpoint were used: $out"
wait_for 50 pid_gone "$HPID" || fail "the holder did not exit"
tables_gone && files_gone || fail "leftovers after a mismatched handover"
ok "a handover for another checkpoint's image uses none of the frames and ends the hold"

# Its state directory removed (a clean-up): the holder notices and goes.
start_holder --tap "$TAP=$GUEST_MAC" --ip "$GUEST_IP"
rm -rf "$STATE/hold"
wait_for 50 pid_gone "$HPID" || fail "the holder outlived its state directory"
tables_gone || fail "tables left after the state directory went"
ok "a removed state directory ends the hold"

# The netckpt binary is the holder too (HOLD_RUN_ARG in its main); stop by the control socket.
start_holder --tap "$TAP=$GUEST_MAC" --ip "$GUEST_IP" --exe "$NETCKPT_BUILD_DIR/host/netckpt"
tr '\0' ' ' <"/proc/$HPID/cmdline" | grep -q "__netckpt-hold $STATE" || fail "not the netckpt binary's holder"
[[ $(readlink "/proc/$HPID/exe") == "$(readlink -f "$NETCKPT_BUILD_DIR/host/netckpt")" ]] || fail "holder exe"
[[ $(rc outage-stop "$STATE" dom-o) == stopped=1 ]] || fail "stop"
wait_for 50 pid_gone "$HPID" || fail "the stopped holder is still there"
tables_gone && files_gone || fail "leftovers after stop"
ok "netckpt's own binary holds; stop removes everything"

# netckpt unblock stops the domain's holder (with the test driver: no VM needed).
start_holder --tap "$TAP=$GUEST_MAC" --ip "$GUEST_IP" --exe "$NETCKPT_BUILD_DIR/host/netckptd"
[[ $(readlink "/proc/$HPID/exe") == "$(readlink -f "$NETCKPT_BUILD_DIR/host/netckptd")" ]] || fail "netckptd holder exe"
NETCKPT_STATE_DIR=$STATE hx "$NETCKPT_BUILD_DIR/host/netckpt" -c test:///default --json unblock dom-o \
    >"$TMP/unblock.json" 2>"$TMP/unblock.err" || true
grep -q '"outage-hold-stopped"' "$TMP/unblock.json" || fail "unblock: $(cat "$TMP/unblock.json" "$TMP/unblock.err")"
wait_for 50 pid_gone "$HPID" || fail "unblock left the holder running"
tables_gone && files_gone || fail "leftovers after unblock"
ok "netckptd's binary holds too; netckpt unblock stops the holder and removes its tables"
echo PASS
