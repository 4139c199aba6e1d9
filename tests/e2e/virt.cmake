# host/agent-link against a real guest agent on all three paths (needs the test guest image).
netckpt_script_test(virt-agent-paths SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/virt-agent-paths.sh
  LABELS e2e TIMEOUT 300)
# 77: skipped, the build has no static agent for the guest image.
set_tests_properties(virt-agent-paths PROPERTIES SKIP_RETURN_CODE 77)
