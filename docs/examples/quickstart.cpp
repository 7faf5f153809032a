// The README's example: an embedded server, a blocking client and a co_await client.
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

boost::asio::awaitable<void> eat(zproc::client& c) {
  zproc::state st(c, "kitchen");
  auto cookies = co_await st.async_get("cookies");  // one round trip, no thread hop
  co_await st.async_set("cookies", cookies.get<int>() - 1);
  std::cout << "nom nom nom, " << co_await st.async_get("cookies") << " left\n";
}

int main() {
  zproc::server_thread server;  // the state server, on its own thread

  zproc::client c;  // blocking mode
  c.connect(server.address());
  zproc::state st(c, "kitchen");
  st.set("cookies", 5);

  boost::asio::io_context ioc;  // async mode: any executor
  boost::asio::co_spawn(ioc, [&]() -> boost::asio::awaitable<void> {
    zproc::client ac(ioc.get_executor());
    co_await ac.async_connect(server.address());
    co_await eat(ac);
  }, boost::asio::detached);  // the connection closes with `ac`; then ioc.run() returns
  ioc.run();

  std::cout << "revision " << st.revision() << ": " << st.copy().dump() << "\n";
}
