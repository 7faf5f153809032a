// The messages of the swarm's task queue, typed (docs/protocol.md, "Tasks"): a builder for each
// request and each reply, and a parser for each reply and for a task's outcome, shared by the
// submitter, the collector and the worker (lib/src/swarm) and the server's task queue
// (lib/src/server/task_queue.cpp). The field names are in protocol/tasks.hpp; nothing outside
// lib/src/protocol picks a task message apart by hand. Plain functions, no I/O.
//
// A parser throws protocol::tasks::malformed for a reply of the wrong shape; the caller turns
// that into client_errc::protocol_error with the message. The busy replies (a take's tasks, a
// wait's outcomes) are read from their MessagePack without a json tree; parsed views point
// into the reply they were parsed from (it must outlive them).
#pragma once

#include "protocol/packed_request.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zproc::protocol::tasks {

using nlohmann::json;

/// A reply or an outcome of the wrong shape.
class malformed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// --- requests (client side) --------------------------------------------------------------------

struct submit_options {
  std::string queue;
  std::string target;
  bool bound = true;
  std::uint64_t max_attempts = 1;
  std::optional<std::uint64_t> call_timeout_ms;  // none: calls may run for ever
};
/// What the writers below share: a message that ends with a list written element by element,
/// its count patched into the list's header (an array 32 header, which any reader takes for any
/// count) when the list closes.
class counted_list {
 public:
  /// Opens the list at the end of `out` (writes its header).
  void open(std::string& out);
  /// One more element was appended to it.
  void added() noexcept { ++count_; }
  std::size_t size() const noexcept { return count_; }
  /// Writes the count into the header.
  void close(std::string& out) const;

 private:
  std::size_t at_ = 0;
  std::size_t count_ = 0;
};

/// A task_submit written as MessagePack as its chunks come (no json tree for thousands of
/// them): the options' fields, then "t": [[packed args (binary), items], ...].
class submit_writer {
 public:
  explicit submit_writer(const submit_options& options);
  /// One chunk: the packed arguments of `items` calls.
  void add(std::string_view packed_args, std::size_t items);
  std::size_t size() const noexcept { return list_.size(); }
  packed_request finish() &&;

 private:
  packed_request r_;
  counted_list list_;
};
/// task_take: at most `max` tasks for the worker `pid` on `host`, holding at most `calls`
/// calls in all (one task at least; 0: no limit), and more than one only of `target` (the
/// target the worker measured its calls on; empty: any).
json take_request(const std::string& queue, std::size_t max, std::int64_t pid,
                  const std::string& host, std::uint64_t calls = 0,
                  std::string_view target = {});
/// A task_done written as MessagePack as the worker's tasks end: "r": [[id, outcome], ...].
class done_writer {
 public:
  done_writer();
  /// Task `id` ended with `outcome` (one whole MessagePack map: ran_outcome()).
  void add(std::uint64_t id, std::string_view outcome);
  std::size_t size() const noexcept { return list_.size(); }
  packed_request finish() &&;

 private:
  packed_request r_;
  counted_list list_;
};
/// task_wait for tasks [from, to), parked up to `ms`, acknowledging `ack` (none if empty).
json wait_request(std::uint64_t from, std::uint64_t to, std::uint64_t ms,
                  const std::vector<std::uint64_t>& ack);
/// task_cancel for tasks [from, to).
json cancel_request(std::uint64_t from, std::uint64_t to);
/// task_retire: the workers `pids` on `host` exit when they next ask for work.
json retire_request(const std::string& queue, const std::vector<std::int64_t>& pids,
                    const std::string& host);
/// task_info of a swarm.
json info_request(const std::string& queue);

// --- replies -----------------------------------------------------------------------------------

/// task_submit's reply: the id of the first task (the others follow it).
json submit_reply(std::uint64_t first);
std::uint64_t parse_submit_reply(const json& reply);

/// A task as a take reply hands it to a worker.
struct task_view {
  std::uint64_t id = 0;
  std::string_view target;
  std::string_view args;  ///< the packed arguments (the binary's bytes)
  std::size_t items = 0;
  std::uint64_t attempt = 0;
  std::int64_t call_timeout_ms = 0;  // 0: no limit
};
/// task_take's reply when the worker is to exit (the tasks: take_reply_writer below).
json retire_reply();
struct take_view {
  bool retire = false;
  std::vector<task_view> tasks;
};
/// Reads a take reply's result (`reply`: its MessagePack).
take_view parse_take_reply(std::string_view reply);

/// task_wait's reply: [[id, outcome], ...] and whether the range still holds tasks (written by
/// wait_reply_writer below).
struct wait_view {
  std::vector<std::pair<std::uint64_t, std::string_view>> results;  ///< id, outcome's MessagePack
  bool left = false;
};
/// Reads a wait reply's result (`reply`: its MessagePack).
wait_view parse_wait_reply(std::string_view reply);

/// The replies the server sends most (a take's tasks, a wait's outcomes) written as MessagePack
/// while the queue walks its tasks, without a json tree: the bytes of a complete reply to
/// request `request_id`, as parse_take_reply() and parse_wait_reply() read them. A task's
/// arguments and an outcome are copied in as the bytes they were kept as.
class take_reply_writer {
 public:
  explicit take_reply_writer(std::uint64_t request_id);
  /// One task: [id, target, args, items, attempt, call timeout]; `packed_args` is the whole
  /// MessagePack binary.
  void add(std::uint64_t id, std::string_view target, std::string_view packed_args,
           std::uint64_t items, std::uint64_t attempt, std::int64_t call_timeout_ms);
  std::size_t size() const noexcept { return list_.size(); }
  /// The reply: {"i": request_id, "r": {"t": [...]}}.
  std::string finish() &&;

 private:
  std::string out_;
  counted_list list_;
};
class wait_reply_writer {
 public:
  explicit wait_reply_writer(std::uint64_t request_id);
  /// One result; `outcome` is one whole MessagePack map.
  void add(std::uint64_t id, std::string_view outcome);
  std::size_t size() const noexcept { return list_.size(); }
  /// The reply: {"i": request_id, "r": {"r": [...], "left": left}}.
  std::string finish(bool left) &&;

 private:
  std::string out_;
  counted_list list_;
};

/// task_info's reply.
struct worker_entry {
  std::uint64_t client = 0;
  std::int64_t pid = 0;
  std::string host;
  std::size_t running = 0;
  std::size_t done = 0;
  bool retiring = false;
};
struct info {
  std::vector<worker_entry> workers;
  std::size_t queued = 0;
  std::size_t running = 0;
};
json info_reply(const info& i);
info parse_info_reply(const json& reply);

// --- outcomes ----------------------------------------------------------------------------------

/// A call of a task that threw.
struct failure {
  std::size_t index = 0;
  std::string type;
  std::string message;
  std::string stacktrace;
  std::string crash_report;
};

/// What became of a task: its calls' values and failures, or, when no worker could run it to
/// its end, why (`lost`).
struct outcome {
  std::size_t items = 1;
  std::string target;
  std::int64_t worker_pid = 0;
  std::string worker_host;
  std::vector<std::uint8_t> values;  // the packed values of the calls that returned
  std::vector<failure> failures;
  std::optional<std::string> lost;
  std::uint64_t attempts = 0;  // with `lost`
};

/// The outcome a worker reports, as MessagePack: {"v": values (binary), "n": items, "tg":
/// target[, "f": [[index, type, message, stacktrace, crash_report], ...]]} (no pid or host: the
/// server adds them, see stamped_outcome()).
std::string ran_outcome(std::string_view values, std::size_t items, std::string_view target,
                        const std::vector<failure>& failures);
/// The outcome the server makes when the task's workers died `attempts` times.
json lost_outcome(std::string why, std::int64_t worker_pid, const std::string& worker_host,
                  std::uint64_t attempts, std::size_t items, const std::string& target);
/// Stamps the worker that ran it on an outcome (`outcome`: one whole MessagePack map, as a
/// task_done carries it; a "w" or "h" it holds already is replaced): the map the server keeps
/// for the submitter.
std::string stamped_outcome(std::string_view outcome, std::int64_t pid, std::string_view host);
/// Reads an outcome (its MessagePack). A failure entry that names no call of the task (an index
/// out of range, or not [index, type, message, stacktrace, report]) is skipped.
outcome parse_outcome(std::string_view o);

}  // namespace zproc::protocol::tasks
