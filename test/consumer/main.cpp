// Uses the installed zproc: an embedded server, a coroutine client, a blocking client.
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

int main() {
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
  std::cout << (result == 0 ? "consumer ok" : "consumer FAILED") << "\n";
  return result;
}
