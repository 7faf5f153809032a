// The watch cursor without I/O: the requests it makes, what scripted replies do to it, how it
// survives a new connection (same server, another server, live), and a malformed reply at
// every step.
#include "client/watch_cursor.hpp"
#include "protocol/ops.hpp"
#include "protocol/value_check.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <variant>
#include <vector>

using zproc::json;
using zproc::detail::connection_facts;
using zproc::detail::watch_cursor;
namespace field = zproc::protocol::field;
namespace uf = zproc::protocol::update_field;

namespace {

const connection_facts first{1, "server-A", "ipc:///a"};
const connection_facts restarted{2, "server-A", "ipc:///a"};  // the same data, a new connection
const connection_facts other{2, "server-B", "ipc:///b"};      // a failover: other data

json spec() { return json{{field::op, "watch"}, {field::ns, "n"}}; }

/// An update record of revision `rv` setting key `k` to `v` (with a snapshot watcher's diff).
json update(std::uint64_t rv, const std::string& k, json v) {
  return json{{uf::revision, rv},
              {uf::time, 1'700'000'000'000'000},
              {uf::client, 7},
              {uf::identical, false},
              {uf::changes, json::array({json{{field::key, k}, {uf::after_value, v}}})},
              {uf::diff, {{uf::diff_set, {{k, v}}}}}};
}

/// A result as it travels (the cursor reads its MessagePack).
std::string wire(const json& result) {
  const auto b = json::to_msgpack(result);
  return std::string(b.begin(), b.end());
}

json reply(std::uint64_t cursor, std::vector<json> updates) {
  json r{{field::cursor, cursor}, {field::updates, json::array()}};
  for (auto& u : updates) r[field::updates].push_back(std::move(u));
  return r;
}

std::vector<std::uint64_t> drain(watch_cursor& c) {
  std::vector<std::uint64_t> out;
  while (c.has_ready()) out.push_back(c.pop().revision);
  return out;
}

}  // namespace

TEST_SUITE("client_algorithms") {
  TEST_CASE("watch cursor: the first request pins the start; the next ones go on after the "
            "cursor") {
    watch_cursor c({.spec = spec()});
    auto r1 = c.next_request(first);
    REQUIRE(r1);
    CHECK(r1->to_json().at(field::pin) == true);
    CHECK(r1->to_json().at(field::max) == watch_cursor::batch);
    CHECK(!r1->to_json().contains(field::after));
    CHECK(r1->fields == r1->to_json().size());  // no field twice
    CHECK(r1->code == zproc::protocol::op::watch);
    CHECK(!c.started());
    REQUIRE(c.on_reply(wire(reply(7, {})), first));
    CHECK(c.started());
    CHECK(*c.cursor() == 7);
    CHECK(!c.has_ready());
    auto r2 = c.next_request(first);
    REQUIRE(r2);
    CHECK(!r2->to_json().contains(field::pin));
    CHECK(r2->to_json().at(field::after) == 7);
    REQUIRE(c.on_reply(wire(reply(9, {update(8, "a", 1), update(9, "a", 2)})), first));
    CHECK(drain(c) == std::vector<std::uint64_t>{8, 9});
    CHECK(c.next_request(first)->to_json().at(field::after) == 9);
  }

  TEST_CASE("watch cursor: a start revision, or the oldest one") {
    watch_cursor from({.spec = spec(), .start = 5});
    CHECK(from.next_request(first)->to_json().at(field::after) == 5);
    watch_cursor oldest({.spec = spec(), .start = 0});
    auto r = oldest.next_request(first);
    CHECK(r->to_json().at(field::oldest) == true);
    CHECK(!r->to_json().contains(field::after));
  }

  TEST_CASE("watch cursor: a restarted server with the same data: resumed after the cursor, "
            "resent as it was") {
    watch_cursor c({.spec = spec()});
    REQUIRE(c.on_reply(wire(reply(3, {update(3, "a", 1)})), first));
    drain(c);
    auto r = c.next_request(first);
    auto resent = *r;
    CHECK(c.adjust_resend(resent, restarted));
    CHECK(resent.to_json() == r->to_json());  // after the cursor
    CHECK(c.next_request(restarted)->to_json().at(field::after) == 3);
    CHECK(!c.failure());
  }

  TEST_CASE("watch cursor: another server (failover) fails a watcher that must see every "
            "update with compacted, never a silent gap") {
    watch_cursor c({.spec = spec()});
    REQUIRE(c.on_reply(wire(reply(3, {})), first));
    auto resent = *c.next_request(first);
    CHECK(!c.adjust_resend(resent, other));
    CHECK(c.failure() == zproc::server_errc::compacted);
    CHECK(c.failure_message().find("ipc:///b") != std::string::npos);
    CHECK(c.failure_message().find("revision 3") != std::string::npos);
    CHECK(!c.next_request(other));  // it stays failed
    CHECK(!c.next_request(first));

    watch_cursor d({.spec = spec()});
    REQUIRE(d.on_reply(wire(reply(3, {})), first));
    CHECK(!d.next_request(other));  // the same when the next request is a new one
    CHECK(d.failure() == zproc::server_errc::compacted);
  }

  TEST_CASE("watch cursor: a server without an identity, before or after, is not judged") {
    watch_cursor c({.spec = spec()});
    REQUIRE(c.on_reply(wire(reply(3, {})), {1, "", "ipc:///a"}));
    CHECK(c.next_request(other)->to_json().at(field::after) == 3);
    watch_cursor d({.spec = spec()});
    REQUIRE(d.on_reply(wire(reply(3, {})), first));
    CHECK(d.next_request({2, "", "ipc:///a"})->to_json().at(field::after) == 3);
  }

  TEST_CASE("watch cursor: a live watcher goes on from the new server's revision, with a fresh "
            "replica") {
    watch_cursor c({.spec = spec(), .snapshot = true, .live = true});
    auto r1 = c.next_request(first);
    CHECK(r1->to_json().at(field::base) == true);  // no replica yet
    json base_reply = reply(10, {});
    base_reply[field::base] = json{{"a", 1}};
    REQUIRE(c.on_reply(wire(std::move(base_reply)), first));
    auto same = c.next_request(first);
    CHECK(same->to_json().at(field::after) == 10);
    CHECK(!same->to_json().contains(field::base));
    auto next = c.next_request(other);  // another connection: no cursor, a new replica
    CHECK(!next->to_json().contains(field::after));
    CHECK(next->to_json().at(field::base) == true);
    auto resent = *same;
    CHECK(c.adjust_resend(resent, other));
    CHECK(!resent.to_json().contains(field::after));
    CHECK(resent.to_json().at(field::base) == true);
    CHECK(!c.failure());  // a live watcher has no gap to report
  }

  TEST_CASE("watch cursor: a live watcher forgets the updates before its next(), not the state "
            "it found at its start") {
    json s = spec();
    s[field::now] = true;
    watch_cursor c({.spec = s, .snapshot = true, .live = true});
    json r = reply(4, {});
    r[field::base] = json{{"a", 1}};
    r[field::now] = true;
    REQUIRE(c.on_reply(wire(std::move(r)), first));
    CHECK(!c.next_request(first)->to_json().contains(field::now));  // only the first request asks
    REQUIRE(c.on_reply(wire(reply(5, {update(5, "a", 2)})), first));
    c.forget_updates();
    REQUIRE(c.has_ready());
    auto found = c.pop();
    CHECK(found.now);
    CHECK(std::get<json>(found.value) == json{{"a", 1}});
    CHECK(found.revision == 4);
    CHECK(!c.has_ready());
  }

  TEST_CASE("watch cursor: a snapshot watcher applies diffs and its tail; the filter picks the "
            "snapshots") {
    watch_cursor c({.spec = spec(), .snapshot = true, .filter = [](const json& ns) {
                      return ns.value("a", 0) % 2 == 0;
                    }});
    json r = reply(3, {update(2, "a", 1), update(3, "a", 2)});
    r[field::base] = json{{"a", 0}, {"b", "x"}};
    REQUIRE(c.on_reply(wire(std::move(r)), first));
    REQUIRE(c.has_ready());
    auto snap = c.pop();
    CHECK(snap.revision == 3);
    CHECK(std::get<json>(snap.value) == json{{"a", 2}, {"b", "x"}});
    CHECK(!c.has_ready());  // revision 2 (a = 1) filtered out
    // A tail (updates the filter of the server skipped) still moves the replica.
    json t = reply(5, {update(5, "a", 4)});
    t[field::tail] = json{{uf::diff_erased, {"b"}}};
    REQUIRE(c.on_reply(wire(std::move(t)), first));
    // The update applies first, then the tail.
    CHECK(std::get<json>(c.pop().value) == json{{"a", 4}, {"b", "x"}});
    REQUIRE(c.on_reply(wire(reply(6, {update(6, "a", 6)})), first));
    CHECK(std::get<json>(c.pop().value) == json{{"a", 6}});
  }

  TEST_CASE("watch cursor: a malformed reply at any step fails it with protocol_error and "
            "changes nothing else") {
    // Each reply breaks one thing a well-formed one has.
    struct case_ {
      const char* what;
      json bad;
      bool records_read_it = true;    // a watcher of updates refuses it
      bool snapshots_read_it = true;  // a watcher of snapshots refuses it
    };
    const std::vector<case_> broken = {
        {"no cursor", json{{field::updates, json::array()}}},
        {"a cursor that is not a number", json{{field::cursor, "x"}, {field::updates, json::array()}}},
        {"no updates", json{{field::cursor, 9}}},
        {"updates not a list", json{{field::cursor, 9}, {field::updates, 3}}},
        {"an update without revision", reply(9, {json{{uf::diff, json::object()}}})},
        {"a revision that is text", reply(9, {json{{uf::revision, "9"}}})},
        {"a base that is not an object",
         [] {
           json r = reply(9, {});
           r[field::base] = 3;
           return r;
         }()},
        {"an erased key that is not text",
         [] {
           json r = reply(9, {update(9, "a", 1)});
           r[field::updates][0][uf::diff] = {{uf::diff_erased, {1}}};
           r[field::base] = json::object();
           return r;
         }(),
         false, true},
        {"a record without its changes",
         [] {
           json r = reply(9, {update(9, "a", 1)});
           r[field::updates][0].erase(uf::changes);
           return r;
         }(),
         true, false},
        {"a change whose key is not text",
         [] {
           json r = reply(9, {update(9, "a", 1)});
           r[field::updates][0][uf::changes][0][field::key] = 5;
           return r;
         }(),
         true, false},
        {"a time that is text",
         [] {
           json r = reply(9, {update(9, "a", 1)});
           r[field::updates][0][uf::time] = "now";
           return r;
         }(),
         true, false},
    };
    for (const auto& entry : broken) {  // (no structured binding: CAPTURE is a lambda, and
      const char* what = entry.what;       // Clang 14 cannot capture one)
      const json& bad = entry.bad;
      CAPTURE(what);
      for (bool snapshot : {false, true}) {
        CAPTURE(snapshot);
        watch_cursor c({.spec = spec(), .snapshot = snapshot});
        json good = reply(2, {update(2, "a", 1)});
        if (snapshot) good[field::base] = json{{"a", 0}};
        REQUIRE(c.on_reply(wire(std::move(good)), first));
        const auto before = drain(c);
        CHECK(before == std::vector<std::uint64_t>{2});
        json copy = bad;
        if (!c.on_reply(wire(std::move(copy)), first)) {
          CHECK(c.failure() == zproc::client_errc::protocol_error);
          CHECK(c.failure_message().find("malformed watch reply") != std::string::npos);
          CHECK(*c.cursor() == 2);  // unchanged
          CHECK(!c.has_ready());    // nothing half-applied
          CHECK(!c.next_request(first));
        } else {
          // Accepted only where the broken part is not read: a diff by a watcher of updates,
          // a record's fields by a watcher of snapshots.
          CHECK(!(snapshot ? entry.snapshots_read_it : entry.records_read_it));
        }
      }
    }
  }

  TEST_CASE("watch cursor: a watcher of updates gets each record decoded; bytes that are not "
            "one MessagePack value fail it") {
    watch_cursor c({.spec = spec()});
    json r = reply(3, {update(3, "a", json{{"x", {1, 2}}})});
    r[field::updates][0][uf::changes].push_back(
        json{{field::key, "b"}, {uf::before, "old"}});  // erased: no "a"
    r[field::updates][0]["h"] = 11;  // a field this client does not read: stepped over
    REQUIRE(c.on_reply(wire(r), first));
    REQUIRE(c.has_ready());
    const auto item = c.pop();
    const auto* u = std::get_if<zproc::update>(&item.value);
    REQUIRE(u != nullptr);
    CHECK(u->revision == 3);
    CHECK(u->client_id == 7);
    CHECK(!u->identical);
    CHECK(u->time.time_since_epoch() == std::chrono::microseconds(1'700'000'000'000'000));
    REQUIRE(u->changes.size() == 2);
    CHECK(u->changes[0].key == "a");
    CHECK(!u->changes[0].before);
    CHECK(*u->changes[0].after == json{{"x", {1, 2}}});
    CHECK(u->changes[1].key == "b");
    CHECK(*u->changes[1].before == "old");
    CHECK(!u->changes[1].after);

    // A field given twice: the last stands (as the json decoder keeps it).
    {
      std::string twice("\x83", 1);
      const auto field = [](const char* k, const json& v) {
        const auto b = json::to_msgpack(json{{k, v}});
        return std::string(b.begin() + 1, b.end());  // the pair without its map header
      };
      twice += field("cursor", 6);
      twice += field("updates", json::array({update(5, "a", 5)}));
      twice += field("updates", json::array({update(6, "a", 6)}));
      REQUIRE(c.on_reply(twice, first));
      const auto items = drain(c);
      CHECK(items == std::vector<std::uint64_t>{6});
    }

    std::string cut = wire(reply(4, {update(4, "a", 2)}));
    cut.pop_back();
    CHECK(!c.on_reply(cut, first));
    CHECK(c.failure() == zproc::client_errc::protocol_error);
    CHECK(*c.cursor() == 6);
  }

  TEST_CASE("watch cursor: a spec nested too deep makes requests the connection refuses") {
    json s = spec();
    json v = 1;
    for (std::size_t i = 0; i < zproc::protocol::max_request_depth; ++i) v = json::array({v});
    s[field::pred] = json{{field::kind, "equal"}, {field::key, "a"}, {field::value, v}};
    watch_cursor c({.spec = s});
    auto r = c.next_request(first);
    REQUIRE(r);
    CHECK(r->too_deep);
    watch_cursor fine({.spec = spec()});
    CHECK(!fine.next_request(first)->too_deep);
  }

  TEST_CASE("watch cursor: the first failure stays") {
    watch_cursor c({.spec = spec()});
    c.fail(zproc::client_errc::connection_lost, "lost");
    c.fail(zproc::server_errc::compacted, "later");
    CHECK(c.failure() == zproc::client_errc::connection_lost);
    CHECK(c.failure_message() == "lost");
    CHECK(!c.next_request(first));
    CHECK(!c.on_reply(wire(json::object()), first));
    CHECK(c.failure() == zproc::client_errc::connection_lost);
  }
}

TEST_SUITE("client_algorithms") {
  TEST_CASE("watch cursor: a stream is asked once and goes on across replies; sent again on a "
            "new connection it starts from where its replies brought it; never for a live "
            "watcher nor a first one-shot 'now'") {
    watch_cursor c({.spec = spec(), .stream = 16});
    auto r1 = c.next_request(first);
    REQUIRE(r1);
    CHECK(r1->to_json().at(field::stream) == 16);
    CHECK(r1->to_json().at(field::pin) == true);
    CHECK(c.streaming());
    // Its replies, one after another, with no request between.
    REQUIRE(c.on_reply(wire(reply(3, {})), first));
    REQUIRE(c.on_reply(wire(reply(4, {update(4, "a", 1)})), first));
    REQUIRE(c.on_reply(wire(reply(6, {update(6, "a", 2)})), first));
    CHECK(drain(c) == std::vector<std::uint64_t>{4, 6});
    // The connection broke: the same stream goes again, after revision 6, without pin.
    auto again = *r1;
    REQUIRE(c.adjust_resend(again, restarted));
    const json resent = again.to_json();
    CHECK(resent.at(field::after) == 6);
    CHECK(!resent.contains(field::pin));
    CHECK(resent.at(field::stream) == 16);
    // On another server's connection the cursor means nothing: not sent.
    auto elsewhere = *r1;
    CHECK_FALSE(c.adjust_resend(elsewhere, other));

    watch_cursor live({.spec = spec(), .live = true, .stream = 16});
    CHECK(!live.next_request(first)->to_json().contains(field::stream));
    CHECK(!live.streaming());
    json with_now = spec();
    with_now[field::now] = true;
    watch_cursor once({.spec = with_now, .stream = 16});
    CHECK(!once.next_request(first)->to_json().contains(field::stream));
    CHECK(!once.streaming());
  }
}
