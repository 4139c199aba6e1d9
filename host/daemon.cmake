# netckptd: the host daemon (host/netckptd.c, host/daemon-*.c) and its modules: policies,
# scheduler, retention, metrics. Owner: the daemon engineer. The policy schema is compiled
# into the library (as checkpoint.rng is) so validation needs no installed files.
set(_prng ${NETCKPT_SOURCE_DIR}/schemas/policy.rng)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_prng})
file(READ ${_prng} _prng_hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," _prng_bytes "${_prng_hex}")
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/policy-rng.c.tmp
  "/* generated from schemas/policy.rng */\n#include <stddef.h>\n"
  "const unsigned char netckpt_policy_rng[] = {${_prng_bytes} 0x00};\n"
  "const size_t netckpt_policy_rng_len = sizeof(netckpt_policy_rng) - 1;\n")
configure_file(${CMAKE_CURRENT_BINARY_DIR}/policy-rng.c.tmp
  ${CMAKE_CURRENT_BINARY_DIR}/policy-rng.c COPYONLY)

# Pure modules (unit-tested without a daemon).
add_library(netckpt-daemon-core STATIC policy.c scheduler.c retention.c metrics.c
  ${CMAKE_CURRENT_BINARY_DIR}/policy-rng.c)
target_link_libraries(netckpt-daemon-core PUBLIC netckpt-host)

# The daemon's pieces, as a library so unit tests reach the job table and the command table.
add_library(netckpt-daemon STATIC daemon-jobs.c daemon-run.c daemon-policy.c daemon-server.c
  daemon-commands.c)
target_link_libraries(netckpt-daemon PUBLIC netckpt-daemon-core netckpt-cli)

# The client half, for the CLI and tools.
add_library(netckpt-daemon-client STATIC daemon-client.c)
target_link_libraries(netckpt-daemon-client PUBLIC netckpt-proto)

add_executable(netckptd netckptd.c)
target_link_libraries(netckptd PRIVATE netckpt-daemon)
install(TARGETS netckptd RUNTIME DESTINATION sbin)
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/systemd/netckptd.service
  DESTINATION lib/systemd/system)

# The CLI forwards to a running daemon (host/cli-daemon.c): it lives in the CLI library and
# links the client half.
target_sources(netckpt-cli PRIVATE cli-daemon.c)
target_link_libraries(netckpt-cli PUBLIC netckpt-daemon-client)
