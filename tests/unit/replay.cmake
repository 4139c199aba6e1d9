# host/replay: validation, buffer bound, pcap writer/reader, nflog parser (no kernel needed).
netckpt_unit_test(test-replay SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-replay.c LIBS netckpt-host)
# host/hold: names, the spec from an image, the handover reader, dead holders' leftovers.
netckpt_unit_test(test-hold SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-hold.c LIBS netckpt-host)
