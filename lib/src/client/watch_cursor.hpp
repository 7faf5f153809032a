// The protocol half of a watcher, sans-io: which watch request to send next, what a reply
// means (the updates ready to return, the cursor, a snapshot watcher's replica of the
// namespace), and whether the cursor still holds on a new connection. No socket, no timer, no
// executor: watch_core (the I/O half) feeds it replies and the facts of the connection, and
// sends what it answers. Unit-tested with scripted replies in test/unit/watch_cursor_test.cpp.
#pragma once

#include "protocol/packed_request.hpp"

#include <zproc/error.hpp>
#include <zproc/json.hpp>
#include <zproc/update.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace zproc::detail {

/// The connection a request goes on, or a reply came on (views: valid during the call).
struct connection_facts {
  std::uint64_t number = 0;     ///< connection::connections(): +1 per connection made
  std::string_view server_id;   ///< the server's identity from its hello ("" if it has none)
  std::string_view remote;      ///< its address (for messages)
};

/// What a watcher returns: a snapshot of the namespace, or an update record.
using watch_value = std::variant<json, update>;

class watch_cursor {
 public:
  struct settings {
    json spec;  ///< the watch request without its cursor fields
    bool snapshot = false;  ///< yields snapshots of the namespace (else update records)
    bool live = false;      ///< only updates made after each next() (watch_options::live)
    std::optional<std::uint64_t> start;  ///< watch_options::start: after this revision (0: oldest)
    std::function<bool(const json&)> filter;  ///< on snapshots (may be empty)
    /// Non-zero: ask for a streaming watch (protocol::field::stream) with this credit: one
    /// request stays pending and brings every reply. Not for a live watcher (it asks only
    /// when called) nor a first request that asks for the current state (`now`: one-shot).
    std::uint64_t stream = 0;
  };
  /// An item ready to return: a snapshot (json), or an update record.
  struct item {
    watch_value value;
    std::uint64_t revision;
    bool now;  ///< the state the watcher found at its start (a predicate that held already)
  };
  /// Updates asked for per request.
  static constexpr std::size_t batch = 512;

  explicit watch_cursor(settings s);

  /// The next watch request, to go on connection `on` (packed once the spec is: it is made
  /// again after every reply); empty once the watcher failed (then failure() says why: a cursor
  /// of another server is `compacted`).
  std::optional<protocol::packed_request> next_request(const connection_facts& on);
  /// The request made last by next_request() is sent again on the new connection `on` (the old
  /// one broke before its reply, or while it streamed): adjusts it. False: it must not be sent
  /// (the watcher failed).
  bool adjust_resend(protocol::packed_request& request, const connection_facts& on);
  /// Whether the request made last is a stream (it stays pending across its replies).
  bool streaming() const noexcept { return last_.stream != 0; }
  /// The result of a watch reply (its MessagePack: protocol::reply_view::result) that came on
  /// connection `on`. False: the reply is malformed (the watcher failed with protocol_error).
  bool on_reply(std::string_view result, const connection_facts& on);
  /// The watch request failed (a server error, a lost connection that is not resent): the
  /// watcher fails with it, unless it failed already (the first failure stays).
  void fail(error_code ec, std::string message);

  /// Whether the server fixed the start (the first reply came).
  bool started() const noexcept { return cursor_.has_value(); }
  /// The revision after which the next update comes (empty before the start).
  const std::optional<std::uint64_t>& cursor() const noexcept { return cursor_; }

  /// A live watcher's next(): forgets the updates received before it (the state found at the
  /// start stays).
  void forget_updates();
  bool has_ready() const noexcept { return !ready_.empty(); }
  /// The namespace watched (what a `more` names).
  const std::string& ns() const noexcept { return spec_packed_.ns; }
  /// The first ready item (has_ready() must hold).
  item pop();

  const error_code& failure() const noexcept { return failed_; }
  const std::string& failure_message() const noexcept { return failed_message_; }

 private:
  /// A watcher that must see every update, whose cursor is of another server than `on`'s (a
  /// failover, or a server restarted without its data): fails it with `compacted`.
  bool fail_if_other_server(const connection_facts& on);

  /// The fields a request adds to the spec.
  struct request_fields {
    std::optional<std::uint64_t> after;
    bool oldest = false;
    bool base = false;
    bool pin = false;
    std::uint64_t stream = 0;
  };
  protocol::packed_request pack(const request_fields& f) const;
  /// Replaces the spec (and its packed form).
  void set_spec(json spec);

  settings s_;
  protocol::packed_request spec_packed_;  // s_.spec's fields
  request_fields last_;                   // of the request made last
  std::optional<std::uint64_t> cursor_;  // empty until the server fixed the start
  // The connection the cursor came on: its number and server identity.
  std::uint64_t cursor_connection_ = 0;
  std::string cursor_server_;
  json replica_;                         // snapshot watchers: the namespace at cursor_
  bool have_replica_ = false;
  std::deque<item> ready_;               // received, not yet returned
  error_code failed_;                    // sticky
  std::string failed_message_;
};

}  // namespace zproc::detail
