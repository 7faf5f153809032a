// Waiting for the outcomes of a range of tasks, sans-io: the task_wait requests (each carrying
// the acknowledgements of what arrived since the last one), what a reply brings (each outcome
// once, turned into values and errors), and when the tasks are gone. No socket, no thread:
// task_collector (collector.cpp) sends what it asks for, blocking or async. Unit-tested with
// scripted replies in test/unit/task_wait_test.cpp.
#pragma once

#include <zproc/detail/task_collector.hpp>
#include <zproc/error.hpp>
#include <zproc/json.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace zproc::detail {

class task_wait {
 public:
  /// The crash report of the worker `pid` (empty if none): the text of a task_lost_error.
  using crash_report_fn = std::function<std::string(std::int64_t pid)>;

  /// Tasks first, first + 1, ..., first + items.size() - 1 of swarm `swarm` (for messages);
  /// task first + k made of items[k] calls. An outcome with another number of results is
  /// malformed: the calls of its task fail (it does not change how many results there are).
  task_wait(std::string swarm, std::uint64_t first, std::vector<std::size_t> items);

  /// The next task_wait request, parked on the server up to `ms` (0: answered at once). It
  /// acknowledges what arrived since the last answered request (the server then forgets it).
  json request(std::uint64_t ms);
  /// The last request got no reply: what it acknowledged goes with the next one.
  void no_reply();
  /// The reply to the last request (its result's MessagePack): the outcomes not received
  /// before, in the order they came.
  /// A malformed outcome fails its own calls (protocol_error), not the others. Sets `ec` and
  /// `message` for a malformed reply (protocol_error) or tasks the server no longer holds
  /// (bad_request: cancelled, or collected by another process).
  std::vector<task_outcome> on_reply(std::string_view reply, const crash_report_fn& crash_report,
                                     error_code& ec, std::string& message);
  /// The task_cancel request for the tasks not received yet; nothing is left to receive or
  /// to acknowledge after it.
  json cancel_request();

  bool has_acks() const noexcept { return !ack_.empty(); }
  std::size_t remaining() const noexcept { return remaining_; }
  std::uint64_t first() const noexcept { return first_; }
  std::size_t count() const noexcept { return items_.size(); }
  const std::string& swarm() const noexcept { return swarm_; }

 private:
  task_outcome parse(std::uint64_t id, std::string_view o, const crash_report_fn& crash_report) const;

  std::string swarm_;
  std::uint64_t first_;
  std::vector<std::size_t> items_;  // calls per task
  std::vector<bool> got_;
  std::size_t remaining_;
  std::vector<std::uint64_t> ack_;   // received, not acknowledged yet
  std::vector<std::uint64_t> sent_;  // acknowledged by the request in flight
};

}  // namespace zproc::detail
