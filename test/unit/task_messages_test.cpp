// The typed messages of the task queue (protocol/task_messages.hpp): every reply a server builds
// reads back as it was built, every request carries its op and fields, and a reply damaged at
// any position is refused as `malformed` (never another exception, never a crash).
#include "protocol/msgpack.hpp"
#include "protocol/ops.hpp"
#include "protocol/task_messages.hpp"
#include "protocol/task_request.hpp"
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

/// The whole MessagePack of `v`.
std::string packed(const json& v) {
  std::string out;
  zproc::protocol::append_msgpack(out, v);
  return out;
}

/// A take reply as the server writes it: its result.
json a_take_reply() {
  wire::take_reply_writer w(5);
  w.add(7, "square", packed(json::binary({1, 2, 3})), 4, 1, 250);
  w.add(8, "square", packed(json::binary({4})), 1, 2, 0);
  CHECK(w.size() == 2);
  const json reply = zproc::protocol::decode_msgpack(std::move(w).finish());
  CHECK(reply[field::id] == 5);
  return reply[field::result];
}

/// A wait reply as the server writes it, of `outcomes` (by id): its result.
json a_wait_reply(const std::vector<std::pair<std::uint64_t, json>>& outcomes, bool left) {
  wire::wait_reply_writer w(6);
  for (const auto& [id, o] : outcomes) w.add(id, packed(o));
  const json reply = zproc::protocol::decode_msgpack(std::move(w).finish(left));
  CHECK(reply[field::id] == 6);
  return reply[field::result];
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
  return zproc::protocol::decode_msgpack(
      wire::stamped_outcome(wire::ran_outcome("\x09\x09", 3, "square", failed), 42, "h1"));
}

}  // namespace

TEST_SUITE("protocol") {
  TEST_CASE("task messages: requests carry their op and fields") {
    wire::submit_options s{"q", "square", false, 3, 500};
    auto submit_of = [](const wire::submit_options& o, const std::vector<std::string>& args) {
      wire::submit_writer w(o);
      for (const auto& a : args) w.add(a, a.size());
      CHECK(w.size() == args.size());
      return std::move(w).finish().to_json();
    };
    json r = submit_of(s, {"\x01\x02"});
    const json chunks = json::array({json::array({json::binary({1, 2}), 2})});
    CHECK(zproc::protocol::op_of(r) == zproc::protocol::op::task_submit);
    CHECK(r[wire::queue] == "q");
    CHECK(r[wire::target] == "square");
    CHECK(r[wire::bound] == false);
    CHECK(r[wire::max_attempts] == 3);
    CHECK(r[wire::call_timeout] == 500);
    CHECK(r[wire::tasks] == chunks);
    s.call_timeout_ms.reset();
    CHECK(!submit_of(s, {"\x01"}).contains(wire::call_timeout));
    CHECK(submit_of(s, {}).at(wire::tasks).empty());
    CHECK(!r.contains(zproc::protocol::field::ns));  // a swarm, not a namespace

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
    wire::done_writer done;
    done.add(7, packed(a_ran_outcome()));
    CHECK(done.size() == 1);
    r = std::move(done).finish().to_json();
    CHECK(zproc::protocol::op_of(r) == zproc::protocol::op::task_done);
    CHECK(r[wire::results][0][0] == 7);
  }

  TEST_CASE("task messages: each reply reads back as it was built") {
    CHECK(wire::parse_submit_reply(wire::submit_reply(41)) == 41);

    const json take = a_take_reply();
    const std::string take_bytes = packed(take);  // (the views point into it)
    const auto t = wire::parse_take_reply(take_bytes);
    CHECK(!t.retire);
    REQUIRE(t.tasks.size() == 2);
    CHECK(t.tasks[0].id == 7);
    CHECK(t.tasks[0].target == "square");
    CHECK(t.tasks[0].args == std::string("\x01\x02\x03", 3));
    CHECK(t.tasks[0].items == 4);
    CHECK(t.tasks[0].attempt == 1);
    CHECK(t.tasks[0].call_timeout_ms == 250);
    CHECK(t.tasks[1].call_timeout_ms == 0);
    CHECK(wire::parse_take_reply(packed(wire::retire_reply())).retire);
    json older = a_take_reply();  // a server without call timeouts sends five fields
    older[wire::tasks][0].erase(5);
    CHECK(wire::parse_take_reply(packed(older)).tasks[0].call_timeout_ms == 0);

    json wait = a_wait_reply({{7, a_ran_outcome()}}, true);
    const std::string wait_bytes = packed(wait);
    const auto w = wire::parse_wait_reply(wait_bytes);
    CHECK(w.left);
    REQUIRE(w.results.size() == 1);
    CHECK(w.results[0].first == 7);
    CHECK(w.results[0].second.data() > wait_bytes.data());  // a view, not a copy
    CHECK(w.results[0].second.data() < wait_bytes.data() + wait_bytes.size());
    CHECK(zproc::protocol::decode_msgpack(w.results[0].second) == a_ran_outcome());
    json none = a_wait_reply({}, false);
    CHECK(wire::parse_wait_reply(packed(none)).results.empty());
    // Many entries: the count is patched in after them.
    std::vector<std::pair<std::uint64_t, json>> many;
    for (std::uint64_t id = 1; id <= 70'000; ++id) many.emplace_back(id, json::object());
    json all = a_wait_reply(many, false);
    CHECK(wire::parse_wait_reply(packed(all)).results.size() == 70'000);

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

  TEST_CASE("task messages: outcomes read back, their values given as a binary or an ext") {
    json ran = a_ran_outcome();
    const auto o = wire::parse_outcome(packed(ran));
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
    const auto l = wire::parse_outcome(packed(lost));
    REQUIRE(l.lost);
    CHECK(*l.lost == "it died");
    CHECK(l.attempts == 3);
    CHECK(l.items == 2);
    CHECK(l.worker_pid == 43);

    // Values as an ext (json reads it as a binary with a subtype): read as their bytes.
    for (const auto& v : {json::binary({9, 9}, 5), json::binary({9, 9, 9, 9}, 1)}) {
      json ext = ran;
      ext[wire::values] = v;
      const std::vector<std::uint8_t> bytes(v.get_binary().begin(), v.get_binary().end());
      CHECK(wire::parse_outcome(packed(ext)).values == bytes);
    }
    json not_binary = ran;
    not_binary[wire::values] = "99";
    CHECK_THROWS_WITH_AS(wire::parse_outcome(packed(not_binary)),
                         "an outcome's values are not binary", wire::malformed);
  }

  TEST_CASE("task messages: a reply damaged anywhere is refused as malformed, nothing else") {
    // Every damage either parses (a field that may be absent or an entry that is skipped) or
    // is refused; most are refused.
    CHECK(refusals(wire::submit_reply(41), [](json& j) { wire::parse_submit_reply(j); }) >= 5);
    CHECK(refusals(a_take_reply(), [](json& j) { wire::parse_take_reply(packed(j)); }) >= 40);
    CHECK(refusals(a_wait_reply({{7, a_ran_outcome()}}, false),
                   [](json& j) { wire::parse_wait_reply(packed(j)); }) >= 10);
    CHECK(refusals(an_info_reply(), [](json& j) { wire::parse_info_reply(j); }) >= 40);
    CHECK(refusals(a_ran_outcome(), [](json& j) { wire::parse_outcome(packed(j)); }) >= 15);
    CHECK(refusals(wire::lost_outcome("x", 1, "h", 1, 1, "t"),
                   [](json& j) { wire::parse_outcome(packed(j)); }) >= 10);

    // Some damages in particular.
    json take = a_take_reply();
    take[wire::tasks][0][2] = "not binary";
    CHECK_THROWS_AS(wire::parse_take_reply(packed(take)), wire::malformed);
    take = a_take_reply();
    take[wire::tasks][1][0] = -7;  // a negative id
    CHECK_THROWS_AS(wire::parse_take_reply(packed(take)), wire::malformed);
    CHECK_THROWS_AS(wire::parse_take_reply(packed(json::object())), wire::malformed);
    // Not MessagePack, or cut anywhere: refused as malformed too.
    const std::string whole = packed(a_take_reply());
    for (std::size_t n = 0; n < whole.size(); ++n)
      CHECK_THROWS_AS(wire::parse_take_reply(whole.substr(0, n)), wire::malformed);
    const std::string outcome = packed(a_ran_outcome());
    for (std::size_t n = 0; n < outcome.size(); ++n)
      CHECK_THROWS_AS(wire::parse_outcome(outcome.substr(0, n)), wire::malformed);
    CHECK_THROWS_AS(wire::parse_submit_reply(json::array()), wire::malformed);
    json info = an_info_reply();
    info[wire::workers][1].erase(wire::host);
    CHECK_THROWS_WITH_AS(wire::parse_info_reply(info),
                         doctest::Contains("has no field 'host'"), wire::malformed);
  }

  TEST_CASE("task messages: the server stamps the worker on an outcome, replacing the worker's") {
    const json ran = zproc::protocol::decode_msgpack(wire::ran_outcome("\x01", 1, "square", {}));
    CHECK(ran == json{{wire::values, json::binary({1})}, {wire::items, 1}, {wire::target_name, "square"}});
    json o = zproc::protocol::decode_msgpack(wire::stamped_outcome(packed(ran), -5, "box"));
    json want = ran;
    want[wire::worker_pid] = -5;
    want[wire::worker_host] = "box";
    CHECK(o == want);
    // A worker that names itself is not believed: the server's pid and host stand, once.
    json lying = ran;
    lying[wire::worker_pid] = 1;
    lying[wire::worker_host] = "elsewhere";
    const std::string bytes = wire::stamped_outcome(packed(lying), 42, "box");
    o = zproc::protocol::decode_msgpack(bytes);
    want[wire::worker_pid] = 42;
    CHECK(o == want);
    std::size_t fields = 0;
    zproc::protocol::msgpack_reader r(bytes);
    REQUIRE(r.map_header(fields));
    CHECK(fields == want.size());  // no key twice
    CHECK(zproc::protocol::decode_msgpack(wire::stamped_outcome(packed(json::object()), 1, "")) ==
          json{{wire::worker_pid, 1}, {wire::worker_host, ""}});
    CHECK_THROWS_AS(wire::stamped_outcome(packed(json::array({1})), 1, "h"), wire::malformed);
    CHECK_THROWS_AS(wire::stamped_outcome(std::string("\x81\x01\x02", 3), 1, "h"),
                    wire::malformed);  // a key that is not a string
    CHECK_THROWS_AS(wire::stamped_outcome(packed(ran).substr(0, 5), 1, "h"), wire::malformed);
  }

  TEST_CASE("task requests: read without a json tree, as the client sends them") {
    namespace protocol = zproc::protocol;
    using protocol::op;
    auto framed = [](json r, std::uint64_t id = 9) {
      r[field::id] = id;
      return packed(r);
    };
    const wire::submit_options s{"q", "square", true, 2, 500};
    const json chunks = json::array(
        {json::array({json::binary({1, 2}), 2}), json::array({json::binary({3}), 1})});
    wire::submit_writer writer(s);
    writer.add("\x01\x02", 2);
    writer.add("\x03", 1);
    const json good_submit = std::move(writer).finish().to_json();
    protocol::task_request t;
    const std::string submit = framed(good_submit);
    REQUIRE(protocol::decode_task_request(submit, t));
    CHECK(t.id == 9);
    CHECK(t.code == op::task_submit);
    CHECK(t.queue == "q");
    CHECK(t.target == "square");
    CHECK(t.bound);
    CHECK(t.max_attempts == 2);
    CHECK(t.call_timeout_ms == 500);
    REQUIRE(t.tasks.size() == 2);
    CHECK(t.tasks[0].args == packed(chunks[0][0]));  // the whole binary, as it came
    CHECK(t.tasks[0].items == 2);
    CHECK(t.tasks[1].args == packed(chunks[1][0]));

    const std::string take = framed(wire::take_request("q", 16, -3, "h"));  // (views into it)
    REQUIRE(protocol::decode_task_request(take, t));
    CHECK(t.code == op::task_take);
    CHECK(t.queue == "q");
    CHECK(t.max == 16);
    CHECK(t.pid == -3);
    CHECK(t.host == "h");

    const json outcome =
        zproc::protocol::decode_msgpack(wire::ran_outcome("\x09", 1, "square", {{0, "e", "m", "s", "c"}}));
    CHECK(outcome[wire::failures] == json::array({json::array({0, "e", "m", "s", "c"})}));
    // A task_done as json (the shapes a writer would not write, too).
    auto done_of = [](json list) {
      json r = json::object();
      r[field::op] = std::string(protocol::name(op::task_done));
      r[wire::results] = std::move(list);
      return r;
    };
    wire::done_writer writer_of_done;
    writer_of_done.add(7, packed(outcome));
    writer_of_done.add(8, packed(json::object()));
    const std::string done = framed(std::move(writer_of_done).finish().to_json());
    REQUIRE(protocol::decode_task_request(done, t));
    CHECK(t.code == op::task_done);
    REQUIRE(t.results.size() == 2);
    CHECK(t.results[0].task == 7);
    CHECK(t.results[0].outcome == packed(outcome));
    CHECK(t.results[1].outcome == packed(json::object()));

    REQUIRE(protocol::decode_task_request(framed(wire::wait_request(10, 20, 5, {11, 12})), t));
    CHECK(t.code == op::task_wait);
    CHECK(t.from == 10);
    CHECK(t.to == 20);
    CHECK(t.wait_ms == 5);
    CHECK(t.ack == std::vector<std::uint64_t>{11, 12});

    // Cut anywhere: not read (the json path refuses it as a broken frame).
    for (const std::string& whole : {submit, done})
      for (std::size_t n = 0; n < whole.size(); ++n)
        CHECK(!protocol::decode_task_request(std::string_view(whole).substr(0, n), t));
    // What the json path words a refusal for, or reads differently, is left to it.
    const std::vector<json> left_to_json = {
        framed(good_submit, 0),                                      // no id
        [&] { json r = good_submit; r["extra"] = 1; return r; }(),   // a field it does not know
        [&] { json r = good_submit; r[wire::queue] = ""; return r; }(),
        [&] { json r = good_submit; r[wire::target] = 5; return r; }(),
        [&] { json r = good_submit; r[wire::tasks] = json::array(); return r; }(),
        [&] { json r = good_submit; r[wire::tasks][0][1] = 0; return r; }(),  // no items
        [&] { json r = good_submit; r[wire::tasks][0][0] = json::binary({1}, 3); return r; }(),
        [&] { json r = good_submit; r[wire::max_attempts] = 0; return r; }(),
        [&] { json r = good_submit; r[wire::max_attempts] = 1ULL << 32; return r; }(),
        [&] { json r = good_submit; r[wire::bound] = 1; return r; }(),
        [&] { json r = good_submit; r.erase(wire::target); return r; }(),
        wire::take_request("", 1, 1, "h"),
        [] { json r = wire::take_request("q", 1, 1, "h"); r[wire::pid] = "1"; return r; }(),
        done_of(json::array({json::array({7, json::array()})})),  // not a map
        done_of(json::array({json::array({-7, json::object()})})),
        [] { json r = wire::wait_request(1, 2, 0, {}); r.erase(wire::to); return r; }(),
        [] { json r = wire::wait_request(1, 2, 0, {3}); r[wire::ack][0] = "3"; return r; }(),
        wire::cancel_request(1, 2),  // an op it does not hold
    };
    for (const json& r : left_to_json) {
      CAPTURE(r.dump());
      CHECK(!protocol::decode_task_request(r.is_string() ? r.get<std::string>() : framed(r), t));
    }
  }
}
