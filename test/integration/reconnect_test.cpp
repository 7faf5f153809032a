// Clients that survive a server restart (issue 14 item 5): real `zproc server` processes,
// SIGKILLed and restarted on the same address, or replaced by the next address of a list.
#include "support/server_process.hpp"

#include "client/client_core.hpp"
#include "protocol/frame.hpp"
#include "protocol/message.hpp"

#include <zproc/zproc.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/steady_timer.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

using namespace zproc;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::awaitable;

namespace {

std::string fresh_dir() {
  static int n = 0;
  auto d = fs::temp_directory_path() /
           ("zproc-reconnect-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
  fs::remove_all(d);
  return d.string();
}

/// `zproc server --listen IPC [--data-dir DIR]` on an address of our choosing, so that a new one
/// can take the place of one that was killed.
std::unique_ptr<test::child_process> start_server(const std::string& ipc,
                                                   const std::string& dir = {},
                                                   const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {ZPROC_EXE, "server", "--listen", ipc};
  if (!dir.empty()) {
    argv.push_back("--data-dir");
    argv.push_back(dir);
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = std::make_unique<test::child_process>(argv);
  REQUIRE(p->wait_for_line("listening at", 10s));
  return p;
}

/// A swarm worker's pid (which worker ran a call).
std::int64_t whose_pid(int) { return ::getpid(); }
ZPROC_TARGET(whose_pid);

/// A supervised process that outlives a server restart, then fails.
void fail_later() {
  std::this_thread::sleep_for(1500ms);
  throw std::runtime_error("failed after the restart");
}
ZPROC_TARGET(fail_later);

/// A process that ends at once.
int quick() { return 1; }
ZPROC_TARGET(quick);

/// A task that runs long enough for its caller's wait to be in flight.
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
ZPROC_TARGET(sleep_ms);

/// Joins a thread when the test leaves its scope, even by a failed REQUIRE.
struct joining {
  std::thread& t;
  std::function<void()> before = [] {};
  ~joining() {
    before();
    if (t.joinable()) t.join();
  }
};

/// Not a zproc server: a peer that answers the hello as one would and hangs up at once, each
/// time (a misconfigured proxy, a server dying at once). Counts the connections it accepted.
class hello_then_hang_up {
 public:
  explicit hello_then_hang_up(const std::string& path)
      : acceptor_(ioc_, asio::local::stream_protocol::endpoint(path)) {
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~hello_then_hang_up() {
    asio::post(ioc_, [this] {
      error_code ignored;
      acceptor_.close(ignored);
    });
    ioc_.stop();
    thread_.join();
  }
  std::atomic<int> accepted{0};

 private:
  using socket = asio::local::stream_protocol::socket;
  void accept() {
    acceptor_.async_accept([this](error_code ec, socket s) {
      if (ec) return;
      ++accepted;
      auto sock = std::make_shared<socket>(std::move(s));
      auto buf = std::make_shared<std::array<char, 4096>>();
      sock->async_read_some(asio::buffer(*buf), [sock, buf](error_code read_ec, std::size_t) {
        if (read_ec) return;  // the hello (one small frame) came
        std::string out;
        protocol::append_frame(
            out, protocol::make_hello_reply({::getpid(), 1, 1u << 20, "0123456789abcdef"}));
        asio::write(*sock, asio::buffer(out), read_ec);
        sock->close(read_ec);
      });
      accept();
    });
  }
  asio::io_context ioc_;
  asio::local::stream_protocol::acceptor acceptor_;
  std::thread thread_;
};

/// The address as the client reports it (ipc:// paths are canonical already).
bool same_address(const std::string& a, const std::string& b) { return a == b; }

}  // namespace

TEST_SUITE("reconnect") {
  TEST_CASE("a durable server SIGKILLed and restarted 5 times: no write hangs, the watcher sees "
            "every update exactly once") {
    const std::string dir = fresh_dir();
    const std::string ipc = test::fresh_ipc_address();
    auto srv = start_server(ipc, dir);
    const auto t0 = std::chrono::steady_clock::now();

    // The watcher: this process, its own blocking client, on a thread.
    client wc;
    wc.connect(ipc);
    state wst(wc, "restart");
    auto w = wst.when_change_raw({}, {.timeout = 500ms});
    std::atomic<std::uint64_t> target{std::numeric_limits<std::uint64_t>::max()};
    std::vector<std::pair<std::uint64_t, std::string>> seen;  // revision, key
    std::string watch_error;
    std::thread watching([&] {
      const auto give_up = std::chrono::steady_clock::now() + 60s;
      while (w.revision() < target.load() && std::chrono::steady_clock::now() < give_up) {
        try {
          auto u = w.next();
          if (!u) break;
          seen.emplace_back(u->revision, u->changes.empty() ? "" : u->changes.front().key);
        } catch (const zproc::error& e) {
          if (e.code() == client_errc::timeout) continue;  // nothing new yet: look at target
          watch_error = e.what();
          break;
        }
      }
    });
    joining join_watching{watching, [&] { target = 0; }};

    // The writer: a process of its own, 10,000 sequential writes through the restarts.
    const std::string results = dir + ".writes";
    test::child_process writer(
        {ZPROC_WRITER_EXE, ipc, "restart", "10000", "--reconnect", results});
    for (int k = 1; k <= 5; ++k) {
      REQUIRE(writer.wait_for_line("P " + std::to_string(k * 1500), 20s));
      srv->kill_and_wait();  // SIGKILL
      srv = start_server(ipc, dir);
    }
    REQUIRE(writer.wait_for_line("DONE", 30s));
    int acked = -1, failed = -1;
    {
      std::istringstream in(writer.last_line().substr(5));
      in >> acked >> failed;
    }
    CHECK(acked + failed == 10000);
    CHECK(failed <= 5);  // at most the write in flight at each kill

    client rc;
    rc.connect(ipc);
    state rst(rc, "restart");
    const std::uint64_t last = rst.revision();
    target = last;
    watching.join();
    CHECK(watch_error == "");

    // Every revision exactly once, in order, none missing (one writer: revisions 1..last).
    REQUIRE(seen.size() == last);
    for (std::size_t i = 0; i < seen.size(); ++i) REQUIRE(seen[i].first == i + 1);

    // Every acknowledged write was seen (as its revision) and is in the final state; a failed one
    // may or may not have been applied.
    const json final_state = rst.copy();
    std::ifstream in(results);
    std::string kind;
    int i = 0;
    int acked_read = 0;
    int failed_applied = 0;
    std::map<std::string, int> failures;
    while (in >> kind >> i) {
      const std::string key = "k" + std::to_string(i);
      if (kind == "A") {
        std::uint64_t rev = 0;
        in >> rev;
        ++acked_read;
        REQUIRE(rev >= 1);
        REQUIRE(rev <= last);
        CHECK(seen[rev - 1].second == key);
        CHECK(final_state.value(key, json()) == i);
      } else {
        std::string reason;
        std::getline(in, reason);
        ++failures[reason];
        failed_applied += final_state.contains(key);
      }
    }
    CHECK(acked_read == acked);
    // What is in the state is exactly what the watcher saw: acknowledged + applied failures.
    CHECK(final_state.size() == last);
    CHECK(last == static_cast<std::uint64_t>(acked + failed_applied));
    for (const auto& [reason, n] : failures) MESSAGE(n << " failed write(s):" << reason);
    MESSAGE("acknowledged " << acked << ", failed " << failed << " (" << failed_applied
                            << " of them applied), in "
                            << std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - t0)
                                   .count()
                            << " ms");
    fs::remove_all(dir);
    fs::remove(results);
  }

  TEST_CASE("failover: the first server killed for good, clients carry on on the second") {
    test::server_process first;
    test::server_process second;  // in memory: the first one's state is not there
    client c;
    c.connect(first.ipc() + "," + second.ipc());
    client via_options({.addresses = {second.ipc()}});
    via_options.connect(first.ipc());
    state st(c, "f");
    state st2(via_options, "f");
    st.set("x", 1);
    CHECK(st2.get("x") == 1);
    const auto first_pid = c.server_pid();
    // Not live: its cursor has no meaning on the second server.
    auto stale = st.when_change_raw({}, {.timeout = 5s});
    auto live = st2.when_change({"y"}, {.live = true, .timeout = 10s});
    first.kill_now();

    CHECK(st.set("y", 2) >= 1);  // waits for the failover, then goes to the second server
    CHECK(same_address(c.address(), second.ipc()));
    CHECK(c.server_pid() != first_pid);
    CHECK(st.get("y") == 2);
    CHECK_FALSE(st.contains("x"));  // the first server's state is lost
    CHECK(st2.get("y") == 2);       // the other client failed over too
    CHECK(same_address(via_options.address(), second.ipc()));

    // A live watcher goes on with the updates made on the second server.
    client other;
    other.connect(second.ipc());
    // (It sees a change made after its request reached the server: writes go on until then.)
    std::atomic<bool> seen{false};
    std::thread writer([&] {
      state ost(other, "f");
      for (int v = 3; !seen; ++v) {
        ost.set("y", v);
        std::this_thread::sleep_for(20ms);
      }
    });
    std::optional<json> snap;
    CHECK_NOTHROW(snap = live.next());
    seen = true;
    writer.join();
    REQUIRE(snap);
    CHECK((*snap)["y"] >= 3);
    // A watcher that must see every update cannot resume from a revision the new server never
    // had: it fails (never a silent gap).
    try {
      stale.next();
      FAIL("no error");
    } catch (const zproc::error& e) {
      CHECK(e.code() == server_errc::compacted);
      MESSAGE("the stale watcher: " << std::string(e.what()));
    }
  }

  TEST_CASE("in flight at the crash: a write fails with connection_lost, a read is sent again") {
    const std::string dir = fresh_dir();
    const std::string ipc = test::fresh_ipc_address();
    auto srv = start_server(ipc, dir);
    {
      client c;
      c.connect(ipc);
      state(c, "f").set("x", "before");
    }
    asio::io_context ioc;
    test::run_with_deadline(ioc, [&]() -> awaitable<void> {
      client c(ioc.get_executor());
      co_await c.async_connect(ipc);
      state st(c, "f");
      srv->stop_signal();  // requests reach the server and stay unanswered
      std::optional<error_code> write_ec, read_ec, queued_ec;
      json read_value;
      st.async_set("x", "lost?", [&](error_code ec, std::uint64_t) { write_ec = ec; });
      st.async_get("x", [&](error_code ec, json v) {
        read_ec = ec;
        read_value = std::move(v);
      });
      asio::steady_timer t(ioc, 100ms);
      co_await t.async_wait(asio::deferred);
      CHECK_FALSE(write_ec);
      srv->kill_and_wait();  // SIGKILL (a stopped process dies too)
      t.expires_after(100ms);  // the client sees the connection close
      co_await t.async_wait(asio::deferred);
      // Made while the server is away: waits, then is sent once.
      st.async_set("z", 1, [&](error_code ec, std::uint64_t) { queued_ec = ec; });
      t.expires_after(300ms);
      co_await t.async_wait(asio::deferred);
      // All wait for the new connection (the write learns its fate with it).
      CHECK_FALSE(write_ec);
      CHECK_FALSE(read_ec);
      CHECK_FALSE(queued_ec);
      srv = start_server(ipc, dir);
      while (!write_ec || !read_ec || !queued_ec) {
        asio::steady_timer tick(ioc, 5ms);
        co_await tick.async_wait(asio::deferred);
      }
      CHECK(*write_ec == client_errc::connection_lost);
      CHECK(!*read_ec);
      CHECK(read_value == "before");  // the stopped server never applied the write
      CHECK(!*queued_ec);
      CHECK(co_await st.async_get("z") == 1);
    }(), 20s);
    fs::remove_all(dir);
  }

  TEST_CASE("atomic: a commit whose reply was lost fails with connection_lost, never twice") {
    const std::string dir = fresh_dir();
    const std::string ipc = test::fresh_ipc_address();
    auto srv = start_server(ipc, dir);
    client c;
    c.connect(ipc);
    state st(c, "a");
    st.set("n", 0);
    int bodies = 0;
    std::thread killer;
    joining join_killer{killer};
    try {
      st.atomic([&](json& s) {
        ++bodies;
        s["n"] = s.value("n", 0) + 1;
        srv->stop_signal();  // the commit reaches a server that never answers
        killer = std::thread([&] {
          std::this_thread::sleep_for(200ms);
          srv->kill_and_wait();
          srv = start_server(ipc, dir);
        });
      });
      FAIL("no error");
    } catch (const zproc::error& e) {
      CHECK(e.code() == client_errc::connection_lost);
    }
    if (killer.joinable()) killer.join();
    CHECK(bodies == 1);
    CHECK(st.get("n") == 0);  // the stopped server never applied it
    st.atomic([&](json& s) { s["n"] = s.value("n", 0) + 1; });  // usable again
    CHECK(st.get("n") == 1);
    fs::remove_all(dir);
  }

  TEST_CASE("watchers across a restart: a snapshot watcher keeps its replica, a live one goes on") {
    const std::string dir = fresh_dir();
    const std::string ipc = test::fresh_ipc_address();
    auto srv = start_server(ipc, dir);
    client c;
    c.connect(ipc);
    state st(c, "w");
    st.set("a", 1);
    auto snap = st.when_change({}, {.timeout = 10s});
    auto live = st.when_change({}, {.live = true, .timeout = 10s});
    client other;
    other.connect(ipc);
    state ost(other, "w");
    ost.set("b", 2);
    CHECK(snap.next() == json{{"a", 1}, {"b", 2}});

    srv->kill_and_wait();
    srv = start_server(ipc, dir);
    ost.set("c", 3);
    // Resumed from its cursor on the restarted server: the diff applies to its replica.
    CHECK(snap.next() == json{{"a", 1}, {"b", 2}, {"c", 3}});
    // The live one sees a change made after its request reached the server: writes go on
    // until then.
    std::atomic<bool> seen{false};
    std::thread writer([&] {
      for (int v = 4; !seen; ++v) {
        ost.set("d", v);
        std::this_thread::sleep_for(20ms);
      }
    });
    std::optional<json> now;
    CHECK_NOTHROW(now = live.next());  // an update made after this call, with a fresh replica
    seen = true;
    writer.join();
    REQUIRE(now);
    CHECK(now->value("d", 0) >= 4);
    now->erase("d");
    CHECK(*now == json{{"a", 1}, {"b", 2}, {"c", 3}});
    CHECK(snap.next() == json{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});  // every update
    fs::remove_all(dir);
  }

  TEST_CASE("a restarted durable server whose history no longer reaches the cursor: compacted, "
            "with the oldest revision") {
    const std::string dir = fresh_dir();
    const std::string ipc = test::fresh_ipc_address();
    const std::vector<std::string> keep5 = {"--history-records", "5"};
    auto srv = start_server(ipc, dir, keep5);
    client c;
    c.connect(ipc);
    state st(c, "h");
    auto w = st.when_change_raw({}, {.timeout = 5s});  // from revision 0
    srv->kill_and_wait();
    srv = start_server(ipc, dir, keep5);
    client other;
    other.connect(ipc);
    state o(other, "h");
    for (int i = 1; i <= 20; ++i) o.set("k", i);  // revisions 1..20, 16..20 kept
    try {
      w.next();
      FAIL("no error");
    } catch (const zproc::error& e) {
      CHECK(e.code() == server_errc::compacted);
      CHECK(e.diagnostics().find("the oldest revision to start from is 15") != std::string::npos);
    }
    fs::remove_all(dir);
  }

  TEST_CASE("an in-memory server restarted: a watcher's cursor is not resumed on it, even when "
            "its revision has passed the cursor") {
    const std::string ipc = test::fresh_ipc_address();
    auto srv = start_server(ipc);
    client c;
    c.connect(ipc);
    state st(c, "m");
    auto w = st.when_change_raw({}, {.timeout = 5s});
    client other;
    other.connect(ipc);
    state(other, "m").set("a", 1);
    CHECK(w.next()->revision == 1);

    srv->kill_and_wait();
    srv = start_server(ipc);  // empty, revision 0
    state again(other, "m");
    again.set("b", 1);
    again.set("c", 1);  // revision 2: past the watcher's cursor, but not its history
    try {
      w.next();
      FAIL("no error");
    } catch (const zproc::error& e) {
      CHECK(e.code() == server_errc::compacted);
    }
    // A new watcher starts on the new server.
    auto fresh = st.when_change_raw({}, {.timeout = 5s, .start = 0});
    CHECK(fresh.next()->revision == 1);
  }

  TEST_CASE("ZPROC_ADDRESS=a,b: the command line uses the first address that answers") {
    test::server_process sp;
    const std::string nobody = test::fresh_ipc_address();
    auto r = test::run_program({ZPROC_EXE, "ping"}, 10s,
                               {"ZPROC_ADDRESS=" + nobody + "," + sp.ipc()});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find(std::to_string(sp.pid())) != std::string::npos);
  }

  TEST_CASE("give up: the server gone for good, requests fail with connection_closed") {
    const std::string ipc = test::fresh_ipc_address();
    auto srv = start_server(ipc);
    client c({.reconnect_timeout = 1s});
    c.connect(ipc);
    state st(c, "g");
    st.set("x", 1);
    srv->kill_and_wait();
    const auto t0 = std::chrono::steady_clock::now();
    try {
      st.get("x");
      FAIL("no error");
    } catch (const zproc::error& e) {
      CHECK(e.code() == client_errc::connection_closed);
      CHECK(e.diagnostics().find("gave up reconnecting") != std::string::npos);
    }
    const auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= 900ms);
    CHECK(waited < 5s);
    // Over: later requests fail at once.
    const auto t1 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(st.get("x"), zproc::error);
    CHECK(std::chrono::steady_clock::now() - t1 < 500ms);
  }

  TEST_CASE("a peer that says hello and hangs up at once: the backoff grows, the deadline holds, "
            "a read is not sent to it for ever") {
    const std::string ipc = test::fresh_ipc_address();
    hello_then_hang_up peer(ipc.substr(std::string("ipc://").size()));
    client c({.request_timeout = 20s,
              .reconnect_timeout = 1500ms,
              .reconnect_initial_delay = 50ms,
              .reconnect_max_delay = 400ms});
    c.connect(ipc);
    state st(c, "h");
    const auto t0 = std::chrono::steady_clock::now();
    try {
      st.get("k");  // sent again after each loss, but not to every new connection
      FAIL("no error");
    } catch (const zproc::error& e) {
      CHECK(e.code() == client_errc::connection_lost);
      CHECK(e.diagnostics().find("soon after this request was sent") != std::string::npos);
      MESSAGE(std::string(e.what()));
    }
    // Each new connection that never worked continues the round: the give-up deadline of the
    // first loss holds, and the pauses grow (not a connect loop at full speed).
    error_code last;
    while (std::chrono::steady_clock::now() - t0 < 10s) {
      try {
        st.size();
      } catch (const zproc::error& e) {
        last = e.code();
        if (last == client_errc::connection_closed) {
          CHECK(e.diagnostics().find("gave up reconnecting") != std::string::npos);
          break;
        }
      }
    }
    CHECK(last == client_errc::connection_closed);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    MESSAGE(peer.accepted.load() << " connections accepted");
    CHECK(peer.accepted.load() <= 15);  // 1 + about 7 attempts in 1.5 s of growing pauses
  }

  TEST_CASE("a swarm's workers carry on after the server restarts (none exits, none respawned)") {
    const std::string ipc = test::fresh_ipc_address();
    auto srv = start_server(ipc);
    context ctx({.address = ipc});
    auto sw = ctx.create_swarm(2);
    const std::vector<int> in(40, 0);
    map_options o;
    o.chunk_size = 1;
    o.timeout = 30s;
    const auto pids_of = [](const std::vector<std::int64_t>& v) {
      return std::set<std::int64_t>(v.begin(), v.end());
    };
    // The workers the server knows (each once it has asked for tasks): both, before the kill.
    // (Not the ones a map ran on: one worker may run all of a map's tiny tasks.)
    const auto known = [&] {
      std::set<std::int64_t> pids;
      for (int i = 0; i < 400 && pids.size() < 2; ++i) {
        if (i > 0) std::this_thread::sleep_for(25ms);
        pids.clear();
        for (const auto& w : sw.workers()) pids.insert(w.pid);
      }
      return pids;
    };
    CHECK(!sw.map(whose_pid, in, o).empty());
    const auto before = known();
    REQUIRE(before.size() == 2);
    // Idle workers wait in a take the server holds: the kill loses it.
    srv->kill_and_wait();
    srv = start_server(ipc);
    const auto ran = pids_of(sw.map(whose_pid, in, o));
    CHECK(!ran.empty());
    for (const auto pid : ran) CHECK_MESSAGE(before.count(pid) == 1, "a new worker: " << pid);
    CHECK(known() == before);  // the same two ask the new server
  }

  TEST_CASE("an async task wait cut by a server restart fails with the connection's message") {
    const std::string ipc = test::fresh_ipc_address();
    auto srv = start_server(ipc);
    boost::asio::io_context io;
    context ctx({.address = ipc});
    swarm_options so;
    so.executor = io.get_executor();
    auto sw = ctx.create_swarm(1, so);
    auto t = sw.run(sleep_ms, 5000);
    zproc::error_code code;
    std::string message;
    bool done = false;
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
          try {
            co_await t.async_get();
          } catch (const zproc::error& e) {
            code = e.code();
            message = e.diagnostics();
          }
          done = true;
        },
        boost::asio::detached);
    io.run_for(500ms);  // the task runs, its wait is on the server
    REQUIRE(!done);
    srv->kill_and_wait();
    srv = start_server(ipc);
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (!done && std::chrono::steady_clock::now() < until) io.run_for(100ms);
    REQUIRE(done);
    CHECK(code == client_errc::connection_lost);
    // The connection's own words, not only "waiting for swarm results".
    CHECK_MESSAGE(message.find("the client reconnected") != std::string::npos, message);
  }

  TEST_CASE("a process that ends after its server restarted does not change the record of "
            "another process that has its old id on the new server") {
    const std::string ipc = test::fresh_ipc_address();
    auto srv = start_server(ipc);
    client viewer;
    viewer.connect(ipc);
    const auto records = [&] {
      return list_processes(viewer);  // retried by the viewer's client across the restart
    };
    std::int64_t other_pid = 0;
    {
      context ctx({.address = ipc});
      auto p = ctx.spawn(fail_later);
      // Its record (id 1 on this server) is registered.
      for (int i = 0; i < 200 && records().empty(); ++i) std::this_thread::sleep_for(10ms);
      REQUIRE(records().size() == 1);
      CHECK(records()[0].id == 1);
      srv->kill_and_wait();
      srv = start_server(ipc);  // in memory: its ids start at 1 again
      {
        context other({.address = ipc});
        auto q = other.spawn(quick);
        CHECK(q.wait<int>(10s) == 1);
        other_pid = q.pid();
        // Its record, ended (the supervisor sends it on its own thread: wait for it).
        for (int i = 0; i < 500; ++i) {
          const auto r = records();
          if (r.size() == 1 && r[0].state == "exited") break;
          std::this_thread::sleep_for(10ms);
        }
      }
      const auto on_new = records();
      REQUIRE(on_new.size() == 1);
      CHECK(on_new[0].id == 1);
      CHECK(on_new[0].pid == other_pid);
      CHECK_THROWS_AS(p.wait<void>(10s), zproc::remote_error);
    }
    // An update of record 1 by the first supervisor would come within milliseconds of the
    // process's end: give it a second.
    auto after = records();
    for (int i = 0; i < 50 && after.size() == 1 && after[0].state == "exited"; ++i) {
      std::this_thread::sleep_for(20ms);
      after = records();
    }
    REQUIRE(after.size() == 1);
    CHECK(after[0].pid == other_pid);
    CHECK_MESSAGE(after[0].state == "exited", "record 1 became: " << after[0].state << " "
                                                                 << after[0].crash_report);
    CHECK(after[0].crash_report.empty());
  }

  TEST_CASE("a request bound to a connection (a process record's update) is never sent on "
            "another") {
    const std::string ipc = test::fresh_ipc_address();
    auto srv = start_server(ipc);
    asio::io_context ioc;
    test::run_with_deadline(ioc, [&]() -> awaitable<void> {
      client c(ioc.get_executor());
      co_await c.async_connect(ipc);
      const auto bound = [&](std::uint64_t only_on) {
        return detail::async_connection_request(c.impl(), only_on, detail::ping_request(),
                                                nullptr, asio::as_tuple(asio::deferred));
      };
      auto [ec1, r1, on1] = co_await bound(0);
      CHECK(!ec1);
      CHECK(on1 == 1);  // the number of the connection the reply came on
      srv->kill_and_wait();
      // While reconnecting: it fails at once instead of waiting for the next connection.
      auto [ec2, r2, on2] = co_await bound(1);
      CHECK(ec2 == client_errc::connection_lost);
      srv = start_server(ipc);
      co_await c.async_ping();  // waits for the new connection
      auto [ec3, r3, on3] = co_await bound(1);
      CHECK(ec3 == client_errc::connection_lost);  // connection 1 is gone
      auto [ec4, r4, on4] = co_await bound(2);
      CHECK(!ec4);
      CHECK(on4 == 2);
      c.close();
    });
  }

  TEST_CASE("reconnect_timeout zero: a lost connection is over at once") {
    test::server_process sp;
    client c({.reconnect_timeout = 0ms});
    c.connect(sp.ipc());
    state st(c, "g");
    st.set("x", 1);
    sp.kill_now();
    const auto t0 = std::chrono::steady_clock::now();
    try {
      st.get("x");
      FAIL("no error");
    } catch (const zproc::error& e) {
      CHECK(e.code() == client_errc::connection_closed);
    }
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  }
}
