// The server's state logic without sockets: every operation, revisions, and bad requests.
#include "server/store.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace zproc;
using namespace zproc::server_detail;
using nlohmann::json;

namespace {

struct fixture {
  store s{4242};
  request_context ctx{1};

  outcome run(json req) {
    if (!req.contains("n")) req["n"] = "ns";
    return s.execute(req, ctx);
  }
  json ok(json req) {
    auto o = run(std::move(req));
    INFO(o.message);
    REQUIRE_FALSE(o.error);
    return o.result;
  }
  std::uint64_t rev() { return ok({{"o", "revision"}}).get<std::uint64_t>(); }
};

}  // namespace

TEST_SUITE("store") {
  TEST_CASE_FIXTURE(fixture, "set, get, contains, size, del") {
    CHECK(rev() == 0);
    CHECK(ok({{"o", "set"}, {"k", "a"}, {"v", 1}}) == 1);  // writes answer the new revision
    CHECK(ok({{"o", "set"}, {"k", "b"}, {"v", {{"x", true}}}}) == 2);
    CHECK(ok({{"o", "get"}, {"k", "a"}}) == 1);
    CHECK(ok({{"o", "get"}, {"k", "b"}})["x"] == true);
    CHECK(ok({{"o", "contains"}, {"k", "a"}}) == true);
    CHECK(ok({{"o", "contains"}, {"k", "zz"}}) == false);
    CHECK(ok({{"o", "size"}}) == 2);
    CHECK(ok({{"o", "del"}, {"k", "a"}}) == 3);
    CHECK(ok({{"o", "size"}}) == 1);
    auto missing = run({{"o", "get"}, {"k", "a"}});
    CHECK(missing.error == server_errc::key_not_found);
    CHECK(missing.message.find("'a'") != std::string::npos);
    CHECK(run({{"o", "del"}, {"k", "a"}}).error == server_errc::key_not_found);
    CHECK(ok({{"o", "get"}, {"k", "a"}, {"d", "dflt"}}) == "dflt");
    CHECK(rev() == 3);  // failed writes and reads change nothing
  }

  TEST_CASE_FIXTURE(fixture, "each present key's last write is kept (modified), one key or several") {
    const auto mods = [&] {
      const namespace_state* ns = s.find("ns");
      REQUIRE(ns != nullptr);
      return std::map<std::string, std::uint64_t>(ns->modified.begin(), ns->modified.end());
    };
    using m = std::map<std::string, std::uint64_t>;
    ok({{"o", "set"}, {"k", "a"}, {"v", 1}});                        // 1: new key
    ok({{"o", "set"}, {"k", "b"}, {"v", 2}});                        // 2
    ok({{"o", "set"}, {"k", "a"}, {"v", 3}});                        // 3: a key already there
    CHECK(mods() == m{{"a", 3}, {"b", 2}});
    ok({{"o", "del"}, {"k", "a"}});                                  // 4: gone
    CHECK(mods() == m{{"b", 2}});
    ok({{"o", "incr"}, {"k", "a"}, {"v", 1}});                       // 5: back
    ok({{"o", "update"}, {"v", {{"b", 5}, {"c", 6}}}});              // 6: several keys
    CHECK(mods() == m{{"a", 5}, {"b", 6}, {"c", 6}});
    ok({{"o", "pop"}, {"k", "c"}});                                  // 7
    ok({{"o", "set"}, {"k", "b"}, {"v", 5}});                        // 8: the same value
    CHECK(mods() == m{{"a", 5}, {"b", 8}});
    ok({{"o", "clear"}});                                            // 9
    CHECK(mods().empty());
  }

  TEST_CASE_FIXTURE(fixture, "keys, values, items, copy in key order") {
    ok({{"o", "update"}, {"v", {{"b", 2}, {"a", 1}, {"c", 3}}}});
    CHECK(rev() == 1);  // update is one write
    CHECK(ok({{"o", "keys"}}) == json({"a", "b", "c"}));
    CHECK(ok({{"o", "values"}}) == json({1, 2, 3}));
    CHECK(ok({{"o", "items"}}) ==
          json::array({json::array({"a", 1}), json::array({"b", 2}), json::array({"c", 3})}));
    CHECK(ok({{"o", "copy"}}) == json({{"a", 1}, {"b", 2}, {"c", 3}}));
  }

  TEST_CASE_FIXTURE(fixture, "pop, popitem, setdefault, clear, replace") {
    ok({{"o", "update"}, {"v", {{"a", 1}, {"b", 2}}}});
    CHECK(ok({{"o", "pop"}, {"k", "a"}}) == 1);
    CHECK(rev() == 2);
    CHECK(run({{"o", "pop"}, {"k", "a"}}).error == server_errc::key_not_found);
    CHECK(ok({{"o", "pop"}, {"k", "a"}, {"d", 0}}) == 0);
    CHECK(rev() == 2);  // pop of an absent key with a default writes nothing
    CHECK(ok({{"o", "setdefault"}, {"k", "s"}, {"d", "x"}}) == "x");
    CHECK(ok({{"o", "setdefault"}, {"k", "s"}, {"d", "y"}}) == "x");
    CHECK(rev() == 3);  // only the first setdefault wrote
    CHECK(ok({{"o", "popitem"}}) == json({"s", "x"}));  // last key in order
    CHECK(ok({{"o", "popitem"}}) == json({"b", 2}));
    CHECK(run({{"o", "popitem"}}).error == server_errc::empty_namespace);
    ok({{"o", "replace"}, {"v", {{"only", 1}}}});
    CHECK(ok({{"o", "copy"}}) == json({{"only", 1}}));
    const auto before = rev();
    CHECK(ok({{"o", "clear"}}) == before + 1);
    CHECK(ok({{"o", "size"}}) == 0);
  }

  TEST_CASE_FIXTURE(fixture, "namespaces are separate; reads do not create them") {
    ok({{"o", "set"}, {"n", "one"}, {"k", "k"}, {"v", 1}});
    ok({{"o", "set"}, {"n", "two"}, {"k", "k"}, {"v", 2}});
    CHECK(ok({{"o", "get"}, {"n", "one"}, {"k", "k"}}) == 1);
    CHECK(ok({{"o", "get"}, {"n", "two"}, {"k", "k"}}) == 2);
    CHECK(ok({{"o", "revision"}, {"n", "two"}}) == 1);
    CHECK(s.namespace_count() == 2);
    CHECK(ok({{"o", "size"}, {"n", "nobody"}}) == 0);
    CHECK(run({{"o", "get"}, {"n", "nobody"}, {"k", "x"}}).error == server_errc::key_not_found);
    CHECK(s.namespace_count() == 2);
    CHECK(s.find("nobody") == nullptr);
  }

  TEST_CASE_FIXTURE(fixture, "bad requests are errors and change nothing") {
    ok({{"o", "set"}, {"k", "a"}, {"v", 1}});
    const auto r = rev();
    CHECK(run({{"o", "set"}, {"k", 5}, {"v", 1}}).error == server_errc::bad_request);
    CHECK(run({{"o", "set"}, {"k", "b"}}).error == server_errc::bad_request);  // no value
    CHECK(run({{"o", "get"}}).error == server_errc::bad_request);              // no key
    CHECK(run({{"o", "update"}, {"v", {1, 2}}}).error == server_errc::wrong_type);
    CHECK(run({{"o", "replace"}, {"v", "text"}}).error == server_errc::wrong_type);
    CHECK(run({{"o", "fly"}}).error == server_errc::unknown_op);
    CHECK(run({{"o", 3}}).error == server_errc::bad_request);
    CHECK(s.execute(json::array({1, 2}), ctx).error == server_errc::bad_request);
    CHECK(s.execute(json{{"o", "get"}, {"n", 1}, {"k", "a"}}, ctx).error ==
          server_errc::bad_request);
    CHECK(rev() == r);
    CHECK(ok({{"o", "copy"}}) == json({{"a", 1}}));  // "b" was not half-written
  }

  TEST_CASE_FIXTURE(fixture, "increment, compare_and_set, append") {
    CHECK(ok({{"o", "incr"}, {"k", "n"}}) == 1);
    CHECK(ok({{"o", "incr"}, {"k", "n"}, {"v", 5}}) == 6);
    CHECK(ok({{"o", "incr"}, {"k", "n"}, {"v", 0.5}}) == 6.5);
    ok({{"o", "set"}, {"k", "s"}, {"v", "text"}});
    CHECK(run({{"o", "incr"}, {"k", "s"}}).error == server_errc::wrong_type);
    CHECK(run({{"o", "incr"}, {"k", "n"}, {"v", "x"}}).error == server_errc::wrong_type);
    CHECK(ok({{"o", "cas"}, {"k", "c"}, {"absent", true}, {"v", 1}}) == true);
    CHECK(ok({{"o", "cas"}, {"k", "c"}, {"absent", true}, {"v", 2}}) == false);
    CHECK(ok({{"o", "cas"}, {"k", "c"}, {"e", 1}, {"v", 3}}) == true);
    CHECK(ok({{"o", "cas"}, {"k", "c"}, {"e", 1}, {"v", 4}}) == false);
    CHECK(ok({{"o", "get"}, {"k", "c"}}) == 3);
    CHECK(ok({{"o", "append"}, {"k", "l"}, {"v", "a"}}) == 1);
    CHECK(ok({{"o", "append"}, {"k", "l"}, {"v", "b"}}) == 2);
    CHECK(ok({{"o", "get"}, {"k", "l"}}) == json({"a", "b"}));
    CHECK(run({{"o", "append"}, {"k", "s"}, {"v", 1}}).error == server_errc::wrong_type);
  }

  TEST_CASE_FIXTURE(fixture, "transactions: compares, one revision, all or nothing") {
    ok({{"o", "set"}, {"k", "a"}, {"v", 1}});
    const auto rev_a = rev();
    json t = {{"o", "txn"},
              {"if", {{{"k", "a"}, {"t", "eq"}, {"v", 1}}, {{"k", "b"}, {"t", "absent"}},
                      {{"k", "a"}, {"t", "mod_eq"}, {"v", rev_a}}}},
              {"then", {{{"o", "set"}, {"k", "b"}, {"v", 2}}, {{"o", "incr"}, {"k", "a"}}}},
              {"else", {{{"o", "get"}, {"k", "a"}}}}};
    auto r = ok(t);
    CHECK(r["ok"] == true);
    CHECK(r["results"] == json::array({nullptr, 2}));
    CHECK(rev() == rev_a + 1);  // both writes, one revision
    r = ok(t);  // now b exists: the else branch runs
    CHECK(r["ok"] == false);
    CHECK(r["results"] == json::array({2}));
    CHECK(rev() == rev_a + 1);
    // A failing operation undoes the ones before it.
    json bad = {{"o", "txn"},
                {"then", {{{"o", "set"}, {"k", "x"}, {"v", 1}}, {{"o", "del"}, {"k", "nope"}}}}};
    CHECK(run(bad).error == server_errc::key_not_found);
    CHECK(ok({{"o", "contains"}, {"k", "x"}}) == false);
    CHECK(rev() == rev_a + 1);
    CHECK(run({{"o", "txn"}, {"then", {{{"o", "txn"}}}}}).error == server_errc::bad_request);
  }

  TEST_CASE_FIXTURE(fixture, "atomic read and commit: conflicts on the revision or the keys read") {
    ok({{"o", "set"}, {"k", "a"}, {"v", 1}});
    auto snap = ok({{"o", "read"}});
    const auto base = snap["rev"].get<std::uint64_t>();
    CHECK(ok({{"o", "commit"}, {"base", base}, {"set", {{"a", 2}}}, {"del", json::array()}}) ==
          base + 1);
    CHECK(run({{"o", "commit"}, {"base", base}, {"set", {{"a", 3}}}}).error ==
          server_errc::conflict);
    auto keyed = ok({{"o", "read"}, {"keys", {"a", "z"}}});
    CHECK(keyed["data"] == json({{"a", 2}}));
    CHECK(keyed["mods"]["z"] == 0);
    ok({{"o", "set"}, {"k", "other"}, {"v", 1}});  // an unrelated key: no conflict
    CHECK_FALSE(run({{"o", "commit"}, {"mods", keyed["mods"]}, {"set", {{"a", 5}}}}).error);
    CHECK(run({{"o", "commit"}, {"mods", keyed["mods"]}, {"set", {{"a", 6}}}}).error ==
          server_errc::conflict);  // a changed since
    CHECK(ok({{"o", "get"}, {"k", "a"}}) == 5);
  }

  TEST_CASE_FIXTURE(fixture, "keys and items page by page: after, prefix, limit, next") {
    json all = json::object();
    for (int i = 0; i < 100; ++i) all["k" + std::to_string(1000 + i)] = i;
    all["a"] = "first";
    all["z"] = "last";
    ok({{"o", "update"}, {"v", all}});

    // No paging field: the old replies, unchanged.
    CHECK(ok({{"o", "keys"}}).size() == 102);
    CHECK(ok({{"o", "items"}}).is_array());

    // Walk every key, 7 at a time: all of them, in order, once; the last page says so.
    std::vector<std::string> seen;
    json after = nullptr;
    int pages = 0;
    for (;; ++pages) {
      REQUIRE(pages < 100);
      auto page = ok({{"o", "keys"}, {"after", after}, {"limit", 7}});
      REQUIRE(page["keys"].is_array());
      CHECK(page["keys"].size() <= 7);
      for (const auto& k : page["keys"]) seen.push_back(k.get<std::string>());
      if (page["next"].is_null()) break;
      CHECK(page["next"] == page["keys"].back());  // the next page starts after the last key
      after = page["next"];
    }
    CHECK(pages == 14);  // 102 = 14 * 7 + 4: the 15th page is the last, no empty one after it
    REQUIRE(seen.size() == 102);
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    CHECK(seen.front() == "a");
    CHECK(seen.back() == "z");

    // A page that ends exactly at the last key says there is no more.
    auto end = ok({{"o", "keys"}, {"after", "k1099"}, {"limit", 1}});
    CHECK(end["keys"] == json::array({"z"}));
    CHECK(end["next"].is_null());
    // 'after' past the end, or between keys.
    CHECK(ok({{"o", "keys"}, {"after", "zz"}}) == json({{"keys", json::array()}, {"next", nullptr}}));
    CHECK(ok({{"o", "keys"}, {"after", "k1098x"}, {"limit", 5}})["keys"] == json({"k1099", "z"}));

    // prefix: only its keys, paged too; with 'after' before, inside and after its range.
    auto pre = ok({{"o", "keys"}, {"prefix", "k105"}});
    CHECK(pre["keys"] == json({"k1050", "k1051", "k1052", "k1053", "k1054", "k1055", "k1056",
                                "k1057", "k1058", "k1059"}));
    CHECK(pre["next"].is_null());
    auto first = ok({{"o", "keys"}, {"prefix", "k105"}, {"limit", 4}});
    CHECK(first["keys"] == json({"k1050", "k1051", "k1052", "k1053"}));
    CHECK(first["next"] == "k1053");
    CHECK(ok({{"o", "keys"}, {"prefix", "k105"}, {"after", "k1058"}})["keys"] == json::array({"k1059"}));
    CHECK(ok({{"o", "keys"}, {"prefix", "k105"}, {"after", "a"}})["keys"].size() == 10);
    CHECK(ok({{"o", "keys"}, {"prefix", "k105"}, {"after", "k1059"}}) ==
          json({{"keys", json::array()}, {"next", nullptr}}));
    CHECK(ok({{"o", "keys"}, {"prefix", "nothing"}})["keys"].empty());
    CHECK(ok({{"o", "keys"}, {"prefix", "k"}, {"limit", 100'000}})["keys"].size() == 100);

    // items: the same walk with the values.
    auto items = ok({{"o", "items"}, {"prefix", "k10"}, {"after", "k1007"}, {"limit", 2}});
    CHECK(items["items"] == json::array({json::array({"k1008", 8}), json::array({"k1009", 9})}));
    CHECK(items["next"] == "k1009");
    auto last = ok({{"o", "items"}, {"after", "k1099"}});
    CHECK(last["items"] == json::array({json::array({"z", "last"})}));
    CHECK(last["next"].is_null());

    // limit is clamped: 0 reads one key; the default is 1000.
    CHECK(ok({{"o", "keys"}, {"limit", 0}})["keys"] == json::array({"a"}));
    CHECK(ok({{"o", "keys"}, {"after", nullptr}})["keys"].size() == 102);

    // A namespace nobody wrote: an empty last page, and it is not created.
    CHECK(ok({{"o", "keys"}, {"n", "nobody"}, {"limit", 5}}) ==
          json({{"keys", json::array()}, {"next", nullptr}}));
    CHECK(s.find("nobody") == nullptr);
  }

  TEST_CASE_FIXTURE(fixture, "a page stops at its byte budget, with at least one entry") {
    const std::string big(1000, 'x');
    for (int i = 0; i < 10; ++i) ok({{"o", "set"}, {"k", "b" + std::to_string(i)}, {"v", big}});
    // 1000-byte values, a 2500-byte budget: two items per page (a third would exceed it).
    json after = nullptr;
    std::vector<std::string> seen;
    for (int pages = 0;; ++pages) {
      REQUIRE(pages < 20);
      auto page = ok({{"o", "items"}, {"after", after}, {"bytes", 2500}});
      CHECK(page["items"].size() == 2);
      CHECK(json::to_msgpack(page["items"]).size() <= 2500);
      for (const auto& it : page["items"]) {
        CHECK(it[1] == big);
        seen.push_back(it[0].get<std::string>());
      }
      if (page["next"].is_null()) break;
      after = page["next"];
    }
    CHECK(seen.size() == 10);
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    // A budget smaller than one item still reads one (else nothing could ever be read).
    auto one = ok({{"o", "items"}, {"bytes", 1}});
    CHECK(one["items"].size() == 1);
    CHECK(one["next"] == "b0");
    CHECK(ok({{"o", "keys"}, {"bytes", 1}})["keys"].size() == 1);
    // Keys count their own bytes: 10 keys of 100 bytes do not fit in 500.
    for (int i = 0; i < 10; ++i) ok({{"o", "set"}, {"k", std::string(100, 'k') + std::to_string(i)}, {"v", 0}});
    auto keys = ok({{"o", "keys"}, {"prefix", "kkk"}, {"bytes", 500}});
    CHECK(keys["keys"].size() == 4);  // 4 * (101 + 5) <= 500 < 5 * 106
    CHECK(keys["next"] == keys["keys"].back());
  }

  TEST_CASE_FIXTURE(fixture, "history pages: from the last revision + 1, within the byte budget") {
    const std::string big(1000, 'x');
    for (int i = 0; i < 10; ++i) ok({{"o", "set"}, {"k", "h"}, {"v", big + std::to_string(i)}});
    std::vector<std::uint64_t> revs;
    std::uint64_t from = 0;
    for (int pages = 0;; ++pages) {
      REQUIRE(pages < 20);
      auto page = ok({{"o", "history"}, {"from", from}, {"bytes", 2500}});
      if (page.empty()) break;
      // A record holds the old and the new value (~2000 bytes): two would exceed the budget.
      CHECK(page.size() == 1);
      for (const auto& r : page) revs.push_back(r["rv"].get<std::uint64_t>());
      from = revs.back() + 1;
    }
    CHECK(revs == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    CHECK(ok({{"o", "history"}, {"from", 1u}, {"bytes", 1}}).size() == 1);  // at least one
    CHECK(ok({{"o", "history"}, {"from", 1u}, {"bytes", 1u << 30}}).size() == 10);  // 4 MiB
    CHECK(ok({{"o", "history"}, {"from", 1u}}).size() == 10);  // no budget: the old reply
  }

  TEST_CASE_FIXTURE(fixture, "bad paging fields are bad requests") {
    ok({{"o", "set"}, {"k", "a"}, {"v", 1}});
    for (const json& req : {json{{"o", "keys"}, {"after", 5}}, json{{"o", "items"}, {"prefix", 1}},
                            json{{"o", "keys"}, {"limit", -1}}, json{{"o", "keys"}, {"limit", "9"}},
                            json{{"o", "items"}, {"bytes", 1.5}},
                            json{{"o", "history"}, {"bytes", "x"}}}) {
      INFO(req.dump());
      auto o = run(req);
      CHECK(o.error == server_errc::bad_request);
      CHECK(o.message.find('\'') != std::string::npos);  // names the field
    }
  }

  TEST_CASE_FIXTURE(fixture, "ping answers the server's pid") {
    CHECK(s.execute(json{{"o", "ping"}}, ctx).result == 4242);
  }
}

TEST_SUITE("store") {
  TEST_CASE("the history budget holds across namespaces: the server's oldest records go first") {
    const std::string value(10'000, 'v');
    store s(1, {.max_records = 1000, .max_bytes = 1u << 20, .max_total_bytes = 200'000});
    const request_context ctx{1};
    for (int round = 0; round < 30; ++round)
      for (const char* ns : {"a", "b", "c"})
        REQUIRE_FALSE(s.execute({{"o", "set"}, {"n", ns}, {"k", "k"}, {"v", value + std::to_string(round)}}, ctx).error);
    CHECK(s.history_bytes() <= 200'000);
    std::size_t kept = 0;
    std::size_t bytes = 0;
    for (const char* ns : {"a", "b", "c"}) {
      const auto& h = s.find(ns)->hist;
      CHECK(h.size() >= 3);  // each namespace keeps its newest records
      CHECK(h.newest() == 30);
      kept += h.size();
      bytes += h.bytes();
    }
    CHECK(kept == s.history_records());
    CHECK(bytes == s.history_bytes());
    // A namespace nobody writes any more loses its records to the others' writes.
    for (int round = 0; round < 30; ++round)
      REQUIRE_FALSE(s.execute({{"o", "set"}, {"n", "a"}, {"k", "k"}, {"v", value + std::to_string(round)}}, ctx).error);
    CHECK(s.find("b")->hist.size() == 0);
    CHECK(s.find("b")->hist.covers_after(30));  // a reader that is up to date goes on
    CHECK(s.history_bytes() <= 200'000);
  }

  TEST_CASE("the stores of two shards share one budget: namespaces counted together; a store "
            "over its share of the history gives back while the server is over") {
    shared_budget budget;
    budget.shards = 2;
    const retention limits{.max_records = 1000, .max_bytes = 1u << 20, .max_total_bytes = 200'000};
    store a(1, limits, 3, &budget), b(1, limits, 3, &budget);
    const request_context ctx{1};
    const std::string value(10'000, 'v');
    const auto set = [&](store& s, const char* ns, int i) {
      return s.execute({{"o", "set"}, {"n", ns}, {"k", "k"}, {"v", value + std::to_string(i)}}, ctx);
    };
    REQUIRE_FALSE(set(a, "a1", 0).error);
    REQUIRE_FALSE(set(a, "a2", 0).error);
    REQUIRE_FALSE(set(b, "b1", 0).error);
    CHECK(set(b, "b2", 0).error == server_errc::limit_reached);  // 3 in all
    CHECK(set(a, "a3", 0).error == server_errc::limit_reached);
    CHECK(budget.namespaces == 3);

    // Store a alone: it may use the whole budget (b holds one record).
    for (int i = 1; i < 40; ++i) REQUIRE_FALSE(set(a, "a1", i).error);
    CHECK(a.history_bytes() <= 200'000);
    CHECK(a.history_bytes() > 150'000);
    CHECK(budget.history_bytes == a.history_bytes() + b.history_bytes());
    // Store b writes: within its share (100,000) it keeps its records although the server is
    // over; past its share it gives back its own.
    for (int i = 1; i < 40; ++i) REQUIRE_FALSE(set(b, "b1", i).error);
    CHECK(b.history_bytes() <= 100'000);
    CHECK(b.history_bytes() > 50'000);
    CHECK(b.find("b1")->hist.newest() == 40);
    // Store a, quiet, gives back at the engine's tick; then as it writes again.
    CHECK(budget.history_bytes > 200'000);
    a.trim_history();
    CHECK(budget.history_bytes <= 200'000);
    CHECK(a.history_bytes() > 0);
    REQUIRE_FALSE(set(a, "a1", 40).error);
    CHECK(a.history_bytes() < 150'000);
    CHECK(budget.history_bytes <= 200'000);
    CHECK(budget.history_bytes == a.history_bytes() + b.history_bytes());
  }

  TEST_CASE("max_namespaces: a write that would create one more is refused; reads create none") {
    store s(1, {}, 2);
    const request_context ctx{1};
    REQUIRE_FALSE(s.execute({{"o", "set"}, {"n", "a"}, {"k", "k"}, {"v", 1}}, ctx).error);
    REQUIRE_FALSE(s.execute({{"o", "set"}, {"n", "b"}, {"k", "k"}, {"v", 1}}, ctx).error);
    const auto o = s.execute({{"o", "set"}, {"n", "c"}, {"k", "k"}, {"v", 1}}, ctx);
    CHECK(o.error == server_errc::limit_reached);
    CHECK(o.message.find("max_namespaces") != std::string::npos);
    CHECK(s.namespace_count() == 2);
    CHECK(s.execute({{"o", "get"}, {"n", "c"}, {"k", "k"}}, ctx).error == server_errc::key_not_found);
    CHECK_FALSE(s.execute({{"o", "set"}, {"n", "a"}, {"k", "k"}, {"v", 2}}, ctx).error);
    CHECK_THROWS(s.open("d"));
    const namespace_state& d = s.restore("d");  // recovery is not limited
    CHECK(&d == s.find("d"));
  }

  TEST_CASE_FIXTURE(fixture, "a key deleted and set again in one transaction keeps its revision") {
    ok({{"o", "set"}, {"k", "a"}, {"v", 1}});
    ok({{"o", "txn"}, {"then", {{{"o", "del"}, {"k", "a"}}, {{"o", "set"}, {"k", "a"}, {"v", 2}},
                                {{"o", "set"}, {"k", "b"}, {"v", 3}}, {{"o", "del"}, {"k", "b"}}}}});
    const auto r = rev();
    const json read = ok({{"o", "read"}, {"keys", {"a", "b"}}});
    CHECK(read["mods"]["a"] == r);
    CHECK(read["mods"]["b"] == 0);  // absent: never modified as far as commits go
    CHECK(s.find("ns")->modified.size() == 1);
  }
}

#include "failing_alloc.hpp"

TEST_SUITE("store") {
  TEST_CASE("a write that runs out of memory at any of its allocations changes nothing: values, "
            "revision, history, modification revisions") {
    namespace fa = zproc::test::failing_alloc;
    if (!fa::available) return;  // (a sanitizer's runtime owns operator new)
    const std::string long_text(100, 'x');
    const json initial{{"k", long_text}, {"arr", {1, 2}}, {"num", 5}, {"other", 1}};
    // (Not replace: it frees the namespace's old object, and nlohmann::json's destructor
    // allocates for a non-empty object or array; an allocation failing there terminates.)
    const std::vector<json> writes = {
        {{"o", "set"}, {"k", "k"}, {"v", std::string(80, 'a')}},
        {{"o", "set"}, {"k", "new key of some length"}, {"v", {1, 2}}},
        {{"o", "update"}, {"v", {{"k", std::string(80, 'b')}, {"new", {1, 2, 3}}}}},
        {{"o", "del"}, {"k", "k"}},
        {{"o", "pop"}, {"k", "k"}},
        {{"o", "popitem"}},
        {{"o", "clear"}},
        {{"o", "incr"}, {"k", "num"}, {"v", 2}},
        {{"o", "append"}, {"k", "arr"}, {"v", std::string(30, 'd')}},
        {{"o", "setdefault"}, {"k", "absent key of some length"}, {"d", std::string(30, 'e')}},
        {{"o", "cas"}, {"k", "num"}, {"e", 5}, {"v", std::string(30, 'f')}},
    };
    for (json req : writes) {
      req["n"] = "ns";
      CAPTURE(req.dump());
      const auto fresh = [&] {
        auto st = std::make_unique<store>(4242);
        for (const auto& [k, v] : initial.items())  // revisions 1..4, in key order
          REQUIRE_FALSE(st->execute({{"o", "set"}, {"n", "ns"}, {"k", k}, {"v", v}}, {1}).error);
        return st;
      };
      auto st = fresh();
      const namespace_state& start = *st->find("ns");
      const std::map<std::string, std::uint64_t> mods(start.modified.begin(), start.modified.end());
      long failures = 0;
      for (long n = 0; n < 1000; ++n) {
        CAPTURE(n);
        fa::fail_after(n);
        outcome o = st->execute(req, request_context{1});
        fa::disarm();
        if (!fa::failed()) {  // every allocation it made succeeded
          CHECK_FALSE(o.error);
          CHECK(st->find("ns")->revision == 5);
          break;
        }
        ++failures;
        // Failed somewhere: refused for lack of memory, with nothing changed.
        REQUIRE(o.error);
        CHECK(o.error == server_errc::out_of_memory);
        CHECK_FALSE(o.committed);
        const namespace_state* ns = st->find("ns");
        REQUIRE(ns != nullptr);
        CHECK(ns->data == initial);
        CHECK(ns->revision == 4);
        CHECK(ns->hist.newest() == 4);
        CHECK(std::map<std::string, std::uint64_t>(ns->modified.begin(), ns->modified.end()) ==
              mods);
      }
      CHECK(failures > 0);
    }
  }

  TEST_CASE("a set read without a json tree that runs out of memory changes nothing") {
    namespace fa = zproc::test::failing_alloc;
    if (!fa::available) return;
    const json initial{{"a", std::string(100, 'x')}, {"b", 1}};
    long failures = 0;
    for (const char* key : {"a", "new key of some length"}) {
      CAPTURE(key);
      for (long n = 0; n < 1000; ++n) {
        CAPTURE(n);
        store s(4242);
        for (const auto& [k, v] : initial.items())
          REQUIRE_FALSE(s.execute({{"o", "set"}, {"n", "ns"}, {"k", k}, {"v", v}}, {1}).error);
        protocol::store_request req;
        req.id = 1;
        req.code = protocol::op::set;
        req.ns = "ns";
        req.key = key;
        req.value = std::string(200, 'v');
        fa::fail_after(n);
        outcome o = s.execute(std::move(req), request_context{1});
        fa::disarm();
        const namespace_state* ns = s.find("ns");
        REQUIRE(ns != nullptr);
        if (!fa::failed()) {
          CHECK_FALSE(o.error);
          CHECK(ns->data[key] == std::string(200, 'v'));
          CHECK(ns->revision == 3);
          break;
        }
        ++failures;
        CHECK(o.error == server_errc::out_of_memory);
        CHECK(ns->data == initial);
        CHECK(ns->revision == 2);
        CHECK(ns->hist.newest() == 2);
      }
    }
    CHECK(failures > 0);
  }
}

