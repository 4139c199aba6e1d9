# The checkpoint/restore transaction, its real ops and the tap watch for the report (in the
# host library: the daemon reuses them) and the netckpt CLI. Owner: the CLI/transaction engineer.
target_sources(netckpt-host PRIVATE transaction.c txn-real.c tap-watch.c)
target_link_libraries(netckpt-host PUBLIC netckpt-guest)

# The CLI's pieces as a library so unit tests reach the parser and the output helpers.
add_library(netckpt-cli STATIC cli-opts.c cli-output.c cli-commands.c cli-txn.c)
target_link_libraries(netckpt-cli PUBLIC netckpt-host)

add_executable(netckpt netckpt.c)
target_link_libraries(netckpt PRIVATE netckpt-cli)
install(TARGETS netckpt RUNTIME DESTINATION bin)
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/completion/netckpt.bash DESTINATION share/bash-completion/completions RENAME netckpt)
