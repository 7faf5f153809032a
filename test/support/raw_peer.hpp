// Test support: a raw connection to a server (Unix socket or TCP) that sends and reads frames
// by hand, for what a well-behaved client never sends. Reads time out (5 s): no test hangs.
#pragma once

#include "protocol/frame.hpp"
#include "protocol/message.hpp"

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include <string>
#include <string_view>

namespace zproc::test {

class raw_peer {
 public:
  /// Connects to `address` (ipc:// or tcp://); throws if nobody listens there.
  explicit raw_peer(const std::string& address);
  void send_bytes(std::string_view bytes);
  void send(const nlohmann::json& msg);
  /// A hello without a token; checks that the server answered with its hello.
  void hello();
  /// The same without checking: whether the server answered with its hello.
  bool try_hello();
  /// The next frame; a discarded json if the server closed the connection.
  nlohmann::json receive();
  /// True if the server closed the connection (EOF) within the receive timeout.
  bool closed_by_server();

 private:
  boost::asio::io_context ioc_;
  boost::asio::generic::stream_protocol::socket sock_;
  protocol::frame_decoder decoder_;
};

}  // namespace zproc::test
