// ZProc's swarm example: a swarm of workers maps squares over many items, with a progress bar
// on a terminal, checks every result, and prints tasks per second.
//
//   mapper [ITEMS] [WORKERS]      (default: 1,000,000 items, one worker per core)
#include <zproc/zproc.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <vector>

namespace {

long long square(int x) { return static_cast<long long>(x) * x; }
ZPROC_TARGET(square);

/// "[#########.........]  47%" on stderr, redrawn in place (only on a terminal).
void draw(std::size_t done, std::size_t total) {
  constexpr int width = 40;
  const int filled = total ? static_cast<int>(width * done / total) : width;
  std::fprintf(stderr, "\r[%.*s%.*s] %3d%%", filled, "########################################",
               width - filled, "........................................",
               total ? static_cast<int>(100 * done / total) : 100);
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);  // in a worker, this runs the swarm's loop and exits
  const int items = argc > 1 ? std::atoi(argv[1]) : 1'000'000;
  const std::size_t workers = argc > 2 ? std::strtoul(argv[2], nullptr, 10)
                                       : zproc::context::default_swarm_size();

  zproc::context ctx;  // an embedded server
  auto swarm = ctx.create_swarm(workers);
  std::vector<int> inputs(static_cast<std::size_t>(items));
  std::iota(inputs.begin(), inputs.end(), 0);

  zproc::map_options options;
  options.timeout = std::chrono::minutes(10);
  if (::isatty(STDERR_FILENO)) options.progress = draw;

  const auto start = std::chrono::steady_clock::now();
  const std::vector<long long> squares = swarm.map(square, inputs, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  for (int i = 0; i < items; ++i) {
    if (squares[static_cast<std::size_t>(i)] != 1LL * i * i) {
      std::printf("wrong result for %d: %lld\n", i, squares[static_cast<std::size_t>(i)]);
      return 1;
    }
  }
  std::printf("mapped %d squares on %zu workers: all correct\n", items, workers);
  std::printf("%.0f tasks per second (%.3f s)\n", items / seconds, seconds);
  return 0;
}
