// A swarm's worker: takes tasks from the server, runs their calls, sends the outcomes back.
// Spawned by a swarm (the target zproc_swarm_worker) or started by hand on any machine with
// `--zproc-worker ADDRESS` (zproc::init).
#include "client/client_core.hpp"
#include "process/crash.hpp"
#include "process/registry.hpp"
#include "protocol/message.hpp"
#include "protocol/task_messages.hpp"
#include "swarm/worker.hpp"

#include <zproc/log.hpp>
#include <zproc/context.hpp>
#include <zproc/detail/request.hpp>
#include <zproc/target.hpp>

#include <boost/asio/io_context.hpp>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <mutex>
#include <thread>

namespace zproc {
namespace detail {

void chunk_output::fail(std::size_t index) {
  // Resolving a stacktrace costs milliseconds: the first few failures of a chunk get one.
  constexpr std::size_t resolved_per_chunk = 16;
  const bool resolve = failures.size() < resolved_per_chunk;
  process_detail::exception_report r = process_detail::describe_current_exception(resolve);
  failure f{index, std::move(r.type), std::move(r.message), std::move(r.frames)};
  if (!resolve)
    f.frames.push_back("(not resolved: more than " + std::to_string(resolved_per_chunk) +
                       " calls of this chunk failed)");
  failures.push_back(std::move(f));
}

}  // namespace detail

namespace swarm_detail {

namespace asio = boost::asio;
namespace wire = protocol::tasks;
using detail::chunk_output;

namespace {

/// swarm_options::call_timeout: a thread that aborts the worker thread when a call runs too
/// long. SIGABRT goes to the worker thread itself, so the crash report (written by zproc's
/// handler in spawned workers) shows where the call was stuck; the supervisor starts a new
/// worker and the server gives the task to another one.
class watchdog {
 public:
  watchdog() : worker_(::pthread_self()) {}
  ~watchdog() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  /// Arms it for the calls of task `id` of `target` (timeout 0: none).
  void arm(std::int64_t timeout_ms, std::string_view target, std::uint64_t id,
           chunk_output& out) {
    started.store(0, std::memory_order_relaxed);
    if (timeout_ms <= 0) return;
    {
      std::lock_guard lock(m_);
      // (A timeout past ~292 years does not fit in nanoseconds: it is as good as none.)
      constexpr std::int64_t most = std::numeric_limits<std::int64_t>::max() / 1'000'000;
      timeout_ns_ = timeout_ms > most ? std::numeric_limits<std::int64_t>::max()
                                      : timeout_ms * 1'000'000;
      what_ = "'" + std::string(target) + "' (task " + std::to_string(id) + ")";
    }
    out.call_started = &started;
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  void disarm() { started.store(0, std::memory_order_relaxed); }

  std::atomic<std::int64_t> started{0};

 private:
  void run() {
    std::unique_lock lock(m_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(10));
      const std::int64_t t = started.load(std::memory_order_relaxed);
      if (t == 0 || detail::steady_now_ns() - t <= timeout_ns_) continue;
      detail::log(log_level::error, "swarm",
                  "worker " + std::to_string(::getpid()) + ": a call of " + what_ +
                      " ran longer than call_timeout (" + std::to_string(timeout_ns_ / 1'000'000) +
                      " ms): aborting it");
      ::pthread_kill(worker_, SIGABRT);
      return;
    }
  }

  pthread_t worker_;
  std::thread thread_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::int64_t timeout_ns_ = 0;
  std::string what_;
};

/// Runs one task; returns its outcome.
std::string run_task(context& ctx, std::string_view target_name, std::string_view args,
              std::size_t items, watchdog& dog, std::int64_t call_timeout_ms,
              std::uint64_t id) {
  const std::string target(target_name);
  chunk_output out;
  dog.arm(call_timeout_ms, target, id, out);
  const detail::target_info* info = process_detail::target_named(target);
  if (!info || !info->invoke_chunk) {
    for (std::size_t i = 0; i < items; ++i) {
      try {
        throw std::invalid_argument("this worker's program (" +
                                    process_detail::executable_path() +
                                    ") has no target named '" + target + "' (ZPROC_TARGET)");
      } catch (...) {
        out.fail(i);
      }
    }
  } else {
    try {
      info->invoke_chunk(ctx, args, items, out);
    } catch (...) {  // outside the calls (making the target's state): all of them fail
      out = chunk_output{};
      for (std::size_t i = 0; i < items; ++i) out.fail(i);
    }
  }
  dog.disarm();
  std::vector<wire::failure> failures;
  failures.reserve(out.failures.size());
  for (auto& f : out.failures)
    failures.push_back({f.index, f.type, f.message, process_detail::format_stacktrace(f.frames),
                        process_detail::format_crash_report(
                            {target, ::getpid(), ::getppid(), f.type + ": " + f.message, f.frames})});
  return wire::ran_outcome(
      std::string_view(reinterpret_cast<const char*>(out.values.data()), out.values.size()), items,
      target, failures);
}

/// One request in flight on the worker's connection.
struct pending {
  bool done = false;
  error_code ec;
  std::string result;  // its MessagePack (read with the protocol's readers: no json tree)
};

}  // namespace

void run_worker(context& ctx, const std::string& queue) {
  asio::io_context io;
  zproc::client c(io.get_executor(), ctx.connect_options());
  bool connected = false;
  error_code connect_ec;
  c.async_connect(ctx.address(), [&](error_code ec) {
    connect_ec = ec;
    connected = true;
  });
  while (!connected && io.run_one() > 0) {
  }
  if (!connected || connect_ec)
    throw zproc::error(connect_ec, "swarm worker: cannot connect to " + ctx.address());

  auto send = [&](detail::request request) {
    auto p = std::make_shared<pending>();
    detail::start_packed_request(c.impl(), std::move(request),
                                 [p](error_code ec, std::string r) {
                                   p->done = true;
                                   p->ec = ec;
                                   p->result = std::move(r);
                                 },
                                 nullptr);
    io.poll();  // written now, while this thread computes
    return p;
  };
  // `gone` once the server is gone for good (the worker's end: the client gave up
  // reconnecting); `lost` when the connection the request went on was lost and the client
  // reconnected (the server restarted, or failed over): what that connection held (the tasks
  // taken on it) is the old server's, so the worker just asks again. A refused request is an
  // error.
  enum class outcome { ok, lost, gone };
  auto wait = [&](const std::shared_ptr<pending>& p) {
    while (!p->done && io.run_one() > 0) {
    }
    if (!p->done || p->ec == client_errc::connection_closed) return outcome::gone;
    if (p->ec == client_errc::connection_lost) return outcome::lost;
    if (p->ec) throw zproc::error(p->ec, "swarm worker: the server refused a request of swarm '" +
                                             queue + "'");
    return outcome::ok;
  };
  const std::string& host = process_detail::host_name();
  // Tasks are taken so that a batch runs for about this long: tiny calls come many per round
  // trip, long ones one at a time (and the others stay queued for other workers). Counted in
  // calls as well as in tasks: a map's automatic chunks shrink toward its end, and a count of
  // tasks learnt from those would take too many of the next map's large ones. And measured per
  // target: after another target's tasks, one task comes first, to measure this one's calls
  // (a server that knows neither goes by the count of tasks).
  constexpr auto batch_time = std::chrono::milliseconds(5);
  constexpr std::size_t max_batch = 1024;
  std::size_t max = 1;      // tasks
  std::uint64_t calls = 0;  // calls in all (0: no limit: the first take is of one task)
  std::string measured_on;  // the target `calls` was measured on
  auto take = [&] {
    return send(detail::request_access::wrap(wire::take_request(
        queue, max, static_cast<std::int64_t>(::getpid()), host, calls, measured_on)));
  };

  // While batches are short, the next one is asked for before this one runs (the round trip
  // hides behind the work). Long ones are not: a task held ahead would wait for this one
  // while another worker may be idle.
  constexpr auto prefetch_below = std::chrono::milliseconds(20);
  bool prefetch = false;
  std::vector<std::shared_ptr<pending>> sent;  // task_done requests in flight
  watchdog dog;
  auto next = take();
  for (;;) {
    const outcome o = wait(next);
    if (o == outcome::gone) break;
    if (o == outcome::lost) {  // a new connection: take again (tasks taken on the old one are
      next = take();           // handed out again by the server that kept them, if any)
      continue;
    }
    const std::string reply = std::move(next->result);
    wire::take_view taken;
    try {
      taken = wire::parse_take_reply(reply);
    } catch (const wire::malformed& e) {
      throw zproc::error(client_errc::protocol_error,
                         "swarm worker: unexpected task_take reply: " + std::string(e.what()));
    }
    if (taken.retire) break;
    const auto& tasks = taken.tasks;
    std::shared_ptr<pending> ahead;
    if (prefetch) ahead = take();
    const auto start = std::chrono::steady_clock::now();
    wire::done_writer results;
    std::uint64_t ran_calls = 0;
    for (const auto& t : tasks) {
      results.add(t.id, run_task(ctx, t.target, t.args, t.items, dog, t.call_timeout_ms, t.id));
      ran_calls += t.items;
    }
    const auto took = std::chrono::steady_clock::now() - start;
    std::erase_if(sent, [](const auto& p) { return p->done; });
    sent.push_back(send(detail::request_access::wrap(std::move(results).finish())));
    const auto per_task = std::max<std::chrono::nanoseconds>(
        std::chrono::nanoseconds(100), took / std::max<std::size_t>(1, tasks.size()));
    max = std::clamp<std::size_t>(static_cast<std::size_t>(batch_time / per_task), 1, max_batch);
    const auto per_call = std::max<std::chrono::nanoseconds>(
        std::chrono::nanoseconds(1), took / std::max<std::uint64_t>(1, ran_calls));
    calls = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(batch_time / per_call));
    if (!tasks.empty()) measured_on.assign(tasks.back().target);
    prefetch = took < prefetch_below;
    next = ahead ? std::move(ahead) : take();
  }
  // The last outcomes reach the server before we exit (one lost with its connection is lost
  // for the server too: it hands that task out again).
  for (const auto& p : sent) wait(p);
}

void work_if_asked(int argc, char** argv) {
  constexpr const char* address_env = "ZPROC_WORKER";
  constexpr const char* swarm_env = "ZPROC_SWARM";
  std::string address, queue = "default";
  if (const char* a = std::getenv(address_env); a && *a) address = a;
  if (const char* n = std::getenv(swarm_env); n && *n) queue = n;
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--zproc-worker") address = argv[i + 1];
    if (arg == "--zproc-swarm") queue = argv[i + 1];
  }
  if (address.empty()) return;
  // Programs this worker's calls start must not become workers too.
  ::unsetenv(address_env);
  ::unsetenv(swarm_env);
  int code = 0;
  try {
    context_options options;
    options.address = address;
    context ctx(std::move(options));
    detail::log(log_level::info, "swarm",
                "worker " + std::to_string(::getpid()) + " joined swarm '" + queue + "' at " +
                    address);
    run_worker(ctx, queue);
  } catch (const std::exception& e) {
    detail::log(log_level::error, "swarm",
                "worker " + std::to_string(::getpid()) + ": " + e.what());
    code = 1;
  }
  std::fflush(nullptr);
  std::exit(code);
}

}  // namespace swarm_detail

namespace swarm_detail {
// By value: a target's parameters are what its arguments are unpacked into.
void zproc_swarm_worker(context& ctx, std::string queue) {
  try {
    run_worker(ctx, queue);
  } catch (const zproc::error& e) {
    // No server to work for: the end, not a crash to respawn after (it would fail again).
    if (e.code() != client_errc::server_unreachable) throw;
  }
}
ZPROC_TARGET(zproc_swarm_worker);
}  // namespace swarm_detail

}  // namespace zproc
