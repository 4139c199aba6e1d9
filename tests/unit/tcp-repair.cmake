# guest/tcp-repair without privileges: state names, validation of untrusted states, arguments.
netckpt_unit_test(test-tcp-repair SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-tcp-repair.c
  LIBS netckpt-guest)
