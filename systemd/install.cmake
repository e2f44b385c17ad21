# `make install` / `cmake --install <build>`: binaries, the systemd unit, sysusers.d and
# tmpfiles.d entries, and the production default config.  Included at the end of the
# top-level CMakeLists.txt.
#
#   cmake --install build --prefix /usr                 # a real install
#   DESTDIR=/tmp/stage cmake --install build --prefix /usr   # staging (packages, tests)
#
# Layout below the prefix follows Debian: bin/, lib/systemd/system/, lib/sysusers.d/,
# lib/tmpfiles.d/.  The config goes to /etc/wimsed/wimsed.json whatever the prefix
# (the unit names that path); an existing config is never overwritten.

include(GNUInstallDirs)

if(TARGET wimsed AND TARGET wimsectl)
  install(TARGETS wimsed wimsectl RUNTIME DESTINATION bin COMPONENT wimsed)
endif()
install(FILES ${CMAKE_CURRENT_LIST_DIR}/wimsed.service
        DESTINATION lib/systemd/system COMPONENT wimsed)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/wimsed.sysusers.conf
        DESTINATION lib/sysusers.d RENAME wimsed.conf COMPONENT wimsed)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/wimsed.tmpfiles.conf
        DESTINATION lib/tmpfiles.d RENAME wimsed.conf COMPONENT wimsed)
# Absolute destination: DESTDIR still applies.  Keep an operator's edited config.
install(CODE "
  set(_wi_conf \"\$ENV{DESTDIR}/etc/wimsed/wimsed.json\")  # file(INSTALL) adds DESTDIR itself
  if(EXISTS \"\${_wi_conf}\")
    message(STATUS \"Keeping existing: \${_wi_conf}\")
  else()
    file(INSTALL DESTINATION \"/etc/wimsed\" TYPE FILE
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
         FILES \"${CMAKE_SOURCE_DIR}/conf/wimsed.json\")
  endif()" COMPONENT wimsed)
