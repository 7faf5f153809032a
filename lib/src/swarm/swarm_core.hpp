// What a swarm handle and the collectors of its tasks share: the connection to the server, the
// swarm's name, and the crash reports of the workers it supervises (for task_lost_error).
#pragma once

#include <zproc/client.hpp>
#include <zproc/json.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <vector>
#include <string>

namespace zproc::detail {

struct swarm_core {
  /// Blocking mode: submits, retires, and the blocking waits (from any thread, even one that
  /// runs the executor below: it runs its own io_context).
  zproc::client client;
  std::string name;

  swarm_core(zproc::client c, std::string n, std::optional<boost::asio::any_io_executor> ex)
      : client(std::move(c)), name(std::move(n)), executor_(std::move(ex)) {}

  /// Runs `then` with the connection of the async operations (on the executor given in
  /// swarm_options), connecting it first if needed; an error_code if there is none.
  void with_async_client(std::function<void(error_code, std::shared_ptr<client_impl>)> then);

  /// swarm_options::executor, if given.
  const std::optional<boost::asio::any_io_executor>& executor() const noexcept { return executor_; }

  /// A worker of this swarm crashed (called on the supervisor's thread).
  void note_crash(std::int64_t pid, const std::string& report);
  /// A running worker of this swarm has this pid now.
  void note_worker(std::int64_t pid);
  /// The crash report of worker `pid`: waits up to `wait` for it if the pid is one of this
  /// swarm's workers whose crash has not been reported yet; empty if there is none.
  std::string crash_report(std::int64_t pid, std::chrono::milliseconds wait);

  /// A blocking connection of its own for a wait that may park on the server (seconds): waits
  /// from several threads do not queue behind each other, nor submits behind waits. Returned
  /// to a small pool when the lease ends (dropped if the call failed).
  class wait_lease {
   public:
    explicit wait_lease(swarm_core& core);
    ~wait_lease();
    wait_lease(const wait_lease&) = delete;
    wait_lease& operator=(const wait_lease&) = delete;
    const std::shared_ptr<client_impl>& impl() const { return c_->impl(); }
    void broken() noexcept { broken_ = true; }

   private:
    swarm_core& core_;
    std::unique_ptr<zproc::client> c_;
    bool broken_ = false;
  };

  /// Sends `request` and ignores the reply (acknowledgements, cancels from destructors):
  /// never blocks a thread that runs the client's executor.
  void send_and_forget(json request);

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::map<std::int64_t, std::string> crashes_;
  std::deque<std::int64_t> order_;  // bounded: the newest reports only
  std::set<std::int64_t> live_;     // worker pids that have not crashed

  std::mutex pool_m_;
  std::vector<std::unique_ptr<zproc::client>> idle_waiters_;

  std::optional<boost::asio::any_io_executor> executor_;
  std::optional<zproc::client> async_;  // guarded by m_
  bool async_ready_ = false;
  error_code async_error_;
  std::vector<std::function<void(error_code, std::shared_ptr<client_impl>)>> async_waiting_;
};

}  // namespace zproc::detail
