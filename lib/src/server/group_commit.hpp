// Durable replies without a thread or a lock held across a disk sync (`--fsync always` on a
// server; docs/architecture.md, "The data directory"). A write's record is appended under its
// shard's lock and the reply is queued at once, marked with the journal's count of records;
// the session holds its output back (session::flush) until a sync covered that count, and asks
// this group_commit to tell it. One thread here runs fdatasync after fdatasync while anyone
// waits: each covers everything written when it starts, so every connection, on every shard
// and thread, that wrote during one sync is made durable by the next (Redis's appendfsync
// always does the same once per event loop turn).
#pragma once

#include "server/journal.hpp"

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace zproc::server_detail {

class group_commit {
 public:
  /// `log` must outlive this (it syncs from its own thread until destroyed).
  explicit group_commit(journal& log);
  ~group_commit();
  group_commit(const group_commit&) = delete;
  group_commit& operator=(const group_commit&) = delete;

  /// Calls `done(true)` once a sync covered record `seq` of the journal (`done(false)` if the
  /// sync failed), on this object's thread: `done` must only post work elsewhere. Waiters
  /// still waiting at stop() are dropped, not called; so is one that comes after.
  void after(std::uint64_t seq, std::function<void(bool ok)> done);
  /// Joins the thread (the server stops: no more posts to its connections' executors, which
  /// are about to end). Idempotent; the destructor calls it.
  void stop();

 private:
  void run();

  journal& log_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::pair<std::uint64_t, std::function<void(bool)>>> waiting_;  // under mutex_
  bool stopping_ = false;                                                      // under mutex_
  std::thread thread_;
};

}  // namespace zproc::server_detail
