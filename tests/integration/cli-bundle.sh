#!/usr/bin/env bash
# inspect and verify on bundles made with the bundle module (mkbundle), intact and tampered in
# every way we know; a restore of a tampered bundle is refused before anything happens, and a
# restore whose VM state libvirt rejects rolls back (no gate, no journal) in a private netns.
set -euo pipefail
B=${NETCKPT_BUILD_DIR:?}
NC=$B/host/netckpt
MK=$B/tests/tools/mkbundle
tmp=$(mktemp -d /tmp/nc-cli-b-XXXXXX)
ns=ncclib$$
cleanup() {
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
export NETCKPT_STATE_DIR=$tmp/state
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
rc() { set +e; "$@" >"$tmp/out" 2>"$tmp/err"; echo $? >"$tmp/rc"; set -e; cat "$tmp/rc"; }

id=$($MK "$tmp/good" --conns 3 --image-out "$tmp/other-image.json")
[[ $(rc $NC verify "$tmp/good") == 0 ]] || fail "verify good: $(cat "$tmp/err")"
[[ $(rc $NC --json verify "$tmp/good") == 0 ]] || fail "verify --json rc"
jq -e --arg id "$id" '.valid == true and .image_id == $id and .error == null and .exit_code == 0' \
  "$tmp/out" >/dev/null || fail "verify json: $(cat "$tmp/out")"
ok "verify accepts an intact bundle"

[[ $(rc $NC --json inspect "$tmp/good") == 0 ]] || fail "inspect rc"
jq -e --arg id "$id" '.valid and .manifest.image_id == $id and (.connections | length) == 3' \
  "$tmp/out" >/dev/null || fail "inspect json: $(cat "$tmp/out")"
jq -e '.manifest | has("domain") and has("uuid") and has("created") and has("mode") and has("files") and has("steps") and has("gate_counters")' \
  "$tmp/out" >/dev/null || fail "manifest keys"
jq -e '.connections[0] | has("id") and has("state") and has("local") and has("remote") and has("unacked") and has("unsent") and has("recv") and has("owners")' \
  "$tmp/out" >/dev/null || fail "connection keys"
jq -e '.manifest.gate_counters.to_guest_pkts == 4' "$tmp/out" >/dev/null || fail "counters"
[[ $(rc $NC inspect "$tmp/good") == 0 ]] && grep -q 'ESTABLISHED *10.0.2.15:7000' "$tmp/out" ||
  fail "inspect table: $(cat "$tmp/out")"
ok "inspect shows the manifest and the connection table"

# Each tampering on a fresh copy; verify, inspect and restore must all refuse with exit 3.
refuse() { # name, why-substring
  local d=$tmp/$1
  [[ $(rc $NC verify "$d") == 3 ]] || fail "$1: verify accepted it"
  grep -qi -- "$2" "$tmp/err" || fail "$1: error does not say '$2': $(cat "$tmp/err")"
  [[ $(rc $NC --json inspect "$d") == 3 ]] || fail "$1: inspect accepted it"
  jq -e '.error.code == 3' "$tmp/out" >/dev/null || fail "$1: inspect json"
  [[ $(rc $NC -c test:///default restore "$d") == 3 ]] || fail "$1: restore did not refuse"
  [[ ! -d $NETCKPT_STATE_DIR/journal ]] || [[ -z $(ls -A "$NETCKPT_STATE_DIR/journal") ]] ||
    fail "$1: a refused restore wrote a journal entry"
  ok "$1 refused"
}
copy() { cp -a "$tmp/good" "$tmp/$1"; }

copy image-byte
sed -i 's/"aGVsbG8="/"aGVsbG9="/' "$tmp/image-byte/socket-image.json"
refuse image-byte "sha256"

copy state-byte
printf 'X' | dd of="$tmp/state-byte/vm.state" bs=1 seek=3 conv=notrunc status=none
refuse state-byte "sha256"

# The manifest names the image; pairing it with another image is refused.
copy manifest-image
sed -i -E 's/<image id="[0-9a-f]{32}"/<image id="00000000000000000000000000000000"/' \
  "$tmp/manifest-image/manifest.xml"
refuse manifest-image "image_id"

copy manifest-sha
sed -i -E "s/(name=\"vm.state\" size=\"[0-9]+\" sha256=\")[0-9a-f]{64}/\\1$(printf 'a%.0s' {1..64})/" \
  "$tmp/manifest-sha/manifest.xml"
refuse manifest-sha "sha256"

copy missing-file
rm "$tmp/missing-file/vm.state"
refuse missing-file "vm.state"

copy extra-file
echo x >"$tmp/extra-file/evil"
refuse extra-file "evil"

copy no-manifest
rm "$tmp/no-manifest/manifest.xml"
refuse no-manifest "manifest"

copy bad-xml
printf '<checkpoint' >"$tmp/bad-xml/manifest.xml"
refuse bad-xml "manifest"

# A partial bundle (what an interrupted checkpoint leaves) is never taken for complete.
cp -a "$tmp/good" "$tmp/.half.partial"
refuse half ""
ok "partial bundle refused"

# --image with a different valid image is accepted as input (the guest judges it later).
[[ $(rc $NC -c test:///default restore "$tmp/good" --image "$tmp/missing.json") == 3 ]] ||
  fail "restore --image of a missing file"
ok "restore --image of a missing file refused"

# A restore libvirt cannot do rolls back: nothing gated, no journal, in a private netns so the
# (pre-restore) gate on the bundle's tap name cannot touch the host.
ip netns add "$ns"
set +e
ip netns exec "$ns" env NETCKPT_STATE_DIR="$NETCKPT_STATE_DIR" \
  "$NC" -c test:///default --json restore "$tmp/good" >"$tmp/out" 2>"$tmp/err"
code=$?
set -e
[[ $code == 4 ]] || fail "restore of a fake VM state: rc $code: $(cat "$tmp/err")"
jq -e '.outcome == "rolled-back" and .failed_step == "restore" and .gate_left == false' \
  "$tmp/out" >/dev/null || fail "restore json: $(cat "$tmp/out")"
tables=$(ip netns exec "$ns" nft list tables)
[[ -z $tables ]] || fail "gate left behind: $tables"
[[ -z $(ls -A "$NETCKPT_STATE_DIR/journal" 2>/dev/null) ]] || fail "journal left behind"
$NC verify "$tmp/good" >/dev/null || fail "the bundle was changed by the failed restore"
ok "a restore libvirt refuses rolls back (exit 4): no gate, no journal, bundle intact"
echo "cli-bundle: all passed"
