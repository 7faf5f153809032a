#include "server/permissions.hpp"

#include "protocol/ops.hpp"
#include "protocol/tasks.hpp"

#include <algorithm>

namespace zproc::server_detail {

namespace {

using protocol::op;
using kind = access_role::kind;

enum class op_class { any, read, write, process_read, process_write, task_submit, task_work };

op_class class_of(op o) {
  switch (o) {
    case op::ping:
    case op::cancel:
    case op::more: return op_class::any;  // (a client's own watch, which it was allowed)
    case op::get:
    case op::contains:
    case op::size:
    case op::keys:
    case op::values:
    case op::items:
    case op::copy:
    case op::revision:
    case op::at:
    case op::history:
    case op::watch:
    case op::read: return op_class::read;
    case op::proc_list: return op_class::process_read;
    case op::proc_start:
    case op::proc_update: return op_class::process_write;
    case op::task_take:
    case op::task_done: return op_class::task_work;
    case op::task_submit:
    case op::task_wait:
    case op::task_cancel:
    case op::task_retire:
    case op::task_info: return op_class::task_submit;
    default: return op_class::write;  // every other op changes a namespace (or locks it)
  }
}

std::string what(const access_role& role) { return "a " + role.to_string() + " connection"; }

/// The role's namespace list allows the request's namespace.
std::optional<std::string> check_namespace(const access_role& role, std::string_view ns) {
  if (role.namespaces.empty()) return std::nullopt;
  if (std::find(role.namespaces.begin(), role.namespaces.end(), ns) != role.namespaces.end())
    return std::nullopt;
  return what(role) + " may not use namespace '" + std::string(ns) + "'";
}

/// A string field of `request`; nullopt if absent or not a string.
std::optional<std::string_view> text_field(const nlohmann::json& request, const char* name) {
  auto it = request.find(name);
  if (it == request.end() || !it->is_string()) return std::nullopt;
  return std::string_view(it->get_ref<const std::string&>());
}

}  // namespace

std::optional<std::string> refusal(const access_role& role, op code, request_scope scope) {
  const op_class c = class_of(code);
  if (role.what == kind::admin || c == op_class::any) return std::nullopt;
  const std::string name(protocol::name(code));
  switch (role.what) {
    case kind::read_write:
      if (c == op_class::read || c == op_class::write) return check_namespace(role, scope.ns);
      return std::nullopt;  // processes and tasks (ownership is checked where they live)
    case kind::read_only:
      if (c == op_class::read) return check_namespace(role, scope.ns);
      if (c == op_class::process_read) return std::nullopt;
      return what(role) + " may not send '" + name + "' (it only reads)";
    case kind::worker: {
      if (c != op_class::task_work)
        return what(role) + " may not send '" + name + "' (it only takes and finishes tasks)";
      if (code == op::task_done) return std::nullopt;  // only the tasks it holds count
      if (scope.swarm && *scope.swarm == role.swarm) return std::nullopt;
      return what(role) + " takes only the tasks of swarm '" + role.swarm + "'";
    }
    default: return std::nullopt;
  }
}

request_scope scope_of(const nlohmann::json& request) {
  return request_scope{text_field(request, protocol::field::ns).value_or(""),
                       text_field(request, protocol::tasks::queue)};
}

}  // namespace zproc::server_detail
