// state::atomic(): optimistic read-modify-write with a lock as the fallback under contention.
#include "client/client_core.hpp"
#include "protocol/message.hpp"
#include "protocol/ops.hpp"

#include <zproc/detail/atomic.hpp>
#include <zproc/detail/request.hpp>
#include <zproc/state.hpp>
#include <zproc/transaction.hpp>

namespace zproc {

namespace detail {

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
    return send(access::wrap(protocol::make(op::lock, ns_)), phase::locking);  // waits for the holder (leased)
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
      if (ec) return fail(ec, std::move(message));
      locked_ = true;
      lock_connection_ = connection_;
      needed_lock_ = true;
      return send(access::wrap(protocol::read_request(ns_, keys_)), phase::reading);
    case phase::reading:
      if (ec) return fail(ec, std::move(message));
      if (!result.is_object() || !result.contains(protocol::field::data) ||
          !result[protocol::field::data].is_object())
        return fail(client_errc::protocol_error, "atomic(): malformed read reply");
      read_reply_ = std::move(result);
      phase_ = phase::body;
      return {step::kind::run_body, read_reply_[protocol::field::data]};
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
  json& body = detail::request_access::body(r);
  if (expected) {
    body[protocol::field::expected] = std::move(*expected);
  } else {
    body[protocol::field::absent] = true;
  }
  return r;
}

detail::request state::txn_request(const txn& t) const {
  auto r = req(op::txn);
  json& body = detail::request_access::body(r);
  body[protocol::field::txn_if] = t.compare;
  body[protocol::field::txn_then] = t.then;
  body[protocol::field::txn_else] = t.otherwise;
  return r;
}

}  // namespace zproc
