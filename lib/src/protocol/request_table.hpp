// Client side request matching: gives each request an id and finds its pending operation when
// the reply comes, in any order. A plain class, no I/O.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace zproc::protocol {

template <class Pending>
class request_table {
 public:
  /// Registers a pending request; returns its id (never 0: 0 addresses the connection).
  std::uint64_t add(Pending p) {
    const std::uint64_t id = next_id_++;
    pending_.emplace(id, std::move(p));
    return id;
  }

  /// Removes and returns the request with this id; nullopt if unknown (already completed,
  /// cancelled, or never sent).
  std::optional<Pending> take(std::uint64_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return std::nullopt;
    std::optional<Pending> p(std::move(it->second));
    pending_.erase(it);
    return p;
  }

  /// Removes every pending request and returns them (to fail them all when the connection
  /// breaks). The table is empty and reusable afterwards.
  std::vector<Pending> take_all() {
    std::vector<Pending> all;
    all.reserve(pending_.size());
    for (auto& [id, p] : pending_) all.push_back(std::move(p));
    pending_.clear();
    return all;
  }

  /// The pending request with this id, or nullptr.
  Pending* find(std::uint64_t id) {
    auto it = pending_.find(id);
    return it == pending_.end() ? nullptr : &it->second;
  }

  /// The ids of the pending requests, in the order they were added.
  std::vector<std::uint64_t> ids() const {
    std::vector<std::uint64_t> all;
    all.reserve(pending_.size());
    for (const auto& [id, p] : pending_) all.push_back(id);
    std::sort(all.begin(), all.end());
    return all;
  }

  /// Removes the requests for which `pred(p)` holds and returns them, in the order they were
  /// added (when a connection breaks: those that cannot be sent again).
  template <class Pred>
  std::vector<Pending> take_if(Pred pred) {
    std::vector<Pending> taken;
    for (const std::uint64_t id : ids()) {
      auto it = pending_.find(id);
      if (pred(it->second)) {
        taken.push_back(std::move(it->second));
        pending_.erase(it);
      }
    }
    return taken;
  }

  bool contains(std::uint64_t id) const { return pending_.count(id) != 0; }
  std::size_t size() const noexcept { return pending_.size(); }
  bool empty() const noexcept { return pending_.empty(); }

 private:
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, Pending> pending_;
};

}  // namespace zproc::protocol
