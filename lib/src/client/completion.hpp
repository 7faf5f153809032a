// A type-erased completion handler held by a pending operation: work on its executor while it
// waits, its cancellation slot, and the hand-off that never runs it inside the initiation.
#pragma once

#include <zproc/error.hpp>
#include <zproc/with_diagnostics.hpp>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/prefer.hpp>

#include <memory>
#include <optional>
#include <utility>

namespace zproc::detail {

template <class... Args>
class basic_held_handler {
 public:
  using handler_type = boost::asio::any_completion_handler<void(Args...)>;

  /// `conn_ex`: the connection's executor (the handler's if it has none of its own).
  basic_held_handler(handler_type h, const boost::asio::any_io_executor& conn_ex,
                     diagnostics_ptr diagnostics = nullptr)
      : h_(std::move(h)), diagnostics_(std::move(diagnostics)) {
    namespace asio = boost::asio;
    // The candidate is the system executor, not `conn_ex`: it fits in the type-erased
    // executor's own storage (the connection's would be copied to the heap for every
    // operation). A handler that names no executor (or the system executor, which any thread
    // may run) completes on the connection's.
    auto ex = asio::get_associated_executor(h_, asio::system_executor());
    if (const auto* io = ex.template target<asio::io_context::executor_type>()) {
      // The common case, a handler (a coroutine) on an io_context's own executor: its work
      // held without type erasure (no allocation; the completion runs inline through it, or is
      // posted to it).
      io_work_.emplace(asio::prefer(*io, asio::execution::outstanding_work.tracked));
      return;
    }
    if (ex.template target<asio::system_executor>()) ex = asio::any_completion_executor(conn_ex);
    work_ = asio::prefer(ex, asio::execution::outstanding_work.tracked);
    conn_ex_ = conn_ex;
  }

  boost::asio::cancellation_slot slot() const {
    return boost::asio::get_associated_cancellation_slot(h_);
  }

  /// The message of a failure, for a handler that asked for it (zproc::with_diagnostics).
  /// Call before complete().
  void set_message(std::string message) { detail::set_message(diagnostics_, std::move(message)); }

  /// Completes the handler, once, on its own associated executor (the connection's if it has
  /// none). `must_post` (the caller may be the initiating function): posted, to the handler's
  /// io_context, or else through the connection's executor, then on the handler's. Else
  /// executed on the handler's executor at once: inline when this thread may run it (a
  /// coroutine on the connection's io_context resumes here), with no hop through the
  /// connection's strand and no second lookup of the executor (the one whose work this held).
  /// (Asio cannot post to an any_completion_executor directly: it has no blocking.never.)
  void complete(bool must_post, Args... args) {
    if (auto s = slot(); s.is_connected()) s.clear();
    // The work is released once the handler ran, or its hand-off is queued.
    auto io = std::move(io_work_);
    auto ex = std::move(work_);
    if (must_post) {
      if (io)
        boost::asio::post(*io, boost::asio::append(std::move(h_), std::move(args)...));
      else
        boost::asio::post(conn_ex_, boost::asio::append(std::move(h_), std::move(args)...));
      return;
    }
    auto run = [h = std::move(h_), ... a = std::move(args)]() mutable {
      std::move(h)(std::move(a)...);
    };
    if (io)
      io->execute(std::move(run));
    else
      ex.execute(std::move(run));
  }

 private:
  handler_type h_;
  diagnostics_ptr diagnostics_;
  // Work on the handler's executor while it waits: one of the two.
  using io_work = boost::asio::io_context::basic_executor_type<std::allocator<void>, 4>;
  std::optional<io_work> io_work_;
  boost::asio::any_completion_executor work_;
  boost::asio::any_io_executor conn_ex_;  // with work_: where a posted completion goes first
};

/// The client's operations complete with (error_code, T).
template <class T>
using held_handler = basic_held_handler<error_code, T>;

}  // namespace zproc::detail
