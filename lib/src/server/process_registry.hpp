// The server's record of every process spawned through it: a supervisor registers each process
// it starts (proc_start), reports what becomes of it (proc_update), and anyone lists them
// (proc_list, `zproc ps`). Plain logic, no I/O: the engine routes the requests here, gives the
// server's wall time, and says when a client's connection closes.
//
// A record is a JSON object. The supervisor's fields: pid, ppid, target, n (namespace), host,
// kind ("target" | "command"), attempt, and optionally parent_record, state, exitcode,
// crash_report, note, and any other field (kept as given). The server's fields, which nobody
// else may write: id (1, 2, ... per server run), client (the registering connection), started
// and ended (wall time, ms since the epoch; ended when the state leaves "running").
#pragma once

#include "server/op_error.hpp"

#include <zproc/detail/op.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>

namespace zproc::server_detail {

class process_registry {
 public:
  using json = nlohmann::json;

  /// Keeps at most `max_finished` records that are not running (evicting those that finished
  /// first); running records are never evicted.
  explicit process_registry(std::size_t max_finished = 10'000) : max_finished_(max_finished) {}

  /// Whether `o` is one of the registry's operations (proc_start, proc_update, proc_list).
  static bool handles(detail::op o) noexcept;

  /// Runs one of those requests, sent by connection `client_id` at server time `now_ms`, and
  /// returns the reply's result. Bad input throws op_error (bad_request) and changes nothing.
  json execute(const json& request, std::uint64_t client_id, std::int64_t now_ms);
  /// The same, for a request whose op (one of handles()) the caller read already.
  /// `privileged` (an admin connection): may change records another connection created.
  json execute(detail::op o, const json& request, std::uint64_t client_id, std::int64_t now_ms,
               bool privileged = true);

  /// Running records one connection may register (0: no limit): a start past it fails with
  /// limit_reached.
  void set_max_running_per_client(std::size_t n) noexcept { max_running_per_client_ = n; }

  /// proc_start: registers a running process; returns its id. Throws op_error.
  std::uint64_t start(const json& fields, std::uint64_t client_id, std::int64_t now_ms);
  /// proc_update: merges `fields` into record `id` (a null removes an optional field). Leaving
  /// "running" sets `ended`; coming back to it (a retry) removes it. Throws op_error.
  void update(std::uint64_t id, const json& fields, std::int64_t now_ms);
  /// proc_list: the records with an id above `after`, in id order, at most `max`, only those
  /// in `state` if given (a valid state name: see is_state()).
  json list(std::optional<std::string_view> state = {}, std::uint64_t after = 0,
            std::size_t max = static_cast<std::size_t>(-1)) const;
  /// The connection `client_id` closed: the records it registered that are still running
  /// become "lost" (the supervisor that would report their end is gone).
  void client_gone(std::uint64_t client_id, std::int64_t now_ms);

  /// Record `id`, or nullptr (never registered, or evicted).
  const json* find(std::uint64_t id) const;
  std::size_t size() const noexcept { return records_.size(); }
  std::size_t finished() const noexcept { return finished_.size(); }
  std::size_t running() const noexcept { return records_.size() - finished_.size(); }

  /// running, exited, failed, crashed, killed, stopped, lost.
  static bool is_state(std::string_view s) noexcept;

 private:
  struct entry {
    json data;
    std::uint64_t finished_seq = 0;  // its key in finished_; 0 while running
  };

  /// `fields` checked and normalized for record `current` (nullptr: a new record).
  static json checked(const json& fields, const json* current);
  /// The record now runs / no longer runs: keeps the indexes in step.
  void mark_running(std::uint64_t id, entry& e);
  void mark_finished(std::uint64_t id, entry& e);
  /// Drops the oldest finished records past the bound.
  void evict();

  std::map<std::uint64_t, entry> records_;           // by id: proc_list's order
  std::map<std::uint64_t, std::uint64_t> finished_;  // finish sequence -> id, oldest first
  std::unordered_map<std::uint64_t, std::set<std::uint64_t>> running_by_client_;
  std::size_t max_running_per_client_ = 0;
  std::uint64_t last_id_ = 0;
  std::uint64_t last_finish_ = 0;
  std::size_t max_finished_;
};

}  // namespace zproc::server_detail
