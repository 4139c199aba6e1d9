# host/gate (names, table mapping; no kernel needed) and host/journal (files only).
netckpt_unit_test(test-gate SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-gate.c LIBS netckpt-host)
netckpt_unit_test(test-journal SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-journal.c LIBS netckpt-host)
