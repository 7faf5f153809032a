// zproc/map_stream.hpp - the results of swarm::map_lazy(), in input order, as they arrive.
#pragma once

#include <zproc/client.hpp>
#include <zproc/detail/chunk.hpp>
#include <zproc/detail/task_collector.hpp>
#include <zproc/process.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace zproc {

/// The results of a map_lazy(), one per input, in input order. A result that is an error (the
/// call threw, or no worker could run it) is thrown by the next() that reaches it; the next
/// call goes on with the following input. Destroying the stream before its end cancels the
/// tasks not run yet. Not copyable; one next() at a time.
template <class R>
class map_stream {
 public:
  /// What next() gives: R (std::nullptr_t for a target returning void).
  using value_type = typename detail::chunk_values<R>::value_type;
  using progress_fn = std::function<void(std::size_t done, std::size_t total)>;

  map_stream(std::vector<std::shared_ptr<detail::task_collector>> batches, std::size_t total,
             progress_fn progress = {})
      : s_(std::make_shared<shared>()) {
    s_->batches = std::move(batches);
    s_->total = total;
    s_->progress = std::move(progress);
    for (const auto& b : s_->batches) s_->chunks.emplace_back(b->count());
  }
  map_stream(map_stream&&) noexcept = default;
  map_stream& operator=(map_stream&& o) noexcept {
    if (this != &o) {
      cancel();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  ~map_stream() { cancel(); }

  /// The number of inputs.
  std::size_t size() const noexcept { return s_->total; }
  /// Results received so far (in any order).
  std::size_t received() const noexcept { return s_->received; }

  /// The next result in input order, waiting for it (zero: no deadline); empty after the
  /// last. Throws the result's error (remote_error, task_lost_error), or zproc::error
  /// (client_errc::timeout: call again).
  std::optional<value_type> next(std::chrono::milliseconds timeout = std::chrono::milliseconds::zero()) {
    for (;;) {
      if (auto r = s_->pop()) return r;
      if (s_->at_end()) return std::nullopt;
      s_->fetch(timeout);
    }
  }

  /// Appends all the results of the next task (a chunk of inputs) to `out`, in input order;
  /// false after the last. Throws the chunk's first error. map() reads results this way (no
  /// per-result overhead); do not mix it with next() on one stream.
  bool next_chunk(std::vector<value_type>& out,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds::zero()) {
    auto& s = *s_;
    for (;;) {
      if (s.at_end()) return false;
      auto& slot = s.chunks[s.batch][s.chunk];
      if (slot) {
        auto chunk = std::move(*slot);
        slot.reset();
        if (++s.chunk == s.chunks[s.batch].size()) {
          s.chunk = 0;
          ++s.batch;
        }
        for (std::size_t i = 0; i < chunk.values.size(); ++i) {
          if (chunk.errors[i]) std::rethrow_exception(chunk.errors[i]);
          out.push_back(std::move(*chunk.values[i]));
        }
        return true;
      }
      s.fetch(timeout);
    }
  }

  /// Asynchronous next(): completion `void(error_code, std::optional<value_type>)`, empty at
  /// the end. A call whose target threw completes with process_errc::remote_exception (or
  /// task_lost); the exception next() would throw is in the diagnostics, and is what
  /// `co_await s.async_next()` (the default token) throws; the stream goes on with the next
  /// result. Needs a swarm made with swarm_options::executor. Supports terminal cancellation
  /// (operation_aborted; nothing is lost). Keeps the handler's executor busy until it completes.
  template <class CompletionToken = default_token>
  auto async_next(CompletionToken&& token = default_token{}) {
    return detail::initiate<void(error_code, std::optional<value_type>)>(
        [](auto h, std::shared_ptr<shared> s) { step(std::move(h), std::move(s), true); }, token,
        s_);
  }

  /// Range-for: `for (int v : stream)` (an error result throws from the loop).
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = map_stream::value_type;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(map_stream* m) : m_(m) { ++*this; }
    value_type& operator*() { return *v_; }
    iterator& operator++() {
      v_ = m_->next();
      if (!v_) m_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(const iterator& o) const { return m_ == o.m_; }

   private:
    map_stream* m_ = nullptr;
    std::optional<value_type> v_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  void cancel() noexcept {
    if (s_)
      for (const auto& b : s_->batches) b->cancel_rest();
  }

  struct shared {
    std::vector<std::shared_ptr<detail::task_collector>> batches;
    std::vector<std::vector<std::optional<detail::chunk_values<R>>>> chunks;  // [batch][task]
    std::size_t batch = 0, chunk = 0, item = 0;
    std::size_t total = 0, received = 0;
    progress_fn progress;

    bool at_end() const { return batch >= batches.size(); }
    /// Waits for more outcomes of the current batch.
    void fetch(std::chrono::milliseconds timeout) {
      auto& b = *batches[batch];
      for (auto& o : b.next(timeout)) store(batch, b, o);
    }
    void store(std::size_t b, const detail::task_collector& c, detail::task_outcome& o) {
      const std::size_t k = o.id - c.first();
      received += o.failed.size();
      chunks[b][k].emplace(detail::unpack_chunk<R>(
          std::string_view(reinterpret_cast<const char*>(o.values.data()), o.values.size()),
          std::move(o.failed)));
      if (progress) progress(received, total);
    }
    /// The next result if it is here (throws it if it is an error).
    std::optional<value_type> pop() {
      while (!at_end()) {
        auto& slot = chunks[batch][chunk];
        if (!slot) return std::nullopt;
        if (item < slot->values.size()) {
          const std::size_t i = item++;
          if (slot->errors[i]) std::rethrow_exception(slot->errors[i]);
          return std::move(slot->values[i]);
        }
        slot.reset();  // consumed: its memory goes
        item = 0;
        if (++chunk == chunks[batch].size()) {
          chunk = 0;
          ++batch;
        }
      }
      return std::nullopt;
    }
  };

  template <class H>
  static void step(H&& h, std::shared_ptr<shared> s, bool must_post) {
    namespace asio = boost::asio;
    auto ex = asio::get_associated_executor(h);
    std::optional<value_type> v;
    std::exception_ptr e;
    bool ready = true;
    try {
      v = s->pop();
      ready = v.has_value() || s->at_end();
    } catch (...) {
      e = std::current_exception();
    }
    if (ready || e) {
      auto done = [h = std::move(h), e, v = std::move(v)]() mutable {
        detail::complete_outcome(std::move(h), e, std::move(v));
      };
      if (must_post) {
        asio::post(ex, std::move(done));
      } else {
        done();
      }
      return;
    }
    auto slot = asio::get_associated_cancellation_slot(h);
    const std::size_t b = s->batch;
    auto c = s->batches[b];
    c->async_next(asio::bind_cancellation_slot(
        slot, asio::bind_executor(ex, [h = std::move(h), s, b, c](
                                          std::exception_ptr failure,
                                          std::vector<detail::task_outcome> got) mutable {
          for (auto& o : got) s->store(b, *c, o);
          if (failure) return detail::complete_outcome(std::move(h), failure, std::optional<value_type>{});
          step(std::move(h), std::move(s), false);
        })));
  }

  std::shared_ptr<shared> s_;
};

}  // namespace zproc
