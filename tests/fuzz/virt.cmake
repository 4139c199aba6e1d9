# host/domain-xml and the bundle manifest parser: libFuzzer target over untrusted XML. Built only
# with clang and -DNETCKPT_FUZZ=ON; ctest (label fuzz) runs it for $NETCKPT_FUZZ_SECONDS
# (default 60) from the seeds in corpus/host-xml (first byte: 0 domain XML, 1 manifest).
if(NETCKPT_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  set(_fzh -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_executable(fuzz-host-xml ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-host-xml.c
    ${NETCKPT_SOURCE_DIR}/host/domain-xml.c ${NETCKPT_SOURCE_DIR}/host/bundle.c
    ${CMAKE_BINARY_DIR}/host/checkpoint-rng.c)
  target_compile_options(fuzz-host-xml PRIVATE ${_fzh})
  target_link_options(fuzz-host-xml PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz-host-xml PRIVATE netckpt-common PkgConfig::LIBXML2 PkgConfig::JSONC
    PkgConfig::LIBVIRT)
  set(_work ${CMAKE_BINARY_DIR}/fuzz-corpus/host-xml)
  add_test(NAME fuzz-host-xml
           COMMAND sh -c "mkdir -p \"$1\" && exec \"$0\" -max_total_time=\${NETCKPT_FUZZ_SECONDS:-60} -max_len=20000 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=\"$1/../\" \"$1\" \"$2\""
                   $<TARGET_FILE:fuzz-host-xml> ${_work}
                   ${CMAKE_CURRENT_SOURCE_DIR}/corpus/host-xml)
  if(DEFINED ENV{NETCKPT_FUZZ_SECONDS})
    math(EXPR _timeout_h "$ENV{NETCKPT_FUZZ_SECONDS} + 300")
  else()
    set(_timeout_h 360)
  endif()
  set_tests_properties(fuzz-host-xml PROPERTIES LABELS fuzz TIMEOUT ${_timeout_h}
    ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1")
endif()
