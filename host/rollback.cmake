# Rollback safety: the per-domain history, the peer probe and their txn_ops (in the host
# library: the daemon's restores use them too). Owner: the rollback engineer.
target_sources(netckpt-host PRIVATE history.c peer-probe.c rollback.c)
