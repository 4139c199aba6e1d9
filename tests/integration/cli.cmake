# The netckpt CLI against real libvirt (the test:/// driver), real bundles made with the bundle
# module (mkbundle, a test-only tool), and real gates on a tap in a network namespace.
add_executable(mkbundle ${NETCKPT_SOURCE_DIR}/tests/tools/mkbundle.c)
target_link_libraries(mkbundle PRIVATE netckpt-host netckpt-guest)
set_target_properties(mkbundle PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)

foreach(_t libvirt bundle unblock)
  netckpt_script_test(cli-${_t} SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/cli-${_t}.sh
    LABELS integration TIMEOUT 180)
endforeach()
