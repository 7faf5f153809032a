// Process records on the client: their wire form and their JSON (the user's schema), and
// listing them a page at a time.
#include "client/async_runner.hpp"
#include "client/client_core.hpp"
#include "client/completion.hpp"
#include "client/record_pager.hpp"
#include "protocol/message.hpp"
#include "protocol/ops.hpp"
#include "protocol/process_records.hpp"

#include <zproc/process_record.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>

#include <algorithm>

namespace zproc {

namespace wire = protocol::process;
namespace rf = protocol::process::record_field;

namespace detail {

process_record record_from_wire(const json& j) {
  process_record r;
  j.at(rf::id).get_to(r.id);  // throws for anything that is not a record
  const auto read = [&](const char* name, auto& out) {
    if (auto it = j.find(name); it != j.end() && !it->is_null()) it->get_to(out);
  };
  read(rf::pid, r.pid);
  read(rf::ppid, r.ppid);
  read(rf::target, r.target);
  read(rf::ns, r.ns);
  read(rf::host, r.host);
  read(rf::kind, r.kind);
  read(rf::state, r.state);
  if (auto it = j.find(rf::exitcode); it != j.end() && !it->is_null()) r.exitcode = it->get<int>();
  read(rf::crash_report, r.crash_report);
  read(rf::note, r.note);
  read(rf::attempt, r.attempt);
  read(rf::parent_record, r.parent_record);
  read(rf::started, r.started_ms);
  read(rf::ended, r.ended_ms);
  read(rf::client, r.client);
  return r;
}

}  // namespace detail

// The user's schema: the member names; the optional ones (exitcode, crash_report, note,
// parent_record, ended_ms) are left out when empty or zero.
void to_json(json& j, const process_record& r) {
  j = json{{"id", r.id},         {"pid", r.pid},       {"ppid", r.ppid},
           {"target", r.target}, {"ns", r.ns},         {"host", r.host},
           {"kind", r.kind},     {"state", r.state},   {"attempt", r.attempt},
           {"started_ms", r.started_ms}, {"client", r.client}};
  if (r.exitcode) j["exitcode"] = *r.exitcode;
  if (!r.crash_report.empty()) j["crash_report"] = r.crash_report;
  if (!r.note.empty()) j["note"] = r.note;
  if (r.parent_record != 0) j["parent_record"] = r.parent_record;
  if (r.ended_ms != 0) j["ended_ms"] = r.ended_ms;
}

void from_json(const json& j, process_record& r) {
  r = process_record{};
  j.at("id").get_to(r.id);
  const auto read = [&](const char* name, auto& out) {
    if (auto it = j.find(name); it != j.end() && !it->is_null()) it->get_to(out);
  };
  read("pid", r.pid);
  read("ppid", r.ppid);
  read("target", r.target);
  read("ns", r.ns);
  read("host", r.host);
  read("kind", r.kind);
  read("state", r.state);
  if (auto it = j.find("exitcode"); it != j.end() && !it->is_null()) r.exitcode = it->get<int>();
  read("crash_report", r.crash_report);
  read("note", r.note);
  read("attempt", r.attempt);
  read("parent_record", r.parent_record);
  read("started_ms", r.started_ms);
  read("ended_ms", r.ended_ms);
  read("client", r.client);
}

namespace detail {

namespace asio = boost::asio;

namespace {

/// Records per proc_list request: a page of the largest records fills half a frame at most.
std::size_t page_size(const client_impl& c) {
  return std::max<std::size_t>(1, c.options().max_frame_size / (2 * wire::max_record_bytes));
}

/// One async_list_processes(): requests pages until one is short, then completes. One
/// cancellation token for all its requests: a cancel stops the page in flight or the next.
class list_run : public std::enable_shared_from_this<list_run> {
 public:
  list_run(std::shared_ptr<connection> conn, held_handler<std::vector<process_record>>&& h,
           std::shared_ptr<cancel_token> cancel, std::size_t page)
      : token(std::move(cancel)), conn_(std::move(conn)), h_(std::move(h)), pager_(page) {}

  const std::shared_ptr<cancel_token> token;

  /// Sends the next page's request (on the connection's executor).
  void next();
  void on_page(error_code ec, json&& result, std::string&& message, bool must_post);

 private:
  std::shared_ptr<connection> conn_;
  held_handler<std::vector<process_record>> h_;
  record_pager pager_;
};

class page_op final : public pending_op {
 public:
  explicit page_op(std::shared_ptr<list_run> run) : run_(std::move(run)) { token = run_->token; }
  void complete(error_code ec, json&& result, std::string&& message, bool must_post) override {
    run_->on_page(ec, std::move(result), std::move(message), must_post);
  }

 private:
  std::shared_ptr<list_run> run_;
};

void list_run::next() {
  conn_->request(pager_.request(), std::make_unique<page_op>(shared_from_this()));
}

void list_run::on_page(error_code ec, json&& result, std::string&& message, bool must_post) {
  if (!ec && pager_.on_reply(std::move(result), ec, message)) return next();
  if (ec) {
    h_.set_message(std::move(message));
    return h_.complete(must_post, ec, std::vector<process_record>{});
  }
  h_.complete(must_post, ec, pager_.take());
}

}  // namespace

void start_list_processes(const std::shared_ptr<client_impl>& c,
                          handler<std::vector<process_record>> h, diagnostics_ptr diagnostics) {
  // Terminal and partial cancellation: the page in flight is dropped, or the next one is never
  // sent; the listing completes with operation_aborted.
  run_client_async(c, std::move(h), std::move(diagnostics), cancel_terminal_or_partial,
                   cancel_request(c),
                   [conn = c->conn(), page = page_size(*c)](
                       held_handler<std::vector<process_record>>&& held,
                       std::shared_ptr<cancel_token> token) {
                     std::make_shared<list_run>(conn, std::move(held), std::move(token), page)
                         ->next();
                   });
}

}  // namespace detail

std::vector<process_record> list_processes(const client& c) {
  detail::record_pager pager(detail::page_size(*c.impl()));
  for (;;) {
    json reply = detail::call<json>(c.impl(), detail::request_access::wrap(pager.request()));
    error_code ec;
    std::string message;
    if (pager.on_reply(std::move(reply), ec, message)) continue;
    if (ec) throw zproc::error(ec, message);
    return pager.take();
  }
}

}  // namespace zproc
