// The co_await API: coroutines on a user's io_context, pipelining, cancellation, deadlines, and
// a connection that breaks under pending requests.
#include "support/sanitizer.hpp"
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <thread>

using namespace zproc;
namespace asio = boost::asio;
using asio::awaitable;
using test::run_with_deadline;
using namespace std::chrono_literals;

namespace {
/// Counts what goes through it (an allocator a user's handler may carry).
template <class T>
struct counting_allocator {
  using value_type = T;
  int* allocated;
  int* freed;
  counting_allocator(int* a, int* f) noexcept : allocated(a), freed(f) {}
  template <class U>
  counting_allocator(const counting_allocator<U>& o) noexcept  // NOLINT: a rebind converts
      : allocated(o.allocated), freed(o.freed) {}
  T* allocate(std::size_t k) {
    ++*allocated;
    return std::allocator<T>().allocate(k);
  }
  void deallocate(T* p, std::size_t k) noexcept {
    ++*freed;
    std::allocator<T>().deallocate(p, k);
  }
  template <class U>
  bool operator==(const counting_allocator<U>& o) const noexcept {
    return allocated == o.allocated;
  }
};
}  // namespace

TEST_SUITE("async") {
  TEST_CASE("co_await every kind of operation on an embedded server, one thread") {
    asio::io_context ioc;
    // The server and the client share the user's io_context: no extra thread anywhere.
    server srv(ioc.get_executor(), {.listen = {test::fresh_ipc_address()}});
    srv.start();
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      client c(ioc.get_executor());
      co_await c.async_connect(srv.addresses().front());
      state st(c, "async");
      const auto pid = co_await c.async_ping();
      CHECK(pid == ::getpid());
      CHECK(co_await st.async_set("cookies", 1) == 1);
      CHECK(co_await st.async_get("cookies") == 1);
      json fallback = "none";
      CHECK(co_await st.async_get("nope", fallback) == "none");
      CHECK(co_await st.async_contains("cookies"));
      CHECK(co_await st.async_size() == 1);
      json obj = {{"a", 1}, {"b", 2}};
      CHECK(co_await st.async_update(obj) == 2);
      CHECK((co_await st.async_keys()).size() == 3);
      CHECK((co_await st.async_values()).size() == 3);
      CHECK((co_await st.async_items()).size() == 3);
      CHECK((co_await st.async_copy())["b"] == 2);
      CHECK(co_await st.async_pop("a") == 1);
      CHECK((co_await st.async_popitem()).first == "cookies");
      json seven = 7;
      CHECK(co_await st.async_setdefault("s", seven) == 7);
      co_await st.async_erase("s");
      json only = {{"only", 1}};
      co_await st.async_replace(only);
      CHECK(co_await st.async_revision() == 7);
      co_await st.async_clear();
      CHECK(co_await st.async_size() == 0);

      // Errors arrive as error codes with as_tuple, or as exceptions.
      auto [ec, v] = co_await st.async_get("nope", asio::as_tuple(asio::deferred));
      CHECK(ec == server_errc::key_not_found);
      bool threw = false;
      try {
        co_await st.async_get("nope", asio::use_awaitable);
      } catch (const boost::system::system_error& e) {
        threw = e.code() == server_errc::key_not_found;
      }
      CHECK(threw);
      srv.stop();
    }());
  }

  TEST_CASE("async_connect never runs its handler inside the call, even when no socket can be "
            "opened") {
    // Out of descriptors, the connect fails before it waits for anything. In a child process:
    // the descriptor limit is lowered there only. (Not under the sanitizers: their runtime
    // needs a pipe to check memory, and reports a false error without one.)
    if (test::under_address_sanitizer) {
      MESSAGE("skipped under the sanitizers (no descriptor left for their runtime)");
      return;
    }
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      asio::io_context ioc;
      client c(ioc.get_executor());
      int outcome = 3;  // 3: the handler never ran
      bool returned = false;
      asio::post(ioc, [&] {  // from a handler: this thread runs the client's io_context
        struct rlimit none{0, 0};
        ::getrlimit(RLIMIT_NOFILE, &none);
        const rlimit lowered{0, none.rlim_max};
        ::setrlimit(RLIMIT_NOFILE, &lowered);
        c.async_connect("ipc:///tmp/zproc-no-such-server.sock", [&](error_code ec) {
          outcome = returned ? (ec ? 0 : 4) : 21;  // 21: inside async_connect
        });
        returned = true;
      });
      ioc.run_for(std::chrono::seconds(10));
      ::_exit(outcome);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }

  TEST_CASE("pipelining: 1000 requests in flight on one connection") {
    test::server_process sp;
    asio::io_context ioc;
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      client c(ioc.get_executor());
      co_await c.async_connect(sp.tcp());
      state st(c, "pipe");
      int completed = 0;
      std::vector<std::uint64_t> revs;
      for (int i = 0; i < 1000; ++i)
        st.async_set("k" + std::to_string(i), i, [&](error_code ec, std::uint64_t rev) {
          CHECK_FALSE(ec);
          revs.push_back(rev);
          ++completed;
        });
      while (completed < 1000) {
        asio::steady_timer t(ioc, 1ms);
        co_await t.async_wait(asio::deferred);
      }
      std::sort(revs.begin(), revs.end());
      CHECK(revs.front() == 1);
      CHECK(revs.back() == 1000);
      CHECK(std::adjacent_find(revs.begin(), revs.end()) == revs.end());
      CHECK(co_await st.async_size() == 1000);
    }());
  }

  TEST_CASE("cancellation: the request completes with operation_aborted, the client stays usable") {
    test::server_process sp;
    asio::io_context ioc;
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      client c(ioc.get_executor());
      co_await c.async_connect(sp.ipc());
      state st(c, "cancel");
      sp.stop_signal();  // the server stops answering
      asio::cancellation_signal signal;
      asio::steady_timer t(ioc, 100ms);
      t.async_wait([&](error_code) { signal.emit(asio::cancellation_type::terminal); });
      auto [ec, v] = co_await st.async_get(
          "x", asio::as_tuple(asio::bind_cancellation_slot(signal.slot(), asio::use_awaitable)));
      CHECK(ec == asio::error::operation_aborted);

      // Or with a timeout composed from a timer (awaitable operators).
      using namespace asio::experimental::awaitable_operators;
      asio::steady_timer deadline(ioc, 100ms);
      auto which = co_await (st.async_get("x", asio::use_awaitable) ||
                             deadline.async_wait(asio::use_awaitable));
      CHECK(which.index() == 1);  // the timer won

      sp.continue_signal();
      CHECK(co_await st.async_set("x", 1) > 0);  // usable; late replies were dropped
      CHECK(co_await st.async_get("x") == 1);
    }());
  }

  TEST_CASE("a server that dies fails every pending request, none hangs (no reconnect)") {
    test::server_process sp;
    asio::io_context ioc;
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      client c(ioc.get_executor(), {.reconnect_timeout = 0ms});
      co_await c.async_connect(sp.tcp());
      state st(c, "dies");
      sp.stop_signal();
      int failed = 0;
      for (int i = 0; i < 100; ++i)
        st.async_get("x", [&](error_code ec, json) {
          if (ec == client_errc::connection_closed) ++failed;
        });
      asio::steady_timer t(ioc, 100ms);
      co_await t.async_wait(asio::deferred);
      sp.kill_now();
      while (failed < 100) {
        asio::steady_timer tick(ioc, 5ms);
        co_await tick.async_wait(asio::deferred);
      }
      CHECK(failed == 100);
      auto [ec, v] = co_await st.async_get("x", asio::as_tuple(asio::deferred));
      CHECK(ec == client_errc::connection_closed);  // later requests fail at once
    }());
  }

  TEST_CASE("blocking calls: request_timeout, then recovery") {
    test::server_process sp;
    client c({.request_timeout = 300ms});
    c.connect(sp.ipc());
    state st(c, "timeout");
    sp.stop_signal();
    try {
      st.get("x");
      FAIL("no exception");
    } catch (const zproc::error& e) {
      CHECK(e.code() == client_errc::timeout);
    }
    sp.continue_signal();
    st.set("x", 2);
    CHECK(st.get("x") == 2);
  }

  TEST_CASE("zero means no deadline, for connect_timeout as for request_timeout") {
    test::server_process sp;
    client c({.connect_timeout = 0ms, .request_timeout = 0ms});
    c.connect(sp.ipc());
    CHECK(c.ping() == sp.pid());
    asio::io_context ioc;
    client ac(ioc.get_executor(), {.connect_timeout = 0ms});
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      co_await ac.async_connect(sp.tcp());
      CHECK(co_await ac.async_ping() == sp.pid());
      ac.close();
    }());
  }

  TEST_CASE("an embedded server's stop() leaves no timer behind: its io_context runs out at once") {
    // (A pending 100 ms lease timer, or the fsync timer, used to hold every program's exit.)
    const auto dir = std::filesystem::temp_directory_path() /
                     ("zproc-stop-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    for (const bool durable : {false, true}) {
      asio::io_context ioc;
      server_config config{.listen = {test::fresh_ipc_address()}};
      if (durable) config.data_dir = dir.string();
      server srv(ioc.get_executor(), config);
      srv.start();
      ioc.poll();
      srv.stop();
      for (int i = 0; i < 100 && !ioc.stopped(); ++i) ioc.poll();  // never blocks
      CHECK_MESSAGE(ioc.stopped(), "work left after stop(), durable: " << durable);
    }
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("blocking twins on an async client whose io_context runs on another thread") {
    test::server_process sp;
    asio::io_context ioc;
    auto guard = asio::make_work_guard(ioc);
    std::thread runner([&] { ioc.run(); });
    {
      client c(ioc.get_executor(), {.request_timeout = 5s});
      c.connect(sp.ipc());
      state st(c, "mixed");
      st.set("k", "v");
      CHECK(st.get("k") == "v");
      auto fut = st.async_size(asio::use_future);
      CHECK(fut.get() == 1);
    }
    guard.reset();
    ioc.stop();
    runner.join();
  }

  TEST_CASE("a cancel emitted right after the initiation is not lost") {
    test::server_process sp;
    asio::io_context ioc;
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      client c(ioc.get_executor());
      co_await c.async_connect(sp.ipc());
      state st(c, "early-cancel");
      sp.stop_signal();  // no reply can come: only the cancel can complete the operation
      asio::cancellation_signal signal;
      error_code result;
      bool done = false;
      st.async_get("x", asio::bind_cancellation_slot(signal.slot(), [&](error_code ec, json) {
        result = ec;
        done = true;
      }));
      signal.emit(asio::cancellation_type::terminal);  // before the request reached the strand
      while (!done) co_await asio::post(ioc, asio::deferred);
      CHECK(result == asio::error::operation_aborted);
      sp.continue_signal();
      CHECK(co_await c.async_ping() == sp.pid());
    }());
  }

  TEST_CASE("destroying a client while it connects completes the connect, ioc.run() returns") {
    test::server_process sp;
    asio::io_context ioc;
    error_code result;
    bool done = false;
    {
      client c(ioc.get_executor());
      c.async_connect(sp.tcp(), [&](error_code ec) {
        result = ec;
        done = true;
      });
    }  // destroyed before the io_context ran at all
    ioc.run_for(5s);
    CHECK(done);
    CHECK(result);  // an error, not a "successful" connect of a dead client
    CHECK(ioc.stopped());
  }

  TEST_CASE("async_connect honours cancellation") {
    test::server_process sp;
    sp.stop_signal();  // accepts (kernel backlog) but never says hello
    asio::io_context ioc;
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      client c(ioc.get_executor(), {.connect_timeout = 30s});
      using namespace asio::experimental::awaitable_operators;
      asio::steady_timer timer(ioc, 100ms);
      auto which = co_await (c.async_connect(sp.ipc(), asio::use_awaitable) ||
                             timer.async_wait(asio::use_awaitable));
      CHECK(which.index() == 1);
    }(), 5s);
    sp.continue_signal();
  }

  TEST_CASE("async operations on a blocking client fail with wrong_mode instead of hanging") {
    test::server_process sp;
    client c;
    c.connect(sp.ipc());
    auto f = state(c).async_get("x", asio::use_future);
    REQUIRE(f.wait_for(5s) == std::future_status::ready);
    try {
      f.get();
      FAIL("no error");
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == client_errc::wrong_mode);
    }
  }

  TEST_CASE("async failures carry the server's message: co_await, use_future, use_awaitable") {
    test::server_process sp;
    asio::io_context ioc;
    client c(ioc.get_executor());
    auto expect_message = [](std::exception_ptr e, server_errc code, const std::string& part) {
      REQUIRE(e);
      try {
        std::rethrow_exception(e);
      } catch (const zproc::error& err) {
        CHECK(err.code() == code);
        CHECK_MESSAGE(std::string(err.what()).find(part) != std::string::npos, err.what());
        CHECK(err.diagnostics().find(part) != std::string::npos);
      } catch (const std::exception& other) {
        FAIL("not a zproc::error: " << other.what());
      }
    };
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      co_await c.async_connect(sp.ipc());
      state st(c, "kitchen");
      co_await st.async_set("text", "abc");
      std::exception_ptr e;
      try {
        co_await st.async_get("cookies");  // default token
      } catch (...) {
        e = std::current_exception();
      }
      expect_message(e, server_errc::key_not_found, "key 'cookies' not found in namespace 'kitchen'");
      e = nullptr;
      try {
        co_await st.async_increment("text", 1, asio::use_awaitable);
      } catch (...) {
        e = std::current_exception();
      }
      expect_message(e, server_errc::wrong_type, "holds");
      // with_diagnostics(as_tuple(...)): the error as a value, with its message.
      auto [ep, v] = co_await st.async_get("cookies", with_diagnostics(asio::as_tuple(asio::deferred)));
      expect_message(ep, server_errc::key_not_found, "not found in namespace 'kitchen'");
      // Watchers too: a start older than the history is "compacted", with the oldest revision.
      auto w = st.when_change({}, {.start = 1'000'000});
      e = nullptr;
      try {
        co_await w.async_next();
      } catch (...) {
        e = std::current_exception();
      }
      REQUIRE(e);
      CHECK_THROWS_AS(std::rethrow_exception(e), zproc::error);
    }());
    // use_future from another thread, while this one runs the io_context.
    auto guard = asio::make_work_guard(ioc);
    ioc.restart();
    std::thread runner([&] { ioc.run(); });
    state st(c, "kitchen");
    auto f = st.async_get("cookies", asio::use_future);
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    std::exception_ptr e;
    try {
      f.get();
    } catch (...) {
      e = std::current_exception();
    }
    expect_message(e, server_errc::key_not_found, "key 'cookies' not found in namespace 'kitchen'");
    c.close();
    guard.reset();
    runner.join();
  }

  TEST_CASE("with_diagnostics: a handler's own allocator holds the operation's handler") {
    struct counts {
      int allocated = 0;
      int freed = 0;
    } n;
    test::server_process sp;
    asio::io_context ioc;
    client c(ioc.get_executor());
    std::string message;
    json got;
    int done = 0;
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      co_await c.async_connect(sp.ipc());
      state st(c, "alloc");
      st.async_set("k", 1, with_diagnostics(asio::bind_allocator(
                               counting_allocator<void>(&n.allocated, &n.freed),
                               [&](std::exception_ptr e, std::uint64_t) {
                                 CHECK(!e);
                                 ++done;
                               })));
      st.async_get("k", with_diagnostics(asio::bind_allocator(
                            counting_allocator<void>(&n.allocated, &n.freed),
                            [&](std::exception_ptr e, json v) {
                              CHECK(!e);
                              got = std::move(v);
                              ++done;
                            })));
      st.async_get("nope", with_diagnostics(asio::bind_allocator(
                               counting_allocator<void>(&n.allocated, &n.freed),
                               [&](std::exception_ptr e, json) {
                                 REQUIRE(e);
                                 try {
                                   std::rethrow_exception(e);
                                 } catch (const zproc::error& err) {
                                   message = err.diagnostics();
                                 }
                                 ++done;
                               })));
      asio::steady_timer t(ioc);
      while (done < 3) {
        t.expires_after(1ms);
        co_await t.async_wait(asio::use_awaitable);
      }
      c.close();  // (its connection would keep run() going)
    }());
    CHECK(got == 1);
    CHECK(message.find("key 'nope' not found") != std::string::npos);
    CHECK(n.allocated >= 3);  // the type-erased handler of each call, at least
    CHECK(n.freed == n.allocated);
  }

  TEST_CASE("a blocking call on the thread that runs the client's executor fails with wrong_mode") {
    test::server_process sp;
    asio::io_context ioc;
    client c(ioc.get_executor(), {.request_timeout = 60s});
    bool checked = false;
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      co_await c.async_connect(sp.ipc());
      state st(c, "same-thread");
      co_await st.async_set("k", 1);
      // Each of these would wait for a reply that only this thread could read.
      auto expect_wrong_mode = [](auto&& call) {
        try {
          call();
          FAIL("no error");
        } catch (const zproc::error& e) {
          CHECK(e.code() == client_errc::wrong_mode);
          CHECK(std::string(e.what()).find("thread") != std::string::npos);
        }
      };
      expect_wrong_mode([&] { st.get("k"); });
      expect_wrong_mode([&] { st.set("k", 2); });
      expect_wrong_mode([&] { st.atomic([](json& s) { s["k"] = 3; }); });
      expect_wrong_mode([&] { c.ping(); });
      auto w = st.when_change();
      expect_wrong_mode([&] { w.next(); });
      expect_wrong_mode([&] { c.connect(sp.ipc()); });
      error_code ec;
      diagnostics diag;
      CHECK(!w.next(ec, diag));
      CHECK(ec == client_errc::wrong_mode);
      CHECK(diag.message().find("thread") != std::string::npos);
      // The client is still usable asynchronously.
      CHECK(co_await st.async_get("k") == 1);
      checked = true;
      c.close();
    }(), 20s);
    CHECK(checked);
  }

  TEST_CASE("close() from another thread interrupts a blocking call") {
    test::server_process sp;
    client c({.request_timeout = 20s});
    c.connect(sp.ipc());
    state st(c, "close");
    sp.stop_signal();
    std::thread closer([&] {
      std::this_thread::sleep_for(100ms);
      c.close();
    });
    const auto t0 = std::chrono::steady_clock::now();
    try {
      st.get("x");
      FAIL("no error");
    } catch (const zproc::error& e) {
      CHECK(e.code() == client_errc::connection_closed);
    }
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    closer.join();
    sp.continue_signal();
  }

  TEST_CASE("server_thread: an embedded server on its own thread") {
    server_thread srv;  // a fresh Unix socket in the temp directory
    client c({.reconnect_timeout = 0ms});  // the server is gone for good: do not wait for it
    c.connect(srv.address());
    CHECK(c.ping() == ::getpid());
    state(c).set("x", 1);
    srv.stop();
    CHECK_THROWS_AS(state(c).get("x"), zproc::error);  // connection_closed
  }

  TEST_CASE("a pending watcher keeps its io_context's run() going until the update comes") {
    test::server_process sp;
    asio::io_context ioc;
    client c(ioc);  // made from an execution context
    std::optional<error_code> connected;
    c.async_connect(sp.ipc(), [&](error_code ec) { connected = ec; });
    while (!connected) ioc.run_one_for(10s);
    REQUIRE_FALSE(*connected);
    state st(c, "busy");
    auto w = st.when_change({"k"});
    error_code got_ec = asio::error::would_block;
    std::optional<json> got;
    w.async_next([&](error_code ec, std::optional<json> snapshot) {
      got_ec = ec;
      got = std::move(snapshot);
      c.close();  // the connection's reader is work too: run() returns once it is closed
    });
    // The write comes 300 ms later from another client; meanwhile the watcher's wait is the
    // io_context's only work, with the connection's reader.
    std::thread writer([&] {
      std::this_thread::sleep_for(300ms);
      client other;
      other.connect(sp.ipc());
      state(other, "busy").set("k", 5);
    });
    ioc.restart();
    ioc.run();
    writer.join();
    CHECK_FALSE(got_ec);
    REQUIRE(got);
    CHECK((*got)["k"] == 5);
  }

  TEST_CASE("a refused atomic commit carries the server's message, in co_await and blocking") {
    test::server_process sp({"--max-namespaces", "1"});
    asio::io_context ioc;
    client c(ioc);
    std::string async_message, blocking_message;
    error_code async_code;
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      co_await c.async_connect(sp.ipc());
      co_await state(c, "first").async_set("k", 1);
      try {
        co_await state(c, "second").async_atomic([](json& s) { s["k"] = 2; });
      } catch (const zproc::error& e) {
        async_code = e.code();
        async_message = e.diagnostics();
      }
      c.close();
    }());
    CHECK(async_code == server_errc::limit_reached);
    CHECK_MESSAGE(async_message.find("namespace 'second' is not created") != std::string::npos,
                  async_message);
    client b;
    b.connect(sp.ipc());
    try {
      state(b, "third").atomic([](json& s) { s["k"] = 3; });
    } catch (const zproc::error& e) {
      blocking_message = e.diagnostics();
    }
    CHECK_MESSAGE(blocking_message.find("namespace 'third' is not created") != std::string::npos,
                  blocking_message);
  }

  TEST_CASE("one client shared by coroutines on a thread_pool: every write lands, watchers see "
            "each update") {
    server_thread srv;
    asio::thread_pool pool(4);
    client c(pool);  // its connection runs on a strand of the pool
    std::promise<void> connected;
    c.async_connect(srv.address(), [&](error_code ec) {
      if (ec) connected.set_exception(std::make_exception_ptr(zproc::error(ec)));
      else connected.set_value();
    });
    REQUIRE(connected.get_future().wait_for(20s) == std::future_status::ready);
    state shared(c, "pool");
    constexpr int workers = 8, rounds = 200;
    auto seen = std::make_shared<std::atomic<int>>(0);
    // A watcher of the counter, in a coroutine of the pool too: every increment, in order.
    // (Its start is fixed when the server has its first request: a round trip after it, on the
    // same connection, comes before any increment.)
    auto counter = shared.when_change_raw({"n"});
    CHECK(shared.revision() == 0);  // blocking, from a thread that is not the pool's
    auto watch = asio::co_spawn(
        pool,
        [w = std::move(counter), seen]() mutable -> awaitable<void> {
          std::int64_t last = 0;
          while (last < workers * rounds) {
            auto u = co_await w.async_next();
            const std::int64_t now = u->changes.at(0).after->get<std::int64_t>();
            CHECK(now == last + 1);
            last = now;
            ++*seen;
          }
        },
        asio::use_future);
    std::vector<std::future<void>> done;
    for (int k = 0; k < workers; ++k)
      done.push_back(asio::co_spawn(
          pool,  // not a strand: the coroutines run on all four threads at once
          [&shared, k]() -> awaitable<void> {
            state own(shared);  // a copy: another writer, same connection
            for (int i = 0; i < rounds; ++i) {
              co_await own.async_set("k" + std::to_string(k), i);
              co_await own.async_increment("n");
              CHECK(co_await own.async_get("k" + std::to_string(k)) == i);
            }
          },
          asio::use_future));
    for (auto& f : done) {
      REQUIRE(f.wait_for(60s) == std::future_status::ready);
      f.get();
    }
    REQUIRE(watch.wait_for(60s) == std::future_status::ready);
    watch.get();
    CHECK(seen->load() == workers * rounds);
    // Blocking calls from a thread that is not the pool's are fine too.
    std::thread outside([&] { CHECK(state(c, "pool").get("n") == workers * rounds); });
    outside.join();
    c.close();
    pool.join();
  }
}
