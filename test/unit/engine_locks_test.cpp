// The server's namespace locks without sockets (server/engine.cpp): granted in order, and a
// lock request that its client gave up (cancel) never stays held: not while it waits, and not
// once granted before the grant reached the client.
#include "protocol/message.hpp"
#include "protocol/ops.hpp"
#include "server/engine.hpp"

#include <doctest/doctest.h>

#include <vector>

using zproc::json;
using namespace zproc::server_detail;
namespace protocol = zproc::protocol;

namespace {

struct fixture {
  engine e{1, retention{}};
  std::vector<delivery> out;

  void send(std::uint64_t client, std::uint64_t id, json req) {
    e.handle(req, id, request_context{client}, out);
  }
  void lock(std::uint64_t client, std::uint64_t id) {
    send(client, id, protocol::make(protocol::op::lock, "ns"));
  }
  void unlock(std::uint64_t client, std::uint64_t id) {
    send(client, id, protocol::make(protocol::op::unlock, "ns"));
  }
  void cancel(std::uint64_t client, std::uint64_t id, std::uint64_t target) {
    send(client, id, protocol::cancel_request(target));
  }
  /// Whether `client` got the reply to request `id` since the last call (then clears out).
  bool answered(std::uint64_t client, std::uint64_t id) {
    bool found = false;
    for (const auto& d : out)
      if (d.client_id == client && d.message().value(protocol::field::id, std::uint64_t{0}) == id)
        found = true;
    out.clear();
    return found;
  }
};

}  // namespace

TEST_SUITE("locks") {
  TEST_CASE_FIXTURE(fixture, "locks: granted in order; a waiting request cancelled is dropped") {
    lock(1, 10);
    CHECK(answered(1, 10));
    lock(2, 20);
    lock(3, 30);
    CHECK(!answered(2, 20));
    cancel(2, 21, 20);  // client 2 gives its wait up
    out.clear();
    unlock(1, 11);
    CHECK(answered(3, 30));  // granted to 3, not to 2
  }

  TEST_CASE_FIXTURE(fixture, "locks: a grant the client gave up before it arrived is released") {
    lock(1, 10);
    CHECK(answered(1, 10));
    lock(2, 20);
    lock(3, 30);
    unlock(1, 11);
    CHECK(answered(2, 20));  // granted to 2 ... whose cancel was on its way
    cancel(2, 21, 20);
    CHECK(answered(3, 30));  // released at once: 3 does not wait for 2's lease
    lock(4, 40);
    CHECK(!answered(4, 40));  // 3 holds it

    // A lock granted at once and cancelled before its reply arrived: released too.
    unlock(3, 31);
    CHECK(answered(4, 40));
    cancel(4, 41, 40);
    lock(5, 50);
    CHECK(answered(5, 50));

    // A cancel of another request of the holder leaves the lock alone.
    cancel(5, 51, 49);
    lock(6, 60);
    CHECK(!answered(6, 60));
  }

  TEST_CASE_FIXTURE(fixture, "locks: a lock that asks to read gets the namespace with the grant, "
                             "as of the grant (after the previous holder's commit)") {
    const auto grant_of = [&](std::uint64_t client, std::uint64_t id) -> json {
      for (const auto& d : out)
        if (d.client_id == client && d.message().value(protocol::field::id, std::uint64_t{0}) == id)
          return d.message().at(protocol::field::result);
      return nullptr;
    };
    send(9, 1, json{{"o", "set"}, {"n", "ns"}, {"k", "a"}, {"v", 1}});
    send(9, 2, json{{"o", "set"}, {"n", "ns"}, {"k", "b"}, {"v", 2}});
    out.clear();
    send(1, 10, protocol::lock_request("ns", {"a"}));
    const json first = grant_of(1, 10);
    REQUIRE(protocol::lock_grant_read(first));
    CHECK(first.at(protocol::field::lease) == engine::lock_lease.count());
    CHECK(protocol::lock_grant_read(first)->at(protocol::field::data) == json{{"a", 1}});
    out.clear();
    send(2, 20, protocol::lock_request("ns", {}));  // waits; reads everything
    CHECK(grant_of(2, 20).is_null());
    // The holder commits a = 5 (the read's reply is what commit_request builds on).
    send(1, 11, protocol::commit_request("ns", 0, true, *protocol::lock_grant_read(first),
                                         json{{"a", 5}}));
    const json second = grant_of(2, 20);
    REQUIRE(protocol::lock_grant_read(second));
    CHECK(protocol::lock_grant_read(second)->at(protocol::field::data) == json{{"a", 5}, {"b", 2}});
    CHECK(protocol::lock_grant_read(second)->at(protocol::field::rev) == 3);
    out.clear();
    // A plain lock's grant is the lease alone (as before); keys that are not text are refused.
    unlock(2, 21);
    lock(3, 30);
    CHECK(grant_of(3, 30) == engine::lock_lease.count());
    out.clear();
    send(4, 40, json{{"o", "lock"}, {"n", "ns"}, {"read", true}, {"keys", {1}}});
    REQUIRE(!out.empty());
    CHECK(out.back().message().contains(protocol::field::error));
  }
}

#include "protocol/store_request.hpp"

TEST_SUITE("locks") {
  TEST_CASE("flat store requests (read without a json tree) answer and write exactly as the "
            "json path does, refusals included") {
    const auto packed = [](const json& j) {
      const auto b = json::to_msgpack(j);
      return std::string(b.begin(), b.end());
    };
    engine by_json{1, retention{}};
    engine by_flat{1, retention{}};
    std::vector<json> requests;
    std::uint64_t id = 0;
    const auto add = [&](json r) {
      r["i"] = ++id;
      requests.push_back(std::move(r));
    };
    const std::string bad_utf8("\xff\xfe", 2);
    json deep = 1;
    for (int i = 0; i < 300; ++i) deep = json::array({deep});
    add({{"o", "set"}, {"n", "ns"}, {"k", "a"}, {"v", 1}, {"h", 7}});
    add({{"o", "get"}, {"n", "ns"}, {"k", "a"}});
    add({{"o", "get"}, {"n", "ns"}, {"k", "nope"}});
    add({{"o", "get"}, {"n", "ns"}, {"k", "nope"}, {"d", "fallback"}});
    add({{"o", "incr"}, {"n", "ns"}, {"k", "a"}});
    add({{"o", "incr"}, {"n", "ns"}, {"k", "a"}, {"v", 2.5}});
    add({{"o", "incr"}, {"n", "ns"}, {"k", "a"}, {"v", "x"}});
    add({{"o", "set"}, {"n", "ns"}, {"k", "s"}, {"v", bad_utf8}});
    add({{"o", "set"}, {"n", "ns"}, {"k", bad_utf8}, {"v", 1}});
    add({{"o", "set"}, {"n", "ns"}, {"k", "deep"}, {"v", deep}});
    add({{"o", "set"}, {"n", "ns"}, {"v", 1}});  // no key
    add({{"o", "set"}, {"n", "ns"}, {"k", "nokey"}});  // no value
    add({{"o", "update"}, {"n", "ns"}, {"v", {{"b", {1, 2}}, {"c", nullptr}}}});
    add({{"o", "update"}, {"n", "ns"}, {"v", 3}});
    add({{"o", "append"}, {"n", "ns"}, {"k", "b"}, {"v", 3}});
    add({{"o", "contains"}, {"n", "ns"}, {"k", "b"}});
    add({{"o", "pop"}, {"n", "ns"}, {"k", "c"}});
    add({{"o", "pop"}, {"n", "ns"}, {"k", "c"}});
    add({{"o", "pop"}, {"n", "ns"}, {"k", "c"}, {"d", 0}});
    add({{"o", "setdefault"}, {"n", "ns"}, {"k", "e"}, {"d", {{"x", 1}}}});
    add({{"o", "size"}, {"n", "ns"}});
    add({{"o", "values"}, {"n", "ns"}});
    add({{"o", "copy"}, {"n", "ns"}});
    add({{"o", "revision"}, {"n", "other"}});
    add({{"o", "del"}, {"n", "ns"}, {"k", "e"}});
    add({{"o", "del"}, {"n", "ns"}, {"k", "e"}});
    add({{"o", "replace"}, {"n", "ns"}, {"v", {{"z", 26}}}});
    add({{"o", "popitem"}, {"n", "ns"}});
    add({{"o", "popitem"}, {"n", "ns"}});
    add({{"o", "clear"}, {"n", "ns"}});
    std::size_t flat = 0;
    for (const auto& r : requests) {
      CAPTURE(r.dump());
      std::vector<delivery> a, b;
      by_json.handle(json::from_msgpack(packed(r)), r["i"].get<std::uint64_t>(),
                     request_context{1}, a);
      protocol::store_request s;
      if (protocol::decode_store_request(packed(r), s)) {
        ++flat;
        by_flat.handle(s, request_context{1}, b);
      } else {
        by_flat.handle(json::from_msgpack(packed(r)), r["i"].get<std::uint64_t>(),
                       request_context{1}, b);
      }
      REQUIRE(a.size() == b.size());
      for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].message() == b[i].message());
    }
    CHECK(flat == requests.size());  // every one of these took the flat path
    for (const char* ns : {"ns", "other"}) {
      REQUIRE((by_json.data().find(ns) == nullptr) == (by_flat.data().find(ns) == nullptr));
      if (by_json.data().find(ns)) {
        CHECK(by_json.data().find(ns)->data == by_flat.data().find(ns)->data);
        CHECK(by_json.data().find(ns)->revision == by_flat.data().find(ns)->revision);
      }
    }
    // Left to the json path: other ops, unknown fields, a key that is not text, a bad handle.
    for (const json& r : {json{{"i", 1}, {"o", "cas"}, {"n", "ns"}, {"k", "a"}, {"v", 1}},
                          json{{"i", 1}, {"o", "set"}, {"n", "ns"}, {"k", "a"}, {"v", 1}, {"x", 0}},
                          json{{"i", 1}, {"o", "set"}, {"n", "ns"}, {"k", 5}, {"v", 1}},
                          json{{"i", 1}, {"o", "set"}, {"n", "ns"}, {"k", "a"}, {"h", "x"}},
                          json{{"o", "set"}, {"n", "ns"}, {"k", "a"}, {"v", 1}},
                          json{{"i", 1}, {"o", "set"}, {"k", "a"}, {"v", 1}}}) {
      CAPTURE(r.dump());
      protocol::store_request s;
      CHECK_FALSE(protocol::decode_store_request(packed(r), s));
    }
  }
}
