// What the connections of a server share, whatever thread serves them: the engine, and which
// session is which client's. One mutex guards both, and every session's inbox: each request's
// effects happen under it, one request at a time, and the replies it sends to other
// connections (woken watchers, granted locks, taken tasks) reach their inboxes in that order.
#pragma once

#include "server/engine.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace zproc::server_detail {

class session;

struct hub {
  explicit hub(engine& e) : logic(e) {}

  std::mutex mutex;
  engine& logic;  // under `mutex`
  std::unordered_map<std::uint64_t, std::weak_ptr<session>> sessions;  // under `mutex`
  /// Under `mutex`: the server stopped; a request read but not yet handled takes no effect
  /// (its connection closes).
  bool stopped = false;

  /// Under `mutex`: hands `d` to its client's session, which sends it from its own thread;
  /// dropped if that connection is closed.
  void deliver_locked(delivery&& d);
  void deliver_locked(std::vector<delivery>& ds) {
    for (auto& d : ds) deliver_locked(std::move(d));
  }
};

}  // namespace zproc::server_detail
