// The example of README.md, verbatim (test 'docs.readme' checks they match).
#include <iostream>
#include <zproc/zproc.hpp>

long long square(int x) { return 1LL * x * x; }
ZPROC_TARGET(square);  // a function other processes can run

void baker(zproc::state& kitchen) {                // runs in a process of its own
  kitchen.get_when_equal("oven", "hot");            // sleeps until the state says so
  kitchen.increment("cookies", 12);                 // one atomic step on the server
}
ZPROC_TARGET(baker);

int main(int argc, char** argv) {
  zproc::init(argc, argv);                          // in a spawned process: run its target
  zproc::context ctx;                               // starts an embedded state server
  auto kitchen = ctx.create_state({{"cookies", 0}, {"oven", "cold"}});
  auto cookies = kitchen.when_change({"cookies"});  // a watcher: misses no write
  auto proc = ctx.spawn(baker);                     // a child process
  kitchen.set("oven", "hot");
  std::cout << "cookies: " << cookies.next()->at("cookies") << "\n";  // cookies: 12
  proc.wait();

  auto swarm = ctx.create_swarm(2);                 // two worker processes
  auto squares = swarm.map(square, std::vector<int>{1, 2, 3});     // {1, 4, 9}
  std::cout << "squares: " << squares[0] + squares[1] + squares[2] << "\n";  // 14
}
