# host/journal's parser and host/gate's name checks: libFuzzer target. Built only with clang and
# -DNETCKPT_FUZZ=ON; ctest (label fuzz) runs it for $NETCKPT_FUZZ_SECONDS (default 60) from the
# seeds in corpus/journal; new inputs go to the build tree.
if(NETCKPT_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  find_package(Threads REQUIRED)
  set(_fzj -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_executable(fuzz-journal ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-journal.c
    ${NETCKPT_SOURCE_DIR}/host/gate.c ${NETCKPT_SOURCE_DIR}/host/journal.c)
  target_compile_options(fuzz-journal PRIVATE ${_fzj})
  target_link_options(fuzz-journal PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz-journal PRIVATE netckpt-common PkgConfig::NFTABLES PkgConfig::JSONC
    Threads::Threads)
  set(_work ${CMAKE_BINARY_DIR}/fuzz-corpus/journal)
  add_test(NAME fuzz-journal
           COMMAND sh -c "mkdir -p \"$1\" && exec \"$0\" -max_total_time=\${NETCKPT_FUZZ_SECONDS:-60} -max_len=70000 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=\"$1/../\" \"$1\" \"$2\""
                   $<TARGET_FILE:fuzz-journal> ${_work}
                   ${CMAKE_CURRENT_SOURCE_DIR}/corpus/journal)
  if(DEFINED ENV{NETCKPT_FUZZ_SECONDS})
    math(EXPR _timeout_j "$ENV{NETCKPT_FUZZ_SECONDS} + 300")
  else()
    set(_timeout_j 360)
  endif()
  set_tests_properties(fuzz-journal PROPERTIES LABELS fuzz TIMEOUT ${_timeout_j}
    ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1")
endif()
