// state::atomic(): optimistic read-modify-write with a lock as the fallback under contention.
#include "client/client_core.hpp"
#include "protocol/message.hpp"

#include <zproc/detail/request.hpp>
#include <zproc/state.hpp>
#include <zproc/transaction.hpp>

namespace zproc {

namespace detail {

atomic_run::atomic_run(std::shared_ptr<client_impl> c, std::string ns, std::uint64_t handle,
                       std::vector<std::string> keys, std::size_t optimistic_attempts)
    : c_(std::move(c)),
      ns_(std::move(ns)),
      handle_(handle),
      keys_(std::move(keys)),
      optimistic_attempts_(optimistic_attempts) {
  // Contended lately (on this connection): start with the lock rather than fail first.
  if (optimistic_attempts_ > 0 && c_->lock_first(ns_)) optimistic_attempts_ = 0;
}

atomic_run::~atomic_run() {
  if (!locked_) return;
  try {  // the body threw while we held the lock: give it back now
    json r = make_request("unlock", ns_);
    call<bool>(c_, std::move(r));
  } catch (...) {
    // The connection is gone: the server released the lock when it noticed.
  }
}

bool atomic_lock_first(const std::shared_ptr<client_impl>& c, const std::string& ns) {
  return c->lock_first(ns);
}

void atomic_done(const std::shared_ptr<client_impl>& c, const std::string& ns, bool needed_lock) {
  c->atomic_done(ns, needed_lock);
}

json atomic_read_request(const std::string& ns, const std::vector<std::string>& keys) {
  json r = make_request("read", ns);
  if (!keys.empty()) r["keys"] = keys;
  return r;
}

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

json atomic_run::read() {
  if (conflicts_ >= optimistic_attempts_ && !locked_) {
    call<std::int64_t>(c_, make_request("lock", ns_));  // waits for the holder (lease-bounded)
    locked_ = true;
  }
  read_reply_ = call<json>(c_, atomic_read_request(ns_, keys_));
  return read_reply_.at("data");
}

bool atomic_run::commit(const json& changed) {
  try {
    call<std::uint64_t>(c_, atomic_commit_request(ns_, handle_, keys_, read_reply_, changed));
  } catch (const zproc::error& e) {
    if (e.code() != server_errc::conflict) throw;
    ++conflicts_;
    return false;
  }
  c_->atomic_done(ns_, locked_);
  locked_ = false;  // a holder's commit releases the lock on the server
  return true;
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
