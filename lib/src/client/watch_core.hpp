// The I/O half of a watcher: the one watch request it keeps pending on the server (a stream: it
// stays pending across its replies, and the core grants the server more replies as the caller
// takes what came), the next() waiting for an item, its deadline and cancellation. What to ask
// and what a reply means is its watch_cursor (sans-io). Runs on the connection's executor.
#pragma once

#include "client/client_core.hpp"
#include "client/watch_cursor.hpp"

#include <zproc/watcher.hpp>

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

namespace zproc::detail {

/// A next() waiting for an update. complete() runs once, on the connection's executor.
class next_op {
 public:
  virtual ~next_op() = default;
  /// `item` is a snapshot or an update record, or empty at the end.
  virtual void complete(error_code ec, std::optional<watch_value> item, std::string message,
                        bool must_post) = 0;
  /// Set if the caller can cancel this next().
  std::shared_ptr<cancel_token> token;
};

class watch_core : public std::enable_shared_from_this<watch_core> {
 public:
  /// A stream's credit: the replies the server may send before the core grants more. It grants
  /// more once half is spent and the caller took every item that came, so that at most this
  /// many replies wait here unread, and a watcher that keeps up costs one `more` per
  /// stream_window / 2 replies.
  static constexpr std::uint64_t stream_window = 16;

  /// `spec`: the watch request without the cursor fields. `snapshot`: yield snapshots (else
  /// update records). `filter`: a client-side predicate on snapshots (may be empty).
  watch_core(std::shared_ptr<client_impl> client, json spec, watch_options options,
             bool snapshot, std::function<bool(const json&)> filter);

  /// Sends the first request (from any thread). Once the server answered it, no later update
  /// is missed. Call arm() or arm_here() once, after construction.
  void arm();
  /// The same, on the connection's executor; `pinned` runs when the server answered.
  void arm_here(std::function<void(error_code, std::string)> pinned);
  /// The next item (on the connection's executor). A live watcher first forgets what arrived
  /// before this call: it returns only an update made after it was asked.
  void next(std::unique_ptr<next_op> op, bool from_initiation);
  /// Cancels the waiting next() if it is the one of `token` (completes with operation_aborted).
  void cancel_next(const std::shared_ptr<cancel_token>& token);
  /// Cancels the pending request on the server (the watcher is gone). From any thread.
  void close();
  /// The same, on the connection's executor.
  void close_here();

  /// The pending watch request is sent again on a new connection (the old one broke): adjusts
  /// it. On the connection's executor.
  bool before_resend(protocol::packed_request& request);
  /// The pending watch request failed (`ec`), or its result came (`result`, MessagePack: a view
  /// into the frame, valid during the call). On the connection's executor.
  void on_reply(error_code ec, std::string_view result, std::string&& message);

  const std::shared_ptr<client_impl>& client() const noexcept { return client_; }
  std::uint64_t revision() const noexcept { return revision_; }
  std::size_t returned() const noexcept { return returned_; }
  /// Keeps the core alive until the pending next() completes (one-shot waits).
  void keep_alive() { self_ = shared_from_this(); }

 private:
  void send();
  /// A stream whose caller took every item and that has half of its credit or less left: the
  /// server may send stream_window replies again.
  void grant();
  void deliver(bool from_initiation);
  void finish_waiting(error_code ec, std::optional<watch_value> item, std::string message,
                      bool must_post);
  /// Forgets the pending watch request, here and on the server (its reply is dropped).
  void drop_inflight();
  bool finished() const noexcept { return options_.count && returned_ >= *options_.count; }

  /// The connection the requests go on now.
  connection_facts facts() const;
  mutable std::string remote_;         // its address, for facts()
  mutable std::uint64_t remote_of_ = 0;  // the connection remote_ is of

  std::shared_ptr<client_impl> client_;
  watch_options options_;
  watch_cursor cursor_;
  // Written on the connection's executor, read by the watcher's owner from its own thread.
  std::atomic<std::uint64_t> revision_{0};  // of the last item returned
  std::atomic<std::size_t> returned_{0};

  std::uint64_t inflight_id_ = 0;        // the pending watch request, 0 if none
  bool streaming_ = false;               // it is a stream (pending across its replies)
  std::uint64_t credit_ = 0;             // the replies the server may still send on it
  bool closed_ = false;

  std::unique_ptr<next_op> waiting_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<watch_core> self_;
  std::function<void(error_code, std::string)> pinned_;
};

/// Builds and arms a watch core. Used by zproc::state's watcher factories.
std::shared_ptr<watch_core> make_watch(const std::shared_ptr<client_impl>& client, json spec,
                                       const watch_options& options, bool snapshot,
                                       std::function<bool(const json&)> filter);

}  // namespace zproc::detail
