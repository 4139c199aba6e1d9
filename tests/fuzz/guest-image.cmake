# guest/socket-image (and the sock_diag reply parser): libFuzzer target over what the host reads
# from the untrusted guest. Built only with clang and -DNETCKPT_FUZZ=ON; ctest (label fuzz) runs
# it for $NETCKPT_FUZZ_SECONDS (default 60) from the seeds in corpus/socket-image (a first byte
# of 0x01 selects the netlink parser); new inputs go to the build tree.
if(NETCKPT_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  set(_fzi -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_executable(fuzz-socket-image ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-socket-image.c
    ${NETCKPT_SOURCE_DIR}/guest/socket-image.c ${NETCKPT_SOURCE_DIR}/guest/sock-diag.c
    ${NETCKPT_SOURCE_DIR}/guest/tcp-repair.c)
  target_compile_options(fuzz-socket-image PRIVATE ${_fzi})
  target_link_options(fuzz-socket-image PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz-socket-image PRIVATE netckpt-common PkgConfig::JSONC)
  set(_work ${CMAKE_BINARY_DIR}/fuzz-corpus/socket-image)
  add_test(NAME fuzz-socket-image
           COMMAND sh -c "mkdir -p \"$1\" && exec \"$0\" -max_total_time=\${NETCKPT_FUZZ_SECONDS:-60} -max_len=65536 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=\"$1/../socket-image-\" \"$1\" \"$2\""
                   $<TARGET_FILE:fuzz-socket-image> ${_work}
                   ${CMAKE_CURRENT_SOURCE_DIR}/corpus/socket-image)
  if(DEFINED ENV{NETCKPT_FUZZ_SECONDS})
    math(EXPR _timeout_i "$ENV{NETCKPT_FUZZ_SECONDS} + 300")
  else()
    set(_timeout_i 360)
  endif()
  set_tests_properties(fuzz-socket-image PROPERTIES LABELS fuzz TIMEOUT ${_timeout_i}
    ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1")
endif()
