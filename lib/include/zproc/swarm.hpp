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

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace zproc {

class context;

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
  std::optional<std::chrono::milliseconds> call_timeout;
  /// With an executor, the swarm's connection runs on it and the async_ operations of its
  /// tasks and map streams work (co_await). Without one, only the blocking calls do.
  std::optional<boost::asio::any_io_executor> executor;
};

struct map_options {
  /// Calls per task. Zero: automatic (the inputs split into about 4 tasks per worker, and
  /// no task's arguments above 1 MiB): few round trips for many tiny calls.
  std::size_t chunk_size = 0;
  /// Called (on the thread that waits) as results arrive: how many of how many are back.
  std::function<void(std::size_t done, std::size_t total)> progress;
  /// map(): how long to wait for all the results; zero: no deadline.
  std::chrono::milliseconds timeout{0};
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
    using traits = detail::target_traits<F>;
    typename traits::args* tag = nullptr;
    std::vector<detail::packed_chunk> chunk(1);
    const std::string packed = detail::pack_as(tag, std::forward<A>(args)...);
    chunk[0].bytes.assign(packed.begin(), packed.end());
    chunk[0].items = 1;
    auto batches = submit(reinterpret_cast<const void*>(&target), std::move(chunk), false);
    return task<typename traits::value>(std::move(batches.at(0)));
  }

  /// Calls `target` on each input (a value, or a tuple for a target of several parameters)
  /// on the workers; returns the values in input order. Throws the error of the first input
  /// (in input order) whose call failed (remote_error, task_lost_error), after cancelling
  /// the rest; zproc::error (client_errc::timeout) when options.timeout passes.
  template <class F, std::ranges::input_range Inputs>
    requires std::is_function_v<F>
  auto map(F& target, Inputs&& inputs, map_options options = {}) {
    using value = typename detail::target_traits<F>::value;
    const detail::deadline until(options.timeout);
    auto stream = map_lazy(target, std::forward<Inputs>(inputs), std::move(options));
    if constexpr (std::is_void_v<value>) {
      while (stream.next(until.left())) {
      }
    } else {
      std::vector<value> out;
      out.reserve(stream.size());
      while (stream.next_chunk(out, until.left())) {
      }
      return out;
    }
  }

  /// map() whose results are read one by one, in input order, as they arrive (next(),
  /// async_next(), range-for). All inputs are submitted at once.
  template <class F, std::ranges::input_range Inputs>
    requires std::is_function_v<F>
  map_stream<typename detail::target_traits<F>::value> map_lazy(F& target, Inputs&& inputs,
                                                                map_options options = {}) {
    using traits = detail::target_traits<F>;
    std::size_t n = 0;
    if constexpr (std::ranges::sized_range<Inputs>) n = std::ranges::size(inputs);
    auto chunks = detail::pack_chunks<typename traits::args>(
        inputs, options.chunk_size ? options.chunk_size : auto_chunk_size(n), max_chunk_bytes);
    std::size_t total = 0;
    for (const auto& c : chunks) total += c.items;
    auto batches = chunks.empty() ? std::vector<std::shared_ptr<detail::task_collector>>{}
                                  : submit(reinterpret_cast<const void*>(&target),
                                           std::move(chunks), true);
    return map_stream<typename traits::value>(std::move(batches), total,
                                              std::move(options.progress));
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
  std::vector<std::shared_ptr<detail::task_collector>> submit(const void* target,
                                                              std::vector<detail::packed_chunk> chunks,
                                                              bool bound);
  std::shared_ptr<detail::task_collector> collector(std::uint64_t id);
  std::size_t auto_chunk_size(std::size_t inputs) const;

  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace zproc
