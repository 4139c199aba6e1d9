# Rollback safety on a real VM (issue 5): a --continue bundle restored after both sides moved
# on resets the peers' sockets (ECONNRESET within 1 s, measured on the peer), --stale=keep
# leaves them, a stop-mode bundle restored twice is a rollback the second time. One VM boot.
if(NETCKPT_STATIC_AGENT AND NOT NETCKPT_SANITIZE)
  netckpt_script_test(e2e-rollback SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/rollback.sh LABELS e2e
                      TIMEOUT 600)
endif()
