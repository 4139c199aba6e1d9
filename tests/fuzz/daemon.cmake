# netckptd's policy parser: libFuzzer target over untrusted policy XML. Built only with clang
# and -DNETCKPT_FUZZ=ON; ctest (label fuzz) runs it for $NETCKPT_FUZZ_SECONDS (default 60)
# from the seeds in corpus/policy (the unit tests' good and bad files).
if(NETCKPT_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  set(_fzp -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_executable(fuzz-policy ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-policy.c
    ${NETCKPT_SOURCE_DIR}/host/policy.c ${NETCKPT_SOURCE_DIR}/host/scheduler.c
    ${CMAKE_BINARY_DIR}/host/policy-rng.c)
  target_compile_options(fuzz-policy PRIVATE ${_fzp})
  target_link_options(fuzz-policy PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz-policy PRIVATE netckpt-common PkgConfig::LIBXML2)
  set(_work ${CMAKE_BINARY_DIR}/fuzz-corpus/policy)
  add_test(NAME fuzz-policy
           COMMAND sh -c "mkdir -p \"$1\" && exec \"$0\" -max_total_time=\${NETCKPT_FUZZ_SECONDS:-60} -max_len=8000 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=\"$1/../\" \"$1\" \"$2\""
                   $<TARGET_FILE:fuzz-policy> ${_work}
                   ${CMAKE_CURRENT_SOURCE_DIR}/corpus/policy)
  if(DEFINED ENV{NETCKPT_FUZZ_SECONDS})
    math(EXPR _timeout_p "$ENV{NETCKPT_FUZZ_SECONDS} + 300")
  else()
    set(_timeout_p 360)
  endif()
  set_tests_properties(fuzz-policy PROPERTIES LABELS fuzz TIMEOUT ${_timeout_p}
    ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1")
endif()
