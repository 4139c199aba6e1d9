# Held-traffic replay (host/replay.c) and the stop-mode outage holder (host/hold.c), docs/replay.md, in the host library. Owner: replay.
target_sources(netckpt-host PRIVATE replay.c hold.c)
