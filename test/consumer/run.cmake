# Makes the Debian packages of the build tree (cpack -G DEB: zproc and zproc-dev), unpacks them
# into a scratch root (dpkg-deb -x), checks the command runs from there and that what was
# installed carries no debug information, then configures, builds and runs the consumer
# against the unpacked zproc-dev.
file(REMOVE_RECURSE ${WORK_DIR})
function(step)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

step(cpack --config ${BUILD_DIR}/CPackConfig.cmake -B ${WORK_DIR}/packages)
file(GLOB debs ${WORK_DIR}/packages/*.deb)
list(LENGTH debs count)
if(NOT count EQUAL 2)
  message(FATAL_ERROR "expected the packages zproc and zproc-dev, got: ${debs}")
endif()
set(root ${WORK_DIR}/root)
foreach(deb ${debs})
  step(dpkg-deb -x ${deb} ${root})
  step(dpkg-deb -f ${deb} Package Depends)
  message(STATUS "${deb}: ${step_output}")
endforeach()

# The command runs from the package, and tells its version.
step(${root}/usr/bin/zproc --version)
if(NOT step_output MATCHES "^zproc [0-9]+\\.[0-9]+\\.[0-9]+\n$")
  message(FATAL_ERROR "zproc --version printed: '${step_output}'")
endif()
if(NOT EXISTS ${root}/usr/lib/systemd/system/zproc.service)
  message(FATAL_ERROR "the package has no systemd unit")
endif()

# Stripped: no debug sections in the program or the libraries.
file(GLOB archives ${root}/usr/lib/libzproc*.a)
foreach(f ${root}/usr/bin/zproc ${archives})
  step(readelf -S ${f})
  if(step_output MATCHES "\\.debug_info")
    message(FATAL_ERROR "${f} still has debug information")
  endif()
  file(SIZE ${f} size)
  message(STATUS "installed: ${f} ${size} bytes")
endforeach()

step(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
     -DCMAKE_PREFIX_PATH=${root}/usr -DCMAKE_BUILD_TYPE=Release)
step(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
step(${WORK_DIR}/build/consumer)
