// The streaming watch on the server without sockets (server/watch.cpp, server/engine.cpp): a
// watch sent with "stream": N stays registered across its replies, the server sends at most N
// replies until the client grants more (`more`), and out of credit it holds updates back
// without losing one.
#include "protocol/message.hpp"
#include "protocol/ops.hpp"
#include "server/engine.hpp"

#include <doctest/doctest.h>

#include <vector>

using zproc::json;
using namespace zproc::server_detail;
namespace protocol = zproc::protocol;
namespace field = protocol::field;

namespace {

struct fixture {
  engine e{1, retention{.max_records = 20, .max_bytes = 1u << 20}};
  std::vector<delivery> out;
  int next_value = 0;

  void send(std::uint64_t client, std::uint64_t id, json req) {
    e.handle(req, id, request_context{client}, out);
  }
  /// Client 1's streaming watch of namespace "ns" (request `id`).
  void watch(std::uint64_t id, std::uint64_t credit, json extra = json::object()) {
    json req = protocol::make(protocol::op::watch, "ns");
    req[field::id] = id;
    req[field::stream] = credit;
    for (auto& [k, v] : extra.items()) req[k] = v;
    send(1, id, req);
  }
  /// Client 2 writes key "x" (the next value).
  void write() {
    json req = protocol::make(protocol::op::set, "ns");
    req[field::key] = "x";
    req[field::value] = ++next_value;
    send(2, 1000 + static_cast<std::uint64_t>(next_value), req);
  }
  void more(std::uint64_t id, std::uint64_t target, std::uint64_t credit) {
    send(1, id, protocol::more_request(target, credit).to_json());
  }
  /// Client 1's replies since the last call, whole (then clears out).
  std::vector<json> replies() {
    std::vector<json> mine;
    for (const auto& d : out) {
      if (d.client_id != 1) continue;
      mine.push_back(d.packed ? json::from_msgpack(std::string(d.bytes.view()) + *d.packed)
                              : d.message());
    }
    out.clear();
    return mine;
  }
  /// The revisions of the updates in a watch reply.
  static std::vector<std::uint64_t> revisions(const json& reply) {
    std::vector<std::uint64_t> r;
    for (const auto& u : reply.at(field::result).at(field::updates))
      r.push_back(u.at(protocol::update_field::revision).get<std::uint64_t>());
    return r;
  }
  using revs = std::vector<std::uint64_t>;
  static zproc::error_code error_in(const json& reply) {
    std::string message;
    return protocol::decode_error(reply.at(field::error), message);
  }
};

}  // namespace

TEST_SUITE("streams") {
  TEST_CASE_FIXTURE(fixture, "a stream answers every write and stays; out of credit it holds "
                             "updates back, and more brings them, none lost") {
    watch(5, 2);
    CHECK(replies().empty());
    write();
    auto r = replies();
    REQUIRE(r.size() == 1);
    CHECK(r[0].at(field::id) == 5);
    CHECK(revisions(r[0]) == revs{1});
    CHECK(e.watches().pending() == 1);  // still registered
    write();
    r = replies();
    REQUIRE(r.size() == 1);
    CHECK(revisions(r[0]) == revs{2});
    // Its two replies are spent: the next writes are held back.
    write();
    write();
    CHECK(replies().empty());
    CHECK(e.watches().pending() == 1);
    CHECK(e.watches().stalled() == 1);
    more(6, 5, 10);
    r = replies();
    REQUIRE(r.size() == 2);
    CHECK(r[0].at(field::id) == 5);
    CHECK(revisions(r[0]) == revs{3, 4});  // what it missed, in one reply
    CHECK(r[1].at(field::id) == 6);
    CHECK(r[1].at(field::result) == true);
    CHECK(e.watches().stalled() == 0);
    write();
    r = replies();
    REQUIRE(r.size() == 1);
    CHECK(revisions(r[0]) == revs{5});
    // Cancelled, it is gone: no reply, and more finds nothing.
    send(1, 7, protocol::cancel_request(5));
    CHECK(replies().at(0).at(field::result) == true);
    write();
    CHECK(replies().empty());
    CHECK(e.watches().pending() == 0);
    more(8, 5, 1);
    r = replies();
    REQUIRE(r.size() == 1);
    CHECK(r[0].at(field::result) == false);
  }

  TEST_CASE_FIXTURE(fixture, "a stream that starts behind is answered as far as its credit goes") {
    for (int i = 0; i < 10; ++i) write();
    watch(5, 2, {{field::after, 0u}, {field::max, 3u}});
    auto r = replies();
    REQUIRE(r.size() == 2);
    CHECK(revisions(r[0]) == revs{1, 2, 3});
    CHECK(revisions(r[1]) == revs{4, 5, 6});
    more(6, 5, 1);
    r = replies();
    REQUIRE(r.size() == 2);
    CHECK(revisions(r[0]) == revs{7, 8, 9});
    more(7, 5, 5);
    r = replies();
    REQUIRE(r.size() == 2);
    CHECK(revisions(r[0]) == revs{10});  // up to date now, with credit left
    write();
    r = replies();
    REQUIRE(r.size() == 1);
    CHECK(revisions(r[0]) == revs{11});
  }

  TEST_CASE_FIXTURE(fixture, "a stream whose updates left the history while it was held back "
                             "ends with compacted") {
    watch(5, 1);
    write();
    CHECK(revisions(replies().at(0)) == revs{1});
    for (int i = 0; i < 30; ++i) write();  // the history keeps 20
    CHECK(replies().empty());
    more(6, 5, 1);
    auto r = replies();
    REQUIRE(r.size() == 2);
    CHECK(r[0].at(field::id) == 5);
    REQUIRE(r[0].contains(field::error));
    CHECK(error_in(r[0]) == zproc::server_errc::compacted);
    CHECK(e.watches().pending() == 0);
  }

  TEST_CASE_FIXTURE(fixture, "a snapshot stream's replies keep the replica: each write is its own "
                             "diff, sent as the record's shared encoding") {
    watch(5, 10, {{field::snap, true}, {field::pin, true}});
    auto r = replies();
    REQUIRE(r.size() == 1);
    CHECK(r[0].at(field::result).at(field::cursor) == 0);
    for (int i = 0; i < 3; ++i) {
      write();
      REQUIRE(out.size() == 2);  // the writer's reply and the watcher's
      const delivery& woken = out[1];
      CHECK(woken.client_id == 1);
      CHECK(woken.packed != nullptr);  // up to date: exactly this record, its changes the diff
      r = replies();
      CHECK(revisions(r.at(0)) == revs{static_cast<std::uint64_t>(i + 1)});
      CHECK(r.at(0).at(field::result).at(field::updates).at(0).contains(
          protocol::update_field::diff));
    }
  }

  TEST_CASE_FIXTURE(fixture, "stream: refused with now, as zero, or twice under one id") {
    const auto error_of = [&] {
      auto r = replies();
      REQUIRE(r.size() == 1);
      REQUIRE(r[0].contains(field::error));
      return error_in(r[0]);
    };
    watch(5, 3, {{field::now, true}});
    CHECK(error_of() == zproc::server_errc::bad_request);
    watch(5, 0);
    CHECK(error_of() == zproc::server_errc::bad_request);
    watch(5, 3);
    CHECK(replies().empty());
    watch(5, 3);
    CHECK(error_of() == zproc::server_errc::bad_request);
    CHECK(e.watches().pending() == 1);
    send(1, 9, {{field::op, "more"}, {field::target, 5}});  // no credit
    CHECK(error_of() == zproc::server_errc::bad_request);
  }
}

TEST_SUITE("streams") {
  TEST_CASE("a stream that catches up sends about burst_bytes at once, the rest at its "
            "connection's resume(), in order, none lost") {
    engine e{1, retention{.max_records = 1000, .max_bytes = 256u << 20}};
    std::vector<delivery> out;
    const std::string blob(100 * 1024, 'z');
    for (int i = 0; i < 40; ++i) {  // 40 records of 100 KiB: 4 MiB of backlog
      json set = protocol::make(protocol::op::set, "ns");
      set[field::key] = "x";
      set[field::value] = blob + std::to_string(i);
      e.handle(set, 100 + static_cast<std::uint64_t>(i), request_context{2}, out);
    }
    out.clear();
    json w = protocol::make(protocol::op::watch, "ns");
    w[field::id] = 5;
    w[field::stream] = 1000u;
    w[field::after] = 0u;
    w[field::max] = 1u;  // one record per reply
    e.handle(w, 5, request_context{1}, out);
    std::vector<std::uint64_t> seen;
    const auto take = [&] {
      std::size_t bytes = 0;
      for (const auto& d : out) {
        REQUIRE(d.client_id == 1);
        const json r =
            d.packed ? json::from_msgpack(std::string(d.bytes.view()) + *d.packed) : d.message();
        INFO(r.dump().substr(0, 300));
        REQUIRE(r.contains(field::result));
        for (const auto& u : r.at(field::result).at(field::updates))
          seen.push_back(u.at(protocol::update_field::revision).get<std::uint64_t>());
        bytes += d.packed ? d.bytes.size() + d.packed->size() : d.message().dump().size();
      }
      out.clear();
      return bytes;
    };
    const std::size_t first = take();
    CHECK(first >= watch_registry::burst_bytes);
    const std::size_t one_reply = 2 * (blob.size() + 1024);  // a record holds before and after
    // The first reply (the request's own), then the burst up to the reply that passed it.
    CHECK(first < watch_registry::burst_bytes + 2 * one_reply);
    CHECK(seen.size() < 40);
    CHECK(e.held_back(1));
    CHECK(!e.held_back(2));
    // The connection drained: the rest, 2 MiB at a time.
    int rounds = 0;
    while (!e.resume(1, 2u << 20, out)) {
      CHECK(take() < (2u << 20) + one_reply);
      REQUIRE(++rounds < 10);
    }
    take();
    CHECK(!e.held_back(1));
    std::vector<std::uint64_t> all(40);
    for (std::uint64_t i = 0; i < 40; ++i) all[i] = i + 1;
    CHECK(seen == all);
    CHECK(e.watches().pending() == 1);  // a stream still: it waits for the next write
    CHECK(e.watches().stalled() == 0);
  }
}
