// Private: state::atomic() as one algorithm without I/O, driven by the blocking atomic()
// (run_atomic) and by async_atomic() (start_atomic, on the async runner). It says what to do next (send a request, run the body, done,
// failed) and is told what happened; it gives the namespace's lock back on every failure path.
#pragma once

#include <zproc/detail/op.hpp>
#include <zproc/diagnostics.hpp>
#include <zproc/error.hpp>
#include <zproc/json.hpp>
#include <zproc/transaction.hpp>
#include <zproc/with_diagnostics.hpp>

#include <boost/asio/any_completion_handler.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace zproc::detail {

class client_impl;

class atomic_algorithm {
 public:
  struct step {
    enum class kind {
      send,      ///< send `outgoing` and pass its outcome to on_reply()
      run_body,  ///< run the body on `payload` (the snapshot); then on_body_done/failed()
      done,      ///< committed
      failed,    ///< `ec` + `message`; an empty `ec`: the body's own exception
    };
    kind what;
    json payload{};  ///< run_body: the snapshot
    error_code ec{};
    std::string message{};
    request outgoing{};  ///< send: the request
  };

  /// `keys`: what the body reads (empty: the whole namespace). After `optimistic_attempts`
  /// conflicts it takes the namespace's lock; `lock_first`: at once (contended lately).
  atomic_algorithm(std::string ns, std::uint64_t handle, std::vector<std::string> keys,
                   std::size_t optimistic_attempts, bool lock_first);

  step start();
  /// The outcome of the request of the last `send` step.
  step on_reply(error_code ec, json result, std::string message);
  /// Before each on_reply(): the number of the connection the reply came on, as the driver got
  /// it with the reply (start_connection_request, call_raw; a client that reconnected has a
  /// new one). A lock taken on an earlier connection died with it (the server released it):
  /// the algorithm no longer counts on it, and takes it again if needed.
  void connection_is(std::uint64_t number) noexcept;
  /// The body changed the snapshot to `changed`: commit it.
  step on_body_done(const json& changed);
  /// The body threw: give the lock back (if held), then `failed` with an empty code.
  step on_body_failed();

  /// For the drivers: runs `body` on the snapshot of a run_body step and returns the next step
  /// (keeping an exception from the body for throw_failure()).
  step run_body(step& s, const std::function<void(json&)>& body);
  /// For the drivers: throws the failure of a `failed` step: the body's own exception, or
  /// zproc::error with the code and the server's message.
  [[noreturn]] void throw_failure(step s) const;

  /// The body's exception, once run_body() caught one.
  std::exception_ptr body_failure() const noexcept { return body_failure_; }
  /// The request of the last `send` step may be cancelled: a lock or a read (on_reply() with
  /// operation_aborted then fails cleanly). A commit (it may be applied) and an unlock (it
  /// gives the lock back) run to their end.
  bool cancellable() const noexcept {
    return phase_ == phase::locking || phase_ == phase::reading;
  }

  /// Whether this call needed the lock (the contention hint for the next calls).
  bool needed_lock() const noexcept { return needed_lock_; }
  std::size_t conflicts() const noexcept { return conflicts_; }

 private:
  enum class phase { idle, locking, reading, body, committing, unlocking, over };

  step read_or_lock();
  /// The read's reply (from a read, or with a lock's grant): the body runs on its data.
  step on_read(json result);
  step send(request r, phase next);
  step fail(error_code ec, std::string message);

  std::string ns_;
  std::uint64_t handle_;
  std::vector<std::string> keys_;
  std::size_t optimistic_attempts_;
  phase phase_ = phase::idle;
  bool locked_ = false;  // this call holds the namespace's lock on the server
  std::uint64_t connection_ = 0;       // of the last reply
  std::uint64_t lock_connection_ = 0;  // the lock was granted on it
  bool needed_lock_ = false;
  std::size_t conflicts_ = 0;
  json read_reply_;
  error_code failure_;  // while unlocking: the failure to report afterwards
  std::string failure_message_;
  std::exception_ptr body_failure_;
};

/// The blocking atomic(): drives the algorithm with blocking requests. Rethrows the body's
/// exception; throws zproc::error with the server's message on any other failure.
void run_atomic(const std::shared_ptr<client_impl>& c, const std::string& ns,
                std::uint64_t handle, std::vector<std::string> keys, atomic_options options,
                const std::function<void(json&)>& body);
/// The same, setting `ec` and `diag` instead of throwing (the body's own exception still
/// propagates: it is the caller's).
void run_atomic(const std::shared_ptr<client_impl>& c, const std::string& ns,
                std::uint64_t handle, std::vector<std::string> keys, atomic_options options,
                const std::function<void(json&)>& body, error_code& ec, diagnostics& diag);

/// The async atomic(): drives the algorithm with async requests on the client's executor (the
/// body runs there too), through the async runner. Completes `h` with the failure's code and
/// message in `diagnostics`; client_errc::body_threw when the body threw (its exception in the
/// diagnostics). Terminal and partial cancellation stop a lock or read in flight, or the next
/// one (the lock, if taken, is given back; it fails with operation_aborted); a commit in
/// flight runs to its end (it succeeds if the server applied it).
void start_atomic(const std::shared_ptr<client_impl>& c, std::string ns, std::uint64_t handle,
                  std::vector<std::string> keys, atomic_options options,
                  std::function<void(json&)> body,
                  boost::asio::any_completion_handler<void(error_code)> h,
                  diagnostics_ptr diagnostics);

/// The contention hint shared by atomic() and async_atomic() on one client: whether to take
/// the lock at once (recently contended), and the outcome of a call.
bool atomic_lock_first(const std::shared_ptr<client_impl>& c, const std::string& ns);
void atomic_done(const std::shared_ptr<client_impl>& c, const std::string& ns, bool needed_lock);

}  // namespace zproc::detail
