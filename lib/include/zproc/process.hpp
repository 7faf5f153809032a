// zproc/process.hpp - a supervised child process: its pid, its exit code, its return value.
#pragma once

#include <zproc/detail/archive.hpp>
#include <zproc/error.hpp>
#include <zproc/process_error.hpp>
#include <zproc/with_diagnostics.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/deferred.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>
#include <vector>

namespace zproc {

namespace detail {
struct child;  // the supervisor's record of one spawned process (lib/src/process)

/// Registers `match` as the test "is the exception in flight a T?" under T's type name, so a
/// child (the same binary) can decide whether an exception is one to retry for.
using exception_matcher = bool (*)(const std::exception_ptr&);
int register_exception_matcher(const char* type_name, exception_matcher match);

template <class E>
bool matches(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}
/// One deadline for several waits; zero means none (and left() stays zero).
class deadline {
 public:
  explicit deadline(std::chrono::milliseconds timeout)
      : timeout_(timeout), at_(std::chrono::steady_clock::now() + timeout) {}
  /// What is left of it, at least 1 ms (so that zero keeps meaning "no deadline").
  std::chrono::milliseconds left() const {
    if (timeout_ == std::chrono::milliseconds::zero()) return timeout_;
    return std::max(std::chrono::milliseconds(1),
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        at_ - std::chrono::steady_clock::now()));
  }

 private:
  std::chrono::milliseconds timeout_;
  std::chrono::steady_clock::time_point at_;
};

/// The code (and message) of a failure thrown by a wait: remote_error, process_wait_error,
/// task_lost_error (process_errc), zproc::error and system errors (their own code),
/// std::invalid_argument (process_errc::wrong_result_type); anything else is a result that
/// could not be read (client_errc::protocol_error).
error_code failure_code(const std::exception_ptr& e, std::string& message);

/// Completes `h` (void(error_code, Values...)) with an outcome: on failure, the code of `e`,
/// and `e` itself in the handler's diagnostics if it has any (what co_await throws).
template <class Handler, class... Values>
void complete_outcome(Handler&& h, const std::exception_ptr& e, Values&&... values) {
  error_code ec;
  if (e) {
    std::string message;
    ec = failure_code(e, message);
    if (auto d = diagnostics_of(h)) diagnostics_access::set_exception(*d, e, std::move(message));
  }
  std::move(h)(ec, std::forward<Values>(values)...);
}

/// The error_code form of a blocking wait: runs `f` and turns what it throws into `ec` and
/// `diag` (the exception itself kept in the diagnostics); returns a default value then.
template <class F>
auto outcome_or_code(F&& f, error_code& ec, diagnostics& diag) -> decltype(f()) {
  ec.clear();
  diag.clear();
  try {
    return f();
  } catch (...) {
    const auto e = std::current_exception();
    std::string message;
    ec = failure_code(e, message);
    diagnostics_access::set_exception(diag, e, std::move(message));
    if constexpr (!std::is_void_v<decltype(f())>) return {};
  }
}

template <class E>
struct exception_registration {
  static inline const int id = register_exception_matcher(typeid(E).name(), &matches<E>);
};
}  // namespace detail

/// When a failed attempt is tried again: an exception type (derived types match too) or a
/// fatal signal. Make them with retry_on<E>() and retry_on_signal(sig).
struct retry_condition {
  std::string exception_type;  ///< mangled type name; empty for a signal condition
  int signal = 0;
};

template <class E>
retry_condition retry_on() {
  (void)detail::exception_registration<E>::id;  // registered in every process of this binary
  return {typeid(E).name(), 0};
}
inline retry_condition retry_on_signal(int sig) { return {{}, sig}; }

/// Arguments for the retries of a spawn (spawn_options::retry_args); checked against the
/// target's parameters at spawn.
template <class... A>
detail::packed_args args(const A&... a) {
  return {detail::pack(a...), detail::type_names<A...>()};
}

struct spawn_options {
  /// Try again (a fresh process) when an attempt fails this way. Empty: never.
  std::vector<retry_condition> retry_for;
  /// How long to wait before each retry (ZProc's retry_delay); stop() during it ends the process
  /// at once.
  std::chrono::milliseconds retry_delay{5000};
  /// None: retry forever (as ZProc did).
  std::optional<std::size_t> max_retries;
  /// The retries get these arguments instead of the first attempt's (zproc::args(...)).
  detail::packed_args retry_args;
  /// The namespace of the child's context; empty: the spawning context's.
  std::string ns;
  /// stop(): how long after SIGTERM before SIGKILL.
  std::chrono::milliseconds stop_grace{3000};
  /// Called on the supervisor's thread when an attempt starts (its pid). Keep it short.
  std::function<void(std::int64_t pid)> on_start;
  /// Called on the supervisor's thread when an attempt crashes or throws (its pid and the crash
  /// report, as printed), before any retry. Keep it short.
  std::function<void(std::int64_t pid, const std::string& crash_report)> on_crash;
};

/// A handle on a spawned process (copyable; all copies refer to the same process). The
/// process stays supervised whether or not a handle exists.
class process {
 public:
  process() = default;
  explicit process(std::shared_ptr<detail::child> c) : c_(std::move(c)) {}

  /// The pid of the current (or last) attempt: a retry runs in a new process.
  std::int64_t pid() const;
  /// Whether an attempt is running now (false between retries and once it ended).
  bool is_alive() const;
  /// Empty while running (or between retries); the exit code, or minus the signal number.
  std::optional<int> exitcode() const;
  /// The target's name as registered with ZPROC_TARGET (or the command's path).
  const std::string& target() const;
  /// 1 for the first attempt, N after N-1 retries.
  std::size_t attempts() const;

  /// Waits for the end (retries included) and returns the target's return value. Throws
  /// remote_error (the target threw), process_wait_error (died, non-zero exit, stopped),
  /// zproc::error with client_errc::timeout when `timeout` passes first (the process keeps
  /// running), std::invalid_argument when R is not what the target returns. Zero waits
  /// forever.
  template <class R = void>
  R wait(std::chrono::milliseconds timeout = std::chrono::milliseconds::zero()) const {
    error_code ec;
    diagnostics diag;
    if constexpr (std::is_void_v<R>) {
      wait<R>(timeout, ec, diag);
      if (ec) std::rethrow_exception(diag.to_exception(ec));
    } else {
      R v = wait<R>(timeout, ec, diag);
      if (ec) std::rethrow_exception(diag.to_exception(ec));
      return v;
    }
  }
  /// wait() throwing nothing: a failure sets `ec` (process_errc, client_errc::timeout) and
  /// `diag` (the exception wait() would throw: diagnostics::exception()) and returns R{};
  /// success clears both.
  template <class R = void>
  R wait(std::chrono::milliseconds timeout, error_code& ec, diagnostics& diag) const {
    std::string bytes = wait_raw(timeout, typeid(R).name(), ec, diag);
    if constexpr (!std::is_void_v<R>) {
      if (ec) return R{};
      // (A value that does not read as R: its exception is the failure.)
      return detail::outcome_or_code([&] { return detail::unpack_value<R>(bytes); }, ec, diag);
    }
  }

  /// Asynchronous wait: completion `void(error_code, R)` (`void(error_code)` for R = void).
  /// The codes are process_errc's (remote_exception, exited, wrong_result_type); the exception
  /// wait() would throw is in the diagnostics, and is what `co_await p.async_wait<R>()` (the
  /// default token) throws. Supports terminal cancellation (completes with operation_aborted;
  /// the process runs on). Keeps the handler's executor busy (its io_context's run() does not
  /// return) until it completes.
  template <class R = void, class CompletionToken = default_token>
  auto async_wait(CompletionToken&& token = default_token{}) const {
    namespace asio = boost::asio;
    using signature = typename detail::value_signature<R>::type;
    return detail::initiate<signature>(
        [](auto h, std::shared_ptr<detail::child> c) {
          auto slot = asio::get_associated_cancellation_slot(h);
          auto ex = asio::get_associated_executor(h);
          start_wait(std::move(c), typeid(R).name(),
                     raw_handler(asio::bind_cancellation_slot(
                         slot, asio::bind_executor(ex, [h = std::move(h)](std::exception_ptr e,
                                                                          std::string bytes) mutable {
                       if constexpr (std::is_void_v<R>) {
                         detail::complete_outcome(std::move(h), e);
                       } else {
                         R value{};
                         if (!e) {
                           try {
                             value = detail::unpack_value<R>(bytes);
                           } catch (...) {
                             e = std::current_exception();
                           }
                         }
                         detail::complete_outcome(std::move(h), e, std::move(value));
                       }
                     }))));
        },
        token, c_);
  }

  /// SIGTERM, then SIGKILL after spawn_options::stop_grace (a command: to its process group);
  /// both are sent without waiting for the supervisor's thread. Returns once it is gone. No
  /// retry follows. A no-op on a process that already ended.
  void stop() const;

  /// Sends `sig` to the current attempt (a command: to its process group); a no-op when it is
  /// not running (never sent to a pid reaped since).
  void signal(int sig) const;

  explicit operator bool() const noexcept { return c_ != nullptr; }
  /// Internal: the supervisor's record.
  const std::shared_ptr<detail::child>& impl() const noexcept { return c_; }

  /// Internal: how async_wait reaches the compiled code (the packed value).
  using raw_handler = boost::asio::any_completion_handler<void(std::exception_ptr, std::string)>;

 private:
  /// The packed return value once the process ended; a failure sets `ec` and `diag` (and
  /// clears them on success).
  std::string wait_raw(std::chrono::milliseconds timeout, const char* type, error_code& ec,
                       diagnostics& diag) const;
  static void start_wait(std::shared_ptr<detail::child> c, const char* type, raw_handler h);

  std::shared_ptr<detail::child> c_;
};

/// "Process - pid: 8959 target: 'cookie_eater' ppid: 8944 is_alive: true exitcode: none",
/// as ZProc printed a process.
std::string to_string(const process& p);

/// Waits for every process in `procs` with one deadline for all, and returns their values in
/// order. The first failure (in list order) is thrown at once.
template <class R = void>
auto wait_all(const std::vector<process>& procs,
              std::chrono::milliseconds timeout = std::chrono::milliseconds::zero()) {
  const detail::deadline until(timeout);
  if constexpr (std::is_void_v<R>) {
    for (const auto& p : procs) p.wait<void>(until.left());
  } else {
    std::vector<R> values;
    values.reserve(procs.size());
    for (const auto& p : procs) values.push_back(p.wait<R>(until.left()));
    return values;
  }
}

}  // namespace zproc
