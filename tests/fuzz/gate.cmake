# host/journal's parser and host/gate's name checks.
find_package(Threads REQUIRED)
netckpt_fuzz_test(fuzz-journal SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-journal.c ${NETCKPT_SOURCE_DIR}/host/gate.c ${NETCKPT_SOURCE_DIR}/host/journal.c
  LIBS netckpt-common PkgConfig::NFTABLES PkgConfig::JSONC Threads::Threads
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/corpus/journal)
