# host/peer-probe on real kernel sockets: a rolled-back, destroyed guest socket's RST does not
# reach a peer that moved on; the probe makes the guest's answer reach it (IPv4 and IPv6).
add_executable(peer-probe ${NETCKPT_SOURCE_DIR}/tests/tools/peer-probe.c)
target_link_libraries(peer-probe PRIVATE netckpt-host)
netckpt_script_test(rollback-probe SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/rollback-probe.sh
                    LABELS integration TIMEOUT 120)
