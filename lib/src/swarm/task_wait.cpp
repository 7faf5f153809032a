#include "swarm/task_wait.hpp"

#include "protocol/ops.hpp"
#include "protocol/tasks.hpp"

#include <zproc/process_error.hpp>

#include <algorithm>

namespace zproc::detail {

namespace wire = protocol::tasks;

namespace {

std::string text(const json& o, const char* name) {
  auto it = o.find(name);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::int64_t number(const json& o, const char* name) {
  auto it = o.find(name);
  return it != o.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

}  // namespace

task_wait::task_wait(std::string swarm, std::uint64_t first, std::size_t count)
    : swarm_(std::move(swarm)), first_(first), count_(count), got_(count, false), remaining_(count) {}

json task_wait::request(std::uint64_t ms) {
  json r = json::object();
  r[protocol::field::op] = protocol::name(protocol::op::task_wait);
  r[wire::from] = first_;
  r[wire::to] = first_ + count_;
  r[wire::wait_ms] = ms;
  // The acknowledgements of a request neither answered nor failed yet go again (twice is
  // harmless: the server forgets an outcome once).
  ack_.insert(ack_.begin(), sent_.begin(), sent_.end());
  sent_ = std::move(ack_);
  ack_.clear();
  if (!sent_.empty()) r[wire::ack] = sent_;
  return r;
}

void task_wait::no_reply() {
  ack_.insert(ack_.end(), sent_.begin(), sent_.end());
  sent_.clear();
}

json task_wait::cancel_request() {
  json r = json::object();
  r[protocol::field::op] = protocol::name(protocol::op::task_cancel);
  r[wire::from] = first_;
  r[wire::to] = first_ + count_;
  remaining_ = 0;
  ack_.clear();  // the cancel removes those outcomes too: nothing left to acknowledge
  sent_.clear();
  return r;
}

task_outcome task_wait::parse(std::uint64_t id, json& o, const crash_report_fn& crash_report) const {
  task_outcome out;
  out.id = id;
  const std::size_t n = static_cast<std::size_t>(std::max<std::int64_t>(1, number(o, wire::items)));
  const std::string target = text(o, wire::target);
  const std::int64_t pid = number(o, wire::worker_pid);
  const std::string host = text(o, wire::worker_host);
  const std::string where = "swarm '" + swarm_ + "' task " + std::to_string(id) +
                            ", worker pid " + std::to_string(pid) +
                            (host.empty() ? std::string() : " on " + host);
  out.failed.resize(n);
  if (auto x = o.find(wire::lost); x != o.end()) {
    std::string report = crash_report ? crash_report(pid) : std::string();
    auto e = std::make_exception_ptr(task_lost_error(
        "no worker could run " + where + " to its end: " + x->get<std::string>(), pid, target,
        std::move(report), host, static_cast<std::size_t>(number(o, wire::attempts))));
    std::fill(out.failed.begin(), out.failed.end(), e);
    return out;
  }
  if (auto v = o.find(wire::values); v != o.end() && v->is_binary())
    out.values = std::move(static_cast<std::vector<std::uint8_t>&>(v->get_binary()));
  if (auto f = o.find(wire::failures); f != o.end() && f->is_array()) {
    for (const auto& e : *f) {
      // (An index decoded as signed is as good: JSON and MessagePack may give either.)
      if (!e.is_array() || e.size() < 5 || !e[0].is_number_integer()) continue;
      const auto index = e[0].get<std::int64_t>();
      if (index < 0 || static_cast<std::size_t>(index) >= n) continue;
      const auto i = static_cast<std::size_t>(index);
      const auto type = e[1].get<std::string>();
      const auto message = e[2].get<std::string>();
      out.failed[i] = std::make_exception_ptr(remote_error(
          type + ": " + message + " (in " + where + ", call " + std::to_string(i) + ")", pid,
          target, e[4].get<std::string>(), type, message, e[3].get<std::string>()));
    }
  }
  return out;
}

std::vector<task_outcome> task_wait::on_reply(json& reply, const crash_report_fn& crash_report,
                                              error_code& ec, std::string& message) {
  ec.clear();
  message.clear();
  sent_.clear();  // acknowledged: the server has them
  // The reply's shape first: a malformed one changes nothing (no outcome marked received
  // and then dropped).
  std::vector<std::pair<std::uint64_t, json*>> results;
  bool left = false;
  try {
    for (auto& r : reply.at(wire::results)) results.emplace_back(r.at(0).get<std::uint64_t>(), &r.at(1));
    left = reply.at(wire::left).get<bool>();
  } catch (const json::exception& e) {
    ec = client_errc::protocol_error;
    message = std::string("unexpected task_wait reply: ") + e.what();
    return {};
  }
  std::vector<task_outcome> out;
  for (auto& [id, outcome] : results) {
    if (id < first_ || id >= first_ + count_ || got_[id - first_]) continue;
    got_[id - first_] = true;
    --remaining_;
    ack_.push_back(id);
    try {
      out.push_back(parse(id, *outcome, crash_report));
    } catch (const std::exception& e) {  // a malformed outcome: its calls fail, not all
      task_outcome bad;
      bad.id = id;
      const auto n = outcome->is_object() ? number(*outcome, wire::items) : 0;
      bad.failed.assign(static_cast<std::size_t>(std::max<std::int64_t>(1, n)),
                        std::make_exception_ptr(zproc::error(
                            client_errc::protocol_error, "swarm '" + swarm_ + "' task " +
                                                             std::to_string(id) +
                                                             ": malformed outcome: " + e.what())));
      out.push_back(std::move(bad));
    }
  }
  if (out.empty() && remaining_ > 0 && !left) {
    ec = server_errc::bad_request;
    message = "swarm '" + swarm_ + "': tasks " + std::to_string(first_) + " to " +
              std::to_string(first_ + count_ - 1) +
              " are no longer on the server (cancelled, or collected by another process)";
  }
  return out;
}

}  // namespace zproc::detail
