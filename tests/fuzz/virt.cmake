# The host's untrusted XML: domain XML and the bundle manifest (with RelaxNG validation).
netckpt_fuzz_test(fuzz-host-xml SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-host-xml.c ${NETCKPT_SOURCE_DIR}/host/domain-xml.c ${NETCKPT_SOURCE_DIR}/host/bundle.c
  ${CMAKE_BINARY_DIR}/host/checkpoint-rng.c LIBS netckpt-common PkgConfig::LIBXML2 PkgConfig::JSONC
  PkgConfig::LIBVIRT CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/corpus/host-xml MAX_LEN 20000)
