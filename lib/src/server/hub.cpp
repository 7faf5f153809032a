#include "server/hub.hpp"

#include "protocol/ops.hpp"
#include "protocol/tasks.hpp"
#include "server/session.hpp"

#include <boost/asio/post.hpp>

namespace zproc::server_detail {

std::size_t hub::route(const json& request, std::optional<protocol::op> code) const {
  if (size() == 1 || !code || process_registry::handles(*code) || !request.is_object())
    return home;
  if (task_queue::handles(*code)) {
    // Its queue's shard, or the shard of the task ids it names.
    if (auto q = request.find(protocol::tasks::queue); q != request.end() && q->is_string())
      return shard_index(q->get_ref<const std::string&>());
    if (auto from = request.find(protocol::tasks::from);
        from != request.end() && from->is_number_unsigned())
      return task_shard(from->get<std::uint64_t>());
    if (auto r = request.find(protocol::tasks::results);
        r != request.end() && r->is_array() && !r->empty() && r->front().is_array() &&
        !r->front().empty() && r->front().front().is_number_unsigned())
      return task_shard(r->front().front().get<std::uint64_t>());
    return home;  // (refused there)
  }
  auto ns = request.find(protocol::field::ns);
  if (ns != request.end() && ns->is_string())
    return shard_index(ns->get_ref<const std::string&>());
  return home;
}

std::size_t hub::route(const protocol::task_request& request) const {
  if (size() == 1) return home;
  switch (request.code) {
    case protocol::op::task_done:
      return request.results.empty() ? home : task_shard(request.results.front().task);
    case protocol::op::task_wait: return task_shard(request.from);
    default: return shard_index(request.queue);  // submit, take
  }
}

void hub::begin_wanted_snapshot() {
  if (!log || !snapshot_wanted.exchange(false)) return;
  try {
    all_locked held(*this);
    // (Begun by another session meanwhile; the server stopped and finished the last one.)
    if (stopped.load(std::memory_order_relaxed) || !log->snapshot_due()) return;
    log->begin_snapshot(stores());  // (a failure there is a note)
  } catch (const std::bad_alloc&) {
    snapshot_wanted = true;  // no memory to freeze the namespaces: the next write tries again
    return;
  }
  // (Begun, or failed with a note: the server's loop writes it, or prints the note.)
  if (on_snapshot_begun) on_snapshot_begun();
}

void hub::deliver_others(std::vector<delivery>& ds, engine& from, std::uint64_t except) {
  std::shared_lock lock(sessions_mutex);
  for (auto& d : ds) {
    if (d.client_id == except) continue;
    auto it = sessions.find(d.client_id);
    if (it == sessions.end()) continue;
    auto s = it->second.lock();
    if (!s) continue;
    try {
      s->deliver_locked(std::move(d), from);
    } catch (const std::exception&) {
      // No memory for that client's reply: its connection closes (it sees that, not a hang).
      try {
        boost::asio::post(s->get_executor(), [s] { s->close(); });
      } catch (...) {
      }
    }
  }
}

}  // namespace zproc::server_detail
