// Waiting for a swarm's task outcomes without I/O: the requests and their acknowledgements,
// what scripted replies bring (each outcome once; values, remote errors, lost tasks with the
// crash report), tasks gone from the server, and a malformed reply or outcome at every step.
#include "protocol/ops.hpp"
#include "protocol/tasks.hpp"
#include "protocol/msgpack.hpp"
#include "swarm/task_wait.hpp"

#include <zproc/process_error.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

using zproc::json;
using zproc::detail::task_outcome;
using zproc::detail::task_wait;
namespace wire = zproc::protocol::tasks;
namespace field = zproc::protocol::field;

namespace {

/// An outcome of `items` calls that all returned, with these packed value bytes.
json returned(std::vector<std::uint8_t> values, int items = 1) {
  return json{{wire::values, json::binary(std::move(values))}, {wire::items, items},
              {wire::worker_pid, 42}, {wire::worker_host, "h1"}, {wire::target_name, "f"}};
}

json reply(std::vector<std::pair<std::uint64_t, json>> results, bool left = true) {
  json r{{wire::results, json::array()}, {wire::left, left}};
  for (auto& [id, o] : results) r[wire::results].push_back(json::array({id, std::move(o)}));
  return r;
}

struct outcome_of {
  std::vector<task_outcome> got;
  zproc::error_code ec;
  std::string message;
};

outcome_of feed(task_wait& w, json r, const task_wait::crash_report_fn& report = {}) {
  outcome_of o;
  std::string bytes;
  zproc::protocol::append_msgpack(bytes, r);
  o.got = w.on_reply(bytes, report, o.ec, o.message);
  return o;
}

template <class E>
std::optional<E> error_of(const std::exception_ptr& p) {
  if (!p) return std::nullopt;
  try {
    std::rethrow_exception(p);
  } catch (const E& e) {
    return e;
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

TEST_SUITE("swarm_algorithms") {
  TEST_CASE("task wait: a request over the range; what arrived is acknowledged by the next one") {
    task_wait w("sw", 10, {1, 1, 1});
    json r1 = w.request(5000);
    CHECK(r1.at(field::op) == "task_wait");
    CHECK(r1.at(wire::from) == 10);
    CHECK(r1.at(wire::to) == 13);
    CHECK(r1.at(wire::wait_ms) == 5000);
    CHECK(!r1.contains(wire::ack));
    auto o = feed(w, reply({{11, returned({1, 2})}, {12, returned({3})}}));
    CHECK(!o.ec);
    REQUIRE(o.got.size() == 2);
    CHECK(o.got[0].id == 11);
    CHECK(o.got[0].values == std::vector<std::uint8_t>{1, 2});
    CHECK(o.got[0].failed.size() == 1);
    CHECK(!o.got[0].failed[0]);
    CHECK(w.remaining() == 1);
    CHECK(w.has_acks());
    json r2 = w.request(0);
    CHECK(r2.at(wire::ack) == json::array({11, 12}));
    CHECK(!w.has_acks());
    // r2 was neither answered nor failed: its acknowledgements go again with the next request.
    CHECK(w.request(0).at(wire::ack) == json::array({11, 12}));
    feed(w, reply({}));
    CHECK(!w.request(0).contains(wire::ack));
  }

  TEST_CASE("task wait: a request without a reply leaves its acknowledgements to the next one") {
    task_wait w("sw", 1, {1, 1});
    w.request(0);
    feed(w, reply({{1, returned({7})}}));
    CHECK(w.request(0).at(wire::ack) == json::array({1}));
    w.no_reply();  // the connection was lost: the server may not have them
    CHECK(w.request(0).at(wire::ack) == json::array({1}));
    feed(w, reply({}));  // this one was answered: acknowledged
    CHECK(!w.request(0).contains(wire::ack));
  }

  TEST_CASE("task wait: each outcome once; ids outside the range are ignored") {
    task_wait w("sw", 1, {1, 1});
    w.request(0);
    auto a = feed(w, reply({{1, returned({1})}, {1, returned({9})}, {0, returned({5})},
                            {3, returned({5})}}));
    REQUIRE(a.got.size() == 1);
    CHECK(a.got[0].values == std::vector<std::uint8_t>{1});
    w.request(0);
    auto b = feed(w, reply({{1, returned({1})}, {2, returned({2})}}));  // 1 sent again
    REQUIRE(b.got.size() == 1);
    CHECK(b.got[0].id == 2);
    CHECK(w.remaining() == 0);
  }

  TEST_CASE("task wait: failed calls are remote errors at their index; the others return") {
    task_wait w("sw", 1, {3});
    w.request(0);
    json o = returned({1}, 3);
    o[wire::failures] = json::array(
        {json::array({1, "std::runtime_error", "boom", "#0 f()", "report text"}),
         json::array({7, "std::logic_error", "out of range index", "", ""}),  // ignored
         json::array({-1, "std::logic_error", "negative index", "", ""}),     // ignored
         json::array({"x", "t", "m", "s", "r"})});                          // ignored
    auto got = feed(w, reply({{1, std::move(o)}}));
    REQUIRE(got.got.size() == 1);
    const auto& failed = got.got[0].failed;
    REQUIRE(failed.size() == 3);
    CHECK(!failed[0]);
    CHECK(!failed[2]);
    const auto e = error_of<zproc::remote_error>(failed[1]);
    REQUIRE(e);
    CHECK(e->type() == "std::runtime_error");
    CHECK(e->pid() == 42);
    CHECK(e->target() == "f");
    CHECK(e->crash_report() == "report text");
    CHECK(std::string(e->what()).find("swarm 'sw' task 1, worker pid 42 on h1") !=
          std::string::npos);
  }

  TEST_CASE("task wait: a lost task fails each of its calls with the worker's crash report") {
    task_wait w("sw", 5, {2});
    w.request(0);
    json lost{{wire::lost, "its worker died 3 times"}, {wire::items, 2}, {wire::worker_pid, 77},
              {wire::attempts, 3}, {wire::target_name, "g"}};
    std::vector<std::int64_t> asked;
    auto got = feed(w, reply({{5, std::move(lost)}}), [&](std::int64_t pid) {
      asked.push_back(pid);
      return std::string("SIGSEGV in g");
    });
    CHECK(asked == std::vector<std::int64_t>{77});
    REQUIRE(got.got.size() == 1);
    REQUIRE(got.got[0].failed.size() == 2);
    const auto e = error_of<zproc::task_lost_error>(got.got[0].failed[1]);
    REQUIRE(e);
    CHECK(e->attempts() == 3);
    CHECK(e->crash_report() == "SIGSEGV in g");
    CHECK(std::string(e->what()).find("its worker died 3 times") != std::string::npos);
  }

  TEST_CASE("task wait: tasks the server no longer holds are bad_request, not a wait for ever") {
    task_wait w("sw", 1, {1, 1});
    w.request(0);
    auto none = feed(w, reply({}, true));  // held, not done yet: nothing, no error
    CHECK(!none.ec);
    auto gone = feed(w, reply({}, false));
    CHECK(gone.ec == zproc::server_errc::bad_request);
    CHECK(gone.message.find("no longer on the server") != std::string::npos);
    CHECK(gone.message.find("tasks 1 to 2") != std::string::npos);
  }

  TEST_CASE("task wait: a cancel leaves nothing to receive or acknowledge") {
    task_wait w("sw", 1, {1, 1, 1});
    w.request(0);
    feed(w, reply({{1, returned({1})}}));
    json c = w.cancel_request();
    CHECK(c.at(field::op) == "task_cancel");
    CHECK(c.at(wire::from) == 1);
    CHECK(c.at(wire::to) == 4);
    CHECK(w.remaining() == 0);
    CHECK(!w.has_acks());
  }

  TEST_CASE("task wait: a malformed reply is protocol_error and changes nothing; a malformed "
            "outcome fails its own calls only") {
    const std::vector<std::pair<const char*, json>> broken = {
        {"no results", json{{wire::left, true}}},
        {"no left", json{{wire::results, json::array()}}},
        {"left is not a bool", json{{wire::results, json::array()}, {wire::left, 1}}},
        {"an id that is text",
         json{{wire::results, json::array({json::array({"1", returned({1})})})}, {wire::left, true}}},
        {"a result without an outcome",
         json{{wire::results, json::array({json::array({1})})}, {wire::left, true}}},
        {"a good result, then a broken one",
         json{{wire::results, json::array({json::array({1, returned({1})}), json::array({2})})},
              {wire::left, true}}},
    };
    for (const auto& entry : broken) {  // (no structured binding: CAPTURE is a lambda, and
      const char* what = entry.first;      // Clang 14 cannot capture one)
      const json& bad = entry.second;
      CAPTURE(what);
      task_wait w("sw", 1, {1, 1});
      w.request(0);
      auto o = feed(w, bad);
      CHECK(o.ec == zproc::client_errc::protocol_error);
      CHECK(o.message.find("unexpected task_wait reply") != std::string::npos);
      CHECK(o.got.empty());
      CHECK(w.remaining() == 2);  // nothing marked received, so nothing is lost
      CHECK(!w.has_acks());
      // A good reply afterwards brings both.
      auto later = feed(w, reply({{1, returned({1})}, {2, returned({2})}}));
      CHECK(later.got.size() == 2);
    }
    // An outcome whose failure list is broken: its calls fail with protocol_error.
    task_wait w("sw", 1, {2, 1});
    w.request(0);
    json odd = returned({1}, 2);
    odd[wire::failures] = json::array({json::array({0, 1, 2, 3, 4})});  // type is a number
    auto o = feed(w, reply({{1, std::move(odd)}, {2, returned({2})}}));
    CHECK(!o.ec);
    REQUIRE(o.got.size() == 2);
    REQUIRE(o.got[0].failed.size() == 2);
    const auto e = error_of<zproc::error>(o.got[0].failed[0]);
    REQUIRE(e);
    CHECK(e->code() == zproc::client_errc::protocol_error);
    CHECK(std::string(e->what()).find("task 1: malformed outcome") != std::string::npos);
    CHECK(!o.got[1].failed[0]);  // the other task is fine
  }

  TEST_CASE("task wait: an outcome with another number of results than its task has calls fails "
            "the task's calls, as many as were submitted") {
    // (A worker's outcome says how many results it holds; the submitter knows how many calls it
    // put in the task. A map yields one result per input whatever a worker says.)
    struct odd_outcome {
      const char* what;
      json outcome;
    };
    json no_count = returned({1, 1});
    no_count.erase(wire::items);
    json lost{{wire::lost, "its worker died 3 times"}, {wire::items, 5}, {wire::worker_pid, 77},
              {wire::attempts, 3}, {wire::target_name, "g"}};
    const std::vector<odd_outcome> odd = {
        {"more results", returned({1, 2, 3, 4, 5}, 5)},
        {"fewer results", returned({1}, 1)},
        {"no count (read as one)", no_count},
        {"a lost task of another size", lost},
    };
    for (const auto& entry : odd) {
      CAPTURE(entry.what);
      task_wait w("sw", 1, {2, 1});
      w.request(0);
      auto o = feed(w, reply({{1, entry.outcome}, {2, returned({2})}}));
      CHECK(!o.ec);
      REQUIRE(o.got.size() == 2);
      REQUIRE(o.got[0].failed.size() == 2);
      for (const auto& f : o.got[0].failed) {
        const auto e = error_of<zproc::error>(f);
        REQUIRE(e);
        CHECK(e->code() == zproc::client_errc::protocol_error);
        CHECK(std::string(e->what()).find("task 1: malformed outcome") != std::string::npos);
      }
      CHECK(o.got[0].values.empty());
      REQUIRE(o.got[1].failed.size() == 1);
      CHECK(!o.got[1].failed[0]);  // the other task is fine
      CHECK(w.remaining() == 0);
    }
  }
}
