# host/policy's XML parser (with RelaxNG validation) and the scheduler's time parsing.
netckpt_fuzz_test(fuzz-policy SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-policy.c ${NETCKPT_SOURCE_DIR}/host/policy.c ${NETCKPT_SOURCE_DIR}/host/scheduler.c
  ${CMAKE_BINARY_DIR}/host/policy-rng.c LIBS netckpt-common PkgConfig::LIBXML2 PkgConfig::JSONC CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/corpus/policy
  MAX_LEN 8000)
