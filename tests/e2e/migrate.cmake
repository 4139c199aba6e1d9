# Live migration between two libvirtds standing for two hosts (tests/e2e/lib/two-hosts.sh),
# with streams through the switchover and a rollback after the quiesce. One VM boot.
if(NETCKPT_STATIC_AGENT AND NOT NETCKPT_SANITIZE)
  netckpt_script_test(e2e-migrate SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/migrate.sh
                      LABELS e2e TIMEOUT 600)
endif()
