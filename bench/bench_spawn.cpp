// Spawn-and-wait of a target returning an int, beside the floor measured in the same run:
// posix_spawn + exec + waitpid of this same binary (which exits at once). Prints p50s and the
// ratio. Then retries: a target that throws at once, retried with retry_delay 0, in attempts
// per second beside the floor's spawns per second (target: >= 100 attempts/s).
// Usage: bench_spawn [ROUNDS [RETRIES]]
#include "support.hpp"

#include <zproc/zproc.hpp>

#include <fcntl.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

int answer(int x) { return x + 1; }
ZPROC_TARGET(answer);

void fail_at_once() { throw std::runtime_error("fails at once"); }
ZPROC_TARGET(fail_at_once);

double floor_once() {
  char self[] = "/proc/self/exe";
  char flag[] = "--floor";
  char* argv[] = {self, flag, nullptr};
  const auto t0 = std::chrono::steady_clock::now();
  pid_t pid = -1;
  if (::posix_spawn(&pid, self, nullptr, nullptr, argv, environ) != 0) throw std::runtime_error("spawn");
  int status = 0;
  ::waitpid(pid, &status, 0);
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--floor") == 0) return 0;  // the floor's child
  zproc::init(argc, argv);
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 200;
  const int retries = argc > 2 ? std::atoi(argv[2]) : 100;
  zproc::context ctx;
  ctx.spawn(answer, 0).wait<int>();  // warm up: supervisor thread, records connection
  std::vector<double> floor_us, spawn_us;
  for (int i = 0; i < rounds; ++i) {  // interleaved: both see the same machine
    floor_us.push_back(floor_once());
    const auto t0 = std::chrono::steady_clock::now();
    if (ctx.spawn(answer, i).wait<int>() != i + 1) return 1;
    spawn_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  const auto f = zproc::bench::summarize(floor_us);
  const auto s = zproc::bench::summarize(spawn_us);
  zproc::bench::print_latency("floor: posix_spawn+exec+waitpid of this binary", f);
  zproc::bench::print_latency("zproc: spawn(answer, i).wait<int>()", s);
  std::printf("ratio (p50): %.2fx the floor (target: <= 1.1x, issue 15; 3x at first)\n",
              s.p50_us / f.p50_us);

  // Retries: one spawn, `retries` attempts, each throwing at once; the crash reports printed
  // for each go to /dev/null. The floor: as many posix_spawns of this binary, one after another.
  zproc::spawn_options o;
  o.retry_for = {zproc::retry_on<std::runtime_error>()};
  o.retry_delay = std::chrono::milliseconds(0);
  o.max_retries = static_cast<std::size_t>(retries - 1);
  std::fflush(stderr);
  const int saved_err = ::dup(2);
  const int null_fd = ::open("/dev/null", O_WRONLY);
  ::dup2(null_fd, 2);
  const auto r0 = std::chrono::steady_clock::now();
  auto p = ctx.spawn(o, fail_at_once);
  try {
    p.wait();
  } catch (const zproc::remote_error&) {  // the last attempt's error: expected
  }
  const double retry_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - r0).count();
  std::fflush(stderr);
  ::dup2(saved_err, 2);
  ::close(saved_err);
  ::close(null_fd);
  const auto f0 = std::chrono::steady_clock::now();
  for (int i = 0; i < retries; ++i) floor_once();
  const double floor_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - f0).count();
  const double attempts_per_s = static_cast<double>(p.attempts()) / retry_s;
  const double floor_per_s = retries / floor_s;
  std::printf("floor: posix_spawn+exec+waitpid, one after another  %8.1f spawns/s\n", floor_per_s);
  std::printf("zproc: retries of a target that throws at once        %8.1f attempts/s (%zu attempts)\n",
              attempts_per_s, p.attempts());
  std::printf("ratio: %.2fx the floor's rate (target: >= 100 attempts/s)\n",
              attempts_per_s / floor_per_s);
}
