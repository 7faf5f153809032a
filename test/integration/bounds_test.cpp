// The server stays bounded whatever valid requests a client sends: fan-out of big updates to
// many watchers, and (see the other cases) the history's memory, namespaces and allocation
// failure. Each case runs its own `zproc server` process and reads its memory in /proc.
#include "server/history.hpp"
#include "support/sanitizer.hpp"
#include "support/raw_peer.hpp"
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
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

/// Resident memory means nothing under AddressSanitizer (its shadow memory, and the freed blocks
/// it keeps in quarantine): the cases still run, their memory is not checked.
constexpr bool memory_is_measurable = !test::under_address_sanitizer;

/// Runs `setup` on `ioc` until it finishes (not until the watchers it started are done, as
/// run_with_deadline() would); fails after 20 s.
template <class Awaitable>
void run_setup(asio::io_context& ioc, Awaitable setup) {
  bool done = false;
  std::exception_ptr error;
  asio::co_spawn(ioc, std::move(setup), [&](std::exception_ptr e) {
    done = true;
    error = e;
  });
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!done && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(100ms);
  if (!done) FAIL("the setup did not finish within 20 s");
  if (error) std::rethrow_exception(error);
}

/// Lets the coroutines just spawned on `ioc` take their first step (send their watch requests),
/// so that a ping sent after this is answered only once the server has registered them.
asio::awaitable<void> let_spawned_start(asio::io_context& ioc) {
  for (int i = 0; i < 3; ++i) co_await asio::post(ioc, asio::use_awaitable);
}

/// A string of `n` bytes that differs for every `seed`.
std::string blob(std::size_t n, int seed) {
  std::string s(n, 'b');
  const std::string tag = std::to_string(seed);
  s.replace(0, tag.size(), tag);
  return s;
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
    run_setup(ioc, [&]() -> asio::awaitable<void> {
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
      co_await let_spawned_start(ioc);
      for (auto& c : clients) co_await c->async_ping();  // every watch waits in the server
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
    if (memory_is_measurable) CHECK(peak < 200u * 1024u * 1024u);  // was 2.06 GB with a private copy per watcher
  }

  TEST_CASE("a connection over its output limit: its watchers wait, then catch up, missing nothing") {
    // 200 watchers on one connection that stops reading, each waiting for the write of its
    // own key; every write also carries a 256 KiB blob. Past 1 MiB of queued replies the
    // connection's watchers are held back instead of pinning every update in its queue.
    const auto run = [](std::size_t history_bytes, int& served, int& compacted) {
      test::server_process srv({"--max-pending-output", "1048576", "--history-bytes",
                                std::to_string(history_bytes)});
      constexpr int watchers = 200;
      asio::io_context ioc(1);
      client slow(ioc.get_executor());
      std::vector<raw_watcher> ws;
      int done = 0;
      served = compacted = 0;
      run_setup(ioc, [&]() -> asio::awaitable<void> {
        co_await slow.async_connect(srv.ipc());
        ws.reserve(watchers);
        for (int i = 0; i < watchers; ++i)
          ws.push_back(state(slow, "bp").when_change_raw({"k" + std::to_string(i)}));
        co_await slow.async_ping();  // the watchers know where they start
        for (int i = 0; i < watchers; ++i)
          asio::co_spawn(ioc, [&, i]() -> asio::awaitable<void> {
            auto [ec, u] = co_await ws[static_cast<std::size_t>(i)].async_next(
                asio::as_tuple(asio::use_awaitable));
            ++done;
            if (ec == server_errc::compacted) {
              ++compacted;
            } else if (!ec && u) {
              const key_change* k = u->find("k" + std::to_string(i));
              if (k && k->after && *k->after == i) ++served;
            }
          }, asio::detached);
        co_await let_spawned_start(ioc);
        co_await slow.async_ping();  // every watch waits in the server
      }());
      const std::size_t before = proc_status_bytes(srv.pid(), "VmRSS");
      client writer;
      writer.connect(srv.ipc());
      state st(writer, "bp");
      for (int i = 0; i < watchers; ++i)
        st.update({{"k" + std::to_string(i), i}, {"blob", blob(256 * 1024, i)}});
      const std::size_t grown = proc_status_bytes(srv.pid(), "VmHWM") - before;
      ioc.restart();
      const auto deadline = std::chrono::steady_clock::now() + 60s;
      while (done < watchers && std::chrono::steady_clock::now() < deadline) ioc.run_for(100ms);
      CHECK(done == watchers);  // nobody hangs
      return grown;
    };

    int served = 0;
    int compacted = 0;
    // The history holds every update: each watcher gets its own, exactly.
    run(256u << 20, served, compacted);
    CHECK(served == 200);
    CHECK(compacted == 0);

    // A small history: watchers held back too long get `compacted` (never a wrong or missing
    // update), and the server's memory is the history's, not 200 queued updates (50 MiB).
    const std::size_t grown = run(4u << 20, served, compacted);
    MESSAGE("server memory grew by " << grown / 1048576 << " MiB with 200 x 256 KiB updates for a "
            "connection that did not read; " << served << " watchers served, " << compacted
            << " compacted");
    CHECK(served + compacted == 200);
    CHECK(compacted > 0);
    if (memory_is_measurable) CHECK(grown < 30u * 1024u * 1024u);
  }

  TEST_CASE("the history's memory stays within 20% of its budget, whatever the values' shape") {
    // Values of one shape are written to one key of one namespace until twice the budget went
    // in; the history keeps what its 32 MiB budget allows. What the server's resident memory grows by is compared with the
    // budget plus the namespace's own copy of the value and the request being decoded.
    constexpr std::size_t budget = 32u << 20;
    const std::vector<std::pair<const char*, std::function<json(int)>>> shapes{
        {"a map of 2,000 empty maps", [](int round) {
           json v = json::object();
           for (int i = 0; i < 2000; ++i) v["k" + std::to_string(i * 1000 + round)] = json::object();
           return v;
         }},
        {"an array of 20,000 ints", [](int round) {
           json v = json::array();
           for (int i = 0; i < 20'000; ++i) v.push_back(i + round);
           return v;
         }},
        {"a string of 512 KiB", [](int round) { return json(blob(512 * 1024, round)); }},
        {"2,000 short strings", [](int round) {
           json v = json::array();
           for (int i = 0; i < 2000; ++i) v.push_back(std::to_string(i + round));
           return v;
         }},
        {"1,000 small records", [](int round) {
           json v = json::array();
           for (int i = 0; i < 1000; ++i) v.push_back({{"id", i + round}, {"tags", {"a", "b"}}});
           return v;
         }},
    };
    for (const auto& [name, make] : shapes) {
      test::server_process srv({"--history-bytes", std::to_string(budget)});
      client c;
      c.connect(srv.ipc());
      state st(c, "shapes");
      st.set("warm-up", 1);
      const std::size_t before = proc_status_bytes(srv.pid(), "VmRSS");
      // Each record holds two values (before and after): write until twice the budget went in.
      std::size_t value_memory = 0;
      std::size_t written = 0;
      for (int round = 0; written < 2 * budget; ++round) {
        const json v = make(round);
        value_memory = std::max(value_memory, server_detail::heap_bytes(v));
        written += 2 * server_detail::heap_bytes(v);
        st.set("v", v);
      }
      const std::size_t grown = proc_status_bytes(srv.pid(), "VmRSS") - before;
      // Besides the history: the namespace's value, and the request and its decoded copy.
      const std::size_t allowed = budget + budget / 5 + 3 * value_memory + (2u << 20);
      MESSAGE(std::string(name) << ": server memory grew by " << grown / 1024 << " KiB for a history budget of "
                   << budget / 1024 << " KiB (one value holds " << value_memory / 1024 << " KiB)");
      if (memory_is_measurable) CHECK(grown <= allowed);
    }
  }

  TEST_CASE("max_namespaces: the server refuses the namespace past its limit, serves the others") {
    test::server_process srv({"--max-namespaces", "3"});
    client c;
    c.connect(srv.ipc());
    for (const char* ns : {"a", "b", "c"}) state(c, ns).set("k", 1);
    try {
      state(c, "d").set("k", 1);
      FAIL("a fourth namespace was created");
    } catch (const error& e) {
      CHECK(e.code() == server_errc::limit_reached);
      CHECK(std::string(e.what()).find("--max-namespaces") != std::string::npos);
    }
    CHECK(state(c, "a").get("k") == 1);
    CHECK_FALSE(state(c, "d").contains("k"));
  }

  TEST_CASE("max_connections and max_parked: refused with limit_reached, the others served") {
    test::server_process srv({"--max-connections", "2", "--max-parked", "2"});
    client a, b;
    a.connect(srv.ipc());
    b.connect(srv.tcp());
    client_options once;
    once.reconnect_timeout = std::chrono::milliseconds(0);
    const auto connect_code = [&] {
      client c(once);
      try {
        c.connect(srv.ipc());
        return error_code{};
      } catch (const error& e) {
        CHECK(std::string(e.what()).find("--max-connections") != std::string::npos);
        return e.code();
      }
    };
    CHECK(connect_code() == server_errc::limit_reached);
    CHECK(a.ping() == srv.pid());  // the others go on
    a.close();
    std::error_code ignored;
    bool in = false;  // once the server saw it go
    for (int i = 0; i < 100 && !in; ++i) {
      in = connect_code() == error_code{};
      if (!in) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(in);

    // Two watches wait on b's connection: a third request that would wait is refused.
    // The probe that got in has closed, but the server may not have seen it go yet (it is read
    // on another of the server's threads than the one that accepts): until then it counts.
    std::unique_ptr<test::raw_peer> peer;
    for (int i = 0; i < 100 && !peer; ++i) {
      peer = std::make_unique<test::raw_peer>(srv.ipc());
      if (!peer->try_hello()) {
        peer.reset();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    REQUIRE(peer);
    test::raw_peer& p = *peer;
    for (std::uint64_t id = 1; id <= 3; ++id) {
      json w = protocol::make(protocol::op::watch, "parked");
      w[protocol::field::key] = "k";
      w[protocol::field::id] = id;
      p.send(w);
    }
    const json reply = p.receive();
    CHECK(reply.value("i", 0) == 3);
    std::string message;
    CHECK(protocol::decode_error(reply.at("e"), message) == server_errc::limit_reached);
    CHECK(message.find("--max-parked") != std::string::npos);
    state(b, "parked").set("k", 1);  // wakes the two
    CHECK(p.receive().contains("r"));
    CHECK(p.receive().contains("r"));
  }

  TEST_CASE("allocation failures at random points: no client hangs, no write is half-applied") {
    for (const std::string seed : {"1", "2", "3"}) {
      CAPTURE(seed);
      ::setenv("ZPROC_FAIL_SEED", seed.c_str(), 1);
      ::setenv("ZPROC_FAIL_ONE_IN", "40", 1);
      // Allocations of 8 KiB or more fail: the values, buffers and arrays of a request. Not the
      // small ones: nlohmann_json allocates inside its destructors (a stack of the children of
      // an array or map, 16 bytes each) and a failure there aborts any program that uses it.
      ::setenv("ZPROC_FAIL_MIN_BYTES", "8192", 1);
      const std::string address = test::fresh_ipc_address();
      const std::string log = address.substr(std::string("ipc://").size()) + ".log";
      ::setenv("ZPROC_FAIL_LOG", log.c_str(), 1);
      test::child_process srv({ZPROC_FAILING_SERVER_EXE, address});
      REQUIRE(srv.wait_for_line("listening at", 10s));

      constexpr int workers = 4;
      struct tally {
        std::atomic<long> acked{0};    // increments acknowledged
        std::atomic<long> unknown{0};  // the connection closed before the answer
        std::atomic<long> hangs{0};    // a call that got no answer at all within its deadline
        std::atomic<long> refused{0};  // out_of_memory and other error replies
        std::atomic<long> closed{0};   // connections the server closed
      };
      std::vector<tally> tallies(workers);
      std::atomic<bool> stop{false};
      std::atomic<long> watched{0};
      std::atomic<long> watch_hangs{0};
      std::atomic<long> watch_backwards{0};
      std::mutex unexpected_mutex;
      std::vector<std::string> unexpected;  // exceptions that are not zproc errors
      const auto note_unexpected = [&](const std::exception& e) {
        std::lock_guard lock(unexpected_mutex);
        unexpected.push_back(e.what());
      };
      std::vector<std::thread> threads;
      for (int w = 0; w < workers; ++w)
        threads.emplace_back([&, w] {
          tally& t = tallies[static_cast<std::size_t>(w)];
          const std::string ns = "w" + std::to_string(w);
          for (long i = 0; !stop; ++i) {
            client c({.request_timeout = 5s, .reconnect_timeout = 0ms});
            try {
              c.connect(address);
            } catch (const error&) {
              continue;
            }
            state st(c, ns);
            // A new connection now and then: its buffers are allocated again.
            for (long end = i + 200; !stop && i < end; ++i) {
              const int op = static_cast<int>(i % 5);
              try {
                if (op == 0 || op == 2) {
                  st.increment("n");
                  ++t.acked;
                } else if (op == 1) {
                  const std::string v = blob(16 * 1024, static_cast<int>(i));
                  st.update({{"a", v}, {"b", v}, {"c", json::array({v, i})}});
                } else if (op == 3) {
                  st.atomic([&](json& d) { d["locked"] = i; }, {}, {.optimistic_attempts = 0});
                } else {
                  (void)st.get("c", nullptr);  // a reply of 16 KiB to build
                }
              } catch (const error& e) {
                if (e.code() == client_errc::timeout) {
                  ++t.hangs;
                } else if (e.code() == client_errc::connection_closed) {
                  ++t.closed;
                  if (op == 0 || op == 2) ++t.unknown;
                  break;  // a new connection
                } else {
                  ++t.refused;
                }
              } catch (const std::exception& e) {
                note_unexpected(e);
                break;
              }
            }
          }
        });
      threads.emplace_back([&] {  // a watcher of worker 0's counter, reconnecting as needed
        while (!stop) {
          client c({.request_timeout = 5s, .reconnect_timeout = 0ms});
          try {
            c.connect(address);
            auto watcher = state(c, "w0").when_change_raw({"n"}, {.timeout = 5s});
            std::uint64_t last = 0;
            while (!stop) {
              const long acked_before = tallies[0].acked;
              try {
                auto u = watcher.next();
                if (!u) break;
                if (u->revision <= last) ++watch_backwards;
                last = u->revision;
                ++watched;
              } catch (const error& e) {
                // No update within 5 s while worker 0's writes went through: a lost wake-up.
                if (e.code() == client_errc::timeout && tallies[0].acked > acked_before + 1)
                  ++watch_hangs;
                if (e.code() != client_errc::timeout) break;
              }
            }
          } catch (const error&) {
          } catch (const std::exception& e) {
            note_unexpected(e);
          }
        }
      });

      std::this_thread::sleep_for(300ms);
      srv.signal(SIGUSR1);  // arm
      std::this_thread::sleep_for(3s);
      srv.signal(SIGUSR2);  // disarm
      const bool disarmed = srv.wait_for_line("disarmed", 10s);
      std::this_thread::sleep_for(300ms);
      stop = true;
      for (auto& t : threads) t.join();
      // "disarmed after N failures"; no line: the server died (its exit status says how).
      if (!disarmed) {
        const int status = srv.kill_and_wait();
        std::ifstream in(log);
        const std::string said((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        FAIL("the failing server did not answer SIGUSR2: exit status " << status << "; it said:\n" << said);
      }
      const std::string line = srv.last_line();
      long acked = 0;
      long refused = 0;
      long unknown = 0;
      long closed = 0;
      for (const auto& t : tallies) {
        closed += t.closed;
        acked += t.acked;
        refused += t.refused;
        unknown += t.unknown;
      }
      MESSAGE("seed " << seed << ": " << line << "; " << acked << " increments acknowledged, "
                      << refused << " requests refused, " << closed << " connections closed ("
                      << unknown << " increments cut); the watcher saw " << watched.load()
                      << " updates");
      CHECK(line.find("after 0 failures") == std::string::npos);
      for (const auto& what : unexpected) FAIL_CHECK("a client thread caught: " << what);

      // Whatever failed, the server serves, and what it holds is whole.
      client c({.request_timeout = 5s, .reconnect_timeout = 0ms});
      c.connect(address);
      CHECK(c.ping() > 0);
      for (int w = 0; w < workers; ++w) {
        const auto& t = tallies[static_cast<std::size_t>(w)];
        CAPTURE(w);
        CHECK(t.hangs.load() == 0);
        state st(c, "w" + std::to_string(w));
        const long n = st.get("n", 0).get<long>();
        CHECK(n >= t.acked);               // every acknowledged write is there
        CHECK(n <= t.acked + t.unknown);   // and none that was refused
        CHECK(st.get("a", "") == st.get("b", ""));  // multi-key writes are whole
        // No lock is left behind by a connection that went away.
        const auto started = std::chrono::steady_clock::now();
        st.atomic([](json& d) { d["after"] = true; }, {}, {.optimistic_attempts = 0});
        CHECK(std::chrono::steady_clock::now() - started < 3s);
      }
      CHECK(watch_hangs == 0);
      CHECK(watch_backwards == 0);
      CHECK(srv.kill_and_wait() != 0);
      std::filesystem::remove(log);
    }
  }
}
