# guest/thaw-kick against the real kernel: a thawed connection whose RTO backed off behind
# the gate moves before that RTO could fire; an unkicked control proves it (root, netns).
add_executable(thaw-kick-driver ${CMAKE_CURRENT_SOURCE_DIR}/thaw-kick-driver.c)
target_link_libraries(thaw-kick-driver PRIVATE netckpt-guest)
set_target_properties(thaw-kick-driver PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/integration)
netckpt_script_test(thaw-kick SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/thaw-kick.sh
  LABELS integration TIMEOUT 240)
# The same through a real netckpt-agent's guest-net-thaw (kick true and false).
netckpt_script_test(thaw-kick-agent SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/thaw-kick-agent.sh
  LABELS integration TIMEOUT 240)
