# guest/tcp-repair against the real kernel: freeze/dump/thaw and rebuild-in-another-process of
# real connections through a routed peer in network namespaces (root). The driver is test-only.
add_executable(tcp-repair-driver ${CMAKE_CURRENT_SOURCE_DIR}/tcp-repair-driver.c)
target_link_libraries(tcp-repair-driver PRIVATE netckpt-guest PkgConfig::NFTABLES PkgConfig::CRYPTO)
set_target_properties(tcp-repair-driver PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/integration)

foreach(_t live rebuild many)
  add_test(NAME tcp-repair-${_t} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tcp-repair.sh ${_t})
  set_tests_properties(tcp-repair-${_t} PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "NETCKPT_SOURCE_DIR=${NETCKPT_SOURCE_DIR};NETCKPT_BUILD_DIR=${CMAKE_BINARY_DIR}")
endforeach()
