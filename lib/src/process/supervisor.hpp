// The supervisor: one thread per program that launches spawned processes (so the kernel's
// parent-death signal is tied to a thread that lives as long as the program), reads what they
// report, reaps them, retries them, prints crash reports, and records them on the server.
#pragma once

#include "process/channel.hpp"

#include <zproc/process.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace zproc::process_detail {

/// A running attempt's process, as other threads may signal it: signals go to its pid (a
/// command's: to its process group) only until the supervisor reaps it, so never to a pid the
/// kernel gave to someone else since.
class proc_ref {
 public:
  proc_ref(int pid, bool group) : pid_(pid), group_(group) {}
  /// False if it was reaped already (or the kill failed).
  bool signal(int sig);
  /// Before reaping: no signal after this.
  void mark_reaped();
  int pid() const { return pid_; }
  bool group() const { return group_; }

 private:
  const int pid_;
  const bool group_;
  std::mutex m_;
  bool reaped_ = false;
};

}  // namespace zproc::process_detail

namespace zproc::detail {

/// One spawned process across its attempts: what `zproc::process` handles point to.
struct child {
  // Set at spawn, then constant.
  std::string target;      ///< registered name, or the command's path
  std::string value_type;  ///< mangled type of the target's value ("v" for void)
  bool command = false;    ///< an external command (no channel, no value)
  std::vector<std::string> command_args;
  process_detail::ticket ticket;  ///< the first attempt's; retries may change args
  std::string retry_args;
  bool has_retry_args = false;
  spawn_options options;
  bool die_with_parent = true;  ///< the kernel kills it when the supervisor's thread ends

  // Shared with the handles; guarded by m.
  mutable std::mutex m;
  std::condition_variable cv;
  std::int64_t pid = 0;
  std::size_t attempts = 0;
  bool running = false;
  bool done = false;      ///< no attempt will follow: the outcome below is final
  bool stopping = false;  ///< stop() was asked: no retry
  /// The attempt running now (until it is reaped): what stop() and signal() signal, from any
  /// thread, without waiting for the supervisor's.
  std::shared_ptr<process_detail::proc_ref> current;
  std::optional<int> exitcode;
  std::string value;
  std::exception_ptr error;
  struct waiter {
    std::uint64_t id;
    const char* type;
    process::raw_handler handler;
  };
  std::vector<waiter> waiters;
  std::uint64_t next_waiter = 0;
};

}  // namespace zproc::detail

namespace zproc::process_detail {

class supervisor {
 public:
  /// The program's supervisor, started at first use; it lives until exit, when it stops the
  /// processes still running.
  static supervisor& get();

  /// Launches the first attempt; returns once it runs (its pid is known). Throws
  /// std::system_error when the process cannot be started.
  void launch(const std::shared_ptr<detail::child>& c);
  /// SIGTERM, SIGKILL after the grace period; with `wait`, returns once the process is gone.
  void stop(const std::shared_ptr<detail::child>& c, bool wait = true);
  /// The supervisor's thread: add_waiter and cancel_waiter run there.
  boost::asio::any_io_executor executor() { return io_.get_executor(); }
  /// Adds an async waiter; completes it at once (posted) if the process is done.
  void add_waiter(const std::shared_ptr<detail::child>& c, detail::child::waiter w);
  /// Completes the waiter `id` with operation_aborted (posted) unless it completed already.
  void cancel_waiter(const std::shared_ptr<detail::child>& c, std::uint64_t id);

  /// At exit, and from the signal handlers: stops every process still running (signal-safe
  /// variant: SIGTERM and a line on stderr for each, nothing else).
  static void cleanup_all_signal_safe() noexcept;

  /// Waits (at most `limit`) until the process records queued so far reached the server: at
  /// the program's end, so that the last records (processes that ended) are not lost with the
  /// record connections. Not on the supervisor's thread.
  void flush_records(std::chrono::milliseconds limit);

 private:
  supervisor();
  struct attempt;
  void start_attempt(const std::shared_ptr<detail::child>& c);
  void read_channel(const std::shared_ptr<attempt>& a);
  void wait_exit(const std::shared_ptr<attempt>& a);
  /// Reaps the attempt if it exited (WNOHANG: never blocks); false if it still runs.
  bool try_reap(const std::shared_ptr<attempt>& a);
  void poll_exit(const std::shared_ptr<attempt>& a);
  void exited(const std::shared_ptr<attempt>& a, int status);
  /// The attempt is over (exited and its channel read): retry, or settle.
  void finish(const std::shared_ptr<attempt>& a);
  /// The outcome is final: record it, wake the waiters.
  void settle(const std::shared_ptr<detail::child>& c, int code, std::exception_ptr error,
              std::optional<std::string> value, const char* state, const std::string& report);
  void complete(const std::shared_ptr<detail::child>& c);
  void record(const std::shared_ptr<detail::child>& c, json fields, bool start, bool final = false);

  boost::asio::io_context io_;
  // Supervisor thread only: the running attempt, or the timer of the retry to come.
  std::map<const detail::child*, std::shared_ptr<attempt>> running_;
  std::map<const detail::child*, std::shared_ptr<boost::asio::steady_timer>> retrying_;
  std::thread thread_;
  struct recorder;
  std::unique_ptr<recorder> recorder_;
};

/// When a value of (mangled) `type` is asked of `c`, an error if the target returns another
/// type (void asks for nothing and always fits).
std::exception_ptr type_mismatch(const detail::child& c, const char* type);

/// What wait() throws for a process that was stopped.
std::exception_ptr stopped_error(const detail::child& c, int exitcode);

/// The outcome of a finished process as the exception wait() throws (nullptr: a value).
std::exception_ptr make_error(const detail::child& c, const std::string& crash_report,
                              const std::optional<exception_report>& exception, int exitcode,
                              bool got_value);

}  // namespace zproc::process_detail
