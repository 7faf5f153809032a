#include "client/watch_cursor.hpp"

#include "protocol/message.hpp"
#include "protocol/watch_reply.hpp"

#include <algorithm>
#include <stdexcept>

namespace zproc::detail {

namespace field = protocol::field;
namespace update_field = protocol::update_field;

watch_cursor::watch_cursor(settings s) : s_(std::move(s)) { set_spec(std::move(s_.spec)); }

bool watch_cursor::fail_if_other_server(const connection_facts& on) {
  if (s_.live || !cursor_ || cursor_server_.empty()) return false;
  if (on.server_id.empty() || on.server_id == cursor_server_) return false;
  failed_ = server_errc::compacted;
  failed_message_ = "the watcher's cursor (revision " + std::to_string(*cursor_) +
                    ") is of another server than the one at " + std::string(on.remote) +
                    " now (a failover, or a server restarted without its data): the updates "
                    "after it are not there";
  return true;
}

std::optional<protocol::packed_request> watch_cursor::next_request(const connection_facts& on) {
  if (failed_ || fail_if_other_server(on)) return std::nullopt;
  request_fields f;
  if (cursor_ && s_.live && on.number != cursor_connection_) {
    // The cursor is the last connection's: a live watcher goes on from the new server's
    // current revision (with a fresh replica), as when its request is sent again.
    f.base = s_.snapshot;
  } else if (cursor_) {
    f.after = *cursor_;
  } else if (s_.start) {
    if (*s_.start == 0) {
      f.oldest = true;
    } else {
      f.after = *s_.start;
    }
  }
  if (s_.snapshot && !have_replica_) f.base = true;
  f.pin = !cursor_;  // the first request: answered at once, fixing the start
  if (!s_.live && !s_.spec.contains(field::now)) f.stream = s_.stream;
  last_ = f;
  return pack(f);
}

bool watch_cursor::adjust_resend(protocol::packed_request& request, const connection_facts& on) {
  if (failed_ || fail_if_other_server(on)) return false;
  if (last_.stream) {
    // A stream was answered past the cursor it was sent with: it goes on from where it is.
    auto again = next_request(on);
    if (!again) return false;
    request = std::move(*again);
    return true;
  }
  if (s_.live) {
    // A live watcher continues with the updates made after the reconnect: from the new server's
    // current revision (which may be behind this cursor, after a failover), with a fresh replica.
    last_.after.reset();
    last_.oldest = false;
    last_.base = last_.base || s_.snapshot;
    request = pack(last_);
  }
  // Any other watcher resumes from its cursor: a restarted durable server has the history after
  // it (else the reply is `compacted`); another server (fail_if_other_server) does not.
  return true;
}

protocol::packed_request watch_cursor::pack(const request_fields& f) const {
  protocol::packed_request r = spec_packed_;
  r.add_unsigned(field::max, batch);
  if (f.after) r.add_unsigned(field::after, *f.after);
  if (f.oldest) r.add_bool(field::oldest, true);
  if (f.base) r.add_bool(field::base, true);
  if (f.pin) r.add_bool(field::pin, true);
  if (f.stream) r.add_unsigned(field::stream, f.stream);
  return r;
}

void watch_cursor::set_spec(json spec) {
  s_.spec = std::move(spec);
  spec_packed_ = protocol::packed_request::from(s_.spec);  // (too deep: the connection refuses it)
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

bool watch_cursor::on_reply(std::string_view result, const connection_facts& on) {
  // The whole reply is decoded and checked before anything changes: a malformed one leaves the
  // watcher as it was (failed), without copying the replica.
  protocol::watch_reply r;
  try {
    r = protocol::decode_watch_reply(result, !s_.snapshot);
    if (s_.snapshot) {
      for (const auto& u : r.updates)
        if (u.diff) check_diff(*u.diff);
      if (r.tail) check_diff(*r.tail);
    }
  } catch (const std::exception& e) {  // what the decoder or the checks threw
    if (!failed_) {
      failed_ = client_errc::protocol_error;
      failed_message_ = std::string("malformed watch reply: ") + e.what();
    }
    return false;
  }
  // The caller's predicate may throw: the watcher fails then (client_errc::body_threw), the
  // updates it let through before stay to be read.
  try {
    if (r.base) {
      replica_ = std::move(*r.base);
      have_replica_ = true;
    }
    for (auto& u : r.updates) {
      if (s_.snapshot) {
        if (u.diff && have_replica_) apply_diff(replica_, *u.diff);
        if (!s_.filter || s_.filter(replica_)) ready_.push_back({replica_, u.revision, false});
      } else {
        ready_.push_back({std::move(u.record), u.revision, false});
      }
    }
    if (r.tail && s_.snapshot && have_replica_) apply_diff(replica_, *r.tail);
    cursor_ = r.cursor;
    if (on.number != cursor_connection_ || on.server_id != cursor_server_) {
      cursor_connection_ = on.number;
      cursor_server_ = on.server_id;  // (copied only when the connection changes)
    }
    if (r.now && s_.snapshot) {
      json spec = std::move(s_.spec);
      spec.erase(field::now);  // only the first request asks for the current state
      set_spec(std::move(spec));
      if (!s_.filter || s_.filter(replica_)) ready_.push_back({replica_, r.cursor, true});
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
