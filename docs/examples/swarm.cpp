// The guide's swarm example (docs/guide.md, "Swarm"): map, map_lazy, run, a task by id,
// errors per call, and the workers the server knows. Built and run by the tests.
#include <zproc/zproc.hpp>

#include <chrono>
#include <iostream>
#include <numeric>
#include <stdexcept>
#include <vector>

long long square(int x) { return 1LL * x * x; }
ZPROC_TARGET(square);

int checked_div(int a, int b) {
  if (b == 0) throw std::domain_error("division by zero");
  return a / b;
}
ZPROC_TARGET(checked_div);

int main(int argc, char** argv) {
  zproc::init(argc, argv);  // workers are this program, started again: they run from here

  zproc::context ctx;                  // an embedded server
  zproc::swarm swarm = ctx.create_swarm(2);  // two worker processes

  std::vector<int> inputs(10'000);
  std::iota(inputs.begin(), inputs.end(), 0);
  std::vector<long long> squares = swarm.map(square, inputs);  // in input order
  std::cout << "squares[9999] = " << squares[9999] << "\n";

  for (long long v : swarm.map_lazy(square, std::vector<int>{1, 2, 3}))  // as they arrive
    std::cout << v << " ";
  std::cout << "\n";

  zproc::task<int> t = swarm.run(checked_div, 84, 2);  // one call; the server keeps the result
  std::cout << "84 / 2 = " << t.get(std::chrono::seconds(30)) << "\n";

  std::vector<std::pair<int, int>> pairs{{10, 2}, {1, 0}, {9, 3}};
  try {
    swarm.map(checked_div, pairs);
  } catch (const zproc::remote_error& e) {  // the first failing input's error
    std::cout << "caught " << e.type() << ": " << e.message() << "\n";
  }

  for (const zproc::worker_info& w : swarm.workers())
    std::cout << "worker " << w.pid << " on " << w.host << " did " << w.done << " tasks\n";
}
