# systemd integration and graceful shutdown (tests/interop/test_systemd.py): systemd-analyze
# verify on systemd/wimsed.service, sysusers.d/tmpfiles.d applied to a scratch root, the
# unit's capability choice exercised (non-root daemon with ambient capabilities), a DESTDIR
# `cmake --install` of this build dir, sd_notify against a fake NOTIFY_SOCKET, and SIGTERM
# with open streams, an in-flight unary call and an in-flight token exchange.
#
# Included from interop.cmake (which generates the Python stubs into <build>/interop/pystubs).

if(NOT TARGET wimsed OR NOT TARGET wimsectl)
  message(STATUS "interop.systemd: wimsed/wimsectl targets not defined, test not registered")
  return()
endif()
if(NOT EXISTS /usr/bin/python3)
  message(WARNING "interop.systemd: /usr/bin/python3 missing, test not registered")
  return()
endif()

add_test(NAME interop.systemd
         COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/interop/test_systemd.py
         WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(interop.systemd PROPERTIES
  TIMEOUT 180
  LABELS interop
  ENVIRONMENT "WIMSED=$<TARGET_FILE:wimsed>;WIMSECTL=$<TARGET_FILE:wimsectl>;WIMSED_REPO=${CMAKE_SOURCE_DIR};PYTHONDONTWRITEBYTECODE=1;WIMSED_PYSTUBS=${CMAKE_BINARY_DIR}/interop/pystubs;WIMSED_BUILD=${CMAKE_BINARY_DIR}")
