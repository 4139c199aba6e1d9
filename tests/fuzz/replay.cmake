# host/replay's pcap reader and nflog message parser.
find_package(Threads REQUIRED)
netckpt_fuzz_test(fuzz-replay SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-replay.c ${NETCKPT_SOURCE_DIR}/host/replay.c ${NETCKPT_SOURCE_DIR}/host/gate.c
  LIBS netckpt-common PkgConfig::NFTABLES PkgConfig::JSONC Threads::Threads
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/corpus/replay ENV "NETCKPT_LOG=err")
