# agent/ (the qga protocol): framing, server, client, and the schema/table agreement.
foreach(_t stream server client schema)
  netckpt_unit_test(test-qga-${_t} SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-qga-${_t}.c
                    LIBS netckpt-proto)
endforeach()
