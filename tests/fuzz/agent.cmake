# agent/: libFuzzer target for the qga framer, server and client. Built only with clang and
# -DNETCKPT_FUZZ=ON. ctest (label fuzz) runs it for $NETCKPT_FUZZ_SECONDS (default 60) from
# the committed seeds in corpus/qga (with the dictionary qga.dict); new inputs go to the build
# tree, never the source tree.
if(NETCKPT_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  set(_fz -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
          -fno-omit-frame-pointer)
  file(GLOB _proto_srcs ${NETCKPT_SOURCE_DIR}/agent/*.c)
  # A private instrumented copy of the protocol library, so nothing else links the fuzzer.
  add_library(netckpt-proto-fuzz STATIC ${_proto_srcs})
  target_compile_options(netckpt-proto-fuzz PRIVATE ${_fz})
  target_link_libraries(netckpt-proto-fuzz PUBLIC PkgConfig::JSONC netckpt-common)

  add_executable(fuzz-qga-stream ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-qga-stream.c)
  target_compile_options(fuzz-qga-stream PRIVATE -fsanitize=fuzzer,address,undefined
                         -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(fuzz-qga-stream PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz-qga-stream PRIVATE netckpt-proto-fuzz)

  if(DEFINED ENV{NETCKPT_FUZZ_SECONDS})
    set(_secs $ENV{NETCKPT_FUZZ_SECONDS})
  else()
    set(_secs 60)
  endif()
  math(EXPR _timeout "${_secs} + 300")
  set(_work ${CMAKE_BINARY_DIR}/fuzz-corpus/qga)
  add_test(NAME fuzz-qga-stream
           COMMAND sh -c "mkdir -p \"$1\" && exec \"$0\" -max_total_time=\${NETCKPT_FUZZ_SECONDS:-60} -max_len=70000 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 -dict=\"$3\" -artifact_prefix=\"$1/../\" \"$1\" \"$2\""
                   $<TARGET_FILE:fuzz-qga-stream> ${_work}
                   ${CMAKE_CURRENT_SOURCE_DIR}/corpus/qga ${CMAKE_CURRENT_SOURCE_DIR}/qga.dict)
  set_tests_properties(fuzz-qga-stream PROPERTIES LABELS fuzz TIMEOUT ${_timeout}
    ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1")
endif()
