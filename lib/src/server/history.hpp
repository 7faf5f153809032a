// The history of one namespace: every write as an update record, bounded by a retention limit.
// Plain logic, no I/O. Records are immutable and shared (one copy however many watchers read it).
#pragma once

#include <zproc/server.hpp>
#include <zproc/update.hpp>

#include <boost/container/small_vector.hpp>
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
/// A write's changes: most writes change one key, held inside the record (no allocation of its
/// own).
using key_changes = boost::container::small_vector<key_change, 1>;

/// One write to a namespace.
struct update_record {
  std::uint64_t revision = 0;
  std::int64_t time_us = 0;       // server wall-clock time, microseconds since the epoch
  std::uint64_t client_id = 0;    // the writing connection
  std::uint64_t handle = 0;       // the writing state handle within that connection
  bool identical = false;         // the write changed nothing
  key_changes changes;
  std::size_t bytes = 0;          // the memory it holds (record_bytes()), for the limits

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

/// Limits of the history (server_config::history): per namespace, and all together.
using retention = server_config::history_limits;

class history {
 public:
  explicit history(retention limits = {}) : limits_(limits) {}

  /// What a history dropped: records and the bytes they held.
  struct dropped {
    std::size_t records = 0;
    std::size_t bytes = 0;
  };

  /// Appends the next record (revision = newest + 1) and drops the oldest past the namespace's
  /// limits, keeping at least this newest one. If it throws, nothing changed.
  dropped append(record_ptr r);
  /// Drops the oldest record (for the server-wide budget); nothing if empty.
  dropped drop_oldest() noexcept;

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

/// The heap memory a JSON value holds beyond its own 16 bytes, as glibc's malloc counts it
/// (chunk headers and rounding included) for libstdc++'s containers.
std::size_t heap_bytes(const json& v);
/// The memory a record holds: itself, its changes, their keys and values (for the limits).
std::size_t record_bytes(const update_record& r);

}  // namespace zproc::server_detail
