// A MessagePack decoder into nlohmann::json that copies strings and binaries in one piece
// (nlohmann's own reads them a byte at a time: 3 ms per MiB, which made a swarm's chunks of
// results cost more than the calls). Same result as json::from_msgpack(strict) for every
// valid input; nesting deeper than max_depth is refused. No I/O.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace zproc::protocol {

inline constexpr std::size_t max_msgpack_depth = 512;

/// Decodes one MessagePack value that spans all of `bytes`; a discarded value
/// (is_discarded()) if the bytes are not exactly one valid value.
nlohmann::json decode_msgpack(std::string_view bytes);

/// Appends `v` as MessagePack to `out`: the bytes json::to_msgpack writes (the same choice of
/// widths: the smallest integer, float32 when exact), written straight into the string
/// (nlohmann's writer makes a virtual call per piece and an adapter per call).
void append_msgpack(std::string& out, const nlohmann::json& v);
/// One unsigned integer or one string, as append_msgpack() writes it (no json built for it).
void append_msgpack_unsigned(std::string& out, std::uint64_t v);
void append_msgpack_string(std::string& out, std::string_view s);

/// An upper bound of the bytes json::to_msgpack writes for `v` (numbers count as 9 bytes, the
/// rest is exact), without encoding it: O(size of v). For the byte budgets of pages.
std::size_t packed_size(const nlohmann::json& v);

}  // namespace zproc::protocol
