// What each role may do, through the engine without sockets (server/permissions.cpp and the
// ownership checks of task_queue and process_registry): a read-only token reads only its
// namespaces, a worker token only takes its swarm's tasks, and nobody but its owner (or an
// admin) cancels a task or changes a process record.
#include "protocol/message.hpp"
#include "protocol/msgpack.hpp"
#include "protocol/ops.hpp"
#include "protocol/store_request.hpp"
#include "protocol/task_messages.hpp"
#include "protocol/task_request.hpp"
#include "protocol/watch_request.hpp"
#include "server/engine.hpp"

#include <doctest/doctest.h>

#include <vector>

using zproc::json;
using namespace zproc::server_detail;
namespace protocol = zproc::protocol;
namespace tasks = zproc::protocol::tasks;
using zproc::access_role;

namespace {

/// The whole MessagePack of `v` (a reply's result, as the client's readers take it).
std::string packed(const nlohmann::json& v) {
  std::string out;
  zproc::protocol::append_msgpack(out, v);
  return out;
}

zproc::error_code error_of(const json& reply);

/// Every request goes to two engines: as json (the generic path), and as the session reads its
/// MessagePack (a watch, a simple store op or a task op without a json tree, through
/// engine::handle's typed forms). Both must refuse the same requests.
struct fixture {
  engine e{1, retention{}};
  engine twin{1, retention{}};
  std::vector<delivery> out;
  std::uint64_t next_id = 1;

  /// The reply to `req` from `client` with `role` (nullptr: admin); null if it parked.
  json send(std::uint64_t client, const access_role* role, json req) {
    const std::uint64_t id = next_id++;
    req[protocol::field::id] = id;
    const request_context ctx{client, role};
    out.clear();
    e.handle(req, id, ctx, out);
    const json reply = reply_in(out, client, id);
    const std::string bytes = packed(req);
    protocol::watch_request w;
    protocol::store_request s;
    protocol::task_request t;
    out.clear();
    if (protocol::decode_watch_request(bytes, w)) {
      twin.handle(w, ctx, out);
    } else if (protocol::decode_store_request(bytes, s)) {
      twin.handle(s, ctx, out);
    } else if (protocol::decode_task_request(bytes, t)) {
      twin.handle(t, ctx, out);
    } else {
      twin.handle(req, id, ctx, out);
    }
    const json twin_reply = reply_in(out, client, id);
    CHECK(reply.is_null() == twin_reply.is_null());
    CHECK(error_of(reply) == error_of(twin_reply));
    return reply;
  }
  static json reply_in(const std::vector<delivery>& replies, std::uint64_t client,
                       std::uint64_t id) {
    for (const auto& d : replies)
      if (d.client_id == client && !d.packed && d.message().value("i", std::uint64_t{0}) == id)
        return d.message();
    return nullptr;
  }
};

json op_on(protocol::op o, const std::string& ns, const std::string& key = "k") {
  json r = protocol::make(o, ns);
  r[protocol::field::key] = key;
  if (o == protocol::op::set) r[protocol::field::value] = 1;
  return r;
}

zproc::error_code error_of(const json& reply) {
  if (!reply.is_object() || !reply.contains("e")) return {};
  std::string message;
  return protocol::decode_error(reply["e"], message);
}
bool forbidden(const json& reply) { return error_of(reply) == zproc::server_errc::forbidden; }

json submit(const std::string& queue) {
  tasks::submit_writer w({queue, "f", false, 1, std::nullopt});
  w.add("\x01\x02\x03", 1);
  return std::move(w).finish().to_json();
}

json record_fields() {
  return {{"pid", 11},      {"ppid", 100},     {"target", "t"}, {"n", "default"},
          {"host", "box"},  {"kind", "target"}, {"attempt", 1}};
}

}  // namespace

TEST_SUITE("permissions") {
  TEST_CASE("read-only: reads and watches its namespaces, writes nothing") {
    fixture f;
    const auto reader = access_role::parse("read-only:metrics");
    using protocol::op;
    CHECK(error_of(f.send(1, nullptr, op_on(op::set, "metrics"))) == zproc::error_code{});
    CHECK(f.send(2, &reader, op_on(op::get, "metrics")).at("r") == 1);
    CHECK(forbidden(f.send(2, &reader, op_on(op::get, "secrets"))));
    CHECK(forbidden(f.send(2, &reader, op_on(op::set, "metrics"))));
    CHECK(forbidden(f.send(2, &reader, protocol::make(op::lock, "metrics"))));
    CHECK(forbidden(f.send(2, &reader, submit("default"))));
    CHECK(forbidden(f.send(2, &reader, json{{"o", "proc_start"}, {"record", record_fields()}})));
    CHECK_FALSE(forbidden(f.send(2, &reader, json{{"o", "proc_list"}})));
    CHECK(f.send(2, &reader, protocol::make(op::ping)).contains("r"));
    // Refused writes changed nothing.
    CHECK(f.send(1, nullptr, op_on(op::get, "metrics")).at("r") == 1);
    const auto all = access_role::parse("read-only");
    CHECK_FALSE(forbidden(f.send(3, &all, op_on(op::get, "secrets"))));
  }

  TEST_CASE("worker: takes its swarm's tasks; no state, no submit, no other swarm") {
    fixture f;
    const auto w = access_role::parse("worker:pool");
    using protocol::op;
    CHECK(forbidden(f.send(2, &w, op_on(op::get, "default"))));
    CHECK(forbidden(f.send(2, &w, op_on(op::set, "default"))));
    CHECK(forbidden(f.send(2, &w, submit("pool"))));
    CHECK(forbidden(f.send(2, &w, tasks::take_request("other", 1, 5, "box"))));
    CHECK(forbidden(f.send(2, &w, tasks::cancel_request(1, 100))));
    f.send(1, nullptr, submit("pool"));
    const json taken = f.send(2, &w, tasks::take_request("pool", 1, 5, "box"));
    REQUIRE(taken.contains("r"));
    CHECK(tasks::parse_take_reply(packed(taken.at("r"))).tasks.size() == 1);
  }

  TEST_CASE("results only from the connection that took the task") {
    fixture f;
    const auto w = access_role::parse("worker:pool");
    const auto rw = access_role::parse("read-write");
    f.send(1, &rw, submit("pool"));
    const json taken = f.send(2, &w, tasks::take_request("pool", 1, 5, "box"));
    const auto id = tasks::parse_take_reply(packed(taken.at("r"))).tasks.at(0).id;
    tasks::done_writer writer;
    writer.add(id, packed(tasks::lost_outcome("FORGED", 1, "x", 1, 1, "f")));
    const json forged = std::move(writer).finish().to_json();
    for (auto* role : {&rw, &w})  // another connection, whatever its role
      CHECK(f.send(3, role, forged).at("r") == 0);
    CHECK(f.send(2, &w, forged).at("r") == 1);  // the taker
  }

  TEST_CASE("only a task's submitter, or an admin, cancels it") {
    fixture f;
    const auto rw = access_role::parse("read-write");
    const json first = f.send(1, &rw, submit("pool"));
    const auto id = tasks::parse_submit_reply(first.at("r"));
    CHECK(f.send(2, &rw, tasks::cancel_request(id, id + 1)).at("r") == 0);
    CHECK(f.e.tasks().queued("pool") == 1);
    CHECK(f.send(1, &rw, tasks::cancel_request(id, id + 1)).at("r") == 1);
    f.send(1, &rw, submit("pool"));
    CHECK(f.send(3, nullptr, tasks::cancel_request(0, 1000)).at("r") == 1);  // admin
    CHECK(f.e.tasks().queued("pool") == 0);
  }

  TEST_CASE("only the connection that created a process record (or an admin) changes it") {
    fixture f;
    const auto rw = access_role::parse("read-write");
    const json started = f.send(1, &rw, json{{"o", "proc_start"}, {"record", record_fields()}});
    const auto id = started.at("r").get<std::uint64_t>();
    const json update = {{"o", "proc_update"}, {"id", id}, {"record", {{"note", "x"}}}};
    CHECK(forbidden(f.send(2, &rw, update)));
    CHECK(f.send(1, &rw, update).at("r") == true);
    CHECK(f.send(3, nullptr, update).at("r") == true);
  }
}
