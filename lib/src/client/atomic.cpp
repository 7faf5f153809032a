// state::atomic(): optimistic read-modify-write with a lock as the fallback under contention.
#include "client/async_runner.hpp"
#include "client/client_core.hpp"
#include "protocol/message.hpp"
#include "protocol/ops.hpp"

#include <zproc/detail/atomic.hpp>
#include <zproc/detail/request.hpp>
#include <zproc/state.hpp>
#include <zproc/transaction.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

namespace zproc {

namespace detail {

namespace asio = boost::asio;

namespace {

using access = request_access;

using step = atomic_algorithm::step;

}  // namespace

atomic_algorithm::atomic_algorithm(std::string ns, std::uint64_t handle,
                                   std::vector<std::string> keys,
                                   std::size_t optimistic_attempts, bool lock_first)
    : ns_(std::move(ns)),
      handle_(handle),
      keys_(std::move(keys)),
      optimistic_attempts_(lock_first ? 0 : optimistic_attempts) {}

step atomic_algorithm::start() { return read_or_lock(); }

step atomic_algorithm::read_or_lock() {
  if (!locked_ && conflicts_ >= optimistic_attempts_)
    // Waits for the holder (leased); the grant brings the read.
    return send(access::wrap(protocol::lock_request(ns_, keys_)), phase::locking);
  return send(access::wrap(protocol::read_request(ns_, keys_)), phase::reading);
}

step atomic_algorithm::send(request r, phase next) {
  phase_ = next;
  step s{step::kind::send};
  s.outgoing = std::move(r);
  return s;
}

step atomic_algorithm::fail(error_code ec, std::string message) {
  if (locked_) {
    // Give the lock back first: others would wait out its whole lease otherwise.
    locked_ = false;
    failure_ = ec;
    failure_message_ = std::move(message);
    return send(access::wrap(protocol::make(op::unlock, ns_)), phase::unlocking);
  }
  phase_ = phase::over;
  return {step::kind::failed, nullptr, ec, std::move(message)};
}

void atomic_algorithm::connection_is(std::uint64_t number) noexcept {
  connection_ = number;
  if (locked_ && phase_ != phase::locking && number != lock_connection_) locked_ = false;
}

step atomic_algorithm::on_reply(error_code ec, json result, std::string message) {
  switch (phase_) {
    case phase::locking:
      if (ec == server_errc::reply_too_large) {
        // Granted, but the namespace read with the grant did not fit in a reply: the lock is
        // held, and given back (fail() unlocks) rather than left to its lease.
        locked_ = true;
        lock_connection_ = connection_;
      }
      if (ec) return fail(ec, std::move(message));
      locked_ = true;
      lock_connection_ = connection_;
      needed_lock_ = true;
      if (const json* read = protocol::lock_grant_read(result)) return on_read(json(*read));
      // (A server that reads nothing with the grant: the holder reads.)
      return send(access::wrap(protocol::read_request(ns_, keys_)), phase::reading);
    case phase::reading:
      if (ec) return fail(ec, std::move(message));
      return on_read(std::move(result));
    case phase::committing:
      if (!ec) {
        locked_ = false;  // a holder's commit releases the lock on the server
        phase_ = phase::over;
        return {step::kind::done};
      }
      if (ec == server_errc::conflict) {
        ++conflicts_;
        return read_or_lock();
      }
      return fail(ec, std::move(message));  // refused: the lock (if held) is given back
    case phase::unlocking:
      // Whatever the unlock's outcome (a closed connection releases the lock on the server).
      phase_ = phase::over;
      return {step::kind::failed, nullptr, failure_, std::move(failure_message_)};
    default:
      return {step::kind::failed, nullptr, make_error_code(client_errc::protocol_error),
              "atomic(): a reply came when none was expected"};
  }
}

step atomic_algorithm::on_read(json result) {
  if (!result.is_object() || !result.contains(protocol::field::data) ||
      !result[protocol::field::data].is_object())
    return fail(client_errc::protocol_error, "atomic(): malformed read reply");
  read_reply_ = std::move(result);
  phase_ = phase::body;
  return {step::kind::run_body, read_reply_[protocol::field::data]};
}

step atomic_algorithm::on_body_done(const json& changed) {
  try {
    return send(access::wrap(protocol::commit_request(ns_, handle_, !keys_.empty(), read_reply_,
                                                      changed)),
                phase::committing);
  } catch (const zproc::error& e) {
    return fail(e.code(), e.diagnostics());
  } catch (const json::exception& e) {
    return fail(client_errc::protocol_error, std::string("atomic(): malformed read reply: ") + e.what());
  }
}

step atomic_algorithm::on_body_failed() { return fail({}, {}); }

step atomic_algorithm::run_body(step& s, const std::function<void(json&)>& body) {
  try {
    body(s.payload);
  } catch (...) {
    body_failure_ = std::current_exception();
    return on_body_failed();
  }
  return on_body_done(s.payload);
}

void atomic_algorithm::throw_failure(step s) const {
  if (!s.ec && body_failure_) std::rethrow_exception(body_failure_);
  throw zproc::error(s.ec, std::move(s.message));
}

void run_atomic(const std::shared_ptr<client_impl>& c, const std::string& ns,
                std::uint64_t handle, std::vector<std::string> keys, atomic_options options,
                const std::function<void(json&)>& body, error_code& ec, diagnostics& diag) {
  ec.clear();
  diag.clear();
  atomic_algorithm algo(ns, handle, std::move(keys), options.optimistic_attempts,
                        options.optimistic_attempts > 0 && c->lock_first(ns));
  for (auto s = algo.start();;) {
    switch (s.what) {
      case step::kind::send: {
        error_code rec;
        std::string message;
        std::uint64_t on = 0;
        json result = call_raw(c, request_access::take(std::move(s.outgoing)), rec, message, &on);
        algo.connection_is(on);
        s = algo.on_reply(rec, std::move(result), std::move(message));
        break;
      }
      case step::kind::run_body:
        s = algo.run_body(s, body);
        break;
      case step::kind::done:
        c->atomic_done(ns, algo.needed_lock());
        return;
      case step::kind::failed:
        if (!s.ec) algo.throw_failure(std::move(s));  // the body's own exception
        ec = s.ec;
        diagnostics_access::set_message(diag, std::move(s.message));
        return;
    }
  }
}

void run_atomic(const std::shared_ptr<client_impl>& c, const std::string& ns,
                std::uint64_t handle, std::vector<std::string> keys, atomic_options options,
                const std::function<void(json&)>& body) {
  error_code ec;
  diagnostics diag;
  run_atomic(c, ns, handle, std::move(keys), options, body, ec, diag);
  if (ec) throw zproc::error(ec, diag.message());
}

namespace {

/// One async atomic(): the algorithm, the body, and the runner's handler.
class atomic_run : public std::enable_shared_from_this<atomic_run> {
 public:
  atomic_run(std::shared_ptr<client_impl> c, std::string ns, std::uint64_t handle,
             std::vector<std::string> keys, atomic_options options,
             std::function<void(json&)> body, basic_held_handler<error_code>&& h,
             diagnostics_ptr diagnostics, std::shared_ptr<forwarded_cancellation> cancel)
      : c_(std::move(c)),
        ns_(ns),
        algo_(std::move(ns), handle, std::move(keys), options.optimistic_attempts,
              options.optimistic_attempts > 0 && c_->lock_first(ns_)),
        body_(std::move(body)),
        h_(std::move(h)),
        diagnostics_(std::move(diagnostics)),
        cancel_(std::move(cancel)) {}

  step start() { return algo_.start(); }

  /// Runs steps until one waits for a reply, or the end. `first`: called by the initiation.
  void drive(step s, bool first) {
    for (;;) {
      switch (s.what) {
        case step::kind::send:
          if (cancelled_ && algo_.cancellable()) {
            s = algo_.on_reply(asio::error::operation_aborted, {}, "async_atomic cancelled");
            break;
          }
          return send(std::move(s.outgoing));
        case step::kind::run_body:
          s = algo_.run_body(s, body_);
          break;
        case step::kind::done:
          c_->atomic_done(ns_, algo_.needed_lock());
          return h_.complete(first, error_code{});
        case step::kind::failed:
          if (!s.ec) {  // the body's own exception
            if (diagnostics_)
              diagnostics_access::set_exception(*diagnostics_, algo_.body_failure(),
                                                "the body of async_atomic threw");
            return h_.complete(first, make_error_code(client_errc::body_threw));
          }
          h_.set_message(std::move(s.message));
          return h_.complete(first, s.ec);
      }
    }
  }

  /// A cancellation (on the client's executor): the lock or read in flight stops; anything
  /// else finishes, and the next lock or read is not sent.
  void cancel() {
    cancelled_ = true;
    if (in_flight_ && algo_.cancellable()) cancel_->emit();
  }

 private:
  void send(request r) {
    auto failure = std::make_shared<zproc::diagnostics>();
    in_flight_ = true;
    auto done = [self = shared_from_this(), failure](error_code ec, json reply,
                                                      std::uint64_t on) {
      self->in_flight_ = false;
      self->algo_.connection_is(on);
      self->drive(self->algo_.on_reply(ec, std::move(reply), failure->message()), false);
    };
    cancel_->start([&](asio::cancellation_slot slot) {
      start_connection_request(c_, 0, std::move(r),
                               asio::bind_cancellation_slot(slot, std::move(done)), failure);
    });
  }

  std::shared_ptr<client_impl> c_;
  std::string ns_;
  atomic_algorithm algo_;
  std::function<void(json&)> body_;
  basic_held_handler<error_code> h_;
  diagnostics_ptr diagnostics_;
  std::shared_ptr<forwarded_cancellation> cancel_;  // to the request in flight
  bool in_flight_ = false;
  bool cancelled_ = false;
};

}  // namespace

void start_atomic(const std::shared_ptr<client_impl>& c, std::string ns, std::uint64_t handle,
                  std::vector<std::string> keys, atomic_options options,
                  std::function<void(json&)> body,
                  asio::any_completion_handler<void(error_code)> h,
                  diagnostics_ptr diagnostics) {
  // The run is made on the client's executor (start); a cancellation reaches it there, after
  // it exists (both run on that executor, the cancel posted after the start).
  auto cancel = std::make_shared<forwarded_cancellation>();
  auto run = std::make_shared<std::weak_ptr<atomic_run>>();
  auto d = diagnostics;
  run_client_async(
      c, std::move(h), std::move(diagnostics), cancel_terminal_or_partial,
      [run](const std::shared_ptr<cancel_token>&) {
        if (auto r = run->lock()) r->cancel();
      },
      [c, ns = std::move(ns), handle, keys = std::move(keys), options, body = std::move(body),
       d, cancel, run](basic_held_handler<error_code>&& held,
                       const std::shared_ptr<cancel_token>& token) mutable {
        auto r = std::make_shared<atomic_run>(c, std::move(ns), handle, std::move(keys), options,
                                              std::move(body), std::move(held), d, cancel);
        *run = r;
        if (token && token->cancelled) r->cancel();
        r->drive(r->start(), true);
      });
}

bool atomic_lock_first(const std::shared_ptr<client_impl>& c, const std::string& ns) {
  return c->lock_first(ns);
}

void atomic_done(const std::shared_ptr<client_impl>& c, const std::string& ns, bool needed_lock) {
  c->atomic_done(ns, needed_lock);
}

}  // namespace detail

void from_json(const json& j, transaction_result& r) {
  r.succeeded = j.at(protocol::field::ok).get<bool>();
  r.results = j.at(protocol::field::results).get<std::vector<json>>();
}

detail::request state::cas_request(std::string key, std::optional<json> expected,
                                   json desired) const {
  auto r = detail::with_value(req(op::cas, std::move(key)), std::move(desired));
  if (expected) {
    detail::request_access::add(r, protocol::field::expected, *expected);
  } else {
    detail::request_access::add(r, protocol::field::absent, true);
  }
  return r;
}

detail::request state::txn_request(const txn& t) const {
  auto r = req(op::txn);
  detail::request_access::add(r, protocol::field::txn_if, t.compare);
  detail::request_access::add(r, protocol::field::txn_then, t.then);
  detail::request_access::add(r, protocol::field::txn_else, t.otherwise);
  return r;
}

}  // namespace zproc
