// A program that owns a swarm on an external server and ends normally: `swarm_owner ADDRESS N`
// maps squares over N items with two workers, prints the sum, and returns from main. Its
// workers retire cleanly; the records it leaves on the server must say so (none "lost").
#include <zproc/zproc.hpp>

#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

namespace {
long long square(int x) { return 1LL * x * x; }
ZPROC_TARGET(square);
}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: swarm_owner ADDRESS N\n");
    return 2;
  }
  zproc::context ctx({.address = argv[1]});
  auto swarm = ctx.create_swarm(2);
  std::vector<int> inputs(static_cast<std::size_t>(std::atoi(argv[2])));
  std::iota(inputs.begin(), inputs.end(), 0);
  const auto squares = swarm.map(square, inputs);
  std::printf("%lld\n", std::accumulate(squares.begin(), squares.end(), 0LL));
  return 0;
}
