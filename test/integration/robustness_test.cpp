// Bad input on raw sockets: the server answers with an error or closes that one connection,
// and keeps serving everyone else.
#include "protocol/frame.hpp"
#include "protocol/message.hpp"
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

using namespace zproc;
using nlohmann::json;
namespace asio = boost::asio;

namespace {

test::server_process& srv() {
  static test::server_process s;
  return s;
}

/// A raw Unix-socket connection to the server, with a receive timeout so that no test hangs.
class raw_peer {
 public:
  raw_peer() : sock_(ioc_) {
    sock_.connect(asio::local::stream_protocol::endpoint(address::parse(srv().ipc()).path));
    timeval tv{5, 0};
    ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send_bytes(std::string_view bytes) { asio::write(sock_, asio::buffer(bytes)); }
  void send(const json& msg) {
    std::string wire;
    protocol::append_frame(wire, msg);
    send_bytes(wire);
  }
  void hello() {
    send(protocol::make_hello(protocol::default_max_frame_size));
    CHECK(receive().contains("hello"));
  }
  /// The next frame; a discarded json if the server closed the connection.
  json receive() {
    std::string_view payload;
    while (decoder_.next(payload) != protocol::frame_decoder::status::frame) {
      auto space = decoder_.prepare();
      error_code ec;
      const auto n = sock_.read_some(asio::buffer(space.data(), space.size()), ec);
      if (ec) return json::value_t::discarded;
      decoder_.commit(n);
    }
    return protocol::decode_payload(payload);
  }
  /// True if the server closed the connection (EOF) within the receive timeout.
  bool closed_by_server() {
    char c;
    error_code ec;
    sock_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

 private:
  asio::io_context ioc_;
  asio::local::stream_protocol::socket sock_;
  protocol::frame_decoder decoder_;
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

  TEST_CASE("a client that sends but never reads does not stall the others") {
    raw_peer p;
    p.hello();
    std::string burst;
    for (int i = 1; i <= 20000; ++i)
      protocol::append_frame(burst, json{{"i", i}, {"o", "copy"}, {"n", "robust"}});
    p.send_bytes(burst);  // never reads the replies
    server_still_answers();
  }
}
