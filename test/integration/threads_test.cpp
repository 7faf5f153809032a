// The server on several threads (server_config::threads): every guarantee of one thread holds.
// The server runs in this process (server_thread), so that a ThreadSanitizer build of this
// suite (scripts/tsan) sees the server's threads as well as the clients'.
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

using namespace zproc;
using namespace std::chrono_literals;

namespace {
constexpr std::size_t server_threads = 4;

/// Each of `threads` threads runs `body(i)` with its own connection; joined before returning.
template <class F>
void on_connections(const std::string& address, int threads, F body) {
  std::vector<std::thread> pool;
  std::atomic<int> failures{0};
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&, i] {
      try {
        client c;
        c.connect(address);
        body(c, i);
      } catch (const std::exception& e) {
        ++failures;
        MESSAGE("connection " << i << ": " << e.what());
      }
    });
  for (auto& t : pool) t.join();
  REQUIRE(failures == 0);
}
}  // namespace

TEST_SUITE("threads") {
  TEST_CASE("8 connections write one namespace on a 4-thread server: every watcher sees every "
            "revision once, in order; increments are exact") {
    server_thread srv({.threads = server_threads});
    constexpr int writers = 8;
    constexpr int rounds = 250;
    constexpr std::uint64_t updates = writers * rounds * 2;

    client wc;
    wc.connect(srv.address());
    std::vector<std::unique_ptr<client>> watch_clients;
    std::vector<raw_watcher> watchers;
    for (int i = 0; i < 3; ++i) {  // each on a connection of its own, so on its own thread
      watch_clients.push_back(std::make_unique<client>());
      watch_clients.back()->connect(srv.address());
      watchers.push_back(state(*watch_clients.back(), "shared")
                             .when_change_raw({}, {.timeout = 30s, .start = 0}));
    }

    on_connections(srv.address(), writers, [](client& c, int i) {
      state st(c, "shared");
      const std::string mine = "w" + std::to_string(i);
      for (int j = 0; j < rounds; ++j) {
        st.increment("count");
        st.set(mine, j);
      }
    });
    state check(wc, "shared");
    CHECK(check.get("count") == writers * rounds);
    CHECK(check.revision() == updates);

    for (auto& w : watchers) {
      std::map<std::string, int> last;  // each writer's own writes arrive in its order
      std::uint64_t expected = 1;
      for (; expected <= updates; ++expected) {
        auto u = w.next();
        REQUIRE(u.has_value());
        if (u->revision != expected) {
          CHECK(u->revision == expected);
          break;
        }
        REQUIRE(u->changes.size() == 1);
        const auto& change = u->changes[0];
        if (change.key == "count") continue;
        const int value = change.after->get<int>();
        auto [it, fresh] = last.emplace(change.key, value);
        if (!fresh) {
          if (value != it->second + 1) {
            CHECK(value == it->second + 1);
            break;
          }
          it->second = value;
        }
      }
      CHECK(expected == updates + 1);
      CHECK(last.size() == writers);
    }
  }

  TEST_CASE("atomic() from 6 connections on a 4-thread server: no lost update") {
    server_thread srv({.threads = server_threads});
    constexpr int rounds = 40;
    on_connections(srv.address(), 6, [](client& c, int) {
      state st(c, "atomic");
      for (int j = 0; j < rounds; ++j)
        st.atomic([](json& d) { d["n"] = d.value("n", 0) + 1; }, {"n"});
    });
    client c;
    c.connect(srv.address());
    CHECK(state(c, "atomic").get("n") == 6 * rounds);
  }

  TEST_CASE("a watch woken from another thread's connection, a lock granted across threads") {
    server_thread srv({.threads = server_threads});
    client a, b;
    a.connect(srv.address());
    b.connect(srv.address());  // round robin: on another thread than a
    state sa(a, "cross"), sb(b, "cross");
    auto w = sa.when_change({"k"}, {.timeout = 10s});
    std::thread writer([&] { sb.set("k", 1); });
    auto snap = w.next();
    writer.join();
    REQUIRE(snap.has_value());
    CHECK((*snap)["k"] == 1);
  }

  TEST_CASE("stop() with connections open on every thread: it returns, the clients see it") {
    auto srv = std::make_unique<server_thread>(server_config{.threads = server_threads});
    std::vector<std::unique_ptr<client>> clients;
    std::vector<raw_watcher> watchers;
    for (int i = 0; i < 8; ++i) {
      clients.push_back(std::make_unique<client>(client_options{.reconnect_timeout = 0ms}));
      clients.back()->connect(srv->address());
      watchers.push_back(state(*clients.back(), "stop").when_change_raw({}, {.timeout = 10s}));
    }
    const auto before = std::chrono::steady_clock::now();
    srv->stop();
    CHECK(std::chrono::steady_clock::now() - before < 5s);
    for (auto& w : watchers) {
      try {
        (void)w.next();
        FAIL("a watcher outlived its server");
      } catch (const zproc::error& e) {
        CHECK(e.code() == client_errc::connection_closed);
      }
    }
  }
}
