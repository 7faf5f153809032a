// The namespaces of a server, whichever shard's store holds each: a namespace belongs to one
// shard, chosen by its name (shard_of), and only that shard's store ever holds it. What reads
// or restores every namespace (the journal) goes through this.
#pragma once

#include "server/store.hpp"

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace zproc::server_detail {

/// The shard (of `shards`) that namespace `ns` belongs to.
inline std::size_t shard_of(std::string_view ns, std::size_t shards) noexcept {
  return shards <= 1 ? 0 : std::hash<std::string_view>{}(ns) % shards;
}

class store_set {
 public:
  /// One store holding every namespace (one shard).
  store_set(store& only) : stores_{&only} {}  // NOLINT(google-explicit-constructor)
  /// The stores of shards 0..n-1, in order (add()).
  store_set() = default;
  explicit store_set(std::vector<store*> stores) : stores_(std::move(stores)) {}
  void add(store& next) { stores_.push_back(&next); }

  /// The shard that namespace `ns` belongs to.
  std::size_t shard_index(std::string_view ns) const noexcept {
    return shard_of(ns, stores_.size());
  }
  /// The store that holds (or would hold) namespace `ns`.
  store& of(std::string_view ns) const noexcept { return *stores_[shard_of(ns, stores_.size())]; }
  std::size_t size() const noexcept { return stores_.size(); }
  store& at(std::size_t shard) const noexcept { return *stores_[shard]; }

  const namespace_state* find(std::string_view ns) const { return of(ns).find(ns); }
  namespace_state& restore(const std::string& ns) const { return of(ns).restore(ns); }
  std::size_t namespace_count() const noexcept {
    std::size_t n = 0;
    for (const store* s : stores_) n += s->namespace_count();
    return n;
  }
  /// Every namespace, a shard's at a time.
  template <class F>
  void for_each(F&& f) const {
    for (const store* s : stores_) s->for_each(f);
  }

 private:
  std::vector<store*> stores_;
};

}  // namespace zproc::server_detail
