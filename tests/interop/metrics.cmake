# Metrics and status interop (tests/interop/test_metrics.py): GET /metrics and /status on
# the admin socket with curl --unix-socket, a strict Prometheus text parser (and Debian's
# python3-prometheus-client when installed), `wimsectl status`, socket mode and a
# connection attempt from uid 65534 (root only).
#
# Included at the end of interop.cmake, which defines WI_INTEROP_ENV and WI_PYSTUBS.

if(NOT TARGET wimsed OR NOT TARGET wimsectl OR NOT DEFINED WI_PYSTUBS)
  message(STATUS "interop.metrics: wimsed/wimsectl or the Python stubs missing, test not registered")
  return()
endif()
find_program(WI_CURL curl)
if(NOT WI_CURL)
  message(WARNING "interop.metrics: curl not found, metrics test not registered")
  return()
endif()

add_test(NAME interop.metrics
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_metrics.py
         WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(interop.metrics PROPERTIES
  TIMEOUT 90
  LABELS interop
  ENVIRONMENT "${WI_INTEROP_ENV};WIMSED_PYSTUBS=${WI_PYSTUBS}")
