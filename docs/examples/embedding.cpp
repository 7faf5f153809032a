// Embedding: an existing Asio application (here a timer-driven "ticker" service) runs the zproc
// server, a client and a watcher on its own io_context, on one thread, with no extra threads.
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <filesystem>
#include <iostream>

namespace asio = boost::asio;

// The application's own work: ticks every 10 ms and publishes the count in the state.
asio::awaitable<void> ticker(zproc::state st, int ticks) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (int i = 1; i <= ticks; ++i) {
    timer.expires_after(std::chrono::milliseconds(10));
    co_await timer.async_wait(asio::deferred);
    co_await st.async_set("ticks", i);
  }
}

int main() {
  asio::io_context ioc;  // the application's io_context, run by this thread only
  const auto path = std::filesystem::temp_directory_path() / "zproc-embedding-example.sock";

  // [embed-server]
  zproc::server server(ioc.get_executor(), {.listen = {"ipc://" + path.string()}});
  server.start();  // binds now; serves while ioc runs
  // [embed-server]

  int seen = 0;     // ticks the watcher saw
  int running = 2;  // the watcher and the ticker: the last one to finish stops the server
  auto finished = [&] {
    if (--running == 0) server.stop();  // closes listeners and connections: ioc.run() returns
  };

  // A watcher on the same io_context: it sleeps until a tick is written, and misses none.
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    zproc::client c(ioc.get_executor());
    co_await c.async_connect(server.addresses().front());
    zproc::state st(c, "app");
    zproc::watcher w = st.when_change({"ticks"}, {.start = 0, .count = 5});
    while (auto snapshot = co_await w.async_next())
      std::cout << "watcher saw tick " << (*snapshot)["ticks"] << "\n", ++seen;
    finished();
  }, asio::detached);

  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    zproc::client c(ioc.get_executor());
    co_await c.async_connect(server.addresses().front());
    zproc::state st(c, "app");
    co_await ticker(st, 5);
    std::cout << "ticks: " << co_await st.async_get("ticks") << "\n";
    finished();
  }, asio::detached);

  ioc.run();
  return seen == 5 ? 0 : 1;
}
