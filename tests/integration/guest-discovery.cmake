# Real-kernel tests of guest discovery: sock_diag list/destroy, /proc owners, ptrace quiesce,
# pidfd_getfd. The binary runs inside a netns made by the script.
add_executable(test-guest-discovery-live ${CMAKE_CURRENT_LIST_DIR}/test-guest-discovery-live.c)
target_link_libraries(test-guest-discovery-live PRIVATE netckpt-guest PkgConfig::CMOCKA pthread)
set_target_properties(test-guest-discovery-live PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/integration)
netckpt_script_test(guest-discovery
  SCRIPT ${CMAKE_CURRENT_LIST_DIR}/guest-discovery.sh LABELS integration TIMEOUT 180)
