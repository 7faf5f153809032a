// zproc/server.hpp - the state server: namespaces of JSON state, served over Unix and TCP sockets.
#pragma once

#include <zproc/access.hpp>
#include <zproc/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>

#include <chrono>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace zproc {

struct server_config {
  /// Addresses to listen on: `ipc:///path/to.sock` (created with mode 0600; a stale socket file
  /// nobody listens on is replaced), `tcp://host:port` (port 0 picks a free port) and/or
  /// `tls://host:port` (TCP with TLS: `tls`). A TCP or TLS address needs `access.tokens` (or
  /// `access.insecure`).
  std::vector<std::string> listen;
  /// Who may connect (docs/security.md).
  struct access_config {
    /// The tokens a client may authenticate with, each with its role. A client that offers a
    /// token must know one of them; over TCP every client must (with tokens here). Over a Unix
    /// socket a client without a token is let in by its user (below), as admin.
    std::vector<access_token> tokens;
    /// Listen on TCP without tokens: anyone who reaches the port may do anything. For tests on
    /// loopback only; without it, start() refuses a TCP address when `tokens` is empty.
    bool insecure = false;
    /// Users (uids) and groups (gids) whose processes may connect to a Unix socket (checked
    /// with SO_PEERCRED), besides the server's own user and root. The socket file is 0600: a
    /// socket shared on purpose (chmod, a passed descriptor) still lets only these in.
    std::vector<std::uint32_t> allowed_uids;
    std::vector<std::uint32_t> allowed_gids;
  } access;
  /// TLS of `tls://` listeners (docs/security.md): the server's certificate chain and its key
  /// (PEM files, both needed for a tls:// address). With `ca_file`, every TLS client must show a
  /// certificate signed by one of those CAs.
  struct tls_config {
    std::string cert_file;
    std::string key_file;
    std::string ca_file;
  } tls;
  /// Threads that serve connections (docs/architecture.md, "Threads"). 1: everything runs on
  /// the strand of the executor the server was given (the embedded mode: the server creates
  /// no thread). N > 1: the server starts N threads of its own and each connection is read,
  /// decoded, answered and written on one of them; listeners and timers stay on the given
  /// executor. The namespaces are split over N shards (by a hash of their name), each with its
  /// own lock: requests on one namespace take effect one at a time, in one order, so every
  /// guarantee of a namespace (atomic ops, gap-free revisions, watchers that see every update
  /// in order) is the same, and requests on namespaces of different shards run at once. A
  /// swarm's queue belongs to a shard by its name too. The parked limit counts per shard. `zproc server --threads N` (default there: the number of
  /// cores). 0 means 1.
  std::size_t threads = 1;
  /// Largest frame (request or reply) in bytes. A bigger request closes that connection with
  /// server_errc::frame_too_large; a bigger reply is replaced by server_errc::reply_too_large.
  std::size_t max_frame_size = 8u * 1024u * 1024u;
  /// Replies buffered for one connection that does not read them; past this the server stops
  /// reading that connection's requests and holds its watchers back (they miss nothing: they
  /// catch up from the history) until half of it is sent (backpressure, bounded memory).
  std::size_t max_pending_output = 64u * 1024u * 1024u;
  /// History kept per namespace (for watchers, history() and at()): the newest records up to
  /// both limits, and all namespaces together up to `max_total_bytes` (the oldest records of
  /// the server go first; on several threads, the oldest of the shards over their share of
  /// it, as they write and within 100 ms). Bytes are the memory the records hold (their keys and values, before
  /// and after). Reading or watching from an older revision fails with server_errc::compacted.
  struct history_limits {
    std::size_t max_records = 100'000;
    std::size_t max_bytes = 64u * 1024u * 1024u;
    std::size_t max_total_bytes = 512u * 1024u * 1024u;
  } history;
  /// Namespaces a server holds at most; a write that would create one more fails with
  /// server_errc::limit_reached (reads of an unknown namespace create nothing).
  std::size_t max_namespaces = 10'000;

  /// Durability (opt-in): with a data directory, every update is appended to a log there
  /// before it is acknowledged, and a snapshot is written from time to time so that the log
  /// stays short. On start, state, revisions and kept history come back; a torn last record
  /// (a crash in the middle of a write) is dropped, with a line on stderr. Any other damage (a
  /// bad record with valid ones after it, revisions that go back or skip, a snapshot failing
  /// its checksum) makes start() throw zproc::error (std::errc::illegal_byte_sequence) naming
  /// the file, the byte offset and the last good revision; nothing on disk is changed.
  std::string data_dir;
  /// Start from a damaged data directory anyway (`zproc server --repair`): keep the log up to
  /// the damage and move the rest to DIR/log.corrupt-<time>; a damaged snapshot (and the log
  /// that continues it) goes to DIR/snapshot.corrupt-<time> (DIR/log.corrupt-<time>) and the
  /// state starts empty. Each namespace continues from its last good revision + 1, so revisions
  /// after it that clients saw before the damage are given again. Says what it did on stderr.
  bool repair = false;
  enum class fsync_policy {
    always,    ///< fsync before each acknowledgement: survives power loss (no reply leaves
               ///< before a sync covers what it shows; writers share each sync)
    interval,  ///< fsync every `fsync_interval`: a crash of the machine loses at most that
    never,     ///< leave it to the OS: survives a crash of the server, not of the machine
  };
  fsync_policy fsync = fsync_policy::interval;
  std::chrono::milliseconds fsync_interval{100};
  /// Write a snapshot (and restart the log) after this many logged updates. The snapshot is
  /// written a piece at a time between requests (and fsynced on a thread of its own): clients
  /// are served meanwhile, and the server's memory does not grow by a copy of the state. A
  /// stop() while one is written finishes it.
  std::size_t snapshot_every = 100'000;

  /// Process records (`zproc ps`, list_processes()): the server keeps every running process
  /// registered with it and at most this many that finished, dropping those that finished
  /// first. Records live in memory only (not in the data directory) and start again with ids
  /// at 1 when the server restarts.
  std::size_t max_process_records = 10'000;

  /// What one client can make the server hold (docs/security.md). Past a limit the request
  /// fails with server_errc::limit_reached and a message that names the limit (a connection
  /// past max_connections gets it as the answer to its hello, and is closed); nothing is
  /// changed and the server goes on serving everyone else. Zero: no limit.
  struct limits_config {
    /// Connections open at once.
    std::size_t max_connections = 10'000;
    /// Requests the server holds unanswered for one connection: watches, lock waits, task
    /// takes and task waits.
    std::size_t max_parked_per_connection = 100'000;
    /// Tasks the server holds (queued, running, finished and not yet collected), all swarms
    /// together.
    std::size_t max_tasks = 1'000'000;
    /// Running process records one connection registered.
    std::size_t max_running_records_per_connection = 10'000;
    /// The longest a connection holds a namespace's atomic lock by taking it again (each take
    /// renews a 5 s lease): past it, the lock is released and that take fails.
    std::chrono::milliseconds max_lock_hold{60'000};
  } limits;

  /// True when a listen address is TCP or TLS, `access.tokens` is empty and `access.insecure`
  /// is not set: start() refuses such a configuration (give it a token, e.g. generate_token()).
  bool needs_token() const;
};

namespace server_detail {
class server_impl;
}

/// The state server, as an I/O object on an executor you give it (embedding in an Asio
/// application). All its work runs on a strand of that executor; it creates no thread unless
/// server_config::threads asks for more than one.
///
///   asio::io_context ioc;
///   zproc::server srv(ioc.get_executor(), {.listen = {"ipc:///tmp/app.sock"}});
///   srv.start();           // binds now; throws zproc::error if an address is unusable
///   ioc.run();             // serves until srv.stop()
class server {
 public:
  using executor_type = boost::asio::any_io_executor;

  server(executor_type ex, server_config config);
  /// On the executor of `context` (an io_context, a thread_pool).
  template <class ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  server(ExecutionContext& context, server_config config)
      : server(executor_type(context.get_executor()), std::move(config)) {}
  ~server();  ///< stops (closes listeners and connections; joins the threads of `threads`)
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Recovers the data directory (if any), binds every address of the config and starts
  /// accepting. Throws zproc::error (with the address in the message) if one cannot be bound,
  /// or if the data directory is damaged (see `server_config::data_dir`); nothing stays bound
  /// then.
  void start();

  /// The addresses really bound, in config order (a tcp port 0 replaced by the chosen port).
  std::vector<std::string> addresses() const;

  /// Stops accepting and closes every connection (their pending requests fail with
  /// client_errc::connection_closed on the client side). Thread-safe; idempotent.
  void stop();

  executor_type get_executor() const noexcept;

 private:
  friend class server_thread;  // joins the threads of server_config::threads at its stop()
  std::shared_ptr<server_detail::server_impl> impl_;
};

/// A server on its own thread with its own io_context: the "embedded server" of a program.
///
///   zproc::server_thread srv({.listen = {"tcp://127.0.0.1:0"}});
///   zproc::client c;  c.connect(srv.address());
class server_thread {
 public:
  /// Starts the server; throws zproc::error if an address cannot be bound or the data
  /// directory is damaged (as server::start()). Empty `listen`: a Unix socket in a private
  /// directory (0700, by mkdtemp, in $XDG_RUNTIME_DIR or /tmp; removed at stop; see guide.md).
  explicit server_thread(server_config config = {});
  ~server_thread();  ///< stop() and join
  server_thread(const server_thread&) = delete;
  server_thread& operator=(const server_thread&) = delete;

  /// The first bound address (what clients connect to).
  std::string address() const;
  std::vector<std::string> addresses() const;
  /// Stops the server and joins its thread. Idempotent.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace zproc
