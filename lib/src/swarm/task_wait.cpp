#include "swarm/task_wait.hpp"

#include "protocol/task_messages.hpp"

#include <zproc/process_error.hpp>

#include <algorithm>

namespace zproc::detail {

namespace wire = protocol::tasks;

task_wait::task_wait(std::string swarm, std::uint64_t first, std::vector<std::size_t> items)
    : swarm_(std::move(swarm)),
      first_(first),
      items_(std::move(items)),
      got_(items_.size(), false),
      remaining_(items_.size()) {}

json task_wait::request(std::uint64_t ms) {
  // The acknowledgements of a request neither answered nor failed yet go again (twice is
  // harmless: the server forgets an outcome once).
  ack_.insert(ack_.begin(), sent_.begin(), sent_.end());
  sent_ = std::move(ack_);
  ack_.clear();
  return wire::wait_request(first_, first_ + count(), ms, sent_);
}

void task_wait::no_reply() {
  ack_.insert(ack_.end(), sent_.begin(), sent_.end());
  sent_.clear();
}

json task_wait::cancel_request() {
  json r = wire::cancel_request(first_, first_ + count());
  remaining_ = 0;
  ack_.clear();  // the cancel removes those outcomes too: nothing left to acknowledge
  sent_.clear();
  return r;
}

task_outcome task_wait::parse(std::uint64_t id, std::string_view o,
                              const crash_report_fn& crash_report) const {
  wire::outcome in = wire::parse_outcome(o);
  // (The submitter knows how many calls it put in each task; a worker does not say otherwise.)
  const std::size_t expected = items_[id - first_];
  if (in.items != expected)
    throw wire::malformed("it holds " + std::to_string(in.items) + " results for " +
                          std::to_string(expected) + (expected == 1 ? " call" : " calls"));
  task_outcome out;
  out.id = id;
  out.failed.resize(in.items);
  if (in.lost.has_value() || !in.failures.empty()) {  // (most tasks have no error to word)
    const std::string where = "swarm '" + swarm_ + "' task " + std::to_string(id) +
                              ", worker pid " + std::to_string(in.worker_pid) +
                              (in.worker_host.empty() ? std::string() : " on " + in.worker_host);
    if (in.lost) {
      std::string report = crash_report ? crash_report(in.worker_pid) : std::string();
      auto e = std::make_exception_ptr(task_lost_error(
          "no worker could run " + where + " to its end: " + *in.lost, in.worker_pid, in.target,
          std::move(report), in.worker_host, static_cast<std::size_t>(in.attempts)));
      std::fill(out.failed.begin(), out.failed.end(), e);
      return out;
    }
    for (auto& f : in.failures)
      out.failed[f.index] = std::make_exception_ptr(remote_error(
          f.type + ": " + f.message + " (in " + where + ", call " + std::to_string(f.index) + ")",
          in.worker_pid, in.target, std::move(f.crash_report), f.type, f.message,
          std::move(f.stacktrace)));
  }
  out.values = std::move(in.values);
  return out;
}

std::vector<task_outcome> task_wait::on_reply(std::string_view reply,
                                              const crash_report_fn& crash_report,
                                              error_code& ec, std::string& message) {
  ec.clear();
  message.clear();
  sent_.clear();  // acknowledged: the server has them
  // The reply's shape first: a malformed one changes nothing (no outcome marked received
  // and then dropped).
  wire::wait_view reply_view;
  try {
    reply_view = wire::parse_wait_reply(reply);
  } catch (const wire::malformed& e) {
    ec = client_errc::protocol_error;
    message = std::string("unexpected task_wait reply: ") + e.what();
    return {};
  }
  std::vector<task_outcome> out;
  for (auto& [id, outcome] : reply_view.results) {
    if (id < first_ || id >= first_ + count() || got_[id - first_]) continue;
    got_[id - first_] = true;
    --remaining_;
    ack_.push_back(id);
    try {
      out.push_back(parse(id, outcome, crash_report));
    } catch (const std::exception& e) {  // a malformed outcome: its calls fail, not all
      task_outcome bad;
      bad.id = id;
      bad.failed.assign(items_[id - first_],
                        std::make_exception_ptr(zproc::error(
                            client_errc::protocol_error, "swarm '" + swarm_ + "' task " +
                                                             std::to_string(id) +
                                                             ": malformed outcome: " + e.what())));
      out.push_back(std::move(bad));
    }
  }
  if (out.empty() && remaining_ > 0 && !reply_view.left) {
    ec = server_errc::bad_request;
    message = "swarm '" + swarm_ + "': tasks " + std::to_string(first_) + " to " +
              std::to_string(first_ + count() - 1) +
              " are no longer on the server (cancelled, or collected by another process)";
  }
  return out;
}

}  // namespace zproc::detail
