// What the connections of a server share, whatever thread serves them: the shards, and which
// session is which client's.
//
// A shard is an engine (the namespaces that belong to it, their watchers and atomic locks) and
// the mutex it runs under: a request takes effect under its shard's lock, one at a time per
// shard, and requests on namespaces of different shards run at once on different threads. A
// swarm's task queue belongs to a shard by its name as a namespace does; the home shard (0)
// also holds the process records. The replies a
// request sends to other connections (woken watchers, granted locks, taken tasks) reach their
// inboxes under that shard's lock, in the order the shard produced them.
#pragma once

#include "server/engine.hpp"
#include "server/store_set.hpp"

#include <algorithm>
#include <atomic>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace zproc::server_detail {

class group_commit;
class session;

struct shard {
  template <class... Args>
  explicit shard(Args&&... args) : logic(std::forward<Args>(args)...) {}
  std::mutex mutex;
  engine logic;  // under `mutex`
};

class hub {
 public:
  /// The process records and the swarm's task queues are the home shard's.
  static constexpr std::size_t home = 0;

  /// At least one (add_shard()); fixed once the server is built.
  std::vector<std::unique_ptr<shard>> shards;
  void add_shard(std::unique_ptr<shard> next) {
    stores_.add(next->logic.data());
    shards.push_back(std::move(next));
  }
  /// The data directory's journal (nullptr: none): shared by the shards (it locks itself).
  journal* log = nullptr;
  /// `--fsync always`: the journal's syncs are the group_commit's, and no reply leaves before
  /// a sync covered what was written before it (nullptr: replies go at once).
  group_commit* commits = nullptr;

  std::shared_mutex sessions_mutex;
  std::unordered_map<std::uint64_t, std::weak_ptr<session>> sessions;  // under sessions_mutex
  /// The server stopped: a request read but not yet handled takes no effect (its connection
  /// closes). Set under every shard's lock; read under one.
  std::atomic<bool> stopped{false};

  std::size_t size() const noexcept { return shards.size(); }
  /// The shard namespace `ns` belongs to.
  std::size_t shard_index(std::string_view ns) const noexcept { return shard_of(ns, size()); }
  /// The shard a swarm's queue belongs to: its name's, as a namespace's. A task id names the
  /// shard whose queue gave it (task_queue::shard_of_id).
  std::size_t task_shard(std::uint64_t task_id) const noexcept {
    return task_queue::shard_of_id(task_id, size());
  }
  /// A request read as json runs on its namespace's shard; a task request on its queue's
  /// shard, or that of the first task id it names (task_done, task_wait, task_cancel); on the
  /// home shard if it is a process record's, or names no namespace (the engine refuses it if
  /// it needs one). (A well-formed cancel or more is not routed: its target may be on any
  /// shard, session::handle_target_op.)
  std::size_t route(const json& request, std::optional<protocol::op> code) const;
  /// The same for a task request read without a json tree.
  std::size_t route(const protocol::task_request& request) const;

  /// Every shard's store, for what reads or restores all namespaces (the journal). Read them
  /// holding all_locked.
  const store_set& stores() const noexcept { return stores_; }
  /// Every shard's lock, taken in order (the one place that holds more than one), while it
  /// lives.
  class all_locked {
   public:
    explicit all_locked(hub& h) noexcept : h_(h) {
      for (auto& s : h_.shards) s->mutex.lock();
    }
    ~all_locked() {
      for (auto& s : h_.shards) s->mutex.unlock();
    }
    all_locked(const all_locked&) = delete;
    all_locked& operator=(const all_locked&) = delete;

   private:
    hub& h_;
  };

  /// Several shards: a write made a snapshot due (its shard cannot begin one: a snapshot
  /// freezes every shard's revisions at once). Its session begins it (begin_wanted_snapshot())
  /// once it let go of that shard's lock, before the write's reply is sent.
  std::atomic<bool> snapshot_wanted{false};
  /// Called once a snapshot began (the server writes it from its strand).
  std::function<void()> on_snapshot_begun;
  /// Outside every shard's lock: begins the snapshot that snapshot_wanted asks for (if it is
  /// still due) holding every shard's lock, then calls on_snapshot_begun.
  void begin_wanted_snapshot();

  /// Under the lock of `from` (the shard that produced them): hands each of `ds` that is not
  /// `except`'s to its client's session, which sends it from its own thread; dropped if that
  /// connection is closed.
  void deliver_locked(std::vector<delivery>& ds, engine& from, std::uint64_t except = 0) {
    for (const auto& d : ds)
      if (d.client_id != except) return deliver_others(ds, from, except);
  }

  /// `--fsync always`: marks `ds` (made under a shard's lock) to wait for a sync of what the
  /// journal holds now (session::flush), whatever made them: a request, the lease tick, a
  /// closed connection's locks handed on.
  void mark_durable(std::vector<delivery>& ds) const noexcept {
    if (!commits) return;
    if (const std::uint64_t need = log->unsynced())
      for (auto& d : ds) d.durable = std::max(d.durable, need);
  }

 private:
  store_set stores_;
  void deliver_others(std::vector<delivery>& ds, engine& from, std::uint64_t except);
};

}  // namespace zproc::server_detail
