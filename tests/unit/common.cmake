# common/util (files under a temp dir, encodings; no privileges needed).
netckpt_unit_test(test-common-util SOURCES ${CMAKE_CURRENT_LIST_DIR}/test-common-util.c
  LIBS netckpt-common)
