# Held-traffic replay (host/replay) against the real kernel: a real tap gated with nflog
# capture, a routed peer, the stop-mode hold tables (root, own namespaces). replayctl drives the
# library, tapcap is the guest end of the tap; replay-check.py reads the pcaps.
add_executable(replayctl ${NETCKPT_SOURCE_DIR}/tests/tools/replayctl.c)
target_link_libraries(replayctl PRIVATE netckpt-host)
add_executable(tapcap ${NETCKPT_SOURCE_DIR}/tests/tools/tapcap.c)
target_link_libraries(tapcap PRIVATE netckpt-host)
set_target_properties(replayctl tapcap PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)

foreach(_t tap overflow forward bridge session gso outage outage-bridge)
  netckpt_script_test(replay-${_t} SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/replay-${_t}.sh
    LABELS integration TIMEOUT 180)
endforeach()
