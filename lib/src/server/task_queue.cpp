#include "server/task_queue.hpp"

#include "protocol/ops.hpp"

#include "protocol/message.hpp"
#include "protocol/msgpack.hpp"
#include "protocol/task_messages.hpp"
#include "protocol/value_check.hpp"
#include "protocol/tasks.hpp"

#include <algorithm>
#include <array>
#include <limits>

namespace zproc::server_detail {

namespace wire = protocol::tasks;
using json = nlohmann::json;

namespace {

const json& field(const json& request, const char* name) {
  auto it = request.find(name);
  if (it == request.end()) bad_request(std::string("missing field '") + name + "'");
  return *it;
}

std::uint64_t count_field(const json& request, const char* name) {
  const auto v = as_count(field(request, name));
  if (!v) bad_request(std::string("field '") + name + "' must be a non-negative integer");
  return *v;
}

std::uint64_t count_or(const json& request, const char* name, std::uint64_t fallback) {
  return request.contains(name) ? count_field(request, name) : fallback;
}

const std::string& string_field(const json& request, const char* name) {
  const json& v = field(request, name);
  if (!v.is_string() || v.get_ref<const std::string&>().empty())
    bad_request(std::string("field '") + name + "' must be a non-empty string");
  return v.get_ref<const std::string&>();
}

/// The reply to request `request_id`, already MessagePack.
delivery packed(std::uint64_t client_id, std::uint64_t request_id,
                protocol::reply_bytes bytes) {
  delivery d{client_id, json()};
  d.request_id = request_id;  // (a reply too large for the client is refused by this id)
  d.bytes = std::move(bytes);
  return d;
}

}  // namespace

bool task_queue::handles(detail::op o) noexcept {
  using protocol::op;
  switch (o) {
    case op::task_submit:
    case op::task_take:
    case op::task_done:
    case op::task_wait:
    case op::task_cancel:
    case op::task_retire:
    case op::task_info: return true;
    default: return false;
  }
}

void task_queue::execute(const json& request, std::uint64_t request_id, std::uint64_t client_id,
                         clock::time_point now, std::vector<delivery>& out) {
  const auto o = protocol::op_of(request);
  if (!o || !handles(*o)) throw op_error{server_errc::unknown_op, "not an operation of the task queue"};
  execute(*o, request, request_id, client_id, now, out);
}

void task_queue::execute(detail::op o, const json& request, std::uint64_t request_id,
                         std::uint64_t client_id, clock::time_point now,
                         std::vector<delivery>& out, bool privileged) {
  using protocol::op;
  if (protocol::flat_task_op(o)) {
    std::string storage;
    return execute(request_of(o, request, request_id, storage), client_id, now, out);
  }
  switch (o) {
    case op::task_cancel: return cancel_range(request, request_id, client_id, privileged, out);
    case op::task_retire: return retire(request, request_id, client_id, now, out);
    case op::task_info:
      out.push_back({client_id, protocol::make_reply(request_id, info(request))});
      return;
    default: throw op_error{server_errc::unknown_op, "not an operation of the task queue"};
  }
}

void task_queue::execute(const protocol::task_request& request, std::uint64_t client_id,
                         clock::time_point now, std::vector<delivery>& out) {
  using protocol::op;
  switch (request.code) {
    case op::task_submit: return submit(request, client_id, out);
    case op::task_take: return take(request, client_id, out);
    case op::task_done: return done(request, client_id, out);
    case op::task_wait: return wait(request, client_id, now, out);
    default: throw op_error{server_errc::unknown_op, "not an operation of the task queue"};
  }
}

protocol::task_request task_queue::request_of(detail::op o, const json& request,
                                              std::uint64_t request_id, std::string& storage) {
  using protocol::op;
  protocol::task_request r;
  r.id = request_id;
  r.code = o;
  // The packed arguments or outcomes are appended to `storage` one after the other, their
  // views taken once all are written (the string may move while it grows): piece i ends at
  // ends[i] and starts where piece i - 1 ended.
  const std::size_t base = storage.size();
  std::vector<std::size_t> ends;
  auto piece = [&](std::size_t i) {
    const std::size_t from = i == 0 ? base : ends[i - 1];
    return std::string_view(storage).substr(from, ends[i] - from);
  };
  switch (o) {
    case op::task_submit: {
      r.queue = string_field(request, wire::queue);
      r.target = string_field(request, wire::target);
      const json& list = field(request, wire::tasks);
      if (!list.is_array() || list.empty())
        bad_request("field 't' must be a non-empty array of tasks");
      for (const auto& t : list) {
        if (!t.is_array() || t.size() != 2 || !t[0].is_binary() || !as_count(t[1]) ||
            t[1].get<std::uint64_t>() == 0)
          bad_request("each task must be [packed arguments (binary), number of items (> 0)]");
      }
      r.max_attempts = count_or(request, wire::max_attempts, 3);
      if (r.max_attempts == 0 || r.max_attempts > std::numeric_limits<std::uint32_t>::max())
        bad_request("field 'ma' (max_attempts) must be at least 1");
      r.call_timeout_ms = count_or(request, wire::call_timeout, 0);
      if (auto b = request.find(wire::bound); b != request.end()) {
        if (!b->is_boolean()) bad_request("field 'bound' must be a boolean");
        r.bound = b->get<bool>();
      }
      // A plain binary, whatever subtype it came with (the flat reader takes no other: the
      // worker's reader neither).
      for (const auto& t : list) {
        const auto& b = t[0].get_binary();
        protocol::append_msgpack_binary(
            storage, std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
        ends.push_back(storage.size());
      }
      r.tasks.reserve(list.size());
      for (std::size_t i = 0; i < list.size(); ++i)
        r.tasks.push_back({piece(i), list[i][1].get<std::uint64_t>()});
      break;
    }
    case op::task_take: {
      r.queue = string_field(request, wire::queue);
      r.max = count_or(request, wire::max, 1);
      r.max_calls = count_or(request, wire::max_calls, 0);
      if (request.contains(wire::calls_target))
        r.calls_target = string_field(request, wire::calls_target);
      // (A pid or host of another type is no pid or host: the worker is only less named.)
      if (auto p = request.find(wire::pid); p != request.end()) r.pid = as_int64(*p).value_or(0);
      if (auto h = request.find(wire::host); h != request.end() && h->is_string())
        r.host = h->get_ref<const std::string&>();
      break;
    }
    case op::task_done: {
      const json& list = field(request, wire::results);
      if (!list.is_array()) bad_request("field 'r' must be an array of [id, outcome]");
      for (const auto& t : list) {
        if (!t.is_array() || t.size() != 2 || !as_count(t[0]) || !t[1].is_object())
          bad_request("each result must be [task id, outcome object]");
        // (Sent on one level deeper than it came: the submitter's reader must take it.)
        if (protocol::deeper_than(t[1], protocol::max_request_depth))
          bad_request("a result's outcome nests deeper than " +
                      std::to_string(protocol::max_request_depth) + " levels");
      }
      for (const auto& t : list) {
        protocol::append_msgpack(storage, t[1]);
        ends.push_back(storage.size());
      }
      r.results.reserve(list.size());
      for (std::size_t i = 0; i < list.size(); ++i)
        r.results.push_back({*as_count(list[i][0]), piece(i)});
      break;
    }
    case op::task_wait: {
      r.from = count_field(request, wire::from);
      r.to = count_field(request, wire::to);
      if (r.to < r.from) bad_request("task_wait: 'to' must not be below 'from'");
      r.wait_ms = count_or(request, wire::wait_ms, 0);
      if (auto ack = request.find(wire::ack); ack != request.end()) {
        if (!ack->is_array()) bad_request("field 'ack' must be an array of task ids");
        for (const auto& id : *ack) {
          const auto v = as_count(id);
          if (!v) bad_request("field 'ack' must be an array of task ids");
          r.ack.push_back(*v);
        }
      }
      break;
    }
    default: throw op_error{server_errc::unknown_op, "not an operation of the task queue"};
  }
  return r;
}

std::size_t task_queue::parked_of(std::uint64_t client_id) const {
  std::size_t n = wait_counts_.of(client_id);
  if (auto w = workers_.find(client_id); w != workers_.end() && w->second.parked) ++n;
  return n;
}

std::size_t task_queue::queued(const std::string& queue) const {
  auto it = queues_.find(queue);
  return it == queues_.end() ? 0 : it->second.live;
}

std::size_t task_queue::workers(const std::string& queue) const {
  auto it = queues_.find(queue);
  return it == queues_.end() ? 0 : it->second.workers.size();
}

// --- submitting ------------------------------------------------------------------------

void task_queue::submit(const protocol::task_request& request, std::uint64_t client_id,
                        std::vector<delivery>& out) {
  const auto& list = request.tasks;
  const std::size_t held = shared_ ? shared_->tasks.load(std::memory_order_relaxed) : tasks_.size();
  if (max_tasks_ > 0 && held + list.size() > max_tasks_)
    throw op_error{server_errc::limit_reached,
                   "the server holds " + std::to_string(held) + " tasks; " +
                       std::to_string(list.size()) + " more would pass its limit of " +
                       std::to_string(max_tasks_) + " (server_config::limits.max_tasks, zproc server --max-tasks)"};
  const std::string queue(request.queue);
  const auto target = std::make_shared<const std::string>(request.target);
  const std::uint64_t first = last_id_ + 1;
  queue_state& q = queues_[queue];
  auto hint = tasks_.end();
  for (const auto& t : list) {
    task x;
    x.queue = queue;
    x.target = target;
    x.args = t.args;
    x.items = t.items;
    x.owner = client_id;
    x.bound = request.bound;
    x.max_attempts = static_cast<std::uint32_t>(request.max_attempts);
    x.call_timeout_ms = request.call_timeout_ms;
    const std::uint64_t id = ++last_id_;
    hint = tasks_.emplace_hint(hint, id, std::move(x));
    if (shared_) shared_->tasks.fetch_add(1, std::memory_order_relaxed);
    q.pending.push_back(id);
    ++q.live;
    q.live_calls += t.items;
  }
  auto& ranges = owned_[client_id];
  // Ranges whose tasks are all collected are forgotten: a submitter that runs for days does
  // not grow this list.
  while (!ranges.empty()) {
    auto rest = tasks_.lower_bound(ranges.front().first);
    if (rest != tasks_.end() && rest->first < ranges.front().second) break;
    ranges.erase(ranges.begin());
  }
  if (!ranges.empty() && ranges.back().second == first) {
    ranges.back().second = last_id_ + 1;  // consecutive submissions: one range
  } else {
    ranges.emplace_back(first, last_id_ + 1);
  }
  out.push_back({client_id, protocol::make_reply(request.id, wire::submit_reply(first))});
  serve_takers(queue, out);
}

// --- workers ---------------------------------------------------------------------------

void task_queue::take(const protocol::task_request& request, std::uint64_t client_id,
                      std::vector<delivery>& out) {
  const std::uint64_t max = std::max<std::uint64_t>(1, request.max);
  auto it = workers_.find(client_id);
  if (it == workers_.end()) {
    worker w;
    w.queue = request.queue;
    w.pid = request.pid;
    w.host = request.host;
    queue_state& q = queues_[w.queue];
    if (q.retire_pending.erase({w.host, w.pid}) > 0) w.retiring = true;
    it = workers_.emplace(client_id, std::move(w)).first;
    q.workers.push_back(client_id);
  } else if (it->second.queue != request.queue) {
    bad_request("this connection is already a worker of swarm '" + it->second.queue + "'");
  } else if (it->second.parked) {
    bad_request("this worker already waits for tasks (one task_take at a time)");
  }
  worker& w = it->second;
  if (w.retiring) {
    out.push_back({client_id, protocol::make_reply(request.id, wire::retire_reply())});
    return;
  }
  // (The target's name is copied only if the take waits.)
  const take_limits p{request.id, max, request.max_calls, request.calls_target};
  if (auto tasks = assign(client_id, w, p, fair_share(queues_[w.queue]))) {
    out.push_back(packed(client_id, request.id, std::move(*tasks)));
    return;
  }
  w.parked = parked_take{p.request_id, p.max, p.calls, std::string(p.target)};
  queues_[w.queue].parked.push_back(client_id);
}

std::uint64_t task_queue::fair_share(const queue_state& q) noexcept {
  // The queued calls over the queue's workers, asking or not: with 8 tasks queued and 4
  // workers, each takes 2, not the first to ask all 8 (its size of batch may come from tiny
  // calls, these may be long); with a map's large tasks and its small last ones queued, not
  // one worker all the large ones. Counted in calls: a task may hold one or thousands.
  const std::size_t sharers = std::max<std::size_t>(1, q.workers.size());
  return (q.live_calls + sharers - 1) / sharers;
}

std::optional<std::string> task_queue::assign(std::uint64_t client_id, worker& w,
                                              const take_limits& p, std::uint64_t share) {
  queue_state& q = queues_[w.queue];
  if (q.live == 0) return std::nullopt;
  std::uint64_t calls = share;
  if (p.calls > 0) calls = std::min(calls, p.calls);
  std::uint64_t taken_calls = 0;
  wire::take_reply_writer list(p.request_id);
  while (list.size() < p.max && !q.pending.empty()) {
    const std::uint64_t id = q.pending.front();
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.state != task_state::queued) {  // cancelled
      q.pending.pop_front();
      continue;
    }
    task& t = it->second;
    // The first task goes anyway; more only within the calls asked for, and of the target the
    // worker measured its calls on (another target's calls may take far longer).
    if (list.size() > 0 &&
        (taken_calls + t.items > calls || (!p.target.empty() && *t.target != p.target)))
      break;
    q.pending.pop_front();
    --q.live;
    q.live_calls -= t.items;
    taken_calls += t.items;
    t.state = task_state::running;
    t.worker = client_id;
    ++t.attempts;
    w.running.insert(id);
    // (A count past what a worker reads as a signed integer is as good as none: the most.)
    list.add(id, *t.target, t.args, t.items, t.attempts,
             static_cast<std::int64_t>(std::min<std::uint64_t>(
                 t.call_timeout_ms, std::numeric_limits<std::int64_t>::max())));
  }
  if (list.size() == 0) return std::nullopt;
  return std::move(list).finish();
}

void task_queue::serve_takers(const std::string& queue, std::vector<delivery>& out) {
  auto qit = queues_.find(queue);
  if (qit == queues_.end()) return;
  queue_state& q = qit->second;
  const std::uint64_t share = fair_share(q);  // of the queue as it is now, for every taker
  while (q.live > 0 && !q.parked.empty()) {
    const std::uint64_t client = q.parked.front();
    q.parked.pop_front();
    auto wit = workers_.find(client);
    if (wit == workers_.end() || !wit->second.parked) continue;
    worker& w = wit->second;
    parked_take p = std::move(*w.parked);
    w.parked.reset();
    if (auto tasks = assign(client, w, p.limits(), share)) {
      out.push_back(packed(client, p.request_id, std::move(*tasks)));
    } else {
      w.parked = std::move(p);
      q.parked.push_front(client);
      break;
    }
  }
}

void task_queue::done(const protocol::task_request& request, std::uint64_t client_id,
                      std::vector<delivery>& out) {
  auto wit = workers_.find(client_id);
  // The outcomes stamped first, the tasks finished after: a refusal changes nothing.
  std::vector<std::pair<std::uint64_t, std::string>> ended;
  for (const auto& r : request.results) {
    auto it = tasks_.find(r.task);
    // Only the worker that holds the task may finish it.
    if (wit == workers_.end() || it == tasks_.end() || it->second.state != task_state::running ||
        it->second.worker != client_id)
      continue;
    try {
      ended.emplace_back(r.task,
                         wire::stamped_outcome(r.outcome, wit->second.pid, wit->second.host));
    } catch (const wire::malformed& e) {  // (the readers took only maps of named fields)
      bad_request(std::string("a result's outcome: ") + e.what());
    }
  }
  std::vector<std::uint64_t> finished;
  std::uint64_t accepted = 0;
  for (auto& [id, outcome] : ended) {
    // Found again: the same id may come twice in one list (the first one finishes it).
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.state != task_state::running) continue;
    wit->second.running.erase(id);
    ++wit->second.done;
    ++accepted;
    finish(id, it->second, std::move(outcome));
    finished.push_back(id);
  }
  out.push_back(packed(client_id, request.id, protocol::encode_reply(request.id, accepted)));
  serve_waits(finished, out);
}

void task_queue::finish(std::uint64_t id, task& t, std::string outcome) {
  if (t.cancelled) {
    erase(tasks_.find(id));
    return;
  }
  t.state = task_state::done;
  t.worker = 0;
  t.args = std::string();  // not needed any more
  t.outcome = std::move(outcome);
  done_.insert(id);
  if (t.owner == 0) orphan(id);
}

void task_queue::orphan(std::uint64_t id) {
  orphans_.insert(id);
  while (orphans_.size() > max_orphaned_) {  // the oldest go
    auto it = tasks_.find(*orphans_.begin());
    if (it == tasks_.end()) {
      orphans_.erase(orphans_.begin());
    } else {
      erase(it);
    }
  }
}

void task_queue::retire(const json& request, std::uint64_t request_id, std::uint64_t client_id,
                        clock::time_point now, std::vector<delivery>& out) {
  const std::string& queue = string_field(request, wire::queue);
  const json& pids = field(request, wire::pids);
  if (!pids.is_array()) bad_request("field 'pids' must be an array of process ids");
  for (const auto& p : pids)
    if (!p.is_number_integer()) bad_request("field 'pids' must be an array of process ids");
  std::string host;
  if (auto h = request.find(wire::host); h != request.end()) {
    if (!h->is_string()) bad_request("field 'host' must be a string");
    host = h->get<std::string>();
  }
  queue_state& q = queues_[queue];
  // A worker being respawned has not connected yet: it is retired when it does (if within a
  // minute: a pid seen much later is another process).
  std::erase_if(q.retire_pending, [&](const auto& e) { return now - e.second > std::chrono::minutes(1); });
  for (const auto& p : pids)
    if (q.retire_pending.size() < 4096) q.retire_pending[{host, p.get<std::int64_t>()}] = now;
  std::uint64_t marked = 0;
  for (const std::uint64_t c : q.workers) {
    worker& w = workers_.at(c);
    if (w.retiring || w.host != host ||
        std::find(pids.begin(), pids.end(), json(w.pid)) == pids.end())
      continue;
    q.retire_pending.erase({w.host, w.pid});
    w.retiring = true;
    ++marked;
    if (w.parked) {  // it waits for work: tell it now
      out.push_back({c, protocol::make_reply(w.parked->request_id, wire::retire_reply())});
      w.parked.reset();
      std::erase(q.parked, c);
    }
  }
  out.push_back({client_id, protocol::make_reply(request_id, marked)});
}

// --- collecting ------------------------------------------------------------------------

task_queue::collected task_queue::collect(std::uint64_t from, std::uint64_t to,
                                          std::uint64_t request_id) const {
  wire::wait_reply_writer list(request_id);
  std::size_t bytes = 0;
  for (auto it = done_.lower_bound(from); it != done_.end() && *it < to; ++it) {
    const task& t = tasks_.at(*it);
    if (list.size() > 0 && bytes + t.outcome.size() > wire::max_wait_reply_bytes) break;
    bytes += t.outcome.size();
    list.add(*it, t.outcome);
  }
  collected c;
  c.results = list.size();
  auto first = tasks_.lower_bound(from);
  c.left = first != tasks_.end() && first->first < to;
  c.reply = std::move(list).finish(c.left);
  return c;
}

void task_queue::wait(const protocol::task_request& request, std::uint64_t client_id,
                      clock::time_point now, std::vector<delivery>& out) {
  if (request.to < request.from) bad_request("task_wait: 'to' must not be below 'from'");
  const std::uint64_t ms = std::min<std::uint64_t>(request.wait_ms, wire::max_wait_ms);
  for (const std::uint64_t id : request.ack) {
    auto it = tasks_.find(id);
    if (it != tasks_.end() && it->second.state == task_state::done) erase(it);
  }
  collected c = collect(request.from, request.to, request.id);
  if (c.results > 0 || !c.left || ms == 0) {
    out.push_back(packed(client_id, request.id, std::move(c.reply)));
    return;
  }
  waits_.push_back(
      {client_id, request.id, request.from, request.to, now + std::chrono::milliseconds(ms)});
  wait_counts_.add(client_id);
}

void task_queue::serve_waits(const std::vector<std::uint64_t>& finished,
                             std::vector<delivery>& out) {
  if (finished.empty() || waits_.empty()) return;
  std::erase_if(waits_, [&](const parked_wait& w) {
    const bool concerned = std::any_of(finished.begin(), finished.end(), [&](std::uint64_t id) {
      return id >= w.from && id < w.to;
    });
    if (!concerned) return false;
    collected c = collect(w.from, w.to, w.request_id);
    if (c.results == 0) return false;  // cancelled meanwhile
    out.push_back(packed(w.client_id, w.request_id, std::move(c.reply)));
    wait_counts_.remove(w.client_id);
    return true;
  });
}

void task_queue::tick(clock::time_point now, std::vector<delivery>& out) {
  std::erase_if(waits_, [&](const parked_wait& w) {
    if (now < w.deadline) return false;
    out.push_back(packed(w.client_id, w.request_id, collect(w.from, w.to, w.request_id).reply));
    wait_counts_.remove(w.client_id);
    return true;
  });
}

bool task_queue::cancel(std::uint64_t client_id, std::uint64_t request_id) {
  const auto before = waits_.size();
  std::erase_if(waits_, [&](const parked_wait& w) {
    return w.client_id == client_id && w.request_id == request_id;
  });
  if (waits_.size() != before) {
    wait_counts_.remove(client_id, before - waits_.size());
    return true;
  }
  auto it = workers_.find(client_id);
  if (it == workers_.end() || !it->second.parked || it->second.parked->request_id != request_id)
    return false;
  it->second.parked.reset();
  std::erase(queues_[it->second.queue].parked, client_id);
  return true;
}

void task_queue::cancel_range(const json& request, std::uint64_t request_id,
                              std::uint64_t client_id, bool privileged,
                              std::vector<delivery>& out) {
  const std::uint64_t from = count_field(request, wire::from);
  const std::uint64_t to = count_field(request, wire::to);
  std::uint64_t n = 0;
  // Only a task's submitter (or an admin) cancels it; others' tasks in the range stay.
  for (auto it = tasks_.lower_bound(from); it != tasks_.end() && it->first < to;) {
    if (!privileged && it->second.owner != client_id) {
      ++it;
      continue;
    }
    it = drop(it);
    ++n;
  }
  out.push_back({client_id, protocol::make_reply(request_id, n)});
}

task_queue::task_map::iterator task_queue::drop(task_map::iterator it) {
  if (it->second.state == task_state::running) {
    it->second.cancelled = true;  // the worker finishes it; its outcome is dropped
    return std::next(it);
  }
  auto next = std::next(it);
  erase(it);
  return next;
}

void task_queue::forget(task_map::iterator it) {
  tasks_.erase(it);
  if (shared_) shared_->tasks.fetch_sub(1, std::memory_order_relaxed);
}

void task_queue::erase(task_map::iterator it) {
  task& t = it->second;
  if (t.state == task_state::queued) {
    if (auto q = queues_.find(t.queue); q != queues_.end()) {
      --q->second.live;
      q->second.live_calls -= t.items;
    }
  } else if (t.state == task_state::done) {
    done_.erase(it->first);
    orphans_.erase(it->first);
  } else if (auto w = workers_.find(t.worker); w != workers_.end()) {
    w->second.running.erase(it->first);
  }
  forget(it);
}

// --- connections that close ------------------------------------------------------------

void task_queue::lost(std::uint64_t id, const worker& w, std::vector<std::uint64_t>& finished) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  task& t = it->second;
  if (t.cancelled) {
    forget(it);
    return;
  }
  if (t.attempts < t.max_attempts) {  // to the front: it was taken first
    t.state = task_state::queued;
    t.worker = 0;
    queue_state& q = queues_[t.queue];
    q.pending.push_front(id);
    ++q.live;
    q.live_calls += t.items;
    return;
  }
  const json outcome = wire::lost_outcome(
      "the worker running it (pid " + std::to_string(w.pid) + " on " +
          (w.host.empty() ? std::string("an unknown host") : w.host) +
          ") died or disconnected; tried " + std::to_string(t.attempts) + " time(s) (max_attempts " +
          std::to_string(t.max_attempts) + ")",
      w.pid, w.host, t.attempts, t.items, *t.target);
  std::string bytes;
  protocol::append_msgpack(bytes, outcome);
  finish(id, t, std::move(bytes));
  finished.push_back(id);
}

void task_queue::client_gone(std::uint64_t client_id, std::vector<delivery>& out) {
  std::erase_if(waits_, [&](const parked_wait& w) { return w.client_id == client_id; });
  wait_counts_.forget(client_id);

  if (auto wit = workers_.find(client_id); wit != workers_.end()) {
    worker w = std::move(wit->second);
    workers_.erase(wit);
    queue_state& q = queues_[w.queue];
    std::erase(q.workers, client_id);
    std::erase(q.parked, client_id);
    std::vector<std::uint64_t> running(w.running.begin(), w.running.end());
    std::sort(running.rbegin(), running.rend());  // pushed to the front: lowest id first
    std::vector<std::uint64_t> finished;
    for (const std::uint64_t id : running) lost(id, w, finished);
    serve_takers(w.queue, out);
    serve_waits(finished, out);
  }

  if (auto oit = owned_.find(client_id); oit != owned_.end()) {
    std::vector<std::uint64_t> orphaned;  // after the walk: orphan() may erase other tasks
    for (const auto& [from, to] : oit->second) {
      for (auto it = tasks_.lower_bound(from); it != tasks_.end() && it->first < to;) {
        task& t = it->second;
        if (t.owner != client_id) {
          ++it;
        } else if (t.bound) {
          it = drop(it);
        } else {
          t.owner = 0;  // kept for whoever collects it, within the orphan bound
          if (t.state == task_state::done) orphaned.push_back(it->first);
          ++it;
        }
      }
    }
    owned_.erase(oit);
    for (const std::uint64_t id : orphaned) orphan(id);
  }
}

json task_queue::info(const json& request) const {
  const std::string& queue = string_field(request, wire::queue);
  wire::info out;
  auto qit = queues_.find(queue);
  if (qit != queues_.end()) {
    for (const std::uint64_t c : qit->second.workers) {
      const worker& w = workers_.at(c);
      out.running += w.running.size();
      out.workers.push_back({c, w.pid, w.host, w.running.size(), w.done, w.retiring});
    }
  }
  out.queued = queued(queue);
  return wire::info_reply(out);
}

}  // namespace zproc::server_detail
