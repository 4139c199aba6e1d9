# Issue 4's remaining real-VM cases (tests/e2e/lib/vm-env.sh), one VM boot each:
#   ckpt-agent-faults: the guest agent SIGKILLed mid-freeze and hung (SIGSTOP), through the
#     guest's test knobs netckpt.agentenv / netckpt.agenthang (guest/image/init).
# The stop-mode outage cases (ckpt-outage, ckpt-outage-static) are in outage.cmake now.
# They need the static agent and workload in the guest.
if(NETCKPT_STATIC_AGENT AND NOT NETCKPT_SANITIZE)
  netckpt_script_test(e2e-ckpt-agent-faults SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/ckpt-agent-faults.sh
                      LABELS e2e TIMEOUT 600)
endif()
