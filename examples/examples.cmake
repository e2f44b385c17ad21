# Example agents built on libwimse (included from the top-level CMakeLists.txt).
include_guard(GLOBAL)
# They use only the public headers (include/wimse/*.h).

add_executable(mtls_echo_server ${CMAKE_SOURCE_DIR}/examples/mtls-echo/server.c)
target_link_libraries(mtls_echo_server PRIVATE wi_client wi_core)

add_executable(mtls_echo_client ${CMAKE_SOURCE_DIR}/examples/mtls-echo/client.c)
target_link_libraries(mtls_echo_client PRIVATE wi_client wi_core)
