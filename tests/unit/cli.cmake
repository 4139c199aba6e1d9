# Unit tests of the transaction state machine (fake txn_ops) and the CLI.
netckpt_unit_test(test-transaction SOURCES test-transaction.c LIBS netckpt-host)
netckpt_unit_test(test-cli SOURCES test-cli.c LIBS netckpt-cli)
netckpt_unit_test(test-tap-watch SOURCES test-tap-watch.c LIBS netckpt-host)
