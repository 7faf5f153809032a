// Private: how many of something each connection has (parked requests of one kind), kept as
// they come and go, so that a limit is checked in constant time rather than by a scan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace zproc::server_detail {

class client_counts {
 public:
  void add(std::uint64_t client_id) { ++counts_[client_id]; }
  void remove(std::uint64_t client_id, std::size_t n = 1) {
    auto it = counts_.find(client_id);
    if (it == counts_.end()) return;
    if (it->second <= n)
      counts_.erase(it);
    else
      it->second -= n;
  }
  void forget(std::uint64_t client_id) { counts_.erase(client_id); }
  std::size_t of(std::uint64_t client_id) const {
    auto it = counts_.find(client_id);
    return it == counts_.end() ? 0 : it->second;
  }

 private:
  std::unordered_map<std::uint64_t, std::size_t> counts_;
};

}  // namespace zproc::server_detail
