// What the shards of a server count together (server/hub.hpp): each shard's store and task
// queue adds to it and takes from it under its own shard's lock, so the server's limits hold
// for the server as a whole, however its namespaces and queues are spread over the shards.
#pragma once

#include <atomic>
#include <cstddef>

namespace zproc::server_detail {

struct shared_budget {
  /// Namespaces (server_config::max_namespaces).
  std::atomic<std::size_t> namespaces{0};
  /// Bytes of history (history.max_total_bytes).
  std::atomic<std::size_t> history_bytes{0};
  /// Tasks held (server_config::limits.max_tasks).
  std::atomic<std::size_t> tasks{0};
  /// How many shards share it: a store whose history holds more than its share
  /// (max_total_bytes / shards) drops its oldest records while the total is over the budget.
  std::size_t shards = 1;
};

}  // namespace zproc::server_detail
