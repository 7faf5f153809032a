// zproc/diagnostics.hpp - what an operation tells of its failure beyond its error_code: the
// server's message ("key 'cookies' not found in namespace 'kitchen'"), and for a spawned
// process or a swarm task the full exception (remote_error with the remote stacktrace,
// process_wait_error, task_lost_error). After Boost.MySQL's diagnostics.
#pragma once

#include <zproc/error.hpp>

#include <exception>
#include <string>
#include <utility>

namespace zproc {

namespace detail {
struct diagnostics_access;
}

/// Filled by an operation that failed; empty after one that succeeded. Pass one to the
/// `error_code&, diagnostics&` forms of blocking calls, or wrap a completion token in
/// zproc::with_diagnostics() to have it turned into the exception.
class diagnostics {
 public:
  /// The detailed message of the failure (the server's, or the client's); may be empty.
  const std::string& message() const noexcept { return message_; }
  /// The failure as an exception richer than zproc::error, where there is one: remote_error,
  /// process_wait_error, task_lost_error. Null otherwise.
  const std::exception_ptr& exception() const noexcept { return exception_; }
  void clear() noexcept {
    message_.clear();
    exception_ = nullptr;
  }

  /// The exception a failure with code `ec` is thrown as: exception() if set, else
  /// zproc::error(ec, message()).
  std::exception_ptr to_exception(error_code ec) const {
    if (exception_) return exception_;
    return std::make_exception_ptr(error(ec, message_));
  }

 private:
  friend struct detail::diagnostics_access;
  std::string message_;
  std::exception_ptr exception_;
};

namespace detail {
/// How zproc's code fills a diagnostics.
struct diagnostics_access {
  static void set_message(diagnostics& d, std::string message) {
    d.message_ = std::move(message);
  }
  static void set_exception(diagnostics& d, std::exception_ptr e, std::string message) {
    d.exception_ = std::move(e);
    d.message_ = std::move(message);
  }
};
}  // namespace detail

}  // namespace zproc
