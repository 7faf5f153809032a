# The Debian packages, made with CPack (`cpack -G DEB` in the build directory; docs/deploy.md):
#   zproc      the zproc command and a systemd unit for `zproc server` (component runtime)
#   zproc-dev  headers, the libraries and the CMake package config (component dev)
# Programs are stripped; the static libraries lose their debug information (strip
# --strip-debug at install time when CMAKE_INSTALL_DO_STRIP is set, as cpack sets it).
install(FILES ${PROJECT_SOURCE_DIR}/packaging/zproc.service
  DESTINATION lib/systemd/system COMPONENT runtime)
install(CODE "
  if(CMAKE_INSTALL_DO_STRIP)
    file(GLOB zproc_archives \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/libzproc*.a\")
    foreach(archive \${zproc_archives})
      execute_process(COMMAND ${CMAKE_STRIP} --strip-debug \${archive})
    endforeach()
  endif()" COMPONENT dev)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME zproc)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "zproc developers <zproc-dev@lists.invalid>")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME zproc)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS
  "libboost-serialization1.81.0, libboost-filesystem1.81.0, libboost-stacktrace1.81.0, libssl3, libstdc++6, libc6 (>= 2.34)")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME zproc-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "libboost1.81-dev, libboost-serialization1.81-dev, libboost-stacktrace1.81-dev, libboost-filesystem1.81-dev, nlohmann-json3-dev, libssl-dev")
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "zproc: the state server and its command line")
set(CPACK_COMPONENT_DEV_DESCRIPTION "zproc: C++20 library, headers and CMake package")
include(CPack)
