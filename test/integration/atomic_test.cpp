// Atomic operations with real contending processes: no lost update, ever.
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <thread>

using namespace zproc;
using namespace std::chrono_literals;

namespace {
/// Runs `n` writer processes with `mode` at once; returns their exit codes.
std::vector<int> contend(const test::server_process& srv, const std::string& ns, int n,
                         int count, const std::string& mode) {
  std::vector<int> codes(static_cast<std::size_t>(n), -1);
  std::vector<std::thread> pool;
  for (int i = 0; i < n; ++i)
    pool.emplace_back([&, i] {
      codes[static_cast<std::size_t>(i)] =
          test::run_program({ZPROC_WRITER_EXE, i % 2 ? srv.tcp() : srv.ipc(), ns,
                             std::to_string(count), mode},
                            120s)
              .exit_code;
    });
  for (auto& t : pool) t.join();
  return codes;
}

/// Whether another client gets namespace `ns`'s atomic lock at once: an atomic() that takes
/// the lock first, with a 2 s request deadline (a leaked lock is held for its 5 s lease).
bool lock_is_free(const test::server_process& srv, const std::string& ns) {
  client other({.request_timeout = 2000ms});
  other.connect(srv.tcp());
  try {
    state(other, ns).atomic([](json& s) { s["checked"] = true; }, {}, {.optimistic_attempts = 0});
    return true;
  } catch (const zproc::error& e) {
    MESSAGE("the lock was not free: " << e.what());
    return false;
  }
}
}  // namespace

TEST_SUITE("atomic") {
  TEST_CASE("8 processes x 1,000 atomic() increments of one key end at 8,000") {
    test::server_process srv;
    CHECK(contend(srv, "a8", 8, 1000, "--atomic-incr") == std::vector<int>(8, 0));
    client c;
    c.connect(srv.ipc());
    CHECK(state(c, "a8").get("n") == 8000);
    CHECK(state(c, "a8").revision() == 8000);  // one write per increment, none lost or doubled
  }

  TEST_CASE("8 processes x 1,000 increment() end at 8,000") {
    test::server_process srv;
    CHECK(contend(srv, "i8", 8, 1000, "--incr") == std::vector<int>(8, 0));
    client c;
    c.connect(srv.ipc());
    CHECK(state(c, "i8").get("n") == 8000);
  }

  TEST_CASE("transfers in 4 processes keep the sum constant at every revision") {
    test::server_process srv;
    CHECK(contend(srv, "bank", 4, 300, "--transfer") == std::vector<int>(4, 0));
    client c;
    c.connect(srv.ipc());
    state st(c, "bank");
    CHECK(st.revision() == 1200);
    json replica = json::object();
    std::uint64_t checked = 0;
    for (const auto& u : st.history(0)) {  // replay every revision
      for (const auto& ch : u.changes) {
        if (ch.after) replica[ch.key] = *ch.after; else replica.erase(ch.key);
      }
      CHECK(u.changes.size() == 2);  // one commit = one update with both keys
      CHECK(replica.value("a", 0) + replica.value("b", 0) == 0);
      ++checked;
    }
    CHECK(checked == 1200);
  }

  TEST_CASE("a throwing body leaves the state and the revision unchanged") {
    test::server_process srv;
    client c;
    c.connect(srv.ipc());
    state st(c, "throw");
    st.set("n", 1);
    const auto before = st.revision();
    CHECK_THROWS_WITH_AS(st.atomic([](json& s) {
                           s["n"] = 100;
                           s["other"] = true;
                           throw std::runtime_error("changed my mind");
                         }),
                         "changed my mind", std::runtime_error);
    CHECK(st.revision() == before);
    CHECK(st.copy() == json({{"n", 1}}));
    // ...also when it holds the lock (it is given back: another client's atomic() that takes
    // the lock at once does not wait out the 5 s lease; its 2 s request deadline would fail).
    CHECK_THROWS(st.atomic([](json&) { throw 42; }, {}, {.optimistic_attempts = 0}));
    CHECK(lock_is_free(srv, "throw"));
  }

  TEST_CASE("atomic with error_code: a refused commit is a code and the server's message; the "
            "body's exception is still thrown; success clears both") {
    test::server_process srv;
    client c({.max_frame_size = 64 * 1024});
    c.connect(srv.ipc());
    state st(c, "atomic-ec");
    st.set("n", 1);
    zproc::error_code ec = make_error_code(zproc::client_errc::timeout);
    zproc::diagnostics diag;
    CHECK(st.atomic([](json& s) { return s["n"].get<int>() + 1; }, {}, {}, ec, diag) == 2);
    CHECK(!ec);
    CHECK(diag.message().empty());
    // The snapshot made something other than an object: the server refuses the commit.
    CHECK(st.atomic([](json& s) { s = 5; return 7; }, {}, {.optimistic_attempts = 0}, ec, diag) == 0);
    CHECK(ec);
    CHECK(!diag.message().empty());
    CHECK(lock_is_free(srv, "atomic-ec"));
    // A frame over the limit: the client's own refusal, the same way.
    st.atomic([](json& s) { s["big"] = std::string(100'000, 'x'); }, {"n"}, {}, ec, diag);
    CHECK(ec == zproc::client_errc::frame_too_large);
    CHECK(!st.contains("big"));
    CHECK(st.get("n") == 1);
    // The body's own exception is the caller's.
    CHECK_THROWS_WITH_AS(st.atomic([](json&) { throw std::runtime_error("mine"); }, {}, {}, ec, diag),
                         "mine", std::runtime_error);
    st.atomic([](json& s) { s["n"] = 3; }, {}, {}, ec, diag);
    CHECK(!ec);
    CHECK(st.get("n") == 3);
  }

  TEST_CASE("a refused commit gives the lock back, blocking and co_await alike") {
    // The commit is refused (its frame exceeds the client's limit; or the body made the
    // snapshot something other than an object) after the lock was taken.
    test::server_process srv;
    client c({.max_frame_size = 64 * 1024});
    c.connect(srv.ipc());
    state st(c, "refused");
    st.set("n", 1);
    auto too_big = [](json& s) { s["big"] = std::string(100'000, 'x'); };
    auto not_object = [](json& s) { s = 5; };
    CHECK_THROWS_AS(st.atomic(too_big, {}, {.optimistic_attempts = 0}), zproc::error);
    CHECK(lock_is_free(srv, "refused"));
    CHECK_THROWS_AS(st.atomic(not_object, {}, {.optimistic_attempts = 0}), zproc::error);
    CHECK(lock_is_free(srv, "refused"));

    boost::asio::io_context ioc;
    client ac(ioc.get_executor(), {.max_frame_size = 64 * 1024});
    test::run_with_deadline(ioc, [&]() -> boost::asio::awaitable<void> {
      co_await ac.async_connect(srv.ipc());
      state ast(ac, "refused");
      for (int round = 0; round < 2; ++round) {
        std::string what;
        try {
          if (round == 0) {
            co_await ast.async_atomic(too_big, {}, {.optimistic_attempts = 0});
          } else {
            co_await ast.async_atomic(not_object, {}, {.optimistic_attempts = 0});
          }
        } catch (const zproc::error& e) {
          what = e.what();
        }
        CHECK(!what.empty());
        // Checked from another thread: this one runs the io_context.
        bool free = false;
        std::thread check([&] { free = lock_is_free(srv, "refused"); });
        check.join();
        CHECK(free);
      }
      ac.close();
    }());
    CHECK(st.get("n") == 1);
    CHECK_FALSE(st.contains("big"));
  }

  TEST_CASE("a process SIGKILLed inside atomic() while holding the lock changes nothing and "
            "blocks the others for less than a second") {
    test::server_process srv;
    test::child_process holder({ZPROC_WRITER_EXE, srv.ipc(), "kill", "1", "--hold-lock"});
    REQUIRE(holder.wait_for_line("locked", 10s));
    std::thread killer([&] {
      std::this_thread::sleep_for(200ms);
      holder.kill_and_wait();
    });
    client c;
    c.connect(srv.ipc());
    state st(c, "kill");
    const auto t0 = std::chrono::steady_clock::now();
    st.atomic([](json& s) { s["mine"] = true; }, {}, {.optimistic_attempts = 0});  // waits for it
    const auto waited = std::chrono::steady_clock::now() - t0;
    killer.join();
    CHECK(waited < 1200ms);  // 200 ms until the kill, then at once
    CHECK(st.copy() == json({{"mine", true}}));  // the killed body's "held" never landed
  }

  TEST_CASE("a holder that hangs (SIGSTOP) loses the lock after its 5 s lease") {
    test::server_process srv;
    test::child_process holder({ZPROC_WRITER_EXE, srv.ipc(), "hang", "1", "--hold-lock"});
    REQUIRE(holder.wait_for_line("locked", 10s));
    holder.signal(SIGSTOP);
    client c;
    c.connect(srv.ipc());
    state st(c, "hang");
    const auto t0 = std::chrono::steady_clock::now();
    st.atomic([](json& s) { s["mine"] = true; }, {}, {.optimistic_attempts = 0});
    const auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited < 6500ms);
    CHECK(st.copy() == json({{"mine", true}}));
    holder.signal(SIGCONT);
  }

  TEST_CASE("co_await async_atomic: values, conflicts between coroutines, exceptions") {
    test::server_process srv;
    boost::asio::io_context ioc;
    client c(ioc.get_executor());
    int finished = 0;
    test::run_with_deadline(ioc, [&]() -> boost::asio::awaitable<void> {
      co_await c.async_connect(srv.ipc());
      state st(c, "co");
      // Four coroutines on two connections race on one key: every increment lands.
      client c2(ioc.get_executor());
      co_await c2.async_connect(srv.tcp());
      auto worker = [&](state s) -> boost::asio::awaitable<void> {
        for (int i = 0; i < 100; ++i)
          co_await s.async_atomic([](json& snap) { snap["n"] = snap.value("n", 0) + 1; });
        ++finished;
      };
      for (int w = 0; w < 4; ++w)
        boost::asio::co_spawn(ioc, worker(w % 2 ? st : state(c2, "co")), boost::asio::detached);
      while (finished < 4) {
        boost::asio::steady_timer t(ioc, 5ms);
        co_await t.async_wait(boost::asio::deferred);
      }
      CHECK(co_await st.async_get("n") == 400);
      const int doubled = co_await st.async_atomic([](json& snap) {
        snap["n"] = snap["n"].get<int>() * 2;
        return snap["n"].get<int>();
      });
      CHECK(doubled == 800);
      const auto rev = co_await st.async_revision();
      bool threw = false;
      try {
        co_await st.async_atomic([](json& snap) {
          snap["n"] = 0;
          throw std::runtime_error("no");
        }, {}, {.optimistic_attempts = 0});
      } catch (const std::runtime_error&) {
        threw = true;
      }
      CHECK(threw);
      CHECK(co_await st.async_revision() == rev);
      // The lock was given back: a pessimistic atomic() gets it at once.
      co_await st.async_atomic([](json& snap) { snap["after"] = true; }, {}, {.optimistic_attempts = 0});
      c.close();
      c2.close();
    }());
  }

  TEST_CASE("async_atomic with any completion token; cancelled while it waits for the lock") {
    test::server_process srv;
    boost::asio::io_context ioc;
    client c(ioc.get_executor());
    auto twice = [](json& snap) {
      snap["n"] = snap.value("n", 1) * 2;
      return snap["n"].get<int>();
    };
    auto throws = [](json& snap) {
      snap["n"] = -1;
      throw std::runtime_error("body says no");
    };
    // Runs `ioc` until `done` (a connected client keeps it busy), 10 s at most.
    const auto run_until = [&](const auto& done) {
      ioc.restart();
      for (int i = 0; i < 1000 && !done(); ++i) ioc.run_for(10ms);
      REQUIRE(done());
    };
    bool connected = false;
    c.async_connect(srv.ipc(), [&](error_code e) { connected = !e; });
    run_until([&] { return connected; });
    state st(c, "tokens");
    // A callback: void(error_code, R); a body that throws: body_threw, nothing committed.
    error_code ec = boost::asio::error::would_block;
    int value = 0;
    st.async_atomic(twice, {}, {}, [&](error_code e, int v) {
      ec = e;
      value = v;
    });
    error_code thrown_ec;
    st.async_atomic(throws, {}, {.optimistic_attempts = 0},
                    [&](error_code e) { thrown_ec = e; });
    // with_diagnostics: the body's own exception.
    std::exception_ptr body_exception;
    st.async_atomic(throws, {}, {},
                    zproc::with_diagnostics([&](std::exception_ptr e) { body_exception = e; }));
    run_until([&] { return body_exception && thrown_ec && value; });
    CHECK(!ec);
    CHECK(value == 2);
    CHECK(thrown_ec == client_errc::body_threw);
    REQUIRE(body_exception);
    CHECK_THROWS_WITH_AS(std::rethrow_exception(body_exception), "body says no",
                         std::runtime_error);

    // use_future (the io_context runs on another thread), and the void form.
    {
      auto work = boost::asio::make_work_guard(ioc);
      ioc.restart();
      std::thread runner([&] { ioc.run(); });
      auto f = st.async_atomic(twice, {}, {}, boost::asio::use_future);
      auto g = st.async_atomic([](json& snap) { snap["void"] = true; }, {}, {},
                               boost::asio::use_future);
      auto h = st.async_atomic(throws, {}, {}, boost::asio::use_future);
      CHECK(f.get() == 4);
      g.get();
      CHECK_THROWS_AS(h.get(), std::runtime_error);
      work.reset();
      c.close();  // (ends the io_context's work)
      runner.join();
    }
    client c2(ioc.get_executor());
    state st2(c2, "tokens");
    test::child_process holder({ZPROC_WRITER_EXE, srv.ipc(), "held", "1", "--hold-lock"});
    REQUIRE(holder.wait_for_line("locked", 10s));
    holder.signal(SIGSTOP);  // holds the lock for its 5 s lease
    ioc.restart();
    test::run_with_deadline(ioc, [&]() -> boost::asio::awaitable<void> {
      using namespace boost::asio::experimental::awaitable_operators;
      co_await c2.async_connect(srv.ipc());
      // as_tuple(deferred)
      std::vector<std::string> keys{"n"};  // (GCC 12: no braced list inside co_await)
      auto got = co_await st2.async_atomic(twice, keys, {},
                                           boost::asio::as_tuple(boost::asio::deferred));
      CHECK(!std::get<0>(got));
      CHECK(std::get<1>(got) == 8);
      // || with a timer: the timer wins while the lock is held elsewhere; the atomic stops.
      boost::asio::steady_timer timer(ioc, 300ms);
      const auto t0 = std::chrono::steady_clock::now();
      auto which = co_await (
          state(c2, "held").async_atomic([](json& snap) { snap["late"] = true; }, {},
                                         {.optimistic_attempts = 0},
                                         boost::asio::use_awaitable) ||
          timer.async_wait(boost::asio::use_awaitable));
      CHECK(which.index() == 1);
      CHECK(std::chrono::steady_clock::now() - t0 < 2s);
      CHECK_FALSE(co_await state(c2, "held").async_contains("late"));
      // The lock wait was given up on the server too: once the holder is gone, another client
      // gets the lock at once (not c2's abandoned request, which would keep it for 5 s).
      holder.kill_and_wait();
      bool free = false;
      std::thread check([&] { free = lock_is_free(srv, "held"); });
      check.join();
      CHECK(free);
      c2.close();
    }());
    holder.kill_and_wait();
  }

  TEST_CASE("compare_and_set, append, transaction over the wire; watchers see one update") {
    test::server_process srv;
    client c;
    c.connect(srv.tcp());
    state st(c, "txn");
    client other;
    other.connect(srv.ipc());
    auto raw = state(other, "txn").when_change_raw({}, {.timeout = 10s});
    CHECK(st.compare_and_set("owner", std::nullopt, "me"));
    CHECK_FALSE(st.compare_and_set("owner", std::nullopt, "you"));
    CHECK(st.compare_and_set("owner", json("me"), "you"));
    CHECK(st.append("log", "x") == 1);
    CHECK(st.increment("n", 2.5) == 2.5);
    auto r = st.transaction({.compare = {txn::equal("owner", "you"), txn::absent("lock")},
                             .then = {txn::set("lock", true), txn::increment("n"),
                                      txn::append("log", "y"), txn::erase("owner")},
                             .otherwise = {txn::get("lock")}});
    CHECK(r.succeeded);
    CHECK(r.results.size() == 4);
    CHECK(st.copy() == json({{"lock", true}, {"log", {"x", "y"}}, {"n", 3.5}}));
    for (int i = 0; i < 4; ++i) raw.next();  // the four writes (a failed cas writes nothing)...
    auto t = raw.next();                      // ...then the transaction, as one update
    CHECK(t->changes.size() == 4);
    auto again = st.transaction({.compare = {txn::absent("lock")}, .then = {txn::set("x", 1)},
                                 .otherwise = {txn::get("lock")}});
    CHECK_FALSE(again.succeeded);
    CHECK(again.results == std::vector<json>{true});
  }
}
