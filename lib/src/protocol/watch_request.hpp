// A watch request as the server reads it (docs/protocol.md, "Watch"), decoded from the frame's
// MessagePack in one pass without a json tree: a watcher asks again after every update it gets,
// so one write that wakes 1,000 watchers brings 1,000 of these. Only a well-formed watch is
// read here; any other request, and a watch with a field of the wrong type, is left to the
// generic path (a json tree), which answers it or refuses it as before. No I/O.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zproc::protocol {

struct watch_request {
  std::uint64_t id = 0;  ///< positive
  std::string ns;
  std::uint64_t handle = 0;
  std::vector<std::string> keys;
  std::optional<nlohmann::json> pred;  ///< as sent (the server checks its shape)
  std::optional<std::uint64_t> max;    ///< absent or nil: the default
  std::optional<std::uint64_t> after;  ///< absent or nil: now
  /// Version 3: the watch stays registered after each reply; the server may send this many
  /// replies before the client grants more (`more`). 0 (absent): one reply, as before.
  std::uint64_t stream = 0;
  bool exclude = false;
  bool identical = false;
  bool own = false;
  bool live = false;
  bool snap = false;
  bool now = false;
  bool base = false;
  bool oldest = false;
  bool pin = false;
};

/// Reads `payload` (a request frame's MessagePack) as a watch request. False: it is not one,
/// or not a well-formed one (read it as json instead: that path gives each error its reply).
bool decode_watch_request(std::string_view payload, watch_request& out);

}  // namespace zproc::protocol
