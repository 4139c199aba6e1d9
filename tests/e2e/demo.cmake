# scripts/demo end to end (tests/e2e/demo.sh): the summary line must say 0 lost. Needs the
# static agent and workload in the guest, so only in builds that make static binaries.
if(NETCKPT_STATIC_AGENT AND NOT NETCKPT_SANITIZE)
  netckpt_script_test(e2e-demo SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/demo.sh LABELS e2e TIMEOUT 600)
endif()
