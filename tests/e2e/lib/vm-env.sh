# tests/e2e/lib/vm-env.sh: the real-VM harness (sourced by e2e tests, bench/ and the demo).
#
# It owns one test environment per calling shell:
#   * namespace VM_NS_HOST holding the guest's tap (VM_TAP, 10.0.2.1/24; guest 10.0.2.15) and
#     routing to namespace VM_NS_PEER (veth, 10.0.3.1/24 <-> peer 10.0.3.2/24). The peer is
#     routed through the tap's namespace so that a drop on the tap makes it retransmit.
#   * an embedded libvirt root VM_ROOT (qemu:///embed?root=...), used only from VM_NS_HOST so
#     that QEMU inherits that namespace;
#   * one TCG domain VM_NAME booting the cloud kernel + test initramfs, serial to VM_SERIAL,
#     channels org.netckpt.agent.0 (VM_AGENT_SOCK) and org.qemu.guest_agent.0 (VM_QGA_SOCK).
#
# Use:
#   source tests/e2e/lib/vm-env.sh
#   vm_env_init mytest            # names, dirs; installs the EXIT trap (vm_env_teardown)
#   vm_image_build                # or set VM_KERNEL/VM_INITRD yourself
#   vm_net_up                     # namespaces, tap, veth, routes (VM_NEIGH=static|dynamic)
#   vm_start                      # writes qemu.conf + domain XML, virsh create
#   vm_wait_ready                 # waits for the guest's ready marker on the serial log
#   vm_peer CMD...                # run CMD in the peer namespace
#   vm_virsh ARGS...              # virsh on the embedded root, inside VM_NS_HOST
#   vm_host CMD...                # run CMD in the tap's namespace (netckpt runs there too)
# or, for a netckpt test, vm_e2e_begin mytest: the five steps above plus NC, the state dir and
# the usual helpers (see there).
# Everything is torn down in the EXIT trap, also on failure: the domain is destroyed, any QEMU
# still alive whose PID is in the root's pid file is killed (that PID only), namespaces are
# deleted (which removes the tap and veth), and the root is removed unless VM_KEEP=1.
#
# Settings (environment, before vm_env_init or vm_start):
#   VM_NEIGH=dynamic|static  static: a permanent neighbour entry for the guest in VM_NS_HOST
#                            (what a bridged L2 peer sees: no ICMP during an outage)
#   VM_MEM_MIB=256 VM_CMDLINE_EXTRA="netckpt.dial=10.0.3.2:7100/2 ..."
#   VM_AGENT=/path/netckpt-agent-static  (vm_image_build; default: the build's, when present)
#   VM_KEEP=1                keep the root and logs after exit (for debugging)
#   VM_BOOT_TIMEOUT=120      seconds to wait for the guest's ready marker

VM_GUEST_IP=10.0.2.15
VM_GW_IP=10.0.2.1
VM_HOSTSIDE_IP=10.0.3.1
VM_PEER_IP=10.0.3.2
VM_WORKLOAD_PORT=7000 # stream; +1 echo; +2 checksum lines

vm_log() { echo "vm-env: $*" >&2; }
vm_die() {
  echo "vm-env: FATAL: $*" >&2
  exit 1
}

# vm_env_init TAG: choose unique names (TAG + $$) and install the teardown trap.
vm_env_init() {
  local tag=${1:-vm}
  VM_SRC=${NETCKPT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
  VM_BUILD=${NETCKPT_BUILD_DIR:-$VM_SRC/build}
  VM_ID="$tag-$$"
  VM_NAME="nck-$VM_ID"
  VM_NS_HOST="nckh-$VM_ID"
  VM_NS_PEER="nckp-$VM_ID"
  # Interface names are limited to 15 characters.
  VM_TAP="nckt$$"
  VM_VETH_HOST="nckvh$$"
  VM_VETH_PEER="nckvp$$"
  VM_MAC=$(printf '52:54:00:%02x:%02x:%02x' $(($$ >> 16 & 255)) $(($$ >> 8 & 255)) $(($$ & 255)))
  VM_NEIGH=${VM_NEIGH:-dynamic}
  VM_MEM_MIB=${VM_MEM_MIB:-256}
  VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-120}
  VM_WORK=${VM_WORK:-$VM_BUILD/e2e-work/$VM_ID}
  # UNIX socket paths are limited to 108 bytes, and libvirt puts QEMU's monitor socket deep
  # under its root: keep the root and the channels on a short path.
  VM_RUN=${TMPDIR:-/tmp}/nck.$$
  VM_ROOT=$VM_RUN/libvirt
  VM_URI="qemu:///embed?root=$VM_ROOT"
  VM_SERIAL=$VM_WORK/serial.log
  VM_AGENT_SOCK=$VM_RUN/agent.sock
  VM_QGA_SOCK=$VM_RUN/qga.sock
  VM_PIDS=()
  VM_STARTED=0
  VM_NET_STARTED=0
  rm -rf "$VM_WORK" "$VM_RUN"
  mkdir -p "$VM_WORK" "$VM_RUN"
  trap vm_env_teardown EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Tools we run in the peer namespace: the dynamic workload build.
vm_workload_bin() { echo "$VM_BUILD/guest/workload/netckpt-workload"; }

# vm_image_build: build (or reuse) the guest image; sets VM_KERNEL and VM_INITRD.
vm_image_build() {
  local agent=${VM_AGENT-}
  local workload=${VM_WORKLOAD_STATIC:-$VM_BUILD/guest/workload/netckpt-workload-static}
  if [ -z "${VM_AGENT+set}" ] && [ -x "$VM_BUILD/guest/netckpt-agent-static" ]; then
    agent=$VM_BUILD/guest/netckpt-agent-static
  fi
  [ -x "$workload" ] || workload=""
  local out
  out=$("$VM_SRC/guest/image/build-guest" --out "$VM_BUILD/guest-image" \
    --agent "$agent" --workload "$workload") || vm_die "build-guest failed"
  eval "$out" # kernel=... initramfs=...
  # libvirt may chown what it boots: give it private copies.
  mkdir -p "$VM_WORK/boot"
  cp "$kernel" "$VM_WORK/boot/vmlinuz"
  cp "$initramfs" "$VM_WORK/boot/initramfs.cpio.gz"
  VM_KERNEL=$VM_WORK/boot/vmlinuz
  VM_INITRD=$VM_WORK/boot/initramfs.cpio.gz
  VM_HAS_AGENT=0
  [ -n "$agent" ] && VM_HAS_AGENT=1
  VM_HAS_WORKLOAD=0
  [ -n "$workload" ] && VM_HAS_WORKLOAD=1
  return 0
}

vm_host() { ip netns exec "$VM_NS_HOST" "$@"; }
vm_peer() { ip netns exec "$VM_NS_PEER" "$@"; }
# The embedded driver logs spurious errors (dmidecode, keepalive) on stderr: keep them in a
# file; virsh still prints real failures itself.
vm_virsh() { LIBVIRT_LOG_OUTPUTS="3:file:$VM_WORK/libvirt-client.log" ip netns exec "$VM_NS_HOST" virsh -q -c "$VM_URI" "$@"; }

# vm_net_up: the two namespaces, the tap and the routed veth link.
vm_net_up() {
  ip netns add "$VM_NS_HOST" || vm_die "cannot create netns $VM_NS_HOST"
  VM_NET_STARTED=1
  ip netns add "$VM_NS_PEER" || vm_die "cannot create netns $VM_NS_PEER"
  vm_host ip link set lo up
  vm_peer ip link set lo up
  # The tap exists before QEMU: the domain uses it with managed='no'.
  vm_host ip tuntap add dev "$VM_TAP" mode tap
  vm_host ip addr add "$VM_GW_IP/24" dev "$VM_TAP"
  vm_host ip link set "$VM_TAP" up
  ip link add "$VM_VETH_HOST" netns "$VM_NS_HOST" type veth peer name "$VM_VETH_PEER" \
    netns "$VM_NS_PEER"
  vm_host ip addr add "$VM_HOSTSIDE_IP/24" dev "$VM_VETH_HOST"
  vm_host ip link set "$VM_VETH_HOST" up
  vm_peer ip addr add "$VM_PEER_IP/24" dev "$VM_VETH_PEER"
  vm_peer ip link set "$VM_VETH_PEER" up
  vm_peer ip route add default via "$VM_HOSTSIDE_IP"
  vm_host sysctl -qw net.ipv4.ip_forward=1
  [ "$VM_NEIGH" = static ] && vm_neigh static
  return 0
}

# vm_libvirt_root: the embedded driver's root with the qemu.conf MACHINE-NOTES asks for.
vm_libvirt_root() {
  mkdir -p "$VM_ROOT/etc"
  cat >"$VM_ROOT/etc/qemu.conf" <<'EOF'
# Written by tests/e2e/lib/vm-env.sh for libvirt's embedded QEMU driver.
stdio_handler = "file"
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
EOF
  # The capability probe takes seconds; reuse the last run's cache when there is one.
  local cap=$VM_BUILD/e2e-work/.qemu-capabilities
  if [ -d "$cap" ]; then
    mkdir -p "$VM_ROOT/cache/qemu"
    cp -r "$cap" "$VM_ROOT/cache/qemu/capabilities" 2>/dev/null || true
  fi
}

vm_save_capabilities() {
  local src=$VM_ROOT/cache/qemu/capabilities
  local dst=$VM_BUILD/e2e-work/.qemu-capabilities
  [ -d "$src" ] && [ ! -d "$dst" ] && cp -r "$src" "$dst.$$" 2>/dev/null &&
    mv -T "$dst.$$" "$dst" 2>/dev/null
  rm -rf "$dst.$$"
  return 0
}

# vm_domain_xml: the domain definition on stdout.
vm_domain_xml() {
  local cmdline="console=ttyS0 panic=-1 loglevel=4 netckpt.ip=$VM_GUEST_IP/24"
  cmdline+=" netckpt.gw=$VM_GW_IP netckpt.hostname=$VM_NAME"
  local spec dial=""
  for spec in ${VM_DIAL//,/ }; do dial+="${dial:+,}$VM_PEER_IP:$spec"; done
  [ -n "$dial" ] && cmdline+=" netckpt.dial=$dial"
  cmdline+=" ${VM_CMDLINE_EXTRA:-}"
  cat <<EOF
<domain type='qemu'>
  <name>$VM_NAME</name>
  <memory unit='MiB'>$VM_MEM_MIB</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$VM_KERNEL</kernel>
    <initrd>$VM_INITRD</initrd>
    <cmdline>$cmdline</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='ethernet'>
      <mac address='$VM_MAC'/>
      <target dev='$VM_TAP' managed='no'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='$VM_SERIAL' append='on'/>
      <target port='0'/>
    </serial>
    <channel type='unix'>
      <source mode='bind' path='$VM_AGENT_SOCK'/>
      <target type='virtio' name='org.netckpt.agent.0'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='$VM_QGA_SOCK'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# vm_start: define and start the domain (persistent, so that save/restore and the netckpt CLI
# find it by name).
vm_start() {
  [ -n "${VM_KERNEL:-}" ] || vm_die "vm_start: no image (call vm_image_build)"
  ((VM_NET_STARTED)) || vm_die "vm_start: no network (call vm_net_up)"
  vm_libvirt_root
  vm_domain_xml >"$VM_WORK/domain.xml"
  : >"$VM_SERIAL"
  vm_virsh define "$VM_WORK/domain.xml" >/dev/null || vm_die "virsh define failed"
  VM_STARTED=1
  vm_virsh start "$VM_NAME" >/dev/null || vm_die "virsh start failed"
  vm_save_capabilities
}

# vm_agent_command JSON [WAIT]: virsh qemu-agent-command on org.qemu.guest_agent.0. A fresh
# embedded-driver process connects to the guest agent only after it has reconnected to QEMU
# and refreshed the channel states, so a one-shot `virsh qemu-agent-command` always finds it
# "not connected": run it in one virsh session WAIT seconds (default 1) after opening.
vm_agent_command() {
  local json=$1 wait=${2:-1}
  local out
  out=$({ sleep "$wait"; printf "qemu-agent-command %s '%s'\n" "$VM_NAME" "$json"; } |
    vm_virsh 2>&1) || true
  # Interactive virsh echoes its prompt: keep the reply (or the error) only.
  out=$(printf '%s\n' "$out" | grep -E '^(\{|error:)' || true)
  printf '%s\n' "$out"
  [[ $out == '{'* ]]
}

# vm_qemu_pid: the PID libvirt recorded for our domain's QEMU, empty when none.
vm_qemu_pid() {
  local f
  for f in "$VM_ROOT/run/qemu/$VM_NAME.pid" "$VM_ROOT/run/libvirt/qemu/$VM_NAME.pid"; do
    [ -s "$f" ] && tr -dc '0-9' <"$f" && return 0
  done
  return 0
}

# vm_wait_serial PATTERN [TIMEOUT]: wait until the serial log has a line matching PATTERN.
vm_wait_serial() {
  local pat=$1 timeout=${2:-$VM_BOOT_TIMEOUT} t=0
  while ! grep -q -- "$pat" "$VM_SERIAL" 2>/dev/null; do
    if ((t >= timeout * 10)); then
      vm_log "timed out after ${timeout}s waiting for '$pat' on the serial console; tail:"
      tail -n 30 "$VM_SERIAL" >&2 || true
      return 1
    fi
    sleep 0.1
    t=$((t + 1))
  done
}

# vm_wait_ready: the guest printed its ready marker, and its workload server answers.
vm_wait_ready() {
  local t0=$SECONDS
  vm_wait_serial 'netckpt-guest: ready' || return 1
  if ((${VM_HAS_WORKLOAD:-0})); then
    vm_wait_tcp "$VM_GUEST_IP" $((VM_WORKLOAD_PORT + 1)) 30 || return 1
  fi
  VM_BOOT_SECONDS=$((SECONDS - t0))
}

# vm_wait_tcp ADDR PORT TIMEOUT: from the peer namespace, wait until ADDR:PORT accepts.
vm_wait_tcp() {
  local addr=$1 port=$2 timeout=${3:-30} t=0
  until vm_peer bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null; do
    if ((t >= timeout * 5)); then
      vm_log "$addr:$port does not accept connections after ${timeout}s"
      return 1
    fi
    sleep 0.2
    t=$((t + 1))
  done
}

# vm_bg_peer LOGFILE CMD...: start CMD in the peer namespace in the background; its PID is
# remembered (VM_LAST_PID) and killed at teardown if still running.
vm_bg_peer() {
  local log=$1
  shift
  ip netns exec "$VM_NS_PEER" "$@" >"$log" 2>&1 &
  VM_LAST_PID=$!
  VM_PIDS+=("$VM_LAST_PID")
}

vm_bg_host() {
  local log=$1
  shift
  ip netns exec "$VM_NS_HOST" "$@" >"$log" 2>&1 &
  VM_LAST_PID=$!
  VM_PIDS+=("$VM_LAST_PID")
}

# ---- workload streams (netckpt-workload in the peer namespace is the controller) ----
# vm_stream_start NAME to-guest|from-guest MODE CONNS [RATE]
#   to-guest: the peer connects to the guest's server (10.0.2.15:7000).
#   from-guest: the peer listens on VM_PEER_IP:PORT where the guest's dialers connect; PORT
#   comes from VM_DIAL (the first "PORT/N" entry not yet used), so VM_DIAL must list it.
#   MODE is the peer's view: out = peer sends, in = guest sends, both, idle.
#   RATE in bytes/s per connection and direction (default VM_STREAM_RATE, 0 = unlimited).
#   VM_STREAM_FINISH_TIMEOUT (s, default 180): how long a stop may wait for a stalled
#   connection to move again before it counts as lost.
# The report is $VM_WORK/stream-NAME.json once vm_stream_stop returns.
declare -gA VM_STREAM_PID=() VM_STREAM_PORT_USED=()
VM_DIAL=${VM_DIAL:-7100/2,7101/1}
VM_STREAM_RATE=${VM_STREAM_RATE:-1000000}

vm_stream_start() {
  local name=$1 dir=$2 mode=$3 conns=$4 rate=${5:-$VM_STREAM_RATE} target spec port n
  case $dir in
  to-guest) target=(--connect "$VM_GUEST_IP:$VM_WORKLOAD_PORT") ;;
  from-guest)
    target=()
    for spec in ${VM_DIAL//,/ }; do
      port=${spec%/*} n=${spec#*/}
      if [ -z "${VM_STREAM_PORT_USED[$port]:-}" ] && ((n >= conns)); then
        VM_STREAM_PORT_USED[$port]=$name
        target=(--listen "$VM_PEER_IP:$port")
        break
      fi
    done
    ((${#target[@]})) || vm_die "no free dial port with >= $conns connections in VM_DIAL=$VM_DIAL"
    ;;
  *) vm_die "vm_stream_start: direction is to-guest or from-guest" ;;
  esac
  rm -f "$VM_WORK/stream-$name.ready" "$VM_WORK/stream-$name.json"
  vm_bg_peer "$VM_WORK/stream-$name.log" "$(vm_workload_bin)" stream "${target[@]}" \
    --mode "$mode" --conns "$conns" --rate "$rate" --seconds 0 --connect-timeout 60 \
    --finish-timeout "${VM_STREAM_FINISH_TIMEOUT:-180}" --ready-file "$VM_WORK/stream-$name.ready" \
    --json "$VM_WORK/stream-$name.json"
  VM_STREAM_PID[$name]=$VM_LAST_PID
}

# vm_stream_wait_ready NAME [TIMEOUT]: all its connections are established.
vm_stream_wait_ready() {
  local name=$1 timeout=${2:-60} t=0
  until [ -s "$VM_WORK/stream-$name.ready" ]; do
    if ! kill -0 "${VM_STREAM_PID[$name]}" 2>/dev/null || ((t >= timeout * 10)); then
      vm_log "stream $name did not get its connections up; log:"
      cat "$VM_WORK/stream-$name.log" >&2
      return 1
    fi
    sleep 0.1
    t=$((t + 1))
  done
}

# vm_stream_mark NAME...: record "now" as a marker (stall_after_marker_ms counts from it).
vm_stream_mark() {
  local name
  for name in "$@"; do kill -USR1 "${VM_STREAM_PID[$name]}"; done
}

# vm_stream_stop NAME: end its sessions cleanly (verification included); returns the
# controller's exit status (0: every connection verified both ways).
vm_stream_stop() {
  local name=$1 pid=${VM_STREAM_PID[$1]} rc=0
  kill -INT "$pid" 2>/dev/null
  wait "$pid" || rc=$?
  unset "VM_STREAM_PID[$name]"
  # Its dial port is free again for the next stream.
  local port
  for port in "${!VM_STREAM_PORT_USED[@]}"; do
    [ "${VM_STREAM_PORT_USED[$port]}" = "$name" ] && unset "VM_STREAM_PORT_USED[$port]"
  done
  return $rc
}

# vm_stream_summary NAME: one line "ok/total max_stall_ms marker stalls" from its report.
vm_stream_summary() {
  jq -r '"\(.summary.ok)/\(.summary.connections) ok, max_stall_ms=\(.summary.max_stall_ms
    | floor), stall_after_marker_ms=\([.summary.markers[].worst_stall_ms
    | if . == null then "none" else floor end])"' "$VM_WORK/stream-$1.json"
}

# vm_neigh static|dynamic: switch how the tap's namespace reaches the guest, live. static: a
# permanent neighbour entry (like a bridged L2 peer: no ICMP while the guest is away);
# dynamic: ARP, so an outage makes the namespace send ICMP host-unreachable to the peer.
vm_neigh() {
  VM_NEIGH=$1
  if [ "$1" = static ]; then
    vm_host ip neigh replace "$VM_GUEST_IP" lladdr "$VM_MAC" dev "$VM_TAP" nud permanent
  else
    vm_host ip neigh del "$VM_GUEST_IP" dev "$VM_TAP" 2>/dev/null || true
  fi
}

# vm_now: wall clock in seconds with nanoseconds (for measuring in bench and tests' logs).
vm_now() { date +%s.%N; }
# vm_elapsed START: seconds since START (from vm_now), 3 decimals.
vm_elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }

# vm_e2e_begin NAME: the start of a netckpt e2e test: vm_env_init NAME, the image (which must
# have the static agent and the workload), the network, the boot, the guest ready; then
# NC (the netckpt binary), NETCKPT_STATE_DIR=$VM_WORK/state (exported) and the helpers fail,
# ok, nc_json OUT ARGS... (netckpt --json: stdout in OUT, stderr in OUT.err, its exit code),
# state (the domain's state) and gate_count (netdev tables in VM_NS_HOST). Defined only when
# called, so the other users of this file keep their own; a test may redefine any after it.
vm_e2e_begin() {
  vm_env_init "$1"
  vm_image_build
  ((VM_HAS_AGENT && VM_HAS_WORKLOAD)) || vm_die "the guest image needs the static agent and workload"
  vm_net_up
  vm_start
  vm_wait_ready
  NC=$VM_BUILD/host/netckpt
  export NETCKPT_STATE_DIR=$VM_WORK/state
  fail() {
    echo "FAIL: $*" >&2
    exit 1
  }
  ok() { echo "ok - $*"; }
  nc_json() {
    local out=$1
    shift
    set +e
    vm_host "$NC" -c "$VM_URI" --json "$@" >"$out" 2>"$out.err"
    local rc=$?
    set -e
    return $rc
  }
  state() { vm_virsh domstate "$VM_NAME" 2>/dev/null | head -n1; }
  gate_count() { vm_host nft -j list tables netdev 2>/dev/null | jq '[.nftables[] | select(.table)] | length'; }
}

# vm_env_teardown: everything vm_env_init and later steps created; safe to call twice.
vm_env_teardown() {
  local rc=$? pid qpid
  trap - EXIT
  set +e
  # Our background processes by PID: TERM, then KILL after 2 s (a stream controller would
  # otherwise wait out its finish timeout against a VM that is gone).
  for pid in "${VM_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || continue
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  VM_PIDS=()
  # Outage holders a stop-mode checkpoint of this test left (host/hold.c): by the PID their
  # record names, and only if that PID really is a holder. A failed test keeps its work dir,
  # where a holder would otherwise live on for its hour.
  local rec
  for rec in "${NETCKPT_STATE_DIR:-/nonexistent}"/hold/*.json; do
    [ -f "$rec" ] || continue
    pid=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p' "$rec" | head -n1)
    [ -n "$pid" ] && grep -q -- '__netckpt-hold' <<<"$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" &&
      kill -9 "$pid" 2>/dev/null
    rm -f "$rec"
  done
  if ((${VM_STARTED:-0})); then
    qpid=$(vm_qemu_pid)
    timeout 20 ip netns exec "$VM_NS_HOST" virsh -q -c "$VM_URI" destroy "$VM_NAME" \
      >/dev/null 2>&1
    # Only the QEMU libvirt started for us, by the PID it recorded, if destroy missed it.
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null &&
      grep -q "$VM_NAME" "/proc/$qpid/cmdline" 2>/dev/null; then
      kill -9 "$qpid" 2>/dev/null
    fi
    timeout 20 ip netns exec "$VM_NS_HOST" virsh -q -c "$VM_URI" undefine "$VM_NAME" \
      --managed-save >/dev/null 2>&1
    VM_STARTED=0
  fi
  if ((${VM_NET_STARTED:-0})); then
    ip netns del "$VM_NS_PEER" 2>/dev/null
    ip netns del "$VM_NS_HOST" 2>/dev/null
    VM_NET_STARTED=0
  fi
  if ((rc != 0)) && [ -f "${VM_SERIAL:-}" ]; then
    echo "vm-env: failed (exit $rc); serial log tail ($VM_SERIAL):" >&2
    tail -n 40 "$VM_SERIAL" >&2
  fi
  if [ "${VM_KEEP:-0}" != 1 ] && [ -n "${VM_RUN:-}" ]; then
    rm -rf "$VM_RUN"
  fi
  # The work directory (serial log, reports) stays after a failure, for the post-mortem.
  if [ "${VM_KEEP:-0}" != 1 ] && ((rc == 0)) && [ -n "${VM_WORK:-}" ]; then
    rm -rf "$VM_WORK"
  fi
  exit "$rc"
}
