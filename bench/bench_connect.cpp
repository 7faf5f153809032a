// The cost of getting in: connect + hello, without a token and with one (the HMAC
// challenge-response: one more round trip, two HMACs per side), over TCP, TLS and the Unix
// socket, against a raw TCP connect to the same server as the floor; and a set round trip on a
// connection that authenticated vs one that did not, and over TLS. Three real server
// processes: `--insecure`, `--token-file`, and TLS with a token (a certificate made with the
// openssl command). Run: build/bench/bench_connect [--quick]
#include "support.hpp"

#include <zproc/zproc.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

using namespace zproc::bench;

namespace {

int iterations = 2000;

stats measure(const std::function<void()>& once) {
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(iterations));
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    once();
    samples.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  return summarize(samples);
}

stats raw_tcp_connect(const std::string& tcp) {
  const auto a = zproc::address::parse(tcp);
  boost::asio::io_context io;
  const boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address(a.host), a.port);
  return measure([&] {
    boost::asio::ip::tcp::socket s(io);
    s.connect(ep);
  });
}

std::optional<zproc::tls_options> tls;  // for the tls:// rows

stats connect_hello(const std::string& address, const std::string& token) {
  zproc::client_options o;
  o.token = token;
  o.tls = tls;
  return measure([&] {
    zproc::client c(o);
    c.connect(address);
  });
}

stats set_round_trip(const std::string& address, const std::string& token) {
  zproc::client_options o;
  o.token = token;
  o.tls = tls;
  zproc::client c(o);
  c.connect(address);
  zproc::state st(c, "bench");
  int i = 0;
  return measure([&] { st.set("k", ++i); });
}

void row(const char* name, stats s, double floor) {
  std::printf("%-44s %9.1f %9.1f %8.2fx\n", name, s.p50_us, s.p99_us, s.p50_us / floor);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--quick") iterations = 300;
  std::signal(SIGPIPE, SIG_IGN);
  const std::string tag = std::to_string(::getpid());
  const std::string token_file = "/tmp/zproc-bench-token-" + tag;
  std::filesystem::remove(token_file);
  try {
    child open, guarded;
    const std::string open_ipc = "ipc:///tmp/zproc-bench-open-" + tag + ".sock";
    const std::string guarded_ipc = "ipc:///tmp/zproc-bench-guarded-" + tag + ".sock";
    spawn(open, {ZPROC_EXE, "server", "--listen", open_ipc, "--listen", "tcp://127.0.0.1:0",
                 "--insecure"});
    spawn(guarded, {ZPROC_EXE, "server", "--listen", guarded_ipc, "--listen",
                    "tcp://127.0.0.1:0", "--token-file", token_file});
    const auto open_addrs = read_lines(open, "listening at ", 2);
    const auto guarded_addrs = read_lines(guarded, "listening at ", 2);
    const std::string token = zproc::read_token_file(token_file);
    // A CA and a certificate for 127.0.0.1, for the TLS server.
    const std::string pki = "/tmp/zproc-bench-pki-" + tag;
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes 2>/dev/null";
    const std::string make_pki =
        "mkdir -p " + pki + " && cd " + pki +
        " && openssl req -x509 -days 1 -subj /CN=ca -keyout ca.key -out ca.pem" + ec +
        " && openssl req -subj /CN=localhost -keyout s.key -out s.csr" + ec +
        " && echo subjectAltName=IP:127.0.0.1 > ext.cnf && openssl x509 -req -days 1 -in s.csr"
        " -CA ca.pem -CAkey ca.key -CAcreateserial -out s.pem -extfile ext.cnf 2>/dev/null";
    if (std::system(make_pki.c_str()) != 0) throw std::runtime_error("openssl failed");
    child secure;
    spawn(secure, {ZPROC_EXE, "server", "--listen", "tls://127.0.0.1:0", "--tls-cert",
                   pki + "/s.pem", "--tls-key", pki + "/s.key", "--token-file", token_file});
    const std::string tls_addr = read_lines(secure, "listening at ", 1)[0];

    std::printf("zproc bench_connect: %d per row, microseconds\n\n", iterations);
    std::printf("%-44s %9s %9s %9s\n", "connect + hello", "p50", "p99", "p50/floor");
    const stats floor = raw_tcp_connect(open_addrs[1]);
    row("floor: raw TCP connect (no hello)", floor, floor.p50_us);
    const stats tcp_open = connect_hello(open_addrs[1], "");
    const stats tcp_auth = connect_hello(guarded_addrs[1], token);
    row("tcp, no token (--insecure)", tcp_open, floor.p50_us);
    row("tcp, token (HMAC challenge-response)", tcp_auth, floor.p50_us);
    const stats ipc_open = connect_hello(open_ipc, "");
    const stats ipc_auth = connect_hello(guarded_ipc, token);
    row("ipc, no token (peer uid checked)", ipc_open, floor.p50_us);
    row("ipc, token", ipc_auth, floor.p50_us);
    tls = zproc::tls_options{pki + "/ca.pem", "", "", ""};
    const stats tls_auth = connect_hello(tls_addr, token);
    row("tls, token", tls_auth, floor.p50_us);
    std::printf("%-44s %29.2fx\n", "tcp: token / no token", tcp_auth.p50_us / tcp_open.p50_us);

    std::printf("\n%-44s %9s %9s %9s\n", "set round trip after the hello", "p50", "p99",
                "vs no token");
    tls.reset();
    const stats set_open = set_round_trip(open_addrs[1], "");
    const stats set_auth = set_round_trip(guarded_addrs[1], token);
    row("tcp, no token", set_open, set_open.p50_us);
    row("tcp, authenticated with a token", set_auth, set_open.p50_us);
    tls = zproc::tls_options{pki + "/ca.pem", "", "", ""};
    row("tls, authenticated with a token", set_round_trip(tls_addr, token), set_open.p50_us);
    tls.reset();
    std::filesystem::remove_all(pki);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_connect: %s\n", e.what());
    std::filesystem::remove(token_file);
    return 1;
  }
  std::filesystem::remove(token_file);
  return 0;
}
