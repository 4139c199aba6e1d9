#!/usr/bin/env bash
# e2e smoke test on a real VM: the test guest boots under libvirt's embedded driver, traffic
# flows byte-exact both ways (peer -> guest server, guest -> peer), the agent answers on both
# channels when the image has one, and a plain `virsh save` + `virsh restore` with connections
# open is survived. The stalls of that plain cycle are printed (the baseline; no timing is
# asserted here, bench/vm-cycle measures).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/vm-env.sh"

fail() {
  echo "vm-smoke: FAIL: $*" >&2
  exit 1
}
step() { echo "vm-smoke: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root (namespaces, taps, libvirt embedded driver)"
VM_DIAL=7100/1,7101/2
vm_env_init smoke
[ -x "$(vm_workload_bin)" ] || fail "$(vm_workload_bin) not built"
[ -x "$VM_BUILD/guest/workload/netckpt-workload-static" ] ||
  fail "netckpt-workload-static not built (configure with -DNETCKPT_STATIC_AGENT=ON)"

vm_image_build
vm_net_up
t0=$(vm_now)
vm_start
vm_wait_ready || fail "guest did not boot"
step "guest up in $(vm_elapsed "$t0") s (agent in image: $VM_HAS_AGENT)"

# Echo and checksum lines, checked from the peer with plain socat.
msg="netckpt smoke $$ $(date +%s%N)"
got=$(printf '%s\n' "$msg" | vm_peer socat -t 5 - "TCP:$VM_GUEST_IP:$((VM_WORKLOAD_PORT + 1))")
[ "$got" = "$msg" ] || fail "echo: sent '$msg', got '$got'"
want="$(printf '%s' "$msg" | sha256sum | cut -c1-64) ${#msg}"
got=$(printf '%s\n' "$msg" | vm_peer socat -t 5 - "TCP:$VM_GUEST_IP:$((VM_WORKLOAD_PORT + 2))")
[ "$got" = "$want" ] || fail "checksum lines: want '$want', got '$got'"
step "echo and checksum lines: ok"

# Checksummed streams: the peer reaches the guest's server, the guest's dialer reaches the peer.
vm_stream_start to-guest to-guest both 2
vm_stream_start from-guest from-guest both 1
vm_stream_wait_ready to-guest || fail "peer -> guest connections"
vm_stream_wait_ready from-guest || fail "guest -> peer connections"
sleep 1
vm_stream_stop to-guest || fail "peer -> guest stream: $(vm_stream_summary to-guest)"
vm_stream_stop from-guest || fail "guest -> peer stream: $(vm_stream_summary from-guest)"
step "peer -> guest stream: $(vm_stream_summary to-guest)"
step "guest -> peer stream: $(vm_stream_summary from-guest)"

# The agent, when the image has one: its own channel, and the standard qga name via libvirt.
if ((VM_HAS_AGENT)); then
  qga_call=$VM_BUILD/tests/tools/qga-call
  ok=0
  for _ in $(seq 50); do
    if [ -x "$qga_call" ]; then
      out=$("$qga_call" --timeout 2000 "$VM_AGENT_SOCK" guest-ping 2>&1) && ok=1
    else
      out=$(printf '{"execute":"guest-ping"}\n' | socat -t 2 - "UNIX-CONNECT:$VM_AGENT_SOCK" \
        2>&1) && [[ $out == *'"return"'* ]] && ok=1
    fi
    ((ok)) && break
    sleep 0.2
  done
  ((ok)) || fail "guest-ping on org.netckpt.agent.0 ($VM_AGENT_SOCK): $out"
  step "guest-ping on org.netckpt.agent.0: $out"
  ok=0
  for wait in 1 2 4; do
    out=$(vm_agent_command '{"execute":"guest-ping"}' "$wait" 2>&1) &&
      [[ $out == *'"return"'* ]] && ok=1 && break
  done
  ((ok)) || fail "virsh qemu-agent-command guest-ping (org.qemu.guest_agent.0): $out"
  step "virsh qemu-agent-command guest-ping: $out"
else
  step "no netckpt-agent-static in this build: agent checks skipped"
fi

# The baseline: plain virsh save + restore with connections open, 0 s outage.
vm_stream_start base-in to-guest both 2
vm_stream_start base-out from-guest both 2
vm_stream_wait_ready base-in || fail "baseline peer -> guest connections"
vm_stream_wait_ready base-out || fail "baseline guest -> peer connections"
sleep 1
t0=$(vm_now)
vm_virsh save "$VM_NAME" "$VM_WORK/plain.state" >/dev/null || fail "virsh save"
save_s=$(vm_elapsed "$t0")
t0=$(vm_now)
vm_virsh restore "$VM_WORK/plain.state" >/dev/null || fail "virsh restore"
restore_s=$(vm_elapsed "$t0")
vm_stream_mark base-in base-out
rm -f "$VM_WORK/plain.state"
sleep 3
rc=0
vm_stream_stop base-in || rc=1
vm_stream_stop base-out || rc=1
step "plain save ${save_s} s, restore ${restore_s} s"
step "after plain restore, peer -> guest: $(vm_stream_summary base-in)"
step "after plain restore, guest -> peer: $(vm_stream_summary base-out)"
((rc == 0)) || fail "connections did not survive a plain save/restore byte-exact"
step "PASS"
