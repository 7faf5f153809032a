// The swarm's task queues without sockets: submitting, taking (fair shares, parking), outcomes
// held until acknowledged, a worker that dies (its tasks queued again, then lost after
// max_attempts), bound tasks cancelled with their submitter, retiring, and bad input.
//
// Every request runs twice, on twin queues: as json (the generic path) and as the MessagePack
// a client sends, read by protocol::decode_task_request (the server's flat path). Both must
// give the same replies, the same refusals and the same state.
#include "protocol/msgpack.hpp"
#include "protocol/ops.hpp"
#include "protocol/task_messages.hpp"
#include "protocol/task_request.hpp"
#include "protocol/tasks.hpp"
#include "server/task_queue.hpp"

#include <doctest/doctest.h>

#include <limits>
#include <optional>
#include <string>

using namespace zproc;
using namespace zproc::server_detail;
using nlohmann::json;
namespace wire = zproc::protocol::tasks;

namespace {
std::string op_name(protocol::op o) { return std::string(protocol::name(o)); }
const std::string submit_op = op_name(protocol::op::task_submit);
const std::string take_op = op_name(protocol::op::task_take);
const std::string done_op = op_name(protocol::op::task_done);
const std::string wait_op = op_name(protocol::op::task_wait);
const std::string cancel_op = op_name(protocol::op::task_cancel);
const std::string retire_op = op_name(protocol::op::task_retire);
}  // namespace

namespace {

constexpr std::uint64_t owner = 1, w1 = 2, w2 = 3, other = 4;

/// The replies as json, in order, with their clients.
json messages(const std::vector<delivery>& replies) {
  json all = json::array();
  for (const auto& d : replies) all.push_back(json::array({d.client_id, d.message()}));
  return all;
}

struct fixture {
  task_queue q;     // requests as json
  task_queue twin;  // the same requests as MessagePack, through the flat reader
  std::vector<delivery> out;
  std::uint64_t next_request = 100;
  task_queue::clock::time_point now = task_queue::clock::now();

  /// Runs a request on both queues; returns the replies it produced (and clears them). A
  /// refusal is thrown (after checking that both refused it alike). `flat_reads`: the flat
  /// reader takes what json takes here (false for a shape it leaves to json).
  std::vector<delivery> run(std::uint64_t client, json request, bool flat_reads = true) {
    out.clear();
    const std::uint64_t id = ++next_request;
    std::optional<op_error> refused, twin_refused;
    try {
      q.execute(request, id, client, now, out);
    } catch (const op_error& e) {
      refused = e;
    }
    json framed = request;
    framed["i"] = id;
    std::string bytes;
    protocol::append_msgpack(bytes, framed);
    protocol::task_request flat;
    const bool read = protocol::decode_task_request(bytes, flat);
    // What the generic path takes, the flat one reads too (these tests send well-typed
    // fields); what it refuses, the flat one leaves to it, or refuses alike.
    const auto o = protocol::op_of(request);
    if (!refused) CHECK(read == (flat_reads && o && protocol::flat_task_op(*o)));
    std::vector<delivery> twin_out;
    try {
      if (read) {
        twin.execute(flat, client, now, twin_out);
      } else {
        twin.execute(request, id, client, now, twin_out);
      }
    } catch (const op_error& e) {
      twin_refused = e;
    }
    REQUIRE(refused.has_value() == twin_refused.has_value());
    CHECK(messages(out) == messages(twin_out));
    // A reply written as bytes names its request (the session refuses a reply too large for
    // the client by that id: id 0 would close the connection).
    for (const auto* replies : {&out, &twin_out})
      for (const auto& d : *replies)
        if (!d.bytes.empty()) CHECK(d.request_id == d.message().at("i").get<std::uint64_t>());
    CHECK(q.size() == twin.size());
    CHECK(q.finished() == twin.finished());
    if (refused) {
      CHECK(refused->message == twin_refused->message);
      throw *refused;
    }
    return std::move(out);
  }
  /// A connection closes (on both queues).
  std::vector<delivery> gone(std::uint64_t client) {
    std::vector<delivery> a, b;
    q.client_gone(client, a);
    twin.client_gone(client, b);
    CHECK(messages(a) == messages(b));
    return a;
  }
  /// The clock ticks (on both queues).
  std::vector<delivery> tick(task_queue::clock::time_point t) {
    std::vector<delivery> a, b;
    q.tick(t, a);
    twin.tick(t, b);
    CHECK(messages(a) == messages(b));
    return a;
  }
  std::uint64_t submit(std::size_t n, std::uint64_t client = owner, bool bound = false,
                       std::uint64_t max_attempts = 3) {
    json tasks = json::array();
    for (std::size_t i = 0; i < n; ++i)
      tasks.push_back(json::array({json::binary({static_cast<std::uint8_t>(i)}), 1}));
    auto r = run(client, {{"o", submit_op}, {"q", "s"}, {"tg", "square"}, {"t", tasks},
                          {"bound", bound}, {"ma", max_attempts}});
    REQUIRE(!r.empty());
    return r.front().message().at("r").at(wire::first).get<std::uint64_t>();
  }
  json take_request(std::size_t max, std::int64_t pid = 42) {
    return {{"o", take_op}, {"q", "s"}, {"max", max}, {"pid", pid}, {"host", "box"}};
  }
  /// The ids of a take reply.
  static std::vector<std::uint64_t> ids(const json& reply) {
    std::vector<std::uint64_t> v;
    for (const auto& t : reply.at("r").at(wire::tasks)) v.push_back(t.at(0).get<std::uint64_t>());
    return v;
  }
  void done(std::uint64_t worker, std::uint64_t id, json outcome = json::object()) {
    if (outcome.empty()) outcome = {{"v", json::binary({7})}, {"n", 1}};
    run(worker, {{"o", done_op}, {"r", json::array({json::array({id, outcome})})}});
  }
  json wait(std::uint64_t from, std::uint64_t to, json ack = json::array(), std::uint64_t ms = 0) {
    auto r = run(owner, {{"o", wait_op}, {"from", from}, {"to", to}, {"ack", ack},
                         {"ms", ms}});
    return r.empty() ? json() : r.front().message().at("r");
  }
};

std::string failure(fixture& f, std::uint64_t client, const json& request) {
  try {
    f.run(client, request);
  } catch (const op_error& e) {
    CHECK(e.code == server_errc::bad_request);
    return e.message;
  }
  return "";
}

}  // namespace

TEST_SUITE("task_queue") {
  TEST_CASE("tasks go to a worker, outcomes wait until acknowledged") {
    fixture f;
    const auto first = f.submit(3);
    CHECK(f.q.queued("s") == 3);
    auto r = f.run(w1, f.take_request(10));
    REQUIRE(r.size() == 1);
    CHECK(f.ids(r[0].message()) == std::vector<std::uint64_t>{first, first + 1, first + 2});
    CHECK(f.q.queued("s") == 0);

    f.done(w1, first + 1);
    json got = f.wait(first, first + 3);
    REQUIRE(got.at("r").size() == 1);
    CHECK(got["r"][0][0] == first + 1);
    CHECK(got["r"][0][1]["w"] == 42);  // the server says which worker ran it
    CHECK(got["left"] == true);
    // Not acknowledged: sent again.
    CHECK(f.wait(first, first + 3).at("r").size() == 1);
    // Acknowledged: gone.
    CHECK(f.wait(first, first + 3, json::array({first + 1})).at("r").empty());
    CHECK(f.q.size() == 2);
  }

  TEST_CASE("a wait parks until an outcome arrives, or answers empty at its deadline") {
    fixture f;
    const auto first = f.submit(2);
    f.run(w1, f.take_request(10));
    CHECK(f.wait(first, first + 2, json::array(), 5000).is_null());  // parked
    auto r = f.run(w1, {{"o", done_op},
                        {"r", json::array({json::array({first, json{{"v", json::binary({1})}}})})}});
    REQUIRE(r.size() == 2);  // the worker's reply and the parked wait's
    CHECK(r[1].client_id == owner);
    CHECK(r[1].message()["r"]["r"].size() == 1);

    CHECK(f.wait(first, first + 2, json::array({first}), 100).is_null());
    CHECK(f.tick(f.now + std::chrono::milliseconds(50)).empty());
    const auto expired = f.tick(f.now + std::chrono::milliseconds(150));
    REQUIRE(expired.size() == 1);
    CHECK(expired[0].message()["r"]["r"].empty());
  }

  TEST_CASE("a take parks when nothing is queued and is served by the next submit") {
    fixture f;
    CHECK(f.run(w1, f.take_request(4)).empty());
    CHECK(f.q.workers("s") == 1);
    auto r = f.run(owner, {{"o", submit_op}, {"q", "s"}, {"tg", "t"},
                           {"t", json::array({json::array({json::binary({1}), 1})})}});
    REQUIRE(r.size() == 2);  // submit reply, then the parked take's
    CHECK(r[1].client_id == w1);
    CHECK(f.ids(r[1].message()).size() == 1);
    CHECK(failure(f, w1, f.take_request(1)) == "");  // one take at a time is fine
    CHECK(!failure(f, w1, f.take_request(1)).empty());  // a second one while parked is not
  }

  TEST_CASE("fair shares: two workers split a short queue") {
    fixture f;
    f.run(w1, f.take_request(100));  // parked
    f.run(w2, f.take_request(100));  // parked
    json tasks = json::array();
    for (int i = 0; i < 8; ++i) tasks.push_back(json::array({json::binary({1}), 1}));
    auto r = f.run(owner, {{"o", submit_op}, {"q", "s"}, {"tg", "t"}, {"t", tasks}});
    REQUIRE(r.size() == 3);  // the submit's reply, then both parked takes
    CHECK(f.q.queued("s") == 0);
    // Each got a share, not one worker all 8.
    CHECK(r[1].client_id == w1);
    CHECK(f.ids(r[1].message()).size() == 4);
    CHECK(r[2].client_id == w2);
    CHECK(f.ids(r[2].message()).size() == 4);
  }

  TEST_CASE("fair shares count calls: a map's large tasks are not all one worker's") {
    // A map's automatic chunks: large ones, then smaller ones toward the end (as 2 workers get
    // them for 2,000 inputs). Counted in tasks, the first worker would take 7 of the 14: 1,750
    // of the 2,000 calls. The share is of the queue's workers, asking or not.
    fixture f;
    f.run(w1, f.take_request(1024));  // parked
    f.run(w2, f.take_request(1024));  // parked
    const std::vector<std::uint64_t> sizes{250, 250, 250, 250, 250, 250, 250,
                                           125, 63,  31,  16,  8,   4,   3};
    json tasks = json::array();
    for (auto n : sizes) tasks.push_back(json::array({json::binary({1}), n}));
    auto r = f.run(owner, {{"o", submit_op}, {"q", "s"}, {"tg", "t"}, {"t", tasks}});
    REQUIRE(r.size() == 3);
    const auto calls_of = [](const json& reply) {
      std::uint64_t n = 0;
      for (const auto& t : reply.at("r").at(wire::tasks)) n += t.at(3).get<std::uint64_t>();
      return n;
    };
    CHECK(r[1].client_id == w1);
    CHECK(calls_of(r[1].message()) == 1000);  // half the calls: 4 large tasks
    CHECK(f.ids(r[1].message()).size() == 4);
    CHECK(r[2].client_id == w2);
    CHECK(calls_of(r[2].message()) == 1000);  // the other half (shares of the queue as it came)
    CHECK(f.q.queued("s") == 0);
  }

  TEST_CASE("a take shares with every worker of the queue, not only those asking") {
    // A worker whose batch size was learnt on tiny calls asks for all it may have: alone, it
    // still takes only its share of the queue's calls, not the whole map.
    fixture f;
    f.run(w1, f.take_request(1));  // parked
    f.submit(1);                    // w1 takes it: a worker of "s", busy
    CHECK(f.q.queued("s") == 0);
    f.run(w2, f.take_request(1024));  // parked, alone
    json tasks = json::array();
    for (int i = 0; i < 8; ++i) tasks.push_back(json::array({json::binary({1}), 250}));
    auto r = f.run(owner, {{"o", submit_op}, {"q", "s"}, {"tg", "t"}, {"t", tasks}});
    REQUIRE(r.size() == 2);
    CHECK(r[1].client_id == w2);
    CHECK(f.ids(r[1].message()).size() == 4);  // 1,000 of 2,000 calls: 2 workers
  }

  TEST_CASE("a take holds more than one task only of the target its calls were measured on") {
    fixture f;
    json tasks = json::array();
    for (int i = 0; i < 3; ++i) tasks.push_back(json::array({json::binary({1}), 1}));
    f.run(owner, {{"o", submit_op}, {"q", "s"}, {"tg", "tiny"}, {"t", tasks}});
    f.run(owner, {{"o", submit_op}, {"q", "s"}, {"tg", "slow"}, {"t", tasks}});
    auto take = [&](std::uint64_t worker, const char* measured_on) {
      json request = f.take_request(1024);
      request[wire::max_calls] = 1000;
      request[wire::calls_target] = measured_on;
      auto r = f.run(worker, request);
      REQUIRE(r.size() == 1);
      return f.ids(r[0].message()).size();
    };
    CHECK(take(w1, "tiny") == 3);  // every tiny one, not the slow ones after them
    CHECK(take(w1, "tiny") == 1);  // one slow task, to measure on
    CHECK(take(w1, "slow") == 2);  // then the rest of them
  }

  TEST_CASE("a take holds at most the calls it asks for, and one task whatever its size") {
    fixture f;
    json tasks = json::array();
    for (std::uint64_t n : {250, 3, 3, 3, 3, 250})
      tasks.push_back(json::array({json::binary({1}), n}));
    f.run(owner, {{"o", submit_op}, {"q", "s"}, {"tg", "t"}, {"t", tasks}});
    auto take = [&](std::uint64_t worker, std::uint64_t calls) {
      json request = f.take_request(1024);
      request[wire::max_calls] = calls;
      auto r = f.run(worker, request);
      REQUIRE(r.size() == 1);
      return f.ids(r[0].message()).size();
    };
    CHECK(take(w1, 10) == 1);  // the first task, larger than asked
    CHECK(take(w2, 10) == 3);  // 3 + 3 + 3: a fourth would pass 10
    json again = f.take_request(1024);
    again[wire::max_calls] = 10;
    auto r = f.run(w2, again);  // (w2's take was answered: it may take again)
    REQUIRE(r.size() == 1);
    CHECK(f.ids(r[0].message()).size() == 1);  // 3, then 250 would pass it
    CHECK(f.q.queued("s") == 1);
  }

  TEST_CASE("a worker that dies gives its tasks back; after max_attempts they are lost") {
    fixture f;
    const auto first = f.submit(1, owner, false, 2);
    f.run(w1, f.take_request(1, 501));
    f.gone(w1);
    CHECK(f.q.queued("s") == 1);  // attempt 1 failed: queued again
    auto r = f.run(w2, f.take_request(1, 502));
    REQUIRE(r.size() == 1);
    CHECK(r[0].message()["r"]["t"][0][4] == 2);  // attempt 2
    f.gone(w2);
    json got = f.wait(first, first + 1);
    REQUIRE(got.at("r").size() == 1);
    const json& o = got["r"][0][1];
    CHECK(o["a"] == 2);
    CHECK(o["w"] == 502);
    CHECK(o["x"].get<std::string>().find("pid 502") != std::string::npos);
  }

  TEST_CASE("bound tasks are cancelled when their submitter leaves; others are kept") {
    fixture f;
    const auto bound = f.submit(2, owner, true);
    const auto kept = f.submit(1, owner, false);
    f.gone(owner);
    CHECK(f.q.queued("s") == 1);
    auto r = f.run(w1, f.take_request(10));
    CHECK(f.ids(r[0].message()) == std::vector<std::uint64_t>{kept});
    f.done(w1, kept);
    // Anyone may collect it by id.
    auto got = f.run(other, {{"o", wait_op}, {"from", kept}, {"to", kept + 1}});
    CHECK(got[0].message()["r"]["r"].size() == 1);
    (void)bound;
  }

  TEST_CASE("cancel drops queued tasks and the outcome of running ones") {
    fixture f;
    const auto first = f.submit(3);
    auto r = f.run(w1, f.take_request(1));
    CHECK(f.ids(r[0].message()) == std::vector<std::uint64_t>{first});
    f.run(owner, {{"o", cancel_op}, {"from", first}, {"to", first + 3}});
    CHECK(f.q.queued("s") == 0);
    f.done(w1, first);
    CHECK(f.q.size() == 0);
    CHECK(f.wait(first, first + 3).at("left") == false);
  }

  TEST_CASE("a retired worker finishes what it holds and is told to go") {
    fixture f;
    f.submit(1);
    auto r = f.run(w1, f.take_request(1, 77));
    // Another host's worker with the same pid is not this one.
    auto other_host = f.run(owner, {{"o", retire_op}, {"q", "s"}, {"host", "elsewhere"},
                                    {"pids", json::array({77})}});
    CHECK(other_host[0].message()["r"] == 0);
    auto ret = f.run(owner, {{"o", retire_op}, {"q", "s"}, {"host", "box"},
                             {"pids", json::array({77})}});
    CHECK(ret[0].message()["r"] == 1);
    f.done(w1, f.ids(r[0].message())[0]);
    auto bye = f.run(w1, f.take_request(1, 77));
    CHECK(bye[0].message()["r"]["retire"] == true);
  }

  TEST_CASE("a worker retired before it connected is retired when it does") {
    fixture f;
    f.run(owner, {{"o", retire_op}, {"q", "s"}, {"host", "box"}, {"pids", json::array({88})}});
    f.submit(1);
    auto r = f.run(w1, f.take_request(1, 88));
    CHECK(r[0].message()["r"]["retire"] == true);
    CHECK(f.q.queued("s") == 1);  // the task waits for another worker
  }

  TEST_CASE("outcomes of gone submitters are bounded; collected ones do not count") {
    task_queue q(2);
    std::vector<delivery> out;
    auto run = [&](std::uint64_t client, const json& request) {
      out.clear();
      q.execute(request, 1, client, task_queue::clock::now(), out);
      return out;
    };
    auto tasks = json::array();
    for (int i = 0; i < 4; ++i) tasks.push_back(json::array({json::binary({1}), 1}));
    const auto first = run(owner, {{"o", submit_op}, {"q", "s"}, {"tg", "t"}, {"t", tasks}})[0]
                           .message()["r"]["first"].get<std::uint64_t>();
    std::vector<delivery> ignored;
    q.client_gone(owner, ignored);  // unbound: kept
    run(w1, {{"o", take_op}, {"q", "s"}, {"max", 10}, {"pid", 1}, {"host", "box"}});
    json results = json::array();
    for (std::uint64_t id = first; id < first + 4; ++id)
      results.push_back(json::array({id, json{{"v", json::binary({2})}}}));
    run(w1, {{"o", done_op}, {"r", results}});
    CHECK(q.finished() == 2);  // the two oldest went
    auto got = run(other, {{"o", wait_op}, {"from", first}, {"to", first + 4}});
    REQUIRE(got[0].message()["r"]["r"].size() == 2);
    CHECK(got[0].message()["r"]["r"][0][0] == first + 2);
    // Collected: no longer held, nor counted.
    run(other, {{"o", wait_op}, {"from", first}, {"to", first + 4},
                {"ack", json::array({first + 2, first + 3})}});
    CHECK(q.size() == 0);
  }

  TEST_CASE("bad input is refused and changes nothing") {
    fixture f;
    CHECK(!failure(f, owner, {{"o", submit_op}, {"q", "s"}, {"tg", "t"}, {"t", json::array()}}).empty());
    CHECK(!failure(f, owner, {{"o", submit_op}, {"q", "s"}, {"tg", "t"},
                              {"t", json::array({json::array({"not binary", 1})})}}).empty());
    CHECK(!failure(f, owner, {{"o", submit_op}, {"q", ""}, {"tg", "t"},
                              {"t", json::array({json::array({json::binary({1}), 1})})}}).empty());
    CHECK(!failure(f, owner, {{"o", submit_op}, {"q", "s"}, {"tg", "t"}, {"ma", 0},
                              {"t", json::array({json::array({json::binary({1}), 1})})}}).empty());
    CHECK(!failure(f, owner, {{"o", wait_op}, {"from", 5}, {"to", 1}}).empty());
    CHECK(!failure(f, owner, {{"o", done_op}, {"r", json::array({1})}}).empty());
    CHECK(f.q.size() == 0);
    // A result for a task this worker does not hold is ignored.
    const auto first = f.submit(1);
    auto r = f.run(w2, {{"o", done_op},
                        {"r", json::array({json::array({first, json::object()})})}});
    CHECK(r[0].message()["r"] == 0);
    CHECK(f.q.queued("s") == 1);
  }

  TEST_CASE("a call timeout past what a worker reads as signed reaches it as the most, not "
            "as a negative (which reads as none)") {
    fixture f;
    const std::uint64_t huge = (1ULL << 63) + 5;
    f.run(owner, {{"o", submit_op}, {"q", "s"}, {"tg", "t"}, {"ct", huge},
                  {"t", json::array({json::array({json::binary({1}), 1})})}});
    auto r = f.run(w1, f.take_request(1));
    REQUIRE(r.size() == 1);
    std::string result;
    protocol::append_msgpack(result, r[0].message().at("r"));
    const auto taken = wire::parse_take_reply(result);
    REQUIRE(taken.tasks.size() == 1);
    CHECK(taken.tasks[0].call_timeout_ms == std::numeric_limits<std::int64_t>::max());
  }

  TEST_CASE("a task's arguments sent with a binary subtype reach the worker as a plain binary") {
    fixture f;
    // (MessagePack's ext type: json reads it as a binary; the flat reader leaves it to json.)
    auto r = f.run(owner, {{"o", submit_op}, {"q", "s"}, {"tg", "t"},
                           {"t", json::array({json::array({json::binary({1, 2}, 7), 1})})}},
               false);
    REQUIRE(r.size() == 1);
    r = f.run(w1, f.take_request(1));
    REQUIRE(r.size() == 1);
    std::string result;
    protocol::append_msgpack(result, r[0].message().at("r"));
    const auto taken = wire::parse_take_reply(result);  // what the worker reads
    REQUIRE(taken.tasks.size() == 1);
    CHECK(taken.tasks[0].args == std::string("\x01\x02", 2));
  }

  TEST_CASE("an outcome nested deeper than a stored value may be is refused on both paths") {
    fixture f;
    const auto first = f.submit(2);
    auto r = f.run(w1, f.take_request(2));
    REQUIRE(r.size() == 1);
    auto nested = [](std::size_t levels) {  // an outcome map of `levels` levels in all
      json v = 1;
      for (std::size_t i = 2; i < levels; ++i) v = json::array({v});
      return json{{"v", json::binary({1})}, {"n", 1}, {"deep", v}};
    };
    // As deep as a stored value may be: taken (by the flat reader too: the fixture checks it).
    r = f.run(w1, {{"o", done_op}, {"r", json::array({json::array({first, nested(264)})})}});
    CHECK(r[0].message()["r"] == 1);
    // One level more: refused, and nothing changes.
    const std::string why =
        failure(f, w1, {{"o", done_op}, {"r", json::array({json::array({first + 1, nested(265)})})}});
    CHECK(why.find("nests deeper than 264") != std::string::npos);
    CHECK(f.q.finished() == 1);
    // The outcome kept reaches its submitter whole, one level deeper than it came.
    json got = f.wait(first, first + 2);
    REQUIRE(got.at("r").size() == 1);
  }

  TEST_CASE("a result given twice in one task_done finishes its task once") {
    fixture f;
    const auto first = f.submit(1);
    f.run(w1, f.take_request(1));
    const json o{{"v", json::binary({1})}, {"n", 1}};
    auto r = f.run(w1, {{"o", done_op},
                        {"r", json::array({json::array({first, o}), json::array({first, o})})}});
    CHECK(r[0].message()["r"] == 1);
    CHECK(f.q.finished() == 1);
  }
}
