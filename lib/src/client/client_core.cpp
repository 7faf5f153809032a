#include "client/client_core.hpp"

#include "keepalive.hpp"

#include "protocol/auth.hpp"
#include "protocol/message.hpp"
#include "protocol/msgpack.hpp"
#include "protocol/value_check.hpp"

#include <zproc/access.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace zproc::detail {

namespace asio = boost::asio;
namespace field = protocol::field;
using generic_protocol = asio::generic::stream_protocol;

namespace {
/// The client's TLS context: the CA to verify the server with (the system's if none), and a
/// certificate of its own if given. Throws std::runtime_error naming a file it cannot use.
std::shared_ptr<asio::ssl::context> client_tls_context(const tls_options& t) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  error_code ec;
  const auto check = [&](const std::string& what) {
    if (ec) throw std::runtime_error("cannot use the TLS " + what + ": " + ec.message());
  };
  if (t.ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
    check("system CAs");
  } else {
    ctx->load_verify_file(t.ca_file, ec);
    check("CA file " + t.ca_file);
  }
  if (!t.cert_file.empty()) {
    ctx->use_certificate_chain_file(t.cert_file, ec);
    check("certificate " + t.cert_file);
    ctx->use_private_key_file(t.key_file.empty() ? t.cert_file : t.key_file,
                              asio::ssl::context::pem, ec);
    check("key " + t.key_file);
  }
  return ctx;
}
}  // namespace

connection::connection(asio::any_io_executor ex, client_options options)
    : ex_(std::move(ex)),
      options_(std::move(options)),
      link_(ex_),
      decoder_(std::make_shared<protocol::frame_decoder>(options_.max_frame_size)),
      policy_(reconnect_policy::config{options_.reconnect_initial_delay,
                                       options_.reconnect_max_delay, options_.reconnect_timeout}),
      backoff_timer_(ex_),
      give_up_timer_(ex_) {}

void connection::set_remote(std::string text) {
  std::lock_guard lock(remote_mutex_);
  remote_ = std::move(text);
}

std::string connection::failover_list() const {
  std::lock_guard lock(remote_mutex_);
  std::string list = remote_;
  for (const auto& a : failover_)
    if (a != remote_) list += "," + a;
  return list;
}

void connection::connect(std::vector<address> addresses,
                         std::function<void(error_code, std::string)> done) {
  if (state_ != state::idle || addresses.empty()) {
    auto ec = state_ == state::closed ? make_error_code(client_errc::connection_closed)
              : state_ == state::idle ? make_error_code(client_errc::bad_address)
                                      : make_error_code(client_errc::already_connected);
    asio::post(ex_, [done = std::move(done), ec] { done(ec, {}); });
    return;
  }
  state_ = state::connecting;
  set_remote(addresses.front().to_string());
  // `done` runs exactly once: from do_connect, or here if the coroutine throws.
  auto once = std::make_shared<std::function<void(error_code, std::string)>>(std::move(done));
  auto call_once = [once](error_code ec, std::string message) {
    if (auto f = std::move(*once)) {
      *once = nullptr;
      f(ec, std::move(message));
    }
  };
  asio::co_spawn(ex_, do_connect(std::move(addresses), call_once),
                 [self = shared_from_this(), call_once](std::exception_ptr e) {
                   if (!e) return;
                   self->on_coroutine_end(e);
                   call_once(self->closed_reason_, self->closed_message_);
                 });
}

void connection::on_coroutine_end(std::exception_ptr e) {
  if (!e) return;
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
  }
  close(client_errc::protocol_error, "the connection failed: " + what);
}

void connection::abort_connect() {
  if (state_ == state::connecting) close(asio::error::operation_aborted, "connect cancelled");
}

asio::awaitable<void> connection::do_connect(std::vector<address> addresses,
                                             std::function<void(error_code, std::string)> done) {
  auto self = shared_from_this();
  error_code ec;
  std::string message;
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    set_remote(addresses[i].to_string());
    ec = co_await try_connect(addresses[i], state::connecting, message);
    if (state_ != state::connecting) {  // close() or a cancel came first: report that
      done(closed_reason_, closed_message_);
      co_return;
    }
    if (ec) continue;
    // The list a lost connection fails over to: these addresses, then the options' ones.
    std::vector<std::string> texts;
    for (const auto& a : addresses) texts.push_back(a.to_string());
    parsed_ = addresses;
    for (const auto& text : options_.addresses) {
      error_code parse_ec;
      if (auto a = address::parse(text, parse_ec)) {
        texts.push_back(a->to_string());
        parsed_.push_back(std::move(*a));
      }
    }
    policy_.set_addresses(texts, i);
    // set_addresses dropped duplicates: keep parsed_ in step with it.
    std::vector<address> unique;
    for (const auto& text : policy_.addresses())
      for (const auto& a : parsed_)
        if (a.to_string() == text) {
          unique.push_back(a);
          break;
        }
    parsed_ = std::move(unique);
    {
      std::lock_guard lock(remote_mutex_);
      failover_ = policy_.addresses();
    }
    on_connected();
    done({}, {});
    co_return;
  }
  close(ec, message);
  done(ec, std::move(message));
}

asio::awaitable<error_code> connection::try_connect(address a, state expected,
                                                    std::string& message) {
  auto self = shared_from_this();
  const std::string where = a.to_string();
  decoder_ = std::make_shared<protocol::frame_decoder>(options_.max_frame_size);
  auto decoder = decoder_;
  // One deadline for the socket connect and the hello: on expiry the socket closes, which
  // fails whatever step is in progress.
  auto expired = std::make_shared<bool>(false);
  // The name lookup (TCP) is part of the attempt: the deadline cancels it too.
  auto resolver = std::make_shared<asio::ip::tcp::resolver>(ex_);
  asio::steady_timer deadline(ex_);
  // Zero: no deadline (the same rule as request_timeout).
  deadline.expires_after(options_.connect_timeout.count() > 0 ? options_.connect_timeout
                                                              : asio::steady_timer::duration::max());
  const std::uint64_t attempt = ++attempt_;
  deadline.async_wait([this, self, expired, expected, resolver, attempt](error_code ec) {
    // A late expiry (queued as the attempt ended) must not close the next attempt's socket.
    if (ec || state_ != expected || attempt != attempt_) return;
    *expired = true;
    resolver->cancel();
    error_code ignored;
    link_.socket().close(ignored);
  });
  const bool& timed_out = *expired;

  const auto fail = [&](error_code ec, std::string why) -> error_code {
    deadline.cancel();
    ++attempt_;
    error_code ignored;
    link_.socket().close(ignored);
    if (timed_out) {
      ec = client_errc::timeout;
      why = "connecting to " + where + " timed out";
    }
    message = std::move(why);
    return ec;
  };

  error_code ec;
  if (a.kind == address::transport::ipc) {
    link_.socket().open(generic_protocol(AF_UNIX, 0), ec);
    if (!ec)
      std::tie(ec) = co_await link_.socket().async_connect(
          generic_protocol::endpoint(asio::local::stream_protocol::endpoint(a.path)),
          asio::as_tuple(asio::use_awaitable));
  } else {
    auto [rec, results] = co_await resolver->async_resolve(a.host, std::to_string(a.port),
                                                           asio::as_tuple(asio::use_awaitable));
    ec = rec;
    if (!ec) {
      ec = asio::error::host_not_found;
      for (const auto& entry : results) {
        error_code ignored;
        link_.socket().close(ignored);
        if (timed_out || state_ != expected) break;
        generic_protocol::endpoint ep(entry.endpoint());
        link_.socket().open(ep.protocol(), ec);
        if (ec) continue;
        std::tie(ec) =
            co_await link_.socket().async_connect(ep, asio::as_tuple(asio::use_awaitable));
        if (!ec) break;
      }
      if (!ec) link_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
      if (!ec) enable_keepalive(link_.socket().native_handle());
    }
  }
  if (ec || state_ != expected)
    co_return fail(client_errc::server_unreachable,
                   "cannot connect to " + where + ": " + ec.message());
  link_.reset_tls();
  if (a.kind == address::transport::tls) {
    // The settings and the CA file are read at each attempt (a rotated CA is picked up).
    const tls_options t = options_.tls ? *options_.tls : tls_options_from_env();
    try {
      tls_context_ = client_tls_context(t);
    } catch (const std::exception& e) {
      co_return fail(make_error_code(std::errc::invalid_argument), e.what());
    }
    const std::string name = t.server_name.empty() ? a.host : t.server_name;
    auto& tls = link_.start_tls(*tls_context_);
    // SNI (SSL_set_tlsext_host_name, spelled out: the macro casts the old way).
    SSL_ctrl(tls.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(name.c_str()));
    tls.set_verify_mode(asio::ssl::verify_peer);
    tls.set_verify_callback(asio::ssl::host_name_verification(name));
    std::tie(ec) = co_await tls.async_handshake(asio::ssl::stream_base::client,
                                                asio::as_tuple(asio::use_awaitable));
    if (ec)
      co_return fail(client_errc::untrusted_server,
                     "TLS with " + where + " failed: " + ec.message() +
                         " (the server's certificate must chain to the CA of ZPROC_TLS_CA / "
                         "client_options::tls and name '" + name + "')");
  }

  // Hello, and wait for the answer (the only frame the server sends before it). With a token:
  // the server's challenge, our proof, then the answer with the server's proof
  // (protocol/auth.hpp).
  std::string token;
  try {
    token = options_.token ? *options_.token : token_from_env();
  } catch (const zproc::error& e) {
    co_return fail(e.code(), e.diagnostics());
  }
  const std::string client_nonce = token.empty() ? std::string() : protocol::auth::make_nonce();
  std::string server_nonce;
  std::string out;
  protocol::append_frame(out, protocol::make_hello(options_.max_frame_size, client_nonce));
  std::optional<protocol::hello_reply> reply;
  std::string why;
  while (!reply) {  // two rounds at most: hello (→ challenge), proof (→ reply)
    std::tie(ec, std::ignore) =
        co_await asio::async_write(link_, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
    std::optional<json> answer;
    while (!ec && !answer) {
      std::string_view payload;
      const auto st = decoder->next(payload);
      if (st == protocol::frame_decoder::status::frame) {
        answer = protocol::decode_payload(payload);
        break;
      }
      if (st == protocol::frame_decoder::status::too_large) {
        ec = client_errc::protocol_error;
        break;
      }
      auto space = decoder->prepare();
      std::size_t n = 0;
      std::tie(ec, n) = co_await link_.async_read_some(asio::buffer(space.data(), space.size()),
                                                       asio::as_tuple(asio::use_awaitable));
      if (!ec) decoder->commit(n);
    }
    if (ec)
      co_return fail(
          ec == client_errc::protocol_error ? ec : make_error_code(client_errc::server_unreachable),
          "no zproc hello from " + where + ": " + ec.message());
    auto r = protocol::parse_hello_reply(*answer, ec, why);
    if (!r) co_return fail(ec, why);
    if (r->challenge.empty()) {
      reply = std::move(r);
      break;
    }
    if (client_nonce.empty() || !server_nonce.empty())
      co_return fail(client_errc::protocol_error,
                     "the server at " + where + " sent a challenge this client did not ask for");
    server_nonce = r->challenge;
    out.clear();
    protocol::append_frame(
        out, protocol::make_proof(protocol::auth::client_proof(token, client_nonce, server_nonce)));
  }
  if (!client_nonce.empty() &&
      (server_nonce.empty() ||
       !protocol::auth::same_proof(
           reply->server_proof,
           protocol::auth::server_proof(token, client_nonce, server_nonce))))
    co_return fail(client_errc::untrusted_server,
                   "the server at " + where +
                       " did not prove that it knows this client's token: it is not the server "
                       "the token is for (or it runs without one)");
  if (state_ != expected)  // closed or cancelled while the hello was on its way
    co_return fail(client_errc::connection_closed, "closed while connecting");
  deadline.cancel();
  ++attempt_;  // over: the deadline's handler, if already queued, does nothing
  server_pid_ = reply->server_pid;
  client_id_ = reply->client_id;
  server_max_frame_ = reply->max_frame_size;
  server_id_ = reply->server_id;
  co_return error_code{};
}

void connection::on_connected() {
  state_ = state::connected;
  working_ = false;
  ++connections_;
  link_.enable_write_now();  // a lone request goes at once (flush())
  asio::co_spawn(ex_, read_loop(generation_),
                 [self = shared_from_this()](std::exception_ptr e) { self->on_coroutine_end(e); });
  // Requests the last connection left unanswered that may have been applied: they fail.
  auto lost = pending_.take_if([](const std::unique_ptr<pending_op>& op) { return !op->wire; });
  for (auto& op : lost)
    op->complete(client_errc::connection_lost, {},
                 "the connection to the server was lost (" + lost_reason_ +
                     ") and the client reconnected; the request may or may not have been "
                     "applied",
                 true);
  // What waited for this connection, in the order it was asked: idempotent requests that the
  // last connection left unanswered, and requests made while reconnecting.
  for (const std::uint64_t id : pending_.ids()) {
    auto* op = pending_.find(id);
    if (!op || !(*op)->wire) continue;
    auto& p = **op;
    if (!policy_.may_send_again(p.sends)) {
      auto taken = pending_.take(id);
      (*taken)->complete(client_errc::connection_lost, {},
                         "the connection to the server was lost " +
                             std::to_string(p.sends.quick_losses) +
                             " times soon after this request was sent (last: " + lost_reason_ +
                             "); it was not sent again (does it make the server fail?)",
                         true);
      continue;
    }
    if (!p.before_resend(*p.wire)) {
      auto taken = pending_.take(id);
      (*taken)->complete(client_errc::connection_lost, {},
                         "the connection to the server was lost; the request was not sent again",
                         true);
      continue;
    }
    const std::size_t before = out_.size();
    const std::size_t size = protocol::append_request_frame(out_, *p.wire, id);
    if (size > server_max_frame_ || size > options_.max_frame_size) {
      out_.resize(before);
      auto taken = pending_.take(id);
      (*taken)->complete(client_errc::frame_too_large, {},
                         "the request has " + std::to_string(size) +
                             " bytes, more than the maximum frame of " +
                             std::to_string(std::min(server_max_frame_, options_.max_frame_size)),
                         true);
      continue;
    }
    reconnect_policy::sent(p.sends, reconnect_policy::clock::now());
    if (!p.idempotent) p.wire.reset();  // sent: it is never sent twice
  }
  flush();
}

void connection::on_lost(const std::string& message) {
  if (state_ != state::connected) return;
  if (!policy_.enabled()) {
    close(client_errc::connection_closed, message);
    return;
  }
  state_ = state::reconnecting;
  ++generation_;
  writing_ = false;  // the write in flight (if any) ends with the old socket; its handler sees
                     // the generation changed
  out_.clear();      // requests not yet written are in pending_: idempotent ones are sent again
  error_code ignored;
  link_.socket().shutdown(socket_type::shutdown_both, ignored);
  link_.socket().close(ignored);
  last_error_ = message;
  lost_reason_ = message;
  const auto now = reconnect_policy::clock::now();
  for (const std::uint64_t id : pending_.ids())  // what may be sent again: was it lost soon?
    if (auto* op = pending_.find(id); op && (*op)->wire) policy_.lost_with((*op)->sends, now);
  // What the server may have applied (pending, without `wire`) is never sent twice: it fails
  // with connection_lost once a new connection is up (on_connected), or with connection_closed
  // if none comes (close()): the caller learns the outcome of the reconnect with it.
  policy_.lost(now);
  // Requests bound to this connection cannot go on any other: they fail now, not once a new
  // connection is up (the caller may be what would bring the server back).
  for (auto& op : pending_.take_if([](const std::unique_ptr<pending_op>& op) { return op->only_on != 0; }))
    op->complete(client_errc::connection_lost, {},
                 "the connection to the server was lost (" + message +
                     "); the request may or may not have been applied",
                 true);
  give_up_timer_.expires_at(policy_.deadline());
  give_up_timer_.async_wait([self = shared_from_this(), gen = generation_](error_code ec) {
    if (ec || self->state_ != state::reconnecting || gen != self->generation_) return;
    std::string tried;
    for (const auto& a : self->policy_.addresses()) tried += (tried.empty() ? "" : ", ") + a;
    self->close(client_errc::connection_closed,
                "gave up reconnecting after " +
                    std::to_string(self->options_.reconnect_timeout.count()) +
                    " ms (client_options::reconnect_timeout): no zproc server answered at " +
                    tried + " (last: " + self->last_error_ + ")");
  });
  asio::co_spawn(ex_, reconnect_loop(generation_),
                 [self = shared_from_this()](std::exception_ptr e) { self->on_coroutine_end(e); });
}

asio::awaitable<void> connection::reconnect_loop(std::uint64_t generation) {
  auto self = shared_from_this();
  const auto current = [&] { return state_ == state::reconnecting && generation == generation_; };
  while (current()) {
    auto next = policy_.next(reconnect_policy::clock::now());
    if (!next) co_return;  // none starts before the deadline: the give-up timer ends it
    if (next->at > reconnect_policy::clock::now()) {
      backoff_timer_.expires_at(next->at);
      co_await backoff_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
      if (!current()) co_return;
    }
    const address& a = parsed_.at(next->index);
    set_remote(a.to_string());
    std::string message;
    const error_code ec = co_await try_connect(a, state::reconnecting, message);
    if (!current()) co_return;
    if (!ec) {
      policy_.connected(next->index, reconnect_policy::clock::now());
      give_up_timer_.cancel();
      on_connected();
      co_return;
    }
    last_error_ = message;
  }
}

std::uint64_t connection::request(json req, std::unique_ptr<pending_op> op) {
  return request(protocol::packed_request::from(req), std::move(op));
}

std::uint64_t connection::request(protocol::packed_request&& req, std::unique_ptr<pending_op> op) {
  if (state_ != state::connected && state_ != state::reconnecting) {
    if (state_ == state::closed)
      op->complete(closed_reason_, {}, std::string(closed_message_), true);
    else
      op->complete(client_errc::not_connected, {}, "not connected: call connect() first", true);
    return 0;
  }
  if (op->only_on != 0 && (state_ != state::connected || connections_ != op->only_on)) {
    op->complete(client_errc::connection_lost, {},
                 "the request belongs to a connection to the server since lost (it names what "
                 "the server gave on that connection): not sent",
                 true);
    return 0;
  }
  if (req.too_deep) {
    // The server would refuse it (or, past its decoder's limit, not even read it).
    op->complete(server_errc::bad_request, {},
                 "a value nested deeper than " + std::to_string(protocol::max_request_depth) +
                     " levels (request and value together) cannot be stored (refused before "
                     "sending)",
                 true);
    return 0;
  }
  if (req.code) {
    op->idempotent = policy_.enabled() && protocol::idempotent(*req.code);
    op->parks = protocol::parks(*req.code);
    if (op->parks) op->ns = req.ns;
  }
  auto token = op->token;
  pending_op* const raw = op.get();
  const std::uint64_t id = pending_.add(std::move(op));
  if (token) {
    token->id = id;
    if (token->cancelled) {  // cancelled before it could be sent
      if (auto taken = pending_.take(id))
        (*taken)->complete(asio::error::operation_aborted, {}, "cancelled", true);
      return 0;
    }
  }
  if (state_ == state::reconnecting) {
    raw->wire = std::move(req);  // sent once connected (on_connected)
    return id;
  }
  const std::size_t before = out_.size();
  const std::size_t size = protocol::append_request_frame(out_, req, id);
  if (size > server_max_frame_ || size > options_.max_frame_size) {
    out_.resize(before);
    auto failed = pending_.take(id);
    (*failed)->complete(client_errc::frame_too_large, {},
                        "the request has " + std::to_string(size) +
                            " bytes, more than the maximum frame of " +
                            std::to_string(std::min(server_max_frame_, options_.max_frame_size)),
                        true);
    return 0;
  }
  if (raw->idempotent) {
    reconnect_policy::sent(raw->sends, reconnect_policy::clock::now());
    raw->wire = std::move(req);  // sent again if the connection breaks
  }
  flush();
  return id;
}

namespace {
/// A request whose reply nobody waits for (the cancel of another request).
class ignore_op final : public pending_op {
 public:
  void complete(error_code, json&&, std::string&&, bool) override {}
  void complete_result(std::string_view) override {}
};
}  // namespace

std::unique_ptr<pending_op> reply_ignored() { return std::make_unique<ignore_op>(); }

bool connection::cancel(std::uint64_t id) {
  auto op = pending_.take(id);
  if (!op) return false;
  const bool tell_server = (*op)->parks && state_ != state::closed;
  (*op)->complete(asio::error::operation_aborted, {}, "cancelled", false);
  if (tell_server) request(protocol::cancel_request(id, (*op)->ns), reply_ignored());
  return true;
}

void connection::close(error_code reason, const std::string& message) {
  if (state_ == state::closed) return;
  state_ = state::closed;
  ++generation_;
  closed_reason_ = reason;
  closed_message_ = message.empty() ? reason.message() : message;
  error_code ignored;
  link_.socket().shutdown(socket_type::shutdown_both, ignored);
  link_.socket().close(ignored);
  backoff_timer_.cancel();
  give_up_timer_.cancel();
  for (auto& op : pending_.take_all())
    op->complete(reason, {}, std::string(closed_message_), false);
}

asio::awaitable<void> connection::read_loop(std::uint64_t generation) {
  auto self = shared_from_this();
  auto decoder = decoder_;  // this socket's; a reconnect makes a new one
  const auto current = [&] { return state_ == state::connected && generation == generation_; };
  while (current()) {
    auto space = decoder->prepare();
    auto [ec, n] = co_await link_.async_read_some(asio::buffer(space.data(), space.size()),
                                                     asio::as_tuple(asio::use_awaitable));
    if (!current()) co_return;
    if (ec) {
      on_lost("the connection to " + remote() + " closed: " + ec.message());
      co_return;
    }
    decoder->commit(n);
    std::string_view payload;
    for (;;) {
      const auto st = decoder->next(payload);
      if (st == protocol::frame_decoder::status::need_more) break;
      if (st == protocol::frame_decoder::status::too_large) {
        close(client_errc::frame_too_large,
              "the server sent a frame of " + std::to_string(decoder->announced_size()) +
                  " bytes, more than this client's maximum of " +
                  std::to_string(decoder->max_frame_size()));
        co_return;
      }
      on_frame(payload);
      if (!current()) co_return;
    }
  }
}

void connection::on_frame(std::string_view payload) {
  protocol::reply_view msg;
  const auto malformed = [&] {
    close(client_errc::protocol_error, "the server sent a frame that is not a zproc message");
  };
  if (!protocol::parse_reply(payload, msg, /*check_last_result=*/false)) {
    malformed();
    return;
  }
  if (msg.id == 0) {
    // A message about the connection itself: the server is about to close it.
    std::string message = "the server closed the connection";
    error_code ec = client_errc::protocol_error;
    if (msg.error) ec = protocol::decode_error(*msg.error, message);
    close(ec, message);
    return;
  }
  if (!working_) {  // the first reply on this socket: the connection works
    working_ = true;
    policy_.working();
  }
  auto* entry = pending_.find(msg.id);
  // A result the op does not read in full, checking as it goes, is checked here (a watch reply
  // is read once, by its decoder).
  if (!msg.result_checked && (!entry || !(*entry)->checks_result()) &&
      !protocol::check_result(msg.result)) {
    malformed();
    return;
  }
  if (!entry) return;  // cancelled: its late reply is dropped
  if ((*entry)->stream && !msg.error) {
    // A stream's reply: it stays pending.
    reconnect_policy::answered((*entry)->sends);
    (*entry)->complete_result(msg.result);
    return;
  }
  auto op = pending_.take(msg.id);
  if (msg.error) {
    std::string message;
    const error_code ec = protocol::decode_error(*msg.error, message);
    // A stream ends with an error; the server ends it too, except when the error was not its
    // own (a reply too large for this client, replaced on its way): told, in any case.
    if ((*op)->stream) request(protocol::cancel_request(msg.id, (*op)->ns), reply_ignored());
    (*op)->complete(ec, {}, std::move(message), false);
    return;
  }
  (*op)->complete_result(msg.result);
}

void connection::flush() {
  if (writing_ || out_.empty() || state_ != state::connected) return;
  if (pending_.size() <= 1) {
    // The only request awaiting a reply (a caller at depth 1): written at once where the
    // socket takes it (link::write_now). With others in flight, the write below is
    // asynchronous and what is asked meanwhile gathers behind it into one write.
    out_.erase(0, link_.write_now(asio::buffer(out_)));
    if (out_.empty()) return;
  }
  writing_ = true;
  // The buffer lives with the write: after a reconnect, out_ fills for the next socket while
  // the old write may still be finishing.
  auto inflight = std::make_shared<std::string>();
  inflight->swap(out_);
  asio::async_write(link_, asio::buffer(*inflight),
                    [self = shared_from_this(), inflight, gen = generation_](error_code ec,
                                                                             std::size_t) {
                      if (gen != self->generation_) return;  // an old socket's
                      self->writing_ = false;
                      if (ec) {
                        self->on_lost("writing to " + self->remote() + " failed: " + ec.message());
                        return;
                      }
                      self->flush();
                    });
}

void pending_op::complete_result(std::string_view result) {
  // parse_reply() checked the result as decode_msgpack() does: this decodes.
  json r = result.empty() ? json() : protocol::decode_msgpack(result);
  complete({}, std::move(r), {}, false);
}

// --- client_impl ------------------------------------------------------------------------------

client_impl::client_impl(client_options options)
    : own_ioc_(std::make_unique<asio::io_context>(1)),
      ex_(own_ioc_->get_executor()),
      options_(options),
      conn_(std::make_shared<connection>(ex_, options)) {}

client_impl::client_impl(asio::any_io_executor ex, client_options options)
    : inner_ex_(ex),
      ex_(asio::make_strand(std::move(ex))),
      options_(options),
      conn_(std::make_shared<connection>(ex_, options)) {}

client_impl::~client_impl() { close(); }

void client_impl::close() {
  if (own_ioc_) {
    // Another thread may be inside a blocking call, running the io_context: hand it the close
    // (post is thread-safe); if nobody runs it, run it here.
    asio::post(*own_ioc_, [c = conn_] {
      c->close(client_errc::connection_closed, "the client was closed");
    });
    std::unique_lock lock(blocking_mutex_, std::try_to_lock);
    if (lock.owns_lock()) {
      own_ioc_->restart();
      own_ioc_->poll();
    }
  } else {
    asio::dispatch(ex_, [c = conn_] {
      c->close(client_errc::connection_closed, "the client was closed");
    });
  }
}

namespace {
constexpr unsigned lock_first_calls = 8;  // then try the optimistic path again
}

bool client_impl::lock_first(const std::string& ns) {
  std::lock_guard lock(contention_mutex_);
  auto it = lock_first_.find(ns);
  if (it == lock_first_.end()) return false;
  if (--it->second == 0) lock_first_.erase(it);
  return true;
}

void client_impl::atomic_done(const std::string& ns, bool needed_lock) {
  if (!needed_lock) return;
  std::lock_guard lock(contention_mutex_);
  lock_first_[ns] = lock_first_calls;
}

void client_impl::run_on_connection(std::function<void()> fn) {
  if (own_ioc_) {
    std::lock_guard lock(blocking_mutex_);
    fn();
    // Nobody else runs the private io_context: run what is ready now, so that what `fn` queued
    // (e.g. a watcher's first request, queued behind a write still "in flight") is sent now.
    if (own_ioc_->stopped()) own_ioc_->restart();
    own_ioc_->poll();
  } else {
    asio::dispatch(ex_, std::move(fn));
  }
}

namespace {

/// Whether the calling thread runs `ex` (for the executor types Asio can tell; others: false).
bool runs_here(const asio::any_io_executor& ex) {
  using ioc_ex = asio::io_context::executor_type;
  using ioc_tracked = decltype(asio::prefer(std::declval<ioc_ex>(),
                                            asio::execution::outstanding_work.tracked));
  using pool_ex = asio::thread_pool::executor_type;
  using pool_tracked = decltype(asio::prefer(std::declval<pool_ex>(),
                                             asio::execution::outstanding_work.tracked));
  if (const auto* e = ex.target<ioc_ex>()) return e->running_in_this_thread();
  if (const auto* e = ex.target<ioc_tracked>()) return e->running_in_this_thread();
  if (const auto* e = ex.target<pool_ex>()) return e->running_in_this_thread();
  if (const auto* e = ex.target<pool_tracked>()) return e->running_in_this_thread();
  if (const auto* s = ex.target<asio::strand<asio::any_io_executor>>())
    return s->running_in_this_thread() || runs_here(s->get_inner_executor());
  if (const auto* s = ex.target<asio::strand<ioc_ex>>())
    return s->running_in_this_thread() || s->get_inner_executor().running_in_this_thread();
  return false;
}

}  // namespace

bool client_impl::runs_on_this_thread() const {
  return !own_ioc_ && (runs_here(ex_) || runs_here(inner_ex_));
}

bool client_impl::run_here(blocking_result& result, callable_ref start,
                           std::chrono::milliseconds timeout, callable_ref on_timeout) {
  const bool has_deadline = timeout.count() > 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool in_time = true;
  std::lock_guard lock(blocking_mutex_);
  // First what happened since the last call (one non-blocking epoll_wait): if the server went
  // away meanwhile, the connection learns it now and the request waits for the reconnect,
  // instead of going into a dead socket and failing with connection_lost.
  if (own_ioc_->stopped()) own_ioc_->restart();
  own_ioc_->poll();
  start();
  while (!result.is_done()) {
    if (own_ioc_->stopped()) own_ioc_->restart();
    const std::size_t ran =
        has_deadline && in_time ? own_ioc_->run_one_until(deadline) : own_ioc_->run_one();
    if (ran != 0) continue;
    if (has_deadline && in_time && std::chrono::steady_clock::now() >= deadline) {
      in_time = false;
      on_timeout();
      continue;
    }
    if (own_ioc_->stopped()) {  // no work left: nothing will complete the operation
      result.set(client_errc::connection_closed, {}, "the connection stopped making progress");
      break;
    }
  }
  return in_time;
}

bool client_impl::run_on_executor(blocking_result& result, const std::function<void()>& start,
                                  std::chrono::milliseconds timeout,
                                  const std::function<void()>& on_timeout) {
  if (runs_on_this_thread()) {
    result.set(client_errc::wrong_mode, {}, blocking_on_executor_message);
    return true;
  }
  const bool has_deadline = timeout.count() > 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool in_time = true;
  asio::dispatch(ex_, start);
  std::unique_lock lock(result.mutex);
  if (has_deadline) {
    if (!result.cv.wait_until(lock, deadline, [&] { return result.done; })) {
      in_time = false;
      asio::dispatch(ex_, on_timeout);
      // The timeout handler completes the operation (its late reply is dropped); give it a
      // moment, but the deadline holds even if nobody runs the executor.
      result.cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return result.done; });
    }
  } else {
    result.cv.wait(lock, [&] { return result.done; });
  }
  return in_time;
}

}  // namespace zproc::detail
