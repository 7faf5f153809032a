// Process records on the client: their wire form, and listing them a page at a time.
#include "client/client_core.hpp"
#include "client/async_runner.hpp"
#include "client/completion.hpp"
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

void to_json(json& j, const process_record& r) {
  j = json{{rf::id, r.id},         {rf::pid, r.pid},       {rf::ppid, r.ppid},
           {rf::target, r.target}, {rf::ns, r.ns},          {rf::host, r.host},
           {rf::kind, r.kind},     {rf::state, r.state},   {rf::attempt, r.attempt},
           {rf::started, r.started_ms}, {rf::client, r.client}};
  if (r.exitcode) j[rf::exitcode] = *r.exitcode;
  if (!r.crash_report.empty()) j[rf::crash_report] = r.crash_report;
  if (!r.note.empty()) j[rf::note] = r.note;
  if (r.parent_record != 0) j[rf::parent_record] = r.parent_record;
  if (r.ended_ms != 0) j[rf::ended] = r.ended_ms;
}

void from_json(const json& j, process_record& r) {
  r = process_record{};
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
}

namespace detail {

namespace asio = boost::asio;

namespace {

/// Records per proc_list request: a page of the largest records fills half a frame at most.
std::size_t page_size(const client_impl& c) {
  return std::max<std::size_t>(1, c.options().max_frame_size / (2 * wire::max_record_bytes));
}

json list_request(std::uint64_t after, std::size_t max) {
  json r = protocol::make(protocol::op::proc_list);
  r[wire::after] = after;
  r[wire::max] = max;
  return r;
}

/// Appends one page of a proc_list reply; returns whether more may follow. Throws
/// json::exception for a reply of the wrong shape.
bool append_page(json&& page, std::size_t page_size, std::vector<process_record>& out) {
  if (!page.is_array())
    throw json::type_error::create(302, "proc_list replied with a non-array", &page);
  for (auto& r : page) out.push_back(r.get<process_record>());
  return page.size() >= page_size;
}

std::string unexpected_reply(const json::exception& e) {
  return std::string("unexpected reply from the server: ") + e.what();
}

/// One async_list_processes(): requests pages until one is short, then completes. One
/// cancellation token for all its requests: a cancel stops the page in flight or the next.
class list_run : public std::enable_shared_from_this<list_run> {
 public:
  list_run(std::shared_ptr<connection> conn, held_handler<std::vector<process_record>>&& h,
           std::shared_ptr<cancel_token> cancel, std::size_t page)
      : token(std::move(cancel)), conn_(std::move(conn)), h_(std::move(h)), page_(page) {}

  const std::shared_ptr<cancel_token> token;

  /// Sends the next page's request (on the connection's executor).
  void next();
  void on_page(error_code ec, json&& result, std::string&& message, bool must_post);

 private:
  std::shared_ptr<connection> conn_;
  held_handler<std::vector<process_record>> h_;
  std::size_t page_;
  std::vector<process_record> records_;
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
  const std::uint64_t after = records_.empty() ? 0 : records_.back().id;
  conn_->request(list_request(after, page_), std::make_unique<page_op>(shared_from_this()));
}

void list_run::on_page(error_code ec, json&& result, std::string&& message, bool must_post) {
  if (!ec) {
    try {
      if (append_page(std::move(result), page_, records_)) {
        next();
        return;
      }
    } catch (const json::exception& e) {
      ec = client_errc::protocol_error;
      message = unexpected_reply(e);
    }
  }
  if (ec) {
    records_.clear();
    h_.set_message(std::move(message));
  }
  h_.complete(must_post, ec, std::move(records_));
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
  const std::size_t page = detail::page_size(*c.impl());
  std::vector<process_record> records;
  for (;;) {
    const std::uint64_t after = records.empty() ? 0 : records.back().id;
    json reply = detail::call<json>(
        c.impl(), detail::request_access::wrap(detail::list_request(after, page)));
    try {
      if (!detail::append_page(std::move(reply), page, records)) return records;
    } catch (const json::exception& e) {
      throw zproc::error(client_errc::protocol_error, detail::unexpected_reply(e));
    }
  }
}

}  // namespace zproc
