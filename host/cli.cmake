# The checkpoint/restore transaction (in the host library: the daemon reuses it) and the
# netckpt CLI. Owner: the CLI/transaction engineer.
target_sources(netckpt-host PRIVATE transaction.c)
