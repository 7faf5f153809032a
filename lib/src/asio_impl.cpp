// Asio's non-template code, compiled once for the library (BOOST_ASIO_SEPARATE_COMPILATION is set
// for zproc's own targets only; see cmake/internal.cmake).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
