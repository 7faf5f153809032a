// The server stays bounded whatever valid requests a client sends: fan-out of big updates to
// many watchers, and (see the other cases) the history's memory, namespaces and allocation
// failure. Each case runs its own `zproc server` process and reads its memory in /proc.
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

using namespace zproc;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

/// A field of /proc/PID/status in bytes (VmRSS, VmHWM).
std::size_t proc_status_bytes(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  FAIL("no " << field << " in /proc/" << pid << "/status");
  return 0;
}

}  // namespace

TEST_SUITE("bounds") {
  TEST_CASE("1,000 watchers and one 1 MiB write: every watcher served, the server's memory bounded") {
    test::server_process srv;
    constexpr int watchers = 1000;
    constexpr int connections = 10;
    constexpr std::size_t value_size = 1u << 20;

    asio::io_context ioc(1);
    std::vector<std::unique_ptr<client>> clients;
    std::vector<raw_watcher> ws;
    int served = 0;
    int failed = 0;
    test::run_with_deadline(ioc, [&]() -> asio::awaitable<void> {
      for (int k = 0; k < connections; ++k) {
        clients.push_back(std::make_unique<client>(ioc.get_executor()));
        co_await clients.back()->async_connect(srv.ipc());
      }
      ws.reserve(watchers);
      for (int i = 0; i < watchers; ++i)
        ws.push_back(state(*clients[i % connections], "fan").when_change_raw({"big"}));
      for (auto& c : clients) co_await c->async_ping();  // every watch is pinned
      for (auto& w : ws)
        asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
          auto [ec, u] = co_await w.async_next(asio::as_tuple(asio::use_awaitable));
          const key_change* big = (!ec && u) ? u->find("big") : nullptr;
          if (big && big->after && big->after->get_ref<const std::string&>().size() == value_size)
            ++served;
          else
            ++failed;
        }, asio::detached);
      co_return;
    }());
    const std::size_t before = proc_status_bytes(srv.pid(), "VmHWM");

    client writer;
    writer.connect(srv.ipc());
    state(writer, "fan").set("big", std::string(value_size, 'x'));
    ioc.restart();
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (served + failed < watchers && std::chrono::steady_clock::now() < deadline)
      ioc.run_for(100ms);
    CHECK(failed == 0);
    CHECK(served == watchers);

    const std::size_t peak = proc_status_bytes(srv.pid(), "VmHWM");
    MESSAGE("server peak RSS " << before / 1048576 << " MiB before the write, " << peak / 1048576
                               << " MiB after 1,000 watchers got a 1 MiB update");
    CHECK(peak < 200u * 1024u * 1024u);  // was 2.06 GB with a private copy per watcher
  }
}
