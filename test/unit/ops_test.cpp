// The operations of the wire protocol (protocol/ops.hpp): name <-> op, the ops a client may send
// again after a reconnect, and the request builders, without I/O.
#include "client/reconnect_policy.hpp"
#include "protocol/ops.hpp"

#include <zproc/detail/request.hpp>
#include <zproc/transaction.hpp>

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace zproc;
using protocol::op;
using detail::request_access;

TEST_SUITE("ops") {
  TEST_CASE("ops: every op's name parses back to it, names are unique, others are unknown") {
    std::set<std::string_view> names;
    for (std::size_t i = 0; i < protocol::op_count; ++i) {
      const auto o = static_cast<op>(i);
      const auto n = protocol::name(o);
      INFO(n);
      CHECK(!n.empty());
      CHECK(names.insert(n).second);
      REQUIRE(protocol::parse_op(n).has_value());
      CHECK(*protocol::parse_op(n) == o);
    }
    CHECK(protocol::name(op::get) == "get");
    CHECK(protocol::name(op::task_info) == "task_info");
    CHECK(protocol::name(op::proc_start) == "proc_start");
    for (const char* unknown : {"", "GET", "get ", "nope", "task_", "proc_listx", "o", "Get",
                                "a name longer than any op's name", "task_infp", "mord"})
      CHECK_MESSAGE(!protocol::parse_op(unknown).has_value(), unknown);
  }

  TEST_CASE("ops: the idempotent set is the reads and watch, nothing that writes") {
    const std::set<op> expected = {op::get,  op::contains, op::size,     op::keys,
                                   op::values, op::items,  op::copy,     op::revision,
                                   op::at,   op::read,     op::history,  op::watch,
                                   op::ping, op::proc_list};
    for (std::size_t i = 0; i < protocol::op_count; ++i) {
      const auto o = static_cast<op>(i);
      INFO(protocol::name(o));
      CHECK(protocol::idempotent(o) == expected.contains(o));
      // The reconnect policy asks by name, and gets the same answer.
      CHECK(detail::is_idempotent(protocol::name(o)) == protocol::idempotent(o));
    }
    CHECK(!detail::is_idempotent("nope"));
  }

  TEST_CASE("ops: the ops the server may hold unanswered, whose cancel the server is told") {
    const std::set<op> expected = {op::lock, op::watch, op::task_take, op::task_wait};
    for (std::size_t i = 0; i < protocol::op_count; ++i) {
      const auto o = static_cast<op>(i);
      INFO(protocol::name(o));
      CHECK(protocol::parks(o) == expected.contains(o));
    }
  }

  TEST_CASE("ops: op_of reads a request's op, and nothing else") {
    CHECK(protocol::op_of(protocol::make(op::commit, "ns")) == op::commit);
    CHECK(!protocol::op_of(json::array()).has_value());
    CHECK(!protocol::op_of(json::object()).has_value());
    CHECK(!protocol::op_of(json{{protocol::field::op, 3}}).has_value());
    CHECK(!protocol::op_of(json{{protocol::field::op, "nope"}}).has_value());
  }

  TEST_CASE("ops: the client's request builders") {
    using namespace protocol;
    auto r = detail::make_request(op::set, "kitchen", 7, "cookies");
    r = detail::with_value(std::move(r), 3);
    const json& body = request_access::body(r);
    CHECK(body == json{{field::op, "set"}, {field::ns, "kitchen"}, {field::handle, 7},
                       {field::key, "cookies"}, {field::value, 3}});
    auto g = detail::with_fallback(detail::make_request(op::get, "kitchen", 1, "milk"), nullptr);
    CHECK(request_access::body(g).at(field::fallback).is_null());
    CHECK(request_access::body(g).at(field::op) == "get");
    CHECK(request_access::body(detail::ping_request()) == json{{field::op, "ping"}});
    // A value nested deeper than a request may: marked, for the connection to refuse (also
    // once more fields are added, as cas and txn do), not thrown here.
    json deep = 1;
    for (std::size_t i = 0; i < 600; ++i) deep = json::array({deep});
    auto d = detail::with_value(detail::make_request(op::cas, "kitchen", 1, "k"), deep);
    request_access::add(d, field::absent, true);
    CHECK(request_access::take(std::move(d)).too_deep);
    auto fine = detail::with_value(detail::make_request(op::cas, "kitchen", 1, "k"), 1);
    request_access::add(fine, field::expected, 0);
    CHECK(!request_access::take(std::move(fine)).too_deep);

    CHECK(cancel_request(42) == json{{field::op, "cancel"}, {field::target, 42}});
    CHECK(read_request("ns", {}) == json{{field::op, "read"}, {field::ns, "ns"}});
    CHECK(read_request("ns", {"a"}).at(field::keys) == json::array({"a"}));

    const json read_reply = {{field::rev, 5},
                             {field::data, {{"a", 1}, {"b", 2}}},
                             {field::mods, {{"a", 4}}}};
    const json whole = commit_request("ns", 9, false, read_reply, {{"a", 1}, {"c", 3}});
    CHECK(whole.at(field::op) == "commit");
    CHECK(whole.at(field::base) == 5);
    CHECK(!whole.contains(field::mods));
    CHECK(whole.at(field::set) == json{{"c", 3}});
    CHECK(whole.at(field::del) == json::array({"b"}));
    CHECK(whole.at(field::handle) == 9);
    const json some = commit_request("ns", 9, true, read_reply, {{"a", 2}, {"b", 2}});
    CHECK(some.at(field::mods) == json{{"a", 4}});
    CHECK(!some.contains(field::base));
    CHECK(some.at(field::set) == json{{"a", 2}});
    CHECK_THROWS_AS(commit_request("ns", 9, false, read_reply, json::array()), zproc::error);
  }

  TEST_CASE("ops: a txn's compares and operations") {
    using namespace protocol;
    CHECK(txn::equal("k", 1) == json{{field::key, "k"}, {field::test, "eq"}, {field::value, 1}});
    CHECK(txn::absent("k").at(field::test) == "absent");
    CHECK(txn::modified_before("k", 3).at(field::test) == "mod_lt");
    CHECK(txn::set("k", 2) == json{{field::op, "set"}, {field::key, "k"}, {field::value, 2}});
    CHECK(txn::erase("k") == json{{field::op, "del"}, {field::key, "k"}});
    CHECK(txn::increment("k").at(field::value) == 1);
    CHECK(txn::get("k") == json{{field::op, "get"}, {field::key, "k"}});
  }

  TEST_CASE("ops: predicates by name") {
    for (std::size_t i = 0; i < protocol::predicate_names.size(); ++i) {
      const auto p = static_cast<protocol::predicate>(i);
      CHECK(protocol::parse_predicate(protocol::name(p)) == p);
    }
    CHECK(protocol::name(protocol::predicate::not_none) == "not_none");
    CHECK(!protocol::parse_predicate("maybe").has_value());
  }
}
