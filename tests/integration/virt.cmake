# host/virt + domain-xml + agent-link against real libvirt: the embedded QEMU driver with a real
# (diskless, OS-less) QEMU on a tap in a private netns. virtctl is a test-only driver.
add_executable(virtctl ${NETCKPT_SOURCE_DIR}/tests/tools/virtctl.c)
target_link_libraries(virtctl PRIVATE netckpt-host)
set_target_properties(virtctl PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)
netckpt_script_test(virt-embed SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/virt-embed.sh
  LABELS integration TIMEOUT 300)
