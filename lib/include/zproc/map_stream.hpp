// zproc/map_stream.hpp - the results of swarm::map_lazy(), in input order, as they arrive;
// the inputs are submitted in a bounded window as the results are read.
#pragma once

#include <zproc/client.hpp>
#include <zproc/detail/chunk.hpp>
#include <zproc/detail/task_collector.hpp>
#include <zproc/process.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>

#include <chrono>
#include <deque>
#include <tuple>
#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace zproc {

class swarm;

/// The results of a map_lazy(), one per input, in input order. A result that is an error (the
/// call threw, or no worker could run it) is thrown by the next() that reaches it; the next
/// call goes on with the following input. Destroying the stream before its end cancels the
/// tasks not run yet and drops the inputs not submitted. Not copyable; one next() at a time.
///
/// The inputs are submitted in a window: at most map_options::window tasks (chunks of inputs)
/// are submitted whose results were not read yet; when half of them have been read, the next
/// inputs are pulled from the input range, packed and submitted (by the next() that finds
/// it so). An unbounded input range thus streams in constant memory, and the input range is
/// read on the thread that calls next() (or runs async_next()'s handler).
template <class R>
class map_stream {
 public:
  /// What next() gives: R (std::nullptr_t for a target returning void).
  using value_type = typename detail::chunk_values<R>::value_type;
  using progress_fn = std::function<void(std::size_t done, std::size_t total)>;

  // An empty stream (at its end): what a failed async_map_lazy() completes with.
  map_stream() : s_(std::make_shared<shared>()) {}
  // Made by swarm::map_lazy(): `feed` holds the inputs not submitted yet.
  map_stream(std::shared_ptr<detail::task_submitter> submitter,
             std::shared_ptr<detail::input_feed> feed, progress_fn progress = {})
      : s_(std::make_shared<shared>()) {
    s_->submitter = std::move(submitter);
    s_->feed = std::move(feed);
    s_->progress = std::move(progress);
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

  /// The number of inputs submitted so far: all of them once the input range is exhausted.
  std::size_t size() const noexcept { return s_->total; }
  /// Results received so far (in any order).
  std::size_t received() const noexcept { return s_->received; }

  /// The next result in input order, waiting for it (zero: no deadline); empty after the
  /// last. Submits the next inputs when the window is half free. Throws the result's error
  /// (remote_error, task_lost_error), or zproc::error (client_errc::timeout: call again; a
  /// failed submission, after which the stream ends once the submitted results are read).
  std::optional<value_type> next(std::chrono::milliseconds timeout = std::chrono::milliseconds::zero()) {
    for (;;) {
      s_->refill();
      if (auto r = s_->pop()) return r;
      if (s_->at_end()) return s_->end_or_throw();
      s_->fetch(timeout);
    }
  }

  /// Appends all the results of the next task (a chunk of inputs) to `out`, in input order;
  /// false after the last. Throws the chunk's first error. map() reads results this way (no
  /// per-result overhead); do not mix it with next() on one stream.
  bool next_chunk(std::vector<value_type>& out,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds::zero()) {
    for (;;) {
      s_->refill();
      if (s_->take_chunk(out)) return true;
      if (s_->at_end()) return s_->end_or_throw(), false;
      s_->fetch(timeout);
    }
  }

  /// Asynchronous next(): completion `void(error_code, std::optional<value_type>)`, empty at
  /// the end. A call whose target threw completes with process_errc::remote_exception (or
  /// task_lost); the exception next() would throw is in the diagnostics, and is what
  /// `co_await s.async_next()` (the default token) throws; the stream goes on with the next
  /// result. Submits the next inputs (asynchronously) when the window is half free. Needs a
  /// swarm made with swarm_options::executor. Supports terminal cancellation
  /// (operation_aborted; nothing is lost). Keeps the handler's executor busy until it completes.
  template <class CompletionToken = default_token>
  auto async_next(CompletionToken&& token = default_token{}) {
    return detail::initiate<void(error_code, std::optional<value_type>)>(
        [](auto h, std::shared_ptr<shared> s) {
          drive(std::move(h), std::move(s), [](shared& st) { return st.take_next(); });
        },
        token, s_);
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
  friend class swarm;

  void cancel() noexcept {
    if (!s_) return;
    for (const auto& b : s_->batches) b.collector->cancel_rest();
    s_->feed.reset();
  }

  struct batch {
    std::shared_ptr<detail::task_collector> collector;
    std::vector<std::optional<detail::chunk_values<R>>> chunks;  // per task
  };

  struct shared {
    std::shared_ptr<detail::task_submitter> submitter;
    std::shared_ptr<detail::input_feed> feed;  // null once exhausted, failed or cancelled
    std::deque<batch> batches;                 // submitted, not consumed; the front is read
    std::size_t chunk = 0, item = 0;           // where the front batch is read
    std::size_t in_flight = 0;                 // tasks submitted and not consumed
    std::size_t total = 0, received = 0;
    std::exception_ptr submit_failure;  // thrown at the end of the submitted results
    progress_fn progress;

    bool at_end() const { return batches.empty() && !feed; }
    std::optional<value_type> end_or_throw() const {
      if (submit_failure) std::rethrow_exception(submit_failure);
      return std::nullopt;
    }
    /// Whether a fill is due (the feed goes once it is exhausted).
    bool wants_fill() {
      if (feed && feed->exhausted()) feed.reset();
      return feed && submitter->due(in_flight);
    }
    void add(std::vector<std::shared_ptr<detail::task_collector>>& got) {
      for (auto& c : got) {
        in_flight += c->count();
        batches.push_back(batch{c, std::vector<std::optional<detail::chunk_values<R>>>(c->count())});
      }
      if (feed) total = feed->packed();
    }
    void failed_fill(std::exception_ptr e) {
      if (feed) total = feed->packed();
      feed.reset();
      submit_failure = std::move(e);
    }
    /// Blocking: submits the next inputs if the window is half free.
    void refill() {
      if (!wants_fill()) return;
      try {
        auto got = submitter->fill(*feed, in_flight);
        add(got);
      } catch (...) {
        failed_fill(std::current_exception());
        throw;
      }
    }
    /// Waits for more outcomes of the front batch.
    void fetch(std::chrono::milliseconds timeout) {
      auto& b = batches.front();
      auto c = b.collector;
      auto got = c->next(timeout);
      store(c, got);
    }
    void store(const std::shared_ptr<detail::task_collector>& c,
               std::vector<detail::task_outcome>& got) {
      for (auto& b : batches) {
        if (b.collector != c) continue;
        for (auto& o : got) {
          const std::size_t k = o.id - c->first();
          received += o.failed.size();
          b.chunks[k].emplace(detail::unpack_chunk<R>(
              std::string_view(reinterpret_cast<const char*>(o.values.data()), o.values.size()),
              std::move(o.failed)));
          if (progress) progress(received, total);
        }
        return;
      }
    }
    /// Moves past the front chunk (consumed: its memory goes, and its batch's once done).
    void advance() {
      batches.front().chunks[chunk].reset();
      item = 0;
      --in_flight;
      if (++chunk == batches.front().chunks.size()) {
        chunk = 0;
        batches.pop_front();  // its collector acknowledges what it received
      }
    }
    /// The next result if it is here (throws it if it is an error).
    std::optional<value_type> pop() {
      while (!batches.empty()) {
        auto& slot = batches.front().chunks[chunk];
        if (!slot) return std::nullopt;
        if (item < slot->values.size()) {
          const std::size_t i = item++;
          if (slot->errors[i]) std::rethrow_exception(slot->errors[i]);
          return std::move(slot->values[i]);
        }
        advance();
      }
      return std::nullopt;
    }
    /// The results of the front chunk appended to `out`, if it is here (throws its first error).
    bool take_chunk(std::vector<value_type>& out) {
      if (batches.empty()) return false;
      auto& slot = batches.front().chunks[chunk];
      if (!slot) return false;
      auto values = std::move(*slot);
      advance();
      for (std::size_t i = 0; i < values.values.size(); ++i) {
        if (values.errors[i]) std::rethrow_exception(values.errors[i]);
        out.push_back(std::move(*values.values[i]));
      }
      return true;
    }
    /// async_next(): a result, the end, or nothing yet.
    std::optional<std::tuple<std::optional<value_type>>> take_next() {
      if (auto v = pop()) return std::tuple<std::optional<value_type>>(std::move(v));
      if (at_end()) return std::tuple<std::optional<value_type>>(end_or_throw());
      return std::nullopt;
    }
  };

  /// swarm::async_map(): every result in input order. The operation owns the stream: when it
  /// ends (done, failed at the first error in input order, or cancelled) the stream goes, and
  /// cancels the tasks not received.
  template <class H>
  static void collect(H h, std::shared_ptr<map_stream> owner) {
    auto s = owner->s_;
    if constexpr (std::is_void_v<R>) {
      drive(std::move(h), std::move(s), [owner](shared& st) -> std::optional<std::tuple<>> {
        std::vector<value_type> sink;
        while (st.take_chunk(sink)) sink.clear();
        if (!st.at_end()) return std::nullopt;
        st.end_or_throw();
        return std::tuple<>{};
      });
    } else {
      auto out = std::make_shared<std::vector<value_type>>();
      drive(std::move(h), std::move(s),
            [owner, out](shared& st) -> std::optional<std::tuple<std::vector<value_type>>> {
              while (st.take_chunk(*out)) {
              }
              if (!st.at_end()) return std::nullopt;
              st.end_or_throw();
              return std::tuple<std::vector<value_type>>(std::move(*out));
            });
    }
  }

  /// swarm::async_map_lazy(): the stream, once its first window is submitted.
  template <class H>
  static void start(H h, std::shared_ptr<map_stream> owner) {
    auto s = owner->s_;
    drive(std::move(h), std::move(s), [owner](shared&) -> std::optional<std::tuple<map_stream>> {
      return std::tuple<map_stream>(std::move(*owner));
    });
  }

  /// Completes `h` with `r` (a tuple of the values) or with failure `e`.
  template <class H, class Tuple>
  static void finish(H&& h, const std::exception_ptr& e, std::optional<Tuple>& r) {
    if (e || !r) {
      std::apply([&](auto&&... v) { detail::complete_outcome(std::move(h), e, std::move(v)...); },
                 Tuple{});
    } else {
      std::apply([&](auto&&... v) { detail::complete_outcome(std::move(h), e, std::move(v)...); },
                 std::move(*r));
    }
  }

  /// The async driver of async_next() and swarm::async_map(): `take(shared&)` gives the
  /// completion's values (a tuple) when they are here, nullopt while more outcomes are needed
  /// (throws a result's error). Refills the window, waits on the front batch, and loops. Holds
  /// work on the handler's executor; terminal cancellation reaches the pending step.
  /// A handler without an executor of its own runs on the swarm's.
  template <class H, class Take>
  static void drive(H h, std::shared_ptr<shared> s, Take take) {
    namespace asio = boost::asio;
    const asio::any_io_executor fallback =
        s->submitter ? s->submitter->executor() : asio::any_io_executor(asio::system_executor());
    auto ex = asio::get_associated_executor(h, fallback);
    auto work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
    asio::cancellation_state cs(asio::get_associated_cancellation_slot(h));
    step(std::move(h), std::move(s), std::move(take), std::move(work), cs, true);
  }

  /// One step of drive(); `work`: the executor the handler runs on, with work tracked.
  template <class H, class Take, class Work>
  static void step(H&& h, std::shared_ptr<shared> s, Take take, Work work,
                   boost::asio::cancellation_state cs, bool from_initiation) {
    namespace asio = boost::asio;
    using result = typename decltype(take(*s))::value_type;
    auto ex = work;  // the handler's executor (or the swarm's), tracked
    auto complete = [&](std::exception_ptr e, std::optional<result> r) {
      if (from_initiation) {
        asio::post(ex, [h = std::move(h), e, r = std::move(r), work]() mutable {
          finish(std::move(h), e, r);
        });
      } else {
        finish(std::move(h), e, r);
      }
    };
    if (cs.cancelled() != asio::cancellation_type::none)
      return complete(std::make_exception_ptr(zproc::error(asio::error::operation_aborted, "cancelled")),
                      std::nullopt);
    bool fill = false;
    try {
      fill = s->wants_fill();
    } catch (...) {  // the input range threw (exhausted())
      s->failed_fill(std::current_exception());
      return complete(std::current_exception(), std::nullopt);
    }
    if (fill) {
      auto d = std::make_shared<zproc::diagnostics>();
      auto feed = s->feed;
      auto& submitter = *s->submitter;
      submitter.async_fill(
          std::move(feed), s->in_flight,
          asio::bind_executor(
              ex, [h = std::move(h), s, take = std::move(take), work, cs, d](
                      error_code ec, std::vector<std::shared_ptr<detail::task_collector>> got) mutable {
                if (ec) {
                  auto e = d->to_exception(ec);
                  s->failed_fill(e);
                  std::optional<result> none;
                  return finish(std::move(h), e, none);
                }
                s->add(got);
                step(std::move(h), std::move(s), std::move(take), std::move(work), cs, false);
              }),
          d);
      return;
    }
    std::optional<result> r;
    try {
      r = take(*s);
    } catch (...) {
      return complete(std::current_exception(), std::nullopt);
    }
    if (r || s->batches.empty()) return complete(nullptr, std::move(r));
    auto c = s->batches.front().collector;
    c->async_next(asio::bind_cancellation_slot(
        cs.slot(),
        asio::bind_executor(ex, [h = std::move(h), s, c, take = std::move(take), work, cs](
                                    std::exception_ptr failure,
                                    std::vector<detail::task_outcome> got) mutable {
          s->store(c, got);
          if (failure) {
            std::optional<result> none;
            return finish(std::move(h), failure, none);
          }
          step(std::move(h), std::move(s), std::move(take), std::move(work), cs, false);
        })));
  }

  std::shared_ptr<shared> s_;
};

}  // namespace zproc
