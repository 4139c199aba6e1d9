#!/usr/bin/env bash
# netckpt against libvirt's test:/// driver: list and status as JSON with stable keys, the
# usage and refusal exit codes, help, and a checkpoint that fails cleanly at discover.
set -euo pipefail
NC=${NETCKPT_BUILD_DIR:?}/host/netckpt
tmp=$(mktemp -d /tmp/nc-cli-lv-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export NETCKPT_STATE_DIR=$tmp/state
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
rc() { set +e; "$@" >"$tmp/out" 2>"$tmp/err"; echo $? >"$tmp/rc"; set -e; cat "$tmp/rc"; }

out=$($NC -c test:///default --json list)
echo "$out" | jq -e '.domains | length == 1' >/dev/null || fail "list: $out"
echo "$out" | jq -e '.domains[0] | .name == "test" and .state == "running" and .id == 1' \
  >/dev/null || fail "list: test domain: $out"
echo "$out" | jq -e '.domains[0] | has("uuid") and has("persistent") and has("gated") and has("journal")' \
  >/dev/null || fail "list keys: $out"
ok "list --json shows the test domain"

grep -q ' test .*running' <<<"$($NC -c test:///default list)" || fail "list text"
ok "list text"

out=$($NC -c test:///default --json status test)
echo "$out" | jq -e 'has("domain") and has("uuid") and has("state") and has("gate") and has("journal") and has("agent") and has("last_checkpoint")' >/dev/null || fail "status keys: $out"
echo "$out" | jq -e '.gate | has("installed") and has("counters")' >/dev/null || fail "gate keys"
echo "$out" | jq -e '.agent | has("reachable") and has("frozen") and has("status") and has("error")' \
  >/dev/null || fail "agent keys"
echo "$out" | jq -e '.agent.reachable == false and (.agent.error | contains("org.netckpt.agent.0"))' \
  >/dev/null || fail "agent error should show the channel to add: $out"
ok "status --json keys, with a clear agent error"

[[ $(rc $NC -c test:///default --json status no-such-domain) == 1 ]] || fail "status absent rc"
jq -e '.state == "absent" and .error.name == "failure"' "$tmp/out" >/dev/null ||
  fail "status of an absent domain: $(cat "$tmp/out")"
ok "status of an absent domain: exit 1 with an error object"

[[ $(rc $NC -c test:///default --json checkpoint test --dir "$tmp/b1") == 1 ]] || fail "checkpoint rc"
jq -e '.outcome == "failed" and .failed_step == "discover" and .rolled_back == false' "$tmp/out" \
  >/dev/null || fail "checkpoint json: $(cat "$tmp/out")"
[[ ! -e $tmp/b1 ]] || fail "a failed checkpoint left a bundle"
grep -q partial <<<"$(ls -A "$tmp")" && fail "a failed checkpoint left a partial bundle"
ok "checkpoint of a domain without tap/agent fails at discover, exit 1, nothing left"

[[ $(rc $NC bogus) == 2 ]] || fail "unknown command rc"
[[ $(rc $NC checkpoint) == 2 ]] || fail "missing args rc"
[[ $(rc $NC --json checkpoint vm) == 2 ]] || fail "missing --dir rc"
jq -e '.error.code == 2 and .error.name == "usage"' "$tmp/out" >/dev/null || fail "usage json"
[[ $(rc $NC restore /x --stale=maybe) == 2 ]] || fail "bad choice rc"
[[ $(rc $NC checkpoint vm --dir /x --freeze-timeout 0) == 2 ]] || fail "freeze-timeout 0 rc"
[[ $(rc $NC --frob list) == 2 ]] || fail "unknown global option rc"
ok "usage errors exit 2"

# --replay-limit: bytes or K/M/G (KiB units), 64K..256M; anything else is a usage error (2)
# before anything is touched, alone and as forwarded (the check is the CLI's).
for v in 63K 257M 1G 4X 4MB -1 0x10 1.5M 99999999999999; do
  for c in "checkpoint vm --dir $tmp/rl" "restore $tmp/rl"; do
    [[ $(rc $NC $c --replay-limit "$v") == 2 ]] || fail "$c --replay-limit $v rc $(cat "$tmp/rc")"
    grep -q -- "--replay-limit must be 64K..256M.*not '$v'" "$tmp/err" ||
      fail "$c --replay-limit $v: $(cat "$tmp/err")"
  done
done
[[ ! -e $tmp/rl ]] || fail "a refused --replay-limit left a bundle"
for v in 64K 65536 4M 4m 512KiB 256M; do
  [[ $(rc $NC -c test:///default restore "$tmp/missing" --replay-limit "$v" --no-kick) == 1 ]] ||
    fail "restore --replay-limit $v --no-kick rc $(cat "$tmp/rc"): $(cat "$tmp/err")"
  grep -q 'no such bundle' "$tmp/err" || fail "restore --replay-limit $v: $(cat "$tmp/err")"
done
[[ $(rc $NC checkpoint vm --dir /x --no-kick) == 2 ]] || fail "checkpoint --no-kick is no option"
ok "--replay-limit sizes and their usage errors (exit 2); --no-kick is restore's"

[[ $(rc $NC -c test:///default restore "$tmp/missing") == 1 ]] || fail "restore of a missing bundle rc"
grep -qx "netckpt: restore of $tmp/missing failed at step open: no such bundle: $tmp/missing" "$tmp/err" ||
  fail "restore of a missing bundle: $(cat "$tmp/err")"
ok "restore of a missing bundle fails (1), like verify and inspect, in one line"

[[ $(rc $NC help) == 0 ]] && grep -q checkpoint "$tmp/out" || fail "help"
[[ $(rc $NC help restore) == 0 ]] && grep -q -- '--stale=auto|keep' "$tmp/out" || fail "help restore"
grep -q -- '\[--replay-limit SIZE\] \[--no-kick\]' "$tmp/out" || fail "help restore: $(head -1 "$tmp/out")"
grep -q '^  --no-kick  *thaw without the kick' "$tmp/out" || fail "help restore lists --no-kick"
[[ $(rc $NC checkpoint --help) == 0 ]] && grep -q '^  --replay-limit SIZE ' "$tmp/out" ||
  fail "checkpoint --help lists --replay-limit: $(cat "$tmp/out")"
[[ $(rc $NC unblock --help) == 0 ]] || fail "unblock --help"
[[ $(rc $NC --no-daemon policy) == 1 ]] && grep -q "policies are netckptd's" "$tmp/err" || fail "policy"
[[ $(rc $NC --version) == 0 ]] && grep -q '^netckpt ' "$tmp/out" || fail "version"
ok "help, policy, version"
# The man page documents every command, every exit code and the state dir variable.
man=${NETCKPT_SOURCE_DIR:?}/docs/man/netckpt.1
for c in $($NC help | awk '/^Commands:/ { on = 1; next } on && NF == 0 { on = 0 } on { print $1 }'); do
  grep -q "^\.SS $c" "$man" || fail "the man page lacks command $c"
done
for code in 0 1 2 3 4 5 6 7; do
  grep -q "^\.B $code\$" "$man" || fail "the man page lacks exit code $code"
done
grep -q NETCKPT_STATE_DIR "$man" || fail "the man page lacks NETCKPT_STATE_DIR"
ok "the man page covers every command and exit code"
# ... and each command's section head names every option 'netckpt help CMD' lists.
for c in $($NC help | awk '/^Commands:/ { on = 1; next } on && NF == 0 { on = 0 } on { print $1 }'); do
  for o in $($NC help "$c" | sed -n '/^Options:/,$p' | grep -o -- '^  --[a-z][a-z-]*'); do
    grep -q "^\.SS $c .*${o//-/\\\\-}" "$man" || fail "the man page's $c lacks $o"
  done
done
ok "the man page's section heads name every option"
echo "cli-libvirt: all passed"
