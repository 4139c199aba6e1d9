# Issue 4's remaining real-VM cases (tests/e2e/lib/vm-env.sh), one VM boot each:
#   ckpt-outage: stop mode with a 20 s outage (all connections, gate counters), and a SYN
#     from the peer inside a --continue gate window (no RST, connects after the lift); with
#     ARP (ckpt-outage) and with a static neighbour entry (ckpt-outage-static);
#   ckpt-agent-faults: the guest agent SIGKILLed mid-freeze and hung (SIGSTOP), through the
#     guest's test knobs netckpt.agentenv / netckpt.agenthang (guest/image/init).
# They need the static agent and workload in the guest.
if(NETCKPT_STATIC_AGENT AND NOT NETCKPT_SANITIZE)
  netckpt_script_test(e2e-ckpt-outage SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/ckpt-outage.sh
                      LABELS e2e TIMEOUT 600)
  # The same with a static neighbour entry (no ICMP toward the peer while the VM is away).
  netckpt_script_test(e2e-ckpt-outage-static
                      SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/ckpt-outage-static.sh LABELS e2e TIMEOUT 600)
  netckpt_script_test(e2e-ckpt-agent-faults SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/ckpt-agent-faults.sh
                      LABELS e2e TIMEOUT 600)
endif()
