# Real-VM tests (guest/image, tests/e2e/lib/vm-env.sh): a TCG guest under libvirt's embedded
# driver. They need the static workload, so only in builds that make static binaries.
if(NETCKPT_STATIC_AGENT AND NOT NETCKPT_SANITIZE)
  netckpt_script_test(e2e-vm-smoke SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/vm-smoke.sh
                      LABELS e2e TIMEOUT 600)
endif()
