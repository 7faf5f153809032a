// The swarm's task queues on the server: submitters queue tasks, workers take them, the
// outcomes are held until their submitter (or anyone who knows the id) collects them. Plain
// logic, no I/O: the engine routes the requests here, gives the time, and says when a
// connection closes.
//
// Nothing is lost: a task a worker holds when its connection closes (the worker crashed, was
// killed, or its machine went away) goes back to the front of its queue, up to the task's
// max_attempts; then it fails with an outcome that says which worker died. A wait parked on
// the server is answered when an outcome arrives, or empty when its deadline passes.
#pragma once

#include "protocol/task_request.hpp"
#include "server/client_counts.hpp"
#include "server/op_error.hpp"
#include "server/shared_budget.hpp"
#include "server/watch.hpp"

#include <zproc/detail/op.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace zproc::server_detail {

class task_queue {
 public:
  using json = nlohmann::json;
  using clock = std::chrono::steady_clock;

  /// Keeps at most `max_orphaned` outcomes whose submitter disconnected without collecting them
  /// (the oldest go first); outcomes of connected submitters stay until collected.
  explicit task_queue(std::size_t max_orphaned = 10'000) : max_orphaned_(max_orphaned) {}

  /// Whether `o` is one of the queue's operations (task_submit, task_take, ...).
  static bool handles(detail::op o) noexcept;

  /// Runs request `request_id` of connection `client_id`: appends its reply to `out` (unless
  /// it parks: a take with nothing to take, a wait with nothing finished), and the replies to
  /// parked requests that it answers. Bad input throws op_error (bad_request) and changes
  /// nothing.
  void execute(const json& request, std::uint64_t request_id, std::uint64_t client_id,
               clock::time_point now, std::vector<delivery>& out);
  /// The same, for a request whose op (one of handles()) the caller read already.
  /// `privileged` (an admin connection): may cancel tasks it did not submit.
  void execute(detail::op o, const json& request, std::uint64_t request_id,
               std::uint64_t client_id, clock::time_point now, std::vector<delivery>& out,
               bool privileged = true);

  /// The same for a request read without a json tree (protocol::decode_task_request): a
  /// submit, take, done or wait.
  void execute(const protocol::task_request& request, std::uint64_t client_id,
               clock::time_point now, std::vector<delivery>& out);
  /// A submit, take, done or wait as json, read as decode_task_request() reads its
  /// MessagePack; a field missing or of the wrong type throws op_error (bad_request) saying
  /// which. Views point into `request`, or into `storage` (the packed arguments and outcomes).
  static protocol::task_request request_of(detail::op o, const json& request,
                                           std::uint64_t request_id, std::string& storage);

  /// Forgets a parked take or wait that its client gave up; false if there is none.
  bool cancel(std::uint64_t client_id, std::uint64_t request_id);

  /// Connection `client_id` closed: the tasks its worker held are queued again (or fail), its
  /// parked requests go, and the tasks it submitted with `bound` are cancelled.
  void client_gone(std::uint64_t client_id, std::vector<delivery>& out);

  /// Answers the parked waits whose deadline passed (with no outcome).
  void tick(clock::time_point now, std::vector<delivery>& out);

  /// Tasks held at most (server_config::limits.max_tasks; 0: no limit): a submit past it fails
  /// with limit_reached.
  void set_max_tasks(std::size_t n) noexcept { max_tasks_ = n; }
  /// The queue of shard `index` of several: the ids it gives name that shard (shard_of_id()),
  /// and its tasks count in `shared` (for max_tasks, which is the server's) besides its own.
  void join_shards(std::size_t index, shared_budget* shared) noexcept {
    last_id_ = static_cast<std::uint64_t>(index) << id_shard_shift;
    shared_ = shared;
  }
  /// The shard (of `shards`) whose queue gave task id `id`; 0 for an id no shard gave.
  static std::size_t shard_of_id(std::uint64_t id, std::size_t shards) noexcept {
    const std::uint64_t s = id >> id_shard_shift;
    return s < shards ? static_cast<std::size_t>(s) : 0;
  }
  /// The takes and waits of `client_id` that wait for an answer.
  std::size_t parked_of(std::uint64_t client_id) const;

  /// Counts, for tests and task_info.
  std::size_t size() const noexcept { return tasks_.size(); }
  std::size_t finished() const noexcept { return done_.size(); }
  std::size_t queued(const std::string& queue) const;
  std::size_t workers(const std::string& queue) const;

 private:
  enum class task_state : std::uint8_t { queued, running, done };
  struct task {
    std::string queue;
    std::shared_ptr<const std::string> target;
    std::string args;  // the packed arguments: one whole MessagePack binary, as submitted
    std::uint64_t items = 0;
    std::uint64_t owner = 0;  // 0: its submitter is gone
    bool bound = false;
    bool cancelled = false;  // running: its outcome is dropped
    task_state state = task_state::queued;
    std::uint32_t attempts = 0;
    std::uint32_t max_attempts = 3;
    std::uint64_t call_timeout_ms = 0;  // for the worker's watchdog; 0: none
    std::uint64_t worker = 0;  // running: the client running it
    std::string outcome;  // done: one whole MessagePack map, stamped with its worker
  };
  /// What a take asks for.
  struct take_limits {
    std::uint64_t request_id;
    std::size_t max;          // tasks
    std::uint64_t calls;      // calls in all (0: no limit)
    std::string_view target;  // more than one task only of this target (empty: any)
  };
  /// A take that waits for tasks (its target's name owned: the request is gone).
  struct parked_take {
    std::uint64_t request_id;
    std::size_t max;
    std::uint64_t calls;
    std::string target;
    take_limits limits() const noexcept { return {request_id, max, calls, target}; }
  };
  struct worker {
    std::string queue;
    std::int64_t pid = 0;
    std::string host;
    std::unordered_set<std::uint64_t> running;
    std::uint64_t done = 0;
    bool retiring = false;
    std::optional<parked_take> parked;
  };
  struct queue_state {
    std::deque<std::uint64_t> pending;  // may hold ids of cancelled tasks (skipped)
    std::size_t live = 0;               // queued tasks that are not cancelled
    std::uint64_t live_calls = 0;       // the calls they hold
    std::vector<std::uint64_t> workers;
    std::deque<std::uint64_t> parked;  // workers with a parked take, oldest first
    /// Workers retired before they connected (being respawned): (host, pid) -> when.
    std::map<std::pair<std::string, std::int64_t>, clock::time_point> retire_pending;
  };
  struct parked_wait {
    std::uint64_t client_id;
    std::uint64_t request_id;
    std::uint64_t from, to;
    clock::time_point deadline;
  };

  void submit(const protocol::task_request& request, std::uint64_t client_id,
              std::vector<delivery>& out);
  void take(const protocol::task_request& request, std::uint64_t client_id,
            std::vector<delivery>& out);
  void done(const protocol::task_request& request, std::uint64_t client_id,
            std::vector<delivery>& out);
  void wait(const protocol::task_request& request, std::uint64_t client_id,
            clock::time_point now, std::vector<delivery>& out);
  void cancel_range(const json& request, std::uint64_t request_id, std::uint64_t client_id,
                    bool privileged,
                    std::vector<delivery>& out);
  void retire(const json& request, std::uint64_t request_id, std::uint64_t client_id,
              clock::time_point now, std::vector<delivery>& out);
  json info(const json& request) const;

  /// How many queued calls one take may hold: the queue's calls over its workers.
  static std::uint64_t fair_share(const queue_state& q) noexcept;
  /// Up to `p.max` tasks of the worker's queue holding up to `p.calls` calls and `share` (at
  /// least one task), as the reply to its take `p.request_id`; nullopt when there is none.
  std::optional<std::string> assign(std::uint64_t client_id, worker& w, const take_limits& p,
                                    std::uint64_t share);
  /// Hands queued tasks to the parked takes of `queue`.
  void serve_takers(const std::string& queue, std::vector<delivery>& out);
  /// Answers the parked waits that `finished` (ids that just got an outcome) concern.
  void serve_waits(const std::vector<std::uint64_t>& finished, std::vector<delivery>& out);
  /// A wait's reply: the outcomes held in [from, to), up to the reply limit, and whether tasks
  /// remain there.
  struct collected {
    std::string reply;  // to wait `request_id`, MessagePack
    std::size_t results = 0;
    bool left = false;
  };
  collected collect(std::uint64_t from, std::uint64_t to, std::uint64_t request_id) const;
  using task_map = std::map<std::uint64_t, task>;
  /// The task ends with `outcome`: held for collection (or dropped if cancelled).
  void finish(std::uint64_t id, task& t, std::string outcome);
  /// Cancels a task: removed, or, while a worker runs it, its outcome dropped when it comes.
  /// Returns the next task.
  task_map::iterator drop(task_map::iterator it);
  /// Removes a task wherever it is.
  void erase(task_map::iterator it);
  /// Removes `it` from the map (and from the shards' count).
  void forget(task_map::iterator it);
  /// A worker's connection closed while it ran `id`.
  void lost(std::uint64_t id, const worker& w, std::vector<std::uint64_t>& finished);
  void orphan(std::uint64_t id);

  task_map tasks_;
  std::set<std::uint64_t> done_;  // ids of tasks with an outcome, not yet collected
  std::unordered_map<std::string, queue_state> queues_;
  std::unordered_map<std::uint64_t, worker> workers_;
  std::vector<parked_wait> waits_;
  client_counts wait_counts_;  // waits_ per connection
  std::unordered_map<std::uint64_t, std::vector<std::pair<std::uint64_t, std::uint64_t>>> owned_;
  std::set<std::uint64_t> orphans_;
  std::size_t max_tasks_ = 0;  // finished tasks whose submitter is gone, oldest first
  std::size_t max_orphaned_;
  /// A task id is the shard's index above this bit, its queue's count below (2^48 tasks a
  /// shard; ids stay below 2^63 for readers that take them as signed).
  static constexpr unsigned id_shard_shift = 48;
  std::uint64_t last_id_ = 0;
  shared_budget* shared_ = nullptr;
};

}  // namespace zproc::server_detail
