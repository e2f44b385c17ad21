# Registration-entry interop (tests/interop/test_entries.py): live entry changes through
# the admin socket pushed to open FetchX509SVID streams within 100 ms, persistence across
# restart and kill -9, `wimsectl entry`, hostile admin requests, config removal on SIGHUP.
#
# Included at the end of interop.cmake, which defines WI_INTEROP_ENV and WI_PYSTUBS.

if(NOT TARGET wimsed OR NOT TARGET wimsectl OR NOT DEFINED WI_PYSTUBS)
  message(STATUS "interop.entries: wimsed/wimsectl or the Python stubs missing, test not registered")
  return()
endif()

add_test(NAME interop.entries
         COMMAND ${WI_INTEROP_PYTHON} ${WI_INTEROP_DIR}/test_entries.py
         WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(interop.entries PROPERTIES
  TIMEOUT 120
  LABELS interop
  ENVIRONMENT "${WI_INTEROP_ENV};WIMSED_PYSTUBS=${WI_PYSTUBS}")
