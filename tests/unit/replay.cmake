# host/replay: validation, buffer bound, pcap writer/reader, nflog parser (no kernel needed).
netckpt_unit_test(test-replay SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-replay.c LIBS netckpt-host)
