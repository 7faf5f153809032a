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

namespace zproc::server_detail {

/// Why `role` may not send `request` (whose op is `code`); nullopt when it may.
std::optional<std::string> refusal(const access_role& role, detail::op code,
                                   const nlohmann::json& request);

}  // namespace zproc::server_detail
