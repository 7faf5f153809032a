// bench_swarm: a swarm of N workers maps over ints in four modes, beside Python's
// multiprocessing.Pool(N).map of the same function in the same run:
//   auto  squares of 100,000 ints, chunks left to the library (Python: chunksize left to it);
//   one   the same with chunk size 1 (Python: chunksize=1): what one task costs;
//   slow  calls that each busy-wait 200 µs, N x 1,000 of them, chunks left to the library: how
//         close to the ideal (calls x 200 µs / N) the map's wall time comes (efficiency);
//   uneven the same with calls of 200 µs on average whose lengths vary as an exponential
//         distribution (a hash of the input picks each): what the tail of a map costs when
//         tasks do not all take as long; and again with a fixed chunk size of a quarter of
//         a worker's share (what automatic chunks were before they shrank at the end, and
//         what Python's Pool.map does), in the same run. Each round of slow and uneven
//         calls follows a map of tiny ones (what the workers learn there must not mislead them).
// Prints tasks per second (and the efficiency of slow) and the ratios. See docs/performance.md.
//
//   build/bench/bench_swarm [--quick] [--only auto|one|slow|uneven] [--workers 1,2,...] [--tasks N]
//                           [--no-python] [--external] [--sleep]
//
// --workers: the worker counts (default 2); --tasks maps N ints instead of 100,000 (auto, one);
// --no-python skips the Pool; --external runs the server as a `zproc server` process
// (ZPROC_BENCH_ZPROC names another program: a wrapper that runs it under callgrind counts the
// server's instructions per task). --sleep: the slow and uneven calls sleep instead of holding
// their core (ZPROC_BENCH_SLEEP=1 in the workers' environment), and Python is skipped: more
// workers than cores then measure how well the tasks are spread (the tail), not the cores.
#include <zproc/zproc.hpp>

#include "support.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

long long square(int x) { return static_cast<long long>(x) * x; }
ZPROC_TARGET(square);

using clock_type = std::chrono::steady_clock;

/// Busy for `s` seconds (not asleep: the call holds its core, as real work does), or asleep
/// with --sleep.
void busy_for(double s) {
  static const bool asleep = [] {
    const char* e = std::getenv("ZPROC_BENCH_SLEEP");
    return e && *e == '1';
  }();
  const auto until = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                             std::chrono::duration<double>(s));
  if (asleep) return std::this_thread::sleep_until(until);
  while (clock_type::now() < until) {
  }
}

/// Busy for 200 µs; returns x.
int slow(int x) {
  busy_for(200e-6);
  return x;
}
ZPROC_TARGET(slow);

/// How long uneven(x) is busy: exponentially distributed over the inputs, 200 µs on average
/// (Python's script computes the same from the same hash).
double uneven_seconds(int x) {
  const auto h = static_cast<std::uint32_t>(static_cast<std::uint64_t>(x) * 2654435761U);
  return -200e-6 * std::log((h + 0.5) / 4294967296.0);
}

int uneven(int x) {
  busy_for(uneven_seconds(x));
  return x;
}
ZPROC_TARGET(uneven);

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

/// Python's Pool(workers) on the same work: tasks/s per mode ("auto", "one", "slow",
/// "uneven"), or nothing. `slow_n` calls of 200 µs (on average) for "slow" and "uneven".
std::map<std::string, double> python_pool(int workers, int n, int slow_n, int rounds,
                                          const std::string& only) {
  const std::string script = "/tmp/zproc_bench_pool_" + std::to_string(::getpid()) + ".py";
  {
    std::ofstream f(script);
    f << "import multiprocessing as mp, time, sys, math\n"
         "def sq(x): return x * x\n"
         "def busy(s):\n"
         "    until = time.perf_counter() + s\n"
         "    while time.perf_counter() < until: pass\n"
         "def slow(x):\n"
         "    busy(0.0002)\n"
         "    return x\n"
         "def uneven(x):\n"
         "    busy(-0.0002 * math.log(((x * 2654435761) % 4294967296 + 0.5) / 4294967296))\n"
         "    return x\n"
         "if __name__ == '__main__':\n"
         "    w, n, sn, rounds, only = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), "
         "int(sys.argv[4]), sys.argv[5]\n"
         "    want = [i * i for i in range(n)]\n"
         "    with mp.Pool(w) as p:\n"
         "        p.map(sq, range(1000))\n"
         "        for name, fn, cnt, cs in (('auto', sq, n, None), ('one', sq, n, 1),\n"
         "                                  ('slow', slow, sn, None),\n"
         "                                  ('uneven', uneven, sn, None)):\n"
         "            if only not in ('-', name): continue\n"
         "            best = 0\n"
         "            for _ in range(rounds):\n"
         "                t = time.perf_counter(); r = p.map(fn, range(cnt), chunksize=cs)\n"
         "                dt = time.perf_counter() - t\n"
         "                assert r == (want if fn is sq else list(range(cnt)))\n"
         "                best = max(best, cnt / dt)\n"
         "            print(name, best, flush=True)\n";
  }
  std::map<std::string, double> out;
  const std::string cmd = "python3 " + script + " " + std::to_string(workers) + " " +
                          std::to_string(n) + " " + std::to_string(slow_n) + " " +
                          std::to_string(rounds) + " " + (only.empty() ? "-" : only) +
                          " 2>/dev/null";
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char name[16];
    double rate;
    while (std::fscanf(p, "%15s %lf", name, &rate) == 2) out[name] = rate;
    ::pclose(p);
  }
  std::remove(script.c_str());
  return out;
}

std::vector<int> int_list(const char* s) {
  std::vector<int> v;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) v.push_back(std::max(1, std::atoi(item.c_str())));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  bool quick = false, python = true, external = false;
  std::string only;
  std::vector<int> worker_counts{2};
  int n = 100'000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--external") {
      external = true;
    } else if (a == "--no-python") {
      python = false;
    } else if (a == "--sleep") {
      python = false;
      ::setenv("ZPROC_BENCH_SLEEP", "1", 1);
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (a == "--workers" && i + 1 < argc) {
      worker_counts = int_list(argv[++i]);
    } else if (a == "--tasks" && i + 1 < argc) {
      n = std::max(1000, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: bench_swarm [--quick] [--only auto|one|slow|uneven] [--workers "
                           "1,2,...] [--tasks N] [--no-python] [--external] [--sleep]\n");
      return 2;
    }
  }
  const int rounds = quick ? 1 : 3;
  std::vector<int> in(n);
  std::iota(in.begin(), in.end(), 0);

  // Floors: a plain loop in this process (the same functions, results in a vector).
  double loop_rate = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t = clock_type::now();
    std::vector<long long> out;
    out.reserve(in.size());
    for (int x : in) out.push_back(square(x));
    const double dt = seconds_since(t);
    const auto mid = static_cast<std::size_t>(n / 2);  // (--tasks may be as few as 1,000)
    if (out[mid] != static_cast<long long>(mid) * static_cast<long long>(mid)) {
      std::fprintf(stderr, "bench_swarm: the plain loop computed a wrong square\n");
      return 1;
    }
    loop_rate = std::max(loop_rate, n / dt);
  }
  double slow_call_s = 1;  // what one slow call takes here (a little over 200 µs)
  {
    const auto t = clock_type::now();
    for (int i = 0; i < 200; ++i) slow(i);
    slow_call_s = seconds_since(t) / 200;
  }
  // What a call of s seconds takes here: busy, a little longer in proportion; asleep, a wake-up
  // later (the timer's slack).
  const bool asleep = std::getenv("ZPROC_BENCH_SLEEP") != nullptr;
  const auto call_time = [&](double s) {
    return asleep ? s + (slow_call_s - 200e-6) : s * slow_call_s / 200e-6;
  };

  std::printf("swarm map beside Python's Pool(N) on the same work, best of %d, tasks per second"
              " (slow: 200 µs calls, efficiency = ideal time / wall time)\n\n", rounds);
  std::printf("| workers | mode | zproc swarm | Python Pool(N) | zproc / Python |\n");
  std::printf("|---|---|---|---|---|\n");
  double auto_rate = 0;
  for (const int workers : worker_counts) {
    const int slow_n = workers * 1000;
    std::map<std::string, double> ours;
    {
      zproc::bench::child server;
      zproc::context_options options;
      if (external) {
        options.address = "ipc:///tmp/zproc_bench_swarm_" + std::to_string(::getpid()) + ".sock";
        zproc::bench::spawn(server, {zproc::bench::zproc_exe(), "server", "--listen",
                                     options.address, "--threads", "1"});
        zproc::bench::read_lines(server, "listening at ", 1);
      }
      zproc::context ctx(options);
      auto sw = ctx.create_swarm(static_cast<std::size_t>(workers));
      sw.map(square, std::vector<int>(1000, 3));  // workers started and connected
      for (const char* name : {"auto", "one", "slow", "uneven", "uneven-fixed"}) {
        const std::string mode = name;
        if (!only.empty() && only != mode && !(only == "uneven" && mode == "uneven-fixed"))
          continue;
        double best = 0;
        for (int r = 0; r < rounds; ++r) {
          zproc::map_options o;
          o.chunk_size = mode == "one" ? 1 : 0;
          if (mode == "uneven-fixed")
            o.chunk_size = static_cast<std::size_t>((slow_n + 4 * workers - 1) / (4 * workers));
          // Each round of long calls follows a map of tiny ones, as in a program that maps
          // different things in turn: what a worker learnt on those must not make it take the
          // long calls all at once.
          if (mode != "auto" && mode != "one") sw.map(square, std::vector<int>(1000, 3));
          const auto t = clock_type::now();
          if (mode == "slow" || mode == "uneven" || mode == "uneven-fixed") {
            std::vector<int> calls(static_cast<std::size_t>(slow_n));
            std::iota(calls.begin(), calls.end(), 0);
            const auto out = sw.map(mode == "slow" ? slow : uneven, calls, o);
            if (out != calls) return 1;
            best = std::max(best, slow_n / seconds_since(t));
          } else {
            const auto out = sw.map(square, in, o);
            const double dt = seconds_since(t);
            for (int i = 0; i < n; ++i)
              if (out[static_cast<std::size_t>(i)] != 1LL * i * i) return 1;
            best = std::max(best, n / dt);
          }
        }
        ours[mode] = best;
      }
    }
    const auto py = python ? python_pool(workers, n, slow_n, rounds, only)
                           : std::map<std::string, double>{};
    double uneven_s = 0;  // the uneven calls' total time here
    for (int i = 0; i < slow_n; ++i) uneven_s += call_time(uneven_seconds(i));
    for (const char* name : {"auto", "one", "slow", "uneven", "uneven-fixed"}) {
      if (!ours.count(name)) continue;
      const double mine = ours[name];
      const std::string mode = name;
      const char* py_mode = mode == "uneven-fixed" ? "uneven" : name;
      const double p = py.count(py_mode) ? py.at(py_mode) : 0;
      if (mode == "slow") {
        // Ideal: every worker busy all the time, calls of the length measured here.
        const double ideal = workers / slow_call_s;
        std::printf("| %d | 200 µs calls: efficiency | %.3f | %.3f | %.2fx |\n", workers,
                    mine / ideal, p / ideal, p > 0 ? mine / p : 0.0);
      } else if (mode == "uneven" || mode == "uneven-fixed") {
        // Ideal: the calls' total time split evenly over the workers.
        const double ideal = slow_n / (uneven_s / workers);
        std::printf("| %d | uneven calls (200 µs mean)%s: efficiency | %.3f | %.3f | %.2fx |\n",
                    workers, mode == "uneven" ? "" : ", fixed chunks of a quarter share",
                    mine / ideal, p / ideal, p > 0 ? mine / p : 0.0);
      } else {
        std::printf("| %d | %s | %.0f | %.0f | %.2fx |\n", workers,
                    mode == "auto" ? "automatic chunks" : "chunk size 1", mine, p,
                    p > 0 ? mine / p : 0.0);
      }
    }
    if (ours.count("auto")) auto_rate = std::max(auto_rate, ours["auto"]);
    if (py.empty() && python) std::printf("(python3 not found: no comparison)\n");
  }
  if (auto_rate > 0)
    std::printf("\nplain loop in one process: %.0f tasks/s (best swarm automatic = %.4fx of it)\n",
                loop_rate, auto_rate / loop_rate);
  return 0;
}
