# netckpt-agent, the in-guest daemon (guest/agent-main.c + guest/net-freezer.c), and its
# statically linked twin for the test guest's initramfs. Included from guest/CMakeLists.txt.
add_executable(netckpt-agent agent-main.c net-freezer.c)
target_link_libraries(netckpt-agent PRIVATE netckpt-guest netckpt-proto netckpt-common
                                            PkgConfig::JSONC)
install(TARGETS netckpt-agent RUNTIME DESTINATION sbin)

if(NETCKPT_STATIC_AGENT AND NOT NETCKPT_SANITIZE)
  # The pkg-config targets name the shared objects, so the static link names every archive
  # itself (and not the library targets, whose interfaces would drag the .so files in).
  find_library(NETCKPT_JSONC_A NAMES libjson-c.a REQUIRED)
  find_library(NETCKPT_CRYPTO_A NAMES libcrypto.a REQUIRED)
  add_executable(netckpt-agent-static agent-main.c net-freezer.c)
  add_dependencies(netckpt-agent-static netckpt-guest netckpt-proto netckpt-common)
  target_include_directories(netckpt-agent-static PRIVATE ${JSONC_INCLUDE_DIRS})
  target_link_options(netckpt-agent-static PRIVATE -static)
  target_link_libraries(netckpt-agent-static PRIVATE
    $<TARGET_FILE:netckpt-guest> $<TARGET_FILE:netckpt-proto> $<TARGET_FILE:netckpt-common>
    ${NETCKPT_JSONC_A} ${NETCKPT_CRYPTO_A} pthread dl)
  set_target_properties(netckpt-agent-static PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/guest)
endif()

# Guest integration: the unit and the udev rule that starts it when the port appears.
install(FILES systemd/netckpt-agent.service DESTINATION lib/systemd/system)
install(FILES udev/99-netckpt-agent.rules DESTINATION lib/udev/rules.d)
install(FILES ${NETCKPT_SOURCE_DIR}/docs/man/netckpt-agent.8 DESTINATION share/man/man8)
