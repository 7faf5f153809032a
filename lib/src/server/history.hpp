// The history of one namespace: every write as an update record, bounded by a retention limit.
// Plain logic, no I/O. Records are immutable and shared (one copy however many watchers read it).
#pragma once

#include <zproc/server.hpp>
#include <zproc/update.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace zproc::server_detail {

using nlohmann::json;

/// One key changed by a write: the public type (an empty optional means "absent").
using key_change = zproc::key_change;

/// One write to a namespace.
struct update_record {
  std::uint64_t revision = 0;
  std::int64_t time_us = 0;       // server wall-clock time, microseconds since the epoch
  std::uint64_t client_id = 0;    // the writing connection
  std::uint64_t handle = 0;       // the writing state handle within that connection
  bool identical = false;         // the write changed nothing
  std::vector<key_change> changes;
  std::size_t bytes = 0;          // approximate memory held, for the retention limit

  bool touches(const std::string& key) const;

  /// The record as MessagePack, shared by every reply that carries it (fan-out to many
  /// watchers copies no values). The record keeps no copy: the encoding lives while a reply
  /// holds it, and is made again if needed later. `with_diff` adds "d", the diff a snapshot
  /// watcher needs when this record directly follows its replica.
  std::shared_ptr<const std::string> packed(bool with_diff) const;

 private:
  mutable std::weak_ptr<const std::string> packed_[2];
};

using record_ptr = std::shared_ptr<const update_record>;

/// {"rv","t","c","h","id","ch":[{"k","b"?,"a"?}]}: the record as it travels and is stored.
json to_json(const update_record& r);
update_record record_from_json(const json& j);  // throws json::exception on a bad shape

/// Per-namespace limits of the history (server_config::history).
using retention = server_config::history_limits;

class history {
 public:
  explicit history(retention limits = {}) : limits_(limits) {}

  /// Appends the next record (revision = newest + 1) and drops the oldest past the limits.
  void append(record_ptr r);

  /// Oldest revision still kept (newest + 1 if nothing is kept).
  std::uint64_t oldest() const noexcept { return records_.empty() ? next_ : records_.front()->revision; }
  /// Revision of the newest record (0 if none was ever appended).
  std::uint64_t newest() const noexcept { return next_ - 1; }
  /// True if every record after `revision` is still kept (a reader at `revision` can go on).
  bool covers_after(std::uint64_t revision) const noexcept { return revision + 1 >= oldest(); }
  /// The record of `revision`, or nullptr if it is not kept.
  const record_ptr* find(std::uint64_t revision) const noexcept;

  std::size_t size() const noexcept { return records_.size(); }
  std::size_t bytes() const noexcept { return bytes_; }
  const retention& limits() const noexcept { return limits_; }

  /// Continues a restored history: the next record will have revision `next`.
  void reset(std::uint64_t next) { records_.clear(); bytes_ = 0; next_ = next; }

 private:
  retention limits_;
  std::deque<record_ptr> records_;
  std::size_t bytes_ = 0;
  std::uint64_t next_ = 1;
};

/// Approximate heap size of a JSON value (for retention by bytes).
std::size_t approx_size(const json& v);

}  // namespace zproc::server_detail
