# netckpt-workload (guest/workload) between two namespaces: verification, markers, failures.
netckpt_script_test(workload-netns SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/workload-netns.sh
                    LABELS integration TIMEOUT 120)
