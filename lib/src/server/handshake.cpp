#include "server/handshake.hpp"

#include "protocol/auth.hpp"

#include <algorithm>

namespace zproc::server_detail {

namespace auth = protocol::auth;

handshake::handshake(const server_config::access_config& access, std::uint32_t server_uid,
                     std::optional<peer_credentials> peer)
    : access_(access), server_uid_(server_uid), peer_(peer) {}

protocol::json handshake::on_message(const protocol::json& msg, protocol::hello_reply base) {
  switch (state_) {
    case state::hello: return on_hello(msg, base);
    case state::proof: return on_proof(msg, base);
    case state::accepted:
    case state::refused:  // the session stops passing messages here once it is over
      break;
  }
  return refuse(server_errc::handshake_required, "the handshake is over");
}

protocol::json handshake::on_hello(const protocol::json& msg, protocol::hello_reply& base) {
  error_code ec;
  std::string why;
  auto hello = protocol::check_hello(msg, ec, why);
  if (!hello) return refuse(ec, why);
  request_ = std::move(*hello);
  if (pending_ec_) return refuse(pending_ec_, pending_why_);
  if (peer_ && !peer_allowed())
    return refuse(server_errc::unauthenticated,
                  "user " + std::to_string(peer_->uid) +
                      " may not use this server's Unix socket (server_config::access."
                      "allowed_uids, zproc server --allow-user)");
  if (request_.client_nonce.empty()) {
    // No token offered: a Unix socket's allowed user, or a server that wants none.
    if (peer_ || access_.tokens.empty()) return accept(base, access_role{});
    return refuse(server_errc::unauthenticated,
                  "this server needs a token: give the client one (ZPROC_TOKEN_FILE, "
                  "ZPROC_TOKEN or client_options::token)");
  }
  if (access_.tokens.empty())
    return refuse(server_errc::unauthenticated,
                  "the client offered a token but this server has none, so it cannot prove "
                  "it is the server the token is for (start it with --token-file, or unset "
                  "ZPROC_TOKEN / ZPROC_TOKEN_FILE)");
  if (!auth::well_formed_nonce(request_.client_nonce))
    return refuse(server_errc::unauthenticated, "the hello's client nonce is malformed");
  server_nonce_ = auth::make_nonce();
  state_ = state::proof;
  return protocol::make_challenge(server_nonce_, request_.version);
}

protocol::json handshake::on_proof(const protocol::json& msg, protocol::hello_reply& base) {
  error_code ec;
  std::string why;
  auto proof = protocol::parse_proof(msg, ec, why);
  if (!proof) return refuse(ec, why);
  // Every token is tried (no early exit): the time taken says nothing about which matched.
  const access_token* match = nullptr;
  for (const auto& t : access_.tokens)
    if (auth::same_proof(*proof, auth::client_proof(t.secret, request_.client_nonce,
                                                    server_nonce_)) &&
        match == nullptr)
      match = &t;
  if (match == nullptr) return refuse(server_errc::unauthenticated, "wrong token");
  base.server_proof = auth::server_proof(match->secret, request_.client_nonce, server_nonce_);
  return accept(base, match->role);
}

protocol::json handshake::accept(protocol::hello_reply& base, const access_role& role) {
  state_ = state::accepted;
  role_ = role;
  base.role = role_.to_string();
  base.version = request_.version;  // answered in the client's version
  return protocol::make_hello_reply(base);
}

protocol::json handshake::refuse(error_code ec, std::string why) {
  state_ = state::refused;
  refusal_ = why;
  return protocol::make_error_reply(0, ec, why);
}

bool handshake::peer_allowed() const {
  const auto in = [](const std::vector<std::uint32_t>& v, std::uint32_t x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  return peer_->uid == server_uid_ || peer_->uid == 0 || in(access_.allowed_uids, peer_->uid) ||
         in(access_.allowed_gids, peer_->gid);
}

}  // namespace zproc::server_detail
