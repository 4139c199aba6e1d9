# tests/e2e/lib/two-hosts.sh: one machine standing for two hypervisor hosts (sourced after
# tests/e2e/lib/vm-env.sh, whose names, guest image, domain XML and workload it reuses).
#
# Each host is a libvirtd in its own network namespace (host A: VM_NS_HOST, host B:
# TH_NS_B) and its own mount namespace, where its state directories are bind mounts of a
# private root (TH_ROOT_A/B): /etc/libvirt (libvirtd.conf with its own host_uuid, qemu.conf as
# in MACHINE-NOTES), /run/libvirt and /var (lib, cache, log). Their UNIX sockets are in
# TH_SOCK_A/B, outside those mounts, so virsh and netckpt reach both with
# qemu+unix:///system?socket=PATH (TH_URI_A/B), and libvirtd A reaches B for peer-to-peer
# migration. Why daemons and not the embedded driver: docs/migrate.md.
#
# Network (all inside namespaces created here):
#   A: tap VM_TAP 10.0.2.1/24 (guest 10.0.2.15), veth to the peer 10.0.3.1 <-> 10.0.3.2
#   B: tap VM_TAP 10.0.2.1/24 (same name and MAC as A's: an anycast gateway, so the guest's
#      ARP entry stays right), veth to the peer 10.0.4.1 <-> 10.0.4.2
#   A <-> B: routed link 10.0.9.1 <-> 10.0.9.2 (the migration stream)
#   peer (VM_NS_PEER): reaches the guest via A until th_route_to b moves it (the fabric's job
#   in a real network: here the switchover hook does it).
#
# Use: vm_env_init TAG; th_init; vm_image_build; th_net_up; th_hosts_up; th_vm_start; ...
# th_init replaces vm-env's EXIT trap with one that tears down both hosts (domains, QEMUs and
# libvirtds by PID), then runs vm_env_teardown (namespaces, files).

TH_GW_MAC=02:00:00:00:0a:01

th_init() {
  TH_NS_B="nckb-$VM_ID"
  TH_VETH_AB="nckab$$"
  TH_VETH_BA="nckba$$"
  TH_VETH_BP="nckbp$$"
  TH_VETH_PB="nckpb$$"
  TH_ROOT_A=$VM_RUN/ha
  TH_ROOT_B=$VM_RUN/hb
  TH_SOCK_A=$VM_RUN/sa
  TH_SOCK_B=$VM_RUN/sb
  TH_URI_A="qemu+unix:///system?socket=$TH_SOCK_A/libvirt-sock"
  TH_URI_B="qemu+unix:///system?socket=$TH_SOCK_B/libvirt-sock"
  TH_PID_A=""
  TH_PID_B=""
  TH_NS_B_MADE=0
  trap th_exit EXIT
}

th_exit() {
  local rc=$?
  th_teardown
  (exit "$rc")
  vm_env_teardown
}

th_virsh() {
  local h=$1
  shift
  local uri=$TH_URI_A
  [ "$h" = b ] && uri=$TH_URI_B
  LIBVIRT_LOG_OUTPUTS="3:file:$VM_WORK/virsh-client.log" virsh -q -c "$uri" "$@"
}

th_ns() { [ "$1" = b ] && echo "$TH_NS_B" || echo "$VM_NS_HOST"; }

th_net_up() {
  ip netns add "$VM_NS_HOST" || vm_die "cannot create netns $VM_NS_HOST"
  VM_NET_STARTED=1
  ip netns add "$VM_NS_PEER" || vm_die "cannot create netns $VM_NS_PEER"
  ip netns add "$TH_NS_B" || vm_die "cannot create netns $TH_NS_B"
  TH_NS_B_MADE=1
  local ns
  for ns in "$VM_NS_HOST" "$TH_NS_B" "$VM_NS_PEER"; do ip -n "$ns" link set lo up; done
  for ns in "$VM_NS_HOST" "$TH_NS_B"; do
    ip -n "$ns" tuntap add dev "$VM_TAP" mode tap
    ip -n "$ns" link set "$VM_TAP" address "$TH_GW_MAC"
    ip -n "$ns" addr add "$VM_GW_IP/24" dev "$VM_TAP"
    ip -n "$ns" link set "$VM_TAP" up
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  done
  ip link add "$VM_VETH_HOST" netns "$VM_NS_HOST" type veth peer name "$VM_VETH_PEER" \
    netns "$VM_NS_PEER"
  ip -n "$VM_NS_HOST" addr add "$VM_HOSTSIDE_IP/24" dev "$VM_VETH_HOST"
  ip -n "$VM_NS_HOST" link set "$VM_VETH_HOST" up
  ip -n "$VM_NS_PEER" addr add "$VM_PEER_IP/24" dev "$VM_VETH_PEER"
  ip -n "$VM_NS_PEER" link set "$VM_VETH_PEER" up
  ip link add "$TH_VETH_BP" netns "$TH_NS_B" type veth peer name "$TH_VETH_PB" netns "$VM_NS_PEER"
  ip -n "$TH_NS_B" addr add 10.0.4.1/24 dev "$TH_VETH_BP"
  ip -n "$TH_NS_B" link set "$TH_VETH_BP" up
  ip -n "$VM_NS_PEER" addr add 10.0.4.2/24 dev "$TH_VETH_PB"
  ip -n "$VM_NS_PEER" link set "$TH_VETH_PB" up
  ip link add "$TH_VETH_AB" netns "$VM_NS_HOST" type veth peer name "$TH_VETH_BA" netns "$TH_NS_B"
  ip -n "$VM_NS_HOST" addr add 10.0.9.1/24 dev "$TH_VETH_AB"
  ip -n "$VM_NS_HOST" link set "$TH_VETH_AB" up
  ip -n "$TH_NS_B" addr add 10.0.9.2/24 dev "$TH_VETH_BA"
  ip -n "$TH_NS_B" link set "$TH_VETH_BA" up
  # B answers the peer over its own link.
  ip -n "$TH_NS_B" route add "$VM_PEER_IP/32" via 10.0.4.2
  th_route_to a
}

# th_route_to a|b: where the peer sends the guest's traffic.
th_route_to() {
  local via=$VM_HOSTSIDE_IP
  [ "$1" = b ] && via=10.0.4.1
  ip -n "$VM_NS_PEER" route replace "$VM_GUEST_IP/32" via "$via"
}

# th_host_conf a|b UUID: the private root of one host.
th_host_conf() {
  local h=$1 uuid=$2 root sock
  root=$TH_ROOT_A sock=$TH_SOCK_A
  [ "$h" = b ] && root=$TH_ROOT_B sock=$TH_SOCK_B
  mkdir -p "$root/etc" "$root/run" "$root/var/lib/libvirt" "$root/var/cache/libvirt/qemu" \
    "$root/var/log/libvirt" "$root/var/tmp" "$sock"
  ln -sfn /run "$root/var/run"
  cat >"$root/etc/libvirtd.conf" <<EOF
# tests/e2e/lib/two-hosts.sh: host $h
unix_sock_dir = "$sock"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
host_uuid = "$uuid"
log_outputs = "${TH_LIBVIRT_LOG_LEVEL:-3}:file:$root/libvirtd.log"
log_filters = "${TH_LIBVIRT_LOG_FILTERS:-}"
EOF
  cat >"$root/etc/qemu.conf" <<'EOF'
stdio_handler = "file"
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
EOF
  local cap=$VM_BUILD/e2e-work/.qemu-capabilities
  [ -d "$cap" ] && cp -r "$cap" "$root/var/cache/libvirt/qemu/capabilities" 2>/dev/null
  return 0
}

# th_hosts_up: both libvirtds, each in its network namespace and a private mount namespace.
th_hosts_up() {
  th_host_conf a "$(cat /proc/sys/kernel/random/uuid)"
  th_host_conf b "$(cat /proc/sys/kernel/random/uuid)"
  local h root
  for h in a b; do
    root=$TH_ROOT_A
    [ "$h" = b ] && root=$TH_ROOT_B
    # The mounts exist only in the daemon's own mount namespace; they go with it.
    ip netns exec "$(th_ns $h)" unshare -m --propagation private bash -c '
      set -e
      r=$1
      mount --bind "$r/var" /var
      mount --bind "$r/etc" /etc/libvirt
      mount --bind "$r/run" /run/libvirt
      exec /usr/sbin/libvirtd --config "$r/etc/libvirtd.conf" --pid-file "$r/libvirtd.pid"
    ' th-libvirtd "$root" >"$root/out.log" 2>&1 &
    if [ "$h" = a ]; then TH_PID_A=$!; else TH_PID_B=$!; fi
  done
  local t=0
  until th_virsh a version >/dev/null 2>&1 && th_virsh b version >/dev/null 2>&1; do
    ((t++ < 150)) || {
      cat "$TH_ROOT_A/out.log" "$TH_ROOT_B/out.log" >&2
      vm_die "the two libvirtds did not answer"
    }
    sleep 0.2
  done
}

# th_vm_start: the test guest (vm-env's domain XML), persistent, on host A; and the XML it
# gets on each host for a migration there: domain-a.xml, and domain-b.xml with its own serial
# log and channel sockets (both QEMUs run at once on this machine).
th_vm_start() {
  [ -n "${VM_KERNEL:-}" ] || vm_die "th_vm_start: no image (call vm_image_build)"
  vm_domain_xml >"$VM_WORK/domain.xml"
  : >"$VM_SERIAL"
  TH_SERIAL_B=$VM_WORK/serial-b.log
  : >"$TH_SERIAL_B"
  th_virsh a define "$VM_WORK/domain.xml" >/dev/null || vm_die "virsh define failed"
  th_virsh a start "$VM_NAME" >/dev/null || vm_die "virsh start failed"
  # Both with the UUID libvirt gave it (a migration refuses an XML without the same UUID).
  th_virsh a dumpxml --migratable "$VM_NAME" >"$VM_WORK/domain-a.xml"
  sed -e "s|$VM_SERIAL|$TH_SERIAL_B|; s|$VM_AGENT_SOCK|$VM_RUN/agent-b.sock|; s|$VM_QGA_SOCK|$VM_RUN/qga-b.sock|" \
    "$VM_WORK/domain-a.xml" >"$VM_WORK/domain-b.xml"
}

th_qemu_pid() {
  local root=$TH_ROOT_A
  [ "$1" = b ] && root=$TH_ROOT_B
  [ -s "$root/run/qemu/$VM_NAME.pid" ] && tr -dc '0-9' <"$root/run/qemu/$VM_NAME.pid"
  return 0
}

# th_tables NS: the nft tables netckpt left in a namespace (empty when none).
th_tables() { ip netns exec "$1" nft list tables 2>/dev/null | grep -o 'nc_[A-Za-z0-9_]*' || true; }

th_teardown() {
  set +e
  local h pid qpid
  for h in a b; do
    pid=$TH_PID_A
    [ "$h" = b ] && pid=$TH_PID_B
    [ -n "$pid" ] || continue
    qpid=$(th_qemu_pid $h)
    timeout 20 env LIBVIRT_LOG_OUTPUTS=3:stderr virsh -q -c "$([ $h = b ] && echo "$TH_URI_B" || echo "$TH_URI_A")" \
      destroy "$VM_NAME" >/dev/null 2>&1
    # Only the QEMU this host's libvirtd started for us, by its recorded PID.
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null &&
      grep -q "$VM_NAME" "/proc/$qpid/cmdline" 2>/dev/null; then
      kill -9 "$qpid" 2>/dev/null
    fi
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  TH_PID_A="" TH_PID_B=""
  if ((${TH_NS_B_MADE:-0})); then
    ip netns del "$TH_NS_B" 2>/dev/null
    TH_NS_B_MADE=0
  fi
}
