# guest/socket-image's strict parser (what the host reads from the untrusted guest) and the
# sock_diag reply parser (the first input byte picks which).
netckpt_fuzz_test(fuzz-socket-image SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-socket-image.c ${NETCKPT_SOURCE_DIR}/guest/socket-image.c
  ${NETCKPT_SOURCE_DIR}/guest/sock-diag.c ${NETCKPT_SOURCE_DIR}/guest/tcp-repair.c LIBS netckpt-common PkgConfig::JSONC
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/corpus/socket-image MAX_LEN 65536)
