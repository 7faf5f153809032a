// bench_watch: watchers against a real `zproc server` process, as ratios to floors measured in
// the same run (the machines are shared and noisy: absolute times drift, ratios hold).
//
//   floor      a raw Unix-socket ping-pong of a small message between two processes
//              (blocking write + read, no framing, no serialization), as in bench_state
//   relay      the floor of a notification: three processes, A -> S -> B and back, raw Unix
//              sockets, S waiting in poll() on both peers (a hop through a server takes two
//              socket messages and two process wake-ups, like one floor round trip)
//   set        a blocking set round trip over ipc (context: what one request costs)
//   notify     ping-pong through watchers: the bench (writer) sets "ping" to a timestamp; a
//              child process blocked in when_change_raw({"ping"}).next() wakes and sets "pong";
//              the bench wakes from its own when_change_raw({"pong"}).next(). All processes
//              stamp with CLOCK_MONOTONIC (steady_clock, one clock for the whole machine), so
//              each notification hop is measured on its own:
//                set -> wake   from just before the writer's set() until the watcher process's
//                              next() returned the update (the target: p50 <= 1.5x the
//                              floor round trip)
//                ack -> wake   the same hop the other way (the child's set, the bench wakes)
//                cycle         set -> wake -> ack set -> wake, compared with 2x the floor
//              The relay measures the same three paths with raw sockets.
//              Each of these runs in three placements, interleaved in blocks so that all see
//              the same machine: every process on one CPU (no wake-up crosses CPUs: what the
//              software costs), two CPUs (the writer and the watcher on one, the server on the
//              other: every message crosses CPUs, as in bench_state's 60 us floor), and
//              unpinned. On these VMs a wake-up across CPUs costs ~10x one on the same CPU, so
//              a ratio is only meaningful against the floor of the same placement.
//   fan-out    1,000 watchers (10 connections x 100 raw watchers, one child process, co_await)
//              of one key; one write; time until the first and until the last of them woke
//   memory     a fresh server with the default history limits (100,000 records per namespace),
//              a raw watcher that never reads, 1,000,000 pipelined sets: the server's VmRSS
//
// Usage: bench_watch [--quick]
#include <zproc/zproc.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <poll.h>
#include <sched.h>
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

int iterations = 5000;       // samples per latency row
int blocks = 10;             // latency measurements interleave in this many blocks
int fan_rounds = 20;         // fan-out writes
int fan_watchers = 1000;     // watchers woken by each fan-out write
int fan_connections = 10;    // connections they are spread over
std::size_t fan_big_bytes = 1u << 20;  // the memory round's update
int memory_writes = 1'000'000;

/// steady_clock is CLOCK_MONOTONIC on Linux: one clock for every process of the machine, so a
/// time stamped in one process can be subtracted from a time read in another.
std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             clock_type::now().time_since_epoch())
      .count();
}

// --- processes --------------------------------------------------------------------------------

double rss_mib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  throw std::runtime_error("no VmRSS for pid " + std::to_string(pid));
}

// --- floors: raw Unix sockets (an echo ping-pong; a relay through a third process) ---------------

constexpr std::size_t echo_size = 32;  // about the size of a small request

/// The CPUs this process may run on.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &set)) cpus.push_back(i);
  return cpus;
}

/// Restricts `pid` (0: this thread) to `cpus`: every thread of it (sched_setaffinity() of a
/// pid moves only the thread of that id; a server's connection threads are others).
void pin(pid_t pid, const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  std::vector<pid_t> threads{pid};
  if (pid > 0) {
    threads.clear();
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    for (const auto& e : std::filesystem::directory_iterator(dir))
      threads.push_back(static_cast<pid_t>(std::stol(e.path().filename().string())));
  }
  for (pid_t t : threads)
    if (::sched_setaffinity(t, sizeof set, &set) != 0 && errno != ESRCH)  // (a thread that ended)
      throw std::runtime_error("sched_setaffinity");
}

/// Reads exactly `n` bytes; false on EOF or error.
bool read_full(int fd, void* buf, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, static_cast<char*>(buf) + got, n - got);
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

void write_full(int fd, const void* buf, std::size_t n) {
  if (::write(fd, buf, n) != static_cast<ssize_t>(n)) throw std::runtime_error("socket write");
}

int listen_unix(const std::string& path, int backlog) {
  const int srv = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ::unlink(path.c_str());
  if (::bind(srv, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(srv, backlog) != 0)
    return -1;
  return srv;
}

int connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("connect to " + path);
  return fd;
}

int run_echo_server(const char* path) {
  const int srv = listen_unix(path, 1);
  if (srv < 0) return 1;
  std::printf("echo ready\n");
  std::fflush(stdout);
  const int c = ::accept(srv, nullptr, nullptr);
  char buf[echo_size];
  for (;;) {
    if (!read_full(c, buf, echo_size)) return 0;
    if (::write(c, buf, echo_size) != static_cast<ssize_t>(echo_size)) return 0;
  }
}

/// Where the processes of a measurement run. On these VMs a wake-up on another CPU costs ~10x
/// one on the same CPU (an idle virtual CPU must be woken through the hypervisor), and unpinned
/// the scheduler picks one or the other for a whole run: so most measurements run pinned.
struct placement {
  const char* name;
  int bench = -1;   // this process (the writer)
  int server = -1;  // the echo process, the relay, or the zproc server
  int peer = -1;    // the relay's other peer, or the watcher process
};

/// Interleaved measurements: each runs a block of iterations in turn, so that all of them see
/// the same machine (these VMs drift by 2x within a minute).
class sampler {
 public:
  explicit sampler(placement where) : where_(where) {}
  virtual ~sampler() = default;
  void block(int n, bool record) {
    const auto put = [&](pid_t pid, int cpu) {
      pin(pid, cpu >= 0 ? std::vector<int>{cpu} : all_);
    };
    put(0, where_.bench);
    if (server_pid_ > 0) put(server_pid_, where_.server);
    if (peer_pid_ > 0) put(peer_pid_, where_.peer);
    for (int i = 0; i < 20; ++i) once(false);  // after a migration: warm caches
    for (int i = 0; i < n; ++i) once(record);
    pin(0, all_);
  }

 protected:
  /// One iteration; pushes its samples (microseconds) when `record`.
  virtual void once(bool record) = 0;
  placement where_;
  pid_t server_pid_ = -1;
  pid_t peer_pid_ = -1;

 private:
  std::vector<int> all_ = allowed_cpus();
};

std::string socket_path(const char* what, const char* name) {
  return "/tmp/zproc-bench-" + std::string(what) + "-" + name + "-" + std::to_string(::getpid()) +
         ".sock";
}

/// The floor: a ping-pong with an echo process (placement: bench and server).
class floor_sampler final : public sampler {
 public:
  floor_sampler(const std::string& self, placement where)
      : sampler(where), path_(socket_path("echo", where.name)) {
    spawn(echo_, {self, "--echo", path_});
    read_lines(echo_, "echo ready", 1);
    server_pid_ = echo_.pid;
    fd_ = connect_unix(path_);
  }
  ~floor_sampler() override {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  std::vector<double> rt;

 private:
  void once(bool record) override {
    const auto t0 = clock_type::now();
    write_full(fd_, buf_, echo_size);
    if (!read_full(fd_, buf_, echo_size)) throw std::runtime_error("echo closed");
    if (record)
      rt.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }

  std::string path_;
  child echo_;
  int fd_ = -1;
  char buf_[echo_size] = {};
};

/// Samples of a ping-pong through a third process (a server): each hop on its own (the
/// processes stamp with CLOCK_MONOTONIC) and the whole cycle.
struct hop_samples {
  std::vector<double> there, back, cycle;
  void add(std::int64_t t0, std::int64_t woke, std::int64_t acked, std::int64_t t1) {
    there.push_back(static_cast<double>(woke - t0) / 1e3);
    back.push_back(static_cast<double>(t1 - acked) / 1e3);
    cycle.push_back(static_cast<double>(t1 - t0) / 1e3);
  }
};

/// The relay "server": accepts two peers and forwards each message of one to the other, waiting
/// in poll() on both as an event loop does. What a notification needs at least: the write
/// reaches the server, the server writes to the watcher.
int run_relay(const char* path) {
  const int srv = listen_unix(path, 2);
  if (srv < 0) return 1;
  std::printf("relay ready\n");
  std::fflush(stdout);
  const int a = ::accept(srv, nullptr, nullptr);  // the bench connects first
  const int b = ::accept(srv, nullptr, nullptr);
  char buf[echo_size];
  for (;;) {
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    if (::poll(p, 2, -1) <= 0) return 0;
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
      if (!read_full(p[i].fd, buf, echo_size)) return 0;
      if (::write(i == 0 ? b : a, buf, echo_size) != static_cast<ssize_t>(echo_size)) return 0;
    }
  }
}

/// The relay's other peer: answers each message (the sender's stamp) with [stamp, wake stamp,
/// stamp just before answering], as the ponger does.
int run_relay_peer(const char* path) {
  const int fd = connect_unix(path);
  std::printf("peer ready\n");
  std::fflush(stdout);
  std::int64_t msg[echo_size / sizeof(std::int64_t)] = {};
  for (;;) {
    if (!read_full(fd, msg, echo_size)) return 0;
    msg[1] = now_ns();
    msg[2] = now_ns();
    if (::write(fd, msg, echo_size) != static_cast<ssize_t>(echo_size)) return 0;
  }
}

/// The relay: bench -> relay -> peer -> relay -> bench.
class relay_sampler final : public sampler {
 public:
  relay_sampler(const std::string& self, placement where)
      : sampler(where), path_(socket_path("relay", where.name)) {
    spawn(relay_, {self, "--relay", path_});
    read_lines(relay_, "relay ready", 1);
    fd_ = connect_unix(path_);
    spawn(peer_, {self, "--relay-peer", path_});
    read_lines(peer_, "peer ready", 1);
    server_pid_ = relay_.pid;
    peer_pid_ = peer_.pid;
  }
  ~relay_sampler() override {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  hop_samples samples;

 private:
  void once(bool record) override {
    std::int64_t msg[echo_size / sizeof(std::int64_t)] = {};
    const std::int64_t t0 = now_ns();
    msg[0] = t0;
    write_full(fd_, msg, echo_size);
    if (!read_full(fd_, msg, echo_size) || msg[0] != t0)
      throw std::runtime_error("relay: no answer");
    if (record) samples.add(t0, msg[1], msg[2], now_ns());
  }

  std::string path_;
  child relay_;
  child peer_;
  int fd_ = -1;
};

// --- zproc: a set round trip, and notifications -------------------------------------------------

class set_sampler final : public sampler {
 public:
  set_sampler(const std::string& address, pid_t server, placement where) : sampler(where) {
    server_pid_ = server;
    c_.connect(address);
    st_.emplace(c_, std::string("set-") + where.name);
  }
  std::vector<double> rt;

 private:
  void once(bool record) override {
    const auto t0 = clock_type::now();
    st_->set("key", ++i_);
    if (record)
      rt.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }

  zproc::client c_;
  std::optional<zproc::state> st_;
  int i_ = 0;
};

/// Child: wakes on each "ping" (the writer's timestamp) and answers with
/// "pong" = [ping stamp, wake stamp, stamp just before this set].
int run_ponger(const std::string& address, const std::string& ns) {
  zproc::client c;
  c.connect(address);
  zproc::state st(c, ns);
  auto w = st.when_change_raw({"ping"});  // pinned on the server when this returns
  std::printf("ponger ready\n");
  std::fflush(stdout);
  for (;;) {
    auto u = w.next();
    const std::int64_t woke = now_ns();
    if (!u) return 0;
    const zproc::key_change* ping = u->find("ping");
    if (ping == nullptr || !ping->after) return 1;
    const std::int64_t sent = ping->after->get<std::int64_t>();
    st.set("pong", zproc::json::array({sent, woke, now_ns()}));
  }
}

/// The bench's side: sets "ping", waits for "pong" with its own watcher.
class notify_sampler final : public sampler {
 public:
  notify_sampler(const std::string& self, const std::string& address, pid_t server,
                 placement where)
      : sampler(where) {
    const std::string ns = std::string("notify-") + where.name;
    c_.connect(address);
    st_.emplace(c_, ns);
    pongs_.emplace(st_->when_change_raw({"pong"}));
    spawn(ponger_, {self, "--ponger", address, ns});
    read_lines(ponger_, "ponger ready", 1);
    server_pid_ = server;
    peer_pid_ = ponger_.pid;
  }
  hop_samples samples;

 private:
  void once(bool record) override {
    const std::int64_t t0 = now_ns();
    st_->set("ping", t0);
    auto u = pongs_->next();
    const std::int64_t t1 = now_ns();
    const zproc::key_change* pong = u ? u->find("pong") : nullptr;
    if (pong == nullptr || !pong->after || (*pong->after)[0].get<std::int64_t>() != t0)
      throw std::runtime_error("notify: the pong does not answer the ping");
    if (record)
      samples.add(t0, (*pong->after)[1].get<std::int64_t>(),
                  (*pong->after)[2].get<std::int64_t>(), t1);
  }

  zproc::client c_;
  std::optional<zproc::state> st_;
  std::optional<zproc::raw_watcher> pongs_;
  child ponger_;
};

// --- fan-out: one write, many watchers ----------------------------------------------------------

/// Child: `watchers` raw watchers of key "fan" spread over `connections` connections, each
/// looping on co_await async_next(). When the last of a write's wake-ups came, sets
/// "fan_ack" = [write stamp, first wake - stamp, last wake - stamp].
int run_fan(const std::string& address, int watchers, int connections) {
  asio::io_context ioc(1);
  std::vector<std::unique_ptr<zproc::client>> clients;
  std::vector<zproc::raw_watcher> ws;
  std::optional<zproc::state> ack;
  std::int64_t round = -1;  // the write stamp of the current round
  int woken = 0;
  std::int64_t first = 0;
  int failed = 0;

  const auto watch = [&](zproc::raw_watcher& w) -> asio::awaitable<void> {
    for (;;) {
      auto [ec, u] = co_await w.async_next(asio::as_tuple(asio::use_awaitable));
      const std::int64_t t = now_ns();
      if (ec || !u) {
        ++failed;
        co_return;
      }
      const zproc::key_change* fan = u->find("fan");
      if (fan == nullptr || !fan->after) continue;
      // A stamp, or [stamp, padding] (the memory round's big update).
      const zproc::json& v = *fan->after;
      const std::int64_t stamp = (v.is_array() ? v[0] : v).get<std::int64_t>();
      if (stamp != round) {
        round = stamp;
        woken = 0;
        first = t;
      }
      if (++woken == watchers)
        ack->async_set("fan_ack", zproc::json::array({stamp, first - stamp, t - stamp}),
                       asio::detached);
    }
  };

  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        ws.reserve(static_cast<std::size_t>(watchers));
        for (int k = 0; k < connections; ++k) {
          clients.push_back(std::make_unique<zproc::client>(ioc.get_executor()));
          co_await clients.back()->async_connect(address);
        }
        ack.emplace(*clients[0], "fan");
        for (int i = 0; i < watchers; ++i) {
          zproc::state st(*clients[static_cast<std::size_t>(i % connections)], "fan");
          ws.push_back(st.when_change_raw({"fan"}));
        }
        // Requests of one connection are handled in order: once a ping is answered, every
        // watch sent before it on that connection is pinned.
        for (auto& c : clients) co_await c->async_ping();
        for (auto& w : ws) asio::co_spawn(ioc, watch(w), asio::detached);
        std::printf("fan ready\n");
        std::fflush(stdout);
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  ioc.run();
  return failed == 0 ? 0 : 1;
}

struct fan_stats {
  stats first;
  stats last;
  double idle_mib = 0;  // the server's peak RSS before the big update
  double peak_mib = 0;  // and once every watcher got it
};

fan_stats measure_fan(const std::string& self, const std::string& address, pid_t server,
                      bool memory_round = true) {
  child fan;
  spawn(fan, {self, "--fan", address, std::to_string(fan_watchers),
              std::to_string(fan_connections)});
  read_lines(fan, "fan ready", 1);
  zproc::client c;
  c.connect(address);
  zproc::state st(c, "fan");
  // A deadline on each wait: a fan-out child that died fails the benchmark instead of hanging.
  auto acks = st.when_change_raw({"fan_ack"}, {.timeout = std::chrono::seconds(60)});
  std::vector<double> first, last;
  const int warmup = 2;
  for (int i = 0; i < fan_rounds + warmup; ++i) {
    const std::int64_t t0 = now_ns();
    st.set("fan", t0);
    auto u = acks.next();
    const zproc::key_change* a = u ? u->find("fan_ack") : nullptr;
    if (a == nullptr || !a->after || (*a->after)[0].get<std::int64_t>() != t0)
      throw std::runtime_error("fan-out: the ack does not answer the write");
    if (i < warmup) continue;
    first.push_back(static_cast<double>((*a->after)[1].get<std::int64_t>()) / 1e3);
    last.push_back(static_cast<double>((*a->after)[2].get<std::int64_t>()) / 1e3);
  }
  if (!memory_round) return {summarize(first), summarize(last), 0, 0};
  // Memory: one update of fan_big_bytes to every watcher. A private copy per watcher would
  // cost watchers x its size; shared, it costs about the update once.
  const double idle = proc_status_mib(server, "VmHWM");
  const std::int64_t t0 = now_ns();
  st.set("fan", zproc::json::array({t0, std::string(fan_big_bytes, 'x')}));
  for (;;) {
    auto u = acks.next();
    const zproc::key_change* a = u ? u->find("fan_ack") : nullptr;
    if (a && a->after && (*a->after)[0].get<std::int64_t>() == t0) break;
  }
  return {summarize(first), summarize(last), idle, proc_status_mib(server, "VmHWM")};
}

// --- memory: a watcher that never reads ---------------------------------------------------------

void measure_memory() {
  const std::string ipc = "ipc:///tmp/zproc-bench-mem-" + std::to_string(::getpid()) + ".sock";
  child server;
  spawn(server, {zproc_exe(), "server", "--listen", ipc});
  read_lines(server, "listening at ", 1);

  std::printf("\nmemory: fresh server, default history limits, a raw watcher that never reads,\n"
              "%d sets of one key (64 in flight, one connection)\n",
              memory_writes);
  std::printf("%-42s %9s %9s\n", "writes done", "VmRSS MiB", "writes/s");

  // The watcher: a blocking client whose io_context never runs again after this, so not even
  // the first notification is read from the socket.
  zproc::client idle;
  idle.connect(ipc);
  zproc::state idle_st(idle, "mem");
  auto never = idle_st.when_change_raw();
  std::printf("%-42s %9.1f\n", "0 (watcher created)", rss_mib(server.pid));

  asio::io_context ioc(1);
  zproc::client c(ioc.get_executor());
  int failures = 0;
  std::vector<double> rss;  // at each quarter
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        co_await c.async_connect(ipc);
        zproc::state st(c, "mem");
        int in_flight = 0;
        int done = 0;
        const int step = memory_writes / 4;
        auto t0 = clock_type::now();
        for (int i = 1; i <= memory_writes; ++i) {
          ++in_flight;
          st.async_set("n", i, [&](zproc::error_code ec, std::uint64_t) {
            --in_flight;
            ++done;
            if (ec) ++failures;
          });
          while (in_flight >= 64) co_await asio::post(ioc, asio::deferred);
          if (i % step == 0) {
            while (done < i) co_await asio::post(ioc, asio::deferred);
            const auto t1 = clock_type::now();
            const double rate = step / std::chrono::duration<double>(t1 - t0).count();
            rss.push_back(rss_mib(server.pid));
            std::printf("%-42d %9.1f %9.0f\n", i, rss.back(), rate);
            std::fflush(stdout);
            t0 = clock_type::now();
          }
        }
        c.close();
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  ioc.run();
  if (failures) throw std::runtime_error("memory: " + std::to_string(failures) + " sets failed");
  // Once the history is full (100,000 writes), the server should not grow any more.
  const int step = memory_writes / 4;
  for (int q = 0; q < static_cast<int>(rss.size()) - 1; ++q) {
    if ((q + 1) * step < 100'000) continue;
    std::printf("growth from %d to %d writes (history full): %+.1f MiB\n", (q + 1) * step,
                memory_writes, rss.back() - rss[static_cast<std::size_t>(q)]);
    break;
  }

  // What the server kept, and what the idle watcher sees when it finally reads.
  zproc::client check;
  check.connect(ipc);
  zproc::state cst(check, "mem");
  const auto kept = cst.history(0, {}, 1);
  const auto oldest = static_cast<unsigned long long>(kept.empty() ? 0 : kept.front().revision);
  const auto newest = static_cast<unsigned long long>(cst.revision());
  std::printf("history kept: revisions %llu..%llu (%llu records)\n", oldest, newest,
              kept.empty() ? 0ULL : newest - oldest + 1);
  std::string seen;
  for (int i = 0; i < 2; ++i) {
    try {
      auto u = never.next();
      seen += "update " + (u ? std::to_string(u->revision) : std::string("none")) + "; ";
    } catch (const zproc::error& e) {
      seen += "error " + e.code().message() + " (" + e.diagnostics() + ")";
      break;
    }
  }
  std::printf("the idle watcher, reading at last: %s\n", seen.c_str());
}

/// A latency row: p50, p99, and p50 over `floor` and over `relay` (0: not shown).
void row(const std::string& name, stats s, double floor, double relay) {
  std::printf("%-42s %9.1f %9.1f", name.c_str(), s.p50_us, s.p99_us);
  if (floor > 0) std::printf(" %8.2fx", s.p50_us / floor);
  if (relay > 0) std::printf(" %8.2fx", s.p50_us / relay);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--echo") return run_echo_server(argv[2]);
  if (argc == 3 && std::string(argv[1]) == "--relay") return run_relay(argv[2]);
  if (argc == 3 && std::string(argv[1]) == "--relay-peer") return run_relay_peer(argv[2]);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    if (argc == 4 && std::string(argv[1]) == "--ponger") return run_ponger(argv[2], argv[3]);
    if (argc == 5 && std::string(argv[1]) == "--fan")
      return run_fan(argv[2], std::stoi(argv[3]), std::stoi(argv[4]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_watch %s: %s\n", argv[1], e.what());
    return 1;
  }
  if (argc >= 2 && std::string(argv[1]) == "--fan-only") {
    // Only the fan-out rows, `rounds` writes (for profiles and A/B runs of the server).
    if (argc == 3) fan_rounds = std::stoi(argv[2]);
    try {
      const std::string ipc = "ipc:///tmp/zproc-bench-fan-" + std::to_string(::getpid()) + ".sock";
      child server;
      spawn(server, {zproc_exe(), "server", "--listen", ipc});
      read_lines(server, "listening at ", 1);
      // The watchers' process: this program, or a wrapper that runs it (under a profiler).
      const char* wrapper = std::getenv("ZPROC_BENCH_FAN_CHILD");
      const fan_stats f = measure_fan(wrapper ? wrapper : "/proc/self/exe", ipc, server.pid, false);
      std::printf("fan-out, %d writes to %d watchers on %d connections: first woken p50 %.2f ms "
                  "(p99 %.2f), all woken p50 %.2f ms (p99 %.2f)\n",
                  fan_rounds, fan_watchers, fan_connections, f.first.p50_us / 1e3,
                  f.first.p99_us / 1e3, f.last.p50_us / 1e3, f.last.p99_us / 1e3);
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_watch: %s\n", e.what());
      return 1;
    }
  }
  if (argc == 2 && std::string(argv[1]) == "--quick") {
    iterations = 1000;
    blocks = 5;
    fan_rounds = 5;
    memory_writes = 200'000;
  }
  const std::string self = "/proc/self/exe";
  try {
    const std::string ipc = "ipc:///tmp/zproc-bench-" + std::to_string(::getpid()) + ".sock";
    child server;
    spawn(server, {zproc_exe(), "server", "--listen", ipc});
    read_lines(server, "listening at ", 1);

    std::printf("zproc bench_watch: %d samples per latency row, in %d interleaved blocks; fan-out: "
                "%d writes to %d watchers on %d connections\n\n",
                iterations, blocks, fan_rounds, fan_watchers, fan_connections);
    const std::vector<int> cpus = allowed_cpus();
    if (cpus.size() < 2) throw std::runtime_error("needs two CPUs");
    // One CPU: no wake-up crosses CPUs (what the software costs). Two CPUs: the writer and the
    // watcher on one, the server (echo, relay) on the other: every message crosses. Unpinned:
    // wherever the scheduler puts them (bench_state's floor).
    const placement places[] = {{"one CPU", cpus[0], cpus[0], cpus[0]},
                                {"two CPUs", cpus[0], cpus[1], cpus[0]},
                                {"unpinned", -1, -1, -1}};
    struct group {
      std::unique_ptr<floor_sampler> floor;
      std::unique_ptr<relay_sampler> relay;
      std::unique_ptr<set_sampler> set;
      std::unique_ptr<notify_sampler> notify;
    };
    std::vector<group> groups;
    std::vector<sampler*> all;
    for (const placement& where : places) {
      group g;
      g.floor = std::make_unique<floor_sampler>(self, where);
      g.relay = std::make_unique<relay_sampler>(self, where);
      g.set = std::make_unique<set_sampler>(ipc, server.pid, where);
      g.notify = std::make_unique<notify_sampler>(self, ipc, server.pid, where);
      all.insert(all.end(), {g.floor.get(), g.relay.get(), g.set.get(), g.notify.get()});
      groups.push_back(std::move(g));
    }
    const int per_block = std::max(1, iterations / blocks);
    for (sampler* x : all) x->block(per_block / 5, false);  // warm-up
    for (int b = 0; b < blocks; ++b)
      for (sampler* x : all) x->block(per_block, true);

    std::printf("ipc, blocking clients, microseconds. x floor = p50 / the floor round trip of the\n"
                "same placement (a cycle: / 2x the floor); x relay = p50 / the raw relay's p50 on\n"
                "the same path and placement. A hop through a server is two socket messages and\n"
                "two wake-ups, like the floor's round trip.\n");
    std::printf("%-42s %9s %9s %9s %9s\n", "", "p50", "p99", "x floor", "x relay");
    for (std::size_t i = 0; i < groups.size(); ++i) {
      const group& g = groups[i];
      std::printf("%s%s:\n", i == 0 ? "" : "\n",
                  i == 0   ? "one CPU (all processes pinned to one CPU)"
                  : i == 1 ? "two CPUs (writer and watcher on one CPU, the server on the other)"
                           : "unpinned (where the scheduler puts them; varies from run to run)");
      const stats floor = summarize(g.floor->rt);
      const stats r_there = summarize(g.relay->samples.there);
      const stats r_back = summarize(g.relay->samples.back);
      const stats r_cycle = summarize(g.relay->samples.cycle);
      row("floor: raw ping-pong, round trip", floor, floor.p50_us, 0);
      row("relay: raw A -> S -> B, one hop", r_there, floor.p50_us, r_there.p50_us);
      row("relay: raw B -> S -> A, one hop", r_back, floor.p50_us, r_back.p50_us);
      row("relay: raw A->S->B->S->A, cycle", r_cycle, 2 * floor.p50_us, r_cycle.p50_us);
      row("zproc set, round trip", summarize(g.set->rt), floor.p50_us, 0);
      row("notify: set -> watcher wakes, one hop *", summarize(g.notify->samples.there),
          floor.p50_us, r_there.p50_us);
      row("notify: ack set -> writer wakes, one hop", summarize(g.notify->samples.back),
          floor.p50_us, r_back.p50_us);
      row("notify: set->wake->ack->wake, cycle", summarize(g.notify->samples.cycle),
          2 * floor.p50_us, r_cycle.p50_us);
    }
    std::printf("  * the issue's target: x floor <= 1.5\n\n");
    const fan_stats f = measure_fan(self, ipc, server.pid);
    const std::string watchers = std::to_string(fan_watchers);
    std::printf("%-42s %9s %9s\n", "fan-out, milliseconds", "p50", "p99");
    std::printf("%-42s %9.2f %9.2f\n", ("fan-out: set -> first of " + watchers + " wakes").c_str(),
                f.first.p50_us / 1e3, f.first.p99_us / 1e3);
    std::printf("%-42s %9.2f %9.2f\n", ("fan-out: set -> all " + watchers + " woke").c_str(),
                f.last.p50_us / 1e3, f.last.p99_us / 1e3);
    const double update_mib = static_cast<double>(fan_big_bytes) / (1024.0 * 1024.0);
    std::printf("fan-out memory: one %.0f MiB update to %s watchers: server peak RSS %.1f -> "
                "%.1f MiB, +%.1f MiB = %.1f x the update (a copy per watcher: %s x)\n",
                update_mib, watchers.c_str(), f.idle_mib, f.peak_mib, f.peak_mib - f.idle_mib,
                (f.peak_mib - f.idle_mib) / update_mib, watchers.c_str());

    measure_memory();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_watch: %s\n", e.what());
    return 1;
  }
  return 0;
}
