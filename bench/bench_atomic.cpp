// bench_atomic: throughput of increment() and atomic() on one key with 1 and 8 processes under
// full contention, and atomic()'s retry rate. The reference measured in the same run: blocking
// set() round trips from one process (what one client can do one request at a time).
//
// Usage: bench_atomic [--quick]
#include "support.hpp"

#include <zproc/zproc.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

namespace {

using namespace zproc::bench;
using clock_type = std::chrono::steady_clock;

int per_worker = 2000;

/// A worker process: waits for "go", runs `count` operations, reports how often its atomic()
/// body ran, then counts itself done.
int run_worker(const std::string& address, const std::string& ns, int count,
               const std::string& mode) {
  zproc::client c({.request_timeout = std::chrono::seconds(120)});
  c.connect(address);
  zproc::state st(c, ns);
  st.increment("ready");
  st.get_when_equal("go", true, {.timeout = std::chrono::seconds(60)});
  long calls = 0;
  for (int i = 0; i < count; ++i) {
    if (mode == "incr") {
      st.increment("n");
    } else {
      st.atomic(
          [&](zproc::json& s) {
            ++calls;
            s["n"] = s.value("n", 0) + 1;
          },
          {"n"});
    }
  }
  st.increment("calls", calls);
  st.increment("done");
  return 0;
}

struct result {
  double ops_per_s = 0;
  double retries_per_op = 0;
};

result measure(const std::string& self, const std::string& address, const std::string& mode,
               int workers) {
  zproc::client c;
  c.connect(address);
  const std::string ns = mode + "-" + std::to_string(workers);
  zproc::state st(c, ns);
  st.clear();
  std::vector<std::unique_ptr<child>> procs;
  for (int i = 0; i < workers; ++i) {
    procs.push_back(std::make_unique<child>());
    spawn(*procs.back(), {self, "--worker", address, ns, std::to_string(per_worker), mode});
  }
  st.get_when_equal("ready", workers, {.timeout = std::chrono::seconds(30)});
  const auto t0 = clock_type::now();
  st.set("go", true);
  st.get_when_equal("done", workers, {.timeout = std::chrono::seconds(300)});
  const double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  const int total = workers * per_worker;
  if (st.get("n") != total) throw std::runtime_error("lost updates: n = " + st.get("n").dump());
  result r;
  r.ops_per_s = total / seconds;
  if (mode == "atomic")
    r.retries_per_op = (st.get("calls").get<double>() - total) / static_cast<double>(total);
  return r;
}

double reference_set_rate(const std::string& address) {
  zproc::client c;
  c.connect(address);
  zproc::state st(c, "reference");
  const int n = per_worker * 2;
  const auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i) st.set("k", i);
  return n / std::chrono::duration<double>(clock_type::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::string(argv[1]) == "--worker")
    return run_worker(argv[2], argv[3], std::stoi(argv[4]), argv[5]);
  if (argc == 2 && std::string(argv[1]) == "--quick") per_worker = 300;
  std::signal(SIGPIPE, SIG_IGN);
  try {
    const std::string ipc = "ipc:///tmp/zproc-bench-atomic-" + std::to_string(::getpid()) + ".sock";
    child server;
    spawn(server, {zproc_exe(), "server", "--listen", ipc});
    read_lines(server, "listening at ", 1);
    const std::string self = "/proc/self/exe";

    const double reference = reference_set_rate(ipc);
    std::printf("zproc bench_atomic: %d operations per process, one key, ipc\n\n", per_worker);
    std::printf("%-40s %12s %10s %14s\n", "workload", "ops/s", "x set", "retries/op");
    std::printf("%-40s %12.0f %9.2fx %14s\n", "reference: blocking set, 1 process", reference, 1.0,
                "");
    for (const char* mode : {"incr", "atomic"}) {
      for (int workers : {1, 8}) {
        const result r = measure(self, ipc, mode, workers);
        const std::string name = std::string(mode == std::string("incr") ? "increment()" : "atomic()") +
                                 ", " + std::to_string(workers) + " process" + (workers > 1 ? "es" : "");
        char retries[32] = "";
        if (std::string(mode) == "atomic") std::snprintf(retries, sizeof retries, "%.3f", r.retries_per_op);
        std::printf("%-40s %12.0f %9.2fx %14s\n", name.c_str(), r.ops_per_s, r.ops_per_s / reference,
                    retries);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_atomic: %s\n", e.what());
    return 1;
  }
  return 0;
}
