# netckptd unit tests: scheduler (fake clock), retention, policy parser (good and bad files
# against the RNG), the daemon command table against schemas/daemon-commands.json, the job
# table (busy domains, parallel jobs) with a fake runner, metrics.
netckpt_unit_test(test-scheduler SOURCES test-scheduler.c LIBS netckpt-daemon-core)
netckpt_unit_test(test-retention SOURCES test-retention.c LIBS netckpt-daemon-core)
netckpt_unit_test(test-policy SOURCES test-policy.c LIBS netckpt-daemon-core)
netckpt_unit_test(test-daemon-schema SOURCES test-daemon-schema.c schema-table-check.c LIBS netckpt-daemon)
netckpt_unit_test(test-daemon-jobs SOURCES test-daemon-jobs.c LIBS netckpt-daemon)
# guest-net-status's retransmitting count (guest/tcp-retrans.h): the rule on tcp_info records.
netckpt_unit_test(test-tcp-retrans SOURCES test-tcp-retrans.c LIBS netckpt-guest)
# Per-thread views of the daemon's libvirt connection: no shared error buffer.
netckpt_unit_test(test-daemon-virt SOURCES test-daemon-virt.c LIBS netckpt-daemon)
