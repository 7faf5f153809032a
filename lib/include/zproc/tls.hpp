// zproc/tls.hpp - TLS for tls://host:port addresses: what a client trusts and shows.
// The server's side is server_config::tls (zproc/server.hpp). See docs/security.md.
#pragma once

#include <string>

namespace zproc {

/// A client's TLS settings. Certificate verification is always on: the server's certificate
/// must chain to `ca_file` (or the system's CAs) and name `server_name`.
struct tls_options {
  /// CA certificates (PEM) the server's certificate must chain to; empty: the system's.
  std::string ca_file;
  /// A certificate and its key (PEM) for servers that ask clients for one (zproc server
  /// --tls-ca); empty: none.
  std::string cert_file;
  std::string key_file;
  /// The name the server's certificate must carry (and the SNI sent); empty: the address's
  /// host.
  std::string server_name;
};

/// The environment variables tls_options_from_env() reads.
inline constexpr const char* tls_ca_env = "ZPROC_TLS_CA";
inline constexpr const char* tls_cert_env = "ZPROC_TLS_CERT";
inline constexpr const char* tls_key_env = "ZPROC_TLS_KEY";
inline constexpr const char* tls_server_name_env = "ZPROC_TLS_SERVER_NAME";
/// The TLS settings of a client that was given none: ZPROC_TLS_CA, ZPROC_TLS_CERT,
/// ZPROC_TLS_KEY, ZPROC_TLS_SERVER_NAME (each may be unset).
tls_options tls_options_from_env();

}  // namespace zproc
