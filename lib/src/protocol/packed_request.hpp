// A request as it goes on the wire but for its id: the MessagePack entries of its map, written
// field by field without a json tree (a watch is re-armed after every update it returns), or
// packed from a json request. The connection puts the id in front when it sends it, and keeps
// the packed request to send again after a reconnect. No I/O.
#pragma once

#include <zproc/detail/op.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace zproc::protocol {

struct packed_request {
  std::optional<detail::op> code;  ///< its op (nullopt: it names none the client knows)
  std::size_t fields = 0;          ///< the entries in `entries`
  std::string entries;  ///< `fields` pairs: a key (a MessagePack string), then its value
  /// A value nests deeper than a request may (value_check.hpp, max_request_depth): the server
  /// would refuse it, so it is refused before sending.
  bool too_deep = false;
  /// Its namespace, kept for a request the server may hold unanswered (protocol::parks): the
  /// cancel that gives it up names it, so that a server of several shards finds it at once.
  std::string ns;

  /// {"o": code, "n": ns}: the start of most requests.
  static packed_request make(detail::op code, std::string_view ns);

  void add(std::string_view key, const nlohmann::json& value);
  void add_unsigned(std::string_view key, std::uint64_t value);
  void add_bool(std::string_view key, bool value);
  void add_string(std::string_view key, std::string_view value);

  /// Every field of `request` (a json object), in its order; the op read from it.
  static packed_request from(const nlohmann::json& request);
  /// The request as json (without the id), for the rare path that edits one.
  nlohmann::json to_json() const;
};

/// Appends one entry, `key` then `value`, to a request's `entries`; sets `too_deep` if the value
/// nests deeper than a request may.
void append_entry(std::string& entries, std::string_view key, const nlohmann::json& value,
                  bool& too_deep);

/// Appends the frame of `r` sent with id `id`: the map {"i": id, <its entries>}. Returns the
/// payload's size (to check it against a maximum and roll back with out.resize()).
std::size_t append_request_frame(std::string& out, const packed_request& r, std::uint64_t id);

}  // namespace zproc::protocol
