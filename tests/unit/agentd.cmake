# netckpt-agent's freezer: what needs no frozen sockets (parsing, thawed-state commands,
# state-file recovery). Freezing itself is tested in tests/integration/agent-*.sh.
netckpt_unit_test(test-net-freezer
  SOURCES test-net-freezer.c ${NETCKPT_SOURCE_DIR}/guest/net-freezer.c
  LIBS netckpt-guest netckpt-proto netckpt-common)
