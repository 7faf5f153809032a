// The server's process records without sockets: registration, updates, listing, the "lost"
// transition when a supervisor's connection closes, bad input, and the bound on memory.
#include "protocol/ops.hpp"
#include "protocol/process_records.hpp"
#include "server/engine.hpp"
#include "server/process_registry.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace zproc;
using namespace zproc::server_detail;
using nlohmann::json;

namespace {

json fields(std::int64_t pid, std::string target = "worker") {
  return {{"pid", pid},        {"ppid", 100},    {"target", std::move(target)},
          {"n", "default"},    {"host", "box"},  {"kind", "target"},
          {"attempt", 1}};
}

/// The op_error message of `f()`, or "" if it did not fail.
template <class F>
std::string failure(F&& f) {
  try {
    f();
  } catch (const op_error& e) {
    CHECK(e.code == server_errc::bad_request);
    return e.message;
  }
  return "";
}

bool mentions(const std::string& text, const std::string& part) {
  INFO(text);
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_SUITE("process_registry") {
  TEST_CASE("start: ids from 1, the server's fields, the supervisor's fields kept") {
    process_registry r;
    CHECK(r.start(fields(11), 7, 1000) == 1);
    auto with_parent = fields(12, "child");
    with_parent["parent_record"] = 1;
    with_parent["args"] = json::array({"--fast"});  // a field of the supervisor's own
    CHECK(r.start(with_parent, 7, 2000) == 2);

    const json* a = r.find(1);
    REQUIRE(a);
    CHECK((*a)["id"] == 1);
    CHECK((*a)["client"] == 7);
    CHECK((*a)["started"] == 1000);
    CHECK((*a)["state"] == "running");
    CHECK((*a)["pid"] == 11);
    CHECK((*a)["ppid"] == 100);
    CHECK((*a)["target"] == "worker");
    CHECK((*a)["n"] == "default");
    CHECK((*a)["host"] == "box");
    CHECK((*a)["kind"] == "target");
    CHECK((*a)["attempt"] == 1);
    CHECK_FALSE(a->contains("ended"));
    CHECK((*r.find(2))["parent_record"] == 1);
    CHECK((*r.find(2))["args"] == json::array({"--fast"}));
    CHECK(r.running() == 2);
    CHECK(r.finished() == 0);
  }

  TEST_CASE("update: merge, ended when it stops running, a retry runs again") {
    process_registry r;
    const auto id = r.start(fields(11), 7, 1000);
    r.update(id, {{"note", "warming up"}}, 1500);
    CHECK((*r.find(id))["note"] == "warming up");
    CHECK((*r.find(id))["state"] == "running");
    CHECK_FALSE(r.find(id)->contains("ended"));

    r.update(id, {{"state", "crashed"}, {"exitcode", -11}, {"crash_report", "SIGSEGV\nat f()"}},
             2000);
    const json& crashed = *r.find(id);
    CHECK(crashed["state"] == "crashed");
    CHECK(crashed["exitcode"] == -11);
    CHECK(crashed["crash_report"] == "SIGSEGV\nat f()");
    CHECK(crashed["ended"] == 2000);
    CHECK(crashed["pid"] == 11);     // untouched fields stay
    CHECK(crashed["started"] == 1000);
    CHECK(r.finished() == 1);

    // Another finished state later does not move `ended`.
    r.update(id, {{"state", "failed"}}, 2500);
    CHECK((*r.find(id))["ended"] == 2000);

    // The supervisor retries: a new pid, attempt 2, running again; null removes fields.
    r.update(id, {{"state", "running"}, {"pid", 12}, {"attempt", 2}, {"exitcode", nullptr},
                  {"crash_report", nullptr}},
             3000);
    const json& retried = *r.find(id);
    CHECK(retried["state"] == "running");
    CHECK(retried["pid"] == 12);
    CHECK(retried["attempt"] == 2);
    CHECK_FALSE(retried.contains("ended"));
    CHECK_FALSE(retried.contains("exitcode"));
    CHECK_FALSE(retried.contains("crash_report"));
    CHECK(r.running() == 1);
    CHECK(r.finished() == 0);

    r.update(id, {{"state", "exited"}, {"exitcode", 0}}, 4000);
    CHECK((*r.find(id))["ended"] == 4000);
  }

  TEST_CASE("list: id order, state filter, paging") {
    process_registry r;
    for (int i = 1; i <= 5; ++i) r.start(fields(100 + i), 1, i);
    r.update(2, {{"state", "exited"}, {"exitcode", 0}}, 10);
    r.update(4, {{"state", "killed"}}, 10);

    const json all = r.list();
    REQUIRE(all.size() == 5);
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i]["id"] == i + 1);
    CHECK(all[1]["state"] == "exited");

    const json running = r.list("running");
    REQUIRE(running.size() == 3);
    CHECK(running[0]["id"] == 1);
    CHECK(running[1]["id"] == 3);
    CHECK(running[2]["id"] == 5);
    CHECK(r.list("lost").empty());

    const json page = r.list({}, 2, 2);
    REQUIRE(page.size() == 2);
    CHECK(page[0]["id"] == 3);
    CHECK(page[1]["id"] == 4);
    CHECK(r.list("running", 3, 10).size() == 1);
    CHECK(r.list({}, 5).empty());
  }

  TEST_CASE("client_gone: that client's running records are lost, the others stay") {
    process_registry r;
    const auto mine = r.start(fields(1), 7, 100);
    const auto done = r.start(fields(2), 7, 100);
    const auto theirs = r.start(fields(3), 8, 100);
    r.update(done, {{"state", "exited"}, {"exitcode", 0}}, 200);

    r.client_gone(7, 500);
    const json& lost = *r.find(mine);
    CHECK(lost["state"] == "lost");
    CHECK(lost["ended"] == 500);
    CHECK(lost["note"] == "its supervisor disconnected");
    CHECK((*r.find(done))["state"] == "exited");  // finished before: untouched
    CHECK((*r.find(done))["ended"] == 200);
    CHECK_FALSE(r.find(done)->contains("note"));
    CHECK((*r.find(theirs))["state"] == "running");
    CHECK(r.running() == 1);

    r.client_gone(7, 600);  // twice, or a client that registered nothing: nothing happens
    r.client_gone(99, 600);
    CHECK((*r.find(mine))["ended"] == 500);

    // A record that runs again after a retry belongs to its registering client still.
    r.update(mine, {{"state", "running"}, {"pid", 4}}, 700);
    r.client_gone(7, 800);
    CHECK((*r.find(mine))["state"] == "lost");
    CHECK((*r.find(mine))["ended"] == 800);
  }

  TEST_CASE("bounded memory: the oldest finished records go first, running ones never") {
    process_registry r(3);
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 10; ++i) ids.push_back(r.start(fields(i), 1, i));
    // Finish them in another order than their ids: 9, 8, ..., 2 (0 and 1 keep running).
    for (int i = 9; i >= 2; --i) r.update(ids[i], {{"state", "exited"}, {"exitcode", 0}}, 100);
    CHECK(r.finished() == 3);
    CHECK(r.running() == 2);
    CHECK(r.size() == 5);
    // Kept: the running 0 and 1, and the three that finished last (4, 3, 2).
    const json all = r.list();
    std::vector<std::uint64_t> kept;
    for (const auto& rec : all) kept.push_back(rec["id"].get<std::uint64_t>());
    CHECK(kept == std::vector<std::uint64_t>{ids[0], ids[1], ids[2], ids[3], ids[4]});

    // Many more: running records pile up (never evicted), finished ones stay at the bound.
    for (int i = 0; i < 1000; ++i) {
      const auto id = r.start(fields(1000 + i), 2, 0);
      if (i % 2 == 0) r.update(id, {{"state", "failed"}}, 1);
    }
    CHECK(r.finished() == 3);
    CHECK(r.running() == 2 + 500);
    // A lost record counts as finished too.
    r.client_gone(2, 5);
    CHECK(r.finished() == 3);
    CHECK(r.running() == 2);
    CHECK(r.find(ids[0]));
    CHECK(r.find(ids[1]));
    CHECK(r.list("lost").size() == 3);

    // An evicted record is gone, with a clear error if someone updates it.
    CHECK(mentions(failure([&] { r.update(ids[9], {{"note", "x"}}, 6); }), "is gone"));

    // Zero keeps no finished record at all.
    process_registry none(0);
    const auto id = none.start(fields(1), 1, 0);
    none.update(id, {{"state", "exited"}}, 1);
    CHECK(none.size() == 0);
  }

  TEST_CASE("bad input: a clear error, and nothing changes") {
    process_registry r;
    const auto id = r.start(fields(11), 7, 1000);
    const json before = *r.find(id);

    const auto start_error = [&](const char* key, json value) {
      auto f = fields(12);
      if (value.is_discarded()) {
        f.erase(key);
      } else {
        f[key] = std::move(value);
      }
      return failure([&] { r.start(f, 7, 0); });
    };
    const json absent(json::value_t::discarded);
    CHECK(mentions(start_error("host", absent), "misses field 'host'"));
    CHECK(mentions(start_error("pid", "twelve"), "'pid' of a process record must be an integer"));
    CHECK(mentions(start_error("kind", "daemon"), "\"target\" or \"command\""));
    CHECK(mentions(start_error("attempt", 0), "positive integer"));
    CHECK(mentions(start_error("id", 99), "set by the server"));
    CHECK(mentions(start_error("state", "exited"), "a new process record is \"running\""));
    CHECK(r.size() == 1);
    CHECK(r.start(fields(12), 7, 0) == 2);  // failed starts used no id

    const auto update_error = [&](json changes) {
      return failure([&] { r.update(id, changes, 0); });
    };
    for (const char* owned : {"id", "client", "started", "ended"})
      CHECK(mentions(update_error({{owned, 5}}), "set by the server"));
    CHECK(mentions(update_error({{"state", "sleeping"}}), "one of running, exited"));
    CHECK(mentions(update_error({{"pid", nullptr}}), "cannot be removed"));
    CHECK(mentions(update_error({{"exitcode", 1.5}}), "'exitcode'"));
    CHECK(mentions(update_error({{"exitcode", 1LL << 40}}), "'exitcode'"));
    CHECK(mentions(update_error({{"parent_record", -1}}), "'parent_record'"));
    // A valid field next to a bad one is not applied either.
    CHECK_FALSE(update_error({{"note", "x"}, {"state", "sleeping"}}).empty());
    CHECK(*r.find(id) == before);

    CHECK(mentions(failure([&] { r.update(42, {{"note", "x"}}, 0); }),
                   "no process record 42 (the last one registered is 2)"));
  }

  TEST_CASE("execute: the wire requests and their errors") {
    process_registry r;
    const json start = {{"o", "proc_start"}, {"record", fields(11)}};
    CHECK(r.execute(start, 3, 1000) == 1);
    const json stop = {{"o", "proc_update"}, {"id", 1}, {"record", {{"state", "stopped"}}}};
    CHECK(r.execute(stop, 3, 2000) == true);
    const json listed = r.execute({{"o", "proc_list"}}, 4, 0);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0]["state"] == "stopped");
    CHECK(listed[0]["ended"] == 2000);
    CHECK(r.execute({{"o", "proc_list"}, {"state", "running"}}, 4, 0) == json::array());
    CHECK(r.execute({{"o", "proc_list"}, {"after", 0}, {"max", 1}}, 4, 0).size() == 1);

    const auto error = [&](json request) { return failure([&] { r.execute(request, 3, 0); }); };
    const json empty = json::object();
    CHECK(mentions(error({{"o", "proc_start"}}), "'record'"));
    CHECK(mentions(error({{"o", "proc_start"}, {"record", 5}}), "'record'"));
    CHECK(mentions(error({{"o", "proc_update"}, {"record", empty}}), "'id'"));
    CHECK(mentions(error({{"o", "proc_update"}, {"id", "1"}, {"record", empty}}), "'id'"));
    CHECK(mentions(error({{"o", "proc_update"}, {"id", 1}}), "'record'"));
    CHECK(mentions(error({{"o", "proc_list"}, {"state", "zombie"}}), "'state'"));
    CHECK(mentions(error({{"o", "proc_list"}, {"max", 0}}), "'max'"));
    CHECK(mentions(error({{"o", "proc_list"}, {"after", -1}}), "'after'"));
    CHECK(process_registry::handles(protocol::op::proc_list));
    CHECK_FALSE(process_registry::handles(protocol::op::task_info));
    CHECK_FALSE(protocol::parse_op("proc_kill").has_value());
  }

  TEST_CASE("size: a long crash report keeps its head and tail; an oversized record is refused") {
    process_registry r;
    const auto id = r.start(fields(1), 1, 0);
    std::string report = "Segmentation fault in worker\n";
    while (report.size() < 100'000) report += "  frame: some_function(int) at file.cpp:42\n";
    report += "the last line";
    r.update(id, {{"state", "crashed"}, {"crash_report", report}}, 1);
    const auto& kept = (*r.find(id))["crash_report"].get_ref<const std::string&>();
    CHECK(kept.size() <= protocol::process::max_crash_report_bytes);
    CHECK(kept.starts_with("Segmentation fault in worker\n"));
    CHECK(kept.ends_with("the last line"));
    CHECK(mentions(kept, "bytes cut"));

    // Cut on character boundaries: the result is still valid UTF-8.
    std::string accents;
    while (accents.size() < 20'000) accents += "\xc3\xa9";  // é
    r.update(id, {{"crash_report", accents}}, 2);
    CHECK_NOTHROW((void)(*r.find(id)).dump());

    CHECK(mentions(failure([&] { r.update(id, {{"blob", std::string(20'000, 'x')}}, 3); }),
                   "bytes per process record"));
    auto big = fields(2);
    big["target"] = std::string(20'000, 't');
    CHECK(mentions(failure([&] { r.start(big, 1, 0); }), "bytes per process record"));
  }

  TEST_CASE("engine: routes the ops, replies with errors, marks lost when the client goes") {
    engine e(1, {}, 10);
    std::vector<delivery> out;
    e.handle({{"o", "proc_start"}, {"record", fields(11)}}, 5, request_context{3}, out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].client_id == 3);
    CHECK(out[0].reply["i"] == 5);
    CHECK(out[0].reply["r"] == 1);
    CHECK((*e.processes().find(1))["client"] == 3);

    out.clear();
    e.handle({{"o", "proc_update"}, {"id", 9}, {"record", {{"note", "x"}}}}, 6, request_context{3},
             out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].reply["e"]["n"] == static_cast<int>(server_errc::bad_request));
    CHECK(mentions(out[0].reply["e"]["m"].get<std::string>(), "no process record 9"));

    out.clear();
    e.client_gone(3, out);
    CHECK((*e.processes().find(1))["state"] == "lost");
    e.handle({{"o", "proc_list"}}, 7, request_context{4}, out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].reply["r"][0]["note"] == "its supervisor disconnected");
  }
}
