// History and watch matching without sockets.
#include "server/history.hpp"
#include "server/watch.hpp"

#include <doctest/doctest.h>

using namespace zproc::server_detail;
using nlohmann::json;

namespace {
record_ptr rec(std::uint64_t rev, std::size_t bytes = 10) {
  auto r = std::make_shared<update_record>();
  r->revision = rev;
  r->bytes = bytes;
  r->changes.push_back({"k", std::nullopt, json(rev)});
  return r;
}
}  // namespace

TEST_SUITE("history") {
  TEST_CASE("retention by count and by bytes keeps the newest") {
    history h({.max_records = 3, .max_bytes = 1000});
    CHECK(h.oldest() == 1);
    CHECK(h.newest() == 0);
    CHECK(h.covers_after(0));
    for (std::uint64_t r = 1; r <= 5; ++r) h.append(rec(r));
    CHECK(h.size() == 3);
    CHECK(h.oldest() == 3);
    CHECK(h.newest() == 5);
    CHECK(h.covers_after(2));
    CHECK_FALSE(h.covers_after(1));
    CHECK(h.find(2) == nullptr);
    CHECK((*h.find(4))->revision == 4);

    history by_bytes({.max_records = 100, .max_bytes = 25});
    for (std::uint64_t r = 1; r <= 5; ++r) by_bytes.append(rec(r));
    CHECK(by_bytes.size() == 2);
    CHECK(by_bytes.bytes() <= 25);
    history huge({.max_records = 100, .max_bytes = 5});
    huge.append(rec(1, 1000));
    CHECK(huge.size() == 1);  // the newest is always kept
    CHECK_THROWS(huge.append(rec(3)));  // revisions are consecutive
  }

  TEST_CASE("a record round-trips through JSON") {
    update_record r;
    r.revision = 7;
    r.time_us = 123;
    r.client_id = 2;
    r.handle = 3;
    r.changes = {{"a", json(1), std::nullopt}, {"b", std::nullopt, json("x")}};
    const auto back = record_from_json(to_json(r));
    CHECK(back.revision == 7);
    CHECK(back.changes.size() == 2);
    CHECK_FALSE(back.changes[0].after.has_value());
    CHECK(back.changes[1].after == json("x"));
  }

  TEST_CASE("watch specs match by key, exclusion, identity, predicate") {
    update_record r;
    r.revision = 1;
    r.client_id = 5;
    r.handle = 1;
    r.changes = {{"a", std::nullopt, json(3)}};
    watch_spec any;
    CHECK(any.matches(r));
    watch_spec own{.client_id = 5, .handle = 1};
    CHECK_FALSE(own.matches(r));
    own.include_own = true;
    CHECK(own.matches(r));
    watch_spec keys{.keys = {"b"}};
    CHECK_FALSE(keys.matches(r));
    keys.exclude = true;
    CHECK(keys.matches(r));
    watch_spec eq{.pred = predicate{predicate::kind::equal, "a", json(3)}};
    CHECK(eq.matches(r));
    eq.pred->value = 4;
    CHECK_FALSE(eq.matches(r));
    r.identical = true;
    CHECK_FALSE(any.matches(r));
    any.identical_okay = true;
    CHECK(any.matches(r));
  }

  TEST_CASE("predicates on present, null and absent values") {
    using k = predicate::kind;
    const std::optional<json> absent;
    const std::optional<json> null = json(nullptr);
    const std::optional<json> zero = json(0);
    const std::optional<json> text = json("x");
    CHECK(predicate{k::none, "", {}}.holds(absent));
    CHECK(predicate{k::none, "", {}}.holds(null));
    CHECK_FALSE(predicate{k::none, "", {}}.holds(zero));
    CHECK(predicate{k::falsy, "", {}}.holds(zero));
    CHECK(predicate{k::truthy, "", {}}.holds(text));
    CHECK_FALSE(predicate{k::available, "", {}}.holds(absent));
    CHECK(predicate{k::available, "", {}}.holds(null));
    CHECK(predicate{k::not_equal, "", json(1)}.holds(absent));
  }
}
