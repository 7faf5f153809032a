// zproc/update.hpp - one write to a namespace, as history and raw watchers report it.
#pragma once

#include <zproc/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace zproc {

/// One key changed by a write; an empty optional means "absent" (before: the key was created;
/// after: it was deleted).
struct key_change {
  std::string key;
  std::optional<json> before;
  std::optional<json> after;

  friend bool operator==(const key_change&, const key_change&) = default;
};

/// One write: its revision (one more than the previous write to the namespace), the server's
/// time, who wrote it, and every key it changed with the values before and after.
struct update {
  std::uint64_t revision = 0;
  std::chrono::system_clock::time_point time;
  std::uint64_t client_id = 0;  ///< the writing connection (client::id())
  bool identical = false;       ///< the write changed nothing
  std::vector<key_change> changes;

  /// The change of `key` in this update, or nullptr.
  const key_change* find(const std::string& key) const {
    for (const auto& c : changes)
      if (c.key == key) return &c;
    return nullptr;
  }
};

/// JSON, in the schema every JSON output of zproc uses (the zproc command's `watch` and
/// `history` included): the member names. A change is {"key", "before"?, "after"?} (absent:
/// the key did not exist); an update is {"revision", "time" (seconds since the epoch, with
/// microseconds), "client_id", "identical", "changes"}. (The wire uses shorter names.)
void to_json(json& j, const key_change& c);
void from_json(const json& j, key_change& c);
void to_json(json& j, const update& u);
void from_json(const json& j, update& u);

}  // namespace zproc
