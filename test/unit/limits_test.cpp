// The limits that keep one client from making the server hold unbounded state
// (server_config::limits), through the engine without sockets: each gives limit_reached with a
// message naming it, changes nothing, and leaves other clients served.
#include "protocol/message.hpp"
#include "protocol/ops.hpp"
#include "protocol/task_messages.hpp"
#include "server/engine.hpp"

#include <doctest/doctest.h>

#include <thread>
#include <vector>

using zproc::json;
using namespace zproc::server_detail;
namespace protocol = zproc::protocol;
namespace tasks = zproc::protocol::tasks;
using namespace std::chrono_literals;

namespace {

struct fixture {
  engine e{1, retention{}};
  std::vector<delivery> out;
  std::uint64_t next_id = 1;

  explicit fixture(zproc::server_config::limits_config l) { e.set_limits(l); }

  /// The reply to `req` from `client`; null if it parked.
  json send(std::uint64_t client, json req) {
    out.clear();
    const std::uint64_t id = next_id++;
    req[protocol::field::id] = id;
    e.handle(req, id, request_context{client}, out);
    for (const auto& d : out)
      if (d.client_id == client && !d.packed && d.message().value("i", std::uint64_t{0}) == id)
        return d.message();
    return nullptr;
  }
};

std::string limit_message(const json& reply) {
  if (!reply.is_object() || !reply.contains("e")) return {};
  std::string message;
  if (protocol::decode_error(reply["e"], message) != zproc::server_errc::limit_reached) return {};
  return message;
}

json watch(const std::string& key) {
  json w = protocol::make(protocol::op::watch, "ns");
  w[protocol::field::key] = key;
  return w;
}

json submit(std::size_t n) {
  tasks::submit_writer w({"q", "f", false, 1, std::nullopt});
  for (std::size_t i = 0; i < n; ++i) w.add("\x01", 1);
  return std::move(w).finish().to_json();
}

json proc_start(int pid) {
  return {{"o", "proc_start"},
          {"record",
           {{"pid", pid}, {"ppid", 1}, {"target", "t"}, {"n", "default"}, {"host", "h"},
            {"kind", "target"}, {"attempt", 1}}}};
}

}  // namespace

TEST_SUITE("limits") {
  TEST_CASE("requests held unanswered per connection: watches, task waits") {
    zproc::server_config::limits_config l;
    l.max_parked_per_connection = 3;
    fixture f(l);
    for (int i = 0; i < 3; ++i) CHECK(f.send(1, watch("k" + std::to_string(i))).is_null());
    const json refused = f.send(1, watch("k3"));
    CHECK(limit_message(refused).find("max_parked_per_connection") != std::string::npos);
    CHECK(!limit_message(f.send(1, tasks::wait_request(1, 2, 10'000, {}))).empty());
    CHECK(f.send(2, watch("k0")).is_null());  // another connection is not affected
    CHECK(f.e.watches().pending() == 4);
    f.e.client_gone(1, f.out);  // its watches go with it: a new one is accepted again
    CHECK(f.send(3, watch("x")).is_null());
  }

  TEST_CASE("a parked request stops counting once answered or cancelled (locks, watches)") {
    zproc::server_config::limits_config l;
    l.max_parked_per_connection = 2;
    fixture f(l);
    const json lock = protocol::make(protocol::op::lock, "ns");
    const json unlock = protocol::make(protocol::op::unlock, "ns");
    CHECK(f.send(2, lock).contains("r"));
    CHECK(f.send(1, lock).is_null());  // waits for client 2: 1 parked
    CHECK(f.send(1, watch("a")).is_null());  // 2 parked
    CHECK(!limit_message(f.send(1, watch("b"))).empty());
    CHECK(f.send(2, unlock).contains("r"));  // client 1 is granted the lock: 1 parked
    CHECK(f.send(1, watch("b")).is_null());   // 2 parked
    CHECK(!limit_message(f.send(1, watch("c"))).empty());
    const std::uint64_t watch_b = f.next_id - 2;  // the id of watch("b") above
    f.send(1, protocol::cancel_request(watch_b));  // 1 parked
    CHECK(f.send(1, watch("c")).is_null());        // 2 parked
    // A lock wait given up (cancel) counts no more either.
    const std::uint64_t wait3 = f.next_id;
    CHECK(f.send(3, lock).is_null());  // client 1 holds it
    CHECK(f.send(3, watch("x")).is_null());
    CHECK(!limit_message(f.send(3, watch("y"))).empty());
    f.send(3, protocol::cancel_request(wait3));
    CHECK(f.send(3, watch("y")).is_null());
  }

  TEST_CASE("tasks held by the server, all swarms together") {
    zproc::server_config::limits_config l;
    l.max_tasks = 5;
    fixture f(l);
    CHECK(f.send(1, submit(4)).contains("r"));
    CHECK(limit_message(f.send(2, submit(2))).find("max_tasks") != std::string::npos);
    CHECK(f.e.tasks().size() == 4);  // nothing of the refused submit was queued
    CHECK(f.send(2, submit(1)).contains("r"));
  }

  TEST_CASE("running process records per connection") {
    zproc::server_config::limits_config l;
    l.max_running_records_per_connection = 2;
    fixture f(l);
    CHECK(f.send(1, proc_start(10)).contains("r"));
    CHECK(f.send(1, proc_start(11)).contains("r"));
    CHECK(limit_message(f.send(1, proc_start(12))).find("max_running_records") !=
          std::string::npos);
    CHECK(f.send(2, proc_start(13)).contains("r"));
    // One of them ends: room for another.
    CHECK(f.send(1, json{{"o", "proc_update"}, {"id", 1}, {"record", {{"state", "stopped"}, {"exitcode", 0}}}})
              .contains("r"));
    CHECK(f.send(1, proc_start(14)).contains("r"));
  }

  TEST_CASE("a lock taken again and again is not held past max_lock_hold") {
    zproc::server_config::limits_config l;
    l.max_lock_hold = 100ms;
    fixture f(l);
    const json lock = protocol::make(protocol::op::lock, "ns");
    CHECK(f.send(1, lock).contains("r"));
    CHECK(f.send(2, lock).is_null());  // waits
    std::this_thread::sleep_for(50ms);
    CHECK(f.send(1, lock).contains("r"));  // renewed: still within the limit
    std::this_thread::sleep_for(60ms);
    f.out.clear();
    const std::uint64_t id = f.next_id++;
    json again = lock;
    again[protocol::field::id] = id;
    f.e.handle(again, id, request_context{1}, f.out);
    bool refused = false, granted_to_2 = false;
    for (const auto& d : f.out) {
      if (d.client_id == 1 && !limit_message(d.message()).empty()) refused = true;
      if (d.client_id == 2 && d.message().contains("r")) granted_to_2 = true;
    }
    CHECK(refused);
    CHECK(granted_to_2);  // the waiter got it
  }
}
