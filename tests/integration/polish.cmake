# Regression tests for what a new user's trial of the netckpt CLI met (see cli-polish.sh).
netckpt_script_test(cli-polish SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/cli-polish.sh
  LABELS integration TIMEOUT 180)
