// The result of a watch request (docs/protocol.md, "Watch") as the client reads it: decoded
// from its MessagePack in one pass, the update records straight into zproc::update, without a
// json tree for the reply. A woken watcher's reply is the client's hottest message (one write
// to 1,000 watchers is 1,000 of them). No I/O.
#pragma once

#include <zproc/json.hpp>
#include <zproc/update.hpp>

#include <boost/container/small_vector.hpp>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace zproc::protocol {

struct watch_reply {
  struct entry {
    std::uint64_t revision = 0;
    /// The record (decoded only for a watcher of records; else only its revision is set).
    update record;
    /// "d": the merged changes since the previous update (a snapshot watcher's), as sent.
    std::optional<json> diff;
  };
  std::uint64_t cursor = 0;
  /// (Inline room for one: a woken watcher's reply is one update, no allocation for the list.)
  boost::container::small_vector<entry, 1> updates;
  std::optional<json> base;  ///< the whole namespace as of the request's cursor
  std::optional<json> tail;  ///< changes that bring a snapshot watcher's replica to the cursor
  bool now = false;          ///< the predicate held at the start (answered at once)
};

/// Decodes a watch request's result (the reply's "r" value). `records`: the updates' records
/// are decoded (a watcher of updates); else they are stepped over (a snapshot watcher needs
/// their revisions and diffs). Throws std::invalid_argument saying what is malformed.
watch_reply decode_watch_reply(std::string_view result, bool records);

}  // namespace zproc::protocol
