// The client's I/O driver (connection) and the object that owns it (client_impl).
//
// connection: one socket at a time, a reader coroutine that matches replies to pending requests
// by id (protocol::request_table), and a double-buffered writer. When the socket breaks it
// reconnects, as reconnect_policy says (when, where, which requests are sent again). All of its
// members run on one executor (a strand, or the blocking client's private io_context).
//
// client_impl: what zproc::client and zproc::state share. Owns the private io_context of a
// blocking client and runs it on the calling thread inside blocking calls.
#pragma once

#include "client/reconnect_policy.hpp"
#include "link.hpp"
#include "protocol/frame.hpp"
#include "protocol/packed_request.hpp"
#include "protocol/request_table.hpp"

#include <zproc/address.hpp>
#include <zproc/client.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

namespace zproc::detail {

/// Shared by an async operation and the cancellation handler installed in its initiating
/// function: a cancel before the request is sent stops it from being sent.
struct cancel_token {
  std::atomic<bool> cancelled{false};
  std::atomic<std::uint64_t> id{0};
};

/// A request waiting for its reply. complete() is called exactly once, on the connection's
/// executor; `must_post` is set when the caller may be the initiating function.
class pending_op {
 public:
  virtual ~pending_op() = default;
  virtual void complete(error_code ec, json&& result, std::string&& message, bool must_post) = 0;
  /// The reply came with a result: `result` is its MessagePack (empty: the reply has none), a
  /// view into the frame valid during the call. By default decoded into json for complete();
  /// an op that reads its result's shape itself (a watch) overrides this.
  virtual void complete_result(std::string_view result);
  /// Whether complete_result() checks the whole result as it reads it (depth, shape, nothing
  /// after it): then the connection need not check it first (protocol::parse_reply).
  virtual bool checks_result() const noexcept { return false; }
  /// Called before the request is sent again on a new connection (a watch adjusts its request);
  /// false: do not send it, it fails with connection_lost.
  virtual bool before_resend(protocol::packed_request& /*request*/) { return true; }
  /// Set if the caller can cancel the operation.
  std::shared_ptr<cancel_token> token;
  /// The request (sent with the op's id), kept while it must be sent on a new connection: an
  /// idempotent one until its reply comes, any other only until it is sent (queued while
  /// reconnecting).
  std::optional<protocol::packed_request> wire;
  bool idempotent = false;
  /// The server may hold it unanswered (protocol::parks): giving it up sends `cancel`, which
  /// names the request's namespace `ns` (packed_request::ns).
  bool parks = false;
  std::string ns;
  /// When it was last written to a socket, and how many connections were lost soon after
  /// (reconnect_policy::may_send_again bounds how often it is sent).
  reconnect_policy::sends sends;
  /// Non-zero: the request means something only on the connection of this number (it names
  /// what the server gave on it): on any other it fails with connection_lost, unsent.
  std::uint64_t only_on = 0;
  /// A streaming watch (protocol::field::stream): each reply with a result goes to
  /// complete_result() and the request stays pending; an error reply, a cancel or the end of
  /// the connection ends it (complete()). complete_result() may cancel it, destroying this
  /// object during the call: it touches no member after what may do that.
  bool stream = false;
};

/// An op for a request whose reply nobody waits for (a cancel, a stream's credit).
std::unique_ptr<pending_op> reply_ignored();

class connection : public std::enable_shared_from_this<connection> {
 public:
  using socket_type = boost::asio::generic::stream_protocol::socket;

  connection(boost::asio::any_io_executor ex, client_options options);

  // Everything below must be called on the connection's executor.

  /// Connects to the first of `addresses` that answers and says hello; `done(ec, message)` runs
  /// on the executor. The addresses (then client_options::addresses) are those a lost
  /// connection fails over to.
  void connect(std::vector<address> addresses, std::function<void(error_code, std::string)> done);
  /// Sends a request (adds the id) and registers `op`; returns the id (0 if it failed at once).
  /// While reconnecting, the request waits and is sent once connected.
  std::uint64_t request(json req, std::unique_ptr<pending_op> op);
  /// The same, for a request packed already.
  std::uint64_t request(protocol::packed_request&& req, std::unique_ptr<pending_op> op);
  /// Cancels a pending request: it completes with operation_aborted; a late reply is dropped.
  /// A request the server may hold unanswered (protocol::parks: a namespace lock, a watch, a
  /// task take or wait) is given up there too: a `cancel` of that id goes, its reply ignored
  /// (a no-op for a request the server already answered). Returns whether it was pending.
  bool cancel(std::uint64_t id);
  /// Stops a connect in progress: it completes with operation_aborted.
  void abort_connect();
  /// Closes the socket and fails every pending request with `reason`; no reconnect.
  void close(error_code reason, const std::string& message = {});

  const boost::asio::any_io_executor& get_executor() const noexcept { return ex_; }
  bool is_connected() const noexcept { return state_ == state::connected; }
  // These three may be read from any thread (they change when the client reconnects).
  std::int64_t server_pid() const noexcept { return server_pid_; }
  std::uint64_t client_id() const noexcept { return client_id_; }
  std::string remote() const {
    std::lock_guard lock(remote_mutex_);
    return remote_;
  }
  /// What another connection of this client should connect to: the address connected to, then
  /// the others it fails over to, comma-separated (client::connect() takes such a list).
  std::string failover_list() const;
  /// The server's identity (protocol::hello_reply::server_id; on the connection's executor):
  /// the same after a restart with the same data directory, another for another server.
  const std::string& server_id() const noexcept { return server_id_; }
  /// Connections made since construction (1 after connect; +1 per reconnect).
  std::uint64_t connections() const noexcept { return connections_; }

 private:
  enum class state { idle, connecting, connected, reconnecting, closed };

  /// Completion of a coroutine: an exception escaping it is a bug or a malformed peer message;
  /// it closes the connection so that nothing waits forever.
  void on_coroutine_end(std::exception_ptr e);

  boost::asio::awaitable<void> do_connect(std::vector<address> addresses,
                                          std::function<void(error_code, std::string)> done);
  /// One attempt: socket connect and hello, under client_options::connect_timeout. On success
  /// the socket is open and the server's hello read; on failure it is closed and `message` says
  /// why. `expected`: the state the connection must stay in meanwhile.
  boost::asio::awaitable<error_code> try_connect(address a, state expected, std::string& message);
  /// The socket and hello are ready: reads, and sends what waited.
  void on_connected();
  /// The socket broke (read or write error): reconnect, or close if reconnecting is disabled.
  void on_lost(const std::string& message);
  boost::asio::awaitable<void> reconnect_loop(std::uint64_t generation);
  boost::asio::awaitable<void> read_loop(std::uint64_t generation);
  void on_frame(std::string_view payload);
  void flush();
  void set_remote(std::string text);

  boost::asio::any_io_executor ex_;
  client_options options_;
  detail::link link_;
  std::shared_ptr<boost::asio::ssl::context> tls_context_;  // of the TLS stream in link_
  std::shared_ptr<protocol::frame_decoder> decoder_;  // a new one per socket
  protocol::request_table<std::unique_ptr<pending_op>> pending_;
  std::string out_;
  bool writing_ = false;
  state state_ = state::idle;
  error_code closed_reason_;
  std::string closed_message_;
  std::size_t server_max_frame_ = protocol::default_max_frame_size;
  std::atomic<std::int64_t> server_pid_{0};
  std::atomic<std::uint64_t> client_id_{0};
  std::atomic<std::uint64_t> connections_{0};
  std::string server_id_;
  mutable std::mutex remote_mutex_;
  std::string remote_;
  std::vector<std::string> failover_;  // policy_.addresses(), readable from any thread

  // Reconnecting.
  reconnect_policy policy_;
  std::vector<address> parsed_;      // policy_.addresses(), parsed
  std::uint64_t generation_ = 0;     // +1 per socket lost: stale handlers see it changed
  std::uint64_t attempt_ = 0;        // +1 per connect attempt: a stale deadline sees it changed
  bool working_ = false;             // a reply came on this socket (reconnect_policy::working)
  std::string last_error_;           // of the last attempt
  std::string lost_reason_;          // why the last connection was lost
  boost::asio::steady_timer backoff_timer_;
  boost::asio::steady_timer give_up_timer_;
};

/// The message of client_errc::wrong_mode for a blocking call on a thread that runs the client's
/// executor.
inline constexpr const char* blocking_on_executor_message =
    "a blocking call on a thread that runs the client's executor would wait for a reply only "
    "this thread can read: co_await the async_ form, or call it from another thread";

/// Where a blocking call's operation leaves its outcome (shared: a timed-out caller may leave).
struct blocking_result {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  error_code ec;
  json value;
  std::string packed;  // call_packed(): the result's MessagePack, undecoded
  std::string message;
  std::uint64_t connection = 0;  // of the reply: connection::connections() when it came

  void set(error_code e, json&& v, std::string&& m, std::uint64_t on = 0) {
    {
      std::lock_guard lock(mutex);
      ec = e;
      value = std::move(v);
      message = std::move(m);
      connection = on;
      done = true;
    }
    cv.notify_all();
  }
  bool is_done() {
    std::lock_guard lock(mutex);
    return done;
  }
};

/// A reference to a callable, for a call that uses it only while it runs: no copy, no
/// allocation (a blocking call on the client's own io_context).
class callable_ref {
 public:
  template <class F>
  explicit callable_ref(F& f) noexcept
      : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o) { (*static_cast<F*>(o))(); }) {}
  void operator()() const { call_(obj_); }

 private:
  void* obj_;
  void (*call_)(void*);
};

/// Shared by a client and its states. Closes the connection when the last of them goes.
class client_impl {
 public:
  /// Blocking mode: owns an io_context.
  explicit client_impl(client_options options);
  /// Async mode: a strand of `ex`.
  client_impl(boost::asio::any_io_executor ex, client_options options);
  ~client_impl();

  const boost::asio::any_io_executor& get_executor() const noexcept { return ex_; }
  const client_options& options() const noexcept { return options_; }
  const std::shared_ptr<connection>& conn() const noexcept { return conn_; }
  bool blocking_mode() const noexcept { return own_ioc_ != nullptr; }
  /// Closes the connection (thread-safe): pending requests fail with connection_closed.
  void close();
  /// Runs `fn` where the connection may be used: on this thread under the blocking lock
  /// (blocking mode), or dispatched to the strand (async mode).
  void run_on_connection(std::function<void()> fn);
  /// A new id for a state handle (identifies its writes, so its watchers can hide them).
  std::uint64_t new_handle_id() noexcept { return ++last_handle_; }

  /// atomic() on a contended namespace: after a call that needed the lock, the next few calls
  /// take it at once instead of failing optimistically first.
  bool lock_first(const std::string& ns);
  void atomic_done(const std::string& ns, bool needed_lock);

  /// Runs `start` (which initiates one operation on the connection, completing `result`) and
  /// waits for the result, at most `timeout` (zero = no deadline). On expiry runs `on_timeout`
  /// on the connection's executor (it must complete the operation soon) and returns false.
  /// Else `result` is complete when it returns: with the operation's outcome; with
  /// client_errc::wrong_mode, `start` not run, on a thread that runs the client's executor (the
  /// call would wait for itself); with connection_closed if the private io_context ran out of
  /// work without it. Blocking mode runs the private io_context on this thread; async mode
  /// waits for the executor's own threads. Throws nothing of its own.
  /// (`start` and `on_timeout` are copied only in async mode, where they may run after the
  /// call returned; the blocking mode calls them in place.)
  template <class Start, class OnTimeout>
  bool run_blocking(blocking_result& result, Start&& start, std::chrono::milliseconds timeout,
                    OnTimeout&& on_timeout) {
    if (own_ioc_) return run_here(result, callable_ref(start), timeout, callable_ref(on_timeout));
    return run_on_executor(result, std::function<void()>(std::forward<Start>(start)), timeout,
                           std::function<void()>(std::forward<OnTimeout>(on_timeout)));
  }
  /// Async mode: whether the calling thread runs the client's executor (as far as Asio can
  /// tell: io_context, thread_pool and strands of them).
  bool runs_on_this_thread() const;

 private:
  /// run_blocking() of the blocking mode (the private io_context, on this thread), and of the
  /// async mode (the executor's threads; this one waits).
  bool run_here(blocking_result& result, callable_ref start, std::chrono::milliseconds timeout,
                callable_ref on_timeout);
  bool run_on_executor(blocking_result& result, const std::function<void()>& start,
                       std::chrono::milliseconds timeout, const std::function<void()>& on_timeout);

  std::unique_ptr<boost::asio::io_context> own_ioc_;  // destroyed last: its handlers own conn_
  boost::asio::any_io_executor inner_ex_;  // async mode: the executor given (ex_ is a strand of it)
  boost::asio::any_io_executor ex_;
  client_options options_;
  std::shared_ptr<connection> conn_;
  std::mutex blocking_mutex_;
  std::atomic<std::uint64_t> last_handle_{0};
  std::mutex contention_mutex_;
  std::unordered_map<std::string, unsigned> lock_first_;  // namespace -> calls left
};

/// Runs one blocking request; returns the raw result, or sets `ec` and `message` (throws
/// nothing of its own: the error_code forms of the blocking calls rest on it). `on`, if set,
/// gets the number of the connection the reply came on (connection::connections()). Defined
/// in client.cpp.
json call_raw(const std::shared_ptr<client_impl>& c, protocol::packed_request request,
              error_code& ec, std::string& message, std::uint64_t* on = nullptr);

/// Requests whose result the caller reads itself, with the protocol layer's readers: the
/// result's MessagePack as it came (empty if the reply has none), one copy of its bytes and no
/// json tree (a swarm's wait reply holds thousands of outcomes). Blocking, as call_raw(); and
/// async, completing `h` on the client's executor. Defined in client.cpp.
std::string call_packed(const std::shared_ptr<client_impl>& c, request r, error_code& ec,
                        std::string& message);
void start_packed_request(const std::shared_ptr<client_impl>& c, request r,
                          boost::asio::any_completion_handler<void(error_code, std::string)> h,
                          diagnostics_ptr diagnostics);

}  // namespace zproc::detail
