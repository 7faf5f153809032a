// The state of a server: namespaces of JSON objects with a revision counter each, and the
// execution of one request against them. Plain logic, no I/O: the session feeds it decoded
// requests and sends back what it returns.
#pragma once

#include "protocol/store_request.hpp"
#include "server/history.hpp"
#include "server/shared_budget.hpp"

#include <zproc/access.hpp>
#include <zproc/detail/op.hpp>
#include <zproc/error.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
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
struct store_op;
class store_args;

struct request_context {
  std::uint64_t client_id = 0;
  /// What the connection may do (the session's handshake): nullptr, or an admin role, may do
  /// everything, to everything (others' tasks and process records too).
  const access_role* role = nullptr;
  bool privileged() const noexcept { return !role || role->what == access_role::kind::admin; }
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
  /// `max_namespaces`: server_config::max_namespaces. `shared`: the budget this store shares
  /// with the other shards' stores (nullptr: it counts alone; else it must outlive the store).
  explicit store(std::int64_t server_pid, retention limits = {},
                 std::size_t max_namespaces = 10'000, shared_budget* shared = nullptr)
      : server_pid_(server_pid),
        limits_(limits),
        max_namespaces_(max_namespaces),
        budget_(shared),
        shared_(shared != nullptr) {}
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// Executes one decoded request (the fields of protocol::field). Never throws for bad input:
  /// a malformed request is an outcome with server_errc::bad_request and a message.
  outcome execute(const json& request, const request_context& ctx);
  /// The same, for a request whose op the caller read already.
  outcome execute(detail::op code, const json& request, const request_context& ctx);
  /// The same, for a request read without a json tree (protocol::decode_store_request).
  outcome execute(const protocol::store_request& request, const request_context& ctx);

  /// Namespace by name, or nullptr if nothing was ever written there.
  const namespace_state* find(std::string_view ns) const;
  namespace_state* find(std::string_view ns);
  std::size_t namespace_count() const noexcept { return namespaces_.size(); }

  /// The namespace `name`, created empty if new, even past max_namespaces (recovery from a
  /// data directory).
  namespace_state& restore(const std::string& name) { return get_or_create(name, false).second; }
  /// The namespace `name`, created empty if new; throws op_error (limit_reached) if that would
  /// make more than max_namespaces.
  namespace_state& open(const std::string& name) { return get_or_create(name, true).second; }

  /// Appends a record to a namespace's history and enforces the limits: the namespace's own,
  /// then the server-wide budget (dropping this store's oldest records, never `r`: while the
  /// store alone holds more than the budget, or the server holds more and this store more
  /// than its share). If it throws, nothing changed.
  void append_history(namespace_state& ns, record_ptr r);
  /// A store that shares its budget (several shards): drops its oldest records while it is
  /// over its share and the server over the budget (a store whose namespaces nobody writes
  /// any more gives back this way; engine::tick calls it).
  void trim_history() noexcept;
  /// Empties a namespace's history, the next record to be `next` (recovery).
  void reset_history(namespace_state& ns, std::uint64_t next) noexcept;
  /// Bytes and records the histories of this store's namespaces hold together.
  std::size_t history_bytes() const noexcept { return history_bytes_; }
  std::size_t history_records() const noexcept { return history_records_; }
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [name, ns] : namespaces_) f(name, ns);
  }

 private:
  /// Runs `what` on namespace `ns_name` with the request's arguments `a`.
  outcome run(const store_op& what, const std::string& ns_name, const store_args& a,
              std::optional<std::uint64_t> handle, const request_context& ctx);
  /// The namespace's entry (its name, as the store keeps it, and its state).
  using entry = std::pair<const std::string, namespace_state>;
  entry& get_or_create(const std::string& ns, bool limited);
  void count_dropped(history::dropped d) noexcept;
  /// Drops the oldest records, keeping the newest `keep` of order_, while over the budget.
  void enforce_budget(std::size_t keep) noexcept;

  std::int64_t server_pid_;
  retention limits_;
  std::size_t max_namespaces_;
  shared_budget* budget_;  // nullptr: one store, which counts alone
  bool shared_;
  std::unordered_map<std::string, namespace_state> namespaces_;  // nodes: stable addresses
  /// Every record kept, server-wide, in the order they were appended (the oldest is dropped
  /// first when over the total budget); entries of records a namespace dropped by its own
  /// limits are skipped, and swept out when they make up half of it.
  struct appended {
    namespace_state* ns;
    std::uint64_t revision;
  };
  std::deque<appended> order_;
  std::size_t history_bytes_ = 0;
  std::size_t history_records_ = 0;
};

}  // namespace zproc::server_detail
