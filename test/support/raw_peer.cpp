#include "support/raw_peer.hpp"

#include <zproc/address.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/time.h>

namespace zproc::test {

namespace asio = boost::asio;
using generic = asio::generic::stream_protocol;

raw_peer::raw_peer(const std::string& text) : sock_(ioc_) {
  const address a = address::parse(text);
  if (a.kind == address::transport::ipc) {
    sock_.connect(generic::endpoint(asio::local::stream_protocol::endpoint(a.path)));
  } else {
    sock_.connect(generic::endpoint(
        asio::ip::tcp::endpoint(asio::ip::make_address(a.host), a.port)));
  }
  timeval tv{5, 0};
  ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void raw_peer::send_bytes(std::string_view bytes) { asio::write(sock_, asio::buffer(bytes)); }

void raw_peer::send(const nlohmann::json& msg) {
  std::string wire;
  protocol::append_frame(wire, msg);
  send_bytes(wire);
}

void raw_peer::hello() { CHECK(try_hello()); }

bool raw_peer::try_hello() {
  send(protocol::make_hello(protocol::default_max_frame_size));
  const auto reply = receive();
  return reply.is_object() && reply.contains("hello");
}

nlohmann::json raw_peer::receive() {
  std::string_view payload;
  while (decoder_.next(payload) != protocol::frame_decoder::status::frame) {
    auto space = decoder_.prepare();
    error_code ec;
    const auto n = sock_.read_some(asio::buffer(space.data(), space.size()), ec);
    if (ec) return nlohmann::json::value_t::discarded;
    decoder_.commit(n);
  }
  return protocol::decode_payload(payload);
}

bool raw_peer::closed_by_server() {
  char c;
  error_code ec;
  sock_.read_some(asio::buffer(&c, 1), ec);
  return ec == asio::error::eof || ec == asio::error::connection_reset;
}

}  // namespace zproc::test
