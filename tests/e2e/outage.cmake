# Issue 5's outage matrix on the real VM (tests/e2e/outage-matrix.sh, one VM boot each):
#   e2e-outage-matrix (label e2e): stop-mode outages of 0 and 30 s, replay on and off, ARP and
#     static neighbour, the clock resync (and --clock=keep, and a backwards step), a replay
#     overflow, and ckpt-outage's SYN in a --continue gate window; replaces e2e-ckpt-outage
#     and e2e-ckpt-outage-static.
#   e2e-outage-long (label "long" only, so that `ctest -L e2e` does not run it): 120 s
#     outages; run it once with `ctest -L long`.
if(NETCKPT_STATIC_AGENT AND NOT NETCKPT_SANITIZE)
  netckpt_script_test(e2e-outage-matrix SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/outage-matrix.sh
                      LABELS e2e TIMEOUT 900)
  netckpt_script_test(e2e-outage-long SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/outage-long.sh
                      LABELS long TIMEOUT 1500)
endif()
