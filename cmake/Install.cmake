include(GNUInstallDirs)
install(TARGETS allocation-dispatcherd allocation-api RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES etc/allocation-relay.yaml DESTINATION /etc/allocation-relay)
