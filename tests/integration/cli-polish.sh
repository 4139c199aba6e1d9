#!/usr/bin/env bash
# What a new user's first runs met: a second process on the embedded driver (exit 7, naming the
# holder), libvirt's own warnings on stderr, errors printed several times, an unknown domain
# reported as "absent" with exit 0, a paused VM's agent "not running", two words for an open
# gate, and the usage line and the man page disagreeing about -v.
set -euo pipefail
NC=${NETCKPT_BUILD_DIR:?}/host/netckpt
SRC=${NETCKPT_SOURCE_DIR:?}
tmp=$(mktemp -d /tmp/nc-cli-polish-XXXXXX)
holder=
daemon=
cleanup() {
  exec 3>&- 2>/dev/null || true
  if [[ -n $daemon ]]; then
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
  fi
  if [[ -n $holder ]]; then
    kill "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
export NETCKPT_STATE_DIR=$tmp/state
unset LIBVIRT_LOG_OUTPUTS LIBVIRT_DEBUG LIBVIRT_LOG_FILTERS NETCKPT_LOG
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
# libvirt 9.0's QEMU driver leaks a string when its state initialisation fails (the busy case:
# virStateInitialize, inside virConnectOpen); ASan builds must not count that against us.
lsan_off() { ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "$@"; }
rc() { set +e; "$@" >"$tmp/out" 2>"$tmp/err"; echo $? >"$tmp/rc"; set -e; cat "$tmp/rc"; }

# 1. libvirt's info/warning lines (security driver "none", dmidecode) go to the state dir's log.
emb=$tmp/emb
uri="qemu:///embed?root=$emb"
[[ $(rc $NC -q -c "$uri" list) == 0 ]] || fail "list on a fresh embedded root: $(cat "$tmp/err")"
[[ ! -s $tmp/err ]] || fail "libvirt's log lines on stderr: $(cat "$tmp/err")"
[[ -s $NETCKPT_STATE_DIR/libvirt/log/libvirt.log ]] || fail "libvirt's log file is empty or missing"
ok "libvirt's own log lines go to the state dir's log, not stderr"
[[ $(rc $NC -v -c "$uri" list) == 0 ]] || fail "list -v"
ok "-v still works"

# 2. A second process on the same embedded root: exit 7, one line naming the holder.
mkfifo "$tmp/in"
virsh -c "$uri" <"$tmp/in" >"$tmp/virsh.out" 2>&1 &
holder=$!
exec 3>"$tmp/in"
for _ in $(seq 1 300); do # until virsh has the driver's pid file (it writes its pid there)
  [[ $(cat "$emb/run/qemu/driver.pid" 2>/dev/null) == "$holder" ]] && break
  kill -0 "$holder" 2>/dev/null || fail "virsh ended: $(cat "$tmp/virsh.out")"
  sleep 0.1
done
[[ $(cat "$emb/run/qemu/driver.pid") == "$holder" ]] || fail "virsh never took the driver"
[[ $(rc lsan_off $NC -c "$uri" list) == 7 ]] || fail "second process rc $(cat "$tmp/rc"): $(cat "$tmp/err")"
[[ $(wc -l <"$tmp/err") == 1 ]] || fail "busy: not one line: $(cat "$tmp/err")"
grep -q "in use by process $holder (virsh)" "$tmp/err" || fail "busy: holder: $(cat "$tmp/err")"
grep -q "wait for it to finish, or run netckptd" "$tmp/err" || fail "busy: advice: $(cat "$tmp/err")"
[[ $(rc lsan_off $NC --json -c "$uri" list) == 7 ]] || fail "busy --json rc"
jq -e '.error.code == 7 and .error.name == "busy" and (.error.message | contains("in use"))' \
  "$tmp/out" >/dev/null || fail "busy json: $(cat "$tmp/out")"
ok "a second process on the embedded driver exits 7 naming the holder"
exec 3>&-
wait "$holder" || true
holder=

# 2b. When the holder is netckptd, the advice is to use it through its socket, not to start one.
NCD=${NETCKPT_BUILD_DIR}/host/netckptd
export NETCKPTD_SOCKET=$tmp/nobody.sock # no daemon answers here
"$NCD" -c "$uri" -s "$tmp/d.sock" -d "$tmp/dstate" -p "$tmp/nopol" >"$tmp/d.log" 2>&1 &
daemon=$!
for _ in $(seq 1 300); do
  [[ -S $tmp/d.sock ]] && break
  kill -0 "$daemon" 2>/dev/null || fail "netckptd ended: $(cat "$tmp/d.log")"
  sleep 0.1
done
[[ -S $tmp/d.sock ]] || fail "netckptd never listened: $(cat "$tmp/d.log")"
[[ $(rc lsan_off $NC -c "$uri" list) == 7 ]] || fail "netckptd holder rc $(cat "$tmp/rc"): $(cat "$tmp/err")"
[[ $(wc -l <"$tmp/err") == 1 ]] || fail "netckptd holder: not one line: $(cat "$tmp/err")"
grep -q "netckptd (pid $daemon) serves this libvirt root $emb/*: the CLI talks to it through its socket" "$tmp/err" &&
  grep -q -- "--daemon-socket PATH or set NETCKPTD_SOCKET" "$tmp/err" ||
  fail "netckptd holder: advice: $(cat "$tmp/err")"
grep -q "run netckptd" "$tmp/err" && fail "netckptd holder: told to run netckptd: $(cat "$tmp/err")"
[[ $(rc lsan_off $NC --no-daemon -c "$uri" list) == 7 ]] && grep -q "drop --no-daemon" "$tmp/err" ||
  fail "netckptd holder, --no-daemon: $(cat "$tmp/err")"
[[ $(rc $NC --daemon-socket "$tmp/d.sock" -c "$uri" list) == 0 ]] ||
  fail "list through netckptd's socket: $(cat "$tmp/err")"
kill "$daemon"
wait "$daemon" 2>/dev/null || true
daemon=
unset NETCKPTD_SOCKET
ok "netckptd holding the embedded driver: exit 7 with the advice to use its socket"

# 3. One line per failure, no repeated URI, a hint for an unknown scheme.
[[ $(rc $NC -c bogus://x list) == 1 ]] || fail "bogus URI rc"
[[ $(wc -l <"$tmp/err") == 1 ]] || fail "bogus URI: not one line: $(cat "$tmp/err")"
grep -q 'bogus://x: bogus://x' "$tmp/err" && fail "bogus URI: stutter: $(cat "$tmp/err")"
grep -q 'netckpt works with qemu:///system' "$tmp/err" || fail "bogus URI: no hint: $(cat "$tmp/err")"
[[ $(rc $NC -c test:///nonexistent-file.xml list) == 1 ]] || fail "bad test URI rc"
grep -q 'works with' "$tmp/err" && fail "test:/// got the unknown-scheme hint"
ok "a connection failure is one line; an unknown scheme gets a hint"

# 5. An unknown domain is an error; --json keeps its keys and adds an error object.
[[ $(rc $NC -c test:///default status nosuchvm) == 1 ]] || fail "status nosuchvm rc"
grep -qx 'netckpt: domain nosuchvm not found' "$tmp/err" || fail "status nosuchvm: $(cat "$tmp/err")"
[[ $(rc $NC -c test:///default --json status nosuchvm) == 1 ]] || fail "status --json nosuchvm rc"
jq -e '.state == "absent" and has("gate") and has("agent") and .error.code == 1 and
       .error.message == "domain nosuchvm not found"' "$tmp/out" >/dev/null ||
  fail "status --json nosuchvm: $(cat "$tmp/out")"
ok "status of an unknown domain: exit 1, 'domain nosuchvm not found'"

# 5, 6. A paused domain's agent says paused; the gate has one word in list and status.
cat >"$tmp/paused.xml" <<'XML'
<node>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>pvm</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <test:runstate>3</test:runstate>
  </domain>
</node>
XML
[[ $(rc $NC -c "test://$tmp/paused.xml" status pvm) == 0 ]] || fail "status pvm: $(cat "$tmp/err")"
grep -q '^State: *paused' "$tmp/out" || fail "pvm not paused: $(cat "$tmp/out")"
grep -q '^Agent: .*the domain is paused' "$tmp/out" || fail "paused agent: $(cat "$tmp/out")"
grep -q '^Gate: *open$' "$tmp/out" || fail "status gate word: $(cat "$tmp/out")"
[[ $(rc $NC -c "test://$tmp/paused.xml" list) == 0 ]] || fail "list pvm"
grep -q ' pvm .* paused .* open$' "$tmp/out" || fail "list gate word: $(cat "$tmp/out")"
ok "paused agent says paused; the gate is 'open' in both list and status"

# 7. The usage line and the man page's SYNOPSIS name the same global options.
$NC --help | head -1 >"$tmp/usage"
for o in -c --json -q -v; do
  grep -q -- "\[$o" "$tmp/usage" || fail "usage lacks $o: $(cat "$tmp/usage")"
  grep -q -- "\[ *${o//-/\\\\-}" <<<"$(sed -n '/^\.SH SYNOPSIS/,/^\.SH /p' "$SRC/docs/man/netckpt.1")" ||
    fail "man SYNOPSIS lacks $o"
done
ok "--help usage and the man page SYNOPSIS agree"

# 8. scripts/demo --cleanup also removes the work dirs failed runs left (only demo-*, and only
# when no process runs from them). The kept-demo dir is a temp one: never touch real ones.
bd=$tmp/build
mkdir -p "$bd/e2e-work/demo-999999999/state" "$bd/e2e-work/demo-busy" "$bd/e2e-work/agentvm-1"
echo x >"$bd/e2e-work/demo-999999999/state/f"
(cd "$bd/e2e-work/demo-busy" && exec sleep 600) &
holder=$!
NETCKPT_DEMO_KEEP_DIR=$tmp/kept bash "$SRC/scripts/demo" --cleanup --build-dir "$bd" >"$tmp/out" 2>&1 ||
  fail "demo --cleanup: $(cat "$tmp/out")"
[[ ! -e $bd/e2e-work/demo-999999999 ]] || fail "a failed run's work dir stayed: $(cat "$tmp/out")"
[[ -d $bd/e2e-work/demo-busy ]] || fail "removed a work dir a process runs from"
[[ -d $bd/e2e-work/agentvm-1 ]] || fail "removed a non-demo work dir"
grep -q 'removing .*demo-999999999' "$tmp/out" || fail "demo --cleanup output: $(cat "$tmp/out")"
grep -q 'nothing to clean up' "$tmp/out" && fail "demo --cleanup said nothing to clean up"
kill "$holder"
wait "$holder" 2>/dev/null || true
holder=
NETCKPT_DEMO_KEEP_DIR=$tmp/kept bash "$SRC/scripts/demo" --cleanup --build-dir "$bd" >"$tmp/out" 2>&1 ||
  fail "demo --cleanup (2): $(cat "$tmp/out")"
[[ ! -e $bd/e2e-work/demo-busy ]] || fail "the no longer used work dir stayed"
ok "demo --cleanup removes failed runs' demo-* work dirs, not ones in use or others"

# 4. A bundle path that does not exist is a mistake (exit 1), not a refused bundle (3).
[[ $(rc $NC verify "$tmp/no-bundle") == 1 ]] || fail "verify of a missing bundle rc"
grep -qx "netckpt: no such bundle: $tmp/no-bundle" "$tmp/err" || fail "verify missing: $(cat "$tmp/err")"
[[ $(rc $NC --json verify "$tmp/no-bundle") == 1 ]] || fail "verify --json missing rc"
jq -e '.valid == false and .exit_code == 1 and (.error | startswith("no such bundle"))' "$tmp/out" \
  >/dev/null || fail "verify --json missing: $(cat "$tmp/out")"
[[ $(rc $NC inspect "$tmp/no-bundle") == 1 ]] || fail "inspect of a missing bundle rc"
[[ $(wc -l <"$tmp/err") == 1 ]] || fail "inspect missing: not one line: $(cat "$tmp/err")"
ok "verify and inspect of a missing bundle: exit 1, 'no such bundle: PATH'"
[[ $(rc $NC -c test:///default restore "$tmp/no-bundle") == 1 ]] || fail "restore of a missing bundle rc"
[[ $(wc -l <"$tmp/err") == 1 ]] || fail "restore missing: not one line: $(cat "$tmp/err")"
ok "restore of a missing bundle: exit 1, like verify"

# A failed transaction is one line: its summary (the step's log line only with -v).
mkdir "$tmp/corrupt"
echo junk >"$tmp/corrupt/manifest.xml"
[[ $(rc $NC -c test:///default restore "$tmp/corrupt") == 3 ]] || fail "restore corrupt rc"
[[ $(wc -l <"$tmp/err") == 1 ]] && grep -q '^netckpt: restore refused: ' "$tmp/err" ||
  fail "restore corrupt: not one line: $(cat "$tmp/err")"
[[ $(rc $NC -c test:///default checkpoint nope --dir "$tmp/b-nope") == 1 ]] || fail "checkpoint nope rc"
grep -qx 'netckpt: checkpoint of nope failed at step discover: domain nope not found' "$tmp/err" &&
  [[ $(wc -l <"$tmp/err") == 1 ]] || fail "checkpoint nope: not one line: $(cat "$tmp/err")"
[[ $(rc $NC -v -c test:///default checkpoint nope --dir "$tmp/b-nope") == 1 ]] || fail "checkpoint -v nope rc"
grep -q '^netckpt: debug: discover failed: domain nope not found' "$tmp/err" ||
  fail "checkpoint -v nope: no debug line: $(cat "$tmp/err")"
ok "a failed restore or checkpoint prints one line; -v adds the step's log line"
