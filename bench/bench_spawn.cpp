// Spawn-and-wait of a target returning an int, beside the floor measured in the same run:
// posix_spawn + exec + waitpid of this same binary (which exits at once). Prints p50s and the
// ratio. Usage: bench_spawn [ROUNDS]
#include "support.hpp"

#include <zproc/zproc.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

int answer(int x) { return x + 1; }
ZPROC_TARGET(answer);

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
  std::printf("floor: posix_spawn+exec+waitpid of this binary  p50 %8.1f us  p99 %8.1f us\n",
              f.p50_us, f.p99_us);
  std::printf("zproc: spawn(answer, i).wait<int>()             p50 %8.1f us  p99 %8.1f us\n",
              s.p50_us, s.p99_us);
  std::printf("ratio (p50): %.2fx the floor (target: within 3x)\n", s.p50_us / f.p50_us);
}
