#include "client/watch_cursor.hpp"

#include "protocol/message.hpp"

#include <algorithm>
#include <stdexcept>

namespace zproc::detail {

namespace field = protocol::field;
namespace update_field = protocol::update_field;

watch_cursor::watch_cursor(settings s) : s_(std::move(s)) {}

bool watch_cursor::fail_if_other_server(const connection_facts& on) {
  if (s_.live || !cursor_ || cursor_on_.server_id.empty()) return false;
  if (on.server_id.empty() || on.server_id == cursor_on_.server_id) return false;
  failed_ = server_errc::compacted;
  failed_message_ = "the watcher's cursor (revision " + std::to_string(*cursor_) +
                    ") is of another server than the one at " + on.remote +
                    " now (a failover, or a server restarted without its data): the updates "
                    "after it are not there";
  return true;
}

std::optional<json> watch_cursor::next_request(const connection_facts& on) {
  if (failed_ || fail_if_other_server(on)) return std::nullopt;
  json req = s_.spec;
  req[field::max] = batch;
  if (cursor_ && s_.live && on.number != cursor_on_.number) {
    // The cursor is the last connection's: a live watcher goes on from the new server's
    // current revision (with a fresh replica), as when its request is sent again.
    if (s_.snapshot) req[field::base] = true;
  } else if (cursor_) {
    req[field::after] = *cursor_;
  } else if (s_.start) {
    if (*s_.start == 0) {
      req[field::oldest] = true;
    } else {
      req[field::after] = *s_.start;
    }
  }
  if (s_.snapshot && !have_replica_) req[field::base] = true;
  if (!cursor_) req[field::pin] = true;  // the first request: answered at once, fixing the start
  return req;
}

bool watch_cursor::adjust_resend(json& request, const connection_facts& on) {
  if (failed_ || fail_if_other_server(on)) return false;
  if (s_.live) {
    // A live watcher continues with the updates made after the reconnect: from the new server's
    // current revision (which may be behind this cursor, after a failover), with a fresh replica.
    request.erase(field::after);
    request.erase(field::oldest);
    if (s_.snapshot) request[field::base] = true;
  }
  // Any other watcher resumes from its cursor: a restarted durable server has the history after
  // it (else the reply is `compacted`); another server (fail_if_other_server) does not.
  return true;
}

namespace {

/// Throws unless `diff` has the shape of a diff: {s: {key: value}, x: [erased keys]}.
void check_diff(const json& diff) {
  if (!diff.is_object()) throw std::invalid_argument("a diff that is not an object");
  if (auto x = diff.find(update_field::diff_erased); x != diff.end()) {
    if (!x->is_array()) throw std::invalid_argument("erased keys that are not a list");
    for (const auto& k : *x)
      if (!k.is_string()) throw std::invalid_argument("an erased key that is not text");
  }
  if (auto set = diff.find(update_field::diff_set); set != diff.end() && !set->is_object())
    throw std::invalid_argument("set keys that are not an object");
}

/// Applies a diff checked by check_diff() (throws nothing else).
void apply_diff(json& replica, const json& diff) {
  if (auto x = diff.find(update_field::diff_erased); x != diff.end())
    for (const auto& k : *x) replica.erase(k.get_ref<const std::string&>());
  if (auto set = diff.find(update_field::diff_set); set != diff.end())
    for (const auto& [k, v] : set->items()) replica[k] = v;
}

}  // namespace

bool watch_cursor::on_reply(json&& result, const connection_facts& on) {
  // The whole reply is checked before anything changes: a malformed one leaves the watcher
  // as it was (failed), without copying the replica.
  std::uint64_t cursor = 0;
  try {
    if (auto base = result.find(field::base); base != result.end() && !base->is_object())
      throw std::invalid_argument("'base' is not an object");
    const json& updates = result.at(field::updates);
    if (!updates.is_array()) throw std::invalid_argument("'updates' is not a list");
    for (const auto& u : updates) {
      u.at(update_field::revision).get<std::uint64_t>();
      if (s_.snapshot)
        if (auto d = u.find(update_field::diff); d != u.end()) check_diff(*d);
    }
    if (auto tail = result.find(field::tail); tail != result.end() && s_.snapshot)
      check_diff(*tail);
    cursor = result.at(field::cursor).get<std::uint64_t>();
  } catch (const std::exception& e) {  // json::exception, or what the checks threw
    if (!failed_) {
      failed_ = client_errc::protocol_error;
      failed_message_ = std::string("malformed watch reply: ") + e.what();
    }
    return false;
  }
  // The caller's predicate may throw: the watcher fails then (client_errc::body_threw), the
  // updates it let through before stay to be read.
  try {
    if (auto base = result.find(field::base); base != result.end()) {
      replica_ = std::move(*base);
      have_replica_ = true;
    }
    for (auto& u : result.at(field::updates)) {
      const auto rev = u.at(update_field::revision).get<std::uint64_t>();
      if (s_.snapshot) {
        if (auto d = u.find(update_field::diff); d != u.end() && have_replica_)
          apply_diff(replica_, *d);
        if (!s_.filter || s_.filter(replica_)) ready_.push_back({replica_, rev, false});
      } else {
        ready_.push_back({std::move(u), rev, false});
      }
    }
    if (auto tail = result.find(field::tail); tail != result.end() && s_.snapshot && have_replica_)
      apply_diff(replica_, *tail);
    cursor_ = cursor;
    cursor_on_ = on;
    if (result.value(field::now, false) && s_.snapshot) {
      s_.spec.erase(field::now);  // only the first request asks for the current state
      if (!s_.filter || s_.filter(replica_)) ready_.push_back({replica_, cursor, true});
    }
  } catch (const std::exception& e) {
    fail(client_errc::body_threw, std::string("the watch's predicate threw: ") + e.what());
    return false;
  } catch (...) {
    fail(client_errc::body_threw, "the watch's predicate threw (not a std::exception)");
    return false;
  }
  return true;
}

void watch_cursor::fail(error_code ec, std::string message) {
  if (failed_) return;
  failed_ = ec;
  failed_message_ = std::move(message);
}

void watch_cursor::forget_updates() {
  std::erase_if(ready_, [](const item& r) { return !r.now; });
}

watch_cursor::item watch_cursor::pop() {
  item i = std::move(ready_.front());
  ready_.pop_front();
  return i;
}

}  // namespace zproc::detail
