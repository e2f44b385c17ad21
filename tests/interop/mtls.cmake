# SPIFFE mTLS interop (tests/interop/test_mtls.py): the examples/mtls-echo pair, built on
# libwimse's X.509 source and mTLS helpers, against the real daemon; Python's ssl module as
# an independently configured TLS client (with wimsectl's files, without a certificate,
# with a foreign CA's certificate). The test makes its own temp dir, data dir and socket.
#
# Included from the top-level CMakeLists.txt with the other tests/interop/*.cmake files,
# after interop.cmake (which generates the Python stubs into <build>/interop/pystubs).

if(NOT TARGET wimsed OR NOT TARGET wimsectl)
  message(STATUS "interop.mtls: wimsed/wimsectl targets not defined, test not registered")
  return()
endif()
# Defines mtls_echo_server/mtls_echo_client if the top level has not included it yet
# (examples.cmake has an include guard).
include(${CMAKE_SOURCE_DIR}/examples/examples.cmake)
if(NOT EXISTS /usr/bin/python3)
  message(WARNING "interop.mtls: /usr/bin/python3 missing, test not registered")
  return()
endif()

add_test(NAME interop.mtls
         COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/interop/test_mtls.py
         WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(interop.mtls PROPERTIES
  TIMEOUT 120
  LABELS interop
  ENVIRONMENT "WIMSED=$<TARGET_FILE:wimsed>;WIMSECTL=$<TARGET_FILE:wimsectl>;WIMSED_REPO=${CMAKE_SOURCE_DIR};PYTHONDONTWRITEBYTECODE=1;WIMSED_PYSTUBS=${CMAKE_BINARY_DIR}/interop/pystubs;MTLS_ECHO_SERVER=$<TARGET_FILE:mtls_echo_server>;MTLS_ECHO_CLIENT=$<TARGET_FILE:mtls_echo_client>")
