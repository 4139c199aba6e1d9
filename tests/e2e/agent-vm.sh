#!/usr/bin/env bash
# netckpt-agent-static in the real test guest, over its virtio-serial port: several host
# connections one after another (the port's hangup/reconnect), then a freeze with streams
# flowing both ways behind a silent drop on the tap, verify, thaw, lift, and every stream
# verified byte-exact by the workload. Also reaches the second agent instance on
# org.qemu.guest_agent.0 through `virsh qemu-agent-command`.
# Exit 77 (skipped) when the guest kernel cannot list sockets (no inet_diag/tcp_diag modules
# in the image): that is a guest-image gap, reported as such.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/vm-env.sh"

fail() {
    echo "agent-vm: FAIL: $*" >&2
    exit 1
}
step() { echo "agent-vm: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root"
VM_DIAL=7100/2
vm_env_init agentvm
QGA=$VM_BUILD/tests/tools/qga-call
[ -x "$QGA" ] || fail "$QGA not built"
[ -x "$VM_BUILD/guest/netckpt-agent-static" ] || fail "netckpt-agent-static not built"
vm_image_build
vm_net_up
vm_start
vm_wait_ready || fail "guest did not boot"

for i in 1 2 3; do
    [ "$("$QGA" --timeout 30000 "$VM_AGENT_SOCK" guest-ping)" = "{}" ] || fail "ping $i"
done
info=$("$QGA" "$VM_AGENT_SOCK" guest-info)
step "agent $(jq -r .version <<<"$info"), $(jq '.supported_commands | length' <<<"$info") commands; 3 host connections in a row"

# The clock step of guest-net-thaw, for real (safe here: it is the guest's clock). Forward one
# hour, then back to the host's time: both applied, the second reported as backwards.
c=$("$QGA" "$VM_AGENT_SOCK" guest-net-thaw "{\"host_time_ns\":$(($(date +%s%N) + 3600000000000))}")
[ "$(jq -r .clock.applied <<<"$c")" = true ] && [ "$(jq -r .clock.backwards <<<"$c")" = false ] ||
    fail "clock step forward: $c"
c=$("$QGA" "$VM_AGENT_SOCK" guest-net-thaw "{\"host_time_ns\":$(date +%s%N)}")
[ "$(jq -r .clock.applied <<<"$c")" = true ] && [ "$(jq -r .clock.backwards <<<"$c")" = true ] ||
    fail "clock step back: $c"
step "clock: stepped +1 h and back ($(jq -r .clock.step_ns <<<"$c") ns), reported backwards"

vm_stream_start to-guest to-guest both 2
vm_stream_start from-guest from-guest both 2
vm_stream_wait_ready to-guest || fail "peer -> guest connections"
vm_stream_wait_ready from-guest || fail "guest -> peer connections"
sleep 1

gate_off() { vm_host nft delete table netdev ncagentvm 2>/dev/null || true; }
vm_host nft -f - <<EOF
table netdev ncagentvm {
    chain in { type filter hook ingress device "$VM_TAP" priority 0; policy drop; }
    chain out { type filter hook egress device "$VM_TAP" priority 0; policy drop; }
}
EOF

rc=0
out=$("$QGA" --timeout 120000 "$VM_AGENT_SOCK" guest-net-freeze) || rc=$?
if ((rc)) && grep -q 'sock_diag' <<<"$out"; then
    echo "agent-vm: SKIP: the guest cannot list TCP sockets: $(jq -r .error.desc <<<"$out")" >&2
    echo "agent-vm: SKIP: add inet_diag and tcp_diag to the image's modules (guest/image/build-guest)" >&2
    exit 77
fi
((rc == 0)) || fail "freeze: $out"
printf '%s\n' "$out" >"$VM_WORK/image.json"
python3 "$VM_SRC/tests/tools/validate-json-schema.py" "$VM_SRC/schemas/socket-image.schema.json" \
    "$VM_WORK/image.json" >/dev/null || fail "image does not validate"
n=$(jq '.connections | length' "$VM_WORK/image.json")
((n == 4)) || fail "froze $n connections, expected 4"
step "frozen: $n connections, image $(stat -c %s "$VM_WORK/image.json") bytes, valid"
st=$("$QGA" "$VM_AGENT_SOCK" guest-net-status)
[ "$(jq -r .frozen <<<"$st")" = true ] || fail "status: $st"
v=$("$QGA" "$VM_AGENT_SOCK" guest-net-verify "{\"image_id\":\"$(jq -r .image_id "$VM_WORK/image.json")\"}")
[ "$(jq -r .match <<<"$v")" = true ] || fail "verify: $v"
sleep 1
t=$("$QGA" "$VM_AGENT_SOCK" guest-net-thaw)
[ "$(jq -r .thawed <<<"$t")" = "$n" ] && [ "$(jq -r .failed <<<"$t")" = 0 ] || fail "thaw: $t"
gate_off
step "verified and thawed after $(jq -r .frozen_ms <<<"$t") ms frozen"

sleep 2
vm_stream_stop to-guest || fail "peer -> guest stream: $(vm_stream_summary to-guest)"
vm_stream_stop from-guest || fail "guest -> peer stream: $(vm_stream_summary from-guest)"
step "peer -> guest: $(vm_stream_summary to-guest)"
step "guest -> peer: $(vm_stream_summary from-guest)"

out=$(vm_agent_command '{"execute":"guest-net-status"}' 2) || fail "virsh qemu-agent-command: $out"
step "virsh qemu-agent-command guest-net-status: $out"
step "ok"
