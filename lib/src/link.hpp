// One connection's byte stream, plain or TLS: the socket, and (for a tls:// address) Asio's SSL
// stream over it. The client and the server read and write through it the same way whichever
// it is; the wire protocol inside the TLS stream is unchanged.
#pragma once

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <optional>
#include <utility>

namespace zproc::detail {

class link {
 public:
  using socket_type = boost::asio::generic::stream_protocol::socket;
  using tls_stream = boost::asio::ssl::stream<socket_type&>;
  using executor_type = socket_type::executor_type;

  explicit link(socket_type socket) : socket_(std::move(socket)) {}
  template <class Executor>
  explicit link(const Executor& ex) : socket_(ex) {}
  link(const link&) = delete;
  link& operator=(const link&) = delete;

  socket_type& socket() noexcept { return socket_; }
  executor_type get_executor() noexcept { return socket_.get_executor(); }

  /// From now on, bytes go through TLS over the socket (after a handshake: tls()).
  tls_stream& start_tls(boost::asio::ssl::context& ctx) { return tls_.emplace(socket_, ctx); }
  /// Back to a plain socket (a new connection attempt).
  void reset_tls() noexcept { tls_.reset(); }
  tls_stream* tls() noexcept { return tls_ ? &*tls_ : nullptr; }

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& b, Token&& token) {
    if (tls_) return tls_->async_read_some(b, std::forward<Token>(token));
    return socket_.async_read_some(b, std::forward<Token>(token));
  }
  /// Lets write_now() write: a plain socket goes to non-blocking mode (TLS: nothing).
  void enable_write_now() {
    boost::system::error_code ignored;  // (if it fails, write_now() writes nothing)
    if (!tls_) socket_.non_blocking(true, ignored);
  }
  /// Writes what a plain socket takes at once, without waiting, and returns how many bytes
  /// that was: 0 over TLS, before enable_write_now(), or on an error (which the asynchronous
  /// write of the rest then reports). A write that completes here posts no completion: no
  /// scheduler round, no epoll_wait(0) (Asio posts the completion of one that completes when
  /// it is started).
  template <class Buffers>
  std::size_t write_now(const Buffers& b) {
    if (tls_ || !socket_.non_blocking()) return 0;
    boost::system::error_code ec;
    const std::size_t n = socket_.write_some(b, ec);
    return ec ? 0 : n;
  }

  template <class Buffers, class Token>
  auto async_write_some(const Buffers& b, Token&& token) {
    if (tls_) return tls_->async_write_some(b, std::forward<Token>(token));
    return socket_.async_write_some(b, std::forward<Token>(token));
  }

 private:
  socket_type socket_;
  std::optional<tls_stream> tls_;
};

}  // namespace zproc::detail
