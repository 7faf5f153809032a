// Planning a swarm submission, sans-io: how big a chunk of calls is and how many tasks may be
// in flight (the window) once the number of workers is known, and which packed chunks go in
// the next task_submit (as many as fit well within one frame). No socket, no client:
// task_submitter (submitter.cpp) sends what it builds, blocking or async. Unit-tested in
// test/unit/submit_plan_test.cpp.
#pragma once

#include <zproc/detail/chunk.hpp>
#include <zproc/detail/op.hpp>
#include <zproc/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace zproc::detail {

class submit_plan {
 public:
  struct config {
    std::string queue;
    std::string target;
    std::size_t max_attempts = 3;
    std::optional<std::chrono::milliseconds> call_timeout;
    bool bound = true;        ///< the tasks are cancelled when the submitting connection closes
    bool lazy = true;         ///< map_lazy (a bounded window), or map/run (all at once)
    std::size_t chunk_size = 0;  ///< calls per task; 0: automatic
    std::size_t window = 0;      ///< tasks in flight; 0: automatic
    std::size_t spawned = 0;     ///< workers the swarm started (0: ask the server)
    std::size_t max_bytes = 0;   ///< a chunk's packed arguments stop growing past this
  };

  /// `frame_limit`: the largest frame the connection may send (a submit stays below half).
  submit_plan(config c, std::size_t frame_limit);

  const config& settings() const noexcept { return settings_; }

  /// Whether the number of workers is known (resolve() was called).
  bool resolved() const noexcept { return resolved_; }
  /// The task_info request that tells the number of workers, and how many a reply names
  /// (throws protocol::tasks::malformed for a reply of the wrong shape).
  json info_request() const;
  static std::size_t workers_in(const json& info_reply);
  /// Fixes the chunk sizes and the window for `workers` workers (at least 1) and, when the
  /// input range knows it, `size_hint` inputs (0: unknown). Automatic chunks are guided: about
  /// 4 per worker while many inputs remain, then remaining / workers, down to 1/64 of that.
  void resolve(std::size_t workers, std::size_t size_hint);

  /// The sizes of the chunks, by how many inputs were packed before each.
  const chunk_schedule& schedule() const noexcept { return schedule_; }
  /// The largest chunk (calls per task while many inputs remain).
  std::size_t chunk_size() const noexcept { return schedule_.base; }
  std::size_t window() const noexcept { return window_; }
  /// How many more tasks may go with `in_flight` in flight.
  std::size_t room(std::size_t in_flight) const noexcept;
  /// Whether submitting now is worth it: not resolved yet, or the window half empty.
  bool due(std::size_t in_flight) const noexcept;

  /// The task_submit of chunks[i...] that fit (at least one), written packed (their bytes are
  /// freed as they are written): advances `i`, sets `n` to how many.
  request next_request(std::vector<packed_chunk>& chunks, std::size_t& i, std::size_t& n) const;
  /// The id of the first task a task_submit reply names (throws protocol::tasks::malformed).
  static std::uint64_t first_id(const json& submit_reply);

 private:
  config settings_;
  std::size_t frame_limit_;
  bool resolved_ = false;
  std::size_t workers_ = 0;
  chunk_schedule schedule_;
  std::size_t window_ = 0;
};

}  // namespace zproc::detail
