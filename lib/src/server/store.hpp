// The state of a server: namespaces of JSON objects with a revision counter each, and the
// execution of one request against them. Plain logic, no I/O: the session feeds it decoded
// requests and sends back what it returns.
#pragma once

#include "server/history.hpp"

#include <zproc/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <optional>
#include <unordered_map>

namespace zproc::server_detail {

using nlohmann::json;

/// One namespace: a JSON object and its revision (one more per write).
/// Each operation costs O(log n) in the number of keys (n itself only for whole-state reads such
/// as keys() or copy()): nothing copies the namespace.
struct namespace_state {
  json data = json::object();
  std::uint64_t revision = 0;
  history hist;
  /// Revision of each present key's last write (for transactions and atomic commits).
  std::unordered_map<std::string, std::uint64_t> modified;
  /// The client holding the namespace's atomic lock (0: none); commits of others conflict.
  std::uint64_t locked_by = 0;

  std::uint64_t modified_at(const std::string& key) const {
    auto it = modified.find(key);
    return it == modified.end() ? 0 : it->second;
  }

  explicit namespace_state(retention limits = {}) : hist(limits) {}

  /// The namespace as it was at `revision` (undoing the kept records after it), or nullopt if
  /// records after `revision` were compacted away. Cost: a copy plus O(changes since).
  std::optional<json> at(std::uint64_t revision) const;
};

/// Who sent a request, for records and (later) for watchers that hide a client's own writes.
struct request_context {
  std::uint64_t client_id = 0;
};

/// The value of `compacted` errors: names the oldest revision still available.
std::string compacted_message(std::uint64_t asked, std::uint64_t oldest);

/// The result of one request: a result (and the namespace revision after it), or an error.
struct outcome {
  json result;
  std::uint64_t revision = 0;
  bool has_revision = false;
  error_code error;
  std::string message;
  /// Set when the request wrote: the new record (watchers are notified of it).
  record_ptr committed;
  const std::string* ns = nullptr;  // the namespace written (valid while the store lives)
};

class store {
 public:
  explicit store(std::int64_t server_pid, retention limits = {})
      : server_pid_(server_pid), limits_(limits) {}

  /// Executes one decoded request (the fields of protocol::field). Never throws for bad input:
  /// a malformed request is an outcome with server_errc::bad_request and a message.
  outcome execute(const json& request, const request_context& ctx);

  /// Namespace by name, or nullptr if nothing was ever written there.
  const namespace_state* find(std::string_view ns) const;
  namespace_state* find(std::string_view ns);
  std::size_t namespace_count() const noexcept { return namespaces_.size(); }

  /// The namespace `name`, created empty if new (recovery from a data directory).
  namespace_state& restore(const std::string& name) { return get_or_create(name); }
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [name, ns] : namespaces_) f(name, ns);
  }

 private:
  namespace_state& get_or_create(const std::string& ns);

  std::int64_t server_pid_;
  retention limits_;
  std::unordered_map<std::string, namespace_state> namespaces_;
};

}  // namespace zproc::server_detail
