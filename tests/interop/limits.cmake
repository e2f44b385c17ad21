# tests/interop/limits.cmake — limits against a hostile local user (issue 5 item 7):
# streams per connection, per-identity rate limits, a fork-bomb-style burst.
# Included from interop.cmake (which defines WI_INTEROP_* and WI_PYSTUBS).
if(DEFINED WI_PYSTUBS)
  add_test(NAME interop.limits
           COMMAND ${WI_INTEROP_PYTHON} ${WI_INTEROP_DIR}/test_limits.py
           WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  # RUN_SERIAL: the fork-bomb scenario measures latency and must not share
  # the machine with other load tests.
  set_tests_properties(interop.limits PROPERTIES
    TIMEOUT 120
    LABELS interop
    RUN_SERIAL TRUE
    ENVIRONMENT "${WI_INTEROP_ENV};WIMSED_PYSTUBS=${WI_PYSTUBS}")
endif()
