// The swarm handle: its worker processes (spawned, supervised, respawned, retired), and
// submitting tasks.
#include "client/client_core.hpp"
#include "process/crash.hpp"
#include "process/registry.hpp"
#include "protocol/message.hpp"
#include "protocol/task_messages.hpp"
#include "swarm/submitter.hpp"
#include "swarm/swarm_core.hpp"
#include "swarm/worker.hpp"

#include <zproc/context.hpp>
#include <zproc/detail/request.hpp>
#include <zproc/swarm.hpp>

#include <signal.h>

#include <algorithm>

namespace zproc {

namespace wire = protocol::tasks;

struct swarm::impl {
  context* ctx;
  swarm_options options;
  std::shared_ptr<detail::swarm_core> core;
  std::vector<process> procs;

  process spawn_worker() {
    spawn_options so;
    for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGKILL, SIGTERM})
      so.retry_for.push_back(retry_on_signal(sig));
    so.retry_for.push_back(retry_on<std::exception>());  // the worker loop failed: start again
    so.retry_delay = options.respawn_delay;  // max_retries: none, a swarm keeps its size
    std::weak_ptr<detail::swarm_core> weak = core;
    so.on_crash = [weak](std::int64_t pid, const std::string& report) {
      if (auto c = weak.lock()) c->note_crash(pid, report);
    };
    so.on_start = [weak](std::int64_t pid) {
      if (auto c = weak.lock()) c->note_worker(pid);
    };
    return ctx->spawn(so, swarm_detail::zproc_swarm_worker, options.name);
  }
};

swarm::swarm(context& ctx, std::size_t count, swarm_options options)
    : impl_(std::make_unique<impl>()) {
  if (options.name.empty()) throw std::invalid_argument("zproc: a swarm needs a name");
  if (options.max_attempts == 0) throw std::invalid_argument("zproc: max_attempts must be >= 1");
  // (On the wire 0 means no limit, and a negative count would wrap: both said otherwise here.)
  if (options.call_timeout && options.call_timeout->count() <= 0)
    throw std::invalid_argument(
        "zproc: call_timeout must be positive (leave it empty: calls may run for ever)");
  impl_->ctx = &ctx;
  impl_->options = options;
  zproc::client c(ctx.connect_options());
  c.connect(ctx.address());
  impl_->core = std::make_shared<detail::swarm_core>(std::move(c), options.name, options.executor);
  resize(count);
}

swarm::~swarm() {
  if (!impl_) return;
  try {
    stop();
  } catch (...) {  // the server is gone: the workers end with it (or with the context)
  }
}

swarm::swarm(swarm&&) noexcept = default;
swarm& swarm::operator=(swarm&&) noexcept = default;

const std::string& swarm::name() const noexcept { return impl_->options.name; }
std::size_t swarm::count() const { return impl_->procs.size(); }
std::vector<process> swarm::processes() const { return impl_->procs; }

void swarm::resize(std::size_t count) {
  auto& procs = impl_->procs;
  while (procs.size() < count) procs.push_back(impl_->spawn_worker());
  if (procs.size() <= count) return;

  std::vector<process> retiring(procs.begin() + static_cast<std::ptrdiff_t>(count), procs.end());
  procs.resize(count);
  std::vector<std::int64_t> pids;
  for (const auto& p : retiring) pids.push_back(p.pid());
  // (The host: the workers this swarm spawned run here.)
  json r = wire::retire_request(impl_->options.name, pids, process_detail::host_name());
  try {
    detail::call<json>(impl_->core->client.impl(),
                       detail::request_access::wrap(std::move(r)));
  } catch (const zproc::error&) {  // no server: nothing to finish, stop them below
  }
  // A worker that has not taken anything yet is retired when it first asks; one that hangs
  // in a task is stopped after the deadline (its task goes to another worker).
  const detail::deadline until(std::chrono::seconds(10));
  for (const auto& p : retiring) {
    try {
      p.wait<void>(until.left());
    } catch (const zproc::error&) {  // timeout
      p.stop();
    } catch (const process_error&) {  // it failed: reported already
    }
  }
}

void swarm::stop() { resize(0); }

swarm_status get_swarm_status(const client& c, const std::string& name) {
  json reply = detail::call<json>(c.impl(), detail::request_access::wrap(wire::info_request(name)));
  wire::info in;
  try {
    in = wire::parse_info_reply(reply);
  } catch (const wire::malformed& e) {
    throw zproc::error(client_errc::protocol_error,
                       std::string("unexpected task_info reply: ") + e.what());
  }
  swarm_status out;
  for (auto& w : in.workers)
    out.workers.push_back({w.pid, std::move(w.host), w.running, w.done, w.retiring});
  out.queued = in.queued;
  out.running = in.running;
  return out;
}

std::vector<worker_info> swarm::workers() const {
  return get_swarm_status(impl_->core->client, impl_->options.name).workers;
}

std::shared_ptr<detail::task_submitter> swarm::submitter(const void* target,
                                                         const map_options& options,
                                                         bool lazy, bool bound) const {
  detail::task_submitter::state::config c;
  c.queue = impl_->options.name;
  c.target = process_detail::target_at(target).name;
  c.max_attempts = impl_->options.max_attempts;
  c.call_timeout = impl_->options.call_timeout;
  c.bound = bound;
  c.lazy = lazy;
  c.chunk_size = options.chunk_size;
  c.window = options.window;
  c.spawned = count();
  c.max_bytes = max_chunk_bytes;
  return std::make_shared<detail::task_submitter>(
      std::make_shared<detail::task_submitter::state>(impl_->core, std::move(c)));
}

std::shared_ptr<detail::task_collector> swarm::collector(std::uint64_t id) {
  // (A task handle is one call: swarm::run's.)
  return std::make_shared<detail::task_collector>(impl_->core, id, std::vector<std::size_t>{1});
}

// The swarm layer's part of the context (context.cpp, in the process layer below, does not
// know swarms).
zproc::swarm context::create_swarm(std::size_t count) { return create_swarm(count, {}); }

zproc::swarm context::create_swarm(std::size_t count, swarm_options options) {
  return zproc::swarm(*this, count, std::move(options));
}

}  // namespace zproc
