# guest/thaw-kick without privileges: arguments, verdict names, idle sockets are not kicked.
netckpt_unit_test(test-thaw-kick SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-thaw-kick.c
  LIBS netckpt-guest)
