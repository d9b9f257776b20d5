# What `cmake --install` puts where, and the Debian package CPack makes of it
# (`cmake --workflow --preset package`, or packaging/build-deb.sh).
include(GNUInstallDirs)
install(TARGETS allocation-dispatcherd allocation-api RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES etc/allocation-relay.yaml DESTINATION /etc/allocation-relay)
install(FILES packaging/systemd/allocation-api.service packaging/systemd/allocation-dispatcherd.service
        DESTINATION lib/systemd/system)
install(FILES packaging/allocation-relay.sysusers DESTINATION lib/sysusers.d
        RENAME allocation-relay.conf)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME allocation-relay)
set(CPACK_PACKAGE_VENDOR allocation-relay)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Direct-then-confirm stock allocation: webhook dispatcher and Centra-compatible Order API")
set(CPACK_PACKAGE_CONTACT "allocation-relay maintainers <maintainers@allocation-relay.invalid>")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# Library dependencies are read off the binaries (dpkg-shlibdeps), libpq5 among them (the
# PostgreSQL backend; tests/package_test.sh checks it is in Depends); systemd runs the services.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd (>= 247)")
# CPack does not mark conffiles by itself: `conffiles` lists the sample config, so dpkg keeps an
# operator's edits on upgrade. The scripts create the user and reload systemd.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
include(CPack)
