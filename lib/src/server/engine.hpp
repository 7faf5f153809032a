// What the server does with one request, independent of sockets: the store's operations, the
// watchers, and which replies go to which client. Sessions feed it decoded requests and route
// the deliveries it returns.
#pragma once

#include "server/client_counts.hpp"
#include "server/journal.hpp"
#include "server/permissions.hpp"
#include "server/process_registry.hpp"
#include "server/store.hpp"
#include "server/task_queue.hpp"
#include "server/watch.hpp"

#include <zproc/server.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace zproc::server_detail {

class engine {
 public:
  /// `max_process_records`: finished process records kept (server_config::max_process_records).
  /// `max_namespaces`: server_config::max_namespaces.
  /// `shared`: what this engine's store and task queue count together with the other shards'
  /// (nullptr: one engine, its own); `shard`: this engine's index among them (its task ids
  /// name it).
  engine(std::int64_t server_pid, retention limits, std::size_t max_process_records = 10'000,
         std::size_t max_namespaces = 10'000, shared_budget* shared = nullptr,
         std::size_t shard = 0)
      : store_(server_pid, limits, max_namespaces, shared), processes_(max_process_records) {
    if (shared) tasks_.join_shards(shard, shared);
  }

  /// The limits of server_config (the connection count is the server's).
  void set_limits(const server_config::limits_config& l) {
    limits_ = l;
    tasks_.set_max_tasks(l.max_tasks);
    processes_.set_max_running_per_client(l.max_running_records_per_connection);
  }

  /// One engine (one shard): makes every write durable in `j`, recovering the state from it
  /// first. A snapshot is begun here, by the write that makes one due.
  recovery_report attach(std::unique_ptr<journal> j);
  /// One shard of several: every write of this shard goes to `j`, which the shards share (the
  /// server recovered them all from it). A snapshot reads every shard, so this engine does not
  /// begin one: the write that makes one due calls on_snapshot_begun's function, and the
  /// server begins it holding every shard's lock.
  void share_journal(journal& j) noexcept { journal_ = &j; }
  /// fsync the log if the policy asks for it now (timer of the interval policy).
  void sync() {
    if (journal_) journal_->sync();
  }

  /// `f` is called (from handle()) when a snapshot begins (attach()) or is due
  /// (share_journal()); the server then drives it with snapshot_step() on its strand, one
  /// bounded piece at a time between requests.
  void on_snapshot_begun(std::function<void()> f) { on_snapshot_begun_ = std::move(f); }
  // One engine (attach()) drives its snapshot itself: a shard of several does not (the server
  // does, holding every shard's lock), so these do nothing there.
  /// Writes the next piece of the snapshot in progress (see journal::snapshot_step).
  journal::snapshot_progress snapshot_step() {
    return own_journal_ ? own_journal_->snapshot_step(store_) : journal::snapshot_progress::idle;
  }
  /// Runs the snapshot in progress to its end now (the server stops).
  void finish_snapshot() {
    if (own_journal_) own_journal_->finish_snapshot(store_);
  }
  /// What went wrong with snapshots since the last call, one line each (for stderr).
  std::vector<std::string> take_journal_notes() {
    return own_journal_ ? own_journal_->take_notes() : std::vector<std::string>{};
  }

  /// Handles request `request_id` of client `ctx.client_id`. Appends to `out` the reply to it
  /// (unless it is a watch that waits) and the replies to watchers that its write woke.
  void handle(const json& request, std::uint64_t request_id, const request_context& ctx,
              std::vector<delivery>& out);

  /// The same for a watch request read without a json tree (protocol::decode_watch_request).
  void handle(const protocol::watch_request& request, const request_context& ctx,
              std::vector<delivery>& out);
  /// The same for a store request read without a json tree (protocol::decode_store_request).
  void handle(const protocol::store_request& request, const request_context& ctx,
              std::vector<delivery>& out);
  /// The same for a task request read without a json tree (protocol::decode_task_request).
  void handle(const protocol::task_request& request, const request_context& ctx,
              std::vector<delivery>& out);

  /// `cancel`'s effect: ends the client's request `target` if this engine holds it unanswered
  /// (a watch, a task take or wait, a lock wait, or a lock granted that the client gave up
  /// before the grant reached it). Returns whether it did.
  bool cancel(std::uint64_t client_id, std::uint64_t target, std::vector<delivery>& out);
  /// `more`'s effect: grants the client's streaming watch `target` `credit` more replies if
  /// this engine holds it (and sends what it can now). Returns whether it did.
  bool more(std::uint64_t client_id, std::uint64_t target, std::uint64_t credit,
            std::vector<delivery>& out);

  /// The client's connection closed: its pending watches go, its atomic locks are released,
  /// the processes it registered and that still run are "lost", the tasks its worker held are
  /// queued again.
  void client_gone(std::uint64_t client_id, std::vector<delivery>& out);
  /// client_gone() failed (no memory): each tick tries it again until it is done.
  void client_gone_later(std::uint64_t client_id) noexcept;

  /// The client's connection is over its output limit: its watchers are not answered (they
  /// keep their cursors and miss nothing) until resume().
  void congested(std::uint64_t client_id) noexcept;
  /// The client's connection drained: its stalled watchers catch up, until their replies make
  /// `budget` bytes. Returns false if some are left (it stays congested: resume() again once
  /// this much has been sent).
  bool resume(std::uint64_t client_id, std::size_t budget, std::vector<delivery>& out);

  /// A stream of the client's stopped catching up with more to send (watch_registry::
  /// held_back()): its session treats the client as congested, and resume() goes on with it.
  bool held_back(std::uint64_t client_id) const { return watches_.held_back(client_id); }

  /// Releases atomic locks whose lease expired (their holder hangs); grants them to waiters;
  /// answers task waits whose deadline passed; stalled watchers whose reply could not be built
  /// (no memory) try again.
  void tick(std::vector<delivery>& out);

  /// How long a client may hold a namespace's atomic lock without committing or unlocking.
  static constexpr std::chrono::milliseconds lock_lease{5000};

  store& data() noexcept { return store_; }
  const watch_registry& watches() const noexcept { return watches_; }
  const process_registry& processes() const noexcept { return processes_; }
  const task_queue& tasks() const noexcept { return tasks_; }

 private:
  store store_;
  watch_registry watches_;
  process_registry processes_;
  task_queue tasks_;
  std::unique_ptr<journal> own_journal_;  // attach()'s
  journal* journal_ = nullptr;            // attach()'s or share_journal()'s
  std::function<void()> on_snapshot_begun_;

  struct lock_waiter {
    std::uint64_t client_id;
    std::uint64_t request_id;
    /// The lock asked to read the namespace (protocol::lock_request): the read request whose
    /// result goes with the grant, so that the holder needs no round trip of its own for it.
    std::optional<json> read;
  };
  struct ns_lock {
    std::chrono::steady_clock::time_point lease_until;
    /// Since when the holder holds it (taking it again renews the lease, not this).
    std::chrono::steady_clock::time_point held_since;
    std::deque<lock_waiter> waiting;
    /// The lock request the holder was granted by: a cancel of it (sent by a client that gave
    /// the wait up before the grant reached it) releases the lock.
    std::uint64_t granted_request = 0;
  };
  /// `request`: the lock request (its `read` and `keys` fields).
  void lock(const std::string& ns, const json& request, std::uint64_t client,
            std::uint64_t request_id, std::vector<delivery>& out);
  /// The reply that grants a lock to `w`: the lease, and the read it asked for.
  delivery grant(const lock_waiter& w);
  void release(const std::string& ns, std::vector<delivery>& out);
  /// The store's outcome `o` of request `request_id`: made durable, answered, and its watchers
  /// woken; `release_ns` (a commit's namespace) has its atomic lock released first.
  void answer_store(outcome&& o, std::uint64_t request_id, const request_context& ctx,
                    const std::string* release_ns, std::vector<delivery>& out);
  /// The connection holds limits_.max_parked_per_connection requests already: appends the
  /// refusal of request `request_id` and returns true.
  bool over_parked(std::uint64_t request_id, const request_context& ctx,
                   std::vector<delivery>& out);
  /// Whether a request may run (whichever way it was read): appends its refusal and returns
  /// false when it would park one request too many (over_parked()) or its role forbids it.
  bool admitted(protocol::op code, std::uint64_t request_id, request_scope scope,
                const request_context& ctx, std::vector<delivery>& out);
  /// The requests the server holds unanswered for `client` (watches, lock waits, task takes
  /// and waits): limits_.max_parked_per_connection.
  std::size_t parked_of(std::uint64_t client) const;
  /// Wakes the watchers of a committed write; never throws (a failure stalls them instead).
  void notify(const std::string& ns, const update_record& r, std::vector<delivery>& out) noexcept;
  std::unordered_map<std::string, ns_lock> locks_;
  client_counts lock_waits_;  // lock waiters per connection
  std::unordered_set<std::uint64_t> congested_;  // clients over their output limit
  std::vector<std::uint64_t> gone_later_;        // client_gone() to finish at the next tick
  server_config::limits_config limits_;
};

}  // namespace zproc::server_detail
