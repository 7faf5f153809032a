// Shared by the benchmarks: percentiles, and child processes whose stdout we read.
#pragma once

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace zproc::bench {

struct stats {
  double p50_us = 0;
  double p99_us = 0;
};

inline stats summarize(std::vector<double>& samples_us) {
  std::sort(samples_us.begin(), samples_us.end());
  auto at = [&](double q) {
    return samples_us[static_cast<std::size_t>(q * static_cast<double>(samples_us.size() - 1))];
  };
  return {at(0.50), at(0.99)};
}

/// One row of a latency table: "LABEL  p50 X us  p99 Y us".
inline void print_latency(const char* label, const stats& s) {
  std::printf("%-54s p50 %8.1f us  p99 %8.1f us\n", label, s.p50_us, s.p99_us);
}

struct child {
  pid_t pid = -1;
  int out = -1;
  ~child() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
    if (out >= 0) ::close(out);
  }
};

#ifdef ZPROC_EXE
/// The `zproc` program a benchmark starts its servers from: the build's, unless the environment
/// names another (ZPROC_BENCH_ZPROC: a bundle's on the many-core machine, bench/device/scale.sh;
/// a wrapper for a profile; another build for an A/B run).
inline std::string zproc_exe() {
  const char* p = std::getenv("ZPROC_BENCH_ZPROC");
  return p ? p : ZPROC_EXE;
}
#endif

/// Spawns argv with stdout to a pipe.
inline void spawn(child& c, std::vector<std::string> argv) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  if (::posix_spawn(&c.pid, args[0], &fa, nullptr, args.data(), environ) != 0)
    throw std::runtime_error("spawn " + argv[0]);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  c.out = fds[0];
}

/// Reads stdout lines of `c` until `count` lines starting with `prefix` came (10 s at most).
inline std::vector<std::string> read_lines(child& c, const std::string& prefix, std::size_t count) {
  std::vector<std::string> lines;
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (lines.size() < count && std::chrono::steady_clock::now() < deadline) {
    pollfd p{c.out, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(c.out, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = text.find('\n')) != std::string::npos; text.erase(0, nl + 1))
      if (text.compare(0, prefix.size(), prefix) == 0)
        lines.push_back(text.substr(prefix.size(), nl - prefix.size()));
  }
  if (lines.size() < count) throw std::runtime_error("child did not report " + prefix);
  return lines;
}

/// A field of /proc/PID/status in kB ("VmRSS", "VmHWM": the peak RSS), in MiB; -1 if unreadable.
inline double proc_status_mib(pid_t pid, const std::string& field) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
  if (!f) return -1;
  char line[256];
  double mib = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, field.c_str(), field.size()) == 0 && line[field.size()] == ':')
      mib = std::strtod(line + field.size() + 1, nullptr) / 1024.0;
  std::fclose(f);
  return mib;
}
}  // namespace zproc::bench
