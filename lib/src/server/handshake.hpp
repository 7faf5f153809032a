// The server's side of the hello, without I/O: checks the hello, the Unix peer's user and
// (when the client offers a token) its proof; answers with a challenge, the hello reply or the
// error that closes the connection (protocol/auth.hpp shows the exchange). Nothing a client
// sends before it is accepted reaches the engine.
#pragma once

#include "protocol/message.hpp"

#include <zproc/access.hpp>
#include <zproc/server.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace zproc::server_detail {

/// Who is at the other end of a Unix socket (SO_PEERCRED); nothing for TCP.
struct peer_credentials {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
};

class handshake {
 public:
  enum class state { hello, proof, accepted, refused };

  /// `peer`: the Unix socket's peer (nullopt over TCP). `server_uid`: the server's own user.
  handshake(const server_config::access_config& access, std::uint32_t server_uid,
            std::optional<peer_credentials> peer);

  /// Reads the client's next message and returns the answer: a challenge, the hello reply
  /// (`base` with the server's proof and the role added) or an error reply. After it, state()
  /// says whether the connection is in, out, or owes a proof.
  protocol::json on_message(const protocol::json& msg, protocol::hello_reply base);

  /// The hello will be refused with `ec` and `why`, whatever it says (a limit of the server).
  void refuse_hello(error_code ec, std::string why) {
    pending_ec_ = ec;
    pending_why_ = std::move(why);
  }

  state current() const noexcept { return state_; }
  /// Once accepted: the client's frame limit and the connection's role.
  std::size_t client_max_frame() const noexcept { return request_.max_frame_size; }
  const access_role& role() const noexcept { return role_; }
  /// Once refused: why (for the server's log).
  const std::string& refusal() const noexcept { return refusal_; }

 private:
  protocol::json on_hello(const protocol::json& msg, protocol::hello_reply& base);
  protocol::json on_proof(const protocol::json& msg, protocol::hello_reply& base);
  protocol::json refuse(error_code ec, std::string why);
  protocol::json accept(protocol::hello_reply& base, const access_role& role);
  bool peer_allowed() const;

  const server_config::access_config& access_;
  std::uint32_t server_uid_;
  std::optional<peer_credentials> peer_;
  state state_ = state::hello;
  protocol::hello_request request_;
  std::string server_nonce_;
  access_role role_;
  std::string refusal_;
  error_code pending_ec_;
  std::string pending_why_;
};

}  // namespace zproc::server_detail
