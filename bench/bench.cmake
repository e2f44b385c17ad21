# bench/bench.cmake — the benchmark drivers and the smoke run (included from
# the top-level CMakeLists.txt).  The full benchmark is `make bench`
# (bench/run: a Release build in build-bench/); ctest runs only the smoke
# version, which asserts that every scenario completes and yields numbers.

add_executable(wi-bench
  ${CMAKE_SOURCE_DIR}/bench/main.c ${CMAKE_SOURCE_DIR}/bench/common.c ${CMAKE_SOURCE_DIR}/bench/grpc_load.c
  ${CMAKE_SOURCE_DIR}/bench/http_load.c ${CMAKE_SOURCE_DIR}/bench/crypto.c ${CMAKE_SOURCE_DIR}/bench/ready.c
  ${CMAKE_SOURCE_DIR}/bench/seed.c ${CMAKE_SOURCE_DIR}/bench/runs.c
  ${CMAKE_SOURCE_DIR}/bench/prune.c)
target_link_libraries(wi-bench PRIVATE wi_client wi_txn_token wi_core wi_proto PkgConfig::GRPC PkgConfig::CURL PkgConfig::UV
                      PkgConfig::JANSSON OpenSSL::Crypto Threads::Threads)

add_executable(wi-bench-echo-grpc ${CMAKE_SOURCE_DIR}/bench/echo_grpc.c)
target_link_libraries(wi-bench-echo-grpc PRIVATE PkgConfig::GRPC Threads::Threads)

add_executable(wi-bench-echo-http ${CMAKE_SOURCE_DIR}/bench/echo_http.c)
target_compile_definitions(wi-bench-echo-http PRIVATE H2O_USE_LIBUV=1)
target_link_libraries(wi-bench-echo-http PRIVATE PkgConfig::H2O PkgConfig::UV OpenSSL::SSL OpenSSL::Crypto)

# Our own C is -Werror even when the build is configured with WI_WERROR=OFF
# (bench/run does that for Release; see docs/PERFORMANCE.md).
foreach(t wi-bench wi-bench-echo-grpc wi-bench-echo-http)
  target_compile_options(${t} PRIVATE -Wall -Wextra -Werror)
endforeach()

if(CMOCKA_FOUND)
  add_executable(test_bench_common ${CMAKE_SOURCE_DIR}/bench/test_common.c ${CMAKE_SOURCE_DIR}/bench/common.c)
  target_include_directories(test_bench_common PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(test_bench_common PRIVATE PkgConfig::CMOCKA)
  target_compile_options(test_bench_common PRIVATE -Wall -Wextra -Werror)
  add_test(NAME unit.test_bench_common COMMAND test_bench_common)
endif()

if(TARGET wimsed)
  add_test(NAME bench.smoke
           COMMAND ${CMAKE_SOURCE_DIR}/bench/run --smoke --bin-dir ${CMAKE_BINARY_DIR}
                   --out ${CMAKE_BINARY_DIR}/bench-smoke.json
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(bench.smoke PROPERTIES LABELS bench TIMEOUT 300)
endif()
