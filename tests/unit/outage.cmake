# The guest-clock part of issue 5 on the CLI side (the real-VM part is tests/e2e/outage.cmake).
netckpt_unit_test(test-cli-clock SOURCES test-cli-clock.c LIBS netckpt-cli)
