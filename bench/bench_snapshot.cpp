// bench_snapshot: what a snapshot of a big state costs the clients of a `zproc server` with a
// data directory, as ratios to a floor measured in the same run (the machines are shared and
// noisy: absolute times drift, ratios hold).
//
//   floor      ping round trips to the same server, loaded, with no snapshot running
//   during     ping round trips while the snapshot of N keys (default 1,000,000) is written
//   duration   from the write that begins the snapshot until it is durable (snapshot renamed,
//              log.old removed), as the client sees the files
//   (pings run on a connection of their own, all through the snapshot)
//   peak RSS   the server's VmHWM (/proc/PID/status) after loading, and after the snapshot
//   restart    a new server on the directory: until it listens, and its peak RSS
//
// Usage: bench_snapshot [--keys N] [--server PATH-OF-ZPROC (another build, to compare)] [--writes]
// --writes: the round trips of the floor and of the pinger are sets on namespace "writes"
// (another shard than the snapshot's "big" on a 2-thread server) instead of pings.
#include <zproc/zproc.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "support.hpp"

namespace {

using namespace zproc::bench;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

double us_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

struct latency {
  double p50 = 0, p99 = 0, max = 0;
  std::size_t n = 0;
};

latency summarize_all(std::vector<double> samples) {
  latency l;
  l.n = samples.size();
  if (samples.empty()) return l;
  const stats s = summarize(samples);  // sorts
  l.p50 = s.p50_us;
  l.p99 = s.p99_us;
  l.max = samples.back();
  return l;
}

bool in_progress(const std::string& dir) {
  return fs::exists(dir + "/snapshot.tmp") || fs::exists(dir + "/log.old");
}

}  // namespace

int main(int argc, char** argv) {
  int keys = 1'000'000;
  std::string exe = ZPROC_EXE;
  bool writes = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--writes") writes = true;
    if (std::string(argv[i]) == "--keys" && i + 1 < argc) keys = std::atoi(argv[++i]);
    if (std::string(argv[i]) == "--server" && i + 1 < argc) exe = argv[++i];
  }
  const int per_update = 10'000;
  const int updates = (keys + per_update - 1) / per_update;

  const std::string dir =
      (fs::temp_directory_path() / ("zproc-bench-snapshot-" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  const std::string ipc = "ipc://" + dir + ".sock";
  child server;
  // The write after the load is the one that begins the snapshot.
  spawn(server, {exe, "server", "--listen", ipc, "--data-dir", dir, "--fsync", "never",
                 "--snapshot-every", std::to_string(updates + 1)});
  read_lines(server, "listening at ", 1);

  zproc::client c;
  c.connect(ipc);
  zproc::state st(c, "big");
  const auto load0 = clock_type::now();
  for (int from = 0; from < keys; from += per_update) {
    zproc::json part = zproc::json::object();
    char key[16];
    for (int i = from; i < std::min(keys, from + per_update); ++i) {
      std::snprintf(key, sizeof key, "k%07d", i);
      part[key] = "value-" + std::to_string(1'000'000'000 + i) + "abc";
    }
    st.update(std::move(part));
  }
  const double load_s = us_since(load0) / 1e6;
  const double rss_loaded = proc_status_mib(server.pid, "VmRSS");
  const double hwm_loaded = proc_status_mib(server.pid, "VmHWM");
  if (fs::exists(dir + "/snapshot") || in_progress(dir))
    throw std::runtime_error("a snapshot began during the load");

  std::vector<double> floor_samples;
  for (int i = 0; i < 20'000; ++i) {
    const auto t0 = clock_type::now();
    if (writes) {
      zproc::state(c, "writes").set("k", i);
    } else {
      c.ping();
    }
    floor_samples.push_back(us_since(t0));
  }

  // Pings on a connection of their own, from before the write that begins the snapshot until
  // it is durable: a snapshot that blocked the server (the write's reply held up with it) shows
  // as well as one that does not.
  std::atomic<bool> stop{false};
  std::vector<std::pair<clock_type::time_point, double>> pings;  // start, latency (us)
  std::thread pinger([&] {
    zproc::client pc;
    pc.connect(ipc);
    zproc::state w(pc, "writes");
    for (int n = 0; !stop.load(); ++n) {
      const auto t0 = clock_type::now();
      if (writes) {
        w.set("k", n);
      } else {
        pc.ping();
      }
      pings.emplace_back(t0, us_since(t0));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto snap0 = clock_type::now();
  st.set("trigger", true);  // begins the snapshot
  const double trigger_us = us_since(snap0);
  while (in_progress(dir)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (us_since(snap0) > 300e6) throw std::runtime_error("the snapshot took over 5 minutes");
  }
  const auto snap_end = clock_type::now();
  stop = true;
  pinger.join();
  const double snapshot_s = std::chrono::duration<double>(snap_end - snap0).count();
  std::vector<double> during_samples;
  for (const auto& [t0, us] : pings)  // every ping that overlapped the snapshot
    if (t0 <= snap_end && t0 + std::chrono::duration<double, std::micro>(us) >= snap0)
      during_samples.push_back(us);
  const double hwm_after = proc_status_mib(server.pid, "VmHWM");
  const double snapshot_mib = static_cast<double>(fs::file_size(dir + "/snapshot")) / (1 << 20);

  const latency fl = summarize_all(floor_samples);
  const latency du = summarize_all(during_samples);
  std::printf("bench_snapshot: %d keys (loaded in %.1f s, %d updates of %d keys)\n", keys, load_s,
              updates, per_update);
  std::printf("  ping, no snapshot (floor):  p50 %7.1f us  p99 %7.1f us  max %9.1f us  (%zu pings)\n",
              fl.p50, fl.p99, fl.max, fl.n);
  std::printf("  ping, during the snapshot:  p50 %7.1f us  p99 %7.1f us  max %9.1f us  (%zu pings)\n",
              du.p50, du.p99, du.max, du.n);
  if (du.n > 0)
    std::printf("  ratio during/floor:         p50 %7.2fx    p99 %7.2fx    max %9.2fx\n",
                du.p50 / fl.p50, du.p99 / fl.p99, du.max / fl.max);
  std::printf("  the write that began it:    %.1f us\n", trigger_us);
  std::printf("  snapshot: %.2f s until durable, %.1f MiB on disk\n", snapshot_s, snapshot_mib);
  std::printf("  server RSS after the load %.0f MiB (peak %.0f MiB); peak after the snapshot %.0f MiB "
              "(+%.0f MiB)\n",
              rss_loaded, hwm_loaded, hwm_after, hwm_after - hwm_loaded);

  // The restart: the snapshot loaded (streamed, format 3) and the log replayed.
  ::kill(server.pid, SIGTERM);
  int status = 0;
  ::waitpid(server.pid, &status, 0);
  server.pid = -1;
  const auto restart0 = clock_type::now();
  child again;
  spawn(again, {exe, "server", "--listen", ipc, "--data-dir", dir, "--fsync", "never"});
  read_lines(again, "listening at ", 1);
  const double restart_s = us_since(restart0) / 1e6;
  std::printf("  restart (load the snapshot, replay the log): %.2f s, server peak RSS %.0f MiB\n",
              restart_s, proc_status_mib(again.pid, "VmHWM"));
  fs::remove_all(dir);
  return 0;
}
