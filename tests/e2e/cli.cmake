# netckpt checkpoint/restore on a real VM (tests/e2e/lib/vm-env.sh): stop mode + restore,
# --continue, byte-exact streams.
netckpt_script_test(e2e-checkpoint SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint.sh
  LABELS e2e TIMEOUT 600)
# SIGINT and SIGKILL of netckpt mid-save, with live streams.
netckpt_script_test(e2e-checkpoint-faults SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint-faults.sh
  LABELS e2e TIMEOUT 600)
