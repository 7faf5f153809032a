#include "support/transport.hpp"

#include "support/pki.hpp"

#include <zproc/tls.hpp>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace zproc::test {

zproc::context_options context_options() {
  zproc::context_options o;
  const char* v = std::getenv("ZPROC_TEST_TRANSPORT");
  const std::string transport = v ? v : "";
  if (transport.empty() || transport == "ipc") return o;
  if (transport == "tcp") {
    o.server.listen = {"tcp://127.0.0.1:0"};
    return o;
  }
  if (transport != "tls")
    throw std::invalid_argument("ZPROC_TEST_TRANSPORT: ipc, tcp or tls, not " + transport);
  static const test_pki pki;  // made once, removed at exit
  o.server.listen = {"tls://127.0.0.1:0"};
  o.server.tls.cert_file = pki.cert;
  o.server.tls.key_file = pki.key;
  o.tls = zproc::tls_options{pki.ca, "", "", ""};
  return o;
}

std::vector<std::string> client_env(const zproc::context& ctx) {
  std::vector<std::string> env;
  const client_options co = ctx.connect_options();
  if (co.token && !co.token->empty()) env.push_back("ZPROC_TOKEN=" + *co.token);
  if (co.tls && !co.tls->ca_file.empty()) env.push_back("ZPROC_TLS_CA=" + co.tls->ca_file);
  return env;
}

}  // namespace zproc::test
