// Private: what the templates of task.hpp and map_stream.hpp share with compiled code: waiting
// for the outcomes of a range of tasks on the server, and acknowledging them (an outcome stays
// on the server until its collector has it: a reply lost to a cancel is sent again).
#pragma once

#include <zproc/detail/chunk.hpp>
#include <zproc/error.hpp>
#include <zproc/with_diagnostics.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
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

  /// Collects tasks first, first + 1, ..., first + items.size() - 1; task first + k is made of
  /// items[k] calls (an outcome with another number of results fails them: protocol_error).
  task_collector(std::shared_ptr<swarm_core> core, std::uint64_t first,
                 std::vector<std::size_t> items);
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
  std::shared_ptr<state> s_;
};

/// The inputs of a map that are not packed yet: the input range (owned, or referenced for an
/// lvalue) and where its iteration stands. Made by swarm.hpp; held by the map's stream.
class input_feed {
 public:
  virtual ~input_feed() = default;
  /// Packs the next inputs into at most `max_chunks` chunks of the schedule's sizes (a chunk
  /// is closed early once its arguments reach `max_bytes`); fewer, or none, at the end.
  virtual std::vector<packed_chunk> pack(std::size_t max_chunks, const chunk_schedule& schedule,
                                         std::size_t max_bytes) = 0;
  /// Every input has been packed.
  virtual bool exhausted() = 0;
  /// The number of inputs when the range knows it (a sized range), else 0.
  virtual std::size_t size_hint() const = 0;
  /// Inputs packed so far.
  std::size_t packed() const noexcept { return packed_; }

 protected:
  std::size_t packed_ = 0;
};

/// Packs inputs and submits them as tasks of one target to a swarm's queue, in a window: at
/// most window() tasks submitted whose results were not consumed. Blocking (the swarm's own
/// connection) or async (the connection on swarm_options::executor). Outlives the swarm handle.
class task_submitter {
 public:
  using handler_type = boost::asio::any_completion_handler<void(
      error_code, std::vector<std::shared_ptr<task_collector>>)>;
  struct state;  // lib/src/swarm/submitter.cpp
  explicit task_submitter(std::shared_ptr<state> s) : s_(std::move(s)) {}

  /// Where a completion handler without an executor of its own runs: the swarm's executor
  /// (swarm_options::executor), or the system executor for a blocking-mode swarm.
  boost::asio::any_io_executor executor() const;
  /// Whether a fill is due with `in_flight` tasks not consumed: at or below half the window
  /// (always before the first fill).
  bool due(std::size_t in_flight) const noexcept;
  /// Blocking: packs as many chunks as the window has room for and submits them (one batch of
  /// consecutive ids per frame). Throws zproc::error, std::logic_error (the swarm has no
  /// workers), or what packing an input threw.
  std::vector<std::shared_ptr<task_collector>> fill(input_feed& feed, std::size_t in_flight);
  /// Asynchronous fill(): completes on the handler's associated executor, never inside this
  /// call; client_errc::wrong_mode on a swarm without an executor. The message of a failure
  /// goes to `diagnostics`. A partly submitted fill that fails cancels what it submitted.
  void async_fill(std::shared_ptr<input_feed> feed, std::size_t in_flight, handler_type h,
                  diagnostics_ptr diagnostics);

 private:
  std::shared_ptr<state> s_;
};

}  // namespace zproc::detail
