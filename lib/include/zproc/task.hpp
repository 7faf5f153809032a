// zproc/task.hpp - a handle on the result of one task run by a swarm (swarm::run).
#pragma once

#include <zproc/client.hpp>
#include <zproc/detail/chunk.hpp>
#include <zproc/detail/task_collector.hpp>
#include <zproc/process.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

namespace zproc {

/// The result of swarm::run(): held by the server until a handle collects it (copies of a
/// handle share it). R is what the target returns.
template <class R>
class task {
 public:
  task() = default;
  explicit task(std::shared_ptr<detail::task_collector> c)
      : s_(std::make_shared<shared>()) {
    s_->collector = std::move(c);
  }

  /// The server's id of the task: give it to another process, which collects the result
  /// with swarm::result<R>(id).
  std::uint64_t id() const { return s_->collector->first(); }

  /// Waits for the result (zero: without a deadline) and returns it; later calls return it
  /// again. Throws remote_error (the target threw: type, message, stacktrace of the throw),
  /// task_lost_error (every worker that took it died), zproc::error with client_errc::timeout
  /// (the task goes on: call again).
  R get(std::chrono::milliseconds timeout = std::chrono::milliseconds::zero()) const {
    error_code ec;
    diagnostics diag;
    if constexpr (std::is_void_v<R>) {
      get(timeout, ec, diag);
      if (ec) std::rethrow_exception(diag.to_exception(ec));
    } else {
      R v = get(timeout, ec, diag);
      if (ec) std::rethrow_exception(diag.to_exception(ec));
      return v;
    }
  }
  /// get() throwing nothing: a failure sets `ec` (process_errc, client_errc::timeout) and
  /// `diag` (the exception get() would throw: diagnostics::exception()) and returns R{};
  /// success clears both.
  R get(std::chrono::milliseconds timeout, error_code& ec, diagnostics& diag) const {
    ec.clear();
    diag.clear();
    std::lock_guard lock(s_->m);
    if (!s_->result) {
      // The collector's wait throws (a timeout, the connection's failure): kept as the code.
      detail::outcome_or_code(
          [&] {
            while (!s_->result)
              for (auto& o : s_->collector->next(timeout)) take(o);
          },
          ec, diag);
      if (ec) return fallback();
    }
    if (const auto& e = s_->result->errors.at(0)) {  // the task's own failure: not thrown here
      std::string message;
      ec = detail::failure_code(e, message);
      detail::diagnostics_access::set_exception(diag, e, std::move(message));
      return fallback();
    }
    if constexpr (!std::is_void_v<R>) return *s_->result->values[0];
  }

  /// Whether the result is here (one round trip to the server while it is not; false at once
  /// while another thread waits in get()).
  bool ready() const {
    std::unique_lock lock(s_->m, std::try_to_lock);
    if (!lock) return false;
    if (!s_->result)
      for (auto& o : s_->collector->poll()) take(o);
    return s_->result.has_value();
  }

  /// Asynchronous get(): completion `void(error_code, R)` (`void(error_code)` for void). The
  /// codes are process_errc's (remote_exception, task_lost) or the connection's; the exception
  /// get() would throw is in the diagnostics, and is what `co_await t.async_get()` (the default
  /// token) throws. Needs a swarm made with swarm_options::executor. Supports terminal
  /// cancellation: completes with operation_aborted; the result stays on the server for a later
  /// call. Keeps the handler's executor busy until it completes.
  template <class CompletionToken = default_token>
  auto async_get(CompletionToken&& token = default_token{}) const {
    namespace asio = boost::asio;
    using signature = typename detail::value_signature<R>::type;
    return detail::initiate<signature>(
        [](auto h, std::shared_ptr<shared> s) { wait(std::move(h), std::move(s), true); }, token,
        s_);
  }

 private:
  struct shared {
    std::mutex m;
    std::shared_ptr<detail::task_collector> collector;
    std::optional<detail::chunk_values<R>> result;
  };

  static void take_into(shared& s, detail::task_outcome& o) {
    if (!s.result) s.result.emplace(detail::unpack_chunk<R>(
          std::string_view(reinterpret_cast<const char*>(o.values.data()), o.values.size()),
          std::move(o.failed)));
  }
  void take(detail::task_outcome& o) const { take_into(*s_, o); }

  static R fallback() {
    if constexpr (!std::is_void_v<R>) return R{};
  }

  /// Completes `h` with the result if it is here, else waits for the collector's next outcomes.
  template <class H>
  static void wait(H&& h, std::shared_ptr<shared> s, bool from_initiation) {
    namespace asio = boost::asio;
    auto ex = asio::get_associated_executor(h);
    bool ready;
    {
      std::lock_guard lock(s->m);
      ready = s->result.has_value();
    }
    if (ready) {
      if (from_initiation) {
        asio::post(ex, [h = std::move(h), s]() mutable { finish(std::move(h), *s); });
      } else {
        finish(std::move(h), *s);
      }
      return;
    }
    auto slot = asio::get_associated_cancellation_slot(h);
    auto c = s->collector;
    c->async_next(asio::bind_cancellation_slot(
        slot, asio::bind_executor(ex, [h = std::move(h), s](
                                          std::exception_ptr e,
                                          std::vector<detail::task_outcome> got) mutable {
          {
            std::lock_guard lock(s->m);
            for (auto& o : got) take_into(*s, o);
          }
          if (e) return fail(std::move(h), e);
          wait(std::move(h), std::move(s), false);  // nothing yet (the server's wait ended)
        })));
  }
  template <class H>
  static void fail(H&& h, const std::exception_ptr& e) {
    if constexpr (std::is_void_v<R>) {
      detail::complete_outcome(std::move(h), e);
    } else {
      detail::complete_outcome(std::move(h), e, R{});
    }
  }
  template <class H>
  static void finish(H&& h, shared& s) {
    std::exception_ptr e;
    std::optional<typename detail::chunk_values<R>::value_type> v;
    {
      std::lock_guard lock(s.m);
      e = s.result->errors.at(0);
      if (!e) v = s.result->values[0];
    }
    if (e) return fail(std::move(h), e);
    if constexpr (std::is_void_v<R>) {
      detail::complete_outcome(std::move(h), nullptr);
    } else {
      detail::complete_outcome(std::move(h), nullptr, std::move(*v));
    }
  }

  std::shared_ptr<shared> s_;
};

}  // namespace zproc
