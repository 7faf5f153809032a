// Submitting the tasks of a map or a run: packing the next inputs into chunks as the window
// allows, one task_submit per frame of chunks, blocking or async.
#include "client/async_runner.hpp"
#include "client/client_core.hpp"
#include "protocol/message.hpp"
#include "protocol/tasks.hpp"
#include "swarm/submitter.hpp"
#include "swarm/swarm_core.hpp"

#include <zproc/detail/request.hpp>
#include <zproc/detail/task_collector.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace zproc::detail {

namespace asio = boost::asio;
namespace wire = protocol::tasks;

namespace {

using collectors = std::vector<std::shared_ptr<task_collector>>;

std::string no_workers_message(const std::string& queue) {
  return "zproc: swarm '" + queue +
         "' has no workers (resize() it, or start workers with --zproc-worker)";
}

}  // namespace

void task_submitter::state::resolve(std::size_t workers, std::size_t size_hint) {
  workers_ = std::max<std::size_t>(1, workers);
  resolved_ = true;
  chunk_size_ = settings.chunk_size;
  if (chunk_size_ == 0)  // about 4 tasks per worker; unknown size: 1024 calls per task
    chunk_size_ = size_hint == 0 ? 1024
                                 : std::max<std::size_t>(1, (size_hint + 4 * workers_ - 1) /
                                                                (4 * workers_));
  window_ = settings.window;
  if (window_ == 0) window_ = settings.lazy ? std::max<std::size_t>(8, 4 * workers_)
                                            : std::numeric_limits<std::size_t>::max();
}

std::size_t task_submitter::state::room(std::size_t in_flight) const {
  return in_flight >= window_ ? 0 : window_ - in_flight;
}

json task_submitter::state::next_request(std::vector<packed_chunk>& chunks, std::size_t& i,
                                         std::size_t& n) const {
  // One request per batch of tasks, well below the frame size; each batch's ids are
  // consecutive (one collector each).
  const std::size_t limit = core->client.impl()->options().max_frame_size / 2;
  json list = json::array();
  std::size_t size = 0;
  while (i < chunks.size() && (list.empty() || size + chunks[i].bytes.size() + 16 <= limit)) {
    auto& c = chunks[i++];
    size += c.bytes.size() + 16;
    list.push_back(json::array({json::binary(std::move(c.bytes)), c.items}));
  }
  n = list.size();
  json r = json::object();
  r[protocol::field::op] = protocol::name(protocol::op::task_submit);
  r[wire::queue] = settings.queue;
  r[wire::target] = settings.target;
  r[wire::tasks] = std::move(list);
  r[wire::bound] = settings.bound;
  r[wire::max_attempts] = settings.max_attempts;
  if (settings.call_timeout)
    r[wire::call_timeout] = static_cast<std::uint64_t>(settings.call_timeout->count());
  return r;
}

std::shared_ptr<task_collector> task_submitter::state::collector_of(const json& reply,
                                                                    std::size_t n) const {
  return std::make_shared<task_collector>(core, reply.at(wire::first).get<std::uint64_t>(), n);
}

json task_submitter::state::info_request() const {
  json r = json::object();
  r[protocol::field::op] = protocol::name(protocol::op::task_info);
  r[wire::queue] = settings.queue;
  return r;
}

std::size_t task_submitter::state::workers_in(const json& info) {
  return info.at(wire::workers).size();
}

asio::any_io_executor task_submitter::executor() const {
  if (const auto& ex = s_->core->executor()) return *ex;
  return asio::system_executor();
}

bool task_submitter::due(std::size_t in_flight) const noexcept {
  return !s_->resolved_ || in_flight <= s_->window_ / 2;
}

std::vector<std::shared_ptr<task_collector>> task_submitter::fill(input_feed& feed,
                                                                  std::size_t in_flight) {
  state& s = *s_;
  if (!s.resolved_) {
    std::size_t workers = s.settings.spawned;
    if (workers == 0) {
      json info = call<json>(s.core->client.impl(), request_access::wrap(s.info_request()));
      try {
        workers = state::workers_in(info);
      } catch (const json::exception& e) {
        throw zproc::error(client_errc::protocol_error,
                           std::string("unexpected task_info reply: ") + e.what());
      }
    }
    if (workers == 0) throw std::logic_error(no_workers_message(s.settings.queue));
    s.resolve(workers, feed.size_hint());
  }
  auto chunks = feed.pack(s.room(in_flight), s.chunk_size_, s.settings.max_bytes);
  collectors out;
  std::size_t i = 0;
  try {
    while (i < chunks.size()) {
      std::size_t n = 0;
      json r = s.next_request(chunks, i, n);
      json reply = call<json>(s.core->client.impl(), request_access::wrap(std::move(r)));
      out.push_back(s.collector_of(reply, n));
    }
  } catch (...) {
    for (auto& c : out) c->cancel_rest();
    throw;
  }
  return out;
}

namespace {

using fill_handler = basic_held_handler<error_code, collectors>;

/// One async fill: its handler (held by the async runner), and what it submitted so far.
struct fill_op {
  fill_op(fill_handler&& handler, diagnostics_ptr d)
      : h(std::move(handler)), diagnostics(std::move(d)) {}

  fill_handler h;
  diagnostics_ptr diagnostics;
  std::shared_ptr<task_submitter::state> s;
  std::shared_ptr<input_feed> feed;
  std::size_t in_flight = 0;
  std::shared_ptr<client_impl> impl;
  std::vector<packed_chunk> chunks;
  std::size_t next = 0;
  collectors out;

  /// Completes on the handler's own executor (posted: may be called from the initiation).
  void fail(error_code ec, std::string message) {
    if (!message.empty()) set_message(diagnostics, std::move(message));
    for (auto& c : out) c->cancel_rest();
    h.complete(true, ec, collectors{});
  }
  void succeed() { h.complete(true, error_code{}, std::move(out)); }
};

void send_next(std::shared_ptr<fill_op> op) {
  if (op->next >= op->chunks.size()) return op->succeed();
  std::size_t n = 0;
  json r = op->s->next_request(op->chunks, op->next, n);
  auto impl = op->impl;
  start_request<json>(
      impl, request_access::wrap(std::move(r)),
      handler<json>([op, n](error_code ec, json reply) mutable {
        if (ec) return op->fail(ec, {});  // the message is in the diagnostics already
        try {
          op->out.push_back(op->s->collector_of(reply, n));
        } catch (const json::exception& e) {
          return op->fail(make_error_code(client_errc::protocol_error),
                          std::string("unexpected task_submit reply: ") + e.what());
        }
        send_next(std::move(op));
      }),
      op->diagnostics);
}

void pack_and_send(std::shared_ptr<fill_op> op) {
  auto& s = *op->s;
  try {
    op->chunks = op->feed->pack(s.room(op->in_flight), s.chunk_size_, s.settings.max_bytes);
  } catch (const std::exception& e) {  // an input that could not be packed
    return op->fail(make_error_code(client_errc::protocol_error),
                    std::string("zproc: packing an input failed: ") + e.what());
  }
  send_next(std::move(op));
}

/// Gets the swarm's async connection, learns the number of workers if needed, then packs and
/// submits.
void start_fill(std::shared_ptr<fill_op> op) {
  auto core = op->s->core;
  core->with_async_client([op](error_code ec, std::shared_ptr<client_impl> impl) mutable {
    if (ec) return op->fail(ec, "the swarm's async connection could not be made");
    op->impl = std::move(impl);
    auto& s = *op->s;
    if (s.resolved_ || s.settings.spawned > 0) {
      if (!s.resolved_) s.resolve(s.settings.spawned, op->feed->size_hint());
      return pack_and_send(std::move(op));
    }
    auto conn = op->impl;
    start_request<json>(
        conn, request_access::wrap(s.info_request()),
        handler<json>([op](error_code e, json info) mutable {
          if (e) return op->fail(e, {});
          std::size_t workers = 0;
          try {
            workers = task_submitter::state::workers_in(info);
          } catch (const json::exception& x) {
            return op->fail(make_error_code(client_errc::protocol_error),
                            std::string("unexpected task_info reply: ") + x.what());
          }
          if (workers == 0)
            return op->fail(make_error_code(boost::system::errc::invalid_argument),
                            no_workers_message(op->s->settings.queue));
          op->s->resolve(workers, op->feed->size_hint());
          pack_and_send(std::move(op));
        }),
        op->diagnostics);
  });
}

}  // namespace

void task_submitter::async_fill(std::shared_ptr<input_feed> feed, std::size_t in_flight,
                                handler_type h, diagnostics_ptr diagnostics) {
  if (!s_->core->executor()) {
    set_message(diagnostics,
                "an async operation on a swarm without swarm_options::executor: give it one to "
                "use the async_ forms, or call run/map/map_lazy");
    asio::post(asio::system_executor(),
               asio::append(std::move(h), make_error_code(client_errc::wrong_mode), collectors{}));
    return;
  }
  // No cancellation: a fill is short (one round trip per frame of chunks); its caller, the
  // map's driver, checks for cancellation between steps.
  auto d = diagnostics;
  run_async(*s_->core->executor(), std::move(h), std::move(diagnostics),
            asio::cancellation_type::none, [](const std::shared_ptr<cancel_token>&) {},
            [s = s_, feed = std::move(feed), in_flight, d](fill_handler&& held,
                                                           const std::shared_ptr<cancel_token>&) {
              auto op = std::make_shared<fill_op>(std::move(held), d);
              op->s = s;
              op->feed = feed;
              op->in_flight = in_flight;
              start_fill(std::move(op));
            });
}

}  // namespace zproc::detail
