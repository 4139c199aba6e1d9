# guest/sock-diag reply parsing and guest/proc-owner on a fake /proc (no privileges needed).
netckpt_unit_test(test-guest-discovery
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test-guest-discovery.c
  LIBS netckpt-guest)
