// An error while handling a request, thrown by the server's plain logic (watchers, process
// records, task queues) and turned into an error reply by the engine; and the checks of request
// fields that they share.
#pragma once

#include <zproc/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace zproc::server_detail {

/// An error while handling a request: becomes an error reply {code, message}.
struct op_error {
  server_errc code;
  std::string message;
};

/// Refuses the request: an op_error with server_errc::bad_request.
[[noreturn]] inline void bad_request(std::string message) {
  throw op_error{server_errc::bad_request, std::move(message)};
}

/// An integer that fits `std::int64_t` (MessagePack may encode it signed or unsigned).
inline std::optional<std::int64_t> as_int64(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return {};
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<std::int64_t>();
  return {};
}

/// A non-negative integer.
inline std::optional<std::uint64_t> as_count(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0)
    return static_cast<std::uint64_t>(v.get<std::int64_t>());
  return {};
}

}  // namespace zproc::server_detail
