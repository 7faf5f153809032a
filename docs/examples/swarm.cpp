// The guide's swarm example (docs/guide.md, "Swarm"): map, map_lazy, run, a task by id,
// errors per call, the workers the server knows, and async submission (co_await). Built and
// run by the tests.
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
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

// 0, 1, 2, ... for ever: an input range that never ends (std::views::iota(0) with GCC; Clang
// 14 cannot compile libstdc++ 12's views).
struct naturals {
  struct end_t {};
  struct iterator {
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    int i = 0;
    int operator*() const { return i; }
    iterator& operator++() {
      ++i;
      return *this;
    }
    void operator++(int) { ++i; }
    bool operator==(end_t) const { return false; }
  };
  iterator begin() const { return {}; }
  end_t end() const { return {}; }
};

boost::asio::awaitable<void> async_part(zproc::swarm& swarm) {
  std::vector<int> inputs(1000);
  std::iota(inputs.begin(), inputs.end(), 0);
  std::vector<long long> squares = co_await swarm.async_map(square, inputs);
  zproc::task<int> t = co_await swarm.async_run(checked_div, 84, 2);  // submitted
  int quotient = co_await t.async_get();                              // its result
  // An endless input range: submitted in a bounded window as the results are read.
  zproc::map_stream<long long> stream = co_await swarm.async_map_lazy(square, naturals{});
  long long sum = 0;
  for (int i = 0; i < 100'000; ++i) sum += *co_await stream.async_next();
  std::cout << squares[999] << " " << quotient << " " << sum << "\n";
}  // the stream goes: the tasks not read are cancelled, no more inputs are pulled

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

  boost::asio::io_context io;
  zproc::swarm_options options;
  options.executor = io.get_executor();  // the async_ forms run on io
  zproc::swarm async_swarm = ctx.create_swarm(2, options);
  boost::asio::co_spawn(io, async_part(async_swarm), [&](std::exception_ptr e) {
    io.stop();  // the swarm's connection keeps io busy
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
