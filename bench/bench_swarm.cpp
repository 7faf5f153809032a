// bench_swarm: a swarm of 2 workers maps squares over 100,000 ints, with automatic chunking and
// with chunk size 1, beside Python's multiprocessing.Pool(2).map of the same function in the
// same run (chunksize left to Python, and chunksize=1), and beside a plain loop in one process.
// Prints tasks per second and the ratios. See docs/performance.md.
//
//   build/bench/bench_swarm [--quick] [--only auto|one] [--tasks N] [--no-python] [--external]
//
// --only runs one mode, --tasks maps N ints instead of 100,000, --no-python skips the Pool,
// --external runs the server as a `zproc server` process (ZPROC_BENCH_ZPROC names another
// program: a wrapper that runs it under callgrind counts the server's instructions per task).
#include <zproc/zproc.hpp>

#include "support.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace {

long long square(int x) { return static_cast<long long>(x) * x; }
ZPROC_TARGET(square);

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

/// Python's Pool(2) on the same work; returns tasks/s per mode ("auto", "one"), or nothing.
std::map<std::string, double> python_pool(int n, int rounds) {
  const std::string script = "/tmp/zproc_bench_pool_" + std::to_string(::getpid()) + ".py";
  {
    std::ofstream f(script);
    f << "import multiprocessing as mp, time, sys\n"
         "def sq(x): return x * x\n"
         "if __name__ == '__main__':\n"
         "    n, rounds = int(sys.argv[1]), int(sys.argv[2])\n"
         "    want = [i * i for i in range(n)]\n"
         "    with mp.Pool(2) as p:\n"
         "        p.map(sq, range(1000))\n"
         "        for name, cs in (('auto', None), ('one', 1)):\n"
         "            best = 0\n"
         "            for _ in range(rounds):\n"
         "                t = time.perf_counter(); r = p.map(sq, range(n), chunksize=cs)\n"
         "                dt = time.perf_counter() - t\n"
         "                assert r == want\n"
         "                best = max(best, n / dt)\n"
         "            print(name, best, flush=True)\n";
  }
  std::map<std::string, double> out;
  const std::string cmd = "python3 " + script + " " + std::to_string(n) + " " +
                          std::to_string(rounds) + " 2>/dev/null";
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char name[16];
    double rate;
    while (std::fscanf(p, "%15s %lf", name, &rate) == 2) out[name] = rate;
    ::pclose(p);
  }
  std::remove(script.c_str());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  bool quick = false, python = true, external = false;
  std::string only;
  int n = 100'000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--external") {
      external = true;
    } else if (a == "--no-python") {
      python = false;
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (a == "--tasks" && i + 1 < argc) {
      n = std::max(1000, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: bench_swarm [--quick] [--only auto|one] [--tasks N] "
                           "[--no-python] [--external]\n");
      return 2;
    }
  }
  const int rounds = quick ? 1 : 3;
  std::vector<int> in(n);
  std::iota(in.begin(), in.end(), 0);

  // Floor: a plain loop in this process (the same function, results in a vector).
  double loop_rate = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t = clock_type::now();
    std::vector<long long> out;
    out.reserve(in.size());
    for (int x : in) out.push_back(square(x));
    const double dt = seconds_since(t);
    if (out[12345] != 12345LL * 12345) return 1;
    loop_rate = std::max(loop_rate, n / dt);
  }

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
    auto sw = ctx.create_swarm(2);
    sw.map(square, std::vector<int>(1000, 3));  // workers started and connected
    for (auto [name, chunk] : {std::pair<const char*, std::size_t>{"auto", 0}, {"one", 1}}) {
      if (!only.empty() && only != name) continue;
      double best = 0;
      for (int r = 0; r < rounds; ++r) {
        zproc::map_options o;
        o.chunk_size = chunk;
        const auto t = clock_type::now();
        const auto out = sw.map(square, in, o);
        const double dt = seconds_since(t);
        for (int i = 0; i < n; ++i)
          if (out[static_cast<std::size_t>(i)] != 1LL * i * i) return 1;
        best = std::max(best, n / dt);
      }
      ours[name] = best;
    }
  }
  const auto py = python ? python_pool(n, rounds) : std::map<std::string, double>{};

  std::printf("map of %d squares on 2 workers (best of %d), tasks per second\n\n", n, rounds);
  std::printf("| mode | zproc swarm | Python Pool(2) | zproc / Python | target |\n");
  std::printf("|---|---|---|---|---|\n");
  for (const char* mode : {"auto", "one"}) {
    if (!only.empty() && only != mode) continue;
    const double p = py.count(mode) ? py.at(mode) : 0;
    std::printf("| %s | %.0f | %.0f | %.2fx | >= 2x |\n",
                std::string(mode) == "auto" ? "automatic chunks" : "chunk size 1", ours[mode], p,
                p > 0 ? ours[mode] / p : 0.0);
  }
  if (ours.count("auto"))
    std::printf("\nplain loop in one process: %.0f tasks/s (swarm automatic = %.4fx of it)\n",
                loop_rate, ours["auto"] / loop_rate);
  if (py.empty() && python) std::printf("(python3 not found: no comparison)\n");
  return 0;
}
