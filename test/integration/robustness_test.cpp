// Bad input on raw sockets: the server answers with an error or closes that one connection,
// and keeps serving everyone else.
#include "protocol/frame.hpp"
#include "protocol/message.hpp"
#include "support/raw_peer.hpp"
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

#include <random>
#include <thread>

using namespace zproc;
using nlohmann::json;
namespace asio = boost::asio;

namespace {

test::server_process& srv() {
  static test::server_process s;
  return s;
}

/// A raw connection to the shared server's Unix socket.
class raw_peer : public test::raw_peer {
 public:
  raw_peer() : test::raw_peer(srv().ipc()) {}
};

/// Another, well-behaved client still gets answers.
void server_still_answers() {
  client c;
  c.connect(srv().tcp());
  CHECK(c.ping() == srv().pid());
  state st(c, "robust");
  st.set("alive", true);
  CHECK(st.get("alive") == true);
}

error_code error_of(const json& reply) {
  std::string message;
  REQUIRE(reply.contains("e"));
  return protocol::decode_error(reply["e"], message);
}

}  // namespace

TEST_SUITE("robustness") {
  TEST_CASE("random bytes instead of a hello") {
    std::mt19937 rng(12345);
    for (int round = 0; round < 20; ++round) {
      raw_peer p;
      std::string junk(1 + rng() % 300, '\0');
      for (auto& ch : junk) ch = static_cast<char>(rng());
      p.send_bytes(junk);
      // Whatever the junk announces, the connection ends (error reply and close, or a close
      // after the hello deadline for junk that announces a long frame): read until EOF.
      for (int i = 0; i < 3; ++i) {
        json r = p.receive();
        if (r.is_discarded()) break;
      }
    }
    server_still_answers();
  }

  TEST_CASE("random bytes after the hello") {
    std::mt19937 rng(777);
    for (int round = 0; round < 20; ++round) {
      raw_peer p;
      p.hello();
      std::string junk(64, '\0');
      for (auto& ch : junk) ch = static_cast<char>(rng());
      p.send_bytes(junk);
    }
    server_still_answers();
  }

  TEST_CASE("a truncated frame, then the peer goes away") {
    {
      raw_peer p;
      p.hello();
      std::string wire;
      protocol::append_frame(wire, json{{"i", 1}, {"o", "set"}, {"n", "robust"}, {"k", "t"},
                                        {"v", std::string(1000, 'x')}});
      p.send_bytes(std::string_view(wire).substr(0, wire.size() / 2));
    }
    server_still_answers();
    client c;
    c.connect(srv().ipc());
    CHECK_FALSE(state(c, "robust").contains("t"));  // half a frame is never applied
  }

  TEST_CASE("an oversized frame gets frame_too_large and a close") {
    raw_peer p;
    p.hello();
    const char header[4] = {0x7f, 0x00, 0x00, 0x00};  // ~2 GiB announced
    p.send_bytes(std::string_view(header, 4));
    json r = p.receive();
    CHECK(r["i"] == 0);
    CHECK(error_of(r) == server_errc::frame_too_large);
    CHECK(p.closed_by_server());
    server_still_answers();
  }

  TEST_CASE("unknown op, wrong types, missing id: error replies, connection stays") {
    raw_peer p;
    p.hello();
    p.send(json{{"i", 1}, {"o", "launch_missiles"}, {"n", "robust"}});
    json r = p.receive();
    CHECK(r["i"] == 1);
    CHECK(error_of(r) == server_errc::unknown_op);

    p.send(json{{"i", 2}, {"o", "set"}, {"n", "robust"}, {"k", 42}, {"v", 1}});
    r = p.receive();
    CHECK(r["i"] == 2);
    CHECK(error_of(r) == server_errc::bad_request);

    p.send(json{{"i", 3}, {"o", "update"}, {"n", "robust"}, {"v", "not an object"}});
    CHECK(error_of(p.receive()) == server_errc::wrong_type);

    p.send(json{{"i", 4}, {"o", "get"}, {"n", 17}, {"k", "x"}});
    CHECK(error_of(p.receive()) == server_errc::bad_request);

    p.send(json{{"o", "get"}, {"n", "robust"}, {"k", "x"}});  // no id
    r = p.receive();
    CHECK(r["i"] == 0);
    CHECK(error_of(r) == server_errc::bad_request);

    p.send(json::array({1, 2, 3}));
    CHECK(error_of(p.receive()) == server_errc::bad_request);

    std::string bad_payload = std::string("\0\0\0\x02", 4) + "\xc1\xc1";  // not MessagePack
    p.send_bytes(bad_payload);
    CHECK(error_of(p.receive()) == server_errc::malformed_frame);

    p.send(json{{"i", 5}, {"o", "ping"}});  // still the same connection
    r = p.receive();
    CHECK(r["i"] == 5);
    CHECK(r["r"] == srv().pid());
    server_still_answers();
  }

  TEST_CASE("no hello, or another protocol version: error and close") {
    {
      raw_peer p;
      p.send(json{{"i", 1}, {"o", "ping"}});
      CHECK(error_of(p.receive()) == server_errc::handshake_required);
      CHECK(p.closed_by_server());
    }
    {
      raw_peer p;
      p.send(json{{"hello", "zproc"}, {"version", protocol::version + 1}});
      CHECK(error_of(p.receive()) == server_errc::version_mismatch);
      CHECK(p.closed_by_server());
    }
    server_still_answers();
  }

  TEST_CASE("a client that sends but never reads is stopped being read (bounded memory)") {
    // An in-process server with a small output limit, so that backpressure must engage.
    server_config cfg;
    cfg.max_pending_output = 256 * 1024;
    server_thread small(cfg);
    {
      client c;
      c.connect(small.address());
      state(c, "bp").set("big", std::string(8 * 1024, 'x'));
    }
    asio::io_context ioc;
    asio::local::stream_protocol::socket sock(ioc);
    sock.connect(asio::local::stream_protocol::endpoint(address::parse(small.address()).path));
    std::string hello;
    protocol::append_frame(hello, protocol::make_hello(protocol::default_max_frame_size));
    asio::write(sock, asio::buffer(hello));
    sock.non_blocking(true);
    // Each request asks for an 8 KiB reply that is never read. Without backpressure the server
    // reads every request and buffers every reply (80,000 x 8 KiB = 640 MiB); with it, the
    // server stops reading and our sends soon block (EAGAIN).
    std::string one;
    protocol::append_frame(one, json{{"i", 1}, {"o", "get"}, {"n", "bp"}, {"k", "big"}});
    std::string batch;
    for (int i = 0; i < 100; ++i) batch += one;
    std::size_t sent_requests = 0;
    bool blocked = false;
    for (int attempt = 0; attempt < 800 && !blocked; ++attempt) {
      std::size_t off = 0;
      while (off < batch.size()) {
        error_code ec;
        const auto n = sock.write_some(asio::buffer(batch.data() + off, batch.size() - off), ec);
        if (ec == asio::error::would_block) {
          // Give the server time to catch up; if it still does not read, it is holding back.
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          const auto m = sock.write_some(asio::buffer(batch.data() + off, batch.size() - off), ec);
          if (ec == asio::error::would_block) {
            blocked = true;
            break;
          }
          off += m;
          continue;
        }
        REQUIRE_FALSE(ec);
        off += n;
      }
      sent_requests += 100;
    }
    CHECK(blocked);
    CHECK(sent_requests < 80'000);
    // Meanwhile everyone else is served.
    client other;
    other.connect(small.address());
    CHECK(state(other, "bp").get("big").get_ref<const std::string&>().size() == 8 * 1024);
  }

  TEST_CASE("fuzz: valid frame headers around random payloads and random requests") {
    std::mt19937 rng(2024);
    raw_peer p;
    p.hello();
    for (int round = 0; round < 300; ++round) {
      std::string wire;
      if (round % 2 == 0) {
        std::string payload(rng() % 64, '\0');
        for (auto& ch : payload) ch = static_cast<char>(rng());
        const auto n = static_cast<std::uint32_t>(payload.size());
        wire = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                static_cast<char>(n)};
        wire += payload;
      } else {
        static const char* ops[] = {"get", "set", "del", "update", "pop", "watch", "cancel",
                                    "history", "at", "nope"};
        json req = {{"o", ops[rng() % 10]}};
        if (rng() % 4) req["i"] = static_cast<int>(rng() % 1000) - 10;
        if (rng() % 3) req["n"] = rng() % 2 ? json("fuzz") : json(rng() % 5);
        if (rng() % 3) req["k"] = rng() % 2 ? json("k") : json::array({1});
        if (rng() % 3) req["v"] = rng() % 2 ? json::object({{"a", 1}}) : json(nullptr);
        if (rng() % 5 == 0) req["after"] = rng() % 2 ? json(-1) : json("x");
        if (rng() % 5 == 0) req["pred"] = json{{"kind", "equal"}};
        protocol::append_frame(wire, req);
      }
      p.send_bytes(wire);
    }
    p.send(json{{"i", 999999}, {"o", "ping"}});
    // Every reply so far is well-formed; the connection ends with the answer to the ping.
    for (int i = 0; i < 2000; ++i) {
      json r = p.receive();
      REQUIRE_FALSE(r.is_discarded());
      if (r.value("i", std::uint64_t{0}) == 999999) {
        CHECK(r["r"] == srv().pid());
        break;
      }
    }
    server_still_answers();
  }
}
