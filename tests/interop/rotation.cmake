# Rotation interop (tests/interop/test_rotation.py): X.509-SVID, CA and JWT-key rotation
# watched for ~56 s by Python grpcio (cryptography, PyJWT) and Node @grpc/grpc-js
# (node/watch_x509.js) clients that verify everything against the bundles they hold.
#
# Included at the end of interop.cmake, which defines WI_INTEROP_ENV and WI_PYSTUBS.

if(NOT TARGET wimsed OR NOT DEFINED WI_PYSTUBS)
  message(STATUS "interop.rotation: wimsed or the Python stubs missing, test not registered")
  return()
endif()
find_program(WI_NODE_ROT node)
if(NOT WI_NODE_ROT OR NOT EXISTS ${CMAKE_CURRENT_LIST_DIR}/node/node_modules/@grpc/grpc-js)
  message(WARNING "interop.rotation: node or @grpc/grpc-js missing, rotation test not registered")
  return()
endif()

add_test(NAME interop.rotation
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_rotation.py
         WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(interop.rotation PROPERTIES
  TIMEOUT 180
  LABELS interop
  ENVIRONMENT "${WI_INTEROP_ENV};WIMSED_PYSTUBS=${WI_PYSTUBS};WIMSED_NODE=${WI_NODE_ROT}")
