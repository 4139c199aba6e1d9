# agent/ (the qga protocol): framing, server, client, and the schema/table agreement.
foreach(_t stream server client)
  netckpt_unit_test(test-qga-${_t} SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-qga-${_t}.c
                    LIBS netckpt-proto)
endforeach()
netckpt_unit_test(test-qga-schema SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-qga-schema.c
                  ${CMAKE_CURRENT_SOURCE_DIR}/schema-table-check.c LIBS netckpt-proto)
