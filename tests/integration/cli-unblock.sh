#!/usr/bin/env bash
# netckpt unblock and start-up recovery against real gates on a real tap, in a private netns:
#  * a live holder's gate is refused (7) unless --force;
#  * a SIGKILLed holder's gate is lifted by the next netckpt start (any command);
#  * a gate with no journal (a refused restore leaves one) is lifted by unblock.
set -euo pipefail
B=${NETCKPT_BUILD_DIR:?}
NC=$B/host/netckpt
GATECTL=$B/tests/tools/gatectl
tmp=$(mktemp -d /tmp/nc-cli-u-XXXXXX)
ns=nccliu$$
tap=ncu$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
export NETCKPT_STATE_DIR=$tmp/state
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
in_ns() { ip netns exec "$ns" "$@"; }
installed() { in_ns "$GATECTL" installed "$1" >/dev/null 2>&1; }
wait_installed() {
  for _ in $(seq 100); do installed "$1" && return 0; sleep 0.05; done
  return 1
}
# Entries only: a holder killed mid-write may leave its temp file, which the journal ignores.
journal_files() { find "$NETCKPT_STATE_DIR/journal" -maxdepth 1 -name "*.json" ! -name ".*" 2>/dev/null | wc -l; }
nc_rc() { set +e; in_ns "$NC" -c test:///default "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; set -e; }

ip netns add "$ns"
in_ns ip link set lo up
in_ns ip tuntap add dev "$tap" mode tap
in_ns ip link set "$tap" up

# A live holder.
ip netns exec "$ns" "$GATECTL" hold "$NETCKPT_STATE_DIR" dom-live "$tap" &
pids+=($!)
holder=$!
wait_installed dom-live || fail "holder did not gate"
[[ $(nc_rc unblock dom-live) == 7 ]] || fail "unblock of a live holder: $(cat "$tmp/err")"
installed dom-live || fail "unblock lifted a live holder's gate"
[[ $(nc_rc --json list) == 0 ]] || fail "list"
installed dom-live || fail "start-up recovery lifted a live holder's gate"
ok "a live holder is left alone (unblock exits 7, recovery skips it)"

[[ $(nc_rc --json unblock --force dom-live) == 0 ]] || fail "unblock --force: $(cat "$tmp/err")"
jq -e '.journal == true and .gate_was_installed == true and (.actions | index("gate-lifted")) != null' \
  "$tmp/out" >/dev/null || fail "unblock json: $(cat "$tmp/out")"
! installed dom-live || fail "gate still installed after unblock --force"
[[ $(journal_files) == 0 ]] || fail "journal left after unblock --force"
kill -KILL "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
ok "unblock --force lifts a live holder's gate and forgets it"

# A killed holder: the next start of netckpt (here: status) lifts its gate.
ip netns exec "$ns" "$GATECTL" hold "$NETCKPT_STATE_DIR" dom-dead "$tap" &
pids+=($!)
holder=$!
wait_installed dom-dead || fail "holder did not gate"
kill -KILL "$holder"
wait "$holder" 2>/dev/null || true
installed dom-dead || fail "SIGKILL lifted the gate?"
[[ $(journal_files) == 1 ]] || fail "no journal entry after SIGKILL"
[[ $(nc_rc --json status dom-dead) == 1 ]] || fail "status (no such domain: 1): $(cat "$tmp/err")"
! installed dom-dead || fail "start-up recovery did not lift a dead holder's gate"
[[ $(journal_files) == 0 ]] || fail "recovery left the journal entry"
jq -e '.gate.installed == false and .journal == null' "$tmp/out" >/dev/null ||
  fail "status after recovery: $(cat "$tmp/out")"
ok "a SIGKILLed holder's gate is lifted by the next netckpt start"

# A killed holder, then unblock right away: recovery or unblock, the gate goes.
ip netns exec "$ns" "$GATECTL" hold "$NETCKPT_STATE_DIR" dom-k2 "$tap" &
pids+=($!)
holder=$!
wait_installed dom-k2 || fail "holder did not gate"
kill -KILL "$holder"
wait "$holder" 2>/dev/null || true
# (start-up recovery releases it first: unblock of the now unknown domain still succeeds)
[[ $(nc_rc unblock dom-k2) == 0 ]] || fail "unblock after SIGKILL: $(cat "$tmp/err")"
! installed dom-k2 || fail "gate left after unblock"
[[ $(journal_files) == 0 ]] || fail "journal left after unblock"
ok "unblock after a SIGKILL leaves nothing"

# A gate without a journal entry (what a refused restore leaves).
in_ns "$GATECTL" install dom-refused "$tap" >/dev/null
[[ $(nc_rc --json status dom-refused) == 1 ]] || fail "status (no such domain: 1)"
jq -e '.gate.installed == true and .gate.counters != null' "$tmp/out" >/dev/null ||
  fail "status shows the gate: $(cat "$tmp/out")"
[[ $(nc_rc status dom-refused) == 1 ]] && grep -q '^Gate: *gated' "$tmp/out" ||
  fail "status text shows an unknown domain's gate: $(cat "$tmp/out")"
[[ $(nc_rc --json unblock dom-refused) == 0 ]] || fail "unblock: $(cat "$tmp/err")"
jq -e '.journal == false and (.actions | index("gate-lifted")) != null' "$tmp/out" >/dev/null ||
  fail "unblock json: $(cat "$tmp/out")"
! installed dom-refused || fail "gate left"
ok "unblock lifts the gate of an unknown domain that has no journal entry"

# A stop-mode outage holder of a domain that is off (here: unknown to libvirt): status shows
# it, unblock stops it and succeeds although the domain is gone.
hout=$(in_ns "$B/tests/tools/replayctl" outage-start "$NETCKPT_STATE_DIR" dom-off \
  --tap "nco$$=02:00:00:00:00:07" --ip 10.9.9.2 --image-id img-off) ||
  fail "outage-start: $(cat "$NETCKPT_STATE_DIR"/hold/*.log 2>/dev/null)"
hpid=$(sed -n 's/^holding pid=//p' <<<"$hout")
[[ $hpid =~ ^[0-9]+$ ]] || fail "no holder pid: $hout"
pids+=("$hpid")
[[ $(nc_rc --json status dom-off) == 1 ]] || fail "status of the held domain: exit"
jq -e --argjson p "$hpid" '.outage_hold.pid == $p and .outage_hold.frames == 0 and
  .outage_hold.image_id == "img-off"' "$tmp/out" >/dev/null || fail "status json: $(cat "$tmp/out")"
[[ $(nc_rc status dom-off) == 1 ]] && grep -q "^Outage hold: pid $hpid, 0 frames" "$tmp/out" ||
  fail "status text of the held domain: $(cat "$tmp/out")"
[[ $(nc_rc --json status test) == 0 ]] && jq -e '.outage_hold == null' "$tmp/out" >/dev/null ||
  fail "status of a running domain: outage_hold: $(cat "$tmp/out")"
ok "status shows a domain's outage holder (text and --json), null without one"
[[ $(nc_rc --json unblock dom-off) == 0 ]] || fail "unblock of the held domain: $(cat "$tmp/err")"
jq -e '(.actions | index("outage-hold-stopped")) != null' "$tmp/out" >/dev/null ||
  fail "unblock json: $(cat "$tmp/out")"
for _ in $(seq 100); do [[ -e /proc/$hpid ]] || break; sleep 0.05; done
[[ ! -e /proc/$hpid ]] || grep -q '^[^)]*) [ZX]' "/proc/$hpid/stat" || fail "holder $hpid still runs"
ok "unblock stops the outage holder of a domain that is gone"

# Nothing left for a name libvirt does not know: an error, like status (exit 1, one line).
for d in dom-refused dom-off nope; do
  [[ $(nc_rc unblock $d) == 1 ]] || fail "unblock of unknown $d: exit 0: $(cat "$tmp/out")"
  grep -qx "netckpt: domain $d not found (nothing to unblock)" "$tmp/err" && [[ $(wc -l <"$tmp/err") == 1 ]] ||
    fail "unblock of unknown $d: $(cat "$tmp/err")"
  [[ ! -s $tmp/out ]] || fail "unblock of unknown $d printed: $(cat "$tmp/out")"
done
[[ $(nc_rc --json unblock nope) == 1 ]] || fail "unblock --json nope: exit"
jq -e '.error.code == 1 and (.error.message | contains("not found"))' "$tmp/out" >/dev/null ||
  fail "unblock --json nope: $(cat "$tmp/out")"
ok "unblock of an unknown domain with nothing to release exits 1"
# A known domain with nothing to release is fine (test:///default's "test").
[[ $(nc_rc unblock test) == 0 ]] && grep -q 'nothing to unblock' "$tmp/out" ||
  fail "unblock of a known domain: $(cat "$tmp/err")"
ok "unblock of a known domain with nothing to release exits 0"
echo "cli-unblock: all passed"
