# Crash safety and storage health (tests/interop/test_crash.py): kill -9 in a loop during
# continuous CA/JWT/Txn key rotation with entries and revocations written in between; a
# read-only and a full state directory (tmpfs in a private mount namespace, root only).
#
# Included at the end of interop.cmake, which defines WI_INTEROP_ENV and WI_PYSTUBS.

if(NOT TARGET wimsed OR NOT TARGET wimsectl OR NOT DEFINED WI_PYSTUBS)
  message(STATUS "interop.crash: wimsed/wimsectl or the Python stubs missing, test not registered")
  return()
endif()

add_test(NAME interop.crash
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_crash.py
         WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(interop.crash PROPERTIES
  TIMEOUT 300
  LABELS interop
  ENVIRONMENT "${WI_INTEROP_ENV};WIMSED_PYSTUBS=${WI_PYSTUBS}")
