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

# Observability (tests/interop/test_observability.py): per-method RPC counters and latency
# histograms, attestation and token-service metrics, metrics_listen over TCP, --log-format
# json.  Needs Debian's python3-prometheus-client.
execute_process(COMMAND /usr/bin/python3 -c "import prometheus_client.parser"
                RESULT_VARIABLE _wi_prom_rc OUTPUT_QUIET ERROR_QUIET)
if(_wi_prom_rc EQUAL 0)
  add_test(NAME interop.observability
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_observability.py
           WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(interop.observability PROPERTIES
    TIMEOUT 120
    LABELS interop
    ENVIRONMENT "${WI_INTEROP_ENV};WIMSED_PYSTUBS=${WI_PYSTUBS}")
else()
  message(WARNING "interop.observability: python3-prometheus-client missing, test not registered")
endif()
