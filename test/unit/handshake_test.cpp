// The server's side of the hello without sockets (server/handshake.cpp), driven with the
// client's half built from protocol/auth.hpp: who gets in, with which role, and that a wrong
// token, a replayed proof, a foreign Unix user or a hello without a token over TCP get nothing
// but the error.
#include "protocol/auth.hpp"
#include "protocol/message.hpp"
#include "server/handshake.hpp"

#include <doctest/doctest.h>

#include <string>

using zproc::json;
using namespace zproc::server_detail;
namespace protocol = zproc::protocol;
namespace auth = zproc::protocol::auth;

namespace {

constexpr std::uint32_t me = 1000;
const std::string secret = "0123456789abcdef0123456789abcdef";
const std::string reader_secret = "fedcba9876543210fedcba9876543210";

zproc::server_config::access_config with_tokens() {
  zproc::server_config::access_config a;
  a.tokens.push_back({secret, {}});
  a.tokens.push_back({reader_secret, zproc::access_role::parse("read-only:metrics")});
  return a;
}

protocol::hello_reply base() { return {42, 7, 1024, "sid"}; }

/// The server's error code in a reply, or success if it is not an error.
zproc::error_code error_of(const json& reply) {
  auto e = reply.find(protocol::field::error);
  if (e == reply.end()) return {};
  std::string message;
  return protocol::decode_error(*e, message);
}

/// A client's whole handshake with `token`; returns the server's last answer.
json authenticate(handshake& h, const std::string& token, std::string* proof_sent = nullptr) {
  const std::string cn = auth::make_nonce();
  json challenge = h.on_message(protocol::make_hello(4096, cn), base());
  if (h.current() != handshake::state::proof) return challenge;
  zproc::error_code ec;
  std::string why;
  auto c = protocol::parse_hello_reply(challenge, ec, why);
  REQUIRE(c.has_value());
  REQUIRE(auth::well_formed_nonce(c->challenge));
  const std::string proof = auth::client_proof(token, cn, c->challenge);
  if (proof_sent) *proof_sent = proof;
  json reply = h.on_message(protocol::make_proof(proof), base());
  if (h.current() == handshake::state::accepted) {
    auto r = protocol::parse_hello_reply(reply, ec, why);
    REQUIRE(r.has_value());
    // The server proved it knows the token too.
    CHECK(auth::same_proof(r->server_proof, auth::server_proof(token, cn, c->challenge)));
  }
  return reply;
}

}  // namespace

TEST_SUITE("handshake") {
  TEST_CASE("a Unix peer of the server's own user, or root, is in without a token (admin)") {
    zproc::server_config::access_config none;
    for (std::uint32_t uid : {me, 0u}) {
      handshake h(none, me, peer_credentials{uid, 5});
      json reply = h.on_message(protocol::make_hello(4096), base());
      CHECK(h.current() == handshake::state::accepted);
      CHECK(h.client_max_frame() == 4096);
      CHECK(h.role().what == zproc::access_role::kind::admin);
      CHECK(reply.at(protocol::field::client_id) == 7);
    }
  }

  TEST_CASE("another Unix user is refused, unless its uid or gid is allowed") {
    zproc::server_config::access_config a = with_tokens();
    handshake refused(a, me, peer_credentials{2000, 2000});
    json reply = refused.on_message(protocol::make_hello(4096), base());
    CHECK(refused.current() == handshake::state::refused);
    CHECK(error_of(reply) == zproc::server_errc::unauthenticated);
    CHECK(refused.refusal().find("2000") != std::string::npos);
    // Even with the right token: the socket is not for that user.
    handshake with_token(a, me, peer_credentials{2000, 2000});
    CHECK(error_of(authenticate(with_token, secret)) == zproc::server_errc::unauthenticated);

    a.allowed_uids = {2000};
    handshake by_uid(a, me, peer_credentials{2000, 1});
    by_uid.on_message(protocol::make_hello(4096), base());
    CHECK(by_uid.current() == handshake::state::accepted);
    a.allowed_uids.clear();
    a.allowed_gids = {3000};
    handshake by_gid(a, me, peer_credentials{2000, 3000});
    by_gid.on_message(protocol::make_hello(4096), base());
    CHECK(by_gid.current() == handshake::state::accepted);
  }

  TEST_CASE("over TCP with tokens: no token, a wrong token, a malformed proof are refused") {
    const auto a = with_tokens();
    handshake no_token(a, me, std::nullopt);
    CHECK(error_of(no_token.on_message(protocol::make_hello(4096), base())) ==
          zproc::server_errc::unauthenticated);
    CHECK(no_token.current() == handshake::state::refused);

    handshake wrong(a, me, std::nullopt);
    CHECK(error_of(authenticate(wrong, "not the token, but long enough")) ==
          zproc::server_errc::unauthenticated);
    CHECK(wrong.current() == handshake::state::refused);

    handshake garbage(a, me, std::nullopt);
    garbage.on_message(protocol::make_hello(4096, auth::make_nonce()), base());
    REQUIRE(garbage.current() == handshake::state::proof);
    CHECK(error_of(garbage.on_message(json{{"o", "get"}, {"i", 1}}, base())) ==
          zproc::server_errc::unauthenticated);
    CHECK(garbage.current() == handshake::state::refused);

    handshake bad_nonce(a, me, std::nullopt);
    CHECK(error_of(bad_nonce.on_message(protocol::make_hello(4096, "short"), base())) ==
          zproc::server_errc::unauthenticated);
  }

  TEST_CASE("the right token is in, with its role; a proof replayed on another connection is not") {
    const auto a = with_tokens();
    handshake first(a, me, std::nullopt);
    std::string proof;
    json reply = authenticate(first, reader_secret, &proof);
    REQUIRE(first.current() == handshake::state::accepted);
    CHECK(first.role().what == zproc::access_role::kind::read_only);
    CHECK(reply.at(protocol::field::role) == "read-only:metrics");

    // Same hello, same proof, new connection: the server's nonce differs, the proof fails.
    handshake second(a, me, std::nullopt);
    const std::string cn = auth::make_nonce();
    second.on_message(protocol::make_hello(4096, cn), base());
    REQUIRE(second.current() == handshake::state::proof);
    CHECK(error_of(second.on_message(protocol::make_proof(proof), base())) ==
          zproc::server_errc::unauthenticated);

    handshake admin(a, me, std::nullopt);
    authenticate(admin, secret);
    CHECK(admin.current() == handshake::state::accepted);
    CHECK(admin.role().what == zproc::access_role::kind::admin);
  }

  TEST_CASE("a server without tokens: TCP is open (insecure), a client offering a token is told") {
    zproc::server_config::access_config insecure;
    insecure.insecure = true;
    handshake open(insecure, me, std::nullopt);
    open.on_message(protocol::make_hello(4096), base());
    CHECK(open.current() == handshake::state::accepted);
    handshake offered(insecure, me, std::nullopt);
    CHECK(error_of(offered.on_message(protocol::make_hello(4096, auth::make_nonce()), base())) ==
          zproc::server_errc::unauthenticated);
  }

  TEST_CASE("proofs: labelled per side, bound to both nonces, compared in full") {
    const std::string cn = auth::make_nonce(), sn = auth::make_nonce();
    CHECK(cn != sn);
    const auto p = auth::client_proof(secret, cn, sn);
    CHECK(p.size() == 64);
    CHECK(p != auth::server_proof(secret, cn, sn));
    CHECK(p != auth::client_proof(secret, sn, cn));
    CHECK(p != auth::client_proof(reader_secret, cn, sn));
    CHECK(auth::same_proof(p, auth::client_proof(secret, cn, sn)));
    CHECK_FALSE(auth::same_proof(p, p.substr(0, 63)));
  }

  TEST_CASE("roles read and written back; bad ones named") {
    using zproc::access_role;
    for (const char* text : {"admin", "read-write", "read-only:a,b", "worker:pool", "read-write:x"})
      CHECK(access_role::parse(text).to_string() == text);
    CHECK(access_role::parse("worker").swarm == "default");
    for (const char* bad : {"root", "admin:x", "worker:a,b", "read-only:", "read-only:a,,b", ""})
      CHECK_THROWS_AS(access_role::parse(bad), zproc::error);
  }
}
