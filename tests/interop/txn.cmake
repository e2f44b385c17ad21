# Transaction Token Service interop (tests/interop/test_txn.py, test_txn_hostile.py): the
# real daemon's exchange socket and HTTPS listener driven by curl, http.client over
# AF_UNIX (in this process and in children run as other uids by setpriv), Python ssl
# with wimsectl's SVID files, PyJWT, and a test IdP (idp.py) serving JWKS over HTTP.
# The uid-switching, admin and kill-switch cases need root and are skipped otherwise.
#
# Included at the end of interop.cmake, which defines WI_INTEROP_ENV and WI_PYSTUBS.

if(NOT TARGET wimsed OR NOT TARGET wimsectl OR NOT DEFINED WI_PYSTUBS)
  message(STATUS "interop.txn: wimsed/wimsectl or the Python stubs missing, tests not registered")
  return()
endif()
find_program(WI_CURL curl)
if(NOT WI_CURL)
  message(WARNING "interop.txn: curl not found, Transaction Token tests not registered")
  return()
endif()

# name -> (file, timeout in seconds); each file takes ~12 s (longer under ASan).
foreach(spec "txn:test_txn.py:180" "txn_hostile:test_txn_hostile.py:180")
  string(REPLACE ":" ";" parts ${spec})
  list(GET parts 0 name)
  list(GET parts 1 file)
  list(GET parts 2 tmo)
  add_test(NAME interop.${name}
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/${file}
           WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(interop.${name} PROPERTIES
    TIMEOUT ${tmo}
    LABELS interop
    ENVIRONMENT "${WI_INTEROP_ENV};WIMSED_PYSTUBS=${WI_PYSTUBS}")
endforeach()
