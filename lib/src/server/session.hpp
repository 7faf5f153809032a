// One client connection on the server: reads frames, runs each request against the engine of its
// shard (under that shard's lock), and writes the replies back, batched. A thin I/O driver around protocol/ and
// the engine. All of a session's work runs on its socket's executor (one thread at a time);
// what other connections' requests send it arrives in its inbox.
#pragma once

#include "link.hpp"
#include "protocol/frame.hpp"
#include "protocol/target_request.hpp"
#include "server/engine.hpp"
#include "server/handshake.hpp"
#include "server/hub.hpp"
#include "server/output_queue.hpp"

#include <zproc/server.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace zproc::server_detail {

class session : public std::enable_shared_from_this<session> {
 public:
  using socket_type = boost::asio::generic::stream_protocol::socket;
  using tls_context = boost::asio::ssl::context;

  struct environment {
    hub& shared;  // the shards, and the other sessions
    const server_config& config;
    std::int64_t server_pid;
    std::string server_id;        // the hello reply's "sid"
    std::shared_ptr<void> owner;  // keeps `shared` and `config` alive
  };

  /// `tls`: the connection speaks TLS (a tls:// listener's), with this context.
  session(socket_type socket, environment env, std::uint64_t client_id,
          std::shared_ptr<tls_context> tls = nullptr);

  /// Starts serving on the socket's executor.
  void start();
  /// Answers the hello with this error and closes (call before start()).
  void refuse_hello(error_code ec, std::string why) { handshake_.refuse_hello(ec, std::move(why)); }
  /// Closes the connection now (pending replies are dropped); on the session's executor.
  /// Idempotent.
  void close();
  /// Under the lock of shard `from`, from any thread: a reply produced by another session's
  /// request (a woken watcher), queued in the inbox; the session sends it from its own thread.
  void deliver_locked(delivery&& d, engine& from);
  std::uint64_t client_id() const noexcept { return ctx_.client_id; }
  detail::link::executor_type get_executor() noexcept { return link_.get_executor(); }

 private:
  boost::asio::awaitable<void> run(std::shared_ptr<session> self);
  boost::asio::awaitable<void> serve();
  /// Handles one frame; returns false when the connection must close after flushing.
  bool handle_frame(std::string_view payload);
  /// A request of the shapes read without a json tree (a watch, a flat store op): handled.
  /// False: it is another, for the generic path.
  bool handle_flat(std::string_view payload);
  /// Runs `f(engine, deliveries)` with the engine of shard `shard`, under its lock: appends to
  /// `mine_` this session's inbox, then the deliveries of `f` that are this client's (in that
  /// order: the order of the shard's steps); hands the others to their sessions. Returns where
  /// `f`'s own start.
  template <class F>
  std::size_t with_engine(std::size_t shard, F&& f);
  template <class F>
  std::size_t with_engine_locked(shard& sh, F&& f);
  /// Under a shard's lock or none: moves the inbox to `mine_`.
  void take_inbox();
  /// with_engine() on every shard in turn.
  template <class F>
  void with_every_engine(F&& f);
  /// A well-formed cancel or more on a server of several shards: looked for on the shard of
  /// the namespace it names, then on the home shard (a task take or wait names none), or,
  /// naming none (a client of protocol 2), on every shard; one reply, whether a shard held
  /// its target.
  void handle_target_op(const protocol::target_request& t, std::uint64_t request_id);
  /// Queues `mine_` (after with_engine(), outside the lock) and empties it.
  void queue_mine();
  /// Sends what the inbox holds (posted by deliver_locked()).
  void drain_inbox();
  void queue(const nlohmann::json& message);
  void queue_reply(const nlohmann::json& reply);
  void queue_delivery(const delivery& d);
  /// Logs (debug) the request if its reply, `mine_` from `own` on, is a refusal.
  void log_refusals(const nlohmann::json& request, std::size_t own) const;
  /// Tells the engine when the output goes over its limit (its watchers wait) and when it has
  /// drained to half of it (they catch up).
  void check_pressure();
  /// Writes what is queued, once the data directory holds what it reports (`--fsync always`:
  /// a sync covered out_durable_; until then the bytes wait in held_, and the group_commit
  /// calls this again).
  void flush();
  /// Starts writing what is queued; true if the socket took all of it at once (nothing is in
  /// flight), false if a write is in flight or there was nothing to write.
  bool start_write();
  /// What follows a write: the output drained (check_pressure(), a drain_to() re-checks).
  void after_write();
  std::size_t pending_output() const noexcept {
    return out_.size() + held_.size() + inflight_.size();
  }
  /// Waits until the output buffers drop to `limit` bytes, the socket closes, or `deadline`.
  boost::asio::awaitable<void> drain_to(std::size_t limit,
                                        boost::asio::steady_timer::time_point deadline);

  detail::link link_;
  std::shared_ptr<tls_context> tls_;
  environment env_;
  request_context ctx_;
  protocol::frame_decoder decoder_;
  std::size_t read_size_ = 2 * 1024;  // the next read's size (session.cpp: small_read, read_chunk)
  output_queue out_;       // replies waiting for the next write
  output_queue held_;      // replies waiting for a sync of the data directory (fsync always)
  output_queue inflight_;  // replies being written
  std::uint64_t out_durable_ = 0;  // the journal's record count a sync must cover before out_
  bool awaiting_sync_ = false;     // held_ waits for the group_commit's word
  bool writing_ = false;
  bool greeted_ = false;
  handshake handshake_;
  bool closed_ = false;
  bool congested_ = false;  // over max_pending_output: the engines hold its watchers back
  /// congested_ was set by a shard's delivery (the inbox over the limit): the other shards
  /// are to be told too (check_pressure(), outside that shard's lock).
  bool tell_shards_ = false;
  /// Every shard was told the client is congested (and not every one resumed it since).
  bool shards_told_ = false;
  std::size_t client_max_frame_ = protocol::default_max_frame_size;
  std::vector<delivery> deliveries_;  // scratch of with_engine(), reused per request
  std::vector<delivery> mine_;        // with_engine()'s result, reused per request
  std::mutex inbox_mutex_;            // taken under a shard's lock, never the other way
  std::vector<delivery> inbox_;       // under inbox_mutex_
  bool inbox_posted_ = false;         // under inbox_mutex_: a drain_inbox() is on its way
  std::size_t inbox_bytes_ = 0;       // under inbox_mutex_: what inbox_ holds, about
  bool inbox_congested_ = false;      // under inbox_mutex_: deliver_locked() told a shard
  bool inbox_held_back_ = false;      // under inbox_mutex_: a delivering shard holds a stream
  std::atomic<bool> inbox_filled_{false};  // set under inbox_mutex_: inbox_ is not empty
  boost::asio::steady_timer hello_timer_;
  boost::asio::steady_timer drain_timer_;
};

}  // namespace zproc::server_detail
