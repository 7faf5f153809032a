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
namespace update_field = protocol::update_field;

namespace {

constexpr std::size_t batch = 512;  // updates asked per request

/// The pending watch request: forwards its reply to the core, if the core still exists.
class watch_reply_op final : public pending_op {
 public:
  explicit watch_reply_op(std::weak_ptr<watch_core> core, std::function<void(error_code, json&&, std::string&&)> f)
      : core_(std::move(core)), f_(std::move(f)) {}
  void complete(error_code ec, json&& result, std::string&& message, bool must_post) override {
    if (core_.expired()) return;
    if (must_post) {
      auto ex = core_.lock()->client()->get_executor();
      asio::post(ex, [f = std::move(f_), ec, r = std::move(result), m = std::move(message)]() mutable {
        f(ec, std::move(r), std::move(m));
      });
    } else {
      f_(ec, std::move(result), std::move(message));
    }
  }
  bool before_resend(json& request) override {
    auto core = core_.lock();
    return core && core->before_resend(request);
  }

 private:
  std::weak_ptr<watch_core> core_;
  std::function<void(error_code, json&&, std::string&&)> f_;
};

/// Fire and forget (the cancel of a watch request).
class ignore_op final : public pending_op {
 public:
  void complete(error_code, json&&, std::string&&, bool) override {}
};

}  // namespace

watch_core::watch_core(std::shared_ptr<client_impl> client, json spec, watch_options options,
                       bool snapshot, std::function<bool(const json&)> filter)
    : client_(std::move(client)),
      spec_(std::move(spec)),
      options_(std::move(options)),
      snapshot_(snapshot),
      filter_(std::move(filter)),
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

bool watch_core::fail_if_other_server() {
  if (options_.live || !cursor_ || cursor_server_.empty()) return false;
  const std::string& now = client_->conn()->server_id();
  if (now.empty() || now == cursor_server_) return false;
  failed_ = server_errc::compacted;
  failed_message_ = "the watcher's cursor (revision " + std::to_string(*cursor_) +
                    ") is of another server than the one at " + client_->conn()->remote() +
                    " now (a failover, or a server restarted without its data): the updates "
                    "after it are not there";
  return true;
}

void watch_core::send() {
  if (inflight_id_ != 0 || closed_ || failed_ || finished()) return;
  if (fail_if_other_server()) {
    // Posted: send() may run inside next()'s initiation.
    if (waiting_) finish_waiting(failed_, std::nullopt, failed_message_, true);
    return;
  }
  json req = spec_;
  req[field::max] = batch;
  const bool reconnected = cursor_connection_ != client_->conn()->connections();
  if (cursor_ && options_.live && reconnected) {
    // The cursor is the last connection's: a live watcher goes on from the new server's
    // current revision (with a fresh replica), as when its request is sent again.
    if (snapshot_) req[field::base] = true;
  } else if (cursor_) {
    req[field::after] = *cursor_;
  } else if (options_.start) {
    if (*options_.start == 0) {
      req[field::oldest] = true;
    } else {
      req[field::after] = *options_.start;
    }
  }
  if (snapshot_ && !have_replica_) req[field::base] = true;
  if (!cursor_) req[field::pin] = true;  // the first request: answered at once, fixing the start
  std::weak_ptr<watch_core> weak = weak_from_this();
  inflight_id_ = client_->conn()->request(
      std::move(req), std::make_unique<watch_reply_op>(weak, [weak](error_code ec, json&& r, std::string&& m) {
        if (auto self = weak.lock()) self->on_reply(ec, std::move(r), std::move(m));
      }));
  // request() may have failed at once (not connected): on_reply runs later with the error.
}

bool watch_core::before_resend(json& request) {
  // Not sent: its reply (connection_lost) then finds the watcher failed already and keeps that.
  if (fail_if_other_server()) return false;
  if (options_.live) {
    // A live watcher continues with the updates made after the reconnect: from the new server's
    // current revision (which may be behind this cursor, after a failover), with a fresh replica.
    request.erase(field::after);
    request.erase(field::oldest);
    if (snapshot_) request[field::base] = true;
  }
  // Any other watcher resumes from its cursor: a restarted durable server has the history after
  // it (else the reply is `compacted`); another server (fail_if_other_server) does not.
  return true;
}

void watch_core::apply(const json& diff) {
  if (!have_replica_) return;
  if (auto x = diff.find(update_field::diff_erased); x != diff.end())
    for (const auto& k : *x) replica_.erase(k.get<std::string>());
  if (auto s = diff.find(update_field::diff_set); s != diff.end())
    for (const auto& [k, v] : s->items()) replica_[k] = v;
}

void watch_core::on_reply(error_code ec, json&& result, std::string&& message) {
  inflight_id_ = 0;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    if (!failed_) {
      failed_ = ec;
      failed_message_ = std::move(message);
    }
    if (auto pinned = std::move(pinned_)) pinned(failed_, failed_message_);
    if (waiting_) finish_waiting(failed_, std::nullopt, failed_message_, false);
    return;
  }
  try {
    if (auto base = result.find(field::base); base != result.end()) {
      replica_ = std::move(*base);
      have_replica_ = true;
    }
    for (auto& u : result.at(field::updates)) {
      const auto rev = u.at(update_field::revision).get<std::uint64_t>();
      if (snapshot_) {
        if (auto d = u.find(update_field::diff); d != u.end()) apply(*d);
        if (!filter_ || filter_(replica_)) ready_.push_back({replica_, rev, false});
      } else {
        ready_.push_back({std::move(u), rev, false});
      }
    }
    if (auto tail = result.find(field::tail); tail != result.end()) apply(*tail);
    cursor_ = result.at(field::cursor).get<std::uint64_t>();
    cursor_connection_ = client_->conn()->connections();
    cursor_server_ = client_->conn()->server_id();
    if (result.value(field::now, false) && snapshot_) {
      spec_.erase(field::now);  // only the first request asks for the current state
      if (!filter_ || filter_(replica_)) ready_.push_back({replica_, *cursor_, true});
    }
  } catch (const json::exception& e) {
    failed_ = client_errc::protocol_error;
    failed_message_ = std::string("malformed watch reply: ") + e.what();
    if (waiting_) finish_waiting(failed_, std::nullopt, failed_message_, false);
    return;
  }
  if (auto pinned = std::move(pinned_)) pinned({}, {});
  if (waiting_) deliver(false);
  // Nothing for us yet: stay armed. (A live watcher asks again only for a waiting next(): an
  // update that arrives before the next call would be dropped by it anyway.)
  if (ready_.empty() && (!options_.live || waiting_)) send();
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
    std::erase_if(ready_, [](const ready_item& r) { return !r.now; });
    if (inflight_id_ != 0 && cursor_) drop_inflight();
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
  if (!ready_.empty()) {
    json item = std::move(ready_.front().item);
    revision_ = ready_.front().revision;
    ready_.pop_front();
    ++returned_;
    finish_waiting({}, std::move(item), {}, from_initiation);
    // Fetch the next batch while the caller works on this one (not live: a live watcher's next
    // call asks for updates after it).
    if (ready_.empty() && !finished() && !options_.live) send();
    return;
  }
  if (failed_) finish_waiting(failed_, std::nullopt, failed_message_, from_initiation);
}

void watch_core::finish_waiting(error_code ec, std::optional<json> item, std::string message,
                                bool must_post) {
  auto op = std::move(waiting_);
  timer_.cancel();
  op->complete(ec, std::move(item), std::move(message), must_post);
  self_.reset();  // a one-shot wait is over (this may destroy *this: touch nothing after)
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
  json cancel = protocol::cancel_request(inflight_id_);
  const auto id = inflight_id_;
  client_->conn()->cancel(id);  // drops the local entry (on_reply sees operation_aborted)
  client_->conn()->request(std::move(cancel), std::make_unique<ignore_op>());
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
      [&core, r] {
        core->arm_here(
            [r](error_code ec, std::string message) { r->set(ec, {}, std::move(message)); });
      },
      client->options().request_timeout, [&core] { core->close_here(); });
  std::lock_guard lock(r->mutex);
  if (!in_time) throw zproc::error(client_errc::timeout, "the server did not answer the watch");
  if (r->ec) throw zproc::error(r->ec, r->message);
  return core;
}

}  // namespace zproc::detail
