// bench_scale: the state server under many clients and deep pipelines, side by side with Redis
// in the same run (the machines are shared and noisy: absolute rates drift, ratios hold).
//
// A `zproc server` process and a `redis-server` process (Debian's, started and stopped here
// by PID, on a Unix socket, no persistence) each serve every row of the table, one after the
// other. A row is C client connections over NS namespaces, each connection with D sets in
// flight, for a fixed time:
//   zproc   one client process (this one), K threads (--client-threads, default 1): C
//           zproc::client connections spread over K io_contexts, D coroutines per connection
//           doing co_await async_set back to back (connection i writes namespace i % NS)
//   Redis   redis-benchmark -c C -P D -t set (one thread, C connections, pipelines of D)
// It prints ops/s of both and zproc / Redis. Redis has no namespaces: its rows ignore NS.
// Each row runs once per server thread count of --threads (zproc server --threads T; a server
// process per T). On a 2-core machine the client and server share the cores: thread counts
// above 1 show the cost of the threads more than their gain (docs/performance.md).
//
// Usage: bench_scale [--quick] [--no-redis] [--clients 1,4,16,64] [--depth 1,16,256]
//                    [--ns 1,64] [--threads 1] [--client-threads 1] [--idle 1000]
//                    [--fsync always|interval] [--count N] [--blocking]
// --fsync: durable writes: the zproc server gets a fresh --data-dir with that policy, Redis
// an append-only file with appendfsync always (or everysec), each in a temporary folder.
// --count N: each row is N sets instead of a time (profiles under callgrind; see fixed_count).
// --blocking: the zproc side is C blocking clients (zproc::client without an executor), a
// thread each, one set at a time (depth 1; Redis: redis-benchmark -P 1 as usual).
// Last, the servers' memory per idle connection: --idle N connections (0: skipped).
//        (redis-server and redis-benchmark: `scripts/deps --bench`; without them the Redis
//        column says so)
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.hpp"

namespace {

using namespace zproc::bench;
namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoi(item));
  return out;
}

/// --count N: a row is N sets, not a time (for profiles: instructions per set are the
/// difference of two counts' totals over the difference of the counts). 0: by time.
long long fixed_count = 0;

/// C connections × D sets in flight for `duration` (or fixed_count sets, no warm-up): sets per
/// second. Connection i is number first + i * step of the row (its namespace).
double zproc_sets(const std::string& address, int clients, int depth, int namespaces,
                  std::chrono::milliseconds duration, int first = 0, int step = 1) {
  asio::io_context ioc(1);
  std::vector<std::unique_ptr<zproc::client>> conns;
  std::vector<std::optional<zproc::state>> states(static_cast<std::size_t>(clients));
  for (int i = 0; i < clients; ++i)
    conns.push_back(std::make_unique<zproc::client>(ioc.get_executor()));
  long long done = 0;
  bool measuring = false, stop = false;
  int running = 0;
  clock_type::time_point t0, t1;
  const auto worker = [&](std::size_t c) -> asio::awaitable<void> {
    const zproc::json v = 1;
    while (!stop) {
      co_await states[c]->async_set("key", v);
      if (measuring) ++done;
      if (fixed_count > 0 && done >= fixed_count) stop = true;
    }
    if (--running == 0) {
      if (fixed_count > 0) t1 = clock_type::now();
      for (auto& cl : conns) cl->close();  // lets ioc.run() return
    }
  };
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < clients; ++i) {
          co_await conns[static_cast<std::size_t>(i)]->async_connect(address);
          states[static_cast<std::size_t>(i)].emplace(*conns[static_cast<std::size_t>(i)],
                                                      "scale" + std::to_string((first + i * step) % namespaces));
        }
        for (int i = 0; i < clients; ++i)
          for (int d = 0; d < depth; ++d, ++running)
            asio::co_spawn(ioc, worker(static_cast<std::size_t>(i)), asio::detached);
        if (fixed_count > 0) {
          measuring = true;
          t0 = clock_type::now();
          co_return;
        }
        asio::steady_timer t(ioc, duration / 5);  // warm-up
        co_await t.async_wait(asio::use_awaitable);
        measuring = true;
        t0 = clock_type::now();
        t.expires_after(duration);
        co_await t.async_wait(asio::use_awaitable);
        measuring = false;
        t1 = clock_type::now();
        stop = true;
      },
      asio::detached);
  ioc.run();
  return static_cast<double>(done) / std::chrono::duration<double>(t1 - t0).count();
}

/// --blocking: C blocking clients, a thread each, calling `set` back to back (one in flight
/// each: the depth is ignored), for `duration` after a warm-up (or fixed_count sets in all).
double blocking_sets(const std::string& address, int clients, int namespaces,
                     std::chrono::milliseconds duration) {
  std::atomic<bool> stop{false}, measuring{fixed_count > 0};
  std::atomic<long long> done{0};
  std::vector<std::thread> pool;
  const long long each = fixed_count > 0 ? std::max(1LL, fixed_count / clients) : 0;
  clock_type::time_point t0 = clock_type::now(), t1;
  for (int i = 0; i < clients; ++i)
    pool.emplace_back([&, i] {
      zproc::client c;
      c.connect(address);
      zproc::state st(c, "scale" + std::to_string(i % namespaces));
      const zproc::json v = 1;
      long long mine = 0;
      while (!stop) {
        st.set("key", v);
        if (measuring) ++mine;
        if (each > 0 && mine >= each) break;
      }
      done += mine;
    });
  if (fixed_count == 0) {
    std::this_thread::sleep_for(duration / 5);  // warm-up
    measuring = true;
    t0 = clock_type::now();
    std::this_thread::sleep_for(duration);
    measuring = false;
    t1 = clock_type::now();
    stop = true;
  }
  for (auto& th : pool) th.join();
  if (fixed_count > 0) t1 = clock_type::now();
  return static_cast<double>(done) / std::chrono::duration<double>(t1 - t0).count();
}

/// The same over `threads` client threads (an io_context each), measured at the same time.
double zproc_sets_threaded(const std::string& address, int clients, int depth, int namespaces,
                           std::chrono::milliseconds duration, int threads) {
  threads = std::max(1, std::min(threads, clients));
  if (threads == 1) return zproc_sets(address, clients, depth, namespaces, duration);
  std::vector<double> rates(static_cast<std::size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      const int mine = clients / threads + (t < clients % threads ? 1 : 0);
      rates[static_cast<std::size_t>(t)] =
          zproc_sets(address, mine, depth, namespaces, duration, t, threads);
    });
  for (auto& th : pool) th.join();
  double sum = 0;
  for (double r : rates) sum += r;
  return sum;
}

/// Where redis-server and redis-benchmark are: on the PATH, unless the environment names a
/// folder (on the many-core machine, a bundle's: bench/device/scale.sh).
std::string redis_dir() {
  const char* p = std::getenv("ZPROC_BENCH_REDIS_DIR");
  return p ? p : "/usr/bin";
}

/// A redis-server on a Unix socket, stopped (SIGTERM) with this object.
struct redis {
  std::string socket = "/tmp/zproc-bench-redis-" + std::to_string(::getpid()) + ".sock";
  std::string dir = redis_dir();
  child proc;
  bool up = false;
  std::string data;  // its append-only file's folder (--fsync), removed with this object
  /// `fsync`: empty (no persistence), "always" or "interval" (appendfsync everysec).
  explicit redis(const std::string& fsync) {
    if (::access((dir + "/redis-server").c_str(), X_OK) != 0 ||
        ::access((dir + "/redis-benchmark").c_str(), X_OK) != 0)
      return;
    std::vector<std::string> args{dir + "/redis-server", "--port", "0", "--unixsocket", socket,
                                  "--unixsocketperm", "700", "--save", "", "--loglevel",
                                  "warning"};
    if (fsync.empty()) {
      args.insert(args.end(), {"--appendonly", "no"});
    } else {
      data = "/tmp/zproc-bench-redis-data-" + std::to_string(::getpid());
      std::filesystem::remove_all(data);
      std::filesystem::create_directories(data);
      args.insert(args.end(), {"--appendonly", "yes", "--appendfsync",
                               fsync == "always" ? "always" : "everysec", "--dir", data});
    }
    spawn(proc, args);
    for (int i = 0; i < 100 && !up; ++i) {
      struct stat st {};
      up = ::stat(socket.c_str(), &st) == 0;
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~redis() {
    ::unlink(socket.c_str());
    if (!data.empty()) {
      if (proc.pid > 0) {  // (stopped before its files go)
        ::kill(proc.pid, SIGTERM);
        int status = 0;
        ::waitpid(proc.pid, &status, 0);
        proc.pid = -1;
      }
      std::error_code ec;
      std::filesystem::remove_all(data, ec);
    }
  }

  /// redis-benchmark's SET rate with C connections and pipelines of D, about `duration` long
  /// (the request count is sized from a first short run); 0 on failure.
  double sets(int clients, int depth, std::chrono::milliseconds duration) const {
    const auto run = [&](long long n) {
      const std::string cmd = dir + "/redis-benchmark -s " + socket + " -c " +
                              std::to_string(clients) + " -P " + std::to_string(depth) +
                              " -t set -n " + std::to_string(n) + " -q --csv 2>/dev/null";
      FILE* p = ::popen(cmd.c_str(), "r");
      if (!p) return 0.0;
      char line[512];
      double rate = 0;
      while (std::fgets(line, sizeof line, p))
        if (std::string(line).rfind("\"SET\"", 0) == 0)
          rate = std::strtod(line + 7, nullptr);  // "SET","RATE",...
      ::pclose(p);
      return rate;
    };
    const double probe = run(std::max<long long>(1000, 100LL * clients * depth));
    if (probe <= 0) return 0;
    return run(std::max<long long>(1000, static_cast<long long>(
                                             probe * std::chrono::duration<double>(duration).count())));
  }
};

}  // namespace

/// The server's memory per idle connection: `n` connections that each made one set (zproc) or
/// redis-benchmark's idle mode (-I), the server's VmRSS before and after.
void memory_rows(const std::optional<redis>& r, int n) {
  if (n <= 0) return;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;  // (n connections: n descriptors here)
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  std::printf("\n| server memory per idle connection (%d connections) | zproc | Redis |\n", n);
  std::printf("|---|---|---|\n");
  const std::string ipc =
      "ipc:///tmp/zproc-bench-scale-" + std::to_string(::getpid()) + "-memory.sock";
  child server;
  spawn(server, {zproc_exe(), "server", "--listen", ipc, "--threads", "1"});
  read_lines(server, "listening at ", 1);
  double zproc_kib = -1;
  {
    zproc::client first;
    first.connect(ipc);
    zproc::state(first, "memory").set("k", 0);
    const double before = proc_status_mib(server.pid, "VmRSS");
    std::vector<std::unique_ptr<zproc::client>> conns;
    for (int i = 0; i < n; ++i) {
      conns.push_back(std::make_unique<zproc::client>());
      conns.back()->connect(ipc);
      zproc::state(*conns.back(), "memory").set("k", i);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    zproc_kib = (proc_status_mib(server.pid, "VmRSS") - before) * 1024.0 / n;
  }
  double redis_kib = -1;
  if (r && r->up) {
    const double before = proc_status_mib(r->proc.pid, "VmRSS");
    child idle;  // redis-benchmark -I: opens the connections and waits (stopped with `idle`)
    spawn(idle, {r->dir + "/redis-benchmark", "-s", r->socket, "-c", std::to_string(n), "-I"});
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    redis_kib = (proc_status_mib(r->proc.pid, "VmRSS") - before) * 1024.0 / n;
  }
  if (redis_kib >= 0)
    std::printf("| KiB (VmRSS growth / connections) | %.1f | %.1f |\n", zproc_kib, redis_kib);
  else
    std::printf("| KiB (VmRSS growth / connections) | %.1f | — |\n", zproc_kib);
}

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<int> clients = {1, 4, 16, 64}, depths = {1, 16, 256}, namespaces = {1, 64},
                   server_threads = {1};
  int client_threads = 1;
  int idle_connections = 1000;
  std::chrono::milliseconds duration(1000);
  bool with_redis = true;
  bool blocking = false;  // --blocking: blocking clients, one set at a time
  std::string fsync;  // empty: no data directory
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      duration = std::chrono::milliseconds(250);
    } else if (a == "--no-redis") {
      with_redis = false;
    } else if (i + 1 < argc && a == "--clients") {
      clients = parse_list(argv[++i]);
    } else if (i + 1 < argc && a == "--depth") {
      depths = parse_list(argv[++i]);
    } else if (i + 1 < argc && a == "--ns") {
      namespaces = parse_list(argv[++i]);
    } else if (i + 1 < argc && a == "--threads") {
      server_threads = parse_list(argv[++i]);
    } else if (a == "--blocking") {
      blocking = true;
    } else if (i + 1 < argc && a == "--count") {
      fixed_count = std::stoll(argv[++i]);
    } else if (i + 1 < argc && a == "--idle") {
      idle_connections = std::stoi(argv[++i]);
    } else if (i + 1 < argc && a == "--client-threads") {
      client_threads = std::max(1, std::stoi(argv[++i]));
    } else if (i + 1 < argc && a == "--fsync" &&
               (std::string(argv[i + 1]) == "always" || std::string(argv[i + 1]) == "interval")) {
      fsync = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: bench_scale [--quick] [--no-redis] [--clients 1,4,16,64] "
                   "[--depth 1,16,256] [--ns 1,64] [--threads 1,2] [--client-threads K] "
                   "[--idle N] [--fsync always|interval] [--count N] [--blocking]\n");
      return 2;
    }
  }
  if (blocking) depths = {1};  // one set at a time per client
  try {
    const std::optional<redis> started =
        with_redis ? std::optional<redis>(std::in_place, fsync) : std::nullopt;
    const bool redis_up = started && started->up;

    std::printf("zproc bench_scale: sets/s, %lld ms per cell, %d client thread(s), %u cores%s\n",
                static_cast<long long>(duration.count()), client_threads,
                std::thread::hardware_concurrency(),
                fsync.empty() ? ""
                : fsync == "always"
                    ? "; durable: zproc --fsync always, Redis appendfsync always"
                    : "; durable: zproc --fsync interval, Redis appendfsync everysec");
    if (with_redis && !redis_up)
      std::printf("(redis-server / redis-benchmark not found: scripts/deps --bench)\n");
    std::printf("\n| clients | in flight each | namespaces | server threads | zproc sets/s | "
                "Redis sets/s | zproc / Redis |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    std::vector<double> redis_rates;  // per (clients, depth), measured at the first thread count
    for (std::size_t ti = 0; ti < server_threads.size(); ++ti) {
      const int threads = server_threads[ti];
      const std::string ipc = "ipc:///tmp/zproc-bench-scale-" + std::to_string(::getpid()) +
                              "-" + std::to_string(threads) + ".sock";
      const std::string data = "/tmp/zproc-bench-scale-data-" + std::to_string(::getpid()) +
                               "-" + std::to_string(threads);
      struct remove_on_exit {
        std::string dir;
        ~remove_on_exit() {
          std::error_code ec;
          if (!dir.empty()) std::filesystem::remove_all(dir, ec);
        }
      } data_dir{fsync.empty() ? std::string() : data};
      child server;
      std::vector<std::string> args{zproc_exe(), "server", "--listen", ipc, "--threads",
                                    std::to_string(threads)};
      if (!fsync.empty()) {
        std::filesystem::remove_all(data);
        args.insert(args.end(), {"--data-dir", data, "--fsync", fsync});
      }
      spawn(server, args);
      read_lines(server, "listening at ", 1);
      std::size_t cell = 0;
      for (int c : clients)
        for (int d : depths) {
          if (ti == 0) redis_rates.push_back(redis_up ? started->sets(c, d, duration) : 0);
          const double redis_rate = redis_rates[cell++];
          for (int ns : namespaces) {
            if (ns > c && ns != namespaces.front()) continue;  // more namespaces than clients
            const double z = blocking
                                 ? blocking_sets(ipc, c, ns, duration)
                                 : zproc_sets_threaded(ipc, c, d, ns, duration, client_threads);
            if (redis_rate > 0)
              std::printf("| %d | %d | %d | %d | %.0f | %.0f | %.2fx |\n", c, d, ns, threads, z,
                          redis_rate, z / redis_rate);
            else
              std::printf("| %d | %d | %d | %d | %.0f | — | — |\n", c, d, ns, threads, z);
            std::fflush(stdout);
          }
        }
    }
    memory_rows(started, idle_connections);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_scale: %s\n", e.what());
    return 1;
  }
  return 0;
}
