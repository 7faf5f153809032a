#include "server/io_threads.hpp"

#include <zproc/log.hpp>

#include <algorithm>
#include <stdexcept>

namespace zproc::server_detail {

namespace asio = boost::asio;

io_threads::io_threads(std::size_t count) {
  count = std::max<std::size_t>(count, 1);
  for (std::size_t i = 0; i < count; ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
    guards_.push_back(asio::make_work_guard(*contexts_.back()));
  }
  running_ = count;
  try {
    for (auto& ctx : contexts_)
      threads_.emplace_back([this, c = ctx.get()] {
        for (;;) {
          try {
            c->run();
            break;
          } catch (const std::exception& e) {
            // A handler threw (a session's closes on no memory): the others go on.
            detail::log(log_level::error, "server",
                        std::string("server: a connection thread caught: ") + e.what());
          }
        }
        std::lock_guard lock(mutex_);
        --running_;
        finished_.notify_all();
      });
  } catch (...) {
    {
      std::lock_guard lock(mutex_);
      running_ -= contexts_.size() - threads_.size();  // those never started
    }
    shutdown();
    throw;
  }
}

io_threads::~io_threads() { shutdown(); }

void io_threads::close() noexcept {
  std::lock_guard lock(mutex_);
  closed_ = true;
}

void io_threads::shutdown(std::chrono::milliseconds grace) {
  for (const auto& t : threads_)
    if (t.get_id() == std::this_thread::get_id())
      throw std::logic_error("io_threads::shutdown() called from one of its own threads");
  {
    std::lock_guard lock(mutex_);
    if (shut_) return;
    shut_ = closed_ = true;
  }
  for (auto& g : guards_) g.reset();
  {
    std::unique_lock lock(mutex_);
    finished_.wait_for(lock, grace, [this] { return running_ == 0; });
  }
  for (auto& ctx : contexts_) ctx->stop();  // a connection that would not end
  for (auto& t : threads_) t.join();
  // What was left is destroyed here, on this thread, while the objects it refers to live.
  std::lock_guard lock(mutex_);
  contexts_.clear();
}

}  // namespace zproc::server_detail
