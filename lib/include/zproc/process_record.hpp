// zproc/process_record.hpp - the server's record of a process spawned through it, and how to
// list them (what `zproc ps` shows).
#pragma once

#include <zproc/client.hpp>
#include <zproc/detail/request.hpp>
#include <zproc/error.hpp>
#include <zproc/json.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace zproc {

/// One process spawned through a server: registered by the supervisor that started it, updated
/// by it as the process runs, crashes or is retried, and kept by the server (all running
/// processes, and the newest `server_config::max_process_records` finished ones).
struct process_record {
  std::uint64_t id = 0;         ///< the server's id for the record: 1, 2, ... per server run
  std::int64_t pid = 0;         ///< the process id (a retry has a new one)
  std::int64_t ppid = 0;        ///< the process id of its parent (the supervisor's process)
  std::string target;           ///< what runs: the target's name, or the command line
  std::string ns;               ///< the namespace it was given (wire field "n")
  std::string host;             ///< the host it runs on
  std::string kind;             ///< "target" (a function) or "command" (a program)
  /// "running", "exited", "failed", "crashed", "killed", "stopped", or "lost" (its supervisor
  /// disconnected from the server while it ran: nobody will report how it ends).
  std::string state;
  std::optional<int> exitcode;  ///< how it exited, once known
  std::string crash_report;     ///< for a crash or a failure: what happened (may be shortened)
  std::string note;             ///< a remark of the supervisor's or the server's
  int attempt = 1;              ///< 1 for the first run, one more per retry
  std::uint64_t parent_record = 0;  ///< the record of the process that spawned it (0: none)
  std::int64_t started_ms = 0;  ///< server wall time of the registration, ms since the epoch
  std::int64_t ended_ms = 0;    ///< server wall time it stopped running (0: still runs)
  std::uint64_t client = 0;     ///< the connection that registered it (its client::id())

  friend bool operator==(const process_record&, const process_record&) = default;
};

/// JSON in the schema every JSON output of zproc uses (`zproc ps --json` included): the member
/// names; exitcode, crash_report, note, parent_record and ended_ms are left out when empty or
/// zero. (The wire uses shorter names.)
void to_json(json& j, const process_record& r);
void from_json(const json& j, process_record& r);

namespace detail {
/// Lists the records, a page at a time (replies stay below the frame size), in compiled code.
void start_list_processes(const std::shared_ptr<client_impl>& c,
                          handler<std::vector<process_record>> h, diagnostics_ptr diagnostics);
}  // namespace detail

/// Every process record the server keeps, ordered by id (running and finished ones).
/// Completion: void(error_code, std::vector<process_record>). Errors: those of the connection
/// (client_errc::not_connected, connection_closed, ...) and client_errc::wrong_mode on a
/// blocking-mode client. Supports terminal and partial cancellation: completes at once with
/// asio::error::operation_aborted; the client stays usable.
template <class CompletionToken = default_token>
auto async_list_processes(const client& c, CompletionToken&& token = default_token{}) {
  return detail::initiate<void(error_code, std::vector<process_record>)>(
      [](auto h, const std::shared_ptr<detail::client_impl>& impl) {
        auto diagnostics = detail::diagnostics_of(h);
        detail::start_list_processes(
            impl, detail::handler<std::vector<process_record>>(std::move(h)),
            std::move(diagnostics));
      },
      token, c.impl());
}

/// Blocking twin of async_list_processes(); throws zproc::error.
std::vector<process_record> list_processes(const client& c);

}  // namespace zproc
