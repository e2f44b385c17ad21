# Interop tests: the real wimsed driven by independent client stacks
# (Python grpcio + cryptography + PyJWT + openssl(1), Node @grpc/grpc-js + node:crypto).
# Included from the top-level CMakeLists.txt when WI_INTEROP is ON.
#
# Each test starts its own daemon(s) in its own temporary directory with its own
# socket, so the tests are independent and safe under `ctest -j`.

set(WI_INTEROP_DIR ${CMAKE_SOURCE_DIR}/tests/interop)

if(NOT TARGET wimsed OR NOT TARGET wimsectl)
  message(STATUS "interop: wimsed/wimsectl targets not defined yet, interop tests not registered")
  return()
endif()

# Always Debian's interpreter: the first python3 on PATH may be one without
# python3-grpcio / python3-protobuf / python3-cryptography.
set(WI_INTEROP_PYTHON /usr/bin/python3)
find_program(WI_PROTOC protoc)
find_program(WI_NODE node)

set(WI_INTEROP_ENV
    "WIMSED=$<TARGET_FILE:wimsed>"
    "WIMSECTL=$<TARGET_FILE:wimsectl>"
    "WIMSED_REPO=${CMAKE_SOURCE_DIR}"
    "PYTHONDONTWRITEBYTECODE=1")
if(WI_SANITIZE)
  # ASan keeps freed memory in quarantine, so RSS is no measure of leaks
  # there; LeakSanitizer at the daemon's exit is (the harness requires exit 0).
  list(APPEND WI_INTEROP_ENV "WIMSED_SANITIZED=1")
endif()

# ---- Python stubs, generated at build time (never committed) ------------------
# workload.proto is compiled with -I proto so its descriptor is "workload.proto" and its
# import of google/protobuf/struct.proto resolves to the python3-protobuf runtime's
# struct_pb2. health.proto is compiled with -I at its own directory so the module is a
# top-level `health_pb2` and cannot collide with grpcio's `grpc` package.
if(WI_PROTOC AND EXISTS ${WI_INTEROP_PYTHON})
  set(WI_PYSTUBS ${CMAKE_BINARY_DIR}/interop/pystubs)
  add_custom_command(
    OUTPUT ${WI_PYSTUBS}/workload_pb2.py ${WI_PYSTUBS}/health_pb2.py
    COMMAND ${CMAKE_COMMAND} -E make_directory ${WI_PYSTUBS}
    COMMAND ${WI_PROTOC} -I${CMAKE_SOURCE_DIR}/proto --python_out=${WI_PYSTUBS}
            ${CMAKE_SOURCE_DIR}/proto/workload.proto
    COMMAND ${WI_PROTOC} -I${CMAKE_SOURCE_DIR}/proto/grpc/health/v1 --python_out=${WI_PYSTUBS}
            ${CMAKE_SOURCE_DIR}/proto/grpc/health/v1/health.proto
    DEPENDS ${CMAKE_SOURCE_DIR}/proto/workload.proto
            ${CMAKE_SOURCE_DIR}/proto/google/protobuf/struct.proto
            ${CMAKE_SOURCE_DIR}/proto/grpc/health/v1/health.proto
    COMMENT "protoc --python_out (interop stubs)")
  add_custom_target(interop_pystubs ALL
                    DEPENDS ${WI_PYSTUBS}/workload_pb2.py ${WI_PYSTUBS}/health_pb2.py)

  # name -> (file, timeout in seconds)
  foreach(spec "x509:test_x509.py:90" "jwt:test_jwt.py:90" "cli:test_cli.py:90"
               "robustness:test_robustness.py:120")
    string(REPLACE ":" ";" parts ${spec})
    list(GET parts 0 name)
    list(GET parts 1 file)
    list(GET parts 2 tmo)
    add_test(NAME interop.${name}
             COMMAND ${WI_INTEROP_PYTHON} ${WI_INTEROP_DIR}/${file}
             WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(interop.${name} PROPERTIES
      TIMEOUT ${tmo}
      LABELS interop
      ENVIRONMENT "${WI_INTEROP_ENV};WIMSED_PYSTUBS=${WI_PYSTUBS}")
  endforeach()
else()
  message(WARNING "interop: protoc or ${WI_INTEROP_PYTHON} missing, Python interop tests not registered")
endif()

# ---- Node (@grpc/grpc-js); node_modules comes from scripts/install-deps ----------
if(WI_NODE)
  add_test(NAME interop.node_x509
           COMMAND ${WI_NODE} --test-reporter=spec ${WI_INTEROP_DIR}/node/test_x509.js
           WORKING_DIRECTORY ${WI_INTEROP_DIR}/node)
  set_tests_properties(interop.node_x509 PROPERTIES
    TIMEOUT 90
    LABELS interop
    ENVIRONMENT "${WI_INTEROP_ENV}")
else()
  message(WARNING "interop: node not found, Node interop test not registered")
endif()

# Further interop suites, each in its own file (mTLS between agents, ...).
include(${CMAKE_CURRENT_LIST_DIR}/mtls.cmake OPTIONAL)
include(${CMAKE_CURRENT_LIST_DIR}/txn.cmake OPTIONAL)
include(${CMAKE_CURRENT_LIST_DIR}/systemd.cmake OPTIONAL)
include(${CMAKE_CURRENT_LIST_DIR}/metrics.cmake OPTIONAL)
include(${CMAKE_CURRENT_LIST_DIR}/limits.cmake OPTIONAL)
include(${CMAKE_CURRENT_LIST_DIR}/rotation.cmake OPTIONAL)
include(${CMAKE_CURRENT_LIST_DIR}/entries.cmake OPTIONAL)
include(${CMAKE_CURRENT_LIST_DIR}/crash.cmake OPTIONAL)
