// What a stored value must be so that every reader can read it back: nested no deeper than the
// limit (replies wrap values a few levels deeper, and the decoder's limit, max_msgpack_depth,
// must leave room for that envelope), and strings (values and keys) that are valid UTF-8 (JSON
// has no other strings: `zproc get`, `dump`, `history` could not print them). Binary values
// are bytes and pass as they are. Plain functions, no I/O; used by the server's store on every
// write and by the client before it sends one.
#pragma once

#include <zproc/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace zproc::protocol {

/// Deepest nesting of a request that writes values (a value of about 256 levels, plus the
/// request's own envelope); replies stay far below the decoder's limit of 512.
inline constexpr std::size_t max_request_depth = 264;

/// Whether `s` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s);

/// Whether `v` nests deeper than `max_depth` levels (a scalar is 1 level).
bool deeper_than(const json& v, std::size_t max_depth);

/// Why `request` cannot be stored and read back (too deep, or a string or key that is not
/// UTF-8, with where it is), or empty.
std::optional<std::string> unstorable(const json& request,
                                      std::size_t max_depth = max_request_depth);
/// The same for one field of a request (its value, as unstorable() judges it in the request),
/// and for a text field.
std::optional<std::string> unstorable_field(const json& value,
                                            std::size_t max_depth = max_request_depth);
std::optional<std::string> unstorable_text(std::string_view text);

}  // namespace zproc::protocol
