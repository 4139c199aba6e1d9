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

#   netckpt_fuzz_test(NAME SOURCES a.c ... LIBS ... CORPUS dir [DICT file] [MAX_LEN n]
#                     [SECONDS default] [ENV "K=V;..."])
#     a libFuzzer target (clang, -DNETCKPT_FUZZ=ON only), label "fuzz". It runs for
#     $NETCKPT_FUZZ_SECONDS (else SECONDS, default 30) from the committed seeds in CORPUS;
#     new inputs and crash artifacts go to the build tree, never the source tree.
function(netckpt_fuzz_test name)
  if(NOT (NETCKPT_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang"))
    return()
  endif()
  cmake_parse_arguments(F "" "CORPUS;DICT;MAX_LEN;SECONDS" "SOURCES;LIBS;ENV" ${ARGN})
  if(NOT F_MAX_LEN)
    set(F_MAX_LEN 70000)
  endif()
  if(NOT F_SECONDS)
    set(F_SECONDS 30)
  endif()
  set(_fz -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_executable(${name} ${F_SOURCES})
  target_compile_options(${name} PRIVATE ${_fz})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  set(_dict "")
  if(F_DICT)
    set(_dict "-dict=${F_DICT}")
  endif()
  if(DEFINED ENV{NETCKPT_FUZZ_SECONDS})
    math(EXPR _timeout "$ENV{NETCKPT_FUZZ_SECONDS} + 300")
  else()
    math(EXPR _timeout "${F_SECONDS} + 300")
  endif()
  add_test(NAME ${name}
    COMMAND sh -c "mkdir -p \"$1\" && exec \"$0\" -max_total_time=\${NETCKPT_FUZZ_SECONDS:-${F_SECONDS}} -max_len=${F_MAX_LEN} -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 ${_dict} -artifact_prefix=\"$1/../${name}-\" \"$1\" \"$2\""
            $<TARGET_FILE:${name}> ${CMAKE_BINARY_DIR}/fuzz-corpus/${name} ${F_CORPUS})
  set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT ${_timeout}
    ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1;${F_ENV}")
endfunction()
