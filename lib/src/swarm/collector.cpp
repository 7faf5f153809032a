// Collecting the outcomes of a swarm's tasks: waits on the server (task_wait), acknowledges
// what arrived, and turns outcomes into values and errors (remote_error, task_lost_error).
#include "client/client_core.hpp"
#include "protocol/message.hpp"
#include "protocol/tasks.hpp"
#include "swarm/swarm_core.hpp"

#include <zproc/detail/request.hpp>
#include <zproc/detail/task_collector.hpp>
#include <zproc/process.hpp>
#include <zproc/process_error.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>

#include <algorithm>
#include <atomic>

namespace zproc::detail {

namespace asio = boost::asio;
namespace wire = protocol::tasks;

namespace {

std::string text(const json& o, const char* name) {
  auto it = o.find(name);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::int64_t number(const json& o, const char* name) {
  auto it = o.find(name);
  return it != o.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

}  // namespace

struct task_collector::state {
  std::shared_ptr<swarm_core> core;
  std::uint64_t first;
  std::size_t count;
  std::vector<bool> got;
  std::size_t remaining;
  std::vector<std::uint64_t> ack;
  std::atomic<bool> busy{false};

  state(std::shared_ptr<swarm_core> c, std::uint64_t f, std::size_t n)
      : core(std::move(c)), first(f), count(n), got(n, false), remaining(n) {}

  json request(std::uint64_t ms, std::vector<std::uint64_t>& sent) {
    json r = json::object();
    r[protocol::field::op] = protocol::name(protocol::op::task_wait);
    r[wire::from] = first;
    r[wire::to] = first + count;
    r[wire::wait_ms] = ms;
    sent = std::move(ack);
    ack.clear();
    if (!sent.empty()) r[wire::ack] = sent;
    return r;
  }

  /// A request failed: what it acknowledged is acknowledged again by the next one.
  void restore(std::vector<std::uint64_t>& sent) {
    ack.insert(ack.end(), sent.begin(), sent.end());
  }

  /// One blocking task_wait on `conn` (parking up to `ms` on the server); the outcomes it
  /// brought. Throws what the call throws (the acknowledgements stay for the next one).
  std::vector<task_outcome> round_trip(const std::shared_ptr<client_impl>& conn, std::uint64_t ms) {
    std::vector<std::uint64_t> sent;
    json reply;
    try {
      reply = call<json>(conn, request_access::wrap(request(ms, sent)));
    } catch (...) {
      restore(sent);
      throw;
    }
    return absorb(reply, true);
  }

  task_outcome parse(std::uint64_t id, json& o, bool may_wait) {
    task_outcome out;
    out.id = id;
    const std::size_t n = static_cast<std::size_t>(std::max<std::int64_t>(1, number(o, wire::items)));
    const std::string target = text(o, wire::target);
    const std::int64_t pid = number(o, wire::worker_pid);
    const std::string host = text(o, wire::worker_host);
    const std::string where = "swarm '" + core->name + "' task " + std::to_string(id) +
                              ", worker pid " + std::to_string(pid) +
                              (host.empty() ? std::string() : " on " + host);
    out.failed.resize(n);
    if (auto x = o.find(wire::lost); x != o.end()) {
      std::string report = core->crash_report(
          pid, may_wait ? std::chrono::milliseconds(3000) : std::chrono::milliseconds(0));
      auto e = std::make_exception_ptr(task_lost_error(
          "no worker could run " + where + " to its end: " + x->get<std::string>(), pid, target,
          std::move(report), host, static_cast<std::size_t>(number(o, wire::attempts))));
      std::fill(out.failed.begin(), out.failed.end(), e);
      return out;
    }
    if (auto v = o.find(wire::values); v != o.end() && v->is_binary())
      out.values = std::move(static_cast<std::vector<std::uint8_t>&>(v->get_binary()));
    if (auto f = o.find(wire::failures); f != o.end() && f->is_array()) {
      for (const auto& e : *f) {
        if (!e.is_array() || e.size() < 5 || !e[0].is_number_unsigned()) continue;
        const auto i = e[0].get<std::size_t>();
        if (i >= n) continue;
        const auto type = e[1].get<std::string>();
        const auto message = e[2].get<std::string>();
        out.failed[i] = std::make_exception_ptr(remote_error(
            type + ": " + message + " (in " + where + ", call " + std::to_string(i) + ")", pid,
            target, e[4].get<std::string>(), type, message, e[3].get<std::string>()));
      }
    }
    return out;
  }

  /// Takes the outcomes of a wait reply. Throws zproc::error when the tasks are gone.
  std::vector<task_outcome> absorb(json& reply, bool may_wait) {
    std::vector<task_outcome> out;
    try {
      for (auto& r : reply.at(wire::results)) {
        const auto id = r.at(0).get<std::uint64_t>();
        if (id < first || id >= first + count || got[id - first]) continue;
        got[id - first] = true;
        --remaining;
        ack.push_back(id);
        try {
          out.push_back(parse(id, r.at(1), may_wait));
        } catch (const std::exception& e) {  // a malformed outcome: its calls fail, not all
          task_outcome bad;
          bad.id = id;
          const auto n = r.at(1).is_object() ? number(r.at(1), wire::items) : 0;
          bad.failed.assign(static_cast<std::size_t>(std::max<std::int64_t>(1, n)),
                            std::make_exception_ptr(zproc::error(
                                client_errc::protocol_error,
                                "swarm '" + core->name + "' task " + std::to_string(id) +
                                    ": malformed outcome: " + e.what())));
          out.push_back(std::move(bad));
        }
      }
      if (out.empty() && remaining > 0 && !reply.at(wire::left).get<bool>())
        throw zproc::error(server_errc::bad_request,
                           "swarm '" + core->name + "': tasks " + std::to_string(first) + " to " +
                               std::to_string(first + count - 1) +
                               " are no longer on the server (cancelled, or collected by "
                               "another process)");
    } catch (const json::exception& e) {
      throw zproc::error(client_errc::protocol_error,
                         std::string("unexpected task_wait reply: ") + e.what());
    }
    return out;
  }
};

namespace {

std::logic_error already_waiting() {
  return std::logic_error("zproc: a task or map stream is already being waited for");
}

/// One wait or next() at a time per collector.
class busy_guard {
 public:
  explicit busy_guard(std::atomic<bool>& b) : b_(b) {
    if (b_.exchange(true)) throw already_waiting();
  }
  ~busy_guard() { b_ = false; }

 private:
  std::atomic<bool>& b_;
};

constexpr std::uint64_t server_wait_ms = 10'000;

}  // namespace

task_collector::task_collector(std::shared_ptr<swarm_core> core, std::uint64_t first,
                               std::size_t count)
    : s_(std::make_shared<state>(std::move(core), first, count)) {}

task_collector::~task_collector() {
  if (!s_->ack.empty()) {
    std::vector<std::uint64_t> sent;
    s_->core->send_and_forget(s_->request(0, sent));
  }
}

bool task_collector::done() const noexcept { return s_->remaining == 0; }
std::uint64_t task_collector::first() const noexcept { return s_->first; }
std::size_t task_collector::count() const noexcept { return s_->count; }

namespace {
zproc::error all_received(const swarm_core& core) {
  return zproc::error(client_errc::protocol_error,
                      "swarm '" + core.name + "': every result of these tasks was received "
                      "already (one could not be read)");
}
}  // namespace

std::vector<task_outcome> task_collector::next(std::chrono::milliseconds timeout) {
  busy_guard guard(s_->busy);
  swarm_core& core = *s_->core;
  if (s_->remaining == 0) throw all_received(core);
  swarm_core::wait_lease conn(core);
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::uint64_t ms = server_wait_ms;
    if (timeout.count() > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      ms = static_cast<std::uint64_t>(std::clamp<std::int64_t>(left.count(), 0, server_wait_ms));
    }
    std::vector<task_outcome> got;
    try {
      got = s_->round_trip(conn.impl(), ms);
    } catch (const zproc::error&) {
      conn.broken();  // not back to the pool: the connection may be what failed
      throw;
    }
    if (!got.empty() || s_->remaining == 0) return got;
    if (timeout.count() > 0 && std::chrono::steady_clock::now() >= until)
      throw zproc::error(client_errc::timeout, "swarm '" + core.name + "': no result within " +
                                                   std::to_string(timeout.count()) + " ms");
  }
}

std::vector<task_outcome> task_collector::poll() {
  busy_guard guard(s_->busy);
  if (s_->remaining == 0) return {};
  return s_->round_trip(s_->core->client.impl(), 0);  // no wait: not leased
}

void task_collector::async_next(handler_type h) {
  auto s = s_;
  auto fail_soon = [](handler_type& handler, std::exception_ptr e) {  // never inline
    asio::post(asio::system_executor(),
               asio::append(std::move(handler), e, std::vector<task_outcome>{}));
  };
  if (s->busy.exchange(true)) {
    fail_soon(h, std::make_exception_ptr(already_waiting()));
    return;
  }
  if (s->remaining == 0) {
    s->busy = false;
    fail_soon(h, std::make_exception_ptr(all_received(*s->core)));
    return;
  }
  // A cancel while the async connection is still being made: remembered, acted on after.
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  auto slot = asio::get_associated_cancellation_slot(h);
  if (slot.is_connected())
    slot.assign([cancelled](asio::cancellation_type) { *cancelled = true; });
  auto held = std::make_shared<handler_type>(std::move(h));  // std::function copies
  s->core->with_async_client([s, held, slot, cancelled, fail_soon](
                               error_code ec, std::shared_ptr<client_impl> impl) mutable {
    handler_type handler = std::move(*held);
    if (ec || *cancelled) {
      s->busy = false;
      if (slot.is_connected()) slot.clear();
      fail_soon(handler,
                std::make_exception_ptr(
                    *cancelled ? zproc::error(asio::error::operation_aborted, "cancelled")
                               : zproc::error(ec, "the swarm's async operations need "
                                                  "swarm_options::executor (and a server)")));
      return;
    }
    wait_async(s, std::move(impl), std::move(handler), slot);
  });
}

void task_collector::wait_async(std::shared_ptr<state> s, std::shared_ptr<client_impl> impl,
                                handler_type h, asio::cancellation_slot slot) {
  auto sent = std::make_shared<std::vector<std::uint64_t>>();
  json request = s->request(s->remaining > 0 ? server_wait_ms : 0, *sent);
  start_request<json>(
      impl, request_access::wrap(std::move(request)),
      handler<json>(asio::bind_cancellation_slot(
          slot, [s, sent, h = std::move(h)](error_code ec, json reply) mutable {
            std::exception_ptr e;
            std::vector<task_outcome> got;
            if (ec) {
              s->restore(*sent);
              e = std::make_exception_ptr(zproc::error(ec, "waiting for swarm results"));
            } else {
              try {
                got = s->absorb(reply, false);
              } catch (...) {
                e = std::current_exception();
              }
            }
            s->busy = false;
            asio::dispatch(asio::system_executor(),
                           asio::append(std::move(h), e, std::move(got)));
          })));
}

void task_collector::cancel_rest() noexcept {
  if (s_->remaining == 0) return;
  json r = json::object();
  r[protocol::field::op] = protocol::name(protocol::op::task_cancel);
  r[wire::from] = s_->first;
  r[wire::to] = s_->first + s_->count;
  s_->core->send_and_forget(std::move(r));
  s_->remaining = 0;
  s_->ack.clear();  // the cancel removed those outcomes too: nothing left to acknowledge
}

}  // namespace zproc::detail
