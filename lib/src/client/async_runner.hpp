// The async runner: what every asynchronous operation does around its algorithm, written once.
//
// An async operation of the library (a request, a watcher's next(), a page-by-page listing, a
// connect, a process wait) is started by run_async(). It
//  - rejects the operation with client_errc::wrong_mode on a blocking-mode client
//    (run_client_async);
//  - holds the handler in a basic_held_handler: work on the handler's executor while it waits,
//    the diagnostics the handler asked for, the completion hand-off that never runs the handler
//    inside the initiating function;
//  - connects the handler's cancellation slot here, in the initiating function: a cancellation
//    of a type the operation accepts (documented per operation) marks its cancel_token and
//    posts the operation's cancel action to the I/O object's executor (never inside emit(): the
//    completion clears the slot that runs it);
//  - starts the operation's algorithm on the I/O object's executor with the held handler and
//    the token (null when the handler has no cancellation slot).
// The blocking runner is client_impl::run_blocking (the caller's thread, a private io_context).
#pragma once

#include "client/client_core.hpp"
#include "client/completion.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

namespace zproc::detail {

/// Terminal and partial cancellation: the operation stops, nothing it did stays half done
/// (a request not yet answered is dropped by the client; a watcher's next() keeps its cursor).
inline constexpr auto cancel_terminal_or_partial =
    boost::asio::cancellation_type::terminal | boost::asio::cancellation_type::partial;

/// The message of client_errc::wrong_mode.
inline constexpr const char* wrong_mode_message =
    "an async operation on a blocking-mode client: construct the client with an executor";

/// Completes `h` with client_errc::wrong_mode (an async operation on a blocking-mode client).
/// Posted to the system executor, not the connection's: nobody runs a blocking client's
/// io_context meanwhile (post hands the handler to its own associated executor from there).
template <class... Values>
void reject_wrong_mode(boost::asio::any_completion_handler<void(error_code, Values...)> h,
                       const diagnostics_ptr& diagnostics) {
  set_message(diagnostics, wrong_mode_message);
  boost::asio::post(boost::asio::system_executor(),
                    boost::asio::append(std::move(h), make_error_code(client_errc::wrong_mode),
                                        Values{}...));
}

/// Whether `ex` is a strand (a connection's executor) that this thread is in, where a dispatch
/// would run the function inline. Then run_async calls the operation's start itself, without
/// wrapping it for the type-erased executor (a strand's inline run catches nothing either; an
/// io_context's would catch an exception and rethrow it from run(): not taken that way).
inline bool dispatches_inline(const boost::asio::any_io_executor& ex) {
  if (const auto* s = ex.target<boost::asio::strand<boost::asio::any_io_executor>>())
    return s->running_in_this_thread();
  return false;
}

/// Starts an async operation on the I/O object whose executor is `io_ex`.
/// (`start` is called, not copied, when this thread is on `io_ex` already.)
/// `on_cancel(const std::shared_ptr<cancel_token>&)` runs on `io_ex` after an accepted
/// cancellation; `start(basic_held_handler<Args...>&&, std::shared_ptr<cancel_token>)` runs on
/// `io_ex` (inline when the caller is already there) and owns the handler from then on.
template <class... Args, class OnCancel, class Start>
void run_async(const boost::asio::any_io_executor& io_ex,
               boost::asio::any_completion_handler<void(Args...)> h,
               diagnostics_ptr diagnostics, boost::asio::cancellation_type accepted,
               OnCancel on_cancel, Start&& start) {
  namespace asio = boost::asio;
  std::shared_ptr<cancel_token> token;
  if (auto slot = asio::get_associated_cancellation_slot(h); slot.is_connected()) {
    // One allocation: the token, and what the slot's handler needs (it holds only a pointer).
    struct cancel_state : cancel_token {
      cancel_state(const asio::any_io_executor& e, asio::cancellation_type a, OnCancel c)
          : ex(e), accepted(a), on_cancel(std::move(c)) {}
      asio::any_io_executor ex;
      asio::cancellation_type accepted;
      OnCancel on_cancel;
    };
    auto state = std::make_shared<cancel_state>(io_ex, accepted, std::move(on_cancel));
    slot.assign([state](asio::cancellation_type type) {
      if ((type & state->accepted) == asio::cancellation_type::none) return;
      state->cancelled = true;
      asio::post(state->ex, [state] {
        const std::shared_ptr<cancel_token> t = state;
        state->on_cancel(t);
      });
    });
    token = std::move(state);
  }
  basic_held_handler<Args...> held(std::move(h), io_ex, std::move(diagnostics));
  if (dispatches_inline(io_ex)) return start(std::move(held), std::move(token));
  asio::dispatch(io_ex, [held = std::move(held), token = std::move(token),
                         start = std::decay_t<Start>(std::forward<Start>(start))]() mutable {
    start(std::move(held), std::move(token));
  });
}

/// run_async on a client's connection; an async operation on a blocking-mode client completes
/// with client_errc::wrong_mode instead (nobody runs that client's io_context meanwhile).
template <class... Values, class OnCancel, class Start>
void run_client_async(const std::shared_ptr<client_impl>& c,
                      boost::asio::any_completion_handler<void(error_code, Values...)> h,
                      diagnostics_ptr diagnostics, boost::asio::cancellation_type accepted,
                      OnCancel on_cancel, Start&& start) {
  if (c->blocking_mode()) return reject_wrong_mode(std::move(h), diagnostics);
  run_async<error_code, Values...>(c->get_executor(), std::move(h), std::move(diagnostics),
                                   accepted, std::move(on_cancel), std::forward<Start>(start));
}

/// The cancel action of an operation that is one request (or a sequence of them sharing one
/// token): the request the token names is dropped by the connection, or the next one is never
/// sent (connection::request checks the token).
inline auto cancel_request(const std::shared_ptr<client_impl>& c) {
  return [weak = std::weak_ptr<connection>(c->conn())](const std::shared_ptr<cancel_token>& t) {
    if (auto conn = weak.lock())
      if (const auto id = t->id.load()) conn->cancel(id);
  };
}

/// A cancellation passed on from an operation to the inner request it has in flight (a swarm's
/// task wait, an atomic's lock or read): the inner request is started with start(), which
/// gives it the slot to bind to its handler; the operation's cancel action calls emit(). Both
/// take one lock, so an emit from another thread never meets a slot being assigned.
class forwarded_cancellation {
 public:
  /// Runs `start(slot)`: it starts the inner request with its handler bound to `slot`.
  template <class Start>
  void start(Start&& start) {
    std::lock_guard lock(m_);
    std::forward<Start>(start)(signal_.slot());
  }
  /// Cancels the inner request in flight, if any.
  void emit(boost::asio::cancellation_type type = boost::asio::cancellation_type::terminal) {
    std::lock_guard lock(m_);
    signal_.emit(type);
  }

 private:
  std::mutex m_;
  boost::asio::cancellation_signal signal_;
};

}  // namespace zproc::detail
