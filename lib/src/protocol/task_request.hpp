// The swarm's busiest requests (task_submit, task_take, task_done, task_wait) as the server
// reads them: decoded from the frame's MessagePack in one pass without a json tree. A task's
// packed arguments and a worker's outcome stay the bytes they came as (views into the
// payload); the task queue keeps those bytes and sends them on as they are. A request of
// another op, and one of these with a field this reader does not know, of the wrong type or
// out of range, is left to the generic path (a json tree, read into the same struct by the
// task queue, which words the refusal). No I/O.
#pragma once

#include "protocol/ops.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

namespace zproc::protocol {

/// One task of a submit: its packed arguments, the whole MessagePack binary as it came (header
/// included), and how many calls they hold (> 0).
struct task_chunk {
  std::string_view args;
  std::uint64_t items = 0;
};

/// One finished task of a task_done: its id and its outcome, one whole MessagePack map as the
/// worker sent it.
struct task_result {
  std::uint64_t task = 0;
  std::string_view outcome;
};

struct task_request {
  std::uint64_t id = 0;  ///< positive
  op code = op::task_take;
  std::string_view queue;  ///< submit, take: not empty
  // task_submit
  std::string_view target;  ///< not empty
  std::vector<task_chunk> tasks;  ///< not empty
  bool bound = false;
  std::uint64_t max_attempts = 3;  ///< 1 .. 2^32-1
  std::uint64_t call_timeout_ms = 0;
  // task_take
  std::uint64_t max = 1;
  std::uint64_t max_calls = 0;  ///< calls in all the tasks taken (0: no limit; one task at least)
  std::string_view calls_target;  ///< more than one task only of this target (empty: any)
  std::int64_t pid = 0;
  std::string_view host;
  // task_done
  std::vector<task_result> results;
  // task_wait
  std::uint64_t from = 0;
  std::uint64_t to = 0;
  std::uint64_t wait_ms = 0;
  std::vector<std::uint64_t> ack;
};

/// Whether `o` is one of the ops a task_request holds.
bool flat_task_op(op o) noexcept;

/// Reads `payload` (a request frame's MessagePack) as a task_request. False: it is another
/// request, or not one this reader takes (read it as json instead). Views point into
/// `payload`.
bool decode_task_request(std::string_view payload, task_request& out);

}  // namespace zproc::protocol
