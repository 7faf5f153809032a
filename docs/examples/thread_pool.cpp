// The guide's "Clients: blocking or co_await": one client shared by coroutines on a
// thread_pool.
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <string>
#include <vector>

namespace asio = boost::asio;

int main() {
  zproc::server_thread server;
  asio::thread_pool pool(4);
  zproc::client c(pool);  // its connection runs on a strand of the pool
  c.async_connect(server.address(), asio::use_future).get();
  zproc::state counters(c, "counters");

  std::vector<std::future<void>> done;
  for (int k = 0; k < 8; ++k)
    done.push_back(asio::co_spawn(
        pool,  // eight coroutines on four threads, one connection
        [counters, k]() -> asio::awaitable<void> {
          for (int i = 0; i < 100; ++i) {
            co_await counters.async_increment("total");
            co_await counters.async_set("worker-" + std::to_string(k), i);
          }
        },
        asio::use_future));
  for (auto& f : done) f.get();

  // A blocking call from a thread that is not the pool's.
  const auto total = counters.get("total").get<int>();
  c.close();
  pool.join();
  return total == 800 ? 0 : 1;
}
