# netckptd on a real VM: policy runs with retention, Busy, SIGKILL of the daemon mid-save and
# the journal replay at restart, byte-exact streams.
netckpt_script_test(e2e-daemon SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/daemon.sh
  LABELS e2e TIMEOUT 600)
# Two real VMs checkpointed by netckptd at the same time.
netckpt_script_test(e2e-daemon-two-vms SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/daemon-two-vms.sh
  LABELS e2e TIMEOUT 600)
