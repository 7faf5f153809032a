// zproc/swarm.hpp - a pool of worker processes that runs tasks for any process of a server:
// run one call, or map a target over many inputs, with chunking, retries when a worker dies,
// and workers that join from other machines.
#pragma once

#include <zproc/client.hpp>
#include <zproc/detail/chunk.hpp>
#include <zproc/detail/target_traits.hpp>
#include <zproc/detail/task_collector.hpp>
#include <zproc/map_stream.hpp>
#include <zproc/process.hpp>
#include <zproc/task.hpp>
#include <zproc/with_diagnostics.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <tuple>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace zproc {

class context;

namespace detail {

/// Where a map's feed keeps its input range: the range itself (an rvalue, moved in) or a
/// pointer to it (an lvalue: it must outlive the stream). No std::views here: Clang 14 cannot
/// compile libstdc++ 12's views.
template <class Range>
struct owned_range {
  Range range;
  Range& get() noexcept { return range; }
};
template <class Range>
struct borrowed_range {
  Range* range;
  Range& get() noexcept { return *range; }
};

/// The inputs of a map not packed yet: the input range (in its holder) and the iterator
/// where packing stands.
template <class Args, class Holder>
class range_feed final : public input_feed {
 public:
  explicit range_feed(Holder h)
      : holder_(std::move(h)), size_(size_of(holder_.get())), it_(std::ranges::begin(holder_.get())) {}
  std::vector<packed_chunk> pack(std::size_t max_chunks, const chunk_schedule& schedule,
                                 std::size_t max_bytes) override {
    return pack_some<Args>(it_, std::ranges::end(holder_.get()), max_chunks, schedule,
                           max_bytes, packed_);
  }
  bool exhausted() override { return it_ == std::ranges::end(holder_.get()); }
  std::size_t size_hint() const override { return size_; }

 private:
  using range = std::remove_reference_t<decltype(std::declval<Holder&>().get())>;
  static std::size_t size_of(range& r) {
    if constexpr (std::ranges::sized_range<range>) {
      return static_cast<std::size_t>(std::ranges::size(r));
    } else {
      return 0;
    }
  }
  Holder holder_;
  std::size_t size_;
  std::ranges::iterator_t<range> it_;
};

/// The feed of `inputs`: an rvalue range is moved into it, an lvalue one referenced (it must
/// outlive the stream).
template <class Args, class Inputs>
std::shared_ptr<input_feed> make_feed(Inputs&& inputs) {
  using range = std::remove_reference_t<Inputs>;
  if constexpr (std::is_lvalue_reference_v<Inputs>) {
    return std::make_shared<range_feed<Args, borrowed_range<range>>>(
        borrowed_range<range>{&inputs});
  } else {
    return std::make_shared<range_feed<Args, owned_range<range>>>(
        owned_range<range>{std::move(inputs)});
  }
}

/// Chunks packed already (a run's one call).
class packed_feed final : public input_feed {
 public:
  explicit packed_feed(std::vector<packed_chunk> chunks) : chunks_(std::move(chunks)) {}
  std::vector<packed_chunk> pack(std::size_t, const chunk_schedule&, std::size_t) override {
    for (const auto& c : chunks_) packed_ += c.items;
    return std::move(chunks_);
  }
  bool exhausted() override { return chunks_.empty(); }
  std::size_t size_hint() const override { return chunks_.size(); }

 private:
  std::vector<packed_chunk> chunks_;
};

/// What async_map() completes with: void(error_code, std::vector<R>), void(error_code) for R
/// = void.
template <class R>
struct map_signature {
  using type = void(error_code, std::vector<R>);
};
template <>
struct map_signature<void> {
  using type = void(error_code);
};

}  // namespace detail

struct swarm_options {
  /// The swarm's name on the server. Swarms of the same name share their workers and queue;
  /// a worker started elsewhere joins the swarm of this name (`--zproc-swarm NAME`).
  std::string name = "default";
  /// How many workers may take a task before it fails with task_lost_error (each one died
  /// or disconnected while it ran it).
  std::size_t max_attempts = 3;
  /// A worker process that dies is started again after this delay (it is supervised like any
  /// spawned process: its crash report is printed, and kept for task_lost_error).
  std::chrono::milliseconds respawn_delay{200};
  /// A call that runs longer than this is stopped: its worker aborts (SIGABRT, so the crash
  /// report shows where the call was stuck), a new worker replaces it, and the task counts
  /// one attempt. Empty: calls may run for ever (a hung call holds its task and its worker).
  /// Zero or negative: std::invalid_argument when the swarm is made.
  std::optional<std::chrono::milliseconds> call_timeout;
  /// With an executor, the swarm's connection runs on it and the async_ operations of its
  /// tasks and map streams work (co_await). Without one, only the blocking calls do.
  std::optional<boost::asio::any_io_executor> executor;
};

struct map_options {
  /// Calls per task. Zero: automatic (about 4 tasks per worker while many inputs remain,
  /// then smaller ones — each about the remaining inputs over the workers — so that the
  /// workers finish close together however long each call takes; no task's arguments above
  /// 1 MiB; 1,024 calls per task for an input range of unknown size): few round trips for
  /// many tiny calls, and a short tail.
  std::size_t chunk_size = 0;
  /// Called (on the thread that waits) as results arrive: how many of how many are back.
  std::function<void(std::size_t done, std::size_t total)> progress;
  /// map(): how long to wait for all the results; zero: no deadline. (async_map() does not
  /// use it: combine it with a timer, `co_await (sw.async_map(...) || timer.async_wait())`.)
  std::chrono::milliseconds timeout{0};
  /// The most tasks (chunks) submitted whose results were not read yet. The next inputs are
  /// pulled from the input range, packed and submitted when half of the window has been read,
  /// so an unbounded input range streams in constant memory (at most window x chunk of inputs,
  /// each chunk below 1 MiB of arguments with chunk_size 0). Zero: automatic, 4 tasks per
  /// worker (at least 8) for map_lazy(); every input at once for map() and async_map(), which
  /// keep all results anyway (fewest round trips).
  std::size_t window = 0;
};

/// A worker the server knows: spawned by a swarm, or joined from elsewhere.
struct worker_info {
  std::int64_t pid = 0;
  std::string host;
  std::size_t running = 0;  ///< tasks it holds now
  std::size_t done = 0;     ///< tasks it finished
  bool retiring = false;    ///< it finishes what it holds, then exits (resize, stop)
};

/// A swarm as the server sees it (what `zproc workers` prints).
struct swarm_status {
  std::vector<worker_info> workers;
  std::size_t queued = 0;   ///< tasks waiting for a worker
  std::size_t running = 0;  ///< tasks workers hold
};

/// The status of swarm `name` on the server `c` is connected to (a blocking client). Throws
/// zproc::error.
swarm_status get_swarm_status(const client& c, const std::string& name = "default");

class swarm {
 public:
  /// Starts `count` worker processes (this binary, through zproc::init) on the context's
  /// server. Count 0 makes a handle that only submits and collects (for workers started
  /// elsewhere, or to collect results by id). The context must outlive the swarm.
  swarm(context& ctx, std::size_t count, swarm_options options = {});
  ~swarm();  ///< stop()
  swarm(swarm&&) noexcept;
  swarm& operator=(swarm&&) noexcept;

  const std::string& name() const noexcept;

  /// Runs `target(args...)` once on a worker. The result is held by the server until it is
  /// collected (by this handle, or by id from any process) and survives this process.
  template <class F, class... A>
    requires std::is_function_v<F>
  task<typename detail::target_traits<F>::value> run(F& target, A&&... args) {
    auto got = submitter(reinterpret_cast<const void*>(&target), {}, false, false)
                   ->fill(*pack_call(target, std::forward<A>(args)...), 0);
    return task<typename detail::target_traits<F>::value>(std::move(got.at(0)));
  }

  /// Asynchronous run(): `async_run(target, args..., token)`, the token last and optional
  /// (default: zproc::default_token). Completion `void(error_code, task<R>)` once the server
  /// has the task; then `co_await t.async_get()` for its result. Needs swarm_options::executor
  /// (else client_errc::wrong_mode); the message of a failure is in the diagnostics (thrown by
  /// co_await as zproc::error). Not cancellable (one round trip, request_timeout at most).
  /// Keeps the handler's executor busy until it completes; never completes inline.
  template <class F, class... T>
    requires std::is_function_v<F>
  auto async_run(F& target, T&&... args_then_token) {
    constexpr std::size_t params = std::tuple_size_v<typename detail::target_traits<F>::args>;
    static_assert(sizeof...(T) == params || sizeof...(T) == params + 1,
                  "zproc: async_run(target, args..., [token]) takes the target's arguments");
    auto all = std::forward_as_tuple(std::forward<T>(args_then_token)...);
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      if constexpr (sizeof...(T) == params) {
        return start_run(target, default_token{}, std::get<I>(std::move(all))...);
      } else {
        return start_run(target, std::get<params>(std::move(all)), std::get<I>(std::move(all))...);
      }
    }(std::make_index_sequence<params>{});
  }

  /// Calls `target` on each input (a value, or a tuple for a target of several parameters)
  /// on the workers; returns the values in input order. Throws the error of the first input
  /// (in input order) whose call failed (remote_error, task_lost_error), after cancelling
  /// the rest; zproc::error (client_errc::timeout) when options.timeout passes. Submits every
  /// input at once unless options.window is set.
  template <class F, std::ranges::input_range Inputs>
    requires std::is_function_v<F>
  auto map(F& target, Inputs&& inputs, map_options options = {}) {
    using value = typename detail::target_traits<F>::value;
    const detail::deadline until(options.timeout);
    std::size_t n = 0;
    if constexpr (std::ranges::sized_range<Inputs>) n = std::ranges::size(inputs);
    auto stream = make_stream(target, std::forward<Inputs>(inputs), options, false);
    if constexpr (std::is_void_v<value>) {
      std::vector<std::nullptr_t> sink;
      while (stream.next_chunk(sink, until.left())) sink.clear();
    } else {
      std::vector<value> out;
      out.reserve(n);
      while (stream.next_chunk(out, until.left())) {
      }
      return out;
    }
  }

  /// Asynchronous map(): completion `void(error_code, std::vector<R>)` with the values in
  /// input order (`void(error_code)` for a target returning void: nothing to return but
  /// success). A failed call completes with the code of the first failing input in input
  /// order (process_errc::remote_exception, task_lost) and its exception in the diagnostics
  /// (what co_await throws: remote_error, task_lost_error), after cancelling the rest. Needs
  /// swarm_options::executor (else client_errc::wrong_mode). Does not block: the inputs are
  /// packed and submitted, and the results collected, by handlers on the executor; the input
  /// range is read there (an lvalue range is referenced: keep it alive until completion).
  /// Supports terminal cancellation: completes with operation_aborted and cancels the tasks it
  /// submitted (queued ones never run). options.timeout is not used (see map_options).
  /// Keeps the handler's executor busy until it completes; never completes inline.
  template <class F, std::ranges::input_range Inputs, class CompletionToken = default_token>
    requires std::is_function_v<F>
  auto async_map(F& target, Inputs&& inputs, map_options options = {},
                 CompletionToken&& token = default_token{}) {
    using value = typename detail::target_traits<F>::value;
    using stream_type = map_stream<value>;
    auto stream = std::make_shared<stream_type>(
        make_stream(target, std::forward<Inputs>(inputs), options, false));
    return detail::initiate<typename detail::map_signature<value>::type>(
        [](auto h, std::shared_ptr<stream_type> s) { stream_type::collect(std::move(h), std::move(s)); },
        token, std::move(stream));
  }

  /// map() whose results are read one by one, in input order, as they arrive (next(),
  /// async_next(), range-for). The inputs are submitted in a bounded window
  /// (map_options::window): the first window now, the next as results are read. An rvalue
  /// input range is kept by the stream; an lvalue one is referenced and must outlive it.
  template <class F, std::ranges::input_range Inputs>
    requires std::is_function_v<F>
  map_stream<typename detail::target_traits<F>::value> map_lazy(F& target, Inputs&& inputs,
                                                                map_options options = {}) {
    auto stream = make_stream(target, std::forward<Inputs>(inputs), options, true);
    stream.s_->refill();  // the first window: workers start now
    return stream;
  }

  /// Asynchronous map_lazy(): completion `void(error_code, map_stream<R>)` once the first
  /// window of inputs is submitted; the stream's async_next() submits the next ones as the
  /// results are read. Needs swarm_options::executor (else client_errc::wrong_mode); a
  /// failure's message is in the diagnostics. Supports terminal cancellation (operation_aborted;
  /// what was submitted is cancelled). Keeps the handler's executor busy until it completes.
  template <class F, std::ranges::input_range Inputs, class CompletionToken = default_token>
    requires std::is_function_v<F>
  auto async_map_lazy(F& target, Inputs&& inputs, map_options options = {},
                      CompletionToken&& token = default_token{}) {
    using stream_type = map_stream<typename detail::target_traits<F>::value>;
    auto stream = std::make_shared<stream_type>(
        make_stream(target, std::forward<Inputs>(inputs), options, true));
    return detail::initiate<void(error_code, stream_type)>(
        [](auto h, std::shared_ptr<stream_type> s) { stream_type::start(std::move(h), std::move(s)); },
        token, std::move(stream));
  }

  /// A handle on task `id` (from task::id(), perhaps in another process) returning R.
  template <class R>
  task<R> result(std::uint64_t id) {
    return task<R>(collector(id));
  }

  /// Starts or retires workers until `count` run. Retired workers finish the tasks they hold
  /// first (nothing is lost or counted as an attempt); returns once they exited.
  void resize(std::size_t count);
  /// The workers this swarm started (running).
  std::size_t count() const;
  std::vector<process> processes() const;
  /// Every worker of this swarm's name that the server knows, including those that joined
  /// from elsewhere.
  std::vector<worker_info> workers() const;
  /// Retires all workers of this swarm (resize(0)). Tasks still queued wait for other workers
  /// of the same name.
  void stop();

  /// The largest arguments of an automatic chunk.
  static constexpr std::size_t max_chunk_bytes = 1024 * 1024;

 private:
  /// A submitter of `target`'s tasks: `lazy`, in a bounded window (else all at once); `bound`,
  /// cancelled when this process's connection closes (a map), or kept (a run).
  std::shared_ptr<detail::task_submitter> submitter(const void* target, const map_options& options,
                                                    bool lazy, bool bound) const;
  std::shared_ptr<detail::task_collector> collector(std::uint64_t id);

  template <class F, class... A>
  static std::shared_ptr<detail::input_feed> pack_call(F&, A&&... args) {
    typename detail::target_traits<F>::args* tag = nullptr;
    std::vector<detail::packed_chunk> chunk(1);
    const std::string packed = detail::pack_as(tag, std::forward<A>(args)...);
    chunk[0].bytes.assign(packed.begin(), packed.end());
    chunk[0].items = 1;
    return std::make_shared<detail::packed_feed>(std::move(chunk));
  }

  template <class F, class Inputs>
  map_stream<typename detail::target_traits<F>::value> make_stream(F& target, Inputs&& inputs,
                                                                   map_options& options,
                                                                   bool lazy) const {
    return map_stream<typename detail::target_traits<F>::value>(
        submitter(reinterpret_cast<const void*>(&target), options, lazy, true),
        detail::make_feed<typename detail::target_traits<F>::args>(std::forward<Inputs>(inputs)),
        std::move(options.progress));
  }

  template <class F, class CompletionToken, class... A>
  auto start_run(F& target, CompletionToken&& token, A&&... args) {
    using value = typename detail::target_traits<F>::value;
    auto feed = pack_call(target, std::forward<A>(args)...);
    auto sub = submitter(reinterpret_cast<const void*>(&target), {}, false, false);
    return detail::initiate<void(error_code, task<value>)>(
        [](auto h, std::shared_ptr<detail::task_submitter> s, std::shared_ptr<detail::input_feed> f) {
          namespace asio = boost::asio;
          auto ex = asio::get_associated_executor(h, s->executor());
          auto work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
          auto d = std::make_shared<zproc::diagnostics>();
          s->async_fill(std::move(f), 0,
                        asio::bind_executor(ex, [h = std::move(h), work, d](
                                                    error_code ec,
                                                    std::vector<std::shared_ptr<detail::task_collector>> got) mutable {
                          if (ec || got.empty())
                            return detail::complete_outcome(std::move(h), d->to_exception(ec ? ec : make_error_code(client_errc::protocol_error)), task<value>{});
                          detail::complete_outcome(std::move(h), nullptr, task<value>(std::move(got[0])));
                        }),
                        d);
        },
        token, std::move(sub), std::move(feed));
  }

  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace zproc
