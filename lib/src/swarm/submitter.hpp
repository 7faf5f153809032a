// The state of a task_submitter (zproc/detail/task_collector.hpp): where its tasks go, and the
// window once the number of workers is known.
#pragma once

#include "swarm/swarm_core.hpp"

#include <zproc/detail/task_collector.hpp>
#include <zproc/json.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace zproc::detail {

struct task_submitter::state {
  struct config {
    std::string queue;
    std::string target;
    std::size_t max_attempts = 3;
    std::optional<std::chrono::milliseconds> call_timeout;
    bool bound = true;        ///< the tasks are cancelled when the submitting connection closes
    bool lazy = true;         ///< map_lazy (a bounded window), or map/run (all at once)
    std::size_t chunk_size = 0;  ///< 0: automatic
    std::size_t window = 0;      ///< 0: automatic
    std::size_t spawned = 0;     ///< workers the swarm started (0: ask the server)
    std::size_t max_bytes = 0;
  };

  state(std::shared_ptr<swarm_core> c, config s) : core(std::move(c)), settings(std::move(s)) {}

  std::shared_ptr<swarm_core> core;
  config settings;

  bool resolved_ = false;
  std::size_t workers_ = 0;
  std::size_t chunk_size_ = 0;
  std::size_t window_ = 0;

  void resolve(std::size_t workers, std::size_t size_hint);
  std::size_t room(std::size_t in_flight) const;
  /// The task_submit of chunks[i...] that fit one frame (moves their bytes; advances i; n:
  /// how many).
  json next_request(std::vector<packed_chunk>& chunks, std::size_t& i, std::size_t& n) const;
  std::shared_ptr<task_collector> collector_of(const json& reply, std::size_t n) const;
  json info_request() const;
  static std::size_t workers_in(const json& info);
};

}  // namespace zproc::detail
