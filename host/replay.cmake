# Held-traffic replay (host/replay.c, docs/replay.md) in the host library. Owner: replay.
target_sources(netckpt-host PRIVATE replay.c)
