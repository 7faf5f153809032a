// The typed messages of the task queue (protocol/task_messages.hpp): every reply a server builds
// reads back as it was built, every request carries its op and fields, and a reply damaged at
// any position is refused as `malformed` (never another exception, never a crash).
#include "protocol/ops.hpp"
#include "protocol/task_messages.hpp"
#include "protocol/tasks.hpp"

#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

using zproc::json;
namespace wire = zproc::protocol::tasks;
namespace field = zproc::protocol::field;

namespace {

/// Calls `visit` with a copy of `j` in which one value (each in turn, at any depth) is replaced
/// by `replacement`, and with a copy in which one member or element is removed.
void each_damage(const json& j, const json& replacement, const std::function<void(json)>& visit) {
  std::function<void(json&, const std::function<void()>&)> walk =
      [&](json& node, const std::function<void()>& report) {
        if (node.is_object()) {
          std::vector<std::string> keys;
          for (auto it = node.begin(); it != node.end(); ++it) keys.push_back(it.key());
          for (const auto& k : keys) {
            json saved = node[k];
            node[k] = replacement;
            report();
            node.erase(k);
            report();
            node[k] = saved;
            walk(node[k], report);
          }
        } else if (node.is_array()) {
          for (std::size_t i = 0; i < node.size(); ++i) {
            json saved = node[i];
            node[i] = replacement;
            report();
            node[i] = saved;
            walk(node[i], report);
          }
          if (!node.empty()) {
            json saved = node.back();
            node.erase(node.size() - 1);
            report();
            node.push_back(saved);
          }
        }
      };
  json copy = j;
  walk(copy, [&] { visit(copy); });
}

/// Parses each damaged form of `good`: it either parses or throws wire::malformed; counts the
/// refusals.
template <class Parse>
std::size_t refusals(const json& good, Parse parse) {
  std::size_t refused = 0;
  for (const json& bad : {json("x"), json(-1), json::array(), json::object(), json(nullptr)}) {
    each_damage(good, bad, [&](json damaged) {
      try {
        parse(damaged);
      } catch (const wire::malformed&) {
        ++refused;
      }
    });
  }
  return refused;
}

json a_take_reply() {
  json list = json::array();
  list.push_back(wire::taken_task(7, "square", json::binary_t({1, 2, 3}), 4, 1, 250));
  list.push_back(wire::taken_task(8, "square", json::binary_t({4}), 1, 2, 0));
  return wire::take_reply(std::move(list));
}

json an_info_reply() {
  wire::info i;
  i.workers.push_back({3, 1234, "h1", 2, 10, false});
  i.workers.push_back({4, 1235, "h2", 0, 3, true});
  i.queued = 5;
  i.running = 2;
  return wire::info_reply(i);
}

json a_ran_outcome() {
  std::vector<wire::failure> failed;
  failed.push_back({1, "std::runtime_error", "boom", "#0 f()", "report"});
  json o = wire::ran_outcome({9, 9}, 3, "square", failed);
  wire::with_worker(o, 42, "h1");
  return o;
}

}  // namespace

TEST_SUITE("protocol") {
  TEST_CASE("task messages: requests carry their op and fields") {
    wire::submit_options s;
    s.queue = "q";
    s.target = "square";
    s.bound = false;
    s.max_attempts = 3;
    s.call_timeout_ms = 500;
    json chunks = json::array({wire::chunk({1, 2}, 2)});
    json r = wire::submit_request(s, chunks);
    CHECK(zproc::protocol::op_of(r) == zproc::protocol::op::task_submit);
    CHECK(r[wire::queue] == "q");
    CHECK(r[wire::target] == "square");
    CHECK(r[wire::bound] == false);
    CHECK(r[wire::max_attempts] == 3);
    CHECK(r[wire::call_timeout] == 500);
    CHECK(r[wire::tasks] == chunks);
    s.call_timeout_ms.reset();
    CHECK(!wire::submit_request(s, chunks).contains(wire::call_timeout));

    r = wire::take_request("q", 16, 99, "h");
    CHECK(zproc::protocol::op_of(r) == zproc::protocol::op::task_take);
    CHECK(r[wire::max] == 16);
    CHECK(r[wire::pid] == 99);
    CHECK(r[wire::host] == "h");

    r = wire::wait_request(10, 20, 1000, {});
    CHECK(zproc::protocol::op_of(r) == zproc::protocol::op::task_wait);
    CHECK(r[wire::from] == 10);
    CHECK(r[wire::to] == 20);
    CHECK(r[wire::wait_ms] == 1000);
    CHECK(!r.contains(wire::ack));
    CHECK(wire::wait_request(10, 20, 0, {11, 12})[wire::ack] == json::array({11, 12}));

    r = wire::cancel_request(10, 20);
    CHECK(zproc::protocol::op_of(r) == zproc::protocol::op::task_cancel);
    CHECK(r[wire::to] == 20);
    r = wire::retire_request("q", {5, 6}, "h");
    CHECK(zproc::protocol::op_of(r) == zproc::protocol::op::task_retire);
    CHECK(r[wire::pids] == json::array({5, 6}));
    CHECK(zproc::protocol::op_of(wire::info_request("q")) == zproc::protocol::op::task_info);
    r = wire::done_request(json::array({wire::result(7, a_ran_outcome())}));
    CHECK(zproc::protocol::op_of(r) == zproc::protocol::op::task_done);
    CHECK(r[wire::results][0][0] == 7);
  }

  TEST_CASE("task messages: each reply reads back as it was built") {
    CHECK(wire::parse_submit_reply(wire::submit_reply(41)) == 41);

    const json take = a_take_reply();
    const auto t = wire::parse_take_reply(take);
    CHECK(!t.retire);
    REQUIRE(t.tasks.size() == 2);
    CHECK(t.tasks[0].id == 7);
    CHECK(*t.tasks[0].target == "square");
    CHECK(*t.tasks[0].args == json::binary_t({1, 2, 3}));
    CHECK(t.tasks[0].items == 4);
    CHECK(t.tasks[0].attempt == 1);
    CHECK(t.tasks[0].call_timeout_ms == 250);
    CHECK(t.tasks[1].call_timeout_ms == 0);
    CHECK(wire::parse_take_reply(wire::retire_reply()).retire);
    json older = a_take_reply();  // a server without call timeouts sends five fields
    older[wire::tasks][0].erase(5);
    CHECK(wire::parse_take_reply(older).tasks[0].call_timeout_ms == 0);

    json wait = wire::wait_reply(json::array({wire::result(7, a_ran_outcome())}), true);
    const auto w = wire::parse_wait_reply(wait);
    CHECK(w.left);
    REQUIRE(w.results.size() == 1);
    CHECK(w.results[0].first == 7);
    CHECK(w.results[0].second == &wait[wire::results][0][1]);  // a view, not a copy

    const auto i = wire::parse_info_reply(an_info_reply());
    REQUIRE(i.workers.size() == 2);
    CHECK(i.workers[0].client == 3);
    CHECK(i.workers[0].pid == 1234);
    CHECK(i.workers[0].host == "h1");
    CHECK(i.workers[0].running == 2);
    CHECK(i.workers[0].done == 10);
    CHECK(!i.workers[0].retiring);
    CHECK(i.workers[1].retiring);
    CHECK(i.queued == 5);
    CHECK(i.running == 2);
  }

  TEST_CASE("task messages: outcomes read back; the bytes are accounted") {
    json ran = a_ran_outcome();
    CHECK(wire::outcome_bytes(ran) > 2 + 6 + 4 + 6);
    CHECK(wire::items_of(ran) == 3);
    const auto o = wire::parse_outcome(ran);
    CHECK(!o.lost);
    CHECK(o.items == 3);
    CHECK(o.target == "square");
    CHECK(o.worker_pid == 42);
    CHECK(o.worker_host == "h1");
    CHECK(o.values == std::vector<std::uint8_t>{9, 9});
    REQUIRE(o.failures.size() == 1);
    CHECK(o.failures[0].index == 1);
    CHECK(o.failures[0].type == "std::runtime_error");
    CHECK(o.failures[0].message == "boom");
    CHECK(o.failures[0].stacktrace == "#0 f()");
    CHECK(o.failures[0].crash_report == "report");

    json lost = wire::lost_outcome("it died", 43, "h2", 3, 2, "square");
    CHECK(wire::outcome_bytes(lost) >= 32 + 7);
    const auto l = wire::parse_outcome(lost);
    REQUIRE(l.lost);
    CHECK(*l.lost == "it died");
    CHECK(l.attempts == 3);
    CHECK(l.items == 2);
    CHECK(l.worker_pid == 43);

    CHECK(wire::items_of(json("not an outcome")) == 1);
    CHECK(wire::items_of(json::object()) == 1);
  }

  TEST_CASE("task messages: a reply damaged anywhere is refused as malformed, nothing else") {
    // Every damage either parses (a field that may be absent or an entry that is skipped) or
    // is refused; most are refused.
    CHECK(refusals(wire::submit_reply(41), [](json& j) { wire::parse_submit_reply(j); }) >= 5);
    CHECK(refusals(a_take_reply(), [](json& j) { wire::parse_take_reply(j); }) >= 40);
    CHECK(refusals(wire::wait_reply(json::array({wire::result(7, a_ran_outcome())}), false),
                   [](json& j) { wire::parse_wait_reply(j); }) >= 10);
    CHECK(refusals(an_info_reply(), [](json& j) { wire::parse_info_reply(j); }) >= 40);
    CHECK(refusals(a_ran_outcome(), [](json& j) { wire::parse_outcome(j); }) >= 15);
    CHECK(refusals(wire::lost_outcome("x", 1, "h", 1, 1, "t"),
                   [](json& j) { wire::parse_outcome(j); }) >= 10);

    // Some damages in particular.
    json take = a_take_reply();
    take[wire::tasks][0][2] = "not binary";
    CHECK_THROWS_AS(wire::parse_take_reply(take), wire::malformed);
    take = a_take_reply();
    take[wire::tasks][1][0] = -7;  // a negative id
    CHECK_THROWS_AS(wire::parse_take_reply(take), wire::malformed);
    CHECK_THROWS_AS(wire::parse_take_reply(json::object()), wire::malformed);
    CHECK_THROWS_AS(wire::parse_submit_reply(json::array()), wire::malformed);
    json info = an_info_reply();
    info[wire::workers][1].erase(wire::host);
    CHECK_THROWS_WITH_AS(wire::parse_info_reply(info),
                         doctest::Contains("has no field 'host'"), wire::malformed);
  }
}
