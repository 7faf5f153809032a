// An error while handling a request, thrown by the server's plain logic (watchers, process
// records) and turned into an error reply by the engine.
#pragma once

#include <zproc/error.hpp>

#include <string>

namespace zproc::server_detail {

/// An error while handling a request: becomes an error reply {code, message}.
struct op_error {
  server_errc code;
  std::string message;
};

}  // namespace zproc::server_detail
