// The cost of getting in: connect + hello, without a token and with one (the HMAC
// challenge-response: one more round trip, two HMACs per side), over TCP and the Unix socket,
// against a raw TCP connect to the same server as the floor; and a set round trip on a
// connection that authenticated vs one that did not (the same after the hello). Two real
// server processes: `--insecure`, and `--token-file`. Run: build/bench/bench_connect [--quick]
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

stats connect_hello(const std::string& address, const std::string& token) {
  zproc::client_options o;
  o.token = token;
  return measure([&] {
    zproc::client c(o);
    c.connect(address);
  });
}

stats set_round_trip(const std::string& address, const std::string& token) {
  zproc::client_options o;
  o.token = token;
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
    std::printf("%-44s %29.2fx\n", "tcp: token / no token", tcp_auth.p50_us / tcp_open.p50_us);

    std::printf("\n%-44s %9s %9s %9s\n", "set round trip after the hello", "p50", "p99",
                "vs no token");
    const stats set_open = set_round_trip(open_addrs[1], "");
    const stats set_auth = set_round_trip(guarded_addrs[1], token);
    row("tcp, no token", set_open, set_open.p50_us);
    row("tcp, authenticated with a token", set_auth, set_open.p50_us);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_connect: %s\n", e.what());
    std::filesystem::remove(token_file);
    return 1;
  }
  std::filesystem::remove(token_file);
  return 0;
}
