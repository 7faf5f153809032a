#include <zproc/error.hpp>

#include <string>

namespace zproc {

namespace {

class client_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "zproc.client"; }
  std::string message(int ev) const override {
    switch (static_cast<client_errc>(ev)) {
      case client_errc::bad_address:
        return "bad address: expected ipc:///path/to.sock, tcp://host:port or tls://host:port";
      case client_errc::server_unreachable:
        return "no zproc server at that address: start one with 'zproc server --listen ADDR' "
               "or check ZPROC_ADDRESS";
      case client_errc::version_mismatch:
        return "the server speaks another protocol version: use the same zproc release on "
               "both ends";
      case client_errc::not_connected: return "not connected: call connect() first";
      case client_errc::connection_closed:
        return "the connection to the server closed before the reply came";
      case client_errc::protocol_error: return "the server sent something that is not zproc";
      case client_errc::frame_too_large:
        return "the message is larger than the maximum frame size";
      case client_errc::timeout: return "the operation timed out";
      case client_errc::already_connected: return "the client is already connected";
      case client_errc::wrong_mode:
        return "async operation on a blocking client: construct zproc::client with an executor "
               "to use async operations";
      case client_errc::connection_lost:
        return "the connection to the server was lost; the request may or may not have been "
               "applied";
      case client_errc::body_threw:
        return "code of the caller's that zproc ran (an atomic body, a watch predicate) threw";
      case client_errc::untrusted_server:
        return "the server did not prove that it is the one this client trusts (its token, or "
               "its TLS certificate)";
    }
    return "unknown zproc client error " + std::to_string(ev);
  }
};

class server_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "zproc.server"; }
  std::string message(int ev) const override {
    switch (static_cast<server_errc>(ev)) {
      case server_errc::key_not_found: return "key not found";
      case server_errc::wrong_type: return "a value has the wrong type for this operation";
      case server_errc::bad_request: return "malformed request";
      case server_errc::unknown_op: return "unknown operation";
      case server_errc::frame_too_large:
        return "the frame exceeds the server's maximum frame size";
      case server_errc::malformed_frame: return "the frame is not valid MessagePack";
      case server_errc::handshake_required: return "the connection must start with a hello";
      case server_errc::version_mismatch: return "unsupported protocol version";
      case server_errc::empty_namespace: return "the namespace is empty";
      case server_errc::reply_too_large:
        return "the reply exceeds the client's maximum frame size; read page by page "
               "(state::keys_page/items_page, or the 'limit' and 'after' fields of keys/items)";
      case server_errc::shutting_down: return "the server is shutting down";
      case server_errc::internal: return "internal server error";
      case server_errc::conflict:
        return "the data an atomic operation read was changed meanwhile";
      case server_errc::compacted:
        return "that revision is no longer in the server's history (compacted)";
      case server_errc::limit_reached: return "a limit of the server was reached";
      case server_errc::out_of_memory: return "the server is out of memory; nothing was changed";
      case server_errc::unauthenticated:
        return "the server did not let this connection in (token or user not accepted)";
      case server_errc::forbidden: return "this connection may not do that";
    }
    return "unknown zproc server error " + std::to_string(ev);
  }
};

class process_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "zproc.process"; }
  std::string message(int ev) const override {
    switch (static_cast<process_errc>(ev)) {
      case process_errc::remote_exception: return "the target threw an exception";
      case process_errc::exited: return "the process ended without a value";
      case process_errc::task_lost: return "every worker that took the task died";
      case process_errc::wrong_result_type:
        return "the type asked for is not what the target returns";
    }
    return "unknown zproc process error " + std::to_string(ev);
  }
};

}  // namespace

const boost::system::error_category& client_category() noexcept {
  static const client_category_impl instance;
  return instance;
}

const boost::system::error_category& server_category() noexcept {
  static const server_category_impl instance;
  return instance;
}

const boost::system::error_category& process_category() noexcept {
  static const process_category_impl instance;
  return instance;
}

}  // namespace zproc
