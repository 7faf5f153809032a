// What a connection's role lets it send (zproc/access.hpp), without I/O: the engine asks
// before it runs a request. Ownership (a task's submitter, a record's creator) is checked where
// those live (task_queue, process_registry); this is only the role against the op and its
// namespace or swarm.
#pragma once

#include <zproc/access.hpp>
#include <zproc/detail/op.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace zproc::server_detail {

/// What of a request the role is checked against: its namespace ("" if it names none), and a
/// task's swarm.
struct request_scope {
  std::string_view ns;
  std::optional<std::string_view> swarm;
};
/// Why `role` may not send a request of op `code` in `scope`; nullopt when it may.
std::optional<std::string> refusal(const access_role& role, detail::op code, request_scope scope);
/// The scope of a request as json (its namespace and swarm, views into it).
request_scope scope_of(const nlohmann::json& request);

}  // namespace zproc::server_detail
