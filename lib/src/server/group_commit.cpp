#include "server/group_commit.hpp"

#include <zproc/log.hpp>

#include <algorithm>
#include <exception>

namespace zproc::server_detail {

group_commit::group_commit(journal& log) : log_(log), thread_([this] { run(); }) {}

group_commit::~group_commit() { stop(); }

void group_commit::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  std::vector<std::pair<std::uint64_t, std::function<void(bool)>>> dropped;
  std::lock_guard lock(mutex_);
  dropped.swap(waiting_);  // (destroyed after the lock: a waiter may hold the last reference
}                          // to its connection)

void group_commit::after(std::uint64_t seq, std::function<void(bool)> done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      waiting_.emplace_back(seq, std::move(done));
      done = nullptr;
    }
  }
  wake_.notify_one();
}

void group_commit::run() {
  std::vector<std::pair<std::uint64_t, std::function<void(bool)>>> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
      if (stopping_) return;
      batch.swap(waiting_);
    }
    // One sync for the whole batch (and whatever else was written by the time it starts);
    // those that came meanwhile wait for the next.
    std::uint64_t upto = 0;
    for (const auto& w : batch) upto = std::max(upto, w.first);
    bool ok = true;
    try {
      log_.sync_through(upto);
    } catch (const std::exception& e) {
      ok = false;
      detail::log(log_level::error, "server",
                  std::string("server: the data directory could not be synced (the "
                              "connections waiting for it close): ") +
                      e.what());
    }
    for (auto& w : batch) {
      try {
        w.second(ok);
      } catch (...) {
        // (A waiter that could not post its flush: its connection closes with the server.)
      }
    }
    batch.clear();
  }
}

}  // namespace zproc::server_detail
