# host/agent-link against a real guest agent on all three paths (needs the test guest image).
netckpt_script_test(virt-agent-paths SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/virt-agent-paths.sh
  LABELS e2e TIMEOUT 300)
