// The time machine: history(), at(), retention and the compacted error.
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <doctest/doctest.h>

#include <random>

using namespace zproc;

TEST_SUITE("time_machine") {
  TEST_CASE("at(revision) equals the state recorded at that revision") {
    test::server_process srv;
    client c;
    c.connect(srv.ipc());
    state st(c, "tm");
    std::vector<json> recorded{json::object()};  // revision 0: empty
    std::mt19937 rng(42);
    for (int i = 0; i < 300; ++i) {
      const std::string key = "k" + std::to_string(rng() % 20);
      switch (rng() % 6) {
        case 0: st.update({{key, i}, {"u", i}}); break;
        case 1: st.pop(key, json(nullptr)); break;  // may write nothing (no revision)
        case 2:
          if (rng() % 10 == 0) st.clear(); else st.set(key, {{"nested", i}});
          break;
        case 3: st.setdefault(key, i); break;
        case 4: st.replace({{key, i}, {"other", "x"}}); break;
        default: st.set(key, i);
      }
      const auto rev = st.revision();
      recorded.resize(rev + 1, json());
      recorded[rev] = st.copy();
    }
    const auto newest = st.revision();
    for (std::uint64_t r = 0; r <= newest; ++r) {
      if (recorded[r].is_null()) continue;  // a revision skipped by a read-only pop
      CAPTURE(r);
      CHECK(st.at(r) == recorded[r]);
    }
    CHECK_THROWS_AS(st.at(newest + 1), zproc::error);
  }

  TEST_CASE("history(from, to) returns the update records") {
    test::server_process srv;
    client c;
    c.connect(srv.tcp());
    state st(c, "h");
    st.set("a", 1);
    st.set("a", 2);
    st.erase("a");
    st.update({{"b", true}, {"c", nullptr}});
    auto all = st.history();
    REQUIRE(all.size() == 4);
    CHECK(all[0].revision == 1);
    CHECK(all[0].client_id == c.id());
    CHECK(all[0].changes == std::vector<key_change>{{"a", std::nullopt, 1}});
    CHECK(all[1].changes == std::vector<key_change>{{"a", 1, 2}});
    CHECK(all[2].changes == std::vector<key_change>{{"a", 2, std::nullopt}});
    CHECK(all[3].changes.size() == 2);
    CHECK(all[0].time <= all[3].time);
    auto middle = st.history(2, 3);
    REQUIRE(middle.size() == 2);
    CHECK(middle[0].revision == 2);
    CHECK(middle[1].revision == 3);
    CHECK(st.history(2, {}, 1).size() == 1);
    CHECK(st.history(5).empty());
  }

  TEST_CASE("retention: old revisions are compacted, with a clear error") {
    server_config cfg;
    cfg.history.max_records = 10;
    server_thread srv(cfg);
    client c;
    c.connect(srv.address());
    state st(c, "small");
    for (int i = 1; i <= 50; ++i) st.set("n", i);
    auto kept = st.history();
    REQUIRE(kept.size() == 10);
    CHECK(kept.front().revision == 41);
    CHECK(st.at(40)["n"] == 40);  // undoing the 10 kept records reaches back to 40
    try {
      st.at(39);
      FAIL("no error");
    } catch (const zproc::error& e) {
      CHECK(e.code() == server_errc::compacted);
      CHECK(e.diagnostics().find("oldest revision to start from is 40") != std::string::npos);
    }
    CHECK_THROWS_AS(st.history(5), zproc::error);
    try {
      auto w = st.when_change({}, {.start = 5});  // a blocking watcher fails when created
      FAIL("no error");
    } catch (const zproc::error& e) {
      CHECK(e.code() == server_errc::compacted);
    }
    auto from_oldest = st.when_change_raw({}, {.start = 0, .count = 1, .include_own = true});
    CHECK(from_oldest.next()->revision == 41);
  }

  TEST_CASE("a watcher that never reads does not grow the server's memory: it is compacted") {
    server_config cfg;
    cfg.history.max_records = 100;
    server_thread srv(cfg);
    client c;
    c.connect(srv.address());
    state st(c, "slow");
    auto w = st.when_change_raw({}, {.include_own = true});
    for (int i = 0; i < 1000; ++i) st.set("n", i);
    // The watcher's first batch was taken before it fell behind; the rest was compacted.
    std::size_t seen = 0;
    try {
      while (w.next()) ++seen;
    } catch (const zproc::error& e) {
      CHECK(e.code() == server_errc::compacted);
    }
    CHECK(seen < 1000);
  }
}
