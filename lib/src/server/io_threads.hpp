// The threads a multi-threaded server serves its connections on (server_config::threads): one
// io_context per thread, each connection on one of them for its whole life (round robin), so
// that a connection's handlers never run on two threads at once and need no strand.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace zproc::server_detail {

class io_threads {
 public:
  /// Starts `count` threads (at least one), each running an io_context of its own.
  explicit io_threads(std::size_t count);
  /// shutdown(), if it was not called.
  ~io_threads();
  io_threads(const io_threads&) = delete;
  io_threads& operator=(const io_threads&) = delete;

  /// Calls `f` with the executor of the next thread in turn (to start a connection on it),
  /// unless close() was called: then returns false. The threads are not shut down meanwhile.
  template <class F>
  bool on_next(F&& f) {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    f(boost::asio::any_io_executor(contexts_[next_++ % contexts_.size()]->get_executor()));
    return true;
  }
  std::size_t size() const noexcept { return threads_.size(); }

  /// From now on on_next() refuses. Idempotent.
  void close() noexcept;
  /// close(); lets the threads end once their work is done, waits for that up to `grace`,
  /// then stops the work that is left and joins. The handlers left are destroyed here, on the
  /// calling thread, with the io_contexts. Call it from a thread that is not one of these (it
  /// throws std::logic_error otherwise). Idempotent.
  void shutdown(std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  using guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<guard> guards_;
  std::vector<std::thread> threads_;
  std::size_t next_ = 0;
  std::mutex mutex_;  // guards contexts_ (the io_contexts live while on_next() runs)
  std::condition_variable finished_;
  std::size_t running_ = 0;  // threads whose run() has not returned
  bool closed_ = false;
  bool shut_ = false;
};

}  // namespace zproc::server_detail
