# netckpt-agent against real kernel sockets: a real agent (--method unix-listen) in a network
# namespace with a routed peer and an nft gate standing in for the host's (root). qga-call is
# the tiny host-side client the scripts drive it with (agent/qga-client.h).
add_executable(qga-call ${NETCKPT_SOURCE_DIR}/tests/tools/qga-call.c)
target_link_libraries(qga-call PRIVATE netckpt-proto)
set_target_properties(qga-call PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)

foreach(_t proto traffic shared-exit watchdog restart rollback many)
  netckpt_script_test(agent-${_t} SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/agent-${_t}.sh
    LABELS integration TIMEOUT 300)
endforeach()

# The static agent the test guest's initramfs carries: the same traffic test, run with it.
if(TARGET netckpt-agent-static)
  netckpt_script_test(agent-static SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/agent-traffic.sh
    LABELS integration noasan TIMEOUT 300)
  set_property(TEST agent-static APPEND PROPERTY ENVIRONMENT
    "NETCKPT_AGENT=${CMAKE_BINARY_DIR}/guest/netckpt-agent-static")
endif()
