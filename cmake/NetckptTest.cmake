# Helpers to declare tests in one line each.
#   netckpt_unit_test(NAME SOURCES a.c b.c LIBS lib1 lib2)
#     a cmocka binary, label "unit".
#   netckpt_script_test(NAME SCRIPT path LABELS integration [TIMEOUT s])
#     a shell test run as root; it gets NETCKPT_BUILD_DIR and NETCKPT_SOURCE_DIR.
function(netckpt_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120
    ENVIRONMENT "NETCKPT_SOURCE_DIR=${NETCKPT_SOURCE_DIR};NETCKPT_BUILD_DIR=${CMAKE_BINARY_DIR}")
endfunction()

function(netckpt_script_test name)
  cmake_parse_arguments(T "" "SCRIPT;TIMEOUT" "LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND bash ${T_SCRIPT})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "NETCKPT_SOURCE_DIR=${NETCKPT_SOURCE_DIR};NETCKPT_BUILD_DIR=${CMAKE_BINARY_DIR}")
endfunction()
