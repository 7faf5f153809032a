// zproc/process_error.hpp - what waiting for a spawned process can throw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace zproc {

/// Base of the errors of a spawned process: which process, and the crash report (the text the
/// supervisor printed on stderr, also kept in the server's process record).
class process_error : public std::runtime_error {
 public:
  process_error(const std::string& what, std::int64_t pid, std::string target,
                std::string crash_report)
      : std::runtime_error(what),
        pid_(pid),
        target_(std::move(target)),
        crash_report_(std::move(crash_report)) {}

  /// The pid of the (last) attempt that failed.
  std::int64_t pid() const noexcept { return pid_; }
  /// The target's name as registered with ZPROC_TARGET (or the command's path).
  const std::string& target() const noexcept { return target_; }
  /// "[zproc] Crash report: ..." with the stacktrace; empty when there was no crash (a plain
  /// non-zero exit).
  const std::string& crash_report() const noexcept { return crash_report_; }

 private:
  std::int64_t pid_;
  std::string target_;
  std::string crash_report_;
};

/// The process ended without sending a value: a non-zero exit code, a death by signal (its
/// exitcode() is the negative signal number, as in Python), or an exit before the target
/// returned. Also thrown by wait() on a process that was stopped.
class process_wait_error : public process_error {
 public:
  process_wait_error(const std::string& what, std::int64_t pid, std::string target,
                     std::string crash_report, int exitcode)
      : process_error(what, pid, std::move(target), std::move(crash_report)),
        exitcode_(exitcode) {}

  int exitcode() const noexcept { return exitcode_; }

 private:
  int exitcode_;
};

/// The target threw: the exception's type and message, and the stacktrace of the throw point
/// (resolved in the child: "N# function at file:line" per frame).
class remote_error : public process_error {
 public:
  remote_error(const std::string& what, std::int64_t pid, std::string target,
               std::string crash_report, std::string type, std::string message,
               std::string stacktrace)
      : process_error(what, pid, std::move(target), std::move(crash_report)),
        type_(std::move(type)),
        message_(std::move(message)),
        stacktrace_(std::move(stacktrace)) {}

  /// The exception's dynamic type, demangled ("std::runtime_error").
  const std::string& type() const noexcept { return type_; }
  /// Its what() (empty for exceptions not derived from std::exception).
  const std::string& message() const noexcept { return message_; }
  /// One frame per line, innermost first; the first frame is the function that threw.
  const std::string& stacktrace() const noexcept { return stacktrace_; }

 private:
  std::string type_;
  std::string message_;
  std::string stacktrace_;
};

/// A swarm task that no worker could run to its end: each worker that took it died or
/// disconnected (crash, SIGKILL, lost machine), swarm_options::max_attempts times. pid() is the
/// last worker's; crash_report() is its crash report when this process supervised it.
class task_lost_error : public process_error {
 public:
  task_lost_error(const std::string& what, std::int64_t pid, std::string target,
                  std::string crash_report, std::string host, std::size_t attempts)
      : process_error(what, pid, std::move(target), std::move(crash_report)),
        host_(std::move(host)),
        attempts_(attempts) {}

  /// The host of the last worker that took the task.
  const std::string& host() const noexcept { return host_; }
  /// How many workers took it.
  std::size_t attempts() const noexcept { return attempts_; }

 private:
  std::string host_;
  std::size_t attempts_;
};

}  // namespace zproc
