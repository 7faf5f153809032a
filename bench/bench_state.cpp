// bench_state: round trips and throughput of the state server, as ratios to a floor measured in
// the same run (the machines are shared and noisy: absolute times drift, ratios hold).
//
//   floor      a raw Unix-socket ping-pong of a small message between two processes
//              (blocking write + read, no framing, no serialization)
//   get/set    our client against a real `zproc server` process, over ipc and tcp, blocking
//              and co_await, one request at a time
//   pipelined  ops/s with 1, 16 and 256 requests in flight on one connection
//   big ns     set latency with 10 and with 1,000,000 keys in the namespace
//
// Usage: bench_state [--quick]
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <poll.h>
#include <csignal>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>


#include "support.hpp"

namespace {

using namespace zproc::bench;
namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

int iterations = 20000;

/// Times `op` `n` times after a warm-up; per-call latency in microseconds.
template <class Op>
stats measure(int n, Op&& op) {
  for (int i = 0; i < n / 10; ++i) op(i);
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = clock_type::now();
    op(i);
    samples.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }
  return summarize(samples);
}

// --- the floor: a raw echo over a Unix socket ---------------------------------------------------

constexpr std::size_t echo_size = 32;  // about the size of a small get request

int run_echo_server(const char* path) {
  const int srv = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  ::unlink(path);
  if (::bind(srv, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(srv, 1) != 0)
    return 1;
  std::printf("echo ready\n");
  std::fflush(stdout);
  const int c = ::accept(srv, nullptr, nullptr);
  char buf[echo_size];
  for (;;) {
    std::size_t got = 0;
    while (got < echo_size) {
      const ssize_t n = ::read(c, buf + got, echo_size - got);
      if (n <= 0) return 0;
      got += static_cast<std::size_t>(n);
    }
    if (::write(c, buf, echo_size) != static_cast<ssize_t>(echo_size)) return 0;
  }
}

stats measure_floor(const std::string& self) {
  const std::string path = "/tmp/zproc-bench-echo-" + std::to_string(::getpid()) + ".sock";
  child echo;
  spawn(echo, {self, "--echo", path});
  read_lines(echo, "echo ready", 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("connect to echo");
  char buf[echo_size] = {};
  auto s = measure(iterations, [&](int) {
    if (::write(fd, buf, echo_size) != static_cast<ssize_t>(echo_size)) throw std::runtime_error("w");
    std::size_t got = 0;
    while (got < echo_size) {
      const ssize_t n = ::read(fd, buf + got, echo_size - got);
      if (n <= 0) throw std::runtime_error("echo closed");
      got += static_cast<std::size_t>(n);
    }
  });
  ::close(fd);
  ::unlink(path.c_str());
  return s;
}

// --- zproc ----------------------------------------------------------------------------------------

stats measure_blocking(const std::string& address, bool is_set) {
  zproc::client c;
  c.connect(address);
  zproc::state st(c, "bench");
  st.set("key", 1);
  if (is_set) return measure(iterations, [&](int i) { st.set("key", i); });
  return measure(iterations, [&](int) { st.get("key"); });
}

stats measure_async(const std::string& address, bool is_set) {
  asio::io_context ioc(1);
  stats s;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        zproc::client c(ioc.get_executor());
        co_await c.async_connect(address);
        zproc::state st(c, "bench");
        zproc::json one = 1;
        co_await st.async_set("key", one);
        std::vector<double> samples;
        const int warmup = iterations / 10;
        for (int i = 0; i < iterations + warmup; ++i) {
          const auto t0 = clock_type::now();
          if (is_set) {
            zproc::json v = i;
            co_await st.async_set("key", v);
          } else {
            co_await st.async_get("key");
          }
          if (i >= warmup)
            samples.push_back(
                std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
        }
        s = summarize(samples);
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  ioc.run();
  return s;
}

/// `in_flight` coroutines share one connection, each doing gets back to back: ops per second.
double measure_pipelined(const std::string& address, int in_flight, int total) {
  asio::io_context ioc(1);
  zproc::client c(ioc.get_executor());
  // Everything the workers use lives here, in the function, not in a coroutine frame.
  std::optional<zproc::state> st;
  int remaining = total;
  int running = in_flight;
  double ops_per_s = 0;
  auto t0 = clock_type::now();
  const auto worker = [&]() -> asio::awaitable<void> {
    while (remaining > 0) {
      --remaining;
      co_await st->async_get("key");
    }
    if (--running == 0) {
      ops_per_s = total / std::chrono::duration<double>(clock_type::now() - t0).count();
      c.close();  // lets ioc.run() return
    }
  };
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        co_await c.async_connect(address);
        st.emplace(c, "bench");
        zproc::json one = 1;
        co_await st->async_set("key", one);
        t0 = clock_type::now();
        for (int i = 0; i < in_flight; ++i) asio::co_spawn(ioc, worker(), asio::detached);
      },
      asio::detached);
  ioc.run();
  return ops_per_s;
}

stats measure_set_with_keys(const std::string& address, int keys) {
  zproc::client c;
  c.connect(address);
  zproc::state st(c, "bench-" + std::to_string(keys));
  st.clear();
  constexpr int batch = 10000;
  for (int base = 0; base < keys; base += batch) {
    zproc::json chunk = zproc::json::object();
    for (int i = base; i < std::min(keys, base + batch); ++i) chunk["key" + std::to_string(i)] = i;
    st.update(std::move(chunk));
  }
  if (st.size() != static_cast<std::uint64_t>(keys)) throw std::runtime_error("prefill failed");
  std::mt19937 rng(1);
  return measure(iterations, [&](int i) {
    st.set("key" + std::to_string(rng() % static_cast<unsigned>(keys)), i);
  });
}

void row(const char* name, stats s, double floor_p50) {
  std::printf("%-34s %9.1f %9.1f %8.2fx\n", name, s.p50_us, s.p99_us, s.p50_us / floor_p50);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--echo") return run_echo_server(argv[2]);
  if (argc == 2 && std::string(argv[1]) == "--quick") iterations = 2000;
  std::signal(SIGPIPE, SIG_IGN);
  const std::string self = "/proc/self/exe";
  try {
    const std::string ipc = "ipc:///tmp/zproc-bench-" + std::to_string(::getpid()) + ".sock";
    child server;
    spawn(server, {zproc_exe(), "server", "--listen", ipc, "--listen", "tcp://127.0.0.1:0", "--insecure"});
    const auto addrs = read_lines(server, "listening at ", 2);
    const std::string& tcp = addrs[1];

    std::printf("zproc bench_state: %d round trips per row, latency in microseconds\n\n",
                iterations);
    std::printf("%-34s %9s %9s %9s\n", "round trip", "p50", "p99", "p50/floor");
    const stats floor = measure_floor(self);
    row("floor: raw unix socket ping-pong", floor, floor.p50_us);
    row("get  ipc blocking", measure_blocking(ipc, false), floor.p50_us);
    row("set  ipc blocking", measure_blocking(ipc, true), floor.p50_us);
    row("get  ipc co_await", measure_async(ipc, false), floor.p50_us);
    row("set  ipc co_await", measure_async(ipc, true), floor.p50_us);
    row("get  tcp blocking", measure_blocking(tcp, false), floor.p50_us);
    row("set  tcp blocking", measure_blocking(tcp, true), floor.p50_us);
    row("get  tcp co_await", measure_async(tcp, false), floor.p50_us);
    row("set  tcp co_await", measure_async(tcp, true), floor.p50_us);

    std::printf("\n%-34s %9s %9s %9s\n", "set with N keys in the namespace", "p50", "p99",
                "vs 10");
    const stats small = measure_set_with_keys(ipc, 10);
    const stats big = measure_set_with_keys(ipc, 1'000'000);
    std::printf("%-34s %9.1f %9.1f %8.2fx\n", "set, 10 keys (ipc blocking)", small.p50_us,
                small.p99_us, 1.0);
    std::printf("%-34s %9.1f %9.1f %8.2fx\n", "set, 1,000,000 keys (ipc blocking)", big.p50_us,
                big.p99_us, big.p50_us / small.p50_us);

    std::printf("\n%-34s %12s %9s\n", "pipelined gets, one ipc connection", "ops/s", "vs 1");
    const int total = iterations * 5;
    const double one = measure_pipelined(ipc, 1, total);
    for (int n : {1, 16, 256}) {
      const double r = n == 1 ? one : measure_pipelined(ipc, n, total);
      std::printf("%-34s %12.0f %8.2fx\n", (std::to_string(n) + " in flight").c_str(), r, r / one);
    }
    std::printf("%-34s %12.0f\n", "(floor as ops/s, one in flight)", 1e6 / floor.p50_us);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_state: %s\n", e.what());
    return 1;
  }
  return 0;
}
