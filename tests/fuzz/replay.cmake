# host/replay's pcap reader and nflog parser: libFuzzer target. Built only with clang and
# -DNETCKPT_FUZZ=ON; ctest (label fuzz) runs it for $NETCKPT_FUZZ_SECONDS (default 60) from the
# seeds in corpus/replay (byte 0 picks the reader); new inputs go to the build tree.
if(NETCKPT_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  find_package(Threads REQUIRED)
  add_executable(fuzz-replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-replay.c
    ${NETCKPT_SOURCE_DIR}/host/replay.c ${NETCKPT_SOURCE_DIR}/host/gate.c)
  target_compile_options(fuzz-replay PRIVATE -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(fuzz-replay PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz-replay PRIVATE netckpt-common PkgConfig::NFTABLES PkgConfig::JSONC
    Threads::Threads)
  set(_work ${CMAKE_BINARY_DIR}/fuzz-corpus/replay)
  add_test(NAME fuzz-replay
           COMMAND sh -c "mkdir -p \"$1\" && exec \"$0\" -max_total_time=\${NETCKPT_FUZZ_SECONDS:-60} -max_len=70000 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=\"$1/../\" \"$1\" \"$2\""
                   $<TARGET_FILE:fuzz-replay> ${_work}
                   ${CMAKE_CURRENT_SOURCE_DIR}/corpus/replay)
  if(DEFINED ENV{NETCKPT_FUZZ_SECONDS})
    math(EXPR _timeout_r "$ENV{NETCKPT_FUZZ_SECONDS} + 300")
  else()
    set(_timeout_r 360)
  endif()
  set_tests_properties(fuzz-replay PROPERTIES LABELS fuzz TIMEOUT ${_timeout_r}
    ENVIRONMENT "NETCKPT_LOG=err;ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1")
endif()
