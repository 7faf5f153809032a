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

/// The wire form of a change, {"k": key, "b"?: before, "a"?: after} (used by the server's
/// records and by the client alike).
void to_json(json& j, const key_change& c);
void from_json(const json& j, key_change& c);

/// Reads an update record as the server sends it (for json::get<update>()).
void from_json(const json& j, update& u);

}  // namespace zproc
