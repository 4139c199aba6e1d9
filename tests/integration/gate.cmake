# The nftables gate and its journal against the real kernel, in network namespaces (root).
# gatectl and tapio are test-only tools: gatectl drives host/gate + host/journal, tapio is the
# guest end of a real tap device.
add_executable(gatectl ${NETCKPT_SOURCE_DIR}/tests/tools/gatectl.c)
target_link_libraries(gatectl PRIVATE netckpt-host)
add_executable(tapio ${NETCKPT_SOURCE_DIR}/tests/tools/tapio.c)
target_link_libraries(tapio PRIVATE netckpt-common)
set_target_properties(gatectl tapio PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)

foreach(_t traffic two-domains recover names tap)
  netckpt_script_test(gate-${_t} SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/gate-${_t}.sh
    LABELS integration TIMEOUT 180)
endforeach()
