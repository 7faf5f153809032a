// Reading a request's MessagePack map field by field, without a json tree: what the flat
// readers of the server (watch_request, store_request, task_request) share. The id and the op
// are read here; every other field by the caller. No I/O.
#pragma once

#include "protocol/msgpack.hpp"
#include "protocol/ops.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace zproc::protocol {

/// The op of a request (its "o" field), read without the rest: the fields before it are
/// stepped over, the ones after it not read. nullopt: no such field, or not a map (the readers
/// below, or the json path, say what is wrong with it).
inline std::optional<op> peek_op(std::string_view payload) noexcept {
  msgpack_reader r(payload);
  std::size_t n = 0;
  if (!r.map_header(n)) return std::nullopt;
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view name;
    if (!r.string(name)) return std::nullopt;
    if (name == field::op) {
      std::string_view text;
      return r.string(text) ? parse_op(text) : std::nullopt;
    }
    if (!r.skip(1)) return std::nullopt;
  }
  return std::nullopt;
}

/// Reads `payload` as one map: "i" into `id`, "o" into `code` (an op `takes` accepts), every
/// other field by `read_field(name, reader)`, which reads its value and returns false for a
/// field it does not take. A field given twice: the last stands, as on the json path. False
/// unless all of the payload is that map, with a positive id and such an op (then the caller
/// reads the request as json instead).
template <class Takes, class ReadField>
bool read_request(std::string_view payload, std::uint64_t& id, op& code, Takes takes,
                  ReadField read_field) {
  msgpack_reader r(payload);
  std::size_t n = 0;
  if (!r.map_header(n)) return false;
  bool has_op = false;
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view name;
    if (!r.string(name)) return false;
    bool ok = false;
    if (name == field::id) {
      ok = r.unsigned_integer(id);
    } else if (name == field::op) {
      std::string_view text;
      const std::optional<op> o = r.string(text) ? parse_op(text) : std::nullopt;
      ok = has_op = o && takes(*o);
      if (ok) code = *o;
    } else {
      ok = read_field(name, r);
    }
    if (!ok) return false;
  }
  return r.at_end() && has_op && id > 0;
}

}  // namespace zproc::protocol
