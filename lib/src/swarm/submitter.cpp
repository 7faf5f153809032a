// Submitting the tasks of a map or a run: packing the next inputs into chunks as the window
// allows, one task_submit per frame of chunks, blocking or async.
#include "client/async_runner.hpp"
#include "client/client_core.hpp"
#include "protocol/message.hpp"
#include "protocol/task_messages.hpp"
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

task_submitter::state::state(std::shared_ptr<swarm_core> c, config s)
    : core(std::move(c)), plan(std::move(s), core->client.impl()->options().max_frame_size) {}

std::shared_ptr<task_collector> task_submitter::state::collector_of(
    const json& reply, std::span<const packed_chunk> sent) const {
  std::vector<std::size_t> items;
  items.reserve(sent.size());
  for (const auto& c : sent) items.push_back(c.items);
  return std::make_shared<task_collector>(core, submit_plan::first_id(reply), std::move(items));
}

asio::any_io_executor task_submitter::executor() const {
  if (const auto& ex = s_->core->executor()) return *ex;
  return asio::system_executor();
}

bool task_submitter::due(std::size_t in_flight) const noexcept {
  return s_->plan.due(in_flight);
}

std::vector<std::shared_ptr<task_collector>> task_submitter::fill(input_feed& feed,
                                                                  std::size_t in_flight) {
  state& s = *s_;
  submit_plan& plan = s.plan;
  if (!plan.resolved()) {
    std::size_t workers = plan.settings().spawned;
    if (workers == 0) {
      json info = call<json>(s.core->client.impl(), request_access::wrap(plan.info_request()));
      try {
        workers = submit_plan::workers_in(info);
      } catch (const wire::malformed& e) {
        throw zproc::error(client_errc::protocol_error,
                           std::string("unexpected task_info reply: ") + e.what());
      }
    }
    if (workers == 0) throw std::logic_error(no_workers_message(plan.settings().queue));
    plan.resolve(workers, feed.size_hint());
  }
  auto chunks = feed.pack(plan.room(in_flight), plan.schedule(), plan.settings().max_bytes);
  collectors out;
  std::size_t i = 0;
  try {
    while (i < chunks.size()) {
      std::size_t n = 0;
      json reply = call<json>(s.core->client.impl(), plan.next_request(chunks, i, n));
      try {
        out.push_back(s.collector_of(reply, std::span(chunks).subspan(i - n, n)));
      } catch (const wire::malformed& e) {
        throw zproc::error(client_errc::protocol_error,
                           std::string("unexpected task_submit reply: ") + e.what());
      }
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
  request r = op->s->plan.next_request(op->chunks, op->next, n);
  auto impl = op->impl;
  start_request<json>(
      impl, std::move(r),
      handler<json>([op, n](error_code ec, json reply) mutable {
        if (ec) return op->fail(ec, {});  // the message is in the diagnostics already
        try {
          op->out.push_back(
              op->s->collector_of(reply, std::span(op->chunks).subspan(op->next - n, n)));
        } catch (const wire::malformed& e) {
          return op->fail(make_error_code(client_errc::protocol_error),
                          std::string("unexpected task_submit reply: ") + e.what());
        }
        send_next(std::move(op));
      }),
      op->diagnostics);
}

void pack_and_send(std::shared_ptr<fill_op> op) {
  auto& plan = op->s->plan;
  try {
    op->chunks =
        op->feed->pack(plan.room(op->in_flight), plan.schedule(), plan.settings().max_bytes);
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
    auto& plan = op->s->plan;
    if (plan.resolved() || plan.settings().spawned > 0) {
      if (!plan.resolved()) plan.resolve(plan.settings().spawned, op->feed->size_hint());
      return pack_and_send(std::move(op));
    }
    auto conn = op->impl;
    start_request<json>(
        conn, request_access::wrap(plan.info_request()),
        handler<json>([op](error_code e, json info) mutable {
          if (e) return op->fail(e, {});
          std::size_t workers = 0;
          try {
            workers = submit_plan::workers_in(info);
          } catch (const wire::malformed& x) {
            return op->fail(make_error_code(client_errc::protocol_error),
                            std::string("unexpected task_info reply: ") + x.what());
          }
          if (workers == 0)
            return op->fail(make_error_code(boost::system::errc::invalid_argument),
                            no_workers_message(op->s->plan.settings().queue));
          op->s->plan.resolve(workers, op->feed->size_hint());
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
