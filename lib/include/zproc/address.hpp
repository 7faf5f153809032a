// zproc/address.hpp - where a server listens: ipc:///path/to.sock or tcp://host:port.
#pragma once

#include <zproc/error.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace zproc {

/// A parsed server address.
///  - `ipc:///run/app.sock`: a Unix-domain stream socket at that path.
///  - `tcp://127.0.0.1:5000`, `tcp://[::1]:5000`, `tcp://localhost:0`: TCP; port 0 asks the
///    server to pick a free port (the server then reports the real address).
///  - `tls://host:port`: TCP with TLS (zproc/tls.hpp, server_config::tls).
struct address {
  enum class transport { ipc, tcp, tls };

  transport kind = transport::ipc;
  std::string path;        ///< ipc: the socket path
  std::string host;        ///< tcp: host name or IP literal (without brackets)
  std::uint16_t port = 0;  ///< tcp: port

  /// Parses `text`; throws zproc::error(client_errc::bad_address) with a message on bad input.
  static address parse(std::string_view text);
  /// Parses `text`; sets `ec` and returns nullopt on bad input.
  static std::optional<address> parse(std::string_view text, error_code& ec) noexcept;

  /// The canonical text form, which parse() accepts.
  std::string to_string() const;
  /// TCP, with TLS or without.
  bool is_tcp() const noexcept { return kind != transport::ipc; }

  friend bool operator==(const address&, const address&) = default;
};

/// The environment variable that names the default address for tools and children.
inline constexpr const char* address_env = "ZPROC_ADDRESS";

/// The address in ZPROC_ADDRESS, if set and not empty.
std::optional<std::string> address_from_env();

}  // namespace zproc
