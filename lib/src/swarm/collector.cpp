// Collecting the outcomes of a swarm's tasks: the I/O of task_wait (swarm/task_wait.hpp, what
// to ask and what a reply means): blocking waits on a leased connection, async ones on the
// swarm's async connection, one at a time per collector.
#include "client/async_runner.hpp"
#include "client/client_core.hpp"
#include "protocol/message.hpp"
#include "swarm/swarm_core.hpp"
#include "swarm/task_wait.hpp"

#include <zproc/detail/request.hpp>
#include <zproc/detail/task_collector.hpp>
#include <zproc/process.hpp>

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

using outcomes_handler = basic_held_handler<std::exception_ptr, std::vector<task_outcome>>;

struct task_collector::state : std::enable_shared_from_this<task_collector::state> {
  std::shared_ptr<swarm_core> core;
  task_wait wait;
  std::atomic<bool> busy{false};

  state(std::shared_ptr<swarm_core> c, std::uint64_t f, std::vector<std::size_t> items)
      : core(std::move(c)), wait(core->name, f, std::move(items)) {}

  /// The outcomes of a reply; throws zproc::error for a malformed reply or tasks gone.
  /// `report_wait`: how long a lost task's crash report may be waited for.
  std::vector<task_outcome> absorb(std::string_view reply, std::chrono::milliseconds report_wait) {
    error_code ec;
    std::string message;
    auto out = wait.on_reply(
        reply, [&](std::int64_t pid) { return core->crash_report(pid, report_wait); }, ec,
        message);
    if (ec) throw zproc::error(ec, message);
    return out;
  }

  /// One blocking task_wait on `conn` (parking up to `ms` on the server); the outcomes it
  /// brought. Throws what the call throws (the acknowledgements stay for the next one).
  std::vector<task_outcome> round_trip(const std::shared_ptr<client_impl>& conn, std::uint64_t ms) {
    // (The reply's outcomes are read from its MessagePack: no json tree for thousands of them.)
    error_code ec;
    std::string message;
    const std::string reply = call_packed(conn, request_access::wrap(wait.request(ms)), ec, message);
    if (ec) {
      wait.no_reply();
      throw zproc::error(ec, message);
    }
    return absorb(reply, std::chrono::milliseconds(3000));
  }

  /// One async task_wait on `impl`; completes `h` with the outcomes it brought, or the error.
  void wait_async(const std::shared_ptr<client_impl>& impl, std::shared_ptr<outcomes_handler> h,
                  std::shared_ptr<forwarded_cancellation> forward);
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
                               std::vector<std::size_t> items)
    : s_(std::make_shared<state>(std::move(core), first, std::move(items))) {}

task_collector::~task_collector() {
  if (s_->wait.has_acks()) s_->core->send_and_forget(s_->wait.request(0));
}

bool task_collector::done() const noexcept { return s_->wait.remaining() == 0; }
std::uint64_t task_collector::first() const noexcept { return s_->wait.first(); }
std::size_t task_collector::count() const noexcept { return s_->wait.count(); }

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
  if (s_->wait.remaining() == 0) throw all_received(core);
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
    if (!got.empty() || s_->wait.remaining() == 0) return got;
    if (timeout.count() > 0 && std::chrono::steady_clock::now() >= until)
      throw zproc::error(client_errc::timeout, "swarm '" + core.name + "': no result within " +
                                                   std::to_string(timeout.count()) + " ms");
  }
}

std::vector<task_outcome> task_collector::poll() {
  busy_guard guard(s_->busy);
  if (s_->wait.remaining() == 0) return {};
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
  if (s->wait.remaining() == 0) {
    s->busy = false;
    fail_soon(h, std::make_exception_ptr(all_received(*s->core)));
    return;
  }
  if (!s->core->executor()) {
    s->busy = false;
    fail_soon(h, std::make_exception_ptr(zproc::error(
                     client_errc::wrong_mode,
                     "the swarm's async operations need swarm_options::executor")));
    return;
  }
  // Terminal and partial cancellation: passed on to the wait's request, which starts later
  // (once the swarm's async connection is up; before that the token remembers it), from the
  // swarm's executor (maybe a thread pool); nothing is lost, the outcomes stay on the server.
  auto forward = std::make_shared<forwarded_cancellation>();
  run_async(
      *s->core->executor(), std::move(h), nullptr, cancel_terminal_or_partial,
      [forward](const std::shared_ptr<cancel_token>&) { forward->emit(); },
      [s, forward](outcomes_handler&& held, std::shared_ptr<cancel_token> token) {
        auto shared = std::make_shared<outcomes_handler>(std::move(held));
        s->core->with_async_client([s, shared, token, forward](error_code ec,
                                                               std::shared_ptr<client_impl> impl) {
          if (ec || (token && token->cancelled)) {
            s->busy = false;
            shared->complete(
                true, std::make_exception_ptr(
                          ec ? zproc::error(ec, "the swarm's async connection failed")
                             : zproc::error(asio::error::operation_aborted, "cancelled")),
                std::vector<task_outcome>{});
            return;
          }
          s->wait_async(std::move(impl), shared, forward);
        });
      });
}

void task_collector::state::wait_async(const std::shared_ptr<client_impl>& impl,
                                        std::shared_ptr<outcomes_handler> h,
                                        std::shared_ptr<forwarded_cancellation> forward) {
  json request = wait.request(wait.remaining() > 0 ? server_wait_ms : 0);
  auto diag = std::make_shared<zproc::diagnostics>();
  // `forward` lives until the request completes: its signal is the request's slot.
  auto done = [s = shared_from_this(), h, diag, forward](error_code ec, std::string reply) {
    std::exception_ptr e;
    std::vector<task_outcome> got;
    if (ec) {
      s->wait.no_reply();
      e = std::make_exception_ptr(zproc::error(
          ec, diag->message().empty() ? std::string("waiting for swarm results")
                                      : "waiting for swarm results: " + diag->message()));
    } else {
      try {
        got = s->absorb(reply, std::chrono::milliseconds(0));
      } catch (...) {
        e = std::current_exception();
      }
    }
    s->busy = false;
    h->complete(false, e, std::move(got));
  };
  forward->start([&](asio::cancellation_slot slot) {
    start_packed_request(impl, request_access::wrap(std::move(request)),
                         asio::bind_cancellation_slot(slot, std::move(done)), diag);
  });
}

void task_collector::cancel_rest() noexcept {
  if (s_->wait.remaining() == 0) return;
  s_->core->send_and_forget(s_->wait.cancel_request());
}

}  // namespace zproc::detail
