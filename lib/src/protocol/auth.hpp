// The hello's authentication, without I/O: nonces, the two proofs (HMAC-SHA256 with the token
// as key), and their constant-time comparison. docs/protocol.md ("Authentication").
//
//   client → server   hello {.., cn: client nonce}
//   server → client   challenge {sn: server nonce}
//   client → server   {cp: client_proof(token, cn, sn)}
//   server → client   hello reply {.., sp: server_proof(token, cn, sn)}   (or an error)
//
// Each side's nonce is fresh per connection, so a recorded proof is worth nothing on another
// connection; the two proofs are keyed the same way but labelled differently, so neither side
// can be made to compute the other's.
#pragma once

#include <string>
#include <string_view>

namespace zproc::protocol::auth {

/// Bytes of a nonce (sent as twice as many hex digits).
inline constexpr std::size_t nonce_bytes = 32;

/// A fresh nonce, in hex, from OpenSSL's random source.
std::string make_nonce();
/// True for a nonce as make_nonce() writes them (64 lowercase hex digits).
bool well_formed_nonce(std::string_view nonce) noexcept;

/// What the client sends to prove it knows `token`; hex.
std::string client_proof(std::string_view token, std::string_view client_nonce,
                         std::string_view server_nonce);
/// What the server sends back to prove it knows `token` too; hex.
std::string server_proof(std::string_view token, std::string_view client_nonce,
                         std::string_view server_nonce);

/// Compares two proofs in time that does not depend on where they differ.
bool same_proof(std::string_view a, std::string_view b) noexcept;

/// `n` random bytes from OpenSSL's random source, in hex.
std::string random_hex(std::size_t n);

/// Initializes OpenSSL's base now (its configuration and TLS still load at first use). OpenSSL
/// frees its global state in an atexit handler registered at its first use; one who registers
/// an atexit handler that joins a thread using OpenSSL calls this first, so that the join
/// (whose thread-exit hook frees the thread's OpenSSL state) runs before OpenSSL's cleanup, not
/// after it (a leak).
void initialize_openssl();

}  // namespace zproc::protocol::auth
