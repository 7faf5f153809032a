#include <zproc/address.hpp>

#include <charconv>
#include <cstdlib>

namespace zproc {

namespace {
constexpr std::string_view ipc_scheme = "ipc://";
constexpr std::string_view tcp_scheme = "tcp://";
constexpr std::string_view tls_scheme = "tls://";

std::optional<address> bad(error_code& ec) {
  ec = client_errc::bad_address;
  return std::nullopt;
}
}  // namespace

std::optional<address> address::parse(std::string_view text, error_code& ec) noexcept {
  ec.clear();
  address a;
  if (text.starts_with(ipc_scheme)) {
    a.kind = transport::ipc;
    a.path = std::string(text.substr(ipc_scheme.size()));
    // sockaddr_un holds 108 bytes including the terminating NUL.
    if (a.path.empty() || a.path.size() > 107 || a.path.find('\0') != std::string::npos)
      return bad(ec);
    return a;
  }
  const bool tls = text.starts_with(tls_scheme);
  if (!tls && !text.starts_with(tcp_scheme)) return bad(ec);
  std::string_view rest = text.substr(tcp_scheme.size());  // (both schemes are 6 long)
  std::string_view host;
  std::string_view port;
  if (rest.starts_with('[')) {  // [v6]:port
    const auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return bad(ec);
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad(ec);
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad(ec);  // v6 needs brackets
  }
  if (host.empty() || port.empty()) return bad(ec);
  unsigned value = 0;
  auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (err != std::errc() || end != port.data() + port.size() || value > 65535) return bad(ec);
  a.kind = tls ? transport::tls : transport::tcp;
  a.host = std::string(host);
  a.port = static_cast<std::uint16_t>(value);
  return a;
}

address address::parse(std::string_view text) {
  error_code ec;
  auto a = parse(text, ec);
  if (!a)
    throw zproc::error(ec, "bad address '" + std::string(text) +
                               "': expected ipc:///path/to.sock (path up to 107 bytes) or "
                               "tcp://host:port (tls://host:port)");
  return *a;
}

std::string address::to_string() const {
  if (kind == transport::ipc) return std::string(ipc_scheme) + path;
  const bool v6 = host.find(':') != std::string::npos;
  return std::string(kind == transport::tls ? tls_scheme : tcp_scheme) + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<std::string> address_from_env() {
  const char* v = std::getenv(address_env);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

}  // namespace zproc
