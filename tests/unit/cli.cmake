# Unit tests of the transaction state machine (fake txn_ops) and the CLI.
netckpt_unit_test(test-transaction SOURCES test-transaction.c LIBS netckpt-host)
