// The journal's snapshots without sockets: an engine with a data directory, a snapshot driven
// step by step with writes between the steps, and a copy of the directory taken at every step
// (what a kill -9 there leaves behind: the files as written, page cache included) recovered into
// a fresh store and compared with the live one.
#include "server/engine.hpp"
#include "server/journal.hpp"
#include "server/store_set.hpp"

#include <boost/crc.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace zproc;
using namespace zproc::server_detail;
using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string fresh_dir(const std::string& tag) {
  static int n = 0;
  auto d = fs::temp_directory_path() /
           ("zproc-journal-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
  fs::remove_all(d);
  return d.string();
}

std::unique_ptr<journal> journal_on(const std::string& dir, std::size_t snapshot_every) {
  return std::make_unique<journal>(dir, server_config::fsync_policy::never, 100ms, snapshot_every);
}

/// Everything recovery must bring back: per namespace its data, revision, each key's revision
/// and the kept history's range.
json state_of(const store& s) {
  json all = json::object();
  s.for_each([&](const std::string& name, const namespace_state& ns) {
    json mod = json::object();
    for (const auto& [k, v] : ns.modified) mod[k] = v;
    json records = json::array();
    for (std::uint64_t r = ns.hist.oldest(); r <= ns.hist.newest(); ++r)
      if (const record_ptr* rec = ns.hist.find(r)) records.push_back(to_json(**rec));
    all[name] = {{"data", ns.data},
                 {"rev", ns.revision},
                 {"mod", mod},
                 {"oldest", ns.hist.oldest()},
                 {"newest", ns.hist.newest()},
                 {"history", records}};
  });
  return all;
}

/// Recovers a copy of `dir` (as a kill -9 would leave it now) into a fresh store.
json recovered_copy(const std::string& dir) {
  const std::string copy = dir + "-copy";
  fs::remove_all(copy);
  fs::copy(dir, copy);
  store s(1);
  journal j(copy, server_config::fsync_policy::never, 100ms, 1'000'000);
  j.recover(s);
  fs::remove_all(copy);
  return state_of(s);
}

struct fixture {
  engine e{1, retention{}};
  std::vector<delivery> out;
  std::uint64_t next_id = 1;

  void write(json req) {
    out.clear();
    e.handle(req, next_id++, request_context{7}, out);
    REQUIRE(out.size() == 1);
  }
  void update(const std::string& ns, json obj) {
    write({{"o", "update"}, {"n", ns}, {"v", std::move(obj)}});
  }
};

std::string key(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "k%06d", i);
  return buf;
}

/// Four engines as a server's four shards (sharing a budget; each task id and namespace its
/// own shard's), with a namespace name on each.
struct four_shards {
  static constexpr std::size_t count = 4;
  shared_budget budget;
  std::vector<std::unique_ptr<engine>> engines;
  std::vector<store*> live;
  std::vector<std::string> names = std::vector<std::string>(count);
  four_shards() {
    budget.shards = count;
    for (std::size_t i = 0; i < count; ++i) {
      engines.push_back(std::make_unique<engine>(1, retention{}, 10'000, 10'000, &budget, i));
      live.push_back(&engines.back()->data());
    }
    for (int k = 0; std::any_of(names.begin(), names.end(), [](auto& n) { return n.empty(); });
         ++k) {
      auto name = "g" + std::to_string(k);
      if (auto& slot = names[shard_of(name, count)]; slot.empty()) slot = name;
    }
  }
  /// An update of shard i's namespace.
  void update(std::size_t i, json obj) {
    std::vector<delivery> out;
    engines[i]->handle(json{{"o", "update"}, {"n", names[i]}, {"v", std::move(obj)}}, 1,
                       request_context{7}, out);
    REQUIRE(out.size() == 1);
  }
  /// A copy of `dir` (as a kill -9 would leave it) recovered into four fresh stores.
  static std::vector<std::unique_ptr<store>> recovered_copy(const std::string& dir) {
    const std::string copy = dir + "-copy";
    fs::remove_all(copy);
    fs::copy(dir, copy);
    std::vector<std::unique_ptr<store>> fresh;
    std::vector<store*> again;
    for (std::size_t i = 0; i < count; ++i) {
      fresh.push_back(std::make_unique<store>(1));
      again.push_back(fresh.back().get());
    }
    journal back(copy, server_config::fsync_policy::never, 100ms, 1'000'000);
    back.recover(store_set(again));
    fs::remove_all(copy);
    return fresh;
  }
};

}  // namespace

TEST_SUITE("journal") {
  TEST_CASE("fsync always from four shards' threads at once: every write recovered, in order") {
    // The shards of a server append to one journal from their threads; with fsync always each
    // write is durable before its reply, the syncs shared between the shards that wrote
    // meanwhile (group commit).
    const std::string dir = fresh_dir("group");
    constexpr std::size_t shards = four_shards::count;
    four_shards f;
    auto& engines = f.engines;
    auto& live = f.live;
    auto& names = f.names;
    journal j(dir, server_config::fsync_policy::always, 100ms, 1'000'000);
    j.recover(store_set(live));
    std::vector<std::thread> writers;
    std::atomic<int> refused{0};
    for (std::size_t i = 0; i < shards; ++i) {
      engines[i]->share_journal(j);
      writers.emplace_back([&, i] {
        std::vector<delivery> out;
        for (int n = 1; n <= 150; ++n) {
          out.clear();
          engines[i]->handle(json{{"o", "update"}, {"n", names[i]}, {"v", {{"k", n}}}},
                             static_cast<std::uint64_t>(n), request_context{7}, out);
          if (out.size() != 1 || out[0].message().contains("e")) ++refused;
        }
      });
    }
    for (auto& t : writers) t.join();
    CHECK(refused == 0);
    const auto fresh = four_shards::recovered_copy(dir);
    for (std::size_t i = 0; i < shards; ++i) {
      CAPTURE(names[i]);
      CHECK(state_of(*fresh[i]) == state_of(*live[i]));
      CHECK(fresh[i]->find(names[i])->revision == 150);
    }
    fs::remove_all(dir);
  }

  TEST_CASE("a snapshot of four shards stepped one shard at a time, writes between the steps: "
            "recovered exact") {
    // As the server steps it: each piece under the lock of the shard whose namespaces it
    // reads (snapshot_shard()), the other shards writing meanwhile.
    const std::string dir = fresh_dir("pershard");
    four_shards f;
    journal j(dir, server_config::fsync_policy::never, 100ms, 1'000'000);
    const store_set all(f.live);
    j.recover(all);
    for (std::size_t i = 0; i < four_shards::count; ++i) {
      f.engines[i]->share_journal(j);
      for (int n = 0; n < 15; n += 5) {  // small: one piece could hold every shard's
        json part = json::object();
        for (int k = n; k < n + 5; ++k) part[key(k)] = k;
        f.update(i, part);
      }
    }
    j.begin_snapshot(all);
    // Each piece is given the stores of its own shard only (the others empty): a piece that
    // read another shard's namespace would find it empty, and the recovery below would differ.
    std::vector<std::unique_ptr<store>> blank;
    for (std::size_t i = 0; i < four_shards::count; ++i) blank.push_back(std::make_unique<store>(1));
    int steps = 0, turn = 0;
    for (;;) {
      const auto at = j.snapshot_shard(all);
      std::vector<store*> visible;
      for (std::size_t i = 0; i < four_shards::count; ++i)
        visible.push_back(at && *at == i ? f.live[i] : blank[i].get());
      const auto progress = j.snapshot_step(store_set(visible), at ? *at : journal::no_shard);
      if (progress == journal::snapshot_progress::idle) break;
      if (progress == journal::snapshot_progress::syncing) std::this_thread::sleep_for(1ms);
      // Another shard writes between the pieces.
      const std::size_t other = static_cast<std::size_t>(turn++) % four_shards::count;
      f.update(other, json{{"after", turn}});
      REQUIRE(++steps < 10'000);
    }
    CHECK(steps >= 4);  // a piece per shard at least
    const auto fresh = four_shards::recovered_copy(dir);
    for (std::size_t i = 0; i < four_shards::count; ++i) {
      CAPTURE(i);
      CHECK(state_of(*fresh[i]) == state_of(*f.live[i]));
    }
    fs::remove_all(dir);
  }

  TEST_CASE_FIXTURE(fixture, "a snapshot in steps with writes between them; a kill -9 at any step recovers exactly") {
    const auto dir = fresh_dir("steps");
    e.attach(journal_on(dir, 4));
    bool begun = false;
    e.on_snapshot_begun([&] { begun = true; });
    json big = json::object();
    for (int i = 0; i < 5000; ++i) big[key(i)] = i;
    update("a", big);
    update("b", {{"x", 1}});
    write({{"o", "set"}, {"n", "a"}, {"k", key(10)}, {"v", "ten"}});
    CHECK_FALSE(begun);
    write({{"o", "del"}, {"n", "a"}, {"k", key(11)}});  // the 4th logged write: a snapshot begins
    REQUIRE(begun);
    CHECK(fs::exists(dir + "/log.old"));
    CHECK(fs::exists(dir + "/snapshot.tmp"));
    CHECK(fs::file_size(dir + "/log") == 0);
    CHECK(recovered_copy(dir) == state_of(e.data()));

    int steps = 0;
    for (auto p = e.snapshot_step(); p != journal::snapshot_progress::idle; p = e.snapshot_step()) {
      REQUIRE(++steps < 10'000);
      if (p == journal::snapshot_progress::syncing) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      // Writes behind and ahead of the keys written so far, a key removed, a new namespace.
      const int i = steps * 700;
      update("a", {{key(i), "behind"}, {key(4999 - i), "ahead"}, {key(9000 + steps), steps}});
      write({{"o", "del"}, {"n", "a"}, {"k", key(i + 1)}});
      write({{"o", "del"}, {"n", "a"}, {"k", key(4998 - i)}});
      write({{"o", "set"}, {"n", "c" + std::to_string(steps)}, {"k", "y"}, {"v", steps}});
      INFO("after step " << steps);
      CHECK(recovered_copy(dir) == state_of(e.data()));
    }
    CHECK(steps >= 5);  // 5000 keys in pieces of at most 1000
    CHECK(e.take_journal_notes().empty());
    CHECK(fs::exists(dir + "/snapshot"));
    CHECK_FALSE(fs::exists(dir + "/snapshot.tmp"));
    CHECK_FALSE(fs::exists(dir + "/log.old"));
    const json expected = state_of(e.data());
    CHECK(recovered_copy(dir) == expected);

    // Only the snapshot: every record after it is gone from the log (it holds them).
    fs::resize_file(dir + "/log", 0);
    store restored(1);
    journal j(dir, server_config::fsync_policy::never, 100ms, 1'000'000);
    j.recover(restored);
    const json only_snapshot = state_of(restored);
    CHECK(only_snapshot["b"] == expected["b"]);
    CHECK(only_snapshot["a"]["rev"] == 3);  // the revision frozen when it began
    CHECK(only_snapshot["a"]["data"][key(10)] == "ten");
    CHECK(!only_snapshot["a"]["data"].contains(key(11)));
  }

  TEST_CASE_FIXTURE(fixture, "history records of every size around a step's bound, in pieces: recovered whole") {
    const auto dir = fresh_dir("records");
    e.attach(journal_on(dir, 1'000'000));
    // Updates of 1 to 700 keys, so that a record's head and changes fall at every position of
    // a step (256 keys or changes a step).
    // The first, of 254 keys: its head and changes fill a step but one, the next record's head
    // fills it (its changes then start the next step).
    int n = 0;
    std::vector<int> sizes = {254, 10, 255, 3};
    for (int size = 1; size <= 700; size += (size < 260 ? 1 : 37)) sizes.push_back(size);
    for (const int size : sizes) {
      json obj = json::object();
      for (int i = 0; i < size; ++i) obj[key(n++ % 3000)] = std::string(static_cast<std::size_t>(size % 50), 'v');
      update("h", obj);
    }
    write({{"o", "del"}, {"n", "h"}, {"k", key(0)}});
    const json before = state_of(e.data());
    const std::string other = dir + "-other";
    fs::remove_all(other);
    fs::copy(dir, other);
    {
      store s(1);
      journal j(other, server_config::fsync_policy::never, 100ms, 1'000'000);
      j.recover(s);  // from the log
      REQUIRE(state_of(s) == before);
      j.snapshot(s);  // a whole snapshot, in steps, synchronously
      CHECK(j.take_notes().empty());
    }
    fs::resize_file(other + "/log", 0);  // only the snapshot now
    CHECK(recovered_copy(other) == before);
    {
      // Records read back in pieces count all their changes against the history's limits.
      store s(1);
      journal j(other, server_config::fsync_policy::never, 100ms, 1'000'000);
      j.recover(s);
      const auto live = static_cast<double>(e.data().history_bytes());
      CHECK(static_cast<double>(s.history_bytes()) > 0.8 * live);
      CHECK(static_cast<double>(s.history_bytes()) < 1.2 * live);
      CHECK(s.history_records() == e.data().history_records());
    }
    fs::remove_all(other);
  }

  TEST_CASE_FIXTURE(fixture, "killed after the snapshot's rename, before log.old is removed: exact") {
    const auto dir = fresh_dir("rename");
    e.attach(journal_on(dir, 2));
    update("a", {{"p", 1}, {"q", 2}});
    update("a", {{"p", 3}});  // begins a snapshot (revision 2)
    std::ifstream in(dir + "/log.old", std::ios::binary);
    const std::string old_log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(!old_log.empty());
    update("a", {{"r", 4}});
    e.finish_snapshot();
    REQUIRE_FALSE(fs::exists(dir + "/log.old"));
    std::ofstream(dir + "/log.old", std::ios::binary) << old_log;
    CHECK(recovered_copy(dir) == state_of(e.data()));
    // The next snapshot takes the log as it is (log.old stays until it is durable) and ends it.
    update("a", {{"s", 5}});  // the 2nd write since: begins one
    e.finish_snapshot();
    CHECK_FALSE(fs::exists(dir + "/log.old"));
    CHECK(recovered_copy(dir) == state_of(e.data()));
  }

  TEST_CASE_FIXTURE(fixture, "a snapshot that cannot be written: a note, the log keeps everything, the next one works") {
    const auto dir = fresh_dir("fails");
    e.attach(journal_on(dir, 2));
    fs::create_directory(dir + "/snapshot.tmp");  // open() for writing fails: EISDIR
    update("a", {{"p", 1}});
    update("a", {{"q", 2}});
    const auto notes = e.take_journal_notes();
    REQUIRE(notes.size() == 1);
    CHECK(notes[0].find("could not begin a snapshot") != std::string::npos);
    CHECK(e.snapshot_step() == journal::snapshot_progress::idle);
    CHECK(recovered_copy(dir) == state_of(e.data()));
    fs::remove(dir + "/snapshot.tmp");
    update("a", {{"r", 3}});
    CHECK(e.take_journal_notes().empty());  // not tried again at every write
    update("a", {{"s", 4}});  // snapshot_every more: begins one
    e.finish_snapshot();
    CHECK(e.take_journal_notes().empty());
    CHECK(fs::exists(dir + "/snapshot"));
    CHECK(recovered_copy(dir) == state_of(e.data()));
  }

  TEST_CASE_FIXTURE(fixture, "the interval policy's fsync that fails: one note per failing spell, none while it works") {
    // The log is /dev/null, whose fdatasync fails (EINVAL) while writes succeed.
    const auto dir = fresh_dir("sync-fails");
    fs::create_directories(dir);
    fs::create_symlink("/dev/null", dir + "/log");
    e.attach(std::make_unique<journal>(dir, server_config::fsync_policy::interval, 100ms,
                                       1'000'000));
    update("a", {{"p", 1}});
    e.sync();
    auto notes = e.take_journal_notes();
    REQUIRE(notes.size() == 1);
    CHECK(notes[0].find("an fsync of the log failed") != std::string::npos);
    CHECK(notes[0].find("Invalid argument") != std::string::npos);
    update("a", {{"q", 2}});
    e.sync();
    CHECK(e.take_journal_notes().empty());  // the same spell: said once
    CHECK(e.data().find("a") != nullptr);   // the writes themselves were served
    fs::remove_all(dir);
  }

  TEST_CASE_FIXTURE(fixture, "the interval policy's fsync that works says nothing") {
    const auto dir = fresh_dir("sync-works");
    e.attach(std::make_unique<journal>(dir, server_config::fsync_policy::interval, 100ms,
                                       1'000'000));
    update("a", {{"p", 1}});
    e.sync();
    CHECK(e.take_journal_notes().empty());
    CHECK(recovered_copy(dir) == state_of(e.data()));
    fs::remove_all(dir);
  }

  TEST_CASE("a format 2 snapshot (one MessagePack map) is still read") {
    const auto dir = fresh_dir("format2");
    fs::create_directories(dir);
    const json record = {{"rv", 2}, {"t", 0}, {"c", 1}, {"h", 0}, {"id", false},
                         {"ch", json::array({{{"k", "b"}, {"a", 2}}})}};
    const json snap = {{"format", 2},
                       {"namespaces",
                        {{"t", {{"rev", 2},
                                {"data", {{"a", 1}, {"b", 2}}},
                                {"mod", {{"a", 1}, {"b", 2}}},
                                {"history", json::array({record})}}}}}};
    std::string payload;
    json::to_msgpack(snap, nlohmann::detail::output_adapter<char>(payload));
    boost::crc_32_type crc;
    crc.process_bytes(payload.data(), payload.size());
    std::string bytes = "ZPROCSNP";
    const auto put = [&](std::uint64_t v, int n) {
      for (int i = n - 1; i >= 0; --i) bytes.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    };
    put(2, 4);
    put(crc.checksum(), 4);
    put(payload.size(), 8);
    bytes += payload;
    std::ofstream(dir + "/snapshot", std::ios::binary) << bytes;
    store s(1);
    journal j(dir, server_config::fsync_policy::never, 100ms, 1'000'000);
    j.recover(s);
    const namespace_state* ns = s.find("t");
    REQUIRE(ns);
    CHECK(ns->data == json({{"a", 1}, {"b", 2}}));
    CHECK(ns->revision == 2);
    CHECK(ns->modified_at("b") == 2);
    CHECK(ns->hist.oldest() == 2);
  }
}
