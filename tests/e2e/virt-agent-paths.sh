#!/usr/bin/env bash
# host/agent-link against a real guest agent on every path: a booted test guest runs
# netckpt-agent on org.netckpt.agent.0 and on org.qemu.guest_agent.0; virtctl (a separate
# process opening the same embedded root, so it also covers reconnecting to a running domain)
# calls guest-ping and guest-info over the channel's UNIX socket, over virDomainOpenChannel's
# stream, and over libvirt's agent API (virDomainQemuAgentCommand).
set -euo pipefail
source "$(dirname "$0")/lib/vm-env.sh"
vm_env_init virtpaths
VIRTCTL=$VM_BUILD/tests/tools/virtctl
[[ -x $VIRTCTL ]] || vm_die "build virtctl first"
vm_image_build
# A build without the static agent (sanitizer builds, NETCKPT_STATIC_AGENT=OFF) has nothing to
# call: skipped (ctest SKIP_RETURN_CODE 77), not failed.
if ((!VM_HAS_AGENT)); then
    echo "skip: no static agent in the image (build netckpt-agent-static)"
    exit 77
fi
vm_net_up
vm_start
vm_wait_ready

out=$(vm_host "$VIRTCTL" -c "$VM_URI" \
    agent-call "$VM_NAME" guest-ping 5000 unix :: agent-call "$VM_NAME" guest-info 5000 unix \
    :: agent-call "$VM_NAME" guest-ping 5000 stream :: agent-call "$VM_NAME" guest-info 5000 stream \
    :: agent-call "$VM_NAME" guest-ping 5000 auto org.qemu.guest_agent.0 \
    :: agent-call "$VM_NAME" guest-info 5000 auto org.qemu.guest_agent.0 \
    2>"$VM_WORK/virtctl.err") || {
    cat "$VM_WORK/virtctl.err" >&2
    echo "$out"
    vm_die "agent calls failed"
}
echo "$out"
for path in unix-socket libvirt-channel libvirt-qemu-agent; do
    for cmd in guest-ping guest-info; do
        grep -q "agent over $path: $cmd returned 0" <<<"$out" || vm_die "$cmd over $path failed"
    done
done
grep -q 'agent over libvirt-channel: guest-info returned 0: {.*guest-net-freeze' <<<"$out" ||
    vm_die "guest-info over the stream lacks the command list"
echo "ok: guest-ping and guest-info over the UNIX socket, the libvirt stream and libvirt's agent API"
