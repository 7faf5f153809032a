// Watchers against a real server: never miss an update, in order, exactly once; count, timeout,
// exclude, own writes, every predicate; fan-out.
#include "protocol/message.hpp"
#include "support/raw_peer.hpp"
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <thread>

using namespace zproc;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {
test::server_process& srv() {
  static test::server_process s;
  return s;
}
std::string fresh_ns() {
  static std::atomic<int> n{0};
  return "watch-" + std::to_string(n++);
}
struct connected {
  client c;
  state st;
  explicit connected(const std::string& ns, const std::string& address = srv().ipc())
      : st((c.connect(address), c), ns) {}
};
}  // namespace

TEST_SUITE("watch") {
  TEST_CASE("10,000 rapid writes from another process: a watcher sees every revision once, in order") {
    const std::string ns = fresh_ns();
    connected w(ns);
    raw_watcher raw = w.st.when_change_raw();  // watching starts here
    watcher snaps = w.st.when_change({"n"});
    auto writer = test::run_program({ZPROC_WRITER_EXE, srv().tcp(), ns, "10000"}, 60s);
    REQUIRE(writer.exit_code == 0);
    CHECK(writer.out == "10000\n");

    std::uint64_t expected = 1;
    for (int i = 0; i < 10000; ++i) {
      auto u = raw.next();
      REQUIRE(u.has_value());
      CHECK(u->revision == expected);
      REQUIRE(u->changes.size() == 1);
      CHECK(u->changes[0].key == "n");
      if (u->revision != expected) break;
      ++expected;
    }
    // Snapshots: the value after each write (writes are pipelined, so they apply in order).
    for (int i = 1; i <= 10000; ++i) {
      auto s = snaps.next();
      REQUIRE(s.has_value());
      if ((*s)["n"] != i) {
        CHECK((*s)["n"] == i);
        break;
      }
    }
    CHECK(snaps.revision() == 10000);
  }

  TEST_CASE("two writes in the same instant are both seen") {
    connected w(fresh_ns());
    connected writer(w.st.name());
    auto raw = w.st.when_change_raw();
    // One update() and one set() pipelined back to back on one connection: the server applies
    // them in the same read, typically within the same microsecond.
    asio::io_context ioc;
    client ac(ioc.get_executor());
    test::run_with_deadline(ioc, [&]() -> asio::awaitable<void> {
      co_await ac.async_connect(srv().ipc());
      state st(ac, w.st.name());
      auto a = st.async_set("x", 1, asio::use_awaitable);
      auto b = st.async_set("y", 2, asio::use_awaitable);
      co_await std::move(a);
      co_await std::move(b);
      ac.close();
    }());
    auto first = raw.next();
    auto second = raw.next();
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->revision + 1 == second->revision);
    CHECK(first->changes[0].key == "x");
    CHECK(second->changes[0].key == "y");
  }

  TEST_CASE("count ends the watcher; timeout fails one next() without losing the update") {
    connected w(fresh_ns());
    connected other(w.st.name());
    auto limited = w.st.when_change({}, {.count = 2});
    other.st.set("a", 1);
    other.st.set("a", 2);
    other.st.set("a", 3);
    CHECK(limited.next().value()["a"] == 1);
    CHECK(limited.next().value()["a"] == 2);
    CHECK_FALSE(limited.next().has_value());
    int n = 0;
    for (const auto& snap : w.st.when_change({}, {.start = 0, .count = 3})) {
      CHECK(snap["a"] == ++n);  // range-for, from the oldest revision
    }
    CHECK(n == 3);

    auto slow = w.st.when_change({"a"}, {.timeout = 150ms});
    try {
      slow.next();
      FAIL("no timeout");
    } catch (const zproc::error& e) {
      CHECK(e.code() == client_errc::timeout);
    }
    other.st.set("a", 4);
    CHECK(slow.next().value()["a"] == 4);  // still usable, nothing lost
  }

  TEST_CASE("keys, exclude, identical writes, and own writes") {
    connected w(fresh_ns());
    connected other(w.st.name());
    auto only_a = w.st.when_change_raw({"a"});
    auto not_a = w.st.when_change_raw({"a"}, {.exclude = true});
    auto any = w.st.when_change_raw();
    auto with_identical = w.st.when_change_raw({}, {.identical_okay = true});
    auto with_own = w.st.when_change_raw({}, {.include_own = true});

    other.st.set("b", 1);    // rev 1
    other.st.set("a", 1);    // rev 2
    other.st.set("a", 1);    // rev 3: identical
    w.st.set("c", 1);        // rev 4: the watchers' own handle
    state forked = w.st.fork(w.st.name());  // another handle on the same connection
    forked.set("d", 1);      // rev 5
    other.st.set("a", 2);    // rev 6

    CHECK(only_a.next()->revision == 2);
    CHECK(only_a.next()->revision == 6);
    CHECK(not_a.next()->revision == 1);
    CHECK(not_a.next()->revision == 5);
    CHECK(any.next()->revision == 1);
    CHECK(any.next()->revision == 2);
    CHECK(any.next()->revision == 5);  // 3 is identical, 4 is our own
    auto i1 = with_identical.next();
    CHECK(i1->revision == 1);
    CHECK(with_identical.next()->revision == 2);
    auto i3 = with_identical.next();
    CHECK(i3->revision == 3);
    CHECK(i3->identical);
    CHECK(with_identical.next()->revision == 5);
    for (std::uint64_t r = 1; r <= 6; ++r) {
      if (r == 3) continue;
      auto u = with_own.next();
      CHECK(u->revision == r);
    }
  }

  TEST_CASE("own writes are those of the handle object: a copy's writes are seen") {
    connected w(fresh_ns());
    auto watch = w.st.when_change_raw({}, {.timeout = 2s});
    w.st.set("mine", 1);  // rev 1: this handle's own write, hidden
    state copy = w.st;    // another writer on the same connection
    copy.set("copy", 2);  // rev 2
    auto u = watch.next();
    REQUIRE(u);
    CHECK(u->revision == 2);
    state moved = std::move(copy);  // a move keeps the writer identity...
    moved.set("moved", 3);          // ...of a handle that is not the watcher's: seen
    CHECK(watch.next()->revision == 3);

    // The case that surprised a user: producer and consumer coroutines get the state by value.
    asio::io_context ioc;
    client c(ioc.get_executor());
    std::vector<int> seen;
    test::run_with_deadline(ioc, [&]() -> asio::awaitable<void> {
      co_await c.async_connect(srv().ipc());
      state st(c, fresh_ns());
      bool watching = false;
      auto consumer = [&seen, &watching](state s) -> asio::awaitable<void> {
        auto changes = s.when_change({"n"});
        watching = true;
        for (int i = 0; i < 3; ++i) seen.push_back((*co_await changes.async_next())["n"].get<int>());
      };
      auto producer = [](state s) -> asio::awaitable<void> {
        for (int i = 1; i <= 3; ++i) co_await s.async_set("n", i);
      };
      bool consumed = false;
      asio::co_spawn(ioc, consumer(st), [&](std::exception_ptr) { consumed = true; });
      asio::steady_timer poll(ioc);
      for (int i = 0; i < 400 && !watching; ++i) {
        poll.expires_after(5ms);
        co_await poll.async_wait(asio::deferred);
      }
      co_await producer(st);
      for (int i = 0; i < 400 && !consumed; ++i) {
        poll.expires_after(5ms);
        co_await poll.async_wait(asio::deferred);
      }
      c.close();
    }());
    CHECK(seen == std::vector<int>{1, 2, 3});
  }

  TEST_CASE("every predicate watcher, and one-shot waits") {
    connected w(fresh_ns());
    connected other(w.st.name());
    auto eq = w.st.when_equal("k", 3);
    auto ne = w.st.when_not_equal("k", 3);
    auto truthy = w.st.when_truthy("k");
    auto falsy = w.st.when_falsy("k");
    auto none = w.st.when_none("k");
    auto not_none = w.st.when_not_none("k");
    auto available = w.st.when_available("k");
    auto custom = w.st.when([](const json& s) { return s.value("k", json()) == json("x"); });

    other.st.set("unrelated", 1);  // rev 1: touches no watcher
    other.st.set("k", 0);          // rev 2
    other.st.set("k", 3);          // rev 3
    other.st.set("k", nullptr);    // rev 4
    other.st.set("k", "x");        // rev 5
    other.st.erase("k");           // rev 6

    CHECK(eq.next().value()["k"] == 3);
    CHECK(eq.revision() == 3);
    CHECK(ne.next().value()["k"] == 0);
    CHECK(ne.next().value()["k"] == nullptr);
    CHECK(ne.next().value()["k"] == "x");
    CHECK(ne.revision() == 5);
    CHECK(truthy.next().value()["k"] == 3);
    CHECK(truthy.next().value()["k"] == "x");
    CHECK(falsy.next().value()["k"] == 0);
    CHECK(falsy.next().value()["k"] == nullptr);
    CHECK_FALSE(falsy.next().value().contains("k"));  // deleted: falsy too
    CHECK(none.next().value()["k"] == nullptr);
    CHECK(none.revision() == 4);
    CHECK_FALSE(none.next().value().contains("k"));  // absent counts as None
    CHECK(not_none.next().value()["k"] == 0);
    CHECK(not_none.next().value()["k"] == 3);
    CHECK(not_none.next().value()["k"] == "x");
    CHECK(available.next().value()["k"] == 0);
    CHECK(available.revision() == 2);
    CHECK(custom.next().value()["k"] == "x");
    CHECK(custom.revision() == 5);

    // One-shot: immediate when it holds already, else waits.
    other.st.set("ready", true);
    CHECK(w.st.get_when_equal("ready", true)["ready"] == true);
    CHECK(w.st.get_when_available("ready").contains("ready"));
    CHECK(w.st.get_when([](const json& s) { return s.contains("ready"); })["ready"] == true);
    std::thread later([&] {
      std::this_thread::sleep_for(50ms);
      other.st.set("go", 1);
    });
    CHECK(w.st.get_when_available("go", {.timeout = 10s})["go"] == 1);
    later.join();
  }

  TEST_CASE("a live watcher: each next() waits for an update made after it was asked") {
    connected w(fresh_ns());
    connected other(w.st.name());
    auto live = w.st.when_change({}, {.live = true, .timeout = 300ms});
    auto raw = w.st.when_change_raw({}, {.live = true, .timeout = 300ms});
    other.st.set("n", 1);
    other.st.set("n", 2);
    std::this_thread::sleep_for(50ms);
    // Both writes came before next() asked: neither is returned (ZProc resets the cut-off at
    // every next()); with nothing written after it, next() times out.
    CHECK_THROWS_AS(live.next(), zproc::error);
    CHECK_THROWS_AS(raw.next(), zproc::error);
    auto write_later = [&](int v) {
      return std::thread([&other, v] {
        std::this_thread::sleep_for(100ms);
        other.st.set("n", v);
      });
    };
    auto t3 = write_later(3);
    auto s = live.next();  // waits for the write made after it asked
    t3.join();
    REQUIRE(s);
    CHECK((*s)["n"] == 3);
    // Write 3 came before this next() asked: not returned either.
    CHECK_THROWS_AS(raw.next(), zproc::error);
    auto t4 = write_later(4);
    auto u = raw.next();
    t4.join();
    REQUIRE(u);
    REQUIRE(u->changes.size() == 1);
    CHECK(u->changes[0].after == 4);
  }

  TEST_CASE("snapshots stay exact while unrelated keys change") {
    connected w(fresh_ns());
    connected other(w.st.name());
    auto watch_a = w.st.when_change({"a"});
    for (int i = 0; i < 50; ++i) {
      other.st.set("noise" + std::to_string(i % 7), i);
      if (i % 10 == 0) other.st.set("a", i);
      if (i % 13 == 0) other.st.erase("noise" + std::to_string(i % 7));
    }
    for (int i = 0; i < 5; ++i) {
      auto snap = watch_a.next();
      REQUIRE(snap);
      CHECK(*snap == w.st.at(watch_a.revision()));
    }
  }

  TEST_CASE("co_await: a watcher in a coroutine, cancellation, one-shot") {
    asio::io_context ioc;
    connected writer(fresh_ns());
    test::run_with_deadline(ioc, [&]() -> asio::awaitable<void> {
      client c(ioc.get_executor());
      co_await c.async_connect(srv().tcp());
      state st(c, writer.st.name());
      auto w = st.when_change({"x"});
      auto ready = st.async_get_when([&] { return st.when_equal("x", 2); });
      // An async client's watcher starts when the server receives its first request: a round
      // trip on the same connection after it orders the writes of another connection after
      // that start (without it, a loaded machine let both writes in first, and next() hung).
      co_await st.async_revision();
      std::thread t([&] {
        writer.st.set("x", 1);
        writer.st.set("x", 2);
      });
      auto s1 = co_await w.async_next();
      CHECK((*s1)["x"] == 1);
      auto s2 = co_await w.async_next();
      CHECK((*s2)["x"] == 2);
      auto r = co_await std::move(ready);
      CHECK((*r)["x"] == 2);
      t.join();
      auto already = co_await st.async_get_when_available("x");  // holds now: at once
      CHECK((*already)["x"] == 2);
      json two = 2;
      auto eq = co_await st.async_get_when_equal("x", two);
      CHECK((*eq)["x"] == 2);

      // Cancelled next(): operation_aborted, and the watcher still works afterwards.
      using namespace asio::experimental::awaitable_operators;
      asio::steady_timer timer(ioc, 50ms);
      auto which = co_await (w.async_next(asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
      CHECK(which.index() == 1);
      writer.st.set("x", 3);
      auto s3 = co_await w.async_next();
      CHECK((*s3)["x"] == 3);
    }());
  }

  TEST_CASE("next(error_code&, diagnostics&): a timeout and the end of a count, without "
            "exceptions") {
    connected w(fresh_ns());
    connected other(w.st.name());
    auto snaps = w.st.when_change({"x"}, {.timeout = std::chrono::milliseconds(100), .count = 1});
    error_code ec;
    diagnostics diag;
    CHECK_FALSE(snaps.next(ec, diag));
    CHECK(ec == client_errc::timeout);
    CHECK(diag.message().find("timeout") != std::string::npos);
    other.st.set("x", 1);
    auto s = snaps.next(ec, diag);  // still usable, nothing lost
    CHECK(!ec);
    CHECK(diag.message().empty());
    REQUIRE(s);
    CHECK((*s)["x"] == 1);
    CHECK_FALSE(snaps.next(ec, diag));  // the count is reached: empty, and no error
    CHECK(!ec);
    auto raw = w.st.when_change_raw({"x"}, {.timeout = std::chrono::milliseconds(50)});
    CHECK_FALSE(raw.next(ec, diag));
    CHECK(ec == client_errc::timeout);
    // The get_when_* one-shots, without exceptions.
    CHECK(w.st.get_when_equal("x", 2, {.timeout = std::chrono::milliseconds(50)}, ec, diag) ==
          nullptr);
    CHECK(ec == client_errc::timeout);
    CHECK(diag.message().find("timeout") != std::string::npos);
    CHECK(w.st.get_when_equal("x", 1, {.timeout = std::chrono::milliseconds(2000)}, ec, diag)["x"] ==
          1);
    CHECK(!ec);
    CHECK(diag.message().empty());
    CHECK(w.st.get_when_truthy("x", {}, ec, diag)["x"] == 1);
    CHECK(!ec);
    CHECK(w.st.get_when([](const json& snap) { return snap.contains("x"); }, {}, ec, diag)["x"] == 1);
    CHECK(!ec);
    // On a closed client: a code and a message, no exception.
    client closed;
    closed.connect(w.c.address());
    closed.close();
    CHECK(state(closed, w.st.name()).get_when_change({}, {}, ec, diag) == nullptr);
    CHECK(ec);
    CHECK(!diag.message().empty());
  }

  TEST_CASE("a predicate that throws fails its watcher with body_threw; the client goes on") {
    connected w(fresh_ns());
    connected other(w.st.name());
    other.st.set("x", 1);
    auto picky = [](const json& s) -> bool {
      if (s.value("x", 0) == 2) throw std::runtime_error("two is not allowed");
      return s.value("x", 0) >= 3;
    };
    // Blocking: the one-shot throws zproc::error, the ec form gives the code.
    auto waiter = std::async(std::launch::async, [&] {
      return w.st.get_when(picky, {.timeout = std::chrono::milliseconds(10'000)});
    });
    std::this_thread::sleep_for(100ms);
    other.st.set("x", 2);
    try {
      waiter.get();
      FAIL("get_when did not throw");
    } catch (const zproc::error& e) {
      CHECK(e.code() == client_errc::body_threw);
      CHECK(std::string(e.what()).find("two is not allowed") != std::string::npos);
    }
    error_code ec;
    diagnostics diag;
    CHECK(w.st.get_when(picky, {.timeout = std::chrono::milliseconds(2000)}, ec, diag) == nullptr);
    CHECK(ec == client_errc::body_threw);  // the current state (x = 2) is tested first
    // The client and its connection are fine.
    CHECK(w.st.get("x") == 2);
    other.st.set("x", 3);
    CHECK(w.st.get_when(picky)["x"] == 3);

    // Async: next() completes with the code; the io_context is not thrown out of.
    other.st.set("x", 1);
    boost::asio::io_context io;
    client ac(io);
    std::optional<error_code> got;
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
          co_await ac.async_connect(srv().ipc());
          state ast(ac, w.st.name());
          auto watcher = ast.when(picky);
          // The watcher's first request is on its way; a reply on the same connection after it
          // means the server has fixed its start (requests of one connection are handled in
          // order; those of two connections, on a server with threads, need not be).
          co_await ast.async_get("x", boost::asio::deferred);
          other.st.set("x", 2);
          auto [e, item] = co_await watcher.async_next(boost::asio::as_tuple(boost::asio::deferred));
          got = e;
          ac.close();
        },
        boost::asio::detached);
    CHECK_NOTHROW(io.run_for(10s));
    REQUIRE(got);
    CHECK(*got == client_errc::body_threw);
  }

  TEST_CASE("fan-out: one write wakes 1,000 watchers") {
    connected w(fresh_ns());
    connected other(w.st.name());
    std::vector<watcher> watchers;
    for (int i = 0; i < 1000; ++i) watchers.push_back(w.st.when_equal("go", true));
    other.st.set("go", true);
    int woken = 0;
    for (auto& x : watchers) woken += x.next().value()["go"] == true;
    CHECK(woken == 1000);
  }

  TEST_CASE("the wire: a streaming watch stays registered, holds updates back once its credit is "
            "spent, and more brings them; a version 2 client gets one reply per request") {
    namespace field = protocol::field;
    const std::string ns = fresh_ns();
    connected writer(ns);
    test::raw_peer p(srv().ipc());
    p.hello();
    // A reply that comes before a ping's (sent after the writes were answered) was queued
    // before it: whatever is not there by then was held back.
    std::uint64_t next_id = 100;
    const auto ping_first = [&](test::raw_peer& peer) {
      const std::uint64_t id = ++next_id;
      peer.send(json{{field::id, id}, {field::op, "ping"}});
      const json r = peer.receive();
      CHECK(r.value(field::id, std::uint64_t{0}) == id);
    };
    const auto revisions = [](const json& r) {
      std::vector<std::uint64_t> out;
      for (const auto& u : r.at(field::result).at(field::updates)) out.push_back(u.at("rv"));
      return out;
    };
    using revs = std::vector<std::uint64_t>;
    json w = protocol::make(protocol::op::watch, ns);
    w[field::id] = 1;
    w[field::stream] = 3;
    w[field::pin] = true;
    p.send(w);
    json r = p.receive();  // the start (one of its 3 replies)
    CHECK(r.at(field::id) == 1);
    CHECK(r.at(field::result).at(field::cursor) == 0);
    writer.st.set("x", 1);
    r = p.receive();
    CHECK(r.at(field::id) == 1);
    CHECK(revisions(r) == revs{1});
    writer.st.set("x", 2);
    r = p.receive();
    CHECK(revisions(r) == revs{2});
    writer.st.set("x", 3);  // its credit is spent: held back
    writer.st.set("x", 4);
    ping_first(p);
    json more = protocol::more_request(1, 8).to_json();
    more[field::id] = 2;
    p.send(more);
    r = p.receive();
    CHECK(r.at(field::id) == 1);
    CHECK(revisions(r) == revs{3, 4});
    r = p.receive();
    CHECK(r.at(field::id) == 2);
    CHECK(r.at(field::result) == true);
    writer.st.set("x", 5);
    CHECK(revisions(p.receive()) == revs{5});
    json cancel = protocol::cancel_request(1);
    cancel[field::id] = 3;
    p.send(cancel);
    CHECK(p.receive().at(field::result) == true);
    writer.st.set("x", 6);
    ping_first(p);

    // A client of version 2 is answered in version 2, one reply per watch request.
    test::raw_peer old(srv().ipc());
    json hello = protocol::make_hello(protocol::default_max_frame_size);
    hello[field::version] = 2;
    old.send(hello);
    CHECK(old.receive().at(field::version) == 2);
    json once = protocol::make(protocol::op::watch, ns);
    once[field::id] = 1;
    old.send(once);
    writer.st.set("x", 7);
    CHECK(revisions(old.receive()) == revs{7});
    writer.st.set("x", 8);
    ping_first(old);
  }

  TEST_CASE("one-shot waits that time out or are cancelled leave nothing waiting on the server") {
    // At most 3 requests may wait on the server per connection: 20 one-shot waits that end
    // without an update must each take their request back, or the 4th would be refused.
    test::server_process own({"--max-parked", "3"});
    asio::io_context ioc(1);
    client c(ioc.get_executor());
    int timed_out = 0, cancelled = 0, refused = 0;
    bool woke = false;
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
      co_await c.async_connect(own.ipc());
      state st(c, "once");
      for (int i = 0; i < 20; ++i) {
        // (A watcher made by hand, with no count: the kind that streams.)
        auto [ec, v] = co_await st.async_get_when(
            [&] { return st.when_equal("ready", true, {.timeout = 20ms}); },
            asio::as_tuple(asio::use_awaitable));
        if (ec == client_errc::timeout) ++timed_out;
        if (ec == server_errc::limit_reached) ++refused;
        co_await c.async_ping();  // the server has seen the cancel before the next wait
      }
      for (int i = 0; i < 10; ++i) {
        asio::cancellation_signal stop;
        asio::steady_timer soon(ioc, 10ms);
        soon.async_wait([&](error_code) { stop.emit(asio::cancellation_type::terminal); });
        auto [ec, v] = co_await st.async_get_when(
            [&] { return st.when_equal("ready", true); },
            asio::bind_cancellation_slot(stop.slot(), asio::as_tuple(asio::use_awaitable)));
        if (ec == asio::error::operation_aborted) ++cancelled;
        if (ec == server_errc::limit_reached) ++refused;
        co_await c.async_ping();
      }
      // Still room to wait: a watcher that waits, woken by a write.
      watcher w = st.when_equal("ready", true);
      co_await c.async_ping();
      client other;
      other.connect(own.ipc());
      state(other, "once").set("ready", true);
      auto [ec, v] = co_await w.async_next(asio::as_tuple(asio::use_awaitable));
      woke = !ec && v && (*v)["ready"] == true;
      c.close();
    }, asio::detached);
    ioc.run_for(60s);
    CHECK(timed_out == 20);
    CHECK(cancelled == 10);
    CHECK(refused == 0);
    CHECK(woke);
  }

  TEST_CASE("a streaming watcher whose reply is too large for its client fails, and its stream "
            "does not stay on the server") {
    test::server_process own({"--max-parked", "1"});
    client writer;
    writer.connect(own.ipc());
    state(writer, "big").set("x", std::string(100 * 1024, 'x'));
    client small({.max_frame_size = 64 * 1024});
    small.connect(own.ipc());
    state st(small, "big");
    // From the oldest record: the first reply (which a blocking client waits for as the
    // watcher is made) holds the 100 KiB update, past this client's frames: the server sends
    // reply_too_large instead.
    error_code ec;
    try {
      raw_watcher w = st.when_change_raw({}, {.start = 0});
      (void)w.next();
    } catch (const error& e) {
      ec = e.code();
    }
    CHECK(ec == server_errc::reply_too_large);
    small.ping();  // (the server has seen what the client sent before it)
    // Its one parked request is free again: another watcher waits, and is woken.
    raw_watcher next = st.when_change_raw({"y"});
    state(writer, "big").set("y", 1);
    auto u = next.next();
    REQUIRE(u.has_value());
    const key_change* y = u->find("y");
    REQUIRE(y != nullptr);
    CHECK(y->after == json(1));
  }

  TEST_CASE("a watcher whose connection breaks fails instead of hanging (no reconnect)") {
    test::server_process own;
    client c({.reconnect_timeout = 0ms});
    c.connect(own.ipc());
    state st(c, "x");
    auto w = st.when_change();
    own.kill_now();
    try {
      w.next();
      FAIL("no error");
    } catch (const zproc::error& e) {
      CHECK(e.code() == client_errc::connection_closed);
    }
  }
}
