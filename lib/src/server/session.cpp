#include "server/session.hpp"

#include "server/group_commit.hpp"

#include "protocol/message.hpp"
#include "protocol/request_reader.hpp"
#include "protocol/store_request.hpp"
#include "protocol/target_request.hpp"
#include "protocol/task_request.hpp"
#include "protocol/watch_request.hpp"

#include <zproc/log.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

namespace zproc::server_detail {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using protocol::field::id;

namespace {
/// The server's log lines about one connection (zproc/log.hpp, component "server").
void note(log_level level, std::uint64_t client, const std::string& what) {
  if (detail::log_enabled(level))
    detail::log(level, "server", "server: client " + std::to_string(client) + " " + what);
}
}  // namespace

namespace {
/// The peer of a Unix socket (SO_PEERCRED); nullopt for TCP.
std::optional<peer_credentials> peer_of(session::socket_type& socket) {
  error_code ec;
  const auto local = socket.local_endpoint(ec);
  if (ec || local.protocol().family() != AF_UNIX) return std::nullopt;
  ucred cred{};
  socklen_t size = sizeof cred;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0)
    return peer_credentials{~0u, ~0u};  // unknown: only an explicitly allowed uid gets in
  return peer_credentials{static_cast<std::uint32_t>(cred.uid),
                          static_cast<std::uint32_t>(cred.gid)};
}
}  // namespace

namespace {
constexpr auto hello_deadline = 10s;
constexpr auto final_flush_deadline = 2s;
// A connection reads into a buffer of its own, which it holds while it waits: small while its
// client sends little (what an idle connection costs), 64 KiB once a read fills it (a pipeline),
// back to small once a read comes back short with nothing left over.
constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::size_t small_read = 2 * 1024;
constexpr std::size_t shrink_above = 1024 * 1024;  // idle buffers larger than this are freed
// Requests of one read handled before the replies so far are sent (once per read, if no write
// is on its way): the client works on the first replies while the server does the rest of a
// deep pipeline, instead of both taking turns on whole batches (docs/performance.md, issue 15).
constexpr int early_reply_after = 32;
/// What an inbox counts for a reply that is not encoded yet (a lock grant, a task): small.
constexpr std::size_t approximate_reply_size = 64;
/// Thrown by with_engine() once the server stopped: the connection closes without a word.
struct server_stopped : std::exception {
  const char* what() const noexcept override { return "the server stopped"; }
};
}  // namespace

session::session(socket_type socket, environment env, std::uint64_t client_id,
                 std::shared_ptr<tls_context> tls)
    : link_(std::move(socket)),
      tls_(std::move(tls)),
      env_(std::move(env)),
      ctx_{client_id},
      decoder_(env_.config.max_frame_size),
      handshake_(env_.config.access, static_cast<std::uint32_t>(::geteuid()),
                 peer_of(link_.socket())),
      hello_timer_(link_.get_executor()),
      drain_timer_(link_.get_executor()) {}

void session::start() {
  // (The coroutine holds the session: on another thread's executor it starts later.)
  asio::co_spawn(link_.get_executor(), run(shared_from_this()), asio::detached);
}

void session::close() {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  link_.socket().shutdown(socket_type::shutdown_both, ignored);
  link_.socket().close(ignored);
  hello_timer_.cancel();
  drain_timer_.cancel();
  if (greeted_) note(log_level::debug, ctx_.client_id, "disconnected");
  hub& shared = env_.shared;
  {
    std::unique_lock lock(shared.sessions_mutex);
    shared.sessions.erase(ctx_.client_id);  // nothing is delivered to it any more
  }
  {
    std::lock_guard lock(inbox_mutex_);
    inbox_.clear();
  }
  std::vector<delivery> released;  // lock grants to other clients, queued tasks
  for (auto& sh : shared.shards) {
    std::lock_guard lock(sh->mutex);
    released.clear();
    try {
      sh->logic.client_gone(ctx_.client_id, released);
    } catch (...) {
      sh->logic.client_gone_later(ctx_.client_id);  // out of memory: the next tick finishes it
    }
    shared.mark_durable(released);
    shared.deliver_locked(released, sh->logic, ctx_.client_id);
  }
}

asio::awaitable<void> session::run(std::shared_ptr<session> self) {
  try {
    co_await self->serve();
  } catch (const server_stopped&) {
    // The server stopped while this connection's requests were read: it closes.
  } catch (const std::exception& e) {
    // Out of memory (or a bug) while serving this connection: it closes, and everything it
    // held (watches, locks, tasks, process records) is released; other clients go on.
    note(log_level::error, ctx_.client_id, std::string("closed after an error: ") + e.what());
  }
  close();
}

asio::awaitable<void> session::serve() {
  // A peer that connects and never says hello does not hold a connection forever.
  hello_timer_.expires_after(hello_deadline);
  hello_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec && !self->greeted_) self->close();
  });

  if (tls_) {
    auto [ec] = co_await link_.start_tls(*tls_).async_handshake(
        asio::ssl::stream_base::server, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      note(log_level::warning, ctx_.client_id, "TLS handshake failed: " + ec.message());
      co_return;
    }
  }
  link_.enable_write_now();  // replies go at once where the socket takes them (flush())
  bool graceful_close = false;
  const std::size_t limit = env_.config.max_pending_output;
  while (!closed_) {
    // Reads are capped so that one read cannot queue more than a bounded amount of work.
    auto space = decoder_.prepare(read_size_);
    const std::size_t asked = std::min(space.size(), read_chunk);
    auto [ec, n] = co_await link_.async_read_some(asio::buffer(space.data(), asked),
                                                  asio::as_tuple(asio::use_awaitable));
    if (ec || closed_) break;  // (a read that completed before a close() still has data)
    decoder_.commit(n);
    if (n == asked) {
      read_size_ = read_chunk;  // more is coming: read in big pieces
    } else if (n < small_read && read_size_ > small_read) {
      read_size_ = small_read;  // the burst is over: the big buffer goes once it is empty
    }

    std::string_view payload;
    for (int handled = 0; !closed_; ++handled) {
      if (handled == early_reply_after) flush();
      auto st = decoder_.next(payload);
      if (st == protocol::frame_decoder::status::need_more) break;
      if (st == protocol::frame_decoder::status::too_large) {
        queue(protocol::make_error_reply(
            0, server_errc::frame_too_large,
            "a frame of " + std::to_string(decoder_.announced_size()) +
                " bytes exceeds the server's maximum of " +
                std::to_string(decoder_.max_frame_size()) + " bytes; closing the connection"));
        graceful_close = true;
        break;
      }
      if (!handle_frame(payload)) {
        graceful_close = true;
        break;
      }
      // Backpressure, per request: a client that does not read its replies stops being
      // served until they drain (the decoder is not touched meanwhile: `payload` stays valid).
      if (pending_output() > limit) {
        flush();
        co_await drain_to(limit / 2, asio::steady_timer::time_point::max());
        if (closed_) break;
      }
    }
    flush();
    if (graceful_close) break;
    decoder_.shrink_if_idle(read_size_);
  }
  if (graceful_close && !closed_)
    co_await drain_to(0, asio::steady_timer::clock_type::now() + final_flush_deadline);
}

bool session::handle_frame(std::string_view payload) {
  if (greeted_ && !detail::log_enabled(log_level::debug) && handle_flat(payload)) return true;
  nlohmann::json msg = protocol::decode_payload(payload);
  if (msg.is_discarded()) {
    queue(protocol::make_error_reply(0, server_errc::malformed_frame,
                                     "a frame's payload is not valid MessagePack"));
    note(log_level::warning, ctx_.client_id, "sent a frame that is not MessagePack");
    return greeted_;  // before the hello, garbage means this is not a zproc client
  }
  if (!greeted_) {
    // Nothing before the handshake is over reaches the engine.
    queue(handshake_.on_message(msg, {env_.server_pid, ctx_.client_id,
                                      env_.config.max_frame_size, env_.server_id}));
    switch (handshake_.current()) {
      case handshake::state::refused:
        note(log_level::warning, ctx_.client_id, "refused at hello: " + handshake_.refusal());
        return false;
      case handshake::state::accepted:
        note(log_level::debug, ctx_.client_id,
             "connected (" + handshake_.role().to_string() + ")");
        greeted_ = true;
        hello_timer_.cancel();
        client_max_frame_ = handshake_.client_max_frame();
        ctx_.role = &handshake_.role();
        return true;
      default: return true;  // a challenge: the proof comes next
    }
  }

  std::uint64_t request_id = 0;
  if (msg.is_object()) {
    auto it = msg.find(id);
    // Any positive integer (MessagePack may encode it as signed or unsigned).
    if (it != msg.end() && it->is_number_integer() && *it > 0) request_id = it->get<std::uint64_t>();
  }
  if (request_id == 0) {
    queue(protocol::make_error_reply(0, server_errc::bad_request,
                                     "a request needs a positive integer id (field 'i')"));
    note(log_level::warning, ctx_.client_id, "sent a request without an id");
    return true;
  }
  const auto code = protocol::op_of(msg);
  if (code && protocol::targets_request(*code) && env_.shared.size() > 1) {
    // Its target may be on any shard (a malformed one is refused by the shard route() picks).
    if (auto t = protocol::read_target_request(msg, *code)) {
      handle_target_op(*t, request_id);
      queue_mine();
      check_pressure();
      return true;
    }
  }
  const std::size_t where = env_.shared.route(msg, code);
  const std::size_t own = with_engine(where, [&](engine& logic, std::vector<delivery>& out) {
    logic.handle(msg, request_id, ctx_, out);
  });
  if (detail::log_enabled(log_level::debug)) log_refusals(msg, own);
  queue_mine();
  check_pressure();
  return true;
}

bool session::handle_flat(std::string_view payload) {
  // The hottest requests (a watcher asks again after each update, or grants a stream credit;
  // get, set, incr...; a swarm's submits, takes, outcomes and waits) read without a json tree. (With debug logging on,
  // everything takes the generic path, which logs refusals.)
  // The op is read once, and only its reader runs.
  const std::optional<protocol::op> code = protocol::peek_op(payload);
  if (!code) return false;
  if (*code == protocol::op::watch) {
    protocol::watch_request watch;
    if (!protocol::decode_watch_request(payload, watch)) return false;
    with_engine(env_.shared.shard_index(watch.ns),
                [&](engine& logic, std::vector<delivery>& out) { logic.handle(watch, ctx_, out); });
  } else if (protocol::flat_store_op(*code)) {
    protocol::store_request store;
    if (!protocol::decode_store_request(payload, store)) return false;
    with_engine(env_.shared.shard_index(store.ns),
                [&](engine& logic, std::vector<delivery>& out) { logic.handle(store, ctx_, out); });
  } else if (protocol::flat_task_op(*code)) {
    protocol::task_request task;
    if (!protocol::decode_task_request(payload, task)) return false;
    with_engine(env_.shared.route(task),
                [&](engine& logic, std::vector<delivery>& out) { logic.handle(task, ctx_, out); });
  } else if (protocol::targets_request(*code)) {
    std::uint64_t request_id = 0;
    protocol::target_request target;
    if (!protocol::decode_target_request(payload, request_id, target)) return false;
    handle_target_op(target, request_id);
  } else {
    return false;
  }
  queue_mine();
  check_pressure();
  return true;
}

template <class F>
std::size_t session::with_engine(std::size_t shard_index, F&& f) {
  hub& shared = env_.shared;
  const std::size_t own = with_engine_locked(*shared.shards[shard_index], std::forward<F>(f));
  // A write of several shards' server made a snapshot due: begun before its reply goes.
  if (shared.snapshot_wanted.load(std::memory_order_relaxed)) shared.begin_wanted_snapshot();
  return own;
}

template <class F>
std::size_t session::with_engine_locked(shard& sh, F&& f) {
  hub& shared = env_.shared;
  std::lock_guard lock(sh.mutex);
  if (shared.stopped.load(std::memory_order_relaxed)) throw server_stopped{};
  take_inbox();  // what this shard (and others) sent this client before this request first
  const std::size_t own = mine_.size();
  deliveries_.clear();
  f(sh.logic, deliveries_);
  // Durable before it is seen (fsync always): each reply made now waits for a sync of what
  // the journal holds now (this request's write, or another that this reply may show).
  shared.mark_durable(deliveries_);
  // A stream that stopped catching up at its burst goes on as the connection drains.
  if (!congested_ && sh.logic.held_back(ctx_.client_id)) congested_ = true;
  // Other clients first: if this client's own reply cannot be queued (no memory), this
  // connection closes, and theirs are delivered all the same.
  shared.deliver_locked(deliveries_, sh.logic, ctx_.client_id);
  for (auto& d : deliveries_)
    if (d.client_id == ctx_.client_id) mine_.push_back(std::move(d));
  deliveries_.clear();
  return own;
}

void session::take_inbox() {
  // Nothing there (the common case): no lock. A shard whose lock the caller holds delivered
  // before it took that lock (its push is visible); another shard's delivery racing with this
  // read is taken by the drain_inbox() it posts.
  if (!inbox_filled_.load(std::memory_order_acquire)) return;
  std::lock_guard inbox(inbox_mutex_);
  inbox_filled_.store(false, std::memory_order_relaxed);
  for (auto& d : inbox_) mine_.push_back(std::move(d));
  inbox_.clear();
  inbox_bytes_ = 0;
  if (inbox_congested_) {
    // deliver_locked() had a shard hold this client's watchers back: every shard does, and
    // they catch up once the output drains.
    inbox_congested_ = false;
    congested_ = true;
    tell_shards_ = true;
  }
  if (inbox_held_back_) {
    inbox_held_back_ = false;
    congested_ = true;  // (resumed once the output drains)
  }
  inbox_posted_ = false;
}

template <class F>
void session::with_every_engine(F&& f) {
  for (std::size_t i = 0; i < env_.shared.size(); ++i) with_engine(i, f);
}

void session::handle_target_op(const protocol::target_request& t, std::uint64_t request_id) {
  hub& shared = env_.shared;
  bool found = false;
  bool out_of_memory = false;
  const auto look_on = [&](std::size_t shard) {
    with_engine(shard, [&](engine& logic, std::vector<delivery>& out) {
      try {
        found = t.code == protocol::op::cancel
                    ? logic.cancel(ctx_.client_id, t.target, out)
                    : logic.more(ctx_.client_id, t.target, t.credit, out);
      } catch (const std::bad_alloc&) {
        out_of_memory = true;  // an answer, as on the engine's json path (not a closed connection)
      }
    });
  };
  if (t.ns) {
    // Where it named, then where a request without a namespace (a task take or wait) is.
    const std::size_t named = shared.shard_index(*t.ns);
    look_on(named);
    if (!found && !out_of_memory && named != hub::home) look_on(hub::home);
  } else {
    for (std::size_t i = 0; i < shared.size() && !found && !out_of_memory; ++i) look_on(i);
  }
  if (out_of_memory) {
    mine_.push_back({ctx_.client_id,
                     protocol::make_error_reply(request_id, server_errc::out_of_memory,
                                                "the server is out of memory")});
    return;
  }
  delivery reply{ctx_.client_id, nlohmann::json(), nullptr, request_id};
  reply.bytes = protocol::encode_reply(request_id, found);
  mine_.push_back(std::move(reply));
}

void session::queue_mine() {
  // Swapped out first: queueing never re-enters with_engine(), but this costs nothing.
  std::vector<delivery> mine;
  mine.swap(mine_);
  try {
    for (const auto& d : mine) queue_delivery(d);
  } catch (...) {
    mine.clear();
    mine_.swap(mine);
    throw;
  }
  mine.clear();
  mine_.swap(mine);  // keeps the capacity
}

void session::log_refusals(const nlohmann::json& request, std::size_t own) const {
  for (std::size_t i = own; i < mine_.size(); ++i) {
    const auto& d = mine_[i];
    if (d.encoded() || !d.reply.is_object()) continue;
    auto e = d.reply.find(protocol::field::error);
    if (e == d.reply.end()) continue;
    std::string message;
    const error_code ec = protocol::decode_error(*e, message);
    const auto op = protocol::op_of(request);
    note(log_level::debug, ctx_.client_id,
         "refused " + std::string(op ? protocol::name(*op) : "a request") + ": " +
             (message.empty() ? ec.message() : message));
  }
}

void session::deliver_locked(delivery&& d, engine& from) {
  // (A closed session is no longer in hub::sessions: close() took it out; one that a shard
  // found just before keeps what it is given until it is destroyed.)
  // Counted toward the output limit as queued replies are: a connection whose thread falls
  // behind has its watchers held back (they keep their cursors) until it catches up.
  std::lock_guard lock(inbox_mutex_);
  inbox_bytes_ += d.encoded_size().value_or(approximate_reply_size);
  inbox_.push_back(std::move(d));
  inbox_filled_.store(true, std::memory_order_release);
  const std::size_t limit = env_.config.max_pending_output;
  if (inbox_bytes_ > limit) {
    // Over the limit: this shard holds the client's watchers back at once (told by each shard
    // that delivers past it; the others too once the session runs: tell_shards_).
    inbox_congested_ = true;
    from.congested(ctx_.client_id);
  }
  // A stream that another request's work stopped at its burst (a tick's retry, a write that
  // caught a stalled stream up) goes on as this connection drains: the session resumes it.
  if (from.held_back(ctx_.client_id)) inbox_held_back_ = true;
  if (inbox_posted_) return;
  asio::post(link_.get_executor(), [self = shared_from_this()] { self->drain_inbox(); });
  inbox_posted_ = true;  // (only once the post is made: a failed one is tried again)
}

void session::drain_inbox() {
  if (closed_) return;
  try {
    if (env_.shared.stopped.load(std::memory_order_relaxed)) throw server_stopped{};
    take_inbox();
    queue_mine();
    check_pressure();
    flush();
  } catch (const std::exception&) {
    close();  // no memory for this client's replies: it sees its connection close, not a hang
  }
}

void session::check_pressure() {
  const std::size_t limit = env_.config.max_pending_output;
  const auto tell_every_shard = [&] {
    congested_ = true;
    shards_told_ = true;
    with_every_engine(
        [&](engine& logic, std::vector<delivery>&) { logic.congested(ctx_.client_id); });
    tell_shards_ = false;
  };
  if (tell_shards_) tell_every_shard();  // (one shard held back its watchers: all do)
  if (!mine_.empty()) queue_mine();      // (counted below)
  if (congested_ && pending_output() <= limit / 2) {
    // Drained to half: held-back watchers catch up, half a limit's worth at a time (shared
    // by the shards).
    const std::size_t budget = std::max<std::size_t>(limit / 2 / env_.shared.size(), 1);
    bool done = true;
    with_every_engine([&](engine& logic, std::vector<delivery>& out) {
      done = logic.resume(ctx_.client_id, budget, out) && done;
    });
    congested_ = !done;
    if (done) shards_told_ = false;      // (each shard let go of it as it finished)
    if (tell_shards_) tell_every_shard();  // a shard delivered past the limit meanwhile
    queue_mine();
  }
  // (A stream held back alone makes the client congested without telling the shards: over
  // the limit, they are told all the same.)
  if (!shards_told_ && pending_output() > limit) tell_every_shard();
  if (!mine_.empty()) queue_mine();
}

void session::queue_delivery(const delivery& d) {
  out_durable_ = std::max(out_durable_, d.durable);
  if (!d.encoded()) {
    queue_reply(d.reply);
    return;
  }
  const std::size_t size = *d.encoded_size();
  const std::size_t max = std::min(client_max_frame_, env_.config.max_frame_size);
  if (size > max) {  // (a result is small, an update need not be; a client's maximum may be tiny)
    queue(protocol::make_error_reply(
        d.request_id, server_errc::reply_too_large,
        (d.packed ? "the update has " : "the reply has ") + std::to_string(size) +
            " bytes, more than the maximum frame of " + std::to_string(max) + " bytes"));
    return;
  }
  std::string& bytes = out_.bytes();
  protocol::append_frame_header(bytes, size);
  bytes += d.bytes.view();
  if (d.packed) out_.append_shared(d.packed);
}

void session::queue(const nlohmann::json& message) { protocol::append_frame(out_.bytes(), message); }

void session::queue_reply(const nlohmann::json& reply) {
  std::string& bytes = out_.bytes();
  const std::size_t before = bytes.size();
  const std::size_t size = protocol::append_frame(bytes, reply);
  const std::size_t max = std::min(client_max_frame_, env_.config.max_frame_size);
  if (size <= max) return;
  bytes.resize(before);
  queue(protocol::make_error_reply(
      reply.value(id, std::uint64_t{0}), server_errc::reply_too_large,
      "the reply has " + std::to_string(size) + " bytes, more than the maximum frame of " +
          std::to_string(max) +
          " bytes; read it page by page: keys/items with 'after' and 'limit' (state::keys_page(), "
          "items_page(), for_each_key(), for_each_item())"));
}

void session::flush() {
  // A write done at once is followed by what its completion would do (which may queue more).
  while (start_write()) after_write();
}

bool session::start_write() {
  if (writing_ || closed_) return false;
  output_queue* next = &out_;
  if (!held_.empty()) {
    if (awaiting_sync_) return false;  // (what was queued after held_ waits behind it)
    next = &held_;                     // synced: it goes first
  } else if (out_.empty()) {
    return false;
  } else if (out_durable_ > 0 && !env_.shared.log->synced_through(out_durable_)) {
    // Not durable yet: held until the next sync covers it; what comes meanwhile waits in
    // out_ (with its own mark) for the sync after.
    held_.swap(out_);
    awaiting_sync_ = true;
    const std::uint64_t need = std::exchange(out_durable_, 0);
    try {
      env_.shared.commits->after(need, [self = shared_from_this()](bool ok) {
        asio::post(self->link_.get_executor(), [self, ok] {
          self->awaiting_sync_ = false;
          if (!ok) return self->close();  // the disk failed: the client sees the connection go
          try {
            self->flush();
          } catch (const std::exception&) {
            self->close();
          }
        });
      });
    } catch (...) {
      awaiting_sync_ = false;
      out_.swap(held_);  // (nothing was asked: the bytes stay queued)
      out_durable_ = need;
      throw;
    }
    return false;
  } else {
    out_durable_ = 0;
  }
  inflight_.swap(*next);
  next->clear(shrink_above);
  // Most replies fit in the kernel's buffer: written at once, they post no completion. What
  // the socket does not take goes on asynchronously.
  const std::size_t sent = link_.write_now(inflight_.buffers());
  if (sent == inflight_.size()) {
    inflight_.clear(shrink_above);
    return true;
  }
  try {
    asio::async_write(link_, inflight_.buffers(sent), [self = shared_from_this()](error_code ec,
                                                                                    std::size_t) {
      self->writing_ = false;
      self->inflight_.clear(shrink_above);
      if (self->closed_) return;
      if (ec) {
        self->close();
        return;
      }
      try {
        self->after_write();
        self->flush();
      } catch (const std::exception&) {
        self->close();  // no memory to go on with this connection
      }
    });
  } catch (...) {
    inflight_.swap(*next);  // (the callers close the connection: some bytes may have gone)
    throw;
  }
  writing_ = true;
  return false;
}

void session::after_write() {
  check_pressure();
  drain_timer_.cancel();  // a waiter in drain_to() re-checks
}

asio::awaitable<void> session::drain_to(std::size_t limit,
                                        asio::steady_timer::time_point deadline) {
  while (!closed_ && pending_output() > limit &&
         asio::steady_timer::clock_type::now() < deadline) {
    drain_timer_.expires_at(deadline);
    co_await drain_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

}  // namespace zproc::server_detail
