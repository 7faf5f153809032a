// Process records against a real `zproc server` process: a supervisor's client registers and
// updates them with raw requests (what the supervisor sends), others list them, and a
// supervisor that disconnects leaves its running processes "lost".
#include "protocol/ops.hpp"
#include "protocol/process_records.hpp"
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <future>

using namespace zproc;
namespace asio = boost::asio;
using asio::awaitable;
using test::run_with_deadline;
using namespace std::chrono_literals;

namespace {

/// Blocking calls fail after this instead of hanging the test.
client_options with_deadline() {
  client_options o;
  o.request_timeout = 10s;
  return o;
}

json fields(std::int64_t pid, std::string target) {
  return {{"pid", pid},     {"ppid", 100},   {"target", std::move(target)},
          {"n", "default"}, {"host", "box"}, {"kind", "target"},
          {"attempt", 1}};
}

/// What the supervisor sends.
std::uint64_t proc_start(const client& c, json record) {
  json req = protocol::make(protocol::op::proc_start);
  req["record"] = std::move(record);
  return detail::call<std::uint64_t>(c.impl(), detail::request_access::wrap(std::move(req)));
}
void proc_update(const client& c, std::uint64_t id, json record) {
  json req = protocol::make(protocol::op::proc_update);
  req[protocol::process::id] = id;
  req["record"] = std::move(record);
  CHECK(detail::call<json>(c.impl(), detail::request_access::wrap(std::move(req))) == true);
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_SUITE("process_records") {
  TEST_CASE("register, update and list: blocking and co_await") {
    test::server_process srv;
    client supervisor(with_deadline());
    supervisor.connect(srv.ipc());
    const auto before = now_ms();
    CHECK(proc_start(supervisor, fields(501, "worker")) == 1);
    auto child = fields(502, "helper");
    child["parent_record"] = 1;
    child["kind"] = "command";
    CHECK(proc_start(supervisor, child) == 2);
    proc_update(supervisor, 1, {{"state", "crashed"}, {"exitcode", -11},
                                {"crash_report", "Segmentation fault (signal 11)\nframe #0"}});
    proc_update(supervisor, 2, {{"pid", 503}, {"attempt", 2}});  // a retry
    const auto after = now_ms();

    client viewer(with_deadline());
    viewer.connect(srv.tcp());
    const auto records = list_processes(viewer);
    REQUIRE(records.size() == 2);
    const process_record& a = records[0];
    CHECK(a.id == 1);
    CHECK(a.pid == 501);
    CHECK(a.ppid == 100);
    CHECK(a.target == "worker");
    CHECK(a.ns == "default");
    CHECK(a.host == "box");
    CHECK(a.kind == "target");
    CHECK(a.state == "crashed");
    CHECK(a.exitcode == -11);
    CHECK(a.crash_report == "Segmentation fault (signal 11)\nframe #0");
    CHECK(a.attempt == 1);
    CHECK(a.parent_record == 0);
    CHECK(a.client == supervisor.id());
    // Server wall time (same machine: within the test's own clock readings, 1 s of slack).
    CHECK(a.started_ms >= before - 1000);
    CHECK(a.started_ms <= after + 1000);
    CHECK(a.ended_ms >= a.started_ms);
    CHECK(a.ended_ms <= after + 1000);
    const process_record& b = records[1];
    CHECK(b.id == 2);
    CHECK(b.pid == 503);
    CHECK(b.attempt == 2);
    CHECK(b.kind == "command");
    CHECK(b.parent_record == 1);
    CHECK(b.state == "running");
    CHECK_FALSE(b.exitcode.has_value());
    CHECK(b.ended_ms == 0);

    // The wire form round-trips.
    CHECK(json(a).get<process_record>() == a);
    CHECK(json(b).get<process_record>() == b);

    // The server-side filter.
    const json only_running = {{"o", "proc_list"}, {"state", "running"}};
    const auto running =
        detail::call<json>(viewer.impl(), detail::request_access::wrap(only_running));
    REQUIRE(running.size() == 1);
    CHECK(running[0]["id"] == 2);

    // The same through co_await on an async client.
    asio::io_context ioc;
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      client c(ioc.get_executor());
      co_await c.async_connect(srv.ipc());
      const auto listed = co_await async_list_processes(c);
      CHECK(listed == records);
      // Error codes with as_tuple, like every async operation.
      auto [ec, more] = co_await async_list_processes(c, asio::as_tuple(asio::deferred));
      CHECK_FALSE(ec);
      CHECK(more.size() == 2);
    }());

    // A blocking-mode client refuses async operations with wrong_mode, never inline.
    auto wrong = async_list_processes(viewer, asio::use_future);
    REQUIRE(wrong.wait_for(10s) == std::future_status::ready);
    error_code ec;
    try {
      wrong.get();
    } catch (const boost::system::system_error& e) {
      ec = e.code();
    }
    CHECK(ec == client_errc::wrong_mode);
  }

  TEST_CASE("bad requests get a clear error and the server keeps serving") {
    test::server_process srv;
    client c(with_deadline());
    c.connect(srv.ipc());
    const auto id = proc_start(c, fields(1, "worker"));

    const auto error_of = [&](json request) -> std::string {
      try {
        detail::call<json>(c.impl(), detail::request_access::wrap(std::move(request)));
      } catch (const zproc::error& e) {
        CHECK(e.code() == server_errc::bad_request);
        return e.diagnostics();
      }
      FAIL("the request did not fail");
      return "";
    };
    const auto mentions = [](const std::string& text, const char* part) {
      INFO(text);
      return text.find(part) != std::string::npos;
    };
    CHECK(mentions(error_of({{"o", "proc_update"}, {"id", 77}, {"record", {{"note", "x"}}}}),
                   "no process record 77"));
    CHECK(mentions(error_of({{"o", "proc_update"}, {"id", id}, {"record", {{"started", 0}}}}),
                   "set by the server"));
    CHECK(mentions(error_of({{"o", "proc_update"}, {"id", id}, {"record", {{"state", "asleep"}}}}),
                   "one of running, exited"));
    json no_host = fields(2, "x");
    no_host.erase("host");
    json start = {{"o", "proc_start"}};
    start["record"] = no_host;
    CHECK(mentions(error_of(start), "misses field 'host'"));
    CHECK(mentions(error_of({{"o", "proc_start"}, {"record", "text"}}), "'record'"));
    CHECK(mentions(error_of({{"o", "proc_list"}, {"state", 3}}), "'state'"));

    // Nothing changed, and the connection and the server still serve.
    const auto records = list_processes(c);
    REQUIRE(records.size() == 1);
    CHECK(records[0].state == "running");
    CHECK(c.ping() == srv.pid());
    client other(with_deadline());
    other.connect(srv.tcp());
    CHECK(other.ping() == srv.pid());
  }

  TEST_CASE("a supervisor that disconnects leaves its running processes lost") {
    test::server_process srv;
    client viewer(with_deadline());
    viewer.connect(srv.tcp());
    client other_supervisor(with_deadline());  // stays connected throughout
    other_supervisor.connect(srv.ipc());
    std::uint64_t running_id = 0, exited_id = 0;
    {
      client supervisor(with_deadline());
      supervisor.connect(srv.ipc());
      running_id = proc_start(supervisor, fields(11, "worker"));
      exited_id = proc_start(supervisor, fields(12, "job"));
      proc_update(supervisor, exited_id, {{"state", "exited"}, {"exitcode", 0}});
      CHECK(list_processes(viewer)[0].state == "running");
      supervisor.close();
    }
    const auto others_id = proc_start(other_supervisor, fields(13, "other"));
    // The server notices the closed connection soon; the viewer lists meanwhile.
    asio::io_context ioc;
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      client c(ioc.get_executor());
      co_await c.async_connect(srv.ipc());
      std::vector<process_record> records;
      for (;;) {
        records = co_await async_list_processes(c);
        if (records.at(0).state != "running") break;
        asio::steady_timer pause(ioc, 10ms);
        co_await pause.async_wait(asio::deferred);
      }
      REQUIRE(records.size() == 3);
      const process_record& lost = records[0];
      CHECK(lost.id == running_id);
      CHECK(lost.state == "lost");
      CHECK(lost.note == "its supervisor disconnected");
      CHECK(lost.ended_ms >= lost.started_ms);
      CHECK(records[1].id == exited_id);
      CHECK(records[1].state == "exited");  // finished before: unchanged
      CHECK(records[1].note.empty());
      CHECK(records[2].id == others_id);
      CHECK(records[2].state == "running");  // another supervisor's process: unaffected
    }(), 10s);
  }

  TEST_CASE("pages: a list larger than one reply, a small frame, cancellation") {
    test::server_process srv;
    client supervisor(with_deadline());
    supervisor.connect(srv.ipc());
    // Crash reports near the size limit: 40 records would not fit one reply of a 256 KiB frame.
    const std::string report(7000, 'r');
    for (int i = 1; i <= 40; ++i) {
      const auto id = proc_start(supervisor, fields(i, "w" + std::to_string(i)));
      proc_update(supervisor, id, {{"state", "failed"}, {"crash_report", report}});
    }
    client_options small = with_deadline();
    small.max_frame_size = 256 * 1024;
    client viewer(small);
    viewer.connect(srv.tcp());
    // All of them in one reply would not fit that frame...
    error_code whole;
    try {
      detail::call<json>(viewer.impl(), detail::request_access::wrap({{"o", "proc_list"}}));
    } catch (const zproc::error& e) {
      whole = e.code();
    }
    CHECK(whole == server_errc::reply_too_large);
    // ...the list comes a page at a time.
    const auto records = list_processes(viewer);
    REQUIRE(records.size() == 40);
    for (std::size_t i = 0; i < records.size(); ++i) CHECK(records[i].id == i + 1);
    CHECK(records[39].crash_report == report);

    asio::io_context ioc;
    run_with_deadline(ioc, [&]() -> awaitable<void> {
      client c(ioc.get_executor(), small);
      co_await c.async_connect(srv.ipc());
      CHECK((co_await async_list_processes(c)).size() == 40);

      // The server stops answering; a cancel completes the list at once, the client stays usable.
      srv.stop_signal();
      asio::cancellation_signal signal;
      asio::steady_timer t(ioc, 100ms);
      t.async_wait([&](error_code) { signal.emit(asio::cancellation_type::terminal); });
      auto [ec, none] = co_await async_list_processes(
          c, asio::as_tuple(asio::bind_cancellation_slot(signal.slot(), asio::use_awaitable)));
      CHECK(ec == asio::error::operation_aborted);
      CHECK(none.empty());
      srv.continue_signal();
      CHECK((co_await async_list_processes(c)).size() == 40);
    }());
  }

  TEST_CASE("the bound: zproc server --max-process-records keeps the newest finished records") {
    test::server_process srv({"--max-process-records", "3"});
    client supervisor(with_deadline());
    supervisor.connect(srv.ipc());
    const auto keeps_running = proc_start(supervisor, fields(1, "daemon"));
    for (int i = 0; i < 10; ++i) {
      const auto id = proc_start(supervisor, fields(100 + i, "job"));
      proc_update(supervisor, id, {{"state", "exited"}, {"exitcode", 0}});
    }
    const auto records = list_processes(supervisor);
    REQUIRE(records.size() == 4);
    CHECK(records[0].id == keeps_running);  // running: never evicted
    CHECK(records[1].id == 9);              // the three that finished last
    CHECK(records[2].id == 10);
    CHECK(records[3].id == 11);
    CHECK(proc_start(supervisor, fields(7, "next")) == 12);  // ids are never reused
  }
}
