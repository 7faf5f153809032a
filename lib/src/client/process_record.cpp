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

namespace {

/// The names of a record's fields: on the wire, and in the user's schema (the member names).
struct record_names {
  const char *id, *pid, *ppid, *target, *ns, *host, *kind, *state, *attempt, *started, *ended,
      *client, *exitcode, *crash_report, *note, *parent_record;
};
constexpr record_names wire_names{
    rf::id,    rf::pid,   rf::ppid,    rf::target, rf::ns,     rf::host,
    rf::kind,  rf::state, rf::attempt, rf::started, rf::ended, rf::client,
    rf::exitcode, rf::crash_report, rf::note, rf::parent_record};
constexpr record_names user_names{
    "id",   "pid",   "ppid",    "target",     "ns",    "host",
    "kind", "state", "attempt", "started_ms", "ended_ms", "client",
    "exitcode", "crash_report", "note", "parent_record"};

/// Fields it does not know are ignored; throws json::exception for a record without an id or
/// with a field of the wrong type.
process_record read_record(const json& j, const record_names& n) {
  process_record r;
  j.at(n.id).get_to(r.id);  // throws for anything that is not a record
  const auto read = [&](const char* name, auto& out) {
    if (auto it = j.find(name); it != j.end() && !it->is_null()) it->get_to(out);
  };
  read(n.pid, r.pid);
  read(n.ppid, r.ppid);
  read(n.target, r.target);
  read(n.ns, r.ns);
  read(n.host, r.host);
  read(n.kind, r.kind);
  read(n.state, r.state);
  if (auto it = j.find(n.exitcode); it != j.end() && !it->is_null()) r.exitcode = it->get<int>();
  read(n.crash_report, r.crash_report);
  read(n.note, r.note);
  read(n.attempt, r.attempt);
  read(n.parent_record, r.parent_record);
  read(n.started, r.started_ms);
  read(n.ended, r.ended_ms);
  read(n.client, r.client);
  return r;
}

}  // namespace

namespace detail {
process_record record_from_wire(const json& j) { return read_record(j, wire_names); }
}  // namespace detail

// The user's schema: the member names; the optional ones (exitcode, crash_report, note,
// parent_record, ended_ms) are left out when empty or zero.
void to_json(json& j, const process_record& r) {
  const record_names& n = user_names;
  j = json{{n.id, r.id},         {n.pid, r.pid},     {n.ppid, r.ppid},
           {n.target, r.target}, {n.ns, r.ns},       {n.host, r.host},
           {n.kind, r.kind},     {n.state, r.state}, {n.attempt, r.attempt},
           {n.started, r.started_ms}, {n.client, r.client}};
  if (r.exitcode) j[n.exitcode] = *r.exitcode;
  if (!r.crash_report.empty()) j[n.crash_report] = r.crash_report;
  if (!r.note.empty()) j[n.note] = r.note;
  if (r.parent_record != 0) j[n.parent_record] = r.parent_record;
  if (r.ended_ms != 0) j[n.ended] = r.ended_ms;
}

void from_json(const json& j, process_record& r) { r = read_record(j, user_names); }

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
