#include "client/watch_core.hpp"

#include "protocol/message.hpp"

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

namespace zproc::detail {

namespace asio = boost::asio;
namespace field = protocol::field;

namespace {

/// The pending watch request: forwards its reply to the core, if the core still exists.
class watch_reply_op final : public pending_op {
 public:
  explicit watch_reply_op(std::weak_ptr<watch_core> core) : core_(std::move(core)) {}
  void complete(error_code ec, json&&, std::string&& message, bool must_post) override {
    auto core = core_.lock();
    if (!core) return;
    if (must_post) {
      auto ex = core->client()->get_executor();
      asio::post(ex, [weak = core_, ec, m = std::move(message)]() mutable {
        if (auto c = weak.lock()) c->on_reply(ec, {}, std::move(m));
      });
    } else {
      core->on_reply(ec, {}, std::move(message));
    }
  }
  void complete_result(std::string_view result) override {
    // (A stream's reply: on_reply() may cancel the stream, destroying this op; nothing here is
    // touched after it.)
    if (auto core = core_.lock()) core->on_reply({}, result, {});
  }
  /// (decode_watch_reply reads every byte of the result: shape, depth, nothing after it. A
  /// reply for a watcher gone is dropped unread.)
  bool checks_result() const noexcept override { return true; }
  bool before_resend(protocol::packed_request& request) override {
    auto core = core_.lock();
    return core && core->before_resend(request);
  }

 private:
  std::weak_ptr<watch_core> core_;
};

}  // namespace

watch_core::watch_core(std::shared_ptr<client_impl> client, json spec, watch_options options,
                       bool snapshot, std::function<bool(const json&)> filter)
    : client_(std::move(client)),
      options_(std::move(options)),
      // (A watcher of one update asks once: a stream would bring replies nobody reads.)
      cursor_({std::move(spec), snapshot, options_.live, options_.start, std::move(filter),
               options_.count == std::optional<std::size_t>(1) ? 0 : stream_window}),
      timer_(client_->get_executor()) {
  if (options_.start) revision_ = *options_.start;
}

void watch_core::arm() {
  client_->run_on_connection([self = shared_from_this()] { self->send(); });
}

void watch_core::arm_here(std::function<void(error_code, std::string)> pinned) {
  pinned_ = std::move(pinned);
  send();
}

connection_facts watch_core::facts() const {
  const auto& conn = *client_->conn();
  if (conn.connections() != remote_of_) {  // (copied once per connection, not per request)
    remote_ = conn.remote();
    remote_of_ = conn.connections();
  }
  return {conn.connections(), conn.server_id(), remote_};
}

void watch_core::send() {
  if (inflight_id_ != 0 || closed_ || cursor_.failure() || finished()) return;
  auto req = cursor_.next_request(facts());
  if (!req) {  // the cursor is another server's, or the request cannot be sent
    // Posted: send() may run inside next()'s or arm_here()'s initiation.
    if (auto pinned = std::move(pinned_))
      asio::post(client_->get_executor(),
                 [pinned = std::move(pinned), ec = cursor_.failure(),
                  m = cursor_.failure_message()]() mutable { pinned(ec, std::move(m)); });
    if (waiting_) finish_waiting(cursor_.failure(), std::nullopt, cursor_.failure_message(), true);
    return;
  }
  streaming_ = cursor_.streaming();
  credit_ = streaming_ ? stream_window : 0;
  auto op = std::make_unique<watch_reply_op>(weak_from_this());
  op->stream = streaming_;
  inflight_id_ = client_->conn()->request(std::move(*req), std::move(op));
  // request() may have failed at once (not connected): on_reply runs later with the error.
}

void watch_core::grant() {
  // (Not while reconnecting: the stream goes again with its whole credit once connected.)
  if (!streaming_ || inflight_id_ == 0 || cursor_.has_ready() || credit_ > stream_window / 2 ||
      !client_->conn()->is_connected())
    return;
  const std::uint64_t more = stream_window - credit_;
  credit_ = stream_window;
  client_->conn()->request(protocol::more_request(inflight_id_, more, cursor_.ns()), reply_ignored());
}

bool watch_core::before_resend(protocol::packed_request& request) {
  // Not sent: its reply (connection_lost) then finds the watcher failed already and keeps that.
  if (!cursor_.adjust_resend(request, facts())) return false;
  credit_ = streaming_ ? stream_window : 0;  // a new stream on the new connection
  return true;
}

void watch_core::on_reply(error_code ec, std::string_view result, std::string&& message) {
  if (!streaming_ || ec) {  // the request is over (a stream goes on until an error)
    inflight_id_ = 0;
    streaming_ = false;
  }
  if (ec == asio::error::operation_aborted) return;
  if (ec) cursor_.fail(ec, std::move(message));
  if (ec || !cursor_.on_reply(result, facts())) {
    drop_inflight();  // a stream with a reply it cannot read: given up on the server too
    if (auto pinned = std::move(pinned_)) pinned(cursor_.failure(), cursor_.failure_message());
    if (waiting_)
      finish_waiting(cursor_.failure(), std::nullopt, cursor_.failure_message(), false);
    return;
  }
  if (credit_ > 0) --credit_;
  if (auto pinned = std::move(pinned_)) pinned({}, {});
  if (waiting_) deliver(false);
  // Nothing for us yet: stay armed. (A live watcher asks again only for a waiting next(): an
  // update that arrives before the next call would be dropped by it anyway. A stream is armed
  // while it is pending: send() does nothing then.)
  if (!cursor_.has_ready() && (!options_.live || waiting_)) send();
  grant();
}

void watch_core::next(std::unique_ptr<next_op> op, bool from_initiation) {
  if (waiting_) {
    op->complete(asio::error::in_progress, std::nullopt,
                 "another next() on this watcher is still waiting", true);
    return;
  }
  if (op->token && op->token->cancelled) {
    op->complete(asio::error::operation_aborted, std::nullopt, "cancelled", true);
    return;
  }
  if (options_.live) {
    // Only updates made after this call count: forget those received before it, and a request
    // the server may have answered with them. (The state the watcher found at its start, for a
    // predicate that held already, is not an update: it stays.)
    cursor_.forget_updates();
    if (inflight_id_ != 0 && cursor_.started()) drop_inflight();
  }
  waiting_ = std::move(op);
  deliver(from_initiation);
  if (!waiting_) return;
  // Waiting: make sure a request is pending, and arm the deadline and the cancellation slot.
  send();
  if (options_.timeout) {
    timer_.expires_after(*options_.timeout);
    timer_.async_wait([weak = weak_from_this()](error_code ec) {
      auto self = weak.lock();
      if (ec || !self || !self->waiting_) return;
      self->finish_waiting(client_errc::timeout, std::nullopt,
                           "no update within the watcher's timeout", false);
    });
  }
}

void watch_core::cancel_next(const std::shared_ptr<cancel_token>& token) {
  if (waiting_ && waiting_->token == token)
    finish_waiting(asio::error::operation_aborted, std::nullopt, "cancelled", false);
}

void watch_core::deliver(bool from_initiation) {
  if (!waiting_) return;
  if (finished()) {
    finish_waiting({}, std::nullopt, {}, from_initiation);
    return;
  }
  if (cursor_.has_ready()) {
    auto item = cursor_.pop();
    revision_ = item.revision;
    ++returned_;
    const auto self = shared_from_this();  // (a one-shot wait's core may go with its wait)
    finish_waiting({}, std::move(item.value), {}, from_initiation);
    if (finished()) {
      drop_inflight();  // (a stream would go on sending)
      return;
    }
    // Fetch the next batch while the caller works on this one (not live: a live watcher's next
    // call asks for updates after it); a stream may send more.
    if (!cursor_.has_ready() && !options_.live) send();
    grant();
    return;
  }
  if (cursor_.failure())
    finish_waiting(cursor_.failure(), std::nullopt, cursor_.failure_message(), from_initiation);
}

void watch_core::finish_waiting(error_code ec, std::optional<watch_value> item,
                                std::string message, bool must_post) {
  auto op = std::move(waiting_);
  timer_.cancel();
  // A one-shot wait is over, whatever its outcome (an update, a timeout, a cancel): nobody
  // will read this watcher again, so its request goes too (a stream would stay on the server).
  if (self_) drop_inflight();
  op->complete(ec, std::move(item), std::move(message), must_post);
  self_.reset();  // (this may destroy *this: touch nothing after)
}

void watch_core::close() {
  client_->run_on_connection([self = shared_from_this()] { self->close_here(); });
}

void watch_core::close_here() {
  closed_ = true;
  timer_.cancel();
  drop_inflight();
}

void watch_core::drop_inflight() {
  if (inflight_id_ == 0) return;
  // Drops the local entry (on_reply sees operation_aborted) and the server's watch.
  client_->conn()->cancel(inflight_id_);
  inflight_id_ = 0;
}

std::shared_ptr<watch_core> make_watch(const std::shared_ptr<client_impl>& client, json spec,
                                       const watch_options& options, bool snapshot,
                                       std::function<bool(const json&)> filter) {
  if (options.live) spec[field::live] = true;
  if (options.identical_okay) spec[field::identical] = true;
  if (options.exclude) spec[field::exclude] = true;
  if (options.include_own) spec[field::own] = true;
  if (snapshot) spec[field::snap] = true;
  auto core = std::make_shared<watch_core>(client, std::move(spec), options, snapshot,
                                           std::move(filter));
  if (!client->blocking_mode()) {
    // The start is fixed when the server receives the first request: requests sent later on this
    // connection come after it.
    core->arm();
    return core;
  }
  // Blocking: wait until the server fixed the start, so that any write made after this returns,
  // by anyone, is seen.
  auto r = std::make_shared<blocking_result>();
  const bool in_time = client->run_blocking(
      *r,
      [core, r] {
        core->arm_here(
            [r](error_code ec, std::string message) { r->set(ec, {}, std::move(message)); });
      },
      client->options().request_timeout, [core] { core->close_here(); });
  std::lock_guard lock(r->mutex);
  if (!in_time) throw zproc::error(client_errc::timeout, "the server did not answer the watch");
  if (r->ec) throw zproc::error(r->ec, r->message);
  return core;
}

}  // namespace zproc::detail
