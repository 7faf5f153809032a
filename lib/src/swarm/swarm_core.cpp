// The state a swarm handle shares with its collectors: crash reports of its workers, the pool
// of connections for blocking waits, and the connection of the async operations.
#include "swarm/swarm_core.hpp"

#include "client/client_core.hpp"
#include "protocol/ops.hpp"

#include <zproc/detail/request.hpp>

namespace zproc::detail {

void swarm_core::note_crash(std::int64_t pid, const std::string& report) {
  {
    std::lock_guard lock(m_);
    live_.erase(pid);
    crashes_[pid] = report;
    order_.push_back(pid);
    while (order_.size() > 256) {
      crashes_.erase(order_.front());
      order_.pop_front();
    }
  }
  cv_.notify_all();
}

void swarm_core::note_worker(std::int64_t pid) {
  std::lock_guard lock(m_);
  live_.insert(pid);
}

std::string swarm_core::crash_report(std::int64_t pid, std::chrono::milliseconds wait) {
  std::unique_lock lock(m_);
  cv_.wait_for(lock, wait, [&] { return crashes_.count(pid) || !live_.count(pid); });
  auto it = crashes_.find(pid);
  return it == crashes_.end() ? std::string() : it->second;
}

swarm_core::wait_lease::wait_lease(swarm_core& core) : core_(core) {
  {
    std::lock_guard lock(core_.pool_m_);
    if (!core_.idle_waiters_.empty()) {
      c_ = std::move(core_.idle_waiters_.back());
      core_.idle_waiters_.pop_back();
      return;
    }
  }
  // The main connection's options and addresses: the same timeouts, the same failover.
  c_ = std::make_unique<zproc::client>(core_.client.impl()->options());
  c_->connect(core_.client.impl()->conn()->failover_list());
}

swarm_core::wait_lease::~wait_lease() {
  if (broken_) return;
  std::lock_guard lock(core_.pool_m_);
  if (core_.idle_waiters_.size() < 4) core_.idle_waiters_.push_back(std::move(c_));
}

void swarm_core::send_and_forget(json request) {
  // On a thread that runs the async connection (a map stream read by async_next, an
  // async_map that ends): sent on that connection, not waited for.
  std::shared_ptr<client_impl> async_impl;
  {
    std::lock_guard lock(m_);
    if (async_ready_ && !async_error_) async_impl = async_->impl();
  }
  if (async_impl && async_impl->runs_on_this_thread()) {
    start_request<json>(async_impl, request_access::wrap(std::move(request)),
                        handler<json>([](error_code, json) {}));
    return;
  }
  try {
    call<json>(client.impl(), request_access::wrap(std::move(request)));
  } catch (...) {  // best effort: the server may be gone
  }
}

void swarm_core::with_async_client(
    std::function<void(error_code, std::shared_ptr<client_impl>)> then) {
  std::unique_lock lock(m_);
  if (!executor_) {
    lock.unlock();
    then(make_error_code(client_errc::wrong_mode), nullptr);
    return;
  }
  if (async_ready_) {
    auto impl = async_error_ ? nullptr : async_->impl();
    const auto ec = async_error_;
    lock.unlock();
    then(ec, impl);  // starts a request, or (on an error) posts the completion
    return;
  }
  async_waiting_.push_back(std::move(then));
  if (async_) return;  // connecting
  async_.emplace(*executor_, client.impl()->options());
  const std::string address = client.impl()->conn()->failover_list();
  async_->async_connect(address, [this](error_code ec) {
    std::vector<std::function<void(error_code, std::shared_ptr<client_impl>)>> waiting;
    std::shared_ptr<client_impl> impl;
    {
      std::lock_guard guard(m_);
      async_ready_ = true;
      async_error_ = ec;
      waiting.swap(async_waiting_);
      if (!ec) impl = async_->impl();
    }
    for (auto& w : waiting) w(ec, impl);
  });
}

}  // namespace zproc::detail
