#include "server/engine.hpp"

#include "protocol/message.hpp"
#include "protocol/target_request.hpp"
#include "server/permissions.hpp"

namespace zproc::server_detail {

namespace {
/// A string result up to this size is encoded under the engine's lock (engine::handle); a larger
/// result is encoded by its session, outside it.
constexpr std::size_t small_result = 256;

std::int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
/// Runs `fn` (the plain logic of a watch, process or task request): a bad request it refuses
/// (op_error, or a JSON field of the wrong type) becomes the error reply to `request_id`.
template <class F>
void guarded(std::vector<delivery>& out, std::uint64_t client_id, std::uint64_t request_id,
             F&& fn) {
  try {
    fn();
  } catch (const op_error& e) {
    out.push_back({client_id, protocol::make_error_reply(request_id, e.code, e.message)});
  } catch (const json::exception& e) {
    out.push_back(
        {client_id, protocol::make_error_reply(request_id, server_errc::bad_request, e.what())});
  } catch (const std::bad_alloc&) {
    out.push_back({client_id, protocol::make_error_reply(request_id, server_errc::out_of_memory,
                                                         "the server is out of memory")});
  }
}

}  // namespace

delivery engine::grant(const lock_waiter& w) {
  if (w.read) {
    outcome o = store_.execute(protocol::op::read, *w.read, request_context{w.client_id});
    if (!o.error) {
      json result = json::object();
      result[protocol::field::lease] = lock_lease.count();
      result[protocol::field::read_result] = std::move(o.result);
      return {w.client_id, protocol::make_reply(w.request_id, std::move(result))};
    }
    // (Not read, for lack of memory: the holder reads it itself.)
  }
  return {w.client_id, protocol::make_reply(w.request_id, lock_lease.count())};
}

void engine::lock(const std::string& ns, const json& request, std::uint64_t client,
                  std::uint64_t request_id, std::vector<delivery>& out) {
  lock_waiter me{client, request_id, std::nullopt};
  if (auto r = request.find(protocol::field::read_result); r != request.end() && r->is_boolean() &&
                                                           r->get<bool>()) {
    me.read = protocol::read_request(ns, {});
    if (auto k = request.find(protocol::field::keys); k != request.end()) {
      if (!k->is_array() || !std::all_of(k->begin(), k->end(), [](const json& x) { return x.is_string(); }))
        throw op_error{server_errc::bad_request, "'keys' must be strings"};
      (*me.read)[protocol::field::keys] = *k;
    }
  }
  namespace_state& st = store_.open(ns);  // limit_reached past max_namespaces
  ns_lock& l = locks_[ns];
  const auto now = std::chrono::steady_clock::now();
  if (st.locked_by == 0 || st.locked_by == client) {
    // (Held by this connection already: granted again, and the first grant still names it.)
    if (st.locked_by == 0) {
      l.granted_request = request_id;
      l.held_since = now;
    }
    const auto max_hold = limits_.max_lock_hold;
    if (max_hold.count() > 0 && now - l.held_since >= max_hold) {
      // Renewed for too long: the others get their turn.
      release(ns, out);
      throw op_error{server_errc::limit_reached,
                     "the lock of namespace '" + ns + "' was held for " +
                         std::to_string(max_hold.count()) +
                         " ms, the most one connection may hold it by taking it again "
                         "(server_config::limits.max_lock_hold, zproc server --max-lock-hold); "
                         "it was released"};
    }
    st.locked_by = client;
    l.lease_until = now + lock_lease;
    if (max_hold.count() > 0) l.lease_until = std::min(l.lease_until, l.held_since + max_hold);
    out.push_back(grant(me));
    return;
  }
  l.waiting.push_back(std::move(me));  // answered when granted
  lock_waits_.add(client);
}

void engine::release(const std::string& ns, std::vector<delivery>& out) {
  namespace_state& st = store_.restore(ns);
  st.locked_by = 0;
  auto it = locks_.find(ns);
  if (it == locks_.end()) return;
  if (it->second.waiting.empty()) {
    locks_.erase(it);
    return;
  }
  lock_waiter next = std::move(it->second.waiting.front());
  it->second.waiting.pop_front();
  lock_waits_.remove(next.client_id);
  st.locked_by = next.client_id;
  it->second.held_since = std::chrono::steady_clock::now();
  it->second.lease_until = it->second.held_since + lock_lease;
  it->second.granted_request = next.request_id;
  out.push_back(grant(next));
}

std::size_t engine::parked_of(std::uint64_t client) const {
  return watches_.pending_of(client) + tasks_.parked_of(client) + lock_waits_.of(client);
}

void engine::congested(std::uint64_t client_id) noexcept {
  try {
    congested_.insert(client_id);
  } catch (const std::bad_alloc&) {
    // Not marked: its watchers are answered as usual (shared pieces; no new memory per reply).
  }
}

bool engine::resume(std::uint64_t client_id, std::size_t budget, std::vector<delivery>& out) {
  if (!watches_.resume(store_, client_id, budget, out)) return false;
  congested_.erase(client_id);
  return true;
}

void engine::notify(const std::string& ns, const update_record& r,
                    std::vector<delivery>& out) noexcept {
  try {
    watches_.notify(store_, ns, r, congested_, out);
  } catch (...) {
    watches_.stall_namespace(ns, r.revision);  // they catch up at the next tick
  }
}

bool engine::cancel(std::uint64_t client_id, std::uint64_t target,
                    std::vector<delivery>& out) {
  bool found = watches_.cancel(client_id, target);
  found = tasks_.cancel(client_id, target) || found;
  std::vector<std::string> given_back;
  for (auto& [name, l] : locks_) {  // a lock request given up
    const auto before = l.waiting.size();
    std::erase_if(l.waiting, [&](const lock_waiter& w) {
      return w.client_id == client_id && w.request_id == target;
    });
    lock_waits_.remove(client_id, before - l.waiting.size());
    found = found || l.waiting.size() != before;
    // Granted already, but the grant had not reached the client when it gave up: the
    // client will never use or unlock it.
    if (l.granted_request == target)
      if (const auto* st = store_.find(name); st && st->locked_by == client_id)
        given_back.push_back(name);
  }
  for (const auto& name : given_back) release(name, out);  // (release() edits locks_)
  return found || !given_back.empty();
}

bool engine::more(std::uint64_t client_id, std::uint64_t target, std::uint64_t credit,
                  std::vector<delivery>& out) {
  return watches_.more(store_, client_id, target, credit, congested_.count(client_id) != 0, out);
}

void engine::client_gone(std::uint64_t client_id, std::vector<delivery>& out) {
  congested_.erase(client_id);
  watches_.drop_client(client_id);
  std::vector<std::string> held;
  for (auto& [name, l] : locks_) {
    std::erase_if(l.waiting, [&](const lock_waiter& w) { return w.client_id == client_id; });
    if (const auto* st = store_.find(name); st && st->locked_by == client_id) held.push_back(name);
  }
  lock_waits_.forget(client_id);
  for (const auto& name : held) release(name, out);  // a killed holder blocks nobody
  processes_.client_gone(client_id, wall_clock_ms());
  tasks_.client_gone(client_id, out);
}

void engine::client_gone_later(std::uint64_t client_id) noexcept {
  try {
    gone_later_.push_back(client_id);
  } catch (const std::bad_alloc&) {
    // Nothing more can be done without memory; its locks still expire with their lease.
  }
}

void engine::tick(std::vector<delivery>& out) {
  std::erase_if(gone_later_, [&](std::uint64_t id) {
    try {
      client_gone(id, out);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  });
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> expired;
  for (const auto& [name, l] : locks_) {
    const auto* st = store_.find(name);
    if (st && st->locked_by != 0 && now >= l.lease_until) expired.push_back(name);
  }
  for (const auto& name : expired) release(name, out);
  tasks_.tick(now, out);
  watches_.retry_stalled(store_, congested_, out);
  store_.trim_history();  // (several shards: one whose namespaces went quiet gives back)
}

recovery_report engine::attach(std::unique_ptr<journal> j) {
  own_journal_ = std::move(j);
  journal_ = own_journal_.get();
  return journal_->recover(store_);
}

bool engine::over_parked(std::uint64_t request_id, const request_context& ctx,
                         std::vector<delivery>& out) {
  if (limits_.max_parked_per_connection == 0 ||
      parked_of(ctx.client_id) < limits_.max_parked_per_connection)
    return false;
  out.push_back({ctx.client_id,
                 protocol::make_error_reply(
                     request_id, server_errc::limit_reached,
                     "this connection has " + std::to_string(limits_.max_parked_per_connection) +
                         " requests waiting already (watches, lock waits, task takes and "
                         "waits: server_config::limits.max_parked_per_connection, zproc server "
                         "--max-parked)")});
  return true;
}

bool engine::admitted(protocol::op code, std::uint64_t request_id, request_scope scope,
                      const request_context& ctx, std::vector<delivery>& out) {
  if (protocol::parks(code) && over_parked(request_id, ctx, out)) return false;
  if (ctx.role)
    if (auto why = refusal(*ctx.role, code, scope)) {
      out.push_back({ctx.client_id,
                     protocol::make_error_reply(request_id, server_errc::forbidden, *why)});
      return false;
    }
  return true;
}

void engine::handle(const protocol::watch_request& request, const request_context& ctx,
                    std::vector<delivery>& out) {
  if (!admitted(protocol::op::watch, request.id, request_scope{request.ns, {}}, ctx, out)) return;
  guarded(out, ctx.client_id, request.id,
          [&] { watches_.watch(store_, request, ctx.client_id, out); });
}

void engine::handle(const json& request, std::uint64_t request_id, const request_context& ctx,
                    std::vector<delivery>& out) {
  using protocol::op;
  const std::optional<op> code = protocol::op_of(request);  // parsed once
  if (code && !admitted(*code, request_id, scope_of(request), ctx, out)) return;

  if (code && process_registry::handles(*code)) {
    guarded(out, ctx.client_id, request_id, [&] {
      json result =
          processes_.execute(*code, request, ctx.client_id, wall_clock_ms(), ctx.privileged());
      out.push_back({ctx.client_id, protocol::make_reply(request_id, std::move(result))});
    });
    return;
  }
  if (code && task_queue::handles(*code)) {
    guarded(out, ctx.client_id, request_id, [&] {
      tasks_.execute(*code, request, request_id, ctx.client_id, std::chrono::steady_clock::now(),
                     out, ctx.privileged());
    });
    return;
  }
  if (code == op::watch) {
    guarded(out, ctx.client_id, request_id, [&] {
      watches_.watch(store_, watch_registry::request_of(request), ctx.client_id, out);
    });
    return;
  }
  if (code && protocol::targets_request(*code)) {
    const auto t = protocol::read_target_request(request, *code);
    if (!t) {
      out.push_back({ctx.client_id,
                     protocol::make_error_reply(request_id, server_errc::bad_request,
                                                protocol::target_request_error(*code))});
      return;
    }
    guarded(out, ctx.client_id, request_id, [&] {
      const bool found = t->code == op::more ? more(ctx.client_id, t->target, t->credit, out)
                                             : cancel(ctx.client_id, t->target, out);
      out.push_back({ctx.client_id, protocol::make_reply(request_id, found)});
    });
    return;
  }
  if (code == op::lock || code == op::unlock) {
    auto ns = request.find(protocol::field::ns);
    if (ns == request.end() || !ns->is_string()) {
      out.push_back({ctx.client_id, protocol::make_error_reply(request_id, server_errc::bad_request,
                                                               "missing namespace (field 'n')")});
      return;
    }
    const auto& name = ns->get_ref<const std::string&>();
    guarded(out, ctx.client_id, request_id, [&] {
      if (code == op::lock) {
        lock(name, request, ctx.client_id, request_id, out);
        return;
      }
      if (const auto* st = store_.find(name); st && st->locked_by == ctx.client_id)
        release(name, out);
      out.push_back({ctx.client_id, protocol::make_reply(request_id, true)});
    });
    return;
  }
  outcome o = code ? store_.execute(*code, request, ctx) : store_.execute(request, ctx);
  const std::string* release_ns = nullptr;  // an atomic operation is done: its lock goes
  if (code == op::commit && !o.error)
    release_ns = &request.find(protocol::field::ns)->get_ref<const std::string&>();
  answer_store(std::move(o), request_id, ctx, release_ns, out);
}

void engine::handle(const protocol::store_request& request, const request_context& ctx,
                    std::vector<delivery>& out) {
  if (!admitted(request.code, request.id, request_scope{request.ns, {}}, ctx, out)) return;
  answer_store(store_.execute(request, ctx), request.id, ctx, nullptr, out);
}

void engine::handle(const protocol::task_request& request, const request_context& ctx,
                    std::vector<delivery>& out) {
  std::optional<std::string_view> swarm;
  if (!request.queue.empty()) swarm = request.queue;
  if (!admitted(request.code, request.id, request_scope{"", swarm}, ctx, out)) return;
  guarded(out, ctx.client_id, request.id, [&] {
    tasks_.execute(request, ctx.client_id, std::chrono::steady_clock::now(), out);
  });
}

void engine::answer_store(outcome&& o, std::uint64_t request_id, const request_context& ctx,
                          const std::string* release_ns, std::vector<delivery>& out) {
  // Watchers hear of a committed write whatever happens to its own reply below (a reply that
  // cannot be built for lack of memory closes the writer's connection, not their wait).
  struct notify_on_exit {
    engine& e;
    const outcome& o;
    std::vector<delivery>& out;
    ~notify_on_exit() {
      if (o.committed) e.notify(*o.ns, *o.committed, out);
    }
  } notify_guard{*this, o, out};
  if (release_ns)
    if (const auto* st = store_.find(*release_ns); st && st->locked_by == ctx.client_id)
      release(*release_ns, out);
  bool snapshot_due = false;
  if (o.committed && journal_) {
    // Durable before acknowledged: the reply is queued only after the log write (and fsync,
    // or, with the group_commit, sent only once a sync covered it).
    try {
      snapshot_due = journal_->append(*o.ns, *o.committed);
    } catch (const std::exception& e) {
      out.push_back({ctx.client_id,
                     protocol::make_error_reply(request_id, server_errc::internal,
                                                std::string("the update is applied but could not "
                                                            "be written to the data directory: ") +
                                                    e.what())});
      return;
    }
  }
  if (snapshot_due) {
    // Begun here (one shard) or by the server (several), written by the server between
    // requests (snapshot_step): nobody waits for it.
    try {
      if (own_journal_) journal_->begin_snapshot(store_);
      if (on_snapshot_begun_) on_snapshot_begun_();
    } catch (const std::exception&) {
      // No memory to begin it: the write stands, and the next write begins the snapshot.
    }
  }
  if (o.error) {
    out.push_back({ctx.client_id, protocol::make_error_reply(request_id, o.error, o.message)});
  } else if (!o.result.is_structured() && !o.result.is_binary() &&
             (!o.result.is_string() ||
              o.result.get_ref<const std::string&>().size() <= small_result)) {
    // The common reply (a set's, a small get's): encoded at once, no json object built.
    delivery d{ctx.client_id, json(), nullptr, request_id, {}};
    d.bytes = protocol::encode_reply(request_id, o.result,
                                     o.has_revision ? std::optional(o.revision) : std::nullopt);
    out.push_back(std::move(d));
  } else if (o.has_revision) {
    out.push_back({ctx.client_id, protocol::make_reply(request_id, std::move(o.result), o.revision)});
  } else {
    out.push_back({ctx.client_id, protocol::make_reply(request_id, std::move(o.result))});
  }
}

}  // namespace zproc::server_detail
