# netckptd on a real VM: policy runs with retention, Busy, SIGKILL of the daemon mid-save and
# the journal replay at restart, byte-exact streams.
netckpt_script_test(e2e-daemon SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/daemon.sh
  LABELS e2e TIMEOUT 600)
