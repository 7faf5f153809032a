// Private: what the templates of task.hpp and map_stream.hpp share with compiled code: waiting
// for the outcomes of a range of tasks on the server, and acknowledging them (an outcome stays
// on the server until its collector has it: a reply lost to a cancel is sent again).
#pragma once

#include <zproc/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace zproc::detail {

struct swarm_core;  // lib/src/swarm: the swarm's connection and crash reports
class client_impl;

/// One task's outcome: the packed values of its calls that returned, and per call its error
/// (null where it returned). A task no worker could finish has every call failed with a
/// task_lost_error.
struct task_outcome {
  std::uint64_t id = 0;
  std::vector<std::uint8_t> values;
  std::vector<std::exception_ptr> failed;
};

class task_collector {
 public:
  using handler_type =
      boost::asio::any_completion_handler<void(std::exception_ptr, std::vector<task_outcome>)>;

  /// Collects tasks first, first + 1, ..., first + count - 1.
  task_collector(std::shared_ptr<swarm_core> core, std::uint64_t first, std::size_t count);
  ~task_collector();  ///< acknowledges what it received (best effort)
  task_collector(const task_collector&) = delete;
  task_collector& operator=(const task_collector&) = delete;

  /// Blocking: waits for outcomes not received yet and returns them (in the order they came).
  /// Zero timeout: no deadline. Throws zproc::error (client_errc::timeout when it passes,
  /// the connection's errors, server_errc::bad_request when the tasks are no longer on the
  /// server: cancelled, or collected by another process).
  std::vector<task_outcome> next(std::chrono::milliseconds timeout);
  /// Without waiting: what has arrived (one round trip).
  std::vector<task_outcome> poll();
  /// Asynchronous next(); needs a swarm whose client has an executor. Supports terminal
  /// cancellation (completes with operation_aborted; nothing is lost: the outcomes stay on the
  /// server until a later call receives them).
  void async_next(handler_type h);

  /// Every outcome has been received.
  bool done() const noexcept;
  std::uint64_t first() const noexcept;
  std::size_t count() const noexcept;
  /// Cancels the tasks not received yet (queued ones never run; running ones are dropped).
  void cancel_rest() noexcept;

 private:
  struct state;
  static void wait_async(std::shared_ptr<state> s, std::shared_ptr<client_impl> impl,
                         handler_type h, boost::asio::cancellation_slot slot);
  std::shared_ptr<state> s_;
};

}  // namespace zproc::detail
