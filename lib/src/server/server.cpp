#include "server/session.hpp"

#include "keepalive.hpp"
#include "server/engine.hpp"
#include "server/group_commit.hpp"
#include "server/hub.hpp"
#include "server/io_threads.hpp"
#include "server/runtime_dir.hpp"

#include <zproc/log.hpp>
#include <zproc/address.hpp>
#include <zproc/server.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

namespace zproc {

bool server_config::needs_token() const {
  if (!access.tokens.empty() || access.insecure) return false;
  return std::any_of(listen.begin(), listen.end(),
                     [](const std::string& a) { return address::parse(a).is_tcp(); });
}
namespace server_detail {

namespace asio = boost::asio;
using generic_protocol = asio::generic::stream_protocol;

namespace {

[[noreturn]] void throw_bind_error(const address& a, std::string what) {
  throw zproc::error(make_error_code(std::errc::address_not_available),
                     "cannot listen at " + a.to_string() + ": " + what);
}

/// A Unix socket path is free if nothing is there, or if a socket is there that nobody listens
/// on (left over by a server that crashed): that one is removed.
void clear_stale_socket(const address& a) {
  struct stat st {};
  if (::lstat(a.path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) throw_bind_error(a, "the path exists and is not a socket");
  if (st.st_uid != ::geteuid())  // never another user's: not removed, not connected to
    throw_bind_error(a, "the path belongs to another user (uid " + std::to_string(st.st_uid) + ")");
  asio::io_context probe_ctx;
  asio::local::stream_protocol::socket probe(probe_ctx);
  error_code ec;
  probe.connect(asio::local::stream_protocol::endpoint(a.path), ec);
  if (!ec) throw_bind_error(a, "another server is listening there");
  ::unlink(a.path.c_str());
}


/// 16 random hex digits: the identity of a server in memory (a new one at each start).
std::string random_server_id() {
  std::random_device rd;
  const std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
                          static_cast<std::uint64_t>(
                              std::chrono::steady_clock::now().time_since_epoch().count());
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(v));
  return text;
}

/// The identity of a data directory: DIR/server-id, written (fsynced) with `fresh` at the first
/// start. A clients' watcher resumes its cursor only on a server with the same identity. If the
/// file cannot be read it is written anew: watchers then start over, never resume wrongly.
/// `renew`: the data is not what was served before (a repair dropped part of it): a new
/// identity, so that no watcher resumes a cursor whose revisions now name other writes.
std::string durable_server_id(const std::string& dir, const std::string& fresh, bool renew) {
  const std::string path = dir + "/server-id";
  if (std::FILE* f = renew ? nullptr : std::fopen(path.c_str(), "r")) {
    char text[64] = {};
    const std::size_t n = std::fread(text, 1, sizeof text - 1, f);
    std::fclose(f);
    std::string id(text, n);
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    if (id.size() == 16 && id.find_first_not_of("0123456789abcdef") == std::string::npos) return id;
  }
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fresh;  // not durable: this start's identity
  const std::string line = fresh + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) return fresh;
  if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  return fresh;
}

}  // namespace

class server_impl : public std::enable_shared_from_this<server_impl> {
 public:
  server_impl(asio::any_io_executor ex, server_config config)
      : strand_(asio::make_strand(ex)),
        sync_timer_(strand_),
        lease_timer_(strand_),
        config_(std::move(config)) {
    // One shard per thread of config.threads (docs/architecture.md, "Threads and executors").
    const std::size_t shards = std::max<std::size_t>(config_.threads, 1);
    budget_.shards = shards;
    for (std::size_t i = 0; i < shards; ++i) {
      hub_.add_shard(std::make_unique<shard>(
          ::getpid(), config_.history, config_.max_process_records, config_.max_namespaces,
          shards > 1 ? &budget_ : nullptr, i));
      hub_.shards.back()->logic.set_limits(config_.limits);
    }
    if (!config_.data_dir.empty()) {
      // The history outlives the process, and its records carry client ids: a client id of a
      // restarted server must not repeat one of before (a resumed watcher hides the writes of
      // its own id). The start time in microseconds is past every id given before: a server
      // gives fewer than one id per microsecond.
      last_client_id_ = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count());
    }
    server_id_ = random_server_id();
  }

  void start() {
    if (started_) throw zproc::error(make_error_code(std::errc::operation_in_progress),
                                     "server::start() was called twice");
    if (!config_.data_dir.empty() && !recovered_) {
      auto log = std::make_unique<journal>(config_.data_dir, config_.fsync,
                                           config_.fsync_interval, config_.snapshot_every,
                                           config_.repair);
      recovery_report report;
      if (hub_.size() == 1) {
        hub_.log = log.get();
        report = hub_.shards[0]->logic.attach(std::move(log));  // begins snapshots itself
      } else {
        report = log->recover(hub_.stores());  // each namespace into its shard's store
        journal_ = std::move(log);
        hub_.log = journal_.get();
        for (auto& sh : hub_.shards) sh->logic.share_journal(*journal_);
      }
      recovered_ = true;
      if (config_.fsync == server_config::fsync_policy::always) {
        // Replies wait for the disk, the shards and threads do not (server/group_commit.hpp).
        hub_.log->defer_syncs();
        commits_ = std::make_unique<group_commit>(*hub_.log);
        hub_.commits = commits_.get();
      }
      server_id_ = durable_server_id(config_.data_dir, server_id_, report.repaired);
      // A torn last write dropped, a repair: the operator hears of it (stderr, like the rest
      // of the library's reports).
      print_notes(report.notes);
      // Called under a shard's lock by the write that began a snapshot (one shard) or outside
      // (several: hub::begin_wanted_snapshot): the rest runs on the strand.
      hub_.on_snapshot_begun = [weak = weak_from_this()] {
        if (auto self = weak.lock())
          asio::co_spawn(self->strand_, snapshot_loop(self), asio::detached);
      };
      for (auto& sh : hub_.shards)
        sh->logic.on_snapshot_begun(hub_.size() == 1 ? hub_.on_snapshot_begun : [this] {
          hub_.snapshot_wanted.store(true, std::memory_order_relaxed);
        });
    }
    std::vector<address> addresses;
    for (const auto& text : config_.listen) addresses.push_back(address::parse(text));
    check_access(addresses);
    make_tls_context(addresses);
    std::vector<std::unique_ptr<listener>> bound;
    for (const auto& a : addresses) bound.push_back(bind(a));
    started_ = true;
    if (config_.threads > 1) io_ = std::make_unique<io_threads>(config_.threads);
    if (!config_.data_dir.empty() && config_.fsync == server_config::fsync_policy::interval)
      asio::co_spawn(strand_, sync_loop(shared_from_this()), asio::detached);
    asio::co_spawn(strand_, lease_loop(shared_from_this()), asio::detached);
    listeners_ = std::move(bound);
    for (auto& l : listeners_) {
      addresses_.push_back(l->addr.to_string());
      asio::co_spawn(strand_, accept_loop(shared_from_this(), l.get()), asio::detached);
    }
  }

  void stop() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->stop_now(); });
  }

  /// After stop(), from outside the server's threads: closes the connections served on the
  /// threads of config.threads and joins those (their work left after 5 s is dropped).
  void shutdown_threads() {
    // No sync's word is posted to a connection any more: their executors end below (or, on
    // one thread, are the application's, which may end after this).
    if (commits_) commits_->stop();
    if (!io_) return;
    io_->close();  // no new connection goes there
    {
      std::unique_lock lock(hub_.sessions_mutex);
      close_sessions_locked();
      // Closing or not, nothing is handed to them any more: their io_contexts end below.
      hub_.sessions.clear();
    }
    io_->shutdown();
  }

  std::vector<std::string> addresses() const { return addresses_; }
  asio::any_io_executor get_executor() const { return strand_; }

 private:
  struct listener {
    asio::basic_socket_acceptor<generic_protocol> acceptor;
    address addr;
  };

  /// A TCP port open to anyone is refused, unless asked for; tokens are checked here, not at
  /// the first hello.
  void check_access(const std::vector<address>& addresses) const {
    const auto& access = config_.access;
    for (const auto& t : access.tokens)
      if (t.secret.size() < min_token_size)
        throw zproc::error(make_error_code(std::errc::invalid_argument),
                           "a token of server_config::access is shorter than " +
                               std::to_string(min_token_size) + " characters");
    if (!config_.needs_token()) return;
    for (const auto& a : addresses)
      if (a.is_tcp())
        throw zproc::error(make_error_code(std::errc::permission_denied),
                           "refusing to listen at " + a.to_string() +
                               " without a token: anyone who reaches the port could read and "
                               "write everything. Give the server a token (zproc server "
                               "--token-file PATH, server_config::access.tokens), or pass "
                               "--insecure (access.insecure) for tests on loopback");
  }

  /// The TLS context of tls:// listeners: the certificate and key, and (with a CA file) the
  /// clients' certificates required. Bad files throw here, before anything is bound.
  void make_tls_context(const std::vector<address>& addresses) {
    if (std::none_of(addresses.begin(), addresses.end(),
                     [](const address& a) { return a.kind == address::transport::tls; }))
      return;
    const auto& t = config_.tls;
    if (t.cert_file.empty() || t.key_file.empty())
      throw zproc::error(make_error_code(std::errc::invalid_argument),
                         "a tls:// address needs a certificate and its key (zproc server "
                         "--tls-cert FILE --tls-key FILE, server_config::tls)");
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1);
    const auto load = [](const std::string& what, const std::string& file, auto&& f) {
      error_code ec;
      f(ec);
      if (ec)
        throw zproc::error(make_error_code(std::errc::invalid_argument),
                           "cannot use the TLS " + what + " " + file + ": " + ec.message());
    };
    load("certificate", t.cert_file,
         [&](error_code& ec) { ctx->use_certificate_chain_file(t.cert_file, ec); });
    load("key", t.key_file, [&](error_code& ec) {
      ctx->use_private_key_file(t.key_file, asio::ssl::context::pem, ec);
    });
    if (!t.ca_file.empty()) {
      load("CA file", t.ca_file, [&](error_code& ec) { ctx->load_verify_file(t.ca_file, ec); });
      ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    }
    tls_ = std::move(ctx);
  }

  std::unique_ptr<listener> bind(address a) {
    auto l = std::make_unique<listener>(listener{asio::basic_socket_acceptor<generic_protocol>(strand_), a});
    error_code ec;
    generic_protocol::endpoint ep;
    if (a.kind == address::transport::ipc) {
      clear_stale_socket(a);
      if (a.path.size() >= sizeof(sockaddr_un{}.sun_path))
        throw_bind_error(a, "the socket path is longer than the system's limit of " +
                                std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
      ep = generic_protocol::endpoint(asio::local::stream_protocol::endpoint(a.path));
    } else {
      asio::io_context resolve_ctx;
      asio::ip::tcp::resolver resolver(resolve_ctx);
      auto results = resolver.resolve(a.host, std::to_string(a.port),
                                      asio::ip::tcp::resolver::passive, ec);
      if (ec || results.empty()) throw_bind_error(a, "cannot resolve host: " + ec.message());
      ep = generic_protocol::endpoint(results.begin()->endpoint());
    }
    auto& acc = l->acceptor;
    if (acc.open(ep.protocol(), ec); ec) throw_bind_error(a, ec.message());
    if (a.is_tcp()) acc.set_option(asio::socket_base::reuse_address(true));
    if (acc.bind(ep, ec); ec) throw_bind_error(a, ec.message());
    if (a.kind == address::transport::ipc) {
      // Only this user may connect. Nobody can connect between bind() and listen().
      if (::chmod(a.path.c_str(), S_IRUSR | S_IWUSR) != 0)
        throw_bind_error(a, std::string("chmod: ") + std::strerror(errno));
      unlink_on_stop_.push_back(a.path);
    } else {
      // Report the port the system chose for port 0.
      const auto local = acc.local_endpoint();
      asio::ip::tcp::endpoint tcp_ep;
      std::memcpy(tcp_ep.data(), local.data(), local.size());
      l->addr.port = tcp_ep.port();
    }
    if (acc.listen(asio::socket_base::max_listen_connections, ec); ec)
      throw_bind_error(a, ec.message());
    return l;
  }

  /// The interval fsync policy: flush the log every fsync_interval while running.
  static asio::awaitable<void> sync_loop(std::shared_ptr<server_impl> self) {
    auto& timer = self->sync_timer_;  // stop() cancels it
    while (!self->stopped_) {
      timer.expires_after(self->config_.fsync_interval);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (self->stopped_) break;  // stop() made the last sync itself
      self->hub_.log->sync();     // (the journal has a lock of its own)
      print_notes(self->hub_.log->take_notes());
    }
  }

  /// A snapshot in progress, written one bounded piece per turn: between two pieces, the
  /// requests that came meanwhile run (on one thread a post() queues behind them on the
  /// strand; on several, the connections' threads wait for the hub's lock, which a mutex does
  /// not hand over: a 50 us pause lets them in). While its thread fsyncs and renames, polled
  /// every 2 ms.
  static asio::awaitable<void> snapshot_loop(std::shared_ptr<server_impl> self) {
    asio::steady_timer poll(self->strand_);
    // co_spawn starts it inline (dispatch) from the write that began the snapshot, under its
    // shard's lock: this post lets that write's reply go out first, and the lock be released
    // before the first step takes it (it is not recursive).
    co_await asio::post(self->strand_, asio::use_awaitable);
    journal& log = *self->hub_.log;
    while (!self->stopped_) {  // stop_now() finishes it
      auto progress = journal::snapshot_progress::syncing;  // on failure: pause, retry
      std::vector<std::string> notes;
      try {
        // A piece reads the namespaces of one shard, under that shard's lock only: the
        // others go on meanwhile. (Its end and its sync read none.)
        const store_set& stores = self->hub_.stores();
        if (const auto at = log.snapshot_shard(stores)) {
          std::lock_guard held(self->hub_.shards[*at]->mutex);
          progress = log.snapshot_step(stores, *at);
        } else {  // (a snapshot begun meanwhile waits for the next turn)
          progress = log.snapshot_step(stores, journal::no_shard);
        }
        notes = log.take_notes();
      } catch (const std::exception&) {
        // Out of memory for this step: it is tried again after the pause below.
      }
      print_notes(notes);  // (outside the lock: a log handler may call into the server)
      if (progress == journal::snapshot_progress::idle) co_return;
      if (progress == journal::snapshot_progress::more && !self->io_) {
        co_await asio::post(self->strand_, asio::use_awaitable);
      } else if (progress == journal::snapshot_progress::more) {
        poll.expires_after(std::chrono::microseconds(50));
        co_await poll.async_wait(asio::as_tuple(asio::use_awaitable));
      } else {
        poll.expires_after(std::chrono::milliseconds(2));
        co_await poll.async_wait(asio::as_tuple(asio::use_awaitable));
      }
    }
  }

  /// What recovery or a snapshot wants an operator to hear of: the log (zproc/log.hpp).
  static void print_notes(const std::vector<std::string>& notes) {
    for (const auto& note : notes) detail::log(log_level::warning, "server", "server: " + note);
  }

  /// Atomic locks whose holder hangs are taken back after their lease.
  static asio::awaitable<void> lease_loop(std::shared_ptr<server_impl> self) {
    auto& timer = self->lease_timer_;  // stop() cancels it: shutting down does not wait a tick
    std::vector<delivery> grants;
    while (!self->stopped_) {
      timer.expires_after(std::chrono::milliseconds(100));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (self->stopped_) break;
      for (auto& sh : self->hub_.shards) {
        grants.clear();
        std::lock_guard lock(sh->mutex);
        try {
          sh->logic.tick(grants);
        } catch (const std::exception&) {
          // Out of memory: what it did not finish, the next tick does.
        }
        self->hub_.mark_durable(grants);  // (a lock granted with a read of the namespace)
        self->hub_.deliver_locked(grants, sh->logic);
      }
    }
  }

  static asio::awaitable<void> accept_loop(std::shared_ptr<server_impl> self, listener* l) {
    const bool tcp = l->addr.is_tcp();
    const bool tls = l->addr.kind == address::transport::tls;
    asio::steady_timer backoff(self->strand_);
    while (!self->stopped_) {
      auto [ec, socket] = co_await l->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (self->stopped_) co_return;
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        // Out of file descriptors and the like: back off instead of spinning.
        detail::log(log_level::error, "server",
                    "server: accepting on " + l->addr.to_string() + " failed: " + ec.message());
        backoff.expires_after(std::chrono::milliseconds(50));
        co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
        continue;
      }
      if (tcp) {
        socket.set_option(asio::ip::tcp::no_delay(true), ec);
        detail::enable_keepalive(socket.native_handle());
      }
      try {
        auto session_tls = tls ? self->tls_ : nullptr;
        if (!self->io_) {
          self->add_session(std::move(socket), std::move(session_tls));
          continue;
        }
        // Served on one of the server's threads: the descriptor moves to its io_context.
        session::socket_type accepted = std::move(socket);  // (a lambda cannot capture a binding)
        const auto protocol = accepted.local_endpoint().protocol();
        const bool taken = self->io_->on_next([&](asio::any_io_executor ex) {
          session::socket_type moved(ex);
          const auto fd = accepted.release();
          try {
            moved.assign(protocol, fd);
          } catch (...) {
            ::close(fd);  // (nobody owns it otherwise)
            throw;
          }
          self->add_session(std::move(moved), std::move(session_tls));
        });
        if (!taken) co_return;  // shutting down
      } catch (const std::exception& e) {
        // No memory for one more connection: it is closed (the client sees that), and the
        // server goes on accepting.
        detail::log(log_level::error, "server",
                    std::string("server: a new connection could not be served: ") + e.what());
      }
    }
  }

  void add_session(session::socket_type socket, std::shared_ptr<asio::ssl::context> tls) {
    const std::uint64_t id = ++last_client_id_;
    session::environment env{hub_, config_, ::getpid(), server_id_, shared_from_this()};
    auto s = std::make_shared<session>(std::move(socket), std::move(env), id, std::move(tls));
    {
      std::unique_lock lock(hub_.sessions_mutex);
      const std::size_t open = hub_.sessions.size();
      if (const auto max = config_.limits.max_connections; max > 0 && open >= max)
        s->refuse_hello(server_errc::limit_reached,
                        "the server has " + std::to_string(open) +
                            " connections open, its limit (server_config::limits.max_connections, "
                            "zproc server --max-connections)");
      hub_.sessions.emplace(id, s);
    }
    s->start();
  }

  /// Under the hub's sessions_mutex: every connection closes, on its own executor.
  void close_sessions_locked() {
    for (auto& [id, weak] : hub_.sessions)
      if (auto s = weak.lock()) asio::post(s->get_executor(), [s] { s->close(); });
  }

  void stop_now() {
    if (stopped_) return;
    stopped_ = true;
    for (auto& l : listeners_) {
      error_code ignored;
      l->acceptor.close(ignored);
    }
    sync_timer_.cancel();
    lease_timer_.cancel();
    if (io_) io_->close();
    std::vector<std::string> notes;
    {
      hub::all_locked held(hub_);
      hub_.stopped = true;  // a request read but not yet handled is not any more
      {
        std::shared_lock lock(hub_.sessions_mutex);
        close_sessions_locked();
      }
      for (const auto& path : unlink_on_stop_) ::unlink(path.c_str());
      if (hub_.log) {
        // A snapshot in progress is finished (nobody is served any more, nobody waits).
        hub_.log->finish_snapshot(hub_.stores());
        hub_.log->sync();  // (before the notes: a last fsync that fails is one of them)
        notes = hub_.log->take_notes();
      }
    }
    print_notes(notes);
  }

  asio::any_io_executor strand_;
  asio::steady_timer sync_timer_;   // the interval fsync policy's
  asio::steady_timer lease_timer_;  // takes back the locks of hung holders
  server_config config_;
  shared_budget budget_;  // what the shards' stores count together
  hub hub_;              // the shards, and the sessions
  std::unique_ptr<journal> journal_;  // several shards: the one they share (one: the engine's)
  /// fsync always: the journal's syncs, off every shard's lock and thread (destroyed before
  /// the journal it syncs).
  std::unique_ptr<group_commit> commits_;
  std::unique_ptr<io_threads> io_;  // config_.threads > 1: the threads connections run on
  bool started_ = false;
  bool recovered_ = false;
  bool stopped_ = false;
  std::vector<std::unique_ptr<listener>> listeners_;
  std::vector<std::string> addresses_;
  std::vector<std::string> unlink_on_stop_;
  std::uint64_t last_client_id_ = 0;
  std::string server_id_;  // see protocol::hello_reply::server_id
  std::shared_ptr<asio::ssl::context> tls_;  // tls:// listeners' (make_tls_context)
};

}  // namespace server_detail

// --- server -----------------------------------------------------------------------------------

server::server(executor_type ex, server_config config)
    : impl_(std::make_shared<server_detail::server_impl>(std::move(ex), std::move(config))) {}
server::~server() {
  impl_->stop();
  impl_->shutdown_threads();
}
void server::start() { impl_->start(); }
std::vector<std::string> server::addresses() const { return impl_->addresses(); }
void server::stop() { impl_->stop(); }
server::executor_type server::get_executor() const noexcept { return impl_->get_executor(); }

// --- server_thread ----------------------------------------------------------------------------

struct server_thread::impl {
  std::unique_ptr<server_detail::runtime_dir> dir;  // the socket's, if none was named (last)
  boost::asio::io_context ioc{1};
  server srv;
  std::thread thread;
  std::promise<void> finished;
  bool stopped = false;

  impl(server_config config, std::unique_ptr<server_detail::runtime_dir> d)
      : dir(std::move(d)), srv(ioc.get_executor(), with_address(std::move(config), dir.get())) {}

  static server_config with_address(server_config config, const server_detail::runtime_dir* d) {
    if (d) config.listen.push_back(d->socket_address());
    return config;
  }
};

server_thread::server_thread(server_config config) {
  std::unique_ptr<server_detail::runtime_dir> dir;
  if (config.listen.empty()) dir = std::make_unique<server_detail::runtime_dir>();
  impl_ = std::make_unique<impl>(std::move(config), std::move(dir));
  impl_->srv.start();
  impl_->thread = std::thread([i = impl_.get()] {
    i->ioc.run();
    i->finished.set_value();
  });
}

server_thread::~server_thread() { stop(); }

std::string server_thread::address() const { return impl_->srv.addresses().front(); }
std::vector<std::string> server_thread::addresses() const { return impl_->srv.addresses(); }

void server_thread::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->srv.stop();
  // Closing everything ends the io_context's work; if a peer holds it up, stop it anyway.
  if (impl_->finished.get_future().wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    impl_->ioc.stop();
  impl_->thread.join();
  impl_->srv.impl_->shutdown_threads();
}

}  // namespace zproc
