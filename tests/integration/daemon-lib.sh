# daemon-lib.sh: what the netckptd integration tests (daemon-cli, daemon-recover,
# daemon-retrans) share. Sourced, not run; the caller defines fail.

# daemon_cleanup: for the EXIT trap of a test that keeps its processes in pids, its namespace
# in ns and its files in tmp: kill every PID (continued first, so a stopped one dies too),
# reap them, delete the namespace (and with it the tap) and the files.
daemon_cleanup() {
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}

# daemon_ns_tap NS TAP: a namespace with lo up and a tap up in it.
daemon_ns_tap() {
  ip netns add "$1"
  ip netns exec "$1" ip link set lo up
  ip netns exec "$1" ip tuntap add dev "$2" mode tap
  ip netns exec "$1" ip link set "$2" up
}

# daemon_node_xml FILE NAME UUID TAP AGENT_SOCK [MAC]: a libvirt test-driver node with one
# running domain: a real tap (unmanaged ethernet) and an agent channel on a UNIX socket.
daemon_node_xml() {
  local mac=
  [[ -z ${6:-} ]] || mac="<mac address='$6'/>"
  cat >"$1" <<XML
<node>
  <domain type='test'>
    <name>$2</name>
    <uuid>$3</uuid>
    <memory>65536</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <devices>
      <interface type='ethernet'>$mac<target dev='$4' managed='no'/></interface>
      <channel type='unix'>
        <source mode='bind' path='$5'/>
        <target type='virtio' name='org.netckpt.agent.0'/>
      </channel>
    </devices>
  </domain>
</node>
XML
}

# daemon_wait_up CALL SOCK [PID]: wait until netckptd answers status on SOCK; fail if PID
# (the daemon) exits first or it never answers.
daemon_wait_up() {
  for _ in $(seq 200); do
    [[ -S $2 ]] && "$1" "$2" status >/dev/null 2>&1 && return 0
    [[ -z ${3:-} ]] || kill -0 "$3" 2>/dev/null || fail "netckptd exited"
    sleep 0.05
  done
  "$1" "$2" status >/dev/null 2>&1 || fail "netckptd did not come up"
}
