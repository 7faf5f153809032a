// The server on several threads (server_config::threads): every guarantee of one thread holds.
// The server runs in this process (server_thread), so that a ThreadSanitizer build of this
// suite (scripts/tsan) sees the server's threads as well as the clients'.
#include "protocol/message.hpp"
#include "protocol/ops.hpp"
#include "server/store_set.hpp"
#include "server/task_queue.hpp"
#include "support/raw_peer.hpp"
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
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

/// `writers` connections, each writing every one of `names` in turn for `rounds` rounds: an
/// increment of "count" and its own key "w<i>" set to the round (what check_every_revision()
/// reads back).
void write_every_namespace(const std::string& address, int writers, int rounds,
                           const std::vector<std::string>& names) {
  on_connections(address, writers, [&](client& c, int i) {
    const std::string mine = "w" + std::to_string(i);
    for (int j = 0; j < rounds; ++j)
      for (const auto& name : names) {
        state st(c, name);
        st.increment("count");
        st.set(mine, j);
      }
  });
}

/// Raw watchers from revision 0, one on each of `names` (in order), `per_connection` of them on
/// each connection of their own (each connection on its own server thread).
struct start_watchers {
  std::vector<std::unique_ptr<client>> clients;  // declared first: they outlive the watchers
  std::vector<raw_watcher> watchers;
  start_watchers(const std::string& address, const std::vector<std::string>& names,
                 std::size_t per_connection) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (i % per_connection == 0) {
        clients.push_back(std::make_unique<client>());
        clients.back()->connect(address);
      }
      watchers.push_back(
          state(*clients.back(), names[i]).when_change_raw({}, {.timeout = 30s, .start = 0}));
    }
  }
};

/// Reads `updates` updates from `w`: revisions 1, 2, ... in order, each of one change, a
/// "count" increment or a writer's own key set to one more than its last value; every one of
/// `writers` writers seen.
void check_every_revision(raw_watcher& w, std::uint64_t updates, std::size_t writers) {
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

/// `count` namespace names that fall on every one of server_threads shards.
std::vector<std::string> spread_namespaces(int count) {
  std::vector<std::string> names;
  std::set<std::size_t> shards;
  for (int i = 0; i < count; ++i) {
    names.push_back("ns" + std::to_string(i));
    shards.insert(server_detail::shard_of(names.back(), server_threads));
  }
  REQUIRE(shards.size() == server_threads);
  return names;
}

/// One name on each of server_threads shards (a swarm's queue belongs to a shard by its name
/// as a namespace does): names[i] is shard i's.
std::vector<std::string> one_name_per_shard(const std::string& prefix) {
  std::vector<std::string> names(server_threads);
  std::size_t found = 0;
  for (int i = 0; found < server_threads; ++i) {
    auto name = prefix + std::to_string(i);
    auto& slot = names[server_detail::shard_of(name, server_threads)];
    if (slot.empty()) {
      slot = std::move(name);
      ++found;
    }
  }
  return names;
}

long long cube_on_shards(int x) { return 1LL * x * x * x; }
ZPROC_TARGET(cube_on_shards);

/// A namespace whose shard is not the home shard (0), where a request that names none runs;
/// with `home`, one whose shard is.
std::string away_from_home(bool home = false) {
  for (int i = 0;; ++i)
    if (auto name = "away" + std::to_string(i);
        (server_detail::shard_of(name, server_threads) == 0) == home)
      return name;
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
    // Three watchers, each on a connection of its own, so on its own thread.
    start_watchers started(srv.address(), {"shared", "shared", "shared"}, 1);
    auto& watchers = started.watchers;

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

    for (auto& w : watchers) check_every_revision(w, updates, writers);
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

  TEST_CASE("16 namespaces over the 4 shards of a 4-thread server, 8 connections writing all of "
            "them: every watcher sees every revision of its namespace once, in order; increments "
            "are exact") {
    server_thread srv({.threads = server_threads});
    const auto names = spread_namespaces(16);
    constexpr int writers = 8;
    constexpr int rounds = 40;
    // Per namespace: each writer increments once and sets its own key once per round.
    constexpr std::uint64_t per_namespace = writers * rounds * 2;

    // 4 connections, 4 watchers each (on namespaces of different shards).
    start_watchers started(srv.address(), names, 4);
    auto& watchers = started.watchers;
    write_every_namespace(srv.address(), writers, rounds, names);
    client check;
    check.connect(srv.address());
    for (const auto& name : names) {
      state st(check, name);
      CHECK(st.get("count") == writers * rounds);
      CHECK(st.revision() == per_namespace);
    }
    for (std::size_t i = 0; i < watchers.size(); ++i) {
      INFO("namespace " << names[i]);
      check_every_revision(watchers[i], per_namespace, writers);
    }
  }

  TEST_CASE("waits given up on a namespace away from the home shard leave nothing parked; a "
            "cancel or a more that names no namespace finds its watch on any shard") {
    server_config config{.threads = server_threads};
    config.limits.max_parked_per_connection = 2;
    server_thread srv(config);
    const std::string away = away_from_home();
    client c;
    c.connect(srv.address());
    state st(c, away);
    int timed_out = 0;
    for (int i = 0; i < 10; ++i) {  // each one's cancel must reach the shard of `away`
      try {
        (void)st.get_when_equal("ready", true, {.timeout = 20ms});
      } catch (const zproc::error& e) {
        CHECK(e.code() == client_errc::timeout);
        timed_out += e.code() == client_errc::timeout;
      }
      c.ping();
    }
    CHECK(timed_out == 10);

    // A client of protocol 2 names no namespace in its cancel; a stream's more without one.
    test::raw_peer p(srv.address());
    p.hello();
    using protocol::field::id;
    json watch = {{protocol::field::op, "watch"}, {protocol::field::ns, away}, {id, 1},
                  {protocol::field::stream, 1}, {"r", 0}};
    p.send(watch);
    json more = protocol::more_request(1, 4).to_json();
    more[id] = 2;
    REQUIRE_FALSE(more.contains(protocol::field::ns));
    p.send(more);
    auto r = p.receive();
    CHECK(r.at(id) == 2);
    CHECK(r.at(protocol::field::result) == true);  // found on the shard of `away`
    json cancel = protocol::cancel_request(1);
    cancel[id] = 3;
    p.send(cancel);
    r = p.receive();
    CHECK(r.at(id) == 3);
    CHECK(r.at(protocol::field::result) == true);
    p.send(cancel);  // (again: nothing left there)
    CHECK(p.receive().at(protocol::field::result) == false);

    // A cancel that names another namespace than its target's (a task take's, say) is looked
    // for on the home shard too.
    watch[protocol::field::ns] = away_from_home(true);
    watch[id] = 4;
    p.send(watch);
    json elsewhere = protocol::cancel_request(4, away);
    elsewhere[id] = 5;
    p.send(elsewhere);
    r = p.receive();
    CHECK(r.at(id) == 5);
    CHECK(r.at(protocol::field::result) == true);
  }

  TEST_CASE("max_namespaces counts the namespaces of every shard") {
    server_config config{.threads = server_threads};
    config.max_namespaces = 12;
    server_thread srv(config);
    const auto names = spread_namespaces(16);
    std::atomic<int> created{0}, refused{0};
    on_connections(srv.address(), 4, [&](client& c, int i) {
      for (int j = i; j < 16; j += 4) {
        try {
          state(c, names[static_cast<std::size_t>(j)]).set("k", j);
          ++created;
        } catch (const zproc::error& e) {
          CHECK(e.code() == server_errc::limit_reached);
          ++refused;
        }
      }
    });
    CHECK(created == 12);
    CHECK(refused == 4);
  }

  TEST_CASE("fsync always on a 4-thread server: replies and woken watchers wait for the "
            "shared syncs; every revision seen once, in order; restarted, every write is there") {
    // Each reply leaves once a sync covered what was written before it (server/group_commit):
    // the writers' acknowledgements and the watchers' updates all go through that wait.
    const auto dir = std::filesystem::temp_directory_path() /
                     ("zproc-group-commit-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    server_config config{.threads = server_threads};
    config.data_dir = dir.string();
    config.fsync = server_config::fsync_policy::always;
    config.snapshot_every = 400;  // snapshots begun while writing, too
    const auto names = one_name_per_shard("durable");
    constexpr int writers = 8, rounds = 60;
    std::map<std::string, std::pair<json, std::uint64_t>> expected;
    {
      server_thread srv(config);
      start_watchers started(srv.address(), names, 1);
      write_every_namespace(srv.address(), writers, rounds, names);
      client c;
      c.connect(srv.address());
      for (const auto& name : names) {
        state st(c, name);
        CHECK(st.get("count") == writers * rounds);
        expected[name] = {st.copy(), st.revision()};
      }
      for (auto& one : started.watchers) check_every_revision(one, writers * rounds * 2, writers);
    }
    config.threads = 2;
    server_thread again(config);
    client c;
    c.connect(again.address());
    for (const auto& name : names) {
      state st(c, name);
      CHECK(st.copy() == expected[name].first);
      CHECK(st.revision() == expected[name].second);
    }
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("a data directory on a 4-shard server: snapshots while 4 connections write 16 "
            "namespaces; it restarts exact on 4 shards, on 1, on 3") {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("zproc-shards-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    const auto names = spread_namespaces(16);
    server_config config{.threads = server_threads};
    config.data_dir = dir.string();
    config.snapshot_every = 150;  // ~10 snapshots begun while writing
    std::map<std::string, std::pair<json, std::uint64_t>> expected;
    {
      server_thread srv(config);
      on_connections(srv.address(), 4, [&](client& c, int i) {
        for (int j = 0; j < 100; ++j)
          for (std::size_t k = static_cast<std::size_t>(i); k < names.size(); k += 2) {
            state st(c, names[k]);
            st.increment("count");
            st.set("last" + std::to_string(i), j);
          }
      });
      client c;
      c.connect(srv.address());
      for (const auto& name : names) {
        state st(c, name);
        expected[name] = {st.copy(), st.revision()};
      }
      CHECK(std::filesystem::exists(dir / "snapshot"));
    }
    for (const std::size_t threads : {server_threads, std::size_t{1}, std::size_t{3}}) {
      INFO("restarted on " << threads << " threads");
      config.threads = threads;
      server_thread srv(config);
      client c;
      c.connect(srv.address());
      for (std::size_t k = 0; k < names.size(); ++k) {
        state st(c, names[k]);
        CHECK(st.copy() == expected[names[k]].first);
        CHECK(st.revision() == expected[names[k]].second);
        // Written by the connections i <= k of k's parity, 100 increments each.
        if (k > 0) CHECK(st.get("count") == 100 * (k == 1 ? 1 : 2));
      }
      // Writes go on from there, and are kept for the next start.
      state next(c, names[0]);
      next.increment("count");
      expected[names[0]] = {next.copy(), next.revision()};
    }
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("a connection that stops reading while its watchers on every shard are woken: held "
            "back on every shard, then each watcher sees every revision once, in order") {
    server_config config{.threads = server_threads};
    config.max_pending_output = 128 * 1024;  // far below what the writes below bring
    server_thread srv(config);
    const auto names = spread_namespaces(8);
    constexpr int writes = 150;
    client watching;  // blocking: it reads only while the test calls it
    watching.connect(srv.address());
    std::vector<raw_watcher> watchers;
    for (const auto& name : names)
      watchers.push_back(state(watching, name).when_change_raw({}, {.timeout = 30s, .start = 0}));
    watching.ping();
    const std::string payload(4096, 'p');
    on_connections(srv.address(), 4, [&](client& c, int i) {
      for (int j = 0; j < writes; ++j)
        for (std::size_t k = static_cast<std::size_t>(i); k < names.size(); k += 4)
          state(c, names[k]).set("v", payload + std::to_string(j));
    });
    for (std::size_t k = 0; k < names.size(); ++k) {
      INFO("namespace " << names[k]);
      for (int j = 0; j < writes; ++j) {
        auto u = watchers[k].next();
        REQUIRE(u.has_value());
        REQUIRE(u->revision == static_cast<std::uint64_t>(j + 1));
        REQUIRE(u->changes.at(0).after == payload + std::to_string(j));
      }
    }
  }

  TEST_CASE("swarms whose queues fall on every shard of a 4-thread server: every map exact, "
            "each task id names its queue's shard, results found by id from another handle") {
    server_thread srv({.threads = server_threads});
    zproc::context ctx({.address = srv.address()});
    const auto names = one_name_per_shard("queue");
    std::vector<zproc::swarm> swarms;
    for (const auto& name : names) swarms.push_back(ctx.create_swarm(1, {.name = name}));
    std::vector<int> in(3000);
    for (int i = 0; i < 3000; ++i) in[static_cast<std::size_t>(i)] = i - 1500;
    for (std::size_t shard = 0; shard < server_threads; ++shard) {
      CAPTURE(names[shard]);
      auto out = swarms[shard].map(cube_on_shards, in);
      REQUIRE(out.size() == in.size());
      for (std::size_t i = 0; i < in.size(); ++i) REQUIRE(out[i] == 1LL * in[i] * in[i] * in[i]);
      auto t = swarms[shard].run(cube_on_shards, 7);
      CHECK(server_detail::task_queue::shard_of_id(t.id(), server_threads) == shard);
      // Another handle finds it by id alone (task_wait names no queue).
      auto other = ctx.create_swarm(0, {.name = names[shard]});
      CHECK(other.result<long long>(t.id()).get(30s) == 343);
    }
    // Maps on every shard at once, from as many threads.
    std::vector<std::thread> pool;
    std::atomic<int> wrong{0};
    for (std::size_t shard = 0; shard < server_threads; ++shard)
      pool.emplace_back([&, shard] {
        try {
          zproc::context own({.address = srv.address()});
          auto sw = own.create_swarm(0, {.name = names[shard]});
          auto out = sw.map(cube_on_shards, in);
          for (std::size_t i = 0; i < in.size(); ++i)
            if (out[i] != 1LL * in[i] * in[i] * in[i]) ++wrong;
        } catch (const std::exception& e) {
          MESSAGE("shard " << shard << ": " << e.what());
          ++wrong;
        }
      });
    for (auto& t : pool) t.join();
    CHECK(wrong == 0);
  }

  TEST_CASE("max_tasks counts the tasks of every shard's queues") {
    server_config config{.threads = server_threads};
    config.limits.max_tasks = 10;
    server_thread srv(config);
    test::raw_peer p(srv.address());
    p.hello();
    const auto names = one_name_per_shard("held");
    int accepted = 0, refused = 0;
    std::uint64_t id = 0;
    for (int round = 0; round < 2; ++round)
      for (const auto& name : names) {  // 2, then 1 task on each shard in turn: 12 asked
        json submit = {{protocol::field::op, "task_submit"}, {"q", name}, {"tg", "t"},
                       {"t", json::array({json::array({json::binary({1}), 1}),
                                          json::array({json::binary({2}), 1})})},
                       {protocol::field::id, ++id}};
        if (round == 1) submit["t"] = json::array({json::array({json::binary({3}), 1})});
        p.send(submit);
        const json reply = p.receive();
        if (reply.contains("e")) {
          std::string message;
          CHECK(protocol::decode_error(reply.at("e"), message) == server_errc::limit_reached);
          ++refused;
        } else {
          accepted += round == 1 ? 1 : 2;
        }
      }
    CHECK(accepted == 10);  // 8 in the first round, then 2 of the 4 singles
    CHECK(refused == 2);
  }
}
