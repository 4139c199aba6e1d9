# Live migration with a network quiesce (host/migrate.h) and its `netckpt migrate` command.
# Owner: the migration engineer.
target_sources(netckpt-host PRIVATE migrate.c)
target_sources(netckpt-cli PRIVATE cli-migrate.c)
