# host/history (the rollback decision table and its file) and host/peer-probe (the packet).
netckpt_unit_test(test-history SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-history.c
                  LIBS netckpt-host)
