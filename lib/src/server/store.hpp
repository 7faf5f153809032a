// The state of a server: namespaces of JSON objects with a revision counter each, and the
// execution of one request against them. Plain logic, no I/O: the session feeds it decoded
// requests and sends back what it returns.
#pragma once

#include <zproc/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace zproc::server_detail {

using nlohmann::json;

/// One namespace: a JSON object and its revision (one more per write).
/// Each operation costs O(log n) in the number of keys (n itself only for whole-state reads such
/// as keys() or copy()): nothing copies the namespace.
struct namespace_state {
  json data = json::object();
  std::uint64_t revision = 0;
};

/// Who sent a request, for records and (later) for watchers that hide a client's own writes.
struct request_context {
  std::uint64_t client_id = 0;
};

/// The result of one request: a result (and the namespace revision after it), or an error.
struct outcome {
  json result;
  std::uint64_t revision = 0;
  bool has_revision = false;
  error_code error;
  std::string message;
};

class store {
 public:
  explicit store(std::int64_t server_pid) : server_pid_(server_pid) {}

  /// Executes one decoded request (the fields of protocol::field). Never throws for bad input:
  /// a malformed request is an outcome with server_errc::bad_request and a message.
  outcome execute(const json& request, const request_context& ctx);

  /// Namespace by name, or nullptr if nothing was ever written there.
  const namespace_state* find(std::string_view ns) const;
  std::size_t namespace_count() const noexcept { return namespaces_.size(); }

 private:
  namespace_state& get_or_create(const std::string& ns);

  std::int64_t server_pid_;
  std::unordered_map<std::string, namespace_state> namespaces_;
};

}  // namespace zproc::server_detail
