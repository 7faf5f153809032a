// Uses the installed zproc: an embedded server, a coroutine client, a blocking client, a spawned
// process and a swarm of worker processes (targets registered in this program).
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <iostream>
#include <vector>

namespace {
int twice(int x) { return 2 * x; }
ZPROC_TARGET(twice);
}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);  // spawned processes and swarm workers run from here
  zproc::server_thread srv;
  boost::asio::io_context ioc;
  int result = 1;
  boost::asio::co_spawn(
      ioc,
      [&]() -> boost::asio::awaitable<void> {
        zproc::client c(ioc.get_executor());
        co_await c.async_connect(srv.address());
        zproc::state st(c, "consumer");
        co_await st.async_set("answer", 42);
        result = (co_await st.async_get("answer")) == 42 ? 0 : 1;
      },
      boost::asio::detached);
  ioc.run();
  zproc::client blocking;
  blocking.connect(srv.address());
  if (zproc::state(blocking, "consumer").get("answer") != 42) result = 1;

  zproc::context ctx({.address = srv.address()});
  if (ctx.spawn(twice, 21).wait<int>(std::chrono::seconds(60)) != 42) result = 1;
  auto swarm = ctx.create_swarm(2);
  zproc::map_options options;
  options.timeout = std::chrono::seconds(60);
  if (swarm.map(twice, std::vector<int>{1, 2, 3}, options) != std::vector<int>{2, 4, 6}) result = 1;

  std::cout << (result == 0 ? "consumer ok" : "consumer FAILED") << "\n";
  return result;
}
