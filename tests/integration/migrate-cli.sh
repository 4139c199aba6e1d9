#!/usr/bin/env bash
# netckpt migrate without a real VM (libvirt's test:/// driver): usage errors exit 2, a domain
# that cannot be migrated (no tap, no agent) fails at discover (exit 1) with nothing journalled,
# an unknown domain is named, the --json report has its stable keys (docs/migrate.md), and
# --no-kick is accepted and reported. The real migration is tests/e2e/migrate.sh.
set -euo pipefail
NC=${NETCKPT_BUILD_DIR:?}/host/netckpt
tmp=$(mktemp -d /tmp/nc-mig-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export NETCKPT_STATE_DIR=$tmp/state NETCKPT_NO_DAEMON=1
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() { echo "ok - $*"; }
rc() {
  set +e
  "$@" >"$tmp/out" 2>"$tmp/err"
  echo $? >"$tmp/rc"
  set -e
  cat "$tmp/rc"
}

[[ $(rc "$NC" -c test:///default migrate) == 2 ]] || fail "no domain: $(cat "$tmp/err")"
[[ $(rc "$NC" -c test:///default migrate test) == 2 ]] || fail "no desturi: $(cat "$tmp/err")"
for p in 0 96 x; do
  [[ $(rc "$NC" -c test:///default migrate test test:///default --precopy "$p") == 2 ]] ||
    fail "--precopy $p accepted"
done
grep -q 'precopy' "$tmp/err" || fail "the --precopy error does not say so: $(cat "$tmp/err")"
ok "usage errors exit 2"

# The test driver's domain has no tap and no agent channel: refused at discover.
[[ $(rc "$NC" -c test:///default --json migrate test test:///default) == 1 ]] ||
  fail "discover failure: rc $(cat "$tmp/rc"): $(cat "$tmp/out" "$tmp/err")"
jq -e '.command == "migrate" and .outcome == "failed" and .failed_step == "discover" and
  .switched_over == false and .quiesced == false and .dest_gate_left == false and
  .source_gate_left == false and (.times | has("gate_ms") and has("downtime_ms")) and
  (.memory_at_quiesce | has("remaining"))' "$tmp/out" >/dev/null ||
  fail "json: $(cat "$tmp/out")"
[[ -z $(find "$NETCKPT_STATE_DIR" -path '*journal*' -name '*.json' 2>/dev/null) ]] ||
  fail "a journal entry was left"
ok "an unmigratable domain fails at discover, nothing journalled"

[[ $(rc "$NC" -c test:///default migrate no-such-domain test:///default) == 1 ]] ||
  fail "unknown domain: rc $(cat "$tmp/rc")"
grep -q 'no-such-domain' "$tmp/err" || fail "the error does not name the domain: $(cat "$tmp/err")"
ok "an unknown domain exits 1 naming it"

# --no-kick: accepted, carried into the report (kick false); the default kicks.
[[ $(rc "$NC" -c test:///default --json migrate test test:///default --no-kick) == 1 ]] ||
  fail "--no-kick: rc $(cat "$tmp/rc"): $(cat "$tmp/out" "$tmp/err")"
jq -e '.failed_step == "discover" and .kick == false' "$tmp/out" >/dev/null ||
  fail "--no-kick json: $(cat "$tmp/out")"
[[ $(rc "$NC" -c test:///default --json migrate test test:///default) == 1 ]] &&
  jq -e '.kick == true' "$tmp/out" >/dev/null || fail "default kick json: $(cat "$tmp/out")"
grep -q -- '--no-kick' <<<"$("$NC" help migrate 2>&1)" || fail "help migrate does not list --no-kick"
ok "--no-kick is accepted and reported (kick false)"
