// History and watch matching without sockets.
#include "support/sanitizer.hpp"

#include "server/history.hpp"
#include "server/store.hpp"
#include "server/watch.hpp"

#include <doctest/doctest.h>

#include <malloc.h>

#include <functional>
#include <unordered_set>

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

namespace {
/// Bytes malloc hands out now (small chunks and mmap'ed blocks), glibc's own count.
std::size_t heap_in_use() {
  const struct mallinfo2 m = ::mallinfo2();
  return m.uordblks + m.hblkhd;
}

json map_of_empty_maps(int n) {
  json v = json::object();
  for (int i = 0; i < n; ++i) v["k" + std::to_string(i)] = json::object();
  return v;
}
json array_of_ints(int n) {
  json v = json::array();
  for (int i = 0; i < n; ++i) v.push_back(i);
  return v;
}
json nested_arrays(int depth) {
  json v = json::array();
  for (int i = 0; i < depth; ++i) v = json::array({std::move(v), i});
  return v;
}
json strings(int n, std::size_t length) {
  json v = json::array();
  for (int i = 0; i < n; ++i) v.push_back(std::string(length, static_cast<char>('a' + i % 26)));
  return v;
}
json long_keys(int n) {
  json v = json::object();
  for (int i = 0; i < n; ++i) v[std::string(40, 'k') + std::to_string(i)] = i * 0.5;
  return v;
}
json records_of_maps(int n) {
  json v = json::array();
  for (int i = 0; i < n; ++i)
    v.push_back({{"id", i}, {"name", "item " + std::to_string(i)}, {"tags", {"a", "b"}}, {"ok", true}});
  return v;
}
}  // namespace

TEST_SUITE("history") {
  // AddressSanitizer's allocator is not glibc's malloc.
  TEST_CASE("heap_bytes() is what malloc holds, within 20%, for every shape of value" *
            doctest::skip(zproc::test::under_address_sanitizer)) {
    const std::vector<std::pair<const char*, std::function<json()>>> shapes{
        {"map of 20,000 empty maps", [] { return map_of_empty_maps(20'000); }},
        {"array of 100,000 ints", [] { return array_of_ints(100'000); }},
        {"array nested 250 deep", [] { return nested_arrays(250); }},
        {"10,000 short strings", [] { return strings(10'000, 10); }},
        {"10,000 strings of 100 bytes", [] { return strings(10'000, 100); }},
        {"one string of 4 MiB", [] { return json(std::string(4u << 20, 'x')); }},
        {"5,000 long keys with floats", [] { return long_keys(5'000); }},
        {"5,000 small records", [] { return records_of_maps(5'000); }},
        {"binary of 1 MiB", [] { return json::binary(std::vector<std::uint8_t>(1u << 20, 7)); }},
    };
    for (const auto& shape : shapes) {
      const char* name = shape.first;  // (Clang 14: a structured binding cannot be captured)
      const std::size_t before = heap_in_use();
      json v = shape.second();
      const std::size_t measured = heap_in_use() - before;
      const std::size_t counted = heap_bytes(v);
      INFO(name << ": malloc holds " << measured << " bytes, heap_bytes() says " << counted);
      CHECK(static_cast<double>(counted) >= 0.8 * static_cast<double>(measured));
      CHECK(static_cast<double>(counted) <= 1.2 * static_cast<double>(measured));
    }
  }
}

namespace {
/// A store whose history keeps 20 records, its watchers, and writes of one key by client 2.
struct watched_store {
  store s{1, {.max_records = 20, .max_bytes = 1u << 20}};
  watch_registry w;
  outcome write(const char* key, int v) {
    auto o = s.execute({{"o", "set"}, {"n", "ns"}, {"k", key}, {"v", v}}, request_context{2});
    REQUIRE(o.committed);
    return o;
  }
  /// Sends watch request `req` from client 1: the replies it got at once.
  std::vector<delivery> watch(const json& req) {
    std::vector<delivery> now;
    w.watch(s, watch_registry::request_of(req), 1, now);
    return now;
  }
};
}  // namespace

TEST_SUITE("history") {
  TEST_CASE("a watcher held back by backpressure catches up from where it was, not from where it began") {
    // The history keeps 20 records; the watcher of "x" starts waiting at revision 0, then 100
    // writes of other keys go by, then "x" is written while its client is congested.
    watched_store f;
    auto& s = f.s;
    auto& w = f.w;
    const auto write = [&](const char* key, int v) { return f.write(key, v); };
    write("x", 0);
    CHECK(f.watch({{"i", 5}, {"o", "watch"}, {"n", "ns"}, {"keys", {"x"}}}).empty());
    std::vector<delivery> out;
    const std::unordered_set<std::uint64_t> none, client_1{1};
    for (int i = 0; i < 100; ++i) {
      auto o = write("y", i);
      w.notify(s, "ns", *o.committed, none, out);
    }
    CHECK(out.empty());
    auto o = write("x", 1);
    w.notify(s, "ns", *o.committed, client_1, out);  // congested: held back
    CHECK(out.empty());
    CHECK(w.stalled() == 1);
    CHECK(w.resume(s, 1, 1u << 20, out));
    REQUIRE(out.size() == 1);
    CHECK(out[0].request_id == 5);
    CHECK(out[0].packed != nullptr);  // the update itself, not a `compacted` error
    CHECK(w.stalled() == 0);
    CHECK(w.pending() == 0);
  }
}

TEST_SUITE("history") {
  TEST_CASE("a watcher that asks again just after a write is answered with the record's shared "
            "encoding, as a woken watcher is") {
    watched_store f;
    auto& s = f.s;
    auto& w = f.w;
    const auto write = [&](const char* key, int v) { return f.write(key, v); };
    write("x", 0);  // revision 1
    for (const bool snap : {false, true}) {
      CAPTURE(snap);
      const std::uint64_t before = s.find("ns")->revision;
      // One watcher waits; the next write wakes it.
      const json spec = {{"o", "watch"}, {"n", "ns"}, {"keys", {"x"}}, {"after", before},
                         {"snap", snap}};
      json first = spec;
      first["i"] = 5;
      CHECK(f.watch(first).empty());
      auto o = write("x", snap ? 2 : 1);
      std::vector<delivery> woken;
      w.notify(s, "ns", *o.committed, {}, woken);
      REQUIRE(woken.size() == 1);
      REQUIRE(woken[0].packed != nullptr);
      // Another asks from the same revision after that write: a backlog of exactly that record.
      json second = spec;
      second["i"] = 6;
      auto replies = f.watch(second);
      REQUIRE(replies.size() == 1);
      const delivery* now = &replies[0];
      CHECK(now->request_id == 6);
      CHECK(now->packed == woken[0].packed);  // the same bytes, shared, not re-encoded
      // Read back whole (the head, then the record), it is the reply the json path built.
      const json reply = json::from_msgpack(std::string(now->bytes.view()) + *now->packed);
      CHECK(reply.at("i") == 6);
      CHECK(reply.at("r").at("cursor") == before + 1);
      const json& updates = reply.at("r").at("updates");
      REQUIRE(updates.size() == 1);
      CHECK(updates[0].at("rv") == before + 1);
      CHECK(updates[0].contains("d") == snap);
      CHECK(w.pending() == 0);
    }
  }
}

#include "server/op_error.hpp"

TEST_SUITE("history") {
  TEST_CASE("a watch request read from MessagePack (no json tree) is the one read from json; "
            "what the fast decoder leaves is the json path's to answer or refuse") {
    using zproc::protocol::decode_watch_request;
    using zproc::protocol::watch_request;
    const auto packed = [](const json& j) {
      const auto b = json::to_msgpack(j);
      return std::string(b.begin(), b.end());
    };
    const auto same = [](const watch_request& a, const watch_request& b) {
      return a.id == b.id && a.ns == b.ns && a.handle == b.handle && a.keys == b.keys &&
             a.pred == b.pred && a.max == b.max && a.after == b.after && a.exclude == b.exclude &&
             a.identical == b.identical && a.own == b.own && a.live == b.live && a.snap == b.snap &&
             a.now == b.now && a.base == b.base && a.oldest == b.oldest && a.pin == b.pin &&
             a.stream == b.stream;
    };
    const json base{{"i", 9}, {"o", "watch"}, {"n", "ns"}};
    const std::vector<json> good = {
        base,
        json{{"i", 1}, {"o", "watch"}, {"n", "a"}, {"h", 4}, {"keys", {"x", "y"}}, {"exclude", true},
             {"pred", {{"kind", "equal"}, {"k", "x"}, {"v", {1, {{"z", nullptr}}}}}},
             {"identical", true}, {"own", false}, {"live", true}, {"snap", true}, {"now", true},
             {"base", true}, {"max", 512}, {"after", 77}, {"pin", true}, {"unknown", {1, 2}},
             {"stream", 16}},
        json{{"i", 2}, {"o", "watch"}, {"n", "a"}, {"oldest", true}, {"after", 3}},
        json{{"i", 3}, {"o", "watch"}, {"n", "a"}, {"after", nullptr}, {"max", nullptr},
             {"live", "yes"}, {"h", -1}},  // a flag that is not a boolean: false; no handle
    };
    for (const auto& j : good) {
      CAPTURE(j.dump());
      watch_request fast;
      REQUIRE(decode_watch_request(packed(j), fast));
      // (The json the server decodes from those bytes: numbers as MessagePack typed them.)
      CHECK(same(fast, watch_registry::request_of(json::from_msgpack(packed(j)))));
    }
    // Left to the json path: other ops, no id, no namespace, fields of the wrong type.
    const std::vector<json> other = {
        json{{"i", 9}, {"o", "get"}, {"n", "ns"}, {"k", "x"}},
        json{{"o", "watch"}, {"n", "ns"}},
        json{{"i", 9}, {"o", "watch"}},
        json{{"i", 9}, {"o", "watch"}, {"n", 5}},
        json{{"i", 9}, {"o", "watch"}, {"n", "ns"}, {"keys", "x"}},
        json{{"i", 9}, {"o", "watch"}, {"n", "ns"}, {"keys", {1}}},
        json{{"i", 9}, {"o", "watch"}, {"n", "ns"}, {"after", "3"}},
        json{{"i", 9}, {"o", "watch"}, {"n", "ns"}, {"max", -1}},
        json{{"i", 9}, {"o", "watch"}, {"n", "ns"}, {"stream", 0}},
        json{{"i", 9}, {"o", "watch"}, {"n", "ns"}, {"stream", true}},
        json::array({1}),
    };
    for (const auto& j : other) {
      CAPTURE(j.dump());
      watch_request fast;
      CHECK_FALSE(decode_watch_request(packed(j), fast));
    }
    // Fields judged in the order they always were: the predicate's shape before 'max'.
    try {
      watch_registry::request_of(json{{"i", 1}, {"o", "watch"}, {"n", "x"}, {"pred", 5}, {"max", "a"}});
      FAIL("accepted");
    } catch (const op_error& e) {
      CHECK(e.message.find("'pred'") != std::string::npos);
    }
    CHECK_THROWS_AS(watch_registry::request_of(json::from_msgpack(packed(other[5]))), op_error);
    CHECK_THROWS_AS(watch_registry::request_of(json::from_msgpack(packed(other[6]))), op_error);
    std::string cut = packed(good[1]);
    cut.pop_back();
    watch_request fast;
    CHECK_FALSE(decode_watch_request(cut, fast));
  }
}
