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
      optimistic_attempts_(optimistic_attempts) {}

atomic_run::~atomic_run() {
  if (!locked_) return;
  try {  // the body threw while we held the lock: give it back now
    json r = make_request("unlock", ns_);
    call<bool>(c_, std::move(r));
  } catch (...) {
    // The connection is gone: the server released the lock when it noticed.
  }
}

json atomic_run::read() {
  if (conflicts_ >= optimistic_attempts_ && !locked_) {
    call<std::int64_t>(c_, make_request("lock", ns_));  // waits for the holder (lease-bounded)
    locked_ = true;
  }
  json r = make_request("read", ns_);
  if (!keys_.empty()) r["keys"] = keys_;
  json snap = call<json>(c_, std::move(r));
  base_ = snap.at("rev").get<std::uint64_t>();
  mods_ = std::move(snap.at("mods"));
  original_ = std::move(snap.at("data"));
  return original_;
}

bool atomic_run::commit(const json& changed) {
  if (!changed.is_object())
    throw zproc::error(server_errc::wrong_type, "atomic(): the snapshot must stay a JSON object");
  json set = json::object();
  json del = json::array();
  for (const auto& [k, v] : changed.items()) {
    auto it = original_.find(k);
    if (it == original_.end() || *it != v) set[k] = v;
  }
  for (const auto& [k, v] : original_.items())
    if (!changed.contains(k)) del.push_back(k);
  json r = make_request("commit", ns_);
  r[protocol::field::handle] = handle_;
  if (keys_.empty()) {
    r["base"] = base_;
  } else {
    r["mods"] = mods_;
  }
  r["set"] = std::move(set);
  r["del"] = std::move(del);
  try {
    call<std::uint64_t>(c_, std::move(r));
  } catch (const zproc::error& e) {
    if (e.code() != server_errc::conflict) throw;
    ++conflicts_;
    return false;
  }
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
