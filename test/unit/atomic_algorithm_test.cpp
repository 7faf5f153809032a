// atomic()'s algorithm without I/O: scripted replies, and a failure injected at every step.
// Whatever fails once the lock is held, the next request is the unlock.
#include "protocol/ops.hpp"

#include <zproc/detail/atomic.hpp>

#include <doctest/doctest.h>

#include <stdexcept>

using namespace zproc;
using detail::atomic_algorithm;
using kind = atomic_algorithm::step::kind;

namespace {

json read_reply(json data, std::uint64_t rev) { return {{"data", std::move(data)}, {"rev", rev}}; }

/// What a send step sends.
json sent(const atomic_algorithm::step& s) {
  REQUIRE(s.what == kind::send);
  return detail::request_access::body(s.outgoing);
}
std::string op_of(const atomic_algorithm::step& s) { return sent(s).at("o").get<std::string>(); }

const error_code refused = make_error_code(server_errc::bad_request);

}  // namespace

TEST_SUITE("client_algorithms") {
  TEST_CASE("atomic: optimistic read, body, commit") {
    atomic_algorithm a("ns", 7, {}, 3, false);
    auto s = a.start();
    CHECK(op_of(s) == "read");
    s = a.on_reply({}, read_reply({{"n", 1}}, 4), {});
    REQUIRE(s.what == kind::run_body);
    CHECK(s.payload == json({{"n", 1}}));
    s.payload["n"] = 2;
    s = a.on_body_done(s.payload);
    CHECK(op_of(s) == "commit");
    CHECK(sent(s).at("base") == 4);
    CHECK(sent(s).at("set") == json({{"n", 2}}));
    CHECK(sent(s).at("h") == 7);
    s = a.on_reply({}, 5, {});
    CHECK(s.what == kind::done);
    CHECK_FALSE(a.needed_lock());
  }

  TEST_CASE("atomic: conflicts lead to the lock; the holder's commit releases it") {
    atomic_algorithm a("ns", 1, {"k"}, 1, false);
    auto s = a.start();
    CHECK(op_of(s) == "read");
    s = a.on_reply({}, {{"data", {{"k", 1}}}, {"mods", {{"k", 3}}}}, {});
    s = a.on_body_done(s.payload);
    CHECK(sent(s).at("mods") == json({{"k", 3}}));
    s = a.on_reply(make_error_code(server_errc::conflict), {}, "changed");
    CHECK(op_of(s) == "lock");  // one optimistic attempt, then the lock
    s = a.on_reply({}, 5000, {});
    CHECK(op_of(s) == "read");
    s = a.on_reply({}, {{"data", {{"k", 2}}}, {"mods", {{"k", 4}}}}, {});
    s = a.on_body_done(s.payload);
    s = a.on_reply({}, 9, {});
    CHECK(s.what == kind::done);
    CHECK(a.needed_lock());
    CHECK(a.conflicts() == 1);
  }

  TEST_CASE("atomic: the lock asks for the read; a grant that brings it goes straight to the "
            "body (one round trip less); one that does not (an older server) reads") {
    atomic_algorithm a("ns", 1, {"k"}, 0, false);  // lock at once
    auto s = a.start();
    CHECK(op_of(s) == "lock");
    CHECK(sent(s).at("read") == true);
    CHECK(sent(s).at("keys") == json::array({"k"}));
    s = a.on_reply({}, {{"lease", 5000}, {"read", {{"data", {{"k", 2}}}, {"mods", {{"k", 4}}}}}},
                   {});
    REQUIRE(s.what == kind::run_body);
    CHECK(s.payload == json({{"k", 2}}));
    s.payload["k"] = 3;
    s = a.on_body_done(s.payload);
    CHECK(op_of(s) == "commit");
    CHECK(sent(s).at("mods") == json({{"k", 4}}));
    s = a.on_reply({}, 9, {});
    CHECK(s.what == kind::done);

    atomic_algorithm old("ns", 1, {}, 0, false);
    s = old.start();
    s = old.on_reply({}, 5000, {});  // the lease alone
    CHECK(op_of(s) == "read");

    atomic_algorithm bad("ns", 1, {}, 0, false);
    s = bad.start();
    s = bad.on_reply({}, {{"lease", 5000}, {"read", 3}}, {});  // a read that is not one
    CHECK(op_of(s) == "unlock");

    // Granted, but the namespace read with the grant did not fit in a reply: the lock is held
    // on the server, so it is given back at once, not left to its lease.
    atomic_algorithm big("ns", 1, {}, 0, false);
    s = big.start();
    s = big.on_reply(make_error_code(server_errc::reply_too_large), {}, "too large");
    CHECK(op_of(s) == "unlock");
    s = big.on_reply({}, true, {});
    CHECK(s.what == kind::failed);
    CHECK(s.ec == server_errc::reply_too_large);
  }

  TEST_CASE("atomic: a lock granted on a connection that was lost since is taken again") {
    atomic_algorithm a("ns", 1, {"k"}, 0, false);  // lock at once
    auto s = a.start();
    CHECK(op_of(s) == "lock");
    a.connection_is(1);
    s = a.on_reply({}, 5000, {});
    CHECK(op_of(s) == "read");
    // The client reconnected: the read was sent again on connection 2; the server released
    // the lock with connection 1, and another client took it.
    a.connection_is(2);
    s = a.on_reply({}, {{"data", {{"k", 1}}}, {"mods", {{"k", 3}}}}, {});
    REQUIRE(s.what == kind::run_body);
    s = a.on_body_done(s.payload);
    CHECK(op_of(s) == "commit");
    a.connection_is(2);
    s = a.on_reply(make_error_code(server_errc::conflict), {}, "another client holds the lock");
    CHECK(op_of(s) == "lock");  // not a read that would conflict again and again
    a.connection_is(2);
    s = a.on_reply({}, 5000, {});
    CHECK(op_of(s) == "read");
    a.connection_is(2);
    s = a.on_reply({}, {{"data", {{"k", 2}}}, {"mods", {{"k", 4}}}}, {});
    s = a.on_body_done(s.payload);
    a.connection_is(2);
    s = a.on_reply({}, 9, {});
    CHECK(s.what == kind::done);
  }

  TEST_CASE("atomic: a failure at every step after the lock gives it back, then fails") {
    enum class where { read, body_throws, body_not_object, commit };
    for (const auto w : {where::read, where::body_throws, where::body_not_object, where::commit}) {
      CAPTURE(static_cast<int>(w));
      atomic_algorithm a("ns", 1, {}, 0, false);  // lock at once
      auto s = a.start();
      CHECK(op_of(s) == "lock");
      s = a.on_reply({}, 5000, {});
      CHECK(op_of(s) == "read");
      error_code expected = refused;
      if (w == where::read) {
        s = a.on_reply(refused, {}, "no read");
      } else {
        s = a.on_reply({}, read_reply(json::object(), 1), {});
        REQUIRE(s.what == kind::run_body);
        if (w == where::body_throws) {
          s = a.run_body(s, [](json&) { throw std::runtime_error("body"); });
          expected = {};
        } else if (w == where::body_not_object) {
          s = a.run_body(s, [](json& snap) { snap = 5; });
          expected = make_error_code(server_errc::wrong_type);
        } else {
          s = a.on_body_done(s.payload);
          CHECK(op_of(s) == "commit");
          s = a.on_reply(refused, {}, "too big");
        }
      }
      CHECK(op_of(s) == "unlock");
      s = a.on_reply(make_error_code(client_errc::connection_closed), {}, {});  // whatever it says
      REQUIRE(s.what == kind::failed);
      CHECK(s.ec == expected);
      if (w == where::body_throws) {
        CHECK_THROWS_WITH_AS(a.throw_failure(s), "body", std::runtime_error);
      } else {
        CHECK_THROWS_AS(a.throw_failure(s), zproc::error);
      }
    }
  }

  TEST_CASE("atomic: a failure before the lock is held fails at once; a lost lock request too") {
    atomic_algorithm optimistic("ns", 1, {}, 3, false);
    auto s = optimistic.start();
    s = optimistic.on_reply(refused, {}, "no read");
    REQUIRE(s.what == kind::failed);
    CHECK(s.message == "no read");
    atomic_algorithm locking("ns", 1, {}, 3, true);  // contended lately: lock first
    s = locking.start();
    CHECK(op_of(s) == "lock");
    s = locking.on_reply(make_error_code(client_errc::timeout), {}, "no lock");
    REQUIRE(s.what == kind::failed);
    CHECK(s.ec == client_errc::timeout);
  }

  TEST_CASE("atomic: a malformed read reply is a protocol error (and unlocks)") {
    atomic_algorithm a("ns", 1, {}, 0, false);
    auto s = a.start();
    s = a.on_reply({}, 5000, {});
    s = a.on_reply({}, json::array(), {});
    CHECK(op_of(s) == "unlock");
    s = a.on_reply({}, true, {});
    CHECK(s.ec == client_errc::protocol_error);
  }
}
