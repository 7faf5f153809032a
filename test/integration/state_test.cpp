// Every dict operation against a real `zproc server` process, over both transports.
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

using namespace zproc;
using zproc::test::server_process;

namespace {
server_process& shared_server() {
  static server_process srv;
  return srv;
}

template <class F>
void on_both_transports(F&& f) {
  for (const auto& addr : shared_server().addresses()) {
    CAPTURE(addr);
    client c;
    c.connect(addr);
    f(c, addr);
  }
}

std::string fresh_ns() {
  static std::atomic<int> n{0};
  return "ns-" + std::to_string(n++);
}
}  // namespace

TEST_SUITE("state") {
  TEST_CASE("every dict operation, blocking, over ipc and tcp") {
    on_both_transports([](client& c, const std::string&) {
      state st(c, fresh_ns());
      CHECK(c.ping() == shared_server().pid());
      CHECK(st.revision() == 0);
      CHECK(st.size() == 0);

      CHECK(st.set("cookies", 0) == 1);
      CHECK(st.set("name", "zproc") == 2);
      CHECK(st.get("cookies") == 0);
      CHECK(st.get("name") == "zproc");
      CHECK(st.get("missing", json("fallback")) == "fallback");
      CHECK(st.contains("cookies"));
      CHECK_FALSE(st.contains("missing"));
      CHECK(st.size() == 2);
      CHECK(st.keys() == std::vector<std::string>{"cookies", "name"});
      CHECK(st.values() == std::vector<json>{0, "zproc"});
      CHECK(st.items() == std::vector<state::item>{{"cookies", 0}, {"name", "zproc"}});
      CHECK(st.copy() == json({{"cookies", 0}, {"name", "zproc"}}));

      CHECK(st.update({{"a", 1}, {"b", {1, 2, 3}}}) == 3);
      CHECK(st.get("b") == json({1, 2, 3}));
      CHECK(st.pop("a") == 1);
      CHECK(st.pop("a", json(nullptr)) == nullptr);
      CHECK(st.popitem() == state::item{"name", "zproc"});
      CHECK(st.setdefault("s", 7) == 7);
      CHECK(st.setdefault("s", 8) == 7);
      CHECK(st.erase("s") > 0);
      CHECK(st.replace({{"only", true}}) > 0);
      CHECK(st.copy() == json({{"only", true}}));
      const auto before = st.revision();
      CHECK(st.clear() == before + 1);
      CHECK(st.size() == 0);
    });
  }

  TEST_CASE("errors carry a code and the server's message") {
    on_both_transports([](client& c, const std::string&) {
      state st(c, fresh_ns());
      try {
        st.get("nope");
        FAIL("no exception");
      } catch (const zproc::error& e) {
        CHECK(e.code() == server_errc::key_not_found);
        CHECK(e.diagnostics().find("'nope'") != std::string::npos);
      }
      CHECK_THROWS_AS(st.erase("nope"), zproc::error);
      CHECK_THROWS_AS(st.popitem(), zproc::error);
      try {
        st.update(json::array({1}));
        FAIL("no exception");
      } catch (const zproc::error& e) {
        CHECK(e.code() == server_errc::wrong_type);
      }
      CHECK(st.revision() == 0);  // nothing was written
      CHECK(c.ping() > 0);        // the connection is still fine
    });
  }

  TEST_CASE("namespaces are separate; fork shares the connection") {
    client c;
    c.connect(shared_server().ipc());
    state a(c, fresh_ns());
    state b = a.fork(fresh_ns());
    a.set("k", "in a");
    b.set("k", "in b");
    CHECK(a.get("k") == "in a");
    CHECK(b.get("k") == "in b");
    CHECK(a.revision() == 1);
    CHECK(b.revision() == 1);

    client other;
    other.connect(shared_server().tcp());
    CHECK(state(other, a.name()).get("k") == "in a");  // the same namespace from elsewhere
  }

  TEST_CASE("concurrent clients: every write lands, revisions are unique") {
    const std::string ns = fresh_ns();
    constexpr int threads = 8;
    constexpr int writes = 200;
    std::vector<std::vector<std::uint64_t>> revs(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        client c;
        c.connect(t % 2 ? shared_server().ipc() : shared_server().tcp());
        state st(c, ns);
        for (int i = 0; i < writes; ++i)
          revs[t].push_back(st.set("t" + std::to_string(t) + "-" + std::to_string(i), i));
      });
    }
    for (auto& th : pool) th.join();
    client c;
    c.connect(shared_server().ipc());
    state st(c, ns);
    CHECK(st.size() == threads * writes);
    CHECK(st.revision() == threads * writes);
    std::vector<std::uint64_t> all;
    for (auto& v : revs) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
    CHECK(all.front() == 1);
    CHECK(all.back() == threads * writes);
    CHECK(st.get("t7-199") == 199);
  }

  TEST_CASE("one blocking client shared by several threads") {
    client c;
    c.connect(shared_server().ipc());
    state st(c, fresh_ns());
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t)
      pool.emplace_back([&, t] {
        for (int i = 0; i < 100; ++i) st.set(std::to_string(t * 1000 + i), t);
      });
    for (auto& th : pool) th.join();
    CHECK(st.size() == 400);
  }

  TEST_CASE("large values and a reply larger than the client accepts") {
    client c({.max_frame_size = 64 * 1024});
    c.connect(shared_server().ipc());
    state st(c, fresh_ns());
    const std::string big(40 * 1024, 'x');
    st.set("a", big);
    CHECK(st.get("a") == big);
    st.set("b", big);
    try {
      st.copy();  // 80 KiB > 64 KiB
      FAIL("no exception");
    } catch (const zproc::error& e) {
      CHECK(e.code() == server_errc::reply_too_large);
    }
    try {
      st.set("c", std::string(70 * 1024, 'y'));  // the request itself is too large
      FAIL("no exception");
    } catch (const zproc::error& e) {
      CHECK(e.code() == client_errc::frame_too_large);
    }
    CHECK(st.size() == 2);  // and the connection still works
  }

  TEST_CASE("a million keys, read page by page: all of them, in order") {
    server_process srv;  // its own server: the million keys leave with it
    client c;
    c.connect(srv.ipc());
    state st(c, "million");
    constexpr int n = 1'000'000;
    const auto key = [](int i) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "key-%07d", i);
      return std::string(buf);
    };
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    for (int i = 0; i < n;) {  // 100,000 keys per update: ~1.5 MB a request
      json batch = json::object();
      for (const int end = i + 100'000; i < end; ++i) batch[key(i)] = i;
      st.update(std::move(batch));
    }
    const auto t1 = clock::now();
    REQUIRE(st.size() == n);

    // One reply of all the keys is too large (what `keys` answered before paging)...
    try {
      st.keys();
      FAIL("no exception");
    } catch (const zproc::error& e) {
      CHECK(e.code() == server_errc::reply_too_large);
      CHECK(std::string(e.what()).find("'after' and 'limit'") != std::string::npos);  // how to page
    }

    // ...page by page, every key comes, in order, once.
    int next = 0;
    bool in_order = true;
    const auto visited = st.for_each_key(
        [&](std::string&& k) { in_order = in_order && k == key(next++); },
        {.limit = 100'000});
    CHECK(visited == n);
    CHECK(next == n);
    CHECK(in_order);
    const auto t2 = clock::now();

    // The same walk with the co_await form, over items: the values too.
    boost::asio::io_context ioc;
    test::run_with_deadline(ioc, [&]() -> boost::asio::awaitable<void> {
      client ac(ioc.get_executor());
      co_await ac.async_connect(srv.ipc());
      state ast(ac, "million");
      page_request req{.limit = 100'000};
      int i = 0;
      bool ok = true;
      int pages = 0;
      for (;;) {
        item_page page = co_await ast.async_items_page(req);
        ++pages;
        for (auto& [k, v] : page.items) {
          ok = ok && k == key(i) && v == i;
          ++i;
        }
        if (!page.next) break;
        req.after = std::move(page.next);
      }
      CHECK(i == n);
      CHECK(ok);
      CHECK(pages == 10);
    }(), std::chrono::seconds(60));
    const auto t3 = clock::now();
    const auto ms = [](auto d) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    };
    MESSAGE("a million keys: load " << ms(t1 - t0) << " ms, keys by page " << ms(t2 - t1)
                                    << " ms, items by page (async) " << ms(t3 - t2) << " ms");
  }

  TEST_CASE("pages: prefix, after past the end, big values within the frame limit") {
    client c({.max_frame_size = 64 * 1024});
    c.connect(shared_server().ipc());
    state st(c, fresh_ns());
    st.update(json{{"user:1", 1}, {"user:2", 2}, {"user:3", 3}, {"users", 0}, {"a", 0}});

    auto users = st.keys_page({.prefix = "user:"});
    CHECK(users.keys == std::vector<std::string>{"user:1", "user:2", "user:3"});
    CHECK_FALSE(users.next);
    auto two = st.keys_page({.prefix = "user:", .limit = 2});
    CHECK(two.keys == std::vector<std::string>{"user:1", "user:2"});
    CHECK(two.next == "user:2");
    auto rest = st.items_page({.after = two.next, .prefix = "user:", .limit = 2});
    REQUIRE(rest.items.size() == 1);
    CHECK(rest.items[0] == state::item{"user:3", 3});
    CHECK_FALSE(rest.next);
    auto past = st.keys_page({.after = "zzz"});
    CHECK(past.keys.empty());
    CHECK_FALSE(past.next);
    CHECK(st.items_page({.after = "users"}).items.empty());
    CHECK(st.keys_page({.prefix = "nobody"}).keys.empty());
    std::vector<std::string> seen;
    CHECK(st.for_each_key([&](std::string k) { seen.push_back(std::move(k)); },
                          {.prefix = "user"}) == 4);
    CHECK(seen == std::vector<std::string>{"user:1", "user:2", "user:3", "users"});

    // Values of 20 KiB, a client that accepts 64 KiB: all of them at once is too large...
    const std::string big(20 * 1024, 'x');
    state bigs = st.fork(fresh_ns());
    for (int i = 0; i < 10; ++i) bigs.set("big" + std::to_string(i), big + std::to_string(i));
    CHECK_THROWS_AS(bigs.items(), zproc::error);
    // ...page by page, each page fits (half a frame: one value per page here).
    int count = 0;
    int pages = 0;
    page_request req{.limit = 1000};
    for (;;) {
      REQUIRE(pages < 20);
      auto page = bigs.items_page(req);
      ++pages;
      CHECK(!page.items.empty());
      for (auto& [k, v] : page.items) CHECK(v == big + std::to_string(count++));
      if (!page.next) break;
      req.after = page.next;
    }
    CHECK(count == 10);
    CHECK(pages == 10);
    CHECK(bigs.for_each_item([](std::string, json) {}) == 10);

    // History pages the same way: from the last revision + 1, within half a frame.
    std::vector<std::uint64_t> revs;
    for (std::uint64_t from = 1;;) {
      REQUIRE(revs.size() <= 10);
      auto page = bigs.history(from);
      if (page.empty()) break;
      for (const auto& u : page) revs.push_back(u.revision);
      from = revs.back() + 1;
    }
    CHECK(revs == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  }

  TEST_CASE("the error_code forms: nothing thrown, the code and the server's message set, "
            "cleared on success") {
    on_both_transports([](client& c, const std::string&) {
      state st(c, fresh_ns());
      error_code ec = make_error_code(client_errc::timeout);  // cleared by a success
      diagnostics diag;
      CHECK(st.set("cookies", 1, ec, diag) == 1);
      CHECK(!ec);
      CHECK(st.get("cookies", ec, diag) == 1);
      CHECK(!ec);
      CHECK(st.get("nope", ec, diag) == json());
      CHECK(ec == server_errc::key_not_found);
      CHECK(diag.message().find("key 'nope' not found in namespace") != std::string::npos);
      CHECK(st.get("nope", json("fallback"), ec, diag) == "fallback");
      CHECK(!ec);
      CHECK(diag.message().empty());
      CHECK(st.erase("nope", ec, diag) == 0);
      CHECK(ec == server_errc::key_not_found);
      st.set("name", "zproc", ec, diag);
      CHECK(st.increment("name", 1, ec, diag) == json());
      CHECK(ec == server_errc::wrong_type);
      CHECK(!diag.message().empty());
      CHECK(st.update(json::array({1}), ec, diag) == 0);
      CHECK(ec == server_errc::wrong_type);
      CHECK(st.compare_and_set("cookies", json(1), 2, ec, diag));
      CHECK(!ec);
      CHECK(st.keys(ec, diag) == std::vector<std::string>{"cookies", "name"});
      CHECK(st.history(0, std::nullopt, 10, ec, diag).size() == 3);
      CHECK(st.at(1, ec, diag) == json{{"cookies", 1}});
      CHECK(c.ping(ec, diag) == shared_server().pid());
      CHECK(!ec);
    });
    // Not connected, a bad address, no server: codes, not exceptions.
    client c({.connect_timeout = std::chrono::milliseconds(2000)});
    error_code ec;
    diagnostics diag;
    state st(c);
    CHECK(st.size(ec, diag) == 0);
    CHECK(ec == client_errc::not_connected);
    c.connect("http://localhost", ec, diag);
    CHECK(ec == client_errc::bad_address);
    CHECK(!diag.message().empty());
    client d({.connect_timeout = std::chrono::milliseconds(2000)});
    d.connect(zproc::test::fresh_ipc_address(), ec, diag);
    CHECK(ec == client_errc::server_unreachable);
    CHECK(diag.message().find("cannot connect") != std::string::npos);
    client e;
    e.connect(shared_server().ipc(), ec, diag);
    CHECK(!ec);
    CHECK(state(e, fresh_ns()).size(ec, diag) == 0);
    CHECK(!ec);
  }

  TEST_CASE("the error_code forms on the thread of an async client's executor: wrong_mode, "
            "not an exception") {
    boost::asio::io_context ioc;
    client c(ioc);
    state st(c, fresh_ns());
    bool ran = false;
    c.async_connect(shared_server().ipc(), [&](error_code connect_ec) {
      REQUIRE(!connect_ec);
      error_code ec;
      diagnostics diag;
      CHECK(st.size(ec, diag) == 0);
      CHECK(ec == client_errc::wrong_mode);
      CHECK(diag.message().find("co_await the async_ form") != std::string::npos);
      ran = true;
      c.close();
    });
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!ran && std::chrono::steady_clock::now() < until)
      ioc.run_one_for(std::chrono::milliseconds(100));
    CHECK(ran);
  }

  TEST_CASE("connect errors: no server, bad address") {
    client c({.connect_timeout = std::chrono::milliseconds(2000)});
    try {
      c.connect(zproc::test::fresh_ipc_address());
      FAIL("no exception");
    } catch (const zproc::error& e) {
      CHECK(e.code() == client_errc::server_unreachable);
    }
    client d;
    CHECK_THROWS_AS(d.connect("http://localhost"), zproc::error);
    client e;
    state st(e);
    try {
      st.get("x");  // never connected
      FAIL("no exception");
    } catch (const zproc::error& err) {
      CHECK(err.code() == client_errc::not_connected);
    }
  }

  TEST_CASE("what cannot be read back is refused at the door: non-UTF-8, values nested too deep") {
    test::server_process sp;
    client c;
    c.connect(sp.ipc());
    state st(c, "door");
    auto refused = [](auto&& write, const std::string& part) {
      try {
        write();
        FAIL("stored");
      } catch (const zproc::error& e) {
        CHECK(e.code() == server_errc::bad_request);
        CHECK_MESSAGE(std::string(e.what()).find(part) != std::string::npos, e.what());
      }
    };
    refused([&] { st.set("k", std::string("caf\xe9")); }, "not valid UTF-8");  // Latin-1
    refused([&] { st.set(std::string("\xff"), 1); }, "not valid UTF-8");
    refused([&] { st.update({{std::string("a\xc0"), 1}}); }, "key");
    refused([&] { st.append("list", std::string("\xed\xa0\x80")); }, "not valid UTF-8");
    auto nested = [](std::size_t levels) {
      json v = "bottom";
      for (std::size_t i = 1; i < levels; ++i) v = json::array({std::move(v)});
      return v;
    };
    for (std::size_t levels : {300u, 507u, 508u, 509u, 510u, 511u, 512u, 600u}) {
      refused([&] { st.set("deep", nested(levels)); }, "nested deeper");
      // (cas adds a field after its value: the request stays refusable, not a json exception)
      refused([&] { st.compare_and_set("deep", std::nullopt, nested(levels)); }, "nested deeper");
    }
    // Nothing was stored, the connection is fine, and what is stored is readable by everyone.
    CHECK(st.size() == 0);
    st.set("deep", nested(250));
    st.set("text", "caf\xc3\xa9");
    CHECK(st.get("deep") == nested(250));
    auto dump = test::run_program({ZPROC_EXE, "dump", "--address", sp.ipc(), "--namespace", "door"}, std::chrono::seconds(30));
    CHECK(dump.exit_code == 0);
    auto history = test::run_program({ZPROC_EXE, "history", "--address", sp.ipc(), "--namespace", "door"}, std::chrono::seconds(30));
    CHECK(history.exit_code == 0);
    CHECK(history.out.find("caf") != std::string::npos);
  }
}
