// state::atomic(): optimistic read-modify-write with a lock as the fallback under contention.
#include "client/client_core.hpp"
#include "protocol/message.hpp"

#include <zproc/detail/atomic.hpp>
#include <zproc/detail/request.hpp>
#include <zproc/state.hpp>
#include <zproc/transaction.hpp>

namespace zproc {

namespace detail {

namespace {

json atomic_read_request(const std::string& ns, const std::vector<std::string>& keys) {
  json r = make_request("read", ns);
  if (!keys.empty()) r["keys"] = keys;
  return r;
}

/// The commit of `changed` against what `read_reply` returned (the changes are the difference).
json atomic_commit_request(const std::string& ns, std::uint64_t handle,
                           const std::vector<std::string>& keys, const json& read_reply,
                           const json& changed) {
  if (!changed.is_object())
    throw zproc::error(server_errc::wrong_type, "atomic(): the snapshot must stay a JSON object");
  const json& original = read_reply.at("data");
  json set = json::object();
  json del = json::array();
  for (const auto& [k, v] : changed.items()) {
    auto it = original.find(k);
    if (it == original.end() || *it != v) set[k] = v;
  }
  for (const auto& [k, v] : original.items())
    if (!changed.contains(k)) del.push_back(k);
  json r = make_request("commit", ns);
  r[protocol::field::handle] = handle;
  if (keys.empty()) {
    r["base"] = read_reply.at("rev");  // the body saw the whole namespace
  } else {
    r["mods"] = read_reply.at("mods");  // the body saw these keys only
  }
  r["set"] = std::move(set);
  r["del"] = std::move(del);
  return r;
}

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
    return send(make_request("lock", ns_), phase::locking);  // waits for the holder (leased)
  return send(atomic_read_request(ns_, keys_), phase::reading);
}

step atomic_algorithm::send(json request, phase next) {
  phase_ = next;
  return {step::kind::send, std::move(request)};
}

step atomic_algorithm::fail(error_code ec, std::string message) {
  if (locked_) {
    // Give the lock back first: others would wait out its whole lease otherwise.
    locked_ = false;
    failure_ = ec;
    failure_message_ = std::move(message);
    return send(make_request("unlock", ns_), phase::unlocking);
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
      return send(atomic_read_request(ns_, keys_), phase::reading);
    case phase::reading:
      if (ec) return fail(ec, std::move(message));
      if (!result.is_object() || !result.contains("data") || !result["data"].is_object())
        return fail(client_errc::protocol_error, "atomic(): malformed read reply");
      read_reply_ = std::move(result);
      phase_ = phase::body;
      return {step::kind::run_body, read_reply_["data"]};
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
    return send(atomic_commit_request(ns_, handle_, keys_, read_reply_, changed),
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
                const std::function<void(json&)>& body) {
  atomic_algorithm algo(ns, handle, std::move(keys), options.optimistic_attempts,
                        options.optimistic_attempts > 0 && c->lock_first(ns));
  for (auto s = algo.start();;) {
    switch (s.what) {
      case step::kind::send: {
        error_code ec;
        std::string message;
        json result;
        try {
          result = call<json>(c, std::move(s.payload));
        } catch (const zproc::error& e) {
          ec = e.code();
          message = e.diagnostics().empty() ? e.what() : e.diagnostics();
        }
        algo.connection_is(atomic_connection(c));
        s = algo.on_reply(ec, std::move(result), std::move(message));
        break;
      }
      case step::kind::run_body:
        s = algo.run_body(s, body);
        break;
      case step::kind::done:
        c->atomic_done(ns, algo.needed_lock());
        return;
      case step::kind::failed:
        algo.throw_failure(std::move(s));
    }
  }
}

bool atomic_lock_first(const std::shared_ptr<client_impl>& c, const std::string& ns) {
  return c->lock_first(ns);
}

std::uint64_t atomic_connection(const std::shared_ptr<client_impl>& c) noexcept {
  return c->conn()->connections();
}

void atomic_done(const std::shared_ptr<client_impl>& c, const std::string& ns, bool needed_lock) {
  c->atomic_done(ns, needed_lock);
}

}  // namespace detail

void from_json(const json& j, transaction_result& r) {
  r.succeeded = j.at("ok").get<bool>();
  r.results = j.at("results").get<std::vector<json>>();
}

json state::cas_request(std::string key, std::optional<json> expected, json desired) const {
  json r = with_value(req("cas", std::move(key)), std::move(desired));
  if (expected) {
    r["e"] = std::move(*expected);
  } else {
    r["absent"] = true;
  }
  return r;
}

json state::txn_request(const txn& t) const {
  json r = req("txn");
  r["if"] = t.compare;
  r["then"] = t.then;
  r["else"] = t.otherwise;
  return r;
}

}  // namespace zproc
