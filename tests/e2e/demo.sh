#!/usr/bin/env bash
# e2e: scripts/demo as a user runs it (outage 2 s), on this build (no package install or
# rebuild from inside ctest): it must exit 0 and end with "connections: N survived, 0 lost",
# N >= 6. The demo tears down its own VM, namespaces and files.
set -euo pipefail
src=${NETCKPT_SOURCE_DIR:?}
build=${NETCKPT_BUILD_DIR:?}
log=$(mktemp /tmp/nck-demo-test.XXXXXX)
trap 'rm -f "$log" "$log.err"' EXIT
rc=0
# The summary is stdout's last line (a failure's serial-log tail goes to stderr after it).
bash "$src/scripts/demo" --outage 2 --no-build --build-dir "$build" >"$log" 2>"$log.err" || rc=$?
cat "$log" "$log.err"
line=$(tail -n 1 "$log")
if ! [[ $line =~ ^connections:\ ([0-9]+)\ survived,\ ([0-9]+)\ lost$ ]]; then
  echo "FAIL: the demo's last line is not the summary: '$line' (exit $rc)" >&2
  exit 1
fi
survived=${BASH_REMATCH[1]} lost=${BASH_REMATCH[2]}
((lost == 0)) || { echo "FAIL: $lost connections lost" >&2; exit 1; }
((survived >= 6)) || { echo "FAIL: only $survived connections" >&2; exit 1; }
((rc == 0)) || { echo "FAIL: the demo exited $rc with 0 lost" >&2; exit 1; }
echo "ok - demo: $survived survived, 0 lost"
