#!/usr/bin/env bash
# host/virt, domain-xml and agent-link against real libvirt and real QEMU: the embedded QEMU
# driver in a fresh root under /tmp (qemu.conf written by nc_virt_open), a diskless, OS-less
# TCG domain (started paused) with an ethernet interface on a tap made beforehand in a private
# netns, and a unix agent channel. It is saved with progress, restored paused, resumed; the live
# XML is parsed, the channel socket must exist, an agent call with no agent must time out on
# both link paths; a qcow2-backed domain takes an internal snapshot with memory and reverts.
# Cleanup in the EXIT trap: destroy through libvirt, then kill only QEMU's recorded pid, then
# remove the netns and the root.
set -euo pipefail
BUILD=${NETCKPT_BUILD_DIR:?}
SRC=${NETCKPT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
VIRTCTL=$BUILD/tests/tools/virtctl
NS=ncvirt$$
TAP=ncvt$$
TAP=${TAP:0:15}
DOM=ncvirt-$$
ROOT=$(mktemp -d /tmp/netckpt-virt.XXXXXX)

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }

cleanup() {
    local rc=$?
    set +e
    if [[ -x $VIRTCTL && -d $ROOT/libvirt ]]; then
        ip netns exec "$NS" "$VIRTCTL" -s "$ROOT" destroy "$DOM" >/dev/null 2>&1
        ip netns exec "$NS" "$VIRTCTL" -s "$ROOT" undefine "$DOM" >/dev/null 2>&1
        ip netns exec "$NS" "$VIRTCTL" -s "$ROOT" destroy "$DOM-snap" >/dev/null 2>&1
        ip netns exec "$NS" "$VIRTCTL" -s "$ROOT" undefine "$DOM-snap" >/dev/null 2>&1
    fi
    # If libvirt could not stop it, kill exactly the QEMU it recorded, nothing else.
    for f in "$ROOT"/libvirt/run/qemu/*.pid; do
        [[ -f $f ]] || continue
        pid=$(cat "$f")
        if [[ $pid =~ ^[0-9]+$ ]] && grep -q qemu "/proc/$pid/comm" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null
        fi
    done
    ip netns del "$NS" 2>/dev/null
    rm -rf "$ROOT"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || fail "needs root (netns, tap, QEMU)"
[[ -x /usr/bin/qemu-system-x86_64 ]] || fail "qemu-system-x86_64 missing (scripts/deps)"
[[ -x $VIRTCTL ]] || fail "build virtctl first"

ip netns add "$NS"
ip -n "$NS" tuntap add dev "$TAP" mode tap
ip -n "$NS" link set "$TAP" up
vx() { ip netns exec "$NS" "$VIRTCTL" -s "$ROOT" "$@"; }

cat >"$ROOT/dom.xml" <<XML
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='ethernet'>
      <mac address='52:54:00:4e:43:01'/>
      <target dev='$TAP' managed='no'/>
      <model type='virtio'/>
    </interface>
    <channel type='unix'>
      <source mode='bind'/>
      <target type='virtio' name='org.netckpt.agent.0'/>
    </channel>
    <channel type='unix'>
      <source mode='bind'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
XML

out=$(vx define "$ROOT/dom.xml" :: start "$DOM" --paused :: state "$DOM" paused :: xml "$DOM" \
    :: socket-exists "$DOM" :: save "$DOM" "$ROOT/vm.state" :: state "$DOM" "shut off" \
    :: restore "$ROOT/vm.state" :: state "$DOM" paused :: xml "$DOM" :: socket-exists "$DOM" \
    :: resume "$DOM" :: state "$DOM" running \
    :: agent-timeout "$DOM" 300 unix :: agent-timeout "$DOM" 300 stream \
    :: agent-timeout "$DOM" 1000 auto org.qemu.guest_agent.0 \
    :: destroy "$DOM" :: state "$DOM" "shut off" :: undefine "$DOM" :: versions 2>"$ROOT/err") ||
    {
        cat "$ROOT/err" >&2
        echo "$out"
        fail "the save/restore cycle failed"
    }
echo "$out"
[[ -s $ROOT/libvirt/etc/qemu.conf ]] || fail "qemu.conf was not written"
grep -qx 'stdio_handler = "file"' "$ROOT/libvirt/etc/qemu.conf" || fail "qemu.conf content"
ok "embedded driver root set up with its qemu.conf"
grep -q "iface type=ethernet tap=$TAP mac=52:54:00:4e:43:01 model=virtio" <<<"$out" ||
    fail "live XML: tap not found"
grep -q 'agent name=org.netckpt.agent.0 socket=/' <<<"$out" || fail "live XML: no agent socket"
ok "live XML parsed: tap and agent channel socket (which exists)"
grep -q "saved $DOM" <<<"$out" || fail "no save"
grep -q 'save progress' "$ROOT/err" || fail "no progress reported during the save"
[[ -s $ROOT/vm.state ]] || fail "no save file"
ok "saved with progress ($(grep -c 'save progress' "$ROOT/err") reports), $(stat -c %s "$ROOT/vm.state") bytes"
grep -q "restored $DOM paused" <<<"$out" || fail "not restored paused"
ok "restored paused, resumed, running"
grep -q 'agent over unix-socket: call returned -110' <<<"$out" || fail "unix path did not time out"
grep -q 'agent over libvirt-channel: call returned -110' <<<"$out" || fail "stream path did not time out"
grep -q 'agent over libvirt-qemu-agent: call returned -110' <<<"$out" ||
    fail "libvirt's agent API path (org.qemu.guest_agent.0) did not report the agent unreachable"
ok "agent calls with no agent time out on the UNIX socket, the libvirt stream and libvirt's agent API"

# An internal snapshot with memory needs a qcow2 disk (QEMU's savevm); no OS is needed on it.
qemu-img create -q -f qcow2 "$ROOT/disk.qcow2" 16M
sed -e "s|<name>$DOM</name>|<name>$DOM-snap</name>|" \
    -e "s|<devices>|<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$ROOT/disk.qcow2'/><target dev='vda' bus='virtio'/></disk>|" \
    "$ROOT/dom.xml" >"$ROOT/dom-snap.xml"
out=$(vx define "$ROOT/dom-snap.xml" :: start "$DOM-snap" --paused :: snapshot "$DOM-snap" nc-1 \
    :: state "$DOM-snap" paused :: resume "$DOM-snap" :: state "$DOM-snap" running \
    :: destroy "$DOM-snap" :: undefine "$DOM-snap" 2>"$ROOT/err") || {
    cat "$ROOT/err" >&2
    echo "$out"
    fail "snapshot with memory failed"
}
echo "$out"
ok "internal snapshot with memory created and reverted paused"

# The save written straight into a bundle's partial directory, committed, verified, and the
# renamed vm.state restored.
out=$(vx define "$ROOT/dom.xml" :: start "$DOM" --paused :: save-bundle "$DOM" "$ROOT/bundles/b1" \
    :: state "$DOM" "shut off" :: restore "$ROOT/bundles/b1/vm.state" :: state "$DOM" paused \
    :: destroy "$DOM" :: undefine "$DOM" 2>"$ROOT/err") || {
    cat "$ROOT/err" >&2
    echo "$out"
    fail "save into a bundle failed"
}
echo "$out"
[[ -d $ROOT/bundles/b1 && ! -e $ROOT/bundles/.b1.partial ]] || fail "bundle not renamed into place"
grep -q "bundle $ROOT/bundles/b1 committed and verified: 3 files" <<<"$out" || fail "bundle verify"
xmllint --noout --relaxng "$SRC/schemas/checkpoint.rng" "$ROOT/bundles/b1/manifest.xml" ||
    fail "manifest.xml does not validate with xmllint"
ok "save into a bundle, commit, verify (also with xmllint), restore from the bundle"
