# host/domain-xml and host/bundle (files only, no libvirt connection needed).
netckpt_unit_test(test-domain-xml SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-domain-xml.c LIBS netckpt-host)
netckpt_unit_test(test-bundle SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-bundle.c LIBS netckpt-host)
netckpt_unit_test(test-virt SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-virt.c LIBS netckpt-host)
netckpt_unit_test(test-agent-link SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-agent-link.c LIBS netckpt-host)
