# netckptd integration tests: the daemon on a temp socket and state dir with libvirt's test
# driver, real nftables gates on a tap in a private namespace for the journal replay.
add_executable(daemon-call ${NETCKPT_SOURCE_DIR}/tests/tools/daemon-call.c)
target_link_libraries(daemon-call PRIVATE netckpt-daemon-client)
set_target_properties(daemon-call PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)

netckpt_script_test(daemon-socket SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/daemon-socket.sh
  LABELS integration TIMEOUT 180)
netckpt_script_test(daemon-recover SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/daemon-recover.sh
  LABELS integration TIMEOUT 180)
# The CLI forwarding to a running daemon: same output and exit codes as alone, Busy, SIGINT
# cancelling the daemon's job, a real checkpoint (test driver, real agent and tap in a netns).
netckpt_script_test(daemon-cli SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/daemon-cli.sh
  LABELS integration TIMEOUT 240)
# The retransmitting policy condition on a real blackholed connection through a real agent.
netckpt_script_test(daemon-retrans SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/daemon-retrans.sh
  LABELS integration TIMEOUT 180)
