// The requests that act on another request of the same connection, as the server reads them
// (docs/protocol.md, "cancel" and "more"): `cancel` gives up request `target`; `more` lets the
// streaming watch `target` send `credit` more replies. Either may name the namespace its target
// was made on (`n`), which a server of several shards looks on first. Read here once, for the
// session that routes them and the engine that answers them. No I/O.
#pragma once

#include "protocol/ops.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace zproc::protocol {

struct target_request {
  op code = op::cancel;     ///< cancel or more
  std::uint64_t target = 0;  ///< the request id it acts on
  std::uint64_t credit = 0;  ///< more: positive; cancel: 0
  std::optional<std::string> ns;
};

/// Whether `code` acts on another request (cancel, more).
constexpr bool targets_request(op code) noexcept { return code == op::cancel || code == op::more; }

/// Reads a cancel or more request; nullopt when a field is missing or of the wrong type (the
/// reply says what: target_request_error()). A namespace of the wrong type is ignored.
std::optional<target_request> read_target_request(const nlohmann::json& request, op code);
/// The same read from a request's MessagePack payload without a json tree, with its id (the
/// session's hot path: a streaming watcher's client grants credit every few updates). False
/// for anything read_target_request() would not take, for a field it does not know and for a
/// cancel's credit that is not an unsigned integer (then the json path reads it, and answers
/// as it does).
bool decode_target_request(std::string_view payload, std::uint64_t& id, target_request& out);

/// The error text of a malformed cancel or more.
const char* target_request_error(op code) noexcept;

}  // namespace zproc::protocol
