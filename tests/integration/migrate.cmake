# netckpt migrate's command line and early failures on libvirt's test driver (no VM).
netckpt_script_test(migrate-cli SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/migrate-cli.sh
                    LABELS integration TIMEOUT 60)
