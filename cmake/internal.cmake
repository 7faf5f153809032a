# Build settings for zproc's own targets (library sources, apps, tests, benchmarks).
# None of this reaches a user of the installed package.

# zproc_internal: warnings, sanitizers and Asio's separate compilation for our own code.
add_library(zproc_internal INTERFACE)
target_compile_options(zproc_internal INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wdouble-promotion -Wformat=2
  -Wimplicit-fallthrough
  -Wno-mismatched-new-delete  # g++ 12 false positive on Asio coroutine frames
  -Wno-missing-field-initializers)  # designated initializers of *_options leave fields defaulted
# Asio's non-template code is compiled once, in lib/src/asio_impl.cpp. Users of the installed
# package are not affected: their header-only Asio links against the same definitions.
target_compile_definitions(zproc_internal INTERFACE
  BOOST_ASIO_SEPARATE_COMPILATION BOOST_ASIO_NO_DEPRECATED)
# The same definitions on every internal target, so that they share one precompiled header
# (Boost::serialization's come with it; only zproc::process and above use it).
target_link_libraries(zproc_internal INTERFACE Boost::serialization)

if(ZPROC_SANITIZE)
  target_compile_options(zproc_internal INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(zproc_internal INTERFACE -fsanitize=address,undefined)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # Clang 14's -fsanitize=function (part of "undefined") together with ASan cannot emit
    # coroutine frames: "error: Cannot represent a difference across sections" (session.cpp).
    target_compile_options(zproc_internal INTERFACE -fno-sanitize=function)
  endif()
endif()

if(ZPROC_TSAN)
  target_compile_options(zproc_internal INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(zproc_internal INTERFACE -fsanitize=thread)
endif()

# Every internal executable reuses the library's precompiled header (same flags, same defines).
function(zproc_internal_target target)
  target_link_libraries(${target} PRIVATE zproc::zproc zproc_internal)
  target_precompile_headers(${target} REUSE_FROM zproc_protocol)
endfunction()
