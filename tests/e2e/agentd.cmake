# netckpt-agent-static in the real test guest over virtio-serial (tests/e2e/lib/vm-env.sh).
# Exit 77 = skipped: the guest image cannot list sockets (no inet_diag/tcp_diag modules).
if(NETCKPT_STATIC_AGENT AND NOT NETCKPT_SANITIZE)
  netckpt_script_test(e2e-agent-vm SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/agent-vm.sh
                      LABELS e2e TIMEOUT 600)
  set_tests_properties(e2e-agent-vm PROPERTIES SKIP_RETURN_CODE 77)
endif()
