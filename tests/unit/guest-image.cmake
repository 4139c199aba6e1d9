# guest/socket-image: round trip, strict validation of untrusted images, diff, schema agreement.
netckpt_unit_test(test-socket-image
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test-socket-image.c
  LIBS netckpt-guest)
