// A request of the store's simple ops (get, set, del, incr, ... on one namespace: the ops that
// read nothing but the namespace, a key, a value and a default) as the server reads it, decoded
// from the frame's MessagePack in one pass without a json tree for the request: only the value
// and the default become json. Any other request, and one of these with a field this reader
// does not know or of the wrong type, is left to the generic path (a json tree), which answers
// or refuses it as before. No I/O.
#pragma once

#include "protocol/ops.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace zproc::protocol {

struct store_request {
  std::uint64_t id = 0;  ///< positive
  op code = op::get;
  std::string ns;
  std::optional<std::string> key;          ///< "k"
  std::optional<nlohmann::json> value;     ///< "v"
  std::optional<nlohmann::json> fallback;  ///< "d"
  std::optional<std::uint64_t> handle;     ///< "h" (an unsigned integer)
};

/// Whether the store's op `o` reads only what a store_request holds.
bool flat_store_op(op o) noexcept;

/// Reads `payload` (a request frame's MessagePack) as a store_request. False: it is another
/// request, or not one this reader takes (read it as json instead).
bool decode_store_request(std::string_view payload, store_request& out);

}  // namespace zproc::protocol
