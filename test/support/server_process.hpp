// Test support: a real `zproc server` process on fresh addresses, and deadlines for tests.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include <sys/types.h>

namespace zproc::test {

/// A fresh Unix socket path under the temp directory.
std::string fresh_ipc_address();

/// Runs a program with arguments; captures stdout and stderr; kills it after `timeout`.
struct run_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};
run_result run_program(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                       const std::vector<std::string>& extra_env = {});

/// `zproc server --listen <ipc> --listen tcp://127.0.0.1:0`, started and waited for (until it
/// prints its addresses). SIGTERM + waitpid on destruction. `--insecure` unless the extra
/// arguments give it a token (--token-file, --access-file).
class server_process {
 public:
  server_process();
  /// With extra arguments for `zproc server` (e.g. --data-dir DIR).
  explicit server_process(std::vector<std::string> extra_args);
  ~server_process();
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  const std::string& ipc() const { return addresses_.at(0); }
  const std::string& tcp() const { return addresses_.at(1); }
  const std::vector<std::string>& addresses() const { return addresses_; }
  pid_t pid() const { return pid_; }

  void stop_signal();      ///< SIGSTOP: the server stops answering (alive, connections open)
  void continue_signal();  ///< SIGCONT
  void kill_now();         ///< SIGKILL + waitpid
  /// SIGTERM, then the exit code (negative signal number if killed); -1000 if still running
  /// after 5 s (then SIGKILLed).
  int terminate();

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::vector<std::string> addresses_;
};

/// A program running in the background whose stdout lines we can wait for.
/// SIGSTOP to `pid`, returning once every thread of it has stopped (5 s at most): kill()
/// returns before a thread running on another core stops, and a multi-threaded server would
/// still answer what arrives meanwhile.
void stop_process(pid_t pid);

class child_process {
 public:
  explicit child_process(const std::vector<std::string>& argv);
  ~child_process();  ///< SIGKILL + waitpid
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  /// Waits (at most `timeout`) for a line of stdout that starts with `prefix`.
  bool wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout);
  /// The line wait_for_line() found.
  const std::string& last_line() const { return last_line_; }
  pid_t pid() const { return pid_; }
  void signal(int sig);
  /// SIGSTOP, returning once every thread of the process has stopped (see stop_process()).
  void stop_signal();
  int kill_and_wait();

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffered_;
  std::string last_line_;
};

/// Runs `coro` on `ioc` until it finishes; fails the test with "did not finish" after
/// `deadline` instead of hanging. Rethrows the coroutine's exception.
template <class Awaitable>
void run_with_deadline(boost::asio::io_context& ioc, Awaitable coro,
                       std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
  bool done = false;
  std::exception_ptr error;
  boost::asio::co_spawn(ioc, std::move(coro), [&](std::exception_ptr e) {
    done = true;
    error = e;
  });
  ioc.run_for(deadline);
  if (!done) FAIL("did not finish within " << deadline.count() << " ms");
  if (error) std::rethrow_exception(error);
}

}  // namespace zproc::test
